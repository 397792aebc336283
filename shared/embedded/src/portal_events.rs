//! The portal's registration events on one machine: each [`PortalRegistration`] appended as
//! one JSON line to `<data_dir>/portal-events.jsonl` (what the EventBridge event carries on
//! AWS), so a local portal — or a person — can follow registrations with `tail -f`.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use portal_core::ports::{
    BusError, PortalRegistration, RegistrationEvents, DETAIL_TYPE_REGISTRATION, REGISTRATION_SOURCE,
};

/// File name of the events log in a data dir.
pub const EVENTS_FILE: &str = "portal-events.jsonl";

#[derive(Debug, Clone)]
pub struct JsonlRegistrationEvents {
    path: PathBuf,
}

impl JsonlRegistrationEvents {
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(EVENTS_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl RegistrationEvents for JsonlRegistrationEvents {
    async fn registered(&self, event: &PortalRegistration) -> Result<(), BusError> {
        let line = serde_json::json!({
            "source": REGISTRATION_SOURCE,
            "detail-type": DETAIL_TYPE_REGISTRATION,
            "detail": event,
        })
        .to_string();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.write_all(format!("{line}\n").as_bytes())
        })
        .await
        .map_err(|e| BusError::Backend(Box::new(e)))?
        .map_err(|e| BusError::Backend(Box::new(e)))?;
        tracing::info!(tenant = %event.tenant, via = event.via.as_str(), "Portal Registration event written");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::domain::{Email, LoginVia, TenantId};

    #[tokio::test]
    async fn each_registration_is_one_json_line() {
        let dir = tempfile::tempdir().unwrap();
        let events = JsonlRegistrationEvents::in_data_dir(dir.path());
        let e = PortalRegistration {
            tenant: TenantId::parse("t").unwrap(),
            email: Email::parse("a@example.com").unwrap(),
            name: "A".into(),
            contact_ids: vec![],
            account_ids: vec![],
            via: LoginVia::Invitation,
            campaign_id: None,
            registered_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        events.registered(&e).await.unwrap();
        events.registered(&e).await.unwrap();
        let text = std::fs::read_to_string(events.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["detail-type"], "Portal Registration");
        assert_eq!(lines[0]["detail"]["email"], "a@example.com");
    }
}
