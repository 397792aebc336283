//! The functions' secrets from SSM Parameter Store, against moto: a function given
//! `{SECRET}_PARAMETER` names reads the `SecureString` values at cold start, a missing
//! parameter stops it naming the parameter (never a value), and the settings built from
//! them sign with the new key of a rotation and accept the previous one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_ssm::types::ParameterType;
use portal_aws::secrets::{read_parameters, resolve, SecretsError};
use portal_core::domain::{Email, TenantId};
use portal_lambda::secrets::{Secrets, SECRET_VARS};
use portal_lambda::{Env, SendSettings, SettingsError};
use portal_testkit::moto::Moto;
use time::macros::datetime;

const OLD: &str = "old-unsubscribe-key-0123456789abcdef";
const NEW: &str = "new-unsubscribe-key-0123456789abcdef";
const TOKEN: &str = "token-secret-0123456789abcdef-0123456789";

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "/portal-test/{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn put_secure(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .expect("put_parameter on moto");
}

#[tokio::test]
async fn a_function_reads_the_secrets_it_is_given_and_nothing_else() {
    let ssm: aws_sdk_ssm::Client = Moto::shared().client();
    let (token, unsub) = (unique("token"), unique("unsub"));
    put_secure(&ssm, &token, TOKEN).await;
    put_secure(&ssm, &unsub, &format!("{NEW}\n{OLD}\n")).await;
    // A delivery function's variables: both parameters named, no raw-events secret.
    let env = HashMap::from([
        ("TOKEN_SECRET_PARAMETER".to_owned(), token.clone()),
        ("UNSUBSCRIBE_SECRET_PARAMETER".to_owned(), unsub.clone()),
        ("RAW_EVENTS_SECRET_PARAMETER".to_owned(), String::new()),
        (
            "PUBLIC_URL".to_owned(),
            "https://invite.example.org".to_owned(),
        ),
    ]);
    let values = resolve(&ssm, |n| env.get(n).cloned(), SECRET_VARS)
        .await
        .unwrap();
    let mut names: Vec<&str> = values.keys().copied().collect();
    names.sort_unstable();
    assert_eq!(names, ["TOKEN_SECRET", "UNSUBSCRIBE_SECRET"]);
    assert_eq!(values["TOKEN_SECRET"], TOKEN, "decrypted");

    // The settings read through the secrets: unsubscribe links signed with the new key,
    // links signed with the previous one still accepted.
    let secrets = Secrets::new(values);
    let lookup = |name: &str| match secrets.get(name) {
        Some(v) => Ok(v.to_owned()),
        None => env.get(name).cloned().ok_or(std::env::VarError::NotPresent),
    };
    let settings = SendSettings::from_lookup(lookup).unwrap();
    let signer = settings
        .unsubscribe
        .expect("a delivery has the unsubscribe key");
    let (t, e) = (
        TenantId::parse("acme").unwrap(),
        Email::parse("ana@example.com").unwrap(),
    );
    let at = datetime!(2026-12-01 10:00 UTC);
    let old = portal_core::domain::unsubscribe::UnsubscribeSigner::new(OLD)
        .unwrap()
        .sign(&t, &e, "c:1", at);
    assert_eq!(signer.verify(&old).unwrap().email, e);
    let new = signer.sign(&t, &e, "c:2", at);
    let only_new = portal_core::domain::unsubscribe::UnsubscribeSigner::new(NEW).unwrap();
    assert_eq!(only_new.verify(&new).unwrap().invitation_id, "c:2");
    assert!(
        portal_core::domain::unsubscribe::UnsubscribeSigner::new(OLD)
            .unwrap()
            .verify(&new)
            .is_err(),
        "new links are signed with the new key only"
    );

    // A function given no unsubscribe parameter (the fan-out) has no unsubscribe key.
    let fan_out_env = HashMap::from([
        ("TOKEN_SECRET_PARAMETER".to_owned(), token.clone()),
        (
            "PUBLIC_URL".to_owned(),
            "https://invite.example.org".to_owned(),
        ),
    ]);
    let values = resolve(&ssm, |n| fan_out_env.get(n).cloned(), SECRET_VARS)
        .await
        .unwrap();
    assert_eq!(values.len(), 1);
    let secrets = Secrets::new(values);
    let lookup = |name: &str| match secrets.get(name) {
        Some(v) => Ok(v.to_owned()),
        None => fan_out_env
            .get(name)
            .cloned()
            .ok_or(std::env::VarError::NotPresent),
    };
    let settings = SendSettings::from_lookup(lookup).unwrap();
    assert!(settings.unsubscribe.is_none());
    assert!(Env::from_lookup(lookup).unsubscribe_signer().is_err());
}

#[tokio::test]
async fn a_missing_parameter_stops_the_function_naming_it_and_no_value() {
    let ssm: aws_sdk_ssm::Client = Moto::shared().client();
    let present = unique("present");
    put_secure(&ssm, &present, "a-value-that-must-never-be-printed-0123").await;
    let absent = unique("absent");
    let err = read_parameters(&ssm, &[present.clone(), absent.clone()])
        .await
        .unwrap_err();
    match &err {
        SecretsError::Missing(names) => assert_eq!(names, std::slice::from_ref(&absent)),
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&absent), "{text}");
    assert!(!text.contains("must-never-be-printed"), "{text}");
    // Twelve parameters take two calls; all come back.
    let mut names = Vec::new();
    for i in 0..12 {
        let n = unique(&format!("many{i}"));
        put_secure(&ssm, &n, &format!("value-{i}")).await;
        names.push(n);
    }
    let values = read_parameters(&ssm, &names).await.unwrap();
    assert_eq!(values.len(), 12);
    assert_eq!(values[&names[11]], "value-11");
}

#[test]
fn a_secret_with_more_than_two_keys_or_a_short_key_is_refused_by_name() {
    let env = |value: &'static str| {
        move |name: &str| match name {
            "TOKEN_SECRET" => Ok(value.to_owned()),
            "PUBLIC_URL" => Ok("https://invite.example.org".to_owned()),
            _ => Err(std::env::VarError::NotPresent),
        }
    };
    let three = "k1-0123456789abcdef0123456789abcdef\nk2-0123456789abcdef0123456789abcdef\nk3-0123456789abcdef0123456789abcdef";
    let err = SendSettings::from_lookup(env(three)).unwrap_err();
    assert_eq!(err, SettingsError::TooManyKeys("TOKEN_SECRET"));
    assert!(!err.to_string().contains("k1-"));
    let err =
        SendSettings::from_lookup(env("short\nk2-0123456789abcdef0123456789abcdef")).unwrap_err();
    assert!(matches!(
        err,
        SettingsError::ShortSecret {
            name: "TOKEN_SECRET",
            ..
        }
    ));
}
