//! What every recurring case builds on: a seeded tenant of a few divisions, a [`Harness`]
//! holding the store, an injectable clock, the in-process queue and a recording mailer, and
//! a bus that refuses (or loses its answer) on demand.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portal_core::domain::*;
use portal_core::ports::*;
use portal_core::usecases::campaigns::{self, Recipients, Sending, StartCampaign, Started};
use portal_core::usecases::recurring::{
    self, LocalSchedules, RecurringError, RunOutcome, RunView, SettingInput,
};
use portal_core::usecases::send::queue::QueueBus;
use portal_core::usecases::send::{drain, RunReport, SendConfig, SendDeps, TokenDeriver};
use portal_testkit::builders::{AccountBuilder, ContactBuilder};
use time::{Duration, OffsetDateTime};

use crate::fixtures::{self, email, tenant, NoSleep, RecordingMailer, SECRET};

pub const CHICAGO: &str = "America/Chicago";
pub const AUCKLAND: &str = "Pacific/Auckland";
/// The setting most cases save.
pub const SETTING: &str = "weekly";

pub fn zone(name: &str) -> TimeZoneName {
    TimeZoneName::parse(name).unwrap()
}

pub fn date(s: &str) -> LocalDate {
    LocalDate::parse(s).unwrap()
}

pub fn setting_id(id: &str) -> RecurringId {
    RecurringId::parse(id).unwrap()
}

pub fn division_id(id: &str) -> DivisionId {
    DivisionId::parse(id).unwrap()
}

/// The address of contact `id`.
pub fn address(id: &str) -> String {
    format!("{id}@example.com")
}

/// A setting over `scope` (no division list): weekly, at most 3 invitations, 09:00 in
/// Chicago, the `welcome` template.
pub fn input(scope: &str) -> SettingInput {
    SettingInput {
        enabled: true,
        scope: scope.to_owned(),
        division_ids: Vec::new(),
        filters: Filters::default(),
        template_id: TemplateId::parse("welcome").unwrap(),
        email_from: None,
        cadence_days: 7,
        max_invitations_per_contact: 3,
        hour_of_day: 9,
        time_zone: CHICAGO.to_owned(),
    }
}

/// Division `d` first synced at `at` (a later sync keeps that time).
pub async fn put_division(store: &dyn Store, d: &str, at: OffsetDateTime) {
    let input = DivisionInput::new(
        division_id(d),
        format!("Division {d}"),
        email(&format!("{d}@hoa.example.org")),
    )
    .unwrap()
    .synced_at(at);
    store.put_division(&tenant(), &input).await.unwrap();
    portal_testkit::builders::allow_senders(store, &tenant(), &["hoa.example.org"]).await;
}

/// Syncs contacts `ids` (each with its [`address`]) into division `d`, four to an account
/// named after the first of them.
pub async fn put_contacts(store: &dyn Store, d: &str, ids: &[String]) {
    let accounts: Vec<Account> = ids
        .chunks(4)
        .map(|chunk| {
            AccountBuilder::new(format!("acc-{}", chunk[0]))
                .division(d)
                .contacts(chunk.iter().map(|id| {
                    ContactBuilder::new(id.clone())
                        .name(format!("Contact {id}"))
                        .email(address(id))
                        .build()
                }))
                .build()
        })
        .collect();
    store.upsert_accounts(&tenant(), &accounts).await.unwrap();
}

/// `n` contact ids of division `d`: `{d}-c00`, `{d}-c01`, …
pub fn ids(d: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{d}-c{i:02}")).collect()
}

/// The contacts no run may ever invite: `nomail` (no address), `done` (registered) and
/// `supp` (address suppressed), all in the first division.
pub const NEVER: [&str; 3] = ["nomail", "done", "supp"];

/// Divisions `divisions` first synced at `at`, each with `per_division` contacts ([`ids`]);
/// plus the [`NEVER`] contacts in the first division and the `welcome` template. Answers
/// the ids of the contacts with an address that runs may invite.
pub async fn seed(
    store: &dyn Store,
    divisions: &[&str],
    per_division: usize,
    at: OffsetDateTime,
) -> Vec<String> {
    let t = tenant();
    let mut invitable = Vec::new();
    for d in divisions {
        put_division(store, d, at).await;
        let ids = ids(d, per_division);
        if !ids.is_empty() {
            put_contacts(store, d, &ids).await;
        }
        invitable.extend(ids);
    }
    let first = divisions[0];
    let special = AccountBuilder::new("acc-special")
        .division(first)
        .contacts([
            ContactBuilder::new("nomail").name("No Mail").build(),
            ContactBuilder::new("done")
                .name("Registered")
                .email(address("done"))
                .build(),
            ContactBuilder::new("supp")
                .name("Unsubscribed")
                .email(address("supp"))
                .build(),
        ])
        .build();
    store.upsert_accounts(&t, &[special]).await.unwrap();
    store
        .set_portal_status(
            &t,
            &ContactId::parse("done").unwrap(),
            PortalStatus::Accepted,
        )
        .await
        .unwrap();
    store
        .suppress(
            &t,
            &email(&address("supp")),
            SuppressionReason::Unsubscribed,
            at,
        )
        .await
        .unwrap();
    let template = Template::new(
        TemplateId::parse("welcome").unwrap(),
        "Welcome",
        "Hello [ContactName]",
        "<p>Join [DivisionName]: <a href=\"[PortalLink]\">here</a> <a href=\"[UnsubscribeLink]\">stop</a></p>",
        "Join [DivisionName]: [PortalLink]\nStop: [UnsubscribeLink]",
    )
    .unwrap();
    store.put_template(&t, &template).await.unwrap();
    invitable
}

/// The bus of the runs: the harness's queue, which can refuse the next publishes (nothing
/// is queued: a run dies there) or lose its answer (the messages are queued but the caller
/// is told it failed — a timed-out PutEvents that went through).
#[derive(Default)]
pub struct FlakyBus {
    pub queue: Arc<QueueBus>,
    refuse: AtomicU32,
    lose_answer: AtomicU32,
}

impl FlakyBus {
    pub fn refuse_next(&self, n: u32) {
        self.refuse.store(n, Ordering::SeqCst);
    }

    pub fn lose_answer_next(&self, n: u32) {
        self.lose_answer.store(n, Ordering::SeqCst);
    }
}

fn take(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl EventBus for FlakyBus {
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        if take(&self.refuse) {
            return Err(BusError::Backend("the bus refused (test)".into()));
        }
        self.queue.publish(messages).await?;
        if take(&self.lose_answer) {
            return Err(BusError::Backend("the answer was lost (test)".into()));
        }
        Ok(())
    }
}

/// The store, an injectable clock, the runs' bus and the in-process driver of their sends,
/// and every email the mailer accepted with the time it was sent.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    pub bus: Arc<FlakyBus>,
    pub mailer: Arc<RecordingMailer>,
    pub deps: SendDeps,
    pub sending: Sending,
    /// (when, recipient) of every email sent so far, in sending order.
    sent: Mutex<Vec<(OffsetDateTime, String)>>,
}

impl Harness {
    pub fn new(store: Arc<dyn Store>, at: OffsetDateTime) -> Self {
        let clock = Arc::new(FixedClock::new(at));
        let mailer = Arc::new(RecordingMailer::default());
        let mut deps = fixtures::deps_with(
            store.clone(),
            mailer.clone(),
            Arc::new(NoSleep::default()),
            SendConfig {
                page_size: 20,
                // The next fan-out page is claimed while a batch is delivered, and two
                // campaigns queued together fan out at once.
                step_concurrency: 2,
                ..fixtures::config()
            },
        );
        deps.clock = clock.clone();
        let bus = Arc::new(FlakyBus::default());
        let sending = Sending {
            bus: bus.clone(),
            tokens: Arc::new(TokenDeriver::new(SECRET).unwrap()),
            token_ttl: deps.config.token_ttl,
        };
        Self {
            store,
            clock,
            bus,
            mailer,
            deps,
            sending,
            sent: Mutex::new(Vec::new()),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn at(&self, t: OffsetDateTime) {
        self.clock.set(t);
    }

    pub async fn save(&self, id: &str, input: SettingInput) -> RecurringSetting {
        recurring::save_setting(
            &*self.store,
            &LocalSchedules,
            &*self.clock,
            &tenant(),
            setting_id(id),
            input,
        )
        .await
        .unwrap()
    }

    /// `run_setting` of `id` for `day` (`None`: the day due now).
    pub async fn run(
        &self,
        id: &str,
        day: Option<LocalDate>,
    ) -> Result<RunOutcome, RecurringError> {
        recurring::run_setting(
            &*self.store,
            &*self.clock,
            &self.sending,
            &tenant(),
            &setting_id(id),
            day,
        )
        .await
    }

    /// The local server's scheduler tick: every due setting of every tenant.
    pub async fn run_due(&self) -> Vec<(TenantId, RecurringId, RunOutcome)> {
        recurring::run_due(&*self.store, &*self.clock, &self.sending)
            .await
            .unwrap()
    }

    pub async fn preview(&self, id: &str) -> (Vec<DivisionId>, Counts) {
        recurring::preview(&*self.store, &*self.clock, &tenant(), &setting_id(id))
            .await
            .unwrap()
    }

    /// A manager's bulk send over `divisions` now (`POST /v1/campaigns`).
    pub async fn start_manual(
        &self,
        divisions: &[&str],
    ) -> Result<Started, campaigns::CampaignError> {
        campaigns::start_campaign(
            &*self.store,
            &*self.clock,
            &self.sending,
            &tenant(),
            "manager@example.org",
            StartCampaign {
                recipients: Recipients::Divisions {
                    division_ids: divisions.iter().map(|d| division_id(d)).collect(),
                    filters: Filters::default(),
                },
                limit_to_uninvited: false,
                template_id: TemplateId::parse("welcome").unwrap(),
                email_from: None,
            },
            None,
        )
        .await
    }

    /// Runs everything queued (and what it queues) to the end, at the clock's time, and
    /// files the emails it sent under that time.
    pub async fn drain(&self) -> RunReport {
        let report = drain(&self.deps, &self.bus.queue).await.unwrap();
        let now = self.now();
        let new: Vec<RawEmail> = std::mem::take(&mut *self.mailer.sent.lock().unwrap());
        self.sent
            .lock()
            .unwrap()
            .extend(new.into_iter().map(|e| (now, e.to.as_str().to_owned())));
        report
    }

    /// Every email sent so far, in order.
    pub fn sent(&self) -> Vec<(OffsetDateTime, String)> {
        self.sent.lock().unwrap().clone()
    }

    /// When each recipient got its emails, in order.
    pub fn per_recipient(&self) -> BTreeMap<String, Vec<OffsetDateTime>> {
        let mut m: BTreeMap<String, Vec<OffsetDateTime>> = BTreeMap::new();
        for (at, to) in self.sent() {
            m.entry(to).or_default().push(at);
        }
        m
    }

    /// How many emails each recipient got.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.per_recipient()
            .into_iter()
            .map(|(k, v)| (k, v.len()))
            .collect()
    }

    /// The campaigns in `d`'s history, newest first.
    pub async fn campaigns(&self, d: &str) -> Vec<Campaign> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list_campaigns(&tenant(), &division_id(d), cursor.as_deref(), 50)
                .await
                .unwrap();
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    /// `GET /v1/recurring/{id}/runs`, every page.
    pub async fn runs(&self, id: &str) -> Vec<RunView> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = recurring::runs(
                &*self.store,
                &tenant(),
                &setting_id(id),
                cursor.as_deref(),
                25,
            )
            .await
            .unwrap();
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    pub async fn contact(&self, id: &str) -> ContactRecord {
        self.store
            .get_contact(&tenant(), &ContactId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("contact {id} is missing"))
    }

    pub async fn campaign(&self, id: &CampaignId) -> Campaign {
        self.store
            .get_campaign(&tenant(), id)
            .await
            .unwrap()
            .unwrap()
    }

    /// The run record of an outcome that has one.
    pub fn record(outcome: &RunOutcome) -> &RunRecord {
        match outcome {
            RunOutcome::AlreadyRan { run }
            | RunOutcome::NobodyDue { run }
            | RunOutcome::Queued { run } => run,
            other => panic!("no run record in {other:?}"),
        }
    }
}

/// `1` for each of `ids`' addresses.
pub fn once_each<'a>(ids: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, usize> {
    ids.into_iter().map(|id| (address(id), 1)).collect()
}

/// A whole number of days.
pub fn days(n: i64) -> Duration {
    Duration::days(n)
}
