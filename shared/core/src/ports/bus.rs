//! The event bus port: how the send steps hand work to each other.
//!
//! A campaign is sent as a chain of [`SendMessage`]s: the HTTP function publishes one
//! [`SendMessage::FanOut`]; each fan-out step claims a page of recipients and publishes
//! [`SendMessage::Deliver`] batches plus the next `FanOut`; each delivery sends its batch.
//! On AWS the bus is EventBridge (one PutEvents entry per message, rules routing each
//! detail-type to its function); on one machine it is an in-process queue driving the same
//! use-case code.
//!
//! Every message is safe to deliver twice (EventBridge and Lambda's async retries do): the
//! steps are idempotent (see [`crate::usecases::send`]).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{CampaignId, ContactId, DivisionId, Email, TenantId};

/// The `source` of every event this system puts on the bus.
pub const EVENT_SOURCE: &str = "portal-invitations";

/// The largest serialized message the bus takes (EventBridge's entry limit is 256 KB for
/// the whole entry; the rest is left for the envelope).
pub const MAX_MESSAGE_BYTES: usize = 240 * 1024;

/// One recipient of a delivery batch, with everything its email needs from the contact
/// (read once by the fan-out, so delivery reads no contact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub contact_id: ContactId,
    pub email: Email,
    pub contact_name: String,
    pub account_number: String,
    pub account_name: String,
    pub division_id: DivisionId,
    pub division_name: String,
    /// The account's portal key (`[PortalKey]`); empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub portal_key: String,
    /// Claimed by the fan-out run that made this batch (not a replay's
    /// `AlreadyClaimedByThisCampaign`): its invitation was created just now, `pending`, so
    /// delivery need not read it unless the batch was leased before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh: bool,
}

/// A unit of send work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SendMessage {
    /// Fan the campaign out from `cursor` (`None`: from the start).
    FanOut {
        tenant: TenantId,
        campaign_id: CampaignId,
        cursor: Option<String>,
    },
    /// Deliver these claimed invitations of the campaign.
    Deliver {
        tenant: TenantId,
        campaign_id: CampaignId,
        recipients: Vec<Recipient>,
    },
}

impl SendMessage {
    /// The EventBridge `detail-type` of the message; rules route on it.
    pub fn detail_type(&self) -> &'static str {
        match self {
            Self::FanOut { .. } => DETAIL_TYPE_FAN_OUT,
            Self::Deliver { .. } => DETAIL_TYPE_DELIVER,
        }
    }

    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::FanOut { tenant, .. } | Self::Deliver { tenant, .. } => tenant,
        }
    }

    pub fn campaign_id(&self) -> &CampaignId {
        match self {
            Self::FanOut { campaign_id, .. } | Self::Deliver { campaign_id, .. } => campaign_id,
        }
    }
}

/// `detail-type` of [`SendMessage::FanOut`].
pub const DETAIL_TYPE_FAN_OUT: &str = "Campaign Fan-Out";
/// `detail-type` of [`SendMessage::Deliver`].
pub const DETAIL_TYPE_DELIVER: &str = "Campaign Delivery";

/// Why a publish failed. After an error some messages may have been published and others
/// not: publishing all of them again is safe (every step is idempotent).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A message serializes to more than [`MAX_MESSAGE_BYTES`]; nothing was published.
    #[error("a message of {bytes} bytes is over the bus limit of {MAX_MESSAGE_BYTES}")]
    TooLarge { bytes: usize },
    /// Entries were still refused (throttled or failed) after the retries.
    #[error("{failed} of {total} events were not accepted: {detail}")]
    Rejected {
        failed: usize,
        total: usize,
        detail: String,
    },
    /// The bus failed (or is missing); the backend's error is the source.
    #[error("event bus error")]
    Backend(#[source] super::BoxError),
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes every message; `Ok` only when the bus accepted all of them.
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError>;
}
