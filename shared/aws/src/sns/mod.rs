//! Amazon SNS HTTP(S) messages: what SES events arrive in, verified before anything trusts them.
//!
//! The webhook is public, so a message is believed only once SNS's own signature over it checks
//! out, with the certificate SNS names, fetched only from SNS's own hosts, for a topic we
//! subscribed to.
//!
//! # Layout
//!
//! - [`message`]: the JSON envelope (`Notification`, `SubscriptionConfirmation`,
//!   `UnsubscribeConfirmation`), the exact string SNS signs, and the verified results.
//! - [`urls`]: the host rule for `SigningCertURL` and `SubscribeURL`
//!   (`https://sns.<region>.amazonaws.com[.cn]/…`), checked before any request is made.
//! - [`cert`]: the signing certificate (X.509, RSA) and the [`CertStore`] that finds it in a
//!   configured directory or fetches it through a [`CertFetcher`], keeping a bounded cache.
//! - [`https`]: the real [`CertFetcher`], over HTTPS with the system's roots.
//! - [`verifier`]: [`SnsVerifier`], the one entry point: body in, [`VerifiedMessage`] or
//!   [`SnsError`] out, and the subscription confirmation that may follow.
//!
//! # Order of checks
//!
//! Everything that needs no network comes first: the envelope's shape, `SignatureVersion`
//! (`1` = SHA1withRSA, `2` = SHA256withRSA; `1` refused when [`SnsPolicy::signature_v2_only`]),
//! the `Timestamp`'s age ([`SnsPolicy::max_age`]: older than SNS would still be retrying is a
//! replay), `TopicArn` against the allow-list, the certificate URL's host, region
//! ([`SnsPolicy::regions`]) and file name, the `SubscribeURL`'s host and region, the
//! signature's base64. Only then is the certificate looked up (cache, remembered failures,
//! directory, then HTTPS), checked against the clock, and the signature verified over the
//! exact string to sign. A forged message for another topic or naming another host or region
//! therefore never makes us send a request.
//!
//! Trust in the certificate rests, as in AWS's own SDK validators, on where it comes from: an
//! HTTPS connection (system roots) to an SNS host. Its chain is not walked again here.

pub mod cert;
pub mod https;
pub mod message;
pub mod urls;
pub mod verifier;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use cert::{CertFetcher, CertStore};
pub use https::HttpsFetcher;
pub use message::{
    Notification, SubscriptionConfirmation, UnsubscribeConfirmation, VerifiedMessage,
};
pub use urls::{check_cert_url, check_subscribe_url, CertUrl, SnsRegions};
pub use verifier::{SnsPolicy, SnsVerifier};

/// Longest piece of a rejected message quoted in an error (they end up in logs).
const QUOTE_LEN: usize = 120;

/// `s` cut to [`QUOTE_LEN`] characters, for errors that quote what a sender sent.
pub(crate) fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE_LEN {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(QUOTE_LEN).collect();
        out.push('…');
        out
    }
}

/// Why a message was not accepted. [`SnsError::class`] says how the HTTP layer should answer.
#[derive(Debug, thiserror::Error)]
pub enum SnsError {
    /// Not an SNS envelope: not JSON, not an object, a field missing or not a string.
    #[error("malformed SNS message: {0}")]
    Malformed(String),
    /// A `Type` we cannot verify (we only know what SNS signs for the three documented types).
    #[error("unknown SNS message type {0:?}")]
    UnknownType(String),
    /// `TopicArn` is not on the configured allow-list.
    #[error("topic {0:?} is not on the allow-list")]
    TopicNotAllowed(String),
    /// `SigningCertURL` is not `https://sns.<region>.amazonaws.com[.cn]/SimpleNotificationService-*.pem`.
    #[error("signing certificate URL {url:?} rejected: {reason}")]
    BadCertUrl { url: String, reason: &'static str },
    /// `SubscribeURL` is not an `https://sns.<region>.amazonaws.com[.cn]/` URL.
    #[error("SubscribeURL {url:?} rejected: {reason}")]
    BadSubscribeUrl { url: String, reason: &'static str },
    /// The certificate could be neither read from the directory nor fetched.
    #[error("could not get the signing certificate {url}")]
    CertFetch {
        url: String,
        #[source]
        source: FetchError,
    },
    /// The certificate was found but cannot verify anything: not PEM X.509, not RSA, or not
    /// valid at the message's arrival.
    #[error("signing certificate {url} unusable: {reason}")]
    BadCert { url: String, reason: String },
    /// `SignatureVersion` other than `1` or `2`.
    #[error("unsupported SignatureVersion {0:?}")]
    UnsupportedSignatureVersion(String),
    /// `SignatureVersion` `1` (SHA1withRSA) where only `2` is accepted
    /// ([`SnsPolicy::signature_v2_only`]: the topic signs with version 2).
    #[error("SignatureVersion 1 refused: this deployment's topic signs with version 2")]
    SignatureVersionNotAllowed,
    /// The certificate or subscription URL names an SNS host of a region this deployment
    /// does not use ([`SnsPolicy::regions`]).
    #[error("{what} {url:?} rejected: region {region:?} is not this deployment's ({allowed})")]
    RegionNotAllowed {
        what: &'static str,
        url: String,
        region: String,
        allowed: String,
    },
    /// `Timestamp` older than SNS would still be retrying (a replay) or too far ahead.
    #[error("message Timestamp {timestamp} is {reason}")]
    Stale {
        timestamp: time::OffsetDateTime,
        reason: String,
    },
    /// The signature is not base64, or does not verify over the string to sign.
    #[error("SNS signature does not verify")]
    BadSignature,
    /// The GET of a verified `SubscribeURL` failed.
    #[error("could not confirm the SNS subscription")]
    ConfirmSubscription {
        #[source]
        source: FetchError,
    },
}

/// How a rejected message should be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnsErrorClass {
    /// 400: the body is not an SNS message at all.
    Malformed,
    /// 403: a message we will not believe (SNS does not retry a 4xx).
    Forbidden,
    /// 503: our side failed (certificate host unreachable, timeout); SNS retries a 5xx.
    Unavailable,
}

impl SnsError {
    /// 400 for a malformed body, 503 when the failure was ours and a retry may succeed, 403 for
    /// everything else.
    pub fn class(&self) -> SnsErrorClass {
        match self {
            SnsError::Malformed(_) => SnsErrorClass::Malformed,
            SnsError::CertFetch { source, .. } | SnsError::ConfirmSubscription { source }
                if source.is_retryable() =>
            {
                SnsErrorClass::Unavailable
            }
            _ => SnsErrorClass::Forbidden,
        }
    }
}

/// Why a GET (certificate or subscription confirmation) or a directory read failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection, TLS or protocol failure.
    #[error("request failed")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No complete answer within the time allowed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered with a status other than 200.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// The body is larger than any certificate or confirmation answer.
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// The configured certificate directory has the file but it cannot be read.
    #[error("reading {path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A failure also remembered for the next requests (see [`cert`]).
    #[error(transparent)]
    Shared(Arc<FetchError>),
    /// This URL's fetch failed less than [`cert::FAILURE_TTL`] ago: not asked again yet.
    #[error("failed less than {} s ago; not asked again yet", cert::FAILURE_TTL.whole_seconds())]
    RecentlyFailed(#[source] Arc<FetchError>),
    /// So many fetches failed lately that no new certificate URL is fetched for now.
    #[error("{0} certificate fetches failed in the last {ttl} s; no new one is tried yet", ttl = cert::FAILURE_TTL.whole_seconds())]
    TooManyFailures(usize),
}

impl FetchError {
    /// Whether trying again later may succeed (network trouble, a 5xx or 429), as opposed to an
    /// answer that will not change (a 404, an oversized body).
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Transport(_) | FetchError::Timeout(_) | FetchError::Io { .. } => true,
            FetchError::Status(s) => *s >= 500 || *s == 429,
            FetchError::TooLarge(_) => false,
            FetchError::Shared(e) | FetchError::RecentlyFailed(e) => e.is_retryable(),
            FetchError::TooManyFailures(_) => true,
        }
    }
}
