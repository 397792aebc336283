//! The template store port: a tenant's invitation templates, by id.
//!
//! A store keeps a template's raw text (name, subject, html, text) and parses it again on
//! read with [`Template::new`]. Every stored template was valid when it was saved, so a
//! stored template that no longer parses means the data was edited by hand or corrupted:
//! a [`StoreError::Backend`], never a silent skip.

use async_trait::async_trait;

use crate::domain::{Template, TemplateId, TenantId};

use super::{Page, StoreError};

#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Creates the template or replaces the one with the same id (the whole template).
    async fn put_template(&self, tenant: &TenantId, template: &Template) -> Result<(), StoreError>;
    async fn get_template(
        &self,
        tenant: &TenantId,
        id: &TemplateId,
    ) -> Result<Option<Template>, StoreError>;
    /// `false` when the template did not exist.
    async fn delete_template(&self, tenant: &TenantId, id: &TemplateId)
        -> Result<bool, StoreError>;
    /// One page of the tenant's templates, ordered by id, after `cursor` (made by this
    /// method; see [`cursor::TEMPLATES`](super::cursor::TEMPLATES)). `limit` is clamped to
    /// 1..=[`MAX_PAGE_SIZE`](super::MAX_PAGE_SIZE); `next_cursor` is `None` exactly when
    /// nothing follows.
    async fn list_templates(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Template>, StoreError>;
}
