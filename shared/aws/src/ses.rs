//! The SES v2 mailer: sends the library's rendered bytes as Raw content.
//!
//! One `SendEmail` request per message, with `Content.Raw` (exactly what the local outbox
//! would write), the envelope recipient as the only destination, the configuration set (so
//! delivery, bounce and complaint events reach the event destination) and the message tags.
//! SES allows tag names and values of ASCII letters, digits, `_` and `-` only (at most 256
//! characters): [`ses_tag`] replaces anything else with `_`.
//!
//! Errors are classified into [`MailError`] (see [`portal_core::ports::Mailer`] for what callers do
//! with each):
//!
//! - `TooManyRequestsException`, `LimitExceededException`, any `Throttling*` code, HTTP 429
//!   → [`MailError::Throttled`];
//! - `MessageRejected`, `MailFromDomainNotVerifiedException`, `AccountSuspendedException`,
//!   `SendingPausedException`, `BadRequestException`, `NotFoundException` (e.g. an unknown
//!   configuration set) → [`MailError::Rejected`];
//! - HTTP 5xx, timeouts and connection failures → [`MailError::Transient`];
//! - anything else → [`MailError::Backend`].
//!
//! Moto answers an unverified sender with `MessageRejected`, as SES does in the sandbox.

use async_trait::async_trait;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, MessageTag, RawMessage};

use portal_core::ports::{MailError, Mailer, RawEmail, SentMessage};

/// Longest tag name or value SES accepts.
pub const MAX_TAG_LEN: usize = 256;

/// Sends through SES v2.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, configuration_set: Option<String>) -> Self {
        Self {
            client,
            configuration_set,
        }
    }
}

/// `s` in SES's tag alphabet: every character outside `[A-Za-z0-9_-]` becomes `_`, cut to
/// [`MAX_TAG_LEN`]; an empty string becomes `_` (SES refuses empty values).
pub fn ses_tag(s: &str) -> String {
    let out: String = s
        .chars()
        .take(MAX_TAG_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "_".to_owned()
    } else {
        out
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send_raw(&self, msg: &RawEmail) -> Result<SentMessage, MailError> {
        let raw = RawMessage::builder()
            .data(Blob::new(msg.raw.clone()))
            .build()
            .map_err(|e| MailError::Backend(Box::new(e)))?;
        let mut tags = Vec::with_capacity(msg.tags.len());
        for (name, value) in &msg.tags {
            tags.push(
                MessageTag::builder()
                    .name(ses_tag(name))
                    .value(ses_tag(value))
                    .build()
                    .map_err(|e| MailError::Backend(Box::new(e)))?,
            );
        }
        let out = self
            .client
            .send_email()
            .from_email_address(msg.from.as_str())
            .destination(Destination::builder().to_addresses(msg.to.as_str()).build())
            .content(EmailContent::builder().raw(raw).build())
            .set_email_tags((!tags.is_empty()).then_some(tags))
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(classify)?;
        let message_id = out
            .message_id()
            .map(str::to_owned)
            .unwrap_or_else(|| msg.message_id.clone());
        Ok(SentMessage { message_id })
    }
}

/// Maps an SDK error to the caller's retry decision (see the module docs).
pub fn classify(err: SdkError<SendEmailError>) -> MailError {
    match kind(&err) {
        Kind::Throttled => MailError::Throttled(Box::new(err)),
        Kind::Transient => MailError::Transient(Box::new(err)),
        Kind::Rejected(reason) => MailError::Rejected { reason },
        Kind::Backend => MailError::Backend(Box::new(err)),
    }
}

enum Kind {
    Throttled,
    Transient,
    Rejected(String),
    Backend,
}

fn kind(err: &SdkError<SendEmailError>) -> Kind {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => return Kind::Transient,
        SdkError::ServiceError(service) => {
            match service.err() {
                SendEmailError::TooManyRequestsException(_)
                | SendEmailError::LimitExceededException(_) => return Kind::Throttled,
                SendEmailError::MessageRejected(_)
                | SendEmailError::MailFromDomainNotVerifiedException(_)
                | SendEmailError::AccountSuspendedException(_)
                | SendEmailError::SendingPausedException(_)
                | SendEmailError::BadRequestException(_)
                | SendEmailError::NotFoundException(_) => {
                    let e = service.err();
                    let reason = match (e.code(), e.message()) {
                        (Some(c), Some(m)) => format!("{c}: {m}"),
                        (Some(c), None) => c.to_owned(),
                        (None, Some(m)) => m.to_owned(),
                        (None, None) => DisplayErrorContext(err).to_string(),
                    };
                    return Kind::Rejected(reason);
                }
                _ => {}
            }
            if service
                .err()
                .code()
                .is_some_and(|c| c.starts_with("Throttl") || c == "RequestLimitExceeded")
            {
                return Kind::Throttled;
            }
            let status = service.raw().status().as_u16();
            if status == 429 {
                return Kind::Throttled;
            }
            if status >= 500 {
                return Kind::Transient;
            }
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            if status == 429 {
                return Kind::Throttled;
            }
            if status >= 500 {
                return Kind::Transient;
            }
        }
        _ => {}
    }
    Kind::Backend
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::error::ErrorMetadata;
    use aws_sdk_sesv2::types::error::{MessageRejected, TooManyRequestsException};
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    fn service(err: SendEmailError, status: u16) -> SdkError<SendEmailError> {
        let raw = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    fn generic(code: &str) -> SendEmailError {
        SendEmailError::generic(ErrorMetadata::builder().code(code).message("m").build())
    }

    #[test]
    fn ses_errors_are_classified_so_callers_know_whether_to_retry() {
        let throttled = service(
            SendEmailError::TooManyRequestsException(
                TooManyRequestsException::builder().message("slow").build(),
            ),
            429,
        );
        assert!(matches!(classify(throttled), MailError::Throttled { .. }));
        assert!(matches!(
            classify(service(generic("Throttling"), 400)),
            MailError::Throttled { .. }
        ));
        let rejected = classify(service(
            SendEmailError::MessageRejected(MessageRejected::builder().message("bad").build()),
            400,
        ));
        assert!(
            matches!(&rejected, MailError::Rejected { reason } if reason.contains("bad")),
            "{rejected:?}"
        );
        assert!(matches!(
            classify(service(generic("InternalFailure"), 503)),
            MailError::Transient { .. }
        ));
        assert!(matches!(
            classify(SdkError::timeout_error("took too long")),
            MailError::Transient { .. }
        ));
        assert!(matches!(
            classify(service(generic("Odd"), 400)),
            MailError::Backend { .. }
        ));
    }

    #[test]
    fn tag_values_are_cut_down_to_the_alphabet_ses_accepts() {
        assert_eq!(ses_tag("t1"), "t1");
        assert_eq!(ses_tag("camp.2026:11/x y"), "camp_2026_11_x_y");
        assert_eq!(ses_tag("é"), "_");
        assert_eq!(ses_tag(""), "_");
        assert_eq!(ses_tag(&"a".repeat(300)).len(), MAX_TAG_LEN);
    }
}
