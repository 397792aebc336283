//! Every error the API returns, as one enum rendered as `application/problem+json` (RFC 9457).
//!
//! Handlers and extractors return [`ApiError`]; nothing else builds an error response, so
//! every problem body has one shape and one renderer. Each
//! variant documents its status. A 5xx body is opaque: the cause is logged with
//! `tracing::error!` and the client only learns that something failed on our side.
//!
//! The `type` of a problem is a URN (`urn:portal-invites:problem:<slug>`): stable, unique, and
//! not pretending to be a page someone can open.

use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use portal_core::ports::WebhookRefusal;
use portal_core::usecases::UseCaseError;

use portal_core::domain::{CampaignId, ContactId, DivisionId, Permission};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where a bad record sits in a sync body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPosition {
    /// 0-based index in a JSON array.
    Index(usize),
    /// 1-based line of an NDJSON body.
    Line(usize),
}

impl fmt::Display for RecordPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordPosition::Index(i) => write!(f, "record {i}"),
            RecordPosition::Line(l) => write!(f, "line {l}"),
        }
    }
}

/// An error response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no bearer token, or one that does not verify (bad signature, expired, wrong
    /// issuer or audience, malformed claims). Sent with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a valid token without the permission the route needs.
    #[error("this request needs the permission {}", .0.as_str())]
    Forbidden(Permission),
    /// 400: a body that is not well-formed (malformed JSON, unreadable body), or a bad path
    /// parameter encoding.
    #[error("{0}")]
    BadRequest(String),
    /// 400: a cursor this query did not make.
    #[error("{0}")]
    BadCursor(String),
    /// 404: a named division, account... that does not exist for the caller's tenant. Another
    /// tenant's records look exactly like missing ones.
    #[error("{0}")]
    NotFound(String),
    /// 421: a request for another host (a local-only route whose `Host` header does not
    /// name this server: DNS rebinding).
    #[error("{0}")]
    MisdirectedRequest(String),
    /// 404: no such route.
    #[error("no route {method} {path}")]
    RouteNotFound { method: String, path: String },
    /// 405: the route exists, the method does not.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// 413: the body is larger than the route accepts.
    #[error("the request body is larger than the {limit_description} this route accepts")]
    PayloadTooLarge { limit_description: String },
    /// 415: a body in a media type the route does not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed JSON with the wrong shape (unknown field, wrong type, missing field)
    /// or a value the domain rejects.
    #[error("{0}")]
    Unprocessable(String),
    /// 422: a template (saved with `PUT /v1/templates/{template_id}`, or a draft given to
    /// `POST /v1/invitations/preview`) breaks a rule; `field` names its part (`name`,
    /// `subject`, `html` or `text`), `tag` the merge tag at fault (`[Nope]`) and `position`
    /// the 0-based character offset of an unknown tag in that part.
    #[error("{detail}")]
    InvalidTemplate {
        detail: String,
        field: &'static str,
        tag: Option<String>,
        position: Option<usize>,
    },
    /// 422: one record of a sync body is invalid; nothing was written.
    #[error("{position}: {field}: {reason}; nothing was written")]
    InvalidRecord {
        position: RecordPosition,
        field: String,
        reason: String,
    },
    /// 409: the division or contact was sent an invitation less than 24 hours ago. Sent with
    /// `Retry-After` (seconds) and `retry_after` (RFC 3339) saying when it can be sent again.
    #[error("{detail}")]
    Held {
        detail: String,
        subject: HeldSubject,
        retry_after: OffsetDateTime,
        /// Whole seconds from now to `retry_after`, rounded up.
        retry_after_secs: i64,
    },
    /// 503: the campaign or invitation was recorded but could not be queued for sending.
    #[error("{detail}")]
    NotQueued {
        detail: String,
        campaign_id: CampaignId,
    },
    /// 403: a message that is not what it claims (an SES event without a valid SNS
    /// signature for an allowed topic).
    #[error("{0}")]
    NotGenuine(String),
    /// 503: a service we depend on did not answer; the caller may retry.
    #[error("{0}")]
    Unavailable(String),
    /// 409: the resource is in a state that refuses the request (a closed registration
    /// request, one moved by someone else meanwhile).
    #[error("{0}")]
    Conflict(String),
    /// 410: a link that worked once and no longer does (expired, already used).
    #[error("{0}")]
    Gone(String),
    /// 429: too many failed attempts; sent with `Retry-After` (seconds).
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after: OffsetDateTime,
        retry_after_secs: i64,
    },
    /// 500: our fault. The cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a [`ApiError::Held`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldSubject {
    Division(DivisionId),
    Contact(ContactId),
    /// The contact's address was invited for another contact (one invitation per person).
    Address(ContactId),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    permission: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    division_id: Option<&'a DivisionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_id: Option<&'a ContactId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign_id: Option<&'a CampaignId>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) | ApiError::BadCursor(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_)
            | ApiError::InvalidTemplate { .. }
            | ApiError::InvalidRecord { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Held { .. } => StatusCode::CONFLICT,
            ApiError::NotQueued { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotGenuine(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `(slug, title)` of the problem type.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::Unauthorized(_) => ("unauthorized", "Missing or invalid bearer token"),
            ApiError::Forbidden(_) => ("forbidden", "Permission required"),
            ApiError::BadRequest(_) => ("malformed-request", "Malformed request"),
            ApiError::BadCursor(_) => ("invalid-cursor", "Invalid cursor"),
            ApiError::NotFound(_) => ("not-found", "Not found"),
            ApiError::RouteNotFound { .. } => ("no-such-route", "No such route"),
            ApiError::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            ApiError::MisdirectedRequest(_) => ("misdirected-request", "Request for another host"),
            ApiError::PayloadTooLarge { .. } => ("body-too-large", "Request body too large"),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported media type")
            }
            ApiError::Unprocessable(_) | ApiError::InvalidTemplate { .. } => {
                ("invalid-input", "Invalid input")
            }
            ApiError::InvalidRecord { .. } => ("invalid-record", "Invalid sync record"),
            ApiError::Held {
                subject: HeldSubject::Division(_),
                ..
            } => ("division-held", "Division sent less than 24 hours ago"),
            ApiError::Held {
                subject: HeldSubject::Contact(_),
                ..
            } => ("contact-held", "Contact invited less than 24 hours ago"),
            ApiError::Held {
                subject: HeldSubject::Address(_),
                ..
            } => (
                "address-held",
                "Address invited for another contact less than 24 hours ago",
            ),
            ApiError::NotQueued { .. } => ("not-queued", "Could not be queued"),
            ApiError::NotGenuine(_) => ("not-genuine", "Message not genuine"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::Conflict(_) => ("conflict", "Conflicting state"),
            ApiError::Gone(_) => ("gone", "Link no longer valid"),
            ApiError::TooManyRequests { .. } => ("too-many-attempts", "Too many attempts"),
            ApiError::Internal(_) => ("internal", "Internal error"),
        }
    }

    /// A problem for a status that no handler chose (the safety net in [`super::router`]).
    pub(crate) fn from_status(status: StatusCode, detail: String) -> Self {
        match status {
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized(detail),
            StatusCode::NOT_FOUND => ApiError::NotFound(detail),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                limit_description: "limit".into(),
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(detail),
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(detail),
            s if s.is_client_error() => ApiError::BadRequest(detail),
            _ => ApiError::Internal(detail.into()),
        }
    }
}

impl From<UseCaseError> for ApiError {
    fn from(e: UseCaseError) -> Self {
        match e {
            UseCaseError::Invalid(d) => ApiError::Unprocessable(d.to_string()),
            e @ UseCaseError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            UseCaseError::BadCursor(m) => ApiError::BadCursor(format!(
                "the cursor was not made by this query ({m}); start again without a cursor"
            )),
            UseCaseError::Store(s) => ApiError::Internal(Box::new(s)),
        }
    }
}

impl From<WebhookRefusal> for ApiError {
    fn from(e: WebhookRefusal) -> Self {
        match e {
            WebhookRefusal::Malformed(e) => ApiError::BadRequest(e.to_string()),
            WebhookRefusal::NotGenuine(e) => ApiError::NotGenuine(e.to_string()),
            WebhookRefusal::Unavailable(e) => ApiError::Unavailable(e.to_string()),
            WebhookRefusal::Store(e) => ApiError::Internal(Box::new(e)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(cause) = &self {
            let chain = portal_core::error_chain(cause.as_ref());
            tracing::error!(error = %chain, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), detail = %self, "request refused");
        }
        let (slug, title) = self.kind();
        let (record, line, field) = match &self {
            ApiError::InvalidRecord {
                position, field, ..
            } => match position {
                RecordPosition::Index(i) => (Some(*i), None, Some(field.as_str())),
                RecordPosition::Line(l) => (None, Some(*l), Some(field.as_str())),
            },
            ApiError::InvalidTemplate { field, .. } => (None, None, Some(*field)),
            _ => (None, None, None),
        };
        let (division_id, contact_id) = match &self {
            ApiError::Held {
                subject: HeldSubject::Division(d),
                ..
            } => (Some(d), None),
            ApiError::Held {
                subject: HeldSubject::Contact(c) | HeldSubject::Address(c),
                ..
            } => (None, Some(c)),
            _ => (None, None),
        };
        let problem = Problem {
            kind: format!("urn:portal-invites:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: match &self {
                ApiError::Internal(_) => {
                    "the request failed on our side; it has been logged".to_owned()
                }
                other => other.to_string(),
            },
            permission: match &self {
                ApiError::Forbidden(p) => Some(p.as_str()),
                _ => None,
            },
            record,
            line,
            field,
            tag: match &self {
                ApiError::InvalidTemplate { tag, .. } => tag.as_deref(),
                _ => None,
            },
            position: match &self {
                ApiError::InvalidTemplate { position, .. } => *position,
                _ => None,
            },
            retry_after: match &self {
                ApiError::Held { retry_after, .. }
                | ApiError::TooManyRequests { retry_after, .. } => Some(
                    retry_after
                        .format(&Rfc3339)
                        .unwrap_or_else(|_| retry_after.to_string()),
                ),
                _ => None,
            },
            division_id,
            contact_id,
            campaign_id: match &self {
                ApiError::NotQueued { campaign_id, .. } => Some(campaign_id),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::Held {
            retry_after_secs, ..
        }
        | ApiError::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }
}
