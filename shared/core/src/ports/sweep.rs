//! The sweep store: what the sweeper ([`crate::usecases::send::sweep`]) needs to find
//! campaigns that stopped moving and to remember when it last saw each one move.
//!
//! Kept apart from [`CampaignStore`](super::CampaignStore) on purpose: only the sweeper (the
//! `send` function's scheduled invocation, the local server's sweep task) uses it, so the
//! other functions' adapters need not implement it, and it can read an index the campaign
//! operations never touch.
//!
//! # Watch records
//!
//! One per active campaign: the [`fingerprint`](SweepWatch::fingerprint) of the campaign's
//! progress counters when the sweeper last saw them change (or last re-published it), and
//! [`since`](SweepWatch::since) that instant. The sweeper compares the campaign as it is now
//! with its record; the record is written only when the campaign moved, when it is
//! re-published, or the first time it is seen moving. [`CampaignSweepStore::put_watch`] is
//! conditional on the record read, so two sweeps running at once re-publish a campaign once.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::domain::{Campaign, CampaignId, TenantId};

/// When the sweeper last saw a campaign's progress change (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepWatch {
    /// The campaign's progress fingerprint then
    /// ([`progress_fingerprint`](crate::usecases::send::sweep::progress_fingerprint)).
    pub fingerprint: u64,
    /// When it was seen with that fingerprint first (or last re-published). Whole seconds
    /// are enough; adapters keep at least that.
    pub since: OffsetDateTime,
}

/// A campaign the sweeper looks at: queued, fanning out or sending, of any tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCampaign {
    pub tenant: TenantId,
    pub campaign: Campaign,
    /// Its watch record, if one was written.
    pub watch: Option<SweepWatch>,
}

#[async_trait]
pub trait CampaignSweepStore: Send + Sync {
    /// Every tenant's campaigns whose status is `queued`, `fanning_out` or `sending` —
    /// never `paused`, `failed` or `completed` — oldest first, each with its watch record.
    /// An adapter reading an eventually consistent index may list a campaign as it was a
    /// moment ago (even one that just finished): the sweeper's re-publish is harmless for
    /// any campaign, since every send step is idempotent and a finished one is left alone.
    async fn active_campaigns(&self) -> Result<Vec<ActiveCampaign>, StoreError>;

    /// Stores `watch` as the campaign's record only if the stored record is still
    /// `expected` (`None`: there is none), field for field. `false` when another sweep
    /// changed it first: nothing written.
    async fn put_watch(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        watch: &SweepWatch,
        expected: Option<&SweepWatch>,
    ) -> Result<bool, StoreError>;
}
