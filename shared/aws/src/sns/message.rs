//! The JSON document SNS POSTs to an HTTP(S) subscriber, the exact string it signs, and what a
//! verified message gives its caller.
//!
//! Field names are AWS's (`SigningCertURL`; `SigningCertUrl`, as Lambda spells it, is accepted
//! too, but not both at once). Unknown fields are ignored; a field present twice is malformed,
//! so the value checked can never differ from the value used.
//!
//! String to sign, each pair as `Key\nvalue\n`, in this order:
//! - `Notification`: `Message`, `MessageId`, `Subject` (only if present), `Timestamp`,
//!   `TopicArn`, `Type`;
//! - `SubscriptionConfirmation` and `UnsubscribeConfirmation`: `Message`, `MessageId`,
//!   `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type`.

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

use super::{quote, SnsError};

/// The three documented message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl MessageType {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "Notification" => Some(Self::Notification),
            "SubscriptionConfirmation" => Some(Self::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(Self::UnsubscribeConfirmation),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Notification => "Notification",
            Self::SubscriptionConfirmation => "SubscriptionConfirmation",
            Self::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }
}

/// `SignatureVersion`: which digest SNS used under its RSA PKCS#1 v1.5 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureVersion {
    /// `"1"`: SHA1withRSA.
    V1,
    /// `"2"`: SHA256withRSA.
    V2,
}

/// The body as sent: every field optional, so a missing one is our error, not serde's.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Wire {
    #[serde(rename = "Type")]
    kind: Option<String>,
    message_id: Option<String>,
    topic_arn: Option<String>,
    subject: Option<String>,
    message: Option<String>,
    timestamp: Option<String>,
    signature_version: Option<String>,
    signature: Option<String>,
    #[serde(rename = "SigningCertURL", alias = "SigningCertUrl")]
    signing_cert_url: Option<String>,
    #[serde(rename = "SubscribeURL")]
    subscribe_url: Option<String>,
    token: Option<String>,
}

/// A parsed envelope, not yet verified.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub kind: MessageType,
    pub message_id: String,
    pub topic_arn: String,
    /// Notifications only; `None` when SNS sent no `Subject` (or `null`).
    pub subject: Option<String>,
    pub message: String,
    /// As sent: the string to sign uses these exact characters.
    pub timestamp: String,
    pub signature_version: String,
    pub signature: String,
    pub signing_cert_url: String,
    /// Confirmations only (required there).
    pub subscribe_url: Option<String>,
    /// Confirmations only (required there).
    pub token: Option<String>,
}

fn required(value: Option<String>, name: &str) -> Result<String, SnsError> {
    value.ok_or_else(|| SnsError::Malformed(format!("missing field `{name}`")))
}

impl Envelope {
    /// Parses `body`. A missing `Type` or any other missing field the type needs is
    /// [`SnsError::Malformed`]; a `Type` outside the three documented ones is
    /// [`SnsError::UnknownType`].
    pub fn parse(body: &[u8]) -> Result<Self, SnsError> {
        let wire: Wire =
            serde_json::from_slice(body).map_err(|e| SnsError::Malformed(quote(&e.to_string())))?;
        let kind_str = required(wire.kind, "Type")?;
        let kind =
            MessageType::parse(&kind_str).ok_or_else(|| SnsError::UnknownType(quote(&kind_str)))?;
        let (subject, subscribe_url, token) = match kind {
            // SNS signs no SubscribeURL or Token in a notification: whatever is there is ignored.
            MessageType::Notification => (wire.subject, None, None),
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => (
                None,
                Some(required(wire.subscribe_url, "SubscribeURL")?),
                Some(required(wire.token, "Token")?),
            ),
        };
        Ok(Self {
            kind,
            message_id: required(wire.message_id, "MessageId")?,
            topic_arn: required(wire.topic_arn, "TopicArn")?,
            subject,
            message: required(wire.message, "Message")?,
            timestamp: required(wire.timestamp, "Timestamp")?,
            signature_version: required(wire.signature_version, "SignatureVersion")?,
            signature: required(wire.signature, "Signature")?,
            signing_cert_url: required(wire.signing_cert_url, "SigningCertURL")?,
            subscribe_url,
            token,
        })
    }

    /// `SignatureVersion` as one we can verify, or [`SnsError::UnsupportedSignatureVersion`].
    pub fn signature_version(&self) -> Result<SignatureVersion, SnsError> {
        match self.signature_version.as_str() {
            "1" => Ok(SignatureVersion::V1),
            "2" => Ok(SignatureVersion::V2),
            other => Err(SnsError::UnsupportedSignatureVersion(quote(other))),
        }
    }

    /// `Timestamp` as a time; SNS sends RFC 3339 in UTC (`2012-04-25T21:49:25.719Z`).
    pub fn parsed_timestamp(&self) -> Result<OffsetDateTime, SnsError> {
        OffsetDateTime::parse(&self.timestamp, &Rfc3339).map_err(|_| {
            SnsError::Malformed(format!(
                "Timestamp {:?} is not RFC 3339",
                quote(&self.timestamp)
            ))
        })
    }

    /// The exact bytes SNS signed (see the module docs for the fields and their order).
    pub fn string_to_sign(&self) -> String {
        let mut out = String::with_capacity(
            self.message.len() + self.subject.as_ref().map_or(0, String::len) + 512,
        );
        let mut pair = |key: &str, value: &str| {
            out.push_str(key);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        pair("Message", &self.message);
        pair("MessageId", &self.message_id);
        match self.kind {
            MessageType::Notification => {
                if let Some(subject) = &self.subject {
                    pair("Subject", subject);
                }
                pair("Timestamp", &self.timestamp);
            }
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
                pair(
                    "SubscribeURL",
                    self.subscribe_url.as_deref().unwrap_or_default(),
                );
                pair("Timestamp", &self.timestamp);
                pair("Token", self.token.as_deref().unwrap_or_default());
            }
        }
        pair("TopicArn", &self.topic_arn);
        pair("Type", self.kind.as_str());
        out
    }
}

/// A message whose signature verified, for a topic on the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedMessage {
    Notification(Notification),
    SubscriptionConfirmation(SubscriptionConfirmation),
    UnsubscribeConfirmation(UnsubscribeConfirmation),
}

impl VerifiedMessage {
    pub fn topic_arn(&self) -> &str {
        match self {
            Self::Notification(n) => &n.topic_arn,
            Self::SubscriptionConfirmation(c) => &c.topic_arn,
            Self::UnsubscribeConfirmation(u) => &u.topic_arn,
        }
    }

    pub fn message_id(&self) -> &str {
        match self {
            Self::Notification(n) => &n.message_id,
            Self::SubscriptionConfirmation(c) => &c.message_id,
            Self::UnsubscribeConfirmation(u) => &u.message_id,
        }
    }
}

/// A published message: for SES events, `message` is the event's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub message_id: String,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: OffsetDateTime,
}

/// SNS asks us to confirm a subscription. Only [`super::SnsVerifier::verify`] makes one, so
/// [`super::SnsVerifier::confirm_subscription`] can only ever GET a URL SNS signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionConfirmation {
    pub message_id: String,
    pub topic_arn: String,
    pub message: String,
    pub timestamp: OffsetDateTime,
    pub token: String,
    subscribe_url: Url,
}

impl SubscriptionConfirmation {
    pub(super) fn new(envelope: Envelope, timestamp: OffsetDateTime, subscribe_url: Url) -> Self {
        Self {
            message_id: envelope.message_id,
            topic_arn: envelope.topic_arn,
            message: envelope.message,
            timestamp,
            token: envelope.token.unwrap_or_default(),
            subscribe_url,
        }
    }

    /// The URL to GET to confirm, already host-checked by [`super::check_subscribe_url`].
    pub fn subscribe_url(&self) -> &Url {
        &self.subscribe_url
    }
}

/// SNS tells us a subscription was removed; `subscribe_url` would subscribe again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeConfirmation {
    pub message_id: String,
    pub topic_arn: String,
    pub message: String,
    pub timestamp: OffsetDateTime,
    pub token: String,
    pub subscribe_url: String,
}
