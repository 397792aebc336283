//! The sweeper on one machine: a task of the local server that runs
//! [`portal_core::usecases::send::sweep`] every minute (`--sweep-every-secs`) over the
//! embedded store, re-publishing on the server's in-process bus every unfinished campaign
//! that made no progress for `--sweep-idle-minutes` (default 10). It catches what the
//! in-process worker dropped after its retries, which otherwise only a restart would resume.
//! On AWS a scheduled rule invokes the `send` function with the same use case instead.
//!
//! Sweeps are sequential (a slow one delays the next, never overlaps it); one that fails is
//! logged and the next one tries again.

use std::time::Duration;

use portal_core::usecases::send::sweep::{SweepReport, Sweeper};

/// How often the local server sweeps unless told otherwise.
pub const DEFAULT_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The local server's sweep task (see the module docs).
#[derive(Debug, Clone)]
pub struct SweepTask {
    pub sweeper: Sweeper,
    /// Time between the end of one sweep and the start of the next.
    pub every: Duration,
}

/// A running [`SweepTask`]; dropping it stops the loop at its next wait.
#[derive(Debug)]
pub struct SweepHandle {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl SweepHandle {
    /// Stops the loop, letting a sweep in progress finish (it is short: a read, and a write
    /// and a publish per stalled campaign).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

impl SweepTask {
    /// One sweep, logged; `None` when it could not list the campaigns.
    pub async fn tick(&self) -> Option<SweepReport> {
        match self.sweeper.run().await {
            Ok(report) => Some(report),
            Err(e) => {
                tracing::error!(error = %portal_core::error_chain(&e), "sweep failed; trying again next time");
                None
            }
        }
    }

    /// Starts the loop: the first sweep after one period (campaigns left unfinished by a
    /// previous run are resumed at start anyway), then one every period.
    pub fn spawn(self) -> SweepHandle {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tracing::info!(
                every_secs = self.every.as_secs_f64(),
                idle_secs = self.sweeper.config.idle.whole_seconds(),
                "sweeper started"
            );
            loop {
                tokio::select! {
                    () = tokio::time::sleep(self.every) => {}
                    // Stopped, or the handle was dropped.
                    _ = &mut stopped => break,
                }
                self.tick().await;
            }
            tracing::info!("sweeper stopped");
        });
        SweepHandle { stop, task }
    }
}
