//! Invitation templates: a subject, an HTML part and a text part with merge tags, parsed once
//! when a template is made and rendered in one pass per recipient.
//!
//! # Merge tags
//!
//! A *tag* is `[` followed by one or more ASCII letters and `]` — exactly that shape, nothing
//! else (`[ContactName]` is a tag; `[1]`, `[ ]`, `[Contact Name]`, `[a-b]` and a lone `[` are
//! plain text). Tags are case-sensitive. The known tags are the [`MergeTag`] variants:
//! `[ContactName]`, `[AccountNumber]`, `[AccountName]`, `[DivisionName]`, `[PortalLink]`,
//! `[PortalKey]`, `[UnsubscribeLink]`. Any other tag-shaped text (`[ContactNmae]`,
//! `[contactname]`) is a [`TemplateError::UnknownTag`] naming the tag and the part it is in,
//! so a typo is caught when the template is saved rather than mailed to thousands of people.
//!
//! # Rules checked at construction
//!
//! - name: 1–200 characters, no control characters;
//! - subject: 1–[`MAX_SUBJECT_CHARS`] characters on a single line (no CR/LF, no other control
//!   characters: it becomes a mail header);
//! - html and text: each at most [`MAX_BODY_BYTES`] (100 KiB);
//! - `[PortalLink]` must appear in the HTML part **and** in the text part: a mail client shows
//!   one or the other, so each must carry the registration link on its own.
//!
//! # Rendering
//!
//! Each part is kept as its raw text plus a list of [`Segment`]s (a literal byte range of the
//! raw text, or a tag), so [`Template::render`] is one pass with no searching. Values are
//! HTML-escaped (`& < > " '`) in the HTML part only; the text part gets them verbatim, and the
//! subject gets them with control characters (CR/LF above all: header injection) removed.

use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

use super::{PublicUrl, TemplateId};

/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Longest template name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Largest HTML or text part, in bytes (100 KiB).
pub const MAX_BODY_BYTES: usize = 100 * 1024;

/// A merge tag a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MergeTag {
    ContactName,
    AccountNumber,
    AccountName,
    DivisionName,
    PortalLink,
    PortalKey,
    UnsubscribeLink,
}

impl MergeTag {
    /// Every known tag.
    pub const ALL: [MergeTag; 7] = [
        MergeTag::ContactName,
        MergeTag::AccountNumber,
        MergeTag::AccountName,
        MergeTag::DivisionName,
        MergeTag::PortalLink,
        MergeTag::PortalKey,
        MergeTag::UnsubscribeLink,
    ];

    /// The name between the brackets.
    pub fn name(self) -> &'static str {
        match self {
            MergeTag::ContactName => "ContactName",
            MergeTag::AccountNumber => "AccountNumber",
            MergeTag::AccountName => "AccountName",
            MergeTag::DivisionName => "DivisionName",
            MergeTag::PortalLink => "PortalLink",
            MergeTag::PortalKey => "PortalKey",
            MergeTag::UnsubscribeLink => "UnsubscribeLink",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for MergeTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.name())
    }
}

/// Which part of a template something is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplatePart {
    Subject,
    Html,
    Text,
}

impl fmt::Display for TemplatePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TemplatePart::Subject => "subject",
            TemplatePart::Html => "html",
            TemplatePart::Text => "text",
        })
    }
}

/// Why a template was refused. Always the author's fault: a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown merge tag [{tag}] in the {part} at character {position}; known tags are \
         [ContactName], [AccountNumber], [AccountName], [DivisionName], [PortalLink], \
         [PortalKey] and [UnsubscribeLink]"
    )]
    UnknownTag {
        tag: String,
        part: TemplatePart,
        /// 0-based character offset of the `[` in the part.
        position: usize,
    },
    #[error("the {part} has no [PortalLink]: both the html and the text part must carry it")]
    MissingPortalLink { part: TemplatePart },
    #[error("the {part} has no [{tag}]: a {kind} template must carry it in both the html and the text part", tag = tag.name(), kind = kind.as_str())]
    MissingTag {
        part: TemplatePart,
        tag: MergeTag,
        kind: TemplateKind,
    },
    #[error("the {part} is {actual} bytes, more than the {limit} allowed")]
    TooLarge {
        part: TemplatePart,
        actual: usize,
        limit: usize,
    },
    #[error("the subject {0}")]
    BadSubject(&'static str),
    #[error("the name {0}")]
    BadName(&'static str),
}

/// A piece of a parsed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// A byte range of the raw text.
    Literal(usize, usize),
    Tag(MergeTag),
}

/// One part of a template: its raw text and its parsed segments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    raw: String,
    segments: Vec<Segment>,
}

impl Part {
    fn parse(raw: String, part: TemplatePart) -> Result<Self, TemplateError> {
        let bytes = raw.as_bytes();
        let mut segments = Vec::new();
        let mut literal_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'[' {
                i += 1;
                continue;
            }
            let name_start = i + 1;
            let mut j = name_start;
            while j < bytes.len() && bytes[j].is_ascii_alphabetic() {
                j += 1;
            }
            if j == name_start || j >= bytes.len() || bytes[j] != b']' {
                // Not tag-shaped: plain text. Resume after the `[` (the next `[` may start one).
                i += 1;
                continue;
            }
            let name = &raw[name_start..j];
            let Some(tag) = MergeTag::from_name(name) else {
                return Err(TemplateError::UnknownTag {
                    tag: name.to_owned(),
                    part,
                    position: raw[..i].chars().count(),
                });
            };
            if literal_start < i {
                segments.push(Segment::Literal(literal_start, i));
            }
            segments.push(Segment::Tag(tag));
            i = j + 1;
            literal_start = i;
        }
        if literal_start < bytes.len() {
            segments.push(Segment::Literal(literal_start, bytes.len()));
        }
        Ok(Self { raw, segments })
    }

    fn has(&self, tag: MergeTag) -> bool {
        self.segments.contains(&Segment::Tag(tag))
    }

    /// Renders into `out`, passing each value through `value`.
    fn render_into(&self, out: &mut String, mut value: impl FnMut(&mut String, MergeTag)) {
        for seg in &self.segments {
            match *seg {
                Segment::Literal(a, b) => out.push_str(&self.raw[a..b]),
                Segment::Tag(t) => value(out, t),
            }
        }
    }
}

/// A valid template. Made only by [`Template::new`], so every template in hand (including
/// one read back from a store) has passed every rule in the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    template_id: TemplateId,
    kind: TemplateKind,
    name: String,
    subject: Part,
    html: Part,
    text: Part,
}

/// What a template is for: which sends may use it and which tag it must carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    /// Portal invitations (bulk, individual, recurring): `[PortalLink]` in html and text.
    #[default]
    Invitation,
    /// The email a matched sign-up request gets: `[AccountNumber]` and `[PortalKey]` in html
    /// and text. Its `[PortalLink]` leads to the portal-key sign-up page.
    PortalKey,
}

impl TemplateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::PortalKey => "portal_key",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invitation" => Some(Self::Invitation),
            "portal_key" => Some(Self::PortalKey),
            _ => None,
        }
    }

    /// The tags html and text must both carry.
    pub fn required_tags(self) -> &'static [MergeTag] {
        match self {
            Self::Invitation => &[MergeTag::PortalLink],
            Self::PortalKey => &[MergeTag::AccountNumber, MergeTag::PortalKey],
        }
    }
}

/// The values of the merge tags for one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeValues {
    pub contact_name: String,
    pub account_number: String,
    pub account_name: String,
    pub division_name: String,
    pub portal_link: String,
    pub portal_key: String,
    pub unsubscribe_link: String,
}

impl MergeValues {
    /// `[PortalLink]`: `{public_url}/register?token={token}`. The one definition shared by
    /// previews and sends, so a preview shows the link a recipient gets (tokens are URL-safe).
    pub fn registration_url(public_url: &PublicUrl, token: &str) -> String {
        public_url.join(&format!("/register?token={token}"))
    }

    /// `[PortalLink]` of a portal key email: the portal-key sign-up page of the tenant,
    /// with the account number filled in.
    pub fn portal_key_url(public_url: &PublicUrl, tenant: &str, account_number: &str) -> String {
        let mut url = public_url.join("/register/key?tenant=");
        url.push_str(&percent_encode(tenant));
        url.push_str("&account=");
        url.push_str(&percent_encode(account_number));
        url
    }

    /// `[UnsubscribeLink]` (and the `List-Unsubscribe` header):
    /// `{public_url}/v1/unsubscribe?token={token}`.
    pub fn unsubscribe_url(public_url: &PublicUrl, token: &str) -> String {
        public_url.join(&format!("/v1/unsubscribe?token={token}"))
    }

    pub fn get(&self, tag: MergeTag) -> &str {
        match tag {
            MergeTag::ContactName => &self.contact_name,
            MergeTag::AccountNumber => &self.account_number,
            MergeTag::AccountName => &self.account_name,
            MergeTag::DivisionName => &self.division_name,
            MergeTag::PortalLink => &self.portal_link,
            MergeTag::PortalKey => &self.portal_key,
            MergeTag::UnsubscribeLink => &self.unsubscribe_link,
        }
    }
}

/// A rendered email body: what is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

impl Template {
    /// Parses and checks an invitation template (rules in the module docs).
    pub fn new(
        template_id: TemplateId,
        name: impl Into<String>,
        subject: impl Into<String>,
        html: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<Self, TemplateError> {
        Self::of_kind(
            TemplateKind::Invitation,
            template_id,
            name,
            subject,
            html,
            text,
        )
    }

    /// Parses and checks a template of `kind` (its required tags: [`TemplateKind::required_tags`]).
    pub fn of_kind(
        kind: TemplateKind,
        template_id: TemplateId,
        name: impl Into<String>,
        subject: impl Into<String>,
        html: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<Self, TemplateError> {
        let (name, subject, html, text) = (name.into(), subject.into(), html.into(), text.into());
        let name_chars = name.chars().count();
        if name.trim().is_empty() {
            return Err(TemplateError::BadName("must not be empty"));
        }
        if name_chars > MAX_NAME_CHARS {
            return Err(TemplateError::BadName("must be at most 200 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(TemplateError::BadName(
                "must not contain control characters",
            ));
        }
        if subject.trim().is_empty() {
            return Err(TemplateError::BadSubject("must not be empty"));
        }
        if subject.chars().count() > MAX_SUBJECT_CHARS {
            return Err(TemplateError::BadSubject("must be at most 200 characters"));
        }
        if subject.contains(['\r', '\n']) {
            return Err(TemplateError::BadSubject("must be a single line"));
        }
        if subject.chars().any(char::is_control) {
            return Err(TemplateError::BadSubject(
                "must not contain control characters",
            ));
        }
        for (part, body) in [(TemplatePart::Html, &html), (TemplatePart::Text, &text)] {
            if body.len() > MAX_BODY_BYTES {
                return Err(TemplateError::TooLarge {
                    part,
                    actual: body.len(),
                    limit: MAX_BODY_BYTES,
                });
            }
        }
        let subject = Part::parse(subject, TemplatePart::Subject)?;
        let html = Part::parse(html, TemplatePart::Html)?;
        let text = Part::parse(text, TemplatePart::Text)?;
        for (part, parsed) in [(TemplatePart::Html, &html), (TemplatePart::Text, &text)] {
            for &tag in kind.required_tags() {
                if !parsed.has(tag) {
                    return Err(match tag {
                        MergeTag::PortalLink => TemplateError::MissingPortalLink { part },
                        _ => TemplateError::MissingTag { part, tag, kind },
                    });
                }
            }
        }
        Ok(Self {
            template_id,
            kind,
            name,
            subject,
            html,
            text,
        })
    }

    pub fn template_id(&self) -> &TemplateId {
        &self.template_id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> TemplateKind {
        self.kind
    }

    /// The subject as written, tags included.
    pub fn subject(&self) -> &str {
        &self.subject.raw
    }

    pub fn html(&self) -> &str {
        &self.html.raw
    }

    pub fn text(&self) -> &str {
        &self.text.raw
    }

    /// The tags the template uses, anywhere, each once.
    pub fn tags(&self) -> Vec<MergeTag> {
        MergeTag::ALL
            .into_iter()
            .filter(|t| self.subject.has(*t) || self.html.has(*t) || self.text.has(*t))
            .collect()
    }

    /// Fills in the tags for one recipient, in one pass per part.
    pub fn render(&self, values: &MergeValues) -> Rendered {
        let mut subject = String::with_capacity(self.subject.raw.len() + 64);
        self.subject.render_into(&mut subject, |out, t| {
            out.extend(values.get(t).chars().filter(|c| !c.is_control()));
        });
        let mut html = String::with_capacity(self.html.raw.len() + 256);
        self.html
            .render_into(&mut html, |out, t| escape_html_into(out, values.get(t)));
        let mut text = String::with_capacity(self.text.raw.len() + 256);
        self.text
            .render_into(&mut text, |out, t| out.push_str(values.get(t)));
        Rendered {
            subject,
            html,
            text,
        }
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986) for a query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends `s` with `& < > " '` escaped, safe in element content and quoted attributes.
pub fn escape_html_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            template_id: &'a TemplateId,
            kind: TemplateKind,
            name: &'a str,
            subject: &'a str,
            html: &'a str,
            text: &'a str,
        }
        Wire {
            template_id: &self.template_id,
            kind: self.kind,
            name: &self.name,
            subject: &self.subject.raw,
            html: &self.html.raw,
            text: &self.text.raw,
        }
        .serialize(s)
    }
}

/// Read back from what [`Serialize`] wrote (a bus message carrying the template): parsed
/// and checked again, so a damaged message cannot carry a template no store would hold.
impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            template_id: TemplateId,
            kind: TemplateKind,
            name: String,
            subject: String,
            html: String,
            text: String,
        }
        let w = Wire::deserialize(d)?;
        Self::of_kind(w.kind, w.template_id, w.name, w.subject, w.html, w.text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> TemplateId {
        TemplateId::parse("welcome").unwrap()
    }

    #[test]
    fn a_template_read_back_from_its_json_is_the_same_and_a_broken_one_is_refused() {
        let t = template(
            "Hello [ContactName]",
            "<p>[PortalLink]</p>",
            "Go: [PortalLink]",
        )
        .unwrap();
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(serde_json::from_value::<Template>(json.clone()).unwrap(), t);
        let mut broken = json;
        broken["html"] = "<p>no link</p>".into();
        assert!(serde_json::from_value::<Template>(broken).is_err());
    }

    fn template(subject: &str, html: &str, text: &str) -> Result<Template, TemplateError> {
        Template::new(id(), "Welcome", subject, html, text)
    }

    fn values() -> MergeValues {
        MergeValues {
            contact_name: "Ann".into(),
            account_number: "10001".into(),
            account_name: "Oak St".into(),
            division_name: "North".into(),
            portal_link: "https://p/register?token=t".into(),
            portal_key: "KEY".into(),
            unsubscribe_link: "https://p/u?token=u".into(),
        }
    }

    #[test]
    fn every_known_tag_is_filled_in_every_part() {
        let all: String = MergeTag::ALL.iter().map(|t| t.to_string()).collect();
        let t = template(&all, &all, &all).unwrap();
        let r = t.render(&values());
        let expected = "Ann10001Oak StNorthhttps://p/register?token=tKEYhttps://p/u?token=u";
        assert_eq!(r.subject, expected);
        assert_eq!(r.html, expected);
        assert_eq!(r.text, expected);
        assert_eq!(t.tags(), MergeTag::ALL.to_vec());
    }

    #[test]
    fn an_unknown_tag_is_refused_naming_it_and_its_part() {
        let e = template("Hi", "<p>[PortalLink] [ContactNmae]</p>", "[PortalLink]").unwrap_err();
        assert_eq!(
            e,
            TemplateError::UnknownTag {
                tag: "ContactNmae".into(),
                part: TemplatePart::Html,
                position: 16
            }
        );
        assert!(e.to_string().contains("[ContactNmae] in the html"), "{e}");
        let e = template("Hi [name]", "[PortalLink]", "[PortalLink]").unwrap_err();
        assert!(e.to_string().contains("[name] in the subject"), "{e}");
    }

    #[test]
    fn brackets_that_are_not_tag_shaped_stay_plain_text() {
        let html = "[1] [ ] [a-b] [Contact Name] [[PortalLink]] [";
        let t = template("x", html, "[PortalLink]").unwrap();
        let r = t.render(&values());
        assert_eq!(
            r.html,
            "[1] [ ] [a-b] [Contact Name] [https://p/register?token=t] ["
        );
    }

    #[test]
    fn a_template_needs_the_portal_link_in_both_html_and_text() {
        assert_eq!(
            template("x", "no link", "[PortalLink]").unwrap_err(),
            TemplateError::MissingPortalLink {
                part: TemplatePart::Html
            }
        );
        assert_eq!(
            template("x", "[PortalLink]", "no link").unwrap_err(),
            TemplateError::MissingPortalLink {
                part: TemplatePart::Text
            }
        );
    }

    #[test]
    fn oversized_or_multiline_parts_are_refused() {
        let big = format!("[PortalLink]{}", "x".repeat(MAX_BODY_BYTES));
        assert!(matches!(
            template("x", &big, "[PortalLink]"),
            Err(TemplateError::TooLarge {
                part: TemplatePart::Html,
                ..
            })
        ));
        assert!(matches!(
            template("x", "[PortalLink]", &big),
            Err(TemplateError::TooLarge {
                part: TemplatePart::Text,
                ..
            })
        ));
        assert!(template(&"s".repeat(201), "[PortalLink]", "[PortalLink]").is_err());
        assert!(template(&"s".repeat(200), "[PortalLink]", "[PortalLink]").is_ok());
        assert!(template("a\r\nBcc: x", "[PortalLink]", "[PortalLink]").is_err());
        assert!(template("", "[PortalLink]", "[PortalLink]").is_err());
        assert!(Template::new(id(), "", "s", "[PortalLink]", "[PortalLink]").is_err());
    }

    #[test]
    fn values_are_escaped_in_html_only_and_stripped_of_newlines_in_the_subject() {
        let t = template(
            "Hi [ContactName]",
            "<p>[ContactName]</p>[PortalLink]",
            "[ContactName] [PortalLink]",
        )
        .unwrap();
        let v = MergeValues {
            contact_name: "<b>O'Neil & \"Sons\"</b>\r\nBcc: evil@example.com".into(),
            ..values()
        };
        let r = t.render(&v);
        assert_eq!(
            r.subject,
            "Hi <b>O'Neil & \"Sons\"</b>Bcc: evil@example.com"
        );
        assert!(r.html.starts_with(
            "<p>&lt;b&gt;O&#39;Neil &amp; &quot;Sons&quot;&lt;/b&gt;\r\nBcc: evil@example.com</p>"
        ));
        assert!(r.text.starts_with("<b>O'Neil & \"Sons\"</b>\r\n"));
    }

    #[test]
    fn links_are_built_from_the_public_url_with_or_without_a_trailing_slash() {
        for base in [
            "https://invites.example.com",
            "https://invites.example.com/",
        ] {
            let base = &PublicUrl::parse(base).unwrap();
            assert_eq!(
                MergeValues::registration_url(base, "abc_-"),
                "https://invites.example.com/register?token=abc_-"
            );
            assert_eq!(
                MergeValues::unsubscribe_url(base, "x.y"),
                "https://invites.example.com/v1/unsubscribe?token=x.y"
            );
        }
    }

    #[test]
    fn multibyte_text_around_tags_survives() {
        let t = template("Grüße [ContactName] ✓", "é[PortalLink]ü", "[PortalLink]").unwrap();
        let r = t.render(&values());
        assert_eq!(r.subject, "Grüße Ann ✓");
        assert_eq!(r.html, "éhttps://p/register?token=tü");
    }

    fn any_values() -> impl Strategy<Value = MergeValues> {
        let s = || any::<String>();
        (s(), s(), s(), s(), s(), s(), s()).prop_map(|(a, b, c, d, e, f, g)| MergeValues {
            contact_name: a,
            account_number: b,
            account_name: c,
            division_name: d,
            portal_link: e,
            portal_key: f,
            unsubscribe_link: g,
        })
    }

    /// Template text built from literal pieces (with brackets) and known tags.
    fn any_body() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-z <>&\\[\\]0-9]{0,12}".prop_map(|s| s),
            proptest::sample::select(MergeTag::ALL.to_vec()).prop_map(|t| t.to_string()),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn rendering_leaves_no_known_tag_and_html_gets_no_raw_angle_bracket_from_values(
            body in any_body(),
            v in any_values(),
        ) {
            let html = format!("{body}[PortalLink]");
            // Bodies may contain tag-shaped text that is not a known tag: then the template is
            // refused, which is the other half of the contract.
            let Ok(t) = template("s", &html, "[PortalLink]") else {
                return Ok(());
            };
            // Values free of `[`, so any bracket in the output comes from the literal text.
            let clean = |s: &str| s.replace(['[', '<', '>'], "");
            let marker = MergeValues {
                contact_name: clean(&v.contact_name),
                account_number: clean(&v.account_number),
                account_name: clean(&v.account_name),
                division_name: clean(&v.division_name),
                portal_link: clean(&v.portal_link),
                portal_key: clean(&v.portal_key),
                unsubscribe_link: clean(&v.unsubscribe_link),
            };
            let r = t.render(&marker);
            // Literal pieces are lowercase, so a known tag in the output could only be a
            // segment left unrendered.
            for tag in MergeTag::ALL {
                prop_assert!(!r.html.contains(&tag.to_string()), "{} left in {:?}", tag, r.html);
            }

            // HTML: every `<` in the output comes from the template, none from values.
            let r = t.render(&v);
            let from_template = html.matches('<').count();
            prop_assert_eq!(r.html.matches('<').count(), from_template);
        }
    }
}
