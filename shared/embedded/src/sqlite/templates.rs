//! [`TemplateStore`] on SQLite: one row per template in `templates (tenant, template_id)`,
//! holding the raw text; a read parses it again with [`Template::new`].

use async_trait::async_trait;
use rusqlite::{params, Row};

use portal_core::domain::{Template, TemplateId, TemplateKind, TenantId};
use portal_core::ports::{cursor, Page, StoreError, TemplateStore, MAX_PAGE_SIZE};

use super::{parse_stored, OrStore, SqliteStore};

const SELECT: &str = "SELECT template_id, name, subject, html, text, kind FROM templates";

fn read_template(op: &'static str, row: &Row<'_>) -> Result<Template, StoreError> {
    let get = |i: usize| row.get::<_, String>(i).or_store(op);
    let id = parse_stored(op, "template_id", TemplateId::parse(get(0)?))?;
    let kind = parse_stored(op, "template kind", TemplateKind::parse(&get(5)?).ok_or(()))?;
    parse_stored(
        op,
        "template",
        Template::of_kind(kind, id, get(1)?, get(2)?, get(3)?, get(4)?),
    )
}

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn put_template(&self, tenant: &TenantId, template: &Template) -> Result<(), StoreError> {
        const OP: &str = "put_template";
        let (tenant, t) = (tenant.clone(), template.clone());
        self.write(OP, move |conn| {
            conn.prepare_cached(
                "INSERT INTO templates (tenant, template_id, name, subject, html, text, kind) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (tenant, template_id) DO UPDATE SET name = excluded.name, \
                 subject = excluded.subject, html = excluded.html, text = excluded.text, \
                 kind = excluded.kind",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant.as_str(),
                    t.template_id().as_str(),
                    t.name(),
                    t.subject(),
                    t.html(),
                    t.text(),
                    t.kind().as_str()
                ])
            })
            .or_store(OP)?;
            Ok(())
        })
        .await
    }

    async fn get_template(
        &self,
        tenant: &TenantId,
        id: &TemplateId,
    ) -> Result<Option<Template>, StoreError> {
        const OP: &str = "get_template";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(OP, move |conn| {
            let mut s = conn
                .prepare_cached(&format!("{SELECT} WHERE tenant = ?1 AND template_id = ?2"))
                .or_store(OP)?;
            let mut rows = s
                .query(params![tenant.as_str(), id.as_str()])
                .or_store(OP)?;
            rows.next()
                .or_store(OP)?
                .map(|row| read_template(OP, row))
                .transpose()
        })
        .await
    }

    async fn delete_template(
        &self,
        tenant: &TenantId,
        id: &TemplateId,
    ) -> Result<bool, StoreError> {
        const OP: &str = "delete_template";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(OP, move |conn| {
            let n = conn
                .prepare_cached("DELETE FROM templates WHERE tenant = ?1 AND template_id = ?2")
                .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str()]))
                .or_store(OP)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_templates(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Template>, StoreError> {
        const OP: &str = "list_templates";
        let after = cursor
            .map(|c| cursor::decode_id(cursor::TEMPLATES, c, TemplateId::parse))
            .transpose()?;
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let tenant = tenant.clone();
        self.read(OP, move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "{SELECT} WHERE tenant = ?1 AND template_id > ?2 ORDER BY template_id LIMIT ?3"
                ))
                .or_store(OP)?;
            let after = after.as_ref().map_or("", TemplateId::as_str);
            let mut rows = s
                .query(params![tenant.as_str(), after, i64::from(limit) + 1])
                .or_store(OP)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().or_store(OP)? {
                out.push(read_template(OP, row)?);
            }
            Ok(super::page_after(out, limit, cursor::TEMPLATES, |t| {
                t.template_id().as_str()
            }))
        })
        .await
    }
}
