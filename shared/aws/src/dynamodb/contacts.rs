//! Counts, lists, contact lookups and the system-kept state of a contact.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use futures::{FutureExt, StreamExt, TryStreamExt};
use time::OffsetDateTime;

use super::items::{self, s, Item, Merger};
use super::keys::{self, SHARDS};
use super::{batch, ops};
use super::{values, DynamoStore};
use portal_core::domain::{
    classify, AddressTally, ContactId, ContactRecord, Counts, DivisionId, FilterValues, Group,
    PortalStatus, TenantId,
};
use portal_core::ports::{
    ContactQuery, ContactStateStore, ContactStore, ListQuery, Page, StoreError, MAX_FAN_OUT_PAGE,
};

/// The partition after shard `shard` of the query's division `division_index`.
fn next_partition(division_index: usize, shard: u8) -> (usize, u8) {
    if shard + 1 == SHARDS {
        (division_index + 1, 0)
    } else {
        (division_index, shard + 1)
    }
}

/// Partition Queries in flight at once for one count.
const COUNT_CONCURRENCY: usize = 16;
/// Bounds of the `Limit` of one list Query (items, i.e. about two per contact with state).
const LIST_PAGE_MIN: i32 = 100;
const LIST_PAGE_MAX: i32 = 1000;

impl DynamoStore {
    /// Whether `c` passes the query's filters, and what a send would do with it.
    fn classify(
        query: &ContactQuery,
        suppressed: &HashSet<String>,
        c: &ContactRecord,
    ) -> Option<portal_core::domain::SendOutcome> {
        if !query.filters.matches(c) {
            return None;
        }
        let sup = c
            .email
            .as_ref()
            .is_some_and(|e| suppressed.contains(&e.normalized()));
        Some(classify(c, query.now, sup, query.limit_to_uninvited))
    }

    /// Counts one (division, shard) partition, folding page by page.
    async fn count_partition(
        &self,
        tenant: &TenantId,
        division: &DivisionId,
        shard: u8,
        query: &ContactQuery,
        suppressed: &HashSet<String>,
    ) -> Result<(Counts, AddressTally), StoreError> {
        let (projection, names) = items::projection(items::COUNT_PROJECTION);
        let mut counts = Counts::default();
        let mut addresses = AddressTally::default();
        let mut merger = Merger::new(division.clone());
        let mut fold = |c: ContactRecord| {
            if let Some(outcome) = Self::classify(query, suppressed, &c) {
                counts.add(&c, outcome);
                addresses.add(&c, outcome, query.now);
            }
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::partition_pk(tenant, division, shard)))
            .projection_expression(projection.clone())
            .set_expression_attribute_names(Some(names.clone()));
        ops::query_all(query, |item| {
            if let Some(c) = merger.push(item)? {
                fold(c);
            }
            Ok(())
        })
        .await?;
        if let Some(c) = merger.finish() {
            fold(c);
        }
        Ok((counts, addresses))
    }

    /// The division a contact lives in, from its locator (strongly consistent).
    pub(super) async fn locate(
        &self,
        tenant: &TenantId,
        id: &ContactId,
    ) -> Result<Option<DivisionId>, StoreError> {
        self.get_item(
            "GetItem",
            items::key(keys::locator_pk(tenant, id), keys::LOCATOR_SK),
        )
        .await?
        .map(|loc| items::division_id(&loc, items::DIVISION))
        .transpose()
    }

    /// Runs `update` on the state item of a contact of `division`, atomically with a check
    /// that its sync item exists (a contact deleted meanwhile must not get an orphan state). `Ok(None)` when the contact does not exist; `Ok(Some(false))` when the
    /// update's own condition failed.
    pub(super) async fn update_state(
        &self,
        tenant: &TenantId,
        id: &ContactId,
        division: &DivisionId,
        update: Update,
    ) -> Result<Option<bool>, StoreError> {
        let pk = keys::partition_pk(tenant, division, keys::shard_of(id));
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(pk, keys::contact_sk(id))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| StoreError::backend("TransactWriteItems", e))?;
        let request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().update(update).build());
        let result = {
            let _one_at_a_time = self.transaction_guard().await;
            request.send().await
        };
        match result {
            Ok(_) => Ok(Some(true)),
            Err(e) => {
                let reasons = ops::cancellation(e)?;
                let failed: Vec<bool> = reasons
                    .iter()
                    .map(|r| r.code() == Some(ops::CONDITION_FAILED))
                    .collect();
                match failed.as_slice() {
                    [true, ..] => Ok(None),
                    [false, true] => Ok(Some(false)),
                    _ => Err(StoreError::backend(
                        "TransactWriteItems",
                        super::campaigns::Cancelled(format!("{reasons:?}")),
                    )),
                }
            }
        }
    }

    pub(super) fn state_update(
        &self,
        tenant: &TenantId,
        id: &ContactId,
        division: &DivisionId,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::partition_pk(tenant, division, keys::shard_of(id)),
                keys::state_sk(id),
            )))
    }
}

#[async_trait]
impl ContactStore for DynamoStore {
    async fn count_contacts(
        &self,
        tenant: &TenantId,
        query: &ContactQuery,
    ) -> Result<Counts, StoreError> {
        let suppressed = self.suppressed_set(tenant).await?;
        let suppressed = &suppressed;
        // Futures built up front (not in a stream closure) keep the `Send` bound provable.
        let partitions: Vec<_> = query
            .division_ids
            .iter()
            .flat_map(|d| (0..SHARDS).map(move |shard| (d, shard)))
            .map(|(d, shard)| {
                self.count_partition(tenant, d, shard, query, suppressed)
                    .boxed()
            })
            .collect();
        // An address's contacts may sit in any partition: the tally is merged across all of
        // them before `duplicate_address` is read.
        let (mut counts, addresses) = futures::stream::iter(partitions)
            .buffer_unordered(COUNT_CONCURRENCY)
            .try_fold(
                (Counts::default(), AddressTally::default()),
                |(mut total, mut tally), (part, part_tally)| async move {
                    total.merge(&part);
                    tally.merge(part_tally);
                    Ok((total, tally))
                },
            )
            .await?;
        counts.duplicate_address = addresses.duplicates();
        Ok(counts)
    }

    async fn list_contacts(
        &self,
        tenant: &TenantId,
        query: &ListQuery,
    ) -> Result<Page<ContactRecord>, StoreError> {
        let divisions = &query.contacts.division_ids;
        let (mut division_index, mut shard, mut after) = match &query.cursor {
            Some(raw) => {
                let p = keys::decode_cursor(raw, divisions)?;
                (p.division_index, p.shard, p.after)
            }
            None => (0, 0, None),
        };
        // Only these groups depend on the suppression list (the others are decided by portal
        // status, services or missing email, which `classify` checks before suppression).
        let suppressed = if matches!(
            query.group,
            Group::Eligible | Group::Held24h | Group::Suppressed
        ) {
            self.suppressed_set(tenant).await?
        } else {
            HashSet::new()
        };
        let want = query.limit.clamp(1, MAX_FAN_OUT_PAGE) as usize + 1;
        // Each match with the partition it came from, to build the cursor.
        let mut found: Vec<(usize, u8, ContactRecord)> = Vec::with_capacity(want);
        // Contacts (and Queries that found none) this page may still examine.
        let mut budget = query.max_examined.map(|n| n.max(1) as usize);
        // Where the page stopped when the budget ran out: resume there.
        let mut stopped: Option<(usize, u8, Option<ContactId>)> = None;

        'partitions: while division_index < divisions.len() {
            let division = &divisions[division_index];
            let pk = keys::partition_pk(tenant, division, shard);
            let mut merger = Merger::new(division.clone());
            let mut start: Option<Item> = None;
            loop {
                let remaining = (want - found.len()) as i32;
                let mut limit = remaining
                    .saturating_mul(2)
                    .saturating_add(2)
                    .clamp(LIST_PAGE_MIN, LIST_PAGE_MAX);
                if let Some(n) = budget {
                    // About two items a contact: read little past what may be examined.
                    let n = i32::try_from(n).unwrap_or(i32::MAX);
                    limit = limit.min(n.saturating_mul(2).saturating_add(2));
                }
                let mut request = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .expression_attribute_values(":pk", s(pk.clone()))
                    .limit(limit)
                    .set_exclusive_start_key(start);
                request = match &after {
                    Some(a) => request
                        .key_condition_expression("pk = :pk AND sk > :after")
                        .expression_attribute_values(":after", s(keys::state_sk(a))),
                    None => request.key_condition_expression("pk = :pk"),
                };
                let page = request
                    .send()
                    .await
                    .map_err(|e| StoreError::backend("Query", e))?;
                let end = page.last_evaluated_key.is_none();
                let completed: Vec<ContactRecord> = page
                    .items()
                    .iter()
                    .map(|i| merger.push(i))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .flatten()
                    .chain(if end { merger.finish() } else { None })
                    .collect();
                if page.items().is_empty() && end {
                    // A Query of a partition with nothing (more) in it still costs a request.
                    if let Some(n) = budget.as_mut() {
                        *n -= 1;
                        if *n == 0 {
                            let (d, sh) = next_partition(division_index, shard);
                            if d < divisions.len() {
                                stopped = Some((d, sh, None));
                            }
                            break 'partitions;
                        }
                    }
                }
                for c in completed {
                    let id = c.contact_id.clone();
                    if let Some(outcome) = Self::classify(&query.contacts, &suppressed, &c) {
                        if query.group.contains(&c, outcome) && c.matches_search(&query.search) {
                            found.push((division_index, shard, c));
                            if found.len() == want {
                                break 'partitions;
                            }
                        }
                    }
                    if let Some(n) = budget.as_mut() {
                        *n -= 1;
                        if *n == 0 {
                            stopped = Some((division_index, shard, Some(id)));
                            break 'partitions;
                        }
                    }
                }
                start = page.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
            after = None;
            (division_index, shard) = next_partition(division_index, shard);
        }

        let next_cursor = if found.len() == want {
            found.pop();
            found
                .last()
                .map(|(d, sh, c)| keys::encode_cursor(&divisions[*d], *sh, Some(&c.contact_id)))
        } else {
            stopped.map(|(d, sh, c)| keys::encode_cursor(&divisions[d], sh, c.as_ref()))
        };
        Ok(Page {
            items: found.into_iter().map(|(_, _, c)| c).collect(),
            next_cursor,
        })
    }

    async fn get_contact(
        &self,
        tenant: &TenantId,
        id: &ContactId,
    ) -> Result<Option<ContactRecord>, StoreError> {
        let Some(division) = self.locate(tenant, id).await? else {
            return Ok(None);
        };
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :sync AND :state")
            .set_expression_attribute_values(Some(values(&[
                (
                    ":pk",
                    s(keys::partition_pk(tenant, &division, keys::shard_of(id))),
                ),
                (":sync", s(keys::contact_sk(id))),
                (":state", s(keys::state_sk(id))),
            ])))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::backend("Query", e))?;
        let mut merger = Merger::new(division);
        let mut found = None;
        for item in page.items() {
            found = merger.push(item)?.or(found);
        }
        Ok(merger.finish().or(found))
    }

    async fn get_contacts(
        &self,
        tenant: &TenantId,
        ids: &[ContactId],
    ) -> Result<Vec<ContactRecord>, StoreError> {
        let located = self.locate_contacts(tenant, ids).await?;
        // Each contact's sync and state items, strongly consistent (the state is what the
        // 24-hour rule reads).
        let keys: Vec<Item> = located
            .iter()
            .flat_map(|(id, division)| {
                let pk = keys::partition_pk(tenant, division, keys::shard_of(id));
                [
                    items::key(pk.clone(), keys::contact_sk(id)),
                    items::key(pk, keys::state_sk(id)),
                ]
            })
            .collect();
        let mut by_key: HashMap<(String, String), Item> = HashMap::with_capacity(keys.len());
        for item in batch::get_all(&self.client, &self.table, keys, None).await? {
            let key = (
                items::req_str(&item, items::PK)?.to_owned(),
                items::req_str(&item, items::SK)?.to_owned(),
            );
            by_key.insert(key, item);
        }
        let mut found = Vec::with_capacity(located.len());
        for (id, division) in located {
            let pk = keys::partition_pk(tenant, &division, keys::shard_of(&id));
            // No sync item: deleted (or moved) since its locator was read.
            let Some(sync) = by_key.remove(&(pk.clone(), keys::contact_sk(&id))) else {
                continue;
            };
            let mut merger = Merger::new(division);
            let mut record = merger.push(&sync)?;
            if let Some(state) = by_key.remove(&(pk, keys::state_sk(&id))) {
                record = merger.push(&state)?.or(record);
            }
            if let Some(c) = merger.finish().or(record) {
                found.push(c);
            }
        }
        Ok(found)
    }

    async fn locate_contacts(
        &self,
        tenant: &TenantId,
        ids: &[ContactId],
    ) -> Result<HashMap<ContactId, DivisionId>, StoreError> {
        let mut seen = HashSet::with_capacity(ids.len());
        let keys: Vec<Item> = ids
            .iter()
            .filter(|id| seen.insert(*id))
            .map(|id| items::key(keys::locator_pk(tenant, id), keys::LOCATOR_SK))
            .collect();
        let mut located = HashMap::with_capacity(keys.len());
        for loc in batch::get_all(&self.client, &self.table, keys, None).await? {
            let pk = items::req_str(&loc, items::PK)?;
            let id = keys::contact_of_locator_pk(tenant, pk)
                .and_then(|id| ContactId::parse(id).ok())
                .ok_or_else(|| items::malformed("contact locator key"))?;
            located.insert(id, items::division_id(&loc, items::DIVISION)?);
        }
        Ok(located)
    }

    async fn filter_values(
        &self,
        tenant: &TenantId,
        divisions: &[DivisionId],
    ) -> Result<Vec<FilterValues>, StoreError> {
        self.read_filter_values(tenant, divisions).await
    }
}

#[async_trait]
impl ContactStateStore for DynamoStore {
    async fn set_portal_status(
        &self,
        tenant: &TenantId,
        id: &ContactId,
        status: PortalStatus,
    ) -> Result<bool, StoreError> {
        let Some(division) = self.locate(tenant, id).await? else {
            return Ok(false);
        };
        let update = self
            .state_update(tenant, id, &division)
            .update_expression("SET #st = :st")
            .expression_attribute_names("#st", items::STATUS)
            .expression_attribute_values(":st", s(status.as_str()))
            .build()
            .map_err(|e| StoreError::backend("TransactWriteItems", e))?;
        Ok(self
            .update_state(tenant, id, &division, update)
            .await?
            .is_some())
    }

    async fn record_invited(
        &self,
        tenant: &TenantId,
        id: &ContactId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let Some(division) = self.locate(tenant, id).await? else {
            return Ok(false);
        };
        // The address is held too, as a claim's is (one invitation per address).
        if let Some(email) = self.get_contact(tenant, id).await?.and_then(|c| c.email) {
            self.hold_address(tenant, &email, id, at).await?;
        }
        let at = items::time_value(at)?;
        // Pending unless accepted: one conditional update, and if the contact turns out to be
        // accepted, a second that records the time alone.
        let to_pending = self
            .state_update(tenant, id, &division)
            .update_expression("SET #inv = :at, #st = :pending ADD #n :one")
            .condition_expression("attribute_not_exists(#st) OR #st <> :accepted")
            .expression_attribute_names("#inv", items::INVITED_AT)
            .expression_attribute_names("#st", items::STATUS)
            .expression_attribute_names("#n", items::INVITATIONS_SENT)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":at", at.clone())
            .expression_attribute_values(":pending", s(PortalStatus::Pending.as_str()))
            .expression_attribute_values(":accepted", s(PortalStatus::Accepted.as_str()))
            .build()
            .map_err(|e| StoreError::backend("TransactWriteItems", e))?;
        match self.update_state(tenant, id, &division, to_pending).await? {
            None => Ok(false),
            Some(true) => Ok(true),
            Some(false) => {
                let time_only = self
                    .state_update(tenant, id, &division)
                    .update_expression("SET #inv = :at ADD #n :one")
                    .expression_attribute_names("#inv", items::INVITED_AT)
                    .expression_attribute_names("#n", items::INVITATIONS_SENT)
                    .expression_attribute_values(":at", at)
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .build()
                    .map_err(|e| StoreError::backend("TransactWriteItems", e))?;
                Ok(self
                    .update_state(tenant, id, &division, time_only)
                    .await?
                    .is_some())
            }
        }
    }
}
