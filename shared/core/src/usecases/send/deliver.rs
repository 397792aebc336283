//! Delivery: one batch of a campaign's invitations rendered and sent.
//!
//! The batch carries each recipient's merge values (read by the fan-out), so delivery reads
//! only the campaign, its template, the batch's invitations and the suppressions among their
//! addresses — four store requests per batch, whatever its size. Then, for each invitation
//! still `in_process` (a `sent` or `failed` one is skipped, so a duplicated batch sends
//! nothing twice):
//!
//! 1. the merge values are filled: `[PortalLink]` from the derived registration token (see
//!    [`super`]), `[UnsubscribeLink]` and `List-Unsubscribe` from a token signed by the
//!    [`UnsubscribeSigner`](crate::domain::unsubscribe::UnsubscribeSigner) whose invitation
//!    id is `{campaign_id}:{contact_id}`; `[PortalKey]` is empty (accounts have no portal
//!    keys yet); the sender is the campaign's `email_from`, shown with the division's name;
//! 2. the message is rendered once ([`OutgoingEmail::to_raw`]) with the tags `tenant`,
//!    `campaign` and `invitation`, the send rate is respected ([`super::RateLimiter`]), and
//!    [`Mailer::send_raw`](crate::ports::Mailer::send_raw) is called;
//! 3. the outcome — `sent`, or `failed` with a reason — joins the batch's pending outcomes,
//!    written with the campaign's counters by
//!    [`CampaignStore::record_outcomes`](crate::ports::CampaignStore::record_outcomes) every
//!    [`SendConfig::outcome_flush`](super::SendConfig::outcome_flush) sends and at the end.
//!
//! | mailer answer | what happens |
//! |---|---|
//! | accepted | `sent` |
//! | `Throttled` | back-off and retry; still throttled after `max_attempts` → pending outcomes written, then [`SendError::Throttled`]: the invitation stays `in_process` for the re-run |
//! | `Transient`, `Backend` | back-off and retry; after `max_attempts` → `failed` |
//! | `Rejected` | `failed` with the reason at once |
//!
//! An address suppressed since the claim ends `failed` with [`REASON_SUPPRESSED`] and no
//! send. After a batch with failures, more than
//! [`SendConfig::failure_threshold`](super::SendConfig::failure_threshold) failed invitations
//! in the campaign (its counter, no scan) pause it with the reason (through
//! [`CampaignStatus::next`]).

use std::collections::{HashMap, HashSet};

use futures::StreamExt as _;

use crate::domain::{
    Campaign, CampaignEvent, CampaignId, CampaignStatus, ContactId, Invitation, InvitationFact,
    MergeValues, SendState, Template, TemplateId, TemplateKind, TenantId,
};
use crate::mail::tags::{encode_tag_value, TAG_CAMPAIGN, TAG_INVITATION, TAG_TENANT};
use crate::mail::OutgoingEmail;
use crate::ports::{MailError, RawEmail, Recipient};

use super::{backoff, SendDeps, SendError};

/// Reason of an invitation whose address was suppressed between its claim and its send.
pub const REASON_SUPPRESSED: &str = "the address was suppressed before sending";

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

/// Delivers the batch's invitations (see the module docs).
#[tracing::instrument(skip_all, fields(tenant = %tenant, campaign = %campaign_id, n = recipients.len()))]
pub async fn deliver_batch(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    recipients: &[Recipient],
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
    let ids: Vec<ContactId> = recipients.iter().map(|r| r.contact_id.clone()).collect();
    let invitations: HashMap<ContactId, _> = store
        .get_invitations(tenant, campaign_id, &ids)
        .await?
        .into_iter()
        .map(|i| (i.contact_id.clone(), i))
        .collect();
    let live: Vec<&Recipient> = recipients
        .iter()
        .filter(|r| {
            invitations
                .get(&r.contact_id)
                .is_some_and(|i| i.state.send == SendState::Pending)
        })
        .collect();
    report.skipped = (recipients.len() - live.len()) as u64;
    let emails: Vec<_> = live
        .iter()
        .filter_map(|r| invitations.get(&r.contact_id).map(|i| i.email.clone()))
        .collect();
    let suppressed = store.suppressed_among(tenant, &emails).await?;

    let flush_every = deps.config.outcome_flush.max(1);
    let concurrency = deps.config.send_concurrency.max(1);
    let template = template.as_ref();
    let campaign = &campaign;
    let suppressed = &suppressed;
    let invitations = &invitations;
    // Each recipient's outcome, sends running `send_concurrency` at a time, in batch order.
    let sends: Vec<_> = live
        .into_iter()
        .map(|r| deliver_entry(deps, tenant, campaign, template, suppressed, invitations, r))
        .collect();
    let mut results = futures::stream::iter(sends).buffered(concurrency);
    let mut outcomes: Vec<(ContactId, InvitationFact)> = Vec::new();
    while let Some((contact_id, outcome)) = results.next().await {
        match outcome {
            Outcome::Sent => {
                outcomes.push((contact_id, InvitationFact::Sent));
                report.sent += 1;
            }
            Outcome::Failed(reason) => {
                outcomes.push((contact_id, InvitationFact::SendFailed { reason }));
                report.failed += 1;
            }
            Outcome::Throttled(detail) => {
                drop(results);
                record(deps, tenant, campaign_id, &mut outcomes).await?;
                return Err(SendError::Throttled(detail));
            }
        }
        if outcomes.len() >= flush_every {
            record(deps, tenant, campaign_id, &mut outcomes).await?;
        }
    }
    record(deps, tenant, campaign_id, &mut outcomes).await?;

    if report.failed > 0 {
        report.paused = pause_if_over_threshold(deps, tenant, campaign_id).await?;
    }
    Ok(report)
}

/// What became of one recipient.
enum Outcome {
    Sent,
    /// Failed, with the reason.
    Failed(String),
    /// Still throttled after the attempts: stop the batch, leave it in process.
    Throttled(String),
}

/// [`deliver_one`] for a recipient of the batch, with its contact id.
async fn deliver_entry(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign: &Campaign,
    template: Option<&Template>,
    suppressed: &HashSet<String>,
    invitations: &HashMap<ContactId, Invitation>,
    recipient: &Recipient,
) -> (ContactId, Outcome) {
    let contact_id = recipient.contact_id.clone();
    let outcome = match invitations.get(&contact_id) {
        Some(invitation) => {
            deliver_one(
                deps, tenant, campaign, template, suppressed, recipient, invitation,
            )
            .await
        }
        None => Outcome::Failed("the invitation vanished".into()),
    };
    (contact_id, outcome)
}

/// Renders and sends one invitation (see the module docs).
async fn deliver_one(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign: &Campaign,
    template: Option<&Template>,
    suppressed: &HashSet<String>,
    recipient: &Recipient,
    invitation: &Invitation,
) -> Outcome {
    let campaign_id = &campaign.campaign_id;
    let contact_id = &recipient.contact_id;
    let Some(template) = template else {
        return Outcome::Failed(format!(
            "template {} no longer exists",
            campaign.template_id
        ));
    };
    if suppressed.contains(&invitation.email.normalized()) {
        return Outcome::Failed(REASON_SUPPRESSED.to_owned());
    }
    let now = deps.clock.now();
    let token = deps.tokens.token(tenant, campaign_id, contact_id);
    let invitation_id = format!("{campaign_id}:{contact_id}");
    let unsubscribe_token = deps
        .unsubscribe
        .sign(tenant, &invitation.email, &invitation_id, now);
    let unsubscribe_url = MergeValues::unsubscribe_url(&deps.public_url, &unsubscribe_token);
    let division_name =
        (!recipient.division_name.is_empty()).then(|| recipient.division_name.clone());
    let values = MergeValues {
        contact_name: recipient.contact_name.clone(),
        account_number: recipient.account_number.clone(),
        account_name: recipient.account_name.clone(),
        division_name: recipient.division_name.clone(),
        portal_link: match template.kind() {
            TemplateKind::Invitation => MergeValues::registration_url(&deps.public_url, &token),
            TemplateKind::PortalKey => MergeValues::portal_key_url(
                &deps.public_url,
                tenant.as_str(),
                &recipient.account_number,
            ),
        },
        portal_key: recipient.portal_key.clone(),
        unsubscribe_link: unsubscribe_url.clone(),
    };
    let rendered = template.render(&values);
    let email = OutgoingEmail {
        from: campaign.email_from.clone(),
        from_name: division_name,
        to: invitation.email.clone(),
        subject: rendered.subject,
        html: rendered.html,
        text: rendered.text,
        list_unsubscribe_url: unsubscribe_url,
        tags: vec![
            // Read back from SES's events (`ses_events`), encoded to SES's tag alphabet.
            (TAG_TENANT.into(), encode_tag_value(tenant.as_str())),
            (TAG_CAMPAIGN.into(), encode_tag_value(campaign_id.as_str())),
            (TAG_INVITATION.into(), encode_tag_value(contact_id.as_str())),
        ],
        message_id_domain: None,
    };
    // One Message-ID per invitation, whatever the attempt (see `message_local_id`).
    let outcome = match email.to_raw_with_id(&message_local_id(tenant, campaign_id, contact_id)) {
        Ok(raw) => send_with_retries(deps, &raw).await,
        Err(e) => Err(MailError::Rejected {
            reason: format!("the message could not be rendered: {e}"),
        }),
    };
    match outcome {
        Ok(()) => Outcome::Sent,
        Err(e @ MailError::Throttled(_)) => Outcome::Throttled(crate::error_chain(&e)),
        Err(e) => {
            let reason = crate::error_chain(&e);
            tracing::warn!(contact = %contact_id, error = %reason, "invitation failed");
            Outcome::Failed(reason)
        }
    }
}

/// The left part of an invitation's `Message-ID`: 128 bits of SHA-256 over its tenant,
/// campaign and contact, in hex. A re-send after a crash carries the same id, which the local
/// outbox writes once and mail clients can recognise.
pub fn message_local_id(tenant: &TenantId, campaign: &CampaignId, contact: &ContactId) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("msg1|{tenant}|{campaign}|{contact}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
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

/// Writes the pending outcomes (and empties them), retrying a failing store in place: the
/// emails are already out, and giving up here is what re-sends them on the next run.
async fn record(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    outcomes: &mut Vec<(ContactId, InvitationFact)>,
) -> Result<(), SendError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let attempts = deps.config.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        match deps
            .store
            .record_send_outcomes(tenant, campaign_id, outcomes)
            .await
        {
            Ok(_) => {
                outcomes.clear();
                return Ok(());
            }
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

/// Over the threshold of failed invitations (the campaign's counter), pauses the campaign
/// with the reason. `true` when the campaign is paused afterwards.
async fn pause_if_over_threshold(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
) -> Result<bool, SendError> {
    let Some(campaign) = deps.store.get_campaign(tenant, campaign_id).await? else {
        return Err(SendError::CampaignNotFound(campaign_id.clone()));
    };
    let failed = campaign.sends.failed;
    if failed <= deps.config.failure_threshold {
        return Ok(campaign.status == CampaignStatus::Paused);
    }
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
