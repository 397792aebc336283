//! The Cognito identity provider: logins' passwords in one Amazon Cognito user pool
//! ([`portal_core::ports::Identity`]).
//!
//! # One pool for every tenant
//!
//! The pool has no `UsernameAttributes`: a user's Cognito username is
//! `{tenant}:{normalized email}` ([`username`]), so one address can hold a login in each
//! tenant, and the two are two users. Each user carries the attributes the portal reads:
//!
//! | attribute | value |
//! |---|---|
//! | `email` | the address as first registered |
//! | `email_verified` | `true` once the address is confirmed (invitation: at once) |
//! | `name` | the name given at sign-up |
//! | `custom:tenant` | the tenant id (immutable: set by `AdminCreateUser` only) |
//! | `custom:contact_ids` | the login's contacts, comma-separated |
//! | `custom:account_ids` | the login's accounts, comma-separated |
//!
//! # The calls
//!
//! - [`Identity::provision`]: `AdminCreateUser` with `MessageAction=SUPPRESS` (Cognito sends
//!   no mail; the user gets no temporary password to use). A `UsernameExistsException` is
//!   the user an interrupted earlier attempt created: its attributes are brought up to date
//!   (`AdminUpdateUserAttributes`) and the provisioning goes on. A login whose address is not
//!   yet confirmed (portal key) is disabled (`AdminDisableUser`) *before* it gets a
//!   password, so it never has a usable one while unconfirmed; a confirmed login found
//!   existing is enabled (`AdminEnableUser`). Then `AdminSetUserPassword` with
//!   `Permanent=true` (status `CONFIRMED`): the last attempt's password wins. (Should Cognito
//!   refuse to set a disabled user's password, the user is enabled for that one call and
//!   disabled again at once; moto sets it either way.)
//!   `InvalidPasswordException` (the pool's policy is stricter than ours) becomes
//!   [`IdentityError::PasswordRefused`] with Cognito's message. Cognito refuses passwords that
//!   begin or end with white space (its `Password` pattern), which our rules allow: those are
//!   refused here, before any call.
//! - [`Identity::enable`]: `AdminUpdateUserAttributes` (`email_verified=true`, the login's
//!   current contacts and accounts), then `AdminEnableUser`.
//! - [`Identity::verify`]: `InitiateAuth` with `USER_PASSWORD_AUTH` against the pool's app
//!   client (no secret; the adapter needs its id, [`CognitoIdentity::with_client_id`]), as
//!   the portal signs people in. `NotAuthorizedException` (wrong password, or the user is
//!   disabled), `UserNotFoundException`, `UserNotConfirmedException` and
//!   `PasswordResetRequiredException` answer `false`; tokens (or a second-factor challenge)
//!   answer `true`; a `NEW_PASSWORD_REQUIRED` challenge (never provisioned) answers `false`.
//!   `InitiateAuth` is a public API: it needs no IAM permission.
//!
//! The password is never logged: it only travels in the SDK's inputs, whose `Debug` redacts
//! it, and no error message here includes it.
//!
//! moto (5.2.x) implements every call used here, enforces the pool's password policy on
//! `AdminSetUserPassword`, and refuses `InitiateAuth` for a disabled user.

use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::operation::admin_create_user::AdminCreateUserError;
use aws_sdk_cognitoidentityprovider::operation::admin_set_user_password::AdminSetUserPasswordError;
use aws_sdk_cognitoidentityprovider::operation::initiate_auth::InitiateAuthError;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, AuthFlowType, ChallengeNameType, MessageActionType,
};
use sha2::{Digest, Sha256};

use portal_core::domain::{Email, Login, Password, TenantId};
use portal_core::ports::{Identity, IdentityError};

/// Cognito's longest username.
pub const MAX_USERNAME_CHARS: usize = 128;

/// Cognito's longest value of a `String` attribute (custom attributes declared with this
/// `MaxLength` in `template.yaml`).
pub const MAX_ATTRIBUTE_CHARS: usize = 2048;

/// The custom attributes the pool declares (without the `custom:` prefix), all `String`.
pub const CUSTOM_ATTRIBUTES: [&str; 3] = ["tenant", "contact_ids", "account_ids"];

/// The IAM actions this adapter's calls need, on the user pool (`InitiateAuth`, used by
/// [`Identity::verify`] only, is a public API and needs none). `template.yaml` grants the
/// registration function exactly these (`tests/deploy` checks it).
pub const IAM_ACTIONS: [&str; 5] = [
    "cognito-idp:AdminCreateUser",
    "cognito-idp:AdminSetUserPassword",
    "cognito-idp:AdminDisableUser",
    "cognito-idp:AdminEnableUser",
    "cognito-idp:AdminUpdateUserAttributes",
];

/// Holds logins' passwords in one Cognito user pool.
#[derive(Debug, Clone)]
pub struct CognitoIdentity {
    client: aws_sdk_cognitoidentityprovider::Client,
    user_pool_id: String,
    client_id: Option<String>,
}

impl CognitoIdentity {
    /// The pool `user_pool_id` (e.g. `us-east-1_AbCdEf123`). Without an app client id
    /// ([`CognitoIdentity::with_client_id`]) [`Identity::verify`] fails.
    pub fn new(
        client: aws_sdk_cognitoidentityprovider::Client,
        user_pool_id: impl Into<String>,
    ) -> Self {
        Self {
            client,
            user_pool_id: user_pool_id.into(),
            client_id: None,
        }
    }

    /// The app client (no secret, `ALLOW_USER_PASSWORD_AUTH`) [`Identity::verify`] signs in
    /// with.
    pub fn with_client_id(mut self, client_id: Option<String>) -> Self {
        self.client_id = client_id;
        self
    }

    pub fn user_pool_id(&self) -> &str {
        &self.user_pool_id
    }

    /// `AdminCreateUser`; `false` when the user existed already.
    async fn create_user(
        &self,
        username: &str,
        attributes: Vec<AttributeType>,
    ) -> Result<bool, IdentityError> {
        let out = self
            .client
            .admin_create_user()
            .user_pool_id(&self.user_pool_id)
            .username(username)
            .message_action(MessageActionType::Suppress)
            .set_user_attributes(Some(attributes))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), AdminCreateUserError::UsernameExistsException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend("AdminCreateUser", e)),
        }
    }

    async fn update_attributes(
        &self,
        username: &str,
        attributes: Vec<AttributeType>,
    ) -> Result<(), IdentityError> {
        self.client
            .admin_update_user_attributes()
            .user_pool_id(&self.user_pool_id)
            .username(username)
            .set_user_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| backend("AdminUpdateUserAttributes", e))?;
        Ok(())
    }

    async fn disable(&self, username: &str) -> Result<(), IdentityError> {
        self.client
            .admin_disable_user()
            .user_pool_id(&self.user_pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| backend("AdminDisableUser", e))?;
        Ok(())
    }

    async fn enable_user(&self, username: &str) -> Result<(), IdentityError> {
        self.client
            .admin_enable_user()
            .user_pool_id(&self.user_pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| backend("AdminEnableUser", e))?;
        Ok(())
    }

    async fn set_password(&self, username: &str, password: &Password) -> Result<(), SetError> {
        let out = self
            .client
            .admin_set_user_password()
            .user_pool_id(&self.user_pool_id)
            .username(username)
            .password(password.expose())
            .permanent(true)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    AdminSetUserPasswordError::InvalidPasswordException(_)
                        | AdminSetUserPasswordError::PasswordHistoryPolicyViolationException(_)
                ) =>
            {
                let message = e
                    .err()
                    .message()
                    .unwrap_or("the identity provider's password policy refused it")
                    .to_owned();
                Err(SetError::Other(IdentityError::PasswordRefused(message)))
            }
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    AdminSetUserPasswordError::NotAuthorizedException(_)
                ) =>
            {
                Err(SetError::NotAuthorized(backend(
                    "AdminSetUserPassword",
                    SdkError::ServiceError(e),
                )))
            }
            Err(e) => Err(SetError::Other(backend("AdminSetUserPassword", e))),
        }
    }

    /// The password of a user this adapter has just disabled. Cognito's admin calls are
    /// documented to work on any user, but `AdminResetUserPassword` has been seen to answer
    /// a disabled user with `NotAuthorizedException` ("User is disabled"); should
    /// `AdminSetUserPassword` do the same, the user is enabled for the one call and disabled
    /// again at once (also when setting failed).
    async fn set_password_of_disabled(
        &self,
        username: &str,
        password: &Password,
    ) -> Result<(), IdentityError> {
        match self.set_password(username, password).await {
            Ok(()) => Ok(()),
            Err(SetError::Other(e)) => Err(e),
            Err(SetError::NotAuthorized(_)) => {
                tracing::warn!(
                    "Cognito refused to set the password of a disabled user: \
                     enabling it for the call"
                );
                self.enable_user(username).await?;
                let set = self.set_password(username, password).await;
                let disabled = self.disable(username).await;
                set.map_err(SetError::into_identity)?;
                disabled
            }
        }
    }
}

/// How `AdminSetUserPassword` failed.
enum SetError {
    /// `NotAuthorizedException`: possibly the user is disabled.
    NotAuthorized(IdentityError),
    Other(IdentityError),
}

impl SetError {
    fn into_identity(self) -> IdentityError {
        match self {
            Self::NotAuthorized(e) | Self::Other(e) => e,
        }
    }
}

#[async_trait]
impl Identity for CognitoIdentity {
    #[tracing::instrument(skip_all, fields(pool = %self.user_pool_id, tenant = %tenant, confirmed = login.confirmed))]
    async fn provision(
        &self,
        tenant: &TenantId,
        login: &Login,
        password: &Password,
    ) -> Result<(), IdentityError> {
        cognito_password_check(password)?;
        let username = username(tenant, &login.email);
        let attributes = user_attributes(tenant, login)?;
        let created = self.create_user(&username, attributes.clone()).await?;
        if !created {
            tracing::info!("the user exists (an earlier attempt): finishing it");
            self.update_attributes(&username, mutable(attributes))
                .await?;
        }
        if !login.confirmed {
            // Before the password: an unconfirmed login never has a usable one.
            self.disable(&username).await?;
            return self.set_password_of_disabled(&username, password).await;
        }
        if !created {
            self.enable_user(&username).await?;
        }
        self.set_password(&username, password)
            .await
            .map_err(SetError::into_identity)
    }

    #[tracing::instrument(skip_all, fields(pool = %self.user_pool_id, tenant = %tenant))]
    async fn enable(&self, tenant: &TenantId, login: &Login) -> Result<(), IdentityError> {
        let username = username(tenant, &login.email);
        let mut confirmed = login.clone();
        confirmed.confirmed = true;
        self.update_attributes(&username, mutable(user_attributes(tenant, &confirmed)?))
            .await?;
        self.enable_user(&username).await
    }

    #[tracing::instrument(skip_all, fields(pool = %self.user_pool_id, tenant = %tenant))]
    async fn verify(
        &self,
        tenant: &TenantId,
        email: &Email,
        password: &str,
    ) -> Result<bool, IdentityError> {
        let Some(client_id) = &self.client_id else {
            return Err(IdentityError::backend(
                "InitiateAuth",
                "no user pool app client id is configured (USER_POOL_CLIENT_ID)",
            ));
        };
        let out = self
            .client
            .initiate_auth()
            .client_id(client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", username(tenant, email))
            .auth_parameters("PASSWORD", password)
            .send()
            .await;
        match out {
            Ok(out) if out.authentication_result().is_some() => Ok(true),
            Ok(out) => Ok(out.challenge_name().is_some_and(password_accepted)),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    InitiateAuthError::NotAuthorizedException(_)
                        | InitiateAuthError::UserNotFoundException(_)
                        | InitiateAuthError::UserNotConfirmedException(_)
                        | InitiateAuthError::PasswordResetRequiredException(_)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend("InitiateAuth", e)),
        }
    }
}

/// Whether a challenge answered to `USER_PASSWORD_AUTH` means the password was right (a
/// second factor follows); `NEW_PASSWORD_REQUIRED` means the user never got its password.
fn password_accepted(challenge: &ChallengeNameType) -> bool {
    matches!(
        challenge,
        ChallengeNameType::SmsMfa
            | ChallengeNameType::SoftwareTokenMfa
            | ChallengeNameType::EmailOtp
            | ChallengeNameType::MfaSetup
            | ChallengeNameType::SelectMfaType
    )
}

/// Cognito's own limit on passwords that our rules do not have: no white space at either
/// end (its `Password` pattern is `^[\S]+.*[\S]+$`).
fn cognito_password_check(password: &Password) -> Result<(), IdentityError> {
    let p = password.expose();
    if p.starts_with(char::is_whitespace) || p.ends_with(char::is_whitespace) {
        return Err(IdentityError::PasswordRefused(
            "the password must not begin or end with a space".into(),
        ));
    }
    Ok(())
}

/// The Cognito username of `email`'s login in `tenant`: `{tenant}:{normalized email}`.
///
/// One-to-one, so two tenants' logins (or two addresses) never share a user:
///
/// - `%` and `:` in the address are written `%25` and `%3A` (rare: quoted or unusual local
///   parts), so the username's last `:` is the one after the tenant (tenant ids may hold
///   `:`, see `portal_core::domain::ids`);
/// - a username that would be longer than Cognito's [`MAX_USERNAME_CHARS`] becomes
///   `{tenant}:h-{first 60 hex digits of the normalized address's SHA-256}`, which holds no
///   `@`, so it is no address's plain form (tenant ids have at most 64 characters: at most
///   127 in all).
pub fn username(tenant: &TenantId, email: &Email) -> String {
    let normalized = email.normalized();
    let escaped = normalized.replace('%', "%25").replace(':', "%3A");
    let plain = format!("{tenant}:{escaped}");
    if plain.chars().count() <= MAX_USERNAME_CHARS {
        return plain;
    }
    let digest = Sha256::digest(normalized.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{tenant}:h-{}", &hex[..60])
}

/// The attributes of `login`'s user (see the module docs). Empty values are left out
/// (Cognito keeps what an earlier call set), and a list longer than an attribute holds is
/// cut at the last whole id that fits, with a warning: the store, not Cognito, is the record
/// of a login's contacts and accounts.
fn user_attributes(tenant: &TenantId, login: &Login) -> Result<Vec<AttributeType>, IdentityError> {
    let contacts = joined(login.contact_ids.iter().map(|c| c.as_str()), "contact_ids");
    let accounts = joined(login.account_ids.iter().map(|a| a.as_str()), "account_ids");
    let name: String = login.name.chars().take(MAX_ATTRIBUTE_CHARS).collect();
    let pairs = [
        ("email", login.email.as_str().to_owned()),
        ("email_verified", login.confirmed.to_string()),
        ("name", name),
        ("custom:tenant", tenant.as_str().to_owned()),
        ("custom:contact_ids", contacts),
        ("custom:account_ids", accounts),
    ];
    pairs
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| {
            AttributeType::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| IdentityError::backend("AdminCreateUser", e))
        })
        .collect()
}

/// The attributes an update may write: all but `custom:tenant`, which the pool declares
/// immutable (a user never moves to another tenant; its username names the tenant anyway).
fn mutable(attributes: Vec<AttributeType>) -> Vec<AttributeType> {
    attributes
        .into_iter()
        .filter(|a| a.name() != "custom:tenant")
        .collect()
}

/// `ids` comma-separated, cut to [`MAX_ATTRIBUTE_CHARS`] at an id boundary.
fn joined<'a>(ids: impl Iterator<Item = &'a str>, attribute: &'static str) -> String {
    let mut out = String::new();
    let mut dropped = 0usize;
    for id in ids {
        let extra = id.len() + usize::from(!out.is_empty());
        if dropped > 0 || out.len() + extra > MAX_ATTRIBUTE_CHARS {
            dropped += 1;
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(id);
    }
    if dropped > 0 {
        tracing::warn!(
            attribute,
            dropped,
            "the ids do not fit in the Cognito attribute: the last ones are left out"
        );
    }
    out
}

fn backend<E>(op: &'static str, err: SdkError<E>) -> IdentityError
where
    E: std::error::Error + Send + Sync + 'static,
{
    // The context names the error code and message; it never includes the request (and so
    // never the password).
    let detail = DisplayErrorContext(&err).to_string();
    tracing::warn!(op, error = %detail, "Cognito call failed");
    IdentityError::backend(op, err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::domain::{AccountId, ContactId, LoginVia};
    use time::OffsetDateTime;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    fn e(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn the_username_is_the_tenant_and_the_normalized_address() {
        assert_eq!(
            username(&t("lakeside"), &e("Jane.Doe@Example.com")),
            "lakeside:jane.doe@example.com"
        );
    }

    #[test]
    fn usernames_never_collide_across_tenants_with_colons() {
        // Tenant `a:b` with `c@x.org` against tenant `a` with `b:c@x.org`.
        let one = username(&t("a:b"), &e("c@x.org"));
        let two = username(&t("a"), &e("b:c@x.org"));
        assert_ne!(one, two);
        assert_eq!(two, "a:b%3Ac@x.org");
        // And an escaped form is not another address's plain one.
        assert_ne!(
            username(&t("a"), &e("b%3Ac@x.org")),
            username(&t("a"), &e("b:c@x.org"))
        );
    }

    #[test]
    fn a_long_address_gets_a_hashed_username_within_cognitos_limit() {
        let tenant = t(&"t".repeat(64));
        let long = e(&format!(
            "{}@{}.example.com",
            "a".repeat(64),
            "b".repeat(150)
        ));
        let name = username(&tenant, &long);
        assert!(name.chars().count() <= MAX_USERNAME_CHARS, "{name}");
        assert!(name.starts_with(&format!("{tenant}:h-")) && !name.contains('@'));
        // Case does not matter, the address does.
        let upper = e(&long.as_str().to_uppercase());
        assert_eq!(username(&tenant, &upper), name);
        let other = e(&format!(
            "{}@{}.example.com",
            "c".repeat(64),
            "b".repeat(150)
        ));
        assert_ne!(username(&tenant, &other), name);
    }

    fn login(contacts: usize) -> Login {
        Login {
            email: e("Jane@Example.com"),
            name: "Jane Doe".into(),
            contact_ids: (0..contacts)
                .map(|i| ContactId::parse(format!("{i:064}")).unwrap())
                .collect(),
            account_ids: vec![AccountId::parse("A-1").unwrap()],
            via: LoginVia::PortalKey,
            confirmed: false,
            provisioned: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn attr(attrs: &[AttributeType], name: &str) -> Option<String> {
        attrs
            .iter()
            .find(|a| a.name() == name)
            .and_then(|a| a.value().map(str::to_owned))
    }

    #[test]
    fn attributes_carry_the_tenant_contacts_accounts_and_whether_confirmed() {
        let attrs = user_attributes(&t("lakeside"), &login(2)).unwrap();
        assert_eq!(attr(&attrs, "email").as_deref(), Some("Jane@Example.com"));
        assert_eq!(attr(&attrs, "email_verified").as_deref(), Some("false"));
        assert_eq!(attr(&attrs, "custom:tenant").as_deref(), Some("lakeside"));
        assert_eq!(
            attr(&attrs, "custom:contact_ids").unwrap(),
            format!("{:064},{:064}", 0, 1)
        );
        assert_eq!(attr(&attrs, "custom:account_ids").as_deref(), Some("A-1"));
        // An empty list is left out rather than written empty.
        let attrs = user_attributes(&t("lakeside"), &login(0)).unwrap();
        assert_eq!(attr(&attrs, "custom:contact_ids"), None);
    }

    #[test]
    fn a_list_too_long_for_an_attribute_is_cut_at_a_whole_id() {
        let attrs = user_attributes(&t("lakeside"), &login(40)).unwrap();
        let contacts = attr(&attrs, "custom:contact_ids").unwrap();
        assert!(contacts.len() <= MAX_ATTRIBUTE_CHARS);
        assert_eq!(contacts.split(',').count(), 31);
        assert!(contacts.split(',').all(|id| id.len() == 64));
    }

    #[test]
    fn passwords_cognito_would_refuse_for_their_spaces_are_refused_first() {
        let email = e("jane@example.com");
        for bad in [" correct horse battery", "correct horse battery "] {
            let p = Password::new(bad, &email).unwrap();
            assert!(matches!(
                cognito_password_check(&p),
                Err(IdentityError::PasswordRefused(_))
            ));
        }
        let p = Password::new("correct horse battery", &email).unwrap();
        assert!(cognito_password_check(&p).is_ok());
    }
}
