//! The SQLite schema and connection settings.
//!
//! # Tables
//!
//! Every primary key starts with `tenant`, so no statement can reach another tenant's rows
//! without naming it.
//!
//! - `divisions (tenant, division_id)`: name, sender, `last_bulk_sent_at`.
//! - `accounts (tenant, account_id)`: the account as last synced. Its filterable fields are
//!   also copied onto each of its contacts; this row exists so `delete_account` can tell a
//!   missing account from one without contacts.
//! - `contacts`: one row per contact, clustered (`WITHOUT ROWID`) by
//!   `(tenant, division_id, contact_id)` so a recipient list is a range scan of the table in
//!   key order, with no lookups. A unique index on `(tenant, contact_id)` keeps a contact id
//!   unique per tenant (sync moves a contact by updating its key). The row carries its
//!   account's filterable fields, the system fields (`portal_status` as 0/1/2,
//!   `last_invited_at`, `last_login` as unix seconds), `search_text` (the lowercased
//!   searchable fields, see [`search_text`]) and `flags` (below).
//! - `suppressions (tenant, email_norm)`: reason and time.
//!
//! # Counting fast
//!
//! `flags` packs everything a count classifies on into one small integer (see the `FLAG_*`
//! constants), including "the normalised address is on the suppression list". Every write
//! that changes one of its inputs (sync, status, invitation, suppression) rewrites it in the
//! same statement. It is a plain column rather than a generated one because SQLite does
//! not treat an index over a generated column as covering, and a count must never touch
//! the table. The index `contacts_counts` on
//! `(tenant, division_id, flags, last_invited_at, account_class, bill_group, account_source,
//! site_source)` covers a count completely, and because `flags` follows the division in the
//! key, `GROUP BY flags` streams over one index range without a sort: a count reads about
//! 80 bytes per contact and does one comparison per row for the 24-hour rule. The final
//! buckets are computed in Rust from at most 256 groups.

use rusqlite::Connection;

/// Bits of the `flags` column of a contact.
pub const FLAG_STATUS_MASK: i64 = 0b11; // 0 not_sent, 1 pending, 2 accepted
pub const FLAG_HAS_EMAIL: i64 = 1 << 2;
pub const FLAG_SUPPRESSED: i64 = 1 << 3;
pub const FLAG_ACTIVE_SERVICES: i64 = 1 << 4;
pub const FLAG_BALANCE_DUE: i64 = 1 << 5;
pub const FLAG_BILLING: i64 = 1 << 6;
pub const FLAG_AUTOPAY: i64 = 1 << 7;

/// Bumped when the schema changes incompatibly.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS divisions (
    tenant            TEXT NOT NULL,
    division_id       TEXT NOT NULL,
    name              TEXT NOT NULL,
    email_from        TEXT NOT NULL,
    last_bulk_sent_at INTEGER,
    PRIMARY KEY (tenant, division_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS accounts (
    tenant            TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    division_id       TEXT NOT NULL,
    number            TEXT NOT NULL,
    name              TEXT NOT NULL,
    class             TEXT NOT NULL,
    bill_group        TEXT NOT NULL,
    source            TEXT NOT NULL,
    site_source       TEXT NOT NULL,
    active_services   INTEGER NOT NULL,
    balance_due_cents INTEGER NOT NULL,
    autopay           INTEGER NOT NULL,
    PRIMARY KEY (tenant, account_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS contacts (
    tenant            TEXT NOT NULL,
    division_id       TEXT NOT NULL,
    contact_id        TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    contact_name      TEXT NOT NULL,
    email             TEXT,
    email_norm        TEXT,
    phone             TEXT NOT NULL,
    billing           INTEGER NOT NULL,
    account_number    TEXT NOT NULL,
    account_name      TEXT NOT NULL,
    account_class     TEXT NOT NULL,
    bill_group        TEXT NOT NULL,
    account_source    TEXT NOT NULL,
    site_source       TEXT NOT NULL,
    active_services   INTEGER NOT NULL,
    balance_due_cents INTEGER NOT NULL,
    autopay           INTEGER NOT NULL,
    portal_status     INTEGER NOT NULL DEFAULT 0,
    last_invited_at   INTEGER,
    last_login        INTEGER,
    search_text       TEXT NOT NULL,
    flags             INTEGER NOT NULL,
    PRIMARY KEY (tenant, division_id, contact_id)
) WITHOUT ROWID;

CREATE UNIQUE INDEX IF NOT EXISTS contacts_by_id ON contacts (tenant, contact_id);
CREATE INDEX IF NOT EXISTS contacts_by_account ON contacts (tenant, account_id);
CREATE INDEX IF NOT EXISTS contacts_by_email ON contacts (tenant, email_norm)
    WHERE email_norm IS NOT NULL;
CREATE INDEX IF NOT EXISTS contacts_counts ON contacts (
    tenant, division_id, flags, last_invited_at,
    account_class, bill_group, account_source, site_source
);

CREATE TABLE IF NOT EXISTS suppressions (
    tenant     TEXT NOT NULL,
    email_norm TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (tenant, email_norm)
) WITHOUT ROWID;
"#;

/// Settings every connection gets: wait on a busy writer instead of failing, and read the
/// file through a memory map with a generous page cache (a 1M-contact count index is ~80 MB).
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -65536;
         PRAGMA mmap_size = 1073741824;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Creates the schema on the write connection (idempotent) and turns on WAL for a file, so
/// readers never wait for a writer.
pub fn create(conn: &Connection, file_backed: bool) -> rusqlite::Result<()> {
    if file_backed {
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    }
    Ok(())
}

/// The lowercased searchable fields joined by `\u{1}`, which no stored field can contain
/// (names reject control characters, emails and account numbers too), so a substring match
/// in this text is exactly [`crate::domain::ContactRecord::matches_search`].
pub fn search_text(email: Option<&str>, name: &str, number: &str, account_name: &str) -> String {
    let mut s = String::with_capacity(
        email.map_or(0, str::len) + name.len() + number.len() + account_name.len() + 3,
    );
    if let Some(e) = email {
        s.push_str(&e.to_lowercase());
    }
    s.push('\u{1}');
    s.push_str(&name.to_lowercase());
    s.push('\u{1}');
    s.push_str(&number.to_lowercase());
    s.push('\u{1}');
    s.push_str(&account_name.to_lowercase());
    s
}
