//! Invocation routing for a function that takes more than one kind of event (the SES events
//! function: API Gateway requests, EventBridge events, direct recount invocations): tell the
//! kind apart, and hand an HTTP request to an axum router as `lambda_http` would.

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

use portal_core::usecases::events::RecountRequest;

use crate::diagnostic::diagnostic;

/// What a function that takes several kinds of event was invoked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// An event from an EventBridge rule (it has a `detail-type`).
    EventBridge,
    /// A direct invocation `{"recount": {"tenant", "campaign_id", "fix"}}`.
    Recount(RecountRequest),
    /// Anything else: an API Gateway request (HTTP API, payload 2.0).
    Http,
}

impl Invocation {
    /// Tells the three apart; a `recount` payload that does not parse is an error.
    pub fn of(payload: &serde_json::Value) -> Result<Self, serde_json::Error> {
        if let Some(r) = payload.get("recount") {
            return Ok(Self::Recount(serde_json::from_value(r.clone())?));
        }
        if payload.get("detail-type").is_some() {
            return Ok(Self::EventBridge);
        }
        Ok(Self::Http)
    }
}

/// Serves an API Gateway request (the invocation's payload) with `router`, answering the
/// response as the payload Lambda returns to API Gateway.
pub async fn serve_http(
    router: &axum::Router,
    payload: Value,
    context: lambda_runtime::Context,
) -> Result<Value, Diagnostic> {
    use lambda_http::request::LambdaRequest;
    use lambda_http::{Adapter, Service as _};
    let request: LambdaRequest =
        serde_json::from_value(payload).map_err(|e| diagnostic("UnsupportedEvent", &e))?;
    let response = Adapter::from(router.clone())
        .call(LambdaEvent::new(request, context))
        .await
        .unwrap_or_else(|never| match never {});
    to_json(&response)
}

/// A value as the JSON payload Lambda returns.
pub fn to_json(value: &impl serde::Serialize) -> Result<Value, Diagnostic> {
    serde_json::to_value(value).map_err(|e| diagnostic("SerializationError", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_are_told_apart() {
        use serde_json::json;
        assert_eq!(
            Invocation::of(&json!({"detail-type": "Email Delivered", "source": "aws.ses"}))
                .unwrap(),
            Invocation::EventBridge
        );
        assert_eq!(
            Invocation::of(&json!({"version": "2.0", "routeKey": "POST /v1/ses-events"})).unwrap(),
            Invocation::Http
        );
        let id = "0123456789abcdef0123456789abcdef";
        match Invocation::of(&json!({"recount": {"tenant": "acme", "campaign_id": id}})).unwrap() {
            Invocation::Recount(r) => assert!(!r.fix && r.campaign_id.as_str() == id),
            other => panic!("{other:?}"),
        }
        assert!(Invocation::of(&json!({"recount": {"tenant": "acme"}})).is_err());
    }
}
