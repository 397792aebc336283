//! The registration ports: what sign-up needs from the store, from the identity provider
//! that holds passwords, and from the bus the portal listens on.
//!
//! # Store ([`RegistrationStore`])
//!
//! Every guarantee of sign-up is a conditional write at the store, so concurrent requests
//! and retries cannot break it:
//!
//! - **one login per address per tenant**: [`RegistrationStore::register`] reserves the
//!   address (compared by [`Email::normalized`]) only if no login holds it;
//! - **an invitation's token works once**: the same write consumes the invitation's token
//!   only if it was not consumed before;
//! - **a confirmation link works once, until it expires**: [`RegistrationStore::confirm_login`];
//! - **rate limits** count in fixed windows that expire by themselves;
//! - **a sign-up request moves only through [`RequestStatus::apply`]**: each update is
//!   conditioned on the status it was read in.
//!
//! Tokens (invitation links, confirmation links) are known to the store only by their
//! SHA-256; the links carry the token itself.
//!
//! # Identity ([`Identity`])
//!
//! Where credentials live: Argon2id hashes in the embedded store on one machine, a Cognito
//! user pool on AWS. The store reserves the address first, then the identity provider is
//! asked to hold the password ([`Identity::provision`]), then the store marks the login
//! provisioned. A registration interrupted in between is finished by the next attempt with
//! the same link (see `usecases::registration`).

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use super::{BoxError, BusError, Page, StoreError};
use crate::domain::{
    AccountId, CampaignId, ContactId, DivisionId, Email, Login, LoginVia, Password, PortalKey,
    RegistrationRequest, RequestId, RequestStatus, TenantId,
};

/// What the store knows of an invitation link's token: whose invitation it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    pub tenant: TenantId,
    pub campaign_id: CampaignId,
    pub contact_id: ContactId,
    /// When the token was consumed by a registration; `None` while it is unused.
    pub used_at: Option<OffsetDateTime>,
}

/// An account as the portal-key sign-up sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountKey {
    pub account_id: AccountId,
    pub division_id: DivisionId,
    pub number: String,
    pub name: String,
    pub portal_key: PortalKey,
    /// The account's contacts with their addresses (`None`: no address).
    pub contacts: Vec<(ContactId, Option<Email>)>,
}

/// A registration the store is asked to record, atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistration {
    pub email: Email,
    pub name: String,
    /// The contact the login is for; `None` for a portal-key sign-up with an address that
    /// is on no contact of the account.
    pub contact_id: Option<ContactId>,
    pub account_id: AccountId,
    pub via: Via,
}

/// How the registration came, and what else its write does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Through an invitation link: the invitation's token is consumed in the same write
    /// (only if unused), the login is confirmed at once, and the contact becomes `accepted` —
    /// and so does every other contact of the tenant whose address equals the
    /// registration's ([`Email::normalized`]): the login names them all, and their accounts.
    Invitation { campaign_id: CampaignId },
    /// With a portal key: the login waits for its address to be confirmed. The confirmation
    /// link's token hash and expiry are stored with it.
    PortalKey {
        confirm_token_hash: [u8; 32],
        confirm_expires_at: OffsetDateTime,
    },
}

impl Via {
    pub fn login_via(&self) -> LoginVia {
        match self {
            Self::Invitation { .. } => LoginVia::Invitation,
            Self::PortalKey { .. } => LoginVia::PortalKey,
        }
    }
}

/// What [`RegistrationStore::register`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// The address was free: a login is reserved (not yet provisioned) and, for an
    /// invitation, its token consumed and the contact accepted.
    NewLogin(Login),
    /// The address already has a login. For an invitation, its token is consumed, the
    /// contact and every other contact of the tenant with the address are added to the login
    /// with their accounts and are `accepted`; for a portal key nothing is written.
    ExistingLogin(Login),
    /// The invitation's token was consumed before: nothing written.
    TokenUsed,
    /// No such invitation (or contact) in the tenant: nothing written.
    Missing,
}

/// What [`RegistrationStore::confirm_login`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The login is confirmed now, its contacts `accepted`.
    Confirmed(Login),
    /// The link was followed before: nothing written.
    AlreadyConfirmed(Login),
    /// The link is older than its expiry: nothing written.
    Expired,
    /// No such link in the tenant.
    Unknown,
}

/// Which requests a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// `open`, `matched`, `key_sent` or `closed` ([`RequestStatus::as_str`]); `None`: all.
    pub status: Option<&'static str>,
    pub division_id: Option<DivisionId>,
    /// Most requests a page examines past its cursor
    /// ([`MAX_EXAMINED`](crate::ports::MAX_EXAMINED) for the API); `None`: until it is full.
    pub max_examined: Option<u32>,
}

impl RequestFilter {
    pub fn matches(&self, r: &RegistrationRequest) -> bool {
        self.status.is_none_or(|s| r.status.as_str() == s)
            && self
                .division_id
                .as_ref()
                .is_none_or(|d| &r.division_id == d)
    }
}

#[async_trait]
pub trait RegistrationStore: Send + Sync {
    // --- Portal keys -------------------------------------------------------------------

    /// The account's portal key; `None` when there is no such account.
    async fn get_portal_key(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<PortalKey>, StoreError>;

    /// Replaces the account's key (the old one stops working at once, and `[PortalKey]`
    /// renders the new one). `false` when there is no such account.
    async fn set_portal_key(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        key: &PortalKey,
    ) -> Result<bool, StoreError>;

    /// The account with this number (exact, as synced), with its key and contacts. Numbers
    /// are unique per tenant in practice; when two accounts share one, either may answer.
    async fn find_account_by_number(
        &self,
        tenant: &TenantId,
        number: &str,
    ) -> Result<Option<AccountKey>, StoreError>;

    // --- Invitation links and logins ----------------------------------------------------

    /// Whose invitation carries this token hash, in any tenant (the link names no tenant:
    /// the 256-bit token is the authority, and it is one tenant's alone).
    async fn find_token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRef>, StoreError>;

    /// Records a registration in one atomic write (see [`Via`] and [`RegisterOutcome`]).
    async fn register(
        &self,
        tenant: &TenantId,
        registration: &NewRegistration,
        now: OffsetDateTime,
    ) -> Result<RegisterOutcome, StoreError>;

    /// The login holding this address (compared case-insensitively).
    async fn get_login(
        &self,
        tenant: &TenantId,
        email: &Email,
    ) -> Result<Option<Login>, StoreError>;

    /// Marks the login's credentials as held by the identity provider. `false` when there
    /// is no such login.
    async fn mark_provisioned(&self, tenant: &TenantId, email: &Email) -> Result<bool, StoreError>;

    /// Follows a confirmation link: only if it is unused and `now < expires_at`, the login
    /// becomes confirmed and its contacts `accepted`.
    async fn confirm_login(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<ConfirmOutcome, StoreError>;

    /// The login a confirmation link is for, without changing anything (the `GET` page).
    async fn find_confirmation(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
    ) -> Result<Option<(Login, OffsetDateTime, bool)>, StoreError>;

    // --- Rate limits --------------------------------------------------------------------

    /// Adds one to the counter `key` of the fixed window starting at `window_start` and
    /// answers the count after the increment. The counter disappears by itself after
    /// `expires_at` (TTL on AWS, a sweep on one machine). `key` is any text.
    async fn hit_rate_limit(
        &self,
        tenant: &TenantId,
        key: &str,
        window_start: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<u32, StoreError>;

    /// The counter's value without changing it (0 when absent or expired).
    async fn rate_limit_count(
        &self,
        tenant: &TenantId,
        key: &str,
        window_start: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError>;

    // --- Sign-up requests -----------------------------------------------------------------

    /// Stores a new request (its id is fresh).
    async fn put_request(
        &self,
        tenant: &TenantId,
        request: &RegistrationRequest,
    ) -> Result<(), StoreError>;

    async fn get_request(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<Option<RegistrationRequest>, StoreError>;

    /// The tenant's requests passing `filter`, newest first.
    async fn list_requests(
        &self,
        tenant: &TenantId,
        filter: &RequestFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<RegistrationRequest>, StoreError>;

    /// Writes `request` only if the stored one is still in `expected`. `false` otherwise
    /// (someone moved it first) or when it does not exist.
    async fn update_request(
        &self,
        tenant: &TenantId,
        request: &RegistrationRequest,
        expected: RequestStatus,
    ) -> Result<bool, StoreError>;

    /// The requests for this address that are not closed (compared case-insensitively).
    async fn open_requests_for(
        &self,
        tenant: &TenantId,
        email: &Email,
    ) -> Result<Vec<RegistrationRequest>, StoreError>;

    /// Adds `email` to the contact as its "other email" (kept by the system, never by sync).
    /// `false` when there is no such contact.
    async fn add_other_email(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        email: &Email,
    ) -> Result<bool, StoreError>;
}

/// The identity provider failed or refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The provider refused the password (its own policy is stricter than ours).
    #[error("the password was refused: {0}")]
    PasswordRefused(String),
    #[error("identity provider call {op} failed")]
    Backend {
        op: &'static str,
        #[source]
        source: BoxError,
    },
}

impl IdentityError {
    pub fn backend(op: &'static str, e: impl Into<BoxError>) -> Self {
        Self::Backend {
            op,
            source: e.into(),
        }
    }
}

/// Where logins' credentials live.
#[async_trait]
pub trait Identity: Send + Sync {
    /// Makes the provider hold `password` for the login (creating its user, or — after an
    /// interrupted attempt — setting the password of the user that exists). The user can
    /// sign in only when `login.confirmed`; otherwise it waits for [`Identity::enable`].
    async fn provision(
        &self,
        tenant: &TenantId,
        login: &Login,
        password: &Password,
    ) -> Result<(), IdentityError>;

    /// Lets a provisioned login sign in (its address was confirmed).
    async fn enable(&self, tenant: &TenantId, login: &Login) -> Result<(), IdentityError>;

    /// Whether the address signs in with this password (an enabled login only): the
    /// portal's check, used by tests and the local demo.
    async fn verify(
        &self,
        tenant: &TenantId,
        email: &Email,
        password: &str,
    ) -> Result<bool, IdentityError>;
}

/// `detail-type` of the event a registration puts on the bus.
pub const DETAIL_TYPE_REGISTRATION: &str = "Portal Registration";
/// `source` of that event.
pub const REGISTRATION_SOURCE: &str = "portal-invites.registration";

/// The event the portal consumes when someone registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortalRegistration {
    pub tenant: TenantId,
    pub email: Email,
    pub name: String,
    pub contact_ids: Vec<ContactId>,
    pub account_ids: Vec<AccountId>,
    pub via: LoginVia,
    /// The invitation's campaign, for a registration through an invitation link.
    pub campaign_id: Option<CampaignId>,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
}

/// Tells the portal about registrations.
#[async_trait]
pub trait RegistrationEvents: Send + Sync {
    async fn registered(&self, event: &PortalRegistration) -> Result<(), BusError>;
}
