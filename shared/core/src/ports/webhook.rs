//! The port for delivery events arriving over HTTP (SES events through an SNS subscription):
//! an adapter checks that a request is genuine, reads what it says and applies it through
//! [`crate::usecases::events`]; the HTTP layer only turns its answer into a status.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use super::{ApplyReport, CampaignStore, StoreError};

/// The error of an adapter, kept as the cause of a refusal.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a request or event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WebhookOutcome {
    /// An SES event applied (or found to change nothing).
    Applied { report: ApplyReport },
    /// A genuine message that says nothing about our invitations.
    Ignored { reason: String },
    /// A subscription confirmed.
    Confirmed { topic_arn: String },
    /// SNS says the subscription was removed; nothing to do.
    Unsubscribed { topic_arn: String },
}

/// Why a webhook request was not taken, by who must act: the sender (4xx, not retried) or
/// us (5xx, the sender delivers again). The adapter's own error is the message and source.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRefusal {
    /// The body is not a message of the expected kind at all: 400.
    #[error(transparent)]
    Malformed(BoxError),
    /// A message we will not believe (bad signature, unknown topic, no credentials): 403.
    #[error(transparent)]
    NotGenuine(BoxError),
    /// Something we depend on failed (a certificate could not be fetched): 503.
    #[error(transparent)]
    Unavailable(BoxError),
    /// The store failed: 500.
    #[error("the event could not be recorded")]
    Store(#[from] StoreError),
}

/// Takes one webhook request: `body` as received, `password` the HTTP Basic password if any.
#[async_trait]
pub trait EventWebhook: Send + Sync {
    async fn receive(
        &self,
        store: &dyn CampaignStore,
        body: &[u8],
        password: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<WebhookOutcome, WebhookRefusal>;
}
