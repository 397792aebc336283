//! [`SnsVerifier`]: one call from request body to a message we may believe.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use time::OffsetDateTime;

use super::cert::CertStore;
use super::message::{
    Envelope, MessageType, Notification, SubscriptionConfirmation, UnsubscribeConfirmation,
    VerifiedMessage,
};
use super::urls::{check_cert_url, check_subscribe_url};
use super::{quote, SnsError};

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
        }
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
        if !self.allowed_topics.contains(&envelope.topic_arn) {
            return Err(SnsError::TopicNotAllowed(quote(&envelope.topic_arn)));
        }
        let cert_url = check_cert_url(&envelope.signing_cert_url)?;
        // The SubscribeURL is checked now, before any request, though only used after.
        let kind = match envelope.kind {
            MessageType::Notification => Kind::Notification,
            MessageType::SubscriptionConfirmation => Kind::Subscribe(check_subscribe_url(
                envelope.subscribe_url.as_deref().unwrap_or_default(),
            )?),
            MessageType::UnsubscribeConfirmation => Kind::Unsubscribe,
        };
        let signature = BASE64
            .decode(envelope.signature.as_bytes())
            .map_err(|_| SnsError::BadSignature)?;

        let cert = self.cert_store.get(&cert_url).await?;
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
