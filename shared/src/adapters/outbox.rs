//! The local mailer: every message is written, byte for byte, as an `.eml` file a person can
//! open in any mail client.
//!
//! Layout: `<data_dir>/outbox/<timestamp>-<message-id>.eml`, where `<timestamp>` is UTC
//! `YYYYMMDDTHHMMSS.ffffffZ` (so names sort by time) and `<message-id>` is the message's
//! `Message-ID` with every character outside `[A-Za-z0-9._-]` replaced by `_`. Each file is
//! first written as `.tmp-…` in the same directory and then renamed: a reader never sees half
//! a message, and a crash leaves at most a stray temp file that [`Outbox::list`] ignores.
//!
//! [`Outbox::list`] reads the newest files' headers (To, Subject, Date) for `GET /dev/outbox`;
//! [`Outbox::read`] returns one file's bytes, accepting only a plain file name of the outbox
//! ([`is_outbox_file_name`]) so no path can reach outside it.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use crate::ports::{MailError, Mailer, RawEmail, SentMessage};

/// The outbox directory inside a data dir.
pub const OUTBOX_DIR: &str = "outbox";

/// One message of the outbox, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxEntry {
    /// The file name (no directory), what `GET /dev/outbox/{file}` takes.
    pub file: String,
    pub to: String,
    pub subject: String,
    /// The `Date` header as RFC 3339, or empty when it cannot be read.
    pub date: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("not an outbox file name: {0:?}")]
    InvalidName(String),
    #[error("no such message in the outbox: {0}")]
    NotFound(String),
    #[error("outbox I/O failed on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes messages under a directory and lists them.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// The outbox of a data dir (`<data_dir>/outbox`); created on first send.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(OUTBOX_DIR),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `raw` atomically and returns the file name.
    pub async fn write(
        &self,
        message_id: &str,
        raw: &[u8],
        at: OffsetDateTime,
    ) -> Result<String, OutboxError> {
        let at = at.to_offset(time::UtcOffset::UTC);
        let safe_id: String = message_id
            .chars()
            .take(128)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z-{safe_id}.eml",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.microsecond()
        );
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| OutboxError::Io { path, source }
        };
        // One blocking task for the three file operations (not three thread hops).
        let dir = self.dir.clone();
        let raw = raw.to_vec();
        let file = name.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let tmp = dir.join(format!(".tmp-{file}"));
            let path = dir.join(&file);
            std::fs::write(&tmp, &raw).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))
        })
        .await
        .map_err(|e| OutboxError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(e),
        })??;
        Ok(name)
    }

    /// The newest `limit` messages, newest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || list_blocking(&dir, limit))
            .await
            .map_err(|e| OutboxError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    /// The exact bytes of one message.
    pub async fn read(&self, file: &str) -> Result<Vec<u8>, OutboxError> {
        if !is_outbox_file_name(file) {
            return Err(OutboxError::InvalidName(file.chars().take(200).collect()));
        }
        let path = self.dir.join(file);
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(OutboxError::NotFound(file.to_owned()))
            }
            Err(source) => Err(OutboxError::Io { path, source }),
        }
    }
}

/// A plain `.eml` file name of the outbox: `[A-Za-z0-9._-]`, not starting with `.`, ending
/// in `.eml`. No separator, no `..`, no temp file.
pub fn is_outbox_file_name(name: &str) -> bool {
    name.len() <= 255
        && name.ends_with(".eml")
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn list_blocking(dir: &Path, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
    let io = |source| OutboxError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_outbox_file_name(n))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    names.sort_unstable_by(|a, b| b.cmp(a));
    names.truncate(limit);
    let mut out = Vec::with_capacity(names.len());
    for file in names {
        let bytes = match std::fs::read(dir.join(&file)) {
            Ok(b) => b,
            // Removed between listing and reading: skip it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        out.push(entry(file, &bytes));
    }
    Ok(out)
}

fn entry(file: String, bytes: &[u8]) -> OutboxEntry {
    let parsed = mail_parser::MessageParser::default().parse_headers(bytes);
    let (to, subject, date) = match &parsed {
        Some(m) => (
            m.to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_owned(),
            m.subject().unwrap_or_default().to_owned(),
            m.date().map(|d| d.to_rfc3339()).unwrap_or_default(),
        ),
        None => Default::default(),
    };
    OutboxEntry {
        file,
        to,
        subject,
        date,
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send_raw(&self, msg: &RawEmail) -> Result<SentMessage, MailError> {
        let file = self
            .write(&msg.message_id, &msg.raw, OffsetDateTime::now_utc())
            .await
            .map_err(|e| MailError::Backend {
                detail: format!(
                    "{e}: {}",
                    std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                ),
            })?;
        tracing::debug!(file, to = %msg.to, "wrote message to the outbox");
        Ok(SentMessage {
            message_id: msg.message_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;
    use crate::mail::OutgoingEmail;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "portal-outbox-{tag}-{}-{}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn email(to: &str, subject: &str) -> RawEmail {
        OutgoingEmail {
            from: Email::parse("hoa@example.com").unwrap(),
            from_name: None,
            to: Email::parse(to).unwrap(),
            subject: subject.into(),
            html: "<p>hi</p>".into(),
            text: "hi".into(),
            list_unsubscribe_url: "https://portal.example/v1/unsubscribe?token=x.y".into(),
            tags: vec![],
            message_id_domain: None,
        }
        .to_raw()
        .unwrap()
    }

    #[tokio::test]
    async fn a_sent_message_is_written_byte_for_byte_and_listed_newest_first() {
        let dir = tempdir("list");
        let outbox = Outbox::in_data_dir(&dir);
        assert!(outbox.list(10).await.unwrap().is_empty(), "no outbox yet");
        let first = email("a@example.org", "Première");
        let second = email("b@example.org", "Second");
        let sent = outbox.send_raw(&first).await.unwrap();
        assert_eq!(sent.message_id, first.message_id);
        outbox.send_raw(&second).await.unwrap();

        let list = outbox.list(10).await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].to, "b@example.org");
        assert_eq!(list[1].to, "a@example.org");
        assert_eq!(list[1].subject, "Première");
        assert!(list[0].date.starts_with("20"), "{:?}", list[0]);
        assert_eq!(outbox.read(&list[1].file).await.unwrap(), first.raw);
        assert_eq!(outbox.list(1).await.unwrap().len(), 1);
        // No temp file is left behind.
        let names: Vec<_> = std::fs::read_dir(outbox.dir()).unwrap().collect();
        assert_eq!(names.len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn reading_refuses_any_name_that_could_leave_the_outbox() {
        let dir = tempdir("names");
        std::fs::write(dir.join("secret.eml"), "x").unwrap();
        let outbox = Outbox::in_data_dir(&dir);
        for bad in [
            "../secret.eml",
            "..",
            "/etc/passwd",
            "a/b.eml",
            ".tmp-x.eml",
            "x.txt",
            "..eml",
            "a\\b.eml",
        ] {
            assert!(
                matches!(outbox.read(bad).await, Err(OutboxError::InvalidName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            outbox.read("nothing.eml").await,
            Err(OutboxError::NotFound(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
