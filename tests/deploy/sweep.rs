//! The sweeper in `template.yaml`: one scheduled rule, on the `send` function only, firing
//! every few minutes with exactly the input `portal_lambda` reads as a sweep; the idle time
//! comes from a bounded parameter through `SWEEP_IDLE_MINUTES`; and `send` may query the
//! index the sweeper lists from.

use portal_core::usecases::send::sweep::DEFAULT_IDLE;
use portal_lambda::config::MAX_SWEEP_IDLE_MINUTES;
use portal_lambda::invocation::{Invocation, SWEEP_INPUT};

use crate::yaml::*;

/// Minutes between two firings of `rate(N minutes)`.
fn rate_minutes(expression: &str) -> Option<i64> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.split_once(' ')?;
    let n: i64 = n.parse().ok()?;
    match unit {
        "minute" if n == 1 => Some(1),
        "minutes" if n > 1 => Some(n),
        "hour" if n == 1 => Some(60),
        "hours" if n > 1 => Some(60 * n),
        _ => None,
    }
}

#[test]
fn only_send_is_scheduled_and_its_schedule_is_a_sweep_every_few_minutes() {
    let doc = template();
    for f in functions(&doc) {
        let schedules = f.events_of("Schedule");
        if f.binary != "send" {
            assert!(schedules.is_empty(), "{}: only send sweeps", f.id);
            continue;
        }
        assert_eq!(schedules.len(), 1, "{}: one sweep schedule", f.id);
        let (name, event) = schedules[0];
        let props = &event["Properties"];
        let every = props["Schedule"]
            .as_str()
            .and_then(rate_minutes)
            .unwrap_or_else(|| panic!("{}.{name}: a rate(N minutes) schedule", f.id));
        assert!(
            (1..=DEFAULT_IDLE.whole_minutes()).contains(&every),
            "{}.{name}: every {every} minutes, more often than the default idle time",
            f.id
        );
        let input: serde_json::Value = serde_json::from_str(
            props["Input"]
                .as_str()
                .unwrap_or_else(|| panic!("{}.{name}: a constant Input", f.id)),
        )
        .expect("the Input is JSON");
        assert_eq!(
            input,
            serde_json::from_str::<serde_json::Value>(SWEEP_INPUT).unwrap()
        );
        assert_eq!(Invocation::of(&input).unwrap(), Invocation::Sweep);
        assert!(
            props["Enabled"].as_bool() != Some(false)
                && props["State"].as_str() != Some("DISABLED"),
            "{}.{name}: enabled",
            f.id
        );
    }
}

#[test]
fn the_idle_time_is_a_bounded_parameter_passed_to_send() {
    let doc = template();
    let f = function(&doc, "send");
    let parameter = ref_of(&f.env()["SWEEP_IDLE_MINUTES"])
        .unwrap_or_else(|| panic!("{}: SWEEP_IDLE_MINUTES is a !Ref to a parameter", f.id));
    assert_eq!(parameter, "SweepIdleMinutes");
    let p = &doc["Parameters"][parameter];
    assert_eq!(p["Type"].as_str(), Some("Number"));
    assert_eq!(p["Default"].as_i64(), Some(DEFAULT_IDLE.whole_minutes()));
    assert_eq!(p["MinValue"].as_i64(), Some(1));
    assert_eq!(p["MaxValue"].as_i64(), Some(MAX_SWEEP_IDLE_MINUTES));
    for other in functions(&doc) {
        if other.binary != "send" {
            assert!(
                other.env()["SWEEP_IDLE_MINUTES"].is_null(),
                "{}: only send sweeps",
                other.id
            );
        }
    }
}

#[test]
fn send_may_query_the_index_the_sweeper_lists_from() {
    let doc = template();
    let (table, _) = only_resource_of(&doc, "AWS::DynamoDB::Table");
    let gsi1 = format!("${{{table}.Arn}}/index/{}", portal_aws::dynamodb::GSI1);
    let f = function(&doc, "send");
    assert!(
        f.statements().iter().any(|s| {
            strings(&s["Action"]) == ["dynamodb:Query"] && sub_of(&s["Resource"]) == Some(&gsi1)
        }),
        "{}: dynamodb:Query on {gsi1}",
        f.id
    );
}
