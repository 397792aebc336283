//! Each function's role, as `template.yaml` grants it, is what README.md's
//! `## Functions and permissions` table says: the same functions, exactly the actions of
//! each row, the routes and send events of each row. And every grant names its actions and
//! its resources (no wildcard, no policy template, no role from elsewhere): DynamoDB actions
//! on the table, and `dynamodb:Query` alone on its index for the functions that look things
//! up there.

use std::collections::{BTreeMap, BTreeSet};

use portal_http::{Job, ROUTES};

use crate::yaml::*;

const SECTION: &str = "## Functions and permissions";

/// The actions of a role that only reads the table.
const READ: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
];

/// The functions that query the table's index (`gsi1`: invitation tokens, account numbers;
/// the sweeper's unfinished campaigns).
const INDEX_READERS: &[&str] = &["registration", "send"];

/// The functions whose role has no statement of its own (only the logs and traces SAM gives
/// every function's role): the console's, which holds no data and calls no AWS API.
pub const NO_GRANTS: &[&str] = &["console"];

/// DynamoDB API names that are no IAM action: granting them grants nothing (a transaction's
/// items are allowed as the `PutItem`, `UpdateItem`, `DeleteItem` or `ConditionCheckItem`
/// they are), so a role listing them says more than it can do.
const NOT_IAM_ACTIONS: &[&str] = &["dynamodb:TransactWriteItems", "dynamodb:TransactGetItems"];

/// One row of the README's table.
#[derive(Debug)]
struct Row {
    /// Backticked `METHOD /path` of the second cell.
    routes: BTreeSet<String>,
    /// Every backticked text of the second cell (routes, detail-types, ...).
    mentions: BTreeSet<String>,
    /// Backticked `service:Action` of the third cell.
    actions: BTreeSet<String>,
}

/// The texts between backticks.
fn backticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

fn is_action(s: &str) -> bool {
    let Some((service, action)) = s.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !action.is_empty()
        && action
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*')
}

/// The table of the README's section, by function (the first cell, backticked).
fn readme_table() -> BTreeMap<String, Row> {
    let readme = read("README.md");
    let start = readme
        .find(&format!("\n{SECTION}\n"))
        .unwrap_or_else(|| panic!("README.md has no `{SECTION}` section"));
    let section = &readme[start + SECTION.len() + 2..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let lines: Vec<&str> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(lines.len() > 2, "{SECTION}: no table");
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    assert_eq!(
        cells(lines[0]),
        ["function", "routes / events", "AWS actions"],
        "{SECTION}: the table's header"
    );
    let mut rows = BTreeMap::new();
    for line in &lines[2..] {
        let c = cells(line);
        assert_eq!(c.len(), 3, "{SECTION}: {line}");
        let function = match backticked(&c[0])[..] {
            [name] => name.to_owned(),
            _ => panic!("{SECTION}: the function is one backticked name: {line}"),
        };
        let mentions: BTreeSet<String> = backticked(&c[1]).into_iter().map(str::to_owned).collect();
        let routes = mentions
            .iter()
            .filter(|m| {
                m.split_once(" /")
                    .is_some_and(|(method, _)| is_method(method))
            })
            .cloned()
            .collect();
        let actions = backticked(&c[2])
            .into_iter()
            .filter(|a| is_action(a))
            .map(str::to_owned)
            .collect();
        let row = Row {
            routes,
            mentions,
            actions,
        };
        assert!(
            rows.insert(function.clone(), row).is_none(),
            "{SECTION}: two rows for `{function}`"
        );
    }
    rows
}

fn is_method(s: &str) -> bool {
    ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"].contains(&s)
}

#[test]
fn the_readme_has_a_row_for_every_function_and_no_other() {
    let doc = template();
    let in_template: BTreeSet<String> = functions(&doc)
        .iter()
        .map(|f| f.binary.to_owned())
        .collect();
    let in_readme: BTreeSet<String> = readme_table().into_keys().collect();
    assert_eq!(
        in_readme, in_template,
        "README.md `{SECTION}` vs template.yaml"
    );
}

#[test]
fn each_role_may_call_exactly_the_actions_of_its_readme_row() {
    let doc = template();
    let table = readme_table();
    for f in functions(&doc) {
        let id = f.id;
        let Some(row) = table.get(f.binary) else {
            panic!("{SECTION}: no row for `{}`", f.binary);
        };
        let granted: BTreeSet<String> = f.actions().into_iter().map(str::to_owned).collect();
        let unlisted: Vec<_> = granted.difference(&row.actions).collect();
        assert!(
            unlisted.is_empty(),
            "{id} may call {unlisted:?}, which README.md does not list for `{}`",
            f.binary
        );
        let ungranted: Vec<_> = row.actions.difference(&granted).collect();
        assert!(
            ungranted.is_empty(),
            "README.md lists {ungranted:?} for `{}`, which {id} may not call",
            f.binary
        );
    }
}

#[test]
fn each_readme_row_lists_its_functions_routes_and_send_events() {
    let doc = template();
    let table = readme_table();
    for f in functions(&doc) {
        let row = &table[f.binary];
        let job = Job::ALL.into_iter().find(|j| j.function() == f.binary);
        let routes: BTreeSet<String> = ROUTES
            .iter()
            .filter(|&&(j, _, _)| Some(j) == job)
            .map(|&(_, m, p)| format!("{m} {p}"))
            .collect();
        assert_eq!(row.routes, routes, "README.md `{}`: its routes", f.binary);
        for (name, event) in f.events_of("EventBridgeRule") {
            for detail_type in strings(&event["Properties"]["Pattern"]["detail-type"]) {
                assert!(
                    row.mentions.contains(detail_type),
                    "README.md `{}` does not mention `{detail_type}` ({}.{name})",
                    f.binary,
                    f.id
                );
            }
        }
    }
}

#[test]
fn every_grant_is_an_inline_statement_naming_its_actions_and_resources() {
    let doc = template();
    for kind in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        assert!(
            resources_of(&doc, kind).is_empty(),
            "a {kind}: roles come from the functions' Policies only"
        );
    }
    // The one role that is no function's: what EventBridge Scheduler assumes to fire the
    // recurring schedules (checked statement by statement in `recurring`).
    let roles: Vec<&str> = resources_of(&doc, "AWS::IAM::Role")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        roles,
        [crate::recurring::scheduler_role(&doc).0],
        "roles come from the functions' Policies only, but for the scheduler's execution role"
    );
    let (table, _) = only_resource_of(&doc, "AWS::DynamoDB::Table");
    let gsi1 = format!("${{{table}.Arn}}/index/{}", portal_aws::dynamodb::GSI1);
    for f in functions(&doc) {
        let id = f.id;
        assert!(
            f.props()["Role"].is_null(),
            "{id}: a Role replaces Policies"
        );
        let policies = f.props()["Policies"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{id}: no Policies"));
        for policy in policies {
            assert!(
                policy.get("Statement").is_some(),
                "{id}: inline statements only, no managed policy or SAM policy template: \
                 {policy:?}"
            );
        }
        assert_eq!(
            f.statements().is_empty(),
            NO_GRANTS.contains(&f.binary),
            "{id}: a role with no permission of its own is the console's alone"
        );
        for s in f.statements() {
            assert_eq!(s["Effect"].as_str(), Some("Allow"), "{id}");
            assert!(
                s.get("NotAction").is_none() && s.get("NotResource").is_none(),
                "{id}"
            );
            let actions = strings(&s["Action"]);
            assert!(!actions.is_empty(), "{id}: a statement without actions");
            for action in &actions {
                assert!(
                    is_action(action) && !action.contains('*'),
                    "{id}: {action:?} is no single action"
                );
                assert!(
                    !NOT_IAM_ACTIONS.contains(action),
                    "{id}: {action} is an API, not an IAM action: it grants nothing"
                );
            }
            let resources: Vec<&Value> = match &s["Resource"] {
                Value::Sequence(items) => items.iter().collect(),
                one => vec![one],
            };
            for r in &resources {
                // (`as_str` would see through a tag: `!GetAtt X.Arn` is a reference.)
                assert!(
                    !matches!(r, Value::String(_)),
                    "{id}: resource {r:?} is a literal (`*`?), not a reference"
                );
            }
            if actions.iter().any(|a| a.starts_with("dynamodb:")) {
                assert!(
                    actions.iter().all(|a| a.starts_with("dynamodb:")),
                    "{id}: one statement per service"
                );
                let got: Vec<Option<String>> = resources.iter().map(|r| get_att_of(r)).collect();
                let index: Vec<Option<&str>> = resources.iter().map(|r| sub_of(r)).collect();
                if index == [Some(gsi1.as_str())] {
                    // The index, in a statement of its own: only Query reads an index.
                    assert_eq!(actions, ["dynamodb:Query"], "{id}: {gsi1}");
                    assert!(
                        INDEX_READERS.contains(&f.binary),
                        "{id} queries {gsi1}: only {INDEX_READERS:?} may"
                    );
                } else {
                    assert_eq!(got, [Some(format!("{table}.Arn"))], "{id}: the table only");
                }
            }
        }
    }
}

#[test]
fn load_counts_only_reads_the_table() {
    let doc = template();
    let f = function(&doc, Job::LoadCounts.function());
    for action in f.actions() {
        assert!(READ.contains(&action), "{}: {action} is no read", f.id);
    }
}
