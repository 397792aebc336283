//! Delivery: one batch of a campaign's invitations rendered and sent.
//!
//! For each invitation of the batch that is still `in_process` (a `sent` or `failed` one is
//! skipped, so a duplicated batch sends nothing twice):
//!
//! 1. the contact and its division are read; the template is the campaign's;
//! 2. the merge values are filled: `[PortalLink]` from the derived registration token (see
//!    [`super`]), `[UnsubscribeLink]` and `List-Unsubscribe` from a token signed by the
//!    [`UnsubscribeSigner`](crate::domain::unsubscribe::UnsubscribeSigner) whose invitation
//!    id is `{campaign_id}:{contact_id}`; `[PortalKey]` is empty (accounts have no portal
//!    keys yet); the sender is the campaign's `email_from`, shown with the division's name;
//! 3. the message is rendered once ([`OutgoingEmail::to_raw`]) with the tags `tenant`,
//!    `campaign` and `invitation`, the send rate is respected ([`super::RateLimiter`]), and
//!    [`Mailer::send_raw`](crate::ports::Mailer::send_raw) is called;
//! 4. the outcome is written: `sent`, or `failed` with a reason.
//!
//! | mailer answer | what happens |
//! |---|---|
//! | accepted | `sent` (the write retried in place on a store error) |
//! | `Throttled` | back-off and retry; still throttled after `max_attempts` → [`SendError::Throttled`], the invitation stays `in_process` for the re-run |
//! | `Transient`, `Backend` | back-off and retry; after `max_attempts` → `failed` |
//! | `Rejected` | `failed` with the reason at once |
//!
//! An address suppressed since the claim, or a contact deleted since, ends `failed` with that
//! reason without a send; those do not count towards the pause threshold. After a batch with
//! new delivery failures the campaign's failed invitations are counted; more than
//! [`SendConfig::failure_threshold`](super::SendConfig::failure_threshold) pauses the campaign
//! with the reason (through [`CampaignStatus::next`]). Counting pages through the
//! campaign's invitations: fine while failures are rare, a counter in the store later.

use std::collections::HashMap;

use crate::domain::{
    CampaignEvent, CampaignId, CampaignStatus, ContactId, Division, DivisionId, InvitationCategory,
    MergeValues, TemplateId, TenantId,
};
use crate::mail::OutgoingEmail;
use crate::ports::{MailError, RawEmail};

use super::{backoff, SendDeps, SendError};

/// Reason of an invitation whose address was suppressed between its claim and its send.
pub const REASON_SUPPRESSED: &str = "the address was suppressed before sending";
/// Reason of an invitation whose contact was deleted between its claim and its send.
pub const REASON_CONTACT_DELETED: &str = "the contact was deleted before sending";

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u64,
    /// Invitations that ended `failed` in this batch.
    pub failed: u64,
    /// Invitations already `sent`/`failed`, or unknown: nothing done.
    pub skipped: u64,
    /// The campaign is paused (by this batch or before it): nothing more should be sent.
    pub paused: bool,
}

/// Delivers the invitations of `contact_ids` in the campaign (see the module docs).
#[tracing::instrument(skip_all, fields(tenant = %tenant, campaign = %campaign_id, n = contact_ids.len()))]
pub async fn deliver_batch(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    contact_ids: &[ContactId],
) -> Result<DeliveryReport, SendError> {
    let store = &*deps.store;
    let mut report = DeliveryReport::default();
    let campaign = store
        .get_campaign(tenant, campaign_id)
        .await?
        .ok_or_else(|| SendError::CampaignNotFound(campaign_id.clone()))?;
    if matches!(
        campaign.status,
        CampaignStatus::Paused | CampaignStatus::Failed
    ) {
        report.paused = true;
        return Ok(report);
    }
    let template = match TemplateId::parse(campaign.template_id.clone()) {
        Ok(id) => store.get_template(tenant, &id).await?,
        Err(_) => None,
    };
    let mut divisions: HashMap<DivisionId, Option<Division>> = HashMap::new();
    let mut delivery_failures = 0u64;

    for contact_id in contact_ids {
        let Some(invitation) = store
            .get_invitation(tenant, campaign_id, contact_id)
            .await?
        else {
            report.skipped += 1;
            continue;
        };
        if invitation.category != InvitationCategory::InProcess {
            report.skipped += 1;
            continue;
        }
        let fail = |reason: String| InvitationCategory::Failed { reason };
        let Some(template) = &template else {
            let reason = format!("template {} no longer exists", campaign.template_id);
            record(deps, tenant, campaign_id, contact_id, &fail(reason)).await?;
            report.failed += 1;
            delivery_failures += 1;
            continue;
        };
        if store.is_suppressed(tenant, &invitation.email).await? {
            let reason = REASON_SUPPRESSED.to_owned();
            record(deps, tenant, campaign_id, contact_id, &fail(reason)).await?;
            report.failed += 1;
            continue;
        }
        let Some(contact) = store.get_contact(tenant, contact_id).await? else {
            let reason = REASON_CONTACT_DELETED.to_owned();
            record(deps, tenant, campaign_id, contact_id, &fail(reason)).await?;
            report.failed += 1;
            continue;
        };
        if !divisions.contains_key(&contact.division_id) {
            let d = store.get_division(tenant, &contact.division_id).await?;
            divisions.insert(contact.division_id.clone(), d);
        }
        let division = divisions.get(&contact.division_id).and_then(Option::as_ref);

        let now = deps.clock.now();
        let token = deps.tokens.token(tenant, campaign_id, contact_id);
        let invitation_id = format!("{campaign_id}:{contact_id}");
        let unsubscribe_token =
            deps.unsubscribe
                .sign(tenant, &invitation.email, &invitation_id, now);
        let unsubscribe_url = MergeValues::unsubscribe_url(&deps.public_url, &unsubscribe_token);
        let values = MergeValues {
            contact_name: contact.contact_name.clone(),
            account_number: contact.account_number.clone(),
            account_name: contact.account_name.clone(),
            division_name: division.map(|d| d.name.clone()).unwrap_or_default(),
            portal_link: MergeValues::registration_url(&deps.public_url, &token),
            portal_key: String::new(),
            unsubscribe_link: unsubscribe_url.clone(),
        };
        let rendered = template.render(&values);
        let email = OutgoingEmail {
            from: campaign.email_from.clone(),
            from_name: division.map(|d| d.name.clone()),
            to: invitation.email.clone(),
            subject: rendered.subject,
            html: rendered.html,
            text: rendered.text,
            list_unsubscribe_url: unsubscribe_url,
            tags: vec![
                ("tenant".into(), tenant.to_string()),
                ("campaign".into(), campaign_id.to_string()),
                ("invitation".into(), contact_id.to_string()),
            ],
            message_id_domain: None,
        };
        let outcome = match email.to_raw() {
            Ok(raw) => send_with_retries(deps, &raw).await,
            Err(e) => Err(MailError::Rejected {
                reason: format!("the message could not be rendered: {e}"),
            }),
        };
        match outcome {
            Ok(()) => {
                record(
                    deps,
                    tenant,
                    campaign_id,
                    contact_id,
                    &InvitationCategory::Sent,
                )
                .await?;
                report.sent += 1;
            }
            Err(MailError::Throttled { detail }) => return Err(SendError::Throttled(detail)),
            Err(e) => {
                tracing::warn!(contact = %contact_id, error = %e, "invitation failed");
                record(deps, tenant, campaign_id, contact_id, &fail(e.to_string())).await?;
                report.failed += 1;
                delivery_failures += 1;
            }
        }
    }

    if delivery_failures > 0 {
        report.paused = pause_if_over_threshold(deps, tenant, campaign_id).await?;
    }
    Ok(report)
}

/// Sends with back-off on retryable failures; `Backend` is retried too, a bounded number of
/// times. The last error is returned when the attempts run out.
async fn send_with_retries(deps: &SendDeps, raw: &RawEmail) -> Result<(), MailError> {
    let attempts = deps.config.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        let wait = deps.limiter.reserve(deps.clock.now());
        if !wait.is_zero() {
            deps.sleeper.sleep(wait).await;
        }
        match deps.mailer.send_raw(raw).await {
            Ok(_) => return Ok(()),
            Err(e @ MailError::Rejected { .. }) => return Err(e),
            Err(e) => {
                attempt += 1;
                if attempt >= attempts {
                    return Err(e);
                }
                tracing::debug!(attempt, error = %e, "send retried after back-off");
                deps.sleeper.sleep(backoff(&deps.config, attempt - 1)).await;
            }
        }
    }
}

/// Writes an invitation's outcome, retrying a failing store in place (the email may already
/// be out: giving up here is what re-sends it on the next run).
async fn record(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    contact_id: &ContactId,
    category: &InvitationCategory,
) -> Result<(), SendError> {
    let attempts = deps.config.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        match deps
            .store
            .set_invitation_category(tenant, campaign_id, contact_id, category)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => {
                attempt += 1;
                if attempt >= attempts {
                    return Err(e.into());
                }
                deps.sleeper.sleep(backoff(&deps.config, attempt - 1)).await;
            }
        }
    }
}

/// Counts the campaign's failed invitations; over the threshold, pauses it with the reason.
/// `true` when the campaign is paused afterwards.
async fn pause_if_over_threshold(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
) -> Result<bool, SendError> {
    let mut failed = 0u64;
    let mut cursor: Option<String> = None;
    loop {
        let page = deps
            .store
            .list_invitations(tenant, campaign_id, cursor.as_deref(), 500)
            .await?;
        failed += page
            .items
            .iter()
            .filter(|i| {
                matches!(&i.category, InvitationCategory::Failed { reason }
                    if reason != REASON_SUPPRESSED && reason != REASON_CONTACT_DELETED)
            })
            .count() as u64;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if failed <= deps.config.failure_threshold {
        return Ok(false);
    }
    let Some(campaign) = deps.store.get_campaign(tenant, campaign_id).await? else {
        return Err(SendError::CampaignNotFound(campaign_id.clone()));
    };
    let Ok(paused) = campaign.status.next(CampaignEvent::Pause) else {
        return Ok(campaign.status == CampaignStatus::Paused);
    };
    let reason = format!(
        "{failed} invitations failed, more than the threshold of {}",
        deps.config.failure_threshold
    );
    tracing::warn!(%reason, "campaign paused");
    let moved = deps
        .store
        .update_campaign_status(tenant, campaign_id, campaign.status, paused, Some(reason))
        .await?;
    Ok(moved || campaign.status == CampaignStatus::Paused)
}
