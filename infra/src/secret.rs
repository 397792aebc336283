//! The HS256 secret shared by `serve` (which verifies tokens) and `token` (which signs them).
//!
//! Both commands resolve it the same way, so a token printed by one process is accepted by
//! the other: `PORTAL_INVITES_JWT_SECRET` when set, else `<data-dir>/jwt-secret`, a file made
//! on first use from 32 random bytes written as hex, readable by its owner only. Keeping it
//! in the data dir means "delete the data dir" also revokes every token it signed.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable that overrides the secret file.
pub const SECRET_ENV: &str = "PORTAL_INVITES_JWT_SECRET";

/// The file, inside the data dir, that holds the secret when the variable is not set.
pub const SECRET_FILE: &str = "jwt-secret";

/// Shortest secret accepted (the API's own minimum): HS256 with a guessable key would let
/// anyone mint tokens.
pub use portal_http::auth::MIN_HS256_SECRET_LEN as MIN_SECRET_LEN;

/// Where the secret came from, for the start-up banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env,
    File(PathBuf),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env => write!(f, "${SECRET_ENV}"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The signing secret and where it came from.
#[derive(Clone)]
pub struct Secret {
    bytes: Vec<u8>,
    pub source: SecretSource,
}

impl std::fmt::Debug for Secret {
    // Never print the key itself, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{SECRET_ENV} is set but is shorter than {MIN_SECRET_LEN} bytes")]
    EnvTooShort,
    #[error("the secret file {path} is shorter than {MIN_SECRET_LEN} bytes; delete it to make a new one")]
    FileTooShort { path: PathBuf },
    #[error("cannot create the data dir {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read or create the secret file {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Secret {
    /// The secret for this data dir: the environment variable if set, else the file.
    pub fn resolve(data_dir: &Path) -> Result<Self, SecretError> {
        match std::env::var_os(SECRET_ENV) {
            Some(v) => {
                let bytes = v.as_encoded_bytes().to_vec();
                if bytes.len() < MIN_SECRET_LEN {
                    return Err(SecretError::EnvTooShort);
                }
                Ok(Self {
                    bytes,
                    source: SecretSource::Env,
                })
            }
            None => Self::from_data_dir(data_dir),
        }
    }

    /// The secret file of a data dir, created (with the dir) when missing. Ignores the
    /// environment: for tests that must not depend on the caller's shell.
    pub fn from_data_dir(data_dir: &Path) -> Result<Self, SecretError> {
        std::fs::create_dir_all(data_dir).map_err(|source| SecretError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(SECRET_FILE);
        let file_err = |source| SecretError::File {
            path: path.clone(),
            source,
        };
        match create_new_private(&path) {
            Ok(mut f) => {
                let hex = random_hex(32);
                f.write_all(hex.as_bytes())
                    .and_then(|()| f.write_all(b"\n"))
                    .and_then(|()| f.sync_all())
                    .map_err(file_err)?;
                tracing::info!(path = %path.display(), "created a new JWT secret");
            }
            // Another process (or an earlier run) made it: read what is there.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(file_err(e)),
        }
        let text = std::fs::read_to_string(&path).map_err(file_err)?;
        let bytes = text.trim().as_bytes().to_vec();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretError::FileTooShort { path });
        }
        Ok(Self {
            bytes,
            source: SecretSource::File(path),
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Creates a file that must not exist yet, readable and writable by its owner only.
fn create_new_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_use_creates_a_private_secret_and_later_uses_read_the_same_one() {
        let dir = tempfile::Builder::new().prefix("secret").tempdir().unwrap();
        let a = Secret::from_data_dir(dir.path()).unwrap();
        let b = Secret::from_data_dir(dir.path()).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_eq!(a.as_bytes().len(), 64, "32 random bytes as hex");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn two_data_dirs_get_different_secrets() {
        let (d1, d2) = (
            tempfile::Builder::new()
                .prefix("secret-a")
                .tempdir()
                .unwrap(),
            tempfile::Builder::new()
                .prefix("secret-b")
                .tempdir()
                .unwrap(),
        );
        let a = Secret::from_data_dir(d1.path()).unwrap();
        let b = Secret::from_data_dir(d2.path()).unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
    }

    #[test]
    fn a_truncated_secret_file_is_refused_with_a_way_out() {
        let dir = tempfile::Builder::new()
            .prefix("secret-short")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join(SECRET_FILE), "abc\n").unwrap();
        let err = Secret::from_data_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("delete it"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let dir = tempfile::Builder::new()
            .prefix("secret-debug")
            .tempdir()
            .unwrap();
        let s = Secret::from_data_dir(dir.path()).unwrap();
        let key = String::from_utf8(s.as_bytes().to_vec()).unwrap();
        assert!(!format!("{s:?}").contains(&key));
    }
}
