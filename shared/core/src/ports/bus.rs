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

use std::collections::BTreeMap;

use crate::domain::{CampaignId, ContactId, DisplayName, DivisionId, Email, Template, TenantId};

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

/// What every email of a campaign needs besides its recipient: the campaign's template and
/// sender, and (for the fan-out) its divisions' names. The campaign's first fan-out page
/// reads them and every later message carries them, so neither each page nor each delivery
/// batch reads the template, the divisions or (for delivery) the campaign again. A
/// campaign's emails therefore use its template as it was when its fan-out started (a
/// re-published fan-out, from the sweeper or a resume, reads it again).
///
/// A spec over [`MAX_SPEC_BYTES`] is not carried: the messages then go without one, and
/// each step reads what it needs as it did before specs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendSpec {
    pub template: Template,
    pub email_from: Email,
    /// The campaign's display name pattern ([`crate::domain::display_name_for`]); absent:
    /// each email shows its division's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<DisplayName>,
    /// The names of the campaign's divisions (empty in a delivery batch, whose recipients
    /// carry theirs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub division_names: BTreeMap<DivisionId, String>,
}

/// The largest [`SendSpec`] (serialized, without division names) the messages carry:
/// with it, a delivery batch of at most
/// [`MAX_BATCH_BYTES`](crate::usecases::send::fan_out::MAX_BATCH_BYTES) of recipients and
/// the page's next fan-out still fit one PutEvents call of 256 KB.
pub const MAX_SPEC_BYTES: usize = 40 * 1024;

impl SendSpec {
    /// The spec a delivery batch carries: without the division names.
    pub fn for_delivery(&self) -> Self {
        Self {
            division_names: BTreeMap::new(),
            ..self.clone()
        }
    }
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
        /// What the campaign's later steps need (`None`: read it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spec: Option<Box<SendSpec>>,
    },
    /// Deliver these claimed invitations of the campaign.
    Deliver {
        tenant: TenantId,
        campaign_id: CampaignId,
        recipients: Vec<Recipient>,
        /// The campaign's template and sender (`None`: delivery reads the campaign and its
        /// template).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spec: Option<Box<SendSpec>>,
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
