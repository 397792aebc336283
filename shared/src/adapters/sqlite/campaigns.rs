//! Campaigns, invitations and the 24-hour rules on SQLite.
//!
//! # Tables
//!
//! - `campaigns (tenant, campaign_id)`: the campaign's fields as columns (`division_ids` and
//!   `filters` as JSON), its counters and status.
//! - `campaign_idempotency (tenant, key)`: an `Idempotency-Key` → the campaign it made and
//!   the SHA-256 of the body it came with.
//! - `invitations (tenant, campaign_id, contact_id)`: one row per claimed contact; the
//!   registration token only as its hash (indexed, for the link lookup to come).
//!
//! The division lock is `divisions.last_bulk_sent_at`; the contact claim is
//! `contacts.last_invited_at`. Each operation is one `IMMEDIATE` transaction on the single
//! write connection, so its checks and writes cannot interleave with another writer's: the
//! same guarantees DynamoDB's conditional writes give, by serialisation. Times are unix
//! seconds, like the rest of this store.
//!
//! The tables are created (idempotently) on every open by [`SCHEMA`], so they need no
//! schema-version bump of their own.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use time::OffsetDateTime;

use super::{from_ts, parse_stored, schema, ts, OrStore, SqliteStore};
use crate::domain::{
    Campaign, CampaignId, CampaignStatus, CategoryCounts, ContactId, DivisionId, Email, Filters,
    Invitation, InvitationCategory, Skipped, TenantId, Trigger, HOLD_WINDOW,
    MAX_CAMPAIGN_DIVISIONS,
};
use crate::ports::{
    decode_invitation_cursor, encode_invitation_cursor, CampaignStore, Claim, ClaimResult,
    CreateOutcome, Idempotency, Page, StoreError, MAX_CLAIMS, MAX_PAGE_SIZE,
};

/// The campaign tables; every statement is idempotent.
pub(super) const SCHEMA: &str = r#"
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

/// The campaign had more divisions than one campaign may lock.
#[derive(Debug, thiserror::Error)]
#[error("a campaign touches at most {MAX_CAMPAIGN_DIVISIONS} divisions")]
pub(crate) struct TooManyDivisions;

/// Claims for a campaign that was never recorded.
#[derive(Debug, thiserror::Error)]
#[error("claims need their campaign recorded first")]
pub(crate) struct CampaignMissing;

/// A claim call over [`MAX_CLAIMS`].
#[derive(Debug, thiserror::Error)]
#[error("at most {MAX_CLAIMS} claims per call")]
pub(crate) struct TooManyClaims;

const CAMPAIGN_SELECT: &str = "SELECT campaign_id, trigger, status, division_ids, filters, \
    limit_to_uninvited, template_id, email_from, created_at, created_by, targeted, \
    skipped_accepted, skipped_held_24h, skipped_suppressed, skipped_no_email, pause_reason, \
    cat_in_process, cat_sent, cat_failed, cat_unsubscribed FROM campaigns";

/// The category counter columns, added to a `campaigns` table made before they existed.
const CATEGORY_COLUMNS: [&str; 4] = [
    "cat_in_process",
    "cat_sent",
    "cat_failed",
    "cat_unsubscribed",
];

/// Brings an older `campaigns` table up to [`SCHEMA`]: adds the missing counter columns.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut have = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('campaigns')")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            have.push(row.get::<_, String>(0)?);
        }
    }
    for col in CATEGORY_COLUMNS {
        if !have.iter().any(|h| h == col) {
            conn.execute_batch(&format!(
                "ALTER TABLE campaigns ADD COLUMN {col} INTEGER NOT NULL DEFAULT 0"
            ))?;
        }
    }
    Ok(())
}

/// The counter column of a category.
fn category_column(category: &InvitationCategory) -> &'static str {
    match category {
        InvitationCategory::InProcess => "cat_in_process",
        InvitationCategory::Sent => "cat_sent",
        InvitationCategory::Failed { .. } => "cat_failed",
        InvitationCategory::Unsubscribed => "cat_unsubscribed",
    }
}

const INVITATION_SELECT: &str = "SELECT campaign_id, contact_id, email, token_hash, \
    expires_at, category, reason, created_at FROM invitations";

fn count(op: &'static str, row: &Row<'_>, i: usize) -> Result<u64, StoreError> {
    let n: i64 = row.get(i).or_store(op)?;
    parse_stored(op, "counter", u64::try_from(n))
}

fn req_time(op: &'static str, row: &Row<'_>, i: usize) -> Result<OffsetDateTime, StoreError> {
    from_ts(op, Some(row.get(i).or_store(op)?))?
        .ok_or_else(|| StoreError::backend(op, super::Corrupt("time")))
}

fn read_campaign(op: &'static str, row: &Row<'_>) -> Result<Campaign, StoreError> {
    let get_s = |i: usize| row.get::<_, String>(i).or_store(op);
    let divisions: Vec<DivisionId> =
        parse_stored(op, "division_ids", serde_json::from_str(&get_s(3)?))?;
    let filters: Filters = parse_stored(op, "filters", serde_json::from_str(&get_s(4)?))?;
    Ok(Campaign {
        campaign_id: parse_stored(op, "campaign_id", CampaignId::parse(get_s(0)?))?,
        trigger: parse_stored(op, "trigger", Trigger::parse(&get_s(1)?).ok_or(()))?,
        status: parse_stored(op, "status", CampaignStatus::parse(&get_s(2)?).ok_or(()))?,
        division_ids: divisions,
        filters,
        limit_to_uninvited: row.get::<_, i64>(5).or_store(op)? != 0,
        template_id: get_s(6)?,
        email_from: parse_stored(op, "email_from", Email::parse(&get_s(7)?))?,
        created_at: req_time(op, row, 8)?,
        created_by: get_s(9)?,
        targeted: count(op, row, 10)?,
        skipped: Skipped {
            accepted: count(op, row, 11)?,
            held_24h: count(op, row, 12)?,
            suppressed: count(op, row, 13)?,
            no_email: count(op, row, 14)?,
        },
        categories: CategoryCounts {
            in_process: count(op, row, 16)?,
            sent: count(op, row, 17)?,
            failed: count(op, row, 18)?,
            unsubscribed: count(op, row, 19)?,
        },
        pause_reason: row.get(15).or_store(op)?,
    })
}

fn read_invitation(op: &'static str, row: &Row<'_>) -> Result<Invitation, StoreError> {
    let get_s = |i: usize| row.get::<_, String>(i).or_store(op);
    let hash: Vec<u8> = row.get(3).or_store(op)?;
    Ok(Invitation {
        campaign_id: parse_stored(op, "campaign_id", CampaignId::parse(get_s(0)?))?,
        contact_id: parse_stored(op, "contact_id", ContactId::parse(get_s(1)?))?,
        email: parse_stored(op, "email", Email::parse(&get_s(2)?))?,
        registration_token_hash: parse_stored(op, "token_hash", <[u8; 32]>::try_from(hash))?,
        expires_at: req_time(op, row, 4)?,
        category: parse_stored(
            op,
            "category",
            InvitationCategory::from_parts(&get_s(5)?, row.get(6).or_store(op)?).ok_or(()),
        )?,
        created_at: req_time(op, row, 7)?,
    })
}

fn load_campaign(
    op: &'static str,
    conn: &Connection,
    tenant: &str,
    id: &str,
) -> Result<Option<Campaign>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "{CAMPAIGN_SELECT} WHERE tenant = ?1 AND campaign_id = ?2"
        ))
        .or_store(op)?;
    let mut rows = stmt.query(params![tenant, id]).or_store(op)?;
    match rows.next().or_store(op)? {
        Some(row) => Ok(Some(read_campaign(op, row)?)),
        None => Ok(None),
    }
}

fn insert_campaign(
    op: &'static str,
    tx: &Transaction<'_>,
    t: &str,
    c: &Campaign,
) -> Result<(), StoreError> {
    let divisions =
        serde_json::to_string(&c.division_ids).map_err(|e| StoreError::backend(op, e))?;
    let filters = serde_json::to_string(&c.filters).map_err(|e| StoreError::backend(op, e))?;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT INTO campaigns (tenant, campaign_id, trigger, status, division_ids, filters, \
         limit_to_uninvited, template_id, email_from, created_at, created_by, targeted, \
         skipped_accepted, skipped_held_24h, skipped_suppressed, skipped_no_email, pause_reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
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
        ])
    })
    .or_store(op)?;
    Ok(())
}

fn create(
    conn: &mut Connection,
    tenant: &str,
    campaign: &Campaign,
    idempotency: Option<&Idempotency>,
    now: OffsetDateTime,
) -> Result<CreateOutcome, StoreError> {
    const OP: &str = "create_campaign";
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
    if campaign.trigger == Trigger::Manual {
        let mut divisions = campaign.division_ids.clone();
        divisions.sort();
        divisions.dedup();
        if divisions.len() > MAX_CAMPAIGN_DIVISIONS {
            return Err(StoreError::backend(OP, TooManyDivisions));
        }
        let cutoff = ts(now - HOLD_WINDOW);
        for d in &divisions {
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
        for d in &divisions {
            tx.prepare_cached(
                "UPDATE divisions SET last_bulk_sent_at = ?3 WHERE tenant = ?1 AND division_id = ?2",
            )
            .and_then(|mut s| s.execute(params![tenant, d.as_str(), ts(now)]))
            .or_store(OP)?;
        }
    }
    insert_campaign(OP, &tx, tenant, campaign)?;
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
    tx.prepare_cached(&format!(
        "UPDATE contacts SET last_invited_at = ?3, portal_status = 1, \
         flags = (flags & ~{m}) | 1 WHERE tenant = ?1 AND division_id = ?4 AND contact_id = ?2",
        m = schema::FLAG_STATUS_MASK
    ))
    .and_then(|mut s| s.execute(params![tenant, contact, ts(now), division]))
    .or_store(OP)?;
    let inv = &claim.invitation;
    tx.prepare_cached(
        "INSERT INTO invitations (tenant, campaign_id, contact_id, email, token_hash, \
         expires_at, category, reason, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            tenant,
            campaign,
            contact,
            inv.email.as_str(),
            inv.registration_token_hash.as_slice(),
            ts(inv.expires_at),
            inv.category.as_str(),
            inv.category.reason(),
            ts(inv.created_at),
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
            create(conn, tenant.as_str(), &campaign, idem.as_ref(), now)
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
    ) -> Result<bool, StoreError> {
        const OP: &str = "add_campaign_counts";
        let (tenant, id) = (tenant.clone(), id.clone());
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.write(OP, move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE campaigns SET targeted = targeted + ?3, \
                     skipped_accepted = skipped_accepted + ?4, \
                     skipped_held_24h = skipped_held_24h + ?5, \
                     skipped_suppressed = skipped_suppressed + ?6, \
                     skipped_no_email = skipped_no_email + ?7 \
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
                        n(skipped.no_email)
                    ])
                })
                .or_store(OP)?;
            Ok(changed > 0)
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
            let mut first: std::collections::HashMap<&ContactId, ClaimResult> =
                std::collections::HashMap::new();
            let mut out = Vec::with_capacity(claims.len());
            for claim in &claims {
                let result = match first.get(&claim.contact_id) {
                    Some(r) => *r,
                    None => {
                        let r = claim_one(&tx, tenant.as_str(), campaign.as_str(), claim, now)?;
                        first.insert(&claim.contact_id, r);
                        r
                    }
                };
                out.push(result);
            }
            let claimed = first
                .values()
                .filter(|r| **r == ClaimResult::Claimed)
                .count() as i64;
            if claimed > 0 {
                let counted = tx
                    .prepare_cached(
                        "UPDATE campaigns SET targeted = targeted + ?3, \
                         cat_in_process = cat_in_process + ?3 \
                         WHERE tenant = ?1 AND campaign_id = ?2",
                    )
                    .and_then(|mut s| {
                        s.execute(params![tenant.as_str(), campaign.as_str(), claimed])
                    })
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

    async fn list_invitations(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Invitation>, StoreError> {
        const OP: &str = "list_invitations";
        let after = cursor.map(decode_invitation_cursor).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let (tenant, campaign) = (tenant.clone(), campaign.clone());
        self.read(OP, move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "{INVITATION_SELECT} WHERE tenant = ?1 AND campaign_id = ?2 \
                     AND contact_id > ?3 ORDER BY contact_id LIMIT ?4"
                ))
                .or_store(OP)?;
            let mut rows = stmt
                .query(params![
                    tenant.as_str(),
                    campaign.as_str(),
                    after.as_ref().map_or("", ContactId::as_str),
                    i64::from(limit) + 1
                ])
                .or_store(OP)?;
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
                None
            };
            Ok(Page { items, next_cursor })
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

    async fn record_outcomes(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        outcomes: &[(ContactId, InvitationCategory)],
    ) -> Result<Vec<bool>, StoreError> {
        const OP: &str = "record_outcomes";
        if outcomes.len() > MAX_CLAIMS {
            return Err(StoreError::backend(OP, TooManyClaims));
        }
        let (tenant, campaign, outcomes) = (tenant.clone(), campaign.clone(), outcomes.to_vec());
        self.write(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_store(OP)?;
            let mut applied = Vec::with_capacity(outcomes.len());
            let mut moved = CategoryCounts::default();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE invitations SET category = ?4, reason = ?5 \
                         WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id = ?3 \
                         AND category = 'in_process'",
                    )
                    .or_store(OP)?;
                for (contact, category) in &outcomes {
                    let n = stmt
                        .execute(params![
                            tenant.as_str(),
                            campaign.as_str(),
                            contact.as_str(),
                            category.as_str(),
                            category.reason()
                        ])
                        .or_store(OP)?;
                    if n > 0 && *category != InvitationCategory::InProcess {
                        *moved.get_mut(category) += 1;
                    }
                    applied.push(n > 0);
                }
            }
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let out = moved.sent + moved.failed + moved.unsubscribed;
            if out > 0 {
                tx.prepare_cached(
                    "UPDATE campaigns SET cat_in_process = cat_in_process - ?3, \
                     cat_sent = cat_sent + ?4, cat_failed = cat_failed + ?5, \
                     cat_unsubscribed = cat_unsubscribed + ?6 \
                     WHERE tenant = ?1 AND campaign_id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant.as_str(),
                        campaign.as_str(),
                        n(out),
                        n(moved.sent),
                        n(moved.failed),
                        n(moved.unsubscribed)
                    ])
                })
                .or_store(OP)?;
            }
            tx.commit().or_store(OP)?;
            Ok(applied)
        })
        .await
    }

    async fn set_invitation_category(
        &self,
        tenant: &TenantId,
        campaign: &CampaignId,
        contact: &ContactId,
        category: &InvitationCategory,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_invitation_category";
        let (tenant, campaign, contact, category) = (
            tenant.clone(),
            campaign.clone(),
            contact.clone(),
            category.clone(),
        );
        self.write(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_store(OP)?;
            let old: Option<String> = tx
                .prepare_cached(
                    "SELECT category FROM invitations \
                     WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![tenant.as_str(), campaign.as_str(), contact.as_str()],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .or_store(OP)?;
            let Some(old) = old else {
                return Ok(false);
            };
            tx.prepare_cached(
                "UPDATE invitations SET category = ?4, reason = ?5 \
                 WHERE tenant = ?1 AND campaign_id = ?2 AND contact_id = ?3",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant.as_str(),
                    campaign.as_str(),
                    contact.as_str(),
                    category.as_str(),
                    category.reason()
                ])
            })
            .or_store(OP)?;
            let old_column = parse_stored(
                OP,
                "invitation category",
                InvitationCategory::from_parts(&old, None).ok_or(()),
            )
            .map(|c| category_column(&c))?;
            let new_column = category_column(&category);
            if old_column != new_column {
                tx.execute(
                    &format!(
                        "UPDATE campaigns SET {old_column} = {old_column} - 1, \
                         {new_column} = {new_column} + 1 \
                         WHERE tenant = ?1 AND campaign_id = ?2"
                    ),
                    params![tenant.as_str(), campaign.as_str()],
                )
                .or_store(OP)?;
            }
            tx.commit().or_store(OP)?;
            Ok(true)
        })
        .await
    }
}
