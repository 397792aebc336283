//! Delivery: one batch of a campaign's invitations rendered and sent, under a lease.
//!
//! The batch carries everything its emails need from the contacts (read by the fan-out,
//! which also decided suppression at claim time) and, in its [`SendSpec`], the campaign's
//! template and sender, so delivery reads neither the campaign nor its template, and the
//! batch's invitations only when it cannot know them: recipients a replayed fan-out page
//! sent again (not `fresh`), or every one when the batch was leased before.
//!
//! # The lease, and what a crash can re-send
//!
//! 1. **Lease** ([`CampaignStore::lease_batch`](crate::ports::CampaignStore::lease_batch)): one
//!    conditional write keyed by [`batch_key`]. Two copies of the batch handled at once (the
//!    bus delivers at least once) cannot both send: the second finds it busy and leaves it. A
//!    batch delivered to its end is `Done`; a holder that died leaves it after
//!    [`SendConfig::lease_ttl`](super::SendConfig::lease_ttl).
//! 2. **Attempting mark**: before a group of at most
//!    [`SendConfig::outcome_flush`](super::SendConfig::outcome_flush) emails (≤
//!    [`MAX_ATTEMPT`]) goes out, its contacts are recorded on the lease — in the outcome write
//!    of the group before it, so the mark costs no request of its own after the first. Each
//!    email's `Message-ID` is derived from its invitation ([`message_local_id`]).
//! 3. **Outcomes** (`sent`, or `failed` with a reason) of a group are written with the
//!    campaign's counters and the next group's mark (or `Done`) in one write
//!    ([`CampaignStore::record_batch_outcomes`](crate::ports::CampaignStore::record_batch_outcomes)).
//!
//! A delivery that finds the batch leased before (its holder died) reads the batch's
//! invitations: `sent`/`failed` ones are skipped. An invitation of the recorded group still
//! `pending` may have been accepted by the mail service just before the crash: SES's Send
//! event marks it `sent` when it was, so it is re-sent only once
//! [`SendConfig::ack_grace`](super::SendConfig::ack_grace) has passed since the group
//! started; before that the delivery stops with [`SendError::Unacknowledged`] (released, to be
//! retried). The local outbox writes each `Message-ID` once, so there a re-send never lands
//! twice.
//!
//! # Each email
//!
//! 1. the merge values are filled: `[PortalLink]` from the derived registration token (see
//!    [`super`]), `[UnsubscribeLink]` and `List-Unsubscribe` from a token signed by the
//!    [`UnsubscribeSigner`](crate::domain::unsubscribe::UnsubscribeSigner) whose invitation
//!    id is `{campaign_id}:{contact_id}`; the sender is the campaign's `email_from`, shown
//!    with the division's name;
//! 2. the message is rendered once ([`OutgoingEmail::to_raw`]) with the tags `tenant`,
//!    `campaign` and `invitation`, the send rate is respected ([`super::RateLimiter`]), and
//!    [`Mailer::send_raw`](crate::ports::Mailer::send_raw) is called.
//!
//! | mailer answer | what happens |
//! |---|---|
//! | accepted | `sent` |
//! | `Throttled` | back-off and retry; still throttled after `max_attempts` → the group's outcomes written, the lease released, then [`SendError::Throttled`]: the invitation stays `in_process` for the re-run |
//! | `Transient`, `Backend` | back-off and retry; after `max_attempts` → `failed` |
//! | `Rejected` | `failed` with the reason at once |
//!
//! After a batch with failures, more than
//! [`SendConfig::failure_threshold`](super::SendConfig::failure_threshold) failed invitations
//! in the campaign (its counter, no scan) pause it with the reason (through
//! [`CampaignStatus::next`]).
//!
//! Store requests per batch of n: the lease (which also marks the first group of a first
//! delivery, and refuses a paused campaign) and ⌈n / group⌉ outcome writes; a resumed or
//! replayed batch also reads its invitations and marks its first group on its own. A batch
//! that carries no [`SendSpec`] (its template too large to carry, or published by an
//! individual invite) also reads the campaign and its template.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use futures::StreamExt as _;

use crate::domain::{
    display_name_for, CampaignEvent, CampaignId, CampaignStatus, ContactId, DisplayName, Email,
    Invitation, InvitationFact, MergeValues, SendState, Template, TemplateId, TemplateKind,
    TenantId,
};
use crate::mail::tags::{encode_tag_value, TAG_CAMPAIGN, TAG_INVITATION, TAG_TENANT};
use crate::mail::OutgoingEmail;
use crate::ports::{Attempt, LeaseOutcome, LeaseStep, MAX_ATTEMPT};
use crate::ports::{MailError, RawEmail, Recipient, SendSpec};

use super::{backoff, SendDeps, SendError};

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: u64,
    /// Invitations that ended `failed` in this batch.
    pub failed: u64,
    /// Invitations already `sent`/`failed`, or unknown: nothing done.
    pub skipped: u64,
    /// Another delivery holds the batch's lease (or took it over): this one sent nothing
    /// more.
    pub busy: bool,
    /// The campaign is paused (by this batch or before it): nothing more should be sent.
    pub paused: bool,
    /// From the batch's last write: whether it left the campaign with nothing pending
    /// (`None`: unknown; read the campaign to know).
    pub drained: Option<bool>,
}

/// The key of a delivery batch: 128 bits of SHA-256 over its contact ids in order, in hex.
/// A replayed fan-out page cuts the same batches, so a batch has the same key on every copy.
pub fn batch_key(recipients: &[Recipient]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for r in recipients {
        h.update(r.contact_id.as_str().as_bytes());
        h.update([0u8]);
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A lease owner's name: random, so two copies of one batch never share one.
fn lease_owner() -> String {
    use rand::Rng as _;
    let bytes: [u8; 12] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Delivers the batch's invitations (see the module docs).
#[tracing::instrument(skip_all, fields(tenant = %tenant, campaign = %campaign_id, n = recipients.len()))]
pub async fn deliver_batch(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    recipients: &[Recipient],
    spec: Option<&SendSpec>,
) -> Result<DeliveryReport, SendError> {
    let store = &*deps.store;
    if deps.unsubscribe.is_none() {
        return Err(SendError::NoUnsubscribeKey);
    }
    let mut report = DeliveryReport::default();
    // Without a spec, the campaign's sender and template are read (a paused campaign
    // stops here); with one, the lease refuses a paused campaign.
    let read = match spec {
        Some(_) => None,
        None => {
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
            Some(campaign)
        }
    };
    let group_size = deps.config.outcome_flush.clamp(1, MAX_ATTEMPT);
    let key = batch_key(recipients);
    let owner = lease_owner();
    let now = deps.clock.now();
    // The first group as a first delivery of fresh claims sends it, marked in the lease's
    // own write (a resumed or replayed batch marks its real first group before sending).
    let planned: Vec<&Recipient> = recipients.iter().take(group_size).collect();
    let planned = attempt_of(deps, &planned);
    let lease = store
        .lease_batch(
            tenant,
            campaign_id,
            &key,
            &owner,
            now,
            now + deps.config.lease_ttl,
            Some(&planned),
        )
        .await?;
    let (resumed, attempt) = match lease {
        LeaseOutcome::Done => {
            report.skipped = recipients.len() as u64;
            return Ok(report);
        }
        LeaseOutcome::Busy { until } => {
            tracing::info!(batch = %key, %until, "batch leased by another delivery; left to it");
            report.skipped = recipients.len() as u64;
            report.busy = true;
            return Ok(report);
        }
        LeaseOutcome::Stopped => {
            report.skipped = recipients.len() as u64;
            report.paused = true;
            return Ok(report);
        }
        LeaseOutcome::Acquired { resumed, attempt } => (resumed, attempt),
    };
    let mail = match (spec, read) {
        (Some(spec), _) => Mail {
            email_from: spec.email_from.clone(),
            display_name: spec.display_name.clone(),
            template: Ok(Cow::Borrowed(&spec.template)),
        },
        (None, Some(campaign)) => Mail {
            template: match TemplateId::parse(campaign.template_id.clone()) {
                Ok(id) => store.get_template(tenant, &id).await?,
                Err(_) => None,
            }
            .map(Cow::Owned)
            .ok_or(campaign.template_id),
            email_from: campaign.email_from,
            display_name: campaign.display_name,
        },
        (None, None) => return Err(SendError::CampaignNotFound(campaign_id.clone())),
    };
    // Fresh claims of a batch never leased before are `pending` for sure: read the rest.
    let unknown: Vec<ContactId> = recipients
        .iter()
        .filter(|r| resumed || !r.fresh)
        .map(|r| r.contact_id.clone())
        .collect();
    let read: HashMap<ContactId, Invitation> = if unknown.is_empty() {
        HashMap::new()
    } else {
        store
            .get_invitations(tenant, campaign_id, &unknown)
            .await?
            .into_iter()
            .map(|i| (i.contact_id.clone(), i))
            .collect()
    };
    let live: Vec<&Recipient> = recipients
        .iter()
        .filter(|r| match read.get(&r.contact_id) {
            Some(i) => i.state.send == SendState::Pending,
            None => !resumed && r.fresh,
        })
        .collect();
    report.skipped = (recipients.len() - live.len()) as u64;

    // Invitations a dead holder was sending: still `pending` means SES's Send event has
    // not marked them sent. Within the grace period that proves nothing yet: stop.
    if let Some(a) = &attempt {
        let open: HashSet<&ContactId> = a.contacts.iter().collect();
        let unsure = live.iter().filter(|r| open.contains(&r.contact_id)).count();
        let retry_after = a.at + deps.config.ack_grace;
        if unsure > 0 && now < retry_after {
            store
                .step_batch(tenant, campaign_id, &key, &owner, &LeaseStep::Release)
                .await?;
            return Err(SendError::Unacknowledged {
                count: unsure,
                retry_after,
            });
        }
        if unsure > 0 {
            tracing::warn!(
                count = unsure,
                "no acknowledgement from the mail service within the grace period; sending again"
            );
        }
    }

    let mail = &mail;
    let groups: Vec<&[&Recipient]> = live.chunks(group_size).collect();
    // Recorded in the lease's write: the whole planned group of a never-leased batch.
    let marked = !resumed
        && groups.first().is_some_and(|g| {
            g.len() == planned.contacts.len()
                && g.iter()
                    .zip(&planned.contacts)
                    .all(|(r, c)| &r.contact_id == c)
        });
    for (g, group) in groups.iter().enumerate() {
        if g == 0 && !marked {
            // The first group's mark (later groups' ride on the outcome write before them).
            let step = attempting(deps, group);
            if !store
                .step_batch(tenant, campaign_id, &key, &owner, &step)
                .await?
            {
                report.busy = true;
                return Ok(report);
            }
        }
        let concurrency = deps.config.send_concurrency.max(1);
        let group_at = deps.clock.now();
        let sends: Vec<_> = group
            .iter()
            .map(|r| deliver_entry(deps, tenant, campaign_id, mail, r))
            .collect();
        let mut results = futures::stream::iter(sends).buffered(concurrency);
        let mut outcomes: Vec<(ContactId, InvitationFact)> = Vec::with_capacity(group.len());
        let mut throttled = None;
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
                    throttled = Some(detail);
                    break;
                }
            }
        }
        drop(results);
        let step = match (&throttled, groups.get(g + 1)) {
            // The throttled email was refused; those sent after it, in flight when the stream
            // was dropped, may have been accepted: they stay marked for the next holder.
            (Some(_), _) => {
                let refused = outcomes.len();
                let end = (refused + concurrency).min(group.len());
                LeaseStep::Attempting {
                    attempt: Attempt {
                        contacts: group[(refused + 1).min(end)..end]
                            .iter()
                            .map(|r| r.contact_id.clone())
                            .collect(),
                        at: group_at,
                    },
                    until: deps.clock.now(),
                }
            }
            (None, Some(next)) => attempting(deps, next),
            (None, None) => LeaseStep::Done,
        };
        let (kept, drained) =
            record(deps, tenant, campaign_id, &outcomes, &key, &owner, &step).await?;
        report.drained = drained;
        if let Some(detail) = throttled {
            return Err(SendError::Throttled(detail));
        }
        if !kept {
            // The lease ran out and another delivery took the batch: it resumes from here.
            tracing::warn!(batch = %key, "lease lost mid-batch; left to its new holder");
            report.busy = true;
            return Ok(report);
        }
    }
    if groups.is_empty() {
        store
            .step_batch(tenant, campaign_id, &key, &owner, &LeaseStep::Done)
            .await?;
    }

    if report.failed > 0 {
        report.paused = pause_if_over_threshold(deps, tenant, campaign_id).await?;
    }
    Ok(report)
}

/// A group about to be sent, now.
fn attempt_of(deps: &SendDeps, group: &[&Recipient]) -> Attempt {
    Attempt {
        contacts: group.iter().map(|r| r.contact_id.clone()).collect(),
        at: deps.clock.now(),
    }
}

/// The mark of a group about to be sent, renewing the lease.
fn attempting(deps: &SendDeps, group: &[&Recipient]) -> LeaseStep {
    LeaseStep::Attempting {
        attempt: attempt_of(deps, group),
        until: deps.clock.now() + deps.config.lease_ttl,
    }
}

/// What became of one recipient.
enum Outcome {
    Sent,
    /// Failed, with the reason.
    Failed(String),
    /// Still throttled after the attempts: stop the batch, leave it in process.
    Throttled(String),
}

/// What every email of the batch shares: the sender, and the template (or, when it is
/// gone, its id).
struct Mail<'a> {
    email_from: Email,
    display_name: Option<DisplayName>,
    template: Result<Cow<'a, Template>, String>,
}

/// [`deliver_one`] for a recipient of the batch, with its contact id.
async fn deliver_entry(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    mail: &Mail<'_>,
    recipient: &Recipient,
) -> (ContactId, Outcome) {
    let outcome = deliver_one(deps, tenant, campaign_id, mail, recipient).await;
    (recipient.contact_id.clone(), outcome)
}

/// Renders and sends one invitation (see the module docs).
async fn deliver_one(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    mail: &Mail<'_>,
    recipient: &Recipient,
) -> Outcome {
    let contact_id = &recipient.contact_id;
    let template = match &mail.template {
        Ok(t) => t.as_ref(),
        Err(id) => return Outcome::Failed(format!("template {id} no longer exists")),
    };
    let now = deps.clock.now();
    let token = deps.tokens.token(tenant, campaign_id, contact_id);
    let invitation_id = format!("{campaign_id}:{contact_id}");
    let Some(signer) = deps.unsubscribe.as_deref() else {
        // deliver_batch refused to start without it.
        return Outcome::Failed("no unsubscribe secret".into());
    };
    let unsubscribe_token = signer.sign(tenant, &recipient.email, &invitation_id, now);
    let unsubscribe_url = MergeValues::unsubscribe_url(&deps.public_url, &unsubscribe_token);
    let from_name = display_name_for(mail.display_name.as_ref(), &recipient.division_name);
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
        from: mail.email_from.clone(),
        from_name,
        to: recipient.email.clone(),
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

/// Writes a group's outcomes with the lease's next step, retrying a failing store in place:
/// the emails are already out, and giving up here is what re-sends them on the next run.
/// Answers whether the step was kept (`false`: the lease was lost; the outcomes are written
/// all the same) and [`BatchWritten::drained`](crate::ports::BatchWritten::drained).
async fn record(
    deps: &SendDeps,
    tenant: &TenantId,
    campaign_id: &CampaignId,
    outcomes: &[(ContactId, InvitationFact)],
    batch: &str,
    owner: &str,
    step: &LeaseStep,
) -> Result<(bool, Option<bool>), SendError> {
    let attempts = deps.config.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        let written = if outcomes.is_empty() {
            deps.store
                .step_batch(tenant, campaign_id, batch, owner, step)
                .await
                .map(|kept| (kept, None))
        } else {
            deps.store
                .record_batch_outcomes(tenant, campaign_id, outcomes, batch, owner, step)
                .await
                .map(|w| (w.kept, w.drained))
        };
        match written {
            Ok(answer) => return Ok(answer),
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
