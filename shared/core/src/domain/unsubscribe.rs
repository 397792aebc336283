//! Unsubscribe tokens: what an email's `List-Unsubscribe` link carries.
//!
//! The payload is compact JSON: tenant id, the normalized (lowercased) address, the
//! invitation id (may be empty) and the issue time in Unix seconds. A token is
//! `"2." base64url(nonce ‖ ChaCha20-Poly1305(payload))`, no padding: the payload is encrypted
//! and authenticated with a key derived from the server secret (HMAC-SHA256 of a fixed label),
//! so the link is opaque — a mail log, a proxy or anyone the email is forwarded to cannot
//! read the address or the ids out of it — and nobody can make or alter one without the
//! secret. Nothing has to be stored to check it: anyone holding the link can unsubscribe that
//! one address of that one tenant. Tokens do not expire — an unsubscribe link must keep
//! working for as long as the email sits in an inbox; a secret rotation keeps the previous
//! secret accepted ([`UnsubscribeSigner::with_previous`]).
//!
//! Links sent before tokens were encrypted (version 1: `base64url(payload) "."
//! base64url(HMAC-SHA256(secret, payload))`, the payload readable) still verify: the MAC is
//! recomputed over the received payload bytes and compared in constant time (`hmac`'s
//! `verify_slice`) before the payload is parsed at all. New links are never of that form.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use super::{Email, TenantId};

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted: 32 bytes, like the JWT secret.
pub const MIN_UNSUBSCRIBE_SECRET_LEN: usize = 32;

/// Longest token accepted before any decoding (a real one is ~200 characters).
const MAX_TOKEN_LEN: usize = 2048;

/// What starts an encrypted (version 2) token. A version-1 token starts with the base64 of
/// `{"`, never with this.
const V2_PREFIX: &str = "2.";
/// ChaCha20-Poly1305's nonce: random per token.
const NONCE_LEN: usize = 12;
/// Labels the encryption key derived from the secret, so it is never the version-1 MAC key.
const V2_KEY_LABEL: &[u8] = b"portal-invites unsubscribe token v2 encryption key";

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeClaim {
    pub tenant: TenantId,
    /// The address, normalized (lowercased) when signed.
    pub email: Email,
    /// The invitation the link was sent with; empty when there was none.
    pub invitation_id: String,
    pub issued_at: OffsetDateTime,
}

/// A token that was not made by this server's secret, or is malformed. Deliberately
/// carries no detail that would help a forger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this unsubscribe link is not valid")]
pub struct InvalidToken;

/// A secret shorter than [`MIN_UNSUBSCRIBE_SECRET_LEN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the unsubscribe secret must be at least {MIN_UNSUBSCRIBE_SECRET_LEN} bytes")]
pub struct WeakSecret;

#[derive(Serialize, Deserialize)]
struct Payload {
    t: String,
    e: String,
    #[serde(default)]
    i: String,
    iat: i64,
}

/// Signs unsubscribe tokens with the server secret, and verifies them with it or, while a
/// rotation is under way, with the previous secret ([`UnsubscribeSigner::with_previous`]):
/// links in emails sent before the rotation keep working.
#[derive(Clone)]
pub struct UnsubscribeSigner {
    key: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl std::fmt::Debug for UnsubscribeSigner {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsubscribeSigner").finish_non_exhaustive()
    }
}

impl UnsubscribeSigner {
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, WeakSecret> {
        let key = secret.as_ref().to_vec();
        if key.len() < MIN_UNSUBSCRIBE_SECRET_LEN {
            return Err(WeakSecret);
        }
        Ok(Self {
            key,
            previous: None,
        })
    }

    /// Also accepts tokens signed with `previous` (new tokens are signed with the current
    /// secret only).
    pub fn with_previous(mut self, previous: impl AsRef<[u8]>) -> Result<Self, WeakSecret> {
        let previous = previous.as_ref().to_vec();
        if previous.len() < MIN_UNSUBSCRIBE_SECRET_LEN {
            return Err(WeakSecret);
        }
        self.previous = Some(previous);
        Ok(self)
    }

    /// A token for `email` in `tenant`, sent with `invitation_id` (may be empty).
    pub fn sign(
        &self,
        tenant: &TenantId,
        email: &Email,
        invitation_id: &str,
        issued_at: OffsetDateTime,
    ) -> String {
        let payload = Payload {
            t: tenant.as_str().to_owned(),
            e: email.normalized(),
            i: invitation_id.to_owned(),
            iat: issued_at.unix_timestamp(),
        };
        // Serializing a struct of strings and an integer cannot fail.
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        use rand::Rng as _;
        let nonce: [u8; NONCE_LEN] = rand::rng().random();
        // Encrypting a buffer in memory cannot fail (only a message over 256 GiB could).
        let sealed = cipher_of(&self.key)
            .encrypt(Nonce::from_slice(&nonce), json.as_slice())
            .unwrap_or_default();
        let mut body = Vec::with_capacity(NONCE_LEN + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        format!("{V2_PREFIX}{}", URL_SAFE_NO_PAD.encode(body))
    }

    /// Checks the signature (in constant time), then parses the payload.
    pub fn verify(&self, token: &str) -> Result<UnsubscribeClaim, InvalidToken> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(InvalidToken);
        }
        let payload = match token.strip_prefix(V2_PREFIX) {
            Some(sealed) => self.open(sealed)?,
            None => self.verify_v1(token)?,
        };
        let p: Payload = serde_json::from_slice(&payload).map_err(|_| InvalidToken)?;
        Ok(UnsubscribeClaim {
            tenant: TenantId::parse(p.t).map_err(|_| InvalidToken)?,
            email: Email::parse(&p.e).map_err(|_| InvalidToken)?,
            invitation_id: p.i,
            issued_at: OffsetDateTime::from_unix_timestamp(p.iat).map_err(|_| InvalidToken)?,
        })
    }

    /// The payload of a version-2 token, decrypted with the secret or the previous one.
    fn open(&self, sealed: &str) -> Result<Vec<u8>, InvalidToken> {
        let body = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| InvalidToken)?;
        if body.len() <= NONCE_LEN {
            return Err(InvalidToken);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let open = |key: &[u8]| {
            cipher_of(key)
                .decrypt(Nonce::from_slice(nonce), ciphertext)
                .ok()
        };
        open(&self.key)
            .or_else(|| self.previous.as_deref().and_then(open))
            .ok_or(InvalidToken)
    }

    /// The payload of a version-1 token (signed, not encrypted), its MAC checked first.
    fn verify_v1(&self, token: &str) -> Result<Vec<u8>, InvalidToken> {
        let (payload_b64, tag_b64) = token.split_once('.').ok_or(InvalidToken)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| InvalidToken)?;
        let tag = URL_SAFE_NO_PAD.decode(tag_b64).map_err(|_| InvalidToken)?;
        let signed_by = |key: &[u8]| {
            let mut mac = mac_of(key);
            mac.update(&payload);
            mac.verify_slice(&tag).is_ok()
        };
        if !signed_by(&self.key) && !self.previous.as_deref().is_some_and(signed_by) {
            return Err(InvalidToken);
        }
        Ok(payload)
    }

    /// A version-1 token (readable payload, HMAC), as links sent before version 2 carry:
    /// what the tests of the upgrade make.
    #[cfg(test)]
    fn sign_v1(&self, payload: &Payload) -> String {
        let json = serde_json::to_vec(payload).unwrap_or_default();
        let mut mac = mac_of(&self.key);
        mac.update(&json);
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }
}

/// The version-2 cipher of a secret: its key is HMAC-SHA256(secret, [`V2_KEY_LABEL`]).
fn cipher_of(secret: &[u8]) -> ChaCha20Poly1305 {
    let mut mac = mac_of(secret);
    mac.update(V2_KEY_LABEL);
    let key = mac.finalize().into_bytes();
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

fn mac_of(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// `j***@example.com`: enough for a person to recognise their address, not enough for a
/// passer-by holding the link to read it.
pub fn mask_email(email: &Email) -> String {
    let s = email.as_str();
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SECRET: &[u8] = b"unsubscribe-secret-unsubscribe-secret";
    const AT: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

    fn signer() -> UnsubscribeSigner {
        UnsubscribeSigner::new(SECRET).unwrap()
    }

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_to_what_was_signed_with_the_address_normalized() {
        let e = Email::parse("Jane.Doe@Example.COM").unwrap();
        let token = signer().sign(&t("t1"), &e, "inv-1", AT);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        let c = signer().verify(&token).unwrap();
        assert_eq!(c.tenant, t("t1"));
        assert_eq!(c.email.as_str(), "jane.doe@example.com");
        assert_eq!(c.invitation_id, "inv-1");
        assert_eq!(c.issued_at, AT);
    }

    fn v1(e: &Email) -> String {
        signer().sign_v1(&Payload {
            t: "t1".into(),
            e: e.normalized(),
            i: "cmp:c-1".into(),
            iat: AT.unix_timestamp(),
        })
    }

    #[test]
    fn a_token_is_opaque_the_address_and_ids_cannot_be_read_out_of_it() {
        let e = Email::parse("jane.doe@example.com").unwrap();
        let token = signer().sign(&t("tenant-acme"), &e, "campaign-7:contact-9", AT);
        let sealed = token.strip_prefix("2.").expect("version 2");
        let bytes = URL_SAFE_NO_PAD.decode(sealed).unwrap();
        for secret in [
            "jane",
            "example.com",
            "tenant-acme",
            "campaign-7",
            "contact-9",
        ] {
            assert!(!token.contains(secret), "{secret} in {token}");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} readable in the decoded token"
            );
        }
        // Two links for the same address differ (random nonce): links cannot be matched up.
        assert_ne!(
            token,
            signer().sign(&t("tenant-acme"), &e, "campaign-7:contact-9", AT)
        );
    }

    #[test]
    fn links_sent_before_tokens_were_encrypted_still_verify() {
        let e = Email::parse("jane@example.com").unwrap();
        let old = v1(&e);
        assert!(!old.starts_with("2."));
        let c = signer().verify(&old).unwrap();
        assert_eq!((c.email, c.invitation_id.as_str()), (e, "cmp:c-1"));
        let rotated = UnsubscribeSigner::new([9u8; 32])
            .unwrap()
            .with_previous(SECRET)
            .unwrap();
        assert!(rotated.verify(&old).is_ok(), "and during a rotation");
    }

    #[test]
    fn a_tampered_token_is_rejected() {
        let e = Email::parse("jane@example.com").unwrap();
        // Version 2: any changed, missing or added byte.
        let token = signer().sign(&t("t1"), &e, "", AT);
        let sealed = URL_SAFE_NO_PAD.decode(&token[2..]).unwrap();
        for at in [0, NONCE_LEN, sealed.len() / 2, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            let forged = format!("2.{}", URL_SAFE_NO_PAD.encode(&bad));
            assert_eq!(signer().verify(&forged), Err(InvalidToken), "byte {at}");
        }
        for bad in [
            format!("2.{}", URL_SAFE_NO_PAD.encode(&sealed[..sealed.len() - 1])),
            format!("2.{}", URL_SAFE_NO_PAD.encode(&sealed[..NONCE_LEN])),
            format!("{token}A"),
            "2.".to_owned(),
        ] {
            assert_eq!(signer().verify(&bad), Err(InvalidToken), "{bad}");
        }
        // Version 1: another tenant's payload with a real tag, a wrong tag, broken forms.
        let token = v1(&e);
        let (payload, tag) = token.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
                .unwrap()
                .replace("\"t1\"", "\"t2\""),
        );
        let bad = [
            format!("{forged_payload}.{tag}"),
            format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            format!("{payload}."),
            payload.to_owned(),
            String::new(),
            "!!!.???".to_owned(),
            "a".repeat(5000),
        ];
        for b in bad {
            assert_eq!(signer().verify(&b), Err(InvalidToken), "{b}");
        }
    }

    #[test]
    fn a_token_signed_with_another_secret_is_rejected() {
        let other = UnsubscribeSigner::new([7u8; 32]).unwrap();
        let e = Email::parse("jane@example.com").unwrap();
        let token = other.sign(&t("t1"), &e, "", AT);
        assert_eq!(signer().verify(&token), Err(InvalidToken));
    }

    #[test]
    fn during_a_rotation_links_signed_with_the_previous_secret_still_verify() {
        let e = Email::parse("jane@example.com").unwrap();
        let old = signer().sign(&t("t1"), &e, "inv-1", AT);
        let rotated = UnsubscribeSigner::new([7u8; 32])
            .unwrap()
            .with_previous(SECRET)
            .unwrap();
        assert_eq!(rotated.verify(&old).unwrap().invitation_id, "inv-1");
        // New links are signed with the new secret only.
        let new = rotated.sign(&t("t1"), &e, "inv-2", AT);
        assert_eq!(signer().verify(&new), Err(InvalidToken));
        assert_eq!(rotated.verify(&new).unwrap().invitation_id, "inv-2");
        // Once the previous secret is dropped, its links stop working.
        let after = UnsubscribeSigner::new([7u8; 32]).unwrap();
        assert_eq!(after.verify(&old), Err(InvalidToken));
        assert_eq!(
            UnsubscribeSigner::new([7u8; 32])
                .unwrap()
                .with_previous(b"short")
                .unwrap_err(),
            WeakSecret
        );
    }

    #[test]
    fn a_short_secret_is_refused_and_the_key_is_never_printed() {
        assert_eq!(UnsubscribeSigner::new(b"short").unwrap_err(), WeakSecret);
        assert!(!format!("{:?}", signer()).contains("unsubscribe-secret"));
    }

    #[test]
    fn masking_keeps_the_first_letter_and_the_domain() {
        let e = Email::parse("jane.doe@example.com").unwrap();
        assert_eq!(mask_email(&e), "j***@example.com");
    }
}
