//! The routes agree everywhere they are written down: `openapi.yaml`, `portal_http::ROUTES`
//! (what the routers serve, each route with its job) and `template.yaml` (what API Gateway
//! forwards, and to which function). A route the router serves but the template does not
//! wire answers 404 on AWS only; these tests are what catches it.

use std::collections::{BTreeMap, BTreeSet};

use portal_http::{Job, PUBLIC_ROUTES, ROUTES};

use crate::yaml::*;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

type Route = (String, String);

/// A route as the template wires it: an `HttpApi` event of a function.
#[derive(Debug)]
struct Wired<'a> {
    function: Function<'a>,
    event: &'a str,
    props: &'a Value,
}

impl Wired<'_> {
    fn at(&self) -> String {
        format!("{}.{}", self.function.id, self.event)
    }
}

fn routes_of_job(job: Job) -> BTreeSet<Route> {
    ROUTES
        .iter()
        .filter(|&&(j, _, _)| j == job)
        .map(|&(_, m, p)| (m.to_owned(), p.to_owned()))
        .collect()
}

fn served() -> BTreeSet<Route> {
    ROUTES
        .iter()
        .map(|&(_, m, p)| (m.to_owned(), p.to_owned()))
        .collect()
}

/// Every `HttpApi` event of every function, by `(METHOD, path)`.
fn wired(doc: &Value) -> BTreeMap<Route, Vec<Wired<'_>>> {
    let mut out: BTreeMap<Route, Vec<Wired<'_>>> = BTreeMap::new();
    for function in functions(doc) {
        for (event, e) in function.events_of("HttpApi") {
            let props = &e["Properties"];
            let at = format!("{}.{event}", function.id);
            let method = props["Method"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: no Method (a catch-all route)"));
            let path = props["Path"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: no Path (a catch-all route)"));
            out.entry((method.to_uppercase(), path.to_owned()))
                .or_default()
                .push(Wired {
                    function,
                    event,
                    props,
                });
        }
    }
    out
}

#[test]
fn the_openapi_document_and_the_router_list_the_same_routes() {
    let spec: Value = serde_yaml::from_str(&read("openapi.yaml")).expect("openapi.yaml parses");
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        let path = path.as_str().expect("a path");
        for (key, _) in item.as_mapping().expect("a path item") {
            let key = key.as_str().unwrap_or_default();
            if METHODS.contains(&key) {
                documented.insert((key.to_uppercase(), path.to_owned()));
            }
        }
    }
    let served = served();
    assert_eq!(served.len(), ROUTES.len(), "a route listed twice in ROUTES");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "in ROUTES, not in openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.yaml, not in ROUTES: {unserved:?}"
    );
}

#[test]
fn every_route_is_wired_to_exactly_one_function_the_one_of_its_job() {
    let doc = template();
    let (api, _) = only_resource_of(&doc, "AWS::Serverless::HttpApi");
    let wired = wired(&doc);
    let mut missing = Vec::new();
    for &(job, method, path) in ROUTES {
        let Some(found) = wired.get(&(method.to_owned(), path.to_owned())) else {
            missing.push(format!("{method} {path} ({})", job.function()));
            continue;
        };
        let at: Vec<String> = found.iter().map(Wired::at).collect();
        assert_eq!(
            found.len(),
            1,
            "{method} {path}: wired more than once: {at:?}"
        );
        let w = &found[0];
        assert_eq!(
            w.function.binary,
            job.function(),
            "{method} {path} is a {job:?} route: it belongs to `{}`, not {}",
            job.function(),
            w.at()
        );
        assert_eq!(ref_of(&w.props["ApiId"]), Some(api), "{}: ApiId", w.at());
    }
    assert!(
        missing.is_empty(),
        "served by the router but not wired in template.yaml (404 on AWS): {missing:?}"
    );

    // And each job's function is wired with exactly that job's routes.
    for job in Job::ALL {
        let f = function(&doc, job.function());
        let got: BTreeSet<Route> = wired
            .iter()
            .filter(|(_, ws)| ws.iter().any(|w| w.function.id == f.id))
            .map(|(r, _)| r.clone())
            .collect();
        assert_eq!(got, routes_of_job(job), "{}: its HttpApi events", f.id);
    }
}

#[test]
fn nothing_else_is_wired() {
    let doc = template();
    let served = served();
    let extra: Vec<String> = wired(&doc)
        .iter()
        .filter(|(route, _)| !served.contains(*route))
        .flat_map(|(_, ws)| ws.iter().map(Wired::at))
        .collect();
    assert!(
        extra.is_empty(),
        "wired in template.yaml, not in ROUTES (no router serves them): {extra:?}"
    );

    // No route can come from anywhere but a function's HttpApi events.
    for kind in [
        "AWS::ApiGatewayV2::Route",
        "AWS::ApiGatewayV2::Integration",
        "AWS::ApiGatewayV2::Api",
        "AWS::Serverless::Api",
        "AWS::ApiGateway::RestApi",
    ] {
        assert!(resources_of(&doc, kind).is_empty(), "a {kind}");
    }
    let (api, http_api) = only_resource_of(&doc, "AWS::Serverless::HttpApi");
    for key in ["DefinitionBody", "DefinitionUri"] {
        assert!(
            http_api["Properties"][key].is_null(),
            "{api}: {key} would add routes of its own"
        );
    }
    // Functions that serve no job take no HTTP request.
    let jobs: BTreeSet<&str> = Job::ALL.iter().map(|j| j.function()).collect();
    for f in functions(&doc) {
        if !jobs.contains(f.binary) {
            assert!(
                f.events_of("HttpApi").is_empty(),
                "{}: an HttpApi event",
                f.id
            );
        }
    }
}

#[test]
fn the_public_routes_and_only_they_skip_the_manager_jwt() {
    let doc = template();
    let (api, http_api) = only_resource_of(&doc, "AWS::Serverless::HttpApi");
    let auth = &http_api["Properties"]["Auth"];
    let default = auth["DefaultAuthorizer"]
        .as_str()
        .unwrap_or_else(|| panic!("{api}: no DefaultAuthorizer: every route would be public"));
    let jwt = &auth["Authorizers"][default]["JwtConfiguration"];
    assert_eq!(
        ref_of(&jwt["issuer"]),
        Some("JwtIssuer"),
        "{api}: {default}"
    );
    let audience: Vec<_> = jwt["audience"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(ref_of)
        .collect();
    assert_eq!(audience, [Some("JwtAudience")], "{api}: {default}");
    // An empty issuer or audience would check nothing: the stack refuses it (and so do the
    // functions, at cold start).
    for parameter in ["JwtIssuer", "JwtAudience"] {
        assert!(
            doc["Parameters"][parameter]["MinLength"]
                .as_u64()
                .is_some_and(|n| n >= 1),
            "{parameter}: MinLength 1"
        );
    }

    let public: BTreeSet<Route> = PUBLIC_ROUTES
        .iter()
        .map(|&(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    assert!(public.is_subset(&served()), "PUBLIC_ROUTES outside ROUTES");
    for (route, ws) in wired(&doc) {
        for w in ws {
            let authorizer = w.props["Auth"]["Authorizer"].as_str();
            if public.contains(&route) {
                assert_eq!(
                    authorizer,
                    Some("NONE"),
                    "{}: {route:?} is public (its own signature, no JWT)",
                    w.at()
                );
            } else {
                assert!(
                    authorizer.is_none() || authorizer == Some(default),
                    "{}: {route:?} is a manager route: behind {default}, not {authorizer:?}",
                    w.at()
                );
            }
        }
    }
}

/// A throttling limit that bounds something: a positive number, or a `!Ref` to a `Number`
/// parameter with a positive `MinValue`.
fn bounded(doc: &Value, limit: &Value) -> bool {
    match ref_of(limit) {
        Some(p) => {
            let parameter = &doc["Parameters"][p];
            parameter["Type"].as_str() == Some("Number")
                && parameter["MinValue"].as_f64().is_some_and(|v| v > 0.0)
        }
        None => limit.as_f64().is_some_and(|v| v > 0.0),
    }
}

#[test]
fn every_route_is_throttled_on_the_stage_and_every_public_route_by_its_own_limit() {
    let doc = template();
    let (api, http_api) = only_resource_of(&doc, "AWS::Serverless::HttpApi");
    let default = &http_api["Properties"]["DefaultRouteSettings"];
    for key in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        assert!(
            bounded(&doc, &default[key]),
            "{api}: DefaultRouteSettings.{key} is {:?}",
            default[key]
        );
    }
    let public: BTreeSet<Route> = PUBLIC_ROUTES
        .iter()
        .map(|&(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    let mut throttled = BTreeSet::new();
    for (route, ws) in wired(&doc) {
        if !public.contains(&route) {
            continue;
        }
        for w in ws {
            // Anyone can call these: each has a limit of its own, whatever the default.
            for key in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
                let limit = &w.props["RouteSettings"][key];
                assert!(
                    bounded(&doc, limit),
                    "{}: {route:?} is public; RouteSettings.{key} is {limit:?}",
                    w.at()
                );
            }
            throttled.insert(route.clone());
        }
    }
    assert_eq!(
        throttled, public,
        "every public route is wired and throttled"
    );
}
