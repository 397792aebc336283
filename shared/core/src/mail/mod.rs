//! Rendering an invitation email, once, as a complete RFC 5322 message.
//!
//! [`OutgoingEmail`] holds what a message says; [`OutgoingEmail::render`] turns it into the
//! exact bytes every mailer sends: the local outbox appends them to its log (served as `.eml`), SES v2
//! receives them as Raw content. Rendering is done by the `mail-builder` crate:
//!
//! - `multipart/alternative` with a `text/plain` then a `text/html` part (UTF-8; each part
//!   quoted-printable or base64, whichever the content needs);
//! - a non-ASCII subject or display name is encoded per RFC 2047;
//! - `Date`, `Message-ID` (`<random@domain>`), `MIME-Version: 1.0`;
//! - `List-Unsubscribe: <https://…>` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
//!   (RFC 8058 one-click unsubscribe).
//!
//! **Header injection is impossible:** addresses are [`Email`]s (no whitespace or control
//! characters); the subject and display name have every control character (CR and LF
//! included) replaced by a space; the unsubscribe URL is refused unless it is a plain
//! `https://` (or `http://`, for the local server) URL without spaces, controls or `<>`.

pub mod tags;

use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::url::URL;
use mail_builder::MessageBuilder;
use time::OffsetDateTime;

use crate::domain::Email;

/// The value of `List-Unsubscribe-Post` required by RFC 8058.
pub const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

/// A rendered message ready to send: envelope addresses, the exact RFC 5322 bytes, and the
/// message tags a backend may attach (SES message tags; ignored by the outbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEmail {
    pub from: Email,
    pub to: Email,
    /// The `Message-ID` written in `raw`, without angle brackets.
    pub message_id: String,
    /// The complete message: headers, blank line, MIME body; CRLF line endings.
    pub raw: Vec<u8>,
    /// `(name, value)` pairs such as `("tenant", "t1")`, `("campaign", "c-…")`.
    pub tags: Vec<(String, String)>,
}

/// One email to one recipient, before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub from: Email,
    /// Shown as `"Name" <from>`.
    pub from_name: Option<String>,
    pub to: Email,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// Absolute URL of the one-click unsubscribe endpoint, token included.
    pub list_unsubscribe_url: String,
    /// Passed to the mailer with the message (SES message tags), not written in it.
    pub tags: Vec<(String, String)>,
    /// Right-hand side of the `Message-ID`; the sender's domain when `None`.
    pub message_id_domain: Option<String>,
}

/// Why a message cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the unsubscribe URL must be an absolute http(s) URL without spaces, control characters or '<>': {0:?}")]
    InvalidUnsubscribeUrl(String),
    #[error("the Message-ID domain may contain only letters, digits, '.' and '-': {0:?}")]
    InvalidMessageIdDomain(String),
    #[error("writing the message failed")]
    Write(#[from] std::io::Error),
}

/// A rendered message and the `Message-ID` written in it (without angle brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub message_id: String,
    pub bytes: Vec<u8>,
}

impl OutgoingEmail {
    /// Renders with the current time and a fresh random `Message-ID`.
    pub fn render(&self) -> Result<Rendered, RenderError> {
        let domain = self.message_id_domain()?;
        let message_id = format!("{}@{domain}", random_token());
        self.render_as(OffsetDateTime::now_utc(), &message_id)
    }

    /// Renders with the given `Date` and `Message-ID` (without angle brackets):
    /// deterministic, for tests and for re-rendering the same invitation after a retry.
    pub fn render_as(
        &self,
        date: OffsetDateTime,
        message_id: &str,
    ) -> Result<Rendered, RenderError> {
        let url = checked_url(&self.list_unsubscribe_url)?;
        let message_id = single_line(message_id).replace(['<', '>', ' '], "");
        let from: Address<'_> = match &self.from_name {
            Some(name) if !single_line(name).trim().is_empty() => Address::new_address(
                Some(single_line(name).trim().to_owned()),
                self.from.as_str(),
            ),
            _ => Address::new_address(None::<String>, self.from.as_str()),
        };
        let bytes = MessageBuilder::new()
            .from(from)
            .to(Address::new_address(None::<String>, self.to.as_str()))
            .subject(single_line(&self.subject))
            .date(Date::new(date.unix_timestamp()))
            .message_id(MessageId::new(message_id.clone()))
            .header("List-Unsubscribe", URL::new(url.to_owned()))
            .header("List-Unsubscribe-Post", Raw::new(ONE_CLICK))
            .text_body(self.text.as_str())
            .html_body(self.html.as_str())
            .write_to_vec()?;
        Ok(Rendered { message_id, bytes })
    }

    /// Renders and wraps the result with envelope and tags, ready for a mailer (`crate::ports::Mailer`).
    pub fn to_raw(&self) -> Result<RawEmail, RenderError> {
        self.wrap(self.render()?)
    }

    /// [`OutgoingEmail::to_raw`] with the `Message-ID` `<local>@<domain>`: the same message
    /// renders with the same id every time, so a mailer can tell a re-send (the local outbox
    /// writes it once). `local` is used as given: letters, digits, `.`, `-`.
    pub fn to_raw_with_id(&self, local: &str) -> Result<RawEmail, RenderError> {
        let domain = self.message_id_domain()?;
        self.wrap(self.render_as(OffsetDateTime::now_utc(), &format!("{local}@{domain}"))?)
    }

    fn wrap(&self, rendered: Rendered) -> Result<RawEmail, RenderError> {
        let Rendered { message_id, bytes } = rendered;
        Ok(RawEmail {
            from: self.from.clone(),
            to: self.to.clone(),
            message_id,
            raw: bytes,
            tags: self.tags.clone(),
        })
    }

    fn message_id_domain(&self) -> Result<String, RenderError> {
        let domain = match &self.message_id_domain {
            Some(d) => d.clone(),
            None => self
                .from
                .as_str()
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_else(|| "localhost".to_owned()),
        };
        let ok = !domain.is_empty()
            && domain.len() <= 253
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if ok {
            Ok(domain)
        } else {
            Err(RenderError::InvalidMessageIdDomain(domain))
        }
    }
}

/// Replaces every control character (CR, LF, tab...) with a space: a header value can then
/// never end the header early or start a new one.
fn single_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn checked_url(url: &str) -> Result<&str, RenderError> {
    let has_scheme = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty());
    let clean = url
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '<' && c != '>' && c != '"');
    if has_scheme && clean && url.len() <= 2000 {
        Ok(url)
    } else {
        Err(RenderError::InvalidUnsubscribeUrl(
            url.chars().take(120).collect(),
        ))
    }
}

/// 128 random bits as hex.
fn random_token() -> String {
    use rand::RngCore;
    let mut buf = [0u8; 16];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{HeaderValue, MessageParser};
    use time::macros::datetime;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            from: Email::parse("hoa@example.com").unwrap(),
            from_name: Some("Lakeside HOA".into()),
            to: Email::parse("jane.doe@example.org").unwrap(),
            subject: "Votre invitation au portail — Résidence".into(),
            html: "<p>Hello <b>Jane</b> &amp; family, <a href=\"https://portal.example/r?t=abc\">register</a></p>\n".repeat(20),
            text: "Hello Jane & family, register at https://portal.example/r?t=abc — merci\n".repeat(20),
            list_unsubscribe_url: "https://portal.example/v1/unsubscribe?token=abc.def".into(),
            tags: vec![("tenant".into(), "t1".into())],
            message_id_domain: None,
        }
    }

    fn header_text(msg: &mail_parser::Message<'_>, name: &str) -> String {
        match msg.header(name) {
            Some(HeaderValue::Text(t)) => t.to_string(),
            Some(HeaderValue::TextList(l)) => l.join(","),
            Some(HeaderValue::Address(a)) => a
                .first()
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_owned(),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn a_rendered_message_parses_back_with_both_parts_and_every_header() {
        let e = email();
        let r = e
            .render_as(datetime!(2026-11-02 12:00:00 UTC), "abc123@example.com")
            .unwrap();
        let raw = String::from_utf8(r.bytes.clone()).unwrap();
        assert!(raw.contains("MIME-Version: 1.0"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.contains("List-Unsubscribe: <https://portal.example/v1/unsubscribe?token=abc.def>"),
            "{raw}"
        );
        assert!(
            raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
            "{raw}"
        );
        assert!(raw.lines().all(|l| l.len() <= 998), "line length limit");

        let msg = MessageParser::default().parse(&r.bytes).unwrap();
        assert_eq!(
            msg.subject(),
            Some("Votre invitation au portail — Résidence")
        );
        assert_eq!(msg.message_id(), Some("abc123@example.com"));
        assert_eq!(r.message_id, "abc123@example.com");
        let from = msg.from().unwrap().first().unwrap();
        assert_eq!(from.address(), Some("hoa@example.com"));
        assert_eq!(from.name(), Some("Lakeside HOA"));
        assert_eq!(header_text(&msg, "To"), "jane.doe@example.org");
        assert_eq!(
            msg.date().unwrap().to_timestamp(),
            datetime!(2026-11-02 12:00:00 UTC).unix_timestamp()
        );
        // Bodies travel with CRLF line endings.
        let lf = |s: &str| s.replace("\r\n", "\n").trim_end().to_owned();
        assert_eq!(lf(&msg.body_text(0).unwrap()), lf(&e.text));
        assert_eq!(lf(&msg.body_html(0).unwrap()), lf(&e.html));
    }

    #[test]
    fn the_subject_is_rfc_2047_encoded_so_the_raw_headers_stay_ascii() {
        let r = email().render().unwrap();
        let raw = String::from_utf8(r.bytes).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert!(head.is_ascii(), "{head}");
        assert!(head.contains("Subject: =?utf-8?"), "{head}");
    }

    #[test]
    fn line_breaks_in_the_subject_or_name_cannot_inject_headers() {
        let mut e = email();
        e.subject = "Hi\r\nBcc: victim@example.net\r\n\r\nbody".into();
        e.from_name = Some("HOA\nX-Evil: 1".into());
        let r = e.render().unwrap();
        let raw = String::from_utf8(r.bytes.clone()).unwrap();
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        assert!(!raw.contains("\nX-Evil:"), "{raw}");
        let msg = MessageParser::default().parse(&r.bytes).unwrap();
        assert!(msg.bcc().is_none());
        assert_eq!(msg.subject(), Some("Hi  Bcc: victim@example.net    body"));
    }

    #[test]
    fn an_unsubscribe_url_that_could_break_the_header_is_refused() {
        for bad in [
            "https://x.example/u?t=1\r\nBcc: a@b.c",
            "https://x.example/u?t=1> <mailto:a@b.c",
            "javascript:alert(1)",
            "https://",
            "",
        ] {
            let mut e = email();
            e.list_unsubscribe_url = bad.into();
            assert!(
                matches!(e.render(), Err(RenderError::InvalidUnsubscribeUrl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_render_gets_a_new_message_id_on_the_senders_domain() {
        let e = email();
        let (a, b) = (e.render().unwrap(), e.render().unwrap());
        assert_ne!(a.message_id, b.message_id);
        assert!(a.message_id.ends_with("@example.com"), "{}", a.message_id);
        let mut e = e;
        e.message_id_domain = Some("mail.portal.example".into());
        assert!(e
            .render()
            .unwrap()
            .message_id
            .ends_with("@mail.portal.example"));
        e.message_id_domain = Some("bad domain>".into());
        assert!(matches!(
            e.render(),
            Err(RenderError::InvalidMessageIdDomain(_))
        ));
    }

    #[test]
    fn to_raw_carries_envelope_and_tags_with_the_rendered_bytes() {
        let raw = email().to_raw().unwrap();
        assert_eq!(raw.to.as_str(), "jane.doe@example.org");
        assert_eq!(raw.from.as_str(), "hoa@example.com");
        assert_eq!(raw.tags, vec![("tenant".to_owned(), "t1".to_owned())]);
        let text = String::from_utf8(raw.raw).unwrap();
        assert!(text.contains(&format!("<{}>", raw.message_id)));
    }
}
