//! The event bus on one machine: the send steps' messages go through an in-process queue
//! instead of EventBridge, and a worker task runs the same [`handle`] the Lambda functions
//! run.
//!
//! - [`QueueBus`]: a plain FIFO that collects published messages; [`run_campaign`] and
//!   tests drain it in the calling task.
//! - [`InProcessBus`]: an unbounded channel drained by [`InProcessBus::spawn`]'s worker.
//!   Like Lambda's asynchronous invocation, a failing message is retried with back-off a
//!   few times and then dropped with an error log; every step is idempotent, so re-running
//!   the campaign ([`run_campaign`], which the local server does for unfinished campaigns
//!   when it starts) picks up whatever was dropped or lost with the process.
//!
//! [`handle`]: crate::usecases::send::handle
//! [`run_campaign`]: crate::usecases::send::run_campaign

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, Semaphore};

use crate::ports::{BusError, EventBus, SendMessage};
use crate::usecases::send::{handle, SendDeps};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CampaignId, TenantId};

    fn fan_out(cursor: &str) -> SendMessage {
        SendMessage::FanOut {
            tenant: TenantId::parse("t1").unwrap(),
            campaign_id: CampaignId::parse("0".repeat(32)).unwrap(),
            cursor: Some(cursor.into()),
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
