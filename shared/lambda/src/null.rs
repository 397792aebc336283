//! The adapters of a process that must not use a port: a function whose role may not call
//! `events:PutEvents` or SES gets these, so a wrong message fails loudly instead of being
//! half-done.

use async_trait::async_trait;

use portal_core::ports::{
    BusError, EventBus, MailError, Mailer, RawEmail, SendMessage, SentMessage,
};

/// The bus of a process that publishes nothing (the delivery function, whose role may not
/// call `events:PutEvents`): an empty publish succeeds, anything else is refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBus;

#[async_trait]
impl EventBus for NoBus {
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        Err(BusError::Backend(
            format!(
                "this process has no event bus, yet {} message(s) were to be published",
                messages.len()
            )
            .into(),
        ))
    }
}

/// The mailer of a process that sends nothing (the fan-out function, whose role may not
/// call SES): every send is refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMailer;

#[async_trait]
impl Mailer for NoMailer {
    async fn send_raw(&self, _msg: &RawEmail) -> Result<SentMessage, MailError> {
        Err(MailError::Backend("this process has no mailer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::domain::{CampaignId, TenantId};

    fn campaign() -> CampaignId {
        CampaignId::parse("0195b2c3d4e5f60718293a4b5c6d7e8f").unwrap()
    }

    #[tokio::test]
    async fn no_bus_accepts_nothing_to_publish_and_refuses_anything_else() {
        NoBus.publish(&[]).await.unwrap();
        let msg = SendMessage::FanOut {
            tenant: TenantId::parse("acme").unwrap(),
            campaign_id: campaign(),
            cursor: None,
        };
        assert!(matches!(
            NoBus.publish(&[msg]).await,
            Err(BusError::Backend(_))
        ));
    }
}
