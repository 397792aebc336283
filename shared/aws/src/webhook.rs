//! The SES event webhook and SES's EventBridge destination: the two ways SES events reach
//! the event core ([`super::events`]), and what each answers.
//!
//! **SNS (HTTPS subscription).** A body that is an SNS envelope is believed only after
//! [`SnsVerifier::verify`]: signature (versions 1 and 2), certificate from an SNS host, topic
//! on the allow-list. A verified `Notification` carries one SES event record; a verified
//! `SubscriptionConfirmation` is confirmed (GET of its host-checked `SubscribeURL`); an
//! `UnsubscribeConfirmation` is logged and nothing else.
//!
//! **Raw delivery.** An SNS subscription with raw message delivery posts the bare SES record,
//! unsigned. It is accepted only when the operator configured a secret and the request
//! presents it as the HTTP Basic password (SNS sends the credentials of an endpoint URL
//! `https://user:secret@host/v1/ses-events`); only the secret's SHA-256 is kept. Anything
//! else unsigned is refused (403).
//!
//! **EventBridge.** SES's EventBridge destination puts events on the default bus; a rule
//! invokes the same function, which hands the event to [`on_eventbridge`].
//!
//! An event that parses but names no invitation of ours (no tags, another event type) and a
//! verified record that does not parse are logged and acknowledged: retrying cannot change
//! them. A store failure is an error, so SNS (5xx) and Lambda (async retry) deliver again;
//! applying an event twice changes nothing.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::ses_events::{parse_eventbridge, parse_record, Parsed, SesEventError};
use crate::sns::{SnsError, SnsErrorClass, SnsPolicy, SnsRegions, SnsVerifier, VerifiedMessage};
use portal_core::ports::{CampaignStore, StoreError};

use portal_core::ports::{EventWebhook, WebhookOutcome, WebhookRefusal};
use portal_core::usecases::events;

/// What the webhook needs besides the store.
pub struct SesWebhook {
    verifier: SnsVerifier,
    /// SHA-256 of the raw-delivery secret; `None`: raw delivery is refused.
    /// SHA-256 of each accepted raw-delivery secret (two during a rotation); empty: off.
    raw_secret: Vec<[u8; 32]>,
}

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not genuine, or not an SNS message at all: see [`SnsError::class`].
    #[error(transparent)]
    Sns(#[from] SnsError),
    /// Neither a signed SNS message nor an authenticated raw delivery.
    #[error("the request is not a signed SNS message{}", if *.raw_enabled { " and carries no valid raw-delivery credentials" } else { "" })]
    Unsigned { raw_enabled: bool },
    /// An authenticated raw delivery whose body is not an SES event record.
    #[error("the body is not an SES event record")]
    BadRecord(#[source] SesEventError),
    /// The store failed: the sender should deliver again.
    #[error("the event could not be recorded")]
    Store(#[from] StoreError),
}

/// A webhook configuration from the environment that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error(transparent)]
    WeakSecret(#[from] WeakSecret),
    #[error("cannot set up HTTPS for fetching SNS certificates")]
    Https(#[source] crate::sns::FetchError),
    #[error("invalid {var}: {reason}")]
    InvalidVar { var: &'static str, reason: String },
}

/// Environment variables the webhook reads (Lambda and the local server alike).
pub const ENV_TOPIC_ARNS: &str = "SNS_TOPIC_ARNS";
pub const ENV_CERT_DIR: &str = "SNS_CERT_DIR";
pub const ENV_RAW_SECRET: &str = "RAW_EVENTS_SECRET";
/// Comma-separated regions whose SNS hosts may be asked for certificates; default
/// `AWS_REGION` (and any region when neither is set: the local server).
pub const ENV_CERT_REGIONS: &str = "SNS_CERT_REGIONS";
/// `true`/`false`: refuse `SignatureVersion` 1 (default [`WebhookDefaults::signature_v2_only`]).
pub const ENV_SIGNATURE_V2_ONLY: &str = "SNS_SIGNATURE_V2_ONLY";
/// Seconds after its `Timestamp` a message is refused as a replay (default
/// [`SnsPolicy::DEFAULT_MAX_AGE`]; 60 to [`MAX_MESSAGE_AGE_SECS`]).
pub const ENV_MAX_MESSAGE_AGE: &str = "SNS_MAX_MESSAGE_AGE_SECONDS";
/// Largest `SNS_MAX_MESSAGE_AGE_SECONDS`: a day.
pub const MAX_MESSAGE_AGE_SECS: i64 = 86_400;

/// What [`SesWebhook::from_env`] assumes where the environment says nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDefaults {
    /// Pre-fetched certificates, unless `SNS_CERT_DIR` names a directory.
    pub cert_dir: Option<std::path::PathBuf>,
    /// Refuse `SignatureVersion` 1 unless `SNS_SIGNATURE_V2_ONLY` says otherwise.
    pub signature_v2_only: bool,
}

impl WebhookDefaults {
    /// On AWS: the stack's topic signs with version 2 (`SignatureVersion: "2"`).
    pub fn lambda() -> Self {
        Self {
            cert_dir: None,
            signature_v2_only: true,
        }
    }

    /// The local server: a tunnelled topic may be anyone's, signing with either version.
    pub fn local(cert_dir: std::path::PathBuf) -> Self {
        Self {
            cert_dir: Some(cert_dir),
            signature_v2_only: false,
        }
    }
}

/// The verification policy the environment configures (see the `ENV_*` constants); `get`
/// looks a variable up, an empty one counting as unset.
pub fn policy_from_lookup(
    get: impl Fn(&str) -> Option<String>,
    defaults: &WebhookDefaults,
) -> Result<SnsPolicy, WebhookConfigError> {
    let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let invalid = |var, reason: String| WebhookConfigError::InvalidVar { var, reason };
    let regions = match (get(ENV_CERT_REGIONS), get("AWS_REGION")) {
        (Some(list), _) => {
            SnsRegions::parse_list(&list).map_err(|r| invalid(ENV_CERT_REGIONS, r))?
        }
        (None, Some(region)) => {
            SnsRegions::parse_list(&region).map_err(|r| invalid("AWS_REGION", r))?
        }
        (None, None) => SnsRegions::Any,
    };
    let signature_v2_only = match get(ENV_SIGNATURE_V2_ONLY) {
        None => defaults.signature_v2_only,
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                return Err(invalid(
                    ENV_SIGNATURE_V2_ONLY,
                    format!("{:?} is not true or false", crate::sns::quote(&v)),
                ))
            }
        },
    };
    let max_age = match get(ENV_MAX_MESSAGE_AGE) {
        None => SnsPolicy::DEFAULT_MAX_AGE,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(secs) if (60..=MAX_MESSAGE_AGE_SECS).contains(&secs) => {
                time::Duration::seconds(secs)
            }
            _ => {
                return Err(invalid(
                    ENV_MAX_MESSAGE_AGE,
                    format!(
                        "{:?} is not a whole number of seconds from 60 to {MAX_MESSAGE_AGE_SECS}",
                        crate::sns::quote(&v)
                    ),
                ))
            }
        },
    };
    Ok(SnsPolicy {
        regions,
        signature_v2_only,
        max_age,
    })
}

/// Shortest raw-delivery secret accepted.
pub const MIN_RAW_SECRET_LEN: usize = 24;

/// A raw-delivery secret that is too short to be one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the raw-delivery secret must be at least {MIN_RAW_SECRET_LEN} characters")]
pub struct WeakSecret;

impl SesWebhook {
    pub fn new(verifier: SnsVerifier) -> Self {
        Self {
            verifier,
            raw_secret: Vec::new(),
        }
    }

    /// The webhook as the environment configures it: `SNS_TOPIC_ARNS` (comma-separated
    /// allow-list; empty = every signed message is refused), `SNS_CERT_DIR` (pre-fetched
    /// certificates, named as the URL's last segment; else `defaults.cert_dir`),
    /// `RAW_EVENTS_SECRET` (empty = raw delivery off), and the policy of
    /// [`policy_from_lookup`] (`SNS_CERT_REGIONS`, `SNS_SIGNATURE_V2_ONLY`,
    /// `SNS_MAX_MESSAGE_AGE_SECONDS`). Certificates not in the directory are fetched over
    /// HTTPS.
    pub fn from_env(defaults: WebhookDefaults) -> Result<Self, WebhookConfigError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let policy = policy_from_lookup(var, &defaults)?;
        let topics: Vec<String> = var(ENV_TOPIC_ARNS)
            .unwrap_or_default()
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let fetcher = crate::sns::HttpsFetcher::new().map_err(WebhookConfigError::Https)?;
        let mut certs = crate::sns::CertStore::new(std::sync::Arc::new(fetcher));
        if let Some(dir) = var(ENV_CERT_DIR)
            .map(std::path::PathBuf::from)
            .or(defaults.cert_dir)
        {
            certs = certs.with_dir(dir);
        }
        tracing::info!(
            regions = %policy.regions,
            signature_v2_only = policy.signature_v2_only,
            max_age_secs = policy.max_age.whole_seconds(),
            "SNS verification policy"
        );
        let webhook = Self::new(SnsVerifier::new(topics, certs).with_policy(policy));
        Ok(match var(ENV_RAW_SECRET) {
            Some(secret) => webhook.with_raw_secret(&secret)?,
            None => webhook,
        })
    }

    /// Accepts raw-delivery records from requests presenting `secret` as their HTTP Basic
    /// password (any user name). During a rotation `secret` holds two lines, the new secret
    /// and the previous one: either is accepted (at most two; blank lines ignored).
    pub fn with_raw_secret(mut self, secret: &str) -> Result<Self, WeakSecret> {
        let keys: Vec<&str> = secret
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if keys.is_empty() || keys.len() > 2 || keys.iter().any(|k| k.len() < MIN_RAW_SECRET_LEN) {
            return Err(WeakSecret);
        }
        self.raw_secret = keys
            .iter()
            .map(|k| Sha256::digest(k.as_bytes()).into())
            .collect();
        Ok(self)
    }

    /// Handles one POST: `body` as received, `password` the HTTP Basic password if any.
    pub async fn handle(
        &self,
        store: &dyn CampaignStore,
        body: &[u8],
        password: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<WebhookOutcome, WebhookError> {
        if looks_like_sns(body) {
            return self.handle_sns(store, body, now).await;
        }
        let authenticated = match password {
            Some(given) => {
                let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
                // Every accepted secret is compared, so the time does not say which matched.
                self.raw_secret.iter().fold(false, |ok, expected| {
                    constant_time_eq(expected, &given) | ok
                })
            }
            None => false,
        };
        if !authenticated {
            return Err(WebhookError::Unsigned {
                raw_enabled: !self.raw_secret.is_empty(),
            });
        }
        let text = std::str::from_utf8(body).map_err(|_| {
            WebhookError::BadRecord(SesEventError::Missing {
                event_type: "raw delivery".into(),
                field: "UTF-8 body",
            })
        })?;
        let parsed = parse_record(text).map_err(WebhookError::BadRecord)?;
        apply_parsed(store, parsed).await
    }

    async fn handle_sns(
        &self,
        store: &dyn CampaignStore,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<WebhookOutcome, WebhookError> {
        match self.verifier.verify(body, now).await? {
            VerifiedMessage::Notification(n) => match parse_record(&n.message) {
                Ok(parsed) => apply_parsed(store, parsed).await,
                Err(e) => {
                    // Genuine, yet not an SES record (another publisher on the topic):
                    // SNS retrying would not help.
                    tracing::warn!(message_id = %n.message_id, error = %e, "SNS notification is not an SES event; ignored");
                    Ok(WebhookOutcome::Ignored {
                        reason: e.to_string(),
                    })
                }
            },
            VerifiedMessage::SubscriptionConfirmation(c) => {
                self.verifier.confirm_subscription(&c).await?;
                Ok(WebhookOutcome::Confirmed {
                    topic_arn: c.topic_arn,
                })
            }
            VerifiedMessage::UnsubscribeConfirmation(u) => {
                tracing::info!(topic_arn = %u.topic_arn, "SNS subscription removed");
                Ok(WebhookOutcome::Unsubscribed {
                    topic_arn: u.topic_arn,
                })
            }
        }
    }
}

#[async_trait::async_trait]
impl EventWebhook for SesWebhook {
    async fn receive(
        &self,
        store: &dyn CampaignStore,
        body: &[u8],
        password: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<WebhookOutcome, WebhookRefusal> {
        self.handle(store, body, password, now)
            .await
            .map_err(WebhookError::into_refusal)
    }
}

impl WebhookError {
    /// The refusal this error is, by who must act on it.
    pub fn into_refusal(self) -> WebhookRefusal {
        match self {
            WebhookError::Store(e) => WebhookRefusal::Store(e),
            WebhookError::Sns(e) => match e.class() {
                SnsErrorClass::Malformed => WebhookRefusal::Malformed(Box::new(e)),
                SnsErrorClass::Forbidden => WebhookRefusal::NotGenuine(Box::new(e)),
                SnsErrorClass::Unavailable => WebhookRefusal::Unavailable(Box::new(e)),
            },
            e @ WebhookError::Unsigned { .. } => WebhookRefusal::NotGenuine(Box::new(e)),
            e @ WebhookError::BadRecord(_) => WebhookRefusal::Malformed(Box::new(e)),
        }
    }
}

/// Handles one event from SES's EventBridge destination. Only a store failure is an error.
pub async fn on_eventbridge(
    store: &dyn CampaignStore,
    event: &serde_json::Value,
) -> Result<WebhookOutcome, StoreError> {
    match parse_eventbridge(event) {
        Ok(parsed) => match apply_parsed(store, parsed).await {
            Ok(o) => Ok(o),
            Err(WebhookError::Store(e)) => Err(e),
            Err(other) => Ok(WebhookOutcome::Ignored {
                reason: other.to_string(),
            }),
        },
        Err(e) => {
            tracing::warn!(error = %e, "EventBridge event is not an SES event; ignored");
            Ok(WebhookOutcome::Ignored {
                reason: e.to_string(),
            })
        }
    }
}

/// Applies a parsed record; a record about nothing of ours is logged and acknowledged.
async fn apply_parsed(
    store: &dyn CampaignStore,
    parsed: Parsed,
) -> Result<WebhookOutcome, WebhookError> {
    let event = match parsed {
        Parsed::Event(e) => e,
        Parsed::Ignored { reason } => {
            tracing::info!(%reason, "SES event ignored");
            return Ok(WebhookOutcome::Ignored {
                reason: reason.to_string(),
            });
        }
    };
    match event.addressed_fact() {
        Ok(fact) => {
            let report = events::apply(store, [fact]).await?;
            tracing::info!(message_id = %event.message_id, event = event.kind.name(), ?report, "SES event applied");
            Ok(WebhookOutcome::Applied { report })
        }
        Err(reason) => {
            tracing::info!(message_id = %event.message_id, event = event.kind.name(), %reason, "SES event ignored");
            Ok(WebhookOutcome::Ignored {
                reason: reason.to_string(),
            })
        }
    }
}

/// Whether the body is an SNS envelope (a JSON object with `Type` and `Signature`), which
/// must then verify; anything else is a raw-delivery candidate.
fn looks_like_sns(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "Type")]
        kind: Option<serde::de::IgnoredAny>,
        #[serde(rename = "Signature")]
        signature: Option<serde::de::IgnoredAny>,
        #[serde(rename = "TopicArn")]
        topic: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(body)
        .is_ok_and(|p| p.kind.is_some() && (p.signature.is_some() || p.topic.is_some()))
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_envelope_with_a_type_and_a_signature_or_topic_counts_as_sns() {
        assert!(looks_like_sns(
            br#"{"Type":"Notification","Signature":"x","TopicArn":"t"}"#
        ));
        assert!(looks_like_sns(br#"{"Type":"Notification","TopicArn":"t"}"#));
        assert!(!looks_like_sns(
            br#"{"eventType":"Delivery","mail":{"messageId":"m"}}"#
        ));
        assert!(!looks_like_sns(b"not json"));
    }

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn on_lambda_the_policy_defaults_to_the_functions_region_and_version_2() {
        let p = policy_from_lookup(
            lookup(&[("AWS_REGION", "eu-west-1")]),
            &WebhookDefaults::lambda(),
        )
        .unwrap();
        assert_eq!(p.regions, SnsRegions::parse_list("eu-west-1").unwrap());
        assert!(p.signature_v2_only);
        assert_eq!(p.max_age, SnsPolicy::DEFAULT_MAX_AGE);

        let local = WebhookDefaults::local("certs".into());
        let p = policy_from_lookup(lookup(&[]), &local).unwrap();
        assert_eq!(p.regions, SnsRegions::Any);
        assert!(!p.signature_v2_only);

        let p = policy_from_lookup(
            lookup(&[
                ("AWS_REGION", "eu-west-1"),
                (ENV_CERT_REGIONS, "us-east-1,us-west-2"),
                (ENV_SIGNATURE_V2_ONLY, "false"),
                (ENV_MAX_MESSAGE_AGE, "600"),
            ]),
            &WebhookDefaults::lambda(),
        )
        .unwrap();
        assert!(p.regions.allows("us-west-2") && !p.regions.allows("eu-west-1"));
        assert!(!p.signature_v2_only);
        assert_eq!(p.max_age, time::Duration::minutes(10));
    }

    #[test]
    fn a_bad_policy_variable_stops_the_start_naming_it() {
        for (var, value) in [
            (ENV_CERT_REGIONS, "sns.evil.com"),
            (ENV_SIGNATURE_V2_ONLY, "maybe"),
            (ENV_MAX_MESSAGE_AGE, "59"),
            (ENV_MAX_MESSAGE_AGE, "86401"),
            (ENV_MAX_MESSAGE_AGE, "forever"),
        ] {
            let err = policy_from_lookup(lookup(&[(var, value)]), &WebhookDefaults::lambda())
                .unwrap_err()
                .to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn a_short_raw_secret_is_refused() {
        let store = crate::sns::CertStore::new(std::sync::Arc::new(NoFetch));
        let hook = SesWebhook::new(SnsVerifier::new(Vec::<String>::new(), store));
        assert!(hook.with_raw_secret("short").is_err());
    }

    struct NoFetch;

    #[async_trait::async_trait]
    impl crate::sns::CertFetcher for NoFetch {
        async fn get(&self, _: &url::Url) -> Result<Vec<u8>, crate::sns::FetchError> {
            Err(crate::sns::FetchError::Status(404))
        }
    }
}
