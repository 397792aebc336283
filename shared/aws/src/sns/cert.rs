//! SNS signing certificates: read, kept, and used to verify.
//!
//! A [`CertStore`] answers for a checked [`CertUrl`]: from its in-memory cache, else from the
//! configured directory (a file named as the URL's last path segment: offline use and tests),
//! else through its [`CertFetcher`]. Parsed certificates are cached by URL, at most
//! [`CertStore::DEFAULT_CAPACITY`] of them (SNS uses one per region at a time, changing
//! rarely), the oldest dropped first. Two concurrent first requests for one URL may both
//! fetch; both get the same answer.
//!
//! Failures are remembered briefly, so the public webhook cannot be made to fetch on every
//! request: a URL whose fetch failed (or whose answer was no usable certificate) is answered
//! with that failure for [`FAILURE_TTL`] without a request; and once
//! [`MAX_RECENT_FAILURES`] fetches failed within [`FAILURE_TTL`], no URL not already cached is
//! fetched until the oldest of them ages out (a flood of made-up certificate names costs that
//! many requests a minute, not one each). Both are retryable (503, so SNS delivers again), and
//! a certificate already cached is served throughout. Times are the verifier's `now`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use aws_lc_rs::signature::{
    UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256,
};
use time::OffsetDateTime;
use url::Url;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::DecodePem;
use x509_cert::Certificate;

use super::message::SignatureVersion;
use super::urls::CertUrl;
use super::{FetchError, SnsError};

/// `rsaEncryption` (RFC 8017): the only key type SNS signs with.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Largest certificate file or answer read (an SNS certificate is about 2 KiB).
pub const MAX_CERT_BYTES: usize = 64 * 1024;

/// How long a failed fetch is remembered.
pub const FAILURE_TTL: time::Duration = time::Duration::seconds(60);

/// Failed fetches within [`FAILURE_TTL`] after which no new URL is fetched.
pub const MAX_RECENT_FAILURES: usize = 8;

/// Most URLs whose failure is remembered (the oldest forgotten first).
const MAX_REMEMBERED_FAILURES: usize = 256;

/// GETs an `https` URL and returns the body of a 200 answer. The HTTPS implementation is
/// [`super::HttpsFetcher`]; tests substitute one that records what was asked.
#[async_trait]
pub trait CertFetcher: Send + Sync {
    async fn get(&self, url: &Url) -> Result<Vec<u8>, FetchError>;
}

/// The parts of an SNS certificate that verification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningCert {
    /// PKCS#1 `RSAPublicKey` DER, as `aws-lc-rs` takes it.
    rsa_public_key: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl SigningCert {
    /// Reads one PEM-encoded X.509 certificate holding an RSA key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let cert = Certificate::from_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
        let tbs = cert.tbs_certificate;
        let spki = tbs.subject_public_key_info;
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err(format!("key is {}, not RSA", spki.algorithm.oid));
        }
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or("public key is not a whole number of bytes")?;
        Ok(Self {
            rsa_public_key: key.to_vec(),
            not_before: to_time(tbs.validity.not_before)?,
            not_after: to_time(tbs.validity.not_after)?,
        })
    }

    /// `Ok` when `now` lies within the certificate's validity (both ends inclusive, RFC 5280).
    pub fn check_valid_at(&self, now: OffsetDateTime) -> Result<(), String> {
        if now < self.not_before {
            Err(format!("not valid before {}", self.not_before))
        } else if now > self.not_after {
            Err(format!("expired {}", self.not_after))
        } else {
            Ok(())
        }
    }

    /// Whether `signature` is this key's RSA PKCS#1 v1.5 signature of `message` with the
    /// version's digest. Keys under 2048 bits verify nothing.
    pub(crate) fn verifies(
        &self,
        version: SignatureVersion,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let alg = match version {
            SignatureVersion::V1 => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            SignatureVersion::V2 => &RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(alg, &self.rsa_public_key)
            .verify(message, signature)
            .is_ok()
    }
}

fn to_time(t: x509_cert::time::Time) -> Result<OffsetDateTime, String> {
    i64::try_from(t.to_unix_duration().as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| "validity date out of range".to_owned())
}

/// Where certificates come from: cache, directory, then fetcher (see the module docs).
pub struct CertStore {
    dir: Option<PathBuf>,
    fetcher: Arc<dyn CertFetcher>,
    cache: Mutex<Cache>,
}

struct Cache {
    capacity: usize,
    certs: HashMap<CertUrl, Arc<SigningCert>>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<CertUrl>,
    /// Recent failures by URL, oldest first (at most [`MAX_REMEMBERED_FAILURES`]).
    failures: VecDeque<(CertUrl, OffsetDateTime, Failed)>,
}

/// A remembered failure, answered again without a request.
#[derive(Clone)]
enum Failed {
    Fetch(Arc<FetchError>),
    BadCert(String),
}

impl Cache {
    /// Forgets failures older than [`FAILURE_TTL`] at `now`.
    fn expire_failures(&mut self, now: OffsetDateTime) {
        while self
            .failures
            .front()
            .is_some_and(|(_, at, _)| now - *at >= FAILURE_TTL || *at > now)
        {
            self.failures.pop_front();
        }
    }

    fn failure(&self, url: &CertUrl) -> Option<Failed> {
        self.failures
            .iter()
            .rev()
            .find(|(u, _, _)| u == url)
            .map(|(_, _, f)| f.clone())
    }

    fn remember_failure(&mut self, url: &CertUrl, now: OffsetDateTime, failed: Failed) {
        self.failures.push_back((url.clone(), now, failed));
        while self.failures.len() > MAX_REMEMBERED_FAILURES {
            self.failures.pop_front();
        }
    }

    fn get(&self, url: &CertUrl) -> Option<Arc<SigningCert>> {
        self.certs.get(url).cloned()
    }

    fn insert(&mut self, url: CertUrl, cert: Arc<SigningCert>) {
        if self.certs.insert(url.clone(), cert).is_some() {
            return;
        }
        self.order.push_back(url);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.certs.remove(&old);
            }
        }
    }
}

impl CertStore {
    /// How many certificates are kept unless [`CertStore::with_capacity`] says otherwise.
    pub const DEFAULT_CAPACITY: usize = 32;

    /// A store that fetches through `fetcher`, with no directory.
    pub fn new(fetcher: Arc<dyn CertFetcher>) -> Self {
        Self {
            dir: None,
            fetcher,
            cache: Mutex::new(Cache {
                capacity: Self::DEFAULT_CAPACITY,
                certs: HashMap::new(),
                order: VecDeque::new(),
                failures: VecDeque::new(),
            }),
        }
    }

    /// Looks in `dir` first for `SimpleNotificationService-….pem` files.
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Keeps at most `capacity` (at least one) parsed certificates.
    pub fn with_capacity(self, capacity: usize) -> Self {
        self.lock().capacity = capacity.max(1);
        self
    }

    /// The fetcher, also used for the subscription confirmation's GET.
    pub fn fetcher(&self) -> &dyn CertFetcher {
        self.fetcher.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds only finished entries: one left by a panicking thread is still sound.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The certificate at `url`, parsed; `now` dates the failures it remembers (see the
    /// module docs).
    pub async fn get(
        &self,
        url: &CertUrl,
        now: OffsetDateTime,
    ) -> Result<Arc<SigningCert>, SnsError> {
        let fetch_err = |source| SnsError::CertFetch {
            url: url.url().to_string(),
            source,
        };
        {
            let mut cache = self.lock();
            if let Some(cert) = cache.get(url) {
                return Ok(cert);
            }
            cache.expire_failures(now);
            match cache.failure(url) {
                Some(Failed::Fetch(source)) => {
                    return Err(fetch_err(FetchError::RecentlyFailed(source)))
                }
                Some(Failed::BadCert(reason)) => {
                    return Err(SnsError::BadCert {
                        url: url.url().to_string(),
                        reason,
                    })
                }
                None => {}
            }
        }
        let pem = match self.read_from_dir(url).await.map_err(fetch_err)? {
            Some(pem) => pem,
            None => {
                // Only the network is rationed: the directory is read whatever failed.
                let failed = self.lock().failures.len();
                if failed >= MAX_RECENT_FAILURES {
                    return Err(fetch_err(FetchError::TooManyFailures(failed)));
                }
                self.fetch(url, now).await.map_err(fetch_err)?
            }
        };
        let cert = match SigningCert::from_pem(&pem) {
            Ok(cert) => Arc::new(cert),
            Err(reason) => {
                self.lock()
                    .remember_failure(url, now, Failed::BadCert(reason.clone()));
                return Err(SnsError::BadCert {
                    url: url.url().to_string(),
                    reason,
                });
            }
        };
        self.lock().insert(url.clone(), Arc::clone(&cert));
        Ok(cert)
    }

    /// The certificate's bytes from the fetcher; a failure is remembered at `now`.
    async fn fetch(&self, url: &CertUrl, now: OffsetDateTime) -> Result<Vec<u8>, FetchError> {
        match self.fetcher.get(url.url()).await {
            Ok(pem) => {
                tracing::info!(url = %url.url(), "fetched SNS signing certificate");
                Ok(pem)
            }
            Err(e) => {
                tracing::warn!(url = %url.url(), error = %e, "SNS signing certificate fetch failed");
                let e = Arc::new(e);
                self.lock()
                    .remember_failure(url, now, Failed::Fetch(Arc::clone(&e)));
                Err(FetchError::Shared(e))
            }
        }
    }

    /// The directory's copy, `None` when there is no directory or no such file.
    async fn read_from_dir(&self, url: &CertUrl) -> Result<Option<Vec<u8>>, FetchError> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let path = dir.join(url.file_name());
        match tokio::fs::read(&path).await {
            Ok(bytes) if bytes.len() > MAX_CERT_BYTES => Err(FetchError::TooLarge(MAX_CERT_BYTES)),
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FetchError::Io { path, source }),
        }
    }
}
