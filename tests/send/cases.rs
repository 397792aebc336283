//! The send cases, each an `async fn(Arc<dyn Store>)` that `main.rs` runs on every store.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::*;
use portal_core::ports::*;
use portal_core::usecases::send::queue::QueueBus;
use portal_core::usecases::send::*;

use crate::fixtures::*;

pub async fn a_campaign_sends_one_email_to_each_eligible_contact_and_completes(
    store: Arc<dyn Store>,
) {
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
    // Sent, not yet delivered: in process until SES says more; nothing left to send.
    assert_eq!(
        campaign.categories,
        CategoryCounts {
            in_process: 20,
            ..CategoryCounts::default()
        }
    );
    assert_eq!(
        campaign.sends,
        SendCounts {
            sent: 20,
            ..SendCounts::default()
        }
    );
    assert_eq!(campaign.skipped.no_email, 1);
    assert_eq!(campaign.skipped.accepted, 1);
    assert!(invitations(&*store, &c)
        .await
        .iter()
        .all(|i| i.state.send == SendState::Sent));
}

pub async fn an_email_carries_a_registration_link_matching_the_stored_hash_and_one_click_unsubscribe(
    store: Arc<dyn Store>,
) {
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

pub async fn running_a_finished_campaign_again_or_a_second_campaign_sends_nothing(
    store: Arc<dyn Store>,
) {
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

pub async fn a_replayed_fan_out_page_yields_the_same_batches_and_claims_nothing_new(
    store: Arc<dyn Store>,
) {
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
    // The same batches, now known as replays (delivery reads their invitations first).
    assert!(first
        .batches
        .iter()
        .all(|b| b.recipients.iter().all(|r| r.fresh)));
    assert!(replay
        .batches
        .iter()
        .all(|b| b.recipients.iter().all(|r| !r.fresh)));
    assert_eq!(unfresh(first.clone()), replay);
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

pub async fn a_duplicated_delivery_batch_sends_nothing_twice(store: Arc<dyn Store>) {
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
    let first = deliver_batch(&deps, &tenant(), &c, batch, None)
        .await
        .unwrap();
    let again = deliver_batch(&deps, &tenant(), &c, batch, None)
        .await
        .unwrap();
    assert_eq!(first.sent, 5);
    assert_eq!(again.sent, 0);
    assert_eq!(again.skipped, 5);
    assert_eq!(mailer.recipients(), expected(5));
}

pub async fn two_concurrent_campaigns_over_the_same_contacts_send_each_contact_one_email(
    store: Arc<dyn Store>,
) {
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

pub async fn a_throttled_send_is_retried_after_a_back_off_and_sent_once(store: Arc<dyn Store>) {
    seed(&*store, 1).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    mailer.script.lock().unwrap().extend([
        MailError::Throttled("slow down".into()),
        MailError::Transient("503".into()),
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

pub async fn throttling_that_never_ends_leaves_the_invitation_in_process_for_a_rerun(
    store: Arc<dyn Store>,
) {
    seed(&*store, 1).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    mailer
        .script
        .lock()
        .unwrap()
        .extend((0..6).map(|_| MailError::Throttled("slow".into())));
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
        invitations(&*store, &c).await[0].state.send,
        SendState::Pending
    );
    run_campaign(&deps, &tenant(), &c).await.unwrap();
    assert_eq!(mailer.recipients(), expected(1));
}

pub async fn a_rejected_message_ends_failed_with_the_reason(store: Arc<dyn Store>) {
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
        .filter_map(|i| i.state.reason)
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("content rejected"), "{failed:?}");
    assert_eq!(report.status, Some(CampaignStatus::Completed));
}

pub async fn failures_over_the_threshold_pause_the_campaign_with_the_reason(store: Arc<dyn Store>) {
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

pub async fn the_configured_send_rate_spaces_the_sends(store: Arc<dyn Store>) {
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

pub async fn a_contact_invited_before_is_left_alone_when_limited_to_uninvited_even_on_replays(
    store: Arc<dyn Store>,
) {
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
        unfresh(first),
        replay,
        "our own claims made contacts pending; the replay keeps them"
    );
    run_campaign(&deps, &tenant(), &c).await.unwrap();
    let mut want = expected(4);
    want.remove("c0@example.com");
    assert_eq!(mailer.recipients(), want);
}

pub async fn a_suppressed_address_is_never_sent_to_and_is_counted(store: Arc<dyn Store>) {
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

pub async fn another_tenant_cannot_run_or_deliver_a_campaign_it_does_not_own(
    store: Arc<dyn Store>,
) {
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
        deliver_batch(&deps, &other, &c, &step.batches[0].recipients, None)
            .await
            .is_err()
    );
    assert!(mailer.sent.lock().unwrap().is_empty());
}

/// The bus as EventBridge runs it: every published message arrives twice, in any order.
/// Handles each message in a seeded shuffled order until none is left.
async fn drain_shuffled_twice(deps: &SendDeps, bus: &QueueBus, seed: u64) -> usize {
    let mut rng = Rng::seeded(seed);
    let mut pending: Vec<SendMessage> = Vec::new();
    let mut handled = 0;
    loop {
        while let Some(msg) = bus.pop() {
            pending.push(msg.clone());
            pending.push(msg);
        }
        if pending.is_empty() {
            return handled;
        }
        let msg = pending.swap_remove(rng.below(pending.len()));
        handle(deps, bus, &msg)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {msg:?}: {e}"));
        handled += 1;
    }
}

pub async fn bus_messages_redelivered_twice_in_a_shuffled_order_send_each_contact_one_email(
    store: Arc<dyn Store>,
) {
    let n = 12;
    // Three fan-out pages (14 contacts, 5 a page): each page's duplicates double the next
    // page's messages, and every replay must cut the same batches.
    for seed in 1..=3u64 {
        let t = TenantId::parse(format!("shuffle{seed}")).unwrap();
        seed_tenant(&*store, &t, n).await;
        let c = new_campaign_in(&*store, &t, Trigger::Manual, &["d1"]).await;
        let mailer = Arc::new(RecordingMailer::default());
        let deps = deps_with(
            store.clone(),
            mailer.clone(),
            Arc::new(NoSleep::default()),
            SendConfig {
                page_size: 5,
                ..config()
            },
        );
        let bus = QueueBus::default();
        bus.publish(&[SendMessage::FanOut {
            tenant: t.clone(),
            campaign_id: c.clone(),
            cursor: None,
            spec: None,
        }])
        .await
        .unwrap();

        let handled = drain_shuffled_twice(&deps, &bus, seed).await;

        // Each of the 3 pages and its batch arrived twice, at least.
        assert!(handled >= 2 * 3 * 2, "seed {seed}: only {handled} messages");
        assert_eq!(mailer.recipients(), expected(n), "seed {seed}");
        let campaign = store.get_campaign(&t, &c).await.unwrap().unwrap();
        assert_eq!(campaign.status, CampaignStatus::Completed, "seed {seed}");
        assert_eq!(campaign.targeted, n as u64, "seed {seed}");
        assert_eq!(campaign.sends.sent, n as u64, "seed {seed}");
        assert_eq!(campaign.sends.pending, 0, "seed {seed}");
    }
}

pub async fn a_hand_picked_campaign_redelivered_twice_in_a_shuffled_order_sends_each_picked_contact_one_email(
    store: Arc<dyn Store>,
) {
    // 13 contacts, every other one picked (7), with `nomail` and `done`: 9 ids, two pages of
    // 5; contacts not picked never hear from it.
    for seed in 1..=3u64 {
        let t = TenantId::parse(format!("picked-shuffle{seed}")).unwrap();
        seed_tenant(&*store, &t, 13).await;
        let mut ids: Vec<String> = (0..13).step_by(2).map(|i| format!("c{i:03}")).collect();
        ids.reverse();
        ids.insert(3, "done".into());
        ids.push("nomail".into());
        let c = new_hand_picked_in(&*store, &t, &ids).await;
        let mailer = Arc::new(RecordingMailer::default());
        let deps = deps_with(
            store.clone(),
            mailer.clone(),
            Arc::new(NoSleep::default()),
            SendConfig {
                page_size: 5,
                ..config()
            },
        );
        let bus = QueueBus::default();
        bus.publish(&[SendMessage::FanOut {
            tenant: t.clone(),
            campaign_id: c.clone(),
            cursor: None,
            spec: None,
        }])
        .await
        .unwrap();

        let handled = drain_shuffled_twice(&deps, &bus, seed).await;

        assert!(handled >= 2 * 2 * 2, "seed {seed}: only {handled} messages");
        let want: std::collections::BTreeMap<String, usize> = (0..13)
            .step_by(2)
            .map(|i| (format!("c{i}@example.com"), 1))
            .collect();
        assert_eq!(mailer.recipients(), want, "seed {seed}");
        let campaign = store.get_campaign(&t, &c).await.unwrap().unwrap();
        assert_eq!(campaign.status, CampaignStatus::Completed, "seed {seed}");
        assert_eq!(campaign.targeted, 7, "seed {seed}");
        assert_eq!(campaign.sends.sent, 7, "seed {seed}");
        assert_eq!(campaign.sends.pending, 0, "seed {seed}");
        // Skips of a replayed page are counted again (documented over-count): at least once.
        assert!(campaign.skipped.no_email >= 1 && campaign.skipped.accepted >= 1);
        let invited = store
            .list_invitations(&t, &c, &InvitationFilter::default(), None, 500)
            .await
            .unwrap();
        assert_eq!(invited.items.len(), 7, "seed {seed}");
    }
}

/// `step` as a replay of its page yields it: every recipient known as claimed before.
fn unfresh(mut step: FanOutStep) -> FanOutStep {
    for b in &mut step.batches {
        for r in &mut b.recipients {
            r.fresh = false;
        }
    }
    step
}

/// The subjects of the recorded emails, in order.
fn subjects(mailer: &RecordingMailer) -> Vec<String> {
    mailer
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            let raw = String::from_utf8_lossy(&e.raw);
            raw.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// 20 contacts and a campaign over `d1` whose first fan-out page was handled the Lambda
/// way (no spec given): its messages wait on the returned bus.
async fn first_page_handled(
    store: &Arc<dyn Store>,
) -> (CampaignId, Arc<RecordingMailer>, SendDeps, QueueBus) {
    seed(&**store, 20).await;
    let c = new_campaign(&**store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    let bus = QueueBus::default();
    let start = SendMessage::FanOut {
        tenant: tenant(),
        campaign_id: c.clone(),
        cursor: None,
        spec: None,
    };
    handle(&deps, &bus, &start).await.unwrap();
    (c, mailer, deps, bus)
}

pub async fn a_campaign_sends_its_template_as_it_was_when_its_fan_out_started(
    store: Arc<dyn Store>,
) {
    let (c, mailer, deps, bus) = first_page_handled(&store).await;
    // The first page read the template and the divisions; its messages carry them.
    let first: Vec<SendMessage> = std::iter::from_fn(|| bus.pop()).collect();
    assert!(first.len() >= 2, "{first:?}");
    for msg in &first {
        let spec = match msg {
            SendMessage::FanOut { spec, .. } | SendMessage::Deliver { spec, .. } => spec,
        };
        let spec = spec.as_ref().expect("a spec is carried");
        assert_eq!(spec.template.subject(), "Hello [ContactName]");
        assert_eq!(spec.email_from.as_str(), "d1@hoa.example.org");
        match msg {
            SendMessage::FanOut { .. } => assert_eq!(
                spec.division_names.get(&DivisionId::parse("d1").unwrap()),
                Some(&"Division d1".to_owned())
            ),
            SendMessage::Deliver { .. } => assert!(spec.division_names.is_empty()),
        }
    }
    // The template changes mid-send, then disappears: the campaign keeps the one it started
    // with.
    let changed = Template::new(
        TemplateId::parse("welcome").unwrap(),
        "Welcome",
        "Changed [ContactName]",
        "<p>[PortalLink] [UnsubscribeLink]</p>",
        "[PortalLink] [UnsubscribeLink]",
    )
    .unwrap();
    store.put_template(&tenant(), &changed).await.unwrap();
    for msg in first {
        bus.publish(&[msg]).await.unwrap();
    }
    drain(&deps, &bus).await.unwrap();
    assert!(store
        .delete_template(&tenant(), &TemplateId::parse("welcome").unwrap())
        .await
        .unwrap());
    assert_eq!(mailer.recipients(), expected(20));
    let subjects = subjects(&mailer);
    assert_eq!(subjects.len(), 20);
    assert!(
        subjects.iter().all(|s| s.starts_with("Hello Contact ")),
        "{subjects:?}"
    );
    let campaign = store.get_campaign(&tenant(), &c).await.unwrap().unwrap();
    assert_eq!(campaign.status, CampaignStatus::Completed);
}

pub async fn a_paused_campaign_sends_nothing_from_batches_that_carry_its_template(
    store: Arc<dyn Store>,
) {
    let (c, mailer, deps, bus) = first_page_handled(&store).await;
    let deliver = std::iter::from_fn(|| bus.pop())
        .find(|m| matches!(m, SendMessage::Deliver { spec: Some(_), .. }))
        .expect("a batch carrying the template");
    assert!(store
        .update_campaign_status(
            &tenant(),
            &c,
            CampaignStatus::FanningOut,
            CampaignStatus::Paused,
            Some("a manager paused it".into())
        )
        .await
        .unwrap());
    let report = handle(&deps, &bus, &deliver).await.unwrap();
    assert_eq!((report.sent, report.failed), (0, 0));
    assert!(mailer.sent.lock().unwrap().is_empty());
    // Another tenant's copy of the batch sends nothing either, though it reads no campaign.
    if let SendMessage::Deliver {
        recipients, spec, ..
    } = &deliver
    {
        let other = TenantId::parse("t2").unwrap();
        let r = deliver_batch(&deps, &other, &c, recipients, spec.as_deref())
            .await
            .unwrap();
        assert_eq!(r.sent, 0);
        assert!(r.paused);
    }
    assert!(mailer.sent.lock().unwrap().is_empty());
    // Resumed, the same message sends its batch.
    assert!(store
        .update_campaign_status(
            &tenant(),
            &c,
            CampaignStatus::Paused,
            CampaignStatus::Queued,
            None
        )
        .await
        .unwrap());
    let SendMessage::Deliver { recipients, .. } = &deliver else {
        unreachable!()
    };
    let report = handle(&deps, &bus, &deliver).await.unwrap();
    assert!(!recipients.is_empty());
    assert_eq!(report.sent, recipients.len() as u64);
    assert_eq!(mailer.sent.lock().unwrap().len(), recipients.len());
}

pub async fn a_fan_out_page_larger_than_one_claim_call_claims_and_sends_everyone_once(
    store: Arc<dyn Store>,
) {
    // More contacts than one claim call takes (`MAX_CLAIMS`), in one fan-out page.
    let n = MAX_CLAIMS + 120;
    seed(&*store, n).await;
    let c = new_campaign(&*store, Trigger::Manual, &["d1"]).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        SendConfig {
            page_size: MAX_FAN_OUT_PAGE,
            outcome_flush: MAX_ATTEMPT,
            ..config()
        },
    );
    let step = fan_out_page(&deps, &tenant(), &c, None).await.unwrap();
    assert!(step.done, "one page");
    let batched: usize = step.batches.iter().map(|b| b.recipients.len()).sum();
    assert_eq!(batched, n);
    assert!(step.batches.iter().all(|b| b.recipients.len() <= MAX_BATCH));
    for b in &step.batches {
        let r = deliver_batch(&deps, &tenant(), &c, &b.recipients, None)
            .await
            .unwrap();
        assert_eq!(r.sent, b.recipients.len() as u64);
    }
    assert_eq!(mailer.recipients(), expected(n));
    let campaign = store.get_campaign(&tenant(), &c).await.unwrap().unwrap();
    assert_eq!(campaign.targeted, n as u64);
    assert_eq!(campaign.sends.sent, n as u64);
}

/// The display name each email of a campaign started with `policy` in the sender settings
/// shows (the settings then change: the campaign keeps the name it started with).
async fn display_names_sent(store: &Arc<dyn Store>, policy: Option<&str>) -> Vec<Option<String>> {
    seed(&**store, 3).await;
    let settings = |name: Option<&str>| {
        SenderSettings::new(&["hoa.example.org".to_owned()], &[], NOW, "manager-1")
            .and_then(|s| s.with_display_name(name))
            .unwrap()
    };
    store
        .put_sender_settings(&tenant(), &settings(policy))
        .await
        .unwrap();
    let mailer = Arc::new(RecordingMailer::default());
    let deps = deps_with(
        store.clone(),
        mailer.clone(),
        Arc::new(NoSleep::default()),
        config(),
    );
    let sending = portal_core::usecases::campaigns::Sending {
        bus: Arc::new(QueueBus::default()),
        tokens: deps.tokens.clone(),
        token_ttl: deps.config.token_ttl,
    };
    let request = portal_core::usecases::campaigns::StartCampaign {
        recipients: portal_core::usecases::campaigns::Recipients::Divisions {
            division_ids: vec![DivisionId::parse("d1").unwrap()],
            filters: Filters::default(),
        },
        limit_to_uninvited: true,
        template_id: TemplateId::parse("welcome").unwrap(),
        email_from: None,
    };
    let started = portal_core::usecases::campaigns::start_campaign(
        &**store,
        &FixedClock::new(NOW),
        &sending,
        &tenant(),
        "manager-1",
        request,
        None,
    )
    .await
    .unwrap();
    store
        .put_sender_settings(&tenant(), &settings(Some("Changed afterwards")))
        .await
        .unwrap();
    run_campaign(&deps, &tenant(), &started.campaign_id)
        .await
        .unwrap();
    let sent = mailer.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);
    sent.iter()
        .map(|m| {
            let parsed = mail_parser::MessageParser::default()
                .parse(&m.raw[..])
                .unwrap();
            let from = parsed.from().and_then(|f| f.first()).unwrap();
            assert_eq!(from.address(), Some("d1@hoa.example.org"));
            from.name().map(str::to_owned)
        })
        .collect()
}

pub async fn emails_show_the_division_by_default_and_the_display_name_the_campaign_started_with(
    store: Arc<dyn Store>,
) {
    let names = display_names_sent(&store, None).await;
    assert!(
        names.iter().all(|n| n.as_deref() == Some("Division d1")),
        "{names:?}"
    );
}

pub async fn a_display_name_policy_names_the_company_and_the_division(store: Arc<dyn Store>) {
    let names = display_names_sent(&store, Some("[DivisionName] via Ácme Property")).await;
    assert!(
        names
            .iter()
            .all(|n| n.as_deref() == Some("Division d1 via Ácme Property")),
        "{names:?}"
    );
}
