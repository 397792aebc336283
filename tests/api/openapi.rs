//! `openapi.yaml` and the router agree: the same routes, each one served, every `$ref`
//! resolvable, and the documented response shapes equal to what the API returns.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use portal_core::domain::Counts;
use portal_http::ROUTES;
use serde_json::{json, Value};

use crate::helpers::*;

const SPEC: &str = include_str!("../../openapi.yaml");
const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

fn spec() -> Value {
    let yaml: serde_yaml::Value = serde_yaml::from_str(SPEC).expect("openapi.yaml parses");
    serde_json::to_value(yaml).expect("openapi.yaml is JSON-compatible")
}

fn spec_routes(spec: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("path item") {
            if METHODS.contains(&key.as_str()) {
                routes.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn the_spec_is_openapi_3_1_with_bearer_security() {
    let s = spec();
    assert!(s["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        s["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(s["security"], json!([{"bearer": []}]));
}

#[test]
fn the_spec_documents_exactly_the_routes_the_router_serves() {
    let from_spec = spec_routes(&spec());
    let from_router: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(_, m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = from_router.difference(&from_spec).collect();
    let extra: Vec<_> = from_spec.difference(&from_router).collect();
    assert!(
        missing.is_empty(),
        "served but not in openapi.yaml: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in openapi.yaml but not served: {extra:?}"
    );
}

#[tokio::test]
async fn every_route_in_the_spec_is_served_by_the_router() {
    let app = app();
    let s = spec();
    for (method, path) in spec_routes(&s) {
        let uri = path
            .replace("{division_id}", "some-division")
            .replace("{account_id}", "some-account")
            .replace("{template_id}", "some-template")
            .replace("{asset}", &portal_http::console::JS.name);
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = app.send(request(m, &uri, None, None, Body::empty())).await;
        // No token: a served route answers 401 before anything else; a public one (its own
        // signed token in the query, `security: []`) answers 400 for the missing token; the
        // console's page and assets need nothing (this app has no console settings: the page
        // is a 503, its files are not there, a 404 from the asset route itself).
        let op = &s["paths"][&path][method.to_lowercase()];
        let expected = if is_console(op) {
            if path == "/console" {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                assert!(r.text().contains("no such asset"), "{path}: {}", r.text());
                StatusCode::NOT_FOUND
            }
        } else if is_public(op) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(r.status, expected, "{method} {path}");
    }
}

#[test]
fn every_operation_declares_its_path_parameters_and_problem_responses() {
    let s = spec();
    for (path, item) in s["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let responses = op["responses"].as_object().expect("responses");
            let codes: &[&str] = if is_console(op) {
                // Static pages: no input to refuse, nothing that fails at run time.
                &[]
            } else if is_public(op) {
                &["400", "500"]
            } else {
                &["401", "403", "500"]
            };
            for &code in codes {
                assert!(responses.contains_key(code), "{method} {path} lacks {code}");
            }
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| resolve(&s, p))
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let in_path: BTreeSet<String> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_owned)
                .collect();
            assert_eq!(declared, in_path, "{method} {path}");
        }
    }
}

/// An operation without bearer auth (`security: []`).
fn is_public(op: &Value) -> bool {
    op["security"] == json!([])
}

/// The console's page and assets (tag `console`): public, and no input to check.
fn is_console(op: &Value) -> bool {
    is_public(op) && op["tags"] == json!(["console"])
}

fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            spec.pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"))
        }
        None => v,
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().unwrap().to_owned());
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

#[test]
fn every_ref_in_the_spec_resolves() {
    let s = spec();
    let mut refs = Vec::new();
    collect_refs(&s, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').expect("local $ref");
        assert!(s.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

fn required(spec: &Value, schema: &str) -> BTreeSet<String> {
    spec["components"]["schemas"][schema]["required"]
        .as_array()
        .unwrap_or_else(|| panic!("{schema} has no required list"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn documented_response_shapes_match_what_the_api_returns() {
    let s = spec();
    assert_eq!(
        required(&s, "Counts"),
        keys(&serde_json::to_value(Counts::default()).unwrap())
    );
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    let divisions = app.get("/v1/divisions", &t).await.ok();
    assert_eq!(required(&s, "Division"), keys(&divisions["items"][0]));
    let values = app.get("/v1/divisions/filter-values", &t).await.ok();
    assert_eq!(required(&s, "FilterValueReport"), keys(&values));
    assert_eq!(required(&s, "FilterFieldValues"), keys(&values["all"]));
    let mut division = required(&s, "FilterFieldValues");
    division.insert("division_id".into());
    assert_eq!(division, keys(&values["divisions"][0]));
    let report = app.sync(&t, &accounts("d1", 3)).await;
    assert_eq!(required(&s, "SyncReport"), keys(&report));
    let values = app.get("/v1/divisions/filter-values", &t).await.ok();
    assert_eq!(
        required(&s, "ValueCount"),
        keys(&values["all"]["account_class"][0])
    );
    let page = app
        .post("/v1/invitations/recipients", &t, &json!({}))
        .await
        .ok();
    assert_eq!(required(&s, "RecipientPage"), keys(&page));
    assert_eq!(required(&s, "Recipient"), keys(&page["items"][0]));
    let problem = app.get("/v1/divisions", "nope").await;
    let p = problem.json();
    for k in required(&s, "Problem") {
        assert!(p.get(&k).is_some(), "problem lacks {k}: {p}");
    }
}

#[test]
fn documented_request_fields_are_the_ones_the_api_accepts() {
    let s = spec();
    let props = |schema: &str| -> BTreeSet<String> {
        keys(&s["components"]["schemas"][schema]["properties"])
    };
    let account = account("d1", 0);
    let mut account_keys = keys(&account);
    // Optional fields the helper's accounts leave out.
    account_keys.insert("last_login".into());
    account_keys.insert("portal_key".into());
    assert_eq!(props("AccountInput"), account_keys);
    assert_eq!(props("ContactInput"), keys(&account["contacts"][0]));
    assert_eq!(
        props("Filters"),
        keys(&serde_json::to_value(portal_core::domain::Filters::default()).unwrap())
    );
    let mut list = props("Selection");
    list.extend(["group", "q", "cursor", "limit"].map(String::from));
    assert_eq!(props("ListRequest"), list);
}

#[tokio::test]
async fn every_documented_group_is_accepted_by_the_api() {
    let s = spec();
    let app = app();
    let t = admin("t1");
    app.put_division(&t, "d1").await;
    for group in s["components"]["schemas"]["Group"]["enum"]
        .as_array()
        .unwrap()
    {
        app.post(
            "/v1/invitations/recipients",
            &t,
            &json!({"group": group, "limit": 1}),
        )
        .await
        .ok();
    }
}

#[test]
fn the_documented_bound_on_items_examined_per_page_is_the_stores_bound() {
    let s = spec();
    let n = portal_core::ports::MAX_EXAMINED;
    let written = format!("{},{:03}", n / 1000, n % 1000);
    let says = format!("examines at most {written}");
    for (path, method) in [
        ("/v1/invitations/recipients", "post"),
        ("/v1/campaigns/{campaign_id}/recipients", "post"),
        ("/v1/registration-requests", "get"),
    ] {
        let description = s["paths"][path][method]["description"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            description.contains(&says),
            "{method} {path}: {description}"
        );
    }
}
