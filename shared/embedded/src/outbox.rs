//! The local mailer: every message is written, byte for byte, as an `.eml` file a person can
//! open in any mail client.
//!
//! Layout: `<data_dir>/outbox/<message-id>.eml`, where `<message-id>` is the message's
//! `Message-ID` with every character outside `[A-Za-z0-9._-]` replaced by `_`.
//!
//! **One file per Message-ID, written once.** A file appears whole or not at all, and a
//! second send of the same Message-ID writes nothing: delivery gives each invitation a
//! Message-ID derived from it, so an email re-sent after a crash (sent, then killed before
//! its outcome was written) does not land twice. On Linux the bytes go to an anonymous
//! `O_TMPFILE` that is then linked under its name (one directory operation; the link fails
//! if the name exists); elsewhere to a `.tmp-…` file hard-linked under its name and removed.
//! A crash leaves at most a stray temp file that [`Outbox::list`] ignores.
//!
//! What it costs: the file's inode. On an ext4 file system without a journal (as on the
//! benchmark machine, 2026-11-30) every allocation first skips, one by one, the inodes freed
//! in the last minutes (`recently_deleted`: 79% of the samples of a file-creation
//! micro-benchmark, which wrote 18,000 or under 1,000 files/s depending on what had been
//! deleted before), so the send rate follows earlier deletions. Shard subdirectories under a
//! `FS_TOPDIR_FL` outbox were tried and gave no consistent gain (README, "Performance").
//!
//! [`Outbox::list`] reads the newest files' (by modification time) headers (To, Subject,
//! Date) for `GET /dev/outbox`;
//! [`Outbox::read`] returns one file's bytes, accepting only a plain file name of the outbox
//! ([`is_outbox_file_name`]) so no path can reach outside it.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use portal_core::ports::{MailError, Mailer, RawEmail, SentMessage};
use serde::Serialize;

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

    /// Writes `raw` as `<message-id>.eml`, atomically, unless a message with that id is
    /// already there. Returns the file name and whether this call wrote it.
    pub async fn write(&self, message_id: &str, raw: &[u8]) -> Result<(String, bool), OutboxError> {
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
        // Never a hidden name, never `..`: what `is_outbox_file_name` accepts.
        let name = format!("m{}.eml", safe_id.replace("..", "_."));
        let dir = self.dir.clone();
        let raw = raw.to_vec();
        let file = name.clone();
        let wrote = tokio::task::spawn_blocking(move || write_once(&dir, &file, &raw))
            .await
            .map_err(|e| OutboxError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(e),
            })??;
        Ok((name, wrote))
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

/// Writes `raw` under `dir/name` unless that name exists; `true` when written.
fn write_once(dir: &Path, name: &str, raw: &[u8]) -> Result<bool, OutboxError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| OutboxError::Io { path, source }
    };
    let path = dir.join(name);
    if let Err(e) = std::fs::create_dir(dir) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
    }
    #[cfg(target_os = "linux")]
    if let Some(wrote) = linux::write_once(dir, &path, raw).map_err(io(&path))? {
        return Ok(wrote);
    }
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    std::fs::write(&tmp, raw).map_err(io(&tmp))?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(&path)(e)),
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::Write as _;
    use std::path::Path;

    use rustix::fs::{linkat, openat, AtFlags, Mode, OFlags, CWD};
    use rustix::io::Errno;

    /// `O_TMPFILE` + `linkat`: `None` when the file system cannot make anonymous files
    /// (the caller falls back to a named temp file).
    pub(super) fn write_once(dir: &Path, path: &Path, raw: &[u8]) -> std::io::Result<Option<bool>> {
        let fd = match openat(
            CWD,
            dir,
            OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        ) {
            Ok(fd) => fd,
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut file = std::fs::File::from(fd);
        file.write_all(raw)?;
        let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
        match linkat(CWD, proc_path.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW) {
            Ok(()) => Ok(Some(true)),
            Err(Errno::EXIST) => Ok(Some(false)),
            // No /proc (some sandboxes): let the portable path do it.
            Err(Errno::NOENT | Errno::PERM | Errno::ACCESS) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn list_blocking(dir: &Path, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
    let io = |source| OutboxError::Io {
        path: dir.to_owned(),
        source,
    };
    // (modified, name) of every message, newest first.
    let mut found: Vec<(std::time::SystemTime, String)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let modified = e.metadata().ok()?.modified().ok()?;
                is_outbox_file_name(&name).then_some((modified, name))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.truncate(limit);
    let names = found.into_iter().map(|(_, n)| n);
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
        let (file, wrote) = self
            .write(&msg.message_id, &msg.raw)
            .await
            .map_err(|e| MailError::Backend(Box::new(e)))?;
        if wrote {
            tracing::debug!(file, to = %msg.to, "wrote message to the outbox");
        } else {
            tracing::info!(file, to = %msg.to, "already in the outbox: a re-send written once");
        }
        Ok(SentMessage {
            message_id: msg.message_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::domain::Email;
    use portal_core::mail::OutgoingEmail;
    use time::OffsetDateTime;

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
        // Newest first goes by modification time, as fine as the file system's clock (a few
        // milliseconds on ext4).
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
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
    async fn a_message_id_sent_twice_is_written_once() {
        let dir = tempdir("once");
        let outbox = Outbox::in_data_dir(&dir);
        let first = email("a@example.org", "Invitation");
        let mut again = email("a@example.org", "Invitation, re-sent after a crash");
        again.message_id = first.message_id.clone();
        outbox.send_raw(&first).await.unwrap();
        outbox.send_raw(&again).await.unwrap();
        let list = outbox.list(10).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].subject, "Invitation");
        assert_eq!(outbox.read(&list[0].file).await.unwrap(), first.raw);
        let names: Vec<_> = std::fs::read_dir(outbox.dir()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left behind");
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
            "00/x.eml",
            "../outbox/x.eml",
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_sends_of_one_message_id_write_one_file() {
        let dir = tempdir("race");
        let outbox = Outbox::in_data_dir(&dir);
        let first = email("a@example.org", "Invitation");
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let outbox = outbox.clone();
                let mut msg = email("a@example.org", &format!("Copy {i}"));
                msg.message_id = first.message_id.clone();
                tokio::spawn(async move { outbox.write(&msg.message_id, &msg.raw).await })
            })
            .collect();
        let mut wrote = 0;
        for w in writers {
            let (_, this_wrote) = w.await.unwrap().unwrap();
            wrote += usize::from(this_wrote);
        }
        assert_eq!(wrote, 1, "exactly one writer wrote the message");
        let names: Vec<_> = std::fs::read_dir(outbox.dir()).unwrap().collect();
        assert_eq!(names.len(), 1, "one file, no temp file");
        let list = outbox.list(10).await.unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].subject.starts_with("Copy "), "{:?}", list[0]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_re_send_answers_with_the_same_file_and_writes_nothing() {
        let dir = tempdir("again");
        let outbox = Outbox::in_data_dir(&dir);
        let msg = email("a@example.org", "Invitation");
        let (file, wrote) = outbox.write(&msg.message_id, &msg.raw).await.unwrap();
        assert!(wrote);
        let before = std::fs::metadata(outbox.dir().join(&file)).unwrap();
        let (again, wrote_again) = outbox.write(&msg.message_id, b"other bytes").await.unwrap();
        assert_eq!(again, file);
        assert!(!wrote_again);
        let after = std::fs::metadata(outbox.dir().join(&file)).unwrap();
        assert_eq!(before.modified().unwrap(), after.modified().unwrap());
        assert_eq!(outbox.read(&file).await.unwrap(), msg.raw);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
