//! The SQLite schema — every table, index and trigger, and every migration — and the
//! connection settings.
//!
//! # Versions
//!
//! `PRAGMA user_version` says which [`MIGRATIONS`] a database has had; opening it runs the
//! missing ones in order, each in its own transaction (see [`create`]).
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
//!   searchable fields, see `portal_core::domain::search`) and `flags` (below).
//! - `suppressions (tenant, email_norm)`: reason and time.
//! - `templates (tenant, template_id)`: a template's raw text (parsed again on read).
//! - the campaign tables (`campaigns`, `campaign_divisions`, `campaign_idempotency`,
//!   `invitations`, `campaign_selections`): see `campaigns`.
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

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use portal_core::domain::search::SearchText;

/// Bits of the `flags` column of a contact.
pub const FLAG_STATUS_MASK: i64 = 0b11; // 0 not_sent, 1 pending, 2 accepted
pub const FLAG_HAS_EMAIL: i64 = 1 << 2;
pub const FLAG_SUPPRESSED: i64 = 1 << 3;
pub const FLAG_ACTIVE_SERVICES: i64 = 1 << 4;
pub const FLAG_BALANCE_DUE: i64 = 1 << 5;
pub const FLAG_BILLING: i64 = 1 << 6;
pub const FLAG_AUTOPAY: i64 = 1 << 7;

/// The version `PRAGMA user_version` holds once every migration of [`MIGRATIONS`] ran.
pub const SCHEMA_VERSION: i64 = 12;

/// One step of the schema: what it brings and how, run in its own transaction with the bump
/// of `user_version` to `version`.
struct Migration {
    version: i64,
    what: &'static str,
    apply: fn(&Connection) -> rusqlite::Result<()>,
}

/// Every step, in order. A new database runs them all; an existing one the steps after its
/// `user_version`. Add a step here (never edit a released one) and bump [`SCHEMA_VERSION`].
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "divisions, accounts, contacts, suppressions",
        apply: |c| c.execute_batch(V1_BASE),
    },
    Migration {
        version: 2,
        what: "the contact cube, built from the contacts",
        apply: |c| {
            c.execute_batch(V2_CUBE)?;
            c.execute_batch(REBUILD_CUBE)
        },
    },
    Migration {
        version: 3,
        what: "templates",
        apply: |c| c.execute_batch(V3_TEMPLATES),
    },
    Migration {
        version: 4,
        what: "campaigns, their divisions and idempotency keys, invitations",
        apply: |c| {
            c.execute_batch(V4_CAMPAIGNS)?;
            upgrade_unversioned_campaign_tables(c)
        },
    },
    Migration {
        version: 5,
        what: "registration: portal keys, token use, template kinds, logins, confirmations, \
               rate limits, sign-up requests",
        apply: |c| {
            for (table, column, decl) in V5_COLUMNS {
                add_column_if_missing(c, table, column, decl)?;
            }
            c.execute_batch(V5_REGISTRATION)?;
            generate_missing_portal_keys(c)
        },
    },
    Migration {
        version: 6,
        what: "recurring settings and runs, divisions' first sync, contacts' invitation count, \
               campaigns' recurring run",
        apply: |c| {
            for (table, column, decl) in V6_COLUMNS {
                add_column_if_missing(c, table, column, decl)?;
            }
            c.execute_batch(V6_RECURRING)
        },
    },
    Migration {
        version: 7,
        what: "hand-picked campaigns: their contact ids and how many",
        apply: |c| {
            add_column_if_missing(c, "campaigns", "selected", "INTEGER")?;
            c.execute_batch(V7_SELECTIONS)
        },
    },
    Migration {
        version: 8,
        what: "the sweeper: campaigns' watch records, and an index of the active campaigns",
        apply: |c| c.execute_batch(V8_SWEEPS),
    },
    Migration {
        version: 9,
        what: "the send path: address claims, counted fan-out pages, delivery leases, \
               campaigns' duplicate-address skips",
        apply: |c| {
            add_column_if_missing(
                c,
                "campaigns",
                "skipped_duplicate_address",
                "INTEGER NOT NULL DEFAULT 0",
            )?;
            c.execute_batch(V9_SEND_PATH)
        },
    },
    Migration {
        version: 10,
        what: "invitations lose their (tenant, token hash) index, which the token hash index \
               already serves",
        apply: |c| c.execute_batch(V10_ONE_TOKEN_INDEX),
    },
    Migration {
        version: 11,
        what: "tenants' sender settings",
        apply: |c| c.execute_batch(V11_SENDER_SETTINGS),
    },
    Migration {
        version: 12,
        what: "a campaign keeps the sender display name its tenant's settings had",
        // The display name pattern a campaign started with (`NULL`: each email shows its
        // division's name).
        apply: |c| add_column_if_missing(c, "campaigns", "display_name", "TEXT"),
    },
];

/// Version 11: each tenant's sender settings, as their JSON document
/// ([`SenderSettings`](portal_core::domain::SenderSettings)).
const V11_SENDER_SETTINGS: &str = "CREATE TABLE IF NOT EXISTS sender_settings (
    tenant TEXT PRIMARY KEY,
    body   TEXT NOT NULL
);";

/// Version 10: one index on the invitations' token hashes, not two.
///
/// `invitations_by_token (tenant, token_hash)` (version 1) and `invitations_by_token_hash
/// (token_hash)` (version 5) each took a random page write per claimed invitation (the
/// hashes are random), the largest share of a claim's commit after the address claims. The
/// planner answers every token lookup (`find_token`, and `tenant = ? AND token_hash = ?`)
/// from `invitations_by_token_hash`, whose entries carry the primary key, tenant included:
/// the first index was never read. Dropping it took a 100,000-contact claim phase from
/// ~8.0 s to ~6.0 s of writer time (bench-send, 2026-12-01).
const V10_ONE_TOKEN_INDEX: &str = "DROP INDEX IF EXISTS invitations_by_token;";

/// Version 9: the send path's exactly-once records.
///
/// - `address_claims`: the last claim of each of a tenant's addresses (`address` is
///   [`Email::normalized`](portal_core::domain::Email::normalized)), by which campaign and
///   contact; backfilled from the contacts' `last_invited_at`, so an address invited just
///   before the upgrade is held too.
/// - `address_tally`: how many of a tenant's contacts carry each address (kept by triggers
///   on `contacts`, indexed where more than one does), so a count finds the shared addresses
///   without grouping the tenant's whole address index.
/// - `campaign_pages`: the fan-out pages whose skips were counted.
/// - `delivery_leases`: a delivery batch's lease (`owner` until `until`), whether it is
///   `done`, and the send group it was attempting (`attempt_at`, `attempt` as a JSON list of
///   contact ids).
const V9_SEND_PATH: &str = r#"
CREATE TABLE IF NOT EXISTS address_claims (
    tenant      TEXT NOT NULL,
    address     TEXT NOT NULL,
    invited_at  INTEGER NOT NULL,
    campaign_id TEXT NOT NULL,
    contact_id  TEXT NOT NULL,
    PRIMARY KEY (tenant, address)
) WITHOUT ROWID;
INSERT OR REPLACE INTO address_claims (tenant, address, invited_at, campaign_id, contact_id)
    SELECT tenant, email_norm, last_invited_at, '', contact_id FROM contacts
    WHERE email_norm IS NOT NULL AND last_invited_at IS NOT NULL
    ORDER BY last_invited_at;
CREATE TABLE IF NOT EXISTS campaign_pages (
    tenant      TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    page_key    TEXT NOT NULL,
    PRIMARY KEY (tenant, campaign_id, page_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS address_tally (
    tenant     TEXT NOT NULL,
    email_norm TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (tenant, email_norm)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS address_tally_shared ON address_tally (tenant, email_norm)
    WHERE n > 1;
INSERT OR REPLACE INTO address_tally (tenant, email_norm, n)
    SELECT tenant, email_norm, count(*) FROM contacts
    WHERE email_norm IS NOT NULL GROUP BY tenant, email_norm;
CREATE TRIGGER IF NOT EXISTS contacts_tally_insert AFTER INSERT ON contacts
WHEN NEW.email_norm IS NOT NULL BEGIN
    INSERT INTO address_tally (tenant, email_norm, n) VALUES (NEW.tenant, NEW.email_norm, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS contacts_tally_delete AFTER DELETE ON contacts
WHEN OLD.email_norm IS NOT NULL BEGIN
    UPDATE address_tally SET n = n - 1
    WHERE tenant = OLD.tenant AND email_norm = OLD.email_norm;
END;
CREATE TRIGGER IF NOT EXISTS contacts_tally_update AFTER UPDATE OF tenant, email_norm ON contacts
WHEN OLD.tenant IS NOT NEW.tenant OR OLD.email_norm IS NOT NEW.email_norm BEGIN
    UPDATE address_tally SET n = n - 1
    WHERE OLD.email_norm IS NOT NULL AND tenant = OLD.tenant AND email_norm = OLD.email_norm;
    INSERT INTO address_tally (tenant, email_norm, n)
    SELECT NEW.tenant, NEW.email_norm, 1 WHERE NEW.email_norm IS NOT NULL
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TABLE IF NOT EXISTS delivery_leases (
    tenant      TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    batch       TEXT NOT NULL,
    owner       TEXT NOT NULL,
    until       INTEGER NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    attempt_at  INTEGER,
    attempt     TEXT,
    PRIMARY KEY (tenant, campaign_id, batch)
) WITHOUT ROWID;
"#;

/// Version 1: divisions, accounts, contacts and the suppression list.
const V1_BASE: &str = r#"
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

/// Version 2: the contact cube, kept by triggers on `contacts`.
const V2_CUBE: &str = r#"
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

/// Version 3: templates.
const V3_TEMPLATES: &str = r#"
CREATE TABLE IF NOT EXISTS templates (
    tenant      TEXT NOT NULL,
    template_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    html        TEXT NOT NULL,
    text        TEXT NOT NULL,
    PRIMARY KEY (tenant, template_id)
) WITHOUT ROWID;
"#;

/// Version 4: the campaign tables.
const V4_CAMPAIGNS: &str = r#"
CREATE TABLE IF NOT EXISTS campaigns (
    tenant             TEXT NOT NULL,
    campaign_id        TEXT NOT NULL,
    trigger            TEXT NOT NULL,
    status             TEXT NOT NULL,
    division_ids       TEXT NOT NULL,
    filters            TEXT NOT NULL,
    limit_to_uninvited INTEGER NOT NULL,
    template_id        TEXT NOT NULL,
    email_from         TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    created_by         TEXT NOT NULL,
    targeted           INTEGER NOT NULL DEFAULT 0,
    skipped_accepted   INTEGER NOT NULL DEFAULT 0,
    skipped_held_24h   INTEGER NOT NULL DEFAULT 0,
    skipped_suppressed INTEGER NOT NULL DEFAULT 0,
    skipped_no_email   INTEGER NOT NULL DEFAULT 0,
    pause_reason       TEXT,
    cat_in_process     INTEGER NOT NULL DEFAULT 0,
    cat_failed         INTEGER NOT NULL DEFAULT 0,
    cat_unopened       INTEGER NOT NULL DEFAULT 0,
    cat_bounced        INTEGER NOT NULL DEFAULT 0,
    cat_opened         INTEGER NOT NULL DEFAULT 0,
    cat_clicked        INTEGER NOT NULL DEFAULT 0,
    cat_unsubscribed   INTEGER NOT NULL DEFAULT 0,
    cat_registered     INTEGER NOT NULL DEFAULT 0,
    send_pending       INTEGER NOT NULL DEFAULT 0,
    send_sent          INTEGER NOT NULL DEFAULT 0,
    send_failed        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, campaign_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS campaign_divisions (
    tenant      TEXT NOT NULL,
    division_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    PRIMARY KEY (tenant, division_id, campaign_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS campaign_idempotency (
    tenant      TEXT NOT NULL,
    key         TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    body_hash   BLOB NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS invitations (
    tenant         TEXT NOT NULL,
    campaign_id    TEXT NOT NULL,
    contact_id     TEXT NOT NULL,
    email          TEXT NOT NULL,
    token_hash     BLOB NOT NULL,
    expires_at     INTEGER NOT NULL,
    category       TEXT NOT NULL,
    reason         TEXT,
    created_at     INTEGER NOT NULL,
    send_state     TEXT NOT NULL DEFAULT 'pending',
    suppressed     INTEGER NOT NULL DEFAULT 0,
    contact_name   TEXT NOT NULL DEFAULT '',
    account_number TEXT NOT NULL DEFAULT '',
    search_text    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, campaign_id, contact_id)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS invitations_by_token ON invitations (tenant, token_hash);
CREATE INDEX IF NOT EXISTS invitations_by_category
    ON invitations (tenant, campaign_id, category, contact_id);
"#;

/// Version 6: recurring invitations.
///
/// - `divisions.first_synced_at` (which divisions are "new" for a setting);
/// - `contacts.invitations_sent`, kept by the claim (a setting's maximum counts it);
/// - `campaigns.recurring` (JSON of the run that made the campaign);
/// - `recurring_settings (tenant, setting_id)` and `recurring_runs (tenant, setting_id,
///   local_date)`: the primary key is the once-a-day guarantee.
const V6_COLUMNS: &[(&str, &str, &str)] = &[
    ("divisions", "first_synced_at", "INTEGER"),
    ("contacts", "invitations_sent", "INTEGER NOT NULL DEFAULT 0"),
    ("campaigns", "recurring", "TEXT"),
];

const V6_RECURRING: &str = r#"
CREATE TABLE IF NOT EXISTS recurring_settings (
    tenant      TEXT NOT NULL,
    setting_id  TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (tenant, setting_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recurring_settings_enabled ON recurring_settings (enabled);

CREATE TABLE IF NOT EXISTS recurring_runs (
    tenant      TEXT NOT NULL,
    setting_id  TEXT NOT NULL,
    local_date  TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    campaign_id TEXT,
    finished    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, setting_id, local_date)
) WITHOUT ROWID;
"#;

/// Version 7: hand-picked campaigns.
///
/// - `campaigns.selected`: how many contacts a hand-picked campaign names (`NULL` for every
///   other campaign);
/// - `campaign_selections (tenant, campaign_id, position)`: its contact ids in the order
///   they were picked, so a fan-out page is a range of the key.
const V7_SELECTIONS: &str = r#"
CREATE TABLE IF NOT EXISTS campaign_selections (
    tenant      TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    position    INTEGER NOT NULL,
    contact_id  TEXT NOT NULL,
    PRIMARY KEY (tenant, campaign_id, position)
) WITHOUT ROWID;
"#;

/// Version 8: the sweeper (see `sweep`).
///
/// - `campaign_sweeps (tenant, campaign_id)`: an active campaign's watch record, the
///   fingerprint of its progress counters and since when (unix seconds); a trigger drops it
///   when the campaign leaves the active statuses (paused, completed, failed), so the table
///   holds only active campaigns' records.
/// - `campaigns_active`: a partial index of the queued, fanning-out and sending campaigns in
///   creation order, so listing them reads those rows only, however many campaigns finished.
const V8_SWEEPS: &str = r#"
CREATE TABLE IF NOT EXISTS campaign_sweeps (
    tenant      TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    fingerprint INTEGER NOT NULL,
    since       INTEGER NOT NULL,
    PRIMARY KEY (tenant, campaign_id)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS campaigns_active ON campaigns (created_at, campaign_id)
WHERE status IN ('queued', 'fanning_out', 'sending');

CREATE TRIGGER IF NOT EXISTS campaign_sweeps_forget
AFTER UPDATE OF status ON campaigns
WHEN NEW.status NOT IN ('queued', 'fanning_out', 'sending')
BEGIN
    DELETE FROM campaign_sweeps WHERE tenant = NEW.tenant AND campaign_id = NEW.campaign_id;
END;
"#;

/// Version 5: registration.
///
/// - `accounts.portal_key` (every account has one; see [`generate_missing_portal_keys`])
///   and a copy on each contact (`contacts.portal_key`, like the account's other fields);
///   `contacts.other_email`: an address staff added when matching a sign-up request.
/// - `invitations.token_used_at`, and an index on the token hash alone: an invitation link
///   names no tenant.
/// - `templates.kind`.
/// - `logins (tenant, email_norm)`: one per address; the Argon2id hash (`password_phc`) is
///   the embedded identity provider's column.
/// - `confirmations (tenant, token_hash)`: portal-key sign-ups' links.
/// - `rate_limits (tenant, key, window_start)`: counters with their expiry.
/// - `registration_requests (tenant, request_id)`: ids sort by creation time.
const V5_COLUMNS: &[(&str, &str, &str)] = &[
    ("accounts", "portal_key", "TEXT"),
    ("contacts", "portal_key", "TEXT"),
    ("contacts", "other_email", "TEXT"),
    ("invitations", "token_used_at", "INTEGER"),
    ("templates", "kind", "TEXT NOT NULL DEFAULT 'invitation'"),
];

/// `ALTER TABLE … ADD COLUMN` unless the column is there (a database whose version says
/// less than it has, as older releases could leave).
fn add_column_if_missing(
    c: &Connection,
    table: &str,
    column: &str,
    decl: &str,
) -> rusqlite::Result<()> {
    let exists: bool = c.query_row(
        &format!("SELECT count(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
        [column],
        |r| r.get(0),
    )?;
    if !exists {
        c.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
    }
    Ok(())
}

const V5_REGISTRATION: &str = r#"

CREATE INDEX IF NOT EXISTS invitations_by_token_hash ON invitations (token_hash);
CREATE INDEX IF NOT EXISTS accounts_by_number ON accounts (tenant, number);

CREATE TABLE IF NOT EXISTS logins (
    tenant       TEXT NOT NULL,
    email_norm   TEXT NOT NULL,
    email        TEXT NOT NULL,
    name         TEXT NOT NULL,
    contact_ids  TEXT NOT NULL,
    account_ids  TEXT NOT NULL,
    via          TEXT NOT NULL,
    confirmed    INTEGER NOT NULL,
    provisioned  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    password_phc TEXT,
    enabled      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, email_norm)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS confirmations (
    tenant     TEXT NOT NULL,
    token_hash BLOB NOT NULL,
    email_norm TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (tenant, token_hash)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rate_limits (
    tenant       TEXT NOT NULL,
    key          TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, key, window_start)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS registration_requests (
    tenant             TEXT NOT NULL,
    request_id         TEXT NOT NULL,
    name               TEXT NOT NULL,
    email              TEXT NOT NULL,
    email_norm         TEXT NOT NULL,
    phone              TEXT NOT NULL,
    address            TEXT NOT NULL,
    division_id        TEXT NOT NULL,
    account_number     TEXT,
    status             TEXT NOT NULL,
    close_reason       TEXT,
    matched_account_id TEXT,
    matched_contact_id TEXT,
    note               TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant, request_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS registration_requests_by_email
    ON registration_requests (tenant, email_norm);
"#;

/// Gives every account without a portal key a generated one, and copies each account's key
/// onto its contacts.
fn generate_missing_portal_keys(c: &Connection) -> rusqlite::Result<()> {
    let missing: Vec<(String, String)> = c
        .prepare("SELECT tenant, account_id FROM accounts WHERE portal_key IS NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut set =
        c.prepare("UPDATE accounts SET portal_key = ?3 WHERE tenant = ?1 AND account_id = ?2")?;
    for (tenant, account) in missing {
        let key = portal_core::domain::PortalKey::generate();
        set.execute(params![tenant, account, key.as_str()])?;
    }
    c.execute_batch(
        "UPDATE contacts SET portal_key = (SELECT a.portal_key FROM accounts a          WHERE a.tenant = contacts.tenant AND a.account_id = contacts.account_id)",
    )
}

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

/// Brings the database to [`SCHEMA_VERSION`] on the write connection, one [`Migration`] at a
/// time, and turns on WAL for a file, so readers never wait for a writer.
pub fn create(conn: &Connection, file_backed: bool) -> rusqlite::Result<()> {
    if file_backed {
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 16384;")?;
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        tracing::warn!(
            version,
            known = SCHEMA_VERSION,
            "the database was made by a newer version of this program"
        );
    }
    for step in MIGRATIONS.iter().filter(|m| m.version > version) {
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        (step.apply)(&tx)?;
        tx.pragma_update(None, "user_version", step.version)?;
        tx.commit()?;
        tracing::debug!(version = step.version, what = step.what, "schema migrated");
    }
    Ok(())
}

/// Version 4, for a database whose campaign tables were made before their schema had a
/// version (they were created on every open): brings them up to [`V4_CAMPAIGNS`].
///
/// - counter columns a table made before them lacks are added (zero);
/// - a database from before invitation statistics (issue 4) had the categories `in_process`,
///   `sent`, `failed` and `unsubscribed` and no send state: `sent` becomes `in_process` with
///   send state `sent` (SES has not told us more yet), `failed` becomes `failed`/`failed`,
///   `in_process` stays with send state `pending`, `unsubscribed` keeps its category with send
///   state `sent`; its campaigns' `cat_sent` counter folds into `in_process` and the send
///   counters are derived the same way, then the column is dropped;
/// - old invitations get the contact's current name and account number (for recipient
///   search), and `campaign_divisions` is filled from the campaigns' `division_ids`.
fn upgrade_unversioned_campaign_tables(tx: &Connection) -> rusqlite::Result<()> {
    let conn = tx;
    let campaign_cols = columns(conn, "campaigns")?;
    let invitation_cols = columns(conn, "invitations")?;
    let has = |cols: &[String], c: &str| cols.iter().any(|h| h == c);
    let needs_divisions: bool = conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM campaign_divisions) \
         AND EXISTS (SELECT 1 FROM campaigns)",
        [],
        |r| r.get(0),
    )?;
    let counters_missing = CATEGORY_COLUMNS
        .iter()
        .chain(&SEND_COLUMNS)
        .any(|c| !has(&campaign_cols, c));
    let invitation_new = [
        "send_state",
        "suppressed",
        "contact_name",
        "account_number",
        "search_text",
    ];
    let invitations_old = invitation_new.iter().any(|c| !has(&invitation_cols, c));
    if !needs_divisions && !counters_missing && !invitations_old && !has(&campaign_cols, "cat_sent")
    {
        return Ok(());
    }
    let before_sends = !has(&campaign_cols, "send_pending");
    for col in CATEGORY_COLUMNS.iter().chain(&SEND_COLUMNS) {
        if !has(&campaign_cols, col) {
            tx.execute_batch(&format!(
                "ALTER TABLE campaigns ADD COLUMN {col} INTEGER NOT NULL DEFAULT 0"
            ))?;
        }
    }
    if has(&campaign_cols, "cat_sent") {
        if before_sends {
            tx.execute_batch(
                "UPDATE campaigns SET send_pending = cat_in_process, \
                 send_sent = cat_sent + cat_unsubscribed, send_failed = cat_failed, \
                 cat_in_process = cat_in_process + cat_sent",
            )?;
        }
        tx.execute_batch("ALTER TABLE campaigns DROP COLUMN cat_sent")?;
    }
    if invitations_old {
        for (col, ddl) in [
            ("send_state", "TEXT NOT NULL DEFAULT 'pending'"),
            ("suppressed", "INTEGER NOT NULL DEFAULT 0"),
            ("contact_name", "TEXT NOT NULL DEFAULT ''"),
            ("account_number", "TEXT NOT NULL DEFAULT ''"),
            ("search_text", "TEXT NOT NULL DEFAULT ''"),
        ] {
            if !has(&invitation_cols, col) {
                tx.execute_batch(&format!("ALTER TABLE invitations ADD COLUMN {col} {ddl}"))?;
            }
        }
        if !has(&invitation_cols, "send_state") {
            tx.execute_batch(
                "UPDATE invitations SET category = 'in_process', send_state = 'sent' \
                     WHERE category = 'sent';
                 UPDATE invitations SET send_state = 'failed' WHERE category = 'failed';
                 UPDATE invitations SET send_state = 'sent' WHERE category = 'unsubscribed';",
            )?;
        }
        if !has(&invitation_cols, "search_text") {
            tx.execute_batch(
                "UPDATE invitations SET (contact_name, account_number) = \
                 (SELECT c.contact_name, c.account_number FROM contacts c \
                  WHERE c.tenant = invitations.tenant AND c.contact_id = invitations.contact_id) \
                 WHERE EXISTS (SELECT 1 FROM contacts c WHERE c.tenant = invitations.tenant \
                  AND c.contact_id = invitations.contact_id)",
            )?;
            // Lowercased in Rust, as the search text of new invitations is.
            let mut rows = Vec::new();
            {
                let mut stmt = tx.prepare(
                    "SELECT tenant, campaign_id, contact_id, email, contact_name, account_number \
                     FROM invitations",
                )?;
                let mut q = stmt.query([])?;
                while let Some(r) = q.next()? {
                    let key: (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
                    let text = SearchText::of([
                        r.get::<_, String>(3)?.as_str(),
                        &r.get::<_, String>(4)?,
                        &r.get::<_, String>(5)?,
                    ])
                    .into_string();
                    rows.push((key, text));
                }
            }
            let mut update = tx.prepare(
                "UPDATE invitations SET search_text = ?4 \
                 WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id = ?3",
            )?;
            for ((t, c, k), text) in rows {
                update.execute(params![t, c, k, text])?;
            }
        }
    }
    if needs_divisions {
        tx.execute_batch(
            "INSERT OR IGNORE INTO campaign_divisions (tenant, division_id, campaign_id) \
             SELECT c.tenant, j.value, c.campaign_id FROM campaigns c, json_each(c.division_ids) j",
        )?;
    }
    Ok(())
}

/// The column names of `table`.
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt.query_map([table], |r| r.get::<_, String>(0))?;
    names.collect()
}

/// The counter column of each category, in `InvitationCategory::ALL` order.
pub(super) const CATEGORY_COLUMNS: [&str; 8] = [
    "cat_in_process",
    "cat_failed",
    "cat_unopened",
    "cat_bounced",
    "cat_opened",
    "cat_clicked",
    "cat_unsubscribed",
    "cat_registered",
];

/// The counter column of each send state, in `SendState::ALL` order.
pub(super) const SEND_COLUMNS: [&str; 3] = ["send_pending", "send_sent", "send_failed"];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table, index and trigger as SQLite stores it.
    fn dump(conn: &Connection) -> Vec<(String, String, Option<String>)> {
        let mut stmt = conn
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    fn version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn the_steps_are_numbered_one_by_one_up_to_the_schema_version() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    }

    #[test]
    fn a_database_at_any_version_ends_with_the_schema_of_a_new_one() {
        let fresh = Connection::open_in_memory().unwrap();
        create(&fresh, false).unwrap();
        assert_eq!(version(&fresh), SCHEMA_VERSION);
        let expected = dump(&fresh);
        for from in 0..SCHEMA_VERSION {
            let conn = Connection::open_in_memory().unwrap();
            for step in MIGRATIONS.iter().take_while(|m| m.version <= from) {
                (step.apply)(&conn).unwrap();
            }
            conn.pragma_update(None, "user_version", from).unwrap();
            create(&conn, false).unwrap();
            assert_eq!(version(&conn), SCHEMA_VERSION, "from {from}");
            assert_eq!(dump(&conn), expected, "from {from}");
            // Opening again runs nothing.
            create(&conn, false).unwrap();
            assert_eq!(dump(&conn), expected);
        }
    }
}
