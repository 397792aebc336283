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
use tokio::sync::mpsc;

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
    /// The bus and its worker, which runs until every sender is dropped. `retry_delay` is
    /// the first back-off of a failing message (doubled per attempt).
    pub fn spawn(deps: SendDeps, retry_delay: Duration) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<SendMessage>();
        let bus = Self { tx };
        // The worker publishes follow-up messages through a weak-free clone: it holds a
        // sender, so the loop ends only when the process does.
        let worker_bus = Arc::new(bus.clone());
        let handle_task = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let mut attempt = 0;
                loop {
                    match handle(&deps, &*worker_bus, &msg).await {
                        Ok(_) => break,
                        Err(e) => {
                            attempt += 1;
                            if attempt >= WORKER_ATTEMPTS {
                                tracing::error!(
                                    error = %e,
                                    campaign = %msg.campaign_id(),
                                    kind = msg.detail_type(),
                                    "send step failed; dropped until the campaign is resumed"
                                );
                                break;
                            }
                            tracing::warn!(error = %e, attempt, "send step failed; retrying");
                            deps.sleeper
                                .sleep(retry_delay.saturating_mul(1 << attempt.min(10)))
                                .await;
                        }
                    }
                }
            }
        });
        (bus, handle_task)
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
