//! The store port, shaped by DynamoDB's access patterns: key lookups, and Query over the
//! partitions of a tenant's division. No joins, no scans of the whole table.
//!
//! Every method takes the tenant first, and an adapter must never read or write outside it:
//! a tenant id is part of every key. Cursors are opaque strings an adapter makes and parses;
//! a cursor that does not parse is [`StoreError::InvalidCursor`] (a 400), and a cursor can
//! never move a query into another tenant's data.
//!
//! The contract suite in `tests/contract` runs the same cases against every adapter.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::{
    Account, AccountId, ContactId, ContactRecord, Counts, Division, DivisionId, DivisionInput,
    Email, FilterValues, Filters, Group, PortalStatus, TenantId,
};

/// Largest page a list returns.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Largest page [`ContactStore::list_contacts`] returns to the send path: a fan-out page
/// (claimed in calls of at most [`MAX_CLAIMS`](crate::ports::MAX_CLAIMS)). Every fan-out
/// page costs its campaign read, its suppression read, its skips write and its publish, so
/// pages twice the API's size halve those. The API's pages stay at most [`MAX_PAGE_SIZE`].
pub const MAX_FAN_OUT_PAGE: u32 = 1000;

/// Most stored items one page of a searched or filtered API list examines past its cursor
/// (the `max_examined` of [`ListQuery`], [`InvitationFilter`](crate::ports::InvitationFilter)
/// and [`RequestFilter`](crate::ports::RequestFilter)). A search that matches nothing reads
/// this many, answers an empty page with a cursor, and the caller decides whether to go on:
/// no request of a read-only user reads a whole partition.
///
/// With `max_examined: Some(n)`, a page examines at most `n` stored items past its cursor (a
/// contact counts once, whatever number of items it is stored as; the DynamoDB adapter also
/// counts each Query of a partition that holds nothing). When fewer than `limit` of them
/// match, the page holds those (possibly none) and a cursor after the last item examined,
/// unless nothing follows. Following the cursors still yields every match exactly once.
/// `None`: a page reads on until it is full (the send path and the CSV exports, which read
/// everything anyway).
pub const MAX_EXAMINED: u32 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The cursor was not made by this store for this query.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// The backend failed; the cause is logged, never shown to a client.
    #[error("store operation {op} failed")]
    Backend {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    pub fn backend(op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend {
            op,
            source: Box::new(e),
        }
    }
}

/// Which contacts a count or list covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactQuery {
    /// Existing divisions of the tenant, at least one (the use case resolves "all").
    pub division_ids: Vec<DivisionId>,
    pub filters: Filters,
    pub limit_to_uninvited: bool,
    /// "Now" for the 24-hour rule.
    pub now: OffsetDateTime,
}

/// One page of a recipient list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub contacts: ContactQuery,
    pub group: Group,
    /// Lowercased search text over email, contact name, account number and account name;
    /// empty = no search.
    pub search: String,
    pub cursor: Option<String>,
    /// 1..=[`MAX_PAGE_SIZE`] for the API, up to [`MAX_FAN_OUT_PAGE`] for a fan-out (larger
    /// values are clamped).
    pub limit: u32,
    /// Most contacts this page examines past its cursor ([`MAX_EXAMINED`] for the API);
    /// `None`: until the page is full.
    pub max_examined: Option<u32>,
}

/// A page of items. Order is stable for a given query but otherwise unspecified; following
/// `next_cursor` until it is `None` yields every matching item exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// What a sync wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub accounts: u64,
    pub contacts: u64,
    /// Contacts that were on a synced account before and no longer are.
    pub contacts_removed: u64,
}

/// Why an address is on the suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    Bounced,
    Complained,
    Unsubscribed,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounced => "bounced",
            Self::Complained => "complained",
            Self::Unsubscribed => "unsubscribed",
        }
    }
}

#[async_trait]
pub trait DivisionStore: Send + Sync {
    /// Creates or updates name and sender; keeps `last_bulk_sent_at`.
    async fn put_division(
        &self,
        tenant: &TenantId,
        division: &DivisionInput,
    ) -> Result<Division, StoreError>;
    async fn get_division(
        &self,
        tenant: &TenantId,
        id: &DivisionId,
    ) -> Result<Option<Division>, StoreError>;
    /// Every division of the tenant, ordered by id (the use cases' view: a tenant has as
    /// many divisions as it syncs, and each use case needs them all).
    async fn list_divisions(&self, tenant: &TenantId) -> Result<Vec<Division>, StoreError>;
    /// One page of the tenant's divisions, ordered by id, after `cursor` (made by this
    /// method; see [`cursor::DIVISIONS`](super::cursor::DIVISIONS)). `limit` is clamped to
    /// 1..=[`MAX_PAGE_SIZE`]; `next_cursor` is `None` exactly when nothing follows.
    async fn list_divisions_page(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Division>, StoreError>;
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Idempotent upsert of accounts with their contacts. Each account's contact set is
    /// replaced (contacts no longer listed are removed); a contact that stays keeps its
    /// portal status, last invitation and last login (a given `last_login` replaces it).
    /// A contact id is unique within a tenant: syncing it under another account moves it.
    /// The caller has checked that every division exists.
    async fn upsert_accounts(
        &self,
        tenant: &TenantId,
        accounts: &[Account],
    ) -> Result<SyncReport, StoreError>;
    /// Removes an account and its contacts. `false` when it did not exist.
    async fn delete_account(&self, tenant: &TenantId, id: &AccountId) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait ContactStore: Send + Sync {
    /// Counts the contacts of the query's divisions that pass its filters, classified by
    /// [`crate::domain::classify`] against the tenant's suppression list. Memory use must not
    /// grow with the number of contacts.
    async fn count_contacts(
        &self,
        tenant: &TenantId,
        query: &ContactQuery,
    ) -> Result<Counts, StoreError>;
    /// One page of the contacts a count's group covers, searchable.
    async fn list_contacts(
        &self,
        tenant: &TenantId,
        query: &ListQuery,
    ) -> Result<Page<ContactRecord>, StoreError>;
    async fn get_contact(
        &self,
        tenant: &TenantId,
        id: &ContactId,
    ) -> Result<Option<ContactRecord>, StoreError>;
    /// The contacts among `ids` that exist in the tenant, in no particular order; at most
    /// [`MAX_PAGE_SIZE`] ids, a repeated id answered once. A hand-picked campaign's fan-out
    /// reads each page of its selection with this.
    async fn get_contacts(
        &self,
        tenant: &TenantId,
        ids: &[ContactId],
    ) -> Result<Vec<ContactRecord>, StoreError>;
    /// The division of each of `ids` that exists in the tenant (any number of ids; absent
    /// ones are simply not in the map). How a hand-picked campaign learns, before it is
    /// recorded, which ids are unknown and which divisions it touches, without reading the
    /// contacts themselves.
    async fn locate_contacts(
        &self,
        tenant: &TenantId,
        ids: &[ContactId],
    ) -> Result<std::collections::HashMap<ContactId, DivisionId>, StoreError>;
    /// For each of `divisions` (existing divisions of the tenant, the use case checked), in
    /// the order given: the distinct values of the four list filters among the division's
    /// contacts, each with its number of contacts — what folding
    /// [`FilterValues::add_contact`] over them gives (the contract suite checks). Must not read
    /// every contact of a large division when the store can keep the answer at sync time.
    async fn filter_values(
        &self,
        tenant: &TenantId,
        divisions: &[DivisionId],
    ) -> Result<Vec<FilterValues>, StoreError>;
}

/// The system-kept fields of a contact. Issue-3 turns `record_invited` into a conditional claim.
#[async_trait]
pub trait ContactStateStore: Send + Sync {
    /// `false` when the contact does not exist.
    async fn set_portal_status(
        &self,
        tenant: &TenantId,
        id: &ContactId,
        status: PortalStatus,
    ) -> Result<bool, StoreError>;
    /// Records that an invitation was sent at `at` (status becomes `pending` unless
    /// `accepted`) and counts it in `invitations_sent`.
    /// `false` when the contact does not exist.
    async fn record_invited(
        &self,
        tenant: &TenantId,
        id: &ContactId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait SuppressionStore: Send + Sync {
    /// Adds an address (idempotent; the first reason is kept).
    async fn suppress(
        &self,
        tenant: &TenantId,
        email: &Email,
        reason: SuppressionReason,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    async fn is_suppressed(&self, tenant: &TenantId, email: &Email) -> Result<bool, StoreError>;

    /// Which of `emails` are suppressed, as their [`Email::normalized`] forms.
    async fn suppressed_among(
        &self,
        tenant: &TenantId,
        emails: &[Email],
    ) -> Result<std::collections::HashSet<String>, StoreError>;
}

/// A tenant's sender settings (see [`SenderSettings`](crate::domain::SenderSettings)): one
/// document per tenant.
#[async_trait]
pub trait SenderStore: Send + Sync {
    /// `None`: the tenant has none yet (it may send from nobody).
    async fn get_sender_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<crate::domain::SenderSettings>, StoreError>;
    /// Creates or replaces the tenant's settings.
    async fn put_sender_settings(
        &self,
        tenant: &TenantId,
        settings: &crate::domain::SenderSettings,
    ) -> Result<(), StoreError>;
}

/// Everything the use cases need from a store.
pub trait Store:
    DivisionStore
    + AccountStore
    + ContactStore
    + ContactStateStore
    + SuppressionStore
    + super::CampaignStore
    + super::TemplateStore
    + super::RegistrationStore
    + super::RecurringStore
    + SenderStore
{
}

impl<T> Store for T where
    T: DivisionStore
        + AccountStore
        + ContactStore
        + ContactStateStore
        + SuppressionStore
        + super::CampaignStore
        + super::TemplateStore
        + super::RegistrationStore
        + super::RecurringStore
        + SenderStore
{
}
