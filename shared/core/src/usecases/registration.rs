//! Registration: what the resident pages and the staff routes do, written once against the
//! ports ([`RegistrationStore`], [`Identity`], [`RegistrationEvents`], [`Mailer`]).
//!
//! # With an invitation link
//!
//! [`invitation_page`] only reads (mail scanners open links). [`register_with_invitation`]:
//!
//! 1. finds the invitation by the token's hash, refuses it when unknown or expired
//!    (`now >= expires_at`: a link dies at the exact instant its 14 days end);
//! 2. checks the password against the address the invitation went to;
//! 3. asks the store to record the registration in one conditional write
//!    ([`RegistrationStore::register`]): the token is consumed only if unused, the address
//!    reserved only if no login holds it, the contact made `accepted` — with every other
//!    contact of the tenant with the invitation's address (compared case-insensitively):
//!    one link proves the address, and the login covers each contact that has it;
//! 4. has the identity provider hold the password, then marks the login provisioned;
//! 5. moves the invitation to `registered` through the same state machine as SES events
//!    ([`crate::ports::CampaignStore::apply_facts`]: the campaign's counters move in the same
//!    write, and no later SES event can move it back);
//! 6. closes the address's open sign-up requests and tells the portal
//!    ([`PortalRegistration`]).
//!
//! A process that dies between 3 and 6 leaves the token consumed; the next attempt with the
//! same link finds the login naming this contact and finishes steps 4–6 (each idempotent),
//! so a registration is never half-made for good. If the address already has a login, the
//! contact joins it and is `accepted`; nothing is created twice.
//!
//! # With a portal key
//!
//! [`register_with_key`]: account number + key → a login at once, which can sign in once the
//! address is confirmed by the emailed link ([`confirm`]). A wrong key and an unknown account
//! number take the same path (a key is compared even when there is no account) and answer
//! the same [`RegistrationError::KeyMismatch`]. Failures are counted per account number and
//! per client address in fixed windows; at [`RegistrationSettings::failure_limit`] further
//! attempts are refused until the window ends, without even looking the key up.
//!
//! # Without a key
//!
//! [`file_request`] always answers the same (no enumeration of addresses or accounts). Staff
//! list requests, see [`suggest_matches`], [`match_request`] (which sends the portal key
//! email as a campaign of one under the 24-hour rule) or [`reject_request`].

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::domain::unsubscribe::mask_email;
use crate::domain::{
    hash_token, AccountId, CampaignId, ContactId, ContactRecord, DivisionId, DomainError, Email,
    Filters, Group, InvitationFact, Login, MergeTag, Password, PasswordError, PortalKey, PublicUrl,
    RegistrationRequest, RequestEvent, RequestId, RequestStatus, SenderCheck, Template, TemplateId,
    TemplateKind, TenantId, Trigger,
};
use crate::mail::OutgoingEmail;
use crate::ports::{
    AccountKey, Clock, ConfirmOutcome, ContactQuery, Identity, IdentityError, ListQuery, Mailer,
    NewRegistration, Page, PortalRegistration, RegisterOutcome, RegistrationEvents, RequestFilter,
    Store, StoreError, Via, MAX_PAGE_SIZE,
};
use crate::usecases::campaigns::{self, CampaignError, SendIndividual, Sending, Started};

/// The id of the portal key template a match uses when staff name none. Saved from
/// [`default_portal_key_template`] the first time it is needed.
pub const DEFAULT_PORTAL_KEY_TEMPLATE: &str = "portal-key";

/// Tunables of sign-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationSettings {
    /// How long a portal-key sign-up's confirmation link works.
    pub confirm_ttl: Duration,
    /// Failed portal-key attempts allowed per account number and per client address in one
    /// window; the next ones answer "too many attempts" until the window ends.
    pub failure_limit: u32,
    /// The rate limit's window.
    pub failure_window: Duration,
    /// Where the portal's sign-in page is (`PORTAL_SIGN_IN_URL`): the pages that end a
    /// registration link to it. `None`: they only say to sign in.
    pub sign_in_url: Option<String>,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            confirm_ttl: Duration::days(2),
            failure_limit: 5,
            failure_window: Duration::minutes(15),
            sign_in_url: None,
        }
    }
}

/// What registration needs besides the store.
pub struct Registrar {
    pub identity: Arc<dyn Identity>,
    pub events: Arc<dyn RegistrationEvents>,
    /// Sends the confirmation emails of portal-key sign-ups.
    pub mailer: Arc<dyn Mailer>,
    pub settings: RegistrationSettings,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why a registration step did not happen. Each maps to one page or one problem type.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The link's token names no invitation (never issued, mistyped, or another server's).
    #[error("this invitation link is not valid")]
    UnknownLink,
    /// The invitation's link is older than its expiry.
    #[error("this invitation link expired on {}", rfc3339(*.expired_at))]
    ExpiredLink { expired_at: OffsetDateTime },
    /// The invitation's link was used to register before.
    #[error("this invitation link was already used to register")]
    UsedLink,
    /// The password breaks a rule.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A field of a form is invalid.
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// The account number and portal key do not match (or there is no such account): the
    /// same answer for both.
    #[error("the account number and portal key do not match")]
    KeyMismatch,
    /// Too many failed attempts for this account number or from this address.
    #[error("too many attempts; try again after {}", rfc3339(*.retry_after))]
    RateLimited { retry_after: OffsetDateTime },
    /// The confirmation link names no pending login.
    #[error("this confirmation link is not valid")]
    UnknownConfirmation,
    /// The confirmation link is older than its expiry.
    #[error("this confirmation link has expired; sign up again with your portal key")]
    ExpiredConfirmation,
    /// No such request, account or contact for this tenant (staff routes).
    #[error("{kind} {id} does not exist")]
    NotFound { kind: &'static str, id: String },
    /// The request is closed, or moved meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// Sending the portal key email was refused (24-hour rule, suppression...).
    #[error(transparent)]
    Send(#[from] CampaignError),
    /// The identity provider failed; the registration can be retried with the same link.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The confirmation email could not be sent.
    #[error("the confirmation email could not be sent")]
    Mail(#[source] crate::ports::BoxError),
    /// The division's sender is not one the tenant's sender settings allow, so no
    /// confirmation email can go out: nothing was recorded.
    #[error(
        "signing up with a portal key is not available for this property yet; \
         please contact the management office"
    )]
    SenderNotAllowed,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

// --- With an invitation link -----------------------------------------------------------------

/// What the invitation page shows before anything is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationView {
    pub tenant: TenantId,
    pub division_name: String,
    pub masked_email: String,
    pub expires_at: OffsetDateTime,
}

/// `GET /register?token=…`: the page's facts, or why the link does not work. Changes nothing.
pub async fn invitation_page(
    store: &dyn Store,
    clock: &dyn Clock,
    token: &str,
) -> Result<InvitationView, RegistrationError> {
    let found = find_invitation(store, token).await?;
    let now = clock.now();
    if found.used {
        return Err(RegistrationError::UsedLink);
    }
    if now >= found.invitation.expires_at {
        return Err(RegistrationError::ExpiredLink {
            expired_at: found.invitation.expires_at,
        });
    }
    let division_name = match &found.contact {
        Some(c) => store
            .get_division(&found.tenant, &c.division_id)
            .await?
            .map(|d| d.name)
            .unwrap_or_default(),
        None => String::new(),
    };
    Ok(InvitationView {
        tenant: found.tenant,
        division_name,
        masked_email: mask_email(&found.invitation.email),
        expires_at: found.invitation.expires_at,
    })
}

struct FoundInvitation {
    tenant: TenantId,
    invitation: crate::domain::Invitation,
    contact: Option<ContactRecord>,
    used: bool,
}

async fn find_invitation(
    store: &dyn Store,
    token: &str,
) -> Result<FoundInvitation, RegistrationError> {
    // A token is 43 URL-safe characters; anything far off is not worth a lookup.
    if token.is_empty() || token.len() > 128 {
        return Err(RegistrationError::UnknownLink);
    }
    let Some(r) = store.find_token(&hash_token(token)).await? else {
        return Err(RegistrationError::UnknownLink);
    };
    let Some(invitation) = store
        .get_invitation(&r.tenant, &r.campaign_id, &r.contact_id)
        .await?
    else {
        return Err(RegistrationError::UnknownLink);
    };
    let contact = store.get_contact(&r.tenant, &r.contact_id).await?;
    Ok(FoundInvitation {
        tenant: r.tenant,
        invitation,
        contact,
        used: r.used_at.is_some(),
    })
}

/// What a successful registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// A new login: the resident can sign in with the password they chose.
    NewLogin { login: Login },
    /// The address already had a login: the contact joined it; sign in with that login.
    JoinedExisting { login: Login },
}

/// `POST /register?token=…`: registers through an invitation link (see the module docs).
#[tracing::instrument(skip_all)]
pub async fn register_with_invitation(
    store: &dyn Store,
    clock: &dyn Clock,
    registrar: &Registrar,
    token: &str,
    password: &str,
    name: Option<&str>,
) -> Result<Registered, RegistrationError> {
    let found = find_invitation(store, token).await?;
    let now = clock.now();
    let inv = &found.invitation;
    let tenant = &found.tenant;
    let Some(contact) = found.contact.as_ref() else {
        // The contact was deleted by sync since the invitation was sent.
        return Err(RegistrationError::UnknownLink);
    };
    if !found.used && now >= inv.expires_at {
        return Err(RegistrationError::ExpiredLink {
            expired_at: inv.expires_at,
        });
    }
    let password = Password::new(password, &inv.email)?;
    let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => crate::domain::registration::request_text("name", n, false)?,
        None => contact.contact_name.clone(),
    };
    let registration = NewRegistration {
        email: inv.email.clone(),
        name,
        contact_id: Some(inv.contact_id.clone()),
        account_id: contact.account_id.clone(),
        via: Via::Invitation {
            campaign_id: inv.campaign_id.clone(),
        },
    };
    let outcome = if found.used {
        RegisterOutcome::TokenUsed
    } else {
        store.register(tenant, &registration, now).await?
    };
    let (login, fresh) = match outcome {
        RegisterOutcome::NewLogin(login) => (login, true),
        RegisterOutcome::ExistingLogin(login) => (login, false),
        RegisterOutcome::Missing => return Err(RegistrationError::UnknownLink),
        RegisterOutcome::TokenUsed => {
            // Either a second submit, or an attempt that died half-way: finish the latter.
            match store.get_login(tenant, &inv.email).await? {
                Some(login)
                    if login.contact_ids.contains(&inv.contact_id) && !login.provisioned =>
                {
                    (login, true)
                }
                Some(login) if login.contact_ids.contains(&inv.contact_id) => {
                    // Done before; make sure the invitation says so (idempotent), then say so.
                    finish(
                        store,
                        registrar,
                        tenant,
                        &login,
                        Some(&inv.campaign_id),
                        &inv.contact_id,
                        now,
                        false,
                    )
                    .await?;
                    return Err(RegistrationError::UsedLink);
                }
                _ => return Err(RegistrationError::UsedLink),
            }
        }
    };
    if fresh {
        registrar
            .identity
            .provision(tenant, &login, &password)
            .await?;
        store.mark_provisioned(tenant, &login.email).await?;
    }
    finish(
        store,
        registrar,
        tenant,
        &login,
        Some(&inv.campaign_id),
        &inv.contact_id,
        now,
        true,
    )
    .await?;
    tracing::info!(%tenant, contact = %inv.contact_id, new_login = fresh, "registered through an invitation");
    Ok(if fresh {
        Registered::NewLogin { login }
    } else {
        Registered::JoinedExisting { login }
    })
}

/// Steps 5 and 6: the invitation becomes `registered`, requests close, the portal is told.
#[allow(clippy::too_many_arguments)]
async fn finish(
    store: &dyn Store,
    registrar: &Registrar,
    tenant: &TenantId,
    login: &Login,
    campaign: Option<&CampaignId>,
    contact: &ContactId,
    now: OffsetDateTime,
    announce: bool,
) -> Result<(), RegistrationError> {
    if let Some(campaign) = campaign {
        store
            .apply_facts(
                tenant,
                campaign,
                &[(contact.clone(), InvitationFact::Registered)],
            )
            .await?;
    }
    close_requests(store, tenant, &login.email, RequestEvent::Registered, now).await?;
    if announce {
        announce_registration(registrar, tenant, login, campaign.cloned(), now).await;
    }
    Ok(())
}

async fn announce_registration(
    registrar: &Registrar,
    tenant: &TenantId,
    login: &Login,
    campaign_id: Option<CampaignId>,
    now: OffsetDateTime,
) {
    let event = PortalRegistration {
        tenant: tenant.clone(),
        email: login.email.clone(),
        name: login.name.clone(),
        contact_ids: login.contact_ids.clone(),
        account_ids: login.account_ids.clone(),
        via: login.via,
        campaign_id,
        registered_at: now,
    };
    // The registration stands whether or not the portal hears of it now; the event's
    // publisher already retried. Log loudly for the operator.
    if let Err(e) = registrar.events.registered(&event).await {
        tracing::error!(%tenant, error = %crate::error_chain(&e), "the Portal Registration event could not be published");
    }
}

async fn close_requests(
    store: &dyn Store,
    tenant: &TenantId,
    email: &Email,
    event: RequestEvent,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for mut r in store.open_requests_for(tenant, email).await? {
        let expected = r.status;
        if let Ok(next) = expected.apply(event) {
            r.status = next;
            r.updated_at = now;
            // `false`: someone moved it meanwhile; their move stands.
            store.update_request(tenant, &r, expected).await?;
        }
    }
    Ok(())
}

// --- With a portal key ---------------------------------------------------------------------

/// The portal-key form, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySignUp {
    pub account_number: String,
    pub portal_key: String,
    pub name: String,
    pub email: String,
    pub password: String,
}

/// What a portal-key sign-up did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// A login waits for its address: a confirmation link went to it.
    ConfirmationSent { masked_email: String },
    /// The address already has a login: nothing was created; sign in.
    AlreadyRegistered,
}

/// A key compared when there is no account, so an unknown number costs what a wrong key does.
const DECOY_KEY: &str = "DECOY-KEY0-0000-0000";

/// `POST /register/key`: see the module docs.
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn register_with_key(
    store: &dyn Store,
    clock: &dyn Clock,
    registrar: &Registrar,
    public_url: &PublicUrl,
    tenant: &TenantId,
    client: &str,
    form: &KeySignUp,
) -> Result<KeyOutcome, RegistrationError> {
    let number =
        crate::domain::registration::request_text("account_number", &form.account_number, true)?;
    let name = crate::domain::registration::request_text("name", &form.name, true)?;
    let email = Email::parse(form.email.trim())?;
    let password = Password::new(&form.password, &email)?;
    let now = clock.now();
    let s = &registrar.settings;
    let window = window_start(now, s.failure_window);
    let limit_keys = [format!("key-acct:{number}"), format!("key-addr:{client}")];
    for key in &limit_keys {
        if store.rate_limit_count(tenant, key, window, now).await? >= s.failure_limit {
            return Err(RegistrationError::RateLimited {
                retry_after: window + s.failure_window,
            });
        }
    }
    let account = store.find_account_by_number(tenant, &number).await?;
    let matched = match &account {
        Some(a) => a.portal_key.matches(&form.portal_key),
        None => {
            let _ = PortalKey::parse(DECOY_KEY).map(|k| k.matches(&form.portal_key));
            false
        }
    };
    let Some(account) = account.filter(|_| matched) else {
        for key in &limit_keys {
            store
                .hit_rate_limit(tenant, key, window, window + s.failure_window * 2)
                .await?;
        }
        tracing::info!(%tenant, "portal key sign-up refused: number and key do not match");
        return Err(RegistrationError::KeyMismatch);
    };
    let contact_id = account
        .contacts
        .iter()
        .find(|(_, e)| {
            e.as_ref()
                .is_some_and(|e| e.normalized() == email.normalized())
        })
        .map(|(c, _)| c.clone());
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let confirm_token = URL_SAFE_NO_PAD.encode(raw);
    let registration = NewRegistration {
        email: email.clone(),
        name: name.clone(),
        contact_id,
        account_id: account.account_id.clone(),
        via: Via::PortalKey {
            confirm_token_hash: hash_token(&confirm_token),
            confirm_expires_at: now + s.confirm_ttl,
        },
    };
    // The confirmation goes from the division's sender: one the tenant's sender settings do
    // not allow makes no login that could never be confirmed.
    let division = store.get_division(tenant, &account.division_id).await?;
    let mut display_name = None;
    if let Some(d) = &division {
        let senders = store.get_sender_settings(tenant).await?;
        if !SenderCheck::of(senders.as_ref(), &d.email_from).is_allowed() {
            tracing::warn!(%tenant, division = %d.division_id, sender = %d.email_from,
                "portal-key sign-up refused: the division's sender is not allowed");
            return Err(RegistrationError::SenderNotAllowed);
        }
        display_name = senders.and_then(|s| s.display_name);
    }
    let login = match store.register(tenant, &registration, now).await? {
        RegisterOutcome::NewLogin(login) => login,
        RegisterOutcome::ExistingLogin(_) => return Ok(KeyOutcome::AlreadyRegistered),
        RegisterOutcome::TokenUsed | RegisterOutcome::Missing => {
            return Err(RegistrationError::KeyMismatch)
        }
    };
    registrar
        .identity
        .provision(tenant, &login, &password)
        .await?;
    store.mark_provisioned(tenant, &login.email).await?;
    let link = public_url.join(&format!(
        "/register/confirm?tenant={}&token={confirm_token}",
        crate::domain::percent_encode(tenant.as_str())
    ));
    send_confirmation(
        registrar,
        division,
        display_name.as_ref(),
        &account,
        &email,
        &name,
        &link,
        now + s.confirm_ttl,
    )
    .await?;
    Ok(KeyOutcome::ConfirmationSent {
        masked_email: mask_email(&email),
    })
}

/// The start of the fixed window `now` falls in.
pub fn window_start(now: OffsetDateTime, window: Duration) -> OffsetDateTime {
    let w = window.whole_seconds().max(1);
    let t = now.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(t - t.rem_euclid(w)).unwrap_or(now)
}

#[allow(clippy::too_many_arguments)]
async fn send_confirmation(
    registrar: &Registrar,
    division: Option<crate::domain::Division>,
    display_name: Option<&crate::domain::DisplayName>,
    account: &AccountKey,
    to: &Email,
    name: &str,
    link: &str,
    expires_at: OffsetDateTime,
) -> Result<(), RegistrationError> {
    let Some(division) = division else {
        return Err(RegistrationError::NotFound {
            kind: "division",
            id: account.division_id.to_string(),
        });
    };
    let mut html = String::new();
    let esc = |s: &str| {
        let mut o = String::new();
        crate::domain::escape_html_into(&mut o, s);
        o
    };
    html.push_str(&format!(
        "<p>Hello {},</p>\n<p>Someone — we hope you — signed up for the {} resident portal with this \
         address and account {}. Confirm the address to start using your login:</p>\n\
         <p><a href=\"{}\">Confirm my email address</a></p>\n\
         <p>The link works until {}. If you did not sign up, ignore this email: no login \
         becomes usable without it.</p>\n",
        esc(name),
        esc(&division.name),
        esc(&account.number),
        esc(link),
        rfc3339(expires_at),
    ));
    let text = format!(
        "Hello {name},\n\nSomeone (we hope you) signed up for the {} resident portal with this \
         address and account {}. Confirm the address to start using your login:\n\n{link}\n\n\
         The link works until {}. If you did not sign up, ignore this email: no login becomes \
         usable without it.\n",
        division.name,
        account.number,
        rfc3339(expires_at),
    );
    let email = OutgoingEmail {
        from: division.email_from.clone(),
        from_name: crate::domain::display_name_for(display_name, &division.name),
        to: to.clone(),
        subject: format!("Confirm your email for the {} portal", division.name),
        html,
        text,
        // A confirmation is not bulk mail; the header points at the page that explains it.
        list_unsubscribe_url: link.to_owned(),
        tags: Vec::new(),
        message_id_domain: None,
    };
    let raw = email
        .to_raw()
        .map_err(|e| RegistrationError::Mail(Box::new(e)))?;
    registrar
        .mailer
        .send_raw(&raw)
        .await
        .map_err(|e| RegistrationError::Mail(Box::new(e)))?;
    Ok(())
}

/// What the confirmation page shows before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationView {
    pub masked_email: String,
    pub confirmed: bool,
}

/// `GET /register/confirm`: the page's facts. Changes nothing.
pub async fn confirmation_page(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantId,
    token: &str,
) -> Result<ConfirmationView, RegistrationError> {
    if token.is_empty() || token.len() > 128 {
        return Err(RegistrationError::UnknownConfirmation);
    }
    match store.find_confirmation(tenant, &hash_token(token)).await? {
        None => Err(RegistrationError::UnknownConfirmation),
        Some((login, _, used)) if used || login.confirmed => Ok(ConfirmationView {
            masked_email: mask_email(&login.email),
            confirmed: true,
        }),
        Some((_, expires_at, _)) if clock.now() >= expires_at => {
            Err(RegistrationError::ExpiredConfirmation)
        }
        Some((login, _, _)) => Ok(ConfirmationView {
            masked_email: mask_email(&login.email),
            confirmed: false,
        }),
    }
}

/// `POST /register/confirm`: the login becomes usable, its contacts `accepted`.
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn confirm(
    store: &dyn Store,
    clock: &dyn Clock,
    registrar: &Registrar,
    tenant: &TenantId,
    token: &str,
) -> Result<Login, RegistrationError> {
    if token.is_empty() || token.len() > 128 {
        return Err(RegistrationError::UnknownConfirmation);
    }
    let now = clock.now();
    match store.confirm_login(tenant, &hash_token(token), now).await? {
        ConfirmOutcome::Confirmed(login) => {
            registrar.identity.enable(tenant, &login).await?;
            close_requests(store, tenant, &login.email, RequestEvent::Registered, now).await?;
            announce_registration(registrar, tenant, &login, None, now).await;
            Ok(login)
        }
        ConfirmOutcome::AlreadyConfirmed(login) => {
            // An earlier attempt may have died before enabling: enabling again is harmless.
            registrar.identity.enable(tenant, &login).await?;
            Ok(login)
        }
        ConfirmOutcome::Expired => Err(RegistrationError::ExpiredConfirmation),
        ConfirmOutcome::Unknown => Err(RegistrationError::UnknownConfirmation),
    }
}

// --- Without a key: sign-up requests ---------------------------------------------------------

/// The request form, as typed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestForm {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub address: String,
    pub division_id: String,
    pub account_number: String,
}

/// `POST /register/request`: files a request. Answers the same whatever is known about the
/// address; a request for an address that already has a login closes itself.
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn file_request(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantId,
    form: &RequestForm,
) -> Result<RegistrationRequest, RegistrationError> {
    use crate::domain::registration::request_text;
    let name = request_text("name", &form.name, true)?;
    let email = Email::parse(form.email.trim())?;
    let phone = request_text("phone", &form.phone, false)?;
    let address = request_text("address", &form.address, true)?;
    let division_id = DivisionId::parse(form.division_id.trim())?;
    let account_number = request_text("account_number", &form.account_number, false)?;
    if store.get_division(tenant, &division_id).await?.is_none() {
        return Err(DomainError::InvalidField {
            field: "division_id",
            reason: "choose one of the listed associations".into(),
        }
        .into());
    }
    let now = clock.now();
    let mut request = RegistrationRequest {
        request_id: RequestId::generate(now),
        name,
        email,
        phone,
        address,
        division_id,
        account_number: (!account_number.is_empty()).then_some(account_number),
        status: RequestStatus::Open,
        matched_account_id: None,
        matched_contact_id: None,
        note: None,
        created_at: now,
        updated_at: now,
    };
    if store.get_login(tenant, &request.email).await?.is_some() {
        request.status = RequestStatus::Open
            .apply(RequestEvent::LoginExists)
            .map_err(|e| RegistrationError::Conflict(e.to_string()))?;
    }
    store.put_request(tenant, &request).await?;
    tracing::info!(%tenant, request = %request.request_id, status = request.status.as_str(), "sign-up request filed");
    Ok(request)
}

/// One account/contact a request may be about, with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub account_id: AccountId,
    pub contact_id: ContactId,
    pub division_id: DivisionId,
    pub account_number: String,
    pub account_name: String,
    pub contact_name: String,
    pub email: Option<Email>,
    pub phone: String,
    /// 0–100: how well it fits.
    pub score: u32,
    /// What matched: `email`, `account_number`, `name`, `phone`, `address`.
    pub reasons: Vec<&'static str>,
}

/// Most suggestions shown for a request.
pub const MAX_SUGGESTIONS: usize = 10;

/// Accounts and contacts ranked by how well their email, name, phone, address and account
/// number fit the request. Looks in the request's division (by searches, not a full read)
/// and, across divisions, at the account with the request's number.
pub async fn suggest_matches(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantId,
    request: &RegistrationRequest,
) -> Result<Vec<Suggestion>, StoreError> {
    let mut candidates: HashMap<ContactId, ContactRecord> = HashMap::new();
    let mut searches: Vec<String> = vec![request.email.normalized()];
    if let Some(n) = &request.account_number {
        searches.push(n.to_lowercase());
    }
    searches.extend(
        words(&request.name)
            .into_iter()
            .filter(|w| w.chars().count() >= 3),
    );
    let now = clock.now();
    for search in searches {
        let query = ListQuery {
            contacts: ContactQuery {
                division_ids: vec![request.division_id.clone()],
                filters: Filters::default(),
                limit_to_uninvited: false,
                now,
            },
            group: Group::All,
            search,
            cursor: None,
            limit: 50.min(MAX_PAGE_SIZE),
            // Matching a request reads what it must: a suggestion past a bound is no less apt.
            max_examined: None,
        };
        for c in store.list_contacts(tenant, &query).await?.items {
            candidates.entry(c.contact_id.clone()).or_insert(c);
        }
    }
    if let Some(n) = &request.account_number {
        if let Some(acc) = store.find_account_by_number(tenant, n).await? {
            for (id, _) in &acc.contacts {
                if !candidates.contains_key(id) {
                    if let Some(c) = store.get_contact(tenant, id).await? {
                        candidates.insert(id.clone(), c);
                    }
                }
            }
        }
    }
    let mut ranked: Vec<Suggestion> = candidates
        .into_values()
        .map(|c| score(request, c))
        .filter(|s| s.score > 0)
        .collect();
    ranked.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.contact_id.cmp(&b.contact_id))
    });
    ranked.truncate(MAX_SUGGESTIONS);
    Ok(ranked)
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The ranking: email 40, account number 25, name up to 20, phone 10, address 5.
fn score(request: &RegistrationRequest, c: ContactRecord) -> Suggestion {
    let mut score = 0;
    let mut reasons = Vec::new();
    if c.email.as_ref().map(Email::normalized) == Some(request.email.normalized()) {
        score += 40;
        reasons.push("email");
    }
    if request
        .account_number
        .as_ref()
        .is_some_and(|n| n.trim().eq_ignore_ascii_case(c.account_number.trim()))
    {
        score += 25;
        reasons.push("account_number");
    }
    let asked = words(&request.name);
    let known = words(&c.contact_name);
    if !asked.is_empty() && !known.is_empty() {
        let common = asked.iter().filter(|w| known.contains(w)).count();
        let name_score = (20 * common / asked.len().max(known.len())) as u32;
        if name_score > 0 {
            score += name_score;
            reasons.push("name");
        }
    }
    let (p1, p2) = (digits(&request.phone), digits(&c.phone));
    if p1.len() >= 7 && p2.len() >= 7 && (p1.ends_with(&p2) || p2.ends_with(&p1)) {
        score += 10;
        reasons.push("phone");
    }
    let addr = words(&request.address);
    let account_words = words(&c.account_name);
    if addr
        .iter()
        .any(|w| w.chars().count() >= 3 && account_words.contains(w))
    {
        score += 5;
        reasons.push("address");
    }
    Suggestion {
        account_id: c.account_id,
        contact_id: c.contact_id,
        division_id: c.division_id,
        account_number: c.account_number,
        account_name: c.account_name,
        contact_name: c.contact_name,
        email: c.email,
        phone: c.phone,
        score,
        reasons,
    }
}

/// A request and its suggested matches (`GET /v1/registration-requests/{id}`).
pub async fn get_request(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantId,
    id: &RequestId,
) -> Result<(RegistrationRequest, Vec<Suggestion>), RegistrationError> {
    let request = load_request(store, tenant, id).await?;
    let suggestions = if request.status.is_closed() {
        Vec::new()
    } else {
        suggest_matches(store, clock, tenant, &request).await?
    };
    Ok((request, suggestions))
}

/// `GET /v1/registration-requests`.
pub async fn list_requests(
    store: &dyn Store,
    tenant: &TenantId,
    filter: &RequestFilter,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page<RegistrationRequest>, StoreError> {
    store.list_requests(tenant, filter, cursor, limit).await
}

/// What staff asked a match to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRequest {
    pub account_id: AccountId,
    /// `None`: the account's contact with the request's address, else its first contact
    /// with an address (the request's number must name the account).
    pub contact_id: Option<ContactId>,
    /// A portal key template; `None`: [`DEFAULT_PORTAL_KEY_TEMPLATE`].
    pub template_id: Option<TemplateId>,
}

/// What a match did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matched {
    pub request: RegistrationRequest,
    /// The portal key email's campaign; `None` when the request closed itself because its
    /// address already has a login.
    pub campaign: Option<Started>,
}

/// `POST /v1/registration-requests/{id}/match`: links the request, adds its address to the
/// contact when it differs, and sends the portal key email (a campaign of one, trigger
/// `portal_key`, under the 24-hour rule) — or closes the request when the address already
/// has a login.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all, fields(tenant = %tenant, request = %id))]
pub async fn match_request(
    store: &dyn Store,
    clock: &dyn Clock,
    sending: &Sending,
    tenant: &TenantId,
    staff: &str,
    id: &RequestId,
    m: MatchRequest,
) -> Result<Matched, RegistrationError> {
    let mut request = load_request(store, tenant, id).await?;
    let now = clock.now();
    if store.get_login(tenant, &request.email).await?.is_some() {
        let expected = request.status;
        request.status = expected
            .apply(RequestEvent::LoginExists)
            .map_err(|e| RegistrationError::Conflict(e.to_string()))?;
        request.updated_at = now;
        if !store.update_request(tenant, &request, expected).await? {
            return Err(moved(id));
        }
        return Ok(Matched {
            request,
            campaign: None,
        });
    }
    let contact = resolve_contact(store, tenant, &request, &m).await?;
    let expected = request.status;
    request.status = expected
        .apply(RequestEvent::Match)
        .map_err(|e| RegistrationError::Conflict(e.to_string()))?;
    request.matched_account_id = Some(m.account_id.clone());
    request.matched_contact_id = Some(contact.contact_id.clone());
    request.updated_at = now;
    if !store.update_request(tenant, &request, expected).await? {
        return Err(moved(id));
    }
    if contact.email.as_ref().map(Email::normalized) != Some(request.email.normalized()) {
        store
            .add_other_email(tenant, &contact.contact_id, &request.email)
            .await?;
    }
    let template_id = match m.template_id {
        Some(t) => t,
        None => ensure_default_portal_key_template(store, tenant).await?,
    };
    let started = campaigns::send_individual(
        store,
        clock,
        sending,
        tenant,
        staff,
        SendIndividual {
            contact_id: contact.contact_id.clone(),
            template_id,
            email_from: None,
            trigger: Trigger::PortalKey,
            to: Some(request.email.clone()),
        },
    )
    .await?;
    let expected = request.status;
    request.status = expected
        .apply(RequestEvent::KeySent)
        .map_err(|e| RegistrationError::Conflict(e.to_string()))?;
    request.updated_at = clock.now();
    if !store.update_request(tenant, &request, expected).await? {
        return Err(moved(id));
    }
    tracing::info!(%tenant, request = %id, campaign = %started.campaign_id, "portal key sent");
    Ok(Matched {
        request,
        campaign: Some(started),
    })
}

async fn load_request(
    store: &dyn Store,
    tenant: &TenantId,
    id: &RequestId,
) -> Result<RegistrationRequest, RegistrationError> {
    store
        .get_request(tenant, id)
        .await?
        .ok_or_else(|| RegistrationError::NotFound {
            kind: "registration request",
            id: id.to_string(),
        })
}

fn moved(id: &RequestId) -> RegistrationError {
    RegistrationError::Conflict(format!(
        "registration request {id} was changed by someone else meanwhile; reload it"
    ))
}

async fn resolve_contact(
    store: &dyn Store,
    tenant: &TenantId,
    request: &RegistrationRequest,
    m: &MatchRequest,
) -> Result<ContactRecord, RegistrationError> {
    if let Some(cid) = &m.contact_id {
        let c =
            store
                .get_contact(tenant, cid)
                .await?
                .ok_or_else(|| RegistrationError::NotFound {
                    kind: "contact",
                    id: cid.to_string(),
                })?;
        if c.account_id != m.account_id {
            return Err(DomainError::InvalidField {
                field: "contact_id",
                reason: format!("contact {cid} is not on account {}", m.account_id),
            }
            .into());
        }
        return Ok(c);
    }
    if store.get_portal_key(tenant, &m.account_id).await?.is_none() {
        return Err(RegistrationError::NotFound {
            kind: "account",
            id: m.account_id.to_string(),
        });
    }
    let account = match &request.account_number {
        Some(n) => store
            .find_account_by_number(tenant, n)
            .await?
            .filter(|a| a.account_id == m.account_id),
        None => None,
    };
    let Some(account) = account else {
        return Err(DomainError::InvalidField {
            field: "contact_id",
            reason: "name the contact to send the portal key to (the request's account number does not name this account)".into(),
        }
        .into());
    };
    let chosen = account
        .contacts
        .iter()
        .find(|(_, e)| {
            e.as_ref()
                .is_some_and(|e| e.normalized() == request.email.normalized())
        })
        .or_else(|| account.contacts.first())
        .map(|(c, _)| c.clone());
    let Some(cid) = chosen else {
        return Err(DomainError::InvalidField {
            field: "account_id",
            reason: format!("account {} has no contacts", m.account_id),
        }
        .into());
    };
    store
        .get_contact(tenant, &cid)
        .await?
        .ok_or_else(|| RegistrationError::NotFound {
            kind: "contact",
            id: cid.to_string(),
        })
}

/// The built-in portal key email.
pub fn default_portal_key_template() -> Template {
    let id = TemplateId::parse(DEFAULT_PORTAL_KEY_TEMPLATE).unwrap_or_else(|_| unreachable!());
    let built = Template::of_kind(
        TemplateKind::PortalKey,
        id,
        "Portal key",
        "Your portal key for [DivisionName]",
        "<p>Hello [ContactName],</p>\n<p>You asked for a login to the [DivisionName] resident portal. \
         Sign up with these two values:</p>\n<ul><li>Account number: <strong>[AccountNumber]</strong></li>\n\
         <li>Portal key: <strong>[PortalKey]</strong></li></ul>\n\
         <p><a href=\"[PortalLink]\">Sign up with my portal key</a></p>\n\
         <p><a href=\"[UnsubscribeLink]\">Unsubscribe</a></p>\n",
        "Hello [ContactName],\n\nYou asked for a login to the [DivisionName] resident portal. \
         Sign up with these two values:\n\n  Account number: [AccountNumber]\n  Portal key: [PortalKey]\n\n\
         Sign up at [PortalLink]\n\nUnsubscribe: [UnsubscribeLink]\n",
    );
    match built {
        Ok(t) => t,
        // The literal above carries every required tag; a test keeps it so.
        Err(e) => unreachable!("the built-in portal key template is invalid: {e}"),
    }
}

async fn ensure_default_portal_key_template(
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<TemplateId, RegistrationError> {
    let t = default_portal_key_template();
    if store.get_template(tenant, t.template_id()).await?.is_none() {
        store.put_template(tenant, &t).await?;
    }
    Ok(t.template_id().clone())
}

/// `POST /v1/registration-requests/{id}/reject`.
pub async fn reject_request(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantId,
    id: &RequestId,
    reason: &str,
) -> Result<RegistrationRequest, RegistrationError> {
    let note = crate::domain::registration::request_text("reason", reason, true)?;
    let mut request = load_request(store, tenant, id).await?;
    let expected = request.status;
    request.status = expected
        .apply(RequestEvent::Reject)
        .map_err(|e| RegistrationError::Conflict(e.to_string()))?;
    request.note = Some(note);
    request.updated_at = clock.now();
    if !store.update_request(tenant, &request, expected).await? {
        return Err(moved(id));
    }
    Ok(request)
}

// --- Portal keys (staff) -----------------------------------------------------------------------

/// `GET /v1/accounts/{id}/portal-key`.
pub async fn portal_key(
    store: &dyn Store,
    tenant: &TenantId,
    account: &AccountId,
) -> Result<PortalKey, RegistrationError> {
    store
        .get_portal_key(tenant, account)
        .await?
        .ok_or_else(|| RegistrationError::NotFound {
            kind: "account",
            id: account.to_string(),
        })
}

/// `POST /v1/accounts/{id}/portal-key`: a new key; the old one stops working at once.
pub async fn rotate_portal_key(
    store: &dyn Store,
    tenant: &TenantId,
    account: &AccountId,
) -> Result<PortalKey, RegistrationError> {
    let key = PortalKey::generate();
    if !store.set_portal_key(tenant, account, &key).await? {
        return Err(RegistrationError::NotFound {
            kind: "account",
            id: account.to_string(),
        });
    }
    tracing::info!(%tenant, %account, "portal key rotated");
    Ok(key)
}

/// Whether a template uses `[PortalKey]` (previews show a sample then).
pub fn uses_portal_key(t: &Template) -> bool {
    t.tags().contains(&MergeTag::PortalKey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_built_in_portal_key_template_is_valid_and_of_its_kind() {
        let t = default_portal_key_template();
        assert_eq!(t.kind(), TemplateKind::PortalKey);
        assert!(uses_portal_key(&t));
    }

    #[test]
    fn windows_are_fixed_and_aligned() {
        let w = Duration::minutes(15);
        assert_eq!(
            window_start(datetime!(2026-01-01 10:14:59 UTC), w),
            datetime!(2026-01-01 10:00 UTC)
        );
        assert_eq!(
            window_start(datetime!(2026-01-01 10:15:00 UTC), w),
            datetime!(2026-01-01 10:15 UTC)
        );
    }

    fn request() -> RegistrationRequest {
        let now = datetime!(2026-01-01 0:00 UTC);
        RegistrationRequest {
            request_id: RequestId::generate(now),
            name: "Jane Q. Doe".into(),
            email: Email::parse("Jane@Example.com").unwrap(),
            phone: "+1 (555) 010-2000".into(),
            address: "12 Elm Street".into(),
            division_id: DivisionId::parse("d1").unwrap(),
            account_number: Some("A-100".into()),
            status: RequestStatus::Open,
            matched_account_id: None,
            matched_contact_id: None,
            note: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn contact(
        id: &str,
        name: &str,
        email: Option<&str>,
        number: &str,
        phone: &str,
    ) -> ContactRecord {
        let acc = portal_core_account(number);
        let mut c = acc.contact_records().next().unwrap();
        c.contact_id = ContactId::parse(id).unwrap();
        c.contact_name = name.into();
        c.email = email.map(|e| Email::parse(e).unwrap());
        c.phone = phone.into();
        c.account_name = "Elm Street 12".into();
        c
    }

    fn portal_core_account(number: &str) -> crate::domain::Account {
        crate::domain::Account::new(
            AccountId::parse("a1").unwrap(),
            DivisionId::parse("d1").unwrap(),
            number.into(),
            "x".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            true,
            0,
            false,
            None,
            vec![crate::domain::ContactInput::new(
                ContactId::parse("c").unwrap(),
                "x".into(),
                None,
                String::new(),
                true,
            )
            .unwrap()],
        )
        .unwrap()
    }

    #[test]
    fn suggestions_rank_email_over_number_over_name() {
        let r = request();
        let by_email = score(
            &r,
            contact("c1", "Someone Else", Some("jane@example.com"), "B-1", ""),
        );
        let by_number = score(&r, contact("c2", "Other", None, "a-100", ""));
        let by_name = score(&r, contact("c3", "Jane Doe", None, "B-2", ""));
        let everything = score(
            &r,
            contact(
                "c4",
                "Jane Q Doe",
                Some("JANE@example.com"),
                "A-100",
                "555-010-2000",
            ),
        );
        assert_eq!(by_email.reasons, vec!["email", "address"]);
        assert!(everything.score > by_email.score);
        assert!(by_email.score > by_number.score);
        assert!(by_number.score > by_name.score);
        assert!(by_name.score > 0);
        assert_eq!(
            everything.reasons,
            vec!["email", "account_number", "name", "phone", "address"]
        );
        assert_eq!(everything.score, 100);
    }
}
