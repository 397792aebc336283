//! The mailer port: hand a fully rendered MIME message to whatever delivers it.
//!
//! Messages are rendered once, in the library ([`crate::mail::OutgoingEmail`]); a mailer
//! never builds or changes content. The local outbox ([`crate::adapters::outbox`]) writes the
//! bytes to disk and SES v2 ([`crate::adapters::ses`]) receives the same bytes as Raw content.
//!
//! # How callers treat each [`MailError`]
//!
//! | variant | meaning | what the caller does |
//! |---|---|---|
//! | [`MailError::Throttled`] | the service asks us to slow down | retry the same message with exponential back-off (and jitter); lower the send rate; never count it as a failure of the invitation |
//! | [`MailError::Rejected`] | permanent: this message will never be accepted as it is (unverified sender, rejected content, paused or suspended account) | do not retry; the invitation ends `failed` with `reason`; rejections count towards the campaign's pause threshold |
//! | [`MailError::Transient`] | a 5xx, a timeout, a dropped connection: it may work next time | retry with back-off a bounded number of times, then treat as [`MailError::Backend`] |
//! | [`MailError::Backend`] | anything else we could not classify (a local disk error, a bad configuration, an unexpected answer) | retry at most the bounded number of times; if it persists the invitation ends `failed` with the detail and the failure counts towards the pause threshold |
//!
//! A message that reached the service may have been sent even when the answer was lost
//! (a timeout after the request went out): deduplication belongs to the caller's claim on the
//! invitation, not to the mailer.

use async_trait::async_trait;

pub use crate::mail::RawEmail;

/// What a mailer answers for an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The backend's id for the message: SES's `MessageId`, or the outbox's own
    /// `Message-ID`. Delivery events (bounces, opens) refer to it.
    pub message_id: String,
}

/// Why a send failed, classified so callers know whether to retry (see the module docs).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Slow down and retry the same message later.
    #[error("the mail service is throttling sends")]
    Throttled(#[source] super::BoxError),
    /// Permanent: retrying the same message cannot succeed.
    #[error("the message was rejected: {reason}")]
    Rejected { reason: String },
    /// Temporary: a retry may succeed.
    #[error("temporary mail failure")]
    Transient(#[source] super::BoxError),
    /// Unclassified failure of the backend.
    #[error("mail backend failure")]
    Backend(#[source] super::BoxError),
}

impl MailError {
    /// Whether the same message may be sent again (after a back-off): throttling and
    /// transient failures. Rejections never; backend failures only a bounded number of
    /// times, which is the caller's policy.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled(_) | Self::Transient(_))
    }
}

/// Sends rendered messages.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `msg` as is. Success means the backend accepted it for delivery.
    async fn send_raw(&self, msg: &RawEmail) -> Result<SentMessage, MailError>;
}
