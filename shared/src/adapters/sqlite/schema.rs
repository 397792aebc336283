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
//! - `templates (tenant, template_id)`: a template's raw text (parsed again on read).
//! - `contact_cube`: how many contacts of a division share each combination of `flags`
//!   and the four list-filter fields, kept exact by triggers on `contacts` (see below).
//!
//! # Counting fast
//!
//! `flags` packs everything a count classifies on into one small integer (see the `FLAG_*`
//! constants), including "the normalised address is on the suppression list". Every write
//! that changes one of its inputs (sync, status, invitation, suppression) rewrites it in the
//! same statement (a plain column, not a generated one: SQLite does not treat an index over
//! a generated column as covering).
//!
//! Everything a count needs except the 24-hour rule depends only on `flags` and the four
//! list-filter fields, so the triggers on `contacts` keep `contact_cube`: one row per
//! (division, flags, class, bill group, source, site source) with its number of contacts.
//! A count sums the cube rows of a division that pass the filters (`GROUP BY flags`
//! streams in key order): its cost grows with the number of *distinct combinations*
//! (thousands), not contacts (millions).
//!
//! The 24-hour rule depends on "now", so it cannot be pre-aggregated. It only concerns
//! contacts invited after `now - 24h`, and the index `contacts_counts` on
//! `(tenant, division_id, flags, last_invited_at, account_class, bill_group, account_source,
//! site_source)` finds exactly those: for each candidate `flags` value, one range seek on
//! `last_invited_at`, covered by the index. Lists use the clustered key instead.
//! The final buckets are computed in Rust from at most 256 groups.

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
const SCHEMA_VERSION: i64 = 3;

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

CREATE TABLE IF NOT EXISTS templates (
    tenant      TEXT NOT NULL,
    template_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    html        TEXT NOT NULL,
    text        TEXT NOT NULL,
    PRIMARY KEY (tenant, template_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS contact_cube (
    tenant         TEXT NOT NULL,
    division_id    TEXT NOT NULL,
    flags          INTEGER NOT NULL,
    account_class  TEXT NOT NULL,
    bill_group     TEXT NOT NULL,
    account_source TEXT NOT NULL,
    site_source    TEXT NOT NULL,
    n              INTEGER NOT NULL,
    PRIMARY KEY (tenant, division_id, flags, account_class, bill_group, account_source,
                 site_source)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS contacts_cube_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO contact_cube (tenant, division_id, flags, account_class, bill_group,
                              account_source, site_source, n)
    VALUES (NEW.tenant, NEW.division_id, NEW.flags, NEW.account_class, NEW.bill_group,
            NEW.account_source, NEW.site_source, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER IF NOT EXISTS contacts_cube_delete AFTER DELETE ON contacts BEGIN
    UPDATE contact_cube SET n = n - 1
    WHERE tenant = OLD.tenant AND division_id = OLD.division_id AND flags = OLD.flags
      AND account_class = OLD.account_class AND bill_group = OLD.bill_group
      AND account_source = OLD.account_source AND site_source = OLD.site_source;
END;

CREATE TRIGGER IF NOT EXISTS contacts_cube_update
AFTER UPDATE OF tenant, division_id, flags, account_class, bill_group, account_source,
                site_source ON contacts
WHEN OLD.tenant IS NOT NEW.tenant OR OLD.division_id IS NOT NEW.division_id
  OR OLD.flags IS NOT NEW.flags OR OLD.account_class IS NOT NEW.account_class
  OR OLD.bill_group IS NOT NEW.bill_group OR OLD.account_source IS NOT NEW.account_source
  OR OLD.site_source IS NOT NEW.site_source
BEGIN
    UPDATE contact_cube SET n = n - 1
    WHERE tenant = OLD.tenant AND division_id = OLD.division_id AND flags = OLD.flags
      AND account_class = OLD.account_class AND bill_group = OLD.bill_group
      AND account_source = OLD.account_source AND site_source = OLD.site_source;
    INSERT INTO contact_cube (tenant, division_id, flags, account_class, bill_group,
                              account_source, site_source, n)
    VALUES (NEW.tenant, NEW.division_id, NEW.flags, NEW.account_class, NEW.bill_group,
            NEW.account_source, NEW.site_source, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
"#;

/// Rebuilds the cube from the contacts (a database made before the cube existed).
const REBUILD_CUBE: &str = r#"
DELETE FROM contact_cube;
INSERT INTO contact_cube (tenant, division_id, flags, account_class, bill_group,
                          account_source, site_source, n)
SELECT tenant, division_id, flags, account_class, bill_group, account_source, site_source,
       count(*)
FROM contacts
GROUP BY tenant, division_id, flags, account_class, bill_group, account_source, site_source;
"#;

/// Settings every connection gets: wait on a busy writer instead of failing, and read the
/// file through a memory map, with a 16 MiB page cache per connection (counts read the small
/// `contact_cube`; lists and sends read pages through the map, which the kernel can reclaim).
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16384;
         PRAGMA mmap_size = 0;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Creates the schema on the write connection (idempotent) and turns on WAL for a file, so
/// readers never wait for a writer.
pub fn create(conn: &Connection, file_backed: bool) -> rusqlite::Result<()> {
    if file_backed {
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 16384;")?;
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        // Every statement of the schema is idempotent; version 1 lacked the cube, version 2
        // the templates.
        let mut sql = format!("BEGIN IMMEDIATE;{SCHEMA}");
        if version == 1 {
            sql.push_str(REBUILD_CUBE);
        }
        sql.push_str(&format!("PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"));
        conn.execute_batch(&sql)?;
    }
    // Campaign tables: idempotent, created on every open (see `campaigns`).
    conn.execute_batch(super::campaigns::SCHEMA)?;
    super::campaigns::migrate(conn)?;
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
