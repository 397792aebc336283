//! Templates and the invitation preview.
//!
//! - `PUT /v1/templates/{template_id}` (`settings:manage`): create or replace; a template
//!   that breaks a rule of [`portal_core::domain::Template`] (unknown tag, no `[PortalLink]` in the
//!   html or text part, too large) is a 422 whose detail names the tag and the part, and whose
//!   `field` (`name`, `subject`, `html`, `text`) and `tag` say the same for a client to show
//!   the error at the field ([`template_error`]).
//! - `GET /v1/templates/{template_id}`, `GET /v1/templates` (`invitations:read`).
//! - `DELETE /v1/templates/{template_id}` (`settings:manage`): 204, or 404.
//! - `POST /v1/invitations/preview` (`invitations:read`): what would be sent to one contact
//!   (or to a built-in sample contact), rendered by the same [`Template::render`] a send uses.
//!   The template is a saved one (`template_id`) or an unsaved draft (`template`: kind,
//!   subject, html, text — exactly one of the two), a draft being checked by the same
//!   [`Template::of_kind`] as a save (so the same 422) and written nowhere.
//!   No registration or unsubscribe token is created or consumed: the links carry
//!   [`PREVIEW_TOKEN`]. A portal key is a secret only staff with `registrations:manage`
//!   read, so `[PortalKey]` renders as [`PREVIEW_PORTAL_KEY`] in every preview (a real send
//!   renders the account's key).
//! - A template has a kind (`invitation`, the default, or `portal_key`: the email a matched
//!   sign-up request gets, which must carry `[AccountNumber]` and `[PortalKey]`).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use portal_core::domain::{
    ContactId, MergeValues, Template, TemplateError, TemplateId, TemplateKind, TemplatePart,
    TenantId,
};
use portal_core::usecases::UseCaseError;

use super::auth::{perm, Authorized};
use super::divisions::path_id;
use super::error::ApiError;
use super::json::ApiJson;
use super::paging::{ItemPage, PageParams};
use super::AppState;

/// Body limit of `PUT /v1/templates/{template_id}` and `POST /v1/invitations/preview` (a
/// draft): two 100 KiB parts, with room for JSON escaping (a quote or newline doubles in size).
pub const TEMPLATE_BODY_LIMIT: usize = 1024 * 1024;

/// The token a preview's links carry instead of a real one.
pub const PREVIEW_TOKEN: &str = "PREVIEW-NOT-A-REAL-TOKEN";

/// What `[PortalKey]` renders as in a preview: the shape of a key, never a real one.
pub const PREVIEW_PORTAL_KEY: &str = "XXXX-XXXX-XXXX-XXXX";

/// The body of `PUT /v1/templates/{template_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// `invitation` (default) or `portal_key`.
    #[serde(default)]
    pub kind: TemplateKind,
    pub name: String,
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The body of `POST /v1/invitations/preview`: a saved template (`template_id`) or a draft
/// (`template`), exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    #[serde(default)]
    pub template_id: Option<TemplateId>,
    #[serde(default)]
    pub template: Option<DraftTemplate>,
    #[serde(default)]
    pub contact_id: Option<ContactId>,
}

/// An unsaved template to preview: the parts of a [`TemplateBody`] that render (no name).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftTemplate {
    #[serde(default)]
    pub kind: TemplateKind,
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The id and name a draft is checked and rendered under (neither is shown in a preview).
const DRAFT_ID: &str = "draft";
const DRAFT_NAME: &str = "Draft";

/// What `POST /v1/invitations/preview` answers.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub subject: String,
    pub html: String,
    pub text: String,
    pub from: String,
}

fn store_error(e: portal_core::ports::StoreError) -> ApiError {
    UseCaseError::from(e).into()
}

/// A template's refusal as a 422 naming the field (`name`, `subject`, `html`, `text`) and,
/// when there is one, the tag at fault; the detail is the error's own sentence.
pub fn template_error(e: TemplateError) -> ApiError {
    let part = |p: &TemplatePart| match p {
        TemplatePart::Subject => "subject",
        TemplatePart::Html => "html",
        TemplatePart::Text => "text",
    };
    let (field, tag, position) = match &e {
        TemplateError::UnknownTag {
            tag,
            part: p,
            position,
        } => (part(p), Some(format!("[{tag}]")), Some(*position)),
        TemplateError::MissingPortalLink { part: p } => {
            (part(p), Some("[PortalLink]".to_owned()), None)
        }
        TemplateError::MissingTag { part: p, tag, .. } => (part(p), Some(tag.to_string()), None),
        TemplateError::TooLarge { part: p, .. } => (part(p), None, None),
        TemplateError::BadSubject(_) => ("subject", None, None),
        TemplateError::BadName(_) => ("name", None, None),
    };
    ApiError::InvalidTemplate {
        detail: e.to_string(),
        field,
        tag,
        position,
    }
}

fn template_not_found(id: &TemplateId) -> ApiError {
    ApiError::NotFound(format!("template {id} does not exist"))
}

async fn load(state: &AppState, tenant: &TenantId, id: &TemplateId) -> Result<Template, ApiError> {
    state
        .store
        .get_template(tenant, id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| template_not_found(id))
}

/// Creates or replaces a template.
pub async fn put(
    caller: Authorized<perm::SettingsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Json<Template>, ApiError> {
    let id = path_id("template_id", path, TemplateId::parse)?;
    let template = Template::of_kind(body.kind, id, body.name, body.subject, body.html, body.text)
        .map_err(template_error)?;
    state
        .store
        .put_template(&caller.tenant, &template)
        .await
        .map_err(store_error)?;
    tracing::info!(tenant = %caller.tenant, template = %template.template_id(), "template saved");
    Ok(Json(template))
}

pub async fn get(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Template>, ApiError> {
    let id = path_id("template_id", path, TemplateId::parse)?;
    Ok(Json(load(&state, &caller.tenant, &id).await?))
}

/// `GET /v1/templates?cursor=&limit=`: a page of the caller's tenant's templates, ordered
/// by id.
pub async fn list(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<ItemPage<Template>>, ApiError> {
    let (cursor, limit) = PageParams::of(query)?;
    let page = state
        .store
        .list_templates(&caller.tenant, cursor.as_deref(), limit)
        .await
        .map_err(store_error)?;
    Ok(Json(ItemPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

pub async fn delete(
    caller: Authorized<perm::SettingsManage>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id("template_id", path, TemplateId::parse)?;
    if state
        .store
        .delete_template(&caller.tenant, &id)
        .await
        .map_err(store_error)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(template_not_found(&id))
    }
}

/// The sample contact a preview without `contact_id` renders for.
fn sample_values(division_name: String) -> MergeValues {
    MergeValues {
        contact_name: "Alex Sample".into(),
        account_number: "100001".into(),
        account_name: "Sample Account".into(),
        division_name,
        ..MergeValues::default()
    }
}

/// Renders a template exactly as a send would, with placeholder tokens.
pub async fn preview(
    caller: Authorized<perm::InvitationsRead>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PreviewBody>,
) -> Result<Json<Preview>, ApiError> {
    let tenant = &caller.tenant;
    let template = match (body.template_id, body.template) {
        (Some(id), None) => load(&state, tenant, &id).await?,
        (None, Some(draft)) => Template::of_kind(
            draft.kind,
            TemplateId::parse(DRAFT_ID).map_err(|e| ApiError::Internal(Box::new(e)))?,
            DRAFT_NAME,
            draft.subject,
            draft.html,
            draft.text,
        )
        .map_err(template_error)?,
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::Unprocessable(
                "give exactly one of template_id (a saved template) and template (an unsaved \
                 draft: kind, subject, html, text)"
                    .into(),
            ))
        }
    };
    let (mut values, from) = match &body.contact_id {
        Some(contact_id) => {
            let contact = state
                .store
                .get_contact(tenant, contact_id)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    ApiError::NotFound(format!("contact {contact_id} does not exist"))
                })?;
            let division = state
                .store
                .get_division(tenant, &contact.division_id)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "division {} of contact {contact_id} does not exist",
                        contact.division_id
                    ))
                })?;
            let values = MergeValues {
                contact_name: contact.contact_name,
                account_number: contact.account_number,
                account_name: contact.account_name,
                division_name: division.name,
                ..MergeValues::default()
            };
            (values, division.email_from)
        }
        None => {
            let division = state
                .store
                .list_divisions(tenant)
                .await
                .map_err(store_error)?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    ApiError::Unprocessable(
                        "the tenant has no division yet, so there is no sender address to \
                         preview with; create a division first"
                            .into(),
                    )
                })?;
            (sample_values(division.name), division.email_from)
        }
    };
    values.portal_link = match template.kind() {
        TemplateKind::Invitation => MergeValues::registration_url(&state.public_url, PREVIEW_TOKEN),
        TemplateKind::PortalKey => {
            MergeValues::portal_key_url(&state.public_url, tenant.as_str(), &values.account_number)
        }
    };
    values.unsubscribe_link = MergeValues::unsubscribe_url(&state.public_url, PREVIEW_TOKEN);
    values.portal_key = PREVIEW_PORTAL_KEY.into();
    let rendered = template.render(&values);
    Ok(Json(Preview {
        subject: rendered.subject,
        html: rendered.html,
        text: rendered.text,
        from: from.to_string(),
    }))
}
