//! [`SenderStore`] on SQLite: one JSON document per tenant in `sender_settings`.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use portal_core::domain::{SenderSettings, TenantId};
use portal_core::ports::{SenderStore, StoreError};

use super::{parse_stored, OrStore, SqliteStore};

#[async_trait]
impl SenderStore for SqliteStore {
    async fn get_sender_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<SenderSettings>, StoreError> {
        const OP: &str = "get_sender_settings";
        let tenant = tenant.clone();
        self.read(OP, move |conn| {
            let body: Option<String> = conn
                .query_row(
                    "SELECT body FROM sender_settings WHERE tenant = ?1",
                    params![tenant.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .or_store(OP)?;
            body.map(|b| parse_stored(OP, "sender settings", serde_json::from_str(&b)))
                .transpose()
        })
        .await
    }

    async fn put_sender_settings(
        &self,
        tenant: &TenantId,
        settings: &SenderSettings,
    ) -> Result<(), StoreError> {
        const OP: &str = "put_sender_settings";
        let body = serde_json::to_string(settings).map_err(|e| StoreError::backend(OP, e))?;
        let tenant = tenant.clone();
        self.write(OP, move |conn| {
            conn.execute(
                "INSERT INTO sender_settings (tenant, body) VALUES (?1, ?2) \
                 ON CONFLICT (tenant) DO UPDATE SET body = excluded.body",
                params![tenant.as_str(), body],
            )
            .or_store(OP)?;
            Ok(())
        })
        .await
    }
}
