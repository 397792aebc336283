//! The send chain in `template.yaml`: the two send rules route each detail-type from the
//! send bus to the function that handles it, only `send`, `registration` and `recurring`
//! publish (on that bus; `registration` only a first fan-out and its registration events,
//! `recurring` only a first fan-out), only `delivery` sends invitations and `registration`
//! its confirmation links through SES, and what an asynchronous step could not do is kept.

use portal_core::ports::{
    DETAIL_TYPE_DELIVER, DETAIL_TYPE_FAN_OUT, DETAIL_TYPE_REGISTRATION, EVENT_SOURCE,
    REGISTRATION_SOURCE,
};

use crate::yaml::*;

/// The functions the send bus's rules invoke.
const STEPS: [&str; 2] = ["send", "delivery"];

/// The functions that put events on the send bus.
const PUBLISHERS: [&str; 3] = ["send", "registration", "recurring"];

/// The functions that send email: invitations (`delivery`), confirmation links
/// (`registration`).
const SENDERS: [&str; 2] = ["delivery", "registration"];

fn send_bus(doc: &Value) -> &str {
    only_resource_of(doc, "AWS::Events::EventBus").0
}

#[test]
fn each_send_detail_type_is_routed_from_the_send_bus_to_the_function_that_handles_it() {
    let doc = template();
    let bus = send_bus(&doc);

    // (detail-type, function) of every EventBridge rule of a function.
    let mut routes = Vec::new();
    for f in functions(&doc) {
        for (name, event) in f.events_of("EventBridgeRule") {
            let props = &event["Properties"];
            let id = f.id;
            assert_eq!(ref_of(&props["EventBusName"]), Some(bus), "{id}.{name}");
            assert_eq!(
                strings(&props["Pattern"]["source"]),
                [EVENT_SOURCE],
                "{id}.{name}"
            );
            assert!(
                !props["DeadLetterConfig"]["Arn"].is_null(),
                "{id}.{name}: events EventBridge cannot deliver are kept"
            );
            for detail_type in strings(&props["Pattern"]["detail-type"]) {
                routes.push((detail_type.to_owned(), f.id));
            }
        }
    }
    routes.sort();
    let mut want = vec![
        (DETAIL_TYPE_FAN_OUT.to_owned(), function(&doc, "send").id),
        (
            DETAIL_TYPE_DELIVER.to_owned(),
            function(&doc, "delivery").id,
        ),
    ];
    want.sort();
    assert_eq!(routes, want);
}

#[test]
fn only_send_registration_and_recurring_publish_and_on_the_send_bus_only() {
    let doc = template();
    let bus = send_bus(&doc);
    for f in functions(&doc) {
        let id = f.id;
        let publishes = f.may("events:PutEvents");
        assert_eq!(
            publishes,
            PUBLISHERS.contains(&f.binary),
            "{id}: events:PutEvents"
        );
        let env = f.env();
        assert_eq!(
            !env["EVENT_BUS_NAME"].is_null(),
            publishes,
            "{id}: EVENT_BUS_NAME"
        );
        if !publishes {
            continue;
        }
        assert_eq!(ref_of(&env["EVENT_BUS_NAME"]), Some(bus), "{id}");
        for s in f.statements() {
            if strings(&s["Action"]).contains(&"events:PutEvents") {
                assert_eq!(
                    strings(&s["Action"]),
                    ["events:PutEvents"],
                    "{id}: PutEvents in a statement of its own"
                );
                assert_eq!(
                    get_att_of(&s["Resource"]),
                    Some(format!("{bus}.Arn")),
                    "{id}: the send bus, not every bus"
                );
            }
        }
    }
}

/// The registration function publishes a sign-up request's portal-key email as a campaign's
/// first fan-out, and `Portal Registration` for the portal: its grant is conditioned on
/// those, so it can never put a delivery batch (which would make `delivery` send email).
#[test]
fn registration_may_publish_only_a_first_fan_out_and_registration_events() {
    let doc = template();
    let f = function(&doc, "registration");
    let id = f.id;
    let statements: Vec<&Value> = f
        .statements()
        .into_iter()
        .filter(|s| strings(&s["Action"]).contains(&"events:PutEvents"))
        .collect();
    assert_eq!(statements.len(), 1, "{id}: one PutEvents statement");
    let condition = &statements[0]["Condition"]["StringEquals"];
    let mut sources = strings(&condition["events:source"]);
    sources.sort_unstable();
    let mut want = vec![EVENT_SOURCE, REGISTRATION_SOURCE];
    want.sort_unstable();
    assert_eq!(sources, want, "{id}: events:source");
    let mut detail_types = strings(&condition["events:detail-type"]);
    detail_types.sort_unstable();
    let mut want = vec![DETAIL_TYPE_FAN_OUT, DETAIL_TYPE_REGISTRATION];
    want.sort_unstable();
    assert_eq!(detail_types, want, "{id}: events:detail-type");
    assert!(!detail_types.contains(&DETAIL_TYPE_DELIVER));
}

/// No rule of the stack takes the registration events: they are the portal's.
#[test]
fn no_rule_of_the_stack_matches_registration_events() {
    let doc = template();
    for f in functions(&doc) {
        for (name, event) in f.events_of("EventBridgeRule") {
            let pattern = &event["Properties"]["Pattern"];
            assert!(
                !strings(&pattern["source"]).contains(&REGISTRATION_SOURCE)
                    && !strings(&pattern["detail-type"]).contains(&DETAIL_TYPE_REGISTRATION),
                "{}.{name}",
                f.id
            );
        }
    }
}

#[test]
fn registration_sends_confirmation_links_from_the_sender_identity_only() {
    let doc = template();
    let f = function(&doc, "registration");
    let id = f.id;
    for s in f.statements() {
        if !strings(&s["Action"]).iter().any(|a| a.starts_with("ses:")) {
            continue;
        }
        let mut actions = strings(&s["Action"]);
        actions.sort_unstable();
        assert_eq!(actions, ["ses:SendEmail", "ses:SendRawEmail"], "{id}");
        // Only the named identities — no configuration set: a confirmation link is no
        // invitation, and its events would reach ses-events with no campaign to count them in.
        assert_eq!(
            ref_of(&s["Resource"]),
            Some("SenderIdentityArns"),
            "{id}: {:?}",
            s["Resource"]
        );
        assert_from_addresses_only(id, s);
    }
    assert!(
        f.env()["SES_CONFIGURATION_SET"].is_null(),
        "{id}: confirmation links are sent without the invitations' configuration set"
    );
}

#[test]
fn only_delivery_sends_invitations_from_the_sender_identity_with_its_configuration_set() {
    let doc = template();
    let (config_set, _) = only_resource_of(&doc, "AWS::SES::ConfigurationSet");
    for f in functions(&doc) {
        let id = f.id;
        let sends = f.actions().iter().any(|a| a.starts_with("ses:"));
        assert_eq!(sends, SENDERS.contains(&f.binary), "{id}: ses:*");
    }
    let delivery = function(&doc, "delivery");
    let id = delivery.id;
    for s in delivery.statements() {
        if !strings(&s["Action"]).iter().any(|a| a.starts_with("ses:")) {
            continue;
        }
        // `!Split [",", !Join [",", [!Join [",", !Ref SenderIdentityArns], !Sub config set]]]`:
        // the named identities, then the configuration set.
        let split = intrinsic(&s["Resource"], "Split").expect("Resource is a !Split");
        let outer = intrinsic(&split[1], "Join").expect("of a !Join");
        let parts = &outer[1];
        let identities = intrinsic(&parts[0], "Join").expect("identities joined");
        assert_eq!(
            ref_of(&identities[1]),
            Some("SenderIdentityArns"),
            "{id}: {:?}",
            s["Resource"]
        );
        assert!(
            sub_of(&parts[1])
                .is_some_and(|c| c.ends_with(&format!(":configuration-set/${{{config_set}}}"))),
            "{id}: {:?}",
            s["Resource"]
        );
        assert_eq!(parts.as_sequence().map(Vec::len), Some(2), "{id}");
        assert_from_addresses_only(id, s);
    }
    let props = delivery.props();
    assert!(
        !props["ReservedConcurrentExecutions"].is_null(),
        "{id}: the send rate is per process, so concurrency must be capped"
    );
    assert_eq!(
        ref_of(&delivery.env()["SES_CONFIGURATION_SET"]),
        Some(config_set),
        "{id}: SES_CONFIGURATION_SET"
    );
}

#[test]
fn a_step_that_fails_every_retry_is_kept_in_the_dead_letter_queue() {
    let doc = template();
    // The queue the send rules dead-letter into (the recurring schedules have their own).
    let rule_queues: Vec<Option<String>> = STEPS
        .iter()
        .flat_map(|b| function(&doc, b).events_of("EventBridgeRule"))
        .map(|(_, e)| get_att_of(&e["Properties"]["DeadLetterConfig"]["Arn"]))
        .collect();
    let queue = rule_queues[0]
        .clone()
        .and_then(|q| q.strip_suffix(".Arn").map(str::to_owned))
        .expect("the send rules' dead-letter queue");
    assert!(
        rule_queues
            .iter()
            .all(|q| q.as_deref() == Some(&format!("{queue}.Arn"))),
        "one dead-letter queue for the send chain: {rule_queues:?}"
    );
    assert_eq!(
        doc["Resources"][queue.as_str()]["Type"].as_str(),
        Some("AWS::SQS::Queue")
    );
    for binary in STEPS {
        let f = function(&doc, binary);
        let id = f.id;
        let invoke = &f.props()["EventInvokeConfig"];
        assert!(
            invoke["MaximumRetryAttempts"].as_u64().is_some(),
            "{id}: MaximumRetryAttempts"
        );
        assert_eq!(
            get_att_of(&invoke["DestinationConfig"]["OnFailure"]["Destination"]),
            Some(format!("{queue}.Arn")),
            "{id}: an on-failure destination keeps what the retries could not do"
        );
    }
}

/// A statement that sends email may use only the From addresses the stack names.
fn assert_from_addresses_only(id: &str, statement: &Value) {
    assert_eq!(
        ref_of(&statement["Condition"]["StringLike"]["ses:FromAddress"]),
        Some("SenderFromAddresses"),
        "{id}: {:?}",
        statement["Condition"]
    );
}

#[test]
fn senders_have_no_default_so_a_deployment_names_its_identities() {
    let doc = template();
    for p in ["SenderIdentityArns", "SenderFromAddresses"] {
        let param = &doc["Parameters"][p];
        assert_eq!(param["Type"].as_str(), Some("CommaDelimitedList"), "{p}");
        assert!(param["Default"].is_null(), "{p} must have no default");
    }
    assert!(doc["Parameters"]["SenderIdentity"].is_null());
}
