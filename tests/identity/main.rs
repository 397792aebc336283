//! The AWS side of registration against moto: logins' passwords in a Cognito user pool
//! ([`CognitoIdentity`]) and the `Portal Registration` event on EventBridge
//! ([`EventBridgeBus`] as `RegistrationEvents`).
//!
//! Each test makes its own user pool, declared like `template.yaml`'s (no username
//! attributes, the custom attributes `tenant`, `contact_ids` and `account_ids`, a 12-character
//! password policy without composition rules) with an app client without a secret that allows
//! `USER_PASSWORD_AUTH`. Signing in (`verify`) is `InitiateAuth` against that client, as the
//! portal does it.
//!
//! The event test wires a bus to SQS with a rule matching `detail-type: ["Portal
//! Registration"]`, as the portal would subscribe, and reads the event back; a second rule
//! matching the send chain's source shows the send functions never see it.
//!
//! Like every moto-backed test, these FAIL (they never skip) when moto cannot be started.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::{
    AttributeDataType, ExplicitAuthFlowsType, PasswordPolicyType, SchemaAttributeType,
    StringAttributeConstraintsType, UserPoolPolicyType,
};
use portal_aws::cognito::{username, CognitoIdentity, CUSTOM_ATTRIBUTES, MAX_ATTRIBUTE_CHARS};
use portal_aws::eventbridge::{EventBridgeBus, RetryPolicy};
use portal_core::domain::{
    AccountId, CampaignId, ContactId, Email, Login, LoginVia, Password, TenantId,
};
use portal_core::ports::{
    Identity, IdentityError, PortalRegistration, RegistrationEvents, DETAIL_TYPE_REGISTRATION,
    EVENT_SOURCE, REGISTRATION_SOURCE,
};
use portal_testkit::moto::Moto;
use serde_json::Value;
use time::OffsetDateTime;

type Cognito = aws_sdk_cognitoidentityprovider::Client;

/// A name no other test uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn cognito(moto: &Moto) -> Cognito {
    Cognito::new(&moto.sdk_config())
}

/// A user pool and app client like `template.yaml`'s; `policy` is the password policy
/// (the template's when `None`).
struct Pool {
    cognito: Cognito,
    pool_id: String,
    client_id: String,
}

fn template_policy() -> PasswordPolicyType {
    PasswordPolicyType::builder()
        .minimum_length(12)
        .require_uppercase(false)
        .require_lowercase(false)
        .require_numbers(false)
        .require_symbols(false)
        .build()
}

async fn pool_with(moto: &Moto, policy: PasswordPolicyType) -> Pool {
    let cognito = cognito(moto);
    let schema: Vec<SchemaAttributeType> = CUSTOM_ATTRIBUTES
        .iter()
        .map(|name| {
            // As in template.yaml: the tenant is set once, the lists grow.
            let tenant = *name == "tenant";
            SchemaAttributeType::builder()
                .name(*name)
                .attribute_data_type(AttributeDataType::String)
                .mutable(!tenant)
                .string_attribute_constraints(
                    StringAttributeConstraintsType::builder()
                        .min_length(if tenant { "1" } else { "0" })
                        .max_length(if tenant {
                            "64".to_owned()
                        } else {
                            MAX_ATTRIBUTE_CHARS.to_string()
                        })
                        .build(),
                )
                .build()
        })
        .collect();
    let pool_id = cognito
        .create_user_pool()
        .pool_name(unique("portal-logins"))
        .set_schema(Some(schema))
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(policy)
                .build(),
        )
        .send()
        .await
        .expect("CreateUserPool")
        .user_pool()
        .and_then(|p| p.id())
        .expect("a user pool id")
        .to_owned();
    let client_id = cognito
        .create_user_pool_client()
        .user_pool_id(&pool_id)
        .client_name("portal")
        .generate_secret(false)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await
        .expect("CreateUserPoolClient")
        .user_pool_client()
        .and_then(|c| c.client_id())
        .expect("a client id")
        .to_owned();
    Pool {
        cognito,
        pool_id,
        client_id,
    }
}

async fn pool(moto: &Moto) -> Pool {
    pool_with(moto, template_policy()).await
}

impl Pool {
    fn identity(&self) -> CognitoIdentity {
        CognitoIdentity::new(self.cognito.clone(), &self.pool_id)
            .with_client_id(Some(self.client_id.clone()))
    }

    /// `(enabled, status, attributes)` of the user, as `AdminGetUser` reports them.
    async fn user(&self, username: &str) -> (bool, String, BTreeMap<String, String>) {
        let out = self
            .cognito
            .admin_get_user()
            .user_pool_id(&self.pool_id)
            .username(username)
            .send()
            .await
            .unwrap_or_else(|e| panic!("AdminGetUser {username}: {e:?}"));
        let attributes = out
            .user_attributes()
            .iter()
            .map(|a| {
                (
                    a.name().to_owned(),
                    a.value().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let status = out
            .user_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        (out.enabled(), status, attributes)
    }

    async fn usernames(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .cognito
            .list_users()
            .user_pool_id(&self.pool_id)
            .send()
            .await
            .expect("ListUsers")
            .users()
            .iter()
            .filter_map(|u| u.username().map(str::to_owned))
            .collect();
        names.sort();
        names
    }
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn password(raw: &str, for_email: &Email) -> Password {
    Password::new(raw, for_email).expect("a password our rules accept")
}

fn login(address: &str, via: LoginVia, confirmed: bool) -> Login {
    Login {
        email: email(address),
        name: "Jane Doe".into(),
        contact_ids: vec![
            ContactId::parse("c-1").unwrap(),
            ContactId::parse("c-2").unwrap(),
        ],
        account_ids: vec![AccountId::parse("A-100").unwrap()],
        via,
        confirmed,
        provisioned: false,
        created_at: OffsetDateTime::now_utc(),
    }
}

const PW: &str = "correct horse battery staple";
const OTHER_PW: &str = "purple monkey dishwasher 42";

#[tokio::test]
async fn a_confirmed_login_signs_in_with_its_password_and_no_other() {
    let moto = Moto::shared();
    let pool = pool(moto).await;
    let identity = pool.identity();
    let t = tenant("lakeside");
    let l = login("Jane.Doe@Example.com", LoginVia::Invitation, true);

    identity
        .provision(&t, &l, &password(PW, &l.email))
        .await
        .expect("provision");

    assert!(identity.verify(&t, &l.email, PW).await.unwrap());
    // The address is compared case-insensitively, as the store compares it.
    assert!(identity
        .verify(&t, &email("jane.doe@example.com"), PW)
        .await
        .unwrap());
    assert!(!identity.verify(&t, &l.email, OTHER_PW).await.unwrap());
    assert!(!identity
        .verify(&t, &email("nobody@example.com"), PW)
        .await
        .unwrap());

    let (enabled, status, attrs) = pool.user("lakeside:jane.doe@example.com").await;
    assert!(enabled);
    assert_eq!(status, "CONFIRMED", "a permanent password");
    assert_eq!(attrs["email_verified"], "true");
}

#[tokio::test]
async fn an_unconfirmed_login_cannot_sign_in_until_it_is_enabled() {
    let moto = Moto::shared();
    let pool = pool(moto).await;
    let identity = pool.identity();
    let t = tenant("lakeside");
    let l = login("key.holder@example.com", LoginVia::PortalKey, false);

    identity
        .provision(&t, &l, &password(PW, &l.email))
        .await
        .expect("provision");
    let name = username(&t, &l.email);
    let (enabled, _, attrs) = pool.user(&name).await;
    assert!(!enabled, "disabled until the address is confirmed");
    assert_eq!(attrs["email_verified"], "false");
    assert!(
        !identity.verify(&t, &l.email, PW).await.unwrap(),
        "the right password of a disabled user does not sign in"
    );

    identity.enable(&t, &l).await.expect("enable");
    let (enabled, _, attrs) = pool.user(&name).await;
    assert!(enabled);
    assert_eq!(attrs["email_verified"], "true");
    assert!(identity.verify(&t, &l.email, PW).await.unwrap());
    assert!(!identity.verify(&t, &l.email, OTHER_PW).await.unwrap());
    // Enabling again changes nothing.
    identity.enable(&t, &l).await.expect("enable again");
    assert!(identity.verify(&t, &l.email, PW).await.unwrap());
}

#[tokio::test]
async fn provisioning_again_after_an_interrupted_attempt_succeeds_and_the_last_password_wins() {
    let moto = Moto::shared();
    let pool = pool(moto).await;
    let identity = pool.identity();
    let t = tenant("lakeside");
    let mut l = login("retry@example.com", LoginVia::Invitation, true);

    // An attempt that died after AdminCreateUser: the user exists without a password.
    pool.cognito
        .admin_create_user()
        .user_pool_id(&pool.pool_id)
        .username(username(&t, &l.email))
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .expect("AdminCreateUser");
    assert!(!identity.verify(&t, &l.email, PW).await.unwrap());

    identity
        .provision(&t, &l, &password(PW, &l.email))
        .await
        .expect("provision over the interrupted attempt");
    assert!(identity.verify(&t, &l.email, PW).await.unwrap());

    // A second provision (the next attempt with the same link) sets its own password and
    // brings the attributes up to date.
    l.contact_ids.push(ContactId::parse("c-3").unwrap());
    identity
        .provision(&t, &l, &password(OTHER_PW, &l.email))
        .await
        .expect("provision again");
    assert!(identity.verify(&t, &l.email, OTHER_PW).await.unwrap());
    assert!(!identity.verify(&t, &l.email, PW).await.unwrap());
    assert_eq!(pool.usernames().await, [username(&t, &l.email)]);
    let (_, _, attrs) = pool.user(&username(&t, &l.email)).await;
    assert_eq!(attrs["custom:contact_ids"], "c-1,c-2,c-3");
}

#[tokio::test]
async fn an_unconfirmed_login_provisioned_twice_stays_disabled() {
    let moto = Moto::shared();
    let pool = pool(moto).await;
    let identity = pool.identity();
    let t = tenant("lakeside");
    let l = login("twice@example.com", LoginVia::PortalKey, false);
    for pw in [PW, OTHER_PW] {
        identity
            .provision(&t, &l, &password(pw, &l.email))
            .await
            .expect("provision");
    }
    assert!(!identity.verify(&t, &l.email, OTHER_PW).await.unwrap());
    identity.enable(&t, &l).await.expect("enable");
    assert!(identity.verify(&t, &l.email, OTHER_PW).await.unwrap());
    assert!(!identity.verify(&t, &l.email, PW).await.unwrap());
}

#[tokio::test]
async fn one_address_in_two_tenants_is_two_users_with_their_own_passwords() {
    let moto = Moto::shared();
    let pool = pool(moto).await;
    let identity = pool.identity();
    let (a, b) = (tenant("lakeside"), tenant("hillcrest"));
    let l = login("shared@example.com", LoginVia::Invitation, true);

    identity
        .provision(&a, &l, &password(PW, &l.email))
        .await
        .expect("provision in lakeside");
    identity
        .provision(&b, &l, &password(OTHER_PW, &l.email))
        .await
        .expect("provision in hillcrest");

    assert_eq!(
        pool.usernames().await,
        [
            "hillcrest:shared@example.com",
            "lakeside:shared@example.com"
        ]
    );
    assert!(identity.verify(&a, &l.email, PW).await.unwrap());
    assert!(!identity.verify(&a, &l.email, OTHER_PW).await.unwrap());
    assert!(identity.verify(&b, &l.email, OTHER_PW).await.unwrap());
    assert!(!identity.verify(&b, &l.email, PW).await.unwrap());
    assert!(!identity
        .verify(&tenant("elsewhere"), &l.email, PW)
        .await
        .unwrap());
    let (_, _, attrs) = pool.user("hillcrest:shared@example.com").await;
    assert_eq!(attrs["custom:tenant"], "hillcrest");
}

#[tokio::test]
async fn the_user_carries_the_tenant_contacts_and_accounts() {
    let moto = Moto::shared();
    let pool = pool(moto).await;
    let identity = pool.identity();
    let t = tenant("lakeside");
    let mut l = login("Attrs@Example.com", LoginVia::Invitation, true);
    l.account_ids.push(AccountId::parse("A-200").unwrap());

    identity
        .provision(&t, &l, &password(PW, &l.email))
        .await
        .expect("provision");
    let (_, _, attrs) = pool.user("lakeside:attrs@example.com").await;
    assert_eq!(attrs["email"], "Attrs@Example.com");
    assert_eq!(attrs["name"], "Jane Doe");
    assert_eq!(attrs["custom:tenant"], "lakeside");
    assert_eq!(attrs["custom:contact_ids"], "c-1,c-2");
    assert_eq!(attrs["custom:account_ids"], "A-100,A-200");
}

#[tokio::test]
async fn a_password_the_pools_policy_refuses_is_reported_as_refused() {
    let moto = Moto::shared();
    // A pool stricter than our rules: it wants a symbol.
    let strict = PasswordPolicyType::builder()
        .minimum_length(12)
        .require_uppercase(false)
        .require_lowercase(false)
        .require_numbers(false)
        .require_symbols(true)
        .build();
    let pool = pool_with(moto, strict).await;
    let identity = pool.identity();
    let t = tenant("lakeside");
    let l = login("strict@example.com", LoginVia::Invitation, true);
    // (Cognito counts a space as a symbol: this one has none.)
    let err = identity
        .provision(&t, &l, &password("lakesidegardenhouse", &l.email))
        .await
        .expect_err("the pool's policy refuses it");
    assert!(matches!(err, IdentityError::PasswordRefused(_)), "{err:?}");
    // The next attempt, with a password the pool takes, finishes the same user.
    identity
        .provision(&t, &l, &password("correct-horse-battery-staple", &l.email))
        .await
        .expect("provision");
    assert!(identity
        .verify(&t, &l.email, "correct-horse-battery-staple")
        .await
        .unwrap());

    // Cognito refuses passwords with white space at either end; the adapter says so first.
    let err = identity
        .provision(&t, &l, &password("correct-horse-battery-staple ", &l.email))
        .await
        .expect_err("a trailing space");
    assert!(matches!(err, IdentityError::PasswordRefused(_)), "{err:?}");
}

#[tokio::test]
async fn failures_of_the_pool_itself_are_errors_not_answers() {
    let moto = Moto::shared();
    let pool = pool(moto).await;
    let t = tenant("lakeside");
    let l = login("missing@example.com", LoginVia::Invitation, true);

    // No such pool: provisioning fails, typed.
    let gone = CognitoIdentity::new(pool.cognito.clone(), "us-east-1_doesnotexist");
    let err = gone
        .provision(&t, &l, &password(PW, &l.email))
        .await
        .expect_err("no such pool");
    assert!(
        matches!(
            err,
            IdentityError::Backend {
                op: "AdminCreateUser",
                ..
            }
        ),
        "{err:?}"
    );
    // Enabling a user that was never provisioned is an error too.
    let err = pool.identity().enable(&t, &l).await.expect_err("no user");
    assert!(matches!(err, IdentityError::Backend { .. }), "{err:?}");
    // Without an app client id there is no way to sign in.
    let no_client = CognitoIdentity::new(pool.cognito.clone(), &pool.pool_id);
    let err = no_client
        .verify(&t, &l.email, PW)
        .await
        .expect_err("no client id");
    assert!(matches!(err, IdentityError::Backend { .. }), "{err:?}");
    // Nor with an unknown one.
    let bad_client = CognitoIdentity::new(pool.cognito.clone(), &pool.pool_id)
        .with_client_id(Some("no-such-client".into()));
    assert!(bad_client.verify(&t, &l.email, PW).await.is_err());
}

// --- The `Portal Registration` event -------------------------------------------------------

/// Retries that do not slow the suite down.
const FAST: RetryPolicy = RetryPolicy {
    attempts: 3,
    first_delay: Duration::from_millis(5),
    max_delay: Duration::from_millis(20),
};

/// A queue receiving what `pattern` matches on `bus`.
async fn queue_for(
    eb: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    bus: &str,
    pattern: Value,
) -> String {
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("portal-registrations"))
        .send()
        .await
        .expect("CreateQueue")
        .queue_url()
        .expect("a queue URL")
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("the queue ARN")
        .clone();
    let rule = unique("rule");
    eb.put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("PutRule");
    eb.put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .expect("a target"),
        )
        .send()
        .await
        .expect("PutTargets");
    queue_url
}

/// Every message on the queue (a few reads; moto delivers at once).
async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Value> {
    let mut events = Vec::new();
    for _ in 0..3 {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("ReceiveMessage");
        for m in out.messages() {
            events.push(serde_json::from_str(m.body().expect("a body")).expect("JSON"));
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().expect("a receipt handle"))
                .send()
                .await
                .expect("DeleteMessage");
        }
    }
    events
}

#[tokio::test]
async fn a_registration_event_reaches_a_rule_matching_its_detail_type_and_no_send_rule() {
    let moto = Moto::shared();
    let eb: aws_sdk_eventbridge::Client = moto.client();
    let sqs: aws_sdk_sqs::Client = moto.client();
    let bus_name = unique("portal-bus");
    eb.create_event_bus()
        .name(&bus_name)
        .send()
        .await
        .expect("CreateEventBus");
    let portal = queue_for(
        &eb,
        &sqs,
        &bus_name,
        serde_json::json!({ "detail-type": ["Portal Registration"] }),
    )
    .await;
    let send_chain = queue_for(
        &eb,
        &sqs,
        &bus_name,
        serde_json::json!({ "source": [EVENT_SOURCE] }),
    )
    .await;

    let event = PortalRegistration {
        tenant: tenant("lakeside"),
        email: email("Jane.Doe@Example.com"),
        name: "Jane Doe".into(),
        contact_ids: vec![ContactId::parse("c-1").unwrap()],
        account_ids: vec![AccountId::parse("A-100").unwrap()],
        via: LoginVia::Invitation,
        campaign_id: Some(CampaignId::parse(format!("{:032x}", 7)).unwrap()),
        registered_at: OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap(),
    };
    let bus = EventBridgeBus::new(moto.client(), &bus_name).with_retry(FAST);
    bus.registered(&event).await.expect("PutEvents");

    let got = drain(&sqs, &portal).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0];
    assert_eq!(e["source"], REGISTRATION_SOURCE);
    assert_eq!(e["detail-type"], DETAIL_TYPE_REGISTRATION);
    assert_eq!(
        e["detail"],
        serde_json::json!({
            "tenant": "lakeside",
            "email": "Jane.Doe@Example.com",
            "name": "Jane Doe",
            "contact_ids": ["c-1"],
            "account_ids": ["A-100"],
            "via": "invitation",
            "campaign_id": format!("{:032x}", 7),
            "registered_at": "2026-09-21T14:13:20Z",
        })
    );
    assert!(
        drain(&sqs, &send_chain).await.is_empty(),
        "the send chain's rules must not see registrations"
    );

    // A portal-key registration has no campaign.
    let by_key = PortalRegistration {
        via: LoginVia::PortalKey,
        campaign_id: None,
        ..event
    };
    bus.registered(&by_key).await.expect("PutEvents");
    let got = drain(&sqs, &portal).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["detail"]["via"], "portal_key");
    assert!(got[0]["detail"]["campaign_id"].is_null());
}

#[tokio::test]
async fn a_registration_event_to_a_missing_bus_fails() {
    let moto = Moto::shared();
    let bus = EventBridgeBus::new(moto.client(), unique("no-such-bus")).with_retry(FAST);
    let event = PortalRegistration {
        tenant: tenant("lakeside"),
        email: email("jane@example.com"),
        name: "Jane".into(),
        contact_ids: vec![],
        account_ids: vec![AccountId::parse("A-1").unwrap()],
        via: LoginVia::PortalKey,
        campaign_id: None,
        registered_at: OffsetDateTime::now_utc(),
    };
    let err = bus
        .registered(&event)
        .await
        .expect_err("no such bus: an error, not a silent drop");
    assert!(
        matches!(
            err,
            portal_core::ports::BusError::Backend(_)
                | portal_core::ports::BusError::Rejected { .. }
        ),
        "{err:?}"
    );
}
