//! Recurring invitations in `template.yaml`: only `recurring` manages schedules, exactly the
//! Scheduler adapter's calls, only in the stack's schedule group, passing only the
//! scheduler's execution role; that role may only invoke `recurring` (and put a firing it
//! could not deliver in the schedules' dead-letter queue), and only Scheduler acting for this
//! account's group may assume it; what a firing could not do is kept.

use portal_aws::scheduler::{IAM_ACTIONS, MAXIMUM_EVENT_AGE_SECONDS};

use crate::yaml::*;

const SCHEDULER: &str = "scheduler.amazonaws.com";

/// The role EventBridge Scheduler assumes: the stack's only `AWS::IAM::Role`, trusted by
/// Scheduler alone.
pub fn scheduler_role(doc: &Value) -> (&str, &Value) {
    let (id, role) = only_resource_of(doc, "AWS::IAM::Role");
    let trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{id}: no trust policy"));
    assert_eq!(trust.len(), 1, "{id}: one trust statement");
    assert_eq!(
        strings(&trust[0]["Principal"]["Service"]),
        [SCHEDULER],
        "{id}: trusted by EventBridge Scheduler alone"
    );
    (id, role)
}

fn schedule_group(doc: &Value) -> &str {
    only_resource_of(doc, "AWS::Scheduler::ScheduleGroup").0
}

/// The ARN the schedules invoke, as the template spells it out (an explicit function name,
/// since the role names the function and the function names the role).
fn recurring_arn(doc: &Value) -> String {
    let f = function(doc, "recurring");
    let name = sub_of(&f.props()["FunctionName"])
        .unwrap_or_else(|| panic!("{}: FunctionName is a !Sub of the stack name", f.id));
    assert!(name.starts_with("${AWS::StackName}"), "{}: {name}", f.id);
    format!("arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{name}")
}

/// The queue of firings the schedules could not deliver (`SCHEDULE_DLQ_ARN`).
fn dead_letter_queue(doc: &Value) -> String {
    let f = function(doc, "recurring");
    let arn = get_att_of(&f.env()["SCHEDULE_DLQ_ARN"])
        .unwrap_or_else(|| panic!("{}: SCHEDULE_DLQ_ARN is a !GetAtt of a queue", f.id));
    let queue = arn
        .strip_suffix(".Arn")
        .unwrap_or_else(|| panic!("{}: SCHEDULE_DLQ_ARN is {arn}", f.id))
        .to_owned();
    assert_eq!(
        doc["Resources"][queue.as_str()]["Type"].as_str(),
        Some("AWS::SQS::Queue"),
        "{queue}"
    );
    queue
}

fn resources(s: &Value) -> Vec<&Value> {
    match &s["Resource"] {
        Value::Sequence(items) => items.iter().collect(),
        one => vec![one],
    }
}

#[test]
fn only_recurring_manages_schedules_exactly_the_adapters_calls_in_its_group_only() {
    let doc = template();
    let group = schedule_group(&doc);
    let (role, _) = scheduler_role(&doc);
    for f in functions(&doc) {
        let manages = f
            .actions()
            .iter()
            .any(|a| a.starts_with("scheduler:") || *a == "iam:PassRole");
        assert_eq!(
            manages,
            f.binary == "recurring",
            "{}: scheduler:* and iam:PassRole",
            f.id
        );
    }
    let f = function(&doc, "recurring");
    let id = f.id;

    let statements: Vec<&Value> = f
        .statements()
        .into_iter()
        .filter(|s| {
            strings(&s["Action"])
                .iter()
                .any(|a| a.starts_with("scheduler:"))
        })
        .collect();
    assert_eq!(statements.len(), 1, "{id}: one scheduler statement");
    let mut actions = strings(&statements[0]["Action"]);
    actions.sort_unstable();
    let mut want = IAM_ACTIONS.to_vec();
    want.sort_unstable();
    assert_eq!(actions, want, "{id}: the calls of portal_aws::scheduler");
    let on: Vec<Option<&str>> = resources(statements[0]).into_iter().map(sub_of).collect();
    let in_group = format!(
        "arn:${{AWS::Partition}}:scheduler:${{AWS::Region}}:${{AWS::AccountId}}:schedule/${{{group}}}/*"
    );
    assert_eq!(
        on,
        [Some(in_group.as_str())],
        "{id}: schedules of {group} only"
    );

    let pass: Vec<&Value> = f
        .statements()
        .into_iter()
        .filter(|s| strings(&s["Action"]).contains(&"iam:PassRole"))
        .collect();
    assert_eq!(pass.len(), 1, "{id}: one PassRole statement");
    assert_eq!(strings(&pass[0]["Action"]), ["iam:PassRole"], "{id}");
    let passed: Vec<Option<String>> = resources(pass[0]).into_iter().map(get_att_of).collect();
    assert_eq!(
        passed,
        [Some(format!("{role}.Arn"))],
        "{id}: passes the scheduler's role only"
    );
    assert_eq!(
        strings(&pass[0]["Condition"]["StringEquals"]["iam:PassedToService"]),
        [SCHEDULER],
        "{id}: and only to Scheduler"
    );

    // Schedules are made per setting at run time: none is declared.
    assert!(resources_of(&doc, "AWS::Scheduler::Schedule").is_empty());
}

#[test]
fn the_function_is_told_its_group_role_queue_and_its_own_arn() {
    let doc = template();
    let f = function(&doc, "recurring");
    let (id, env) = (f.id, f.env());
    assert_eq!(
        ref_of(&env["SCHEDULE_GROUP"]),
        Some(schedule_group(&doc)),
        "{id}"
    );
    assert_eq!(
        get_att_of(&env["SCHEDULER_ROLE_ARN"]),
        Some(format!("{}.Arn", scheduler_role(&doc).0)),
        "{id}"
    );
    assert_eq!(
        sub_of(&env["SCHEDULE_TARGET_ARN"]),
        Some(recurring_arn(&doc).as_str()),
        "{id}: the schedules invoke this function"
    );
    dead_letter_queue(&doc);
}

#[test]
fn the_scheduler_role_may_only_invoke_the_recurring_function_for_this_accounts_group() {
    let doc = template();
    let (id, role) = scheduler_role(&doc);
    let props = &role["Properties"];
    let trust = &props["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(trust["Effect"].as_str(), Some("Allow"), "{id}");
    assert_eq!(strings(&trust["Action"]), ["sts:AssumeRole"], "{id}");
    let condition = &trust["Condition"]["StringEquals"];
    assert_eq!(
        ref_of(&condition["aws:SourceAccount"]),
        Some("AWS::AccountId"),
        "{id}: confused deputy: this account's schedules only"
    );
    assert_eq!(
        get_att_of(&condition["aws:SourceArn"]),
        Some(format!("{}.Arn", schedule_group(&doc))),
        "{id}: and only the stack's group"
    );
    for key in ["ManagedPolicyArns", "PermissionsBoundary"] {
        assert!(props[key].is_null(), "{id}: {key}");
    }

    let mut grants = Vec::new();
    for policy in props["Policies"].as_sequence().into_iter().flatten() {
        for s in policy["PolicyDocument"]["Statement"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            assert_eq!(s["Effect"].as_str(), Some("Allow"), "{id}");
            for action in strings(&s["Action"]) {
                for r in resources(s) {
                    grants.push((action.to_owned(), r.clone()));
                }
            }
        }
    }
    let invoke: Vec<&Value> = grants
        .iter()
        .filter(|(a, _)| a == "lambda:InvokeFunction")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(invoke.len(), 1, "{id}: {grants:?}");
    assert_eq!(
        sub_of(invoke[0]),
        Some(recurring_arn(&doc).as_str()),
        "{id}: invokes the recurring function only"
    );
    let queue = dead_letter_queue(&doc);
    let send: Vec<Option<String>> = grants
        .iter()
        .filter(|(a, _)| a == "sqs:SendMessage")
        .map(|(_, r)| get_att_of(r))
        .collect();
    assert_eq!(
        send,
        [Some(format!("{queue}.Arn"))],
        "{id}: Scheduler delivers dead letters with the execution role"
    );
    let others: Vec<&String> = grants
        .iter()
        .map(|(a, _)| a)
        .filter(|a| *a != "lambda:InvokeFunction" && *a != "sqs:SendMessage")
        .collect();
    assert!(others.is_empty(), "{id} may also {others:?}");

    // Nothing else may invoke the function: no resource policy names it.
    let f = function(&doc, "recurring");
    for (perm, p) in resources_of(&doc, "AWS::Lambda::Permission") {
        let target = &p["Properties"]["FunctionName"];
        assert!(
            ref_of(target) != Some(f.id) && get_att_of(target) != Some(format!("{}.Arn", f.id)),
            "{perm} lets someone else invoke {}",
            f.id
        );
    }
}

#[test]
fn firings_that_could_not_run_are_kept_in_the_schedules_dead_letter_queue() {
    let doc = template();
    let f = function(&doc, "recurring");
    let id = f.id;
    let queue = dead_letter_queue(&doc);
    let invoke = &f.props()["EventInvokeConfig"];
    assert!(
        invoke["MaximumRetryAttempts"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{id}: a failed run is retried (every step is idempotent)"
    );
    assert_eq!(
        invoke["MaximumEventAgeInSeconds"].as_i64(),
        Some(i64::from(MAXIMUM_EVENT_AGE_SECONDS)),
        "{id}: a firing is kept as long by Lambda as by Scheduler"
    );
    assert_eq!(
        get_att_of(&invoke["DestinationConfig"]["OnFailure"]["Destination"]),
        Some(format!("{queue}.Arn")),
        "{id}: a run that failed every retry lands with the undelivered firings"
    );
    let q = &doc["Resources"][queue.as_str()]["Properties"];
    assert_eq!(q["SqsManagedSseEnabled"].as_bool(), Some(true), "{queue}");
    assert!(
        q["FifoQueue"].is_null(),
        "{queue}: Scheduler takes no FIFO dead-letter queue"
    );
    // Its own queue: replaying a send event and re-running a day are different gestures.
    let send = function(&doc, "send");
    assert_ne!(
        get_att_of(
            &send.props()["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]
        ),
        Some(format!("{queue}.Arn"))
    );
}

#[test]
fn the_function_and_its_queue_are_outputs() {
    let doc = template();
    let f = function(&doc, "recurring");
    let queue = dead_letter_queue(&doc);
    let outputs: Vec<&Value> = doc["Outputs"]
        .as_mapping()
        .expect("Outputs")
        .values()
        .map(|o| &o["Value"])
        .collect();
    for want in [f.id, queue.as_str(), schedule_group(&doc)] {
        assert!(
            outputs.iter().any(|v| ref_of(v) == Some(want)),
            "no output gives {want}"
        );
    }
}
