//! [`SnsVerifier`]: one call from request body to a message we may believe.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use time::OffsetDateTime;

use super::cert::CertStore;
use super::message::SignatureVersion;
use super::message::{
    Envelope, MessageType, Notification, SubscriptionConfirmation, UnsubscribeConfirmation,
    VerifiedMessage,
};
use super::urls::{check_cert_url, check_subscribe_url, region_of, SnsRegions};
use super::{quote, SnsError};

/// How far ahead of our clock a `Timestamp` may be (clock skew).
pub const MAX_CLOCK_AHEAD: time::Duration = time::Duration::minutes(5);

/// What a verifier accepts beyond a good signature for an allowed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsPolicy {
    /// Regions whose SNS hosts may be asked for certificates and confirmations.
    pub regions: SnsRegions,
    /// Refuse `SignatureVersion` 1 (the topic is set to sign with version 2).
    pub signature_v2_only: bool,
    /// Refuse a message whose `Timestamp` is older than this: SNS stops retrying a delivery
    /// well before, so anything older is a captured message played again.
    pub max_age: time::Duration,
}

impl SnsPolicy {
    /// [`SnsPolicy::max_age`] unless configured: SNS's hard limit on an HTTP/S delivery
    /// policy's total retry time (3,600 s; the template's policy stays within it, a test
    /// checks) plus 15 minutes for publishing delays and clock skew.
    pub const DEFAULT_MAX_AGE: time::Duration = time::Duration::seconds(3600 + 15 * 60);
}

impl Default for SnsPolicy {
    /// Any region, both signature versions, [`SnsPolicy::DEFAULT_MAX_AGE`].
    fn default() -> Self {
        Self {
            regions: SnsRegions::Any,
            signature_v2_only: false,
            max_age: Self::DEFAULT_MAX_AGE,
        }
    }
}

/// What the message will become once verified.
enum Kind {
    Notification,
    Subscribe(url::Url),
    Unsubscribe,
}

/// Verifies SNS messages for the configured topics (see the module docs for the order of
/// checks).
pub struct SnsVerifier {
    allowed_topics: HashSet<String>,
    cert_store: CertStore,
    policy: SnsPolicy,
}

impl SnsVerifier {
    /// Accepts messages only for these topic ARNs (exact match).
    pub fn new<I, S>(allowed_topics: I, cert_store: CertStore) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            allowed_topics: allowed_topics.into_iter().map(Into::into).collect(),
            cert_store,
            policy: SnsPolicy::default(),
        }
    }

    /// Replaces the default [`SnsPolicy`].
    pub fn with_policy(mut self, policy: SnsPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn policy(&self) -> &SnsPolicy {
        &self.policy
    }

    /// Checks `body`, an SNS HTTP(S) POST body, with the certificate's validity judged at `now`.
    pub async fn verify(
        &self,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<VerifiedMessage, SnsError> {
        let envelope = Envelope::parse(body)?;
        let timestamp = envelope.parsed_timestamp()?;
        let version = envelope.signature_version()?;
        if self.policy.signature_v2_only && version == SignatureVersion::V1 {
            return Err(SnsError::SignatureVersionNotAllowed);
        }
        self.check_age(timestamp, now)?;
        if !self.allowed_topics.contains(&envelope.topic_arn) {
            return Err(SnsError::TopicNotAllowed(quote(&envelope.topic_arn)));
        }
        let cert_url = check_cert_url(&envelope.signing_cert_url)?;
        self.check_region("signing certificate URL", cert_url.url())?;
        // The SubscribeURL is checked now, before any request, though only used after.
        let kind = match envelope.kind {
            MessageType::Notification => Kind::Notification,
            MessageType::SubscriptionConfirmation => {
                let url =
                    check_subscribe_url(envelope.subscribe_url.as_deref().unwrap_or_default())?;
                self.check_region("SubscribeURL", &url)?;
                Kind::Subscribe(url)
            }
            MessageType::UnsubscribeConfirmation => Kind::Unsubscribe,
        };
        let signature = BASE64
            .decode(envelope.signature.as_bytes())
            .map_err(|_| SnsError::BadSignature)?;

        let cert = self.cert_store.get(&cert_url, now).await?;
        cert.check_valid_at(now)
            .map_err(|reason| SnsError::BadCert {
                url: cert_url.url().to_string(),
                reason,
            })?;
        if !cert.verifies(version, envelope.string_to_sign().as_bytes(), &signature) {
            return Err(SnsError::BadSignature);
        }

        Ok(match kind {
            Kind::Notification => VerifiedMessage::Notification(Notification {
                message_id: envelope.message_id,
                topic_arn: envelope.topic_arn,
                subject: envelope.subject,
                message: envelope.message,
                timestamp,
            }),
            Kind::Subscribe(url) => VerifiedMessage::SubscriptionConfirmation(
                SubscriptionConfirmation::new(envelope, timestamp, url),
            ),
            Kind::Unsubscribe => {
                VerifiedMessage::UnsubscribeConfirmation(UnsubscribeConfirmation {
                    message_id: envelope.message_id,
                    topic_arn: envelope.topic_arn,
                    message: envelope.message,
                    timestamp,
                    token: envelope.token.unwrap_or_default(),
                    subscribe_url: envelope.subscribe_url.unwrap_or_default(),
                })
            }
        })
    }

    /// A `Timestamp` within [`SnsPolicy::max_age`] before `now` and at most
    /// [`MAX_CLOCK_AHEAD`] after it.
    fn check_age(&self, timestamp: OffsetDateTime, now: OffsetDateTime) -> Result<(), SnsError> {
        let stale = |reason: String| SnsError::Stale { timestamp, reason };
        if now - timestamp > self.policy.max_age {
            return Err(stale(format!(
                "older than {} s, longer than SNS retries a delivery (a replayed message)",
                self.policy.max_age.whole_seconds()
            )));
        }
        if timestamp - now > MAX_CLOCK_AHEAD {
            return Err(stale(format!(
                "more than {} s ahead of our clock",
                MAX_CLOCK_AHEAD.whole_seconds()
            )));
        }
        Ok(())
    }

    /// An SNS URL (already host-checked) of a region [`SnsPolicy::regions`] allows.
    fn check_region(&self, what: &'static str, url: &url::Url) -> Result<(), SnsError> {
        let region = region_of(url).unwrap_or_default();
        if self.policy.regions.allows(region) {
            Ok(())
        } else {
            Err(SnsError::RegionNotAllowed {
                what,
                url: quote(url.as_str()),
                region: region.to_owned(),
                allowed: self.policy.regions.to_string(),
            })
        }
    }

    /// Confirms a verified subscription by GETting its `SubscribeURL`, as SNS asks.
    pub async fn confirm_subscription(
        &self,
        confirmation: &SubscriptionConfirmation,
    ) -> Result<(), SnsError> {
        self.cert_store
            .fetcher()
            .get(confirmation.subscribe_url())
            .await
            .map(drop)
            .map_err(|source| SnsError::ConfirmSubscription { source })?;
        tracing::info!(topic_arn = %confirmation.topic_arn, "confirmed SNS subscription");
        Ok(())
    }
}
