//! The values the list filters take in each division (`ContactStore::filter_values`), kept
//! at sync time so that reading a division's costs one small Query instead of a read of
//! every contact.
//!
//! # What is kept
//!
//! An account's contacts share its class, bill group, account source and site source, so an
//! account item *contributes* its number of contacts to each of its four values in its
//! division. Account items carry those four values and a version `ver` (N), and every write
//! of one, by sync or `delete_account`, is a TransactWriteItems that conditions on the
//! version it read (`ver = :v`; `attribute_not_exists(pk)` for a new account) and `ADD`s the
//! change of contribution (the old one subtracted, the new one added) to a summary shard of
//! each division concerned:
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | filter-value summary shard | `T#{t}#FV` | `{division}#{shard:02}` | `{field}\|{value}` (N) per value ever counted in it, `{field}` being the value's attribute name on sync items: `class`, `bill_group`, `source`, `site_source` |
//!
//! A change is therefore counted exactly once: a retried or concurrent write whose item
//! moved on fails its condition, takes the item as it now is from the cancellation
//! (`ALL_OLD`, no read) and is planned again against it. A division's values are the sums
//! over its 16 shards, zeros left out (a value whose last contact left keeps its attribute
//! at 0). Each transaction adds to one shard, a different one per transaction in flight, so
//! that concurrent transactions of one division do not conflict on one item.
//!
//! One transaction holds up to 99 account writes and one `ADD` per division they change
//! (at most [`MAX_TERMS`] values each): a sync chunk of 500 accounts is about 6
//! TransactWriteItems. An account item whose stored form would not change is not written,
//! as before, so a sync that changes nothing writes no account item and no summary.
//!
//! # When the summary is believed
//!
//! The division item's `fv` says:
//!
//! - `kept`: set by `put_division` in the very write that creates the division, so every
//!   account ever written into it carried its contribution: `filter_values` answers from
//!   the summary.
//! - absent: a division created before summaries were kept. Its account items from then
//!   have no `ver` and contribute nothing (a sync that rewrites one adds its contribution
//!   from then on; since they lack the four values, the first sync after the upgrade
//!   rewrites each of them once), so the summary may be short: `filter_values` reads the
//!   division's contacts as a count does (16 shard Queries, projected on the four fields) —
//!   exact, at the cost of a count. Sync still keeps the summary, so that a later pass
//!   converting the remaining old account items can declare such a division `kept`.
//! - `off`: a summary shard outgrew DynamoDB's 400 KB item limit (thousands of distinct long
//!   values), which cancels its `ADD` with `ValidationError`: sync turns the division `off`,
//!   writes the accounts without it and stops adding to it; it is read like an old one.
//!
//! # What the summary agrees with
//!
//! The sum of the account items' contributions, which is what the sync items say once a
//! sync has completed: the account items are written last (see the module docs of the
//! adapter, "Sync write order"), so an interrupted sync leaves the summary describing the
//! old layout, like the account items, until it is retried. A contact left on its old
//! account's list by an interrupted move (an existing tolerance of `delete_account`) is
//! counted there too until that account is synced again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use futures::{FutureExt, StreamExt, TryStreamExt};

use super::items::{self, s, Item};
use super::keys::{self, SHARDS};
use super::{batch, ops, DynamoStore};
use portal_core::domain::{AccountId, ContactId, DivisionId, FilterField, FilterValues, TenantId};
use portal_core::ports::StoreError;

/// Most items in one TransactWriteItems (AWS limit).
const MAX_TRANSACTION_ITEMS: usize = 100;
/// Most values one summary `ADD` names: its expression stays far under DynamoDB's 4 KB.
const MAX_TERMS: usize = 100;
/// Transactions of one call in flight at once (each adds to its own summary shard).
const TRANSACTION_CONCURRENCY: usize = 4;
/// Rounds of account writes whose item changed meanwhile, before giving up.
const WRITE_ROUNDS: u32 = 12;
/// Partition Queries in flight at once when divisions are read without a summary.
const READ_CONCURRENCY: usize = 16;
/// A cancellation reason saying an item would break a limit (a summary shard over 400 KB).
const VALIDATION_ERROR: &str = "ValidationError";

/// Each field, as the attribute name its values have on sync and account items (and as the
/// prefix of a value's attribute in a summary shard).
const FIELDS: [(FilterField, &str); 4] = [
    (FilterField::AccountClass, items::CLASS),
    (FilterField::BillGroup, items::BILL_GROUP),
    (FilterField::AccountSource, items::SOURCE),
    (FilterField::SiteSource, items::SITE_SOURCE),
];

/// Between a field's name and a value in a summary attribute (field names never hold it).
const SEPARATOR: char = '|';

fn summary_attribute(field: &str, value: &str) -> String {
    format!("{field}{SEPARATOR}{value}")
}

/// The field and value a summary attribute counts, if it is one.
fn parse_summary_attribute(name: &str) -> Option<(FilterField, &str)> {
    let (field, value) = name.split_once(SEPARATOR)?;
    FIELDS
        .iter()
        .find(|(_, f)| *f == field)
        .map(|(f, _)| (*f, value))
}

/// What one account item adds to its division's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contribution {
    division: DivisionId,
    /// In the order of [`FIELDS`].
    values: [String; 4],
    contacts: i64,
}

impl Contribution {
    /// What an account item contributes; `None` for one written before contributions were
    /// kept (no `ver`): it is in no summary.
    fn of(item: &Item) -> Result<Option<Self>, StoreError> {
        if !item.contains_key(items::VERSION) {
            return Ok(None);
        }
        let contacts = i64::try_from(items::contact_ids(item)?.len())
            .map_err(|_| items::malformed("contact list length"))?;
        Ok(Some(Self {
            division: items::division_id(item, items::DIVISION)?,
            values: FIELDS.map(|(_, f)| items::get_str(item, f).unwrap_or_default().to_owned()),
            contacts,
        }))
    }
}

/// What to add to each division's summary: contacts per (field attribute, value).
#[derive(Debug, Clone, Default)]
struct Deltas(BTreeMap<DivisionId, BTreeMap<(&'static str, String), i64>>);

impl Deltas {
    fn add(&mut self, c: &Contribution, sign: i64) {
        let terms = self.0.entry(c.division.clone()).or_default();
        for ((_, field), value) in FIELDS.iter().zip(&c.values) {
            *terms.entry((field, value.clone())).or_default() += sign * c.contacts;
        }
    }

    /// Each division with something to add, and its non-zero terms.
    fn updates(&self) -> Vec<(&DivisionId, Vec<(String, i64)>)> {
        self.0
            .iter()
            .map(|(d, terms)| {
                let terms: Vec<(String, i64)> = terms
                    .iter()
                    .filter(|(_, n)| **n != 0)
                    .map(|((f, v), n)| (summary_attribute(f, v), *n))
                    .collect();
                (d, terms)
            })
            .filter(|(_, terms)| !terms.is_empty())
            .collect()
    }

    /// Whether a transaction of `accounts` writes and these updates keeps within limits.
    fn fits(&self, accounts: usize) -> bool {
        let updates = self.updates();
        accounts + updates.len() <= MAX_TRANSACTION_ITEMS
            && updates.iter().all(|(_, t)| t.len() <= MAX_TERMS)
    }
}

/// What a sync or a deletion does to one account item.
pub(super) enum Target {
    /// Replace it with this item (everything but `ver`, which the write sets).
    Put(Item),
    /// Keep it, without these contacts on its list (they moved to another account).
    Drop(HashSet<ContactId>),
    /// Delete it.
    Delete,
}

/// One account item to write, with the item as last read.
pub(super) struct AccountWrite {
    pub id: AccountId,
    /// `None` when it did not exist.
    pub current: Option<Item>,
    pub target: Target,
}

/// One account write, ready for a transaction.
struct Planned {
    write: usize,
    op: TransactWriteItem,
    old: Option<Contribution>,
    new: Option<Contribution>,
}

/// A transaction: account writes and what they add to the summaries.
#[derive(Default)]
struct Batch {
    writes: Vec<Planned>,
    deltas: Deltas,
}

/// What became of a transaction.
#[derive(Default)]
struct Outcome {
    /// Writes to plan again, with the item as it now is when the cancellation said so.
    retry: Vec<(usize, Option<Option<Item>>)>,
    /// Divisions whose summary shard could not grow any more.
    overflowed: Vec<DivisionId>,
}

/// A transaction refused whole because an item would outgrow DynamoDB's 400 KB (how moto,
/// and possibly DynamoDB, says it; DynamoDB documents a `ValidationError` cancellation
/// reason on the item, handled with the other reasons).
fn item_too_large(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> bool {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
    e.as_service_error().is_some_and(|s| {
        s.code() == Some("ValidationException")
            && s.message().is_some_and(|m| m.contains("Item size"))
    })
}

/// The two items equal but for `ver`.
fn same_but_version(a: &Item, b: &Item) -> bool {
    let rest = |i: &Item| {
        i.iter()
            .filter(|(k, _)| k.as_str() != items::VERSION)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>()
    };
    rest(a) == rest(b)
}

fn build_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend("TransactWriteItems", e)
}

impl DynamoStore {
    /// Writes account items with what they change in the summaries (see the module docs),
    /// each conditioned on the item as last read and planned again when it moved on.
    pub(super) async fn write_accounts(
        &self,
        tenant: &TenantId,
        mut writes: Vec<AccountWrite>,
    ) -> Result<(), StoreError> {
        let mut off: HashMap<DivisionId, bool> = HashMap::new();
        let mut pending: Vec<usize> = (0..writes.len()).collect();
        for round in 0..WRITE_ROUNDS {
            let mut planned = Vec::new();
            for &i in &pending {
                if let Some(p) = self.plan(tenant, i, &writes[i])? {
                    planned.push(p);
                }
            }
            if planned.is_empty() {
                return Ok(());
            }
            let unseen: BTreeSet<DivisionId> = planned
                .iter()
                .flat_map(|p| p.old.iter().chain(&p.new))
                .map(|c| c.division.clone())
                .filter(|d| !off.contains_key(d))
                .collect();
            off.extend(self.divisions_off(tenant, unseen).await?);

            let batches = pack(planned, &off);
            let first = rand::random_range(0..SHARDS);
            // Futures built up front (not in a stream closure) keep the `Send` bound provable.
            let sends: Vec<_> = batches
                .into_iter()
                .zip(0u8..)
                .map(|(b, k)| self.send_batch(tenant, b, (first + k) % SHARDS).boxed())
                .collect();
            let outcomes: Vec<Outcome> = futures::stream::iter(sends)
                .buffer_unordered(TRANSACTION_CONCURRENCY)
                .try_collect()
                .await?;
            pending.clear();
            for o in outcomes {
                for (i, now) in o.retry {
                    if let Some(now) = now {
                        writes[i].current = now;
                    }
                    pending.push(i);
                }
                for d in o.overflowed {
                    self.turn_off(tenant, &d).await?;
                    off.insert(d, true);
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(ops::jitter(round)).await;
        }
        Err(build_err(ops::Cancelled(
            "account writes kept conflicting".into(),
        )))
    }

    /// The write `w` needs now, or `None` when the stored item already is what it should be.
    fn plan(
        &self,
        tenant: &TenantId,
        index: usize,
        w: &AccountWrite,
    ) -> Result<Option<Planned>, StoreError> {
        let version = match &w.current {
            Some(c) if c.contains_key(items::VERSION) => Some(items::get_num(c, items::VERSION)?),
            _ => None,
        };
        let new_item = match (&w.target, &w.current) {
            (Target::Put(item), _) => Some(item.clone()),
            (Target::Drop(_), None) | (Target::Delete, None) => return Ok(None),
            (Target::Drop(lost), Some(cur)) => {
                let contacts = items::contact_ids(cur)?;
                if !contacts.iter().any(|c| lost.contains(c)) {
                    return Ok(None);
                }
                let keep: Vec<ContactId> =
                    contacts.into_iter().filter(|c| !lost.contains(c)).collect();
                let mut item = cur.clone();
                item.insert(items::CONTACTS.into(), items::contact_list(&keep));
                item.remove(items::VERSION);
                Some(item)
            }
            (Target::Delete, Some(_)) => None,
        };
        if let (Some(new), Some(cur)) = (&new_item, &w.current) {
            if same_but_version(new, cur) {
                return Ok(None);
            }
        }
        // A synced account is whole: it gets a version (and from then on a contribution). An
        // old item that only loses a contact stays old: its four values are not on it.
        let new_item = new_item.map(|mut item| {
            let stays_old = matches!(w.target, Target::Drop(_)) && version.is_none();
            if !stays_old {
                item.insert(items::VERSION.into(), items::num(version.unwrap_or(0) + 1));
            }
            item
        });
        let old = w
            .current
            .as_ref()
            .map(Contribution::of)
            .transpose()?
            .flatten();
        let new = new_item
            .as_ref()
            .map(Contribution::of)
            .transpose()?
            .flatten();

        let (condition, names, values) = match (&w.current, version) {
            (None, _) => ("attribute_not_exists(pk)", None, None),
            (Some(_), Some(v)) => (
                "#ver = :ver",
                Some(HashMap::from([(
                    "#ver".to_owned(),
                    items::VERSION.to_owned(),
                )])),
                Some(HashMap::from([(":ver".to_owned(), items::num(v))])),
            ),
            (Some(_), None) => (
                "attribute_exists(pk) AND attribute_not_exists(#ver)",
                Some(HashMap::from([(
                    "#ver".to_owned(),
                    items::VERSION.to_owned(),
                )])),
                None,
            ),
        };
        let op = match new_item {
            Some(item) => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression(condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
            None => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(items::key(
                            keys::account_pk(tenant, &w.id),
                            keys::ACCOUNT_SK,
                        )))
                        .condition_expression(condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
        };
        Ok(Some(Planned {
            write: index,
            op,
            old,
            new,
        }))
    }

    /// Sends one transaction: its account writes, then one `ADD` per division to summary
    /// shard `shard`.
    async fn send_batch(
        &self,
        tenant: &TenantId,
        batch: Batch,
        shard: u8,
    ) -> Result<Outcome, StoreError> {
        let updates = batch.deltas.updates();
        let mut request = self.client.transact_write_items();
        for p in &batch.writes {
            request = request.transact_items(p.op.clone());
        }
        for (division, terms) in &updates {
            request = request.transact_items(self.summary_add(tenant, division, shard, terms)?);
        }
        let result = {
            let _one_at_a_time = self.transaction_guard().await;
            request.send().await
        };
        let mut outcome = Outcome::default();
        let reasons = match result {
            Ok(_) => return Ok(outcome),
            // Only a summary shard can grow past the item limit (an account item holds at
            // most 100 contact ids), but this form does not say which: every division of
            // the transaction stops being kept, rather than failing the sync.
            Err(e) if item_too_large(&e) && !updates.is_empty() => {
                outcome.retry = batch.writes.iter().map(|p| (p.write, None)).collect();
                outcome.overflowed = updates.iter().map(|(d, _)| (*d).clone()).collect();
                return Ok(outcome);
            }
            Err(e) => ops::cancellation(e)?,
        };
        for (k, p) in batch.writes.iter().enumerate() {
            let now = match ops::reason_code(&reasons, k) {
                ops::CONDITION_FAILED => Some(ops::old_item(&reasons, k).cloned()),
                code if ops::retryable(code) => None,
                _ => return Err(ops::unexpected(&reasons)),
            };
            outcome.retry.push((p.write, now));
        }
        for (k, (division, _)) in updates.iter().enumerate() {
            match ops::reason_code(&reasons, batch.writes.len() + k) {
                VALIDATION_ERROR => outcome.overflowed.push((*division).clone()),
                code if ops::retryable(code) => {}
                _ => return Err(ops::unexpected(&reasons)),
            }
        }
        Ok(outcome)
    }

    /// The transaction item adding `terms` to one summary shard of `division`.
    fn summary_add(
        &self,
        tenant: &TenantId,
        division: &DivisionId,
        shard: u8,
        terms: &[(String, i64)],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut expr = String::from("ADD ");
        let mut names = HashMap::with_capacity(terms.len());
        let mut values = HashMap::with_capacity(terms.len());
        for (k, (attribute, n)) in terms.iter().enumerate() {
            if k > 0 {
                expr.push_str(", ");
            }
            expr.push_str(&format!("#a{k} :a{k}"));
            names.insert(format!("#a{k}"), attribute.clone());
            values.insert(format!(":a{k}"), items::signed(*n));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::filter_values_pk(tenant),
                keys::filter_values_sk(division, shard),
            )))
            .update_expression(expr)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Which of `divisions` are `off` (see the module docs), from their division items.
    async fn divisions_off(
        &self,
        tenant: &TenantId,
        divisions: BTreeSet<DivisionId>,
    ) -> Result<HashMap<DivisionId, bool>, StoreError> {
        let flags = self.division_flags(tenant, &divisions).await?;
        Ok(divisions
            .into_iter()
            .map(|d| {
                let off = flags.get(&d).map(String::as_str) == Some(items::FILTER_VALUES_OFF);
                (d, off)
            })
            .collect())
    }

    /// The `fv` of each of `divisions` that has one (strongly consistent).
    async fn division_flags<'a>(
        &self,
        tenant: &TenantId,
        divisions: impl IntoIterator<Item = &'a DivisionId>,
    ) -> Result<HashMap<DivisionId, String>, StoreError> {
        let keys = divisions
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|d| items::key(keys::tenant_pk(tenant), keys::division_sk(d)))
            .collect();
        let projection = items::projection(&[items::SK, items::DIV_FILTER_VALUES]);
        let found = batch::get_all(&self.client, &self.table, keys, Some(projection)).await?;
        let mut out = HashMap::new();
        for item in &found {
            let Some(flag) = items::get_str(item, items::DIV_FILTER_VALUES) else {
                continue;
            };
            let id = items::req_str(item, items::SK)?
                .strip_prefix(keys::DIVISION_SK_PREFIX)
                .and_then(|d| DivisionId::parse(d).ok())
                .ok_or_else(|| items::malformed("division sort key"))?;
            out.insert(id, flag.to_owned());
        }
        Ok(out)
    }

    /// Stops keeping a division's summary: it could not grow any more.
    async fn turn_off(&self, tenant: &TenantId, division: &DivisionId) -> Result<(), StoreError> {
        tracing::warn!(
            tenant = %tenant,
            division = %division,
            "a filter-value summary shard is full: the division's values are read from its contacts from now on"
        );
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::tenant_pk(tenant),
                keys::division_sk(division),
            )))
            .update_expression("SET #fv = :off")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#fv", items::DIV_FILTER_VALUES)
            .expression_attribute_values(":off", s(items::FILTER_VALUES_OFF))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if ops::condition_failed(&e) {
                    Ok(())
                } else {
                    Err(StoreError::backend("UpdateItem", e))
                }
            })
    }

    /// `ContactStore::filter_values`: the summary of each `kept` division (one Query of its
    /// shards), the contacts of any other (its 16 partitions, as a count reads them); at most
    /// [`READ_CONCURRENCY`] Queries in flight.
    pub(super) async fn read_filter_values(
        &self,
        tenant: &TenantId,
        divisions: &[DivisionId],
    ) -> Result<Vec<FilterValues>, StoreError> {
        let flags = self.division_flags(tenant, divisions).await?;
        let kept =
            |d: &DivisionId| flags.get(d).map(String::as_str) == Some(items::FILTER_VALUES_KEPT);
        // Futures built up front (not in a stream closure) keep the `Send` bound provable.
        let mut reads = Vec::new();
        for (i, d) in divisions.iter().enumerate() {
            if kept(d) {
                reads.push(
                    self.summary_of(tenant, d)
                        .map(move |r| r.map(|v| (i, v)))
                        .boxed(),
                );
            } else {
                for shard in 0..SHARDS {
                    reads.push(
                        self.scan_shard(tenant, d, shard)
                            .map(move |r| r.map(|v| (i, v)))
                            .boxed(),
                    );
                }
            }
        }
        let mut out = vec![FilterValues::default(); divisions.len()];
        let parts: Vec<(usize, FilterValues)> = futures::stream::iter(reads)
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        for (i, part) in parts {
            out[i].merge(&part);
        }
        Ok(out)
    }

    /// A division's values from its summary shards.
    async fn summary_of(
        &self,
        tenant: &TenantId,
        division: &DivisionId,
    ) -> Result<FilterValues, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(keys::filter_values_pk(tenant)))
            .expression_attribute_values(":prefix", s(keys::filter_values_prefix(division)));
        let mut sums: BTreeMap<(FilterField, String), i64> = BTreeMap::new();
        ops::query_all(query, |item| {
            for (name, value) in item {
                let Some((field, v)) = parse_summary_attribute(name) else {
                    continue;
                };
                let n: i64 = match value {
                    AttributeValue::N(n) => {
                        n.parse().map_err(|_| items::malformed("summary count"))?
                    }
                    _ => return Err(items::malformed("summary count")),
                };
                *sums.entry((field, v.to_owned())).or_default() += n;
            }
            Ok(())
        })
        .await?;
        let mut values = FilterValues::default();
        for ((field, v), n) in sums {
            match u64::try_from(n) {
                Ok(n) => values.add(field, &v, n),
                Err(_) => tracing::error!(
                    tenant = %tenant,
                    division = %division,
                    field = field.as_str(),
                    "a filter value's summary is negative"
                ),
            }
        }
        Ok(values)
    }

    /// The values of one (division, shard) partition's contacts, from their sync items
    /// (projected on the four fields).
    async fn scan_shard(
        &self,
        tenant: &TenantId,
        division: &DivisionId,
        shard: u8,
    ) -> Result<FilterValues, StoreError> {
        let mut names: Vec<&str> = vec![items::SK];
        names.extend(FIELDS.iter().map(|(_, f)| *f));
        let (projection, attribute_names) = items::projection(&names);
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::partition_pk(tenant, division, shard)))
            .projection_expression(projection)
            .set_expression_attribute_names(Some(attribute_names));
        let mut values = FilterValues::default();
        ops::query_all(query, |item| {
            // State items (`C#{id}#ST`) hold none of the four values.
            if items::req_str(item, items::SK)?.ends_with(keys::STATE_SK_SUFFIX) {
                return Ok(());
            }
            let get = |f: &str| items::get_str(item, f).unwrap_or_default();
            values.add_combination(FIELDS.map(|(_, f)| get(f)), 1);
            Ok(())
        })
        .await?;
        Ok(values)
    }
}

/// Packs planned writes into transactions within AWS's limits, each with what it adds to
/// the summaries of the divisions not `off`.
fn pack(planned: Vec<Planned>, off: &HashMap<DivisionId, bool>) -> Vec<Batch> {
    let kept = |c: &&Contribution| !off.get(&c.division).copied().unwrap_or(false);
    let with = |mut deltas: Deltas, p: &Planned| {
        if let Some(old) = p.old.as_ref().filter(kept) {
            deltas.add(old, -1);
        }
        if let Some(new) = p.new.as_ref().filter(kept) {
            deltas.add(new, 1);
        }
        deltas
    };
    let mut batches = Vec::new();
    let mut current = Batch::default();
    for p in planned {
        let mut deltas = with(current.deltas.clone(), &p);
        if !current.writes.is_empty() && !deltas.fits(current.writes.len() + 1) {
            batches.push(std::mem::take(&mut current));
            deltas = with(Deltas::default(), &p);
        }
        current.deltas = deltas;
        current.writes.push(p);
    }
    if !current.writes.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(division: &str, class: &str, contacts: usize, version: Option<u64>) -> Item {
        let ids: Vec<ContactId> = (0..contacts)
            .map(|i| ContactId::parse(format!("c{i}")).unwrap())
            .collect();
        let mut item = items::key("T#t#ACC#a".into(), keys::ACCOUNT_SK);
        item.insert(items::DIVISION.into(), s(division));
        item.insert(items::CONTACTS.into(), items::contact_list(&ids));
        for (_, f) in FIELDS {
            item.insert(f.into(), s(format!("{f}-{class}")));
        }
        if let Some(v) = version {
            item.insert(items::VERSION.into(), items::num(v));
        }
        item
    }

    #[test]
    fn summary_attributes_name_their_field_and_keep_any_value() {
        let name = summary_attribute(items::BILL_GROUP, "A|B #1");
        assert_eq!(name, "bill_group|A|B #1");
        assert_eq!(
            parse_summary_attribute(&name),
            Some((FilterField::BillGroup, "A|B #1"))
        );
        assert_eq!(
            parse_summary_attribute("class|"),
            Some((FilterField::AccountClass, ""))
        );
        for other in ["pk", "sk", "unknown|x", "classy|x"] {
            assert_eq!(parse_summary_attribute(other), None, "{other}");
        }
    }

    #[test]
    fn an_item_without_a_version_contributes_nothing() {
        assert_eq!(
            Contribution::of(&account("d1", "x", 3, None)).unwrap(),
            None
        );
        let c = Contribution::of(&account("d1", "x", 3, Some(2)))
            .unwrap()
            .unwrap();
        assert_eq!((c.division.as_str(), c.contacts), ("d1", 3));
        assert_eq!(c.values[0], "class-x");
    }

    #[test]
    fn a_change_of_class_moves_the_contacts_and_cancels_out_elsewhere() {
        let old = Contribution::of(&account("d1", "x", 2, Some(1)))
            .unwrap()
            .unwrap();
        let mut new = old.clone();
        new.values[0] = "class-y".into();
        let mut d = Deltas::default();
        d.add(&old, -1);
        d.add(&new, 1);
        let updates = d.updates();
        assert_eq!(updates.len(), 1);
        assert_eq!(
            updates[0].1,
            [
                ("class|class-x".to_owned(), -2),
                ("class|class-y".to_owned(), 2)
            ]
        );
        let mut same = Deltas::default();
        same.add(&old, -1);
        same.add(&old, 1);
        assert!(same.updates().is_empty(), "nothing to add");
    }

    #[test]
    fn transactions_stay_within_one_hundred_items_and_the_term_limit() {
        let planned = |n: usize, distinct: bool| -> Vec<Planned> {
            (0..n)
                .map(|i| {
                    let class = if distinct {
                        format!("v{i}")
                    } else {
                        "v".into()
                    };
                    Planned {
                        write: i,
                        op: TransactWriteItem::builder().build(),
                        old: None,
                        new: Contribution::of(&account("d1", &class, 1, Some(1))).unwrap(),
                    }
                })
                .collect()
        };
        let off = HashMap::new();
        let same = pack(planned(250, false), &off);
        assert_eq!(
            same.iter().map(|b| b.writes.len()).collect::<Vec<_>>(),
            [99, 99, 52]
        );
        // Every account brings four new values: at most 25 accounts per summary update.
        let distinct = pack(planned(60, true), &off);
        assert!(distinct.iter().all(|b| b.deltas.fits(b.writes.len())));
        assert_eq!(
            distinct.iter().map(|b| b.writes.len()).collect::<Vec<_>>(),
            [25, 25, 10]
        );
        // A division that is off adds nothing.
        let off = HashMap::from([(DivisionId::parse("d1").unwrap(), true)]);
        let batches = pack(planned(150, true), &off);
        assert_eq!(batches.len(), 2);
        assert!(batches.iter().all(|b| b.deltas.updates().is_empty()));
    }

    #[test]
    fn only_the_version_may_differ_for_an_item_to_count_as_unchanged() {
        let a = account("d1", "x", 2, Some(1));
        assert!(same_but_version(&a, &account("d1", "x", 2, Some(7))));
        assert!(same_but_version(&a, &account("d1", "x", 2, None)));
        assert!(!same_but_version(&a, &account("d1", "y", 2, Some(1))));
        assert!(!same_but_version(&a, &account("d1", "x", 3, Some(1))));
    }
}
