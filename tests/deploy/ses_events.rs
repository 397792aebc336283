//! `template.yaml` delivers every SES email event of the invitations' configuration set to
//! the ses-events function, by exactly one route chosen by `SesEventRoute`:
//!
//! - `sns`: the configuration set publishes to an SNS topic, subscribed over HTTPS to the
//!   public webhook `POST /v1/ses-events` (authenticated by the SNS signature, not the JWT);
//! - `eventbridge`: the configuration set puts to the default bus, where a rule matching
//!   `source: aws.ses` and SES's detail-types invokes the function.
//!
//! and the function may touch the table and nothing else (it sends no email and publishes
//! no event).

use std::collections::BTreeSet;

use portal_aws::ses_events::EVENTBRIDGE_DETAIL_TYPES;

use crate::yaml::*;

/// The ten SES event types (CloudFormation's spelling of `MatchingEventTypes`).
const EVENT_TYPES: [&str; 10] = [
    "send",
    "reject",
    "bounce",
    "complaint",
    "delivery",
    "open",
    "click",
    "renderingFailure",
    "deliveryDelay",
    "subscription",
];

const WEBHOOK_PATH: &str = "/v1/ses-events";
const ROUTE_PARAMETER: &str = "SesEventRoute";

/// Whether `resource` exists when the stack is deployed with `SesEventRoute = route`. Only
/// the conditions this template uses are understood (`!Equals [!Ref Param, value]`).
fn exists_with(doc: &Value, resource: &Value, route: &str) -> bool {
    let Some(name) = resource["Condition"].as_str() else {
        return true;
    };
    let condition = &doc["Conditions"][name];
    let operands = intrinsic(condition, "Equals")
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("condition {name} is not an !Equals"));
    let resolve = |v: &Value| match ref_of(v) {
        Some(ROUTE_PARAMETER) => route.to_owned(),
        Some(other) => panic!("condition {name} depends on {other}"),
        None => v.as_str().expect("a literal").to_owned(),
    };
    assert_eq!(operands.len(), 2, "{name}");
    resolve(&operands[0]) == resolve(&operands[1])
}

fn routes(doc: &Value) -> Vec<String> {
    let parameter = &doc["Parameters"][ROUTE_PARAMETER];
    assert_eq!(
        parameter["Default"].as_str(),
        Some("sns"),
        "SNS is the default route"
    );
    let routes: Vec<String> = strings(&parameter["AllowedValues"])
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(routes, ["sns", "eventbridge"]);
    routes
}

#[test]
fn the_webhook_is_a_public_post_route_of_the_api_to_the_ses_events_function() {
    let doc = template();
    let (api, _) = only_resource_of(&doc, "AWS::Serverless::HttpApi");
    let ses_events = function(&doc, "ses-events");
    let id = ses_events.id;
    let webhooks: Vec<&Value> = ses_events
        .events_of("HttpApi")
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e["Properties"]["Path"].as_str() == Some(WEBHOOK_PATH))
        .collect();
    assert_eq!(webhooks.len(), 1, "{id}: one {WEBHOOK_PATH} route");
    let props = &webhooks[0]["Properties"];
    assert_eq!(props["Method"].as_str(), Some("POST"));
    assert_eq!(ref_of(&props["ApiId"]), Some(api));
    // SNS presents no JWT: the route must opt out of the API's default authorizer.
    assert_eq!(
        props["Auth"]["Authorizer"].as_str(),
        Some("NONE"),
        "{id}: SNS cannot call a route behind the manager JWT"
    );

    // No other function claims the path.
    for other in functions(&doc).into_iter().filter(|f| f.id != id) {
        for (_, event) in other.events() {
            assert_ne!(
                event["Properties"]["Path"].as_str(),
                Some(WEBHOOK_PATH),
                "{}",
                other.id
            );
        }
    }
}

#[test]
fn the_function_may_use_the_table_and_nothing_else() {
    let doc = template();
    let (table, _) = only_resource_of(&doc, "AWS::DynamoDB::Table");
    let ses_events = function(&doc, "ses-events");
    let (id, props) = (ses_events.id, ses_events.props());
    let mut actions = Vec::new();
    for policy in props["Policies"].as_sequence().expect("inline policies") {
        assert!(
            policy.get("Statement").is_some(),
            "{id}: inline statements only, no managed policy or SAM policy template"
        );
        for statement in policy["Statement"].as_sequence().into_iter().flatten() {
            assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{id}");
            // Its secrets' parameters (checked with every function's in functions.rs).
            if strings(&statement["Action"]) == ["ssm:GetParameters"] {
                continue;
            }
            let resources: Vec<Option<String>> = match &statement["Resource"] {
                Value::Sequence(items) => items.iter().map(get_att_of).collect(),
                one => vec![get_att_of(one)],
            };
            assert_eq!(
                resources,
                [Some(format!("{table}.Arn"))],
                "{id}: the table only"
            );
            actions.extend(strings(&statement["Action"]).into_iter().map(str::to_owned));
        }
    }
    assert!(!actions.is_empty(), "{id}: no permissions at all");
    for action in &actions {
        assert!(
            action.starts_with("dynamodb:") && !action.ends_with('*'),
            "{id}: {action} (no SES, no EventBridge, no wildcards)"
        );
    }

    // Raw (unsigned) SES JSON is refused unless the operator names a secret's parameter.
    let env = &props["Environment"]["Variables"];
    let secret = ref_of(&env["RAW_EVENTS_SECRET_PARAMETER"])
        .expect("RAW_EVENTS_SECRET_PARAMETER from a parameter");
    let parameter = &doc["Parameters"][secret];
    assert_eq!(
        parameter["Default"].as_str(),
        Some(""),
        "{secret}: off by default"
    );
    assert!(
        !props["ReservedConcurrentExecutions"].is_null(),
        "{id}: bursts of events must not take the account's concurrency"
    );
}

#[test]
fn ses_publishes_to_a_topic_whose_https_subscription_posts_to_the_webhook() {
    let doc = template();
    let (api, _) = only_resource_of(&doc, "AWS::Serverless::HttpApi");
    let (topic, _) = only_resource_of(&doc, "AWS::SNS::Topic");
    let (config_set, _) = only_resource_of(&doc, "AWS::SES::ConfigurationSet");
    let ses_events = function(&doc, "ses-events");

    let (sub_id, subscription) = only_resource_of(&doc, "AWS::SNS::Subscription");
    let props = &subscription["Properties"];
    assert_eq!(ref_of(&props["TopicArn"]), Some(topic), "{sub_id}");
    assert_eq!(props["Protocol"].as_str(), Some("https"), "{sub_id}");
    assert_eq!(
        sub_of(&props["Endpoint"]),
        Some(
            format!(
                "https://${{{api}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}{WEBHOOK_PATH}"
            )
            .as_str()
        ),
        "{sub_id}: the webhook of the API's default stage"
    );
    assert_ne!(
        props["RawMessageDelivery"].as_bool(),
        Some(true),
        "{sub_id}: raw delivery drops the signed envelope"
    );

    // The function accepts that topic's messages.
    assert_eq!(
        ref_of(&ses_events.env()["SNS_TOPIC_ARNS"]),
        Some(topic),
        "{}",
        ses_events.id
    );

    // Only SES, for this account's configuration set, may publish to it.
    let (policy_id, policy) = only_resource_of(&doc, "AWS::SNS::TopicPolicy");
    let topics: Vec<_> = policy["Properties"]["Topics"]
        .as_sequence()
        .expect("Topics")
        .iter()
        .map(ref_of)
        .collect();
    assert_eq!(topics, [Some(topic)], "{policy_id}");
    let statements = policy["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .expect("Statement");
    assert_eq!(statements.len(), 1, "{policy_id}");
    let s = &statements[0];
    assert_eq!(
        strings(&s["Principal"]["Service"]),
        ["ses.amazonaws.com"],
        "{policy_id}"
    );
    assert_eq!(
        strings(&s["Action"])
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .collect::<Vec<_>>(),
        ["sns:publish"],
        "{policy_id}"
    );
    assert_eq!(
        ref_of(&s["Condition"]["StringEquals"]["aws:SourceAccount"]),
        Some("AWS::AccountId"),
        "{policy_id}: another account's SES must not publish"
    );
    let source = sub_of(&s["Condition"]["ArnLike"]["aws:SourceArn"]).unwrap_or("");
    assert!(
        source.ends_with(&format!(":configuration-set/${{{config_set}}}")),
        "{policy_id}: only the invitations' configuration set: {source:?}"
    );
}

#[test]
fn the_configuration_set_reports_every_event_type_to_the_chosen_route() {
    let doc = template();
    let (config_set, _) = only_resource_of(&doc, "AWS::SES::ConfigurationSet");
    let (topic, _) = only_resource_of(&doc, "AWS::SNS::Topic");
    let delivery = function(&doc, "delivery");
    assert_eq!(
        ref_of(&delivery.env()["SES_CONFIGURATION_SET"]),
        Some(config_set),
        "{} sends with the configuration set whose events are reported",
        delivery.id
    );

    let destinations = resources_of(&doc, "AWS::SES::ConfigurationSetEventDestination");
    let want: BTreeSet<&str> = EVENT_TYPES.into_iter().collect();
    for (id, d) in &destinations {
        let props = &d["Properties"];
        assert_eq!(
            ref_of(&props["ConfigurationSetName"]),
            Some(config_set),
            "{id}"
        );
        let dest = &props["EventDestination"];
        assert_eq!(dest["Enabled"].as_bool(), Some(true), "{id}: enabled");
        let types: Vec<&str> = strings(&dest["MatchingEventTypes"]);
        assert_eq!(types.len(), want.len(), "{id}: each type once");
        assert_eq!(
            types.into_iter().collect::<BTreeSet<_>>(),
            want,
            "{id}: every event type"
        );
        let sns = ref_of(&dest["SnsDestination"]["TopicARN"]);
        let bus = sub_of(&dest["EventBridgeDestination"]["EventBusArn"]);
        match (sns, bus) {
            (Some(t), None) => assert_eq!(t, topic, "{id}"),
            (None, Some(arn)) => assert!(
                arn.starts_with("arn:${AWS::Partition}:events:")
                    && arn.ends_with(":event-bus/default"),
                "{id}: SES puts only to the default bus: {arn:?}"
            ),
            other => panic!("{id}: one SNS or EventBridge destination, not {other:?}"),
        }
    }

    for route in routes(&doc) {
        let active: Vec<&str> = destinations
            .iter()
            .filter(|(_, d)| exists_with(&doc, d, &route))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(active.len(), 1, "{route}: one destination, got {active:?}");
        let dest = &doc["Resources"][active[0]]["Properties"]["EventDestination"];
        let kind = if route == "sns" {
            "SnsDestination"
        } else {
            "EventBridgeDestination"
        };
        assert!(!dest[kind].is_null(), "{route}: {} is no {kind}", active[0]);
    }
}

#[test]
fn a_rule_on_the_default_bus_sends_ses_events_to_the_function() {
    let doc = template();
    let function_id = function(&doc, "ses-events").id;
    let (config_set, _) = only_resource_of(&doc, "AWS::SES::ConfigurationSet");
    let rules: Vec<_> = resources_of(&doc, "AWS::Events::Rule")
        .into_iter()
        .filter(|(_, r)| strings(&r["Properties"]["EventPattern"]["source"]) == ["aws.ses"])
        .collect();
    assert_eq!(rules.len(), 1, "one rule for SES events");
    let (rule_id, rule) = rules[0];
    let props = &rule["Properties"];
    let bus = props["EventBusName"].as_str().unwrap_or("default");
    assert_eq!(
        bus, "default",
        "{rule_id}: SES's EventBridge destination puts to the default bus"
    );

    let pattern = &props["EventPattern"];
    let detail_types: BTreeSet<&str> = strings(&pattern["detail-type"]).into_iter().collect();
    let want: BTreeSet<&str> = EVENTBRIDGE_DETAIL_TYPES.iter().map(|(d, _)| *d).collect();
    assert_eq!(want.len(), 10);
    assert_eq!(
        detail_types, want,
        "{rule_id}: the detail-types the function parses"
    );
    let tagged: Vec<_> = pattern["detail"]["mail"]["tags"]["ses:configuration-set"]
        .as_sequence()
        .map(|v| v.iter().map(ref_of).collect())
        .unwrap_or_default();
    assert_eq!(
        tagged,
        [Some(config_set)],
        "{rule_id}: only the invitations' configuration set"
    );

    let targets = props["Targets"].as_sequence().expect("Targets");
    assert_eq!(targets.len(), 1, "{rule_id}");
    assert_eq!(
        get_att_of(&targets[0]["Arn"]),
        Some(format!("{function_id}.Arn")),
        "{rule_id}"
    );
    assert!(
        !targets[0]["DeadLetterConfig"]["Arn"].is_null(),
        "{rule_id}: events EventBridge cannot deliver are kept"
    );

    // EventBridge may invoke the function, from that rule only.
    let permissions: Vec<_> = resources_of(&doc, "AWS::Lambda::Permission")
        .into_iter()
        .filter(|(_, p)| {
            get_att_of(&p["Properties"]["SourceArn"]) == Some(format!("{rule_id}.Arn"))
        })
        .collect();
    assert_eq!(permissions.len(), 1, "{rule_id}: an invoke permission");
    let (perm_id, perm) = permissions[0];
    let p = &perm["Properties"];
    assert_eq!(
        p["Principal"].as_str(),
        Some("events.amazonaws.com"),
        "{perm_id}"
    );
    assert_eq!(
        p["Action"].as_str(),
        Some("lambda:InvokeFunction"),
        "{perm_id}"
    );
    assert_eq!(
        get_att_of(&p["FunctionName"]),
        Some(format!("{function_id}.Arn")),
        "{perm_id}"
    );
    assert_eq!(
        perm["Condition"], rule["Condition"],
        "{perm_id} lives with the rule"
    );
}

#[test]
fn the_route_parameter_sets_up_exactly_one_route() {
    let doc = template();
    let (_, subscription) = only_resource_of(&doc, "AWS::SNS::Subscription");
    let rules: Vec<_> = resources_of(&doc, "AWS::Events::Rule")
        .into_iter()
        .filter(|(_, r)| strings(&r["Properties"]["EventPattern"]["source"]) == ["aws.ses"])
        .collect();
    let (_, rule) = rules.first().expect("the SES events rule");
    for route in routes(&doc) {
        let sns = exists_with(&doc, subscription, &route);
        let eventbridge = exists_with(&doc, rule, &route);
        assert_eq!(sns, route == "sns", "{route}: the SNS subscription");
        assert_eq!(
            eventbridge,
            route == "eventbridge",
            "{route}: the EventBridge rule"
        );
    }

    // The webhook and the function are there whatever the route (the recount, and a switch
    // of route, need them).
    let ses_events = function(&doc, "ses-events");
    assert!(
        ses_events.resource["Condition"].is_null(),
        "{}",
        ses_events.id
    );
}

#[test]
fn the_topic_signs_with_version_2_and_the_webhook_takes_only_that_and_its_region() {
    let doc = template();
    let (topic, t) = only_resource_of(&doc, "AWS::SNS::Topic");
    assert_eq!(
        t["Properties"]["SignatureVersion"].as_str(),
        Some("2"),
        "{topic}: SHA256withRSA"
    );
    let f = function(&doc, "ses-events");
    let env = f.env();
    assert_eq!(
        env["SNS_SIGNATURE_V2_ONLY"].as_str(),
        Some("true"),
        "{}: version 1 refused",
        f.id
    );
    assert_eq!(
        ref_of(&env["SNS_CERT_REGIONS"]),
        Some("AWS::Region"),
        "{}: certificates from the stack's own region only",
        f.id
    );
}

/// The longest SNS may go on retrying one delivery under `policy` (a `DeliveryPolicy`), in
/// seconds: every retry waits at most `maxDelayTarget` (the backoff phase climbs to it),
/// except the `numMinDelayRetries` at `minDelayTarget` and the immediate ones; and never
/// more than SNS's hard limit of 3,600 s for HTTP/S. No policy: SNS's default for HTTP/S,
/// 3 retries 20 s apart.
fn longest_retry_secs(policy: &Value) -> i64 {
    const SNS_HARD_LIMIT: i64 = 3600;
    let p = &policy["healthyRetryPolicy"];
    if p.is_null() {
        return 60;
    }
    let n = |k: &str| p[k].as_i64().unwrap_or(0);
    let retries = n("numRetries");
    let immediate = n("numNoDelayRetries");
    let at_min = n("numMinDelayRetries");
    let rest = (retries - immediate - at_min).max(0);
    let bound = at_min * n("minDelayTarget") + rest * n("maxDelayTarget");
    bound.min(SNS_HARD_LIMIT)
}

#[test]
fn a_message_is_believed_while_sns_may_still_retry_it_and_refused_as_a_replay_after() {
    let doc = template();
    let (sub_id, subscription) = only_resource_of(&doc, "AWS::SNS::Subscription");
    let retry = longest_retry_secs(&subscription["Properties"]["DeliveryPolicy"]);
    let f = function(&doc, "ses-events");
    let configured: i64 = f.env()["SNS_MAX_MESSAGE_AGE_SECONDS"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{}: SNS_MAX_MESSAGE_AGE_SECONDS", f.id));
    // Ten minutes or more of margin for publishing delays and clock skew, and not
    // much more: the point is that a captured message stops working.
    assert!(
        configured >= retry + 600,
        "{}: {configured} s does not cover {sub_id}'s retries ({retry} s) plus a margin",
        f.id
    );
    assert!(
        configured <= retry + 3600,
        "{}: {configured} s keeps replays alive long after {sub_id}'s retries ({retry} s)",
        f.id
    );
    // The code's default is the template's value, so a function left without it agrees.
    assert_eq!(
        portal_aws::sns::SnsPolicy::DEFAULT_MAX_AGE.whole_seconds(),
        configured
    );
}
