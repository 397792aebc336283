//! `template.yaml` agrees with the workspace and with the bus: every cargo-lambda function
//! builds a binary of a workspace crate, the two send rules route each detail-type to the
//! function that handles it, and each send function holds only the permissions its step
//! needs.
//!
//! CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`) parse as tagged YAML values; the
//! helpers below read `!Ref X` and `{Ref: X}` alike and ignore other tags.

use std::path::{Path, PathBuf};

use portal_core::ports::{DETAIL_TYPE_DELIVER, DETAIL_TYPE_FAN_OUT, EVENT_SOURCE};
use portal_core::usecases::send::settings::REQUIRED_VARS;
use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml parses")
}

/// `X` of `!Ref X` or `{Ref: X}`.
fn ref_of(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        Value::Mapping(_) => v.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Sequence(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// `(logical id, binary, resource)` of every function built by cargo-lambda.
fn functions(doc: &Value) -> Vec<(String, String, Value)> {
    let resources = doc["Resources"].as_mapping().expect("Resources");
    resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .filter(|(_, r)| r["Metadata"]["BuildMethod"].as_str() == Some("rust-cargolambda"))
        .map(|(id, r)| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id:?} names no Binary"));
            (
                id.as_str().unwrap().to_owned(),
                binary.to_owned(),
                r.clone(),
            )
        })
        .collect()
}

fn function_by_binary(doc: &Value, binary: &str) -> (String, Value) {
    functions(doc)
        .into_iter()
        .find(|(_, b, _)| b == binary)
        .map(|(id, _, r)| (id, r))
        .unwrap_or_else(|| panic!("no function builds the `{binary}` binary"))
}

/// Every IAM action of a function's inline policies.
fn actions(function: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for policy in function["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        for statement in policy["Statement"].as_sequence().into_iter().flatten() {
            out.extend(strings(&statement["Action"]).into_iter().map(str::to_owned));
        }
    }
    out
}

#[test]
fn every_function_builds_a_binary_of_a_workspace_crate() {
    let doc = template();
    let workspace = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let found = functions(&doc);
    assert!(
        found.len() >= 3,
        "load-counts, fan-out and delivery at least"
    );
    for (id, binary, function) in found {
        let code_uri = function["Properties"]["CodeUri"].as_str().unwrap_or("");
        assert!(
            root().join(code_uri).join("Cargo.toml").is_file(),
            "{id}: CodeUri {code_uri:?} is not the workspace"
        );
        let manifest = root().join("functions").join(&binary).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|_| panic!("{id}: no crate at {}", manifest.display()));
        assert!(
            text.contains("[[bin]]") && text.contains(&format!("name = \"{binary}\"")),
            "{id}: {} declares no `{binary}` binary",
            manifest.display()
        );
        assert!(
            workspace.contains(&format!("\"functions/{binary}\"")),
            "{id}: functions/{binary} is not a workspace member"
        );
    }
}

#[test]
fn each_send_detail_type_is_routed_from_the_send_bus_to_the_function_that_handles_it() {
    let doc = template();
    let bus = doc["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Type"].as_str() == Some("AWS::Events::EventBus"))
        .map(|(id, _)| id.as_str().unwrap().to_owned())
        .expect("an AWS::Events::EventBus");

    // (detail-type, function) of every EventBridge rule in the template.
    let mut routes = Vec::new();
    for (id, _, function) in functions(&doc) {
        for (_, event) in function["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            if event["Type"].as_str() != Some("EventBridgeRule") {
                continue;
            }
            let props = &event["Properties"];
            assert_eq!(ref_of(&props["EventBusName"]), Some(bus.as_str()), "{id}");
            assert_eq!(strings(&props["Pattern"]["source"]), [EVENT_SOURCE], "{id}");
            for detail_type in strings(&props["Pattern"]["detail-type"]) {
                routes.push((detail_type.to_owned(), id.clone()));
            }
        }
    }
    routes.sort();
    let (fan_out, _) = function_by_binary(&doc, "fan-out");
    let (delivery, _) = function_by_binary(&doc, "delivery");
    let mut want = vec![
        (DETAIL_TYPE_FAN_OUT.to_owned(), fan_out),
        (DETAIL_TYPE_DELIVER.to_owned(), delivery),
    ];
    want.sort();
    assert_eq!(routes, want);

    // The publishers put on that same bus.
    for binary in ["load-counts", "fan-out"] {
        let (id, f) = function_by_binary(&doc, binary);
        let env = &f["Properties"]["Environment"]["Variables"];
        assert_eq!(
            ref_of(&env["EVENT_BUS_NAME"]),
            Some(bus.as_str()),
            "{id}: EVENT_BUS_NAME"
        );
    }
}

#[test]
fn each_send_function_has_its_settings_and_only_the_permissions_of_its_step() {
    let doc = template();
    for binary in ["load-counts", "fan-out", "delivery"] {
        let (id, f) = function_by_binary(&doc, binary);
        let env = &f["Properties"]["Environment"]["Variables"];
        for var in REQUIRED_VARS {
            assert!(!env[*var].is_null(), "{id} lacks {var}");
        }
        let has = |a: &str| actions(&f).iter().any(|x| x == a);
        let publishes = has("events:PutEvents");
        let sends = has("ses:SendEmail") || has("ses:SendRawEmail");
        assert_eq!(publishes, binary != "delivery", "{id}: events:PutEvents");
        assert_eq!(sends, binary == "delivery", "{id}: ses:SendEmail");
        assert!(
            !actions(&f).iter().any(|a| a.ends_with(":*") || a == "*"),
            "{id}: wildcard action"
        );
    }
    let (id, delivery) = function_by_binary(&doc, "delivery");
    let props = &delivery["Properties"];
    assert!(
        !props["ReservedConcurrentExecutions"].is_null(),
        "{id}: the send rate is per process, so concurrency must be capped"
    );
    assert!(
        !props["Environment"]["Variables"]["SES_CONFIGURATION_SET"].is_null(),
        "{id}: SES_CONFIGURATION_SET"
    );
    for binary in ["fan-out", "delivery"] {
        let (id, f) = function_by_binary(&doc, binary);
        let invoke = &f["Properties"]["EventInvokeConfig"];
        assert!(
            invoke["MaximumRetryAttempts"].as_u64().is_some(),
            "{id}: MaximumRetryAttempts"
        );
        assert!(
            !invoke["DestinationConfig"]["OnFailure"]["Destination"].is_null(),
            "{id}: an on-failure destination keeps what the retries could not do"
        );
    }
}
