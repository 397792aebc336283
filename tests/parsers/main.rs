//! Never panics on bytes: every parser that reads what the outside sends — SNS envelopes and
//! certificate URLs, SES event records (SNS and EventBridge), account sync bodies (JSON and
//! NDJSON), template sources, list cursors (the shared encoding, invitation and campaign
//! cursors, and the SQLite store's contact-list cursor), manager JWTs, unsubscribe tokens and
//! addresses — gets arbitrary bytes and mutations of a valid input, and must answer `Ok` or a
//! typed error: never a panic, and never more allocation than a bound linear in the input
//! ([`alloc::bounded`]: at most [`alloc::PER_BYTE`] bytes per input byte plus
//! [`alloc::BASE`]), measured by a counting global allocator.
//!
//! (The CSV import's parser has the same property in `infra/tests/csv_bytes.rs`: it lives in
//! the `portal-invites` crate.)

mod alloc;

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portal_aws::ses_events::{parse_eventbridge, parse_record};
use portal_aws::sns::{check_cert_url, check_subscribe_url, CertStore, FetchError, SnsVerifier};
use portal_core::domain::unsubscribe::UnsubscribeSigner;
use portal_core::domain::{Email, Template, TemplateId, TenantId};
use portal_core::ports::cursor;
use portal_core::ports::{decode_campaign_cursor, decode_invitation_cursor};
use portal_http::auth::{issue_hs256, Claims, Verifier};
use portal_http::sync::{parse_json_array, parse_ndjson};
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use time::macros::datetime;
use time::OffsetDateTime;

use alloc::bounded;

const NOW: OffsetDateTime = datetime!(2026-12-01 12:00:00 UTC);
const JWT_SECRET: &[u8] = b"parsers-test-secret-parsers-test-secret";
const UNSUBSCRIBE_SECRET: &[u8] = b"parsers-unsubscribe-secret-0123456789";

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/ses")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Valid inputs each parser accepts, to mutate.
struct Seeds {
    sns: Vec<u8>,
    ses: String,
    eventbridge: String,
    sync: Vec<u8>,
    ndjson: Vec<u8>,
    jwt: String,
    unsubscribe: String,
    invitation_cursor: String,
    campaign_cursor: String,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let ses = fixture("delivery.json");
        let sns = serde_json::json!({
            "Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events", "Message": ses,
            "Timestamp": "2026-12-01T12:00:00.000Z", "SignatureVersion": "2",
            "Signature": "c2lnbmF0dXJl",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        });
        let account = serde_json::json!({
            "account_id": "a-1", "division_id": "oak-hills", "number": "10001", "name": "Rivera",
            "class": "Residential", "bill_group": "Monthly", "source": "Import",
            "site_source": "Office", "active_services": true, "balance_due_cents": 4200,
            "autopay": false, "contacts": [{"contact_id": "c-1", "name": "Ana Rivera",
            "email": "ana@example.com", "phone": "555-0101", "billing": true}]
        });
        let claims = Claims {
            sub: "manager".into(),
            tenant_id: "acme".into(),
            permissions: vec!["invitations:read".into()],
            exp: NOW.unix_timestamp() + 3600,
        };
        let signer = UnsubscribeSigner::new(UNSUBSCRIBE_SECRET).expect("secret");
        Seeds {
            sns: serde_json::to_vec(&sns).expect("json"),
            eventbridge: fixture("eventbridge_bounce.json"),
            ses,
            sync: serde_json::to_vec(&vec![account.clone(), account.clone()]).expect("json"),
            ndjson: format!("{account}\n{account}\n").into_bytes(),
            jwt: issue_hs256(JWT_SECRET, &claims).expect("jwt"),
            unsubscribe: signer.sign(
                &TenantId::parse("acme").expect("tenant"),
                &Email::parse("ana@example.com").expect("email"),
                "c:1",
                NOW,
            ),
            invitation_cursor: portal_core::ports::encode_invitation_cursor(
                &portal_core::domain::ContactId::parse("c-1").expect("id"),
            ),
            campaign_cursor: portal_core::ports::encode_campaign_cursor(
                &portal_core::domain::CampaignId::parse("0195b2c3d4e5f60718293a4b5c6d7e8f")
                    .expect("id"),
            ),
        }
    })
}

/// A mutation of `seed`: bytes flipped, cut, repeated or inserted (as proptest shrinks).
fn mutated(seed: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    let n = seed.len().max(1);
    prop::collection::vec((0..n, any::<u8>(), 0u8..5), 1..8).prop_map(move |edits| {
        let mut out = seed.to_vec();
        for (at, byte, kind) in edits {
            let at = at.min(out.len());
            match kind {
                0 => {
                    if at < out.len() {
                        out[at] = byte;
                    }
                }
                1 => out.truncate(at),
                2 => out.insert(at, byte),
                3 => {
                    let tail = out[at..].to_vec();
                    out.extend_from_slice(&tail);
                }
                _ => {
                    if at < out.len() {
                        out.remove(at);
                    }
                }
            }
        }
        out
    })
}

/// A certificate source that has none: verification stops at the certificate, after every
/// parsing step.
struct NoCertificates;

#[async_trait::async_trait]
impl portal_aws::sns::CertFetcher for NoCertificates {
    async fn get(&self, _: &url::Url) -> Result<Vec<u8>, FetchError> {
        Err(FetchError::Status(404))
    }
}

/// The SNS verifier as the webhook runs it (topic allow-list, regions, version 2 only), on
/// this thread's runtime: `Ok` is impossible without a certificate, so any answer is a typed
/// error.
fn verify_sns(bytes: &[u8]) -> bool {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        static VERIFIER: SnsVerifier = SnsVerifier::new(
            ["arn:aws:sns:us-east-1:123456789012:ses-events"],
            CertStore::new(std::sync::Arc::new(NoCertificates)),
        );
    }
    RUNTIME.with(|rt| VERIFIER.with(|v| rt.block_on(v.verify(bytes, NOW)).is_ok()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Arbitrary bytes, or a mutation of `seed`.
fn input(seed: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..2048), mutated(seed),]
}

/// Every JSON parser, fed the same bytes.
fn all_json_parsers(bytes: &[u8]) {
    let s = text(bytes);
    bounded("SNS message", bytes.len(), || verify_sns(bytes));
    bounded("SES record", bytes.len(), || parse_record(&s).err());
    bounded("EventBridge event", bytes.len(), || {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .map(|v| parse_eventbridge(&v).is_ok())
    });
    bounded("sync JSON", bytes.len(), || parse_json_array(bytes).is_ok());
    bounded("sync NDJSON", bytes.len(), || parse_ndjson(bytes).is_ok());
}

/// Every token and cursor parser, fed the same text.
fn all_token_parsers(s: &str) {
    let verifier = Verifier::hs256(JWT_SECRET);
    bounded("JWT", s.len(), || verifier.verify(s, NOW).is_ok());
    let signer = UnsubscribeSigner::new(UNSUBSCRIBE_SECRET).expect("secret");
    bounded("unsubscribe token", s.len(), || signer.verify(s).is_ok());
    bounded("cursor", s.len(), || cursor::decode("inv1", s));
    bounded("invitation cursor", s.len(), || {
        decode_invitation_cursor(s).is_ok()
    });
    bounded("campaign cursor", s.len(), || {
        decode_campaign_cursor(s).is_ok()
    });
    bounded("certificate URL", s.len(), || check_cert_url(s).is_ok());
    bounded("subscribe URL", s.len(), || check_subscribe_url(s).is_ok());
    bounded("email", s.len(), || Email::parse(s).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sns_envelopes_never_panic(bytes in input(&seeds().sns)) {
        all_json_parsers(&bytes);
    }

    #[test]
    fn ses_records_never_panic(bytes in input(seeds().ses.as_bytes())) {
        all_json_parsers(&bytes);
    }

    #[test]
    fn eventbridge_events_never_panic(bytes in input(seeds().eventbridge.as_bytes())) {
        all_json_parsers(&bytes);
    }

    #[test]
    fn sync_bodies_never_panic(bytes in input(&seeds().sync)) {
        all_json_parsers(&bytes);
    }

    #[test]
    fn ndjson_bodies_never_panic(bytes in input(&seeds().ndjson)) {
        all_json_parsers(&bytes);
    }

    #[test]
    fn jwts_never_panic(bytes in input(seeds().jwt.as_bytes())) {
        all_token_parsers(&text(&bytes));
    }

    #[test]
    fn unsubscribe_tokens_never_panic(bytes in input(seeds().unsubscribe.as_bytes())) {
        all_token_parsers(&text(&bytes));
    }

    #[test]
    fn cursors_never_panic(
        bytes in prop_oneof![
            input(seeds().invitation_cursor.as_bytes()),
            input(seeds().campaign_cursor.as_bytes()),
        ]
    ) {
        all_token_parsers(&text(&bytes));
    }

    /// A JWT whose parts are arbitrary base64url JSON-ish payloads (past the first split).
    #[test]
    fn jwt_parts_of_arbitrary_bytes_never_panic(
        header in prop::collection::vec(any::<u8>(), 0..256),
        payload in prop::collection::vec(any::<u8>(), 0..512),
        sig in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(sig)
        );
        all_token_parsers(&token);
    }

    /// Template sources: any subject, HTML and text, of each kind.
    #[test]
    fn template_sources_never_panic(
        subject in ".{0,300}",
        html in prop_oneof![".{0,3000}", "(\\[[A-Za-z]{0,12}\\]?|<[a-z]{0,4}>|[^\\[]{0,20}){0,200}"],
        text in prop_oneof![".{0,2000}", "(\\[[A-Za-z]{0,12}\\]?|[^\\[]{0,20}){0,200}"],
        portal_key in any::<bool>(),
    ) {
        let kind = if portal_key {
            portal_core::domain::TemplateKind::PortalKey
        } else {
            portal_core::domain::TemplateKind::Invitation
        };
        let len = subject.len() + html.len() + text.len();
        bounded("template", len, || {
            Template::of_kind(
                kind,
                TemplateId::parse("t").expect("id"),
                "Name",
                subject.clone(),
                html.clone(),
                text.clone(),
            )
            .is_ok()
        });
    }
}

/// Deep nesting: a typed error from every JSON parser (serde_json's recursion limit), not a
/// stack overflow.
#[test]
fn deeply_nested_json_is_refused_not_overflowed() {
    for open in ["[", "{\"a\":"] {
        let body = open.repeat(100_000);
        all_json_parsers(body.as_bytes());
    }
    assert!(!verify_sns("[".repeat(100_000).as_bytes()));
    assert!(parse_json_array("[".repeat(100_000).as_bytes()).is_err());
}

/// A large valid body is accepted within the bound too (the bound is not only for errors).
#[test]
fn a_large_valid_sync_body_stays_within_the_bound() {
    let body: String = (0..4_000)
        .map(|i| {
            let a = serde_json::json!({
                "account_id": format!("a-{i}"), "division_id": "oak-hills",
                "number": format!("{:05}", 10_000 + i), "name": "Rivera", "class": "Residential",
                "bill_group": "Monthly", "source": "Import", "site_source": "Office",
                "active_services": true, "balance_due_cents": 4200, "autopay": false,
                "contacts": [{"contact_id": format!("c-{i}"), "name": "Ana Rivera",
                "email": format!("ana{i}@example.com"), "phone": "555-0101", "billing": true}]
            });
            format!("{a}\n")
        })
        .collect();
    let parsed = bounded("sync NDJSON (valid)", body.len(), || {
        parse_ndjson(body.as_bytes()).map(|a| a.len())
    });
    assert_eq!(parsed.map_err(|e| e.to_string()), Ok(4_000));
}

/// The SQLite store's contact-list cursor: arbitrary text is a typed "invalid cursor", never
/// a panic or a query error.
#[tokio::test]
async fn the_sqlite_stores_list_cursors_refuse_anything_they_did_not_make() {
    use portal_core::domain::{DivisionId, Filters, Group};
    use portal_core::ports::{ContactQuery, ContactStore, ListQuery, StoreError};
    let store = portal_embedded::sqlite::SqliteStore::open_in_memory().expect("store");
    let tenant = TenantId::parse("acme").expect("tenant");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    let strategy = prop_oneof![
        ".{0,200}",
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
    ];
    for _ in 0..200 {
        let raw = strategy.new_tree(&mut runner).expect("a value").current();
        let query = ListQuery {
            contacts: ContactQuery {
                division_ids: vec![DivisionId::parse("d1").expect("id")],
                filters: Filters::default(),
                limit_to_uninvited: false,
                now: NOW,
            },
            group: Group::All,
            search: String::new(),
            cursor: Some(raw.clone()),
            limit: 10,
            max_examined: Some(100),
        };
        match store.list_contacts(&tenant, &query).await {
            Ok(_) | Err(StoreError::InvalidCursor(_)) => {}
            Err(other) => panic!("{raw:?}: {other}"),
        }
    }
}
