//! EventBridge Scheduler: one schedule per recurring setting
//! ([`portal_core::usecases::recurring::Schedules`]).
//!
//! # A setting's schedule
//!
//! Every schedule lives in one schedule group (the stack's, `template.yaml`) and invokes the
//! recurring function:
//!
//! | field | value |
//! |---|---|
//! | `Name` | [`schedule_name`]`(tenant, setting)` |
//! | `ScheduleExpression` | `RecurringSetting::schedule_expression()`, `cron(0 {hour} * * ? *)`, checked by [`validate_expression`] first |
//! | `ScheduleExpressionTimezone` | the setting's IANA zone, in its canonical spelling ([`canonical_time_zone`]) |
//! | `State` | `ENABLED`, or `DISABLED` for a disabled setting |
//! | `FlexibleTimeWindow` | `OFF`: runs at the hour, not somewhere after it |
//! | `ActionAfterCompletion` | `NONE` (a cron schedule never completes; nothing deletes it behind our back) |
//! | `Description` | `Recurring invitations: tenant {tenant}, setting {setting}` |
//! | `Target.Arn` | the recurring function |
//! | `Target.RoleArn` | the scheduler's execution role (may invoke that function and write to the dead-letter queue, nothing else) |
//! | `Target.Input` | [`schedule_input`]: `{"tenant": …, "setting_id": …, "scheduled_time": "<aws.scheduler.scheduled-time>"}` |
//! | `Target.RetryPolicy` | [`MAXIMUM_RETRY_ATTEMPTS`] attempts within [`MAXIMUM_EVENT_AGE_SECONDS`] |
//! | `Target.DeadLetterConfig` | the schedules' SQS dead-letter queue |
//!
//! Scheduler replaces `<aws.scheduler.scheduled-time>` with the time the schedule fired for
//! (e.g. `2026-03-08T15:00:00Z`), so the function runs the local day of *that* instant and
//! not of whenever the invocation happens to be handled (a retry, or a clock a hair early at
//! the hour, cannot move the run to another day). Invoked by hand without it, the function
//! runs the day due now.
//!
//! Scheduler invokes Lambda **asynchronously**: its retry policy and dead-letter queue cover
//! invocations Scheduler could not hand to Lambda (throttling, a missing permission); a run
//! that fails inside the function is retried by Lambda's own asynchronous retries (the
//! function's `EventInvokeConfig`), then parked in the same queue. Every step of a run is
//! idempotent (`portal_core::usecases::recurring::run_setting`).
//!
//! # Names
//!
//! Scheduler names are 1–64 characters of `[0-9a-zA-Z-_.]`; our ids are 1–64 characters of
//! `[A-Za-z0-9._:-]`. The name of (tenant, setting) is
//!
//! - `{tenant}.{setting}` when the tenant has no `.`, neither id has a `:`, and the whole fits
//!   in 64 characters: readable in the console, and one name per pair (the first `.` ends
//!   the tenant);
//! - otherwise the 64 lowercase hex digits of SHA-256(`{tenant}\n{setting}`). These contain
//!   no `.`, so they never equal a readable name; the schedule's `Description` still names
//!   the pair.
//!
//! The name is part of the stored state (a changed rule would orphan every schedule made
//! under the old one): it must never change. Two tenants with the same setting id get two
//! schedules.
//!
//! # The calls
//!
//! - `put`: `CreateSchedule`; a `ConflictException` (it exists) is followed by
//!   `UpdateSchedule` with every field (Update replaces the whole schedule). An Update that
//!   finds the schedule gone (`ResourceNotFoundException`: deleted meanwhile) creates it
//!   again; the two switch at most [`MAX_SWITCHES`] times. Saving twice gives the same
//!   schedule.
//! - `delete`: `DeleteSchedule`; `ResourceNotFoundException` is success.
//!
//! Each call is retried with exponential back-off and jitter
//! ([`crate::eventbridge::RetryPolicy`], 6 calls by default) on throttling
//! (`ThrottlingException`, any `Throttl…` code, HTTP 429), Scheduler's own failures
//! (`InternalServerException`, HTTP 5xx), timeouts and connection failures; anything else
//! (`ValidationException`, `AccessDeniedException`, a missing group, a quota) fails at once
//! as [`ScheduleError::Rejected`].
//!
//! # Expressions
//!
//! moto (5.2.x) accepts any expression (`bogus` too) and never fires a schedule, so the
//! expression is checked here before any call ([`validate_expression`]: Scheduler's `cron`,
//! `rate` and `at` forms, field by field), and the tests check the schedule's fields as read
//! back with `GetSchedule`.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_scheduler::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_scheduler::operation::create_schedule::CreateScheduleError;
use aws_sdk_scheduler::operation::delete_schedule::DeleteScheduleError;
use aws_sdk_scheduler::operation::update_schedule::UpdateScheduleError;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy as TargetRetryPolicy, ScheduleState, Target,
};
use sha2::{Digest, Sha256};

use portal_core::domain::{RecurringId, RecurringSetting, TenantId};
use portal_core::ports::BoxError;
use portal_core::usecases::recurring::Schedules;

use crate::eventbridge::RetryPolicy;

/// Longest schedule name Scheduler takes.
pub const MAX_NAME_LEN: usize = 64;

/// Longest schedule expression Scheduler takes.
pub const MAX_EXPRESSION_LEN: usize = 256;

/// Times Scheduler retries an invocation Lambda did not accept.
pub const MAXIMUM_RETRY_ATTEMPTS: i32 = 3;

/// How long Scheduler keeps trying one firing: an hour, so a late run still lands on its
/// day (the function runs the local date of the scheduled time anyway).
pub const MAXIMUM_EVENT_AGE_SECONDS: i32 = 3600;

/// Scheduler's placeholder for the time a schedule fired for, replaced in the input.
pub const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";

/// Create/Update round trips of one `put` (a schedule deleted and created around it).
pub const MAX_SWITCHES: u32 = 3;

/// The IAM actions this adapter's calls need, on `schedule/{group}/*` (and `iam:PassRole`
/// on the execution role, which Create and Update pass). `template.yaml` grants the
/// recurring function exactly these (`tests/deploy` checks it).
pub const IAM_ACTIONS: [&str; 3] = [
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "scheduler:DeleteSchedule",
];

/// What a schedule call could not do.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Refused before any call: Scheduler (unlike moto) would refuse it too.
    #[error("schedule expression {expression:?} is not valid: {reason}")]
    InvalidExpression { expression: String, reason: String },
    /// Throttled or failing after every attempt: trying again later may work.
    #[error("{operation} of schedule {name} failed after {attempts} attempt{}: {detail}", if *attempts == 1 { "" } else { "s" })]
    Unavailable {
        operation: &'static str,
        name: String,
        attempts: u32,
        detail: String,
    },
    /// Refused for a reason waiting cannot fix (validation, permissions, a missing group).
    #[error("{operation} of schedule {name} was refused: {detail}")]
    Rejected {
        operation: &'static str,
        name: String,
        code: Option<String>,
        detail: String,
    },
}

/// Where the schedules go and what they invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTarget {
    /// The schedule group (`AWS::Scheduler::ScheduleGroup`).
    pub group_name: String,
    /// The recurring function's ARN.
    pub target_arn: String,
    /// The execution role Scheduler assumes to invoke it.
    pub role_arn: String,
    /// The SQS queue of firings Scheduler could not deliver.
    pub dead_letter_arn: String,
}

/// The settings' schedules in one EventBridge Scheduler group.
#[derive(Debug, Clone)]
pub struct EventBridgeSchedules {
    client: aws_sdk_scheduler::Client,
    target: ScheduleTarget,
    retry: RetryPolicy,
}

impl EventBridgeSchedules {
    /// Schedules in `target.group_name`, with [`RetryPolicy::DEFAULT`].
    pub fn new(client: aws_sdk_scheduler::Client, target: ScheduleTarget) -> Self {
        Self {
            client,
            target,
            retry: RetryPolicy::DEFAULT,
        }
    }

    /// The same adapter with another retry policy (tests use millisecond delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn group_name(&self) -> &str {
        &self.target.group_name
    }

    /// The schedule of (tenant, setting), as `put` writes it (checked, not sent).
    fn spec(
        &self,
        tenant: &TenantId,
        setting: &RecurringSetting,
    ) -> Result<ScheduleSpec, ScheduleError> {
        let expression = setting.schedule_expression();
        validate_expression(&expression).map_err(|reason| ScheduleError::InvalidExpression {
            expression: expression.clone(),
            reason,
        })?;
        let target = Target::builder()
            .arn(&self.target.target_arn)
            .role_arn(&self.target.role_arn)
            .input(schedule_input(tenant, &setting.setting_id))
            .retry_policy(
                TargetRetryPolicy::builder()
                    .maximum_retry_attempts(MAXIMUM_RETRY_ATTEMPTS)
                    .maximum_event_age_in_seconds(MAXIMUM_EVENT_AGE_SECONDS)
                    .build(),
            )
            .dead_letter_config(
                DeadLetterConfig::builder()
                    .arn(&self.target.dead_letter_arn)
                    .build(),
            )
            .build()
            .map_err(|e| rejected_locally("CreateSchedule", tenant, &setting.setting_id, e))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| rejected_locally("CreateSchedule", tenant, &setting.setting_id, e))?;
        Ok(ScheduleSpec {
            name: schedule_name(tenant, &setting.setting_id),
            expression,
            time_zone: canonical_time_zone(setting.time_zone.as_str()),
            state: if setting.enabled {
                ScheduleState::Enabled
            } else {
                ScheduleState::Disabled
            },
            description: description(tenant, &setting.setting_id),
            target,
            window,
        })
    }

    /// `CreateSchedule`; `Ok(false)` when it exists.
    async fn create(&self, spec: &ScheduleSpec) -> Result<bool, ScheduleError> {
        let out = with_retries(&self.retry, || {
            self.client
                .create_schedule()
                .name(&spec.name)
                .group_name(&self.target.group_name)
                .schedule_expression(&spec.expression)
                .schedule_expression_timezone(&spec.time_zone)
                .state(spec.state.clone())
                .description(&spec.description)
                .flexible_time_window(spec.window.clone())
                .action_after_completion(ActionAfterCompletion::None)
                .target(spec.target.clone())
                .send()
        })
        .await;
        match out {
            Ok(_) => Ok(true),
            Err(Failed { error, .. })
                if matches!(
                    error.as_service_error(),
                    Some(CreateScheduleError::ConflictException(_))
                ) =>
            {
                Ok(false)
            }
            Err(f) => Err(f.into_error("CreateSchedule", &spec.name)),
        }
    }

    /// `UpdateSchedule` with every field; `Ok(false)` when the schedule is gone.
    async fn update(&self, spec: &ScheduleSpec) -> Result<bool, ScheduleError> {
        let out = with_retries(&self.retry, || {
            self.client
                .update_schedule()
                .name(&spec.name)
                .group_name(&self.target.group_name)
                .schedule_expression(&spec.expression)
                .schedule_expression_timezone(&spec.time_zone)
                .state(spec.state.clone())
                .description(&spec.description)
                .flexible_time_window(spec.window.clone())
                .action_after_completion(ActionAfterCompletion::None)
                .target(spec.target.clone())
                .send()
        })
        .await;
        match out {
            Ok(_) => Ok(true),
            Err(Failed { error, .. })
                if matches!(
                    error.as_service_error(),
                    Some(UpdateScheduleError::ResourceNotFoundException(_))
                ) =>
            {
                Ok(false)
            }
            Err(f) => Err(f.into_error("UpdateSchedule", &spec.name)),
        }
    }

    /// Creates or updates the setting's schedule (see the module docs).
    pub async fn put_schedule(
        &self,
        tenant: &TenantId,
        setting: &RecurringSetting,
    ) -> Result<(), ScheduleError> {
        let spec = self.spec(tenant, setting)?;
        for _ in 0..MAX_SWITCHES {
            if self.create(&spec).await? || self.update(&spec).await? {
                tracing::info!(%tenant, setting = %setting.setting_id, schedule = %spec.name, state = spec.state.as_str(), "schedule written");
                return Ok(());
            }
        }
        Err(ScheduleError::Unavailable {
            operation: "CreateSchedule/UpdateSchedule",
            name: spec.name,
            attempts: MAX_SWITCHES * 2,
            detail: "the schedule kept appearing and disappearing between calls".into(),
        })
    }

    /// Deletes the setting's schedule; one that does not exist is fine.
    pub async fn delete_schedule(
        &self,
        tenant: &TenantId,
        id: &RecurringId,
    ) -> Result<(), ScheduleError> {
        let name = schedule_name(tenant, id);
        let out = with_retries(&self.retry, || {
            self.client
                .delete_schedule()
                .name(&name)
                .group_name(&self.target.group_name)
                .send()
        })
        .await;
        match out {
            Ok(_) => {}
            Err(Failed { error, .. })
                if matches!(
                    error.as_service_error(),
                    Some(DeleteScheduleError::ResourceNotFoundException(_))
                ) => {}
            Err(f) => return Err(f.into_error("DeleteSchedule", &name)),
        }
        tracing::info!(%tenant, setting = %id, schedule = %name, "schedule deleted");
        Ok(())
    }
}

#[async_trait]
impl Schedules for EventBridgeSchedules {
    async fn put(&self, tenant: &TenantId, setting: &RecurringSetting) -> Result<(), BoxError> {
        Ok(self.put_schedule(tenant, setting).await?)
    }

    async fn delete(&self, tenant: &TenantId, id: &RecurringId) -> Result<(), BoxError> {
        Ok(self.delete_schedule(tenant, id).await?)
    }
}

/// A schedule as `put` writes it.
#[derive(Debug, Clone)]
struct ScheduleSpec {
    name: String,
    expression: String,
    time_zone: String,
    state: ScheduleState,
    description: String,
    target: Target,
    window: FlexibleTimeWindow,
}

fn rejected_locally(
    operation: &'static str,
    tenant: &TenantId,
    id: &RecurringId,
    e: impl std::error::Error,
) -> ScheduleError {
    ScheduleError::Rejected {
        operation,
        name: schedule_name(tenant, id),
        code: None,
        detail: e.to_string(),
    }
}

/// The schedule's name for (tenant, setting) (see the module docs).
pub fn schedule_name(tenant: &TenantId, id: &RecurringId) -> String {
    let (t, s) = (tenant.as_str(), id.as_str());
    let readable = t.len() + 1 + s.len() <= MAX_NAME_LEN
        && !t.contains('.')
        && !t.contains(':')
        && !s.contains(':');
    if readable {
        return format!("{t}.{s}");
    }
    let digest = Sha256::digest(format!("{t}\n{s}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the schedule hands the function: the function's `Invocation::Recurring`.
pub fn schedule_input(tenant: &TenantId, id: &RecurringId) -> String {
    serde_json::json!({
        "tenant": tenant.as_str(),
        "setting_id": id.as_str(),
        "scheduled_time": SCHEDULED_TIME,
    })
    .to_string()
}

fn description(tenant: &TenantId, id: &RecurringId) -> String {
    format!("Recurring invitations: tenant {tenant}, setting {id}")
}

/// The canonical spelling of an IANA time zone name (`america/chicago` →
/// `America/Chicago`): the time zone database is read without regard to case, Scheduler is
/// not. A name the database does not know is passed on as it is (Scheduler judges it).
pub fn canonical_time_zone(name: &str) -> String {
    jiff::tz::TimeZone::get(name)
        .ok()
        .and_then(|tz| tz.iana_name().map(str::to_owned))
        .unwrap_or_else(|| name.to_owned())
}

/// A call that failed, and after how many attempts.
#[derive(Debug)]
struct Failed<E> {
    error: SdkError<E>,
    attempts: u32,
}

impl<E: ProvideErrorMetadata + std::error::Error + 'static> Failed<E> {
    fn into_error(self, operation: &'static str, name: &str) -> ScheduleError {
        let detail = DisplayErrorContext(&self.error).to_string();
        if retryable(&self.error) {
            ScheduleError::Unavailable {
                operation,
                name: name.to_owned(),
                attempts: self.attempts,
                detail,
            }
        } else {
            ScheduleError::Rejected {
                operation,
                name: name.to_owned(),
                code: self.error.code().map(str::to_owned),
                detail,
            }
        }
    }
}

/// Calls `call` until it succeeds, fails for good, or `policy.attempts` calls were made,
/// waiting with back-off and jitter between calls.
async fn with_retries<T, E, F, Fut>(policy: &RetryPolicy, mut call: F) -> Result<T, Failed<E>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E>>>,
{
    let attempts = policy.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(out) => return Ok(out),
            Err(error) if attempt < attempts && retryable(&error) => {
                tracing::warn!(error = %DisplayErrorContext(&error), attempt, "Scheduler call failed; trying again");
            }
            Err(error) => {
                return Err(Failed {
                    error,
                    attempts: attempt,
                })
            }
        }
        tokio::time::sleep(jittered(policy.backoff(attempt))).await;
    }
}

/// A wait drawn uniformly from the upper half of `max` ("equal jitter").
fn jittered(max: Duration) -> Duration {
    let half = max / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Whether waiting can help (see the module docs).
fn retryable<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ServiceError(service) => {
            service.err().code().is_some_and(|code| {
                code.starts_with("Throttl")
                    || code == "InternalServerException"
                    || code == "ServiceUnavailable"
            }) || retryable_status(service.raw().status().as_u16())
        }
        SdkError::ResponseError(r) => retryable_status(r.raw().status().as_u16()),
        _ => false,
    }
}

fn retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Checks a Scheduler expression: `cron(minutes hours day-of-month month day-of-week year)`,
/// `rate(value unit)` or `at(yyyy-mm-ddThh:mm:ss)`, as Scheduler documents them. The reason
/// names the part that is wrong.
pub fn validate_expression(expression: &str) -> Result<(), String> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(format!("longer than {MAX_EXPRESSION_LEN} characters"));
    }
    let inner = |prefix: &str| {
        expression
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(')'))
    };
    if let Some(body) = inner("cron(") {
        validate_cron(body)
    } else if let Some(body) = inner("rate(") {
        validate_rate(body)
    } else if let Some(body) = inner("at(") {
        validate_at(body)
    } else {
        Err("not cron(...), rate(...) or at(...)".into())
    }
}

/// One field of a cron expression.
struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names standing for `min`, `min + 1`, … (months, days of the week).
    names: &'static [&'static str],
    /// `?` allowed (day-of-month, day-of-week).
    question: bool,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const CRON_FIELDS: [CronField; 6] = [
    CronField {
        name: "minutes",
        min: 0,
        max: 59,
        names: &[],
        question: false,
    },
    CronField {
        name: "hours",
        min: 0,
        max: 23,
        names: &[],
        question: false,
    },
    CronField {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        question: true,
    },
    CronField {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
        question: false,
    },
    CronField {
        name: "day-of-week",
        min: 1,
        max: 7,
        names: DAYS,
        question: true,
    },
    CronField {
        name: "year",
        min: 1970,
        max: 2199,
        names: &[],
        question: false,
    },
];

fn validate_cron(body: &str) -> Result<(), String> {
    let fields: Vec<&str> = body.split(' ').collect();
    if fields.len() != CRON_FIELDS.len() || fields.iter().any(|f| f.is_empty()) {
        return Err(format!(
            "a cron expression has six fields separated by single spaces \
             (minutes hours day-of-month month day-of-week year), not {:?}",
            body
        ));
    }
    for (field, spec) in fields.iter().zip(&CRON_FIELDS) {
        validate_cron_field(field, spec)
            .map_err(|reason| format!("{} field {field:?}: {reason}", spec.name))?;
    }
    // Exactly one of the two day fields is `?`.
    match (fields[2] == "?", fields[4] == "?") {
        (true, false) | (false, true) => Ok(()),
        _ => Err("exactly one of day-of-month and day-of-week must be `?`".into()),
    }
}

fn validate_cron_field(field: &str, spec: &CronField) -> Result<(), String> {
    if field == "?" {
        return if spec.question {
            Ok(())
        } else {
            Err("`?` is only for day-of-month and day-of-week".into())
        };
    }
    for item in field.split(',') {
        validate_cron_item(item, spec)?;
    }
    Ok(())
}

fn validate_cron_item(item: &str, spec: &CronField) -> Result<(), String> {
    if item.is_empty() {
        return Err("an empty list item".into());
    }
    let value = |raw: &str| -> Result<u32, String> {
        let v = match spec.names.iter().position(|n| n.eq_ignore_ascii_case(raw)) {
            Some(i) => spec.min + i as u32,
            None if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) => raw
                .parse::<u32>()
                .map_err(|_| format!("{raw:?} is too large"))?,
            None => return Err(format!("{raw:?} is not a value")),
        };
        if (spec.min..=spec.max).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is outside {}-{}", spec.min, spec.max))
        }
    };
    match spec.name {
        // `L` (last day), `LW` (last weekday), `15W` (weekday nearest the 15th).
        "day-of-month" if item == "L" || item == "LW" => return Ok(()),
        "day-of-month" if item.len() > 1 && item.ends_with('W') => {
            return value(&item[..item.len() - 1]).map(|_| ());
        }
        // `L` (last day of the week), `5L` (last Thursday), `3#2` (second Tuesday).
        "day-of-week" if item == "L" => return Ok(()),
        "day-of-week" if item.len() > 1 && item.ends_with('L') => {
            return value(&item[..item.len() - 1]).map(|_| ());
        }
        "day-of-week" if item.contains('#') => {
            let (day, nth) = item.split_once('#').unwrap_or_default();
            value(day)?;
            return match nth.parse::<u32>() {
                Ok(1..=5) => Ok(()),
                _ => Err(format!("{item:?}: the week after `#` is 1-5")),
            };
        }
        _ => {}
    }
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(step)),
        None => (item, None),
    };
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(n) if n >= 1 => {}
            _ => {
                return Err(format!(
                    "{item:?}: the step after `/` is a whole number ≥ 1"
                ))
            }
        }
    }
    if base == "*" {
        return Ok(());
    }
    match base.split_once('-') {
        Some((from, to)) => {
            let (from, to) = (value(from)?, value(to)?);
            if from > to {
                return Err(format!("{item:?}: the range runs backwards"));
            }
        }
        None => {
            value(base)?;
        }
    }
    Ok(())
}

fn validate_rate(body: &str) -> Result<(), String> {
    let Some((value, unit)) = body.split_once(' ') else {
        return Err(format!("rate({body}) is not `rate(value unit)`"));
    };
    let n: u32 = match value.parse() {
        Ok(n) if n >= 1 => n,
        _ => return Err(format!("rate value {value:?} is not a whole number ≥ 1")),
    };
    let (singular, plural) = match unit {
        "minute" | "minutes" => ("minute", "minutes"),
        "hour" | "hours" => ("hour", "hours"),
        "day" | "days" => ("day", "days"),
        other => {
            return Err(format!(
                "rate unit {other:?} is not minute(s), hour(s) or day(s)"
            ))
        }
    };
    let want = if n == 1 { singular } else { plural };
    if unit != want {
        return Err(format!("rate({n} {unit}) is written rate({n} {want})"));
    }
    Ok(())
}

fn validate_at(body: &str) -> Result<(), String> {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(body, &format)
        .map(|_| ())
        .map_err(|_| format!("at({body}) is not at(yyyy-mm-ddThh:mm:ss)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_scheduler::error::ErrorMetadata;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use portal_core::domain::{Filters, ReminderRule, Scope, TemplateId, TimeZoneName, MAX_ID_LEN};
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: RetryPolicy = RetryPolicy {
        attempts: 4,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    fn id(s: &str) -> RecurringId {
        RecurringId::parse(s).unwrap()
    }

    fn setting(hour: u8, tz: &str, enabled: bool) -> RecurringSetting {
        RecurringSetting {
            setting_id: id("weekly"),
            enabled,
            scope: Scope::All,
            filters: Filters::default(),
            template_id: TemplateId::parse("welcome").unwrap(),
            email_from: None,
            rule: ReminderRule {
                cadence_days: 7,
                max_invitations_per_contact: 3,
            },
            hour_of_day: hour,
            time_zone: TimeZoneName::parse(tz).unwrap(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn adapter() -> EventBridgeSchedules {
        let client = aws_sdk_scheduler::Client::from_conf(
            aws_sdk_scheduler::Config::builder()
                .behavior_version(aws_sdk_scheduler::config::BehaviorVersion::latest())
                .build(),
        );
        EventBridgeSchedules::new(
            client,
            ScheduleTarget {
                group_name: "portal-recurring".into(),
                target_arn: "arn:aws:lambda:us-east-1:123456789012:function:portal-recurring"
                    .into(),
                role_arn: "arn:aws:iam::123456789012:role/portal-scheduler".into(),
                dead_letter_arn: "arn:aws:sqs:us-east-1:123456789012:portal-schedules-dlq".into(),
            },
        )
    }

    #[test]
    fn every_hour_gives_a_six_field_daily_cron_that_validates() {
        for hour in 0..=23u8 {
            let s = setting(hour, "America/Chicago", true);
            let expression = s.schedule_expression();
            assert_eq!(expression, format!("cron(0 {hour} * * ? *)"));
            let fields: Vec<&str> = expression
                .strip_prefix("cron(")
                .and_then(|e| e.strip_suffix(')'))
                .unwrap()
                .split(' ')
                .collect();
            assert_eq!(fields.len(), 6, "{expression}");
            assert_eq!(fields[1], hour.to_string());
            assert_eq!(validate_expression(&expression), Ok(()), "{expression}");
            let spec = adapter().spec(&tenant("acme"), &s).unwrap();
            assert_eq!(spec.expression, expression);
        }
    }

    #[test]
    fn time_zones_round_trip_in_their_canonical_spelling() {
        for tz in [
            "America/Chicago",
            "Pacific/Auckland",
            "Europe/Paris",
            "Asia/Kolkata",
            "America/Argentina/Buenos_Aires",
            "UTC",
        ] {
            assert_eq!(canonical_time_zone(tz), tz);
            let spec = adapter()
                .spec(&tenant("acme"), &setting(9, tz, true))
                .unwrap();
            assert_eq!(spec.time_zone, tz);
        }
        // The database is read without regard to case; Scheduler gets the real spelling.
        let spec = adapter()
            .spec(&tenant("acme"), &setting(9, "america/chicago", true))
            .unwrap();
        assert_eq!(spec.time_zone, "America/Chicago");
        assert_eq!(canonical_time_zone("Not/AZone"), "Not/AZone");
    }

    #[test]
    fn a_spec_carries_state_target_input_retry_policy_and_dead_letter_queue() {
        let a = adapter();
        let spec = a
            .spec(&tenant("acme"), &setting(9, "Europe/Paris", true))
            .unwrap();
        assert_eq!(spec.name, "acme.weekly");
        assert_eq!(spec.state, ScheduleState::Enabled);
        assert_eq!(spec.window.mode(), &FlexibleTimeWindowMode::Off);
        assert_eq!(
            spec.description,
            "Recurring invitations: tenant acme, setting weekly"
        );
        let t = &spec.target;
        assert_eq!(t.arn(), a.target.target_arn);
        assert_eq!(t.role_arn(), a.target.role_arn);
        let input: serde_json::Value = serde_json::from_str(t.input().unwrap()).unwrap();
        assert_eq!(
            input,
            serde_json::json!({"tenant": "acme", "setting_id": "weekly", "scheduled_time": SCHEDULED_TIME})
        );
        let retry = t.retry_policy().unwrap();
        assert_eq!(retry.maximum_retry_attempts(), Some(MAXIMUM_RETRY_ATTEMPTS));
        assert_eq!(retry.maximum_event_age_in_seconds(), Some(3600));
        assert_eq!(
            t.dead_letter_config().and_then(|d| d.arn()),
            Some(a.target.dead_letter_arn.as_str())
        );

        let off = a
            .spec(&tenant("acme"), &setting(9, "Europe/Paris", false))
            .unwrap();
        assert_eq!(off.state, ScheduleState::Disabled);
    }

    fn scheduler_name_ok(name: &str) -> bool {
        (1..=MAX_NAME_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    }

    #[test]
    fn names_are_readable_when_they_can_be_and_always_valid_and_distinct() {
        assert_eq!(schedule_name(&tenant("acme"), &id("weekly")), "acme.weekly");
        assert_eq!(
            schedule_name(&tenant("acme"), &id("new.hoas-2026")),
            "acme.new.hoas-2026"
        );
        let long = "x".repeat(MAX_ID_LEN);
        let cases = [
            ("acme", "weekly"),
            ("acme", "other"),
            ("globex", "weekly"),
            // A `.` in the tenant would make `a.b` + `c` and `a` + `b.c` one name.
            ("a.b", "c"),
            ("a", "b.c"),
            ("acme:eu", "weekly"),
            ("acme", "wk:1"),
            ("acme", long.as_str()),
            (long.as_str(), "weekly"),
            (long.as_str(), long.as_str()),
        ];
        let mut seen = BTreeSet::new();
        for (t, s) in cases {
            let name = schedule_name(&tenant(t), &id(s));
            assert!(scheduler_name_ok(&name), "{t}/{s}: {name}");
            assert!(seen.insert(name.clone()), "{t}/{s}: {name} twice");
            // Deterministic.
            assert_eq!(name, schedule_name(&tenant(t), &id(s)));
        }
        let hashed = schedule_name(&tenant("a.b"), &id("c"));
        assert_eq!(hashed.len(), 64);
        assert!(!hashed.contains('.'), "hashed names never look readable");
        assert_eq!(schedule_name(&tenant("a"), &id("b.c")), "a.b.c");
        let fits = "y".repeat(MAX_NAME_LEN - 5);
        assert_eq!(
            schedule_name(&tenant("acme"), &id(&fits)),
            format!("acme.{fits}")
        );
    }

    #[test]
    fn expressions_are_checked_field_by_field() {
        for ok in [
            "cron(0 9 * * ? *)",
            "cron(0 23 ? * MON-FRI *)",
            "cron(15,45 */2 1-15/3 JAN,JUL ? 2026-2030)",
            "cron(0 8 L * ? *)",
            "cron(0 8 15W * ? *)",
            "cron(0 8 ? * 6L *)",
            "cron(0 8 ? * 3#2 *)",
            "rate(1 day)",
            "rate(5 minutes)",
            "at(2026-03-08T02:30:00)",
        ] {
            assert_eq!(validate_expression(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("bogus", "not cron"),
            ("cron(0 9 * * ?)", "six fields"),
            ("cron(0 9 * * ? * *)", "six fields"),
            ("cron(0  9 * * ? *)", "six fields"),
            ("cron(0 24 * * ? *)", "hours"),
            ("cron(60 9 * * ? *)", "minutes"),
            ("cron(0 9 * * * *)", "exactly one"),
            ("cron(0 9 ? * ? *)", "exactly one"),
            ("cron(0 9 0 * ? *)", "day-of-month"),
            ("cron(0 9 * 13 ? *)", "month"),
            ("cron(0 9 ? * 8 *)", "day-of-week"),
            ("cron(0 9 * * ? 1969)", "year"),
            ("cron(? 9 * * ? *)", "minutes"),
            ("cron(0 9-5 * * ? *)", "backwards"),
            ("cron(0 */0 * * ? *)", "step"),
            ("cron(0 9 ? * 2#6 *)", "week"),
            ("cron(0 nine * * ? *)", "hours"),
            ("rate(0 days)", "rate value"),
            ("rate(1 days)", "rate(1 day)"),
            ("rate(2 day)", "rate(2 days)"),
            ("rate(2 weeks)", "unit"),
            ("at(2026-03-08 02:30)", "at("),
        ] {
            let err = validate_expression(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(validate_expression(&format!("cron(0 9 * * ? *){}", " ".repeat(300))).is_err());
    }

    fn service<E>(err: E, status: u16) -> SdkError<E> {
        let raw = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    fn create_error(code: &str, status: u16) -> SdkError<CreateScheduleError> {
        service(
            CreateScheduleError::generic(ErrorMetadata::builder().code(code).message("m").build()),
            status,
        )
    }

    #[test]
    fn only_errors_waiting_can_fix_are_retried() {
        assert!(retryable(&create_error("ThrottlingException", 400)));
        assert!(retryable(&create_error("InternalServerException", 500)));
        assert!(retryable(&create_error("Odd", 429)));
        assert!(retryable(&create_error("Odd", 503)));
        assert!(retryable::<CreateScheduleError>(&SdkError::timeout_error(
            "slow"
        )));
        for code in [
            "ValidationException",
            "AccessDeniedException",
            "ResourceNotFoundException",
            "ConflictException",
            "ServiceQuotaExceededException",
        ] {
            assert!(!retryable(&create_error(code, 400)), "{code}");
        }
    }

    #[tokio::test]
    async fn throttled_calls_are_retried_then_reported_as_unavailable() {
        let calls = AtomicU32::new(0);
        let out = with_retries(&FAST, || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if n < 2 {
                    Err(create_error("ThrottlingException", 400))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(out.unwrap(), 2);
        assert_eq!(calls.load(Ordering::Relaxed), 3);

        let calls = AtomicU32::new(0);
        let out: Result<(), _> = with_retries(&FAST, || {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(create_error("ThrottlingException", 400)) }
        })
        .await;
        let err = out.unwrap_err();
        assert_eq!(err.attempts, FAST.attempts);
        assert_eq!(calls.load(Ordering::Relaxed), FAST.attempts);
        let err = err.into_error("CreateSchedule", "acme.weekly");
        assert!(
            matches!(&err, ScheduleError::Unavailable { attempts: 4, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("ThrottlingException"), "{err}");
    }

    #[tokio::test]
    async fn a_refused_call_is_not_retried() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = with_retries(&FAST, || {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(create_error("ValidationException", 400)) }
        })
        .await;
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        let err = out.unwrap_err().into_error("CreateSchedule", "acme.weekly");
        assert!(
            matches!(&err, ScheduleError::Rejected { code: Some(c), .. } if c == "ValidationException"),
            "{err:?}"
        );
    }
}
