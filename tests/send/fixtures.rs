//! What every send case builds on: a seeded tenant, a campaign, a mailer that records what
//! it accepted, a sleeper that never sleeps, and the [`SendDeps`] around them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::*;
use portal_core::ports::*;
use portal_core::usecases::send::*;
use portal_testkit::builders::{AccountBuilder, CampaignBuilder, ContactBuilder};
use time::macros::datetime;
use time::OffsetDateTime;

use crate::kill::Fault;

pub const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

/// The tenant of most cases; a case that needs several fresh worlds in one store uses one
/// tenant per world (tenants share nothing).
pub fn tenant() -> TenantId {
    TenantId::parse("t1").unwrap()
}

pub fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

/// Division `d1` with `n` contacts `c000..` (emails), plus `nomail` without an address and
/// `done` who already registered; an empty division `d2`; the template `welcome`.
pub async fn seed(store: &dyn Store, n: usize) {
    seed_tenant(store, &tenant(), n).await;
}

/// [`seed`] for tenant `t`.
pub async fn seed_tenant(store: &dyn Store, t: &TenantId, n: usize) {
    for d in ["d1", "d2"] {
        let input = DivisionInput::new(
            DivisionId::parse(d).unwrap(),
            format!("Division {d}"),
            email(&format!("{d}@hoa.example.org")),
        )
        .unwrap();
        store.put_division(t, &input).await.unwrap();
    }
    portal_testkit::builders::allow_senders(store, t, &["hoa.example.org"]).await;
    let mut contacts: Vec<ContactInput> = (0..n)
        .map(|i| {
            ContactBuilder::new(format!("c{i:03}"))
                .name(format!("Contact {i}"))
                .email(format!("c{i}@example.com"))
                .build()
        })
        .collect();
    contacts.push(ContactBuilder::new("nomail").name("No Mail").build());
    contacts.push(
        ContactBuilder::new("done")
            .name("Registered")
            .email("done@example.com")
            .build(),
    );
    let accounts: Vec<Account> = contacts
        .chunks(4)
        .enumerate()
        .map(|(a, chunk)| {
            AccountBuilder::new(format!("a{a:03}"))
                .number(format!("N-{a}"))
                .name(format!("Account {a}"))
                .contacts(chunk.iter().cloned())
                .build()
        })
        .collect();
    store.upsert_accounts(t, &accounts).await.unwrap();
    store
        .set_portal_status(
            t,
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
    store.put_template(t, &template).await.unwrap();
}

pub async fn new_campaign(store: &dyn Store, trigger: Trigger, divisions: &[&str]) -> CampaignId {
    new_campaign_in(store, &tenant(), trigger, divisions).await
}

/// [`new_campaign`] for tenant `t`.
pub async fn new_campaign_in(
    store: &dyn Store,
    t: &TenantId,
    trigger: Trigger,
    divisions: &[&str],
) -> CampaignId {
    let c = CampaignBuilder::new(NOW)
        .trigger(trigger)
        .divisions(divisions)
        .email_from("d1@hoa.example.org")
        .build();
    let out = store.create_campaign(t, &c, None, NOW).await.unwrap();
    assert_eq!(out, CreateOutcome::Created);
    c.campaign_id
}

/// A hand-picked campaign of tenant `t` naming `ids` (in that order), over division `d1`
/// (where [`seed_tenant`] puts every contact), as `POST /v1/campaigns` with `contact_ids`
/// records one.
pub async fn new_hand_picked_in(store: &dyn Store, t: &TenantId, ids: &[String]) -> CampaignId {
    let c = CampaignBuilder::new(NOW)
        .division("d1")
        .hand_picked(u32::try_from(ids.len()).unwrap())
        .email_from("d1@hoa.example.org")
        .build();
    let ids: Vec<ContactId> = ids.iter().map(|i| ContactId::parse(i).unwrap()).collect();
    let out = store
        .create_selection_campaign(t, &c, &ids, None, NOW)
        .await
        .unwrap();
    assert_eq!(out, CreateOutcome::Created);
    c.campaign_id
}

/// The ids of [`seed_tenant`]'s `n` contacts with an address, in a scrambled order, plus
/// `nomail` and `done` (skipped) among them.
pub fn scrambled_ids(n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|i| format!("c{i:03}")).collect();
    ids.insert(n / 2, "nomail".into());
    ids.insert(1.min(ids.len()), "done".into());
    let mut rng = Rng::seeded(n as u64);
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i + 1));
    }
    ids
}

/// A mailer that records every accepted message and answers scripted errors first (or
/// rejects every message when `reject_all`).
#[derive(Default)]
pub struct RecordingMailer {
    pub sent: Mutex<Vec<RawEmail>>,
    pub script: Mutex<VecDeque<MailError>>,
    pub reject_all: bool,
    pub fault: Option<Arc<Fault>>,
}

impl RecordingMailer {
    pub fn recipients(&self) -> BTreeMap<String, usize> {
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
                return Err(MailError::Backend("process killed".into()));
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
pub struct NoSleep(pub Mutex<Vec<StdDuration>>);

#[async_trait]
impl Sleeper for NoSleep {
    async fn sleep(&self, d: StdDuration) {
        self.0.lock().unwrap().push(d);
    }
}

pub fn deps_with(
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
        unsubscribe: Some(Arc::new(UnsubscribeSigner::new(SECRET).unwrap())),
        tokens: Arc::new(TokenDeriver::new(SECRET).unwrap()),
        public_url: portal_core::domain::PublicUrl::parse("https://portal.example.org")
            .expect("a valid URL"),
        limiter: Arc::new(RateLimiter::new(config.max_send_rate)),
        config,
    }
}

pub fn config() -> SendConfig {
    SendConfig {
        page_size: 7,
        max_send_rate: None,
        ..SendConfig::default()
    }
}

pub fn expected(n: usize) -> BTreeMap<String, usize> {
    (0..n).map(|i| (format!("c{i}@example.com"), 1)).collect()
}

pub async fn invitations(store: &dyn Store, c: &CampaignId) -> Vec<Invitation> {
    store
        .list_invitations(&tenant(), c, &InvitationFilter::default(), None, 500)
        .await
        .unwrap()
        .items
}

/// A small seeded generator (SplitMix64), so a shuffled order can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % n as u64) as usize
    }
}
