//! The event core: what was learnt about invitations (SES events, however they arrived)
//! applied to the store.
//!
//! Every path ends here — the SNS webhook, SES's EventBridge destination, the local
//! `simulate-events` command and the benchmark — so the category rules
//! ([`crate::domain::InvitationState::apply`]) and the counters' guarantee (moved in the
//! same write as each invitation) hold whatever delivered the event. Facts are grouped by
//! campaign and written [`MAX_CLAIMS`] at a time; within a campaign they keep their order,
//! though the outcome does not depend on it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{CampaignId, ContactId, InvitationFact, TenantId};
pub use crate::ports::ApplyReport;
use crate::ports::{CampaignStore, StoreError, MAX_CLAIMS};

/// One fact about one invitation, with the invitation's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressedFact {
    pub tenant: TenantId,
    pub campaign: CampaignId,
    pub contact: ContactId,
    pub fact: InvitationFact,
}

/// Applies `facts`, grouped by tenant and campaign, [`MAX_CLAIMS`] per store call. A store
/// failure stops at once: the facts already applied stay (applying them again changes
/// nothing), so the caller retries the whole run.
pub async fn apply(
    store: &dyn CampaignStore,
    facts: impl IntoIterator<Item = AddressedFact>,
) -> Result<ApplyReport, StoreError> {
    let mut groups: BTreeMap<(TenantId, CampaignId), Vec<(ContactId, InvitationFact)>> =
        BTreeMap::new();
    for f in facts {
        groups
            .entry((f.tenant, f.campaign))
            .or_default()
            .push((f.contact, f.fact));
    }
    let mut report = ApplyReport::default();
    for ((tenant, campaign), facts) in groups {
        for chunk in facts.chunks(MAX_CLAIMS) {
            for r in store.apply_facts(&tenant, &campaign, chunk).await? {
                report.add(&r);
            }
        }
    }
    tracing::debug!(?report, "facts applied");
    Ok(report)
}

/// What to recount: `{"tenant", "campaign_id", "fix"}` (`fix` writes the recounted values).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecountRequest {
    pub tenant: TenantId,
    pub campaign_id: CampaignId,
    #[serde(default)]
    pub fix: bool,
}

/// A recount as the function answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecountReport {
    pub stored: CounterSnapshot,
    pub counted: CounterSnapshot,
    pub drifted: bool,
    pub fixed: bool,
}

/// A campaign's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    pub categories: crate::domain::CategoryCounts,
    pub sends: crate::domain::SendCounts,
}

/// Recounts a campaign (see [`CampaignStore::recount_campaign`]); `None` when it does not
/// exist.
pub async fn recount(
    store: &dyn CampaignStore,
    req: &RecountRequest,
) -> Result<Option<RecountReport>, StoreError> {
    let Some(r) = store
        .recount_campaign(&req.tenant, &req.campaign_id, req.fix)
        .await?
    else {
        return Ok(None);
    };
    if r.drifted() {
        tracing::warn!(tenant = %req.tenant, campaign = %req.campaign_id, fixed = r.fixed, stored = ?r.stored, counted = ?r.counted, "campaign counters drifted");
    }
    Ok(Some(RecountReport {
        stored: CounterSnapshot {
            categories: r.stored.0,
            sends: r.stored.1,
        },
        counted: CounterSnapshot {
            categories: r.counted.0,
            sends: r.counted.1,
        },
        drifted: r.drifted(),
        fixed: r.fixed,
    }))
}
