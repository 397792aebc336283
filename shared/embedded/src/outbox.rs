//! The local mailer: every message is written, byte for byte, as an `.eml` file a person can
//! open in any mail client.
//!
//! Layout: `<data_dir>/outbox/<shard>/m<message-id>.eml`, where `<message-id>` is the
//! message's `Message-ID` with every character outside `[A-Za-z0-9._-]` replaced by `_`, and
//! `<shard>` is one of [`SHARDS`] subdirectories (`00` … `3f`) chosen by a fixed hash of that
//! file name ([`shard_of`]), so a Message-ID always lands in the same place. Files of the
//! earlier flat layout (`<data_dir>/outbox/m<message-id>.eml`) are still listed and read, and
//! a Message-ID found there is not written again.
//!
//! Why shards: with one flat directory every message's inode is allocated in that
//! directory's block group, next to the inodes of the last outbox removed. On ext4 without a
//! journal the allocator skips inodes freed in the last minutes by checking them one by one
//! (`recently_deleted`: 79% of the samples of a file-creation micro-benchmark, which wrote
//! 18,000 or under 1,000 files/s depending on what had been deleted before). The outbox
//! directory is marked `FS_TOPDIR_FL` (best effort; ignored where inode flags do not exist),
//! which makes ext4 spread its subdirectories, and so the messages' inodes, over block groups
//! with free room. That helps only where those groups hold no freshly freed inodes: it does
//! not remove the scan (see the README's "Performance").
//!
//! **One file per Message-ID, written once.** A file appears whole or not at all, and a
//! second send of the same Message-ID writes nothing: delivery gives each invitation a
//! Message-ID derived from it, so an email re-sent after a crash (sent, then killed before
//! its outcome was written) does not land twice. On Linux the bytes go to an anonymous
//! `O_TMPFILE` that is then linked under its name (one directory operation; the link fails
//! if the name exists); elsewhere to a `.tmp-…` file hard-linked under its name and removed.
//! A crash leaves at most a stray temp file that [`Outbox::list`] ignores. Directories are
//! created when a write finds them missing, not checked on every write.
//!
//! [`Outbox::list`] reads the newest files' (by modification time) headers (To, Subject,
//! Date) for `GET /dev/outbox`, from every shard;
//! [`Outbox::read`] returns one file's bytes, accepting only a plain file name of the outbox
//! ([`is_outbox_file_name`]) and finding its shard itself, so no path can reach outside it.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use portal_core::ports::{MailError, Mailer, RawEmail, SentMessage};
use serde::Serialize;

/// The outbox directory inside a data dir.
pub const OUTBOX_DIR: &str = "outbox";

/// How many shard subdirectories the outbox spreads its messages over (`00` … `3f`).
pub const SHARDS: u32 = 64;

/// The shard subdirectory of a message file name: FNV-1a of the name, modulo [`SHARDS`], as
/// two lowercase hex digits. Fixed forever: a Message-ID must always map to the same file.
pub fn shard_of(file: &str) -> String {
    let hash = file.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{:02x}", hash % SHARDS)
}

/// A shard subdirectory's name: two lowercase hex digits below [`SHARDS`].
fn is_shard_name(name: &str) -> bool {
    name.len() == 2
        && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && u32::from_str_radix(name, 16).is_ok_and(|n| n < SHARDS)
}

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
    /// Whether the outbox holds files of the flat layout (checked once, on the first write):
    /// a Message-ID found there is not written again.
    legacy: std::sync::Arc<std::sync::OnceLock<bool>>,
}

impl Outbox {
    /// The outbox of a data dir (`<data_dir>/outbox`); created on first send.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(OUTBOX_DIR),
            legacy: Default::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a message file name lives: `<outbox>/<shard>/<file>` (the name unchecked).
    pub fn path_of(&self, file: &str) -> PathBuf {
        self.dir.join(shard_of(file)).join(file)
    }

    /// Writes `raw` as `<shard>/m<message-id>.eml`, atomically, unless a message with that
    /// id is already there. Returns the file name and whether this call wrote it.
    pub async fn write(&self, message_id: &str, raw: &[u8]) -> Result<(String, bool), OutboxError> {
        let name = file_name(message_id);
        let outbox = self.clone();
        let raw = raw.to_vec();
        let file = name.clone();
        let wrote = tokio::task::spawn_blocking(move || outbox.write_blocking(&file, &raw))
            .await
            .map_err(|e| OutboxError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(e),
            })??;
        Ok((name, wrote))
    }

    fn write_blocking(&self, name: &str, raw: &[u8]) -> Result<bool, OutboxError> {
        let has_legacy = *self.legacy.get_or_init(|| has_flat_messages(&self.dir));
        if has_legacy && self.dir.join(name).exists() {
            return Ok(false);
        }
        let shard = self.dir.join(shard_of(name));
        match write_once(&shard, name, raw) {
            Err(OutboxError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                create_shard(&self.dir, &shard)?;
                write_once(&shard, name, raw)
            }
            other => other,
        }
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

    /// The exact bytes of one message, from its shard (or the flat layout's place).
    pub async fn read(&self, file: &str) -> Result<Vec<u8>, OutboxError> {
        if !is_outbox_file_name(file) {
            return Err(OutboxError::InvalidName(file.chars().take(200).collect()));
        }
        for path in [self.path_of(file), self.dir.join(file)] {
            match tokio::fs::read(&path).await {
                Ok(b) => return Ok(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(OutboxError::Io { path, source }),
            }
        }
        Err(OutboxError::NotFound(file.to_owned()))
    }
}

/// The file name of a Message-ID: `m<id>.eml`, every character outside `[A-Za-z0-9._-]` as
/// `_`. Never a hidden name, never `..`: what [`is_outbox_file_name`] accepts.
fn file_name(message_id: &str) -> String {
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
    format!("m{}.eml", safe_id.replace("..", "_."))
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

/// Whether `dir` holds any message file directly (the flat layout); `false` when missing.
fn has_flat_messages(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_str().is_some_and(is_outbox_file_name)),
        Err(_) => false,
    }
}

/// Creates the outbox (marked as a top of directory hierarchy, best effort) and one shard.
fn create_shard(outbox: &Path, shard: &Path) -> Result<(), OutboxError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| OutboxError::Io { path, source }
    };
    std::fs::create_dir_all(outbox).map_err(io(outbox))?;
    #[cfg(target_os = "linux")]
    linux::mark_topdir(outbox);
    match std::fs::create_dir(shard) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(io(shard)(e)),
        _ => Ok(()),
    }
}

/// Writes `raw` under `dir/name` unless that name exists; `true` when written. An `Io` error
/// with `NotFound` when `dir` does not exist.
fn write_once(dir: &Path, name: &str, raw: &[u8]) -> Result<bool, OutboxError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| OutboxError::Io { path, source }
    };
    let path = dir.join(name);
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

    use rustix::fs::{
        ioctl_getflags, ioctl_setflags, linkat, open, openat, AtFlags, IFlags, Mode, OFlags, CWD,
    };
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

    /// Sets `FS_TOPDIR_FL` on `dir` so ext4's Orlov allocator spreads its subdirectories
    /// over block groups. Best effort: a file system without inode flags keeps its default.
    pub(super) fn mark_topdir(dir: &Path) {
        let marked = open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|fd| {
            let flags = ioctl_getflags(&fd)?;
            if flags.contains(IFlags::TOPDIR) {
                return Ok(());
            }
            ioctl_setflags(&fd, flags | IFlags::TOPDIR)
        });
        if let Err(e) = marked {
            tracing::debug!(dir = %dir.display(), error = %e, "outbox not marked as a top directory");
        }
    }
}

fn list_blocking(dir: &Path, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| OutboxError::Io { path, source }
    };
    // (modified, name, path) of every message, in every shard and the flat layout.
    let mut found: Vec<(std::time::SystemTime, String, PathBuf)> = Vec::new();
    let top = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut shards = Vec::new();
    for e in top.filter_map(|e| e.ok()) {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if is_shard_name(&name) && e.file_type().is_ok_and(|t| t.is_dir()) {
            shards.push(e.path());
        } else if is_outbox_file_name(&name) {
            if let Some(modified) = e.metadata().ok().and_then(|m| m.modified().ok()) {
                found.push((modified, name, e.path()));
            }
        }
    }
    for shard in shards {
        let rd = match std::fs::read_dir(&shard) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&shard)(e)),
        };
        found.extend(rd.filter_map(|e| e.ok()).filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !is_outbox_file_name(&name) {
                return None;
            }
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((modified, name, e.path()))
        }));
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.truncate(limit);
    let mut out = Vec::with_capacity(found.len());
    for (_, file, path) in found {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            // Removed between listing and reading: skip it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
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

    /// Every file under `dir`, recursively.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
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
        // No temp file is left behind; each message is in its shard.
        assert_eq!(files_under(outbox.dir()).len(), 2);
        assert!(outbox.path_of(&list[1].file).is_file());
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
        assert_eq!(
            files_under(outbox.dir()).len(),
            1,
            "no temp file left behind"
        );
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
            "00",
            "../outbox/00/x.eml",
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

    #[test]
    fn a_message_id_always_maps_to_the_same_shard() {
        // Fixed forever: a re-send must find the first copy (FNV-1a, modulo 64).
        assert_eq!(shard_of("mabc.eml"), "0c");
        assert_eq!(
            shard_of("m0123456789abcdef0123456789abcdef_portal.example.eml"),
            "1b"
        );
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..10_000u64 {
            let shard = shard_of(&format!("m{:032x}_x.eml", i.wrapping_mul(2_654_435_761)));
            assert!(is_shard_name(&shard), "{shard}");
            seen.insert(shard);
        }
        assert_eq!(seen.len(), SHARDS as usize, "every shard is used");
        assert!(!is_shard_name("40") && !is_shard_name("0A") && !is_shard_name("000"));
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
        assert_eq!(files_under(outbox.dir()).len(), 1, "one file, no temp file");
        let list = outbox.list(10).await.unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].subject.starts_with("Copy "), "{:?}", list[0]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn listing_and_reading_find_messages_in_every_shard_and_the_flat_layout() {
        let dir = tempdir("shards");
        let outbox = Outbox::in_data_dir(&dir);
        // A message of the flat layout, written before shards existed.
        let old = email("old@example.org", "Flat");
        let old_file = file_name(&old.message_id);
        std::fs::create_dir_all(outbox.dir()).unwrap();
        std::fs::write(outbox.dir().join(&old_file), &old.raw).unwrap();
        let mut shards = std::collections::BTreeSet::new();
        let mut sent = 0;
        while shards.len() < 3 {
            let msg = email(&format!("r{sent}@example.org"), "Sharded");
            let (file, wrote) = outbox.write(&msg.message_id, &msg.raw).await.unwrap();
            assert!(wrote);
            shards.insert(shard_of(&file));
            assert_eq!(outbox.read(&file).await.unwrap(), msg.raw);
            sent += 1;
        }
        let list = outbox.list(1_000).await.unwrap();
        assert_eq!(list.len(), sent + 1, "{list:?}");
        assert!(list
            .iter()
            .any(|e| e.file == old_file && e.to == "old@example.org"));
        assert_eq!(outbox.read(&old_file).await.unwrap(), old.raw);
        // Stray files in the outbox or a shard are not messages.
        std::fs::write(outbox.dir().join("notes.txt"), "x").unwrap();
        let shard = shards.first().unwrap();
        std::fs::write(outbox.dir().join(shard).join(".tmp-x.eml-1"), "x").unwrap();
        std::fs::create_dir(outbox.dir().join("zz")).unwrap();
        std::fs::write(outbox.dir().join("zz").join("m-other.eml"), "x").unwrap();
        assert_eq!(outbox.list(1_000).await.unwrap().len(), sent + 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_message_id_of_the_flat_layout_is_not_written_again() {
        let dir = tempdir("legacy");
        let outbox = Outbox::in_data_dir(&dir);
        let msg = email("a@example.org", "Invitation");
        let file = file_name(&msg.message_id);
        std::fs::create_dir_all(outbox.dir()).unwrap();
        std::fs::write(outbox.dir().join(&file), &msg.raw).unwrap();
        let (again, wrote) = outbox.write(&msg.message_id, &msg.raw).await.unwrap();
        assert_eq!(again, file);
        assert!(!wrote, "already in the outbox (flat layout)");
        assert_eq!(files_under(outbox.dir()).len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
