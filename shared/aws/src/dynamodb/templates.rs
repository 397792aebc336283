//! [`TemplateStore`] on DynamoDB: one item per template, `pk = T#{tenant}`,
//! `sk = TPL#{template}`, with the raw `name`, `subject`, `html` and `text` (at most
//! ~200 KiB together, well under the 400 KB item limit), and its `kind` (`invitation` or
//! `portal_key`; absent on items written before kinds existed, which are invitations). It
//! shares the tenant partition with the divisions; `TPL#` and `DIV#` never prefix each other,
//! so a `begins_with` Query reads only one kind of item. A read parses the text again with
//! [`Template::of_kind`].
//!
//! | operation | requests |
//! |---|---|
//! | `put_template` | PutItem (replaces the whole item) |
//! | `get_template` | GetItem, strongly consistent |
//! | `delete_template` | DeleteItem with `ReturnValues = ALL_OLD` (tells a missing one apart) |
//! | `list_templates` | Query `pk = T#{t}`, `sk` between `TPL#{after}` and `TPL#~`, `Limit` one past the page |

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use portal_core::domain::{Template, TemplateId, TemplateKind, TenantId};
use portal_core::ports::{cursor, Page, StoreError, TemplateStore};

use super::items::{self, s, Item};
use super::ops;
use super::{keys, DynamoStore};

const TEMPLATE_SK_PREFIX: &str = "TPL#";
const NAME: &str = "name";
const SUBJECT: &str = "subject";
const HTML: &str = "html";
const TEXT: &str = "text";
const KIND: &str = "kind";

fn template_sk(id: &TemplateId) -> String {
    format!("{TEMPLATE_SK_PREFIX}{id}")
}

/// A stored template item that does not parse (edited by hand, or corrupt).
#[derive(Debug, thiserror::Error)]
#[error("stored template item is malformed: {0}")]
struct Malformed(String);

fn decode(item: &Item) -> Result<Template, StoreError> {
    const OP: &str = "decode template";
    let get = |name: &str| {
        items::get_str(item, name)
            .map(str::to_owned)
            .ok_or_else(|| StoreError::backend(OP, Malformed(format!("missing {name}"))))
    };
    let sk = get(items::SK)?;
    let raw_id = sk
        .strip_prefix(TEMPLATE_SK_PREFIX)
        .ok_or_else(|| StoreError::backend(OP, Malformed("sort key".into())))?;
    let id =
        TemplateId::parse(raw_id).map_err(|e| StoreError::backend(OP, Malformed(e.to_string())))?;
    let kind = match items::get_str(item, KIND) {
        None => TemplateKind::Invitation,
        Some(k) => TemplateKind::parse(k)
            .ok_or_else(|| StoreError::backend(OP, Malformed(format!("kind {k}"))))?,
    };
    Template::of_kind(kind, id, get(NAME)?, get(SUBJECT)?, get(HTML)?, get(TEXT)?)
        .map_err(|e| StoreError::backend(OP, Malformed(e.to_string())))
}

#[async_trait]
impl TemplateStore for DynamoStore {
    async fn put_template(&self, tenant: &TenantId, template: &Template) -> Result<(), StoreError> {
        let mut item = items::key(keys::tenant_pk(tenant), template_sk(template.template_id()));
        item.insert(NAME.into(), s(template.name()));
        item.insert(SUBJECT.into(), s(template.subject()));
        item.insert(HTML.into(), s(template.html()));
        item.insert(TEXT.into(), s(template.text()));
        item.insert(KIND.into(), s(template.kind().as_str()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::backend("PutItem", e))?;
        Ok(())
    }

    async fn get_template(
        &self,
        tenant: &TenantId,
        id: &TemplateId,
    ) -> Result<Option<Template>, StoreError> {
        self.get_item(
            "GetItem",
            items::key(keys::tenant_pk(tenant), template_sk(id)),
        )
        .await?
        .map(|i| decode(&i))
        .transpose()
    }

    async fn delete_template(
        &self,
        tenant: &TenantId,
        id: &TemplateId,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::key(keys::tenant_pk(tenant), template_sk(id))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::backend("DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn list_templates(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Template>, StoreError> {
        let after = cursor
            .map(|c| cursor::decode_id(cursor::TEMPLATES, c, TemplateId::parse))
            .transpose()?;
        ops::id_page(
            self.client.query().table_name(&self.table),
            keys::tenant_pk(tenant),
            TEMPLATE_SK_PREFIX,
            (cursor::TEMPLATES, after.as_ref().map(TemplateId::as_str)),
            limit,
            decode,
            |t| t.template_id().as_str(),
        )
        .await
    }
}
