//! [`CampaignSweepStore`] on DynamoDB: every tenant's unfinished campaigns from the sparse
//! `gsi1`, and one watch record item per campaign beside it.
//!
//! # Items
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | campaign (see `campaigns`) | `T#{t}#CMP#{campaign}` | `CMP` | while not completed or failed: `gsi1pk` = `ACTIVE#CMP`, `gsi1sk` = `{created_at}#T#{t}#{campaign}` |
//! | watch record | `T#{t}#CMP#{campaign}` | `SWEEP` | `fp` (N: the progress fingerprint, 64 bits), `since` (N: unix seconds), `ttl` (`since` + [`WATCH_RETENTION`]) |
//!
//! **The index.** A campaign item is written with the index keys when it is recorded
//! (`encode_campaign`, through `items::active_campaign_index`), and `update_campaign_status` removes them in the same UpdateItem
//! that moves the campaign to `completed` or `failed` — terminal statuses, so a campaign
//! never needs them back. The index partition `ACTIVE#CMP` therefore holds exactly the
//! unfinished campaigns of every tenant, oldest first (`created_at` is fixed-width, so the
//! sort key sorts by time), and listing them is a Query of that one partition, no Scan,
//! however many campaigns finished. A `paused` campaign keeps its keys (a resume makes it
//! `queued` again, and the status update knows neither its creation time nor should it
//! rewrite keys): the Query's FilterExpression leaves it out, at the price of reading it.
//! Paused campaigns are few and short-lived; a DynamoDB Query charges for items read, a
//! handful here. The index's keys never clash with its other users (`T#…#ANUM#…`, `TOK#…`,
//! `REC#ENABLED`). Campaigns recorded before the index existed carry no keys and are not
//! swept.
//!
//! The index is eventually consistent: a campaign recorded a moment ago may be missed by one
//! sweep (it is younger than `idle` anyway), and one that finished a moment ago may be listed
//! once more as it was: re-publishing a finished campaign does nothing (every send step
//! leaves a completed one alone).
//!
//! **Watch records** share their campaign's partition (`SWEEP` sorts apart from `CMP` and
//! the `INV#` invitations, and every invitation Query is bounded to `INV#`), so they cost no
//! index write. `put_watch` is one UpdateItem conditioned on the record read
//! (`attribute_not_exists(pk)`, or `fp` and `since` equal to the expected ones): of two
//! sweeps at once, one wins. A record outlives its campaign by at most [`WATCH_RETENTION`]
//! (DynamoDB's TTL deletes it); an active campaign's record is rewritten at least once per
//! `idle` (re-published, or moved), so TTL never removes a live one while `idle` is shorter
//! than the retention (`SweepIdleMinutes` is capped at a day).
//!
//! # Requests per sweep
//!
//! | operation | requests |
//! |---|---|
//! | `active_campaigns` | Query `gsi1` `gsi1pk = ACTIVE#CMP` (FilterExpression on status; one page per 1 MB, i.e. per ~1,000 campaigns), then BatchGetItem of their watch records (one per 100) |
//! | `put_watch` | UpdateItem (only for a campaign that moved or is re-published) |
//!
//! A sweep with nothing unfinished costs one Query; with `n` unfinished campaigns, one
//! Query, `⌈n/100⌉` BatchGetItem, and one UpdateItem (plus one PutEvents) per campaign
//! re-published or seen moving. Every few minutes, that is a few thousand requests a day.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use portal_core::domain::{Campaign, CampaignId, CampaignStatus, TenantId};
use portal_core::ports::{ActiveCampaign, CampaignSweepStore, StoreError, SweepWatch};

use super::campaigns::decode_campaign;
use super::items::{self, get_num, malformed, num, req_str, s, Item, ACTIVE_CAMPAIGNS_GSI_PK};
use super::keys::campaign_pk;
use super::table::{GSI1, TTL_ATTRIBUTE};
use super::{batch, ops, DynamoStore};

/// Sort key of a campaign's watch record in the campaign's partition.
const WATCH_SK: &str = "SWEEP";
const FINGERPRINT: &str = "fp";
const SINCE: &str = "since";

/// How long a watch record is kept after it was last written (see the module docs).
pub const WATCH_RETENTION: time::Duration = time::Duration::days(30);

/// The tenant of a campaign partition key `T#{t}#CMP#{campaign}`.
fn tenant_of(pk: &str) -> Result<TenantId, StoreError> {
    pk.strip_prefix("T#")
        .and_then(|rest| rest.split_once("#CMP#"))
        .and_then(|(t, _)| TenantId::parse(t).ok())
        .ok_or_else(|| malformed("campaign partition key"))
}

fn watch_key(t: &TenantId, c: &CampaignId) -> Item {
    items::key(campaign_pk(t, c), WATCH_SK)
}

fn epoch(t: OffsetDateTime) -> AttributeValue {
    AttributeValue::N(t.unix_timestamp().to_string())
}

fn decode_watch(item: &Item) -> Result<SweepWatch, StoreError> {
    let since = i64::try_from(get_num(item, SINCE)?).map_err(|_| malformed(SINCE))?;
    Ok(SweepWatch {
        fingerprint: get_num(item, FINGERPRINT)?,
        since: OffsetDateTime::from_unix_timestamp(since).map_err(|_| malformed(SINCE))?,
    })
}

#[async_trait]
impl CampaignSweepStore for DynamoStore {
    async fn active_campaigns(&self) -> Result<Vec<ActiveCampaign>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#gpk = :gpk")
            .filter_expression("#st IN (:queued, :fanning, :sending)")
            .expression_attribute_names("#gpk", items::GSI1PK)
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":gpk", s(ACTIVE_CAMPAIGNS_GSI_PK))
            .expression_attribute_values(":queued", s(CampaignStatus::Queued.as_str()))
            .expression_attribute_values(":fanning", s(CampaignStatus::FanningOut.as_str()))
            .expression_attribute_values(":sending", s(CampaignStatus::Sending.as_str()));
        let mut listed: Vec<(TenantId, Campaign)> = Vec::new();
        ops::query_all(query, |item| {
            let tenant = tenant_of(req_str(item, items::PK)?)?;
            listed.push((tenant, decode_campaign(item)?));
            Ok(())
        })
        .await?;
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        let keys = listed
            .iter()
            .map(|(t, c)| watch_key(t, &c.campaign_id))
            .collect();
        let mut watches: HashMap<String, SweepWatch> = HashMap::new();
        for item in batch::get_all(&self.client, &self.table, keys, None).await? {
            watches.insert(req_str(&item, items::PK)?.to_owned(), decode_watch(&item)?);
        }
        Ok(listed
            .into_iter()
            .map(|(tenant, campaign)| {
                let watch = watches
                    .get(&campaign_pk(&tenant, &campaign.campaign_id))
                    .copied();
                ActiveCampaign {
                    tenant,
                    campaign,
                    watch,
                }
            })
            .collect())
    }

    async fn put_watch(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        watch: &SweepWatch,
        expected: Option<&SweepWatch>,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(watch_key(tenant, campaign)))
            .update_expression("SET #fp = :fp, #since = :since, #ttl = :ttl")
            .expression_attribute_names("#fp", FINGERPRINT)
            .expression_attribute_names("#since", SINCE)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":fp", num(watch.fingerprint))
            .expression_attribute_values(":since", epoch(watch.since))
            .expression_attribute_values(":ttl", epoch(watch.since + WATCH_RETENTION));
        request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(e) => request
                .condition_expression("#fp = :efp AND #since = :esince")
                .expression_attribute_values(":efp", num(e.fingerprint))
                .expression_attribute_values(":esince", epoch(e.since)),
        };
        // moto checks a single write's condition without isolation (see `start_run`).
        let _one_at_a_time = self.transaction_guard().await;
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if ops::condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::backend("UpdateItem", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_campaign_partition_key_names_its_tenant() {
        let c = CampaignId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let t = TenantId::parse("acme-1").unwrap();
        assert_eq!(tenant_of(&campaign_pk(&t, &c)).unwrap(), t);
        for bad in ["T#acme", "X#acme#CMP#1", "T##CMP#1", "T#a#b#CMP#1"] {
            assert!(tenant_of(bad).is_err(), "{bad}");
        }
    }
}
