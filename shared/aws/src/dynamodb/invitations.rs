//! What is learnt about invitations (SES events, send outcomes, unsubscribes,
//! registrations), a campaign's invitations and a division's campaigns as lists, and
//! recounting a campaign's counters. Items are described in `campaigns`.
//!
//! # Applying facts
//!
//! The domain decides ([`InvitationState::apply`]); this module reads and writes:
//!
//! 1. Read the invitations the facts name: a GetItem for one contact, BatchGetItem for
//!    several (strongly consistent, unprocessed keys retried).
//! 2. Fold each contact's facts, in order, over the state read. A contact whose facts
//!    change nothing (duplicates, outranked events) is done: **no write**.
//! 3. One TransactWriteItems for the changed ones: per invitation an Update of `cat`, `snd`,
//!    `sup` (and `why`) conditioned on exactly the `cat`, `snd` and `sup` read; per address a
//!    transition suppresses, an Update of the tenant's suppression item that keeps the first
//!    reason (`if_not_exists`: the item `SuppressionStore::suppress` writes, but one that
//!    cannot cancel the transaction when the address is already on the list); and one Update
//!    `ADD`ing the net moves to the campaign's counters (left out when nothing moves, e.g. a
//!    permanent bounce after an open only suppresses). More than 100 items are split into
//!    several transactions, each complete on its own.
//! 4. A transaction cancelled by a condition (another writer moved an invitation since the
//!    read) or a conflict wrote nothing: its contacts are read again and folded again, up to
//!    [`MAX_FACT_ROUNDS`] rounds with jittered back-off. Counters move only in the write that
//!    moves the invitation, so no update is lost or counted twice.
//!
//! The delivery step's outcomes (`record_send_outcomes`) skip step 1 the first time: they
//! concern invitations it has just read as freshly claimed, so their first round assumes
//! [`InvitationState::new`] and lets the conditions check it; an invitation that moved
//! meanwhile (an SES event arrived first) or does not exist cancels the transaction and is
//! read in the next round as usual.
//!
//! Requests for one fact: 1 GetItem, plus 1 TransactWriteItems when it changes the
//! invitation (a permanent bounce or complaint included: the suppression is in the same
//! transaction). For n facts on distinct contacts: ⌈n/100⌉ BatchGetItem and about ⌈n/99⌉
//! TransactWriteItems.
//!
//! # Lists
//!
//! A campaign's invitations: Query its partition from `INV#{after}`, with a FilterExpression
//! on `cat` and `contains(q, search)` when filtered (each match re-checked with
//! [`InvitationFilter::matches`]), page after page until `limit + 1` match, so `next_cursor`
//! is `None` exactly when nothing follows. A division's campaigns: Query its
//! `T#{t}#DCMP#{division}` partition backwards (newest id first) for `limit + 1` ids, then
//! BatchGetItem the campaigns.
//!
//! # Recount
//!
//! GetItem the campaign, Query its invitations (projected to `cat`, `snd`) and count. A fix
//! (asked, drift or not) is one UpdateItem setting the eleven counters on condition that each
//! still holds the value read: a write in between (which moves them) makes the fix a no-op,
//! reported as not fixed.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use time::OffsetDateTime;

use super::batch;
use super::campaigns::{
    build_err, category_attr, decode_campaign, decode_counters, decode_invitation, decode_state,
    invitation_contact, retryable, send_attr, Cancelled, Deltas, TooMany, CAMPAIGN_SK, CATEGORY,
    EMAIL, REASON, SEARCH, SEND, SUPPRESSED,
};
use super::items::{self, s, Item};
use super::items::{malformed, num, req_str};
use super::keys;
use super::keys::{campaign_pk, division_campaigns_pk, invitation_sk, INVITATION_SK_PREFIX};
use super::ops::{self, cancellation, jitter, CONDITION_FAILED};
use super::DynamoStore;
use portal_core::domain::{
    Campaign, CampaignId, CategoryCounts, ContactId, DivisionId, Email, Invitation,
    InvitationCategory, InvitationFact, InvitationState, SendCounts, SendState, Suppression,
    TenantId,
};
use portal_core::ports::{
    decode_campaign_cursor, decode_invitation_cursor, encode_campaign_cursor,
    encode_invitation_cursor, BatchWritten, FactResult, InvitationFilter, Page, Recount,
    StoreError, SuppressionReason, MAX_CLAIMS, MAX_PAGE_SIZE,
};

/// Rounds of reading and writing facts before giving up on a contested invitation.
pub(super) const MAX_FACT_ROUNDS: u32 = 8;
/// Items of one TransactWriteItems (AWS limit).
const MAX_TRANSACTION_ITEMS: usize = 100;

/// One contact's facts folded over the state read, when they change it.
struct Change {
    /// Index into the call's contact groups.
    group: usize,
    contact: ContactId,
    /// The invitation's address, when it was read (a transition that suppresses always is).
    email: Option<Email>,
    from: InvitationState,
    to: InvitationState,
    suppress: Option<Suppression>,
}

/// How a transaction of changes ended.
enum Sent {
    Written,
    /// Cancelled by a condition or a conflict: nothing was written, read again.
    Retry,
    /// Cancelled by the extra item's condition alone: nothing was written; write the
    /// changes again without it.
    ExtraFailed,
    /// Cancelled by the drain check alone (the write would complete the campaign):
    /// nothing was written; write the changes again without the check.
    Drains,
}

fn suppression_reason(s: Suppression) -> SuppressionReason {
    match s {
        Suppression::Bounced => SuppressionReason::Bounced,
        Suppression::Complained => SuppressionReason::Complained,
    }
}

impl DynamoStore {
    pub(super) async fn apply_invitation_facts(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        facts: &[(ContactId, InvitationFact)],
        send_outcomes: bool,
    ) -> Result<Vec<FactResult>, StoreError> {
        self.apply_invitation_facts_with(tenant, campaign, facts, send_outcomes, None, false)
            .await
            .map(|w| w.results)
    }

    /// [`DynamoStore::apply_invitation_facts`] with one more conditional item (a delivery
    /// lease's step) written in the first transaction: `false` when its condition failed (the
    /// facts are written all the same, without it).
    pub(super) async fn apply_invitation_facts_with(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        facts: &[(ContactId, InvitationFact)],
        send_outcomes: bool,
        extra: Option<TransactWriteItem>,
        drain_check: bool,
    ) -> Result<BatchWritten, StoreError> {
        let mut extra = extra;
        let mut kept = true;
        // Whether the campaign is drained after this call: known when everything went in one
        // transaction that carried (or, once refused, had just failed) the drain check.
        let mut drained: Option<bool> = None;
        let mut written = 0usize;
        if facts.len() > MAX_CLAIMS {
            return Err(StoreError::backend(
                "TransactWriteItems",
                TooMany("at most 500 facts per call"),
            ));
        }
        // Each contact's facts, in call order.
        let mut groups: Vec<(&ContactId, Vec<usize>)> = Vec::new();
        let mut group_of: HashMap<&ContactId, usize> = HashMap::new();
        for (i, (contact, _)) in facts.iter().enumerate() {
            let g = *group_of.entry(contact).or_insert_with(|| {
                groups.push((contact, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        let mut results = vec![FactResult::Missing; facts.len()];
        let mut pending: Vec<usize> = (0..groups.len()).collect();
        // The delivery step's outcomes are written blind first (see the module docs). SES's
        // own Send events come through `apply_facts` and are read first: blind, a duplicate
        // would cost a cancelled write.
        let outcomes_only = send_outcomes
            && facts.iter().all(|(_, f)| {
                matches!(f, InvitationFact::Sent | InvitationFact::SendFailed { .. })
            });
        for round in 0..MAX_FACT_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let blind = round == 0 && outcomes_only;
            let read = if blind {
                HashMap::new()
            } else {
                let contacts: Vec<&ContactId> = pending.iter().map(|&g| groups[g].0).collect();
                self.read_invitations(tenant, campaign, &contacts).await?
            };
            let mut changes = Vec::new();
            for &g in &pending {
                let (contact, indices) = &groups[g];
                let (from, email) = match read.get(*contact) {
                    Some(item) => (
                        decode_state(item)?,
                        Some(Email::parse(req_str(item, EMAIL)?).map_err(|_| malformed(EMAIL))?),
                    ),
                    None if blind => (InvitationState::new(), None),
                    None => {
                        for &i in indices {
                            results[i] = FactResult::Missing;
                        }
                        continue;
                    }
                };
                let mut state = from.clone();
                let mut suppress = None;
                for &i in indices {
                    results[i] = match state.apply(&facts[i].1) {
                        None => FactResult::Unchanged,
                        Some(t) => {
                            suppress = suppress.or(t.suppress);
                            state = t.to.clone();
                            FactResult::Changed(t)
                        }
                    };
                }
                if state != from {
                    changes.push(Change {
                        group: g,
                        contact: (*contact).clone(),
                        email,
                        from,
                        to: state,
                        suppress,
                    });
                }
            }
            let mut retry = Vec::new();
            let chunks = transactions(&changes, usize::from(extra.is_some()));
            let single = chunks.len() == 1;
            for chunk in chunks {
                let with = extra.take();
                let checked = drain_check && single;
                let mut sent = self
                    .write_changes(tenant, campaign, chunk, with.as_ref(), checked)
                    .await?;
                let mut drains = checked.then_some(false);
                if matches!(sent, Sent::Drains) {
                    // Every other condition held: this write brings a `sending` campaign's
                    // pending count to zero. The same write again, without the check.
                    drains = Some(true);
                    sent = self
                        .write_changes(tenant, campaign, chunk, with.as_ref(), false)
                        .await?;
                }
                match sent {
                    Sent::Written | Sent::Drains => {
                        written += 1;
                        drained = drains;
                    }
                    Sent::ExtraFailed => {
                        kept = false;
                        retry.extend(chunk.iter().map(|c| c.group));
                    }
                    Sent::Retry => {
                        extra = with;
                        tracing::debug!(
                            invitations = chunk.len(),
                            round,
                            "invitations changed since read; reading them again"
                        );
                        retry.extend(chunk.iter().map(|c| c.group));
                    }
                }
            }
            pending = retry;
            if !pending.is_empty() {
                tokio::time::sleep(jitter(round)).await;
            }
        }
        if pending.is_empty() {
            if let Some(item) = extra {
                // Nothing changed (every fact a duplicate): the step goes alone.
                kept = self.write_alone(item).await?;
            }
            // Known when one transaction wrote every change, checked (or refused by the
            // check alone and written again without it, unchanged in between).
            if written != 1 {
                drained = None;
            }
            return Ok(BatchWritten {
                results,
                kept,
                drained,
            });
        }
        Err(StoreError::backend(
            "TransactWriteItems",
            Cancelled(format!(
                "{} invitations kept changing while facts were applied",
                pending.len()
            )),
        ))
    }

    /// The invitation items of `contacts` (distinct), by contact id.
    async fn read_invitations(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        contacts: &[&ContactId],
    ) -> Result<HashMap<ContactId, Item>, StoreError> {
        let pk = campaign_pk(tenant, campaign);
        let found = match contacts {
            [] => Vec::new(),
            [one] => self
                .get_item("GetItem", items::key(pk, invitation_sk(one)))
                .await?
                .into_iter()
                .collect(),
            many => {
                let keys = many
                    .iter()
                    .map(|c| items::key(pk.clone(), invitation_sk(c)))
                    .collect();
                batch::get_all(&self.client, &self.table, keys, None).await?
            }
        };
        found
            .into_iter()
            .map(|item| Ok((invitation_contact(&item)?, item)))
            .collect()
    }

    /// One conditional item on its own; `false` when its condition failed.
    async fn write_alone(&self, item: TransactWriteItem) -> Result<bool, StoreError> {
        for round in 0..MAX_FACT_ROUNDS {
            let sent = {
                let _one_at_a_time = self.transaction_guard().await;
                self.client
                    .transact_write_items()
                    .transact_items(item.clone())
                    .send()
                    .await
            };
            match sent {
                Ok(_) => return Ok(true),
                Err(e) => {
                    let reasons = cancellation(e)?;
                    if reasons.iter().any(|r| r.code() == Some(CONDITION_FAILED)) {
                        return Ok(false);
                    }
                    if !ops::all_retryable(&reasons) {
                        return Err(ops::unexpected(&reasons));
                    }
                    tokio::time::sleep(jitter(round)).await;
                }
            }
        }
        Err(StoreError::backend(
            "TransactWriteItems",
            Cancelled("a lease step kept conflicting".into()),
        ))
    }

    /// Writes one transaction's changes (see the module docs), with `extra` last.
    async fn write_changes(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        changes: &[Change],
        extra: Option<&TransactWriteItem>,
        drain_check: bool,
    ) -> Result<Sent, StoreError> {
        let mut request = self.client.transact_write_items();
        let mut deltas = Deltas::default();
        let mut suppressed: HashSet<String> = HashSet::new();
        let mut suppression_items = Vec::new();
        let at = items::time_value(OffsetDateTime::now_utc())?;
        for c in changes {
            request = request.transact_items(self.invitation_update(tenant, campaign, c)?);
            deltas.moved(&c.from, &c.to);
            if let (Some(why), Some(email)) = (c.suppress, &c.email) {
                // Two contacts may share an address; a transaction names an item once.
                if suppressed.insert(email.normalized()) {
                    suppression_items.push(self.suppression_update(tenant, email, why, &at)?);
                }
            }
        }
        let suppressions = suppression_items.len();
        for item in suppression_items {
            request = request.transact_items(item);
        }
        let moves = deltas.nonzero();
        // The drain check: the write does not complete the campaign (see `counters_item_with`).
        let resolved = moves
            .iter()
            .find(|(attr, _)| *attr == send_attr(SendState::Pending))
            .map_or(0, |(_, d)| -d);
        let keep_above = (drain_check && resolved > 0).then_some(resolved);
        if !moves.is_empty() {
            request = request
                .transact_items(self.counters_item_with(tenant, campaign, &moves, keep_above)?);
        }
        if let Some(item) = extra {
            request = request.transact_items(item.clone());
        }
        let sent = {
            let _one_at_a_time = self.transaction_guard().await;
            request.send().await
        };
        let reasons = match sent {
            Ok(_) => return Ok(Sent::Written),
            Err(e) => cancellation(e)?,
        };
        let counters_at = changes.len() + suppressions;
        let extra_at = counters_at + usize::from(!moves.is_empty());
        if extra.is_some() && super::leases::failed(&reasons, extra_at) {
            // The lease moved on: write the changes again without it (they are still due).
            return Ok(Sent::ExtraFailed);
        }
        let counters_failed = !moves.is_empty()
            && reasons.get(counters_at).and_then(|r| r.code()) == Some(CONDITION_FAILED);
        if counters_failed
            && keep_above.is_some()
            && reasons.get(counters_at).and_then(|r| r.item()).is_some()
        {
            let others_held = reasons
                .iter()
                .enumerate()
                .all(|(i, r)| i == counters_at || r.code().is_none_or(|c| c == "None"));
            return Ok(if others_held {
                Sent::Drains
            } else {
                Sent::Retry
            });
        }
        if counters_failed {
            return Err(StoreError::backend(
                "TransactWriteItems",
                Cancelled(format!("campaign {campaign} does not exist")),
            ));
        }
        for r in &reasons {
            let code = r.code().unwrap_or("None");
            if code != CONDITION_FAILED && !retryable(code) {
                return Err(StoreError::backend(
                    "TransactWriteItems",
                    Cancelled(code.to_owned()),
                ));
            }
        }
        Ok(Sent::Retry)
    }

    /// The invitation's new state, on condition that it is still in the state read.
    fn invitation_update(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        c: &Change,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut set = "SET #cat = :cat, #snd = :snd, #sup = :sup".to_owned();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(
                campaign_pk(tenant, campaign),
                invitation_sk(&c.contact),
            )))
            .condition_expression("#cat = :fcat AND #snd = :fsnd AND #sup = :fsup")
            .expression_attribute_names("#cat", CATEGORY)
            .expression_attribute_names("#snd", SEND)
            .expression_attribute_names("#sup", SUPPRESSED)
            .expression_attribute_values(":cat", s(c.to.category.as_str()))
            .expression_attribute_values(":snd", s(c.to.send.as_str()))
            .expression_attribute_values(":sup", AttributeValue::Bool(c.to.suppressed))
            .expression_attribute_values(":fcat", s(c.from.category.as_str()))
            .expression_attribute_values(":fsnd", s(c.from.send.as_str()))
            .expression_attribute_values(":fsup", AttributeValue::Bool(c.from.suppressed));
        if c.to.reason != c.from.reason {
            update = update.expression_attribute_names("#why", REASON);
            match &c.to.reason {
                Some(r) => {
                    set.push_str(", #why = :why");
                    update = update.expression_attribute_values(":why", s(r));
                }
                None => set.push_str(" REMOVE #why"),
            }
        }
        let update = update.update_expression(set).build().map_err(build_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Puts the invitation's address on the tenant's suppression list, keeping the reason
    /// and time of an entry already there.
    fn suppression_update(
        &self,
        tenant: &TenantId,
        email: &Email,
        why: Suppression,
        at: &AttributeValue,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::suppression_pk(tenant),
                keys::suppression_sk(&email.normalized()),
            )))
            .update_expression("SET #r = if_not_exists(#r, :r), #at = if_not_exists(#at, :at)")
            .expression_attribute_names("#r", items::REASON)
            .expression_attribute_names("#at", items::SUPPRESSED_AT)
            .expression_attribute_values(":r", s(suppression_reason(why).as_str()))
            .expression_attribute_values(":at", at.clone())
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    pub(super) async fn invitation_page(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        filter: &InvitationFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Invitation>, StoreError> {
        let after = cursor.map(decode_invitation_cursor).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let lower = match &after {
            Some(a) => invitation_sk(a),
            None => INVITATION_SK_PREFIX.to_owned(),
        };
        let mut conditions = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::from([
            (":pk".to_owned(), s(campaign_pk(tenant, campaign))),
            (":lo".to_owned(), s(format!("{lower}\u{1}"))),
            // Every id character sorts below `~`.
            (":hi".to_owned(), s(format!("{INVITATION_SK_PREFIX}~"))),
        ]);
        if let Some(c) = filter.category {
            conditions.push("#cat = :cat");
            names.insert("#cat".to_owned(), CATEGORY.to_owned());
            values.insert(":cat".to_owned(), s(c.as_str()));
        }
        if !filter.search.is_empty() {
            conditions.push("contains(#q, :q)");
            names.insert("#q".to_owned(), SEARCH.to_owned());
            values.insert(":q".to_owned(), s(&filter.search));
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
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .set_filter_expression(filtered.then(|| conditions.join(" AND ")))
                .set_expression_attribute_names((!names.is_empty()).then(|| names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .set_limit(budget.limit(filtered, limit + 1 - found.len()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::backend("Query", e))?;
            for item in page.items() {
                let inv = decode_invitation(campaign, item)?;
                if filter.matches(&inv) {
                    found.push(inv);
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
                .map(|i| encode_invitation_cursor(&i.contact_id))
        } else {
            // Out of items to examine (or the page is just full): go on after the last read.
            start
                .as_ref()
                .map(|key| invitation_contact(key).map(|c| encode_invitation_cursor(&c)))
                .transpose()?
        };
        Ok(Page {
            items: found,
            next_cursor,
        })
    }

    pub(super) async fn campaign_page(
        &self,
        tenant: &TenantId,
        division: &DivisionId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Campaign>, StoreError> {
        let before = cursor.map(decode_campaign_cursor).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let mut values =
            HashMap::from([(":pk".to_owned(), s(division_campaigns_pk(tenant, division)))]);
        let key_condition = match &before {
            Some(b) => {
                values.insert(":before".to_owned(), s(b.as_str()));
                "pk = :pk AND sk < :before"
            }
            None => "pk = :pk",
        };
        let mut ids: Vec<CampaignId> = Vec::with_capacity(limit + 1);
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition)
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .limit((limit + 1 - ids.len()) as i32)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::backend("Query", e))?;
            for item in page.items() {
                let id = req_str(item, items::SK)?;
                ids.push(CampaignId::parse(id).map_err(|_| malformed("campaign id"))?);
            }
            start = page.last_evaluated_key;
            if start.is_none() || ids.len() > limit {
                break;
            }
        }
        let next_cursor = if ids.len() > limit {
            ids.truncate(limit);
            ids.last().map(encode_campaign_cursor)
        } else {
            None
        };
        let keys = ids
            .iter()
            .map(|id| items::key(campaign_pk(tenant, id), CAMPAIGN_SK))
            .collect();
        let mut by_id: HashMap<CampaignId, Campaign> = HashMap::new();
        for item in batch::get_all(&self.client, &self.table, keys, None).await? {
            let c = decode_campaign(&item)?;
            by_id.insert(c.campaign_id.clone(), c);
        }
        Ok(Page {
            items: ids.iter().filter_map(|id| by_id.remove(id)).collect(),
            next_cursor,
        })
    }

    pub(super) async fn recount(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        fix: bool,
    ) -> Result<Option<Recount>, StoreError> {
        let pk = campaign_pk(tenant, campaign);
        let Some(item) = self
            .get_item("GetItem", items::key(pk.clone(), CAMPAIGN_SK))
            .await?
        else {
            return Ok(None);
        };
        let stored = decode_counters(&item)?;
        let mut categories = CategoryCounts::default();
        let mut sends = SendCounts::default();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :inv)")
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":inv", s(INVITATION_SK_PREFIX))
            .projection_expression("#cat, #snd")
            .expression_attribute_names("#cat", CATEGORY)
            .expression_attribute_names("#snd", SEND)
            .consistent_read(true);
        ops::query_all(query, |item| {
            let cat = InvitationCategory::parse(req_str(item, CATEGORY)?)
                .ok_or_else(|| malformed(CATEGORY))?;
            let snd = SendState::parse(req_str(item, SEND)?).ok_or_else(|| malformed(SEND))?;
            *categories.get_mut(cat) += 1;
            *sends.get_mut(snd) += 1;
            Ok(())
        })
        .await?;
        let counted = (categories, sends);
        let mut recount = Recount {
            stored,
            counted,
            fixed: false,
        };
        if fix {
            recount.fixed = self.store_counters(&pk, stored, counted).await?;
        }
        Ok(Some(recount))
    }

    /// Sets the campaign's counters to `counted` if they still hold `stored`.
    async fn store_counters(
        &self,
        pk: &str,
        stored: (CategoryCounts, SendCounts),
        counted: (CategoryCounts, SendCounts),
    ) -> Result<bool, StoreError> {
        let (mut old_sends, mut new_sends) = (stored.1, counted.1);
        let mut counters: Vec<(&'static str, u64, u64)> = InvitationCategory::ALL
            .into_iter()
            .map(|c| (category_attr(c), stored.0.get(c), counted.0.get(c)))
            .collect();
        for st in SendState::ALL {
            counters.push((
                send_attr(st),
                *old_sends.get_mut(st),
                *new_sends.get_mut(st),
            ));
        }
        let mut sets = Vec::new();
        let mut conditions = vec!["attribute_exists(pk)".to_owned()];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(pk.to_owned(), CAMPAIGN_SK)));
        for (i, (attr, old, new)) in counters.into_iter().enumerate() {
            sets.push(format!("#c{i} = :n{i}"));
            // A counter never written (an older item) reads as 0.
            conditions.push(if old == 0 {
                format!("(attribute_not_exists(#c{i}) OR #c{i} = :o{i})")
            } else {
                format!("#c{i} = :o{i}")
            });
            request = request
                .expression_attribute_names(format!("#c{i}"), attr)
                .expression_attribute_values(format!(":n{i}"), num(new))
                .expression_attribute_values(format!(":o{i}"), num(old));
        }
        let result = request
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if ops::condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::backend("UpdateItem", e)),
        }
    }
}

/// Splits changes into transactions of at most 100 items: one per invitation, one per
/// suppressed address, and the campaign's counters; the first leaves `reserve` items free.
fn transactions(changes: &[Change], reserve: usize) -> Vec<&[Change]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 1 + reserve; // the counters
    let mut emails: HashSet<String> = HashSet::new();
    for (i, c) in changes.iter().enumerate() {
        let email = c.suppress.and(c.email.as_ref()).map(Email::normalized);
        let need = 1 + usize::from(email.as_ref().is_some_and(|e| !emails.contains(e)));
        if used + need > MAX_TRANSACTION_ITEMS {
            out.push(&changes[start..i]);
            start = i;
            used = 1;
            emails.clear();
        }
        used += 1;
        if let Some(e) = email {
            if emails.insert(e) {
                used += 1;
            }
        }
    }
    if start < changes.len() {
        out.push(&changes[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(i: usize, suppress: bool, email: &str) -> Change {
        Change {
            group: i,
            contact: ContactId::parse(format!("c{i}")).unwrap(),
            email: Some(Email::parse(email).unwrap()),
            from: InvitationState::new(),
            to: InvitationState::new(),
            suppress: suppress.then_some(Suppression::Bounced),
        }
    }

    #[test]
    fn transactions_never_exceed_one_hundred_items() {
        let changes: Vec<Change> = (0..250)
            .map(|i| change(i, i % 3 == 0, &format!("a{i}@example.com")))
            .collect();
        let chunks = transactions(&changes, 0);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 250);
        for chunk in &chunks {
            let items = 1 + chunk.len() + chunk.iter().filter(|c| c.suppress.is_some()).count();
            assert!(items <= MAX_TRANSACTION_ITEMS, "{items}");
        }
        // 99 plain changes fill one transaction with the counters.
        let plain: Vec<Change> = (0..100)
            .map(|i| change(i, false, "a@example.com"))
            .collect();
        let sizes: Vec<usize> = transactions(&plain, 0).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [99, 1]);
        // A shared address is suppressed once per transaction.
        let shared: Vec<Change> = (0..60)
            .map(|i| change(i, true, "Same@Example.com"))
            .collect();
        assert_eq!(transactions(&shared, 0).len(), 1);
    }
}
