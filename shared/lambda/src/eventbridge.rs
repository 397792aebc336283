//! The EventBridge envelope a send message arrives in, and the body of a send function:
//! read the message, check it is the kind this function takes, run the step.

use serde::Deserialize;

use portal_core::ports::{EventBus, SendMessage, EVENT_SOURCE};
use portal_core::usecases::send::{handle, SendDeps, SendError};

/// An EventBridge event that is not a send message of this system.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the event has no `{0}` string")]
    Missing(&'static str),
    #[error("the event comes from {found:?}, not from {EVENT_SOURCE:?}")]
    WrongSource { found: String },
    #[error("the event's detail is not a send message: {0}")]
    Detail(#[source] serde_json::Error),
    /// The rules route on `detail-type`: a detail of another kind would reach the wrong
    /// function.
    #[error("the event's detail-type {detail_type:?} does not match its detail ({actual:?})")]
    Mismatch {
        detail_type: String,
        actual: &'static str,
    },
}

/// The [`SendMessage`] in an EventBridge event as a rule target receives it: `source` must be
/// [`EVENT_SOURCE`], `detail` the message as the EventBridge adapter serialized it, and
/// `detail-type` the message's own [`SendMessage::detail_type`].
pub fn message_from_eventbridge(event: &serde_json::Value) -> Result<SendMessage, EnvelopeError> {
    let source = event["source"]
        .as_str()
        .ok_or(EnvelopeError::Missing("source"))?;
    if source != EVENT_SOURCE {
        return Err(EnvelopeError::WrongSource {
            found: source.chars().take(80).collect(),
        });
    }
    let detail_type = event["detail-type"]
        .as_str()
        .ok_or(EnvelopeError::Missing("detail-type"))?;
    let message = SendMessage::deserialize(&event["detail"]).map_err(EnvelopeError::Detail)?;
    if message.detail_type() != detail_type {
        return Err(EnvelopeError::Mismatch {
            detail_type: detail_type.chars().take(80).collect(),
            actual: message.detail_type(),
        });
    }
    Ok(message)
}

/// Why a send function could not take an event: what Lambda records for it (and hands to
/// the failure destination).
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    NotASendMessage(#[from] EnvelopeError),
    #[error(transparent)]
    SendFailed(#[from] SendError),
}

impl EventError {
    /// A stable error type for Lambda's records.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NotASendMessage(_) => "NotASendMessage",
            Self::SendFailed(_) => "SendFailed",
        }
    }

    /// The message with its whole cause chain, `: `-separated.
    pub fn chain(&self) -> String {
        portal_core::error_chain(self)
    }
}

/// The body of a send function: the event's message is handled when it is of the kind
/// `wants` (a [`SendMessage::detail_type`]); another kind is logged and acknowledged (a
/// rule routing the wrong detail-type must not retry forever). An error goes back to
/// Lambda, whose asynchronous retry redelivers the event (every step is idempotent).
pub async fn on_event(
    deps: &SendDeps,
    bus: &dyn EventBus,
    event: &serde_json::Value,
    wants: &'static str,
) -> Result<serde_json::Value, EventError> {
    let msg = message_from_eventbridge(event).map_err(|e| {
        tracing::error!(error = %e, "the event is not a send message");
        EventError::from(e)
    })?;
    if msg.detail_type() != wants {
        tracing::warn!(
            kind = msg.detail_type(),
            campaign = %msg.campaign_id(),
            wants,
            "another kind of message: acknowledged without action (check the rule's pattern)"
        );
        return Ok(serde_json::json!({ "ignored": msg.detail_type() }));
    }
    let report = handle(deps, bus, &msg).await.map_err(|e| {
        let e = EventError::from(e);
        tracing::error!(error = %e.chain(), kind = wants, "send step failed; Lambda will retry it");
        e
    })?;
    tracing::info!(
        kind = wants,
        sent = report.sent,
        failed = report.failed,
        "send step done"
    );
    Ok(serde_json::json!({ "done": wants, "sent": report.sent, "failed": report.failed }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::tests::with;
    use crate::null::{NoBus, NoMailer};
    use portal_core::domain::{CampaignId, TenantId};
    use portal_core::ports::{DETAIL_TYPE_DELIVER, DETAIL_TYPE_FAN_OUT};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_send_function_acknowledges_other_kinds_and_reports_failures_with_their_type() {
        let store = Arc::new(portal_embedded::sqlite::SqliteStore::open_in_memory().unwrap());
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let deps = with(&[]).unwrap().deps(
            store,
            Arc::new(NoMailer),
            Arc::new(portal_core::ports::FixedClock::new(now)),
        );
        let fan_out = envelope(
            DETAIL_TYPE_FAN_OUT,
            json!({"type": "fan_out", "tenant": "acme", "campaign_id": campaign().as_str(), "cursor": null}),
        );
        // A fan-out event reaching the delivery function: acknowledged, nothing done.
        let ignored = on_event(&deps, &NoBus, &fan_out, DETAIL_TYPE_DELIVER)
            .await
            .unwrap();
        assert_eq!(ignored, json!({ "ignored": DETAIL_TYPE_FAN_OUT }));
        // The right kind for a campaign that does not exist: a failure Lambda retries.
        let err = on_event(&deps, &NoBus, &fan_out, DETAIL_TYPE_FAN_OUT)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "SendFailed");
        assert!(err.chain().contains("not found"), "{}", err.chain());
        // Not one of ours at all.
        let mut foreign = fan_out.clone();
        foreign["source"] = json!("aws.s3");
        let err = on_event(&deps, &NoBus, &foreign, DETAIL_TYPE_FAN_OUT)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "NotASendMessage");
        assert!(err.chain().contains("aws.s3"), "{}", err.chain());
    }

    fn envelope(detail_type: &str, detail: serde_json::Value) -> serde_json::Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": detail_type,
            "source": "portal-invitations",
            "account": "111122223333",
            "time": "2025-03-14T09:26:53Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": detail
        })
    }

    fn campaign() -> CampaignId {
        CampaignId::parse("0195b2c3d4e5f60718293a4b5c6d7e8f").unwrap()
    }

    #[test]
    fn a_fan_out_event_as_eventbridge_delivers_it_is_read() {
        let event = envelope(
            DETAIL_TYPE_FAN_OUT,
            json!({
                "type": "fan_out",
                "tenant": "acme",
                "campaign_id": "0195b2c3d4e5f60718293a4b5c6d7e8f",
                "cursor": "eyJwayI6IngifQ"
            }),
        );
        assert_eq!(
            message_from_eventbridge(&event).unwrap(),
            SendMessage::FanOut {
                tenant: TenantId::parse("acme").unwrap(),
                campaign_id: campaign(),
                cursor: Some("eyJwayI6IngifQ".into()),
                spec: None,
            }
        );
    }

    #[test]
    fn what_the_eventbridge_adapter_publishes_reads_back_as_the_same_message() {
        let msg = SendMessage::Deliver {
            tenant: TenantId::parse("acme").unwrap(),
            campaign_id: campaign(),
            recipients: vec![],
            spec: None,
        };
        let event = envelope(DETAIL_TYPE_DELIVER, serde_json::to_value(&msg).unwrap());
        assert_eq!(message_from_eventbridge(&event).unwrap(), msg);
    }

    #[test]
    fn events_of_another_source_or_shape_are_refused() {
        let detail = json!({"type": "fan_out", "tenant": "acme",
            "campaign_id": "0195b2c3d4e5f60718293a4b5c6d7e8f", "cursor": null});

        let mut other = envelope(DETAIL_TYPE_FAN_OUT, detail.clone());
        other["source"] = json!("aws.s3");
        assert!(matches!(
            message_from_eventbridge(&other),
            Err(EnvelopeError::WrongSource { found }) if found == "aws.s3"
        ));

        let mut no_source = envelope(DETAIL_TYPE_FAN_OUT, detail.clone());
        no_source.as_object_mut().unwrap().remove("source");
        assert!(matches!(
            message_from_eventbridge(&no_source),
            Err(EnvelopeError::Missing("source"))
        ));

        let mut no_type = envelope(DETAIL_TYPE_FAN_OUT, detail.clone());
        no_type.as_object_mut().unwrap().remove("detail-type");
        assert!(matches!(
            message_from_eventbridge(&no_type),
            Err(EnvelopeError::Missing("detail-type"))
        ));

        assert!(matches!(
            message_from_eventbridge(&envelope(DETAIL_TYPE_DELIVER, detail)),
            Err(EnvelopeError::Mismatch { .. })
        ));

        let bad_id = json!({"type": "fan_out", "tenant": "acme",
            "campaign_id": "not-a-campaign", "cursor": null});
        assert!(matches!(
            message_from_eventbridge(&envelope(DETAIL_TYPE_FAN_OUT, bad_id)),
            Err(EnvelopeError::Detail(_))
        ));
        assert!(matches!(
            message_from_eventbridge(&json!("not an event")),
            Err(EnvelopeError::Missing("source"))
        ));
    }
}
