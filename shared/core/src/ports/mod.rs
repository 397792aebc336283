//! Ports: what the use cases need from the outside world, one trait per capability.
//! Adapters implement them: `portal-embedded` on SQLite and the local outbox, `portal-aws`
//! on DynamoDB, SES v2, EventBridge and SNS.

mod bus;
mod campaigns;
mod clock;
pub mod cursor;
mod mailer;
mod recurring;
mod registration;
mod store;
mod sweep;
mod templates;
mod webhook;

pub use bus::{
    BusError, EventBus, Recipient, SendMessage, SendSpec, DETAIL_TYPE_DELIVER, DETAIL_TYPE_FAN_OUT,
    EVENT_SOURCE, MAX_MESSAGE_BYTES, MAX_SPEC_BYTES,
};
pub use campaigns::{
    check_selection, ApplyReport, Attempt, BadSelection, BatchWritten, CampaignStore, Claim,
    ClaimResult, CreateOutcome, FactResult, Idempotency, InvitationFilter, LeaseOutcome, LeaseStep,
    Recount, MAX_ATTEMPT, MAX_CLAIMS, MAX_PAGE_KEY_LEN,
};
pub use campaigns::{
    decode_campaign_cursor, decode_invitation_cursor, encode_campaign_cursor,
    encode_invitation_cursor,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use mailer::{MailError, Mailer, RawEmail, SentMessage};
pub use recurring::{RecurringStore, RunRecord, StartRun};
pub use registration::{
    AccountKey, ConfirmOutcome, Identity, IdentityError, NewRegistration, PortalRegistration,
    RegisterOutcome, RegistrationEvents, RegistrationStore, RequestFilter, TokenRef, Via,
    DETAIL_TYPE_REGISTRATION, REGISTRATION_SOURCE,
};
pub use store::{
    AccountStore, ContactQuery, ContactStateStore, ContactStore, DivisionStore, ListQuery, Page,
    SenderStore, Store, StoreError, SuppressionReason, SuppressionStore, SyncReport, MAX_EXAMINED,
    MAX_FAN_OUT_PAGE, MAX_PAGE_SIZE,
};
pub use sweep::{ActiveCampaign, CampaignSweepStore, SweepWatch};
pub use templates::TemplateStore;
pub use webhook::{BoxError, EventWebhook, WebhookOutcome, WebhookRefusal};
