//! Fan-out: one page of a campaign's recipients claimed and cut into send batches.
//!
//! The page lists every contact of the campaign's divisions that passes its filters (group
//! `all`, search empty), in the store's stable key order, and decides each contact with
//! [`classify`] at `now`, the same rule counts use:
//!
//! - accepted, no email, suppressed → skipped (counted);
//! - `pending` while `limit_to_uninvited` → left alone, *unless this campaign holds its
//!   invitation* (it became pending by our own claim: a replayed page) → batched again;
//! - held or eligible → claimed; `Claimed` and `AlreadyClaimedByThisCampaign` are batched,
//!   `Held` is counted as `held_24h`, `Accepted`/`Missing` (changed since the read) skipped.
//!
//! Listing all contacts rather than the `eligible` group is what makes a replay stable: a
//! contact this campaign claimed is now held, and would drop out of `eligible`.
//!
//! Counters: `targeted` counts new claims only and skips are counted per page, once per run
//! of the page: a replayed page adds its skips again (an over-count of `skipped`), and a page
//! whose run died between its claims and its counts under-counts `targeted`. Exact numbers
//! can always be recomputed from the invitations.

use time::OffsetDateTime;

use crate::domain::{classify, hash_token, Group, Invitation, InvitationCategory, SendOutcome};
use crate::domain::{CampaignId, CampaignStatus, ContactId, ContactRecord, Skipped, TenantId};
use crate::ports::{Claim, ClaimResult, ContactQuery, ListQuery, MAX_CLAIMS, MAX_PAGE_SIZE};

use super::{SendDeps, SendError};

/// Most invitations in one send batch (one PutEvents entry).
pub const MAX_BATCH: usize = 10;

/// Invitations to deliver together: `contact_ids` within the batch's campaign (an
/// invitation is keyed by campaign and contact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBatch {
    pub campaign_id: CampaignId,
    pub contact_ids: Vec<ContactId>,
}

/// What one page of fan-out produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOutStep {
    pub batches: Vec<SendBatch>,
    /// The cursor of the next page; `None` when `done`.
    pub next_cursor: Option<String>,
    pub done: bool,
}

/// Claims one page of the campaign's recipients (see the module docs). Re-running it with
/// the same cursor yields the same batches and claims nothing new. A paused or failed
/// campaign answers an empty, done step and claims nothing.
#[tracing::instrument(skip_all, fields(tenant = %tenant, campaign = %campaign_id))]
pub async fn fan_out_page(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    cursor: Option<&str>,
) -> Result<FanOutStep, SendError> {
    let store = &*deps.store;
    let campaign = store
        .get_campaign(tenant, campaign_id)
        .await?
        .ok_or_else(|| SendError::CampaignNotFound(campaign_id.clone()))?;
    if matches!(
        campaign.status,
        CampaignStatus::Paused | CampaignStatus::Failed
    ) {
        // A paused or failed campaign claims nothing more; resuming re-runs the fan-out.
        return Ok(FanOutStep {
            batches: vec![],
            next_cursor: None,
            done: true,
        });
    }
    let now = deps.clock.now();
    let limit = deps
        .config
        .page_size
        .clamp(1, MAX_PAGE_SIZE.min(MAX_CLAIMS as u32));
    let page = store
        .list_contacts(
            tenant,
            &ListQuery {
                contacts: ContactQuery {
                    division_ids: campaign.division_ids.clone(),
                    filters: campaign.filters.clone(),
                    limit_to_uninvited: false,
                    now,
                },
                group: Group::All,
                search: String::new(),
                cursor: cursor.map(str::to_owned),
                limit,
            },
        )
        .await?;

    let mut skipped = Skipped::default();
    // Contacts to batch, in page order, and the claims to make.
    let mut ours: Vec<ContactId> = Vec::new();
    let mut claims: Vec<Claim> = Vec::new();
    for contact in &page.items {
        let suppressed = match &contact.email {
            Some(e) => store.is_suppressed(tenant, e).await?,
            None => false,
        };
        match classify(contact, now, suppressed, campaign.limit_to_uninvited) {
            SendOutcome::Accepted => skipped.accepted += 1,
            SendOutcome::NoEmail => skipped.no_email += 1,
            SendOutcome::Suppressed => skipped.suppressed += 1,
            SendOutcome::NotTargeted => {
                if store
                    .get_invitation(tenant, campaign_id, &contact.contact_id)
                    .await?
                    .is_some()
                {
                    ours.push(contact.contact_id.clone());
                }
            }
            SendOutcome::Held24h | SendOutcome::Eligible => {
                if let Some(claim) = claim_for(deps, tenant, campaign_id, contact, now) {
                    claims.push(claim);
                }
            }
        }
    }

    let mut targeted = 0u64;
    if !claims.is_empty() {
        let results = store
            .claim_contacts(tenant, campaign_id, &claims, now)
            .await?;
        for (claim, result) in claims.iter().zip(results) {
            match result {
                ClaimResult::Claimed => {
                    targeted += 1;
                    ours.push(claim.contact_id.clone());
                }
                ClaimResult::AlreadyClaimedByThisCampaign => ours.push(claim.contact_id.clone()),
                ClaimResult::Held { .. } => skipped.held_24h += 1,
                ClaimResult::Accepted => skipped.accepted += 1,
                ClaimResult::Missing => {}
            }
        }
    }
    if targeted > 0 || skipped != Skipped::default() {
        store
            .add_campaign_counts(tenant, campaign_id, targeted, skipped)
            .await?;
    }

    // Page order is the store's stable order, so a replay cuts the same batches.
    let batches = ours
        .chunks(MAX_BATCH)
        .map(|ids| SendBatch {
            campaign_id: campaign_id.clone(),
            contact_ids: ids.to_vec(),
        })
        .collect();
    let done = page.next_cursor.is_none();
    tracing::debug!(
        targeted,
        batches = ours.len().div_ceil(MAX_BATCH),
        done,
        "fan-out page"
    );
    Ok(FanOutStep {
        batches,
        next_cursor: page.next_cursor,
        done,
    })
}

fn claim_for(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    contact: &ContactRecord,
    now: OffsetDateTime,
) -> Option<Claim> {
    let email = contact.email.clone()?;
    let token = deps.tokens.token(tenant, campaign_id, &contact.contact_id);
    Some(Claim {
        contact_id: contact.contact_id.clone(),
        invitation: Invitation {
            campaign_id: campaign_id.clone(),
            contact_id: contact.contact_id.clone(),
            email,
            registration_token_hash: hash_token(&token),
            expires_at: now + deps.config.token_ttl,
            category: InvitationCategory::InProcess,
            created_at: now,
        },
    })
}
