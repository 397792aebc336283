//! Recurring invitations on one machine (there is no EventBridge Scheduler here):
//!
//! - [`Scheduler`]: the local server's task. It wakes once a period (a minute, aligned to the
//!   minute; tests shorten it) and runs every enabled setting that is due
//!   ([`portal_core::usecases::recurring::run_due`]) with the server's clock and sending.
//!   Ticks are sequential: a long tick delays the next one, never overlaps it. Runs are keyed
//!   per (tenant, setting, local date), so ticking all day runs each day once, and a server
//!   started after the hour — or after days of downtime — runs the latest missed day once.
//! - [`run_recurring`]: `portal-invites run-recurring`, the same runs now, for a person or a
//!   test, optionally at another instant (`--at`: "advance the clock"). It opens the data
//!   dir's store beside a running `serve` and sends the runs' campaigns in this process, into
//!   the data dir's outbox, before it returns.
//! - [`ShiftedClock`]: the real clock moved by an offset, which `--at` and the tests use.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use portal_core::domain::{PublicUrl, RecurringId, TenantId};
use portal_core::ports::{Clock, RecurringStore as _, Store, SystemClock};
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::recurring::{run_due, run_setting, RecurringError, RunOutcome};
use portal_core::usecases::send::queue::{drain, QueueBus};
use serde::Serialize;
use time::OffsetDateTime;

use crate::secret::SecretError;
use crate::{open_store, OpenStoreError};

/// How often the local server's scheduler wakes unless told otherwise.
pub const DEFAULT_TICK: Duration = Duration::from_secs(60);

/// The real clock (whole seconds) moved by an offset that can change while it runs.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset: Mutex<time::Duration>,
}

impl ShiftedClock {
    /// A clock that reads `at` now and moves on in real time from there.
    pub fn starting_at(at: OffsetDateTime) -> Self {
        let clock = Self::default();
        clock.set(at);
        clock
    }

    /// Moves the clock by `by` (forward or back).
    pub fn shift(&self, by: time::Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    /// Makes the clock read `at` now.
    pub fn set(&self, at: OffsetDateTime) {
        let at = at.replace_nanosecond(0).unwrap_or(at);
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) = at - SystemClock.now();
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        SystemClock.now() + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One setting's outcome in a tick or a `run-recurring`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingRun {
    pub tenant: TenantId,
    pub recurring_id: RecurringId,
    #[serde(flatten)]
    pub outcome: RunOutcome,
}

/// The local server's recurring scheduler (see the module docs).
pub struct Scheduler {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub sending: Sending,
    /// How often it wakes (aligned to multiples of it on the wall clock).
    pub tick: Duration,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}

/// A running [`Scheduler`]; dropping it stops the loop at its next wait.
#[derive(Debug)]
pub struct SchedulerHandle {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// How long [`SchedulerHandle::stop`] lets a tick in progress finish.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

impl SchedulerHandle {
    /// Stops the loop: a tick in progress finishes (up to [`STOP_GRACE`]; a run cut short is
    /// finished by the next run of the same day).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            tracing::warn!(
                "the recurring run in progress was cut short; the next run of its day finishes it"
            );
            task.abort();
        }
    }
}

impl Scheduler {
    /// Runs every due setting once, logging each outcome; answers them.
    pub async fn tick(&self) -> Vec<SettingRun> {
        match run_due(&*self.store, &*self.clock, &self.sending).await {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|(tenant, recurring_id, outcome)| {
                    log_outcome(&tenant, &recurring_id, &outcome);
                    SettingRun {
                        tenant,
                        recurring_id,
                        outcome,
                    }
                })
                .collect(),
            Err(e) => {
                tracing::error!(error = %portal_core::error_chain(&e), "recurring settings could not be read; trying again next tick");
                Vec::new()
            }
        }
    }

    /// Starts the loop: a tick now (catching up after downtime), then one at every multiple
    /// of [`Scheduler::tick`] on the wall clock, one after the other.
    pub fn spawn(self) -> SchedulerHandle {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tracing::info!(
                every_secs = self.tick.as_secs_f64(),
                "recurring scheduler started"
            );
            loop {
                self.tick().await;
                let wait = until_next(self.tick, SystemTime::now());
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    // Stopped, or the handle was dropped.
                    _ = &mut stopped => break,
                }
            }
            tracing::info!("recurring scheduler stopped");
        });
        SchedulerHandle { stop, task }
    }
}

/// Outcomes that change something at info; "already ran today" is what every tick after
/// the day's run finds, so it is debug.
fn log_outcome(tenant: &TenantId, id: &RecurringId, outcome: &RunOutcome) {
    match outcome {
        RunOutcome::Queued { run } => tracing::info!(
            %tenant, setting = %id, day = %run.local_date,
            campaign = run.campaign_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            "scheduler: recurring run queued"
        ),
        RunOutcome::NobodyDue { run } => tracing::info!(
            %tenant, setting = %id, day = %run.local_date,
            "scheduler: recurring run found nobody due"
        ),
        RunOutcome::Ignored { reason } => {
            tracing::info!(%tenant, setting = %id, %reason, "scheduler: recurring setting ignored")
        }
        RunOutcome::AlreadyRan { run } => tracing::debug!(
            %tenant, setting = %id, day = %run.local_date,
            "scheduler: recurring run already done"
        ),
        RunOutcome::NotDue => tracing::debug!(%tenant, setting = %id, "scheduler: not due"),
        RunOutcome::SenderNotAllowed { run, sender } => tracing::warn!(
            %tenant, setting = %id, day = %run.local_date, %sender,
            "scheduler: recurring run sent nothing: its sender is not allowed"
        ),
    }
}

/// The wait from `now` to the next multiple of `tick` since the Unix epoch (a full tick when
/// `now` is on one).
pub fn until_next(tick: Duration, now: SystemTime) -> Duration {
    let tick_ms = tick.as_millis().max(1);
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    Duration::from_millis(u64::try_from(tick_ms - since % tick_ms).unwrap_or(u64::MAX))
}

/// What `portal-invites run-recurring` was asked.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Only this tenant's settings (required with `setting`); `None`: every tenant.
    pub tenant: Option<TenantId>,
    /// Only this setting, for the day due at `at`; `None`: every due setting.
    pub setting: Option<RecurringId>,
    /// The instant to run at; `None`: now.
    pub at: Option<OffsetDateTime>,
    /// Base of the links in the emails (the server's URL).
    pub public_url: PublicUrl,
}

/// What `run-recurring` did, as it prints it.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The instant the runs were decided at.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub runs: Vec<SettingRun>,
    /// Emails the runs' campaigns sent into the outbox (and those that failed).
    pub sent: u64,
    pub failed: u64,
    /// Why sending stopped before the campaigns finished (`serve` resumes them on start;
    /// running `run-recurring` again does not, the day having run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunRecurringError {
    #[error(transparent)]
    Store(#[from] OpenStoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("--setting needs --tenant")]
    NoTenant,
    #[error("the recurring run failed")]
    Run(#[from] RecurringError),
}

/// `portal-invites run-recurring` (see the module docs): runs, then sends the campaigns the
/// runs queued, in this process, before answering.
pub async fn run_recurring(
    data_dir: &Path,
    req: &RunRequest,
) -> Result<RunReport, RunRecurringError> {
    let store = Arc::new(open_store(data_dir)?);
    let clock: Arc<dyn Clock> = match req.at {
        Some(at) => Arc::new(ShiftedClock::starting_at(at)),
        None => Arc::new(SystemClock),
    };
    let at = clock.now();
    // The runs publish their fan-outs here; they are drained below, in this task.
    let queue = Arc::new(QueueBus::default());
    let deps = crate::sending::local_send_deps(
        data_dir,
        store.clone(),
        clock.clone(),
        req.public_url.clone(),
    )?;
    let sending = Sending {
        bus: queue.clone(),
        tokens: deps.tokens.clone(),
        token_ttl: deps.config.token_ttl,
    };
    let runs = match (&req.setting, &req.tenant) {
        (Some(_), None) => return Err(RunRecurringError::NoTenant),
        (Some(id), Some(tenant)) => {
            let outcome = run_setting(&*store, &*clock, &sending, tenant, id, None).await?;
            vec![SettingRun {
                tenant: tenant.clone(),
                recurring_id: id.clone(),
                outcome,
            }]
        }
        (None, Some(only)) => {
            let mut runs = Vec::new();
            for (tenant, setting) in store
                .enabled_settings()
                .await
                .map_err(RecurringError::from)?
            {
                if &tenant != only {
                    continue;
                }
                let Some(day) = setting.due_day(at) else {
                    continue;
                };
                let id = setting.setting_id;
                let outcome =
                    run_setting(&*store, &*clock, &sending, &tenant, &id, Some(day)).await?;
                runs.push(SettingRun {
                    tenant,
                    recurring_id: id,
                    outcome,
                });
            }
            runs
        }
        (None, None) => run_due(&*store, &*clock, &sending)
            .await?
            .into_iter()
            .map(|(tenant, recurring_id, outcome)| SettingRun {
                tenant,
                recurring_id,
                outcome,
            })
            .collect(),
    };
    let mut report = RunReport {
        at,
        runs,
        sent: 0,
        failed: 0,
        send_error: None,
    };
    match drain(&deps, &queue).await {
        Ok(sent) => {
            report.sent = sent.sent;
            report.failed = sent.failed;
        }
        Err(e) => {
            tracing::error!(error = %portal_core::error_chain(&e), "the runs' campaigns did not finish sending");
            report.send_error = Some(portal_core::error_chain(&e).to_string());
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_tick_is_on_the_next_multiple_of_the_period() {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let minute = Duration::from_secs(60);
        assert_eq!(until_next(minute, at(120_000)), minute);
        assert_eq!(
            until_next(minute, at(120_001)),
            Duration::from_millis(59_999)
        );
        assert_eq!(until_next(minute, at(179_500)), Duration::from_millis(500));
        assert_eq!(until_next(Duration::ZERO, at(5)), Duration::from_millis(1));
    }

    #[test]
    fn a_shifted_clock_reads_the_instant_it_was_set_to_and_moves_on() {
        let at = time::macros::datetime!(2030-01-01 09:00:00 UTC);
        let c = ShiftedClock::starting_at(at);
        let read = c.now();
        assert!(
            read >= at && read - at < time::Duration::seconds(2),
            "{read}"
        );
        c.shift(time::Duration::days(1));
        assert!(c.now() - at >= time::Duration::days(1));
        assert!(ShiftedClock::default().now() - SystemClock.now() < time::Duration::seconds(2));
    }
}
