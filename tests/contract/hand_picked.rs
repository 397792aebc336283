//! Hand-picked campaigns end to end on each store: `start_campaign` with `contact_ids`, then
//! the fan-out and deliveries drained in-process. What a manager sees: exactly the picked
//! contacts that may be invited get one email each, the others are counted by reason, the
//! division lock neither holds the selection back nor is taken by it, and another tenant's
//! contact is never reached.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::ids::{cid, div, t};
use async_trait::async_trait;
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::{
    CampaignStatus, DivisionInput, Email, Filters, PickedContacts, PortalStatus, PublicUrl,
    Skipped, Template, TemplateId, TenantId,
};
use portal_core::ports::{
    EventBus, FixedClock, MailError, Mailer, RawEmail, SendMessage, SentMessage, Store,
    SuppressionReason,
};
use portal_core::usecases::campaigns::{
    start_campaign, CampaignError, Recipients, Sending, StartCampaign, Started,
};
use portal_core::usecases::send::{
    drain, QueueBus, RateLimiter, SendConfig, SendDeps, Sleeper, TokenDeriver,
};
use portal_testkit::builders::{AccountBuilder, ContactBuilder};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-contract";

/// Records the address of every message it accepts.
#[derive(Default)]
struct Recording(Mutex<Vec<String>>);

impl Recording {
    fn recipients(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for to in self.0.lock().unwrap().iter() {
            *m.entry(to.clone()).or_default() += 1;
        }
        m
    }
}

#[async_trait]
impl Mailer for Recording {
    async fn send_raw(&self, msg: &RawEmail) -> Result<SentMessage, MailError> {
        self.0.lock().unwrap().push(msg.to.as_str().to_owned());
        Ok(SentMessage {
            message_id: msg.message_id.clone(),
        })
    }
}

struct NoSleep;

#[async_trait]
impl Sleeper for NoSleep {
    async fn sleep(&self, _: std::time::Duration) {}
}

/// A store, the in-process bus the sends go through, and what was mailed.
struct World {
    store: Arc<dyn Store>,
    bus: Arc<QueueBus>,
    mailer: Arc<Recording>,
    deps: SendDeps,
    sending: Sending,
}

impl World {
    fn new(store: Arc<dyn Store>) -> Self {
        let bus = Arc::new(QueueBus::default());
        let mailer = Arc::new(Recording::default());
        let tokens = Arc::new(TokenDeriver::new(SECRET).unwrap());
        let config = SendConfig {
            page_size: 4,
            max_send_rate: None,
            ..SendConfig::default()
        };
        let deps = SendDeps {
            store: store.clone(),
            mailer: mailer.clone(),
            clock: Arc::new(FixedClock::new(NOW)),
            sleeper: Arc::new(NoSleep),
            unsubscribe: Some(Arc::new(UnsubscribeSigner::new(SECRET).unwrap())),
            tokens: tokens.clone(),
            public_url: PublicUrl::parse("https://portal.example.org").unwrap(),
            limiter: Arc::new(RateLimiter::new(None)),
            config,
        };
        let sending = Sending {
            bus: bus.clone(),
            tokens,
            token_ttl: Duration::days(14),
        };
        Self {
            store,
            bus,
            mailer,
            deps,
            sending,
        }
    }

    /// `POST /v1/campaigns` by a manager of `tenant`.
    async fn start(
        &self,
        tenant: &TenantId,
        recipients: Recipients,
        limit_to_uninvited: bool,
    ) -> Result<Started, CampaignError> {
        let request = StartCampaign {
            recipients,
            limit_to_uninvited,
            template_id: TemplateId::parse("welcome").unwrap(),
            email_from: None,
        };
        start_campaign(
            &*self.store,
            &FixedClock::new(NOW),
            &self.sending,
            tenant,
            "manager-1",
            request,
            None,
        )
        .await
    }

    /// Runs everything queued to its end.
    async fn drain(&self) {
        drain(&self.deps, &self.bus).await.unwrap();
    }
}

fn contacts(ids: &[&str]) -> Recipients {
    Recipients::Contacts(PickedContacts::parse(ids.iter().map(|i| cid(i)).collect()).unwrap())
}

fn divisions(ids: &[&str]) -> Recipients {
    Recipients::Divisions {
        division_ids: ids.iter().map(|d| div(d)).collect(),
        filters: Filters::default(),
    }
}

/// Divisions `d1` (`d1@hoa.example.org`) and `d2`; in d1 contacts `c00..c05`, `nomail`
/// (no address), `done` (registered), `held` (invited an hour ago), `sup` (suppressed); in
/// d2 `e00..e02`. Addresses are `{id}@{tenant}.example.com`. The template `welcome`, and
/// sender settings allowing `hoa.example.org`.
async fn seed(store: &dyn Store, tenant: &TenantId) {
    portal_testkit::builders::allow_senders(store, tenant, &["hoa.example.org"]).await;
    for d in ["d1", "d2"] {
        let input = DivisionInput::new(
            div(d),
            format!("Division {d}"),
            Email::parse(&format!("{d}@hoa.example.org")).unwrap(),
        )
        .unwrap();
        store.put_division(tenant, &input).await.unwrap();
    }
    let mail = |id: &str| format!("{id}@{tenant}.example.com");
    let d1: Vec<_> = (0..6)
        .map(|i| format!("c{i:02}"))
        .chain(["done", "held", "sup"].map(String::from))
        .map(|id| ContactBuilder::new(&id).name(id.clone()).email(mail(&id)))
        .chain([ContactBuilder::new("nomail").name("No Mail")])
        .collect();
    let d2 = (0..3).map(|i| {
        let id = format!("e{i:02}");
        ContactBuilder::new(&id).name(id.clone()).email(mail(&id))
    });
    let accounts = vec![
        AccountBuilder::new("a1")
            .division("d1")
            .contacts(d1)
            .build(),
        AccountBuilder::new("a2")
            .division("d2")
            .contacts(d2)
            .build(),
    ];
    store.upsert_accounts(tenant, &accounts).await.unwrap();
    store
        .set_portal_status(tenant, &cid("done"), PortalStatus::Accepted)
        .await
        .unwrap();
    store
        .record_invited(tenant, &cid("held"), NOW - Duration::hours(1))
        .await
        .unwrap();
    store
        .suppress(
            tenant,
            &Email::parse(&mail("sup")).unwrap(),
            SuppressionReason::Bounced,
            NOW - Duration::days(3),
        )
        .await
        .unwrap();
    let template = Template::new(
        TemplateId::parse("welcome").unwrap(),
        "Welcome",
        "Hello [ContactName]",
        "<p><a href=\"[PortalLink]\">Join</a> <a href=\"[UnsubscribeLink]\">stop</a></p>",
        "Join: [PortalLink]\nStop: [UnsubscribeLink]",
    )
    .unwrap();
    store.put_template(tenant, &template).await.unwrap();
}

fn sent_to(tenant: &str, ids: &[&str]) -> BTreeMap<String, usize> {
    ids.iter()
        .map(|id| (format!("{id}@{tenant}.example.com"), 1))
        .collect()
}

// ---------------------------------------------------------------------------------------

pub async fn a_selection_sends_exactly_the_picked_eligible_contacts_and_counts_the_rest(
    store: Arc<dyn Store>,
) {
    let w = World::new(store);
    let tenant = t("hp");
    seed(&*w.store, &tenant).await;
    // Pending contacts too (limit off): `held` is then held back by its 24-hour rule.
    let picked = [
        "c03", "e01", "c01", "held", "sup", "nomail", "done", "c01", "e01",
    ];
    let started = w.start(&tenant, contacts(&picked), false).await.unwrap();
    assert_eq!(started.status, CampaignStatus::Queued);
    let c = w
        .store
        .get_campaign(&tenant, &started.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.selection.map(|s| s.contacts), Some(7), "repeats dropped");
    assert_eq!(
        c.division_ids,
        vec![div("d1"), div("d2")],
        "first-picked order"
    );
    assert_eq!(
        c.email_from.as_str(),
        "d1@hoa.example.org",
        "the first contact's division"
    );
    assert_eq!(c.filters, Filters::default());

    w.drain().await;

    assert_eq!(w.mailer.recipients(), sent_to("hp", &["c01", "c03", "e01"]));
    let c = w
        .store
        .get_campaign(&tenant, &started.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Completed);
    assert_eq!(c.targeted, 3);
    assert_eq!(c.sends.sent, 3);
    assert_eq!(c.categories.total(), 3);
    assert_eq!(
        c.skipped,
        Skipped {
            accepted: 1,
            held_24h: 1,
            suppressed: 1,
            no_email: 1,
            duplicate_address: 0,
        }
    );
    // Contacts not picked were left alone.
    for id in ["c00", "c02", "c04", "c05", "e00", "e02"] {
        let contact = w
            .store
            .get_contact(&tenant, &cid(id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(contact.last_invited_at, None, "{id}");
    }
    // In the history of both divisions it touched.
    for d in ["d1", "d2"] {
        let listed = w
            .store
            .list_campaigns(&tenant, &div(d), None, 10)
            .await
            .unwrap();
        let ids: Vec<_> = listed.items.iter().map(|x| &x.campaign_id).collect();
        assert_eq!(ids, vec![&started.campaign_id], "{d}");
    }

    // Running it again (a duplicated fan-out) sends nothing more.
    w.bus
        .publish(&[SendMessage::FanOut {
            tenant: tenant.clone(),
            campaign_id: started.campaign_id.clone(),
            cursor: None,
            spec: None,
        }])
        .await
        .unwrap();
    w.drain().await;
    assert_eq!(w.mailer.recipients(), sent_to("hp", &["c01", "c03", "e01"]));
}

pub async fn a_selection_is_not_held_by_the_division_lock_and_does_not_take_it(
    store: Arc<dyn Store>,
) {
    let w = World::new(store);
    let tenant = t("hp-lock");
    seed(&*w.store, &tenant).await;
    // d1 is bulk-sent now: a second bulk send of d1 is held for 24 hours.
    w.start(&tenant, divisions(&["d1"]), true).await.unwrap();
    w.drain().await;
    let locked_at = w
        .store
        .get_division(&tenant, &div("d1"))
        .await
        .unwrap()
        .unwrap()
        .last_bulk_sent_at;
    assert_eq!(locked_at, Some(NOW));
    assert!(matches!(
        w.start(&tenant, divisions(&["d1"]), true).await,
        Err(CampaignError::DivisionHeld { .. })
    ));

    // A selection over d1 and d2 goes out all the same: c00 was just invited by the bulk
    // send (held), e00 was not.
    let sent_before = w.mailer.recipients();
    let started = w
        .start(&tenant, contacts(&["c00", "e00"]), false)
        .await
        .unwrap();
    w.drain().await;
    let mut expected = sent_before;
    expected.insert("e00@hp-lock.example.com".into(), 1);
    assert_eq!(w.mailer.recipients(), expected);
    let c = w
        .store
        .get_campaign(&tenant, &started.campaign_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Completed);
    assert_eq!((c.targeted, c.skipped.held_24h), (1, 1));

    // It took no lock: d1's is still the bulk send's, d2 has none and can be bulk-sent.
    let d1 = w
        .store
        .get_division(&tenant, &div("d1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d1.last_bulk_sent_at, Some(NOW));
    let d2 = w
        .store
        .get_division(&tenant, &div("d2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d2.last_bulk_sent_at, None);
    w.start(&tenant, divisions(&["d2"]), true).await.unwrap();
    w.drain().await;
    // e00 is pending now, so the bulk send of d2 (uninvited only) reaches e01 and e02.
    assert_eq!(w.mailer.recipients()["e01@hp-lock.example.com"], 1);
    assert_eq!(w.mailer.recipients()["e00@hp-lock.example.com"], 1);
}

pub async fn a_selection_never_reaches_another_tenants_contact(store: Arc<dyn Store>) {
    let w = World::new(store);
    let (mine, theirs) = (t("hp-mine"), t("hp-theirs"));
    seed(&*w.store, &mine).await;
    // The other tenant has contacts of its own, one with an id this tenant also uses.
    seed(&*w.store, &theirs).await;
    let only_theirs = vec![AccountBuilder::new("a9")
        .division("d1")
        .contact(ContactBuilder::new("x-theirs").email("x@hp-theirs.example.com"))
        .build()];
    w.store
        .upsert_accounts(&theirs, &only_theirs)
        .await
        .unwrap();

    // An id that is only the other tenant's refuses the request: nothing recorded or queued.
    match w
        .start(&mine, contacts(&["c02", "x-theirs", "ghost"]), true)
        .await
    {
        Err(CampaignError::UnknownContacts { count, named }) => {
            assert_eq!(count, 2);
            assert_eq!(named, vec![cid("x-theirs"), cid("ghost")]);
        }
        other => panic!("{other:?}"),
    }
    assert!(w.bus.is_empty());
    for d in ["d1", "d2"] {
        let listed = w
            .store
            .list_campaigns(&mine, &div(d), None, 10)
            .await
            .unwrap();
        assert!(listed.items.is_empty(), "{d}: {listed:?}");
    }

    // A shared id is this tenant's contact: its address, never the other's.
    w.start(&mine, contacts(&["c01"]), true).await.unwrap();
    w.drain().await;
    assert_eq!(w.mailer.recipients(), sent_to("hp-mine", &["c01"]));
    let other = w
        .store
        .get_contact(&theirs, &cid("c01"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.last_invited_at, None);
    assert_eq!(other.portal_status, PortalStatus::NotSent);
}
