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
//! A hand-picked campaign (`campaign.selection`) pages through its stored ids instead
//! ([`CampaignStore::selection_ids`](crate::ports::CampaignStore::selection_ids), then
//! [`ContactStore::get_contacts`](crate::ports::ContactStore::get_contacts)): the page is
//! the picked contacts that still exist, in the order they were picked, and everything
//! after that is the same — the same classification, claims, skips and batches. Its cursor
//! is the position in the selection, so a replayed page reads the same ids again. A picked
//! contact deleted since the campaign was recorded is simply not on its page (like a claim
//! that answers `Missing`, it is not counted).
//!
//! Counters: `targeted` and the `in_process` category are counted by the claims themselves,
//! in the same write, so they are exact. Skips are counted per page, under the page's key
//! (a hash of its cursor) in the same write that records the key, so a replayed page adds
//! nothing: `skipped` is exact under replay too. A contact whose address another contact
//! claimed within 24 hours (this campaign's or another's) answers `DuplicateAddress` and is
//! counted as `skipped.duplicate_address`.
//!
//! Suppression is decided here, at claim time, from one read of the page's addresses:
//! delivery does not read the suppression list again. An address suppressed between a
//! contact's claim and its send (seconds to minutes on a busy campaign) still gets that one
//! email.

use std::collections::{BTreeMap, HashMap};

use time::OffsetDateTime;

use crate::domain::{
    classify, hash_token, Group, Invitation, InvitationState, PortalStatus, SendOutcome,
};
use crate::domain::{
    Campaign, CampaignId, CampaignStatus, ContactId, ContactRecord, DivisionId, HandPicked,
    Skipped, TemplateId, TenantId,
};
use crate::ports::{
    Claim, ClaimResult, ContactQuery, ListQuery, Page, Recipient, SendSpec, StoreError, MAX_CLAIMS,
    MAX_FAN_OUT_PAGE, MAX_SPEC_BYTES,
};

use super::{SendDeps, SendError};

/// Most invitations in one send batch. Larger batches mean fewer store requests per
/// invitation in delivery (its lease and first mark are per batch). Five groups of
/// [`MAX_ATTEMPT`](crate::ports::MAX_ATTEMPT) (the most outcomes one write of 100 items takes
/// on DynamoDB), so a full batch's outcomes go in five full writes rather than six with a
/// last one of ten.
pub const MAX_BATCH: usize = 5 * crate::ports::MAX_ATTEMPT;

/// Most bytes of recipients in one batch: with the campaign's [`SendSpec`] (at most
/// [`MAX_SPEC_BYTES`](crate::ports::MAX_SPEC_BYTES)) and the envelope, one bus message stays
/// under [`MAX_MESSAGE_BYTES`](crate::ports::MAX_MESSAGE_BYTES) however long names and ids
/// are (a typical recipient is ~250 bytes, so a full batch is ~125 KB). The cut does not
/// depend on the spec, so a replayed page cuts the same batches whatever its template.
pub const MAX_BATCH_BYTES: usize = 160 * 1024;

/// Invitations to deliver together, with what their emails need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBatch {
    pub campaign_id: CampaignId,
    pub recipients: Vec<Recipient>,
}

/// What a campaign's pages share: its divisions' names, and the spec its messages carry
/// (`None` when its template is gone or too large to carry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageContext {
    pub division_names: BTreeMap<DivisionId, String>,
    pub spec: Option<SendSpec>,
}

impl PageContext {
    /// The context a message carried, or read from the store: the campaign's divisions and
    /// its template (one Query and one GetItem on DynamoDB, once per campaign run).
    pub async fn of(
        deps: &SendDeps,
        tenant: &TenantId,
        campaign: &Campaign,
        carried: Option<&SendSpec>,
    ) -> Result<Self, SendError> {
        if let Some(spec) = carried {
            return Ok(Self {
                division_names: spec.division_names.clone(),
                spec: Some(spec.clone()),
            });
        }
        let store = &*deps.store;
        let division_names: BTreeMap<_, _> = store
            .list_divisions(tenant)
            .await?
            .into_iter()
            .filter(|d| campaign.division_ids.contains(&d.division_id))
            .map(|d| (d.division_id, d.name))
            .collect();
        let template = match TemplateId::parse(campaign.template_id.clone()) {
            Ok(id) => store.get_template(tenant, &id).await?,
            Err(_) => None,
        };
        let spec = template
            .map(|template| SendSpec {
                template,
                email_from: campaign.email_from.clone(),
                display_name: campaign.display_name.clone(),
                division_names: division_names.clone(),
            })
            .filter(|spec| {
                serde_json::to_vec(&spec.for_delivery())
                    .is_ok_and(|json| json.len() <= MAX_SPEC_BYTES)
            });
        Ok(Self {
            division_names,
            spec,
        })
    }
}

impl SendBatch {
    pub fn contact_ids(&self) -> impl Iterator<Item = &ContactId> {
        self.recipients.iter().map(|r| &r.contact_id)
    }
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
///
/// Store requests per page: the campaign, the contact page (for a hand-picked campaign: the
/// page's ids, then their contacts), the suppressions among them, the invitations of already-pending contacts (only when
/// `limit_to_uninvited` leaves some out), the claims (one transaction per 49 on DynamoDB)
/// and one counter update for the skips; the first page of a run (no [`SendSpec`] carried)
/// also reads the divisions and the template ([`PageContext::of`]).
#[tracing::instrument(skip_all, fields(tenant = %tenant, campaign = %campaign_id))]
pub async fn fan_out_page(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    cursor: Option<&str>,
) -> Result<FanOutStep, SendError> {
    let campaign = deps
        .store
        .get_campaign(tenant, campaign_id)
        .await?
        .ok_or_else(|| SendError::CampaignNotFound(campaign_id.clone()))?;
    let context = PageContext::of(deps, tenant, &campaign, None).await?;
    fan_out_page_of(deps, tenant, &campaign, &context, cursor).await
}

/// [`fan_out_page`] of a campaign the caller has just read, with its [`PageContext`].
pub(super) async fn fan_out_page_of(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign: &Campaign,
    context: &PageContext,
    cursor: Option<&str>,
) -> Result<FanOutStep, SendError> {
    let store = &*deps.store;
    let campaign_id = &campaign.campaign_id;
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
    let limit = deps.config.page_size.clamp(1, MAX_FAN_OUT_PAGE);
    let page = match campaign.selection {
        None => {
            store
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
                        max_examined: None,
                    },
                )
                .await?
        }
        // A selection is read in chunks of at most `MAX_CLAIMS` ids.
        Some(picked) => {
            let limit = limit.min(MAX_CLAIMS as u32);
            selection_page(deps, tenant, campaign_id, picked, cursor, limit).await?
        }
    };
    let division_names = &context.division_names;
    let emails: Vec<_> = page.items.iter().filter_map(|c| c.email.clone()).collect();
    let suppressed = store.suppressed_among(tenant, &emails).await?;

    let mut skipped = Skipped::default();
    // Pending contacts left out by `limit_to_uninvited`: ours if this campaign claimed them.
    let mut maybe_ours: Vec<ContactId> = Vec::new();
    let mut claims: Vec<Claim> = Vec::new();
    for contact in &page.items {
        // A recurring run reminds only the pending contacts its rule says are due again; a
        // contact it left out may still be ours (claimed by a replayed page of this run).
        if let Some(run) = &campaign.recurring {
            if contact.portal_status != PortalStatus::Accepted && !run.rule.targets(contact, now) {
                maybe_ours.push(contact.contact_id.clone());
                continue;
            }
        }
        let is_suppressed = contact
            .email
            .as_ref()
            .is_some_and(|e| suppressed.contains(&e.normalized()));
        match classify(contact, now, is_suppressed, campaign.limit_to_uninvited) {
            SendOutcome::Accepted => skipped.accepted += 1,
            SendOutcome::NoEmail => skipped.no_email += 1,
            SendOutcome::Suppressed => skipped.suppressed += 1,
            SendOutcome::NotTargeted => maybe_ours.push(contact.contact_id.clone()),
            SendOutcome::Held24h | SendOutcome::Eligible => {
                if let Some(claim) = claim_for(deps, tenant, campaign_id, contact, now) {
                    claims.push(claim);
                }
            }
        }
    }

    let mut ours: std::collections::HashSet<ContactId> = std::collections::HashSet::new();
    // Claimed by this run (not a replay): their invitations are new.
    let mut fresh: std::collections::HashSet<ContactId> = std::collections::HashSet::new();
    if !maybe_ours.is_empty() {
        for inv in store
            .get_invitations(tenant, campaign_id, &maybe_ours)
            .await?
        {
            ours.insert(inv.contact_id);
        }
    }
    let mut targeted = 0u64;
    // Claimed in calls of at most `MAX_CLAIMS` (a page may hold twice that).
    let mut results = Vec::with_capacity(claims.len());
    for call in claims.chunks(MAX_CLAIMS) {
        results.extend(store.claim_contacts(tenant, campaign_id, call, now).await?);
    }
    for (claim, result) in claims.iter().zip(results) {
        match result {
            ClaimResult::Claimed => {
                targeted += 1;
                ours.insert(claim.contact_id.clone());
                fresh.insert(claim.contact_id.clone());
            }
            ClaimResult::AlreadyClaimedByThisCampaign => {
                ours.insert(claim.contact_id.clone());
            }
            ClaimResult::Held { .. } => skipped.held_24h += 1,
            ClaimResult::DuplicateAddress { .. } => skipped.duplicate_address += 1,
            ClaimResult::Accepted => skipped.accepted += 1,
            ClaimResult::Missing => {}
        }
    }
    if skipped != Skipped::default() {
        // Once per page: a replayed page (same cursor) adds nothing.
        let page_key = page_key(cursor);
        store
            .add_campaign_counts(tenant, campaign_id, 0, skipped, Some(&page_key))
            .await?;
    }

    // Page order is the store's stable order, so a replay cuts the same batches.
    let recipients: Vec<Recipient> = page
        .items
        .iter()
        .filter(|c| ours.contains(&c.contact_id))
        .filter_map(|c| {
            Some(Recipient {
                contact_id: c.contact_id.clone(),
                email: c.email.clone()?,
                contact_name: c.contact_name.clone(),
                account_number: c.account_number.clone(),
                account_name: c.account_name.clone(),
                division_id: c.division_id.clone(),
                division_name: division_names
                    .get(&c.division_id)
                    .cloned()
                    .unwrap_or_default(),
                portal_key: c
                    .portal_key
                    .as_ref()
                    .map(|k| k.as_str().to_owned())
                    .unwrap_or_default(),
                fresh: fresh.contains(&c.contact_id),
            })
        })
        .collect();
    let batches: Vec<SendBatch> = cut_batches(recipients)
        .into_iter()
        .map(|recipients| SendBatch {
            campaign_id: campaign_id.clone(),
            recipients,
        })
        .collect();
    let done = page.next_cursor.is_none();
    tracing::debug!(targeted, batches = batches.len(), done, "fan-out page");
    Ok(FanOutStep {
        batches,
        next_cursor: page.next_cursor,
        done,
    })
}

/// The key a page's skips are counted under: 128 bits of SHA-256 of its cursor, in hex
/// (a cursor may be longer than a store key allows).
fn page_key(cursor: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("page1|{}", cursor.unwrap_or("")).as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Cuts a page's recipients, in order, into batches of at most [`MAX_BATCH`] recipients and
/// [`MAX_BATCH_BYTES`] bytes. The cut depends only on the recipients, so a replayed page
/// cuts the same batches (and their leases match).
fn cut_batches(recipients: Vec<Recipient>) -> Vec<Vec<Recipient>> {
    let mut out: Vec<Vec<Recipient>> = Vec::new();
    let mut current: Vec<Recipient> = Vec::new();
    let mut bytes = 0usize;
    for r in recipients {
        // Sizes without the `fresh` flag, which a replay may not set.
        let size = serde_json::to_vec(&Recipient {
            fresh: false,
            ..r.clone()
        })
        .map_or(1024, |v| v.len() + 1);
        if !current.is_empty() && (current.len() == MAX_BATCH || bytes + size > MAX_BATCH_BYTES) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(r);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Cursor of a selection page: the position of its first id.
fn encode_selection_cursor(offset: u32) -> String {
    crate::ports::cursor::encode("sel1", &offset.to_string())
}

fn decode_selection_cursor(raw: &str) -> Result<u32, StoreError> {
    crate::ports::cursor::decode("sel1", raw)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::InvalidCursor("not a selection cursor".into()))
}

/// One page of a hand-picked campaign: the picked contacts from the cursor's position that
/// still exist, in the order picked.
async fn selection_page(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    picked: HandPicked,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page<ContactRecord>, SendError> {
    let store = &*deps.store;
    let offset = cursor
        .map(decode_selection_cursor)
        .transpose()?
        .unwrap_or(0);
    let ids = store
        .selection_ids(tenant, campaign_id, offset, limit)
        .await?;
    let mut found: HashMap<ContactId, ContactRecord> = store
        .get_contacts(tenant, &ids)
        .await?
        .into_iter()
        .map(|c| (c.contact_id.clone(), c))
        .collect();
    let items = ids.iter().filter_map(|id| found.remove(id)).collect();
    // A short read is the end, whatever the count says (it cannot loop on a bad count).
    let read = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    let next = offset.saturating_add(read);
    let next_cursor =
        (read == limit && next < picked.contacts).then(|| encode_selection_cursor(next));
    Ok(Page { items, next_cursor })
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
        division_id: Some(contact.division_id.clone()),
        invitation: Invitation {
            campaign_id: campaign_id.clone(),
            contact_id: contact.contact_id.clone(),
            email,
            contact_name: contact.contact_name.clone(),
            account_number: contact.account_number.clone(),
            registration_token_hash: hash_token(&token),
            expires_at: now + deps.config.token_ttl,
            state: InvitationState::new(),
            created_at: now,
        },
    })
}
