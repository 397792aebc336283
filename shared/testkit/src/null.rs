//! Adapters that accept everything and keep nothing, for tests and benchmarks that need a
//! port filled but do not look at what goes through it.

use portal_core::ports::{MailError, Mailer, RawEmail, SentMessage};

/// Accepts and drops every message: the send pipeline without a file system or SES. The
/// message id it answers is the message's own.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullMailer;

#[async_trait::async_trait]
impl Mailer for NullMailer {
    async fn send_raw(&self, msg: &RawEmail) -> Result<SentMessage, MailError> {
        Ok(SentMessage {
            message_id: msg.message_id.clone(),
        })
    }
}
