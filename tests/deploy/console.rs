//! The console's function holds no data: its role has no statement of its own (no table, no
//! mail, no bus), its crate links no AWS client or store adapter, it takes only its two
//! public routes, and its sign-in settings come from the stack's parameters.

use std::collections::{BTreeMap, BTreeSet};

use portal_http::Job;

use crate::functions::CONSOLE;
use crate::iam::NO_GRANTS;
use crate::yaml::*;

/// Crates that reach data or AWS: none may be in the console's dependency tree.
fn is_data_plane_crate(name: &str) -> bool {
    name.starts_with("aws-sdk-")
        || ["aws-config", "portal-aws", "portal-embedded", "rusqlite"].contains(&name)
}

#[test]
fn the_console_role_has_no_data_plane_permission() {
    let doc = template();
    let f = function(&doc, Job::Console.function());
    let id = f.id;
    assert!(NO_GRANTS.contains(&f.binary), "{id}");
    assert_eq!(
        f.props()["Policies"].as_sequence().map(Vec::len),
        Some(0),
        "{id}: Policies is an empty list (no statement, no managed policy, no SAM template)"
    );
    assert!(f.actions().is_empty(), "{id}: {:?}", f.actions());
    for key in ["Role", "PermissionsBoundary", "VpcConfig", "Layers"] {
        assert!(f.props()[key].is_null(), "{id}: {key}");
    }
    assert!(
        f.resource["Connectors"].is_null(),
        "{id}: Connectors grant access"
    );
    for (connector, c) in resources_of(&doc, "AWS::Serverless::Connector") {
        assert_ne!(
            ref_of(&c["Properties"]["Source"]["Id"]).or(c["Properties"]["Source"]["Id"].as_str()),
            Some(id),
            "{connector} grants {id} access"
        );
    }
    // Nothing invokes it but its routes; it is given nothing but its sign-in settings (and
    // the Globals, which it does not read).
    let kinds: BTreeSet<&str> = f
        .events()
        .iter()
        .filter_map(|(_, e)| e["Type"].as_str())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["HttpApi"]), "{id}: its events");
    let vars: BTreeSet<&str> = f
        .env()
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        vars,
        CONSOLE.iter().copied().collect(),
        "{id}: its variables"
    );
}

/// The crates of the workspace's `members`, by package name: the names under their
/// `[dependencies]` (dev-dependencies are not linked into a function).
fn workspace_dependencies() -> BTreeMap<String, Vec<String>> {
    let root = read("Cargo.toml");
    let members = &root[root.find("members = [").expect("workspace members")..];
    let members = &members[..members.find(']').expect("end of members")];
    let mut out = BTreeMap::new();
    for dir in members.split('"').skip(1).step_by(2) {
        let manifest = read(&format!("{dir}/Cargo.toml"));
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{dir}: no package name"));
        let deps = manifest
            .split("\n[")
            .find(|section| section.starts_with("dependencies]"))
            .map(|section| {
                section
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split(['.', '=', ' ']).next())
                    .filter(|dep| !dep.is_empty() && !dep.starts_with('#'))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        out.insert(name.to_owned(), deps);
    }
    out
}

/// Cargo.lock's dependencies of each package, by name (a name may be followed by its version
/// when two are locked; every version's are merged).
fn locked_dependencies() -> BTreeMap<String, Vec<String>> {
    let lock = read("Cargo.lock");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in lock.split("[[package]]").skip(1) {
        let name = package
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("a package name");
        let list = package
            .split_once("dependencies = [")
            .map(|(_, rest)| &rest[..rest.find(']').unwrap_or(rest.len())])
            .unwrap_or("");
        let entry = out.entry(name.to_owned()).or_default();
        for dep in list.split(',') {
            if let Some(dep) = dep.trim().trim_matches('"').split_whitespace().next() {
                entry.push(dep.to_owned());
            }
        }
    }
    out
}

#[test]
fn the_console_crate_links_no_aws_client_and_no_store_adapter() {
    // The workspace's own crates by their manifests' `[dependencies]` (Cargo.lock also lists
    // their dev-dependencies), every other crate by Cargo.lock (which may list more than a
    // build links: an overestimate is on the safe side).
    let workspace = workspace_dependencies();
    let locked = locked_dependencies();
    let root = Job::Console.function().to_owned();
    assert!(
        workspace.contains_key(&root),
        "no workspace member `{root}`"
    );
    let mut seen = BTreeSet::from([root.clone()]);
    let mut todo = vec![vec![root.clone()]];
    while let Some(path) = todo.pop() {
        let name = path.last().expect("a crate");
        let deps = workspace.get(name).or_else(|| locked.get(name));
        for dep in deps.into_iter().flatten() {
            assert!(
                !is_data_plane_crate(dep),
                "`{root}` links {dep} (through {})",
                path.join(" → ")
            );
            if seen.insert(dep.clone()) {
                let mut next = path.clone();
                next.push(dep.clone());
                todo.push(next);
            }
        }
    }
    for linked in ["portal-http", "portal-lambda", "lambda_http"] {
        assert!(seen.contains(linked), "{linked}: {seen:?}");
    }
}

#[test]
fn the_console_sign_in_settings_are_parameters_empty_by_default_and_https_only() {
    let doc = template();
    let f = function(&doc, Job::Console.function());
    let params = &doc["Parameters"];
    for var in CONSOLE {
        let p = ref_of(&f.env()[*var])
            .unwrap_or_else(|| panic!("{}: {var} is not a !Ref to a parameter", f.id));
        let param = &params[p];
        assert_eq!(param["Type"].as_str(), Some("String"), "{p}");
        assert!(
            param["Description"].as_str().is_some_and(|d| d.len() > 40),
            "{p}: say where the value comes from"
        );
        let default = param["Default"].as_str();
        match *var {
            "CONSOLE_SCOPE" => assert_eq!(default, Some("openid"), "{p}"),
            "CONSOLE_SIGN_OUT_URL" => assert_eq!(default, Some(""), "{p}"),
            // Empty by default: a stack deploys without a console (it says it is not set up).
            _ => assert_eq!(default, Some(""), "{p}"),
        }
        if var.ends_with("_URL") {
            let pattern = param["AllowedPattern"].as_str().unwrap_or_default();
            assert!(pattern.contains("https://"), "{p}: {pattern:?}");
            assert!(!pattern.contains("https?"), "{p}: https only");
        }
    }
    let url = doc["Outputs"]["ConsoleUrl"]["Value"].clone();
    assert!(
        sub_of(&url).is_some_and(|s| s.ends_with("/console")),
        "the ConsoleUrl output (the app client's callback URL): {url:?}"
    );
}
