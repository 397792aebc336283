//! The send path's exactly-once windows (issue 13): two copies of one batch at once, a crash
//! after the mail service accepted a group, one invitation per address, and skips counted
//! once under replay.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use portal_core::domain::*;
use portal_core::ports::*;
use portal_core::usecases::send::*;
use portal_testkit::builders::{AccountBuilder, ContactBuilder};
use time::Duration;

use crate::fixtures::*;

/// A mailer that takes a little real time per message, so two deliveries started together
/// overlap.
#[derive(Default)]
struct SlowMailer(RecordingMailer);

#[async_trait]
impl Mailer for SlowMailer {
    async fn send_raw(&self, msg: &RawEmail) -> Result<SentMessage, MailError> {
        tokio::time::sleep(StdDuration::from_millis(2)).await;
        self.0.send_raw(msg).await
    }
}

pub async fn two_copies_of_one_batch_delivered_at_once_send_each_email_once(store: Arc<dyn Store>) {
    const ROUNDS: usize = 12;
    for round in 0..ROUNDS {
        let t = TenantId::parse(format!("twice-{round}")).unwrap();
        seed_tenant(&*store, &t, 6).await;
        let c = new_campaign_in(&*store, &t, Trigger::Manual, &["d1"]).await;
        let mailer = Arc::new(SlowMailer::default());
        let deps = deps_with(
            store.clone(),
            mailer.clone(),
            Arc::new(NoSleep::default()),
            SendConfig {
                page_size: 50,
                // Groups of two: the copy that loses the lease race finds it mid-batch.
                outcome_flush: 2,
                ..config()
            },
        );
        let step = fan_out_page(&deps, &t, &c, None).await.unwrap();
        let batch = &step.batches[0].recipients;
        // Odd rounds deliver a replay's copy (not fresh) beside the original.
        let copy: Vec<Recipient> = batch
            .iter()
            .map(|r| Recipient {
                fresh: r.fresh && round % 2 == 0,
                ..r.clone()
            })
            .collect();
        let (a, b) = tokio::join!(
            deliver_batch(&deps, &t, &c, batch, None),
            deliver_batch(&deps, &t, &c, &copy, None)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.sent + b.sent, 6, "round {round}: {a:?} {b:?}");
        assert_eq!(mailer.0.recipients(), expected(6), "round {round}");
        let got = store.get_campaign(&t, &c).await.unwrap().unwrap();
        assert_eq!((got.sends.sent, got.sends.pending), (6, 0), "round {round}");
        // A third copy later finds the batch done and reads nothing more.
        let late = deliver_batch(&deps, &t, &c, batch, None).await.unwrap();
        assert_eq!((late.sent, late.skipped), (0, 6));
    }
}

pub async fn a_crash_after_the_mail_service_accepted_a_group_resends_only_what_it_never_acknowledged(
    store: Arc<dyn Store>,
) {
    seed(&*store, 6).await;
    let t = tenant();
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let mut deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        SendConfig {
            page_size: 50,
            outcome_flush: 3,
            ..config()
        },
    );
    let step = fan_out_page(&deps, &t, &c, None).await.unwrap();
    let batch = step.batches[0].recipients.clone();
    let ids: Vec<ContactId> = batch.iter().map(|r| r.contact_id.clone()).collect();

    // A holder took the batch, recorded its first group and handed it to the mail service,
    // then died before writing the outcomes.
    let key = batch_key(&batch);
    let lease_until = NOW + Duration::seconds(30);
    store
        .lease_batch(&t, &c, &key, "dead", NOW, lease_until, None)
        .await
        .unwrap();
    let group = Attempt {
        contacts: ids[..3].to_vec(),
        at: NOW,
    };
    assert!(store
        .step_batch(
            &t,
            &c,
            &key,
            "dead",
            &LeaseStep::Attempting {
                attempt: group,
                until: lease_until,
            },
        )
        .await
        .unwrap());
    // SES's Send events arrive for two of the three (the third was never accepted).
    let events: Vec<(ContactId, InvitationFact)> = ids[..2]
        .iter()
        .map(|id| (id.clone(), InvitationFact::Sent))
        .collect();
    store.apply_facts(&t, &c, &events).await.unwrap();

    // Resumed within the grace period: the third may still be acknowledged; nothing is sent.
    let clock = Arc::new(FixedClock::new(NOW + Duration::minutes(1)));
    deps.clock = clock.clone();
    match deliver_batch(&deps, &t, &c, &batch, None).await {
        Err(SendError::Unacknowledged { count, retry_after }) => {
            assert_eq!(count, 1);
            assert_eq!(retry_after, NOW + deps.config.ack_grace);
        }
        other => panic!("expected Unacknowledged, got {other:?}"),
    }
    assert!(mailer.sent.lock().unwrap().is_empty());

    // After the grace period: the unacknowledged one and the rest go out, once each; the two
    // SES acknowledged are never sent again.
    clock.set(NOW + deps.config.ack_grace);
    let report = deliver_batch(&deps, &t, &c, &batch, None).await.unwrap();
    assert_eq!((report.sent, report.skipped), (4, 2));
    let sent: BTreeMap<String, usize> = mailer.recipients();
    let want: BTreeMap<String, usize> = batch[2..]
        .iter()
        .map(|r| (r.email.to_string(), 1))
        .collect();
    assert_eq!(sent, want);
    let got = store.get_campaign(&t, &c).await.unwrap().unwrap();
    assert_eq!((got.sends.sent, got.sends.pending), (6, 0));
}

/// Tenant `t` with contacts sharing one address in three spellings, across two divisions,
/// and one contact with an address of its own.
async fn seed_shared_address(store: &dyn Store, t: &TenantId) {
    seed_tenant(store, t, 0).await;
    let accounts = vec![
        AccountBuilder::new("shared-1")
            .number("S-1")
            .name("Pat and Sam")
            .contacts([
                ContactBuilder::new("pat-1")
                    .name("Pat")
                    .email("Pat@Example.org"),
                ContactBuilder::new("lee")
                    .name("Lee")
                    .email("lee@example.org"),
            ])
            .build(),
        AccountBuilder::new("shared-2")
            .number("S-2")
            .name("Pat, second unit")
            .contacts([ContactBuilder::new("pat-2")
                .name("Pat")
                .email("pat@example.ORG")])
            .build(),
        AccountBuilder::new("shared-3")
            .number("S-3")
            .name("Pat, office")
            .division("d2")
            .contacts([ContactBuilder::new("pat-3")
                .name("Pat")
                .email("PAT@example.org")])
            .build(),
    ];
    store.upsert_accounts(t, &accounts).await.unwrap();
}

fn lowercase_recipients(mailer: &RecordingMailer) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (to, n) in mailer.recipients() {
        *m.entry(to.to_ascii_lowercase()).or_default() += n;
    }
    m
}

pub async fn one_person_gets_one_invitation_whichever_contacts_share_the_address(
    store: Arc<dyn Store>,
) {
    let t = TenantId::parse("shared").unwrap();
    seed_shared_address(&*store, &t).await;
    let mailer = Arc::new(RecordingMailer::default());
    let mut deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    let c = new_campaign_in(&*store, &t, Trigger::Manual, &["d1", "d2"]).await;
    let report = run_campaign(&deps, &t, &c).await.unwrap();
    assert_eq!(report.status, Some(CampaignStatus::Completed));
    let want = BTreeMap::from([
        ("lee@example.org".to_owned(), 1),
        ("pat@example.org".to_owned(), 1),
    ]);
    assert_eq!(lowercase_recipients(&mailer), want);
    let got = store.get_campaign(&t, &c).await.unwrap().unwrap();
    assert_eq!(got.targeted, 2);
    assert_eq!(got.skipped.duplicate_address, 2, "{:?}", got.skipped);

    // Another send within 24 hours (an individual trigger takes no division lock) skips Pat's
    // address whichever contact it reaches; after 24 hours exactly one more contact gets it.
    let again = new_campaign_in(&*store, &t, Trigger::Individual, &["d1", "d2"]).await;
    let report = run_campaign(&deps, &t, &again).await.unwrap();
    assert_eq!(report.sent, 0);
    let got = store.get_campaign(&t, &again).await.unwrap().unwrap();
    // The two invited are pending (left alone: limited to uninvited); the two other Pats
    // are skipped for their address.
    assert_eq!(got.skipped.duplicate_address, 2, "{:?}", got.skipped);

    deps.clock = Arc::new(FixedClock::new(NOW + Duration::hours(24)));
    let day_after = {
        let c = portal_testkit::builders::CampaignBuilder::new(NOW + Duration::hours(24))
            .trigger(Trigger::Individual)
            .divisions(["d1", "d2"])
            .email_from("d1@hoa.example.org")
            .build();
        store
            .create_campaign(&t, &c, None, NOW + Duration::hours(24))
            .await
            .unwrap();
        c.campaign_id
    };
    run_campaign(&deps, &t, &day_after).await.unwrap();
    // Lee and the Pat invited first are pending (left alone); of the two Pats never invited,
    // exactly one is, now that the address is free again.
    assert_eq!(
        lowercase_recipients(&mailer),
        BTreeMap::from([
            ("lee@example.org".to_owned(), 1),
            ("pat@example.org".to_owned(), 2),
        ])
    );
    let got = store.get_campaign(&t, &day_after).await.unwrap().unwrap();
    assert_eq!((got.targeted, got.skipped.duplicate_address), (1, 1));
}

pub async fn skips_are_counted_once_however_often_a_page_is_replayed(store: Arc<dyn Store>) {
    seed(&*store, 9).await;
    let t = tenant();
    store
        .suppress(
            &t,
            &email("c4@example.com"),
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
        SendConfig {
            page_size: 3,
            ..config()
        },
    );
    // Every page, three times over, in the order the fan-out walks them.
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut step = None;
        for _ in 0..3 {
            step = Some(
                fan_out_page(&deps, &t, &c, cursor.as_deref())
                    .await
                    .unwrap(),
            );
        }
        let step = step.unwrap();
        for b in &step.batches {
            deliver_batch(&deps, &t, &c, &b.recipients, None)
                .await
                .unwrap();
        }
        pages += 1;
        if step.done {
            break;
        }
        cursor = step.next_cursor;
    }
    assert!(pages >= 3);
    let got = store.get_campaign(&t, &c).await.unwrap().unwrap();
    // The seed's `done` (accepted) and `nomail`, and the suppressed c4: once each.
    assert_eq!(
        got.skipped,
        Skipped {
            accepted: 1,
            no_email: 1,
            suppressed: 1,
            ..Skipped::default()
        }
    );
    assert_eq!(got.targeted, 8);
    assert_eq!(mailer.recipients().len(), 8);
}
