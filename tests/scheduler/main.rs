//! The EventBridge Scheduler adapter (`portal_aws::scheduler::EventBridgeSchedules`) against
//! moto, and a schedule's firing run through the recurring function's code.
//!
//! moto implements the Scheduler API but never fires a schedule and accepts any expression
//! (`../shared/EMULATORS.md`). So each test reads the schedule back with `GetSchedule` and
//! checks every field `put` writes (expression, time zone, state, target, input, flexible
//! window, retry policy, dead-letter queue); expressions are validated by the adapter itself
//! (its unit tests; here: an invalid one never reaches Scheduler). The last test stands in for
//! the firing: it takes the input of a schedule saved through the use case, replaces
//! Scheduler's `<aws.scheduler.scheduled-time>` as Scheduler would, and hands it to
//! `Invocation::of` and the run, on DynamoDB on moto — checking as it goes that every AWS
//! call made is one `template.yaml` grants the recurring function.
//!
//! Each test makes its own schedule group. Like every moto-backed test, these FAIL (they
//! never skip) when moto cannot be started.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_scheduler::operation::get_schedule::{GetScheduleError, GetScheduleOutput};
use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode, ScheduleState};
use portal_aws::aws_metrics::RequestCounter;
use portal_aws::dynamodb::DynamoStore;
use portal_aws::eventbridge::RetryPolicy;
use portal_aws::scheduler::{
    schedule_name, EventBridgeSchedules, ScheduleError, ScheduleTarget, MAXIMUM_EVENT_AGE_SECONDS,
    MAXIMUM_RETRY_ATTEMPTS, SCHEDULED_TIME,
};
use portal_core::domain::{
    DivisionId, DivisionInput, Email, Filters, RecurringId, RecurringSetting, ReminderRule, Scope,
    Template, TemplateId, TenantId, TimeZoneName, Trigger,
};
use portal_core::ports::{BusError, EventBus, FixedClock, SendMessage, Store};
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::recurring::{
    delete_setting, save_setting, RunOutcome, Schedules, SettingInput,
};
use portal_core::usecases::send::TokenDeriver;
use portal_lambda::Invocation;
use portal_testkit::builders::{AccountBuilder, ContactBuilder};
use portal_testkit::moto::{fresh_table, Exclusive, Moto};
use serde_json::{json, Value};
use time::macros::datetime;

type Scheduler = aws_sdk_scheduler::Client;

const ACCOUNT: &str = "123456789012";

/// Millisecond back-off: moto does not throttle, and a test must not wait.
const FAST: RetryPolicy = RetryPolicy {
    attempts: 3,
    first_delay: Duration::from_millis(1),
    max_delay: Duration::from_millis(2),
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

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn rid(s: &str) -> RecurringId {
    RecurringId::parse(s).unwrap()
}

fn setting(id: &str, hour: u8, tz: &str, enabled: bool) -> RecurringSetting {
    RecurringSetting {
        setting_id: rid(id),
        enabled,
        scope: Scope::All,
        filters: Filters::default(),
        template_id: TemplateId::parse("welcome").unwrap(),
        email_from: None,
        rule: ReminderRule {
            cadence_days: 7,
            max_invitations_per_contact: 3,
        },
        hour_of_day: hour,
        time_zone: TimeZoneName::parse(tz).unwrap(),
        created_at: datetime!(2026-03-01 12:00 UTC),
        updated_at: datetime!(2026-03-01 12:00 UTC),
    }
}

/// A schedule group of its own on moto, and the adapter writing into it.
struct Group {
    client: Scheduler,
    name: String,
    target: ScheduleTarget,
    schedules: EventBridgeSchedules,
}

/// A Scheduler client for moto, counting its requests in `counter` when given.
fn scheduler(moto: &Moto, counter: Option<&RequestCounter>) -> Scheduler {
    let mut config = aws_sdk_scheduler::config::Builder::from(&moto.sdk_config());
    if let Some(counter) = counter {
        config = config.interceptor(counter.clone());
    }
    Scheduler::from_conf(config.build())
}

/// The adapter's client counts its requests in `counter` when given; the test's own reads
/// (`GetSchedule`, `ListSchedules`) go through a client that counts nothing.
async fn group_with(moto: &Moto, counter: Option<&RequestCounter>) -> Group {
    let client = scheduler(moto, None);
    let name = unique("portal-recurring");
    client
        .create_schedule_group()
        .name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating schedule group {name} on moto: {e:?}"));
    let target = ScheduleTarget {
        group_name: name.clone(),
        target_arn: format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:portal-recurring"),
        role_arn: format!("arn:aws:iam::{ACCOUNT}:role/portal-recurring-scheduler"),
        dead_letter_arn: format!("arn:aws:sqs:us-east-1:{ACCOUNT}:portal-recurring-dlq"),
    };
    let schedules =
        EventBridgeSchedules::new(scheduler(moto, counter), target.clone()).with_retry(FAST);
    Group {
        client,
        name,
        target,
        schedules,
    }
}

async fn group(moto: &Moto) -> Group {
    group_with(moto, None).await
}

impl Group {
    /// `GetSchedule`; `None` when there is none.
    async fn get(&self, name: &str) -> Option<GetScheduleOutput> {
        match self
            .client
            .get_schedule()
            .group_name(&self.name)
            .name(name)
            .send()
            .await
        {
            Ok(out) => Some(out),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(GetScheduleError::ResourceNotFoundException(_))
                ) =>
            {
                None
            }
            Err(e) => panic!("GetSchedule {name}: {e:?}"),
        }
    }

    async fn schedule_of(&self, t: &str, id: &str) -> GetScheduleOutput {
        let name = schedule_name(&tenant(t), &rid(id));
        self.get(&name)
            .await
            .unwrap_or_else(|| panic!("no schedule {name} for {t}/{id}"))
    }

    /// The names of the group's schedules, sorted.
    async fn names(&self) -> Vec<String> {
        let out = self
            .client
            .list_schedules()
            .group_name(&self.name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListSchedules: {e:?}"));
        let mut names: Vec<String> = out
            .schedules()
            .iter()
            .filter_map(|s| s.name().map(str::to_owned))
            .collect();
        names.sort();
        names
    }
}

fn input_of(schedule: &GetScheduleOutput) -> Value {
    let raw = schedule
        .target()
        .and_then(|t| t.input())
        .expect("the target has an input");
    serde_json::from_str(raw).unwrap_or_else(|e| panic!("the input {raw:?} is not JSON: {e}"))
}

#[tokio::test]
async fn put_creates_the_schedule_the_setting_describes() {
    let g = group(Moto::shared()).await;
    let s = setting("weekly", 9, "America/Chicago", true);
    g.schedules.put(&tenant("acme"), &s).await.unwrap();

    let got = g.schedule_of("acme", "weekly").await;
    assert_eq!(got.name(), Some("acme.weekly"));
    assert_eq!(got.group_name(), Some(g.name.as_str()));
    assert_eq!(got.schedule_expression(), Some("cron(0 9 * * ? *)"));
    assert_eq!(got.schedule_expression_timezone(), Some("America/Chicago"));
    assert_eq!(got.state(), Some(&ScheduleState::Enabled));
    assert_eq!(
        got.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    assert_eq!(
        got.description(),
        Some("Recurring invitations: tenant acme, setting weekly")
    );
    if let Some(after) = got.action_after_completion() {
        assert_eq!(after, &ActionAfterCompletion::None);
    }
    let target = got.target().expect("a target");
    assert_eq!(target.arn(), g.target.target_arn);
    assert_eq!(target.role_arn(), g.target.role_arn);
    assert_eq!(
        input_of(&got),
        json!({"tenant": "acme", "setting_id": "weekly", "scheduled_time": SCHEDULED_TIME})
    );
    let retry = target.retry_policy().expect("a retry policy");
    assert_eq!(retry.maximum_retry_attempts(), Some(MAXIMUM_RETRY_ATTEMPTS));
    assert_eq!(
        retry.maximum_event_age_in_seconds(),
        Some(MAXIMUM_EVENT_AGE_SECONDS)
    );
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some(g.target.dead_letter_arn.as_str())
    );
    assert_eq!(g.names().await, ["acme.weekly"]);
}

#[tokio::test]
async fn put_again_updates_the_one_schedule_in_place() {
    let g = group(Moto::shared()).await;
    let t = tenant("acme");
    g.schedules
        .put(&t, &setting("weekly", 9, "America/Chicago", true))
        .await
        .unwrap();
    // Another hour and zone, switched off: the same schedule, updated (Create conflicts).
    g.schedules
        .put(&t, &setting("weekly", 23, "Pacific/Auckland", false))
        .await
        .unwrap();
    let got = g.schedule_of("acme", "weekly").await;
    assert_eq!(got.schedule_expression(), Some("cron(0 23 * * ? *)"));
    assert_eq!(got.schedule_expression_timezone(), Some("Pacific/Auckland"));
    assert_eq!(got.state(), Some(&ScheduleState::Disabled));
    // Update replaces the whole schedule: the target is still all there.
    let target = got.target().unwrap();
    assert_eq!(target.arn(), g.target.target_arn);
    assert_eq!(input_of(&got)["setting_id"], "weekly");
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some(g.target.dead_letter_arn.as_str())
    );
    assert_eq!(
        target
            .retry_policy()
            .and_then(|r| r.maximum_retry_attempts()),
        Some(MAXIMUM_RETRY_ATTEMPTS)
    );
    assert_eq!(g.names().await, ["acme.weekly"], "one schedule, not two");

    // And on again; saving the same setting twice changes nothing.
    let on = setting("weekly", 23, "Pacific/Auckland", true);
    g.schedules.put(&t, &on).await.unwrap();
    g.schedules.put(&t, &on).await.unwrap();
    let got = g.schedule_of("acme", "weekly").await;
    assert_eq!(got.state(), Some(&ScheduleState::Enabled));
    assert_eq!(g.names().await, ["acme.weekly"]);
}

#[tokio::test]
async fn delete_removes_the_schedule_and_deleting_again_is_fine() {
    let g = group(Moto::shared()).await;
    let t = tenant("acme");
    g.schedules
        .put(&t, &setting("weekly", 9, "Europe/Paris", true))
        .await
        .unwrap();
    g.schedules
        .put(&t, &setting("daily", 7, "Europe/Paris", true))
        .await
        .unwrap();
    g.schedules.delete(&t, &rid("weekly")).await.unwrap();
    assert!(g.get("acme.weekly").await.is_none());
    assert_eq!(
        g.names().await,
        ["acme.daily"],
        "the other setting keeps its own"
    );
    g.schedules.delete(&t, &rid("weekly")).await.unwrap();
    g.schedules.delete(&t, &rid("never-saved")).await.unwrap();
    // Put after delete creates it again.
    g.schedules
        .put(&t, &setting("weekly", 10, "Europe/Paris", true))
        .await
        .unwrap();
    assert_eq!(
        g.schedule_of("acme", "weekly").await.schedule_expression(),
        Some("cron(0 10 * * ? *)")
    );
}

#[tokio::test]
async fn two_tenants_with_the_same_setting_id_get_two_schedules() {
    let g = group(Moto::shared()).await;
    g.schedules
        .put(
            &tenant("acme"),
            &setting("weekly", 9, "America/Chicago", true),
        )
        .await
        .unwrap();
    g.schedules
        .put(
            &tenant("globex"),
            &setting("weekly", 17, "Asia/Kolkata", true),
        )
        .await
        .unwrap();
    assert_eq!(g.names().await, ["acme.weekly", "globex.weekly"]);
    let acme = g.schedule_of("acme", "weekly").await;
    let globex = g.schedule_of("globex", "weekly").await;
    assert_eq!(input_of(&acme)["tenant"], "acme");
    assert_eq!(input_of(&globex)["tenant"], "globex");
    assert_eq!(acme.schedule_expression(), Some("cron(0 9 * * ? *)"));
    assert_eq!(globex.schedule_expression(), Some("cron(0 17 * * ? *)"));
    assert_eq!(globex.schedule_expression_timezone(), Some("Asia/Kolkata"));

    // Deleting one tenant's leaves the other's.
    g.schedules
        .delete(&tenant("globex"), &rid("weekly"))
        .await
        .unwrap();
    assert_eq!(g.names().await, ["acme.weekly"]);
}

#[tokio::test]
async fn pairs_without_a_readable_name_get_a_hashed_one_scheduler_accepts() {
    let g = group(Moto::shared()).await;
    let long = "r".repeat(64);
    let cases = [
        ("acme.eu", "weekly"),
        ("acme", "wk:1"),
        ("acme", long.as_str()),
    ];
    for (t, id) in cases {
        g.schedules
            .put(&tenant(t), &setting(id, 9, "UTC", true))
            .await
            .unwrap_or_else(|e| panic!("{t}/{id}: {e}"));
        let got = g.schedule_of(t, id).await;
        let name = got.name().unwrap();
        assert_eq!(name.len(), 64, "{t}/{id}: {name}");
        assert!(!name.contains('.'), "{t}/{id}: {name}");
        // The input, not the name, says whose it is.
        assert_eq!(input_of(&got)["tenant"], t);
        assert_eq!(input_of(&got)["setting_id"], id);
        assert!(got.description().unwrap().contains(t));
    }
    assert_eq!(g.names().await.len(), cases.len());
}

#[tokio::test]
async fn a_time_zone_is_sent_in_its_canonical_spelling() {
    let g = group(Moto::shared()).await;
    g.schedules
        .put(
            &tenant("acme"),
            &setting("weekly", 9, "america/new_york", true),
        )
        .await
        .unwrap();
    assert_eq!(
        g.schedule_of("acme", "weekly")
            .await
            .schedule_expression_timezone(),
        Some("America/New_York")
    );
}

#[tokio::test]
async fn an_invalid_expression_never_reaches_scheduler() {
    let g = group(Moto::shared()).await;
    // Not a setting a manager can save (hour 0-23): a bug must not make a broken schedule,
    // which moto would accept and AWS would refuse.
    let bad = setting("weekly", 24, "UTC", true);
    let err = g
        .schedules
        .put_schedule(&tenant("acme"), &bad)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ScheduleError::InvalidExpression { expression, .. } if expression == "cron(0 24 * * ? *)"),
        "{err:?}"
    );
    assert!(g.names().await.is_empty());
}

/// AWS answers a schedule in a group that does not exist with `ResourceNotFoundException`,
/// which is not retried (the adapter's unit tests); moto (5.2.1) fails with an HTML 500
/// instead, which stands in here for a Scheduler that keeps failing: retried with back-off,
/// then reported as unavailable, naming the call.
#[tokio::test]
async fn a_failing_scheduler_is_retried_then_reported_unavailable() {
    let moto = Moto::shared();
    let counter = RequestCounter::new();
    let schedules = EventBridgeSchedules::new(
        scheduler(moto, Some(&counter)),
        ScheduleTarget {
            group_name: unique("no-such-group"),
            target_arn: format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"),
            role_arn: format!("arn:aws:iam::{ACCOUNT}:role/r"),
            dead_letter_arn: format!("arn:aws:sqs:us-east-1:{ACCOUNT}:q"),
        },
    )
    .with_retry(FAST);
    let err = schedules
        .put_schedule(&tenant("acme"), &setting("weekly", 9, "UTC", true))
        .await
        .unwrap_err();
    match &err {
        ScheduleError::Unavailable {
            operation,
            name,
            attempts,
            ..
        } => {
            assert_eq!(
                (*operation, name.as_str()),
                ("CreateSchedule", "acme.weekly")
            );
            assert_eq!(*attempts, FAST.attempts);
        }
        // An emulator that answers as AWS does: refused at once.
        ScheduleError::Rejected { code, .. } => {
            assert_eq!(
                code.as_deref(),
                Some("ResourceNotFoundException"),
                "{err:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let expected = if matches!(err, ScheduleError::Unavailable { .. }) {
        u64::from(FAST.attempts)
    } else {
        1
    };
    assert_eq!(counter.get("CreateSchedule"), expected);
    assert_eq!(counter.total(), expected, "nothing but CreateSchedule");
}

// --- A firing, run through the function's code ------------------------------------------

/// A bus that keeps what is published.
#[derive(Default)]
struct RecordingBus {
    messages: Mutex<Vec<SendMessage>>,
}

#[async_trait::async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        self.messages.lock().unwrap().extend_from_slice(messages);
        Ok(())
    }
}

/// The actions `template.yaml` grants the recurring function.
fn granted_actions() -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (_, function) = doc["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some("recurring"))
        .expect("the recurring function in template.yaml");
    let mut actions = BTreeSet::new();
    for policy in function["Properties"]["Policies"].as_sequence().unwrap() {
        for statement in policy["Statement"].as_sequence().unwrap() {
            match &statement["Action"] {
                serde_yaml::Value::String(a) => {
                    actions.insert(a.clone());
                }
                serde_yaml::Value::Sequence(list) => {
                    actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned)));
                }
                other => panic!("Action {other:?}"),
            }
        }
    }
    actions
}

/// The IAM action each counted request needs. A recurring campaign's TransactWriteItems holds
/// Puts only (a recurring run locks no division), each allowed as `dynamodb:PutItem`.
fn needed_actions(counter: &RequestCounter) -> BTreeSet<String> {
    counter
        .snapshot()
        .into_keys()
        .map(|(service, operation)| {
            let prefix = match service.to_ascii_lowercase().as_str() {
                s if s.contains("dynamodb") => "dynamodb",
                s if s.contains("scheduler") => "scheduler",
                other => panic!("a request to {other}"),
            };
            let action = match operation.as_str() {
                "TransactWriteItems" => "PutItem",
                other => other,
            };
            format!("{prefix}:{action}")
        })
        .collect()
}

#[tokio::test]
async fn a_schedules_input_runs_its_setting_once_for_the_day_it_fired_for() {
    let moto = Moto::shared();
    let counter = RequestCounter::new();
    let g = group_with(moto, Some(&counter)).await;
    let store = Exclusive::new(|| async {
        let ddb: aws_sdk_dynamodb::Client = moto.counted_client(&counter);
        let table = fresh_table(&ddb).await;
        DynamoStore::new(ddb, table)
    })
    .await;
    let store: &dyn Store = &*store;
    let t = tenant(&unique("acme"));

    // A division of two contacts never invited, sender settings allowing its sender, and
    // the invitation template.
    portal_testkit::builders::allow_senders(store, &t, &["example.org"]).await;
    let d1 = DivisionId::parse("d1").unwrap();
    store
        .put_division(
            &t,
            &DivisionInput::new(
                d1,
                "Lakeside".into(),
                Email::parse("hoa@example.org").unwrap(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    store
        .upsert_accounts(
            &t,
            &[AccountBuilder::new("a1")
                .division("d1")
                .contacts([
                    ContactBuilder::new("c1").email("c1@example.com"),
                    ContactBuilder::new("c2").email("c2@example.com"),
                ])
                .build()],
        )
        .await
        .unwrap();
    let template = Template::new(
        TemplateId::parse("welcome").unwrap(),
        "Welcome",
        "Welcome to [DivisionName]",
        "<p>Hello [ContactName]</p><a href=\"[PortalLink]\">Register</a> \
         <a href=\"[UnsubscribeLink]\">stop</a>",
        "Hello [ContactName]\nRegister: [PortalLink]\nUnsubscribe: [UnsubscribeLink]",
    )
    .unwrap();
    store.put_template(&t, &template).await.unwrap();
    counter.reset();

    // Saved through the use case, as PUT /v1/recurring/weekly does on AWS.
    let saved_at = FixedClock::new(datetime!(2026-03-07 12:00 UTC));
    let input = SettingInput {
        enabled: true,
        scope: "all".into(),
        division_ids: vec![],
        filters: Filters::default(),
        template_id: TemplateId::parse("welcome").unwrap(),
        email_from: None,
        cadence_days: 7,
        max_invitations_per_contact: 3,
        hour_of_day: 9,
        time_zone: "America/Chicago".into(),
    };
    save_setting(
        store,
        &g.schedules,
        &saved_at,
        &t,
        rid("weekly"),
        input.clone(),
    )
    .await
    .unwrap();

    // Scheduler fires at 09:00 CST on 7 March (15:00 UTC) with the schedule's input, the
    // placeholder replaced.
    let schedule = g.schedule_of(t.as_str(), "weekly").await;
    let raw = schedule.target().unwrap().input().unwrap();
    assert!(raw.contains(SCHEDULED_TIME), "{raw}");
    let fired = raw.replace(SCHEDULED_TIME, "2026-03-07T15:00:00Z");
    let payload: Value = serde_json::from_str(&fired).unwrap();
    let Invocation::Recurring(run) = Invocation::of(&payload).unwrap() else {
        panic!("{payload} is not a recurring run");
    };
    assert_eq!(run.tenant, t);
    assert_eq!(run.setting_id, rid("weekly"));

    let bus = Arc::new(RecordingBus::default());
    let sending = Sending {
        bus: bus.clone(),
        tokens: Arc::new(TokenDeriver::new("0123456789abcdef0123456789abcdef").unwrap()),
        token_ttl: time::Duration::days(14),
    };
    // Handled a moment after the hour.
    let now = FixedClock::new(datetime!(2026-03-07 15:00:02 UTC));
    let outcome = run.run(store, &now, &sending).await.unwrap();
    let RunOutcome::Queued { run: record } = &outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(record.local_date, "2026-03-07");
    let campaign_id = record.campaign_id.clone().expect("the run's campaign");
    let campaign = store.get_campaign(&t, &campaign_id).await.unwrap().unwrap();
    assert_eq!(campaign.trigger, Trigger::Recurring);
    assert_eq!(
        campaign.recurring.as_ref().map(|r| r.local_date.as_str()),
        Some("2026-03-07")
    );
    assert_eq!(
        *bus.messages.lock().unwrap(),
        [SendMessage::FanOut {
            tenant: t.clone(),
            campaign_id: campaign_id.clone(),
            cursor: None,
            spec: None,
        }]
    );

    // The schedule firing again (or Lambda retrying) that day sends nothing twice.
    let again = run.run(store, &now, &sending).await.unwrap();
    assert!(matches!(again, RunOutcome::AlreadyRan { .. }), "{again:?}");
    assert_eq!(bus.messages.lock().unwrap().len(), 1);

    // Switched off: the schedule is disabled, and a firing already on its way does nothing.
    let off = SettingInput {
        enabled: false,
        ..input
    };
    save_setting(store, &g.schedules, &saved_at, &t, rid("weekly"), off)
        .await
        .unwrap();
    assert_eq!(
        g.schedule_of(t.as_str(), "weekly").await.state(),
        Some(&ScheduleState::Disabled)
    );
    let next_day = payload_at(&raw_input(&g, &t).await, "2026-03-08T14:00:00Z");
    let Invocation::Recurring(run) = Invocation::of(&next_day).unwrap() else {
        panic!("{next_day}");
    };
    let ignored = run.run(store, &now, &sending).await.unwrap();
    assert!(matches!(ignored, RunOutcome::Ignored { .. }), "{ignored:?}");

    // Deleted: the schedule goes with the setting; a firing that outlived it does nothing.
    delete_setting(store, &g.schedules, &t, &rid("weekly"))
        .await
        .unwrap();
    assert!(g.get(&schedule_name(&t, &rid("weekly"))).await.is_none());
    let gone = run.run(store, &now, &sending).await.unwrap();
    assert!(matches!(gone, RunOutcome::Ignored { .. }), "{gone:?}");
    assert_eq!(bus.messages.lock().unwrap().len(), 1);

    // Every call made, settings and schedules and runs, is one the function may make.
    let granted = granted_actions();
    let needed = needed_actions(&counter);
    let missing: Vec<&String> = needed.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the recurring function would be denied {missing:?} (granted: {granted:?})"
    );
    for action in [
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:DeleteSchedule",
    ] {
        assert!(
            needed.contains(action),
            "{action} was never called: {needed:?}"
        );
    }
}

async fn raw_input(g: &Group, t: &TenantId) -> String {
    g.schedule_of(t.as_str(), "weekly")
        .await
        .target()
        .and_then(|t| t.input())
        .unwrap()
        .to_owned()
}

fn payload_at(raw: &str, at: &str) -> Value {
    serde_json::from_str(&raw.replace(SCHEDULED_TIME, at)).unwrap()
}
