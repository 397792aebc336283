//! The embedded store: every port on one SQLite database (rusqlite, bundled).
//!
//! # Layout
//!
//! - [`schema`]: tables, indexes, connection settings, and why they look the way they do.
//! - [`query`]: filters, groups, search and cursors turned into bound SQL.
//! - `campaigns`: campaigns, invitations and the 24-hour rules (one transaction each).
//! - `sweep`: the sweeper's list of active campaigns and their watch records.
//! - this module: the [`SqliteStore`] handle, its connections, and the port implementations.
//!
//! # Connections and threads
//!
//! SQLite calls block, so each operation runs on tokio's blocking pool
//! (`spawn_blocking`). Writes go through one connection behind a mutex (SQLite allows one
//! writer at a time anyway). A file database runs in WAL mode with a small pool of read-only
//! connections, so counts and lists run concurrently with each other and with a sync. An
//! in-memory database (tests) is private to its one connection, which serves reads too.
//!
//! Each `upsert_accounts` call is one transaction, so a chunk of accounts is written whole
//! or not at all; statements are prepared once per connection and cached.
//!
//! # What each operation costs
//!
//! - `count_contacts`: per division, the `contact_cube` rows passing the filters (thousands
//!   at most, whatever the number of contacts) plus a covered index seek over the contacts
//!   invited in the last 24 hours; memory stays constant.
//! - `filter_values`: per division, a range of `contact_cube`'s key (the combinations of the
//!   four list-filter fields with their contacts, thousands at most) folded in Rust.
//! - `list_contacts`: a range of the clustered key from the cursor, filtered in SQL, one
//!   row past the page to know whether another follows. A sparse group (say `held_24h` in a
//!   large division with few recent invitations) scans the division until the page fills.
//! - `record_invited`, `set_portal_status`, `suppress`: one small transaction each; the
//!   cube triggers move the contact between cube rows.
//! - `upsert_accounts`: per contact one update (or insert), per account one read of its
//!   previous contact set; all in one transaction.
//! - `apply_facts`: one transaction per call (up to 500 facts); per fact a primary-key read
//!   and, when the state changes, one update (plus the suppression for a bounce or
//!   complaint); the campaign's counters once per call. About 50,000 facts/s on a file.

mod campaigns;
mod query;
mod recurring;
mod registration;
mod schema;
mod senders;
mod sweep;
mod templates;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension, Row};
use time::OffsetDateTime;

use portal_core::domain::search::{self, SearchText};
use portal_core::domain::{
    classify, Account, AccountId, AddressTally, ContactId, ContactInput, ContactRecord, Counts,
    Division, DivisionId, DivisionInput, Email, FilterValues, PortalKey, PortalStatus, TenantId,
};
use portal_core::ports::cursor::DIVISIONS;
use portal_core::ports::{
    AccountStore, ContactQuery, ContactStateStore, ContactStore, DivisionStore, ListQuery, Page,
    StoreError, SuppressionReason, SuppressionStore, SyncReport,
};

/// Most idle read connections kept open for a file database.
const MAX_IDLE_READERS: usize = 4;

/// The columns [`read_contact`] expects, in order.
pub(crate) const CONTACT_COLUMNS: &str = "contact_id, account_id, division_id, contact_name, \
    email, phone, billing, account_number, account_name, account_class, bill_group, \
    account_source, site_source, active_services, balance_due_cents, autopay, portal_status, \
    last_invited_at, last_login, portal_key, invitations_sent";

/// A handle on one SQLite database; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    writer: Mutex<Connection>,
    /// `None` for an in-memory database: the writer serves reads.
    path: Option<std::path::PathBuf>,
    readers: Mutex<Vec<Connection>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a connection leaves no half-done state behind: SQLite rolls
    // back an unfinished transaction when its guard drops.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Maps a rusqlite result into a store error naming the operation.
trait OrStore<T> {
    fn or_store(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> OrStore<T> for rusqlite::Result<T> {
    fn or_store(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::backend(op, e))
    }
}

impl SqliteStore {
    /// Opens (creating if needed) a database file with its schema, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::backend("open", e))?;
        }
        let conn = Connection::open(path).or_store("open")?;
        schema::configure(&conn).or_store("open")?;
        schema::create(&conn, true).or_store("open")?;
        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(conn),
                path: Some(path.to_owned()),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// A private, empty in-memory database (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().or_store("open")?;
        schema::configure(&conn).or_store("open")?;
        schema::create(&conn, false).or_store("open")?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(conn),
                path: None,
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Runs `f` on the write connection, on the blocking pool.
    async fn write<R, F>(&self, op: &'static str, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&inner.writer)))
            .await
            .map_err(|e| StoreError::backend(op, e))?
    }

    /// Runs `f` on a read connection (the writer for an in-memory database).
    async fn read<R, F>(&self, op: &'static str, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let Some(path) = &inner.path else {
                return f(&lock(&inner.writer));
            };
            let idle = lock(&inner.readers).pop();
            let conn = match idle {
                Some(c) => c,
                None => open_reader(path).or_store(op)?,
            };
            let result = f(&conn);
            let mut pool = lock(&inner.readers);
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::backend(op, e))?
    }
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    schema::configure(&conn)?;
    Ok(conn)
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_ts(op: &'static str, s: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    s.map(|s| OffsetDateTime::from_unix_timestamp(s).map_err(|e| StoreError::backend(op, e)))
        .transpose()
}

fn status_code(s: PortalStatus) -> i64 {
    match s {
        PortalStatus::NotSent => 0,
        PortalStatus::Pending => 1,
        PortalStatus::Accepted => 2,
    }
}

fn status_from_code(code: i64) -> PortalStatus {
    match code {
        2 => PortalStatus::Accepted,
        1 => PortalStatus::Pending,
        _ => PortalStatus::NotSent,
    }
}

/// A stored value that no longer parses as a domain value: the database was edited by hand
/// or is corrupt.
#[derive(Debug, thiserror::Error)]
#[error("stored {0} does not parse")]
pub(crate) struct Corrupt(pub(crate) &'static str);

fn parse_stored<T, E>(
    op: &'static str,
    what: &'static str,
    r: Result<T, E>,
) -> Result<T, StoreError> {
    r.map_err(|_| StoreError::backend(op, Corrupt(what)))
}

/// Reads a row selected with [`CONTACT_COLUMNS`].
/// `duplicate_address` of a count: only addresses two or more of the tenant's contacts share
/// can have one, so the trigger-kept `address_tally` (its partial index holds only those)
/// finds them, and their contacts (few) are classified like any count's and tallied.
fn duplicate_addresses(
    op: &'static str,
    conn: &Connection,
    tenant: &TenantId,
    query: &ContactQuery,
) -> Result<u64, StoreError> {
    let divisions: HashSet<&DivisionId> = query.division_ids.iter().collect();
    let mut s = conn
        .prepare_cached(&format!(
            // CROSS JOIN keeps this order: the shared addresses first, then a seek per
            // address; left to itself the planner scans every contact of the tenant and
            // tests each against the list.
            "SELECT {} FROM \
             (SELECT email_norm AS shared FROM address_tally INDEXED BY address_tally_shared \
              WHERE tenant = ?1 AND n > 1) AS s \
             CROSS JOIN contacts AS c INDEXED BY contacts_by_email \
             WHERE c.tenant = ?1 AND c.email_norm = s.shared AND c.email_norm IS NOT NULL",
            CONTACT_COLUMNS
                .split(", ")
                .map(|col| format!("c.{col}"))
                .chain(["c.flags".to_owned()])
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .or_store(op)?;
    let mut rows = s.query(params![tenant.as_str()]).or_store(op)?;
    let mut tally = AddressTally::default();
    while let Some(row) = rows.next().or_store(op)? {
        let c = read_contact(op, row)?;
        if !divisions.contains(&c.division_id) || !query.filters.matches(&c) {
            continue;
        }
        let flags: i64 = row.get(CONTACT_COLUMN_COUNT).or_store(op)?;
        let suppressed = flags & schema::FLAG_SUPPRESSED != 0;
        let outcome = classify(&c, query.now, suppressed, query.limit_to_uninvited);
        tally.add(&c, outcome, query.now);
    }
    Ok(tally.duplicates())
}

/// The number of columns of [`CONTACT_COLUMNS`] (what follows them is at this index).
const CONTACT_COLUMN_COUNT: usize = 21;

fn read_contact(op: &'static str, row: &Row<'_>) -> Result<ContactRecord, StoreError> {
    let get_s = |i: usize| row.get::<_, String>(i).or_store(op);
    let get_b = |i: usize| row.get::<_, i64>(i).map(|v| v != 0).or_store(op);
    let email: Option<String> = row.get(4).or_store(op)?;
    Ok(ContactRecord {
        contact_id: parse_stored(op, "contact_id", ContactId::parse(get_s(0)?))?,
        account_id: parse_stored(op, "account_id", AccountId::parse(get_s(1)?))?,
        division_id: parse_stored(op, "division_id", DivisionId::parse(get_s(2)?))?,
        contact_name: get_s(3)?,
        email: email
            .map(|e| parse_stored(op, "email", Email::parse(&e)))
            .transpose()?,
        phone: get_s(5)?,
        billing: get_b(6)?,
        account_number: get_s(7)?,
        account_name: get_s(8)?,
        account_class: get_s(9)?,
        bill_group: get_s(10)?,
        account_source: get_s(11)?,
        site_source: get_s(12)?,
        active_services: get_b(13)?,
        balance_due_cents: row.get(14).or_store(op)?,
        autopay: get_b(15)?,
        portal_status: status_from_code(row.get(16).or_store(op)?),
        last_invited_at: from_ts(op, row.get(17).or_store(op)?)?,
        last_login: from_ts(op, row.get(18).or_store(op)?)?,
        portal_key: row
            .get::<_, Option<String>>(19)
            .or_store(op)?
            .map(|k| parse_stored(op, "portal_key", PortalKey::parse(&k)))
            .transpose()?,
        invitations_sent: row
            .get::<_, i64>(20)
            .or_store(op)?
            .try_into()
            .unwrap_or(u32::MAX),
    })
}

fn read_division(op: &'static str, row: &Row<'_>) -> Result<Division, StoreError> {
    let id: String = row.get(0).or_store(op)?;
    let email: String = row.get(2).or_store(op)?;
    Ok(Division {
        division_id: parse_stored(op, "division_id", DivisionId::parse(id))?,
        name: row.get(1).or_store(op)?,
        email_from: parse_stored(op, "email_from", Email::parse(&email))?,
        last_bulk_sent_at: from_ts(op, row.get(3).or_store(op)?)?,
        first_synced_at: from_ts(op, row.get(4).or_store(op)?)?,
    })
}

const DIVISION_SELECT: &str =
    "SELECT division_id, name, email_from, last_bulk_sent_at, first_synced_at FROM divisions";

#[async_trait]
impl DivisionStore for SqliteStore {
    async fn put_division(
        &self,
        tenant: &TenantId,
        division: &DivisionInput,
    ) -> Result<Division, StoreError> {
        const OP: &str = "put_division";
        let (tenant, d) = (tenant.clone(), division.clone());
        self.write(OP, move |conn| {
            conn.prepare_cached(
                "INSERT INTO divisions (tenant, division_id, name, email_from, first_synced_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (tenant, division_id) \
                 DO UPDATE SET name = excluded.name, email_from = excluded.email_from",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant.as_str(),
                    d.division_id.as_str(),
                    d.name,
                    d.email_from.as_str(),
                    ts(d.synced_at.unwrap_or_else(OffsetDateTime::now_utc)),
                ])
            })
            .or_store(OP)?;
            let mut s = conn
                .prepare_cached(&format!(
                    "{DIVISION_SELECT} WHERE tenant = ?1 AND division_id = ?2"
                ))
                .or_store(OP)?;
            let mut rows = s
                .query(params![tenant.as_str(), d.division_id.as_str()])
                .or_store(OP)?;
            match rows.next().or_store(OP)? {
                Some(row) => read_division(OP, row),
                None => Err(StoreError::backend(OP, Corrupt("division after write"))),
            }
        })
        .await
    }

    async fn get_division(
        &self,
        tenant: &TenantId,
        id: &DivisionId,
    ) -> Result<Option<Division>, StoreError> {
        const OP: &str = "get_division";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(OP, move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "{DIVISION_SELECT} WHERE tenant = ?1 AND division_id = ?2"
                ))
                .or_store(OP)?;
            let mut rows = s
                .query(params![tenant.as_str(), id.as_str()])
                .or_store(OP)?;
            rows.next()
                .or_store(OP)?
                .map(|row| read_division(OP, row))
                .transpose()
        })
        .await
    }

    async fn list_divisions(&self, tenant: &TenantId) -> Result<Vec<Division>, StoreError> {
        const OP: &str = "list_divisions";
        let tenant = tenant.clone();
        self.read(OP, move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "{DIVISION_SELECT} WHERE tenant = ?1 ORDER BY division_id"
                ))
                .or_store(OP)?;
            let mut rows = s.query(params![tenant.as_str()]).or_store(OP)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().or_store(OP)? {
                out.push(read_division(OP, row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_divisions_page(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Division>, StoreError> {
        const OP: &str = "list_divisions_page";
        let after = cursor
            .map(|c| portal_core::ports::cursor::decode_id(DIVISIONS, c, DivisionId::parse))
            .transpose()?;
        let limit = limit.clamp(1, portal_core::ports::MAX_PAGE_SIZE);
        let tenant = tenant.clone();
        self.read(OP, move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "{DIVISION_SELECT} WHERE tenant = ?1 AND division_id > ?2 \
                     ORDER BY division_id LIMIT ?3"
                ))
                .or_store(OP)?;
            let after = after.as_ref().map_or("", DivisionId::as_str);
            let mut rows = s
                .query(params![tenant.as_str(), after, i64::from(limit) + 1])
                .or_store(OP)?;
            let mut items = Vec::new();
            while let Some(row) = rows.next().or_store(OP)? {
                items.push(read_division(OP, row)?);
            }
            Ok(page_after(items, limit, DIVISIONS, |d| {
                d.division_id.as_str()
            }))
        })
        .await
    }
}

/// The keys a page with `max_examined = Some(n)` may look at: at most `n + 1` keys of
/// `sql` (a statement selecting keys in list order past the cursor, its last parameter the
/// row limit), read first so that the page's own query can be bounded by the last of them.
/// `None` when the page is not bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    /// Keys examined: at most `n`.
    pub examined: usize,
    /// The `n`th key, when at least `n` keys follow the cursor: the page reads no further.
    pub bound: Option<String>,
    /// Whether keys follow the bound.
    pub more: bool,
}

impl Window {
    /// Reads the window of `n` keys: `sql` with `params`, then `n + 1` as its last parameter.
    pub(crate) fn read(
        op: &'static str,
        conn: &Connection,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        n: usize,
    ) -> Result<Window, StoreError> {
        let mut s = conn.prepare_cached(sql).or_store(op)?;
        let limit = i64::try_from(n + 1).unwrap_or(i64::MAX);
        let all: Vec<&dyn rusqlite::ToSql> = params.iter().copied().chain([&limit as _]).collect();
        let mut rows = s.query(all.as_slice()).or_store(op)?;
        let mut keys = Vec::with_capacity(n.min(4096) + 1);
        while let Some(row) = rows.next().or_store(op)? {
            keys.push(row.get::<_, String>(0).or_store(op)?);
        }
        let more = keys.len() > n;
        keys.truncate(n);
        Ok(Window {
            examined: keys.len(),
            bound: (keys.len() == n).then(|| keys.pop()).flatten(),
            more,
        })
    }

    /// Where a page that ran out of keys to examine before it filled goes on: after (in list
    /// order) its last key, when more follow.
    pub(crate) fn resume_after(&self) -> Option<&str> {
        self.bound.as_deref().filter(|_| self.more)
    }
}

/// A page of at most `limit` of `items` (read as `limit + 1` rows in key order), with the
/// cursor of `tag`'s list after its last item when a row was left over.
pub(crate) fn page_after<T>(
    mut items: Vec<T>,
    limit: u32,
    tag: &str,
    key: impl Fn(&T) -> &str,
) -> Page<T> {
    let limit = limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items
            .last()
            .map(|i| portal_core::ports::cursor::encode(tag, key(i)))
    } else {
        None
    };
    Page { items, next_cursor }
}

/// The suppression bit of `flags`, looked up for the (possibly new) address `?7`.
fn suppressed_bit_sql() -> String {
    format!(
        "(CASE WHEN ?7 IS NOT NULL AND EXISTS (SELECT 1 FROM suppressions \
         WHERE tenant = ?1 AND email_norm = ?7) THEN {} ELSE 0 END)",
        schema::FLAG_SUPPRESSED
    )
}

/// Sync of an existing contact (by tenant and contact id): every synced field, the sync bits
/// of `flags` (`?21`) and the suppression bit; status and invitation are kept, `last_login`
/// only replaced when given.
static UPDATE_CONTACT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE contacts SET division_id = ?3, account_id = ?4, contact_name = ?5, \
         email = ?6, email_norm = ?7, phone = ?8, billing = ?9, account_number = ?10, \
         account_name = ?11, account_class = ?12, bill_group = ?13, \
         account_source = ?14, site_source = ?15, active_services = ?16, \
         balance_due_cents = ?17, autopay = ?18, search_text = ?19, \
         last_login = coalesce(?20, last_login), portal_key = ?22, \
         flags = (portal_status & {status}) | ?21 | {suppressed} \
         WHERE tenant = ?1 AND contact_id = ?2",
        status = schema::FLAG_STATUS_MASK,
        suppressed = suppressed_bit_sql(),
    )
});

/// Sync of a new contact, with the same parameters as [`UPDATE_CONTACT`].
static INSERT_CONTACT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO contacts (tenant, contact_id, division_id, account_id, \
         contact_name, email, email_norm, phone, billing, account_number, account_name, \
         account_class, bill_group, account_source, site_source, active_services, \
         balance_due_cents, autopay, search_text, last_login, flags, portal_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
         ?16, ?17, ?18, ?19, ?20, ?21 | {}, ?22)",
        suppressed_bit_sql()
    )
});

/// The bits of `flags` that come from sync alone (not status or suppression).
fn static_flags(a: &Account, c: &ContactInput) -> i64 {
    let bit = |on: bool, flag: i64| if on { flag } else { 0 };
    bit(c.email.is_some(), schema::FLAG_HAS_EMAIL)
        | bit(a.active_services, schema::FLAG_ACTIVE_SERVICES)
        | bit(a.balance_due_cents > 0, schema::FLAG_BALANCE_DUE)
        | bit(c.billing, schema::FLAG_BILLING)
        | bit(a.autopay, schema::FLAG_AUTOPAY)
}

/// Writes one account and its contact set inside an open transaction.
fn upsert_account(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    a: &Account,
    report: &mut SyncReport,
) -> rusqlite::Result<()> {
    let b = |v: bool| i64::from(v);
    // A synced key (?13) wins; otherwise an account keeps its key, and a new one gets the
    // generated ?14.
    let synced_key = a.portal_key.as_ref().map(PortalKey::as_str);
    let generated = PortalKey::generate();
    let portal_key: String = tx
        .prepare_cached(
            "INSERT INTO accounts (tenant, account_id, division_id, number, name, class, \
         bill_group, source, site_source, active_services, balance_due_cents, autopay, \
         portal_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, coalesce(?13, ?14)) \
         ON CONFLICT (tenant, account_id) DO UPDATE SET division_id = excluded.division_id, \
         number = excluded.number, name = excluded.name, class = excluded.class, \
         bill_group = excluded.bill_group, source = excluded.source, \
         site_source = excluded.site_source, active_services = excluded.active_services, \
         balance_due_cents = excluded.balance_due_cents, autopay = excluded.autopay, \
         portal_key = coalesce(?13, accounts.portal_key, ?14) \
         RETURNING portal_key",
        )?
        .query_row(
            params![
                tenant,
                a.account_id.as_str(),
                a.division_id.as_str(),
                a.number,
                a.name,
                a.class,
                a.bill_group,
                a.source,
                a.site_source,
                b(a.active_services),
                a.balance_due_cents,
                b(a.autopay),
                synced_key,
                generated.as_str(),
            ],
            |r| r.get(0),
        )?;

    // The contacts this account had before this sync.
    let before: Vec<String> = tx
        .prepare_cached("SELECT contact_id FROM contacts WHERE tenant = ?1 AND account_id = ?2")?
        .query_map(params![tenant, a.account_id.as_str()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;

    let last_login = a.last_login.map(ts);
    for c in &a.contacts {
        let email = c.email.as_ref().map(Email::as_str);
        let email_norm = c.email.as_ref().map(Email::normalized);
        let search =
            SearchText::of([email.unwrap_or(""), &c.name, &a.number, &a.name]).into_string();
        let flags = static_flags(a, c);
        // Values shared by the update and the insert, as ?1..?21.
        let values = params![
            tenant,
            c.contact_id.as_str(),
            a.division_id.as_str(),
            a.account_id.as_str(),
            c.name,
            email,
            email_norm,
            c.phone,
            b(c.billing),
            a.number,
            a.name,
            a.class,
            a.bill_group,
            a.source,
            a.site_source,
            b(a.active_services),
            a.balance_due_cents,
            b(a.autopay),
            search,
            last_login,
            flags,
            portal_key,
        ];
        let updated = tx.prepare_cached(&UPDATE_CONTACT)?.execute(values)?;
        if updated == 0 {
            tx.prepare_cached(&INSERT_CONTACT)?.execute(values)?;
        }
        report.contacts += 1;
    }

    let kept: HashSet<&str> = a.contacts.iter().map(|c| c.contact_id.as_str()).collect();
    for gone in before.iter().filter(|id| !kept.contains(id.as_str())) {
        report.contacts_removed +=
            tx.prepare_cached(
                "DELETE FROM contacts WHERE tenant = ?1 AND contact_id = ?2 AND account_id = ?3",
            )?
            .execute(params![tenant, gone, a.account_id.as_str()])? as u64;
    }
    report.accounts += 1;
    Ok(())
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn upsert_accounts(
        &self,
        tenant: &TenantId,
        accounts: &[Account],
    ) -> Result<SyncReport, StoreError> {
        const OP: &str = "upsert_accounts";
        if accounts.is_empty() {
            return Ok(SyncReport::default());
        }
        let (tenant, accounts) = (tenant.clone(), accounts.to_vec());
        self.write(OP, move |conn| {
            let tx = conn.transaction().or_store(OP)?;
            let mut report = SyncReport::default();
            for a in &accounts {
                upsert_account(&tx, tenant.as_str(), a, &mut report).or_store(OP)?;
            }
            tx.commit().or_store(OP)?;
            Ok(report)
        })
        .await
    }

    async fn delete_account(&self, tenant: &TenantId, id: &AccountId) -> Result<bool, StoreError> {
        const OP: &str = "delete_account";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(OP, move |conn| {
            let tx = conn.transaction().or_store(OP)?;
            let p = params![tenant.as_str(), id.as_str()];
            tx.prepare_cached("DELETE FROM contacts WHERE tenant = ?1 AND account_id = ?2")
                .and_then(|mut s| s.execute(p))
                .or_store(OP)?;
            let n = tx
                .prepare_cached("DELETE FROM accounts WHERE tenant = ?1 AND account_id = ?2")
                .and_then(|mut s| s.execute(p))
                .or_store(OP)?;
            tx.commit().or_store(OP)?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl ContactStore for SqliteStore {
    async fn count_contacts(
        &self,
        tenant: &TenantId,
        query: &ContactQuery,
    ) -> Result<Counts, StoreError> {
        const OP: &str = "count_contacts";
        let (tenant, query) = (tenant.clone(), query.clone());
        self.read(OP, move |conn| {
            let cube = query::cube_sql(&query);
            let held = query::held_sql(&query);
            let cutoff = query::hold_cutoff(query.now);
            let mut divisions = query.division_ids.clone();
            divisions.sort();
            divisions.dedup();
            let mut counts = Counts::default();
            for d in &divisions {
                let head = [
                    Value::Text(tenant.as_str().to_owned()),
                    Value::Text(d.as_str().to_owned()),
                    Value::Integer(cutoff),
                ];
                // Contacts held by the 24-hour rule, by flags (few: invited in the last day).
                let mut recent = [0u64; 256];
                if let Some(held) = &held {
                    let mut s = conn.prepare_cached(&held.sql).or_store(OP)?;
                    let mut rows = s
                        .query(params_from_iter(head.iter().chain(&held.params)))
                        .or_store(OP)?;
                    while let Some(row) = rows.next().or_store(OP)? {
                        let flags: i64 = row.get(0).or_store(OP)?;
                        let n: i64 = row.get(1).or_store(OP)?;
                        if let Some(slot) =
                            usize::try_from(flags).ok().and_then(|f| recent.get_mut(f))
                        {
                            *slot = n.max(0) as u64;
                        }
                    }
                }
                let mut s = conn.prepare_cached(&cube.sql).or_store(OP)?;
                let mut rows = s
                    .query(params_from_iter(head[..2].iter().chain(&cube.params)))
                    .or_store(OP)?;
                while let Some(row) = rows.next().or_store(OP)? {
                    let flags: i64 = row.get(0).or_store(OP)?;
                    let n: i64 = row.get(1).or_store(OP)?;
                    let held_n = usize::try_from(flags)
                        .ok()
                        .and_then(|f| recent.get(f))
                        .copied()
                        .unwrap_or(0);
                    query::add_group(
                        &mut counts,
                        flags,
                        n.max(0) as u64,
                        held_n,
                        query.limit_to_uninvited,
                    );
                }
            }
            counts.duplicate_address = duplicate_addresses(OP, conn, &tenant, &query)?;
            Ok(counts)
        })
        .await
    }

    async fn list_contacts(
        &self,
        tenant: &TenantId,
        query: &ListQuery,
    ) -> Result<Page<ContactRecord>, StoreError> {
        const OP: &str = "list_contacts";
        let (tenant, q) = (tenant.clone(), query.clone());
        let mut divisions = q.contacts.division_ids.clone();
        divisions.sort();
        divisions.dedup();
        let start = match &q.cursor {
            None => None,
            Some(raw) => Some(query::decode_cursor(raw, &divisions)?),
        };
        let limit = q.limit.clamp(1, portal_core::ports::MAX_FAN_OUT_PAGE) as usize;
        // No stored field contains the separator of `search_text`, so such a needle matches
        // nothing (exactly as `ContactRecord::matches_search` would say).
        if q.search.contains(search::SEPARATOR) {
            return Ok(Page {
                items: vec![],
                next_cursor: None,
            });
        }
        self.read(OP, move |conn| {
            let stmt = query::list_sql(&q.contacts, q.group, &q.search);
            let mut s = conn.prepare_cached(&stmt.sql).or_store(OP)?;
            let (first, mut after) = match start {
                None => (0, String::new()),
                Some((d, c)) => (
                    divisions.iter().position(|x| *x == d).unwrap_or(0),
                    c.as_str().to_owned(),
                ),
            };
            // One row past the page tells whether another page exists.
            let mut items: Vec<ContactRecord> = Vec::with_capacity(limit + 1);
            // Contacts the page may still examine, and where it stopped when they ran out.
            let mut budget = q.max_examined.map(|n| n.max(1) as usize);
            let mut stopped: Option<(DivisionId, String)> = None;
            for (i, d) in divisions.iter().enumerate().skip(first) {
                let after_here = std::mem::take(&mut after);
                let window = match budget {
                    None => None,
                    Some(n) => Some(Window::read(
                        OP,
                        conn,
                        query::LIST_KEYS,
                        &[&tenant.as_str(), &d.as_str(), &after_here],
                        n,
                    )?),
                };
                let bound = window
                    .as_ref()
                    .and_then(|w| w.bound.clone())
                    .unwrap_or_else(|| query::NO_BOUND.to_owned());
                let want = (limit + 1 - items.len()) as i64;
                let head = [
                    Value::Text(tenant.as_str().to_owned()),
                    Value::Text(d.as_str().to_owned()),
                    Value::Text(after_here),
                    Value::Integer(want),
                    Value::Text(bound.clone()),
                ];
                let mut rows = s
                    .query(params_from_iter(head.iter().chain(&stmt.params)))
                    .or_store(OP)?;
                while let Some(row) = rows.next().or_store(OP)? {
                    items.push(read_contact(OP, row)?);
                }
                if items.len() > limit {
                    break;
                }
                if let (Some(n), Some(w)) = (budget.as_mut(), window) {
                    *n -= w.examined;
                    if *n == 0 {
                        // Out of contacts to examine: go on after the last one, unless
                        // nothing follows it.
                        let rest = divisions.get(i + 1..).is_some_and(|r| !r.is_empty());
                        if w.more || rest {
                            stopped = Some((d.clone(), bound));
                        }
                        break;
                    }
                }
            }
            let next_cursor = if items.len() > limit {
                items.truncate(limit);
                items
                    .last()
                    .map(|c| query::encode_cursor(&c.division_id, &c.contact_id))
            } else {
                match stopped {
                    Some((d, last)) => Some(query::encode_cursor(
                        &d,
                        &parse_stored(OP, "contact id", ContactId::parse(last))?,
                    )),
                    None => None,
                }
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }

    async fn get_contact(
        &self,
        tenant: &TenantId,
        id: &ContactId,
    ) -> Result<Option<ContactRecord>, StoreError> {
        const OP: &str = "get_contact";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(OP, move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "SELECT {CONTACT_COLUMNS} FROM contacts WHERE tenant = ?1 AND contact_id = ?2"
                ))
                .or_store(OP)?;
            let mut rows = s
                .query(params![tenant.as_str(), id.as_str()])
                .or_store(OP)?;
            rows.next()
                .or_store(OP)?
                .map(|row| read_contact(OP, row))
                .transpose()
        })
        .await
    }

    async fn get_contacts(
        &self,
        tenant: &TenantId,
        ids: &[ContactId],
    ) -> Result<Vec<ContactRecord>, StoreError> {
        const OP: &str = "get_contacts";
        let (tenant, ids) = (tenant.clone(), distinct(ids));
        self.read(OP, move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "SELECT {CONTACT_COLUMNS} FROM contacts WHERE tenant = ?1 AND contact_id = ?2"
                ))
                .or_store(OP)?;
            let mut found = Vec::with_capacity(ids.len());
            for id in &ids {
                let mut rows = s
                    .query(params![tenant.as_str(), id.as_str()])
                    .or_store(OP)?;
                if let Some(row) = rows.next().or_store(OP)? {
                    found.push(read_contact(OP, row)?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn locate_contacts(
        &self,
        tenant: &TenantId,
        ids: &[ContactId],
    ) -> Result<std::collections::HashMap<ContactId, DivisionId>, StoreError> {
        const OP: &str = "locate_contacts";
        let (tenant, ids) = (tenant.clone(), distinct(ids));
        self.read(OP, move |conn| {
            // Covered by the unique index on (tenant, contact_id), which holds the division
            // as part of the table's key.
            let mut s = conn
                .prepare_cached(
                    "SELECT division_id FROM contacts WHERE tenant = ?1 AND contact_id = ?2",
                )
                .or_store(OP)?;
            let mut found = std::collections::HashMap::with_capacity(ids.len());
            for id in ids {
                let division: Option<String> = s
                    .query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0))
                    .optional()
                    .or_store(OP)?;
                if let Some(d) = division {
                    found.insert(id, parse_stored(OP, "division_id", DivisionId::parse(d))?);
                }
            }
            Ok(found)
        })
        .await
    }

    /// Folds each division's `contact_cube` rows (one per combination of flags and the four
    /// list-filter fields, a few thousand at most) into its values: a range of the cube's
    /// primary key, whatever the number of contacts.
    async fn filter_values(
        &self,
        tenant: &TenantId,
        divisions: &[DivisionId],
    ) -> Result<Vec<FilterValues>, StoreError> {
        const OP: &str = "filter_values";
        let (tenant, divisions) = (tenant.clone(), divisions.to_vec());
        self.read(OP, move |conn| {
            let mut s = conn.prepare_cached(query::FILTER_VALUES_SQL).or_store(OP)?;
            let mut out = Vec::with_capacity(divisions.len());
            for d in &divisions {
                let mut values = FilterValues::default();
                let mut rows = s.query(params![tenant.as_str(), d.as_str()]).or_store(OP)?;
                while let Some(row) = rows.next().or_store(OP)? {
                    // Borrowed from the row: a value is copied only the first time it is seen.
                    let text = |i: usize| -> Result<&str, StoreError> {
                        row.get_ref(i)
                            .and_then(|v| v.as_str().map_err(Into::into))
                            .or_store(OP)
                    };
                    let n: i64 = row.get(4).or_store(OP)?;
                    values
                        .add_combination([text(0)?, text(1)?, text(2)?, text(3)?], n.max(0) as u64);
                }
                out.push(values);
            }
            Ok(out)
        })
        .await
    }
}

/// `ids` without repeats, in their first order.
fn distinct(ids: &[ContactId]) -> Vec<ContactId> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().filter(|id| seen.insert(*id)).cloned().collect()
}

#[async_trait]
impl ContactStateStore for SqliteStore {
    async fn set_portal_status(
        &self,
        tenant: &TenantId,
        id: &ContactId,
        status: PortalStatus,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_portal_status";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(OP, move |conn| {
            let n = conn
                .prepare_cached(&format!(
                    "UPDATE contacts SET portal_status = ?3, flags = (flags & ~{m}) | ?3 \
                     WHERE tenant = ?1 AND contact_id = ?2",
                    m = schema::FLAG_STATUS_MASK
                ))
                .and_then(|mut s| {
                    s.execute(params![tenant.as_str(), id.as_str(), status_code(status)])
                })
                .or_store(OP)?;
            Ok(n > 0)
        })
        .await
    }

    async fn record_invited(
        &self,
        tenant: &TenantId,
        id: &ContactId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const OP: &str = "record_invited";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(OP, move |conn| {
            let n = conn
                .prepare_cached(&format!(
                    "UPDATE contacts SET last_invited_at = ?3, \
                     invitations_sent = invitations_sent + 1, \
                     portal_status = CASE WHEN portal_status = 2 THEN 2 ELSE 1 END, \
                     flags = CASE WHEN portal_status = 2 THEN flags ELSE (flags & ~{m}) | 1 END \
                     WHERE tenant = ?1 AND contact_id = ?2",
                    m = schema::FLAG_STATUS_MASK
                ))
                .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str(), ts(at)]))
                .or_store(OP)?;
            // The address is held too, as a claim's is (one invitation per address).
            conn.prepare_cached(
                "INSERT INTO address_claims (tenant, address, invited_at, campaign_id, contact_id) \
                 SELECT tenant, email_norm, ?3, '', contact_id FROM contacts \
                 WHERE tenant = ?1 AND contact_id = ?2 AND email_norm IS NOT NULL \
                 ON CONFLICT (tenant, address) DO UPDATE SET invited_at = excluded.invited_at, \
                 campaign_id = excluded.campaign_id, contact_id = excluded.contact_id \
                 WHERE excluded.invited_at >= address_claims.invited_at",
            )
            .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str(), ts(at)]))
            .or_store(OP)?;
            Ok(n > 0)
        })
        .await
    }
}

/// Adds a normalised address to the tenant's suppression list (the first reason is kept) and
/// sets the suppression bit of its contacts, inside the caller's transaction: `suppress` and
/// the campaign store's bounces and complaints share it.
fn suppress_in(
    conn: &Connection,
    tenant: &str,
    norm: &str,
    reason: SuppressionReason,
    at: OffsetDateTime,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO suppressions (tenant, email_norm, reason, at) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tenant, email_norm) DO NOTHING",
    )?
    .execute(params![tenant, norm, reason.as_str(), ts(at)])?;
    // Without `INDEXED BY` the planner (no statistics) scans the tenant's contacts by primary
    // key: the `flags` test makes the email index non-covering, and it then prefers the table.
    conn.prepare_cached(&format!(
        "UPDATE contacts INDEXED BY contacts_by_email SET flags = flags | {s} \
         WHERE tenant = ?1 AND email_norm = ?2 AND (flags & {s}) = 0",
        s = schema::FLAG_SUPPRESSED
    ))?
    .execute(params![tenant, norm])?;
    Ok(())
}

#[async_trait]
impl SuppressionStore for SqliteStore {
    async fn suppress(
        &self,
        tenant: &TenantId,
        email: &Email,
        reason: SuppressionReason,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        const OP: &str = "suppress";
        let (tenant, norm) = (tenant.clone(), email.normalized());
        self.write(OP, move |conn| {
            let tx = conn.transaction().or_store(OP)?;
            suppress_in(&tx, tenant.as_str(), &norm, reason, at).or_store(OP)?;
            tx.commit().or_store(OP)
        })
        .await
    }

    async fn is_suppressed(&self, tenant: &TenantId, email: &Email) -> Result<bool, StoreError> {
        const OP: &str = "is_suppressed";
        let (tenant, norm) = (tenant.clone(), email.normalized());
        self.read(OP, move |conn| {
            conn.prepare_cached("SELECT 1 FROM suppressions WHERE tenant = ?1 AND email_norm = ?2")
                .and_then(|mut s| {
                    s.query_row(params![tenant.as_str(), norm], |_| Ok(()))
                        .optional()
                })
                .map(|r| r.is_some())
                .or_store(OP)
        })
        .await
    }

    async fn suppressed_among(
        &self,
        tenant: &TenantId,
        emails: &[Email],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        const OP: &str = "suppressed_among";
        let tenant = tenant.clone();
        let norms: Vec<String> = emails.iter().map(Email::normalized).collect();
        self.read(OP, move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT 1 FROM suppressions WHERE tenant = ?1 AND email_norm = ?2")
                .or_store(OP)?;
            let mut found = std::collections::HashSet::new();
            for norm in norms {
                if stmt.exists(params![tenant.as_str(), norm]).or_store(OP)? {
                    found.insert(norm);
                }
            }
            Ok(found)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::domain::{Filters, Group};

    /// `EXPLAIN QUERY PLAN` of a statement, its details joined by `; `.
    fn plan(store: &SqliteStore, sql: &str) -> String {
        let conn = lock(&store.inner.writer);
        let mut s = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = s.parameter_count();
        let rows = s
            .query_map(
                params_from_iter(std::iter::repeat_n(Value::Integer(1), n)),
                |r| r.get::<_, String>(3),
            )
            .unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
    }

    fn query(filters: Filters) -> ContactQuery {
        ContactQuery {
            division_ids: vec![DivisionId::parse("d1").unwrap()],
            filters,
            limit_to_uninvited: true,
            now: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_token_is_found_through_the_one_token_hash_index() {
        let store = SqliteStore::open_in_memory().unwrap();
        for sql in [
            "SELECT tenant, campaign_id, contact_id, token_used_at FROM invitations \
             WHERE token_hash = ?1 LIMIT 1",
            "SELECT contact_id FROM invitations WHERE tenant = ?1 AND token_hash = ?2",
        ] {
            let p = plan(&store, sql);
            assert!(
                p.contains("INDEX invitations_by_token_hash (token_hash=?"),
                "{p}"
            );
        }
        let conn = lock(&store.inner.writer);
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invitations'",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert!(
            !indexes.iter().any(|i| i == "invitations_by_token"),
            "{indexes:?}"
        );
    }

    #[test]
    fn a_count_reads_the_cube_and_seeks_only_recent_invitations() {
        let store = SqliteStore::open_in_memory().unwrap();
        let filters = Filters {
            account_class: vec!["A".into(), "B".into()],
            bill_group: vec!["1".into()],
            account_source: vec!["x".into()],
            site_source: vec!["y".into()],
            active_services: true,
            without_autopay: true,
            ..Default::default()
        };
        for q in [query(Filters::default()), query(filters)] {
            let p = plan(&store, &query::cube_sql(&q).sql);
            assert!(p.contains("contact_cube"), "{p}");
            assert!(!p.contains("TEMP B-TREE"), "{p}");
            let p = plan(&store, &query::held_sql(&q).unwrap().sql);
            assert!(
                p.contains(
                    "COVERING INDEX contacts_counts (tenant=? AND division_id=? AND flags=? \
                     AND last_invited_at>?)"
                ),
                "{p}"
            );
            assert!(!p.contains("TEMP B-TREE"), "{p}");
        }
    }

    #[test]
    fn filter_values_read_a_range_of_the_cube_and_sort_nothing() {
        let store = SqliteStore::open_in_memory().unwrap();
        let p = plan(&store, query::FILTER_VALUES_SQL);
        assert!(
            p.contains("contact_cube USING PRIMARY KEY (tenant=? AND division_id=?)"),
            "{p}"
        );
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }

    #[tokio::test]
    async fn filter_values_agree_with_the_contacts_after_every_kind_of_write() {
        use portal_core::domain::FilterValues;
        use portal_core::ports::{AccountStore, ContactStateStore, ContactStore};
        let store = SqliteStore::open_in_memory().unwrap();
        let t = TenantId::parse("t").unwrap();
        let (d1, d2) = (
            DivisionId::parse("d1").unwrap(),
            DivisionId::parse("d2").unwrap(),
        );
        let mut accounts = portal_core::demo::accounts(3, &d1, 0, 200).unwrap();
        store.upsert_accounts(&t, &accounts).await.unwrap();
        for (i, a) in accounts.iter_mut().enumerate() {
            match i % 4 {
                0 => a.division_id = d2.clone(),
                1 => a.bill_group = "Moved".into(),
                2 => a.contacts.truncate(1),
                _ => {}
            }
        }
        store.upsert_accounts(&t, &accounts).await.unwrap();
        for a in accounts.iter().step_by(9) {
            store.delete_account(&t, &a.account_id).await.unwrap();
        }
        for c in accounts.iter().flat_map(|a| &a.contacts).step_by(5) {
            store
                .set_portal_status(&t, &c.contact_id, PortalStatus::Accepted)
                .await
                .unwrap();
        }
        let got = store
            .filter_values(&t, &[d1.clone(), d2.clone()])
            .await
            .unwrap();
        let conn = lock(&store.inner.writer);
        for (d, got) in [&d1, &d2].into_iter().zip(got) {
            let mut want = FilterValues::default();
            let mut s = conn
                .prepare(&format!(
                    "SELECT {CONTACT_COLUMNS} FROM contacts WHERE tenant = 't' AND division_id = ?1"
                ))
                .unwrap();
            let mut rows = s.query([d.as_str()]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                want.add_contact(&read_contact("test", row).unwrap());
            }
            assert!(!want.is_empty());
            assert_eq!(got, want, "{d}");
        }
    }

    #[test]
    fn a_list_page_is_a_range_of_the_clustered_key_in_order() {
        let store = SqliteStore::open_in_memory().unwrap();
        for group in [Group::All, Group::Eligible, Group::Held24h, Group::NoEmail] {
            let p = plan(
                &store,
                &query::list_sql(&query(Filters::default()), group, "smith").sql,
            );
            assert!(
                p.contains(
                    "PRIMARY KEY (tenant=? AND division_id=? AND contact_id>? AND contact_id<?)"
                ),
                "{p}"
            );
            assert!(!p.contains("TEMP B-TREE"), "{p}");
        }
    }

    fn cube_and_aggregate(store: &SqliteStore) -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
        let conn = lock(&store.inner.writer);
        let read = |sql: &str| -> Vec<Vec<Value>> {
            let mut s = conn.prepare(sql).unwrap();
            let rows = s
                .query_map([], |r| (0..8).map(|i| r.get::<_, Value>(i)).collect())
                .unwrap();
            rows.map(|r| r.unwrap()).collect()
        };
        let cols = "tenant, division_id, flags, account_class, bill_group, account_source, \
                    site_source";
        (
            read(&format!(
                "SELECT {cols}, n FROM contact_cube WHERE n <> 0 ORDER BY {cols}"
            )),
            read(&format!(
                "SELECT {cols}, count(*) FROM contacts GROUP BY {cols} ORDER BY {cols}"
            )),
        )
    }

    #[tokio::test]
    async fn the_cube_always_equals_a_fresh_aggregate_of_the_contacts() {
        use portal_core::ports::{AccountStore, ContactStateStore, SuppressionStore};
        let store = SqliteStore::open_in_memory().unwrap();
        let t = TenantId::parse("t").unwrap();
        let (d1, d2) = (
            DivisionId::parse("d1").unwrap(),
            DivisionId::parse("d2").unwrap(),
        );
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let mut accounts = portal_core::demo::accounts(1, &d1, 0, 300).unwrap();
        store.upsert_accounts(&t, &accounts).await.unwrap();
        let mut summary = portal_core::demo::DemoSummary::default();
        portal_core::demo::apply_states(&store, &t, 1, &accounts, now, &mut summary)
            .await
            .unwrap();
        for (i, a) in accounts.iter_mut().enumerate() {
            match i % 5 {
                0 => a.division_id = d2.clone(),
                1 => a.class = "Changed".into(),
                2 => a.contacts.truncate(1),
                3 => a.autopay = !a.autopay,
                _ => {}
            }
        }
        store.upsert_accounts(&t, &accounts).await.unwrap();
        for a in accounts.iter().step_by(7) {
            store.delete_account(&t, &a.account_id).await.unwrap();
        }
        for c in accounts.iter().flat_map(|a| &a.contacts).step_by(3) {
            if let Some(e) = &c.email {
                store
                    .suppress(&t, e, SuppressionReason::Bounced, now)
                    .await
                    .unwrap();
            }
            store
                .set_portal_status(&t, &c.contact_id, PortalStatus::NotSent)
                .await
                .unwrap();
            store.record_invited(&t, &c.contact_id, now).await.unwrap();
        }
        let (cube, aggregate) = cube_and_aggregate(&store);
        assert!(!cube.is_empty());
        assert_eq!(cube, aggregate);
    }

    #[tokio::test]
    async fn a_database_from_before_the_cube_gets_one_on_open() {
        use portal_core::ports::AccountStore;
        let dir = std::env::temp_dir().join(format!("sqlite-cube-{}", std::process::id()));
        let path = dir.join("old.db");
        let t = TenantId::parse("t").unwrap();
        let d1 = DivisionId::parse("d1").unwrap();
        {
            let store = SqliteStore::open(&path).unwrap();
            let accounts = portal_core::demo::accounts(2, &d1, 0, 50).unwrap();
            store.upsert_accounts(&t, &accounts).await.unwrap();
            let conn = lock(&store.inner.writer);
            conn.execute_batch(
                "DROP TRIGGER contacts_cube_insert; DROP TRIGGER contacts_cube_delete; \
                 DROP TRIGGER contacts_cube_update; DROP TABLE contact_cube; \
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let (cube, aggregate) = cube_and_aggregate(&store);
        assert!(!cube.is_empty());
        assert_eq!(cube, aggregate);
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }
}
