//! The send use cases (`portal_core::usecases::send`) driven in-process on the embedded
//! store: exactly one email per eligible contact, replays and concurrent campaigns send
//! nothing twice, a run killed at any step and re-run loses nothing, and the mailer's
//! answers (throttled, rejected) end where the spec says.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use portal_core::adapters::sqlite::SqliteStore;
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::*;
use portal_core::ports::*;
use portal_core::usecases::send::*;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

fn tenant() -> TenantId {
    TenantId::parse("t1").unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

/// Division `d1` with `n` contacts `c000..` (emails), plus `nomail` without an address and
/// `done` who already registered; division `d2` with `m` contacts `e000..`.
async fn seed(store: &dyn Store, n: usize) {
    let t = tenant();
    for d in ["d1", "d2"] {
        let input = DivisionInput::new(
            DivisionId::parse(d).unwrap(),
            format!("Division {d}"),
            email(&format!("{d}@hoa.example.org")),
        )
        .unwrap();
        store.put_division(&t, &input).await.unwrap();
    }
    let mut contacts: Vec<ContactInput> = (0..n)
        .map(|i| {
            ContactInput::new(
                ContactId::parse(format!("c{i:03}")).unwrap(),
                format!("Contact {i}"),
                Some(email(&format!("c{i}@example.com"))),
                String::new(),
                true,
            )
            .unwrap()
        })
        .collect();
    contacts.push(
        ContactInput::new(
            ContactId::parse("nomail").unwrap(),
            "No Mail".into(),
            None,
            String::new(),
            true,
        )
        .unwrap(),
    );
    contacts.push(
        ContactInput::new(
            ContactId::parse("done").unwrap(),
            "Registered".into(),
            Some(email("done@example.com")),
            String::new(),
            true,
        )
        .unwrap(),
    );
    let accounts: Vec<Account> = contacts
        .chunks(4)
        .enumerate()
        .map(|(a, chunk)| {
            Account::new(
                AccountId::parse(format!("a{a:03}")).unwrap(),
                DivisionId::parse("d1").unwrap(),
                format!("N-{a}"),
                format!("Account {a}"),
                "Residential".into(),
                "A".into(),
                "Web".into(),
                "North".into(),
                true,
                0,
                false,
                None,
                chunk.to_vec(),
            )
            .unwrap()
        })
        .collect();
    store.upsert_accounts(&t, &accounts).await.unwrap();
    store
        .set_portal_status(
            &t,
            &ContactId::parse("done").unwrap(),
            PortalStatus::Accepted,
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
}

async fn new_campaign(store: &dyn Store, trigger: Trigger, divisions: &[&str]) -> CampaignId {
    let c = Campaign {
        campaign_id: CampaignId::generate(NOW),
        trigger,
        status: CampaignStatus::Queued,
        division_ids: divisions
            .iter()
            .map(|d| DivisionId::parse(*d).unwrap())
            .collect(),
        filters: Filters::default(),
        limit_to_uninvited: true,
        template_id: "welcome".into(),
        email_from: email("d1@hoa.example.org"),
        created_at: NOW,
        created_by: "manager-1".into(),
        targeted: 0,
        skipped: Skipped::default(),
        categories: Default::default(),
        pause_reason: None,
    };
    let out = store
        .create_campaign(&tenant(), &c, None, NOW)
        .await
        .unwrap();
    assert_eq!(out, CreateOutcome::Created);
    c.campaign_id
}

/// A mailer that records every accepted message and answers scripted errors first (or
/// rejects every message when `reject_all`).
#[derive(Default)]
struct RecordingMailer {
    sent: Mutex<Vec<RawEmail>>,
    script: Mutex<VecDeque<MailError>>,
    reject_all: bool,
    fault: Option<Arc<Fault>>,
}

impl RecordingMailer {
    fn recipients(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for e in self.sent.lock().unwrap().iter() {
            *m.entry(e.to.as_str().to_owned()).or_default() += 1;
        }
        m
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send_raw(&self, msg: &RawEmail) -> Result<SentMessage, MailError> {
        if let Some(f) = &self.fault {
            if f.step("send_raw") {
                return Err(MailError::Backend {
                    detail: "process killed".into(),
                });
            }
        }
        if let Some(e) = self.script.lock().unwrap().pop_front() {
            return Err(e);
        }
        if self.reject_all {
            return Err(MailError::Rejected {
                reason: "sender not verified".into(),
            });
        }
        self.sent.lock().unwrap().push(msg.clone());
        Ok(SentMessage {
            message_id: msg.message_id.clone(),
        })
    }
}

/// Records back-offs instead of sleeping.
#[derive(Default)]
struct NoSleep(Mutex<Vec<StdDuration>>);

#[async_trait]
impl Sleeper for NoSleep {
    async fn sleep(&self, d: StdDuration) {
        self.0.lock().unwrap().push(d);
    }
}

fn deps_with(
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
    sleeper: Arc<dyn Sleeper>,
    config: SendConfig,
) -> SendDeps {
    SendDeps {
        store,
        mailer,
        clock: Arc::new(FixedClock::new(NOW)),
        sleeper,
        unsubscribe: Arc::new(UnsubscribeSigner::new(SECRET).unwrap()),
        tokens: Arc::new(TokenDeriver::new(SECRET).unwrap()),
        public_url: "https://portal.example.org".into(),
        limiter: Arc::new(RateLimiter::new(config.max_send_rate)),
        config,
    }
}

fn config() -> SendConfig {
    SendConfig {
        page_size: 7,
        max_send_rate: None,
        ..SendConfig::default()
    }
}

fn expected(n: usize) -> BTreeMap<String, usize> {
    (0..n).map(|i| (format!("c{i}@example.com"), 1)).collect()
}

async fn invitations(store: &dyn Store, c: &CampaignId) -> Vec<Invitation> {
    store
        .list_invitations(&tenant(), c, None, 500)
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_campaign_sends_one_email_to_each_eligible_contact_and_completes() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 20).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );

    let report = run_campaign(&deps, &tenant(), &c).await.unwrap();

    assert_eq!(report.sent, 20);
    assert_eq!(report.status, Some(CampaignStatus::Completed));
    assert_eq!(mailer.recipients(), expected(20));
    let campaign = store.get_campaign(&tenant(), &c).await.unwrap().unwrap();
    assert_eq!(campaign.status, CampaignStatus::Completed);
    assert_eq!(campaign.targeted, 20);
    assert_eq!(
        campaign.categories,
        CategoryCounts {
            sent: 20,
            ..CategoryCounts::default()
        }
    );
    assert_eq!(campaign.targeted, 20);
    assert_eq!(campaign.skipped.no_email, 1);
    assert_eq!(campaign.skipped.accepted, 1);
    assert!(invitations(&*store, &c)
        .await
        .iter()
        .all(|i| i.category == InvitationCategory::Sent));
}

#[tokio::test]
async fn an_email_carries_a_registration_link_matching_the_stored_hash_and_one_click_unsubscribe() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 1).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    run_campaign(&deps, &tenant(), &c).await.unwrap();

    let sent = mailer.sent.lock().unwrap()[0].clone();
    let raw = String::from_utf8_lossy(&sent.raw).replace("=\r\n", "");
    assert!(raw.contains("List-Unsubscribe: <https://portal.example.org/v1/unsubscribe?token="));
    assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    assert!(sent.tags.contains(&("campaign".to_owned(), c.to_string())));
    let parsed = mail_parser::MessageParser::default()
        .parse(&sent.raw[..])
        .unwrap();
    let text = parsed.body_text(0).unwrap().into_owned();
    let start = text.find("/register?token=").unwrap() + "/register?token=".len();
    let token: String = text[start..]
        .chars()
        .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '-' || *ch == '_')
        .collect();
    let inv = &invitations(&*store, &c).await[0];
    assert_eq!(hash_token(&token), inv.registration_token_hash);
    assert!(token.len() >= 22, "at least 128 bits");
    let ustart = text.find("/v1/unsubscribe?token=").unwrap() + "/v1/unsubscribe?token=".len();
    let utoken: String = text[ustart..]
        .chars()
        .take_while(|ch| !ch.is_whitespace())
        .collect();
    let claim = UnsubscribeSigner::new(SECRET)
        .unwrap()
        .verify(&utoken)
        .unwrap();
    assert_eq!(claim.invitation_id, format!("{c}:c000"));
    assert_eq!(claim.email, email("c0@example.com"));
}

#[tokio::test]
async fn running_a_finished_campaign_again_or_a_second_campaign_sends_nothing() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 9).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    run_campaign(&deps, &tenant(), &c).await.unwrap();

    let again = run_campaign(&deps, &tenant(), &c).await.unwrap();
    assert_eq!(again.sent, 0);
    let other = new_campaign(&*store, Trigger::Individual, &["d1"]).await;
    let second = run_campaign(&deps, &tenant(), &other).await.unwrap();
    assert_eq!(second.sent, 0);
    assert_eq!(mailer.recipients(), expected(9));
    let o = store
        .get_campaign(&tenant(), &other)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.targeted, 0);
}

#[tokio::test]
async fn a_replayed_fan_out_page_yields_the_same_batches_and_claims_nothing_new() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 25).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        SendConfig {
            page_size: 23,
            ..config()
        },
    );
    let first = fan_out_page(&deps, &tenant(), &c, None).await.unwrap();
    let replay = fan_out_page(&deps, &tenant(), &c, None).await.unwrap();
    assert_eq!(first, replay);
    assert!(first
        .batches
        .iter()
        .all(|b| b.recipients.len() <= MAX_BATCH));
    assert_eq!(first.batches.len(), 23usize.div_ceil(MAX_BATCH));
    let campaign = store.get_campaign(&tenant(), &c).await.unwrap().unwrap();
    assert_eq!(
        campaign.targeted,
        first
            .batches
            .iter()
            .map(|b| b.recipients.len() as u64)
            .sum::<u64>()
    );
}

#[tokio::test]
async fn a_duplicated_delivery_batch_sends_nothing_twice() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 5).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    let step = fan_out_page(&deps, &tenant(), &c, None).await.unwrap();
    let batch = &step.batches[0].recipients;
    let first = deliver_batch(&deps, &tenant(), &c, batch).await.unwrap();
    let again = deliver_batch(&deps, &tenant(), &c, batch).await.unwrap();
    assert_eq!(first.sent, 5);
    assert_eq!(again.sent, 0);
    assert_eq!(again.skipped, 5);
    assert_eq!(mailer.recipients(), expected(5));
}

#[tokio::test]
async fn two_concurrent_campaigns_over_the_same_contacts_send_each_contact_one_email() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 30).await;
    let a = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let b = new_campaign(&*store, Trigger::Individual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        SendConfig {
            page_size: 3,
            ..config()
        },
    );
    let t = tenant();
    let (ra, rb) = tokio::join!(run_campaign(&deps, &t, &a), run_campaign(&deps, &t, &b));
    assert_eq!(ra.unwrap().sent + rb.unwrap().sent, 30);
    assert_eq!(mailer.recipients(), expected(30));
}

#[tokio::test]
async fn a_throttled_send_is_retried_after_a_back_off_and_sent_once() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 1).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    mailer.script.lock().unwrap().extend([
        MailError::Throttled {
            detail: "slow down".into(),
        },
        MailError::Transient {
            detail: "503".into(),
        },
    ]);
    let sleeper = Arc::new(NoSleep::default());
    let deps = deps_with(store.clone(), mailer.clone(), sleeper.clone(), config());
    let report = run_campaign(&deps, &tenant(), &c).await.unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(mailer.recipients(), expected(1));
    let waits = sleeper.0.lock().unwrap().clone();
    assert_eq!(
        waits,
        vec![StdDuration::from_millis(200), StdDuration::from_millis(400)]
    );
}

#[tokio::test]
async fn throttling_that_never_ends_leaves_the_invitation_in_process_for_a_rerun() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 1).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    mailer
        .script
        .lock()
        .unwrap()
        .extend((0..6).map(|_| MailError::Throttled {
            detail: "slow".into(),
        }));
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    assert!(matches!(
        run_campaign(&deps, &tenant(), &c).await,
        Err(SendError::Throttled(_))
    ));
    assert_eq!(
        invitations(&*store, &c).await[0].category,
        InvitationCategory::InProcess
    );
    run_campaign(&deps, &tenant(), &c).await.unwrap();
    assert_eq!(mailer.recipients(), expected(1));
}

#[tokio::test]
async fn a_rejected_message_ends_failed_with_the_reason() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 2).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    mailer
        .script
        .lock()
        .unwrap()
        .push_back(MailError::Rejected {
            reason: "content rejected".into(),
        });
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    let report = run_campaign(&deps, &tenant(), &c).await.unwrap();
    assert_eq!((report.sent, report.failed), (1, 1));
    let failed: Vec<_> = invitations(&*store, &c)
        .await
        .into_iter()
        .filter_map(|i| i.category.reason().map(str::to_owned))
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("content rejected"), "{failed:?}");
    assert_eq!(report.status, Some(CampaignStatus::Completed));
}

#[tokio::test]
async fn failures_over_the_threshold_pause_the_campaign_with_the_reason() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 40).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer {
        reject_all: true,
        ..RecordingMailer::default()
    });
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        SendConfig {
            failure_threshold: 3,
            ..config()
        },
    );
    let report = run_campaign(&deps, &tenant(), &c).await.unwrap();
    assert_eq!(report.status, Some(CampaignStatus::Paused));
    assert!(report.failed < 40, "stopped early: {report:?}");
    let campaign = store.get_campaign(&tenant(), &c).await.unwrap().unwrap();
    assert_eq!(campaign.status, CampaignStatus::Paused);
    assert!(campaign.pause_reason.unwrap().contains("threshold of 3"));
    // A paused campaign claims and sends nothing more.
    let step = fan_out_page(&deps, &tenant(), &c, None).await.unwrap();
    assert!(step.batches.is_empty() && step.done);
    let again = run_campaign(&deps, &tenant(), &c).await.unwrap();
    assert_eq!((again.sent, again.failed), (0, 0));
}

#[tokio::test]
async fn the_configured_send_rate_spaces_the_sends() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 4).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let sleeper = Arc::new(NoSleep::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        sleeper.clone(),
        SendConfig {
            max_send_rate: Some(10.0),
            ..config()
        },
    );
    run_campaign(&deps, &tenant(), &c).await.unwrap();
    let waits = sleeper.0.lock().unwrap().clone();
    // The clock stands still, so each send waits one more slot of 100 ms.
    assert_eq!(
        waits,
        [100, 200, 300].map(StdDuration::from_millis).to_vec()
    );
}

/// Counts steps (store calls and sends); from step `kill_at` on every call fails, as if the
/// process had died there. Remembers which operation the kill hit.
#[derive(Default)]
struct Fault {
    steps: AtomicU64,
    kill_at: Option<u64>,
    killed_op: Mutex<Option<&'static str>>,
}

impl Fault {
    /// `true` when this step is dead.
    fn step(&self, op: &'static str) -> bool {
        let n = self.steps.fetch_add(1, Ordering::SeqCst);
        match self.kill_at {
            Some(k) if n >= k => {
                let mut killed = self.killed_op.lock().unwrap();
                if killed.is_none() {
                    *killed = Some(op);
                }
                true
            }
            _ => false,
        }
    }
}

struct Killable {
    inner: Arc<dyn Store>,
    fault: Arc<Fault>,
}

fn dead(op: &'static str) -> StoreError {
    StoreError::backend(op, std::io::Error::other("process killed"))
}

macro_rules! guarded {
    ($self:ident, $op:literal, $call:expr) => {{
        if $self.fault.step($op) {
            return Err(dead($op));
        }
        $call.await
    }};
}

#[async_trait]
impl DivisionStore for Killable {
    async fn put_division(&self, t: &TenantId, d: &DivisionInput) -> Result<Division, StoreError> {
        self.inner.put_division(t, d).await
    }
    async fn get_division(
        &self,
        t: &TenantId,
        id: &DivisionId,
    ) -> Result<Option<Division>, StoreError> {
        guarded!(self, "get_division", self.inner.get_division(t, id))
    }
    async fn list_divisions(&self, t: &TenantId) -> Result<Vec<Division>, StoreError> {
        self.inner.list_divisions(t).await
    }
}

#[async_trait]
impl AccountStore for Killable {
    async fn upsert_accounts(&self, t: &TenantId, a: &[Account]) -> Result<SyncReport, StoreError> {
        self.inner.upsert_accounts(t, a).await
    }
    async fn delete_account(&self, t: &TenantId, id: &AccountId) -> Result<bool, StoreError> {
        self.inner.delete_account(t, id).await
    }
}

#[async_trait]
impl ContactStore for Killable {
    async fn count_contacts(&self, t: &TenantId, q: &ContactQuery) -> Result<Counts, StoreError> {
        self.inner.count_contacts(t, q).await
    }
    async fn list_contacts(
        &self,
        t: &TenantId,
        q: &ListQuery,
    ) -> Result<Page<ContactRecord>, StoreError> {
        guarded!(self, "list_contacts", self.inner.list_contacts(t, q))
    }
    async fn get_contact(
        &self,
        t: &TenantId,
        id: &ContactId,
    ) -> Result<Option<ContactRecord>, StoreError> {
        guarded!(self, "get_contact", self.inner.get_contact(t, id))
    }
}

#[async_trait]
impl ContactStateStore for Killable {
    async fn set_portal_status(
        &self,
        t: &TenantId,
        id: &ContactId,
        s: PortalStatus,
    ) -> Result<bool, StoreError> {
        self.inner.set_portal_status(t, id, s).await
    }
    async fn record_invited(
        &self,
        t: &TenantId,
        id: &ContactId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.inner.record_invited(t, id, at).await
    }
}

#[async_trait]
impl SuppressionStore for Killable {
    async fn suppress(
        &self,
        t: &TenantId,
        e: &Email,
        r: SuppressionReason,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.suppress(t, e, r, at).await
    }
    async fn is_suppressed(&self, t: &TenantId, e: &Email) -> Result<bool, StoreError> {
        guarded!(self, "is_suppressed", self.inner.is_suppressed(t, e))
    }
    async fn suppressed_among(
        &self,
        t: &TenantId,
        e: &[Email],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        guarded!(self, "suppressed_among", self.inner.suppressed_among(t, e))
    }
}

#[async_trait]
impl TemplateStore for Killable {
    async fn put_template(&self, t: &TenantId, x: &Template) -> Result<(), StoreError> {
        self.inner.put_template(t, x).await
    }
    async fn get_template(
        &self,
        t: &TenantId,
        id: &TemplateId,
    ) -> Result<Option<Template>, StoreError> {
        guarded!(self, "get_template", self.inner.get_template(t, id))
    }
    async fn delete_template(&self, t: &TenantId, id: &TemplateId) -> Result<bool, StoreError> {
        self.inner.delete_template(t, id).await
    }
    async fn list_templates(&self, t: &TenantId) -> Result<Vec<Template>, StoreError> {
        self.inner.list_templates(t).await
    }
}

#[async_trait]
impl CampaignStore for Killable {
    async fn create_campaign(
        &self,
        t: &TenantId,
        c: &Campaign,
        i: Option<&Idempotency>,
        now: OffsetDateTime,
    ) -> Result<CreateOutcome, StoreError> {
        self.inner.create_campaign(t, c, i, now).await
    }
    async fn get_campaign(
        &self,
        t: &TenantId,
        id: &CampaignId,
    ) -> Result<Option<Campaign>, StoreError> {
        guarded!(self, "get_campaign", self.inner.get_campaign(t, id))
    }
    async fn update_campaign_status(
        &self,
        t: &TenantId,
        id: &CampaignId,
        e: CampaignStatus,
        n: CampaignStatus,
        r: Option<String>,
    ) -> Result<bool, StoreError> {
        guarded!(
            self,
            "update_campaign_status",
            self.inner.update_campaign_status(t, id, e, n, r)
        )
    }
    async fn add_campaign_counts(
        &self,
        t: &TenantId,
        id: &CampaignId,
        n: u64,
        s: Skipped,
    ) -> Result<bool, StoreError> {
        guarded!(
            self,
            "add_campaign_counts",
            self.inner.add_campaign_counts(t, id, n, s)
        )
    }
    async fn claim_contacts(
        &self,
        t: &TenantId,
        c: &CampaignId,
        claims: &[Claim],
        now: OffsetDateTime,
    ) -> Result<Vec<ClaimResult>, StoreError> {
        guarded!(
            self,
            "claim_contacts",
            self.inner.claim_contacts(t, c, claims, now)
        )
    }
    async fn list_invitations(
        &self,
        t: &TenantId,
        c: &CampaignId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Invitation>, StoreError> {
        guarded!(
            self,
            "list_invitations",
            self.inner.list_invitations(t, c, cursor, limit)
        )
    }
    async fn get_invitation(
        &self,
        t: &TenantId,
        c: &CampaignId,
        id: &ContactId,
    ) -> Result<Option<Invitation>, StoreError> {
        guarded!(self, "get_invitation", self.inner.get_invitation(t, c, id))
    }
    async fn get_invitations(
        &self,
        t: &TenantId,
        c: &CampaignId,
        ids: &[ContactId],
    ) -> Result<Vec<Invitation>, StoreError> {
        guarded!(
            self,
            "get_invitations",
            self.inner.get_invitations(t, c, ids)
        )
    }
    async fn record_outcomes(
        &self,
        t: &TenantId,
        c: &CampaignId,
        o: &[(ContactId, InvitationCategory)],
    ) -> Result<Vec<bool>, StoreError> {
        guarded!(self, "record_outcomes", self.inner.record_outcomes(t, c, o))
    }
    async fn set_invitation_category(
        &self,
        t: &TenantId,
        c: &CampaignId,
        id: &ContactId,
        cat: &InvitationCategory,
    ) -> Result<bool, StoreError> {
        guarded!(
            self,
            "set_invitation_category",
            self.inner.set_invitation_category(t, c, id, cat)
        )
    }
}

/// One kill-and-resume run: the campaign killed at step `kill_at`, then re-run to the end.
async fn kill_and_resume(
    n: usize,
    kill_at: Option<u64>,
) -> (BTreeMap<String, usize>, Option<&'static str>, u64) {
    let base: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*base, n).await;
    let c = new_campaign(&*base, Trigger::Manual, &["d1"]).await;
    let fault = Arc::new(Fault {
        kill_at,
        ..Fault::default()
    });
    let killable: Arc<dyn Store> = Arc::new(Killable {
        inner: base.clone(),
        fault: fault.clone(),
    });
    let sent = Arc::new(Mutex::new(Vec::new()));
    let dying_mailer = Arc::new(RecordingMailer {
        fault: Some(fault.clone()),
        ..RecordingMailer::default()
    });
    let cfg = SendConfig {
        page_size: 4,
        max_attempts: 2,
        ..config()
    };
    let deps = deps_with(
        killable,
        dying_mailer.clone(),
        Arc::new(NoSleep::default()),
        cfg.clone(),
    );
    let first = run_campaign(&deps, &tenant(), &c).await;
    let killed_op = *fault.killed_op.lock().unwrap();
    assert_eq!(first.is_err(), killed_op.is_some(), "{first:?}");
    sent.lock()
        .unwrap()
        .extend(dying_mailer.sent.lock().unwrap().drain(..));

    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        base.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        cfg,
    );
    let second = run_campaign(&deps, &tenant(), &c).await.unwrap();
    assert_eq!(second.status, Some(CampaignStatus::Completed));
    sent.lock()
        .unwrap()
        .extend(mailer.sent.lock().unwrap().drain(..));

    let mut per_contact = BTreeMap::new();
    for e in sent.lock().unwrap().iter() {
        *per_contact.entry(e.to.as_str().to_owned()).or_default() += 1;
    }
    (per_contact, killed_op, fault.steps.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_run_killed_at_any_step_and_resumed_sends_every_contact_exactly_once() {
    let n = 9;
    let (clean, killed, steps) = kill_and_resume(n, None).await;
    assert_eq!(killed, None);
    assert_eq!(clean, expected(n));
    assert!(steps > 30, "{steps} steps");
    for kill_at in 0..steps {
        let (per_contact, killed, _) = kill_and_resume(n, Some(kill_at)).await;
        let total: usize = per_contact.values().sum();
        let once: BTreeMap<String, usize> = per_contact.keys().map(|k| (k.clone(), 1)).collect();
        assert_eq!(
            once,
            expected(n),
            "kill at {kill_at} ({killed:?}): someone lost"
        );
        // The one documented at-least-once window: the email went out and the process
        // died before `sent` was written; that single email is sent again.
        if killed == Some("record_outcomes") {
            assert!(total <= n + 1, "kill at {kill_at}: {per_contact:?}");
        } else {
            assert_eq!(per_contact, expected(n), "kill at {kill_at} ({killed:?})");
        }
    }
}

#[tokio::test]
async fn a_contact_invited_before_is_left_alone_when_limited_to_uninvited_even_on_replays() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 4).await;
    // c000 was invited two days ago: pending, free of the 24-hour rule, but not uninvited.
    store
        .record_invited(
            &tenant(),
            &ContactId::parse("c000").unwrap(),
            NOW - time::Duration::days(2),
        )
        .await
        .unwrap();
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    let first = fan_out_page(&deps, &tenant(), &c, None).await.unwrap();
    let replay = fan_out_page(&deps, &tenant(), &c, None).await.unwrap();
    assert_eq!(
        first, replay,
        "our own claims made contacts pending; the replay keeps them"
    );
    run_campaign(&deps, &tenant(), &c).await.unwrap();
    let mut want = expected(4);
    want.remove("c0@example.com");
    assert_eq!(mailer.recipients(), want);
}

#[tokio::test]
async fn a_suppressed_address_is_never_sent_to_and_is_counted() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 3).await;
    store
        .suppress(
            &tenant(),
            &email("c1@example.com"),
            SuppressionReason::Unsubscribed,
            NOW,
        )
        .await
        .unwrap();
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    run_campaign(&deps, &tenant(), &c).await.unwrap();
    let mut want = expected(3);
    want.remove("c1@example.com");
    assert_eq!(mailer.recipients(), want);
    let campaign = store.get_campaign(&tenant(), &c).await.unwrap().unwrap();
    assert_eq!(campaign.skipped.suppressed, 1);
}

#[tokio::test]
async fn an_address_suppressed_between_claim_and_delivery_ends_failed_without_a_send() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 2).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    let step = fan_out_page(&deps, &tenant(), &c, None).await.unwrap();
    store
        .suppress(
            &tenant(),
            &email("c0@example.com"),
            SuppressionReason::Unsubscribed,
            NOW,
        )
        .await
        .unwrap();
    let report = deliver_batch(&deps, &tenant(), &c, &step.batches[0].recipients)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 1));
    let inv = store
        .get_invitation(&tenant(), &c, &ContactId::parse("c000").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inv.category.reason(), Some(REASON_SUPPRESSED));
}

#[tokio::test]
async fn another_tenant_cannot_run_or_deliver_a_campaign_it_does_not_own() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    seed(&*store, 2).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    let other = TenantId::parse("t2").unwrap();
    assert!(matches!(
        run_campaign(&deps, &other, &c).await,
        Err(SendError::CampaignNotFound(_))
    ));
    let step = fan_out_page(&deps, &tenant(), &c, None).await.unwrap();
    assert!(
        deliver_batch(&deps, &other, &c, &step.batches[0].recipients)
            .await
            .is_err()
    );
    assert!(mailer.sent.lock().unwrap().is_empty());
}
