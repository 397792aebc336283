//! The domain: parsed types and pure rules. Nothing here knows about HTTP, SQLite or AWS.

mod account;
mod campaign;
mod counts;
mod email;
mod filter_values;
mod filters;
mod ids;
mod invitation;
mod password;
mod permission;
pub mod portal_key;
mod public_url;
pub mod recurring;
pub mod registration;
pub mod search;
mod senders;
mod template;
pub mod unsubscribe;

pub use account::{Account, ContactInput, ContactRecord, Division, DivisionInput, PortalStatus};
pub use campaign::{
    hash_token, Campaign, CampaignEvent, CampaignId, CampaignStatus, HandPicked, InvalidTransition,
    PickedContacts, RecurringRun, RegistrationToken, Skipped, Trigger, MAX_CAMPAIGN_DIVISIONS,
    MAX_SELECTED_CONTACTS,
};
pub use counts::{classify, AddressTally, Counts, Group, SendOutcome, HOLD_WINDOW};
pub use email::Email;
pub use filter_values::{FilterField, FilterValues};
pub use filters::Filters;
pub use ids::{AccountId, ContactId, DivisionId, RecurringId, TemplateId, TenantId, MAX_ID_LEN};
pub use invitation::{
    CategoryCounts, Invitation, InvitationCategory, InvitationFact, InvitationState, SendCounts,
    SendState, Suppression, Transition, MAX_REASON_CHARS,
};
pub use password::{Password, PasswordError, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
pub use permission::Permission;
pub use portal_key::PortalKey;
pub use public_url::PublicUrl;
pub use recurring::{LocalDate, RecurringSetting, ReminderRule, Scope, SettingDoc, TimeZoneName};
pub use registration::{
    CloseReason, InvalidRequestTransition, Login, LoginVia, RegistrationRequest, RequestEvent,
    RequestId, RequestStatus,
};
pub use senders::{
    display_name_for, DisplayName, SenderCheck, SenderSettings, MAX_DISPLAY_NAME_CHARS,
    MAX_SENDER_ADDRESSES, MAX_SENDER_DOMAINS,
};
pub use template::{
    escape_html_into, percent_encode, MergeTag, MergeValues, Rendered, Template, TemplateError,
    TemplateKind, TemplatePart, MAX_BODY_BYTES, MAX_NAME_CHARS, MAX_SUBJECT_CHARS,
};

/// Input that does not make a valid domain value. Always the caller's fault: a 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid email address {value:?}: {reason}")]
    InvalidEmail { value: String, reason: &'static str },
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
}
