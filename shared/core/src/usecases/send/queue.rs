//! The event bus on one machine: the send steps' messages go through an in-process queue
//! instead of EventBridge, and a worker task runs the same [`handle`] the Lambda functions
//! run.
//!
//! - [`QueueBus`]: a plain FIFO that collects published messages; [`run_campaign`] and
//!   tests drain it in the calling task ([`drain`]).
//! - [`InProcessBus`]: an unbounded channel drained by [`InProcessBus::spawn`]'s worker.
//!   Like Lambda's asynchronous invocation, a failing message is retried with back-off a
//!   few times and then dropped with an error log; every step is idempotent, so re-running
//!   the campaign ([`run_campaign`], which the local server does for unfinished campaigns
//!   when it starts) picks up whatever was dropped or lost with the process.
//!
//! [`handle`]: crate::usecases::send::handle

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, Semaphore};

use crate::domain::{CampaignId, TenantId};
use crate::ports::{BusError, EventBus, SendMessage};
use crate::usecases::send::{handle, RunReport, SendDeps, SendError};

/// A FIFO of published messages, drained by its owner with [`QueueBus::pop`].
#[derive(Debug, Default)]
pub struct QueueBus {
    queue: Mutex<VecDeque<SendMessage>>,
}

impl QueueBus {
    pub fn pop(&self) -> Option<SendMessage> {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    pub fn len(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl EventBus for QueueBus {
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(messages.iter().cloned());
        Ok(())
    }
}

/// Attempts per message in the worker (Lambda's asynchronous invocation makes three).
pub const WORKER_ATTEMPTS: u32 = 3;

/// The in-process bus of the local server (see the module docs).
#[derive(Debug, Clone)]
pub struct InProcessBus {
    tx: mpsc::UnboundedSender<SendMessage>,
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        for m in messages {
            self.tx
                .send(m.clone())
                .map_err(|_| BusError::Backend("the send worker has stopped".into()))?;
        }
        Ok(())
    }
}

impl InProcessBus {
    /// The bus and its worker, which runs until every sender is dropped: it handles up to
    /// [`SendConfig::step_concurrency`](crate::usecases::send::SendConfig::step_concurrency)
    /// messages at once. `retry_delay` is the first back-off of a failing message (doubled
    /// per attempt).
    pub fn spawn(deps: SendDeps, retry_delay: Duration) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<SendMessage>();
        let bus = Self { tx };
        // The worker publishes follow-up messages through its own sender, so the loop ends
        // only with the process.
        let worker_bus = Arc::new(bus.clone());
        let permits = Arc::new(Semaphore::new(deps.config.step_concurrency.max(1)));
        let deps = Arc::new(deps);
        let worker = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (deps, bus) = (deps.clone(), worker_bus.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    run_with_retries(&deps, &*bus, &msg, retry_delay).await;
                });
            }
        });
        (bus, worker)
    }
}

/// Handles one message, retrying a failing one with back-off like Lambda's asynchronous
/// invocation, then dropping it with an error log.
async fn run_with_retries(
    deps: &SendDeps,
    bus: &dyn EventBus,
    msg: &SendMessage,
    retry_delay: Duration,
) {
    let mut attempt = 0;
    loop {
        match handle(deps, bus, msg).await {
            Ok(_) => return,
            Err(e) => {
                attempt += 1;
                if attempt >= WORKER_ATTEMPTS {
                    tracing::error!(
                        error = %e,
                        campaign = %msg.campaign_id(),
                        kind = msg.detail_type(),
                        "send step failed; dropped until the campaign is resumed"
                    );
                    return;
                }
                tracing::warn!(error = %e, attempt, "send step failed; retrying");
                deps.sleeper
                    .sleep(retry_delay.saturating_mul(1 << attempt.min(10)))
                    .await;
            }
        }
    }
}

/// Handles the queue's messages — and the ones they publish — until it is empty, up to
/// [`SendConfig::step_concurrency`] at once. Stops at the first error (after the steps in
/// flight end); every step is idempotent, so draining the same work again resumes it.
pub async fn drain(deps: &SendDeps, queue: &QueueBus) -> Result<RunReport, SendError> {
    use futures::stream::{FuturesUnordered, StreamExt as _};
    let limit = deps.config.step_concurrency.max(1);
    let mut in_flight = FuturesUnordered::new();
    let mut report = RunReport::default();
    let mut failure = None;
    loop {
        while failure.is_none() && in_flight.len() < limit {
            let Some(msg) = queue.pop() else { break };
            in_flight.push(async move { handle(deps, queue, &msg).await });
        }
        match in_flight.next().await {
            Some(Ok(r)) => {
                report.sent += r.sent;
                report.failed += r.failed;
            }
            Some(Err(e)) => {
                failure.get_or_insert(e);
            }
            None => break,
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Runs a campaign to its end in this task: [`handle`] over a local queue, from the
/// campaign's first page. Safe to call again after a crash (it resumes: replayed pages claim
/// nothing new, delivered invitations are skipped) or on a finished campaign (which it
/// leaves alone); a paused or failed campaign is not touched.
#[tracing::instrument(skip_all, fields(tenant = %tenant, campaign = %campaign_id))]
pub async fn run_campaign(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
) -> Result<RunReport, SendError> {
    let queue = QueueBus::default();
    queue
        .publish(&[SendMessage::FanOut {
            tenant: tenant.clone(),
            campaign_id: campaign_id.clone(),
            cursor: None,
            spec: None,
        }])
        .await?;
    let mut report = drain(deps, &queue).await?;
    report.status = deps
        .store
        .get_campaign(tenant, campaign_id)
        .await?
        .map(|c| c.status);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan_out(cursor: &str) -> SendMessage {
        SendMessage::FanOut {
            tenant: TenantId::parse("t1").unwrap(),
            campaign_id: CampaignId::parse("0".repeat(32)).unwrap(),
            cursor: Some(cursor.into()),
            spec: None,
        }
    }

    #[tokio::test]
    async fn the_queue_hands_messages_back_in_publish_order() {
        let q = QueueBus::default();
        q.publish(&[fan_out("a"), fan_out("b")]).await.unwrap();
        q.publish(&[fan_out("c")]).await.unwrap();
        assert_eq!(q.len(), 3);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![fan_out("a"), fan_out("b"), fan_out("c")]);
        assert!(q.is_empty());
    }
}
