//! A campaign's run records: the delivery batches' leases and the fan-out pages whose skips
//! were counted. Both live in the campaign's run partition, apart from its invitations.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | delivery lease | `T#{t}#RUN#{campaign}` | `LEASE#{batch}` | `owner`, `until`, `done`? (Bool), `att_at`?, `att`? (list of contact ids: the group being sent), `ttl` |
//! | counted page | `T#{t}#RUN#{campaign}` | `PAGE#{page key}` | `ttl` |
//!
//! # Leases
//!
//! - **First take** (`lease_batch` of a batch never leased): one TransactWriteItems — a Put
//!   of the lease (with the first group's attempt) under `attribute_not_exists(pk)` and a
//!   ConditionCheck on the campaign item that it exists and is neither `paused` nor
//!   `failed` (→ `Stopped`). A delivery carrying its campaign's spec reads no campaign: this
//!   check is what stops it when the campaign was paused. When the Put alone fails (the batch
//!   was leased before), the take below follows.
//! - **Take** (`lease_batch`): one UpdateItem `SET owner, until` under
//!   `attribute_not_exists(pk) OR (attribute_not_exists(done) AND (until <= :now OR owner =
//!   :me))`, returning the old item (`ALL_OLD`): none → a first lease; one → resumed, with the
//!   attempt it recorded. A refused take reads the item once (only a concurrent copy of the
//!   batch pays it) to tell `Done` from `Busy`.
//! - **Step** (`step_batch`): one UpdateItem under `owner = :me`: the next group's `att` and
//!   `att_at` with a new `until`, or `done`, or `until` = the epoch (released).
//! - **Outcomes with the step** (`record_batch_outcomes`): the step's Update rides in the
//!   outcomes' TransactWriteItems (98 invitations + the counters + the lease = 100 items), so
//!   a group's mark costs no request of its own. A lost lease cancels the transaction; the
//!   outcomes are then written again without it.
//!
//! # Counted pages
//!
//! `add_campaign_counts` with a page key: one TransactWriteItems — a Put of the page item
//! under `attribute_not_exists(pk)` and the counters' `ADD` — instead of the plain UpdateItem:
//! a replayed page cancels on its own item and adds nothing.
//!
//! Run items expire ([`RUN_TTL`]) long after a campaign could still be resumed.

use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Put, ReturnValue, TransactWriteItem, Update,
};
use time::OffsetDateTime;

use super::campaigns::{build_err, Cancelled, CAMPAIGN_SK};
use super::items::{self, num, s, time_attr, time_value, Item, STATUS};
use super::keys::campaign_pk;
use super::ops::{self, cancellation, CONDITION_FAILED};
use super::DynamoStore;
use portal_core::domain::{CampaignId, CampaignStatus, ContactId, TenantId};
use portal_core::ports::{Attempt, LeaseOutcome, LeaseStep, StoreError};

/// How long run items are kept.
pub(super) const RUN_TTL: time::Duration = time::Duration::days(30);

const OWNER: &str = "owner";
const UNTIL: &str = "until";
const DONE: &str = "done";
const ATTEMPT_AT: &str = "att_at";
const ATTEMPT: &str = "att";
const TTL: &str = "ttl";

pub(super) fn run_pk(t: &TenantId, c: &CampaignId) -> String {
    format!("T#{t}#RUN#{c}")
}

fn lease_sk(batch: &str) -> String {
    format!("LEASE#{batch}")
}

pub(super) fn page_sk(page: &str) -> String {
    format!("PAGE#{page}")
}

/// The `ttl` value of a run item written now.
pub(super) fn run_ttl() -> AttributeValue {
    let at = OffsetDateTime::now_utc() + RUN_TTL;
    num(u64::try_from(at.unix_timestamp()).unwrap_or_default())
}

fn attempt_list(a: &Attempt) -> AttributeValue {
    AttributeValue::L(a.contacts.iter().map(|c| s(c.as_str())).collect())
}

fn read_attempt(item: &Item) -> Result<Option<Attempt>, StoreError> {
    let Some(at) = time_attr(item, ATTEMPT_AT)? else {
        return Ok(None);
    };
    let contacts = match item.get(ATTEMPT) {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(id) => {
                    ContactId::parse(id.clone()).map_err(|_| items::malformed(ATTEMPT))
                }
                _ => Err(items::malformed(ATTEMPT)),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Ok(None),
    };
    Ok(Some(Attempt { contacts, at }))
}

impl DynamoStore {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn take_lease(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        batch: &str,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        first: Option<&Attempt>,
    ) -> Result<LeaseOutcome, StoreError> {
        let key = items::key(run_pk(tenant, campaign), lease_sk(batch));
        match self
            .first_lease(tenant, campaign, &key, owner, until, first)
            .await?
        {
            FirstLease::Taken => {
                return Ok(LeaseOutcome::Acquired {
                    resumed: false,
                    attempt: None,
                })
            }
            FirstLease::Stopped => return Ok(LeaseOutcome::Stopped),
            // Leased before, and the campaign was running at that same instant.
            FirstLease::Exists => {}
        }
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.clone()));
        request = match first {
            Some(a) => request
                .update_expression(
                    "SET #o = :me, #u = :until, #ttl = :ttl, \
                     #aa = if_not_exists(#aa, :at), #a = if_not_exists(#a, :att)",
                )
                .expression_attribute_names("#aa", ATTEMPT_AT)
                .expression_attribute_names("#a", ATTEMPT)
                .expression_attribute_values(":at", time_value(a.at)?)
                .expression_attribute_values(":att", attempt_list(a)),
            None => request.update_expression("SET #o = :me, #u = :until, #ttl = :ttl"),
        };
        let result = {
            // moto does not make a conditional write atomic against another one.
            let _one_at_a_time = self.transaction_guard().await;
            request
            .condition_expression(
                "attribute_not_exists(pk) OR (attribute_not_exists(#d) AND (#u <= :now OR #o = :me))",
            )
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_names("#u", UNTIL)
            .expression_attribute_names("#d", DONE)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":until", time_value(until)?)
            .expression_attribute_values(":now", time_value(now)?)
            .expression_attribute_values(":ttl", run_ttl())
            .return_values(ReturnValue::AllOld)
            .send()
                .await
        };
        match result {
            Ok(out) => match out.attributes {
                Some(old) if !old.is_empty() => Ok(LeaseOutcome::Acquired {
                    resumed: true,
                    attempt: read_attempt(&old)?,
                }),
                _ => Ok(LeaseOutcome::Acquired {
                    resumed: false,
                    attempt: None,
                }),
            },
            Err(e) if ops::condition_failed(&e) => {
                let Some(item) = self.get_item("GetItem", key).await? else {
                    // Gone since (expired by TTL): whoever retries takes it.
                    return Ok(LeaseOutcome::Busy { until: now });
                };
                if matches!(item.get(DONE), Some(AttributeValue::Bool(true))) {
                    return Ok(LeaseOutcome::Done);
                }
                Ok(LeaseOutcome::Busy {
                    until: time_attr(&item, UNTIL)?.unwrap_or(now),
                })
            }
            Err(e) => Err(StoreError::backend("UpdateItem", e)),
        }
    }

    /// The first lease of a batch: one TransactWriteItems — a Put of the lease under
    /// `attribute_not_exists(pk)` and a ConditionCheck that the campaign exists and is
    /// neither paused nor failed. Both conditions are evaluated, so a cancellation says
    /// which failed.
    async fn first_lease(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        key: &Item,
        owner: &str,
        until: OffsetDateTime,
        first: Option<&Attempt>,
    ) -> Result<FirstLease, StoreError> {
        let mut item = key.clone();
        item.insert(OWNER.to_owned(), s(owner));
        item.insert(UNTIL.to_owned(), time_value(until)?);
        item.insert(TTL.to_owned(), run_ttl());
        if let Some(a) = first {
            item.insert(ATTEMPT_AT.to_owned(), time_value(a.at)?);
            item.insert(ATTEMPT.to_owned(), attempt_list(a));
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_err)?;
        let running = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(campaign_pk(tenant, campaign), CAMPAIGN_SK)))
            .condition_expression("attribute_exists(pk) AND NOT (#st IN (:paused, :failed))")
            .expression_attribute_names("#st", STATUS)
            .expression_attribute_values(":paused", s(CampaignStatus::Paused.as_str()))
            .expression_attribute_values(":failed", s(CampaignStatus::Failed.as_str()))
            .build()
            .map_err(build_err)?;
        let items = [
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder()
                .condition_check(running)
                .build(),
        ];
        let conflict = || {
            format!(
                "the lease of batch {} of campaign {campaign} kept conflicting",
                lease_sk_of(key)
            )
        };
        Ok(match self.transact_conditioned(&items, conflict).await? {
            None => FirstLease::Taken,
            Some(reasons) if failed(&reasons, 1) => FirstLease::Stopped,
            Some(_) => FirstLease::Exists,
        })
    }

    /// The Update that moves `owner`'s lease by `step`.
    pub(super) fn lease_step_update(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        batch: &str,
        owner: &str,
        step: &LeaseStep,
    ) -> Result<Update, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(run_pk(tenant, campaign), lease_sk(batch))))
            .condition_expression("#o = :me")
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_values(":me", s(owner));
        let update = match step {
            LeaseStep::Attempting { attempt, until } => update
                .update_expression("SET #u = :until, #aa = :at, #a = :att")
                .expression_attribute_names("#u", UNTIL)
                .expression_attribute_names("#aa", ATTEMPT_AT)
                .expression_attribute_names("#a", ATTEMPT)
                .expression_attribute_values(":until", time_value(*until)?)
                .expression_attribute_values(":at", time_value(attempt.at)?)
                .expression_attribute_values(":att", attempt_list(attempt)),
            LeaseStep::Done => update
                .update_expression("SET #d = :true REMOVE #aa, #a")
                .expression_attribute_names("#d", DONE)
                .expression_attribute_names("#aa", ATTEMPT_AT)
                .expression_attribute_names("#a", ATTEMPT)
                .expression_attribute_values(":true", AttributeValue::Bool(true)),
            LeaseStep::Release => update
                .update_expression("SET #u = :epoch")
                .expression_attribute_names("#u", UNTIL)
                .expression_attribute_values(":epoch", time_value(OffsetDateTime::UNIX_EPOCH)?),
        };
        update.build().map_err(build_err)
    }

    pub(super) async fn step_lease(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        batch: &str,
        owner: &str,
        step: &LeaseStep,
    ) -> Result<bool, StoreError> {
        let u = self.lease_step_update(tenant, campaign, batch, owner, step)?;
        let result = {
            let _one_at_a_time = self.transaction_guard().await;
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(u.key))
                .set_update_expression(Some(u.update_expression))
                .set_condition_expression(u.condition_expression)
                .set_expression_attribute_names(u.expression_attribute_names)
                .set_expression_attribute_values(u.expression_attribute_values)
                .send()
                .await
        };
        match result {
            Ok(_) => Ok(true),
            Err(e) if ops::condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::backend("UpdateItem", e)),
        }
    }

    /// Adds skips once per page: the page's item and the counters in one transaction.
    /// `false` when the page was counted before (or the campaign is missing).
    pub(super) async fn add_page_counts(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        page: &str,
        counters: TransactWriteItem,
    ) -> Result<bool, StoreError> {
        let mut marker = items::key(run_pk(tenant, campaign), page_sk(page));
        marker.insert(TTL.to_owned(), run_ttl());
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(marker))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_err)?;
        let items = [TransactWriteItem::builder().put(put).build(), counters];
        let conflict = || format!("page {page} of campaign {campaign} kept conflicting");
        Ok(self.transact_conditioned(&items, conflict).await?.is_none())
    }

    /// Sends `items` as one transaction, retrying conflicts with back-off: `None` when it
    /// was written, the cancellation reasons when a condition refused it (every condition is
    /// evaluated, so the reasons say which).
    async fn transact_conditioned(
        &self,
        items: &[TransactWriteItem],
        conflict: impl Fn() -> String,
    ) -> Result<Option<Vec<CancellationReason>>, StoreError> {
        for round in 0..super::campaigns::MAX_CLAIM_ROUNDS {
            let sent = {
                let _one_at_a_time = self.transaction_guard().await;
                self.client
                    .transact_write_items()
                    .set_transact_items(Some(items.to_vec()))
                    .send()
                    .await
            };
            let reasons = match sent {
                Ok(_) => return Ok(None),
                Err(e) => cancellation(e)?,
            };
            if reasons.iter().any(|r| r.code() == Some(CONDITION_FAILED)) {
                return Ok(Some(reasons));
            }
            if !ops::all_retryable(&reasons) {
                return Err(ops::unexpected(&reasons));
            }
            tokio::time::sleep(ops::jitter(round)).await;
        }
        Err(StoreError::backend(
            "TransactWriteItems",
            Cancelled(conflict()),
        ))
    }
}

/// What a batch's first-lease transaction found.
enum FirstLease {
    Taken,
    /// The campaign is paused, failed or gone.
    Stopped,
    /// The batch was leased before (the campaign is running).
    Exists,
}

/// The sort key of a lease item's key, for messages.
fn lease_sk_of(key: &Item) -> &str {
    match key.get("sk") {
        Some(AttributeValue::S(sk)) => sk,
        _ => "",
    }
}

/// Whether an item of a cancelled transaction failed its condition.
pub(super) fn failed(reasons: &[CancellationReason], at: usize) -> bool {
    reasons.get(at).and_then(|r| r.code()) == Some(CONDITION_FAILED)
}
