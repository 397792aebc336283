//! Amazon SES email events, parsed once at the edge into what they say about an invitation.
//!
//! SES publishes one JSON record per event through a configuration set's event destination.
//! The same record arrives two ways, and both end here:
//!
//! - as the `Message` string of an SNS Notification ([`parse_record`]);
//! - as the `detail` of an EventBridge event from SES's EventBridge destination
//!   (`"source": "aws.ses"`, detail-types `Email Sent`, `Email Delivered`, … —
//!   [`EVENTBRIDGE_DETAIL_TYPES`]; [`parse_eventbridge`]).
//!
//! The older identity *notification* format (`notificationType` instead of `eventType`:
//! Bounce, Complaint, Delivery) parses too; it carries no message tags, so it never reaches
//! an invitation.
//!
//! # What is an error and what is ignored
//!
//! SES adds event types and fields over time, and a webhook that answers 500 makes SNS retry
//! for nothing. So only input that is not an SES record at all fails ([`SesEventError`], a
//! 400 for the caller): invalid JSON, a field of the wrong type, a known event without its
//! `mail.messageId` or without the object that gives its meaning (`bounce`, `subscription`).
//! Everything else parses: unknown fields are skipped, an unknown `eventType` becomes
//! [`SesEventKind::Unknown`], and JSON that is no email event (SES's "subscription
//! succeeded" notice, an EventBridge event of another detail-type) is [`Parsed::Ignored`].
//!
//! # Finding the invitation
//!
//! The send step tags every message with `tenant`, `campaign` and `invitation` (the contact
//! id); SES echoes them in `mail.tags`. [`SesEvent::route`] gives the invitation and the
//! [`InvitationFact`] the event implies, or an [`IgnoreReason`] to log: a missing or invalid
//! tag, or an event that says nothing about the invitation (an opt-in, an unknown type).

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use portal_core::domain::{CampaignId, ContactId, DomainError, InvitationFact, TenantId};
use portal_core::mail::tags::{decode_tag_value, TAG_CAMPAIGN, TAG_INVITATION, TAG_TENANT};
use portal_core::usecases::events::AddressedFact;

/// The EventBridge `detail-type` of each SES email event, with the `eventType` of its detail.
/// SES's other EventBridge events (`Sending Status Enabled`, advisor recommendations, …) are
/// ignored.
pub const EVENTBRIDGE_DETAIL_TYPES: [(&str, &str); 10] = [
    ("Email Sent", "Send"),
    ("Email Delivered", "Delivery"),
    ("Email Bounced", "Bounce"),
    ("Email Complaint Received", "Complaint"),
    ("Email Rejected", "Reject"),
    ("Email Rendering Failed", "Rendering Failure"),
    ("Email Delivery Delayed", "DeliveryDelay"),
    ("Email Opened", "Open"),
    ("Email Clicked", "Click"),
    ("Email Subscribed", "Subscription"),
];

/// Input that is not an SES event record. The caller answers 400 and logs it.
#[derive(Debug, thiserror::Error)]
pub enum SesEventError {
    #[error("the SES event is not valid JSON or has a field of the wrong type")]
    Json(#[source] serde_json::Error),
    #[error("the SES {event_type} event has no {field}")]
    Missing {
        event_type: String,
        field: &'static str,
    },
}

/// The outcome of parsing: an email event, or JSON that is none (said why, for the log).
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Event(SesEvent),
    Ignored { reason: IgnoreReason },
}

/// Why an event changes no invitation. Logged by the caller, never an error: the webhook
/// answers 2xx so SNS does not retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreReason {
    #[error("not an SES email event: {0}")]
    NotAnEmailEvent(String),
    #[error("the message has no {0:?} tag")]
    MissingTag(&'static str),
    #[error("the message's {tag:?} tag is invalid: {error}")]
    InvalidTag {
        tag: &'static str,
        #[source]
        error: DomainError,
    },
    #[error("a {0} event says nothing about the invitation")]
    NoFact(String),
}

/// The invitation an event is about, from the message's tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InvitationRef {
    pub tenant: TenantId,
    pub campaign: CampaignId,
    pub contact: ContactId,
}

/// One SES email event.
#[derive(Debug, Clone, PartialEq)]
pub struct SesEvent {
    pub kind: SesEventKind,
    /// SES's id of the message (`mail.messageId`), the same for every event about it.
    pub message_id: String,
    /// When the event happened: its own object's `timestamp`, else when the message was sent.
    pub timestamp: Option<OffsetDateTime>,
    /// When SES accepted the message (`mail.timestamp`).
    pub sent_at: Option<OffsetDateTime>,
    /// The message's recipients (`mail.destination`).
    pub destination: Vec<String>,
    /// The invitation from the message's tags, or why there is none.
    pub invitation: Result<InvitationRef, IgnoreReason>,
}

/// What happened, with the details the statistics and the suppression list need.
#[derive(Debug, Clone, PartialEq)]
pub enum SesEventKind {
    Send,
    Delivery,
    Bounce(Bounce),
    Complaint(Complaint),
    Reject {
        reason: String,
    },
    RenderingFailure {
        error_message: String,
        template_name: Option<String>,
    },
    DeliveryDelay(DeliveryDelay),
    Open,
    Click {
        link: Option<String>,
    },
    Subscription(Subscription),
    /// An `eventType` this version does not know, as SES spelled it.
    Unknown(String),
}

impl SesEventKind {
    /// The `eventType` as SES spells it (for logs).
    pub fn name(&self) -> &str {
        match self {
            Self::Send => "Send",
            Self::Delivery => "Delivery",
            Self::Bounce(_) => "Bounce",
            Self::Complaint(_) => "Complaint",
            Self::Reject { .. } => "Reject",
            Self::RenderingFailure { .. } => "Rendering Failure",
            Self::DeliveryDelay(_) => "DeliveryDelay",
            Self::Open => "Open",
            Self::Click { .. } => "Click",
            Self::Subscription(_) => "Subscription",
            Self::Unknown(name) => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    pub bounce_type: BounceType,
    /// `General`, `NoEmail`, `Suppressed`, `MailboxFull`, … (empty when SES gives none).
    pub sub_type: String,
    pub recipients: Vec<BouncedRecipient>,
    pub feedback_id: Option<String>,
}

impl Bounce {
    /// The bounced addresses, as SES wrote them.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.recipients.iter().map(|r| r.email_address.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BounceType {
    /// Final: the address is suppressed.
    Permanent,
    /// SES gave up retrying: a soft bounce, the invitation stays in process.
    Transient,
    /// Final, but SES could not tell why.
    Undetermined,
    /// A type this version does not know: no fact is drawn from it.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BouncedRecipient {
    pub email_address: String,
    pub action: Option<String>,
    pub status: Option<String>,
    pub diagnostic_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    pub recipients: Vec<String>,
    /// `abuse`, `fraud`, `not-spam`, … when the mailbox provider sent a feedback report.
    pub feedback_type: Option<String>,
    pub feedback_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryDelay {
    pub delay_type: Option<String>,
    pub recipients: Vec<String>,
    /// When SES stops retrying.
    pub expiration_time: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub contact_list: Option<String>,
    /// Where the change came from (`UnsubscribeHeader`, `UnsubscribeLink`, …).
    pub source: Option<String>,
    /// The new preferences opt out of everything.
    pub unsubscribe_all: bool,
    /// Topics the new preferences opt out of.
    pub opted_out_topics: Vec<String>,
}

impl SesEvent {
    /// The invitation the event is about, when the message carries our tags.
    pub fn target(&self) -> Option<&InvitationRef> {
        self.invitation.as_ref().ok()
    }

    /// What the event says about its invitation, if anything:
    ///
    /// | event | fact |
    /// | --- | --- |
    /// | Send | `Sent` |
    /// | Delivery | `Delivered` |
    /// | Bounce, Permanent | `Bounced { permanent: true, reason: "Permanent/<subtype>" }` |
    /// | Bounce, Undetermined | `Bounced { permanent: false, reason: "Undetermined/<subtype>" }` |
    /// | Bounce, Transient; DeliveryDelay | `Delayed` (SES's soft bounces are not final) |
    /// | Complaint | `Complained` |
    /// | Reject | `Rejected { reason }` |
    /// | Rendering Failure | `Rejected { reason: errorMessage }` |
    /// | Open / Click | `Opened` / `Clicked` |
    /// | Subscription opting out of all or of any topic | `Unsubscribed` |
    ///
    /// An opt-in, a bounce of an unknown type and an unknown event say nothing: `None`.
    pub fn fact(&self) -> Option<InvitationFact> {
        Some(match &self.kind {
            SesEventKind::Send => InvitationFact::Sent,
            SesEventKind::Delivery => InvitationFact::Delivered,
            SesEventKind::Bounce(b) => match &b.bounce_type {
                BounceType::Permanent => InvitationFact::Bounced {
                    permanent: true,
                    reason: bounce_reason("Permanent", &b.sub_type),
                },
                BounceType::Undetermined => InvitationFact::Bounced {
                    permanent: false,
                    reason: bounce_reason("Undetermined", &b.sub_type),
                },
                BounceType::Transient => InvitationFact::Delayed,
                BounceType::Other(_) => return None,
            },
            SesEventKind::DeliveryDelay(_) => InvitationFact::Delayed,
            SesEventKind::Complaint(_) => InvitationFact::Complained,
            SesEventKind::Reject { reason } => InvitationFact::Rejected {
                reason: reason.clone(),
            },
            SesEventKind::RenderingFailure { error_message, .. } => InvitationFact::Rejected {
                reason: error_message.clone(),
            },
            SesEventKind::Open => InvitationFact::Opened,
            SesEventKind::Click { .. } => InvitationFact::Clicked,
            SesEventKind::Subscription(s)
                if s.unsubscribe_all || !s.opted_out_topics.is_empty() =>
            {
                InvitationFact::Unsubscribed
            }
            SesEventKind::Subscription(_) | SesEventKind::Unknown(_) => return None,
        })
    }

    /// The invitation and what to apply to it, or why the event is only logged.
    pub fn route(&self) -> Result<(&InvitationRef, InvitationFact), IgnoreReason> {
        let target = self.invitation.as_ref().map_err(Clone::clone)?;
        let fact = self
            .fact()
            .ok_or_else(|| IgnoreReason::NoFact(self.kind.name().to_owned()))?;
        Ok((target, fact))
    }
}

fn bounce_reason(bounce_type: &str, sub_type: &str) -> String {
    if sub_type.is_empty() {
        bounce_type.to_owned()
    } else {
        format!("{bounce_type}/{sub_type}")
    }
}

/// Parses an SES event record: the `Message` of an SNS Notification (or a raw-delivery body).
pub fn parse_record(json: &str) -> Result<Parsed, SesEventError> {
    let raw: RawRecord = serde_json::from_str(json).map_err(SesEventError::Json)?;
    raw.into_parsed(None)
}

/// Parses an EventBridge event from SES's EventBridge destination. Events of another source
/// or detail-type are ignored.
pub fn parse_eventbridge(value: &serde_json::Value) -> Result<Parsed, SesEventError> {
    let source = value.get("source").and_then(|s| s.as_str()).unwrap_or("");
    if source != "aws.ses" {
        return Ok(ignored(format!("EventBridge source {source:?}")));
    }
    let detail_type = value
        .get("detail-type")
        .and_then(|s| s.as_str())
        .unwrap_or("");
    let Some((_, event_type)) = EVENTBRIDGE_DETAIL_TYPES
        .iter()
        .find(|(d, _)| *d == detail_type)
    else {
        return Ok(ignored(format!("EventBridge detail-type {detail_type:?}")));
    };
    let Some(detail) = value.get("detail") else {
        return Err(SesEventError::Missing {
            event_type: (*event_type).to_owned(),
            field: "detail",
        });
    };
    let raw = RawRecord::deserialize(detail).map_err(SesEventError::Json)?;
    raw.into_parsed(Some(event_type))
}

fn ignored(reason: String) -> Parsed {
    Parsed::Ignored {
        reason: IgnoreReason::NotAnEmailEvent(reason),
    }
}

fn timestamp(raw: Option<&str>) -> Option<OffsetDateTime> {
    raw.and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

// The wire format. Only the fields we use are declared; serde skips the rest (headers,
// commonHeaders, SES's own tags, fields SES adds later).

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord {
    event_type: Option<String>,
    /// The older identity notification format's name for `eventType`.
    notification_type: Option<String>,
    mail: Option<RawMail>,
    bounce: Option<RawBounce>,
    complaint: Option<RawComplaint>,
    delivery: Option<RawTimestamped>,
    reject: Option<RawReject>,
    #[serde(alias = "renderingFailure")]
    failure: Option<RawFailure>,
    delivery_delay: Option<RawDeliveryDelay>,
    open: Option<RawTimestamped>,
    click: Option<RawClick>,
    subscription: Option<RawSubscription>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMail {
    message_id: Option<String>,
    timestamp: Option<String>,
    #[serde(default)]
    destination: Vec<String>,
    #[serde(default)]
    tags: RawTags,
}

/// Only our three tags; SES's (`ses:configuration-set`, …) and others are skipped.
#[derive(Deserialize, Default)]
struct RawTags {
    tenant: Option<Vec<String>>,
    campaign: Option<Vec<String>>,
    invitation: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTimestamped {
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBounce {
    bounce_type: Option<String>,
    bounce_sub_type: Option<String>,
    #[serde(default)]
    bounced_recipients: Vec<RawBouncedRecipient>,
    timestamp: Option<String>,
    feedback_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBouncedRecipient {
    email_address: String,
    action: Option<String>,
    status: Option<String>,
    diagnostic_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawComplaint {
    #[serde(default)]
    complained_recipients: Vec<RawRecipient>,
    complaint_feedback_type: Option<String>,
    timestamp: Option<String>,
    feedback_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecipient {
    email_address: String,
}

#[derive(Deserialize)]
struct RawReject {
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFailure {
    error_message: Option<String>,
    template_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDeliveryDelay {
    delay_type: Option<String>,
    #[serde(default)]
    delayed_recipients: Vec<RawRecipient>,
    expiration_time: Option<String>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawClick {
    link: Option<String>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSubscription {
    contact_list: Option<String>,
    timestamp: Option<String>,
    source: Option<String>,
    new_topic_preferences: Option<RawTopicPreferences>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTopicPreferences {
    #[serde(default)]
    unsubscribe_all: bool,
    #[serde(default)]
    topic_subscription_status: Vec<RawTopicStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTopicStatus {
    topic_name: String,
    subscription_status: String,
}

impl RawTags {
    fn invitation(self) -> Result<InvitationRef, IgnoreReason> {
        Ok(InvitationRef {
            tenant: tag(TAG_TENANT, self.tenant, TenantId::parse)?,
            campaign: tag(TAG_CAMPAIGN, self.campaign, CampaignId::parse)?,
            contact: tag(TAG_INVITATION, self.invitation, ContactId::parse)?,
        })
    }
}

/// A tag's value (SES gives each tag as a list; we set one value), decoded by
/// [`decode_tag_value`].
fn tag<T>(
    name: &'static str,
    values: Option<Vec<String>>,
    parse: fn(String) -> Result<T, DomainError>,
) -> Result<T, IgnoreReason> {
    let value = values
        .and_then(|v| v.into_iter().next())
        .ok_or(IgnoreReason::MissingTag(name))?;
    let value = decode_tag_value(&value).ok_or_else(|| IgnoreReason::InvalidTag {
        tag: name,
        error: DomainError::InvalidField {
            field: name,
            reason: "not an encoded tag value".into(),
        },
    })?;
    parse(value).map_err(|error| IgnoreReason::InvalidTag { tag: name, error })
}

impl RawRecord {
    /// `fallback_type` is the event type an EventBridge detail-type implies, used when the
    /// detail does not say.
    fn into_parsed(self, fallback_type: Option<&str>) -> Result<Parsed, SesEventError> {
        let Some(event_type) = self
            .event_type
            .or(self.notification_type)
            .or_else(|| fallback_type.map(str::to_owned))
        else {
            return Ok(ignored("no eventType".to_owned()));
        };
        let missing = |field| SesEventError::Missing {
            event_type: event_type.clone(),
            field,
        };
        let (kind, at) = match event_type.as_str() {
            "Send" => (SesEventKind::Send, None),
            "Delivery" => (
                SesEventKind::Delivery,
                self.delivery.and_then(|d| d.timestamp),
            ),
            "Bounce" => {
                let b = self.bounce.ok_or_else(|| missing("bounce object"))?;
                let bounce_type = match b.bounce_type.as_deref() {
                    Some("Permanent") => BounceType::Permanent,
                    Some("Transient") => BounceType::Transient,
                    Some("Undetermined") => BounceType::Undetermined,
                    other => BounceType::Other(other.unwrap_or_default().to_owned()),
                };
                let recipients = b
                    .bounced_recipients
                    .into_iter()
                    .map(|r| BouncedRecipient {
                        email_address: r.email_address,
                        action: r.action,
                        status: r.status,
                        diagnostic_code: r.diagnostic_code,
                    })
                    .collect();
                let bounce = Bounce {
                    bounce_type,
                    sub_type: b.bounce_sub_type.unwrap_or_default(),
                    recipients,
                    feedback_id: b.feedback_id,
                };
                (SesEventKind::Bounce(bounce), b.timestamp)
            }
            "Complaint" => {
                let c = self.complaint;
                let at = c.as_ref().and_then(|c| c.timestamp.clone());
                let complaint = c.map_or_else(
                    || Complaint {
                        recipients: Vec::new(),
                        feedback_type: None,
                        feedback_id: None,
                    },
                    |c| Complaint {
                        recipients: emails(c.complained_recipients),
                        feedback_type: c.complaint_feedback_type,
                        feedback_id: c.feedback_id,
                    },
                );
                (SesEventKind::Complaint(complaint), at)
            }
            "Reject" => {
                let reason = self.reject.and_then(|r| r.reason);
                let reason = reason.unwrap_or_else(|| "rejected by SES".to_owned());
                (SesEventKind::Reject { reason }, None)
            }
            "Rendering Failure" | "RenderingFailure" => {
                let f = self.failure;
                let (error_message, template_name) =
                    f.map_or((None, None), |f| (f.error_message, f.template_name));
                let kind = SesEventKind::RenderingFailure {
                    error_message: error_message
                        .unwrap_or_else(|| "the template could not be rendered".to_owned()),
                    template_name,
                };
                (kind, None)
            }
            "DeliveryDelay" => {
                let d = self.delivery_delay;
                let at = d.as_ref().and_then(|d| d.timestamp.clone());
                let delay = d.map_or_else(
                    || DeliveryDelay {
                        delay_type: None,
                        recipients: Vec::new(),
                        expiration_time: None,
                    },
                    |d| DeliveryDelay {
                        delay_type: d.delay_type,
                        recipients: emails(d.delayed_recipients),
                        expiration_time: timestamp(d.expiration_time.as_deref()),
                    },
                );
                (SesEventKind::DeliveryDelay(delay), at)
            }
            "Open" => (SesEventKind::Open, self.open.and_then(|o| o.timestamp)),
            "Click" => {
                let (link, at) = self.click.map_or((None, None), |c| (c.link, c.timestamp));
                (SesEventKind::Click { link }, at)
            }
            "Subscription" => {
                let s = self
                    .subscription
                    .ok_or_else(|| missing("subscription object"))?;
                let prefs = s.new_topic_preferences;
                let subscription = Subscription {
                    contact_list: s.contact_list,
                    source: s.source,
                    unsubscribe_all: prefs.as_ref().is_some_and(|p| p.unsubscribe_all),
                    opted_out_topics: prefs
                        .map(|p| {
                            p.topic_subscription_status
                                .into_iter()
                                .filter(|t| t.subscription_status == "OptOut")
                                .map(|t| t.topic_name)
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                (SesEventKind::Subscription(subscription), s.timestamp)
            }
            _ => (SesEventKind::Unknown(event_type.clone()), None),
        };
        let Some(mail) = self.mail else {
            if let SesEventKind::Unknown(name) = kind {
                // SES's "AmazonSnsSubscriptionSucceeded" notice, for one: no message behind it.
                return Ok(ignored(format!("{name:?} without a mail object")));
            }
            return Err(missing("mail object"));
        };
        let Some(message_id) = mail.message_id else {
            return Err(missing("mail.messageId"));
        };
        let sent_at = timestamp(mail.timestamp.as_deref());
        Ok(Parsed::Event(SesEvent {
            kind,
            message_id,
            timestamp: timestamp(at.as_deref()).or(sent_at),
            sent_at,
            destination: mail.destination,
            invitation: mail.tags.invitation(),
        }))
    }
}

fn emails(recipients: Vec<RawRecipient>) -> Vec<String> {
    recipients.into_iter().map(|r| r.email_address).collect()
}

impl SesEvent {
    /// The invitation this event is about and what it says, or why it says nothing.
    pub fn addressed_fact(&self) -> Result<AddressedFact, IgnoreReason> {
        let (target, fact) = self.route()?;
        Ok(AddressedFact {
            tenant: target.tenant.clone(),
            campaign: target.campaign.clone(),
            contact: target.contact.clone(),
            fact,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use time::macros::datetime;

    const BOUNCE: &str = include_str!("../../../tests/fixtures/ses/bounce.json");
    const COMPLAINT: &str = include_str!("../../../tests/fixtures/ses/complaint.json");
    const DELIVERY: &str = include_str!("../../../tests/fixtures/ses/delivery.json");
    const SEND: &str = include_str!("../../../tests/fixtures/ses/send.json");
    const REJECT: &str = include_str!("../../../tests/fixtures/ses/reject.json");
    const OPEN: &str = include_str!("../../../tests/fixtures/ses/open.json");
    const CLICK: &str = include_str!("../../../tests/fixtures/ses/click.json");
    const RENDERING_FAILURE: &str =
        include_str!("../../../tests/fixtures/ses/rendering_failure.json");
    const DELIVERY_DELAY: &str = include_str!("../../../tests/fixtures/ses/delivery_delay.json");
    const SUBSCRIPTION: &str = include_str!("../../../tests/fixtures/ses/subscription.json");
    const NOTIFICATION_BOUNCE: &str =
        include_str!("../../../tests/fixtures/ses/notification_bounce.json");
    const EVENTBRIDGE_BOUNCE: &str =
        include_str!("../../../tests/fixtures/ses/eventbridge_bounce.json");

    const SAMPLE_ID: &str = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000";
    const CAMPAIGN: &str = "0190f5b7a2c1a1b2c3d4e5f6a7b8c9d0";

    fn event(json: &str) -> SesEvent {
        match parse_record(json).expect("parses") {
            Parsed::Event(e) => e,
            Parsed::Ignored { reason } => panic!("ignored: {reason}"),
        }
    }

    fn ours() -> InvitationRef {
        InvitationRef {
            tenant: TenantId::parse("acme").unwrap(),
            campaign: CampaignId::parse(CAMPAIGN).unwrap(),
            contact: ContactId::parse("c-42").unwrap(),
        }
    }

    /// The published sample with our three tags added, as our send step sets them.
    fn tagged(json: &str) -> String {
        let mut v: Value = serde_json::from_str(json).unwrap();
        let tags = v["mail"]["tags"].as_object_mut().unwrap();
        tags.insert("tenant".into(), json!(["acme"]));
        tags.insert("campaign".into(), json!([CAMPAIGN]));
        tags.insert("invitation".into(), json!(["c-42"]));
        v.to_string()
    }

    #[test]
    fn every_published_sample_parses_with_its_type_and_message_id_and_without_our_tags_is_ignored()
    {
        let samples = [
            (BOUNCE, "Bounce"),
            (COMPLAINT, "Complaint"),
            (DELIVERY, "Delivery"),
            (SEND, "Send"),
            (REJECT, "Reject"),
            (OPEN, "Open"),
            (CLICK, "Click"),
            (RENDERING_FAILURE, "Rendering Failure"),
            (DELIVERY_DELAY, "DeliveryDelay"),
            (SUBSCRIPTION, "Subscription"),
        ];
        for (json, name) in samples {
            let e = event(json);
            assert_eq!(e.kind.name(), name);
            assert!(
                e.message_id.starts_with("EXAMPLE"),
                "{name}: {}",
                e.message_id
            );
            assert!(e.sent_at.is_some() && e.timestamp.is_some(), "{name}");
            assert_eq!(e.target(), None, "{name}");
            assert_eq!(
                e.route().unwrap_err(),
                IgnoreReason::MissingTag("tenant"),
                "{name}"
            );
            assert!(e.fact().is_some(), "{name} implies a fact");
        }
    }

    #[test]
    fn every_published_sample_with_our_tags_routes_to_the_invitation_with_its_fact() {
        let expected = [
            (
                BOUNCE,
                InvitationFact::Bounced {
                    permanent: true,
                    reason: "Permanent/General".into(),
                },
            ),
            (COMPLAINT, InvitationFact::Complained),
            (DELIVERY, InvitationFact::Delivered),
            (SEND, InvitationFact::Sent),
            (
                REJECT,
                InvitationFact::Rejected {
                    reason: "Bad content".into(),
                },
            ),
            (OPEN, InvitationFact::Opened),
            (CLICK, InvitationFact::Clicked),
            (
                RENDERING_FAILURE,
                InvitationFact::Rejected {
                    reason: "Attribute 'attributeName' is not present in the rendering data."
                        .into(),
                },
            ),
            (DELIVERY_DELAY, InvitationFact::Delayed),
            (SUBSCRIPTION, InvitationFact::Unsubscribed),
        ];
        for (json, fact) in expected {
            let e = event(&tagged(json));
            let (target, got) = e.route().expect("routes");
            assert_eq!(*target, ours(), "{}", e.kind.name());
            assert_eq!(got, fact, "{}", e.kind.name());
        }
    }

    #[test]
    fn a_bounce_exposes_its_type_subtype_recipients_and_time() {
        let e = event(BOUNCE);
        assert_eq!(e.message_id, SAMPLE_ID);
        assert_eq!(e.timestamp, Some(datetime!(2017-08-05 00:41:02.669 UTC)));
        assert_eq!(e.sent_at, Some(datetime!(2017-08-05 00:40:02.012 UTC)));
        assert_eq!(e.destination, vec!["recipient@example.com"]);
        let SesEventKind::Bounce(b) = &e.kind else {
            panic!("{:?}", e.kind)
        };
        assert_eq!(b.bounce_type, BounceType::Permanent);
        assert_eq!(b.sub_type, "General");
        assert_eq!(
            b.addresses().collect::<Vec<_>>(),
            vec!["recipient@example.com"]
        );
        assert_eq!(
            b.recipients[0].diagnostic_code.as_deref(),
            Some("smtp; 550 5.1.1 user unknown")
        );
        assert_eq!(b.recipients[0].status.as_deref(), Some("5.1.1"));
    }

    fn with_bounce_type(bounce_type: &str, sub_type: &str) -> SesEvent {
        let mut v: Value = serde_json::from_str(&tagged(BOUNCE)).unwrap();
        v["bounce"]["bounceType"] = json!(bounce_type);
        v["bounce"]["bounceSubType"] = json!(sub_type);
        event(&v.to_string())
    }

    #[test]
    fn transient_bounces_only_delay_and_undetermined_ones_bounce_without_suppressing() {
        let soft = with_bounce_type("Transient", "MailboxFull");
        assert_eq!(soft.fact(), Some(InvitationFact::Delayed));
        let unknown = with_bounce_type("Undetermined", "Undetermined");
        let fact = unknown.fact().unwrap();
        assert_eq!(
            fact,
            InvitationFact::Bounced {
                permanent: false,
                reason: "Undetermined/Undetermined".into()
            }
        );
        assert_eq!(fact.suppression(), None);
        let suppressed = with_bounce_type("Permanent", "OnAccountSuppressionList").fact();
        assert!(suppressed.unwrap().suppression().is_some());
        let future = with_bounce_type("Fuzzy", "General");
        assert_eq!(
            future.fact(),
            None,
            "an unknown bounce type decides nothing"
        );
        assert_eq!(
            future.route().unwrap_err(),
            IgnoreReason::NoFact("Bounce".into())
        );
    }

    #[test]
    fn the_other_samples_expose_their_details() {
        let SesEventKind::Complaint(c) = event(COMPLAINT).kind else {
            panic!()
        };
        assert_eq!(c.recipients, vec!["recipient@example.com"]);
        assert_eq!(c.feedback_type.as_deref(), Some("abuse"));

        let e = event(DELIVERY_DELAY);
        let SesEventKind::DeliveryDelay(d) = &e.kind else {
            panic!()
        };
        assert_eq!(
            d.delay_type.as_deref(),
            Some("TransientCommunicationFailure")
        );
        assert_eq!(d.recipients, vec!["recipient@example.com"]);
        assert_eq!(
            d.expiration_time,
            Some(datetime!(2020-06-16 00:25:40.914 UTC))
        );
        assert_eq!(e.timestamp, Some(datetime!(2020-06-16 00:25:40.095 UTC)));

        let SesEventKind::Click { link } = event(CLICK).kind else {
            panic!()
        };
        assert_eq!(
            link.as_deref(),
            Some("http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html")
        );

        let SesEventKind::RenderingFailure { template_name, .. } = event(RENDERING_FAILURE).kind
        else {
            panic!()
        };
        assert_eq!(template_name.as_deref(), Some("MyTemplate"));

        let SesEventKind::Subscription(s) = event(SUBSCRIPTION).kind else {
            panic!()
        };
        assert_eq!(s.contact_list.as_deref(), Some("ContactListName"));
        assert_eq!(s.source.as_deref(), Some("UnsubscribeHeader"));
        assert!(s.unsubscribe_all);
        assert_eq!(s.opted_out_topics, vec!["ExampleTopicName"]);
    }

    #[test]
    fn a_subscription_that_only_opts_in_says_nothing_and_one_topic_opt_out_unsubscribes() {
        let mut v: Value = serde_json::from_str(&tagged(SUBSCRIPTION)).unwrap();
        v["subscription"]["newTopicPreferences"] = json!({
            "unsubscribeAll": false,
            "topicSubscriptionStatus": [{"topicName": "News", "subscriptionStatus": "OptIn"}]
        });
        let opt_in = event(&v.to_string());
        assert_eq!(opt_in.fact(), None);
        assert_eq!(
            opt_in.route().unwrap_err(),
            IgnoreReason::NoFact("Subscription".into())
        );
        v["subscription"]["newTopicPreferences"]["topicSubscriptionStatus"][0]
            ["subscriptionStatus"] = json!("OptOut");
        assert_eq!(
            event(&v.to_string()).fact(),
            Some(InvitationFact::Unsubscribed)
        );
    }

    #[test]
    fn an_unknown_event_type_and_unknown_fields_are_tolerated() {
        let mut v: Value = serde_json::from_str(&tagged(OPEN)).unwrap();
        v["eventType"] = json!("Teleport");
        v["teleport"] = json!({"destination": "Mars", "timestamp": 12});
        v["mail"]["somethingNew"] = json!([1, 2, {"x": null}]);
        v["mail"]["tags"]["ses:new-tag"] = json!(["v"]);
        let e = event(&v.to_string());
        assert_eq!(e.kind, SesEventKind::Unknown("Teleport".into()));
        assert_eq!(e.target(), Some(&ours()));
        assert_eq!(e.fact(), None);
        assert_eq!(
            e.route().unwrap_err().to_string(),
            "a Teleport event says nothing about the invitation"
        );

        // Unknown fields beside a known type change nothing.
        let mut v: Value = serde_json::from_str(&tagged(BOUNCE)).unwrap();
        v["bounce"]["newField"] = json!({"deep": [true]});
        v["brandNewTopLevel"] = json!("x");
        assert_eq!(event(&v.to_string()).fact(), event(&tagged(BOUNCE)).fact());
    }

    #[test]
    fn missing_or_invalid_tags_are_ignored_with_the_tag_named() {
        let mut v: Value = serde_json::from_str(&tagged(DELIVERY)).unwrap();
        v["mail"]["tags"]["campaign"] = json!(["not-a-campaign"]);
        let e = event(&v.to_string());
        assert!(matches!(
            e.route().unwrap_err(),
            IgnoreReason::InvalidTag {
                tag: "campaign",
                ..
            }
        ));
        v["mail"]["tags"]["campaign"] = json!([]);
        assert_eq!(
            event(&v.to_string()).invitation.unwrap_err(),
            IgnoreReason::MissingTag("campaign")
        );
        v["mail"]["tags"]["campaign"] = json!([CAMPAIGN]);
        v["mail"]["tags"]["invitation"] = json!(["a#b"]);
        assert!(matches!(
            event(&v.to_string()).invitation.unwrap_err(),
            IgnoreReason::InvalidTag {
                tag: "invitation",
                ..
            }
        ));
        v["mail"].as_object_mut().unwrap().remove("tags");
        assert_eq!(
            event(&v.to_string()).invitation.unwrap_err(),
            IgnoreReason::MissingTag("tenant")
        );
    }

    #[test]
    fn malformed_input_is_an_error_and_non_events_are_ignored() {
        assert!(matches!(
            parse_record("{\"eventType\": \"Bounce\""),
            Err(SesEventError::Json(_))
        ));
        assert!(matches!(parse_record("[1,2]"), Err(SesEventError::Json(_))));
        assert!(matches!(
            parse_record(r#"{"eventType": 7}"#),
            Err(SesEventError::Json(_))
        ));
        assert!(matches!(
            parse_record(r#"{"eventType": "Bounce", "mail": {"messageId": "m"}}"#),
            Err(SesEventError::Missing {
                field: "bounce object",
                ..
            })
        ));
        assert!(matches!(
            parse_record(r#"{"eventType": "Delivery", "mail": {"timestamp": "x"}}"#),
            Err(SesEventError::Missing {
                field: "mail.messageId",
                ..
            })
        ));
        // What SES publishes to a topic when identity notifications are set up.
        let notice = r#"{"notificationType":"AmazonSnsSubscriptionSucceeded","message":"You have successfully subscribed your Amazon SNS topic"}"#;
        assert!(matches!(
            parse_record(notice).unwrap(),
            Parsed::Ignored { .. }
        ));
        assert!(matches!(
            parse_record(r#"{"hello": "world"}"#).unwrap(),
            Parsed::Ignored { .. }
        ));
        // A timestamp SES never sends does not fail the event.
        let e =
            event(r#"{"eventType": "Open", "mail": {"messageId": "m", "timestamp": "yesterday"}}"#);
        assert_eq!((e.timestamp, e.sent_at), (None, None));
    }

    #[test]
    fn the_older_notification_format_parses_but_carries_no_tags() {
        let e = event(NOTIFICATION_BOUNCE);
        assert_eq!(
            e.message_id,
            "00000137860315fd-34208509-5b74-41f3-95c5-22c1edc3c924-000000"
        );
        let SesEventKind::Bounce(b) = &e.kind else {
            panic!()
        };
        assert_eq!(
            b.addresses().collect::<Vec<_>>(),
            vec!["jane@example.com", "richard@example.com"]
        );
        assert_eq!(e.route().unwrap_err(), IgnoreReason::MissingTag("tenant"));
    }

    #[test]
    fn an_eventbridge_event_parses_like_the_sns_record_it_carries() {
        let mut v: Value = serde_json::from_str(EVENTBRIDGE_BOUNCE).unwrap();
        let Parsed::Event(plain) = parse_eventbridge(&v).unwrap() else {
            panic!()
        };
        assert_eq!(plain.message_id, SAMPLE_ID);
        assert_eq!(plain.target(), None);
        let tags = v["detail"]["mail"]["tags"].as_object_mut().unwrap();
        tags.insert("tenant".into(), json!(["acme"]));
        tags.insert("campaign".into(), json!([CAMPAIGN]));
        tags.insert("invitation".into(), json!(["c-42"]));
        let Parsed::Event(e) = parse_eventbridge(&v).unwrap() else {
            panic!()
        };
        assert_eq!(e.kind, event(&tagged(BOUNCE)).kind);
        let (target, fact) = e.route().unwrap();
        assert_eq!(*target, ours());
        assert_eq!(
            fact.suppression(),
            Some(portal_core::domain::Suppression::Bounced)
        );

        // The detail-type says what the detail is when the detail does not.
        v["detail"].as_object_mut().unwrap().remove("eventType");
        v["detail-type"] = json!("Email Delivery Delayed");
        let Parsed::Event(e) = parse_eventbridge(&v).unwrap() else {
            panic!()
        };
        assert_eq!(e.fact(), Some(InvitationFact::Delayed));
    }

    #[test]
    fn eventbridge_events_of_another_source_or_detail_type_are_ignored() {
        let v =
            json!({"source": "aws.ses", "detail-type": "Sending Status Disabled", "detail": {}});
        assert!(matches!(
            parse_eventbridge(&v).unwrap(),
            Parsed::Ignored { .. }
        ));
        let v = json!({"source": "aws.s3", "detail-type": "Email Bounced", "detail": {}});
        assert!(matches!(
            parse_eventbridge(&v).unwrap(),
            Parsed::Ignored { .. }
        ));
        let v = json!({"source": "aws.ses", "detail-type": "Email Bounced"});
        assert!(matches!(
            parse_eventbridge(&v),
            Err(SesEventError::Missing {
                field: "detail",
                ..
            })
        ));
        let v = json!({"source": "aws.ses", "detail-type": "Email Opened", "detail": "nope"});
        assert!(matches!(parse_eventbridge(&v), Err(SesEventError::Json(_))));
    }
}
