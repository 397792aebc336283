//! Campaigns, invitations and the 24-hour rules on SQLite.
//!
//! # Tables
//!
//! - `campaigns (tenant, campaign_id)`: the campaign's fields as columns (`division_ids` and
//!   `filters` as JSON), its status and counters: `targeted`, the skips, one `cat_*` column
//!   per [`InvitationCategory`] and one `send_*` column per [`SendState`].
//! - `campaign_divisions (tenant, division_id, campaign_id)`: one row per division of a
//!   campaign, so a division's history is a range of this key read backwards (campaign ids
//!   start with their creation time, so id order is age order).
//! - `campaign_idempotency (tenant, key)`: an `Idempotency-Key` → the campaign it made and
//!   the SHA-256 of the body it came with.
//! - `campaign_selections (tenant, campaign_id, position)`: a hand-picked campaign's contact
//!   ids in the order picked (`campaigns.selected` says how many), written in the
//!   transaction that records the campaign; a fan-out page is a range of the key.
//! - `invitations (tenant, campaign_id, contact_id)`: one row per claimed contact: its
//!   category and send state by name, the reason and the "already suppressed" flag of its
//!   [`InvitationState`], the contact's name and account number when claimed, and
//!   `search_text` (`Invitation::search_text`: email, name and number lowercased and
//!   joined, so a recipient search is one `instr`, exactly [`InvitationFilter::matches`]). The registration token is
//!   kept only as its hash (indexed, for the link lookup); an index on the category serves
//!   the per-category recipient lists.
//!
//! The division lock is `divisions.last_bulk_sent_at`; the contact claim is
//! `contacts.last_invited_at`. Each operation is one `IMMEDIATE` transaction on the single
//! write connection, so its checks and writes cannot interleave with another writer's: the
//! same guarantees DynamoDB's conditional writes give, by serialisation. An invitation's
//! change, the campaign counters it moves and the suppression it causes are written in one
//! transaction, so the counters always equal a recount. Times are unix seconds, like the
//! rest of this store.
//!
//! The tables and their migrations are in [`super::schema`], with every other table's.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use rusqlite::types::ToSql;
use rusqlite::{
    params, params_from_iter, Connection, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use time::OffsetDateTime;

use super::schema::{self, CATEGORY_COLUMNS, SEND_COLUMNS};
use super::{from_ts, parse_stored, suppress_in, ts, OrStore, SqliteStore, Window};
use portal_core::domain::search;
use portal_core::domain::{
    Campaign, CampaignId, CampaignStatus, CategoryCounts, ContactId, DisplayName, DivisionId,
    Email, Filters, HandPicked, Invitation, InvitationCategory, InvitationFact, InvitationState,
    SendCounts, SendState, Skipped, Suppression, TenantId, Transition, Trigger, HOLD_WINDOW,
    MAX_CAMPAIGN_DIVISIONS,
};
use portal_core::ports::{
    check_selection, decode_campaign_cursor, decode_invitation_cursor, encode_campaign_cursor,
    encode_invitation_cursor, CampaignStore, Claim, ClaimResult, CreateOutcome, FactResult,
    Idempotency, InvitationFilter, Page, Recount, StoreError, SuppressionReason, MAX_CLAIMS,
    MAX_PAGE_SIZE,
};
use portal_core::ports::{Attempt, BatchWritten, LeaseOutcome, LeaseStep, MAX_PAGE_KEY_LEN};

/// The campaign had more divisions than one campaign may lock.
#[derive(Debug, thiserror::Error)]
#[error("a campaign touches at most {MAX_CAMPAIGN_DIVISIONS} divisions")]
pub(crate) struct TooManyDivisions;

/// Claims for a campaign that was never recorded.
#[derive(Debug, thiserror::Error)]
#[error("claims need their campaign recorded first")]
pub(crate) struct CampaignMissing;

/// A page key over [`MAX_PAGE_KEY_LEN`] bytes.
#[derive(Debug, thiserror::Error)]
#[error("a page key is at most {MAX_PAGE_KEY_LEN} bytes")]
pub(crate) struct PageKeyTooLong;

/// The attempt recorded on a lease, if any.
fn read_attempt(
    op: &'static str,
    at: Option<i64>,
    contacts: Option<&str>,
) -> Result<Option<Attempt>, StoreError> {
    let (Some(at), Some(contacts)) = (at, contacts) else {
        return Ok(None);
    };
    let contacts: Vec<ContactId> = parse_stored(op, "attempt", serde_json::from_str(contacts))?;
    Ok(Some(Attempt {
        contacts,
        at: from_ts(op, Some(at))?.unwrap_or(OffsetDateTime::UNIX_EPOCH),
    }))
}

/// Moves `owner`'s lease on; `false` (nothing written) when the lease is not `owner`'s.
fn step_lease(
    conn: &Connection,
    op: &'static str,
    tenant: &str,
    campaign: &str,
    batch: &str,
    owner: &str,
    step: &LeaseStep,
) -> Result<bool, StoreError> {
    let changed = match step {
        LeaseStep::Attempting { attempt, until } => {
            let contacts = serde_json::to_string(&attempt.contacts)
                .map_err(|e| StoreError::backend(op, e))?;
            conn.prepare_cached(
                "UPDATE delivery_leases SET until = ?5, attempt_at = ?6, attempt = ?7 \
                 WHERE tenant = ?1 AND campaign_id = ?2 AND batch = ?3 AND owner = ?4",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant,
                    campaign,
                    batch,
                    owner,
                    ts(*until),
                    ts(attempt.at),
                    contacts
                ])
            })
        }
        LeaseStep::Done => conn
            .prepare_cached(
                "UPDATE delivery_leases SET done = 1, until = 0, attempt_at = NULL, attempt = NULL \
                 WHERE tenant = ?1 AND campaign_id = ?2 AND batch = ?3 AND owner = ?4",
            )
            .and_then(|mut s| s.execute(params![tenant, campaign, batch, owner])),
        LeaseStep::Release => conn
            .prepare_cached(
                "UPDATE delivery_leases SET until = 0 \
                 WHERE tenant = ?1 AND campaign_id = ?2 AND batch = ?3 AND owner = ?4",
            )
            .and_then(|mut s| s.execute(params![tenant, campaign, batch, owner])),
    }
    .or_store(op)?;
    Ok(changed > 0)
}

/// A claim or fact call over [`MAX_CLAIMS`].
#[derive(Debug, thiserror::Error)]
#[error("at most {MAX_CLAIMS} claims or facts per call")]
pub(crate) struct TooManyClaims;

fn category_index(c: InvitationCategory) -> usize {
    InvitationCategory::ALL
        .iter()
        .position(|x| *x == c)
        .unwrap_or_default()
}

fn send_index(s: SendState) -> usize {
    SendState::ALL
        .iter()
        .position(|x| *x == s)
        .unwrap_or_default()
}

/// Columns 0..=15 are the campaign's own fields; 16.. the category counters, then the send
/// counters, in the orders above.
static CAMPAIGN_SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT c.campaign_id, c.trigger, c.status, c.division_ids, c.filters, \
         c.limit_to_uninvited, c.template_id, c.email_from, c.created_at, c.created_by, \
         c.targeted, c.skipped_accepted, c.skipped_held_24h, c.skipped_suppressed, \
         c.skipped_no_email, c.pause_reason, {}, c.recurring, c.selected, \
         c.skipped_duplicate_address, c.display_name FROM campaigns c",
        CATEGORY_COLUMNS
            .iter()
            .chain(&SEND_COLUMNS)
            .map(|col| format!("c.{col}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
});

/// Column of `campaigns.recurring` in [`CAMPAIGN_SELECT`], then `campaigns.selected`.
const RECURRING_COLUMN: usize = 16 + CATEGORY_COLUMNS.len() + SEND_COLUMNS.len();
const SELECTED_COLUMN: usize = RECURRING_COLUMN + 1;
const DUPLICATE_ADDRESS_COLUMN: usize = SELECTED_COLUMN + 1;
const DISPLAY_NAME_COLUMN: usize = DUPLICATE_ADDRESS_COLUMN + 1;

/// Adds signed deltas to `targeted` (`?3`), the category counters (`?4..=?11`) and the send
/// counters (`?12..=?14`) of campaign (`?1`, `?2`).
static COUNTERS_UPDATE: LazyLock<String> = LazyLock::new(|| {
    let sets: Vec<String> = CATEGORY_COLUMNS
        .iter()
        .chain(&SEND_COLUMNS)
        .enumerate()
        .map(|(i, col)| format!("{col} = {col} + ?{}", i + 4))
        .collect();
    format!(
        "UPDATE campaigns SET targeted = targeted + ?3, {} \
         WHERE tenant = ?1 AND campaign_id = ?2",
        sets.join(", ")
    )
});

/// How a write moves a campaign's counters; applied with one statement at the end of its
/// transaction.
#[derive(Debug, Default)]
struct CounterDelta {
    targeted: i64,
    categories: [i64; 8],
    sends: [i64; 3],
}

impl CounterDelta {
    fn is_zero(&self) -> bool {
        self.targeted == 0
            && self.categories.iter().all(|n| *n == 0)
            && self.sends.iter().all(|n| *n == 0)
    }

    /// A new invitation in `state`.
    fn add(&mut self, state: &InvitationState) {
        self.targeted += 1;
        self.categories[category_index(state.category)] += 1;
        self.sends[send_index(state.send)] += 1;
    }

    fn apply(&mut self, t: &Transition) {
        if let Some((from, to)) = t.category_move() {
            self.categories[category_index(from)] -= 1;
            self.categories[category_index(to)] += 1;
        }
        if let Some((from, to)) = t.send_move() {
            self.sends[send_index(from)] -= 1;
            self.sends[send_index(to)] += 1;
        }
    }

    /// Writes the delta; the number of campaign rows changed (0 when it is missing).
    fn write(&self, conn: &Connection, tenant: &str, campaign: &str) -> rusqlite::Result<usize> {
        let mut p: Vec<&dyn ToSql> = vec![&tenant, &campaign, &self.targeted];
        p.extend(self.categories.iter().map(|n| n as &dyn ToSql));
        p.extend(self.sends.iter().map(|n| n as &dyn ToSql));
        conn.prepare_cached(&COUNTERS_UPDATE)?
            .execute(params_from_iter(p))
    }
}

const INVITATION_SELECT: &str = "SELECT campaign_id, contact_id, email, token_hash, \
    expires_at, category, reason, created_at, send_state, suppressed, contact_name, \
    account_number FROM invitations";

/// A page of a campaign's invitations after contact `?3`, `?4` rows, of category `?5` and
/// whose search text contains `?6` when asked: a range of the primary key, or of
/// `invitations_by_category` with a category, both already in contact order.
/// The keys a bounded page of a campaign's invitations may examine (see [`Window`]).
const INVITATION_KEYS: &str = "SELECT contact_id FROM invitations \
     WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id > ?3 ORDER BY contact_id LIMIT ?4";

/// A page of a campaign's invitations after `?3`, `?4` rows, of category `?5`, matching
/// `?6`, up to and including contact `?7` (a [`Window`]'s bound) when `bounded`.
fn invitation_list_sql(category: bool, search: bool, bounded: bool) -> String {
    let mut sql = INVITATION_SELECT.to_owned();
    if category {
        // Without statistics the planner prefers the primary key (the table itself) and
        // filters; a rare category would then scan the whole campaign for one page.
        sql.push_str(" INDEXED BY invitations_by_category");
    }
    sql.push_str(" WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id > ?3");
    if category {
        sql.push_str(" AND category = ?5");
    }
    if search {
        sql.push_str(" AND instr(search_text, ?6) > 0");
    }
    if bounded {
        sql.push_str(" AND contact_id <= ?7");
    }
    sql.push_str(" ORDER BY contact_id LIMIT ?4");
    sql
}

/// A page of division `?2`'s campaigns older than campaign `?3`, newest first, `?4` rows: a
/// backwards range of `campaign_divisions`' key, one campaign lookup per row.
static CAMPAIGN_LIST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} JOIN campaign_divisions d ON d.tenant = c.tenant AND d.campaign_id = c.campaign_id \
         WHERE d.tenant = ?1 AND d.division_id = ?2 AND d.campaign_id < ?3 \
         ORDER BY d.campaign_id DESC LIMIT ?4",
        *CAMPAIGN_SELECT
    )
});

fn count(op: &'static str, row: &Row<'_>, i: usize) -> Result<u64, StoreError> {
    let n: i64 = row.get(i).or_store(op)?;
    parse_stored(op, "counter", u64::try_from(n))
}

fn req_time(op: &'static str, row: &Row<'_>, i: usize) -> Result<OffsetDateTime, StoreError> {
    from_ts(op, Some(row.get(i).or_store(op)?))?
        .ok_or_else(|| StoreError::backend(op, super::Corrupt("time")))
}

/// The category and send counters read from columns `first..` (categories, then sends).
fn read_counters(
    op: &'static str,
    row: &Row<'_>,
    first: usize,
) -> Result<(CategoryCounts, SendCounts), StoreError> {
    let mut categories = CategoryCounts::default();
    for (i, c) in InvitationCategory::ALL.into_iter().enumerate() {
        *categories.get_mut(c) = count(op, row, first + i)?;
    }
    let mut sends = SendCounts::default();
    for (i, s) in SendState::ALL.into_iter().enumerate() {
        *sends.get_mut(s) = count(op, row, first + CATEGORY_COLUMNS.len() + i)?;
    }
    Ok((categories, sends))
}

fn read_campaign(op: &'static str, row: &Row<'_>) -> Result<Campaign, StoreError> {
    let get_s = |i: usize| row.get::<_, String>(i).or_store(op);
    let divisions: Vec<DivisionId> =
        parse_stored(op, "division_ids", serde_json::from_str(&get_s(3)?))?;
    let filters: Filters = parse_stored(op, "filters", serde_json::from_str(&get_s(4)?))?;
    let (categories, sends) = read_counters(op, row, 16)?;
    Ok(Campaign {
        campaign_id: parse_stored(op, "campaign_id", CampaignId::parse(get_s(0)?))?,
        trigger: parse_stored(op, "trigger", Trigger::parse(&get_s(1)?).ok_or(()))?,
        status: parse_stored(op, "status", CampaignStatus::parse(&get_s(2)?).ok_or(()))?,
        division_ids: divisions,
        filters,
        limit_to_uninvited: row.get::<_, i64>(5).or_store(op)? != 0,
        template_id: get_s(6)?,
        email_from: parse_stored(op, "email_from", Email::parse(&get_s(7)?))?,
        display_name: row
            .get::<_, Option<String>>(DISPLAY_NAME_COLUMN)
            .or_store(op)?
            .map(|n| parse_stored(op, "display_name", DisplayName::parse(&n)))
            .transpose()?,
        created_at: req_time(op, row, 8)?,
        created_by: get_s(9)?,
        targeted: count(op, row, 10)?,
        skipped: Skipped {
            accepted: count(op, row, 11)?,
            held_24h: count(op, row, 12)?,
            suppressed: count(op, row, 13)?,
            no_email: count(op, row, 14)?,
            duplicate_address: count(op, row, DUPLICATE_ADDRESS_COLUMN)?,
        },
        categories,
        sends,
        pause_reason: row.get(15).or_store(op)?,
        recurring: row
            .get::<_, Option<String>>(RECURRING_COLUMN)
            .or_store(op)?
            .map(|j| parse_stored(op, "recurring run", serde_json::from_str(&j)))
            .transpose()?,
        selection: row
            .get::<_, Option<i64>>(SELECTED_COLUMN)
            .or_store(op)?
            .map(|n| {
                parse_stored(op, "selected", u32::try_from(n))
                    .map(|contacts| HandPicked { contacts })
            })
            .transpose()?,
    })
}

fn parse_category(op: &'static str, name: &str) -> Result<InvitationCategory, StoreError> {
    parse_stored(op, "category", InvitationCategory::parse(name).ok_or(()))
}

fn parse_send(op: &'static str, name: &str) -> Result<SendState, StoreError> {
    parse_stored(op, "send state", SendState::parse(name).ok_or(()))
}

/// Text column `i` of `row`, borrowed (the hot path of `apply_facts` allocates nothing).
fn str_at<'r>(op: &'static str, row: &'r Row<'_>, i: usize) -> Result<&'r str, StoreError> {
    row.get_ref(i)
        .or_store(op)?
        .as_str()
        .map_err(|e| StoreError::backend(op, e))
}

fn read_invitation(op: &'static str, row: &Row<'_>) -> Result<Invitation, StoreError> {
    let get_s = |i: usize| row.get::<_, String>(i).or_store(op);
    let hash: Vec<u8> = row.get(3).or_store(op)?;
    Ok(Invitation {
        campaign_id: parse_stored(op, "campaign_id", CampaignId::parse(get_s(0)?))?,
        contact_id: parse_stored(op, "contact_id", ContactId::parse(get_s(1)?))?,
        email: parse_stored(op, "email", Email::parse(&get_s(2)?))?,
        contact_name: get_s(10)?,
        account_number: get_s(11)?,
        registration_token_hash: parse_stored(op, "token_hash", <[u8; 32]>::try_from(hash))?,
        expires_at: req_time(op, row, 4)?,
        state: InvitationState {
            category: parse_category(op, &get_s(5)?)?,
            send: parse_send(op, &get_s(8)?)?,
            reason: row.get(6).or_store(op)?,
            suppressed: row.get::<_, i64>(9).or_store(op)? != 0,
        },
        created_at: req_time(op, row, 7)?,
    })
}

pub(super) fn load_campaign(
    op: &'static str,
    conn: &Connection,
    tenant: &str,
    id: &str,
) -> Result<Option<Campaign>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "{} WHERE c.tenant = ?1 AND c.campaign_id = ?2",
            *CAMPAIGN_SELECT
        ))
        .or_store(op)?;
    let mut rows = stmt.query(params![tenant, id]).or_store(op)?;
    match rows.next().or_store(op)? {
        Some(row) => Ok(Some(read_campaign(op, row)?)),
        None => Ok(None),
    }
}

/// Records a new campaign (its counters start at zero: it has no invitations yet), its rows
/// in `campaign_divisions` and, for a hand-picked one, in `campaign_selections`.
fn insert_campaign(
    op: &'static str,
    tx: &Transaction<'_>,
    t: &str,
    c: &Campaign,
    selection: &[ContactId],
) -> Result<(), StoreError> {
    let divisions =
        serde_json::to_string(&c.division_ids).map_err(|e| StoreError::backend(op, e))?;
    let filters = serde_json::to_string(&c.filters).map_err(|e| StoreError::backend(op, e))?;
    let recurring = c
        .recurring
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::backend(op, e))?;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT INTO campaigns (tenant, campaign_id, trigger, status, division_ids, filters, \
         limit_to_uninvited, template_id, email_from, created_at, created_by, targeted, \
         skipped_accepted, skipped_held_24h, skipped_suppressed, skipped_no_email, pause_reason, \
         recurring, selected, skipped_duplicate_address, display_name) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
         ?19, ?20, ?21)",
    )
    .and_then(|mut s| {
        s.execute(params![
            t,
            c.campaign_id.as_str(),
            c.trigger.as_str(),
            c.status.as_str(),
            divisions,
            filters,
            c.limit_to_uninvited,
            c.template_id,
            c.email_from.as_str(),
            ts(c.created_at),
            c.created_by,
            n(c.targeted),
            n(c.skipped.accepted),
            n(c.skipped.held_24h),
            n(c.skipped.suppressed),
            n(c.skipped.no_email),
            c.pause_reason,
            recurring,
            c.selection.map(|p| i64::from(p.contacts)),
            n(c.skipped.duplicate_address),
            c.display_name.as_ref().map(DisplayName::as_str),
        ])
    })
    .or_store(op)?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO campaign_divisions (tenant, division_id, campaign_id) \
             VALUES (?1, ?2, ?3)",
        )
        .or_store(op)?;
    for d in &c.division_ids {
        stmt.execute(params![t, d.as_str(), c.campaign_id.as_str()])
            .or_store(op)?;
    }
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO campaign_selections (tenant, campaign_id, position, contact_id) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .or_store(op)?;
    for (position, id) in selection.iter().enumerate() {
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        stmt.execute(params![t, c.campaign_id.as_str(), position, id.as_str()])
            .or_store(op)?;
    }
    Ok(())
}

/// `create_campaign` and `create_selection_campaign`: `selection` is empty but for a
/// hand-picked campaign, whose count it must match.
fn create(
    conn: &mut Connection,
    tenant: &str,
    campaign: &Campaign,
    selection: &[ContactId],
    idempotency: Option<&Idempotency>,
    now: OffsetDateTime,
) -> Result<CreateOutcome, StoreError> {
    const OP: &str = "create_campaign";
    check_selection(campaign, selection).map_err(|e| StoreError::backend(OP, e))?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .or_store(OP)?;
    if let Some(idem) = idempotency {
        let found: Option<(String, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT campaign_id, body_hash FROM campaign_idempotency \
                 WHERE tenant = ?1 AND key = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![tenant, idem.key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .or_store(OP)?;
        if let Some((id, hash)) = found {
            if hash.as_slice() != idem.body_hash.as_slice() {
                return Ok(CreateOutcome::IdempotencyMismatch);
            }
            return load_campaign(OP, &tx, tenant, &id)?
                .map(|c| CreateOutcome::Existing(Box::new(c)))
                .ok_or_else(|| StoreError::backend(OP, super::Corrupt("idempotency record")));
        }
    }
    let mut listed = campaign.division_ids.clone();
    listed.sort();
    listed.dedup();
    if listed.len() > MAX_CAMPAIGN_DIVISIONS {
        return Err(StoreError::backend(OP, TooManyDivisions));
    }
    // Only a bulk send over divisions checks and takes their lock; a hand-picked campaign,
    // an individual invite and a recurring run leave `last_bulk_sent_at` alone.
    if campaign.locks_divisions() {
        let cutoff = ts(now - HOLD_WINDOW);
        for d in &listed {
            let last: Option<Option<i64>> = tx
                .prepare_cached(
                    "SELECT last_bulk_sent_at FROM divisions WHERE tenant = ?1 AND division_id = ?2",
                )
                .and_then(|mut s| s.query_row(params![tenant, d.as_str()], |r| r.get(0)).optional())
                .or_store(OP)?;
            match last {
                None => {
                    return Ok(CreateOutcome::DivisionMissing {
                        division_id: d.clone(),
                    })
                }
                Some(Some(at)) if at > cutoff => {
                    let at = from_ts(OP, Some(at))?.unwrap_or(now);
                    return Ok(CreateOutcome::DivisionHeld {
                        division_id: d.clone(),
                        retry_after: at + HOLD_WINDOW,
                    });
                }
                Some(_) => {}
            }
        }
        for d in &listed {
            tx.prepare_cached(
                "UPDATE divisions SET last_bulk_sent_at = ?3 WHERE tenant = ?1 AND division_id = ?2",
            )
            .and_then(|mut s| s.execute(params![tenant, d.as_str(), ts(now)]))
            .or_store(OP)?;
        }
    }
    insert_campaign(OP, &tx, tenant, campaign, selection)?;
    if let Some(idem) = idempotency {
        tx.prepare_cached(
            "INSERT INTO campaign_idempotency (tenant, key, campaign_id, body_hash) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| {
            s.execute(params![
                tenant,
                idem.key,
                campaign.campaign_id.as_str(),
                idem.body_hash.as_slice()
            ])
        })
        .or_store(OP)?;
    }
    tx.commit().or_store(OP)?;
    Ok(CreateOutcome::Created)
}

fn claim_one(
    tx: &Transaction<'_>,
    tenant: &str,
    campaign: &str,
    claim: &Claim,
    now: OffsetDateTime,
) -> Result<ClaimResult, StoreError> {
    const OP: &str = "claim_contacts";
    let contact = claim.contact_id.as_str();
    // With the division known, the clustered primary key finds the row directly.
    let (sql, division) = match &claim.division_id {
        Some(d) => (
            "SELECT portal_status, last_invited_at, division_id FROM contacts \
             WHERE tenant = ?1 AND contact_id = ?2 AND division_id = ?3",
            d.as_str(),
        ),
        None => (
            "SELECT portal_status, last_invited_at, division_id FROM contacts \
             WHERE tenant = ?1 AND contact_id = ?2 AND ?3 = ''",
            "",
        ),
    };
    let state: Option<(i64, Option<i64>, String)> = tx
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row(params![tenant, contact, division], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .or_store(OP)?;
    let Some((status, last, division)) = state else {
        return Ok(ClaimResult::Missing);
    };
    let claimed: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM invitations \
             WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id = ?3)",
        )
        .and_then(|mut s| s.query_row(params![tenant, campaign, contact], |r| r.get(0)))
        .or_store(OP)?;
    if claimed {
        return Ok(ClaimResult::AlreadyClaimedByThisCampaign);
    }
    if status == 2 {
        return Ok(ClaimResult::Accepted);
    }
    if let Some(at) = last.filter(|at| *at > ts(now - HOLD_WINDOW)) {
        let until = from_ts(OP, Some(at))?.unwrap_or(now) + HOLD_WINDOW;
        return Ok(ClaimResult::Held { until });
    }
    // One person, one invitation: the address must not be another contact's claim of the
    // last 24 hours.
    let address = claim.invitation.email.normalized();
    let holder: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT invited_at, contact_id FROM address_claims WHERE tenant = ?1 AND address = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![tenant, address], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .or_store(OP)?;
    if let Some((at, _)) = holder
        .as_ref()
        .filter(|(at, holder)| *at > ts(now - HOLD_WINDOW) && holder != contact)
    {
        let until = from_ts(OP, Some(*at))?.unwrap_or(now) + HOLD_WINDOW;
        return Ok(ClaimResult::DuplicateAddress { until });
    }
    tx.prepare_cached(
        "INSERT INTO address_claims (tenant, address, invited_at, campaign_id, contact_id) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, address) DO UPDATE SET \
         invited_at = excluded.invited_at, campaign_id = excluded.campaign_id, \
         contact_id = excluded.contact_id",
    )
    .and_then(|mut s| s.execute(params![tenant, address, ts(now), campaign, contact]))
    .or_store(OP)?;
    tx.prepare_cached(&format!(
        "UPDATE contacts SET last_invited_at = ?3, portal_status = 1, \
         invitations_sent = invitations_sent + 1, \
         flags = (flags & ~{m}) | 1 WHERE tenant = ?1 AND division_id = ?4 AND contact_id = ?2",
        m = schema::FLAG_STATUS_MASK
    ))
    .and_then(|mut s| s.execute(params![tenant, contact, ts(now), division]))
    .or_store(OP)?;
    let inv = &claim.invitation;
    tx.prepare_cached(
        "INSERT INTO invitations (tenant, campaign_id, contact_id, email, token_hash, \
         expires_at, category, reason, created_at, send_state, suppressed, contact_name, \
         account_number, search_text) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )
    .and_then(|mut s| {
        s.execute(params![
            tenant,
            campaign,
            contact,
            inv.email.as_str(),
            inv.registration_token_hash.as_slice(),
            ts(inv.expires_at),
            inv.state.category.as_str(),
            inv.state.reason,
            ts(inv.created_at),
            inv.state.send.as_str(),
            inv.state.suppressed,
            inv.contact_name,
            inv.account_number,
            inv.search_text().as_str(),
        ])
    })
    .or_store(OP)?;
    Ok(ClaimResult::Claimed)
}

impl SqliteStore {
    /// Every campaign not yet finished (queued, fanning out or sending), across tenants,
    /// oldest first: what the local server resumes when it starts.
    pub async fn unfinished_campaigns(&self) -> Result<Vec<(TenantId, CampaignId)>, StoreError> {
        const OP: &str = "unfinished_campaigns";
        self.read(OP, move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT tenant, campaign_id FROM campaigns \
                     WHERE status IN ('queued', 'fanning_out', 'sending') ORDER BY campaign_id",
                )
                .or_store(OP)?;
            let mut rows = stmt.query([]).or_store(OP)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().or_store(OP)? {
                let tenant: String = row.get(0).or_store(OP)?;
                let id: String = row.get(1).or_store(OP)?;
                out.push((
                    parse_stored(OP, "tenant", TenantId::parse(tenant))?,
                    parse_stored(OP, "campaign id", CampaignId::parse(id))?,
                ));
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl CampaignStore for SqliteStore {
    async fn create_campaign(
        &self,
        tenant: &TenantId,
        campaign: &Campaign,
        idempotency: Option<&Idempotency>,
        now: OffsetDateTime,
    ) -> Result<CreateOutcome, StoreError> {
        let (tenant, campaign, idem) = (tenant.clone(), campaign.clone(), idempotency.cloned());
        self.write("create_campaign", move |conn| {
            create(conn, tenant.as_str(), &campaign, &[], idem.as_ref(), now)
        })
        .await
    }

    async fn create_selection_campaign(
        &self,
        tenant: &TenantId,
        campaign: &Campaign,
        contacts: &[ContactId],
        idempotency: Option<&Idempotency>,
        now: OffsetDateTime,
    ) -> Result<CreateOutcome, StoreError> {
        let (tenant, campaign, idem) = (tenant.clone(), campaign.clone(), idempotency.cloned());
        let contacts = contacts.to_vec();
        self.write("create_selection_campaign", move |conn| {
            create(
                conn,
                tenant.as_str(),
                &campaign,
                &contacts,
                idem.as_ref(),
                now,
            )
        })
        .await
    }

    async fn selection_ids(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<ContactId>, StoreError> {
        const OP: &str = "selection_ids";
        let (tenant, campaign) = (tenant.clone(), campaign.clone());
        let limit = limit.min(MAX_CLAIMS as u32);
        self.read(OP, move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT contact_id FROM campaign_selections \
                     WHERE tenant = ?1 AND campaign_id = ?2 AND position >= ?3 \
                     ORDER BY position LIMIT ?4",
                )
                .or_store(OP)?;
            let mut rows = stmt
                .query(params![
                    tenant.as_str(),
                    campaign.as_str(),
                    i64::from(offset),
                    i64::from(limit)
                ])
                .or_store(OP)?;
            let mut ids = Vec::new();
            while let Some(row) = rows.next().or_store(OP)? {
                let id: String = row.get(0).or_store(OP)?;
                ids.push(parse_stored(OP, "contact_id", ContactId::parse(id))?);
            }
            Ok(ids)
        })
        .await
    }

    async fn get_campaign(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
    ) -> Result<Option<Campaign>, StoreError> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read("get_campaign", move |conn| {
            load_campaign("get_campaign", conn, tenant.as_str(), id.as_str())
        })
        .await
    }

    async fn update_campaign_status(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        expected: CampaignStatus,
        new: CampaignStatus,
        reason: Option<String>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "update_campaign_status";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(OP, move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE campaigns SET status = ?4, pause_reason = ?5 \
                     WHERE tenant = ?1 AND campaign_id = ?2 AND status = ?3",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant.as_str(),
                        id.as_str(),
                        expected.as_str(),
                        new.as_str(),
                        reason
                    ])
                })
                .or_store(OP)?;
            Ok(n > 0)
        })
        .await
    }

    async fn add_campaign_counts(
        &self,
        tenant: &TenantId,
        id: &CampaignId,
        targeted: u64,
        skipped: Skipped,
        page: Option<&str>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "add_campaign_counts";
        if page.is_some_and(|p| p.len() > MAX_PAGE_KEY_LEN) {
            return Err(StoreError::backend(OP, PageKeyTooLong));
        }
        let (tenant, id) = (tenant.clone(), id.clone());
        let page = page.map(str::to_owned);
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.write(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_store(OP)?;
            let changed = tx
                .prepare_cached(
                    "UPDATE campaigns SET targeted = targeted + ?3, \
                     skipped_accepted = skipped_accepted + ?4, \
                     skipped_held_24h = skipped_held_24h + ?5, \
                     skipped_suppressed = skipped_suppressed + ?6, \
                     skipped_no_email = skipped_no_email + ?7, \
                     skipped_duplicate_address = skipped_duplicate_address + ?8 \
                     WHERE tenant = ?1 AND campaign_id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant.as_str(),
                        id.as_str(),
                        n(targeted),
                        n(skipped.accepted),
                        n(skipped.held_24h),
                        n(skipped.suppressed),
                        n(skipped.no_email),
                        n(skipped.duplicate_address),
                    ])
                })
                .or_store(OP)?;
            if changed == 0 {
                return Ok(false);
            }
            if let Some(page) = &page {
                let fresh = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO campaign_pages (tenant, campaign_id, page_key) \
                         VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str(), page]))
                    .or_store(OP)?;
                if fresh == 0 {
                    // Counted before: roll the counters back (the transaction drops).
                    return Ok(false);
                }
            }
            tx.commit().or_store(OP)?;
            Ok(true)
        })
        .await
    }

    async fn lease_batch(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        batch: &str,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        first: Option<&Attempt>,
    ) -> Result<LeaseOutcome, StoreError> {
        const OP: &str = "lease_batch";
        let first = first
            .map(|a| {
                serde_json::to_string(&a.contacts)
                    .map(|json| (ts(a.at), json))
                    .map_err(|e| StoreError::backend(OP, e))
            })
            .transpose()?;
        let (t, c, b, o) = (
            tenant.to_string(),
            campaign.to_string(),
            batch.to_owned(),
            owner.to_owned(),
        );
        self.write(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_store(OP)?;
            // A paused, failed or missing campaign leases nothing.
            let status: Option<String> = tx
                .prepare_cached(
                    "SELECT status FROM campaigns WHERE tenant = ?1 AND campaign_id = ?2",
                )
                .and_then(|mut s| s.query_row(params![t, c], |r| r.get(0)).optional())
                .or_store(OP)?;
            let stopped = [CampaignStatus::Paused, CampaignStatus::Failed].map(|s| s.as_str());
            if status.as_deref().is_none_or(|s| stopped.contains(&s)) {
                return Ok(LeaseOutcome::Stopped);
            }
            type Row = (String, i64, i64, Option<i64>, Option<String>);
            let old: Option<Row> = tx
                .prepare_cached(
                    "SELECT owner, until, done, attempt_at, attempt FROM delivery_leases \
                     WHERE tenant = ?1 AND campaign_id = ?2 AND batch = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(params![t, c, b], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .optional()
                })
                .or_store(OP)?;
            let outcome = match &old {
                Some((_, _, done, _, _)) if *done != 0 => return Ok(LeaseOutcome::Done),
                Some((holder, held_until, _, _, _)) if *held_until > ts(now) && *holder != o => {
                    let until = from_ts(OP, Some(*held_until))?.unwrap_or(now);
                    return Ok(LeaseOutcome::Busy { until });
                }
                Some((_, _, _, at, attempt)) => LeaseOutcome::Acquired {
                    resumed: true,
                    attempt: read_attempt(OP, *at, attempt.as_deref())?,
                },
                None => LeaseOutcome::Acquired {
                    resumed: false,
                    attempt: None,
                },
            };
            let (first_at, first_contacts) = first.unzip();
            tx.prepare_cached(
                "INSERT INTO delivery_leases \
                 (tenant, campaign_id, batch, owner, until, attempt_at, attempt) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (tenant, campaign_id, batch) \
                 DO UPDATE SET owner = excluded.owner, until = excluded.until, \
                 attempt_at = coalesce(attempt_at, excluded.attempt_at), \
                 attempt = coalesce(attempt, excluded.attempt)",
            )
            .and_then(|mut s| s.execute(params![t, c, b, o, ts(until), first_at, first_contacts]))
            .or_store(OP)?;
            tx.commit().or_store(OP)?;
            Ok(outcome)
        })
        .await
    }

    async fn step_batch(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        batch: &str,
        owner: &str,
        step: &LeaseStep,
    ) -> Result<bool, StoreError> {
        const OP: &str = "step_batch";
        let (t, c, b, o, step) = (
            tenant.to_string(),
            campaign.to_string(),
            batch.to_owned(),
            owner.to_owned(),
            step.clone(),
        );
        self.write(OP, move |conn| step_lease(conn, OP, &t, &c, &b, &o, &step))
            .await
    }

    async fn record_batch_outcomes(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        outcomes: &[(ContactId, InvitationFact)],
        batch: &str,
        owner: &str,
        step: &LeaseStep,
    ) -> Result<BatchWritten, StoreError> {
        const OP: &str = "record_batch_outcomes";
        if outcomes.len() > MAX_CLAIMS {
            return Err(StoreError::backend(OP, TooManyClaims));
        }
        let (tenant, campaign, outcomes) = (tenant.clone(), campaign.clone(), outcomes.to_vec());
        let (b, o, step) = (batch.to_owned(), owner.to_owned(), step.clone());
        self.write(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_store(OP)?;
            let results = apply_facts_in(
                &tx,
                tenant.as_str(),
                campaign.as_str(),
                &outcomes,
                OffsetDateTime::now_utc(),
            )?;
            let kept = step_lease(&tx, OP, tenant.as_str(), campaign.as_str(), &b, &o, &step)?;
            let changed = results.iter().any(|r| matches!(r, FactResult::Changed(_)));
            let drained = if step == LeaseStep::Done && changed {
                let (status, pending): (String, i64) = tx
                    .prepare_cached(
                        "SELECT status, send_pending FROM campaigns \
                         WHERE tenant = ?1 AND campaign_id = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![tenant.as_str(), campaign.as_str()], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                    })
                    .or_store(OP)?;
                Some(status == CampaignStatus::Sending.as_str() && pending == 0)
            } else {
                None
            };
            tx.commit().or_store(OP)?;
            Ok(BatchWritten {
                results,
                kept,
                drained,
            })
        })
        .await
    }

    async fn claim_contacts(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        claims: &[Claim],
        now: OffsetDateTime,
    ) -> Result<Vec<ClaimResult>, StoreError> {
        const OP: &str = "claim_contacts";
        if claims.len() > MAX_CLAIMS {
            return Err(StoreError::backend(OP, TooManyClaims));
        }
        let (tenant, campaign, claims) = (tenant.clone(), campaign.clone(), claims.to_vec());
        self.write(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_store(OP)?;
            let mut first: HashMap<&ContactId, ClaimResult> = HashMap::new();
            let mut out = Vec::with_capacity(claims.len());
            let mut delta = CounterDelta::default();
            for claim in &claims {
                let result = match first.get(&claim.contact_id) {
                    Some(r) => *r,
                    None => {
                        let r = claim_one(&tx, tenant.as_str(), campaign.as_str(), claim, now)?;
                        if r == ClaimResult::Claimed {
                            delta.add(&claim.invitation.state);
                        }
                        first.insert(&claim.contact_id, r);
                        r
                    }
                };
                out.push(result);
            }
            if !delta.is_zero() {
                let counted = delta
                    .write(&tx, tenant.as_str(), campaign.as_str())
                    .or_store(OP)?;
                if counted == 0 {
                    // Like DynamoDB's conditional counter update: no claim without its
                    // campaign (the transaction rolls back on drop).
                    return Err(StoreError::backend(OP, CampaignMissing));
                }
            }
            tx.commit().or_store(OP)?;
            Ok(out)
        })
        .await
    }

    async fn get_invitation(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        contact: &ContactId,
    ) -> Result<Option<Invitation>, StoreError> {
        const OP: &str = "get_invitation";
        let (tenant, campaign, contact) = (tenant.clone(), campaign.clone(), contact.clone());
        self.read(OP, move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "{INVITATION_SELECT} WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id = ?3"
                ))
                .or_store(OP)?;
            let mut rows = stmt
                .query(params![
                    tenant.as_str(),
                    campaign.as_str(),
                    contact.as_str()
                ])
                .or_store(OP)?;
            match rows.next().or_store(OP)? {
                Some(row) => Ok(Some(read_invitation(OP, row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn get_invitations(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        contacts: &[ContactId],
    ) -> Result<Vec<Invitation>, StoreError> {
        const OP: &str = "get_invitations";
        let (tenant, campaign, contacts) = (tenant.clone(), campaign.clone(), contacts.to_vec());
        self.read(OP, move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "{INVITATION_SELECT} WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id = ?3"
                ))
                .or_store(OP)?;
            let mut found = Vec::with_capacity(contacts.len());
            for contact in &contacts {
                let mut rows = stmt
                    .query(params![
                        tenant.as_str(),
                        campaign.as_str(),
                        contact.as_str()
                    ])
                    .or_store(OP)?;
                if let Some(row) = rows.next().or_store(OP)? {
                    found.push(read_invitation(OP, row)?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn apply_facts(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        facts: &[(ContactId, InvitationFact)],
    ) -> Result<Vec<FactResult>, StoreError> {
        const OP: &str = "apply_facts";
        if facts.len() > MAX_CLAIMS {
            return Err(StoreError::backend(OP, TooManyClaims));
        }
        if facts.is_empty() {
            return Ok(Vec::new());
        }
        let (tenant, campaign, facts) = (tenant.clone(), campaign.clone(), facts.to_vec());
        // The port carries no time: a suppression records when the store learnt of it.
        let now = OffsetDateTime::now_utc();
        self.write(OP, move |conn| {
            apply_facts(conn, tenant.as_str(), campaign.as_str(), &facts, now)
        })
        .await
    }

    async fn list_invitations(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        filter: &InvitationFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Invitation>, StoreError> {
        const OP: &str = "list_invitations";
        let after = cursor.map(decode_invitation_cursor).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        if filter.search.contains(search::SEPARATOR) {
            // No single field can contain the separator of `search_text`.
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let (tenant, campaign, filter) = (tenant.clone(), campaign.clone(), filter.clone());
        self.read(OP, move |conn| {
            let (tenant, campaign) = (tenant.as_str(), campaign.as_str());
            let after = after.as_ref().map_or("", ContactId::as_str);
            let window = match filter.max_examined {
                None => None,
                Some(n) => Some(Window::read(
                    OP,
                    conn,
                    INVITATION_KEYS,
                    &[&tenant, &campaign, &after],
                    n.max(1) as usize,
                )?),
            };
            let bound = window.as_ref().and_then(|w| w.bound.clone());
            let sql = invitation_list_sql(
                filter.category.is_some(),
                !filter.search.is_empty(),
                bound.is_some(),
            );
            let mut stmt = conn.prepare_cached(&sql).or_store(OP)?;
            let limit_param = i64::from(limit) + 1;
            let category = filter.category.map(InvitationCategory::as_str);
            let mut p: Vec<(&str, &dyn ToSql)> = vec![
                ("?1", &tenant),
                ("?2", &campaign),
                ("?3", &after),
                ("?4", &limit_param),
            ];
            if let Some(c) = &category {
                p.push(("?5", c));
            }
            if !filter.search.is_empty() {
                p.push(("?6", &filter.search));
            }
            if let Some(b) = &bound {
                p.push(("?7", b));
            }
            let mut rows = stmt.query(p.as_slice()).or_store(OP)?;
            let mut items = Vec::new();
            while let Some(row) = rows.next().or_store(OP)? {
                items.push(read_invitation(OP, row)?);
            }
            let next_cursor = if items.len() > limit as usize {
                items.truncate(limit as usize);
                items
                    .last()
                    .map(|i| encode_invitation_cursor(&i.contact_id))
            } else {
                // The window ran out before the page filled: go on after its last key.
                window
                    .as_ref()
                    .and_then(Window::resume_after)
                    .map(|b| parse_stored(OP, "contact id", ContactId::parse(b)))
                    .transpose()?
                    .map(|c| encode_invitation_cursor(&c))
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }

    async fn list_campaigns(
        &self,
        tenant: &TenantId,
        division: &DivisionId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Campaign>, StoreError> {
        const OP: &str = "list_campaigns";
        let before = cursor.map(decode_campaign_cursor).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let (tenant, division) = (tenant.clone(), division.clone());
        self.read(OP, move |conn| {
            let mut stmt = conn.prepare_cached(&CAMPAIGN_LIST).or_store(OP)?;
            // Campaign ids are lowercase hex: '~' sorts after every one of them.
            let before = before.as_ref().map_or("~", CampaignId::as_str);
            let mut rows = stmt
                .query(params![
                    tenant.as_str(),
                    division.as_str(),
                    before,
                    i64::from(limit) + 1
                ])
                .or_store(OP)?;
            let mut items = Vec::new();
            while let Some(row) = rows.next().or_store(OP)? {
                items.push(read_campaign(OP, row)?);
            }
            let next_cursor = if items.len() > limit as usize {
                items.truncate(limit as usize);
                items.last().map(|c| encode_campaign_cursor(&c.campaign_id))
            } else {
                None
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }

    async fn recount_campaign(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        fix: bool,
    ) -> Result<Option<Recount>, StoreError> {
        const OP: &str = "recount_campaign";
        let (tenant, campaign) = (tenant.clone(), campaign.clone());
        // On the write connection: the counters and the rows are read in one transaction, so
        // no write can fall between them (a recount of a busy campaign is exact).
        self.write(OP, move |conn| {
            recount(conn, tenant.as_str(), campaign.as_str(), fix)
        })
        .await
    }
}

/// One transaction for a call: per fact, read the invitation's state, let the domain decide
/// ([`InvitationState::apply`]), write what it decided; the counters move once at the end.
fn apply_facts(
    conn: &mut Connection,
    tenant: &str,
    campaign: &str,
    facts: &[(ContactId, InvitationFact)],
    now: OffsetDateTime,
) -> Result<Vec<FactResult>, StoreError> {
    const OP: &str = "apply_facts";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .or_store(OP)?;
    let out = apply_facts_in(&tx, tenant, campaign, facts, now)?;
    tx.commit().or_store(OP)?;
    Ok(out)
}

/// [`apply_facts`] inside the caller's transaction.
fn apply_facts_in(
    tx: &Transaction<'_>,
    tenant: &str,
    campaign: &str,
    facts: &[(ContactId, InvitationFact)],
    now: OffsetDateTime,
) -> Result<Vec<FactResult>, StoreError> {
    const OP: &str = "apply_facts";
    let mut out = Vec::with_capacity(facts.len());
    let mut delta = CounterDelta::default();
    {
        let mut read = tx
            .prepare_cached(
                "SELECT category, send_state, reason, suppressed, email FROM invitations \
                 WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id = ?3",
            )
            .or_store(OP)?;
        let mut write = tx
            .prepare_cached(
                "UPDATE invitations SET category = ?4, send_state = ?5, reason = ?6, \
                 suppressed = ?7 WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id = ?3",
            )
            .or_store(OP)?;
        for (contact, fact) in facts {
            let key = params![tenant, campaign, contact.as_str()];
            let mut rows = read.query(key).or_store(OP)?;
            let Some(row) = rows.next().or_store(OP)? else {
                out.push(FactResult::Missing);
                continue;
            };
            let state = InvitationState {
                category: parse_category(OP, str_at(OP, row, 0)?)?,
                send: parse_send(OP, str_at(OP, row, 1)?)?,
                reason: row.get(2).or_store(OP)?,
                suppressed: row.get::<_, i64>(3).or_store(OP)? != 0,
            };
            let Some(t) = state.apply(fact) else {
                out.push(FactResult::Unchanged);
                continue;
            };
            let email: Option<String> = match t.suppress {
                Some(_) => Some(row.get(4).or_store(OP)?),
                None => None,
            };
            drop(rows);
            write
                .execute(params![
                    tenant,
                    campaign,
                    contact.as_str(),
                    t.to.category.as_str(),
                    t.to.send.as_str(),
                    t.to.reason,
                    t.to.suppressed
                ])
                .or_store(OP)?;
            delta.apply(&t);
            if let (Some(s), Some(email)) = (t.suppress, email) {
                let email = parse_stored(OP, "email", Email::parse(&email))?;
                let reason = match s {
                    Suppression::Bounced => SuppressionReason::Bounced,
                    Suppression::Complained => SuppressionReason::Complained,
                };
                suppress_in(tx, tenant, &email.normalized(), reason, now).or_store(OP)?;
            }
            out.push(FactResult::Changed(t));
        }
    }
    if !delta.is_zero() {
        delta.write(tx, tenant, campaign).or_store(OP)?;
    }
    Ok(out)
}

/// Counts a campaign's invitations by category and send state beside its stored counters;
/// with `fix`, stores the count (in the same transaction, so nothing moved meanwhile).
fn recount(
    conn: &mut Connection,
    tenant: &str,
    campaign: &str,
    fix: bool,
) -> Result<Option<Recount>, StoreError> {
    const OP: &str = "recount_campaign";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .or_store(OP)?;
    let Some(stored) = load_campaign(OP, &tx, tenant, campaign)? else {
        return Ok(None);
    };
    let mut counted = (CategoryCounts::default(), SendCounts::default());
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT category, send_state, count(*) FROM invitations \
                 WHERE tenant = ?1 AND campaign_id = ?2 GROUP BY category, send_state",
            )
            .or_store(OP)?;
        let mut rows = stmt.query(params![tenant, campaign]).or_store(OP)?;
        while let Some(row) = rows.next().or_store(OP)? {
            let category = parse_category(OP, &row.get::<_, String>(0).or_store(OP)?)?;
            let send = parse_send(OP, &row.get::<_, String>(1).or_store(OP)?)?;
            let n = count(OP, row, 2)?;
            *counted.0.get_mut(category) += n;
            *counted.1.get_mut(send) += n;
        }
    }
    let stored = (stored.categories, stored.sends);
    if fix && stored != counted {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut delta = CounterDelta::default();
        for (i, c) in InvitationCategory::ALL.into_iter().enumerate() {
            delta.categories[i] = n(counted.0.get(c)) - n(stored.0.get(c));
        }
        let (mut s, mut k) = (stored.1, counted.1);
        for (i, st) in SendState::ALL.into_iter().enumerate() {
            delta.sends[i] = n(*k.get_mut(st)) - n(*s.get_mut(st));
        }
        delta.write(&tx, tenant, campaign).or_store(OP)?;
        tx.commit().or_store(OP)?;
    }
    Ok(Some(Recount {
        stored,
        counted,
        fixed: fix,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::domain::ContactInput;
    use portal_core::ports::{AccountStore, SuppressionStore};

    /// The campaign tables as the send issue left them (before invitation statistics).
    const OLD_SCHEMA: &str = r#"
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
    cat_sent           INTEGER NOT NULL DEFAULT 0,
    cat_failed         INTEGER NOT NULL DEFAULT 0,
    cat_unsubscribed   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, campaign_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS campaign_idempotency (
    tenant      TEXT NOT NULL,
    key         TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    body_hash   BLOB NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS invitations (
    tenant      TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    contact_id  TEXT NOT NULL,
    email       TEXT NOT NULL,
    token_hash  BLOB NOT NULL,
    expires_at  INTEGER NOT NULL,
    category    TEXT NOT NULL,
    reason      TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, campaign_id, contact_id)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS invitations_by_token ON invitations (tenant, token_hash);
"#;

    fn temp_db(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("sqlite-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("store.db");
        (dir, path)
    }

    #[tokio::test]
    async fn a_database_from_before_invitation_statistics_opens_with_its_categories_mapped() {
        let (dir, path) = temp_db("stats-migration");
        let t = TenantId::parse("t").unwrap();
        let d1 = DivisionId::parse("d1").unwrap();
        let accounts = portal_core::demo::accounts(3, &d1, 0, 10).unwrap();
        let contacts: Vec<&ContactInput> = accounts
            .iter()
            .flat_map(|a| &a.contacts)
            .filter(|c| c.email.is_some())
            .take(4)
            .collect();
        assert_eq!(contacts.len(), 4);
        let id = CampaignId::generate(OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000));
        {
            let store = SqliteStore::open(&path).unwrap();
            store.upsert_accounts(&t, &accounts).await.unwrap();
            let conn = super::super::lock(&store.inner.writer);
            conn.execute_batch(
                "DROP TABLE campaigns; DROP TABLE campaign_divisions; \
                 DROP TABLE campaign_idempotency; DROP TABLE invitations;",
            )
            .unwrap();
            conn.execute_batch(OLD_SCHEMA).unwrap();
            // Campaign tables were created without a schema version: such a database says 3.
            conn.execute_batch("PRAGMA user_version = 3").unwrap();
            // Four invitations, one per old category; the counters as the old store kept them.
            conn.execute(
                "INSERT INTO campaigns (tenant, campaign_id, trigger, status, division_ids, \
                 filters, limit_to_uninvited, template_id, email_from, created_at, created_by, \
                 targeted, cat_in_process, cat_sent, cat_failed, cat_unsubscribed) \
                 VALUES ('t', ?1, 'manual', 'sending', '[\"d1\"]', ?2, 1, 'welcome', \
                 'hoa@example.org', 0, 'manager', 4, 1, 1, 1, 1)",
                params![
                    id.as_str(),
                    serde_json::to_string(&Filters::default()).unwrap()
                ],
            )
            .unwrap();
            for (c, category) in
                contacts
                    .iter()
                    .zip(["in_process", "sent", "failed", "unsubscribed"])
            {
                conn.execute(
                    "INSERT INTO invitations (tenant, campaign_id, contact_id, email, \
                     token_hash, expires_at, category, reason, created_at) \
                     VALUES ('t', ?1, ?2, ?3, ?4, 0, ?5, ?6, 0)",
                    params![
                        id.as_str(),
                        c.contact_id.as_str(),
                        c.email.as_ref().map(Email::as_str),
                        [7u8; 32].as_slice(),
                        category,
                        (category == "failed").then_some("mailbox full"),
                    ],
                )
                .unwrap();
            }
        }

        let store = SqliteStore::open(&path).unwrap();
        let got = store.get_campaign(&t, &id).await.unwrap().unwrap();
        assert_eq!(
            (got.categories, got.sends),
            (
                CategoryCounts {
                    in_process: 2,
                    failed: 1,
                    unsubscribed: 1,
                    ..CategoryCounts::default()
                },
                SendCounts {
                    pending: 1,
                    sent: 2,
                    failed: 1
                }
            )
        );
        let recount = store
            .recount_campaign(&t, &id, false)
            .await
            .unwrap()
            .unwrap();
        assert!(!recount.drifted(), "{recount:?}");
        let states: Vec<(InvitationCategory, SendState, Option<String>)> = store
            .get_invitations(
                &t,
                &id,
                &contacts
                    .iter()
                    .map(|c| c.contact_id.clone())
                    .collect::<Vec<_>>(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.state.category, i.state.send, i.state.reason))
            .collect();
        assert_eq!(states.len(), 4);
        for expected in [
            (InvitationCategory::InProcess, SendState::Pending, None),
            (InvitationCategory::InProcess, SendState::Sent, None),
            (
                InvitationCategory::Failed,
                SendState::Failed,
                Some("mailbox full".to_owned()),
            ),
            (InvitationCategory::Unsubscribed, SendState::Sent, None),
        ] {
            assert!(states.contains(&expected), "{expected:?} in {states:?}");
        }
        // The campaign is listed under its division, and its old invitations are searchable
        // by the contact's name.
        let listed = store.list_campaigns(&t, &d1, None, 10).await.unwrap();
        assert_eq!(listed.items, [got]);
        let name = contacts[1].name.to_lowercase();
        let found = store
            .list_invitations(
                &t,
                &id,
                &InvitationFilter {
                    category: None,
                    search: name.clone(),
                    max_examined: None,
                },
                None,
                10,
            )
            .await
            .unwrap();
        assert!(
            found
                .items
                .iter()
                .any(|i| i.contact_id == contacts[1].contact_id),
            "{name}"
        );
        // Facts apply on the migrated rows, and opening again changes nothing.
        let r = store
            .apply_facts(
                &t,
                &id,
                &[(contacts[1].contact_id.clone(), InvitationFact::Delivered)],
            )
            .await
            .unwrap();
        assert!(matches!(r[..], [FactResult::Changed(_)]));
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        let recount = store
            .recount_campaign(&t, &id, false)
            .await
            .unwrap()
            .unwrap();
        assert!(!recount.drifted(), "{recount:?}");
        assert_eq!(recount.counted.0.unopened, 1);
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A bounce's suppression is written with the invitation: the contact's counts see it.
    #[tokio::test]
    async fn a_bounce_sets_the_suppression_bit_of_the_contact_in_the_same_transaction() {
        let store = SqliteStore::open_in_memory().unwrap();
        let t = TenantId::parse("t").unwrap();
        let d1 = DivisionId::parse("d1").unwrap();
        let accounts = portal_core::demo::accounts(5, &d1, 0, 3).unwrap();
        store.upsert_accounts(&t, &accounts).await.unwrap();
        let contact = accounts
            .iter()
            .flat_map(|a| &a.contacts)
            .find(|c| c.email.is_some())
            .unwrap();
        let email = contact.email.clone().unwrap();
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let c = Campaign {
            campaign_id: CampaignId::generate(now),
            trigger: Trigger::Individual,
            status: CampaignStatus::Sending,
            division_ids: vec![d1.clone()],
            filters: Filters::default(),
            limit_to_uninvited: false,
            template_id: "welcome".into(),
            email_from: Email::parse("hoa@example.org").unwrap(),
            display_name: None,
            created_at: now,
            created_by: "m".into(),
            targeted: 0,
            skipped: Skipped::default(),
            categories: CategoryCounts::default(),
            sends: SendCounts::default(),
            pause_reason: None,
            recurring: None,
            selection: None,
        };
        store.create_campaign(&t, &c, None, now).await.unwrap();
        let invitation = Invitation {
            campaign_id: c.campaign_id.clone(),
            contact_id: contact.contact_id.clone(),
            email: email.clone(),
            contact_name: contact.name.clone(),
            account_number: String::new(),
            registration_token_hash: [1; 32],
            expires_at: now,
            state: InvitationState::new(),
            created_at: now,
        };
        let claim = Claim {
            contact_id: contact.contact_id.clone(),
            division_id: None,
            invitation,
        };
        store
            .claim_contacts(&t, &c.campaign_id, &[claim], now)
            .await
            .unwrap();
        let bounce = InvitationFact::Bounced {
            permanent: true,
            reason: "Permanent/General".into(),
        };
        store
            .apply_facts(&t, &c.campaign_id, &[(contact.contact_id.clone(), bounce)])
            .await
            .unwrap();
        assert!(store.is_suppressed(&t, &email).await.unwrap());
        let flags: i64 = super::super::lock(&store.inner.writer)
            .query_row(
                "SELECT flags FROM contacts WHERE tenant = 't' AND contact_id = ?1",
                [contact.contact_id.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        assert_ne!(flags & schema::FLAG_SUPPRESSED, 0);
    }

    #[test]
    fn recipient_and_campaign_lists_read_an_index_range_in_order() {
        let store = SqliteStore::open_in_memory().unwrap();
        let conn = super::super::lock(&store.inner.writer);
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let rows = stmt
                .query_map(params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap();
            rows.map(|r| r.unwrap()).collect::<Vec<_>>().join(" | ")
        };
        for (category, search, bounded) in [
            (false, false, false),
            (true, false, false),
            (false, true, true),
            (true, true, true),
        ] {
            let p = plan(&invitation_list_sql(category, search, bounded));
            assert!(!p.contains("TEMP B-TREE"), "{p}");
            if category {
                assert!(p.contains("invitations_by_category"), "{p}");
            } else {
                assert!(p.contains("PRIMARY KEY"), "{p}");
            }
        }
        let p = plan(INVITATION_KEYS);
        assert!(
            p.contains("PRIMARY KEY") && !p.contains("TEMP B-TREE"),
            "{p}"
        );
        let p = plan(&CAMPAIGN_LIST);
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        assert!(p.contains("SEARCH d USING PRIMARY KEY"), "{p}");
    }
}
