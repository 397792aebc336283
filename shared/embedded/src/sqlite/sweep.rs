//! [`CampaignSweepStore`] on SQLite: the active campaigns through the partial index
//! `campaigns_active`, and their watch records in `campaign_sweeps` (both in
//! [`super::schema`], version 8).
//!
//! - `active_campaigns`: one statement over the index (queued, fanning-out and sending
//!   campaigns only, oldest first) joined with their records, then each campaign read by key
//!   ([`load_campaign`]): a handful of rows on one machine, whatever the number of finished
//!   campaigns.
//! - `put_watch`: one `IMMEDIATE` transaction: read the record, compare it with the one
//!   expected, write. The single write connection serialises it with every other write, so
//!   two sweeps cannot both pass the comparison.
//!
//! A record is dropped by a trigger when its campaign leaves the active statuses, so a
//! campaign paused and resumed starts afresh. The fingerprint is stored as the `INTEGER`
//! with the same 64 bits; `since` as unix seconds, like every time in this store.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::campaigns::load_campaign;
use super::{from_ts, parse_stored, ts, OrStore, SqliteStore};
use portal_core::domain::{CampaignId, TenantId};
use portal_core::ports::{ActiveCampaign, CampaignSweepStore, StoreError, SweepWatch};

/// A campaign listed as active vanished between the two reads (it cannot: nothing deletes a
/// campaign). Reported rather than skipped.
#[derive(Debug, thiserror::Error)]
#[error("campaign {0} vanished while it was read")]
struct Vanished(String);

/// The fingerprint's 64 bits as SQLite's signed integer, and back.
fn to_sql(fingerprint: u64) -> i64 {
    i64::from_ne_bytes(fingerprint.to_ne_bytes())
}

fn from_sql(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

fn watch_of(
    op: &'static str,
    fingerprint: Option<i64>,
    since: Option<i64>,
) -> Result<Option<SweepWatch>, StoreError> {
    match (fingerprint, from_ts(op, since)?) {
        (Some(f), Some(since)) => Ok(Some(SweepWatch {
            fingerprint: from_sql(f),
            since,
        })),
        _ => Ok(None),
    }
}

/// What `put_watch` compares: the fingerprint and `since` to the second (what is stored).
fn key_of(w: Option<&SweepWatch>) -> Option<(i64, i64)> {
    w.map(|w| (to_sql(w.fingerprint), ts(w.since)))
}

#[async_trait]
impl CampaignSweepStore for SqliteStore {
    async fn active_campaigns(&self) -> Result<Vec<ActiveCampaign>, StoreError> {
        const OP: &str = "active_campaigns";
        self.read(OP, move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT c.tenant, c.campaign_id, w.fingerprint, w.since \
                     FROM campaigns c INDEXED BY campaigns_active \
                     LEFT JOIN campaign_sweeps w \
                       ON w.tenant = c.tenant AND w.campaign_id = c.campaign_id \
                     WHERE c.status IN ('queued', 'fanning_out', 'sending') \
                     ORDER BY c.created_at, c.campaign_id",
                )
                .or_store(OP)?;
            let listed: Vec<(String, String, Option<i64>, Option<i64>)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .or_store(OP)?
                .collect::<rusqlite::Result<_>>()
                .or_store(OP)?;
            let mut out = Vec::with_capacity(listed.len());
            for (tenant, id, fingerprint, since) in listed {
                let campaign = load_campaign(OP, conn, &tenant, &id)?
                    .ok_or_else(|| StoreError::backend(OP, Vanished(id.clone())))?;
                out.push(ActiveCampaign {
                    tenant: parse_stored(OP, "tenant", TenantId::parse(tenant))?,
                    campaign,
                    watch: watch_of(OP, fingerprint, since)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn put_watch(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        watch: &SweepWatch,
        expected: Option<&SweepWatch>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "put_watch";
        let (tenant, campaign) = (tenant.clone(), campaign.clone());
        let new = (to_sql(watch.fingerprint), ts(watch.since));
        let expected = key_of(expected);
        self.write(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_store(OP)?;
            let stored: Option<(i64, i64)> = tx
                .prepare_cached(
                    "SELECT fingerprint, since FROM campaign_sweeps \
                     WHERE tenant = ?1 AND campaign_id = ?2",
                )
                .or_store(OP)?
                .query_row(params![tenant.as_str(), campaign.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .or_store(OP)?;
            if stored != expected {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO campaign_sweeps (tenant, campaign_id, fingerprint, since) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (tenant, campaign_id) DO UPDATE \
                 SET fingerprint = excluded.fingerprint, since = excluded.since",
            )
            .or_store(OP)?
            .execute(params![tenant.as_str(), campaign.as_str(), new.0, new.1])
            .or_store(OP)?;
            tx.commit().or_store(OP)?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    #[test]
    fn every_fingerprint_survives_the_signed_column() {
        for f in [0, 1, u64::MAX, 1 << 63, 0x2b24_3fc0_df82_c099] {
            assert_eq!(from_sql(to_sql(f)), f);
        }
    }

    #[test]
    fn records_compare_to_the_second() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let w = SweepWatch {
            fingerprint: 7,
            since: at + time::Duration::milliseconds(400),
        };
        assert_eq!(key_of(Some(&w)), Some((7, 1_800_000_000)));
        assert_eq!(key_of(None), None);
    }
}
