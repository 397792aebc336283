//! The sweeper: campaigns that stopped moving are re-published from their first page.
//!
//! A campaign is driven by its messages alone. If the first [`SendMessage::FanOut`] is
//! lost — the publish failed after the campaign was recorded, or the bus dropped it — the
//! campaign stays `queued` (its divisions locked for 24 hours) and nothing ever sends it;
//! a lost fan-out page or delivery batch likewise leaves it `fanning_out` or `sending`
//! forever. Every send step is idempotent (see [`super`]), so re-publishing
//! `FanOut { cursor: None }` resumes any of them safely: replayed pages claim nothing new and
//! re-emit the batches of the invitations still in process, delivered ones are skipped, and a
//! paused, failed or completed campaign is left alone.
//!
//! # When a campaign is re-published
//!
//! [`sweep`] lists the active campaigns of every tenant (`queued`, `fanning_out`,
//! `sending`; never `paused`: a manager stopped it, or the failure threshold did) with their
//! watch records ([`CampaignSweepStore`]) and decides for each ([`decide`]):
//!
//! - its [`progress_fingerprint`] — status, `targeted`, the `skipped` counters and the send
//!   counters; not the categories, which SES events keep moving after the send is done —
//!   differs from its record's, or it has no record: it moved. The record becomes
//!   `{fingerprint, since: now}` (one write, only when it changed);
//! - the same fingerprint for at least `idle` (`since <= now - idle`), and the campaign is
//!   at least `idle` old: it is **re-published**, and its record becomes `{fingerprint,
//!   since: now}`, so it is not re-published again before another `idle` passes;
//! - otherwise it waits.
//!
//! A campaign with no record that is still exactly as it was created (queued, every counter
//! zero) counts as unchanged since its `created_at`, so a lost first publish is repaired by
//! the first sweep after `idle`, not the second.
//!
//! The record is claimed *before* publishing, conditional on the record read
//! ([`CampaignSweepStore::put_watch`]): of two sweeps running at once, one re-publishes. If
//! the publish then fails, the old record is put back (conditionally again), so the next
//! sweep tries again instead of waiting another `idle`; the failure is counted and logged.
//!
//! # Choosing `idle`
//!
//! A healthy campaign moves its counters with every page claimed and every outcome written,
//! seconds apart. `idle` must be longer than the longest a healthy campaign can go without
//! any counter moving: a delivery batch waiting for a free delivery process does not move
//! them, but the batches being delivered meanwhile do. A re-publish of a healthy campaign
//! costs a replay of its pages (and its in-process batches published again, each delivered
//! at most once), never a second email. The default is [`DEFAULT_IDLE`].
//!
//! # Cost
//!
//! Per sweep: what [`CampaignSweepStore::active_campaigns`] costs (on DynamoDB one Query of
//! an index partition holding only unfinished campaigns, plus one BatchGetItem per 100 of
//! them), one write per campaign that moved or is re-published, and one bus publish per
//! re-published campaign. Nothing per contact.

use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::domain::{Campaign, CampaignStatus};
use crate::ports::{
    ActiveCampaign, CampaignSweepStore, Clock, EventBus, SendMessage, StoreError, SweepWatch,
};

/// How long a campaign must go without progress before it is re-published, unless
/// configured otherwise.
pub const DEFAULT_IDLE: Duration = Duration::minutes(10);

/// Tunables of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepConfig {
    /// No progress for at least this long → re-published (see the module docs).
    pub idle: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self { idle: DEFAULT_IDLE }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Active campaigns listed (queued, fanning out, sending).
    pub active: u64,
    /// Re-published: no progress for at least `idle`.
    pub republished: u64,
    /// Seen moving (or seen for the first time): their record was written.
    pub moved: u64,
    /// Unchanged for less than `idle`: left alone.
    pub waiting: u64,
    /// Another sweep changed the record first: left to it.
    pub raced: u64,
    /// Re-publishes (or record writes) that failed: logged, tried again next sweep.
    pub failed: u64,
}

/// Why a sweep could not run at all (a failure for one campaign is counted instead).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot list the active campaigns")]
    List(#[source] StoreError),
}

/// What a sweep does with one campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It moved (or has no record yet): store this record.
    Record(SweepWatch),
    /// No progress for at least `idle`: re-publish it and store this record.
    Republish(SweepWatch),
    /// Unchanged for less than `idle`, or not active: nothing.
    Wait,
}

/// The part of a campaign that moves while it is sent, as one number: status, `targeted`,
/// the five `skipped` counters and the three send counters (SHA-256 of their canonical text,
/// first 8 bytes). Stable across processes and versions: it is stored.
pub fn progress_fingerprint(c: &Campaign) -> u64 {
    let text = format!(
        "v1|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        c.status.as_str(),
        c.targeted,
        c.skipped.accepted,
        c.skipped.held_24h,
        c.skipped.suppressed,
        c.skipped.no_email,
        c.skipped.duplicate_address,
        c.sends.pending,
        c.sends.sent,
        c.sends.failed,
    );
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Whether the campaign is still exactly as it was recorded: nothing claimed, skipped or sent.
fn untouched(c: &Campaign) -> bool {
    c.status == CampaignStatus::Queued
        && c.targeted == 0
        && c.skipped == Default::default()
        && c.sends == Default::default()
}

fn is_active(s: CampaignStatus) -> bool {
    matches!(
        s,
        CampaignStatus::Queued | CampaignStatus::FanningOut | CampaignStatus::Sending
    )
}

/// The rule of the module docs, for one campaign and its record at `now`.
pub fn decide(
    campaign: &Campaign,
    watch: Option<&SweepWatch>,
    now: OffsetDateTime,
    idle: Duration,
) -> Decision {
    if !is_active(campaign.status) {
        return Decision::Wait;
    }
    let fingerprint = progress_fingerprint(campaign);
    let fresh = SweepWatch {
        fingerprint,
        since: now,
    };
    // No record: a campaign untouched since it was recorded has not moved since then.
    let baseline = match watch {
        Some(w) => *w,
        None if untouched(campaign) => SweepWatch {
            fingerprint,
            since: campaign.created_at,
        },
        None => return Decision::Record(fresh),
    };
    if baseline.fingerprint != fingerprint {
        return Decision::Record(fresh);
    }
    let cutoff = now - idle;
    if baseline.since <= cutoff && campaign.created_at <= cutoff {
        Decision::Republish(fresh)
    } else {
        Decision::Wait
    }
}

/// One sweep over every tenant's active campaigns (see the module docs).
#[tracing::instrument(skip_all, fields(idle_secs = config.idle.whole_seconds()))]
pub async fn sweep(
    store: &dyn CampaignSweepStore,
    bus: &dyn EventBus,
    clock: &dyn Clock,
    config: &SweepConfig,
) -> Result<SweepReport, SweepError> {
    let active = store.active_campaigns().await.map_err(SweepError::List)?;
    let now = clock.now();
    let mut report = SweepReport {
        active: active.len() as u64,
        ..SweepReport::default()
    };
    for item in &active {
        match decide(&item.campaign, item.watch.as_ref(), now, config.idle) {
            Decision::Wait => report.waiting += 1,
            Decision::Record(watch) => match put(store, item, &watch, item.watch.as_ref()).await {
                Ok(true) => report.moved += 1,
                Ok(false) => report.raced += 1,
                Err(()) => report.failed += 1,
            },
            Decision::Republish(watch) => match republish(store, bus, item, &watch).await {
                Ok(true) => report.republished += 1,
                Ok(false) => report.raced += 1,
                Err(()) => report.failed += 1,
            },
        }
    }
    if report.republished > 0 || report.failed > 0 {
        tracing::info!(?report, "sweep done");
    } else {
        tracing::debug!(?report, "sweep done");
    }
    Ok(report)
}

/// Writes the record; a store error is logged (the caller counts it).
async fn put(
    store: &dyn CampaignSweepStore,
    item: &ActiveCampaign,
    watch: &SweepWatch,
    expected: Option<&SweepWatch>,
) -> Result<bool, ()> {
    let c = &item.campaign;
    store
        .put_watch(&item.tenant, &c.campaign_id, watch, expected)
        .await
        .map_err(|e| {
            tracing::error!(
                tenant = %item.tenant, campaign = %c.campaign_id,
                error = %crate::error_chain(&e),
                "sweep: cannot write the campaign's watch record; trying again next sweep"
            );
        })
}

/// Claims the record, then publishes the campaign's first fan-out; puts the old record back
/// when the publish fails. `Ok(false)`: another sweep claimed it first.
async fn republish(
    store: &dyn CampaignSweepStore,
    bus: &dyn EventBus,
    item: &ActiveCampaign,
    watch: &SweepWatch,
) -> Result<bool, ()> {
    let c = &item.campaign;
    if !put(store, item, watch, item.watch.as_ref()).await? {
        return Ok(false);
    }
    let message = SendMessage::FanOut {
        tenant: item.tenant.clone(),
        campaign_id: c.campaign_id.clone(),
        cursor: None,
        spec: None,
    };
    match bus.publish(&[message]).await {
        Ok(()) => {
            tracing::warn!(
                tenant = %item.tenant, campaign = %c.campaign_id, status = c.status.as_str(),
                idle_since = %item.watch.map_or(c.created_at, |w| w.since),
                "sweep: campaign made no progress; re-published its fan-out"
            );
            Ok(true)
        }
        Err(e) => {
            tracing::error!(
                tenant = %item.tenant, campaign = %c.campaign_id,
                error = %crate::error_chain(&e),
                "sweep: cannot re-publish the campaign; trying again next sweep"
            );
            // Undo the claim so the next sweep does not wait another `idle`. Without a
            // record before, put the claim's fingerprint back with the campaign's creation
            // time (what `decide` assumed).
            let previous = item.watch.unwrap_or(SweepWatch {
                fingerprint: watch.fingerprint,
                since: c.created_at,
            });
            let _ = put(store, item, &previous, Some(watch)).await;
            Err(())
        }
    }
}

/// A sweep's dependencies, for drivers that run it repeatedly (the local server's task).
#[derive(Clone)]
pub struct Sweeper {
    pub store: Arc<dyn CampaignSweepStore>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub config: SweepConfig,
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Sweeper {
    /// One [`sweep`].
    pub async fn run(&self) -> Result<SweepReport, SweepError> {
        sweep(&*self.store, &*self.bus, &*self.clock, &self.config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        CampaignId, CategoryCounts, DivisionId, Email, Filters, SendCounts, Skipped, Trigger,
    };
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);
    const IDLE: Duration = Duration::minutes(10);

    fn campaign(status: CampaignStatus) -> Campaign {
        Campaign {
            campaign_id: CampaignId::generate(T0),
            trigger: Trigger::Manual,
            status,
            division_ids: vec![DivisionId::parse("d1").unwrap()],
            filters: Filters::default(),
            limit_to_uninvited: true,
            template_id: "welcome".into(),
            email_from: Email::parse("hoa@example.org").unwrap(),
            display_name: None,
            created_at: T0,
            created_by: "m".into(),
            targeted: 0,
            skipped: Skipped::default(),
            categories: CategoryCounts::default(),
            sends: SendCounts::default(),
            pause_reason: None,
            recurring: None,
            selection: None,
        }
    }

    #[test]
    fn an_untouched_campaign_is_republished_once_idle_has_passed_since_its_creation() {
        let c = campaign(CampaignStatus::Queued);
        let at = |m| T0 + Duration::minutes(m);
        assert_eq!(decide(&c, None, at(0), IDLE), Decision::Wait);
        assert_eq!(decide(&c, None, at(9), IDLE), Decision::Wait);
        let fp = progress_fingerprint(&c);
        assert_eq!(
            decide(&c, None, at(10), IDLE),
            Decision::Republish(SweepWatch {
                fingerprint: fp,
                since: at(10)
            })
        );
        // Its record then holds it back for another `idle`.
        let w = SweepWatch {
            fingerprint: fp,
            since: at(10),
        };
        assert_eq!(decide(&c, Some(&w), at(19), IDLE), Decision::Wait);
        assert!(matches!(
            decide(&c, Some(&w), at(20), IDLE),
            Decision::Republish(_)
        ));
    }

    #[test]
    fn any_counter_or_status_change_is_progress() {
        let base = campaign(CampaignStatus::Sending);
        let w = SweepWatch {
            fingerprint: progress_fingerprint(&base),
            since: T0,
        };
        let later = T0 + Duration::hours(1);
        let mut changes: Vec<Campaign> = Vec::new();
        let mut c = base.clone();
        c.status = CampaignStatus::FanningOut;
        changes.push(c);
        let mut c = base.clone();
        c.targeted = 1;
        changes.push(c);
        for f in 0..5 {
            let mut c = base.clone();
            *[
                &mut c.skipped.accepted,
                &mut c.skipped.held_24h,
                &mut c.skipped.suppressed,
                &mut c.skipped.no_email,
                &mut c.skipped.duplicate_address,
            ][f] = 1;
            changes.push(c);
        }
        for f in 0..3 {
            let mut c = base.clone();
            *[&mut c.sends.pending, &mut c.sends.sent, &mut c.sends.failed][f] = 1;
            changes.push(c);
        }
        for c in &changes {
            assert_eq!(
                decide(c, Some(&w), later, IDLE),
                Decision::Record(SweepWatch {
                    fingerprint: progress_fingerprint(c),
                    since: later
                }),
                "{c:?}"
            );
        }
        // SES events moving categories are no send progress.
        let mut c = base.clone();
        c.categories.opened = 5;
        assert!(matches!(
            decide(&c, Some(&w), later, IDLE),
            Decision::Republish(_)
        ));
    }

    #[test]
    fn a_campaign_seen_first_after_it_moved_is_recorded_not_republished() {
        let mut c = campaign(CampaignStatus::Sending);
        c.targeted = 3;
        c.sends.pending = 3;
        let later = T0 + Duration::days(1);
        assert_eq!(
            decide(&c, None, later, IDLE),
            Decision::Record(SweepWatch {
                fingerprint: progress_fingerprint(&c),
                since: later
            })
        );
    }

    #[test]
    fn paused_failed_and_completed_campaigns_are_never_swept() {
        for s in [
            CampaignStatus::Paused,
            CampaignStatus::Failed,
            CampaignStatus::Completed,
        ] {
            let c = campaign(s);
            let w = SweepWatch {
                fingerprint: progress_fingerprint(&c),
                since: T0,
            };
            let later = T0 + Duration::days(2);
            assert_eq!(decide(&c, None, later, IDLE), Decision::Wait);
            assert_eq!(decide(&c, Some(&w), later, IDLE), Decision::Wait);
        }
    }

    #[test]
    fn a_campaign_younger_than_idle_is_never_republished_whatever_its_record() {
        let c = campaign(CampaignStatus::Queued);
        // A record from a skewed clock, older than the campaign.
        let w = SweepWatch {
            fingerprint: progress_fingerprint(&c),
            since: T0 - Duration::hours(1),
        };
        assert_eq!(
            decide(&c, Some(&w), T0 + Duration::minutes(5), IDLE),
            Decision::Wait
        );
    }

    #[test]
    fn the_fingerprint_is_stable() {
        // Stored: a change of the formula would make every record look like progress once.
        let c = campaign(CampaignStatus::Queued);
        assert_eq!(progress_fingerprint(&c), progress_fingerprint(&c.clone()));
        let mut d = c.clone();
        d.campaign_id = CampaignId::generate(T0 + Duration::seconds(1));
        d.created_by = "someone else".into();
        assert_eq!(progress_fingerprint(&c), progress_fingerprint(&d));
        // SHA-256 of `v1|queued|0|0|0|0|0|0|0|0|0`, first 8 bytes.
        assert_eq!(progress_fingerprint(&c), 0x564b_f056_b493_85d3);
    }
}
