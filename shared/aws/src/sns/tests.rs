//! Messages signed here, as SNS signs them, with a certificate made here and served from a
//! directory or a recording fetcher, so every rejection can also prove no request was made.
//!
//! Version 2 signatures come from aws-lc-rs. aws-lc-rs signs nothing with SHA-1, so version 1
//! signatures are computed by [`TestKey::sign_v1`] from the RSA key's numbers (PKCS#1 v1.5
//! written out); the same code with SHA-256 gives aws-lc-rs's exact bytes, which is checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use simple_asn1::{ASN1Block, BigInt, BigUint};
use time::macros::datetime;
use time::OffsetDateTime;
use url::Url;

use super::message::Envelope;
use super::*;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:portal-ses-events";
const OTHER_ALLOWED_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:portal-ses-events-eu";
const CERT_NAME: &str = "SimpleNotificationService-0123456789abcdef0123456789abcdef.pem";
const SUBSCRIBE_URL: &str = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:portal-ses-events&Token=2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736";
const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:05 UTC);
const NOT_BEFORE: OffsetDateTime = datetime!(2025-01-01 0:00 UTC);
const NOT_AFTER: OffsetDateTime = datetime!(2027-01-01 0:00 UTC);

fn cert_url() -> String {
    format!("https://sns.us-east-1.amazonaws.com/{CERT_NAME}")
}

/// An RSA key that signs like SNS, both versions.
struct TestKey {
    pkcs8: Vec<u8>,
    n: BigUint,
    p: BigUint,
    q: BigUint,
    dp: BigUint,
    dq: BigUint,
    qinv: BigUint,
}

/// DER `DigestInfo` prefixes of PKCS#1 v1.5 (RFC 8017 §9.2, note 1).
const SHA1_DIGEST_INFO: &[u8] = &[
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];
const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

impl TestKey {
    fn from_rcgen(key: &rcgen::KeyPair) -> Self {
        let pkcs8 = key.serialize_der();
        let blocks = simple_asn1::from_der(&pkcs8).expect("PKCS#8 DER");
        let Some(ASN1Block::Sequence(_, outer)) = blocks.first() else {
            panic!("PKCS#8 is not a sequence")
        };
        let Some(ASN1Block::OctetString(_, inner)) = outer.get(2) else {
            panic!("PKCS#8 has no private key octets")
        };
        let blocks = simple_asn1::from_der(inner).expect("RSAPrivateKey DER");
        let Some(ASN1Block::Sequence(_, ints)) = blocks.first() else {
            panic!("RSAPrivateKey is not a sequence")
        };
        let int = |i: usize| match &ints[i] {
            ASN1Block::Integer(_, v) => v.to_biguint().expect("positive"),
            other => panic!("RSAPrivateKey field {i} is {other:?}"),
        };
        Self {
            n: int(1),
            p: int(4),
            q: int(5),
            dp: int(6),
            dq: int(7),
            qinv: int(8),
            pkcs8,
        }
    }

    /// RSASSA-PKCS1-v1_5 over `digest_info || hash`, by the Chinese remainder theorem.
    fn sign_pkcs1(&self, digest_info: &[u8], hash: &[u8]) -> Vec<u8> {
        let k = self.n.to_bytes_be().len();
        let mut em = vec![0xffu8; k];
        em[0] = 0x00;
        em[1] = 0x01;
        let t_len = digest_info.len() + hash.len();
        em[k - t_len - 1] = 0x00;
        em[k - t_len..k - hash.len()].copy_from_slice(digest_info);
        em[k - hash.len()..].copy_from_slice(hash);
        let m = BigUint::from_bytes_be(&em);
        let s1 = m.modpow(&self.dp, &self.p);
        let s2 = m.modpow(&self.dq, &self.q);
        let diff = (BigInt::from(s1) - BigInt::from(s2.clone())) * BigInt::from(self.qinv.clone());
        let p = BigInt::from(self.p.clone());
        let h = ((diff % &p) + &p) % &p;
        let s = BigInt::from(s2) + h * BigInt::from(self.q.clone());
        let bytes = s.to_biguint().expect("positive").to_bytes_be();
        let mut out = vec![0u8; k - bytes.len()];
        out.extend_from_slice(&bytes);
        out
    }

    fn sign_v1(&self, msg: &[u8]) -> Vec<u8> {
        let hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, msg);
        self.sign_pkcs1(SHA1_DIGEST_INFO, hash.as_ref())
    }

    fn sign_v2(&self, msg: &[u8]) -> Vec<u8> {
        let key = RsaKeyPair::from_pkcs8(&self.pkcs8).expect("RSA PKCS#8");
        let mut sig = vec![0u8; key.public_modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
            .expect("sign");
        sig
    }
}

struct Pki {
    /// Holds the public half of `sns`.
    cert_pem: String,
    sns: TestKey,
    /// Signs, but no certificate SNS names holds its public half.
    forger: TestKey,
}

/// Two 2048-bit keys and a self-signed certificate, made once per test binary.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA keygen");
        let mut params =
            rcgen::CertificateParams::new(vec!["sns.amazonaws.com".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sns.amazonaws.com");
        params.not_before = NOT_BEFORE;
        params.not_after = NOT_AFTER;
        let cert = params.self_signed(&key).expect("self-signed certificate");
        let forger = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA keygen");
        Pki {
            cert_pem: cert.pem(),
            sns: TestKey::from_rcgen(&key),
            forger: TestKey::from_rcgen(&forger),
        }
    })
}

/// The string to sign, written from AWS's documentation independently of `message.rs`.
fn documented_string_to_sign(m: &Map<String, Value>) -> String {
    let keys: &[&str] = if m["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    keys.iter()
        .filter_map(|k| {
            m.get(*k)
                .and_then(Value::as_str)
                .map(|v| format!("{k}\n{v}\n"))
        })
        .collect()
}

fn sign_with(mut m: Map<String, Value>, key: &TestKey, version: &str) -> Map<String, Value> {
    let text = documented_string_to_sign(&m);
    let sig = match version {
        "1" => key.sign_v1(text.as_bytes()),
        _ => key.sign_v2(text.as_bytes()),
    };
    m.insert("SignatureVersion".into(), version.into());
    m.insert("Signature".into(), BASE64.encode(sig).into());
    m
}

fn sign(m: Map<String, Value>, version: &str) -> Map<String, Value> {
    sign_with(m, &pki().sns, version)
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// An SES delivery event as SNS carries it: JSON inside a JSON string.
fn ses_event() -> String {
    json!({
        "eventType": "Delivery",
        "mail": {
            "timestamp": "2026-03-01T11:59:58.112Z",
            "source": "Portal <invites@example.com>",
            "messageId": "0100018e-7a0f-4d6b-9c1e-0b6c2f1d2e3f-000000",
            "destination": ["ana.garcía@example.org"],
            "tags": {"invitation_id": ["inv_01HV"], "campaign_id": ["cmp_7"]}
        },
        "delivery": {"timestamp": "2026-03-01T11:59:59.870Z", "smtpResponse": "250 2.0.0 OK \"queued\""}
    })
    .to_string()
}

fn notification(subject: Option<&str>) -> Map<String, Value> {
    let mut m = object(json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Message": ses_event(),
        "Timestamp": "2026-03-01T12:00:00.512Z",
        "SigningCertURL": cert_url(),
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:portal-ses-events:c9135db0",
        "MessageAttributes": {"kind": {"Type": "String", "Value": "ses"}}
    }));
    if let Some(s) = subject {
        m.insert("Subject".into(), s.into());
    }
    m
}

fn confirmation(kind: &str) -> Map<String, Value> {
    object(json!({
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
        "TopicArn": TOPIC,
        "Message": format!("You have chosen to subscribe to the topic {TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": "2026-03-01T12:00:00.512Z",
        "SigningCertURL": cert_url()
    }))
}

fn body(m: &Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(m).expect("JSON")
}

/// Serves what it is told to and records every URL asked for.
#[derive(Default)]
struct FakeFetcher {
    answers: Mutex<HashMap<String, Result<Vec<u8>, u16>>>,
    calls: Mutex<Vec<String>>,
}

impl FakeFetcher {
    fn serve(&self, url: &str, answer: Result<Vec<u8>, u16>) {
        self.answers
            .lock()
            .expect("lock")
            .insert(url.to_owned(), answer);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

#[async_trait]
impl CertFetcher for FakeFetcher {
    async fn get(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        self.calls.lock().expect("lock").push(url.to_string());
        match self.answers.lock().expect("lock").get(url.as_str()) {
            Some(Ok(body)) => Ok(body.clone()),
            Some(Err(status)) => Err(FetchError::Status(*status)),
            None => Err(FetchError::Transport("connection refused".into())),
        }
    }
}

struct Setup {
    verifier: SnsVerifier,
    fetcher: Arc<FakeFetcher>,
    _dir: tempfile::TempDir,
}

/// The certificate sits in the configured directory; the fetcher serves it too, so a
/// rejection with no recorded call shows no request would have been made.
fn with_dir() -> Setup {
    setup(true, CertStore::DEFAULT_CAPACITY)
}

/// No copy in the directory: the certificate must be fetched.
fn fetching(capacity: usize) -> Setup {
    setup(false, capacity)
}

fn setup(in_dir: bool, capacity: usize) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    if in_dir {
        std::fs::write(dir.path().join(CERT_NAME), &pki().cert_pem).expect("write cert");
    }
    let fetcher = Arc::new(FakeFetcher::default());
    fetcher.serve(&cert_url(), Ok(pki().cert_pem.clone().into_bytes()));
    let store = CertStore::new(fetcher.clone())
        .with_dir(dir.path())
        .with_capacity(capacity);
    Setup {
        verifier: SnsVerifier::new([TOPIC, OTHER_ALLOWED_TOPIC], store),
        fetcher,
        _dir: dir,
    }
}

#[test]
fn the_test_signer_is_standard_pkcs1() {
    let msg = b"Message\nhello\n";
    let hash = digest::digest(&digest::SHA256, msg);
    assert_eq!(
        pki().sns.sign_pkcs1(SHA256_DIGEST_INFO, hash.as_ref()),
        pki().sns.sign_v2(msg),
        "hand-written PKCS#1 v1.5 must give aws-lc-rs's bytes"
    );
}

#[test]
fn string_to_sign_of_a_notification_includes_subject_only_when_present() {
    let json = |subject: &str| {
        format!(
            r#"{{"Type":"Notification","MessageId":"id-1","TopicArn":"arn:t",{subject}"Message":"line1\nline2 \"q\" é","Timestamp":"2026-03-01T12:00:00.512Z","SignatureVersion":"2","Signature":"AA==","SigningCertURL":"u"}}"#
        )
    };
    let with = Envelope::parse(json(r#""Subject":"Hi","#).as_bytes()).expect("parses");
    assert_eq!(
        with.string_to_sign(),
        "Message\nline1\nline2 \"q\" é\nMessageId\nid-1\nSubject\nHi\nTimestamp\n2026-03-01T12:00:00.512Z\nTopicArn\narn:t\nType\nNotification\n"
    );
    for absent in ["", r#""Subject":null,"#] {
        let without = Envelope::parse(json(absent).as_bytes()).expect("parses");
        assert_eq!(
            without.string_to_sign(),
            "Message\nline1\nline2 \"q\" é\nMessageId\nid-1\nTimestamp\n2026-03-01T12:00:00.512Z\nTopicArn\narn:t\nType\nNotification\n"
        );
    }
}

#[test]
fn string_to_sign_of_a_confirmation_has_subscribe_url_and_token() {
    let env = Envelope::parse(
        br#"{"Type":"UnsubscribeConfirmation","MessageId":"id-2","Token":"tok","TopicArn":"arn:t","Message":"m","SubscribeURL":"https://s/?a=b","Timestamp":"t","SignatureVersion":"1","Signature":"AA==","SigningCertURL":"u","Subject":"ignored"}"#,
    )
    .expect("parses");
    assert_eq!(
        env.string_to_sign(),
        "Message\nm\nMessageId\nid-2\nSubscribeURL\nhttps://s/?a=b\nTimestamp\nt\nToken\ntok\nTopicArn\narn:t\nType\nUnsubscribeConfirmation\n"
    );
}

#[tokio::test]
async fn genuine_notifications_of_both_versions_are_accepted() {
    let s = with_dir();
    for version in ["1", "2"] {
        for subject in [None, Some("Amazon SES Email Event Notification")] {
            let got = s
                .verifier
                .verify(&body(&sign(notification(subject), version)), NOW)
                .await;
            let Ok(VerifiedMessage::Notification(n)) = got else {
                panic!("v{version} subject {subject:?}: {got:?}")
            };
            assert_eq!(n.message, ses_event());
            assert_eq!(n.topic_arn, TOPIC);
            assert_eq!(n.subject.as_deref(), subject);
            assert_eq!(n.message_id, "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324");
            assert_eq!(n.timestamp, datetime!(2026-03-01 12:00:00.512 UTC));
        }
    }
    assert!(s.fetcher.calls().is_empty(), "the directory's copy is used");
}

#[tokio::test]
async fn genuine_subscription_confirmation_is_accepted_and_confirmed_by_a_get() {
    let s = with_dir();
    for version in ["1", "2"] {
        let got = s
            .verifier
            .verify(
                &body(&sign(confirmation("SubscriptionConfirmation"), version)),
                NOW,
            )
            .await;
        let Ok(VerifiedMessage::SubscriptionConfirmation(c)) = got else {
            panic!("v{version}: {got:?}")
        };
        assert_eq!(c.subscribe_url().as_str(), SUBSCRIBE_URL);
        assert_eq!(c.topic_arn, TOPIC);
        assert!(
            s.fetcher.calls().is_empty(),
            "nothing is confirmed by verify"
        );
        s.fetcher.serve(
            SUBSCRIBE_URL,
            Ok(b"<ConfirmSubscriptionResponse/>".to_vec()),
        );
        s.verifier
            .confirm_subscription(&c)
            .await
            .expect("confirmed");
        assert_eq!(s.fetcher.calls(), vec![SUBSCRIBE_URL.to_owned()]);
        s.fetcher.calls.lock().expect("lock").clear();
    }
}

#[tokio::test]
async fn failed_confirmation_is_reported_as_retryable() {
    let s = with_dir();
    let got = s
        .verifier
        .verify(
            &body(&sign(confirmation("SubscriptionConfirmation"), "2")),
            NOW,
        )
        .await;
    let Ok(VerifiedMessage::SubscriptionConfirmation(c)) = got else {
        panic!("{got:?}")
    };
    s.fetcher.serve(SUBSCRIBE_URL, Err(503));
    let err = s.verifier.confirm_subscription(&c).await.expect_err("503");
    assert!(
        matches!(err, SnsError::ConfirmSubscription { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), SnsErrorClass::Unavailable);
}

#[tokio::test]
async fn genuine_unsubscribe_confirmation_is_accepted() {
    let s = with_dir();
    let got = s
        .verifier
        .verify(
            &body(&sign(confirmation("UnsubscribeConfirmation"), "2")),
            NOW,
        )
        .await;
    let Ok(VerifiedMessage::UnsubscribeConfirmation(u)) = got else {
        panic!("{got:?}")
    };
    assert_eq!(u.subscribe_url, SUBSCRIBE_URL);
    assert!(s.fetcher.calls().is_empty());
}

#[tokio::test]
async fn lambda_spelling_of_signing_cert_url_is_accepted() {
    let s = with_dir();
    let mut m = sign(notification(None), "2");
    let url = m.remove("SigningCertURL").expect("present");
    m.insert("SigningCertUrl".into(), url);
    let got = s.verifier.verify(&body(&m), NOW).await;
    assert!(
        matches!(got, Ok(VerifiedMessage::Notification(_))),
        "{got:?}"
    );
}

async fn assert_bad_signature(s: &Setup, m: &Map<String, Value>, what: &str) {
    let got = s.verifier.verify(&body(m), NOW).await;
    assert!(
        matches!(got, Err(SnsError::BadSignature)),
        "{what}: {got:?}"
    );
    assert_eq!(
        got.expect_err("rejected").class(),
        SnsErrorClass::Forbidden,
        "{what}"
    );
}

#[tokio::test]
async fn any_tampered_signed_field_is_rejected() {
    let s = with_dir();
    for version in ["1", "2"] {
        let signed = sign(notification(Some("subject")), version);
        for (field, value) in [
            (
                "Message",
                json!(ses_event().replace("Delivery", "Complaint")),
            ),
            ("Subject", json!("subject ")),
            ("Timestamp", json!("2026-03-01T12:00:00.513Z")),
            ("TopicArn", json!(OTHER_ALLOWED_TOPIC)),
            ("MessageId", json!("22b80b92-fdea-4c2c-8f9d-bdfb0c7bf325")),
        ] {
            let mut m = signed.clone();
            m.insert(field.into(), value);
            assert_bad_signature(&s, &m, &format!("v{version} {field}")).await;
        }
        let mut dropped = signed.clone();
        dropped.remove("Subject");
        assert_bad_signature(&s, &dropped, &format!("v{version} Subject removed")).await;

        let mut added = sign(notification(None), version);
        added.insert("Subject".into(), json!("added"));
        assert_bad_signature(&s, &added, &format!("v{version} Subject added")).await;

        let signed = sign(confirmation("SubscriptionConfirmation"), version);
        for (field, value) in [
            (
                "SubscribeURL",
                json!(SUBSCRIBE_URL.replace("Token=2", "Token=3")),
            ),
            ("Token", json!("other")),
            ("Message", json!("other")),
        ] {
            let mut m = signed.clone();
            m.insert(field.into(), value);
            assert_bad_signature(&s, &m, &format!("v{version} confirmation {field}")).await;
        }
    }
}

#[tokio::test]
async fn signature_by_another_key_or_of_the_other_version_is_rejected() {
    let s = with_dir();
    for version in ["1", "2"] {
        let forged = sign_with(notification(None), &pki().forger, version);
        assert_bad_signature(&s, &forged, &format!("forged v{version}")).await;
    }
    let mut swapped = sign(notification(None), "1");
    swapped.insert("SignatureVersion".into(), "2".into());
    assert_bad_signature(&s, &swapped, "v1 signature labelled 2").await;

    let mut garbage = sign(notification(None), "2");
    garbage.insert("Signature".into(), "not base64!".into());
    assert_bad_signature(&s, &garbage, "not base64").await;
}

#[tokio::test]
async fn topic_not_on_the_allow_list_is_rejected_before_any_fetch() {
    let s = fetching(CertStore::DEFAULT_CAPACITY);
    let mut m = notification(None);
    m.insert(
        "TopicArn".into(),
        "arn:aws:sns:us-east-1:999999999999:portal-ses-events".into(),
    );
    let got = s.verifier.verify(&body(&sign(m, "2")), NOW).await;
    assert!(matches!(got, Err(SnsError::TopicNotAllowed(_))), "{got:?}");
    assert!(s.fetcher.calls().is_empty(), "{:?}", s.fetcher.calls());
}

#[tokio::test]
async fn certificate_urls_off_the_sns_hosts_are_rejected_before_any_fetch() {
    let s = with_dir();
    let bad = [
        format!("http://sns.us-east-1.amazonaws.com/{CERT_NAME}"),
        format!("https://sns.evil.com/{CERT_NAME}"),
        format!("https://sns.us-east-1.amazonaws.com.evil.com/{CERT_NAME}"),
        format!("https://evil.com/sns.us-east-1.amazonaws.com/{CERT_NAME}"),
        format!("https://sns.us-east-1.amazonaws.com@evil.com/{CERT_NAME}"),
        format!("https://user@sns.us-east-1.amazonaws.com/{CERT_NAME}"),
        format!("https://user:pw@sns.us-east-1.amazonaws.com/{CERT_NAME}"),
        format!("https://sns.us-east-1.amazonaws.com:8443/{CERT_NAME}"),
        format!("https://sns.us-east-1.amazonaws.com./{CERT_NAME}"),
        format!("https://sns.us-east-1.amazonaws.com%2eevil.com/{CERT_NAME}"),
        format!("https://evil.com#@sns.us-east-1.amazonaws.com/{CERT_NAME}"),
        format!("https://sns.cn-north-1.amazonaws.com/{CERT_NAME}"),
        format!("https://sns.us-east-1.amazonaws.com.cn/{CERT_NAME}"),
        format!("https://52.94.0.1/{CERT_NAME}"),
        format!("https://[2600:1f18::1]/{CERT_NAME}"),
        format!("https://sns.us-east-1.amazonaws.com/other/{CERT_NAME}"),
        format!("https://sns.us-east-1.amazonaws.com/{CERT_NAME}?x=1"),
        format!("https://sns.us-east-1.amazonaws.com/{CERT_NAME}#x"),
        "https://sns.us-east-1.amazonaws.com/evil.pem".to_owned(),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-..%2Fetc%2Fpasswd.pem"
            .to_owned(),
        format!("file:///{CERT_NAME}"),
        format!("//sns.us-east-1.amazonaws.com/{CERT_NAME}"),
        String::new(),
    ];
    for url in &bad {
        s.fetcher
            .serve(url, Ok(pki().cert_pem.clone().into_bytes()));
        let mut m = notification(None);
        m.insert("SigningCertURL".into(), url.as_str().into());
        let got = s.verifier.verify(&body(&sign(m, "2")), NOW).await;
        assert!(
            matches!(got, Err(SnsError::BadCertUrl { .. })),
            "{url}: {got:?}"
        );
    }
    assert!(s.fetcher.calls().is_empty(), "{:?}", s.fetcher.calls());
}

#[tokio::test]
async fn certificate_url_is_normalized_before_the_check() {
    let s = with_dir();
    for url in [
        format!("https://SNS.US-EAST-1.AMAZONAWS.COM/{CERT_NAME}"),
        format!("https://sns.us-east-1.amazonaws.com:443/{CERT_NAME}"),
    ] {
        assert_eq!(
            check_cert_url(&url).expect("accepted").url().as_str(),
            cert_url()
        );
        let mut m = notification(None);
        m.insert("SigningCertURL".into(), url.as_str().into());
        let got = s.verifier.verify(&body(&sign(m, "2")), NOW).await;
        assert!(
            matches!(got, Ok(VerifiedMessage::Notification(_))),
            "{url}: {got:?}"
        );
    }
}

#[tokio::test]
async fn subscribe_url_off_the_sns_hosts_is_rejected_before_any_request() {
    let s = fetching(CertStore::DEFAULT_CAPACITY);
    for url in [
        "https://evil.com/?Action=ConfirmSubscription",
        "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
        "https://sns.us-east-1.amazonaws.com.evil.com/?Action=ConfirmSubscription",
        "https://sns.us-east-1.amazonaws.com:444/?Action=ConfirmSubscription",
    ] {
        let mut m = confirmation("SubscriptionConfirmation");
        m.insert("SubscribeURL".into(), url.into());
        // Genuinely signed: even SNS's own signature does not make us GET another host.
        let got = s.verifier.verify(&body(&sign(m, "2")), NOW).await;
        assert!(
            matches!(got, Err(SnsError::BadSubscribeUrl { .. })),
            "{url}: {got:?}"
        );
    }
    assert!(s.fetcher.calls().is_empty(), "{:?}", s.fetcher.calls());
}

#[test]
fn check_subscribe_url_allows_any_path_and_query_on_an_sns_host() {
    assert_eq!(
        check_subscribe_url(SUBSCRIBE_URL).expect("ok").as_str(),
        SUBSCRIBE_URL
    );
    assert!(check_subscribe_url("https://sns.cn-north-1.amazonaws.com.cn/confirm?x=1").is_ok());
    assert!(check_subscribe_url("https://sns.evil.com/?Action=ConfirmSubscription").is_err());
}

#[tokio::test]
async fn unsupported_signature_versions_are_rejected_before_any_fetch() {
    let s = fetching(CertStore::DEFAULT_CAPACITY);
    for version in ["3", "0", "", "2 ", "1.0", "SHA256"] {
        let mut m = sign(notification(None), "2");
        m.insert("SignatureVersion".into(), version.into());
        let got = s.verifier.verify(&body(&m), NOW).await;
        assert!(
            matches!(got, Err(SnsError::UnsupportedSignatureVersion(_))),
            "{version:?}: {got:?}"
        );
    }
    assert!(s.fetcher.calls().is_empty());
}

/// A notification stamped `at` (RFC 3339, as SNS writes it), signed with version 2.
fn stamped(at: OffsetDateTime) -> Vec<u8> {
    let mut m = notification(None);
    let ts = at
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    m.insert("Timestamp".into(), ts.into());
    body(&sign(m, "2"))
}

#[tokio::test]
async fn certificate_outside_its_validity_is_rejected() {
    let s = with_dir();
    for now in [
        NOT_AFTER + time::Duration::seconds(1),
        NOT_BEFORE - time::Duration::seconds(1),
    ] {
        let m = stamped(now);
        let got = s.verifier.verify(&m, now).await;
        assert!(
            matches!(got, Err(SnsError::BadCert { .. })),
            "{now}: {got:?}"
        );
    }
    for now in [NOT_BEFORE, NOT_AFTER] {
        assert!(
            s.verifier.verify(&stamped(now), now).await.is_ok(),
            "{now}: bounds are inclusive"
        );
    }
}

#[tokio::test]
async fn fetched_certificate_is_cached_by_url() {
    let s = fetching(CertStore::DEFAULT_CAPACITY);
    for version in ["1", "2", "2"] {
        let got = s
            .verifier
            .verify(&body(&sign(notification(None), version)), NOW)
            .await;
        assert!(got.is_ok(), "{got:?}");
    }
    assert_eq!(s.fetcher.calls(), vec![cert_url()]);
}

#[tokio::test]
async fn cache_is_bounded_oldest_first() {
    let s = fetching(1);
    let other_name = "SimpleNotificationService-fedcba9876543210fedcba9876543210.pem";
    let other_url = format!("https://sns.us-east-1.amazonaws.com/{other_name}");
    s.fetcher
        .serve(&other_url, Ok(pki().cert_pem.clone().into_bytes()));
    for url in [cert_url(), cert_url(), other_url.clone(), cert_url()] {
        let mut m = notification(None);
        m.insert("SigningCertURL".into(), url.into());
        let got = s.verifier.verify(&body(&sign(m, "2")), NOW).await;
        assert!(got.is_ok(), "{got:?}");
    }
    assert_eq!(s.fetcher.calls(), vec![cert_url(), other_url, cert_url()]);
}

#[tokio::test]
async fn certificate_fetch_failures_say_whether_to_retry() {
    let s = fetching(CertStore::DEFAULT_CAPACITY);
    let m = body(&sign(notification(None), "2"));
    // Each failure is remembered for a minute: step past it between cases.
    let mut now = NOW;
    let mut later = || {
        now += cert::FAILURE_TTL;
        now
    };

    s.fetcher.serve(&cert_url(), Err(404));
    let err = s.verifier.verify(&m, NOW).await.expect_err("404");
    assert!(matches!(err, SnsError::CertFetch { .. }), "{err:?}");
    assert_eq!(err.class(), SnsErrorClass::Forbidden);

    s.fetcher.answers.lock().expect("lock").clear();
    let err = s.verifier.verify(&m, later()).await.expect_err("refused");
    assert!(matches!(err, SnsError::CertFetch { .. }), "{err:?}");
    assert_eq!(err.class(), SnsErrorClass::Unavailable);

    s.fetcher.serve(
        &cert_url(),
        Ok(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec()),
    );
    let err = s.verifier.verify(&m, later()).await.expect_err("garbage");
    assert!(matches!(err, SnsError::BadCert { .. }), "{err:?}");

    // Failures are forgotten after a minute: once the certificate is served, it verifies.
    s.fetcher
        .serve(&cert_url(), Ok(pki().cert_pem.clone().into_bytes()));
    assert!(s.verifier.verify(&m, later()).await.is_ok());
    assert_eq!(s.fetcher.calls().len(), 4);
}

#[tokio::test]
async fn a_failed_certificate_fetch_is_not_repeated_for_a_minute() {
    let s = fetching(CertStore::DEFAULT_CAPACITY);
    let m = body(&sign(notification(None), "2"));
    s.fetcher.serve(&cert_url(), Err(404));
    for _ in 0..50 {
        let err = s.verifier.verify(&m, NOW).await.expect_err("404");
        assert_eq!(err.class(), SnsErrorClass::Forbidden, "{err}");
    }
    let err = s
        .verifier
        .verify(&m, NOW + time::Duration::seconds(59))
        .await
        .expect_err("remembered");
    assert!(err.to_string().contains("could not get"), "{err}");
    assert_eq!(s.fetcher.calls().len(), 1, "one request for 51 messages");

    // A network failure is remembered too, and stays retryable (SNS delivers again).
    let s = fetching(CertStore::DEFAULT_CAPACITY);
    s.fetcher.answers.lock().expect("lock").clear();
    for _ in 0..10 {
        let err = s.verifier.verify(&m, NOW).await.expect_err("down");
        assert_eq!(err.class(), SnsErrorClass::Unavailable);
    }
    assert_eq!(s.fetcher.calls().len(), 1);
    s.fetcher
        .serve(&cert_url(), Ok(pki().cert_pem.clone().into_bytes()));
    let at = NOW + cert::FAILURE_TTL;
    let m = stamped(at);
    assert!(s.verifier.verify(&m, at).await.is_ok());
    assert_eq!(s.fetcher.calls().len(), 2);
}

#[tokio::test]
async fn a_flood_of_made_up_certificate_names_makes_a_bounded_number_of_requests() {
    let s = fetching(CertStore::DEFAULT_CAPACITY);
    // The genuine certificate is cached before the flood...
    assert!(s
        .verifier
        .verify(&body(&sign(notification(None), "2")), NOW)
        .await
        .is_ok());
    for i in 0..200 {
        let mut m = notification(None);
        m.insert(
            "SigningCertURL".into(),
            format!(
                "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-made-up-{i}.pem"
            )
            .into(),
        );
        let err = s
            .verifier
            .verify(&body(&sign(m, "2")), NOW)
            .await
            .expect_err("no such certificate");
        assert!(matches!(err, SnsError::CertFetch { .. }), "{err:?}");
    }
    assert_eq!(
        s.fetcher.calls().len(),
        1 + cert::MAX_RECENT_FAILURES,
        "the genuine fetch, then at most {} failures a minute",
        cert::MAX_RECENT_FAILURES
    );
    // ...and genuine messages keep verifying from the cache meanwhile.
    assert!(s
        .verifier
        .verify(&body(&sign(notification(None), "2")), NOW)
        .await
        .is_ok());
    // A new name past the limit is a 503 (SNS would deliver a genuine one again later).
    let mut m = notification(None);
    m.insert(
        "SigningCertURL".into(),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-next.pem".into(),
    );
    let err = s
        .verifier
        .verify(&body(&sign(m.clone(), "2")), NOW)
        .await
        .expect_err("limited");
    assert_eq!(err.class(), SnsErrorClass::Unavailable, "{err}");
    // A minute later, fetching resumes.
    let at = NOW + cert::FAILURE_TTL;
    m.insert(
        "Timestamp".into(),
        at.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
            .into(),
    );
    let _ = s.verifier.verify(&body(&sign(m, "2")), at).await;
    assert_eq!(s.fetcher.calls().len(), 2 + cert::MAX_RECENT_FAILURES);
}

fn with_policy(policy: SnsPolicy) -> Setup {
    let mut s = fetching(CertStore::DEFAULT_CAPACITY);
    s.verifier = SnsVerifier::new(
        [TOPIC, OTHER_ALLOWED_TOPIC],
        CertStore::new(s.fetcher.clone()),
    )
    .with_policy(policy);
    s
}

#[tokio::test]
async fn certificates_of_other_regions_are_not_fetched() {
    let s = with_policy(SnsPolicy {
        regions: SnsRegions::parse_list("eu-west-1").expect("regions"),
        ..SnsPolicy::default()
    });
    let other = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-eu.pem";
    s.fetcher
        .serve(other, Ok(pki().cert_pem.clone().into_bytes()));
    for url in [
        cert_url(),
        format!("https://sns.ap-southeast-2.amazonaws.com/{CERT_NAME}"),
        format!("https://sns.cn-north-1.amazonaws.com.cn/{CERT_NAME}"),
    ] {
        let mut m = notification(None);
        m.insert("SigningCertURL".into(), url.clone().into());
        let err = s
            .verifier
            .verify(&body(&sign(m, "2")), NOW)
            .await
            .expect_err("another region");
        assert!(
            matches!(err, SnsError::RegionNotAllowed { .. }),
            "{url}: {err:?}"
        );
        assert_eq!(err.class(), SnsErrorClass::Forbidden);
    }
    let mut c = confirmation("SubscriptionConfirmation");
    c.insert("SigningCertURL".into(), other.into());
    let err = s
        .verifier
        .verify(&body(&sign(c, "2")), NOW)
        .await
        .expect_err("SubscribeURL of us-east-1");
    assert!(
        matches!(
            err,
            SnsError::RegionNotAllowed {
                what: "SubscribeURL",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(s.fetcher.calls().is_empty(), "{:?}", s.fetcher.calls());

    let mut m = notification(None);
    m.insert("SigningCertURL".into(), other.into());
    assert!(s.verifier.verify(&body(&sign(m, "2")), NOW).await.is_ok());
    assert_eq!(s.fetcher.calls(), vec![other.to_owned()]);
}

#[tokio::test]
async fn version_1_is_refused_when_only_version_2_is_accepted() {
    let s = with_policy(SnsPolicy {
        signature_v2_only: true,
        ..SnsPolicy::default()
    });
    let err = s
        .verifier
        .verify(&body(&sign(notification(None), "1")), NOW)
        .await
        .expect_err("v1");
    assert!(
        matches!(err, SnsError::SignatureVersionNotAllowed),
        "{err:?}"
    );
    assert_eq!(err.class(), SnsErrorClass::Forbidden);
    assert!(s.fetcher.calls().is_empty());
    assert!(s
        .verifier
        .verify(&body(&sign(notification(None), "2")), NOW)
        .await
        .is_ok());
}

#[tokio::test]
async fn a_captured_message_cannot_be_replayed_after_snss_retries_end() {
    let s = with_dir();
    let genuine = body(&sign(notification(None), "2"));
    let sent = datetime!(2026-03-01 12:00:00.512 UTC);
    let max_age = SnsPolicy::DEFAULT_MAX_AGE;
    // Within SNS's retry window (and the margin): still believed.
    assert!(s.verifier.verify(&genuine, sent + max_age).await.is_ok());
    // Past it: a replay, refused before any request.
    for now in [
        sent + max_age + time::Duration::seconds(1),
        sent + time::Duration::days(30),
    ] {
        let err = s.verifier.verify(&genuine, now).await.expect_err("replay");
        assert!(matches!(err, SnsError::Stale { .. }), "{now}: {err:?}");
        assert_eq!(err.class(), SnsErrorClass::Forbidden);
    }
    // Stamped well ahead of our clock: refused too.
    let ahead = sent - verifier::MAX_CLOCK_AHEAD - time::Duration::seconds(1);
    let err = s.verifier.verify(&genuine, ahead).await.expect_err("ahead");
    assert!(matches!(err, SnsError::Stale { .. }), "{err:?}");
    assert!(s
        .verifier
        .verify(&genuine, sent - time::Duration::seconds(30))
        .await
        .is_ok());

    // A shorter configured window is honoured.
    let s = with_policy(SnsPolicy {
        max_age: time::Duration::minutes(10),
        ..SnsPolicy::default()
    });
    let err = s
        .verifier
        .verify(&genuine, sent + time::Duration::minutes(11))
        .await
        .expect_err("older than 10 minutes");
    assert!(matches!(err, SnsError::Stale { .. }), "{err:?}");
    assert!(s.fetcher.calls().is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_told_apart_from_forgeries() {
    let s = fetching(CertStore::DEFAULT_CAPACITY);
    let genuine = sign(notification(None), "2");
    let mut missing = genuine.clone();
    missing.remove("Signature");
    let mut not_string = genuine.clone();
    not_string.insert("Message".into(), json!({"eventType": "Delivery"}));
    let mut bad_time = genuine.clone();
    bad_time.insert("Timestamp".into(), "yesterday".into());
    let both_spellings = {
        let mut text = String::from_utf8(body(&genuine)).expect("utf-8");
        text.pop();
        text.push_str(&format!(r#","SigningCertUrl":"{}"}}"#, cert_url()));
        text.into_bytes()
    };
    let mut confirmation_without_token = sign(confirmation("SubscriptionConfirmation"), "2");
    confirmation_without_token.remove("Token");
    for (what, bytes) in [
        ("not JSON", b"Type=Notification".to_vec()),
        ("an array", b"[]".to_vec()),
        ("no Signature", body(&missing)),
        ("Message not a string", body(&not_string)),
        ("Timestamp not RFC 3339", body(&bad_time)),
        ("SigningCertURL twice", both_spellings),
        ("no Token", body(&confirmation_without_token)),
    ] {
        let err = s.verifier.verify(&bytes, NOW).await.expect_err(what);
        assert!(matches!(err, SnsError::Malformed(_)), "{what}: {err:?}");
        assert_eq!(err.class(), SnsErrorClass::Malformed, "{what}");
    }
    let mut unknown = genuine.clone();
    unknown.insert("Type".into(), "Reminder".into());
    let err = s
        .verifier
        .verify(&body(&unknown), NOW)
        .await
        .expect_err("type");
    assert!(matches!(err, SnsError::UnknownType(_)), "{err:?}");
    assert!(s.fetcher.calls().is_empty());
}
