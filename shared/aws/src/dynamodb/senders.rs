//! [`SenderStore`] on DynamoDB: one item per tenant (`pk = T#{tenant}`, `sk = SENDERS`)
//! holding the settings' JSON document in `body`.

use async_trait::async_trait;

use portal_core::domain::{SenderSettings, TenantId};
use portal_core::ports::{SenderStore, StoreError};

use super::items::{self, malformed, req_str, s};
use super::{keys, DynamoStore};

const BODY: &str = "body";

#[async_trait]
impl SenderStore for DynamoStore {
    async fn get_sender_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<SenderSettings>, StoreError> {
        self.get_item(
            "GetItem",
            items::key(keys::tenant_pk(tenant), keys::SENDERS_SK.to_owned()),
        )
        .await?
        .map(|item| {
            serde_json::from_str(req_str(&item, BODY)?).map_err(|_| malformed("sender settings"))
        })
        .transpose()
    }

    async fn put_sender_settings(
        &self,
        tenant: &TenantId,
        settings: &SenderSettings,
    ) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(settings).map_err(|e| StoreError::backend("encode item", e))?;
        let mut item = items::key(keys::tenant_pk(tenant), keys::SENDERS_SK.to_owned());
        item.insert(BODY.to_owned(), s(body));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::backend("PutItem", e))?;
        Ok(())
    }
}
