//! `portal-invites simulate-events`: on one machine there is no SES, so this makes the event
//! records SES would publish for a campaign's sent invitations — a realistic, seeded mix of
//! sends, deliveries, delays, bounces, complaints, opens, clicks and unsubscribes, some of
//! them duplicated and all of them shuffled, as SNS and SES really deliver them — and feeds
//! them through the webhook's own core (record parsing, then
//! [`portal_core::usecases::events`]), unsigned because they never leave the machine.
//!
//! It opens the data dir's store beside a running `serve` (SQLite in WAL mode), so the
//! campaign's statistics move live.
//!
//! With a [`Registering`], a share of the invitations that ended `clicked` then register
//! through the real registration code
//! ([`portal_core::usecases::registration::register_with_invitation`], with the token the
//! email carried), so the demo's statistics show `registered` and a real `success_rate`.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use portal_aws::ses_events;
use portal_core::domain::{CampaignId, Invitation, InvitationCategory, SendState, TenantId};
use portal_core::mail::tags::{encode_tag_value, TAG_CAMPAIGN, TAG_INVITATION, TAG_TENANT};
use portal_core::ports::{InvitationFilter, Store, StoreError, MAX_PAGE_SIZE};
use portal_core::usecases::events::{self, ApplyReport};
use portal_core::usecases::registration::{self, Registrar, RegistrationError};
use portal_core::usecases::send::deliver::message_local_id;
use portal_core::usecases::send::TokenDeriver;

/// What a simulation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimulationReport {
    /// Invitations events were made for (those SES took: send state `sent`).
    pub invitations: u64,
    /// SES event records fed through the core, duplicates included.
    pub records: u64,
    /// Records the core ignored (none, unless the parser and this generator disagree).
    pub ignored: u64,
    pub applied: ApplyReport,
    /// Residents who then registered through their invitation's link.
    pub registered: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("campaign {0} does not exist for this tenant")]
    NoCampaign(CampaignId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a simulated registration failed")]
    Register(#[from] portal_core::usecases::registration::RegistrationError),
}

/// What simulated residents need to register: the server's token deriver (the links in the
/// emails) and the registration dependencies, and which share of the clicked invitations
/// registers (0.0–1.0).
pub struct Registering<'a> {
    pub tokens: &'a TokenDeriver,
    pub registrar: &'a Registrar,
    pub share: f64,
}

/// Records per store call: the core groups them by campaign and writes in batches.
const FEED_BATCH: usize = 500;

/// Makes and applies the events of every sent invitation of `campaign`.
pub async fn simulate(
    store: &dyn Store,
    tenant: &TenantId,
    campaign: &CampaignId,
    seed: u64,
    now: OffsetDateTime,
    registering: Option<Registering<'_>>,
) -> Result<SimulationReport, SimulateError> {
    if store.get_campaign(tenant, campaign).await?.is_none() {
        return Err(SimulateError::NoCampaign(campaign.clone()));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut records = Vec::new();
    let mut report = SimulationReport::default();
    let invitations = all_invitations(store, tenant, campaign).await?;
    for inv in invitations
        .iter()
        .filter(|i| i.state.send == SendState::Sent)
    {
        report.invitations += 1;
        records.extend(invitation_records(
            tenant,
            inv,
            &Mix::REALISTIC,
            &mut rng,
            now,
        ));
    }
    // SNS delivers at least once and in no particular order.
    let duplicates: Vec<String> = records
        .iter()
        .filter(|_| rng.random_bool(0.05))
        .cloned()
        .collect();
    records.extend(duplicates);
    records.shuffle(&mut rng);
    report.records = records.len() as u64;
    for chunk in records.chunks(FEED_BATCH) {
        let mut facts = Vec::with_capacity(chunk.len());
        for record in chunk {
            match ses_events::parse_record(record) {
                Ok(ses_events::Parsed::Event(event)) => match event.addressed_fact() {
                    Ok(fact) => facts.push(fact),
                    Err(reason) => {
                        tracing::warn!(%reason, "simulated record ignored");
                        report.ignored += 1;
                    }
                },
                Ok(ses_events::Parsed::Ignored { reason }) => {
                    tracing::warn!(%reason, "simulated record ignored");
                    report.ignored += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "simulated record does not parse");
                    report.ignored += 1;
                }
            }
        }
        report.applied.merge(events::apply(store, facts).await?);
    }
    if let Some(r) = registering {
        report.registered = register_clicked(store, tenant, campaign, &r, &mut rng, now).await?;
    }
    Ok(report)
}

/// Registers `share` of the campaign's clicked invitations, each with its own password.
async fn register_clicked(
    store: &dyn Store,
    tenant: &TenantId,
    campaign: &CampaignId,
    r: &Registering<'_>,
    rng: &mut StdRng,
    now: OffsetDateTime,
) -> Result<u64, SimulateError> {
    let clock = portal_core::ports::FixedClock::new(now);
    let mut registered = 0;
    for inv in all_invitations(store, tenant, campaign).await? {
        if inv.category() != InvitationCategory::Clicked
            || !rng.random_bool(r.share.clamp(0.0, 1.0))
        {
            continue;
        }
        let token = r.tokens.token(tenant, campaign, &inv.contact_id);
        let password = format!("simulated resident {:016x}", rng.random::<u64>());
        match registration::register_with_invitation(
            store,
            &clock,
            r.registrar,
            &token,
            &password,
            None,
        )
        .await
        {
            Ok(_) => registered += 1,
            // Already registered through another path, or expired: a resident's reality.
            Err(e @ (RegistrationError::UsedLink | RegistrationError::ExpiredLink { .. })) => {
                tracing::info!(contact = %inv.contact_id, reason = %e, "simulated resident did not register");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(registered)
}

/// Every invitation of a campaign, in contact order.
pub async fn all_invitations(
    store: &dyn Store,
    tenant: &TenantId,
    campaign: &CampaignId,
) -> Result<Vec<Invitation>, StoreError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_invitations(
                tenant,
                campaign,
                &InvitationFilter::default(),
                cursor.as_deref(),
                MAX_PAGE_SIZE,
            )
            .await?;
        out.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok(out);
        }
    }
}

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// How likely each event is: what share of invitations bounce, open, click...
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Permanent bounce instead of a delivery.
    pub bounce: f64,
    /// Rejected by SES (after the Send event).
    pub reject: f64,
    /// A delivery delay before the delivery.
    pub delay: f64,
    /// Of the delivered: opened; then, again and again, opened once more with `reopen`
    /// (each a record of its own); of the opened: clicked.
    pub open: f64,
    pub reopen: f64,
    pub click: f64,
    /// Of the delivered: a complaint; an unsubscribe through SES's subscription management.
    pub complaint: f64,
    pub unsubscribe: f64,
}

impl Mix {
    /// Roughly what invitation emails see: 2% bounces, about half opened.
    pub const REALISTIC: Mix = Mix {
        bounce: 0.02,
        reject: 0.005,
        delay: 0.035,
        open: 0.55,
        reopen: 0.25,
        click: 0.4,
        complaint: 0.005,
        unsubscribe: 0.015,
    };

    /// Every invitation busy: most delivered, opened (often several times), many clicked
    /// (about 5 records each):
    /// what the event benchmarks feed.
    pub const BUSY: Mix = Mix {
        bounce: 0.03,
        reject: 0.005,
        delay: 0.15,
        open: 0.9,
        reopen: 0.5,
        click: 0.7,
        complaint: 0.005,
        unsubscribe: 0.02,
    };
}

/// The records SES would publish for one invitation, in the order they happened.
pub fn invitation_records(
    tenant: &TenantId,
    inv: &Invitation,
    mix: &Mix,
    rng: &mut StdRng,
    now: OffsetDateTime,
) -> Vec<String> {
    let sent_at = now - Duration::minutes(rng.random_range(5..120));
    let email = inv.email.as_str();
    let message_id = format!(
        "{}-000000",
        message_local_id(tenant, &inv.campaign_id, &inv.contact_id)
    );
    let mail = json!({
        "timestamp": ts(sent_at),
        "source": "invitations@example.com",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
        "sendingAccountId": "123456789012",
        "messageId": message_id,
        "destination": [email],
        "headersTruncated": false,
        "tags": {
            "ses:configuration-set": ["portal-invitations"],
            "ses:caller-identity": ["portal-delivery"],
            TAG_TENANT: [encode_tag_value(tenant.as_str())],
            TAG_CAMPAIGN: [encode_tag_value(inv.campaign_id.as_str())],
            TAG_INVITATION: [encode_tag_value(inv.contact_id.as_str())],
        },
    });
    let at = |minutes: i64| ts(sent_at + Duration::minutes(minutes));
    let record = |event_type: &str, key: &str, body: Value| {
        let mut r = json!({"eventType": event_type, "mail": mail.clone()});
        r[key] = body;
        r.to_string()
    };
    let mut out = vec![record("Send", "send", json!({}))];
    let roll: f64 = rng.random();
    let delivered = if roll < mix.bounce {
        out.push(record(
            "Bounce",
            "bounce",
            json!({
                "bounceType": "Permanent", "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": email, "action": "failed",
                    "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                "timestamp": at(1), "feedbackId": format!("{message_id}-bounce"),
                "reportingMTA": "dsn; e226-55.smtp-out.us-east-1.amazonses.com"
            }),
        ));
        false
    } else if roll < mix.bounce + mix.reject {
        out.push(record("Reject", "reject", json!({"reason": "Bad content"})));
        false
    } else {
        if roll < mix.bounce + mix.reject + mix.delay {
            out.push(record(
                "DeliveryDelay",
                "deliveryDelay",
                json!({
                    "timestamp": at(2), "delayType": "MailboxFull",
                    "expirationTime": at(60 * 24),
                    "delayedRecipients": [{"emailAddress": email, "status": "4.2.2",
                        "diagnosticCode": "smtp; 452 4.2.2 Mailbox full"}]
                }),
            ));
        }
        out.push(record(
            "Delivery",
            "delivery",
            json!({
                "timestamp": at(3), "processingTimeMillis": rng.random_range(300..4000),
                "recipients": [email], "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "a8-70.smtp-out.amazonses.com"
            }),
        ));
        true
    };
    if !delivered {
        return out;
    }
    let open = |minutes: i64| {
        record(
            "Open",
            "open",
            json!({"ipAddress": "192.0.2.1", "timestamp": at(minutes),
                "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}),
        )
    };
    if rng.random_bool(mix.open) {
        out.push(open(rng.random_range(10..600)));
        // Opened again later: more records, no new category.
        let mut later = 600;
        while later < 6000 && rng.random_bool(mix.reopen) {
            later += rng.random_range(60..1200);
            out.push(open(later));
        }
        if rng.random_bool(mix.click) {
            out.push(record(
                "Click",
                "click",
                json!({"ipAddress": "192.0.2.1", "timestamp": at(700),
                    "userAgent": "Mozilla/5.0", "link": "https://portal.example.com/register",
                    "linkTags": {"samplekey0": ["samplevalue0"]}}),
            ));
        }
    }
    let tail: f64 = rng.random();
    if tail < mix.complaint {
        out.push(record(
            "Complaint",
            "complaint",
            json!({
                "complainedRecipients": [{"emailAddress": email}], "timestamp": at(900),
                "feedbackId": format!("{message_id}-complaint"),
                "complaintFeedbackType": "abuse", "userAgent": "ExampleCorp Feedback Loop"
            }),
        ));
    } else if tail < mix.complaint + mix.unsubscribe {
        out.push(record(
            "Subscription",
            "subscription",
            json!({
                "contactList": "portal-invitations", "timestamp": at(1000),
                "source": "UnsubscribeHeader",
                "newTopicPreferences": {"unsubscribeAll": true, "topicSubscriptionStatus": []},
                "oldTopicPreferences": {"unsubscribeAll": false, "topicSubscriptionStatus": []}
            }),
        ));
    }
    out
}
