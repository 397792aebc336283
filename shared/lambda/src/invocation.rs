//! Invocation routing for a function that takes more than one kind of event (the SES events
//! function: API Gateway requests, EventBridge events, direct recount invocations; the
//! recurring function: API Gateway requests and its schedules' firings): tell the kind
//! apart, and hand an HTTP request to an axum router as `lambda_http` would.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use portal_core::domain::{RecurringId, TenantId};
use portal_core::ports::{Clock, Store};
use portal_core::usecases::campaigns::Sending;
use portal_core::usecases::events::RecountRequest;
use portal_core::usecases::recurring::{run_setting, RecurringError, RunOutcome};

use crate::diagnostic::diagnostic;

/// What a function that takes several kinds of event was invoked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// An event from an EventBridge rule (it has a `detail-type`).
    EventBridge,
    /// A direct invocation `{"recount": {"tenant", "campaign_id", "fix"}}`.
    Recount(RecountRequest),
    /// A recurring setting's schedule firing (EventBridge Scheduler hands the schedule's
    /// input as the event): `{"tenant", "setting_id", "scheduled_time"?}`.
    Recurring(ScheduledRun),
    /// The sweeper's scheduled rule, whose constant input is [`SWEEP_INPUT`]: re-publish the
    /// campaigns that made no progress (`portal_core::usecases::send::sweep`).
    Sweep,
    /// Anything else: an API Gateway request (HTTP API, payload 2.0).
    Http,
}

/// The input of a recurring setting's schedule (`portal_aws::scheduler::schedule_input`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ScheduledRun {
    pub tenant: TenantId,
    pub setting_id: RecurringId,
    /// The time the schedule fired for (Scheduler's `<aws.scheduler.scheduled-time>`, RFC
    /// 3339): the run is for its local date. Absent when invoked by hand: the day due now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub scheduled_time: Option<OffsetDateTime>,
}

impl ScheduledRun {
    /// Runs the setting for the local date of [`Self::scheduled_time`] in the setting's
    /// time zone (one more GetItem), or, without one, for the day due now
    /// ([`run_setting`] with `None`). A firing handled a moment early, late, or after
    /// midnight by a retry still runs the day it fired for; the run itself is keyed by that
    /// day, so firing twice sends nothing twice.
    pub async fn run(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        sending: &Sending,
    ) -> Result<RunOutcome, RecurringError> {
        let day = match self.scheduled_time {
            Some(at) => store
                .get_setting(&self.tenant, &self.setting_id)
                .await?
                .map(|s| s.time_zone.date_at(at)),
            None => None,
        };
        run_setting(store, clock, sending, &self.tenant, &self.setting_id, day).await
    }
}

/// The constant input of the sweeper's scheduled rule (`template.yaml`, `SweepSchedule`).
pub const SWEEP_INPUT: &str = r#"{"sweep": {}}"#;

impl Invocation {
    /// Tells the five apart; a `recount` payload, or a payload with a `setting_id`, that
    /// does not parse is an error.
    pub fn of(payload: &serde_json::Value) -> Result<Self, serde_json::Error> {
        if let Some(r) = payload.get("recount") {
            return Ok(Self::Recount(serde_json::from_value(r.clone())?));
        }
        // A rule with a constant input hands over that input alone (no `detail-type`); no
        // API Gateway request or EventBridge event has a top-level `sweep`.
        if payload.get("sweep").is_some_and(Value::is_object) {
            return Ok(Self::Sweep);
        }
        if payload.get("detail-type").is_some() {
            return Ok(Self::EventBridge);
        }
        // No API Gateway request has a top-level `setting_id`.
        if payload.get("setting_id").is_some() {
            return Ok(Self::Recurring(serde_json::from_value(payload.clone())?));
        }
        Ok(Self::Http)
    }

    /// What this invocation is, for a function's diagnostic when it does not take it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::EventBridge => "an EventBridge event",
            Self::Recount(_) => "a recount",
            Self::Recurring(_) => "a recurring schedule's run",
            Self::Sweep => "a sweep",
            Self::Http => "an HTTP request",
        }
    }
}

/// The diagnostic of a function invoked with a kind of invocation it does not take (a
/// misrouted rule or schedule, a hand invocation of the wrong function): failing loudly,
/// since retrying cannot fix it.
pub fn unsupported(function: &str, invocation: &Invocation) -> Diagnostic {
    diagnostic(
        "UnsupportedEvent",
        &std::io::Error::other(format!(
            "the {function} function does not take {}",
            invocation.kind()
        )),
    )
}

/// Serves an API Gateway request (the invocation's payload) with `router`, answering the
/// response as the payload Lambda returns to API Gateway.
pub async fn serve_http(
    router: &axum::Router,
    payload: Value,
    context: lambda_runtime::Context,
) -> Result<Value, Diagnostic> {
    use lambda_http::request::LambdaRequest;
    use lambda_http::{Adapter, Service as _};
    let request: LambdaRequest =
        serde_json::from_value(payload).map_err(|e| diagnostic("UnsupportedEvent", &e))?;
    let response = Adapter::from(router.clone())
        .call(LambdaEvent::new(request, context))
        .await
        .unwrap_or_else(|never| match never {});
    to_json(&response)
}

/// A value as the JSON payload Lambda returns.
pub fn to_json(value: &impl serde::Serialize) -> Result<Value, Diagnostic> {
    serde_json::to_value(value).map_err(|e| diagnostic("SerializationError", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_are_told_apart() {
        use serde_json::json;
        assert_eq!(
            Invocation::of(&json!({"detail-type": "Email Delivered", "source": "aws.ses"}))
                .unwrap(),
            Invocation::EventBridge
        );
        assert_eq!(
            Invocation::of(&json!({"version": "2.0", "routeKey": "POST /v1/ses-events"})).unwrap(),
            Invocation::Http
        );
        let id = "0123456789abcdef0123456789abcdef";
        match Invocation::of(&json!({"recount": {"tenant": "acme", "campaign_id": id}})).unwrap() {
            Invocation::Recount(r) => assert!(!r.fix && r.campaign_id.as_str() == id),
            other => panic!("{other:?}"),
        }
        assert!(Invocation::of(&json!({"recount": {"tenant": "acme"}})).is_err());
    }

    #[test]
    fn the_sweep_rules_input_is_a_sweep() {
        let input: Value = serde_json::from_str(SWEEP_INPUT).unwrap();
        assert_eq!(Invocation::of(&input).unwrap(), Invocation::Sweep);
        // An HTTP request whose body mentions a sweep is still a request.
        let request = serde_json::json!({"version": "2.0", "routeKey": "POST /v1/campaigns",
            "body": "{\"sweep\": {}}"});
        assert_eq!(Invocation::of(&request).unwrap(), Invocation::Http);
        assert_eq!(
            unsupported("recurring", &Invocation::Sweep).error_message,
            "the recurring function does not take a sweep"
        );
    }

    #[test]
    fn a_schedules_input_is_a_recurring_run() {
        use serde_json::json;
        let run = |v: serde_json::Value| match Invocation::of(&v).unwrap() {
            Invocation::Recurring(r) => r,
            other => panic!("{other:?}"),
        };
        // As EventBridge Scheduler hands it, the placeholder replaced.
        let r = run(json!({
            "tenant": "acme",
            "setting_id": "weekly",
            "scheduled_time": "2026-03-08T15:00:00Z"
        }));
        assert_eq!(r.tenant.as_str(), "acme");
        assert_eq!(r.setting_id.as_str(), "weekly");
        assert_eq!(
            r.scheduled_time,
            Some(time::macros::datetime!(2026-03-08 15:00:00 UTC))
        );
        // By hand: the day due now.
        let r = run(json!({"tenant": "acme", "setting_id": "weekly"}));
        assert_eq!(r.scheduled_time, None);
        let r = run(json!({"tenant": "acme", "setting_id": "weekly", "scheduled_time": null}));
        assert_eq!(r.scheduled_time, None);

        for bad in [
            json!({"setting_id": "weekly"}),
            json!({"tenant": "acme", "setting_id": "no#hash"}),
            json!({"tenant": "acme", "setting_id": 7}),
            // The placeholder itself: the schedule's input copied by hand.
            json!({"tenant": "acme", "setting_id": "weekly", "scheduled_time": "<aws.scheduler.scheduled-time>"}),
        ] {
            assert!(Invocation::of(&bad).is_err(), "{bad}");
        }
        // API Gateway requests and EventBridge events are not runs.
        assert_eq!(
            Invocation::of(
                &json!({"version": "2.0", "routeKey": "PUT /v1/recurring/{recurring_id}",
                "pathParameters": {"recurring_id": "weekly"}, "body": "{\"setting_id\": 1}"})
            )
            .unwrap(),
            Invocation::Http
        );
    }

    mod runs {
        use std::sync::Arc;

        use portal_core::domain::{
            Filters, RecurringSetting, ReminderRule, Scope, TemplateId, TimeZoneName,
        };
        use portal_core::ports::{FixedClock, RecurringStore};
        use portal_core::usecases::send::TokenDeriver;
        use portal_embedded::sqlite::SqliteStore;
        use time::macros::datetime;

        use super::*;
        use crate::NoBus;

        /// A setting at 09:00 America/Chicago saved long ago, in a store with no division.
        async fn store() -> SqliteStore {
            let store = SqliteStore::open_in_memory().unwrap();
            let setting = RecurringSetting {
                setting_id: RecurringId::parse("weekly").unwrap(),
                enabled: true,
                scope: Scope::All,
                filters: Filters::default(),
                template_id: TemplateId::parse("welcome").unwrap(),
                email_from: None,
                rule: ReminderRule {
                    cadence_days: 7,
                    max_invitations_per_contact: 3,
                },
                hour_of_day: 9,
                time_zone: TimeZoneName::parse("America/Chicago").unwrap(),
                created_at: datetime!(2026-01-01 00:00 UTC),
                updated_at: datetime!(2026-01-01 00:00 UTC),
            };
            store
                .put_setting(&TenantId::parse("acme").unwrap(), &setting)
                .await
                .unwrap();
            store
        }

        fn sending() -> Sending {
            Sending {
                bus: Arc::new(NoBus),
                tokens: Arc::new(TokenDeriver::new("0123456789abcdef0123456789abcdef").unwrap()),
                token_ttl: time::Duration::days(14),
            }
        }

        fn request(scheduled_time: Option<OffsetDateTime>) -> ScheduledRun {
            ScheduledRun {
                tenant: TenantId::parse("acme").unwrap(),
                setting_id: RecurringId::parse("weekly").unwrap(),
                scheduled_time,
            }
        }

        fn day_of(outcome: &RunOutcome) -> &str {
            match outcome {
                RunOutcome::NobodyDue { run }
                | RunOutcome::AlreadyRan { run }
                | RunOutcome::Queued { run } => &run.local_date,
                other => panic!("{other:?}"),
            }
        }

        #[tokio::test]
        async fn a_firing_runs_the_local_day_it_fired_for_whenever_it_is_handled() {
            let store = store().await;
            // 09:00 CST on 7 March is 15:00 UTC; handled a second early (a clock a hair
            // ahead), the day is still the 7th, not the 6th.
            let fired = datetime!(2026-03-07 15:00 UTC);
            let early = FixedClock::new(datetime!(2026-03-07 14:59:59 UTC));
            let out = request(Some(fired))
                .run(&store, &early, &sending())
                .await
                .unwrap();
            assert!(matches!(out, RunOutcome::NobodyDue { .. }), "{out:?}");
            assert_eq!(day_of(&out), "2026-03-07");

            // A retry after local midnight is still the 7th's run: done already.
            let late = FixedClock::new(datetime!(2026-03-08 06:30 UTC));
            let again = request(Some(fired))
                .run(&store, &late, &sending())
                .await
                .unwrap();
            assert!(matches!(again, RunOutcome::AlreadyRan { .. }), "{again:?}");
            assert_eq!(day_of(&again), "2026-03-07");

            // After the spring change (8 March), 09:00 CDT is 14:00 UTC.
            let out = request(Some(datetime!(2026-03-09 14:00 UTC)))
                .run(&store, &late, &sending())
                .await
                .unwrap();
            assert_eq!(day_of(&out), "2026-03-09");
        }

        #[tokio::test]
        async fn by_hand_it_runs_the_day_due_now_and_a_missing_setting_is_ignored() {
            let store = store().await;
            let clock = FixedClock::new(datetime!(2026-03-07 16:00 UTC));
            let out = request(None).run(&store, &clock, &sending()).await.unwrap();
            assert_eq!(day_of(&out), "2026-03-07");

            let gone = ScheduledRun {
                setting_id: RecurringId::parse("gone").unwrap(),
                ..request(Some(datetime!(2026-03-07 15:00 UTC)))
            };
            let out = gone.run(&store, &clock, &sending()).await.unwrap();
            assert!(matches!(out, RunOutcome::Ignored { .. }), "{out:?}");
        }
    }

    #[test]
    fn a_function_refuses_what_it_does_not_take_by_name() {
        let r =
            Invocation::of(&serde_json::json!({"tenant": "acme", "setting_id": "weekly"})).unwrap();
        let d = unsupported("send", &r);
        assert_eq!(d.error_type, "UnsupportedEvent");
        assert_eq!(
            d.error_message,
            "the send function does not take a recurring schedule's run"
        );
    }
}
