//! The recurring store: settings, and the record of each run keyed by (tenant, setting,
//! local date) so a day runs at most once whatever fires it.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use super::{Page, StoreError};
use crate::domain::{CampaignId, RecurringId, RecurringSetting, TenantId};

/// One run of a setting: the day it is for, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub setting_id: RecurringId,
    /// `YYYY-MM-DD` in the setting's time zone.
    pub local_date: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// The run's campaign; `None` while it is being made, and for a run that found nobody.
    pub campaign_id: Option<CampaignId>,
    /// The run decided: a campaign was queued, or nobody was due.
    pub finished: bool,
}

/// What [`RecurringStore::start_run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRun {
    /// This call recorded the run: go on.
    Started,
    /// The day's run was recorded before (by another firing, a retry, a concurrent run):
    /// this is its record.
    Already(RunRecord),
}

#[async_trait]
pub trait RecurringStore: Send + Sync {
    /// Creates or replaces a setting (the caller keeps `created_at` of an existing one).
    async fn put_setting(
        &self,
        tenant: &TenantId,
        setting: &RecurringSetting,
    ) -> Result<(), StoreError>;

    async fn get_setting(
        &self,
        tenant: &TenantId,
        id: &RecurringId,
    ) -> Result<Option<RecurringSetting>, StoreError>;

    /// The tenant's settings in id order.
    async fn list_settings(&self, tenant: &TenantId) -> Result<Vec<RecurringSetting>, StoreError>;

    /// `false` when there was none. Its runs stay (history).
    async fn delete_setting(&self, tenant: &TenantId, id: &RecurringId)
        -> Result<bool, StoreError>;

    /// Every tenant's enabled settings: what a scheduler on one machine wakes for. (On AWS,
    /// EventBridge Scheduler holds one schedule per setting instead.)
    async fn enabled_settings(&self) -> Result<Vec<(TenantId, RecurringSetting)>, StoreError>;

    /// Records the run of `local_date` only if none was recorded for that day (a
    /// conditional write), with `finished: false` and no campaign.
    async fn start_run(
        &self,
        tenant: &TenantId,
        setting: &RecurringId,
        local_date: &str,
        now: OffsetDateTime,
    ) -> Result<StartRun, StoreError>;

    /// Stores what the run decided (its campaign, `finished: true`).
    async fn finish_run(&self, tenant: &TenantId, run: &RunRecord) -> Result<(), StoreError>;

    /// The setting's runs, newest day first.
    async fn list_runs(
        &self,
        tenant: &TenantId,
        setting: &RecurringId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<RunRecord>, StoreError>;
}
