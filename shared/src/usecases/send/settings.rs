//! Running the send steps in a process of their own (the Lambda functions): the settings
//! read from the environment at cold start, the EventBridge envelope a message arrives in,
//! and the bus and mailer of a process that must publish or send nothing.
//!
//! # Environment
//!
//! | variable | required | meaning |
//! |---|---|---|
//! | `TOKEN_SECRET` | yes | HMAC key deriving registration tokens, ≥ 32 bytes ([`TokenDeriver`]) |
//! | `UNSUBSCRIBE_SECRET` | yes | HMAC key signing unsubscribe links, ≥ 32 bytes |
//! | `PUBLIC_URL` | yes | base of the links in emails, `http(s)://host[/path]` (a trailing `/` is dropped) |
//! | `MAX_SEND_RATE` | no | most sends per second *per process*, a decimal; `0` = unlimited (default 14) |
//! | `FAILURE_THRESHOLD` | no | a campaign pauses after more failed invitations than this (default 100) |
//! | `TOKEN_TTL_DAYS` | no | days a registration link stays valid, 1–365 (default 14) |
//! | `OUTCOME_FLUSH` | no | sends between two outcome writes, ≥ 1 (default [`LAMBDA_OUTCOME_FLUSH`]) |
//! | `PAGE_SIZE` | no | recipients claimed per fan-out step, 1–500 (default 500) |
//!
//! An empty optional variable counts as unset (CloudFormation passes empty strings). Errors
//! name the variable and never echo a secret.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{
    RateLimiter, SendConfig, SendDeps, TokenDeriver, TokioSleeper, MAX_BATCH, MIN_TOKEN_SECRET_LEN,
};
use crate::domain::unsubscribe::{UnsubscribeSigner, MIN_UNSUBSCRIBE_SECRET_LEN};
use crate::ports::{
    BusError, Clock, EventBus, MailError, Mailer, RawEmail, SendMessage, SentMessage, Store,
    EVENT_SOURCE, MAX_CLAIMS, MAX_PAGE_SIZE,
};

/// The variables [`SendSettings::from_env`] requires.
pub const REQUIRED_VARS: &[&str] = &["TOKEN_SECRET", "UNSUBSCRIBE_SECRET", "PUBLIC_URL"];

/// [`SendConfig::outcome_flush`] on Lambda.
///
/// A delivery batch carries up to [`MAX_BATCH`] (250) recipients. Writing the outcomes after
/// every send costs one DynamoDB transaction per email (1,000 per 1,000 invitations) and
/// leaves a one-email window; writing them every 50 sends costs 20 per 1,000 and means a
/// process killed mid-batch (timeout, out of memory) re-sends at most the 50 emails whose
/// outcomes were not yet written when Lambda retries the batch. `OUTCOME_FLUSH=1` narrows the
/// window; `99` makes it one transaction per write.
pub const LAMBDA_OUTCOME_FLUSH: usize = 50;

/// Longest `TOKEN_TTL_DAYS`.
pub const MAX_TOKEN_TTL_DAYS: u32 = 365;

/// A setting that is missing or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {0} is not valid UTF-8")]
    NotUnicode(&'static str),
    /// The value is deliberately not part of the message.
    #[error(
        "environment variable {name} is too short: a secret of at least {min} bytes is required"
    )]
    ShortSecret { name: &'static str, min: usize },
    #[error("environment variable {name}={value:?} is not valid: expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// What a send process is configured with, read once at cold start.
#[derive(Debug, Clone)]
pub struct SendSettings {
    pub tokens: Arc<TokenDeriver>,
    pub unsubscribe: UnsubscribeSigner,
    /// Base of the links in emails, no trailing `/`.
    pub public_url: String,
    pub config: SendConfig,
}

impl SendSettings {
    /// Reads the settings from the process environment (see the module docs).
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name))
    }

    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(
        get: impl Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Self, SettingsError> {
        let var = |name: &'static str| -> Result<Option<String>, SettingsError> {
            match get(name) {
                Ok(v) if v.trim().is_empty() => Ok(None),
                Ok(v) => Ok(Some(v)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => Err(SettingsError::NotUnicode(name)),
            }
        };
        let required = |name: &'static str| var(name)?.ok_or(SettingsError::Missing(name));

        let tokens = TokenDeriver::new(required("TOKEN_SECRET")?).map_err(|_| {
            SettingsError::ShortSecret {
                name: "TOKEN_SECRET",
                min: MIN_TOKEN_SECRET_LEN,
            }
        })?;
        let unsubscribe =
            UnsubscribeSigner::new(required("UNSUBSCRIBE_SECRET")?).map_err(|_| {
                SettingsError::ShortSecret {
                    name: "UNSUBSCRIBE_SECRET",
                    min: MIN_UNSUBSCRIBE_SECRET_LEN,
                }
            })?;
        let public_url = parse_public_url(&required("PUBLIC_URL")?)?;

        let mut config = SendConfig {
            outcome_flush: LAMBDA_OUTCOME_FLUSH,
            ..SendConfig::default()
        };
        if let Some(v) = var("MAX_SEND_RATE")? {
            let rate = parse::<f64>("MAX_SEND_RATE", &v, "a rate per second ≥ 0 (0 = unlimited)")
                .and_then(|r| {
                if r.is_finite() && r >= 0.0 {
                    Ok(r)
                } else {
                    Err(invalid(
                        "MAX_SEND_RATE",
                        &v,
                        "a rate per second ≥ 0 (0 = unlimited)",
                    ))
                }
            })?;
            config.max_send_rate = (rate > 0.0).then_some(rate);
        }
        if let Some(v) = var("FAILURE_THRESHOLD")? {
            config.failure_threshold = parse(
                "FAILURE_THRESHOLD",
                &v,
                "a whole number of failed invitations",
            )?;
        }
        if let Some(v) = var("TOKEN_TTL_DAYS")? {
            const EXPECTED: &str = "a whole number of days from 1 to 365";
            let days: u32 = parse("TOKEN_TTL_DAYS", &v, EXPECTED)?;
            if !(1..=MAX_TOKEN_TTL_DAYS).contains(&days) {
                return Err(invalid("TOKEN_TTL_DAYS", &v, EXPECTED));
            }
            config.token_ttl = time::Duration::days(i64::from(days));
        }
        if let Some(v) = var("OUTCOME_FLUSH")? {
            const EXPECTED: &str = "a whole number of sends ≥ 1";
            let n: usize = parse("OUTCOME_FLUSH", &v, EXPECTED)?;
            if n == 0 {
                return Err(invalid("OUTCOME_FLUSH", &v, EXPECTED));
            }
            // More than a batch behaves like a whole batch.
            config.outcome_flush = n.min(MAX_BATCH);
        }
        if let Some(v) = var("PAGE_SIZE")? {
            const EXPECTED: &str = "a whole number of recipients from 1 to 500";
            let n: u32 = parse("PAGE_SIZE", &v, EXPECTED)?;
            if n == 0 || n > MAX_PAGE_SIZE.min(MAX_CLAIMS as u32) {
                return Err(invalid("PAGE_SIZE", &v, EXPECTED));
            }
            config.page_size = n;
        }

        Ok(Self {
            tokens: Arc::new(tokens),
            unsubscribe,
            public_url,
            config,
        })
    }

    /// The dependencies of [`super::handle`]: these settings, the given adapters, the tokio
    /// timer and a rate limiter at [`SendConfig::max_send_rate`].
    pub fn deps(
        self,
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
    ) -> SendDeps {
        SendDeps {
            store,
            mailer,
            clock,
            sleeper: Arc::new(TokioSleeper),
            unsubscribe: Arc::new(self.unsubscribe),
            tokens: self.tokens,
            public_url: self.public_url,
            limiter: Arc::new(RateLimiter::new(self.config.max_send_rate)),
            config: self.config,
        }
    }
}

fn invalid(name: &'static str, value: &str, expected: &'static str) -> SettingsError {
    SettingsError::Invalid {
        name,
        value: value.chars().take(80).collect(),
        expected,
    }
}

fn parse<T: std::str::FromStr>(
    name: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, SettingsError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(name, value, expected))
}

/// `http(s)://host[/path]`, without query or fragment; trailing `/`s dropped.
fn parse_public_url(raw: &str) -> Result<String, SettingsError> {
    const EXPECTED: &str = "an http:// or https:// URL without query or fragment";
    let url = raw.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("PUBLIC_URL", raw, EXPECTED))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || url.contains(['?', '#']) || url.contains(char::is_whitespace) {
        return Err(invalid("PUBLIC_URL", raw, EXPECTED));
    }
    Ok(url.to_owned())
}

/// An EventBridge event that is not a send message of this system.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the event has no `{0}` string")]
    Missing(&'static str),
    #[error("the event comes from {found:?}, not from {EVENT_SOURCE:?}")]
    WrongSource { found: String },
    #[error("the event's detail is not a send message: {0}")]
    Detail(#[source] serde_json::Error),
    /// The rules route on `detail-type`: a detail of another kind would reach the wrong
    /// function.
    #[error("the event's detail-type {detail_type:?} does not match its detail ({actual:?})")]
    Mismatch {
        detail_type: String,
        actual: &'static str,
    },
}

/// The [`SendMessage`] in an EventBridge event as a rule target receives it: `source` must be
/// [`EVENT_SOURCE`], `detail` the message as the EventBridge adapter serialized it, and
/// `detail-type` the message's own [`SendMessage::detail_type`].
pub fn message_from_eventbridge(event: &serde_json::Value) -> Result<SendMessage, EnvelopeError> {
    let source = event["source"]
        .as_str()
        .ok_or(EnvelopeError::Missing("source"))?;
    if source != EVENT_SOURCE {
        return Err(EnvelopeError::WrongSource {
            found: source.chars().take(80).collect(),
        });
    }
    let detail_type = event["detail-type"]
        .as_str()
        .ok_or(EnvelopeError::Missing("detail-type"))?;
    let message = SendMessage::deserialize(&event["detail"]).map_err(EnvelopeError::Detail)?;
    if message.detail_type() != detail_type {
        return Err(EnvelopeError::Mismatch {
            detail_type: detail_type.chars().take(80).collect(),
            actual: message.detail_type(),
        });
    }
    Ok(message)
}

/// Why a send function could not take an event: what Lambda records for it (and hands to
/// the failure destination).
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    NotASendMessage(#[from] EnvelopeError),
    #[error(transparent)]
    SendFailed(#[from] super::SendError),
}

impl EventError {
    /// A stable error type for Lambda's records.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NotASendMessage(_) => "NotASendMessage",
            Self::SendFailed(_) => "SendFailed",
        }
    }

    /// The message with its whole cause chain, `: `-separated.
    pub fn chain(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }
}

/// The body of a send function: the event's message is handled when it is of the kind
/// `wants` (a [`SendMessage::detail_type`]); another kind is logged and acknowledged (a
/// rule routing the wrong detail-type must not retry forever). An error goes back to
/// Lambda, whose asynchronous retry redelivers the event (every step is idempotent).
pub async fn on_event(
    deps: &super::SendDeps,
    bus: &dyn EventBus,
    event: &serde_json::Value,
    wants: &'static str,
) -> Result<serde_json::Value, EventError> {
    let msg = message_from_eventbridge(event).map_err(|e| {
        tracing::error!(error = %e, "the event is not a send message");
        EventError::from(e)
    })?;
    if msg.detail_type() != wants {
        tracing::warn!(
            kind = msg.detail_type(),
            campaign = %msg.campaign_id(),
            wants,
            "another kind of message: acknowledged without action (check the rule's pattern)"
        );
        return Ok(serde_json::json!({ "ignored": msg.detail_type() }));
    }
    let report = super::handle(deps, bus, &msg).await.map_err(|e| {
        let e = EventError::from(e);
        tracing::error!(error = %e.chain(), kind = wants, "send step failed; Lambda will retry it");
        e
    })?;
    tracing::info!(
        kind = wants,
        sent = report.sent,
        failed = report.failed,
        "send step done"
    );
    Ok(serde_json::json!({ "done": wants, "sent": report.sent, "failed": report.failed }))
}

/// The bus of a process that publishes nothing (the delivery function, whose role may not
/// call `events:PutEvents`): an empty publish succeeds, anything else is refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBus;

#[async_trait]
impl EventBus for NoBus {
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        Err(BusError::Backend(format!(
            "this process has no event bus, yet {} message(s) were to be published",
            messages.len()
        )))
    }
}

/// The mailer of a process that sends nothing (the fan-out function, whose role may not
/// call SES): every send is refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMailer;

#[async_trait]
impl Mailer for NoMailer {
    async fn send_raw(&self, _msg: &RawEmail) -> Result<SentMessage, MailError> {
        Err(MailError::Backend {
            detail: "this process has no mailer".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::env::VarError;

    use serde_json::json;

    use super::*;
    use crate::domain::{CampaignId, TenantId};
    use crate::ports::{DETAIL_TYPE_DELIVER, DETAIL_TYPE_FAN_OUT};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn with(vars: &[(&str, &str)]) -> Result<SendSettings, SettingsError> {
        let mut env: HashMap<String, String> = [
            ("TOKEN_SECRET", SECRET),
            ("UNSUBSCRIBE_SECRET", SECRET),
            ("PUBLIC_URL", "https://invite.example.org/"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in vars {
            if v.is_empty() {
                env.remove(*k);
            } else {
                env.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        SendSettings::from_lookup(|name| env.get(name).cloned().ok_or(VarError::NotPresent))
    }

    #[test]
    fn the_required_variables_alone_give_the_lambda_defaults() {
        let s = with(&[]).unwrap();
        assert_eq!(s.public_url, "https://invite.example.org");
        assert_eq!(s.config.outcome_flush, LAMBDA_OUTCOME_FLUSH);
        assert_eq!(s.config.max_send_rate, SendConfig::default().max_send_rate);
        assert_eq!(s.config.token_ttl, time::Duration::days(14));
        assert_eq!(s.config.page_size, 500);
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for name in REQUIRED_VARS {
            let err = with(&[(name, "")]).unwrap_err();
            assert_eq!(err, SettingsError::Missing(name));
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn a_short_secret_is_refused_by_name_without_echoing_it() {
        for name in ["TOKEN_SECRET", "UNSUBSCRIBE_SECRET"] {
            let err = with(&[(name, "hunter2-too-short")]).unwrap_err();
            assert_eq!(err, SettingsError::ShortSecret { name, min: 32 });
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_non_unicode_variable_is_named() {
        let err = SendSettings::from_lookup(|name| {
            if name == "TOKEN_SECRET" {
                Err(VarError::NotUnicode(std::ffi::OsString::from("x")))
            } else {
                Ok(SECRET.to_owned())
            }
        })
        .unwrap_err();
        assert_eq!(err, SettingsError::NotUnicode("TOKEN_SECRET"));
    }

    #[test]
    fn a_public_url_must_be_a_plain_http_url() {
        for bad in [
            "invite.example.org",
            "ftp://invite.example.org",
            "https://",
            "https:///path",
            "https://invite.example.org/?x=1",
            "https://invite.example.org/#top",
        ] {
            assert!(
                matches!(
                    with(&[("PUBLIC_URL", bad)]),
                    Err(SettingsError::Invalid {
                        name: "PUBLIC_URL",
                        ..
                    })
                ),
                "{bad} was accepted"
            );
        }
        let s = with(&[("PUBLIC_URL", "http://localhost:3000/portal//")]).unwrap();
        assert_eq!(s.public_url, "http://localhost:3000/portal");
    }

    #[test]
    fn optional_numbers_are_read_and_bad_ones_refused_by_name() {
        let s = with(&[
            ("MAX_SEND_RATE", "2.5"),
            ("FAILURE_THRESHOLD", "7"),
            ("TOKEN_TTL_DAYS", "30"),
            ("OUTCOME_FLUSH", "1"),
            ("PAGE_SIZE", "50"),
        ])
        .unwrap();
        assert_eq!(s.config.max_send_rate, Some(2.5));
        assert_eq!(s.config.failure_threshold, 7);
        assert_eq!(s.config.token_ttl, time::Duration::days(30));
        assert_eq!(s.config.outcome_flush, 1);
        assert_eq!(s.config.page_size, 50);
        assert_eq!(
            with(&[("MAX_SEND_RATE", "0")])
                .unwrap()
                .config
                .max_send_rate,
            None,
            "0 is unlimited"
        );
        assert_eq!(
            with(&[("OUTCOME_FLUSH", "1000")])
                .unwrap()
                .config
                .outcome_flush,
            MAX_BATCH
        );

        for (name, bad) in [
            ("MAX_SEND_RATE", "fast"),
            ("MAX_SEND_RATE", "-1"),
            ("MAX_SEND_RATE", "inf"),
            ("MAX_SEND_RATE", "NaN"),
            ("FAILURE_THRESHOLD", "-3"),
            ("TOKEN_TTL_DAYS", "0"),
            ("TOKEN_TTL_DAYS", "366"),
            ("TOKEN_TTL_DAYS", "1.5"),
            ("OUTCOME_FLUSH", "0"),
            ("PAGE_SIZE", "0"),
            ("PAGE_SIZE", "501"),
        ] {
            let err = with(&[(name, bad)]).unwrap_err();
            assert!(
                matches!(&err, SettingsError::Invalid { name: n, value, .. } if *n == name && value == bad),
                "{name}={bad}: {err:?}"
            );
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn deps_carry_the_settings_and_a_limiter_at_the_rate() {
        let s = with(&[("MAX_SEND_RATE", "4")]).unwrap();
        let store = Arc::new(crate::adapters::sqlite::SqliteStore::open_in_memory().unwrap());
        // Never written to: nothing is sent here.
        let mailer = Arc::new(crate::adapters::outbox::Outbox::in_data_dir(
            std::path::Path::new("/nonexistent"),
        ));
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let deps = s.deps(store, mailer, Arc::new(crate::ports::FixedClock::new(now)));
        assert_eq!(deps.public_url, "https://invite.example.org");
        assert_eq!(deps.config.outcome_flush, LAMBDA_OUTCOME_FLUSH);
        assert_eq!(deps.limiter.reserve(now), std::time::Duration::ZERO);
        assert_eq!(
            deps.limiter.reserve(now),
            std::time::Duration::from_millis(250)
        );
    }

    #[tokio::test]
    async fn a_send_function_acknowledges_other_kinds_and_reports_failures_with_their_type() {
        let store = Arc::new(crate::adapters::sqlite::SqliteStore::open_in_memory().unwrap());
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let deps = with(&[]).unwrap().deps(
            store,
            Arc::new(NoMailer),
            Arc::new(crate::ports::FixedClock::new(now)),
        );
        let fan_out = envelope(
            DETAIL_TYPE_FAN_OUT,
            json!({"type": "fan_out", "tenant": "acme", "campaign_id": campaign().as_str(), "cursor": null}),
        );
        // A fan-out event reaching the delivery function: acknowledged, nothing done.
        let ignored = on_event(&deps, &NoBus, &fan_out, DETAIL_TYPE_DELIVER)
            .await
            .unwrap();
        assert_eq!(ignored, json!({ "ignored": DETAIL_TYPE_FAN_OUT }));
        // The right kind for a campaign that does not exist: a failure Lambda retries.
        let err = on_event(&deps, &NoBus, &fan_out, DETAIL_TYPE_FAN_OUT)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "SendFailed");
        assert!(err.chain().contains("not found"), "{}", err.chain());
        // Not one of ours at all.
        let mut foreign = fan_out.clone();
        foreign["source"] = json!("aws.s3");
        let err = on_event(&deps, &NoBus, &foreign, DETAIL_TYPE_FAN_OUT)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "NotASendMessage");
        assert!(err.chain().contains("aws.s3"), "{}", err.chain());
    }

    fn envelope(detail_type: &str, detail: serde_json::Value) -> serde_json::Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": detail_type,
            "source": "portal-invitations",
            "account": "111122223333",
            "time": "2025-03-14T09:26:53Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": detail
        })
    }

    fn campaign() -> CampaignId {
        CampaignId::parse("0195b2c3d4e5f60718293a4b5c6d7e8f").unwrap()
    }

    #[test]
    fn a_fan_out_event_as_eventbridge_delivers_it_is_read() {
        let event = envelope(
            DETAIL_TYPE_FAN_OUT,
            json!({
                "type": "fan_out",
                "tenant": "acme",
                "campaign_id": "0195b2c3d4e5f60718293a4b5c6d7e8f",
                "cursor": "eyJwayI6IngifQ"
            }),
        );
        assert_eq!(
            message_from_eventbridge(&event).unwrap(),
            SendMessage::FanOut {
                tenant: TenantId::parse("acme").unwrap(),
                campaign_id: campaign(),
                cursor: Some("eyJwayI6IngifQ".into()),
            }
        );
    }

    #[test]
    fn what_the_eventbridge_adapter_publishes_reads_back_as_the_same_message() {
        let msg = SendMessage::Deliver {
            tenant: TenantId::parse("acme").unwrap(),
            campaign_id: campaign(),
            recipients: vec![],
        };
        let event = envelope(DETAIL_TYPE_DELIVER, serde_json::to_value(&msg).unwrap());
        assert_eq!(message_from_eventbridge(&event).unwrap(), msg);
    }

    #[test]
    fn events_of_another_source_or_shape_are_refused() {
        let detail = json!({"type": "fan_out", "tenant": "acme",
            "campaign_id": "0195b2c3d4e5f60718293a4b5c6d7e8f", "cursor": null});

        let mut other = envelope(DETAIL_TYPE_FAN_OUT, detail.clone());
        other["source"] = json!("aws.s3");
        assert!(matches!(
            message_from_eventbridge(&other),
            Err(EnvelopeError::WrongSource { found }) if found == "aws.s3"
        ));

        let mut no_source = envelope(DETAIL_TYPE_FAN_OUT, detail.clone());
        no_source.as_object_mut().unwrap().remove("source");
        assert!(matches!(
            message_from_eventbridge(&no_source),
            Err(EnvelopeError::Missing("source"))
        ));

        let mut no_type = envelope(DETAIL_TYPE_FAN_OUT, detail.clone());
        no_type.as_object_mut().unwrap().remove("detail-type");
        assert!(matches!(
            message_from_eventbridge(&no_type),
            Err(EnvelopeError::Missing("detail-type"))
        ));

        assert!(matches!(
            message_from_eventbridge(&envelope(DETAIL_TYPE_DELIVER, detail)),
            Err(EnvelopeError::Mismatch { .. })
        ));

        let bad_id = json!({"type": "fan_out", "tenant": "acme",
            "campaign_id": "not-a-campaign", "cursor": null});
        assert!(matches!(
            message_from_eventbridge(&envelope(DETAIL_TYPE_FAN_OUT, bad_id)),
            Err(EnvelopeError::Detail(_))
        ));
        assert!(matches!(
            message_from_eventbridge(&json!("not an event")),
            Err(EnvelopeError::Missing("source"))
        ));
    }

    #[tokio::test]
    async fn no_bus_accepts_nothing_to_publish_and_refuses_anything_else() {
        NoBus.publish(&[]).await.unwrap();
        let msg = SendMessage::FanOut {
            tenant: TenantId::parse("acme").unwrap(),
            campaign_id: campaign(),
            cursor: None,
        };
        assert!(matches!(
            NoBus.publish(&[msg]).await,
            Err(BusError::Backend(_))
        ));
    }
}
