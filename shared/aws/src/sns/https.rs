//! The real [`CertFetcher`]: a GET over HTTPS (rustls with aws-lc-rs, the system's roots), the
//! same TLS stack the AWS SDK already builds into every function, so it adds no code to compile.
//!
//! HTTPS only, HTTP/1.1, no redirects followed (a 3xx is an error: the URL was checked, its
//! target would not be), the whole exchange bounded in time and the body in size.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use url::Url;

use super::cert::{CertFetcher, MAX_CERT_BYTES};
use super::FetchError;

/// How long one GET may take, connection included. SNS's certificate host answers within
/// milliseconds from its own region; a slow or silent host must not hold a webhook request
/// (and one of the function's few concurrent executions) for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// GETs over HTTPS; cheap to clone (one connection pool).
#[derive(Clone)]
pub struct HttpsFetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpsFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsFetcher")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpsFetcher {
    /// A fetcher trusting the system's root certificates; fails when none can be loaded.
    pub fn new() -> Result<Self, FetchError> {
        let builder = HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| FetchError::Transport(Box::new(e)))?;
        Ok(Self::from_connector(
            builder.https_only().enable_http1().build(),
        ))
    }

    /// A fetcher trusting only `roots` (a private CA in front of the internet, or a test's).
    pub fn with_roots(roots: rustls::RootCertStore) -> Result<Self, FetchError> {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Transport(Box::new(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let builder = HttpsConnectorBuilder::new().with_tls_config(config);
        Ok(Self::from_connector(
            builder.https_only().enable_http1().build(),
        ))
    }

    fn from_connector(connector: HttpsConnector<HttpConnector>) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Overrides [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn get_unbounded(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let uri: hyper::Uri = url
            .as_str()
            .parse()
            .map_err(|e| FetchError::Transport(Box::new(e)))?;
        let request = hyper::Request::get(uri)
            .body(Empty::new())
            .map_err(|e| FetchError::Transport(Box::new(e)))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::Transport(Box::new(e)))?;
        if response.status() != hyper::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_CERT_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge(MAX_CERT_BYTES)
                } else {
                    FetchError::Transport(e)
                }
            })?;
        Ok(body.to_bytes().to_vec())
    }
}

#[async_trait]
impl CertFetcher for HttpsFetcher {
    async fn get(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        tokio::time::timeout(self.timeout, self.get_unbounded(url))
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    //! The real fetcher against a TLS server on loopback, with a certificate made here.

    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    use super::*;

    /// What the server sends for every request: `None` never answers.
    #[derive(Clone)]
    struct Answer(Option<Vec<u8>>);

    fn ok(body: &[u8]) -> Answer {
        let mut raw = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        Answer(Some(raw))
    }

    fn status(line: &str) -> Answer {
        Answer(Some(
            format!("HTTP/1.1 {line}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .into_bytes(),
        ))
    }

    /// Serves `answer` over TLS as `localhost`; returns the port and a fetcher trusting it.
    async fn serve(answer: Answer) -> (u16, HttpsFetcher) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).expect("root");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    match answer.0 {
                        Some(raw) => {
                            let _ = tls.write_all(&raw).await;
                            let _ = tls.shutdown().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                });
            }
        });
        (port, HttpsFetcher::with_roots(roots).expect("fetcher"))
    }

    fn url(port: u16) -> Url {
        Url::parse(&format!(
            "https://localhost:{port}/SimpleNotificationService-x.pem"
        ))
        .expect("url")
    }

    #[tokio::test]
    async fn a_200_answer_gives_its_body() {
        let (port, fetcher) = serve(ok(b"-----BEGIN CERTIFICATE-----")).await;
        let body = fetcher.get(&url(port)).await.expect("fetched");
        assert_eq!(body, b"-----BEGIN CERTIFICATE-----");
    }

    #[tokio::test]
    async fn other_statuses_and_redirects_are_errors() {
        for (line, code) in [
            ("404 Not Found", 404),
            ("302 Found", 302),
            ("503 Unavailable", 503),
        ] {
            let (port, fetcher) = serve(status(line)).await;
            let err = fetcher.get(&url(port)).await.expect_err(line);
            assert!(
                matches!(err, FetchError::Status(c) if c == code),
                "{line}: {err:?}"
            );
            assert_eq!(err.is_retryable(), code >= 500, "{line}");
        }
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused() {
        let (port, fetcher) = serve(ok(&vec![b'a'; MAX_CERT_BYTES + 1])).await;
        let err = fetcher.get(&url(port)).await.expect_err("too large");
        assert!(matches!(err, FetchError::TooLarge(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (port, fetcher) = serve(Answer(None)).await;
        let fetcher = fetcher.with_timeout(Duration::from_millis(300));
        let err = fetcher.get(&url(port)).await.expect_err("silent");
        assert!(matches!(err, FetchError::Timeout(_)), "{err:?}");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn an_untrusted_server_or_plain_http_is_refused() {
        let (port, _) = serve(ok(b"x")).await;
        let stranger = HttpsFetcher::with_roots(rustls::RootCertStore::empty()).expect("fetcher");
        let err = stranger.get(&url(port)).await.expect_err("untrusted");
        assert!(matches!(err, FetchError::Transport(_)), "{err:?}");

        let (port, fetcher) = serve(ok(b"x")).await;
        let plain = Url::parse(&format!("http://localhost:{port}/x.pem")).expect("url");
        let err = fetcher.get(&plain).await.expect_err("http");
        assert!(matches!(err, FetchError::Transport(_)), "{err:?}");
    }
}
