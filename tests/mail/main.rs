//! The SES v2 mailer against moto: what a Raw send delivers (recipient, unsubscribe headers,
//! the exact bytes), the message tags and configuration set on the wire, how a rejection is
//! classified, and how many requests a send costs.
//!
//! moto keeps every Raw message it accepted; `GET /moto-api/data.json` lists them (objects
//! with `source`, `destinations` and `raw_data`). It does not keep message tags, so the tags
//! are read from the request itself by a small interceptor ([`BodyCapture`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use mail_parser::{HeaderValue, MessageParser};
use portal_aws::aws_metrics::RequestCounter;
use portal_aws::ses::SesMailer;
use portal_core::domain::Email;
use portal_core::mail::OutgoingEmail;
use portal_core::ports::{MailError, Mailer};
use portal_testkit::moto::{ses_messages, Moto};
use serde_json::Value;

/// Keeps the JSON body of every request the client sends.
#[derive(Debug, Clone, Default)]
struct BodyCapture(Arc<Mutex<Vec<Value>>>);

impl Intercept for BodyCapture {
    fn name(&self) -> &'static str {
        "BodyCapture"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.request().body().bytes() {
            if let Ok(v) = serde_json::from_slice(bytes) {
                self.0.lock().unwrap().push(v);
            }
        }
        Ok(())
    }
}

/// An address no other test uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}@example.com",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn invitation(from: &str, to: &str) -> OutgoingEmail {
    OutgoingEmail {
        from: Email::parse(from).unwrap(),
        from_name: Some("Lakeside HOA".into()),
        to: Email::parse(to).unwrap(),
        subject: "Your portal invitation — Lakeside".into(),
        html: "<p>Hello, <a href=\"https://portal.example/register?t=abc\">register</a></p>".into(),
        text: "Hello, register at https://portal.example/register?t=abc".into(),
        list_unsubscribe_url: "https://portal.example/v1/unsubscribe?token=abc.def".into(),
        tags: vec![
            ("tenant".into(), "t1".into()),
            ("campaign".into(), "camp.2026:11".into()),
            ("invitation".into(), "inv-42".into()),
        ],
        message_id_domain: None,
    }
}

async fn verify_sender(moto: &Moto, address: &str) {
    moto.client::<aws_sdk_sesv2::Client>()
        .create_email_identity()
        .email_identity(address)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateEmailIdentity failed: {e:?}"));
}

fn header(msg: &mail_parser::Message<'_>, name: &str) -> String {
    match msg.header(name) {
        Some(HeaderValue::Text(t)) => t.to_string(),
        Some(HeaderValue::TextList(l)) => l.join(" "),
        Some(HeaderValue::Address(a)) => a
            .first()
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_owned(),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn a_raw_send_reaches_ses_with_recipient_unsubscribe_headers_tags_and_configuration_set() {
    let moto = Moto::shared();
    let from = unique("hoa");
    let to = unique("jane");
    verify_sender(moto, &from).await;

    let counter = RequestCounter::new();
    let capture = BodyCapture::default();
    let client = aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::config::Builder::from(&moto.sdk_config())
            .interceptor(counter.clone())
            .interceptor(capture.clone())
            .build(),
    );
    let mailer = SesMailer::new(client, Some("portal-invites".into()));
    let raw = invitation(&from, &to).to_raw().unwrap();
    let sent = mailer.send_raw(&raw).await.expect("moto accepts the send");
    assert!(!sent.message_id.is_empty());
    assert_eq!(counter.get("SendEmail"), 1, "{:?}", counter.snapshot());
    assert_eq!(counter.total(), 1);

    // What SES received: the library's bytes, untouched.
    let stored = ses_messages(moto.endpoint())
        .expect("moto's data")
        .into_iter()
        .find(|m| m["raw_data"].as_str().is_some_and(|r| r.contains(&to)))
        .expect("moto kept the message");
    assert_eq!(stored["source"], from.as_str());
    assert!(
        stored["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().is_some_and(|d| d.contains(&to))),
        "{stored}"
    );
    let raw_data = stored["raw_data"].as_str().unwrap();
    assert_eq!(raw_data.as_bytes(), raw.raw.as_slice());
    let msg = MessageParser::default().parse(raw_data.as_bytes()).unwrap();
    assert_eq!(header(&msg, "To"), to);
    assert_eq!(
        header(&msg, "List-Unsubscribe"),
        "https://portal.example/v1/unsubscribe?token=abc.def"
    );
    assert_eq!(
        header(&msg, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    assert_eq!(msg.subject(), Some("Your portal invitation — Lakeside"));

    // Tags (sanitised to SES's alphabet) and the configuration set, as sent.
    let bodies = capture.0.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let body = &bodies[0];
    assert_eq!(body["ConfigurationSetName"], "portal-invites");
    assert_eq!(body["Destination"]["ToAddresses"][0], to.as_str());
    let tags: Vec<(String, String)> = body["EmailTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Name"].as_str().unwrap().to_owned(),
                t["Value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        vec![
            ("tenant".to_owned(), "t1".to_owned()),
            ("campaign".to_owned(), "camp_2026_11".to_owned()),
            ("invitation".to_owned(), "inv-42".to_owned()),
        ]
    );
}

#[tokio::test]
async fn an_unverified_sender_is_a_permanent_rejection_not_a_retry() {
    let moto = Moto::shared();
    let counter = RequestCounter::new();
    let client = moto.counted_client(&counter);
    let mailer = SesMailer::new(client, None);
    let raw = invitation(&unique("stranger"), &unique("jane"))
        .to_raw()
        .unwrap();
    let err = mailer.send_raw(&raw).await.expect_err("moto rejects it");
    assert!(
        matches!(&err, MailError::Rejected { reason } if !reason.is_empty()),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(counter.get("SendEmail"), 1);
}
