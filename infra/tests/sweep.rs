//! The local server's sweeper: a campaign recorded without its first fan-out (as when the
//! publish is lost) is left alone until it has made no progress for the idle time, then
//! re-published by the server's own sweep task and sent to the end, one email per contact.
//! The server's clock is moved by the test; the sweep runs every 100 ms.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use portal_core::domain::{
    Account, CampaignId, CampaignStatus, DivisionId, DivisionInput, Email, Template, TemplateId,
    TenantId,
};
use portal_core::ports::{
    AccountStore, CampaignStore, Clock, CreateOutcome, DivisionStore, TemplateStore,
};
use portal_invites::recurring::ShiftedClock;
use portal_invites::serve::{LocalServer, ServeOptions, ServeTuning};
use portal_testkit::builders::{AccountBuilder, CampaignBuilder, ContactBuilder};
use time::macros::datetime;
use time::Duration;

async fn status(server_store: &dyn CampaignStore, t: &TenantId, c: &CampaignId) -> CampaignStatus {
    server_store
        .get_campaign(t, c)
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_whose_first_publish_was_lost_is_swept_after_the_idle_time_and_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftedClock::starting_at(
        datetime!(2026-11-02 12:00:00 UTC),
    ));
    let server = LocalServer::open_with(
        ServeOptions {
            data_dir: dir.path().to_owned(),
            demo: false,
            public_url: None,
            dev_routes: Default::default(),
        },
        ServeTuning {
            clock: clock.clone(),
            sweep_every: StdDuration::from_millis(100),
            sweep_idle: Duration::minutes(10),
            ..ServeTuning::default()
        },
    )
    .await
    .unwrap();

    // A tenant with three contacts, and a campaign recorded but never published.
    let store = server.store();
    let t = TenantId::parse("acme").unwrap();
    let d = DivisionInput::new(
        DivisionId::parse("d1").unwrap(),
        "Oak Hills".to_owned(),
        Email::parse("hoa@example.org").unwrap(),
    )
    .unwrap();
    store.put_division(&t, &d).await.unwrap();
    let account: Account = AccountBuilder::new("a1")
        .division("d1")
        .contacts((0..3).map(|i| {
            ContactBuilder::new(format!("c{i}"))
                .name(format!("Contact {i}"))
                .email(format!("c{i}@example.com"))
        }))
        .build();
    store.upsert_accounts(&t, &[account]).await.unwrap();
    let template = Template::new(
        TemplateId::parse("welcome").unwrap(),
        "Welcome",
        "Hello [ContactName]",
        "<p><a href=\"[PortalLink]\">Register</a> <a href=\"[UnsubscribeLink]\">stop</a></p>",
        "Register: [PortalLink]\nStop: [UnsubscribeLink]",
    )
    .unwrap();
    store.put_template(&t, &template).await.unwrap();
    let campaign = CampaignBuilder::new(clock.now()).division("d1").build();
    let c = campaign.campaign_id.clone();
    assert_eq!(
        store
            .create_campaign(&t, &campaign, None, clock.now())
            .await
            .unwrap(),
        CreateOutcome::Created
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.run(listener, async move {
        let _ = stopped.await;
    }));

    // Several sweeps before the idle time: nothing moves it.
    tokio::time::sleep(StdDuration::from_millis(600)).await;
    assert_eq!(status(&*store, &t, &c).await, CampaignStatus::Queued);

    clock.shift(Duration::minutes(10));
    let mut waited = 0;
    while status(&*store, &t, &c).await != CampaignStatus::Completed {
        assert!(waited < 300, "the sweeper never finished the campaign");
        tokio::time::sleep(StdDuration::from_millis(100)).await;
        waited += 1;
    }
    let done = store.get_campaign(&t, &c).await.unwrap().unwrap();
    assert_eq!(done.sends.sent, 3);
    assert_eq!(done.targeted, 3);
    let emails = portal_embedded::outbox::Outbox::in_data_dir(dir.path())
        .list(1000)
        .await
        .unwrap()
        .len();
    assert_eq!(emails, 3, "one email per contact");

    // Later sweeps leave the finished campaign alone.
    clock.shift(Duration::hours(1));
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    assert_eq!(store.get_campaign(&t, &c).await.unwrap().unwrap(), done);

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
