//! Sync: upserting accounts with their contacts, and deleting accounts.
//!
//! A call is planned in memory from strongly consistent reads, then written in phases whose
//! order makes a retry converge (see the module docs of the adapter, "Sync write order").

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

use super::batch::{self, CONCURRENCY};
use super::filter_values::{AccountWrite, Target};
use super::items::{self, s, Item};
use super::keys;
use super::DynamoStore;
use portal_core::domain::{Account, AccountId, ContactId, DivisionId, PortalKey, TenantId};
use portal_core::ports::{AccountStore, StoreError, SyncReport};

/// An account item as stored.
pub(super) struct StoredAccount {
    pub division: DivisionId,
    pub contacts: Vec<ContactId>,
    /// `None` only on an item written before accounts had keys.
    pub key: Option<PortalKey>,
    pub number: Option<String>,
    pub name: Option<String>,
    /// The item as read, to rewrite it with only its contact list changed.
    pub item: Item,
}

impl StoredAccount {
    pub fn decode(item: &Item) -> Result<Self, StoreError> {
        Ok(Self {
            division: items::division_id(item, items::DIVISION)?,
            contacts: items::contact_ids(item)?,
            key: items::portal_key(item)?,
            number: items::get_str(item, items::ACC_NUMBER).map(str::to_owned),
            name: items::get_str(item, items::ACC_NAME).map(str::to_owned),
            item: item.clone(),
        })
    }
}

/// A contact locator as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Locator {
    account: AccountId,
    division: DivisionId,
}

impl DynamoStore {
    async fn load_accounts<'a>(
        &self,
        tenant: &TenantId,
        ids: impl IntoIterator<Item = &'a AccountId>,
    ) -> Result<HashMap<AccountId, StoredAccount>, StoreError> {
        self.load_keyed(
            ids,
            |a| items::key(keys::account_pk(tenant, a), keys::ACCOUNT_SK),
            |pk| keys::account_of_pk(tenant, pk).and_then(|a| AccountId::parse(a).ok()),
            StoredAccount::decode,
        )
        .await
    }

    async fn load_locators<'a>(
        &self,
        tenant: &TenantId,
        ids: impl IntoIterator<Item = &'a ContactId>,
    ) -> Result<HashMap<ContactId, Locator>, StoreError> {
        self.load_keyed(
            ids,
            |c| items::key(keys::locator_pk(tenant, c), keys::LOCATOR_SK),
            |pk| keys::contact_of_locator_pk(tenant, pk).and_then(|c| ContactId::parse(c).ok()),
            |item| {
                Ok(Locator {
                    account: items::account_id(item, items::ACCOUNT)?,
                    division: items::division_id(item, items::DIVISION)?,
                })
            },
        )
        .await
    }

    /// Batch-reads the item of each distinct id (key built by `key`) and decodes the ones
    /// found, keyed by the id read back from their partition key with `id_of_pk`.
    async fn load_keyed<'a, I, V>(
        &self,
        ids: impl IntoIterator<Item = &'a I>,
        key: impl Fn(&I) -> Item,
        id_of_pk: impl Fn(&str) -> Option<I>,
        decode: impl Fn(&Item) -> Result<V, StoreError>,
    ) -> Result<HashMap<I, V>, StoreError>
    where
        I: Eq + std::hash::Hash + 'a,
    {
        let keys: Vec<Item> = ids
            .into_iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .map(key)
            .collect();
        let found = batch::get_all(&self.client, &self.table, keys, None).await?;
        found
            .iter()
            .map(|item| {
                let pk = items::get_str(item, items::PK).unwrap_or_default();
                let id = id_of_pk(pk).ok_or_else(|| {
                    StoreError::backend("decode item", items::MalformedItem(pk.to_owned()))
                })?;
                Ok((id, decode(item)?))
            })
            .collect()
    }

    /// The three items of a contact in `division`, to delete.
    fn contact_deletes(
        tenant: &TenantId,
        division: &DivisionId,
        c: &ContactId,
        out: &mut Vec<aws_sdk_dynamodb::types::WriteRequest>,
    ) -> Result<(), StoreError> {
        let pk = keys::partition_pk(tenant, division, keys::shard_of(c));
        out.push(batch::delete(items::key(pk.clone(), keys::contact_sk(c)))?);
        out.push(batch::delete(items::key(pk, keys::state_sk(c)))?);
        out.push(batch::delete(items::key(
            keys::locator_pk(tenant, c),
            keys::LOCATOR_SK,
        ))?);
        Ok(())
    }

    /// The account item of a synced account: membership, key, the account number indexed on
    /// `gsi1` (`T#{t}#ANUM#{number}` / account id), and the four list-filter values its
    /// contacts share (what it contributes to its division's summary, see `filter_values`).
    /// `write_accounts` adds its version.
    fn account_item(
        tenant: &TenantId,
        account: &Account,
        contacts: &[ContactId],
        key: &PortalKey,
    ) -> Item {
        let mut item = items::key(
            keys::account_pk(tenant, &account.account_id),
            keys::ACCOUNT_SK,
        );
        item.insert(items::DIVISION.into(), s(account.division_id.as_str()));
        item.insert(items::CONTACTS.into(), items::contact_list(contacts));
        item.insert(items::PORTAL_KEY.into(), s(key.as_str()));
        item.insert(items::ACC_NUMBER.into(), s(&account.number));
        item.insert(items::ACC_NAME.into(), s(&account.name));
        item.insert(
            items::GSI1PK.into(),
            s(keys::account_number_gsi_pk(tenant, &account.number)),
        );
        item.insert(items::GSI1SK.into(), s(account.account_id.as_str()));
        item.insert(items::CLASS.into(), s(&account.class));
        item.insert(items::BILL_GROUP.into(), s(&account.bill_group));
        item.insert(items::SOURCE.into(), s(&account.source));
        item.insert(items::SITE_SOURCE.into(), s(&account.site_source));
        item
    }

    fn locator_item(tenant: &TenantId, contact: &ContactId, at: &Locator) -> Item {
        let mut item = items::key(keys::locator_pk(tenant, contact), keys::LOCATOR_SK);
        item.insert(items::DIVISION.into(), s(at.division.as_str()));
        item.insert(items::ACCOUNT.into(), s(at.account.as_str()));
        item
    }

    async fn set_last_logins(
        &self,
        tenant: &TenantId,
        logins: Vec<(ContactId, DivisionId, OffsetDateTime)>,
    ) -> Result<(), StoreError> {
        futures::stream::iter(logins)
            .map(|(c, d, at)| async move {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(items::key(
                        keys::partition_pk(tenant, &d, keys::shard_of(&c)),
                        keys::state_sk(&c),
                    )))
                    .update_expression("SET #ll = :ll")
                    .expression_attribute_names("#ll", items::LAST_LOGIN)
                    .expression_attribute_values(":ll", items::time_value(at)?)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| StoreError::backend("UpdateItem", e))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }
}

#[async_trait]
impl AccountStore for DynamoStore {
    async fn upsert_accounts(
        &self,
        tenant: &TenantId,
        accounts: &[Account],
    ) -> Result<SyncReport, StoreError> {
        let mut report = SyncReport {
            accounts: accounts.len() as u64,
            contacts: accounts.iter().map(|a| a.contacts.len() as u64).sum(),
            contacts_removed: 0,
        };
        if accounts.is_empty() {
            return Ok(report);
        }

        // The end state of the call, as if its accounts were applied in order: an account
        // listed twice keeps its last version, and a contact listed by several accounts ends
        // up on the last one (moved, keeping its state).
        let last: HashMap<&AccountId, usize> = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (&a.account_id, i))
            .collect();
        let synced: Vec<&Account> = accounts
            .iter()
            .enumerate()
            .filter(|(i, a)| last[&a.account_id] == *i)
            .map(|(_, a)| a)
            .collect();
        let mut owner: HashMap<&ContactId, usize> = HashMap::new();
        for (i, a) in synced.iter().enumerate() {
            for c in &a.contacts {
                owner.insert(&c.contact_id, i);
            }
        }
        let owned = |i: usize, c: &ContactId| owner.get(c) == Some(&i);
        let synced_ids: HashSet<&AccountId> = synced.iter().map(|a| &a.account_id).collect();

        // What is stored now: the synced accounts; the locators of contacts new to their
        // account (they may live elsewhere) and of contacts leaving (to be sure they are ours).
        let stored = self
            .load_accounts(tenant, synced.iter().map(|a| &a.account_id))
            .await?;
        let listed =
            |a: &AccountId, c: &ContactId| stored.get(a).is_some_and(|s| s.contacts.contains(c));
        let mut lookup: Vec<&ContactId> = Vec::new();
        for (i, a) in synced.iter().enumerate() {
            for c in &a.contacts {
                if owned(i, &c.contact_id) && !listed(&a.account_id, &c.contact_id) {
                    lookup.push(&c.contact_id);
                }
            }
            if let Some(old) = stored.get(&a.account_id) {
                lookup.extend(old.contacts.iter().filter(|c| !owner.contains_key(c)));
            }
        }
        let locators = self.load_locators(tenant, lookup).await?;

        // Every account has a key: the one sync sends, else the one stored, else a new one.
        let portal_keys: Vec<PortalKey> = synced
            .iter()
            .map(|a| {
                a.portal_key
                    .clone()
                    .or_else(|| stored.get(&a.account_id).and_then(|s| s.key.clone()))
                    .unwrap_or_else(PortalKey::generate)
            })
            .collect();

        // Where each contact of the end state was, and where it goes.
        struct Placement<'a> {
            contact: &'a ContactId,
            old: Option<Locator>,
            new: Locator,
        }
        let mut placements = Vec::new();
        for (i, a) in synced.iter().enumerate() {
            for c in a.contacts.iter().filter(|c| owned(i, &c.contact_id)) {
                let id = &c.contact_id;
                let old = match stored.get(&a.account_id) {
                    Some(s) if s.contacts.contains(id) => Some(Locator {
                        account: a.account_id.clone(),
                        division: s.division.clone(),
                    }),
                    _ => locators.get(id).cloned(),
                };
                placements.push(Placement {
                    contact: id,
                    old,
                    new: Locator {
                        account: a.account_id.clone(),
                        division: a.division_id.clone(),
                    },
                });
            }
        }

        // Accounts outside this call that lose a contact to it.
        let mut losses: HashMap<&AccountId, HashSet<&ContactId>> = HashMap::new();
        for p in &placements {
            if let Some(old) = &p.old {
                if !synced_ids.contains(&old.account) {
                    losses.entry(&old.account).or_default().insert(p.contact);
                }
            }
        }
        let losers = self.load_accounts(tenant, losses.keys().copied()).await?;

        // The state of contacts changing division travels with them.
        let moving: Vec<(&ContactId, &DivisionId, &DivisionId)> = placements
            .iter()
            .filter_map(|p| {
                let old = p.old.as_ref()?;
                (old.division != p.new.division).then_some((
                    p.contact,
                    &old.division,
                    &p.new.division,
                ))
            })
            .collect();
        let state_keys = moving
            .iter()
            .map(|(c, from, _)| {
                items::key(
                    keys::partition_pk(tenant, from, keys::shard_of(c)),
                    keys::state_sk(c),
                )
            })
            .collect();
        let mut states: HashMap<String, Item> =
            batch::get_all(&self.client, &self.table, state_keys, None)
                .await?
                .into_iter()
                .filter_map(|i| Some((items::get_str(&i, items::SK)?.to_owned(), i)))
                .collect();

        // Phase 1: the new sync items, and moved state.
        let mut puts = Vec::new();
        for (i, a) in synced.iter().enumerate() {
            for mut rec in a.contact_records().filter(|r| owned(i, &r.contact_id)) {
                rec.portal_key = Some(portal_keys[i].clone());
                puts.push(batch::put(items::encode_sync_item(tenant, &rec))?);
            }
        }
        for (c, _, to) in &moving {
            if let Some(mut st) = states.remove(&keys::state_sk(c)) {
                st.insert(
                    items::PK.into(),
                    s(keys::partition_pk(tenant, to, keys::shard_of(c))),
                );
                puts.push(batch::put(st)?);
            }
        }
        batch::write_all(&self.client, &self.table, puts).await?;

        // Phase 2: last logins reported by sync land on the state items.
        let logins = synced
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.last_login.map(|at| (i, a, at)))
            .flat_map(|(i, a, at)| {
                a.contacts
                    .iter()
                    .filter(move |c| owned(i, &c.contact_id))
                    .map(move |c| (c.contact_id.clone(), a.division_id.clone(), at))
            })
            .collect();
        self.set_last_logins(tenant, logins).await?;

        // Phase 3: old copies of moved contacts, and removed contacts.
        let mut deletes = Vec::new();
        for (c, from, _) in &moving {
            let pk = keys::partition_pk(tenant, from, keys::shard_of(c));
            deletes.push(batch::delete(items::key(pk.clone(), keys::contact_sk(c)))?);
            deletes.push(batch::delete(items::key(pk, keys::state_sk(c)))?);
        }
        for a in &synced {
            let Some(old) = stored.get(&a.account_id) else {
                continue;
            };
            for c in old.contacts.iter().filter(|c| !owner.contains_key(c)) {
                // A stale list entry for a contact that has since moved elsewhere is not ours.
                if locators.get(c).is_some_and(|l| l.account != a.account_id) {
                    continue;
                }
                Self::contact_deletes(tenant, &old.division, c, &mut deletes)?;
                report.contacts_removed += 1;
            }
        }
        batch::write_all(&self.client, &self.table, deletes).await?;

        // Phase 4: the locators, then the account items with what they change in their
        // divisions' filter-value summaries (see `filter_values`): the new layout. An account
        // item that would not change is not written.
        let mut puts = Vec::new();
        for p in &placements {
            if p.old.as_ref() != Some(&p.new) {
                puts.push(batch::put(Self::locator_item(tenant, p.contact, &p.new))?);
            }
        }
        batch::write_all(&self.client, &self.table, puts).await?;
        let mut writes = Vec::new();
        for (i, a) in synced.iter().enumerate() {
            let contacts: Vec<ContactId> = a
                .contacts
                .iter()
                .filter(|c| owned(i, &c.contact_id))
                .map(|c| c.contact_id.clone())
                .collect();
            writes.push(AccountWrite {
                id: a.account_id.clone(),
                current: stored.get(&a.account_id).map(|s| s.item.clone()),
                target: Target::Put(Self::account_item(tenant, a, &contacts, &portal_keys[i])),
            });
        }
        for (account, lost) in &losses {
            // Only its contact list changes: key, number and index entry stay.
            writes.push(AccountWrite {
                id: (*account).clone(),
                current: losers.get(*account).map(|s| s.item.clone()),
                target: Target::Drop(lost.iter().map(|c| (*c).clone()).collect()),
            });
        }
        self.write_accounts(tenant, writes).await?;
        Ok(report)
    }

    async fn delete_account(&self, tenant: &TenantId, id: &AccountId) -> Result<bool, StoreError> {
        let key = items::key(keys::account_pk(tenant, id), keys::ACCOUNT_SK);
        let Some(item) = self.get_item("GetItem", key.clone()).await? else {
            return Ok(false);
        };
        let division = items::division_id(&item, items::DIVISION)?;
        let contacts = items::contact_ids(&item)?;
        let locators = self.load_locators(tenant, &contacts).await?;
        let mut deletes = Vec::new();
        for c in &contacts {
            // A stale list entry for a contact that has since moved elsewhere is not ours.
            if locators.get(c).is_some_and(|l| l.account != *id) {
                continue;
            }
            Self::contact_deletes(tenant, &division, c, &mut deletes)?;
        }
        batch::write_all(&self.client, &self.table, deletes).await?;
        // The account item goes last, taking its contribution out of the summary with it.
        self.write_accounts(
            tenant,
            vec![AccountWrite {
                id: id.clone(),
                current: Some(item),
                target: Target::Delete,
            }],
        )
        .await?;
        Ok(true)
    }
}
