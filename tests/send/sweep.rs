//! The sweeper end to end (`portal_core::usecases::send::sweep`): a campaign whose messages
//! were lost — its first fan-out dropped or refused by the bus, its delivery batches lost
//! after the fan-out — is re-published once it made no progress for `idle`, and then sends
//! every eligible contact exactly one email; a sweep before `idle`, a second sweep, and a
//! paused campaign publish nothing. Time is a fixed clock moved by hand.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use portal_core::domain::*;
use portal_core::ports::*;
use portal_core::usecases::campaigns::{
    start_campaign, CampaignError, Recipients, Sending, StartCampaign,
};
use portal_core::usecases::send::queue::{drain, QueueBus};
use portal_core::usecases::send::sweep::{sweep, SweepConfig, SweepReport};
use portal_core::usecases::send::*;
use time::Duration;

use crate::fixtures::*;

const IDLE: Duration = Duration::minutes(10);

/// A bus in front of a queue that refuses (`Err`) its next `refuse` publishes, then silently
/// drops (`Ok`, nothing queued) its next `drop` ones, then queues.
struct LossyBus {
    queue: Arc<QueueBus>,
    refuse: AtomicUsize,
    drop: AtomicUsize,
}

impl LossyBus {
    fn new(refuse: usize, drop: usize) -> Self {
        Self {
            queue: Arc::new(QueueBus::default()),
            refuse: AtomicUsize::new(refuse),
            drop: AtomicUsize::new(drop),
        }
    }
}

fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl EventBus for LossyBus {
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        if take(&self.refuse) {
            return Err(BusError::Backend("the bus is down".into()));
        }
        if take(&self.drop) {
            return Ok(());
        }
        self.queue.publish(messages).await
    }
}

struct World {
    store: Arc<dyn Store>,
    sweeper: Arc<dyn CampaignSweepStore>,
    clock: Arc<FixedClock>,
    mailer: Arc<RecordingMailer>,
    deps: SendDeps,
}

fn world(store: Arc<dyn Store>, sweeper: Arc<dyn CampaignSweepStore>) -> World {
    let clock = Arc::new(FixedClock::new(NOW));
    let mailer = Arc::new(RecordingMailer::default());
    let mut deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    deps.clock = clock.clone();
    World {
        store,
        sweeper,
        clock,
        mailer,
        deps,
    }
}

impl World {
    async fn sweep(&self, bus: &dyn EventBus) -> SweepReport {
        sweep(
            &*self.sweeper,
            bus,
            &*self.clock,
            &SweepConfig { idle: IDLE },
        )
        .await
        .unwrap()
    }

    async fn status(&self, c: &CampaignId) -> CampaignStatus {
        self.store
            .get_campaign(&tenant(), c)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// `POST /v1/campaigns` for division `d1` through `bus`.
    async fn start(&self, bus: Arc<dyn EventBus>) -> Result<CampaignId, CampaignError> {
        let sending = Sending {
            bus,
            tokens: self.deps.tokens.clone(),
            token_ttl: self.deps.config.token_ttl,
        };
        let request = StartCampaign {
            recipients: Recipients::Divisions {
                division_ids: vec![DivisionId::parse("d1").unwrap()],
                filters: Filters::default(),
            },
            limit_to_uninvited: true,
            template_id: TemplateId::parse("welcome").unwrap(),
            email_from: None,
        };
        start_campaign(
            &*self.store,
            &*self.clock,
            &sending,
            &tenant(),
            "manager-1",
            request,
            None,
        )
        .await
        .map(|s| s.campaign_id)
    }
}

fn report(active: u64, republished: u64, moved: u64, waiting: u64) -> SweepReport {
    SweepReport {
        active,
        republished,
        moved,
        waiting,
        ..SweepReport::default()
    }
}

pub async fn a_dropped_first_publish_is_repaired_by_the_first_sweep_after_idle_and_sends_each_contact_once(
    store: Arc<dyn Store>,
    sweeper: Arc<dyn CampaignSweepStore>,
) {
    seed(&*store, 20).await;
    let w = world(store, sweeper);
    let bus = Arc::new(LossyBus::new(0, 1));
    let c = w.start(bus.clone()).await.unwrap();
    assert!(bus.queue.is_empty(), "the first fan-out was dropped");
    drain(&w.deps, &bus.queue).await.unwrap();
    assert_eq!(w.status(&c).await, CampaignStatus::Queued);

    // Before `idle`: nothing.
    w.clock.advance(IDLE - Duration::seconds(1));
    assert_eq!(w.sweep(&*bus).await, report(1, 0, 0, 1));
    assert!(bus.queue.is_empty());

    // At `idle`: re-published once; a sweep right after publishes nothing more.
    w.clock.advance(Duration::seconds(1));
    assert_eq!(w.sweep(&*bus).await, report(1, 1, 0, 0));
    assert_eq!(bus.queue.len(), 1);
    assert_eq!(w.sweep(&*bus).await, report(1, 0, 0, 1));
    assert_eq!(bus.queue.len(), 1);

    let run = drain(&w.deps, &bus.queue).await.unwrap();
    assert_eq!(run.sent, 20);
    assert_eq!(w.status(&c).await, CampaignStatus::Completed);
    assert_eq!(w.mailer.recipients(), expected(20));

    // A finished campaign is no longer swept, however long after.
    w.clock.advance(Duration::hours(3));
    assert_eq!(w.sweep(&*bus).await, report(0, 0, 0, 0));
    assert!(bus.queue.is_empty());
    assert_eq!(w.mailer.recipients(), expected(20));
}

pub async fn a_sending_campaign_whose_deliveries_were_lost_is_completed_after_a_sweep(
    store: Arc<dyn Store>,
    sweeper: Arc<dyn CampaignSweepStore>,
) {
    seed(&*store, 20).await;
    let w = world(store, sweeper);
    let c = new_campaign(&*w.store, Trigger::Manual, &["d1"]).await;
    // The fan-out runs whole; every delivery batch it publishes is lost.
    let queue = QueueBus::default();
    queue
        .publish(&[SendMessage::FanOut {
            tenant: tenant(),
            campaign_id: c.clone(),
            cursor: None,
            spec: None,
        }])
        .await
        .unwrap();
    let mut lost = 0;
    while let Some(msg) = queue.pop() {
        match msg {
            SendMessage::FanOut { .. } => {
                handle(&w.deps, &queue, &msg).await.unwrap();
            }
            SendMessage::Deliver { .. } => lost += 1,
        }
    }
    assert!(lost > 0);
    let stuck = w.store.get_campaign(&tenant(), &c).await.unwrap().unwrap();
    assert_eq!(stuck.status, CampaignStatus::Sending);
    assert_eq!(stuck.sends.pending, 20);
    assert!(w.mailer.recipients().is_empty());

    // Seen moving (first sight): recorded; unchanged for less than `idle`: waits; then
    // re-published.
    let bus = LossyBus::new(0, 0);
    w.clock.advance(Duration::minutes(1));
    assert_eq!(w.sweep(&bus).await, report(1, 0, 1, 0));
    w.clock.advance(IDLE - Duration::seconds(1));
    assert_eq!(w.sweep(&bus).await, report(1, 0, 0, 1));
    assert!(bus.queue.is_empty());
    w.clock.advance(Duration::seconds(1));
    assert_eq!(w.sweep(&bus).await, report(1, 1, 0, 0));

    let run = drain(&w.deps, &bus.queue).await.unwrap();
    assert_eq!(run.sent, 20);
    assert_eq!(w.status(&c).await, CampaignStatus::Completed);
    assert_eq!(w.mailer.recipients(), expected(20));
    assert_eq!(w.sweep(&bus).await, report(0, 0, 0, 0));
}

pub async fn a_refused_first_publish_and_a_refused_republish_are_both_retried(
    store: Arc<dyn Store>,
    sweeper: Arc<dyn CampaignSweepStore>,
) {
    seed(&*store, 9).await;
    let w = world(store, sweeper);
    // The first publish (the campaign's) and the second (the sweep's) are refused.
    let bus = Arc::new(LossyBus::new(2, 0));
    let c = match w.start(bus.clone()).await {
        Err(CampaignError::NotQueued { campaign_id, .. }) => campaign_id,
        other => panic!("{other:?}"),
    };
    assert_eq!(w.status(&c).await, CampaignStatus::Queued);

    w.clock.advance(IDLE);
    let refused = w.sweep(&*bus).await;
    assert_eq!(
        refused,
        SweepReport {
            active: 1,
            failed: 1,
            ..SweepReport::default()
        }
    );
    // The claim was undone: the next sweep tries again at once.
    assert_eq!(w.sweep(&*bus).await, report(1, 1, 0, 0));
    drain(&w.deps, &bus.queue).await.unwrap();
    assert_eq!(w.status(&c).await, CampaignStatus::Completed);
    assert_eq!(w.mailer.recipients(), expected(9));
}

pub async fn a_paused_campaign_is_never_republished(
    store: Arc<dyn Store>,
    sweeper: Arc<dyn CampaignSweepStore>,
) {
    seed(&*store, 3).await;
    let w = world(store, sweeper);
    let c = new_campaign(&*w.store, Trigger::Manual, &["d1"]).await;
    assert!(w
        .store
        .update_campaign_status(
            &tenant(),
            &c,
            CampaignStatus::Queued,
            CampaignStatus::Paused,
            Some("a manager paused it".into()),
        )
        .await
        .unwrap());
    let bus = LossyBus::new(0, 0);
    for _ in 0..3 {
        w.clock.advance(IDLE * 2);
        assert_eq!(w.sweep(&bus).await, report(0, 0, 0, 0));
    }
    assert!(bus.queue.is_empty());
    assert_eq!(w.status(&c).await, CampaignStatus::Paused);
}
