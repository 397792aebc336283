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
use crate::ports::{CampaignStore, FactResult, StoreError, MAX_CLAIMS};
use crate::ses_events::{IgnoreReason, SesEvent};

/// One fact about one invitation, with the invitation's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressedFact {
    pub tenant: TenantId,
    pub campaign: CampaignId,
    pub contact: ContactId,
    pub fact: InvitationFact,
}

impl AddressedFact {
    /// The invitation an SES event is about and what it says, or why it says nothing.
    pub fn from_ses(event: &SesEvent) -> Result<Self, IgnoreReason> {
        let (target, fact) = event.route()?;
        Ok(Self {
            tenant: target.tenant.clone(),
            campaign: target.campaign.clone(),
            contact: target.contact.clone(),
            fact,
        })
    }
}

/// What applying a run of facts did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Facts that changed an invitation (one write each, counters included).
    pub changed: u64,
    /// Duplicates, and facts outranked by what was known: nothing written.
    pub unchanged: u64,
    /// Facts about an invitation the store does not have (another tenant's, a deleted
    /// campaign, forged tags): nothing written.
    pub missing: u64,
}

impl ApplyReport {
    fn add(&mut self, r: &FactResult) {
        match r {
            FactResult::Changed(_) => self.changed += 1,
            FactResult::Unchanged => self.unchanged += 1,
            FactResult::Missing => self.missing += 1,
        }
    }

    pub fn merge(&mut self, other: ApplyReport) {
        self.changed += other.changed;
        self.unchanged += other.unchanged;
        self.missing += other.missing;
    }
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
