//! [`RegistrationStore`] on DynamoDB: portal keys, the token index, logins, confirmation
//! links, rate-limit counters, sign-up requests and other emails.
//!
//! # Items
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | login | `T#{t}#LOGIN#{normalized email}` | `LOGIN` | `email` (as first registered), `name`, `cids`? / `aids`? (string sets of contact and account ids), `via`, `confirmed`, `provisioned` (Bool), `at` |
//! | confirmation link | `T#{t}#CONF#{hex SHA-256 of the token}` | `CONF` | `login` (normalized email), `exp`, `used` (Bool), `ttl` (7 days after `exp`) |
//! | rate-limit counter | `T#{t}#RL#{hex SHA-256 of the key}` | window start (time) | `n` (N), `exp`, `ttl` (= `exp` in epoch seconds) |
//! | sign-up request | `T#{t}#REQ` | `{request id}` | `name`, `email`, `email_n` (normalized), `phone`, `addr`, `div`, `acc_no`?, `status`, `why`? (close reason), `m_acc`?, `m_con`?, `note`?, `at`, `upd` |
//!
//! and on items of other modules: the account item's `pkey`, `acc_no`, `acc_name` and its
//! number index entry (`gsi1pk = T#{t}#ANUM#{number}`, `gsi1sk` = account id); each contact
//! sync item's copy `pkey` and, when it has an address, its address index entry
//! (`gsi1pk = T#{t}#EMAIL#{normalized email}`, `gsi1sk` = contact id: written by every sync
//! with the item itself, so an address change or a deleted contact moves or leaves the index
//! with it, and a contact synced before the index existed is found after its next sync); the
//! invitation's token index entry (`gsi1pk = TOK#{hex hash}`,
//! `gsi1sk = T#{t}`) and `token_used_at`; the contact state item's `other_emails` (string set).
//!
//! One login per address is the login item's key: it is created only with
//! `attribute_not_exists(pk)`. Request ids begin with their creation time, so the request
//! partition read backwards is newest first.
//!
//! # Registering
//!
//! **Through an invitation**: one BatchGetItem reads the contact's locator (its partition) and
//! the login, one Query of the address index finds the tenant's other contacts with the
//! address (compared by [`Email::normalized`]: the index key is the normalized address), then
//! one TransactWriteItems: an Update of the invitation `SET token_used_at`
//! under `attribute_exists(pk) AND attribute_not_exists(token_used_at)`; a ConditionCheck
//! that the contact's sync item exists; an Update of its state item `SET status = accepted`;
//! the login — a Put under `attribute_not_exists(pk)` when none was read (confirmed, not
//! provisioned), else an Update `ADD`ing the contacts and accounts to its sets under
//! `attribute_exists(pk)`; and, for each other contact of the address, a ConditionCheck that
//! its sync item still carries the address's index key (the index is eventually consistent:
//! a contact whose address changed or that was deleted a moment ago is left out, and the
//! round retried without it) and the Update of its state item `SET status = accepted`. The
//! login names every contact accepted, and their accounts. A cancellation says what failed: the invitation (its `ALL_OLD`
//! copy exists → `TokenUsed`, else `Missing`), the contact (`Missing`), or the login Put
//! (another registration of the address won the race: its `ALL_OLD` copy is the login, and
//! the next round adds to it). Conflicts are retried with back-off, at most
//! [`MAX_REGISTER_ROUNDS`] rounds. Requests: 1 BatchGetItem + 1 Query + 1 TransactWriteItems;
//! a lost race on the address costs one more TransactWriteItems.
//!
//! The transaction holds 48 other contacts of the address (4 + 2 × 48 = 100 items, DynamoDB's
//! limit). Past 48, the rest are accepted right after it, 49 per TransactWriteItems, each
//! with the login's `ADD` of exactly those contacts: so the login never names a contact that
//! is not `accepted`, but a process that dies in between leaves the rest `not_sent`/`pending`
//! (their own links still register and join the login). Contacts of other tenants are never
//! read: the index key begins with the caller's tenant.
//!
//! **With a portal key**: one TransactWriteItems, no read: a Put of the login (unconfirmed)
//! under `attribute_not_exists(pk)`, a Put of the confirmation link under
//! `attribute_not_exists(pk)`, and a ConditionCheck that the account exists. An existing
//! login cancels it and comes back as the login Put's `ALL_OLD` copy: `ExistingLogin`,
//! nothing written.
//!
//! **Confirming**: GetItem the link, GetItem its login, BatchGetItem the locators of the
//! login's contacts, then one TransactWriteItems: the link `SET used = true` under
//! `used = false AND exp > now`, the login `SET confirmed = true`, and each contact's state
//! item `SET status = accepted` (a login awaiting confirmation has at most a handful of
//! contacts; past 98 the rest are updated one by one after the transaction). A cancelled
//! link condition is read again, and the read says `AlreadyConfirmed` or `Expired`.
//! Requests: 4 (3 for a login without contacts).
//!
//! # Portal keys
//!
//! The account item holds the key; sync keeps it, takes a synced one, or generates one for an
//! account it has never seen (see `accounts`), and copies it onto the sync items it writes.
//! A rotation is one UpdateItem of the account item (`ReturnValues = ALL_NEW` names its
//! division and contacts) — from then on only the new key is answered — followed by one
//! UpdateItem per contact sync item (`SET pkey`, under `acc = account`: a stale list entry
//! is skipped). The copies are not in the same write (an account has up to 100 contacts, a
//! transaction 100 items); an interrupted rotation leaves old copies until the next rotation
//! or sync, which rewrites them from the account item. A rotation racing a sync of the same
//! account can be overwritten by the key that sync read: rotate again.
//!
//! An account item written before keys existed gets one on first read (`SET pkey =
//! if_not_exists(pkey, :new)`) and its number index entry on its next sync.
//!
//! `find_account_by_number` Queries the number index (eventually consistent), then reads each
//! hit's account item strongly consistently (so a key rotated a moment ago is the one
//! answered, and a renumbered account is dropped) and BatchGetItems its contacts' sync items
//! (projected to `sk`, `acc`, `email`): 3 requests.
//!
//! `find_token` Queries the token index: one request. The index is eventually consistent,
//! which is safe: `token_used_at` only ever appears, and `register`'s condition decides.
//!
//! # Rate limits, requests, other emails
//!
//! A hit is one UpdateItem `ADD n :1 SET exp, ttl` returning the new count; a read is one
//! GetItem, and an item past `exp` reads as 0 (DynamoDB's TTL deletes within days, not at
//! once). Request lists Query the request partition backwards from the cursor with a
//! FilterExpression on status and division, until `limit + 1` match; `open_requests_for`
//! Queries it with `email_n = :e AND status <> closed` (requests are few per tenant).
//! `update_request` is a PutItem under `status = :expected` (and `why = :reason` for a closed
//! one). `add_other_email` is the state update of `contacts` (locator, then a transaction
//! that checks the sync item) `ADD other_emails :e`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use futures::{StreamExt, TryStreamExt};
use time::{Duration, OffsetDateTime};

use super::accounts::StoredAccount;
use super::batch::{self, CONCURRENCY};
use super::campaigns::{build_err, invitation_contact, TOKEN_USED_AT};
use super::items::{self, get_num, get_str, malformed, req_str, req_time, s, time_attr, Item};
use super::keys::{self, campaign_pk, invitation_sk};
use super::ops::{
    self, all_retryable, cancellation, jitter, old_item, reason_code, unexpected, Cancelled,
    CONDITION_FAILED,
};
use super::DynamoStore;
use portal_core::domain::{
    AccountId, CampaignId, CloseReason, ContactId, DivisionId, Email, Login, LoginVia, PortalKey,
    PortalStatus, RegistrationRequest, RequestId, RequestStatus, TenantId,
};
use portal_core::ports::{
    AccountKey, ConfirmOutcome, NewRegistration, Page, RegisterOutcome, RegistrationStore,
    RequestFilter, StoreError, TokenRef, Via, MAX_PAGE_SIZE,
};

/// Rounds of a registration or confirmation before giving up on conflicts.
pub(super) const MAX_REGISTER_ROUNDS: u32 = 8;
/// How long a confirmation link's item outlives its expiry (then TTL deletes it).
const CONFIRMATION_RETENTION: Duration = Duration::days(7);
/// Contact state updates that fit in the confirmation transaction beside the link and login.
const CONFIRM_CONTACTS_PER_TRANSACTION: usize = 98;
/// Other contacts of the address that fit in a registration's transaction beside its four
/// items (invitation, sync item check, state, login): each takes two, a check that its sync
/// item still has the address and the update of its state item.
const ADDRESS_CONTACTS_PER_TRANSACTION: usize = 48;
/// The same in each follow-up transaction, beside the login's update.
const ADDRESS_CONTACTS_PER_FOLLOW_UP: usize = 49;

/// A contact found in the address index (`gsi1` on contact sync items).
#[derive(Debug, Clone, PartialEq, Eq)]
struct AddressContact {
    contact: ContactId,
    division: DivisionId,
    account: AccountId,
}

// Login item.
const L_EMAIL: &str = "email";
const L_NAME: &str = "name";
const L_CONTACTS: &str = "cids";
const L_ACCOUNTS: &str = "aids";
const L_VIA: &str = "via";
const L_CONFIRMED: &str = "confirmed";
const L_PROVISIONED: &str = "provisioned";
const L_CREATED: &str = "at";

// Confirmation link item.
const C_LOGIN: &str = "login";
const C_EXPIRES: &str = "exp";
const C_USED: &str = "used";

// Rate-limit counter.
const RL_COUNT: &str = "n";
const RL_EXPIRES: &str = "exp";

// Sign-up request item.
const R_NAME: &str = "name";
const R_EMAIL: &str = "email";
const R_EMAIL_N: &str = "email_n";
const R_PHONE: &str = "phone";
const R_ADDRESS: &str = "addr";
const R_DIVISION: &str = "div";
const R_ACC_NO: &str = "acc_no";
const R_STATUS: &str = "status";
const R_REASON: &str = "why";
const R_MATCHED_ACCOUNT: &str = "m_acc";
const R_MATCHED_CONTACT: &str = "m_con";
const R_NOTE: &str = "note";
const R_CREATED: &str = "at";
const R_UPDATED: &str = "upd";

// Contact state item.
const OTHER_EMAILS: &str = "other_emails";

fn flag(item: &Item, name: &str) -> bool {
    matches!(item.get(name), Some(AttributeValue::Bool(true)))
}

fn epoch(t: OffsetDateTime) -> AttributeValue {
    items::signed(t.unix_timestamp())
}

/// A string set's members parsed as ids, sorted (a set has no order).
fn id_set<I: Ord>(
    item: &Item,
    name: &str,
    parse: impl Fn(&str) -> Option<I>,
) -> Result<Vec<I>, StoreError> {
    let mut ids = match item.get(name) {
        None => Vec::new(),
        Some(AttributeValue::Ss(set)) => set
            .iter()
            .map(|v| parse(v).ok_or_else(|| malformed(format!("bad id in {name}"))))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(malformed(format!("{name} is not a string set"))),
    };
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn login_key(tenant: &TenantId, email: &Email) -> Item {
    items::key(keys::login_pk(tenant, &email.normalized()), keys::LOGIN_SK)
}

fn encode_login(tenant: &TenantId, login: &Login) -> Result<Item, StoreError> {
    let mut item = login_key(tenant, &login.email);
    item.insert(L_EMAIL.into(), s(login.email.as_str()));
    item.insert(L_NAME.into(), s(&login.name));
    if !login.contact_ids.is_empty() {
        item.insert(
            L_CONTACTS.into(),
            AttributeValue::Ss(login.contact_ids.iter().map(|c| c.to_string()).collect()),
        );
    }
    if !login.account_ids.is_empty() {
        item.insert(
            L_ACCOUNTS.into(),
            AttributeValue::Ss(login.account_ids.iter().map(|a| a.to_string()).collect()),
        );
    }
    item.insert(L_VIA.into(), s(login.via.as_str()));
    item.insert(L_CONFIRMED.into(), AttributeValue::Bool(login.confirmed));
    item.insert(
        L_PROVISIONED.into(),
        AttributeValue::Bool(login.provisioned),
    );
    item.insert(L_CREATED.into(), items::time_value(login.created_at)?);
    Ok(item)
}

fn decode_login(item: &Item) -> Result<Login, StoreError> {
    Ok(Login {
        email: Email::parse(req_str(item, L_EMAIL)?).map_err(|_| malformed("login email"))?,
        name: get_str(item, L_NAME).unwrap_or_default().to_owned(),
        contact_ids: id_set(item, L_CONTACTS, |v| ContactId::parse(v).ok())?,
        account_ids: id_set(item, L_ACCOUNTS, |v| AccountId::parse(v).ok())?,
        via: LoginVia::parse(req_str(item, L_VIA)?).ok_or_else(|| malformed("login via"))?,
        confirmed: flag(item, L_CONFIRMED),
        provisioned: flag(item, L_PROVISIONED),
        created_at: req_time(item, L_CREATED)?,
    })
}

fn encode_request(tenant: &TenantId, r: &RegistrationRequest) -> Result<Item, StoreError> {
    let mut item = items::key(keys::requests_pk(tenant), r.request_id.as_str());
    let mut put = |k: &str, v: AttributeValue| {
        item.insert(k.to_owned(), v);
    };
    put(R_NAME, s(&r.name));
    put(R_EMAIL, s(r.email.as_str()));
    put(R_EMAIL_N, s(r.email.normalized()));
    put(R_PHONE, s(&r.phone));
    put(R_ADDRESS, s(&r.address));
    put(R_DIVISION, s(r.division_id.as_str()));
    if let Some(n) = &r.account_number {
        put(R_ACC_NO, s(n));
    }
    put(R_STATUS, s(r.status.as_str()));
    if let Some(why) = r.status.close_reason() {
        put(R_REASON, s(why.as_str()));
    }
    if let Some(a) = &r.matched_account_id {
        put(R_MATCHED_ACCOUNT, s(a.as_str()));
    }
    if let Some(c) = &r.matched_contact_id {
        put(R_MATCHED_CONTACT, s(c.as_str()));
    }
    if let Some(n) = &r.note {
        put(R_NOTE, s(n));
    }
    put(R_CREATED, items::time_value(r.created_at)?);
    put(R_UPDATED, items::time_value(r.updated_at)?);
    Ok(item)
}

fn decode_status(item: &Item) -> Result<RequestStatus, StoreError> {
    Ok(match req_str(item, R_STATUS)? {
        "open" => RequestStatus::Open,
        "matched" => RequestStatus::Matched,
        "key_sent" => RequestStatus::KeySent,
        "closed" => RequestStatus::Closed(
            CloseReason::parse(req_str(item, R_REASON)?)
                .ok_or_else(|| malformed("close reason"))?,
        ),
        _ => return Err(malformed("request status")),
    })
}

fn decode_request(item: &Item) -> Result<RegistrationRequest, StoreError> {
    let opt = |name: &str| get_str(item, name).map(str::to_owned);
    Ok(RegistrationRequest {
        request_id: RequestId::parse(req_str(item, items::SK)?)
            .map_err(|_| malformed("request id"))?,
        name: opt(R_NAME).unwrap_or_default(),
        email: Email::parse(req_str(item, R_EMAIL)?).map_err(|_| malformed("request email"))?,
        phone: opt(R_PHONE).unwrap_or_default(),
        address: opt(R_ADDRESS).unwrap_or_default(),
        division_id: items::division_id(item, R_DIVISION)?,
        account_number: opt(R_ACC_NO),
        status: decode_status(item)?,
        matched_account_id: opt(R_MATCHED_ACCOUNT)
            .map(|a| AccountId::parse(a).map_err(|_| malformed("matched account")))
            .transpose()?,
        matched_contact_id: opt(R_MATCHED_CONTACT)
            .map(|c| ContactId::parse(c).map_err(|_| malformed("matched contact")))
            .transpose()?,
        note: opt(R_NOTE),
        created_at: req_time(item, R_CREATED)?,
        updated_at: req_time(item, R_UPDATED)?,
    })
}

fn gave_up(what: &str) -> StoreError {
    StoreError::backend(
        "TransactWriteItems",
        Cancelled(format!("{what} kept conflicting")),
    )
}

/// The login with `more` contacts and their accounts added (sorted, each once).
fn with_contacts(mut login: Login, more: &[AddressContact]) -> Login {
    for o in more {
        login.contact_ids.push(o.contact.clone());
        login.account_ids.push(o.account.clone());
    }
    login.contact_ids.sort();
    login.contact_ids.dedup();
    login.account_ids.sort();
    login.account_ids.dedup();
    login
}

impl DynamoStore {
    /// Sends one transaction (one at a time when serialised): `Ok(Err(reasons))` when it was
    /// cancelled.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<CancellationReason>>, StoreError> {
        // A token per attempt: the SDK's own retries of this request (a response lost on
        // the way back) are then answered from the first, not judged again — a registration
        // that went through must not come back as `TokenUsed`.
        let token: String = {
            use rand::Rng as _;
            let mut rng = rand::rng();
            (0..32)
                .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
                .collect()
        };
        let request = self
            .client
            .transact_write_items()
            .client_request_token(token)
            .set_transact_items(Some(items));
        let sent = {
            let _one_at_a_time = self.transaction_guard().await;
            request.send().await
        };
        match sent {
            Ok(_) => Ok(Ok(())),
            Err(e) => Ok(Err(cancellation(e)?)),
        }
    }

    fn put_new(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn exists_check(&self, key: Item) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn accept_item(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        division: &DivisionId,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self
            .state_update(tenant, contact, division)
            .update_expression("SET #st = :accepted")
            .expression_attribute_names("#st", items::STATUS)
            .expression_attribute_values(":accepted", s(PortalStatus::Accepted.as_str()))
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Gives an account item written before keys existed its key, once. `None`: no such
    /// account.
    async fn ensure_portal_key(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<StoredAccount>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::account_pk(tenant, account),
                keys::ACCOUNT_SK,
            )))
            .update_expression("SET #k = if_not_exists(#k, :k)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#k", items::PORTAL_KEY)
            .expression_attribute_values(":k", s(PortalKey::generate().as_str()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) if ops::condition_failed(&e) => return Ok(None),
            Err(e) => return Err(StoreError::backend("UpdateItem", e)),
        };
        let stored = StoredAccount::decode(&item)?;
        if let Some(k) = &stored.key {
            self.copy_portal_key(tenant, account, &stored.division, &stored.contacts, k)
                .await?;
        }
        Ok(Some(stored))
    }

    /// The account item, strongly consistent, with a key (given one if it had none).
    async fn account_with_key(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<(StoredAccount, PortalKey)>, StoreError> {
        let Some(item) = self
            .get_item(
                "GetItem",
                items::key(keys::account_pk(tenant, account), keys::ACCOUNT_SK),
            )
            .await?
        else {
            return Ok(None);
        };
        let mut stored = StoredAccount::decode(&item)?;
        if stored.key.is_none() {
            match self.ensure_portal_key(tenant, account).await? {
                Some(s) => stored = s,
                None => return Ok(None),
            }
        }
        let key = stored
            .key
            .clone()
            .ok_or_else(|| malformed("account item without a key"))?;
        Ok(Some((stored, key)))
    }

    /// Copies the account's key onto its contacts' sync items (those still on it).
    async fn copy_portal_key(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        division: &DivisionId,
        contacts: &[ContactId],
        key: &PortalKey,
    ) -> Result<(), StoreError> {
        // Futures built up front (not in a stream closure) keep the `Send` bound provable.
        let updates: Vec<_> = contacts
            .iter()
            .map(|c| async move {
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(items::key(
                        keys::partition_pk(tenant, division, keys::shard_of(c)),
                        keys::contact_sk(c),
                    )))
                    .update_expression("SET #k = :k")
                    .condition_expression("attribute_exists(pk) AND #acc = :acc")
                    .expression_attribute_names("#k", items::PORTAL_KEY)
                    .expression_attribute_names("#acc", items::ACCOUNT)
                    .expression_attribute_values(":k", s(key.as_str()))
                    .expression_attribute_values(":acc", s(account.as_str()))
                    .send()
                    .await;
                match result {
                    // A stale list entry: the contact is gone or on another account.
                    Ok(_) => Ok(()),
                    Err(e) if ops::condition_failed(&e) => Ok(()),
                    Err(e) => Err(StoreError::backend("UpdateItem", e)),
                }
            })
            .collect();
        futures::stream::iter(updates)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }

    /// The tenant's contacts with this address: one Query of the address index (eventually
    /// consistent; each write that relies on an entry checks its sync item first).
    async fn contacts_with_address(
        &self,
        tenant: &TenantId,
        email: &Email,
    ) -> Result<Vec<AddressContact>, StoreError> {
        let (projection, mut names) = items::projection(&[items::PK, items::SK, items::ACCOUNT]);
        names.insert("#gpk".into(), items::GSI1PK.into());
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(super::GSI1)
            .key_condition_expression("#gpk = :gpk")
            .projection_expression(projection)
            .set_expression_attribute_names(Some(names))
            .expression_attribute_values(
                ":gpk",
                s(keys::address_gsi_pk(tenant, &email.normalized())),
            );
        let mut found = Vec::new();
        ops::query_all(query, |item| {
            // Only contact sync items carry this index's keys; anything else is not ours.
            let Some(division) = keys::division_of_partition_pk(tenant, req_str(item, items::PK)?)
            else {
                return Ok(());
            };
            let contact = req_str(item, items::SK)?
                .strip_prefix(keys::CONTACT_SK_PREFIX)
                .and_then(|c| ContactId::parse(c).ok())
                .ok_or_else(|| malformed("contact sort key"))?;
            found.push(AddressContact {
                contact,
                division: DivisionId::parse(division).map_err(|_| malformed("division id"))?,
                account: items::account_id(item, items::ACCOUNT)?,
            });
            Ok(())
        })
        .await?;
        found.sort_by(|a, b| a.contact.cmp(&b.contact));
        found.dedup_by(|a, b| a.contact == b.contact);
        Ok(found)
    }

    /// The two transaction items that accept another contact of the address: a check that
    /// its sync item still carries the address (the index may lag a sync), and its state.
    fn accept_address_items(
        &self,
        tenant: &TenantId,
        email: &Email,
        other: &AddressContact,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::partition_pk(tenant, &other.division, keys::shard_of(&other.contact)),
                keys::contact_sk(&other.contact),
            )))
            .condition_expression("#gpk = :gpk")
            .expression_attribute_names("#gpk", items::GSI1PK)
            .expression_attribute_values(
                ":gpk",
                s(keys::address_gsi_pk(tenant, &email.normalized())),
            )
            .build()
            .map_err(build_err)?;
        Ok([
            TransactWriteItem::builder().condition_check(check).build(),
            self.accept_item(tenant, &other.contact, &other.division)?,
        ])
    }

    /// `ADD`s contacts and accounts to an existing login (the login must exist).
    fn login_add_item(
        &self,
        tenant: &TenantId,
        email: &Email,
        contacts: &[ContactId],
        accounts: &[AccountId],
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(login_key(tenant, email)))
            .update_expression("ADD #c :c, #a :a")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#c", L_CONTACTS)
            .expression_attribute_names("#a", L_ACCOUNTS)
            .expression_attribute_values(
                ":c",
                AttributeValue::Ss(contacts.iter().map(ToString::to_string).collect()),
            )
            .expression_attribute_values(
                ":a",
                AttributeValue::Ss(accounts.iter().map(ToString::to_string).collect()),
            )
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Accepts `others` (contacts of the login's address past what the registration's own
    /// transaction held) in transactions of [`ADDRESS_CONTACTS_PER_FOLLOW_UP`], each adding
    /// its contacts to the login in the same write. A contact whose sync item no longer has
    /// the address is left out. Answers the contacts and accounts accepted.
    async fn accept_address_rest(
        &self,
        tenant: &TenantId,
        email: &Email,
        others: &[AddressContact],
    ) -> Result<Vec<AddressContact>, StoreError> {
        let mut accepted = Vec::new();
        for chunk in others.chunks(ADDRESS_CONTACTS_PER_FOLLOW_UP) {
            let mut chunk = chunk.to_vec();
            let mut round = 0;
            loop {
                if chunk.is_empty() {
                    break;
                }
                let contacts: Vec<ContactId> = chunk.iter().map(|o| o.contact.clone()).collect();
                let accounts: Vec<AccountId> = chunk.iter().map(|o| o.account.clone()).collect();
                let mut items = vec![self.login_add_item(tenant, email, &contacts, &accounts)?];
                for o in &chunk {
                    items.extend(self.accept_address_items(tenant, email, o)?);
                }
                let reasons = match self.transact(items).await? {
                    Ok(()) => {
                        accepted.append(&mut chunk);
                        break;
                    }
                    Err(reasons) => reasons,
                };
                let stale: Vec<usize> = (0..chunk.len())
                    .filter(|i| reason_code(&reasons, 1 + 2 * i) == CONDITION_FAILED)
                    .collect();
                if !stale.is_empty() {
                    chunk = chunk
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !stale.contains(i))
                        .map(|(_, o)| o)
                        .collect();
                    continue;
                }
                if !all_retryable(&reasons) || round + 1 >= MAX_REGISTER_ROUNDS {
                    return Err(if all_retryable(&reasons) {
                        gave_up("accepting the address's contacts")
                    } else {
                        unexpected(&reasons)
                    });
                }
                tokio::time::sleep(jitter(round)).await;
                round += 1;
            }
        }
        Ok(accepted)
    }

    async fn register_invitation(
        &self,
        tenant: &TenantId,
        reg: &NewRegistration,
        campaign: &CampaignId,
        now: OffsetDateTime,
    ) -> Result<RegisterOutcome, StoreError> {
        let Some(contact) = &reg.contact_id else {
            return Ok(RegisterOutcome::Missing);
        };
        let login_key = login_key(tenant, &reg.email);
        let locator_pk = keys::locator_pk(tenant, contact);
        let found = batch::get_all(
            &self.client,
            &self.table,
            vec![
                items::key(locator_pk.clone(), keys::LOCATOR_SK),
                login_key.clone(),
            ],
            None,
        )
        .await?;
        let mut division = None;
        let mut existing = None;
        for item in &found {
            if get_str(item, items::PK) == Some(locator_pk.as_str()) {
                division = Some(items::division_id(item, items::DIVISION)?);
            } else {
                existing = Some(decode_login(item)?);
            }
        }
        let Some(division) = division else {
            return Ok(RegisterOutcome::Missing);
        };
        // Every other contact of the tenant with the address is accepted with this one.
        let mut others: Vec<AddressContact> = self
            .contacts_with_address(tenant, &reg.email)
            .await?
            .into_iter()
            .filter(|o| &o.contact != contact)
            .collect();
        let mut rest = others.split_off(others.len().min(ADDRESS_CONTACTS_PER_TRANSACTION));
        let invitation_key = items::key(campaign_pk(tenant, campaign), invitation_sk(contact));
        let now_v = items::time_value(now)?;
        for round in 0..MAX_REGISTER_ROUNDS {
            let consume = Update::builder()
                .table_name(&self.table)
                .set_key(Some(invitation_key.clone()))
                .update_expression("SET #used = :now")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(#used)")
                .expression_attribute_names("#used", TOKEN_USED_AT)
                .expression_attribute_values(":now", now_v.clone())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_err)?;
            let sync_key = items::key(
                keys::partition_pk(tenant, &division, keys::shard_of(contact)),
                keys::contact_sk(contact),
            );
            let mut contact_ids = vec![contact.clone()];
            let mut account_ids = vec![reg.account_id.clone()];
            for o in &others {
                contact_ids.push(o.contact.clone());
                account_ids.push(o.account.clone());
            }
            let (login_item, outcome) = match &existing {
                None => {
                    let mut login = Login {
                        email: reg.email.clone(),
                        name: reg.name.clone(),
                        contact_ids,
                        account_ids,
                        via: LoginVia::Invitation,
                        confirmed: true,
                        provisioned: false,
                        created_at: now,
                    };
                    login.contact_ids.sort();
                    login.contact_ids.dedup();
                    login.account_ids.sort();
                    login.account_ids.dedup();
                    (
                        self.put_new(encode_login(tenant, &login)?)?,
                        RegisterOutcome::NewLogin(login),
                    )
                }
                Some(old) => {
                    let item =
                        self.login_add_item(tenant, &reg.email, &contact_ids, &account_ids)?;
                    let mut login = old.clone();
                    login.contact_ids.extend(contact_ids);
                    login.contact_ids.sort();
                    login.contact_ids.dedup();
                    login.account_ids.extend(account_ids);
                    login.account_ids.sort();
                    login.account_ids.dedup();
                    (item, RegisterOutcome::ExistingLogin(login))
                }
            };
            let mut items = vec![
                TransactWriteItem::builder().update(consume).build(),
                self.exists_check(sync_key)?,
                self.accept_item(tenant, contact, &division)?,
                login_item,
            ];
            for o in &others {
                items.extend(self.accept_address_items(tenant, &reg.email, o)?);
            }
            let reasons = match self.transact(items).await? {
                Ok(()) => {
                    if rest.is_empty() {
                        return Ok(outcome);
                    }
                    // More contacts share the address than one transaction holds: the rest
                    // are accepted right after, each chunk with its login update.
                    let accepted = self
                        .accept_address_rest(tenant, &reg.email, &std::mem::take(&mut rest))
                        .await?;
                    return Ok(match outcome {
                        RegisterOutcome::NewLogin(login) => {
                            RegisterOutcome::NewLogin(with_contacts(login, &accepted))
                        }
                        RegisterOutcome::ExistingLogin(login) => {
                            RegisterOutcome::ExistingLogin(with_contacts(login, &accepted))
                        }
                        other => other,
                    });
                }
                Err(reasons) => reasons,
            };
            if reason_code(&reasons, 0) == CONDITION_FAILED {
                let used = match old_item(&reasons, 0) {
                    Some(_) => true,
                    // An emulator that returns no copy: read it.
                    None => self
                        .get_item("GetItem", invitation_key.clone())
                        .await?
                        .is_some(),
                };
                return Ok(if used {
                    RegisterOutcome::TokenUsed
                } else {
                    RegisterOutcome::Missing
                });
            }
            if reason_code(&reasons, 1) == CONDITION_FAILED {
                return Ok(RegisterOutcome::Missing);
            }
            // Another contact whose sync item no longer has the address (the index lagged
            // a sync): leave it out and try again.
            let stale: Vec<usize> = (0..others.len())
                .filter(|i| reason_code(&reasons, 4 + 2 * i) == CONDITION_FAILED)
                .collect();
            if !stale.is_empty() {
                others = others
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !stale.contains(i))
                    .map(|(_, o)| o)
                    .collect();
                continue;
            }
            if reason_code(&reasons, 3) == CONDITION_FAILED {
                // Another registration made the login first: add to it.
                existing = match old_item(&reasons, 3) {
                    Some(item) => Some(decode_login(item)?),
                    None => self
                        .get_item("GetItem", login_key.clone())
                        .await?
                        .map(|i| decode_login(&i))
                        .transpose()?,
                };
                continue;
            }
            if !all_retryable(&reasons) {
                return Err(unexpected(&reasons));
            }
            tokio::time::sleep(jitter(round)).await;
        }
        Err(gave_up("registration"))
    }

    async fn register_with_key(
        &self,
        tenant: &TenantId,
        reg: &NewRegistration,
        confirm_token_hash: &[u8; 32],
        confirm_expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<RegisterOutcome, StoreError> {
        let login = Login {
            email: reg.email.clone(),
            name: reg.name.clone(),
            contact_ids: reg.contact_id.iter().cloned().collect(),
            account_ids: vec![reg.account_id.clone()],
            via: LoginVia::PortalKey,
            confirmed: false,
            provisioned: false,
            created_at: now,
        };
        let mut confirmation = items::key(
            keys::confirmation_pk(tenant, confirm_token_hash),
            keys::CONFIRMATION_SK,
        );
        confirmation.insert(C_LOGIN.into(), s(reg.email.normalized()));
        confirmation.insert(C_EXPIRES.into(), items::time_value(confirm_expires_at)?);
        confirmation.insert(C_USED.into(), AttributeValue::Bool(false));
        confirmation.insert(
            super::TTL_ATTRIBUTE.into(),
            epoch(confirm_expires_at + CONFIRMATION_RETENTION),
        );
        let account_key = items::key(keys::account_pk(tenant, &reg.account_id), keys::ACCOUNT_SK);
        for round in 0..MAX_REGISTER_ROUNDS {
            let reasons = match self
                .transact(vec![
                    self.put_new(encode_login(tenant, &login)?)?,
                    self.put_new(confirmation.clone())?,
                    self.exists_check(account_key.clone())?,
                ])
                .await?
            {
                Ok(()) => return Ok(RegisterOutcome::NewLogin(login)),
                Err(reasons) => reasons,
            };
            if reason_code(&reasons, 0) == CONDITION_FAILED {
                let old = match old_item(&reasons, 0) {
                    Some(item) => Some(item.clone()),
                    None => {
                        self.get_item("GetItem", login_key(tenant, &reg.email))
                            .await?
                    }
                };
                match old {
                    Some(item) => return Ok(RegisterOutcome::ExistingLogin(decode_login(&item)?)),
                    None => continue,
                }
            }
            if reason_code(&reasons, 2) == CONDITION_FAILED {
                return Ok(RegisterOutcome::Missing);
            }
            if reason_code(&reasons, 1) == CONDITION_FAILED || !all_retryable(&reasons) {
                // A confirmation token drawn twice: 256 random bits, so a bug.
                return Err(unexpected(&reasons));
            }
            tokio::time::sleep(jitter(round)).await;
        }
        Err(gave_up("registration"))
    }

    /// A confirmation link and its login.
    async fn confirmation(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
    ) -> Result<Option<(Login, OffsetDateTime, bool)>, StoreError> {
        let Some(conf) = self
            .get_item(
                "GetItem",
                items::key(
                    keys::confirmation_pk(tenant, token_hash),
                    keys::CONFIRMATION_SK,
                ),
            )
            .await?
        else {
            return Ok(None);
        };
        let login_pk = keys::login_pk(tenant, req_str(&conf, C_LOGIN)?);
        let Some(login) = self
            .get_item("GetItem", items::key(login_pk, keys::LOGIN_SK))
            .await?
        else {
            // Logins are never deleted: a link without one is not a link.
            return Ok(None);
        };
        Ok(Some((
            decode_login(&login)?,
            req_time(&conf, C_EXPIRES)?,
            flag(&conf, C_USED),
        )))
    }

    /// A page of requests newest first, from `before` (exclusive).
    async fn request_page(
        &self,
        tenant: &TenantId,
        filter: &RequestFilter,
        before: Option<RequestId>,
        limit: usize,
    ) -> Result<Page<RegistrationRequest>, StoreError> {
        let mut values = HashMap::from([(":pk".to_owned(), s(keys::requests_pk(tenant)))]);
        let mut names = HashMap::new();
        let key_condition = match &before {
            Some(b) => {
                values.insert(":before".to_owned(), s(b.as_str()));
                "pk = :pk AND sk < :before"
            }
            None => "pk = :pk",
        };
        let mut conditions = Vec::new();
        if let Some(st) = filter.status {
            conditions.push("#st = :st");
            names.insert("#st".to_owned(), R_STATUS.to_owned());
            values.insert(":st".to_owned(), s(st));
        }
        if let Some(d) = &filter.division_id {
            conditions.push("#div = :div");
            names.insert("#div".to_owned(), R_DIVISION.to_owned());
            values.insert(":div".to_owned(), s(d.as_str()));
        }
        let filtered = !conditions.is_empty();
        let mut found = Vec::with_capacity(limit + 1);
        let mut start: Option<Item> = None;
        let mut budget = ops::ReadBudget::new(filter.max_examined);
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition)
                .set_filter_expression(filtered.then(|| conditions.join(" AND ")))
                .set_expression_attribute_names((!names.is_empty()).then(|| names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .set_limit(budget.limit(filtered, limit + 1 - found.len()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::backend("Query", e))?;
            for item in page.items() {
                let r = decode_request(item)?;
                if filter.matches(&r) {
                    found.push(r);
                }
            }
            start = page.last_evaluated_key;
            budget.spend(page.scanned_count);
            if start.is_none() || found.len() > limit || budget.is_spent() {
                break;
            }
        }
        let next_cursor = if found.len() > limit {
            found.truncate(limit);
            found
                .last()
                .map(|r| keys::encode_request_cursor(&r.request_id))
        } else {
            // Out of items to examine: go on before the last one read.
            match &start {
                None => None,
                Some(key) => {
                    let id = items::get_str(key, items::SK)
                        .and_then(|sk| RequestId::parse(sk).ok())
                        .ok_or_else(|| items::malformed("request key"))?;
                    Some(keys::encode_request_cursor(&id))
                }
            }
        };
        Ok(Page {
            items: found,
            next_cursor,
        })
    }
}

#[async_trait]
impl RegistrationStore for DynamoStore {
    async fn get_portal_key(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<PortalKey>, StoreError> {
        Ok(self
            .account_with_key(tenant, account)
            .await?
            .map(|(_, key)| key))
    }

    async fn set_portal_key(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        key: &PortalKey,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::account_pk(tenant, account),
                keys::ACCOUNT_SK,
            )))
            .update_expression("SET #k = :k")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#k", items::PORTAL_KEY)
            .expression_attribute_values(":k", s(key.as_str()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) if ops::condition_failed(&e) => return Ok(false),
            Err(e) => return Err(StoreError::backend("UpdateItem", e)),
        };
        let stored = StoredAccount::decode(&item)?;
        self.copy_portal_key(tenant, account, &stored.division, &stored.contacts, key)
            .await?;
        Ok(true)
    }

    async fn find_account_by_number(
        &self,
        tenant: &TenantId,
        number: &str,
    ) -> Result<Option<AccountKey>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(super::GSI1)
            .key_condition_expression("#gpk = :gpk")
            .expression_attribute_names("#gpk", items::GSI1PK)
            .expression_attribute_values(":gpk", s(keys::account_number_gsi_pk(tenant, number)));
        let mut hits = Vec::new();
        ops::query_all(query, |item| {
            let pk = req_str(item, items::PK)?;
            // Only account items carry this index's keys; anything else is not ours.
            if let Some(id) = keys::account_of_pk(tenant, pk) {
                hits.push(AccountId::parse(id).map_err(|_| malformed("account id"))?);
            }
            Ok(())
        })
        .await?;
        for account_id in hits {
            // The index lags writes: the account item itself decides.
            let Some((stored, portal_key)) = self.account_with_key(tenant, &account_id).await?
            else {
                continue;
            };
            if stored.number.as_deref() != Some(number) {
                continue;
            }
            let (projection, names) = items::projection(&[items::SK, items::ACCOUNT, items::EMAIL]);
            let found = batch::get_all(
                &self.client,
                &self.table,
                stored
                    .contacts
                    .iter()
                    .map(|c| {
                        items::key(
                            keys::partition_pk(tenant, &stored.division, keys::shard_of(c)),
                            keys::contact_sk(c),
                        )
                    })
                    .collect(),
                Some((projection, names)),
            )
            .await?;
            let mut emails: HashMap<ContactId, Option<Email>> = HashMap::new();
            for item in &found {
                if get_str(item, items::ACCOUNT) != Some(account_id.as_str()) {
                    continue;
                }
                let id = req_str(item, items::SK)?
                    .strip_prefix(keys::CONTACT_SK_PREFIX)
                    .and_then(|c| ContactId::parse(c).ok())
                    .ok_or_else(|| malformed("contact sort key"))?;
                let email = get_str(item, items::EMAIL)
                    .map(|e| Email::parse(e).map_err(|_| malformed("bad email")))
                    .transpose()?;
                emails.insert(id, email);
            }
            let contacts = stored
                .contacts
                .iter()
                .filter_map(|c| emails.remove(c).map(|e| (c.clone(), e)))
                .collect();
            return Ok(Some(AccountKey {
                account_id,
                division_id: stored.division,
                number: number.to_owned(),
                name: stored.name.unwrap_or_default(),
                portal_key,
                contacts,
            }));
        }
        Ok(None)
    }

    async fn find_token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRef>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(super::GSI1)
            .key_condition_expression("#gpk = :gpk")
            .expression_attribute_names("#gpk", items::GSI1PK)
            .expression_attribute_values(":gpk", s(keys::token_gsi_pk(token_hash)))
            .send()
            .await
            .map_err(|e| StoreError::backend("Query", e))?;
        let Some(item) = page.items().first() else {
            return Ok(None);
        };
        let (tenant, campaign) = keys::campaign_of_pk(req_str(item, items::PK)?)
            .ok_or_else(|| malformed("invitation partition key"))?;
        Ok(Some(TokenRef {
            tenant: TenantId::parse(tenant).map_err(|_| malformed("tenant id"))?,
            campaign_id: CampaignId::parse(campaign).map_err(|_| malformed("campaign id"))?,
            contact_id: invitation_contact(item)?,
            used_at: time_attr(item, TOKEN_USED_AT)?,
        }))
    }

    async fn register(
        &self,
        tenant: &TenantId,
        registration: &NewRegistration,
        now: OffsetDateTime,
    ) -> Result<RegisterOutcome, StoreError> {
        match &registration.via {
            Via::Invitation { campaign_id } => {
                self.register_invitation(tenant, registration, campaign_id, now)
                    .await
            }
            Via::PortalKey {
                confirm_token_hash,
                confirm_expires_at,
            } => {
                self.register_with_key(
                    tenant,
                    registration,
                    confirm_token_hash,
                    *confirm_expires_at,
                    now,
                )
                .await
            }
        }
    }

    async fn get_login(
        &self,
        tenant: &TenantId,
        email: &Email,
    ) -> Result<Option<Login>, StoreError> {
        self.get_item("GetItem", login_key(tenant, email))
            .await?
            .map(|i| decode_login(&i))
            .transpose()
    }

    async fn mark_provisioned(&self, tenant: &TenantId, email: &Email) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(login_key(tenant, email)))
            .update_expression("SET #p = :t")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#p", L_PROVISIONED)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if ops::condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::backend("UpdateItem", e)),
        }
    }

    async fn confirm_login(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<ConfirmOutcome, StoreError> {
        let conf_key = items::key(
            keys::confirmation_pk(tenant, token_hash),
            keys::CONFIRMATION_SK,
        );
        let now_v = items::time_value(now)?;
        for round in 0..MAX_REGISTER_ROUNDS {
            let Some((login, expires_at, used)) = self.confirmation(tenant, token_hash).await?
            else {
                return Ok(ConfirmOutcome::Unknown);
            };
            if used {
                return Ok(ConfirmOutcome::AlreadyConfirmed(login));
            }
            if now >= expires_at {
                return Ok(ConfirmOutcome::Expired);
            }
            let locators = batch::get_all(
                &self.client,
                &self.table,
                login
                    .contact_ids
                    .iter()
                    .map(|c| items::key(keys::locator_pk(tenant, c), keys::LOCATOR_SK))
                    .collect(),
                None,
            )
            .await?;
            let mut accept = Vec::new();
            for loc in &locators {
                let contact = keys::contact_of_locator_pk(tenant, req_str(loc, items::PK)?)
                    .and_then(|c| ContactId::parse(c).ok())
                    .ok_or_else(|| malformed("locator key"))?;
                accept.push((contact, items::division_id(loc, items::DIVISION)?));
            }
            let rest = accept.split_off(accept.len().min(CONFIRM_CONTACTS_PER_TRANSACTION));
            let follow = Update::builder()
                .table_name(&self.table)
                .set_key(Some(conf_key.clone()))
                .update_expression("SET #used = :t")
                .condition_expression("attribute_exists(pk) AND #used = :f AND #exp > :now")
                .expression_attribute_names("#used", C_USED)
                .expression_attribute_names("#exp", C_EXPIRES)
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":f", AttributeValue::Bool(false))
                .expression_attribute_values(":now", now_v.clone())
                .build()
                .map_err(build_err)?;
            let confirm = Update::builder()
                .table_name(&self.table)
                .set_key(Some(login_key(tenant, &login.email)))
                .update_expression("SET #c = :t")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#c", L_CONFIRMED)
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .build()
                .map_err(build_err)?;
            let mut write = vec![
                TransactWriteItem::builder().update(follow).build(),
                TransactWriteItem::builder().update(confirm).build(),
            ];
            for (contact, division) in &accept {
                write.push(self.accept_item(tenant, contact, division)?);
            }
            let reasons = match self.transact(write).await? {
                Ok(()) => {
                    // Only a login with more contacts than a transaction holds has a rest.
                    for (contact, division) in &rest {
                        self.client
                            .update_item()
                            .table_name(&self.table)
                            .set_key(Some(items::key(
                                keys::partition_pk(tenant, division, keys::shard_of(contact)),
                                keys::state_sk(contact),
                            )))
                            .update_expression("SET #st = :accepted")
                            .expression_attribute_names("#st", items::STATUS)
                            .expression_attribute_values(
                                ":accepted",
                                s(PortalStatus::Accepted.as_str()),
                            )
                            .send()
                            .await
                            .map_err(|e| StoreError::backend("UpdateItem", e))?;
                    }
                    let mut login = login;
                    login.confirmed = true;
                    return Ok(ConfirmOutcome::Confirmed(login));
                }
                Err(reasons) => reasons,
            };
            // The link was followed (or expired) meanwhile: the next read says which.
            if reason_code(&reasons, 0) == CONDITION_FAILED {
                continue;
            }
            if !all_retryable(&reasons) {
                return Err(unexpected(&reasons));
            }
            tokio::time::sleep(jitter(round)).await;
        }
        Err(gave_up("confirmation"))
    }

    async fn find_confirmation(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
    ) -> Result<Option<(Login, OffsetDateTime, bool)>, StoreError> {
        self.confirmation(tenant, token_hash).await
    }

    async fn hit_rate_limit(
        &self,
        tenant: &TenantId,
        key: &str,
        window_start: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::rate_limit_pk(tenant, key),
                match items::time_value(window_start)? {
                    AttributeValue::S(v) => v,
                    _ => return Err(malformed("window start")),
                },
            )))
            .update_expression("ADD #n :one SET #exp = :exp, #ttl = :ttl")
            .expression_attribute_names("#n", RL_COUNT)
            .expression_attribute_names("#exp", RL_EXPIRES)
            .expression_attribute_names("#ttl", super::TTL_ATTRIBUTE)
            .expression_attribute_values(":one", items::num(1))
            .expression_attribute_values(":exp", items::time_value(expires_at)?)
            .expression_attribute_values(":ttl", epoch(expires_at))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::backend("UpdateItem", e))?;
        let n = get_num(&out.attributes.unwrap_or_default(), RL_COUNT)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn rate_limit_count(
        &self,
        tenant: &TenantId,
        key: &str,
        window_start: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let sk = match items::time_value(window_start)? {
            AttributeValue::S(v) => v,
            _ => return Err(malformed("window start")),
        };
        let Some(item) = self
            .get_item("GetItem", items::key(keys::rate_limit_pk(tenant, key), sk))
            .await?
        else {
            return Ok(0);
        };
        // TTL deletes lazily: an expired counter may still be there.
        if time_attr(&item, RL_EXPIRES)?.is_none_or(|exp| now >= exp) {
            return Ok(0);
        }
        Ok(u32::try_from(get_num(&item, RL_COUNT)?).unwrap_or(u32::MAX))
    }

    async fn put_request(
        &self,
        tenant: &TenantId,
        request: &RegistrationRequest,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode_request(tenant, request)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if ops::condition_failed(&e) => Err(StoreError::backend(
                "PutItem",
                Cancelled(format!("request {} exists", request.request_id)),
            )),
            Err(e) => Err(StoreError::backend("PutItem", e)),
        }
    }

    async fn get_request(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<Option<RegistrationRequest>, StoreError> {
        self.get_item(
            "GetItem",
            items::key(keys::requests_pk(tenant), id.as_str()),
        )
        .await?
        .map(|i| decode_request(&i))
        .transpose()
    }

    async fn list_requests(
        &self,
        tenant: &TenantId,
        filter: &RequestFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<RegistrationRequest>, StoreError> {
        let before = cursor.map(keys::decode_request_cursor).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
        self.request_page(tenant, filter, before, limit).await
    }

    async fn update_request(
        &self,
        tenant: &TenantId,
        request: &RegistrationRequest,
        expected: RequestStatus,
    ) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode_request(tenant, request)?))
            .expression_attribute_names("#st", R_STATUS)
            .expression_attribute_values(":expected", s(expected.as_str()));
        put = match expected.close_reason() {
            Some(why) => put
                .condition_expression("#st = :expected AND #why = :why")
                .expression_attribute_names("#why", R_REASON)
                .expression_attribute_values(":why", s(why.as_str())),
            None => put.condition_expression("#st = :expected"),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if ops::condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::backend("PutItem", e)),
        }
    }

    async fn open_requests_for(
        &self,
        tenant: &TenantId,
        email: &Email,
    ) -> Result<Vec<RegistrationRequest>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .filter_expression("#en = :e AND #st <> :closed")
            .expression_attribute_names("#en", R_EMAIL_N)
            .expression_attribute_names("#st", R_STATUS)
            .expression_attribute_values(":pk", s(keys::requests_pk(tenant)))
            .expression_attribute_values(":e", s(email.normalized()))
            .expression_attribute_values(":closed", s("closed"))
            .scan_index_forward(false)
            .consistent_read(true);
        let mut out = Vec::new();
        ops::query_all(query, |item| {
            let r = decode_request(item)?;
            if !r.status.is_closed() && r.email.normalized() == email.normalized() {
                out.push(r);
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    async fn add_other_email(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        email: &Email,
    ) -> Result<bool, StoreError> {
        let Some(division) = self.locate(tenant, contact).await? else {
            return Ok(false);
        };
        let update = self
            .state_update(tenant, contact, &division)
            .update_expression("ADD #oe :e")
            .expression_attribute_names("#oe", OTHER_EMAILS)
            .expression_attribute_values(":e", AttributeValue::Ss(vec![email.to_string()]))
            .build()
            .map_err(build_err)?;
        Ok(self
            .update_state(tenant, contact, &division, update)
            .await?
            .is_some())
    }
}
