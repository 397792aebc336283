//! The template's functions are the workspace's function crates — one per HTTP job of
//! `portal_http::Job`, plus `delivery` — and each gets the settings its `main.rs` reads and
//! no secret it does not.

use std::collections::BTreeSet;

use portal_http::Job;
use portal_lambda::config::REQUIRED_VARS;

use crate::yaml::*;

/// The functions that serve no HTTP job.
const EVENT_ONLY: &[&str] = &["delivery"];

const JWT: &[&str] = &["JWT_JWKS", "JWT_ISSUER", "JWT_AUDIENCE"];
/// Where the recurring settings' schedules go and what they invoke.
const SCHEDULES: &[&str] = &[
    "SCHEDULE_GROUP",
    "SCHEDULE_TARGET_ARN",
    "SCHEDULER_ROLE_ARN",
    "SCHEDULE_DLQ_ARN",
];
/// The console's sign-in settings (`portal_lambda::Env::console`).
pub const CONSOLE: &[&str] = &[
    "CONSOLE_AUTHORIZE_URL",
    "CONSOLE_TOKEN_URL",
    "CONSOLE_CLIENT_ID",
    "CONSOLE_SCOPE",
    "CONSOLE_SIGN_OUT_URL",
];
/// What only the send chain (and the unsubscribe check) may know. On AWS none is ever in a
/// function's environment: a function gets `{secret}_PARAMETER`, the name of the SSM
/// parameter holding it, and may read only the parameters it is given.
const SECRETS: &[&str] = &["TOKEN_SECRET", "UNSUBSCRIBE_SECRET", "RAW_EVENTS_SECRET"];

/// The variable a function is given for `var`: a secret's parameter name, or `var` itself.
fn given(var: &str) -> String {
    if SECRETS.contains(&var) {
        format!("{var}_PARAMETER")
    } else {
        var.to_owned()
    }
}

/// The variables each function reads at cold start besides the Globals' `TABLE_NAME`
/// (see each `functions/<name>/src/main.rs`).
fn needs(binary: &str) -> Vec<&'static str> {
    let mut vars: Vec<&'static str> = match binary {
        "load-counts" => [JWT, &["PUBLIC_URL"]].concat(),
        "sync" => JWT.to_vec(),
        "send" => [
            JWT,
            REQUIRED_VARS,
            &["EVENT_BUS_NAME", "SWEEP_IDLE_MINUTES"],
        ]
        .concat(),
        "delivery" => [
            REQUIRED_VARS,
            &["UNSUBSCRIBE_SECRET", "SES_CONFIGURATION_SET"],
        ]
        .concat(),
        "ses-events" => vec![
            "UNSUBSCRIBE_SECRET",
            "SNS_TOPIC_ARNS",
            "RAW_EVENTS_SECRET",
            "SNS_CERT_REGIONS",
            "SNS_SIGNATURE_V2_ONLY",
            "SNS_MAX_MESSAGE_AGE_SECONDS",
        ],
        "recurring" => [JWT, REQUIRED_VARS, &["EVENT_BUS_NAME"], SCHEDULES].concat(),
        "registration" => [
            JWT,
            REQUIRED_VARS,
            &[
                "EVENT_BUS_NAME",
                "USER_POOL_ID",
                "USER_POOL_CLIENT_ID",
                "PORTAL_SIGN_IN_URL",
            ],
        ]
        .concat(),
        "console" => CONSOLE.to_vec(),
        other => panic!("no settings known for `{other}`"),
    };
    vars.sort_unstable();
    vars
}

#[test]
fn the_functions_are_the_jobs_functions_and_delivery() {
    let doc = template();
    let got: BTreeSet<&str> = functions(&doc).iter().map(|f| f.binary).collect();
    let want: BTreeSet<&str> = Job::ALL
        .iter()
        .map(|j| j.function())
        .chain(EVENT_ONLY.iter().copied())
        .collect();
    assert_eq!(got, want);
    assert_eq!(functions(&doc).len(), want.len(), "one function per binary");
}

#[test]
fn every_function_builds_a_binary_of_a_workspace_crate() {
    let doc = template();
    let workspace = read("Cargo.toml");
    for f in functions(&doc) {
        let (id, binary) = (f.id, f.binary);
        let code_uri = f.props()["CodeUri"].as_str().unwrap_or("");
        assert!(
            root().join(code_uri).join("Cargo.toml").is_file(),
            "{id}: CodeUri {code_uri:?} is not the workspace"
        );
        let manifest = format!("functions/{binary}/Cargo.toml");
        let text = std::fs::read_to_string(root().join(&manifest))
            .unwrap_or_else(|_| panic!("{id}: no crate at {manifest}"));
        assert!(
            text.contains("[[bin]]") && text.contains(&format!("name = \"{binary}\"")),
            "{id}: {manifest} declares no `{binary}` binary"
        );
        assert!(
            workspace.contains(&format!("\"functions/{binary}\"")),
            "{id}: functions/{binary} is not a workspace member"
        );
    }
}

#[test]
fn every_function_gets_the_settings_it_reads_and_no_secret_it_does_not() {
    let doc = template();
    let globals = &doc["Globals"]["Function"]["Environment"]["Variables"];
    let (table, _) = only_resource_of(&doc, "AWS::DynamoDB::Table");
    assert_eq!(ref_of(&globals["TABLE_NAME"]), Some(table), "Globals");

    for f in functions(&doc) {
        let id = f.id;
        let set: BTreeSet<&str> = f
            .env()
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.as_str())
            .collect();
        let needs = needs(f.binary);
        for var in &needs {
            assert!(
                set.contains(given(var).as_str()),
                "{id} lacks {}",
                given(var)
            );
        }
        for var in SECRETS {
            assert!(!set.contains(var), "{id}: {var} in plain configuration");
        }
        for var in SECRETS
            .iter()
            .chain(JWT)
            .chain(SCHEDULES)
            .chain(CONSOLE)
            .chain(&[
                "EVENT_BUS_NAME",
                "USER_POOL_ID",
                "USER_POOL_CLIENT_ID",
                "PORTAL_SIGN_IN_URL",
            ])
        {
            assert!(
                !set.contains(given(var).as_str()) || needs.contains(var),
                "{id} is given {}, which it does not read",
                given(var)
            );
        }
        // The JWKS comes from a NoEcho parameter, never from the template's text.
        if set.contains("JWT_JWKS") {
            let parameter = ref_of(&f.env()["JWT_JWKS"])
                .unwrap_or_else(|| panic!("{id}: JWT_JWKS is not a !Ref to a parameter"));
            assert_eq!(
                doc["Parameters"][parameter]["NoEcho"].as_bool(),
                Some(true),
                "{id}: JWT_JWKS from {parameter}"
            );
        }
        // Each secret's parameter name comes from a stack parameter, and the function may
        // read exactly those parameters (ssm:GetParameters, nothing else of SSM).
        let mut expected: BTreeSet<String> = BTreeSet::new();
        for var in SECRETS.iter().filter(|v| needs.contains(v)) {
            let name = given(var);
            let parameter = ref_of(&f.env()[name.as_str()])
                .unwrap_or_else(|| panic!("{id}: {name} is not a !Ref to a parameter"));
            expected.insert(parameter.to_owned());
        }
        let mut readable: BTreeSet<String> = BTreeSet::new();
        for st in f.statements() {
            let actions = strings(&st["Action"]);
            if !actions.iter().any(|a| a.starts_with("ssm:")) {
                continue;
            }
            assert_eq!(actions, ["ssm:GetParameters"], "{id}");
            for r in st["Resource"].as_sequence().expect("a list of parameters") {
                // `!If [RawEventsOn, <arn>, !Ref AWS::NoValue]` for an optional secret.
                let arn = intrinsic(r, "If").map(|i| &i[1]).unwrap_or(r);
                let sub = sub_of(arn).unwrap_or_else(|| panic!("{id}: {r:?}"));
                let parameter = sub
                    .rsplit_once(":parameter${")
                    .and_then(|(_, p)| p.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("{id}: {sub} is not a parameter ARN"));
                readable.insert(parameter.to_owned());
            }
        }
        assert_eq!(readable, expected, "{id}: the SSM parameters it may read");
    }
}

#[test]
fn links_in_emails_are_https_on_aws() {
    let doc = template();
    let mut users = 0;
    for f in functions(&doc) {
        let Some(url) = f.env().get("PUBLIC_URL") else {
            continue;
        };
        let parameter = ref_of(url).unwrap_or_else(|| panic!("{}: PUBLIC_URL", f.id));
        let pattern = doc["Parameters"][parameter]["AllowedPattern"]
            .as_str()
            .unwrap_or_default();
        assert!(
            pattern.starts_with("^https://"),
            "{}: {parameter} must allow https:// only, its pattern is {pattern:?}",
            f.id
        );
        users += 1;
    }
    assert!(users > 0, "no function reads PUBLIC_URL");
}
