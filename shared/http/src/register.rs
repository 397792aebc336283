//! The public registration pages: what a resident opens from an email, on a phone.
//!
//! | route | what |
//! |---|---|
//! | `GET /register?token=…` | the invitation's page: division, masked address, a password form. Changes nothing (mail scanners open links). |
//! | `POST /register?token=…` | registers (form or JSON): see `portal_core::usecases::registration`. |
//! | `GET/POST /register/key?tenant=…` | account number + portal key → a login, confirmed by an emailed link. |
//! | `GET/POST /register/confirm?tenant=…&token=…` | the confirmation link: `GET` shows, `POST` confirms. |
//! | `GET/POST /register/request?tenant=…` | a sign-up request for staff to match. |
//!
//! A `POST` with `Content-Type: application/json` answers JSON (problem+json on refusal);
//! a form post answers a page, with the status a JSON client would get (a wrong key is 422,
//! too many attempts 429 with `Retry-After`, an expired link 410...). Bad input never gets a
//! 500 and never echoes a password.
//!
//! The invitation link names no tenant (its 256-bit token is the authority); the other
//! pages carry the tenant in the query, as the links in our emails write it.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::Request;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use portal_core::domain::{percent_encode, Login, TenantId, MIN_PASSWORD_CHARS};
use portal_core::usecases::registration::{
    self as reg, KeyOutcome, KeySignUp, Registered, Registrar, RegistrationError, RequestForm,
};

use super::json::{body_rejection, is_json, json_error, media_type};
use super::pages::{escape, page};
use super::{describe_limit, ApiError, AppState, DEFAULT_BODY_LIMIT};

// --- Plumbing ----------------------------------------------------------------------------------

/// How the caller wants the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Html,
    Json,
}

/// Reads a body that is either JSON or a urlencoded form.
fn read_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Reply, T), ApiError> {
    let body = body.map_err(|r| body_rejection(r, &describe_limit(DEFAULT_BODY_LIMIT)))?;
    match media_type(headers).as_deref() {
        Some(m) if is_json(m) => serde_json::from_slice(&body)
            .map(|v| (Reply::Json, v))
            .map_err(|e| json_error(None, &e)),
        Some("application/x-www-form-urlencoded") | None => serde_urlencoded::from_bytes(&body)
            .map(|v| (Reply::Html, v))
            .map_err(|e| ApiError::Unprocessable(format!("the form is incomplete: {e}"))),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "expected application/x-www-form-urlencoded or application/json, got {other}"
        ))),
    }
}

fn registrar(state: &AppState) -> Result<&Registrar, ApiError> {
    state.registration.as_deref().ok_or_else(|| {
        ApiError::Internal(
            "registration is not configured on this server (no identity provider)".into(),
        )
    })
}

/// A query parameter, without control characters (it may be shown back in a form).
/// A query parameter as sent (empty when absent or when the query does not parse).
fn raw_param(q: &Result<Query<HashMap<String, String>>, QueryRejection>, name: &str) -> String {
    q.as_ref()
        .ok()
        .and_then(|Query(m)| m.get(name).cloned())
        .unwrap_or_default()
}

/// A query parameter without its control characters.
fn param(q: &Result<Query<HashMap<String, String>>, QueryRejection>, name: &str) -> String {
    raw_param(q, name)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// The `tenant` of a link, an id as sent: control characters are not dropped from it (a
/// tenant id has none, so such a link is incomplete, not another tenant's).
fn tenant_param(
    q: &Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<TenantId, ApiError> {
    TenantId::parse(raw_param(q, "tenant")).map_err(|_| {
        ApiError::BadRequest(
            "this link is incomplete: it does not say which company it is for (tenant)".into(),
        )
    })
}

/// The client's address for rate limits: the socket's peer when served directly (the local
/// server), else the last `X-Forwarded-For` entry (the one API Gateway appends).
fn client_address(headers: &HeaderMap, connect: Option<&ConnectInfo<SocketAddr>>) -> String {
    if let Some(ConnectInfo(addr)) = connect {
        return addr.ip().to_string();
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The API error a refusal is, for JSON callers (and the status of the page).
pub(crate) fn registration_error(state: &AppState, e: RegistrationError) -> ApiError {
    use RegistrationError as E;
    let detail = e.to_string();
    match e {
        E::UnknownLink | E::UnknownConfirmation | E::NotFound { .. } => ApiError::NotFound(detail),
        E::ExpiredLink { .. } | E::UsedLink | E::ExpiredConfirmation => ApiError::Gone(detail),
        E::Password(_) | E::Invalid(_) | E::KeyMismatch => ApiError::Unprocessable(detail),
        E::RateLimited { retry_after } => ApiError::TooManyRequests {
            detail,
            retry_after,
            retry_after_secs: super::campaigns::seconds_until(state.clock.now(), retry_after),
        },
        E::Conflict(_) => ApiError::Conflict(detail),
        E::Send(c) => super::campaigns::error_response(c, state.clock.now()),
        E::Identity(portal_core::ports::IdentityError::PasswordRefused(m)) => {
            ApiError::Unprocessable(format!("the password was refused: {m}"))
        }
        E::Identity(i) => ApiError::Unavailable(format!(
            "the sign-in service did not answer; nothing is lost, try the same link again in a minute ({})",
            portal_core::error_chain(&i)
        )),
        E::Mail(m) => ApiError::Unavailable(format!(
            "the confirmation email could not be sent; try again in a minute ({m})"
        )),
        E::SenderNotAllowed => ApiError::Unavailable(detail),
        E::Store(s) => ApiError::Internal(Box::new(s)),
    }
}

/// A refusal as a page: the status a JSON client would get, a heading and what to do next.
fn error_page(status: StatusCode, heading: &str, message_html: &str) -> Response {
    page(
        status,
        heading,
        &format!("<h1>{}</h1>\n{message_html}\n", escape(heading)),
    )
}

fn with_retry_after(mut res: Response, e: &ApiError) -> Response {
    if let ApiError::TooManyRequests {
        retry_after_secs, ..
    } = e
    {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
    }
    res
}

fn request_link(tenant: &TenantId) -> String {
    format!(
        "/register/request?tenant={}",
        percent_encode(tenant.as_str())
    )
}

fn key_link(tenant: &TenantId) -> String {
    format!("/register/key?tenant={}", percent_encode(tenant.as_str()))
}

/// Whether the client asked for JSON: a JSON body, or an `Accept` naming JSON and not HTML.
fn wants_json(headers: &HeaderMap) -> bool {
    if media_type(headers).is_some_and(|m| is_json(&m)) {
        return true;
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    accept.contains("json") && !accept.contains("text/html")
}

/// The layer of the resident pages: a refusal raised before a handler could render a page
/// (a link without its tenant, a form with an unknown field, a body too large...) reaches a
/// browser as a page with the same status (and `Retry-After`), not as problem+json. JSON
/// clients keep problem+json.
pub async fn pages_for_browsers(req: Request, next: Next) -> Response {
    let json = wants_json(req.headers());
    let response = next.run(req).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == super::error::PROBLEM_JSON.as_bytes());
    if json || !is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let problem: serde_json::Value = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    };
    let title = problem["title"].as_str().unwrap_or("That did not work");
    let detail = problem["detail"]
        .as_str()
        .unwrap_or("The request could not be handled.");
    let mut page = error_page(
        parts.status,
        title,
        &format!("<p role=\"alert\">{}</p>", escape(&sentence(detail))),
    );
    if let Some(retry) = parts.headers.get(header::RETRY_AFTER) {
        page.headers_mut()
            .insert(header::RETRY_AFTER, retry.clone());
    }
    page
}

/// The "Sign in" link of the pages that end a registration, when the portal's sign-in page
/// is configured.
fn sign_in(state: &AppState) -> String {
    state
        .registration
        .as_ref()
        .and_then(|r| r.settings.sign_in_url.as_deref())
        .map(|url| {
            format!(
                "<p><a href=\"{}\">Sign in to the portal</a></p>\n",
                escape(url)
            )
        })
        .unwrap_or_default()
}

/// A message as a sentence: capital first letter, final full stop.
pub(crate) fn sentence(s: &str) -> String {
    let s = s.trim();
    let mut chars = s.chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

// --- With an invitation link ---------------------------------------------------------------

/// The token of a `?token=` query.
fn token(q: &Result<Query<HashMap<String, String>>, QueryRejection>) -> String {
    param(q, "token")
}

fn link_error_page(
    sign_in: &str,
    e: &RegistrationError,
    tenant: Option<&TenantId>,
    status: StatusCode,
) -> Response {
    let ask = match tenant {
        Some(t) => format!(
            "<p>Ask your management company to send you a new invitation, or \
             <a href=\"{}\">request a login</a> and they will get back to you.</p>",
            escape(&request_link(t))
        ),
        None => "<p>Ask your management company to send you a new invitation. If you have \
                 a portal key from a welcome letter, you can sign up with it on your \
                 community's portal page.</p>"
            .to_owned(),
    };
    match e {
        RegistrationError::ExpiredLink { .. } => error_page(
            status,
            "This invitation has expired",
            &format!(
                "<p>Invitation links work for a limited time, and this one has run out.</p>{ask}"
            ),
        ),
        RegistrationError::UsedLink => error_page(
            status,
            "This invitation was already used",
            &format!(
                "<p>Someone registered with this link already — probably you. Sign in to the \
                 portal with your email address and the password you chose.</p>\
                 <p class=\"muted\">Forgot the password? Use “Forgot password” on the \
                 portal's sign-in page.</p>{sign_in}"
            ),
        ),
        _ => error_page(
            status,
            "This invitation link is not valid",
            &format!(
                "<p>The link may be incomplete: some email programs cut long links. \
                      Try copying the whole link from the email.</p>{ask}"
            ),
        ),
    }
}

/// A link without its token: a 400 page (a truncated link, most likely).
fn incomplete_link() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This link is incomplete",
        "<p>The link has no token: some email programs cut long links. Copy the whole link \
         from the email into the address bar.</p>",
    )
}

/// `GET /register?token=…`
pub async fn invitation_form(
    State(state): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let token = token(&q);
    if token.is_empty() {
        return incomplete_link();
    }
    match reg::invitation_page(state.store.as_ref(), state.clock.as_ref(), &token).await {
        Ok(view) => invitation_page(&token, &view.division_name, &view.masked_email, "", None),
        Err(e) => {
            let tenant = link_tenant(&state, &token).await;
            let status = registration_error(&state, clone_kind(&e)).status();
            link_error_page(&sign_in(&state), &e, tenant.as_ref(), status)
        }
    }
}

/// The tenant a token belongs to, for the "ask for a new one" link on an error page.
async fn link_tenant(state: &AppState, token: &str) -> Option<TenantId> {
    if token.is_empty() || token.len() > 128 {
        return None;
    }
    state
        .store
        .find_token(&portal_core::domain::hash_token(token))
        .await
        .ok()
        .flatten()
        .map(|r| r.tenant)
}

/// A copy of a link error (they carry no source) for status mapping.
fn clone_kind(e: &RegistrationError) -> RegistrationError {
    match e {
        RegistrationError::ExpiredLink { expired_at } => RegistrationError::ExpiredLink {
            expired_at: *expired_at,
        },
        RegistrationError::UsedLink => RegistrationError::UsedLink,
        RegistrationError::ExpiredConfirmation => RegistrationError::ExpiredConfirmation,
        RegistrationError::UnknownConfirmation => RegistrationError::UnknownConfirmation,
        _ => RegistrationError::UnknownLink,
    }
}

fn invitation_page(
    token: &str,
    division: &str,
    masked: &str,
    name: &str,
    error: Option<&str>,
) -> Response {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let community = if division.is_empty() {
        "your community".to_owned()
    } else {
        escape(division)
    };
    let alert = error
        .map(|m| {
            format!(
                "<p class=\"alert\" role=\"alert\" id=\"form-error\">{}</p>",
                escape(&sentence(m))
            )
        })
        .unwrap_or_default();
    let described = if error.is_some() {
        " aria-describedby=\"form-error pw-hint\""
    } else {
        " aria-describedby=\"pw-hint\""
    };
    let body = format!(
        "<h1>Create your portal login</h1>\n\
         <p class=\"lead\">You were invited to the <strong>{community}</strong> resident portal.</p>\n\
         <p>Your login will be <strong>{masked}</strong>, the address this invitation was sent to.</p>\n\
         {alert}\n\
         <form method=\"post\" action=\"/register?token={token}\">\n\
         <label for=\"name\">Your name <span class=\"hint\">optional</span></label>\n\
         <input id=\"name\" name=\"name\" value=\"{name}\" autocomplete=\"name\" maxlength=\"200\">\n\
         <label for=\"password\">Choose a password\
         <span class=\"hint\" id=\"pw-hint\">At least {MIN_PASSWORD_CHARS} characters. A few unrelated words make a good one.</span></label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" \
         minlength=\"{MIN_PASSWORD_CHARS}\" maxlength=\"128\" required{described}>\n\
         <button type=\"submit\">Create my login</button>\n\
         </form>\n",
        masked = escape(masked),
        name = escape(name),
        token = escape(&percent_encode(token)),
    );
    page(status, "Create your portal login", &body)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub password: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Serialize)]
struct RegisteredJson<'a> {
    status: &'static str,
    email: &'a str,
    new_login: bool,
    contact_ids: &'a [portal_core::domain::ContactId],
}

/// `POST /register?token=…`
pub async fn invitation_submit(
    State(state): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let token = token(&q);
    if token.is_empty() {
        return Err(ApiError::BadRequest(
            "the query parameter token is required: use the whole link from the email".into(),
        ));
    }
    let (reply, form): (Reply, PasswordBody) = read_body(&headers, body)?;
    let registrar = registrar(&state)?;
    let result = reg::register_with_invitation(
        state.store.as_ref(),
        state.clock.as_ref(),
        registrar,
        &token,
        &form.password,
        form.name.as_deref(),
    )
    .await;
    match (reply, result) {
        (Reply::Json, Ok(r)) => {
            let (login, new_login) = registered_login(&r);
            Ok((
                StatusCode::CREATED,
                Json(RegisteredJson {
                    status: "registered",
                    email: login.email.as_str(),
                    new_login,
                    contact_ids: &login.contact_ids,
                }),
            )
                .into_response())
        }
        (Reply::Json, Err(e)) => Err(registration_error(&state, e)),
        (Reply::Html, Ok(r)) => Ok(registered_page(&r, &sign_in(&state))),
        (
            Reply::Html,
            Err(e @ (RegistrationError::Password(_) | RegistrationError::Invalid(_))),
        ) => {
            let view =
                reg::invitation_page(state.store.as_ref(), state.clock.as_ref(), &token).await;
            match view {
                Ok(v) => Ok(invitation_page(
                    &token,
                    &v.division_name,
                    &v.masked_email,
                    form.name.as_deref().unwrap_or(""),
                    Some(&e.to_string()),
                )),
                Err(e) => Ok(link_error_page(
                    &sign_in(&state),
                    &e,
                    None,
                    registration_error(&state, clone_kind(&e)).status(),
                )),
            }
        }
        (
            Reply::Html,
            Err(
                e @ (RegistrationError::UnknownLink
                | RegistrationError::ExpiredLink { .. }
                | RegistrationError::UsedLink),
            ),
        ) => {
            let tenant = link_tenant(&state, &token).await;
            let status = registration_error(&state, clone_kind(&e)).status();
            Ok(link_error_page(
                &sign_in(&state),
                &e,
                tenant.as_ref(),
                status,
            ))
        }
        (Reply::Html, Err(e)) => Ok(failure_page(&state, e)),
    }
}

fn registered_login(r: &Registered) -> (&Login, bool) {
    match r {
        Registered::NewLogin { login } => (login, true),
        Registered::JoinedExisting { login } => (login, false),
    }
}

fn registered_page(r: &Registered, sign_in: &str) -> Response {
    let (login, new_login) = registered_login(r);
    let masked = escape(&portal_core::domain::unsubscribe::mask_email(&login.email));
    let body = if new_login {
        format!(
            "<h1>You are registered</h1>\n<p class=\"done\" role=\"status\">Your portal login is ready.</p>\n\
             <p>Sign in to the portal with <strong>{masked}</strong> and the password you just chose.</p>\n{sign_in}"
        )
    } else if !login.confirmed {
        // A portal-key sign-up of this address still waits for its confirmation link.
        format!(
            "<h1>You already have a login</h1>\n<p class=\"done\" role=\"status\">This invitation is now \
             linked to your login.</p>\n<p>That login waits for you to confirm <strong>{masked}</strong>: \
             open the link in the confirmation email we sent you, then sign in with the password you \
             chose when you signed up.</p>\n"
        )
    } else {
        format!(
            "<h1>You already have a login</h1>\n<p class=\"done\" role=\"status\">This invitation is now \
             linked to your existing login.</p>\n<p>Sign in to the portal with <strong>{masked}</strong> and \
             the password you already use; nothing new was created.</p>\n{sign_in}"
        )
    };
    page(StatusCode::OK, "Registered", &body)
}

/// Any other refusal as a page with the JSON status.
fn failure_page(state: &AppState, e: RegistrationError) -> Response {
    let heading = match &e {
        RegistrationError::RateLimited { .. } => "Too many attempts",
        RegistrationError::Identity(_) | RegistrationError::Mail(_) => {
            "Please try again in a minute"
        }
        RegistrationError::Store(_) => "Something went wrong on our side",
        RegistrationError::SenderNotAllowed => "Sign-up is not available yet",
        _ => "That did not work",
    };
    let api = registration_error(state, e);
    let status = api.status();
    let message = match &api {
        ApiError::Internal(_) => {
            "The request failed on our side and has been logged. Please try again later.".to_owned()
        }
        other => other.to_string(),
    };
    if let ApiError::Internal(cause) = &api {
        tracing::error!(error = %portal_core::error_chain(cause.as_ref()), "registration page failed");
    }
    with_retry_after(
        error_page(
            status,
            heading,
            &format!("<p role=\"alert\">{}</p>", escape(&sentence(&message))),
        ),
        &api,
    )
}

// --- With a portal key -------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    #[serde(default)]
    pub account_number: String,
    #[serde(default)]
    pub portal_key: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
}

fn key_page(
    tenant: &TenantId,
    prefill: &KeyBody,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let alert = error
        .map(|m| {
            format!(
                "<p class=\"alert\" role=\"alert\">{}</p>",
                escape(&sentence(m))
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign up with your portal key</h1>\n\
         <p>Your account number and portal key are on your welcome letter or in the email we sent you.</p>\n\
         {alert}\n\
         <form method=\"post\" action=\"{action}\">\n\
         <label for=\"account_number\">Account number</label>\n\
         <input id=\"account_number\" name=\"account_number\" value=\"{number}\" required maxlength=\"200\" autocomplete=\"off\">\n\
         <label for=\"portal_key\">Portal key <span class=\"hint\">Letters and digits; dashes and spaces do not matter.</span></label>\n\
         <input id=\"portal_key\" name=\"portal_key\" required maxlength=\"80\" autocomplete=\"off\" autocapitalize=\"characters\">\n\
         <label for=\"name\">Your name</label>\n\
         <input id=\"name\" name=\"name\" value=\"{name}\" required maxlength=\"200\" autocomplete=\"name\">\n\
         <label for=\"email\">Email address <span class=\"hint\">We will send a link to confirm it.</span></label>\n\
         <input id=\"email\" name=\"email\" type=\"email\" value=\"{email}\" required autocomplete=\"email\">\n\
         <label for=\"password\">Choose a password <span class=\"hint\">At least {MIN_PASSWORD_CHARS} characters.</span></label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" required minlength=\"{MIN_PASSWORD_CHARS}\" maxlength=\"128\" autocomplete=\"new-password\">\n\
         <button type=\"submit\">Sign up</button>\n\
         </form>\n\
         <p class=\"muted\">No portal key? <a href=\"{request}\">Request a login</a> instead.</p>\n",
        action = escape(&key_link(tenant)),
        number = escape(&prefill.account_number),
        name = escape(&prefill.name),
        email = escape(&prefill.email),
        request = escape(&request_link(tenant)),
    );
    page(status, "Sign up with your portal key", &body)
}

/// `GET /register/key?tenant=…&account=…`
pub async fn key_form(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant_param(&q)?;
    let prefill = KeyBody {
        account_number: param(&q, "account"),
        ..KeyBody::default()
    };
    Ok(key_page(&tenant, &prefill, None, StatusCode::OK))
}

/// `POST /register/key?tenant=…`
pub async fn key_submit(
    State(state): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant_param(&q)?;
    let (reply, form): (Reply, KeyBody) = read_body(&headers, body)?;
    let registrar = registrar(&state)?;
    let client = client_address(&headers, connect.as_ref().map(|axum::Extension(c)| c));
    let result = reg::register_with_key(
        state.store.as_ref(),
        state.clock.as_ref(),
        registrar,
        &state.public_url,
        &tenant,
        &client,
        &KeySignUp {
            account_number: form.account_number.clone(),
            portal_key: form.portal_key.clone(),
            name: form.name.clone(),
            email: form.email.clone(),
            password: form.password.clone(),
        },
    )
    .await;
    match (reply, result) {
        (Reply::Json, Ok(KeyOutcome::ConfirmationSent { masked_email })) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"status": "confirmation_sent", "email": masked_email})),
        )
            .into_response()),
        (Reply::Json, Ok(KeyOutcome::AlreadyRegistered)) => Ok((
            StatusCode::OK,
            Json(serde_json::json!({"status": "already_registered"})),
        )
            .into_response()),
        (Reply::Json, Err(e)) => Err(registration_error(&state, e)),
        (Reply::Html, Ok(KeyOutcome::ConfirmationSent { masked_email })) => Ok(page(
            StatusCode::OK,
            "Check your email",
            &format!(
                "<h1>Check your email</h1>\n<p class=\"done\" role=\"status\">We sent a confirmation link to \
                 <strong>{}</strong>.</p>\n<p>Open it to start using your login. Until then it cannot sign in.</p>\n",
                escape(&masked_email)
            ),
        )),
        (Reply::Html, Ok(KeyOutcome::AlreadyRegistered)) => Ok(page(
            StatusCode::OK,
            "You already have a login",
            &format!(
                "<h1>You already have a login</h1>\n<p>This email address already has a portal login: \
                 sign in with it. Nothing new was created.</p>\n<p class=\"muted\">Forgot the password? \
                 Use “Forgot password” on the portal's sign-in page.</p>\n{}",
                sign_in(&state)
            ),
        )),
        (Reply::Html, Err(e @ (RegistrationError::KeyMismatch | RegistrationError::Password(_) | RegistrationError::Invalid(_)))) => {
            let status = registration_error(&state, RegistrationError::KeyMismatch).status();
            let prefill = KeyBody { password: String::new(), portal_key: String::new(), ..form };
            Ok(key_page(&tenant, &prefill, Some(&e.to_string()), status))
        }
        (Reply::Html, Err(e)) => Ok(failure_page(&state, e)),
    }
}

// --- Confirmation ------------------------------------------------------------------------------

/// `GET /register/confirm?tenant=…&token=…`: shows; changes nothing.
pub async fn confirm_form(
    State(state): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant_param(&q)?;
    let token = token(&q);
    if token.is_empty() {
        return Ok(incomplete_link());
    }
    match reg::confirmation_page(state.store.as_ref(), state.clock.as_ref(), &tenant, &token).await {
        Ok(view) if view.confirmed => Ok(confirmed_page(&view.masked_email, &sign_in(&state))),
        Ok(view) => Ok(page(
            StatusCode::OK,
            "Confirm your email",
            &format!(
                "<h1>Confirm your email</h1>\n<p>Confirm that <strong>{masked}</strong> is your address to \
                 start using your portal login.</p>\n<form method=\"post\" action=\"/register/confirm?tenant={t}&amp;token={tok}\">\n\
                 <button type=\"submit\">Confirm my email address</button>\n</form>\n",
                masked = escape(&view.masked_email),
                t = escape(&percent_encode(tenant.as_str())),
                tok = escape(&percent_encode(&token)),
            ),
        )),
        Err(e) => Ok(confirm_error_page(&state, &tenant, e)),
    }
}

fn confirmed_page(masked: &str, sign_in: &str) -> Response {
    page(
        StatusCode::OK,
        "Email confirmed",
        &format!(
            "<h1>Your email is confirmed</h1>\n<p class=\"done\" role=\"status\">Your portal login is ready.</p>\n\
             <p>Sign in to the portal with <strong>{}</strong> and the password you chose.</p>\n{sign_in}",
            escape(masked)
        ),
    )
}

fn confirm_error_page(state: &AppState, tenant: &TenantId, e: RegistrationError) -> Response {
    match e {
        RegistrationError::ExpiredConfirmation | RegistrationError::UnknownConfirmation => {
            let status = registration_error(state, clone_kind(&e)).status();
            error_page(
                status,
                if matches!(e, RegistrationError::ExpiredConfirmation) {
                    "This confirmation link has expired"
                } else {
                    "This confirmation link is not valid"
                },
                &format!(
                    "<p>Sign up again with your account number and portal key, and use the new link \
                     we email you.</p><p><a href=\"{}\">Sign up with my portal key</a></p>",
                    escape(&key_link(tenant))
                ),
            )
        }
        other => failure_page(state, other),
    }
}

/// `POST /register/confirm?tenant=…&token=…`
pub async fn confirm_submit(
    State(state): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant_param(&q)?;
    let token = token(&q);
    if token.is_empty() {
        return Err(ApiError::BadRequest(
            "the query parameter token is required: use the whole link from the email".into(),
        ));
    }
    let json = media_type(&headers).is_some_and(|m| is_json(&m));
    let registrar = registrar(&state)?;
    let result = reg::confirm(
        state.store.as_ref(),
        state.clock.as_ref(),
        registrar,
        &tenant,
        &token,
    )
    .await;
    match (json, result) {
        (true, Ok(login)) => Ok(Json(
            serde_json::json!({"status": "confirmed", "email": login.email}),
        )
        .into_response()),
        (true, Err(e)) => Err(registration_error(&state, e)),
        (false, Ok(login)) => Ok(confirmed_page(
            &portal_core::domain::unsubscribe::mask_email(&login.email),
            &sign_in(&state),
        )),
        (false, Err(e)) => Ok(confirm_error_page(&state, &tenant, e)),
    }
}

// --- Sign-up requests --------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub division_id: String,
    #[serde(default)]
    pub account_number: String,
}

async fn request_page(
    state: &AppState,
    tenant: &TenantId,
    prefill: &RequestBody,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let divisions = state
        .store
        .list_divisions(tenant)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    if divisions.is_empty() {
        return Ok(error_page(
            StatusCode::NOT_FOUND,
            "Sign-up is not available here",
            "<p>This sign-up link does not belong to a community we know. Check the link with \
             your management company.</p>",
        ));
    }
    let options: String = divisions
        .iter()
        .map(|d| {
            format!(
                "<option value=\"{id}\"{sel}>{name}</option>",
                id = escape(d.division_id.as_str()),
                sel = if d.division_id.as_str() == prefill.division_id {
                    " selected"
                } else {
                    ""
                },
                name = escape(&d.name)
            )
        })
        .collect();
    let alert = error
        .map(|m| {
            format!(
                "<p class=\"alert\" role=\"alert\">{}</p>",
                escape(&sentence(m))
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Request a portal login</h1>\n\
         <p>No portal key? Tell us who you are and staff will match you to your account, then email you \
         your account number and portal key.</p>\n{alert}\n\
         <form method=\"post\" action=\"{action}\">\n\
         <label for=\"name\">Your name</label>\n<input id=\"name\" name=\"name\" value=\"{name}\" required maxlength=\"200\" autocomplete=\"name\">\n\
         <label for=\"email\">Email address</label>\n<input id=\"email\" name=\"email\" type=\"email\" value=\"{email}\" required autocomplete=\"email\">\n\
         <label for=\"phone\">Phone <span class=\"hint\">optional</span></label>\n<input id=\"phone\" name=\"phone\" type=\"tel\" value=\"{phone}\" maxlength=\"200\" autocomplete=\"tel\">\n\
         <label for=\"address\">Property address</label>\n<input id=\"address\" name=\"address\" value=\"{address}\" required maxlength=\"200\" autocomplete=\"street-address\">\n\
         <label for=\"division_id\">Community</label>\n<select id=\"division_id\" name=\"division_id\" required>{options}</select>\n\
         <label for=\"account_number\">Account number <span class=\"hint\">optional, if you know it</span></label>\n<input id=\"account_number\" name=\"account_number\" value=\"{number}\" maxlength=\"200\">\n\
         <button type=\"submit\">Send my request</button>\n</form>\n\
         <p class=\"muted\">Have a portal key? <a href=\"{key}\">Sign up with it</a> and get your login at once.</p>\n",
        action = escape(&request_link(tenant)),
        name = escape(&prefill.name),
        email = escape(&prefill.email),
        phone = escape(&prefill.phone),
        address = escape(&prefill.address),
        number = escape(&prefill.account_number),
        key = escape(&key_link(tenant)),
    );
    Ok(page(status, "Request a portal login", &body))
}

/// `GET /register/request?tenant=…`
pub async fn request_form(
    State(state): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant_param(&q)?;
    request_page(
        &state,
        &tenant,
        &RequestBody::default(),
        None,
        StatusCode::OK,
    )
    .await
}

/// The one answer to every filed request, known address or not.
const REQUEST_RECEIVED: &str = "Thank you. We received your request and will be in touch by email.";

/// `POST /register/request?tenant=…`
pub async fn request_submit(
    State(state): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant_param(&q)?;
    let (reply, form): (Reply, RequestBody) = read_body(&headers, body)?;
    let result = reg::file_request(
        state.store.as_ref(),
        state.clock.as_ref(),
        &tenant,
        &RequestForm {
            name: form.name.clone(),
            email: form.email.clone(),
            phone: form.phone.clone(),
            address: form.address.clone(),
            division_id: form.division_id.clone(),
            account_number: form.account_number.clone(),
        },
    )
    .await;
    match (reply, result) {
        (Reply::Json, Ok(_)) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"status": "received", "detail": REQUEST_RECEIVED})),
        )
            .into_response()),
        (Reply::Json, Err(e)) => Err(registration_error(&state, e)),
        (Reply::Html, Ok(_)) => Ok(page(
            StatusCode::OK,
            "Request received",
            &format!("<h1>Request received</h1>\n<p class=\"done\" role=\"status\">{REQUEST_RECEIVED}</p>\n"),
        )),
        (Reply::Html, Err(e @ RegistrationError::Invalid(_))) => {
            request_page(&state, &tenant, &form, Some(&e.to_string()), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        (Reply::Html, Err(e)) => Ok(failure_page(&state, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_peer_or_the_last_forwarded_address() {
        let mut h = HeaderMap::new();
        assert_eq!(client_address(&h, None), "unknown");
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 203.0.113.9"),
        );
        assert_eq!(client_address(&h, None), "203.0.113.9");
        let peer = ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9)));
        assert_eq!(client_address(&h, Some(&peer)), "127.0.0.1");
    }
}
