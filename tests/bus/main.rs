//! The EventBridge bus against moto: how many PutEvents calls a publish costs, that every
//! message arrives intact where a rule sends it, and what is refused.
//!
//! Each test makes its own bus, with a rule matching source `portal-invitations` whose
//! target is a fresh SQS queue; moto delivers matching events there, so reading the queue
//! shows what a function subscribed to the bus would receive. moto does not enforce
//! EventBridge's 256 KB entry limit, so the size refusal is the adapter's own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use portal_aws::aws_metrics::RequestCounter;
use portal_aws::eventbridge::{EventBridgeBus, RetryPolicy, MAX_CALL_BYTES};
use portal_core::domain::{CampaignId, ContactId, DivisionId, Email, TenantId};
use portal_core::ports::{
    BusError, EventBus, Recipient, SendMessage, EVENT_SOURCE, MAX_MESSAGE_BYTES,
};
use portal_testkit::moto::Moto;
use serde_json::Value;

/// Retries that do not slow the suite down.
const FAST: RetryPolicy = RetryPolicy {
    attempts: 3,
    first_delay: Duration::from_millis(5),
    max_delay: Duration::from_millis(20),
};

/// A name no other test uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A bus on moto whose events from our source land in a queue.
struct Wired {
    bus_name: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
}

/// Creates a bus, a queue, and a rule routing `portal-invitations` events to the queue.
/// The client used for the setup is not counted.
async fn wired_bus(moto: &Moto) -> Wired {
    let eb: aws_sdk_eventbridge::Client = moto.client();
    let sqs: aws_sdk_sqs::Client = moto.client();
    let bus_name = unique("portal-bus");
    eb.create_event_bus()
        .name(&bus_name)
        .send()
        .await
        .expect("CreateEventBus");
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("portal-events"))
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .expect("a queue URL")
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("the queue ARN")
        .clone();
    let rule = unique("send-steps");
    eb.put_rule()
        .name(&rule)
        .event_bus_name(&bus_name)
        .event_pattern(serde_json::json!({ "source": [EVENT_SOURCE] }).to_string())
        .send()
        .await
        .expect("PutRule");
    eb.put_targets()
        .rule(&rule)
        .event_bus_name(&bus_name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .expect("a target"),
        )
        .send()
        .await
        .expect("PutTargets");
    Wired {
        bus_name,
        queue_url,
        sqs,
    }
}

impl Wired {
    /// Reads the queue until `expected` events came or the queue is drained, deleting what
    /// it reads; returns the events (EventBridge's JSON envelope).
    async fn drain(&self, expected: usize) -> Vec<Value> {
        let mut events = Vec::new();
        // Bounded: 25 events take 3 reads of 10; empty answers end it early.
        for _ in 0..(expected / 10 + 5) {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("ReceiveMessage");
            let messages = out.messages();
            if messages.is_empty() && events.len() >= expected {
                break;
            }
            for m in messages {
                let body = m.body().expect("a message body");
                events.push(serde_json::from_str(body).expect("the event is JSON"));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().expect("a receipt handle"))
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
        events
    }
}

fn tenant() -> TenantId {
    TenantId::parse("lakeside-hoa").unwrap()
}

fn campaign(n: u32) -> CampaignId {
    CampaignId::parse(format!("{n:032x}")).unwrap()
}

fn recipient(i: usize, name_len: usize) -> Recipient {
    Recipient {
        contact_id: ContactId::parse(format!("c-{i}")).unwrap(),
        email: Email::parse(&format!("resident{i}@example.com")).unwrap(),
        contact_name: format!("Résident {i} {}", "n".repeat(name_len)),
        account_number: format!("A-{i:05}"),
        account_name: format!("Unit {i}"),
        division_id: DivisionId::parse("north").unwrap(),
        division_name: "North Shore".into(),
        portal_key: "7KQ4-M2XD-9RTA-HW3E".into(),
        fresh: true,
    }
}

fn deliver(campaign_n: u32, recipients: usize, name_len: usize) -> SendMessage {
    SendMessage::Deliver {
        tenant: tenant(),
        campaign_id: campaign(campaign_n),
        recipients: (0..recipients).map(|i| recipient(i, name_len)).collect(),
        spec: None,
    }
}

fn detail_bytes(m: &SendMessage) -> usize {
    serde_json::to_string(m).unwrap().len()
}

#[tokio::test]
async fn twenty_five_messages_take_three_put_events_calls_and_all_arrive_intact() {
    let moto = Moto::shared();
    let wired = wired_bus(moto).await;
    let counter = RequestCounter::new();
    let bus = EventBridgeBus::new(moto.counted_client(&counter), &wired.bus_name).with_retry(FAST);

    let messages: Vec<SendMessage> = (0..25u32)
        .map(|n| {
            if n % 3 == 0 {
                SendMessage::FanOut {
                    tenant: tenant(),
                    campaign_id: campaign(n),
                    cursor: (n > 0).then(|| format!("cursor-{n}")),
                    spec: None,
                }
            } else {
                deliver(n, 3, 5)
            }
        })
        .collect();
    bus.publish(&messages).await.expect("publish");

    assert_eq!(counter.get("PutEvents"), 3, "{:?}", counter.snapshot());
    assert_eq!(counter.total(), 3);

    let events = wired.drain(messages.len()).await;
    assert_eq!(events.len(), messages.len(), "every message arrives once");
    let mut unmatched = messages.clone();
    for event in &events {
        assert_eq!(event["source"], EVENT_SOURCE);
        let received: SendMessage =
            serde_json::from_value(event["detail"].clone()).expect("the detail is a SendMessage");
        assert_eq!(event["detail-type"], received.detail_type());
        let at = unmatched
            .iter()
            .position(|m| *m == received)
            .unwrap_or_else(|| panic!("unexpected or duplicate event {event}"));
        unmatched.remove(at);
    }
    assert!(unmatched.is_empty());
}

#[tokio::test]
async fn large_messages_are_spread_over_calls_that_stay_under_256_kb() {
    let moto = Moto::shared();
    let wired = wired_bus(moto).await;
    let counter = RequestCounter::new();
    let bus = EventBridgeBus::new(moto.counted_client(&counter), &wired.bus_name).with_retry(FAST);

    // Three ~100 KB deliveries: two fit in one call's 256 KB, the third needs another.
    let messages: Vec<SendMessage> = (0..3).map(|n| deliver(n, 400, 40)).collect();
    for m in &messages {
        let bytes = detail_bytes(m);
        assert!(
            bytes > MAX_CALL_BYTES / 3 && bytes < MAX_CALL_BYTES / 2,
            "{bytes}"
        );
    }
    bus.publish(&messages).await.expect("publish");

    assert_eq!(counter.get("PutEvents"), 2);
    let events = wired.drain(messages.len()).await;
    let mut received: Vec<SendMessage> = events
        .iter()
        .map(|e| serde_json::from_value(e["detail"].clone()).unwrap())
        .collect();
    received.sort_by(|a, b| a.campaign_id().cmp(b.campaign_id()));
    assert_eq!(received, messages);
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_nothing_is_sent() {
    let moto = Moto::shared();
    let wired = wired_bus(moto).await;
    let counter = RequestCounter::new();
    let bus = EventBridgeBus::new(moto.counted_client(&counter), &wired.bus_name).with_retry(FAST);

    let huge = deliver(1, 1500, 60);
    assert!(detail_bytes(&huge) > MAX_MESSAGE_BYTES);
    let small = SendMessage::FanOut {
        tenant: tenant(),
        campaign_id: campaign(2),
        cursor: None,
        spec: None,
    };
    let err = bus
        .publish(&[small, huge])
        .await
        .expect_err("an oversized message must be refused");
    assert!(
        matches!(err, BusError::TooLarge { bytes } if bytes > MAX_MESSAGE_BYTES),
        "{err:?}"
    );
    assert_eq!(counter.total(), 0, "no request at all was sent");
    assert!(
        wired.drain(0).await.is_empty(),
        "not even the small message arrived"
    );
}

#[tokio::test]
async fn publishing_to_a_bus_that_does_not_exist_fails_at_once() {
    let moto = Moto::shared();
    let counter = RequestCounter::new();
    let bus =
        EventBridgeBus::new(moto.counted_client(&counter), unique("no-such-bus")).with_retry(FAST);

    let err = bus
        .publish(&[deliver(1, 2, 5)])
        .await
        .expect_err("a missing bus must not look like success");
    // moto answers with a whole-call ResourceNotFoundException; waiting will not help.
    assert!(
        matches!(&err, BusError::Backend(_))
            && portal_core::error_chain(&err).contains("ResourceNotFoundException"),
        "{err:?}"
    );
    assert_eq!(counter.get("PutEvents"), 1, "a missing bus is not retried");
}
