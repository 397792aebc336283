//! The local mailer: every message is kept, byte for byte, in an append-only log under the
//! data dir, and served one by one as `.eml` by `GET /dev/outbox/{file}`.
//!
//! Layout: `<data_dir>/outbox/segment-NNNNNN.log`, records appended one after another; a
//! segment is rolled (the next number begins) once it holds [`ROLL_AT`] bytes, so a segment
//! stays near 64 MiB. Each message has a *file name*, `m<message-id>.eml`, where
//! `<message-id>` is its `Message-ID` with every character outside `[A-Za-z0-9._-]` replaced
//! by `_`: what `GET /dev/outbox` lists and `GET /dev/outbox/{file}` takes.
//!
//! A record is `"OBX1"`, a CRC-32 of everything after it, the lengths of the name, the
//! Message-ID and the message (u16, u16, u32, little-endian), then those three. It is written
//! with one `pwrite` at the segment's end.
//!
//! **One message per Message-ID, written once.** Delivery gives each invitation a Message-ID
//! derived from it, so an email re-sent after a crash (sent, then killed before its outcome
//! was written) must not land twice. An in-memory index (file name → record) answers that; it
//! is rebuilt at open by scanning the segments, and every operation first reads what other
//! processes appended since (a `portal-invites send` beside a running `serve`). Appends are
//! serialized by a mutex in the process and, on Linux, an exclusive `flock` on `outbox/.lock`
//! across processes; the appender checks the index under both, so of concurrent sends of one
//! Message-ID exactly one writes. Every `Outbox` of one directory in a process shares one
//! index.
//!
//! **Crash safety.** A crash while appending leaves at most a torn last record: a short
//! record or one whose checksum fails. Readers stop before it; the next appender (holding the
//! lock, so no one is still writing it) truncates it away and appends in its place. As
//! before, nothing is `fsync`ed: this is the developer's outbox, and a re-send after a power
//! loss lands once too.
//!
//! **Why a log, not a file per message** (as until 2026-12-01): creating an inode per email
//! capped the send. On an ext4 file system without a journal (the benchmark machine) every
//! inode allocation first skips, one by one, the inodes freed in the last minutes, so the rate
//! followed earlier deletions (2,100–2,600 files/s after deleting many); a table in the
//! store's SQLite shared its page cache and raised peak RSS to 57–75 MiB (README,
//! "Performance"). An append costs a `pwrite`, and the index about 40 bytes per message.
//!
//! **Older outboxes.** `.eml` files an earlier version wrote in the directory stay readable
//! where they are: they are listed (by modification time, after every logged message) and
//! read by name, and a Message-ID among them is not written again.
//!
//! [`Outbox::list`] reads the newest messages' headers (To, Subject, Date) for
//! `GET /dev/outbox`; [`Outbox::read`] returns one message's bytes, accepting only a plain
//! file name ([`is_outbox_file_name`]) so no path can reach outside the outbox.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::hash::{Hash as _, Hasher as _};
use std::io::{BufReader, ErrorKind, Seek as _, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::SystemTime;

use async_trait::async_trait;
use portal_core::ports::{MailError, Mailer, RawEmail, SentMessage};
use serde::Serialize;

/// The outbox directory inside a data dir.
pub const OUTBOX_DIR: &str = "outbox";

/// A segment takes no more records once it holds this many bytes (it ends with the record
/// that crossed it), keeping each segment about 64 MiB.
pub const ROLL_AT: u64 = 63 << 20;

/// The file every appending process locks (Linux) while it appends.
const LOCK_FILE: &str = ".lock";
const MAGIC: [u8; 4] = *b"OBX1";
/// Magic, CRC-32, name length (u16), Message-ID length (u16), message length (u32).
const HEADER: usize = 16;
/// The largest message a record takes (a record's length must fit a `u32`).
const MAX_MESSAGE: usize = 1 << 30;

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

/// Appends messages to the outbox log and lists and reads them back. Clones, and every
/// `Outbox` of the same directory in the process, share one index.
#[derive(Clone)]
pub struct Outbox {
    dir: PathBuf,
    log: Arc<Log>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("dir", &self.dir).finish()
    }
}

impl Outbox {
    /// The outbox of a data dir (`<data_dir>/outbox`); created on first send, scanned on
    /// first use.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join(OUTBOX_DIR);
        let log = shared_log(&dir);
        Self { dir, log }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `raw` under the file name of `message_id`, unless a message with that name is
    /// already there. Returns the file name and whether this call wrote it.
    ///
    /// The append runs on the calling task, not on the blocking pool: it is one `pwrite` of a
    /// few kilobytes into the page cache under a briefly held lock, cheaper than the hand-off
    /// to another thread and back, which cost about a fifth of the send on the 100,000-contact
    /// benchmark.
    pub async fn write(&self, message_id: &str, raw: &[u8]) -> Result<(String, bool), OutboxError> {
        let name = file_name(message_id);
        let wrote = self.log.append(&name, message_id, raw)?;
        Ok((name, wrote))
    }

    /// The newest `limit` messages, newest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let log = self.log.clone();
        self.blocking(move || log.list(limit)).await
    }

    /// The exact bytes of one message.
    pub async fn read(&self, file: &str) -> Result<Vec<u8>, OutboxError> {
        if !is_outbox_file_name(file) {
            return Err(OutboxError::InvalidName(file.chars().take(200).collect()));
        }
        let log = self.log.clone();
        let file = file.to_owned();
        self.blocking(move || log.read(&file)).await
    }

    /// Every message, oldest first, as (file name, bytes): for tests and tools that look at
    /// all of the mail, possibly while another process sends. Blocks on file I/O.
    pub fn all_messages(&self) -> Result<Vec<(String, Vec<u8>)>, OutboxError> {
        self.log.all()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| OutboxError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })?
    }
}

/// The file name of a Message-ID: `m<id>.eml`, the id's first 128 characters with every
/// character outside `[A-Za-z0-9._-]` as `_`, never hidden, never `..`.
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

/// The one [`Log`] of `dir` in this process, so that every `Outbox` (the mailer and the dev
/// routes of `serve` are two) shares one index and one append mutex.
fn shared_log(dir: &Path) -> Arc<Log> {
    static LOGS: OnceLock<Mutex<HashMap<PathBuf, Weak<Log>>>> = OnceLock::new();
    let mut logs = LOGS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(log) = logs.get(dir).and_then(Weak::upgrade) {
        return log;
    }
    logs.retain(|_, log| log.strong_count() > 0);
    let log = Arc::new(Log {
        dir: dir.to_owned(),
        state: Mutex::default(),
    });
    logs.insert(dir.to_owned(), Arc::downgrade(&log));
    log
}

/// Where a record is: segment (index into [`State::segments`]), offset, whole length.
#[derive(Debug, Clone, Copy)]
struct Loc {
    seg: u32,
    len: u32,
    off: u64,
}

struct Segment {
    number: u32,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes up to here are whole records, indexed.
    scanned: u64,
}

/// A message where an earlier version left it: `<name>`, a file of its own.
enum Found {
    Log(Loc),
    Legacy,
}

#[derive(Default)]
struct State {
    loaded: bool,
    segments: Vec<Segment>,
    /// Every record, in append order.
    order: Vec<Loc>,
    /// Hash of the file name → position in `order`; a hit is confirmed against the record.
    by_hash: HashMap<u64, u32>,
    /// Names whose hash was already taken by another name (rare).
    collided: HashMap<Box<str>, u32>,
    /// An earlier version's `.eml` files, oldest first by modification time.
    legacy: Vec<(SystemTime, String)>,
    legacy_names: HashSet<String>,
    lock: Option<Arc<File>>,
}

struct Log {
    dir: PathBuf,
    state: Mutex<State>,
}

struct Record {
    name: String,
    body: Vec<u8>,
}

fn name_hash(name: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

/// The lengths in a header, and its checksum, unless it is not a record header.
fn parse_header(h: &[u8; HEADER]) -> Option<(u32, usize, usize, usize)> {
    if h[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let name = usize::from(u16::from_le_bytes([h[8], h[9]]));
    let id = usize::from(u16::from_le_bytes([h[10], h[11]]));
    let body = u32::from_le_bytes([h[12], h[13], h[14], h[15]]) as usize;
    (body <= MAX_MESSAGE).then_some((crc, name, id, body))
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[8..HEADER]);
    crc.update(payload);
    crc.finalize()
}

fn encode(name: &str, message_id: &str, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    // The Message-ID is kept for whoever reads the segments by hand; cut if absurdly long.
    let id = &message_id.as_bytes()[..message_id.len().min(1024)];
    let name_len = u16::try_from(name.len()).map_err(std::io::Error::other)?;
    if raw.len() > MAX_MESSAGE {
        return Err(std::io::Error::new(
            ErrorKind::InvalidInput,
            "message larger than the outbox takes (1 GiB)",
        ));
    }
    let mut rec = Vec::with_capacity(HEADER + name.len() + id.len() + raw.len());
    rec.extend_from_slice(&MAGIC);
    rec.extend_from_slice(&[0; 4]);
    rec.extend_from_slice(&name_len.to_le_bytes());
    rec.extend_from_slice(&(id.len() as u16).to_le_bytes());
    rec.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    rec.extend_from_slice(name.as_bytes());
    rec.extend_from_slice(id);
    rec.extend_from_slice(raw);
    let crc = checksum(&rec[..HEADER], &rec[HEADER..]);
    rec[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(rec)
}

/// One whole record's name and message, or `None` when the bytes are not one.
fn decode(rec: &[u8]) -> Option<Record> {
    let header: &[u8; HEADER] = rec.get(..HEADER)?.try_into().ok()?;
    let (crc, name, id, body) = parse_header(header)?;
    let payload = &rec[HEADER..];
    if payload.len() != name + id + body || checksum(header, payload) != crc {
        return None;
    }
    Some(Record {
        name: String::from_utf8(payload[..name].to_vec()).ok()?,
        body: payload[name + id..].to_vec(),
    })
}

fn read_record(seg: &Segment, loc: Loc) -> Result<Record, OutboxError> {
    let mut buf = vec![0; loc.len as usize];
    seg.file
        .read_exact_at(&mut buf, loc.off)
        .and_then(|()| {
            decode(&buf).ok_or_else(|| {
                std::io::Error::new(
                    ErrorKind::InvalidData,
                    "an outbox record fails its checksum",
                )
            })
        })
        .map_err(|source| OutboxError::Io {
            path: seg.path.clone(),
            source,
        })
}

fn segment_name(number: u32) -> String {
    format!("segment-{number:06}.log")
}

fn segment_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".log")?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()
}

/// Opens segment `number` for reading and appending; `None` when it does not exist and
/// `create` is false.
fn open_segment(dir: &Path, number: u32, create: bool) -> Result<Option<Segment>, OutboxError> {
    let path = dir.join(segment_name(number));
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(&path)
    {
        Ok(file) => Ok(Some(Segment {
            number,
            path,
            file: Arc::new(file),
            scanned: 0,
        })),
        Err(e) if e.kind() == ErrorKind::NotFound && !create => Ok(None),
        Err(source) => Err(OutboxError::Io { path, source }),
    }
}

/// Holds the cross-process append lock until dropped (Linux; elsewhere only the in-process
/// mutex serializes appends, so one process should send into an outbox at a time).
struct AppendLock(#[allow(dead_code)] Arc<File>);

impl AppendLock {
    fn take(file: Arc<File>) -> std::io::Result<Self> {
        #[cfg(target_os = "linux")]
        rustix::fs::flock(&*file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(Self(file))
    }
}

impl Drop for AppendLock {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Err(e) = rustix::fs::flock(&*self.0, rustix::fs::FlockOperation::Unlock) {
            // Closing the lock file (at exit) releases it anyway.
            tracing::warn!(error = %e, "could not release the outbox append lock");
        }
    }
}

impl Log {
    fn io(&self) -> impl Fn(std::io::Error) -> OutboxError + '_ {
        |source| OutboxError::Io {
            path: self.dir.clone(),
            source,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic mid-operation leaves at most an unindexed tail, which the next catch-up reads.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends the record unless `name` is in the outbox; `true` when written.
    fn append(&self, name: &str, message_id: &str, raw: &[u8]) -> Result<bool, OutboxError> {
        let record = encode(name, message_id, raw).map_err(self.io())?;
        let mut st = self.state();
        let lock_file = match &st.lock {
            Some(f) => f.clone(),
            None => {
                std::fs::create_dir_all(&self.dir).map_err(self.io())?;
                let path = self.dir.join(LOCK_FILE);
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(|source| OutboxError::Io { path, source })?;
                st.lock.insert(Arc::new(f)).clone()
            }
        };
        let _lock = AppendLock::take(lock_file).map_err(self.io())?;
        st.catch_up(&self.dir, true)?;
        if st.find(name)?.is_some() {
            return Ok(false);
        }
        if st.segments.last().is_none_or(|s| s.scanned >= ROLL_AT) {
            let next = st.segments.last().map_or(1, |s| s.number + 1);
            if let Some(seg) = open_segment(&self.dir, next, true)? {
                tracing::debug!(segment = %seg.path.display(), "outbox segment started");
                st.segments.push(seg);
            }
        }
        let seg_index = st.segments.len() - 1;
        let seg = &mut st.segments[seg_index];
        seg.file
            .write_all_at(&record, seg.scanned)
            .map_err(|source| OutboxError::Io {
                path: seg.path.clone(),
                source,
            })?;
        let loc = Loc {
            seg: seg_index as u32,
            len: record.len() as u32,
            off: seg.scanned,
        };
        seg.scanned += record.len() as u64;
        st.insert(name, loc);
        Ok(true)
    }

    fn list(&self, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let mut st = self.state();
        st.catch_up(&self.dir, false)?;
        let mut out = Vec::with_capacity(limit.min(st.order.len() + st.legacy.len()));
        for loc in st.order.iter().rev().take(limit) {
            let rec = read_record(&st.segments[loc.seg as usize], *loc)?;
            out.push(entry(rec.name, &rec.body));
        }
        let rest = limit - out.len();
        let legacy: Vec<String> = st
            .legacy
            .iter()
            .rev()
            .take(rest)
            .map(|(_, n)| n.clone())
            .collect();
        drop(st);
        for name in legacy {
            if let Some(bytes) = self.read_legacy(&name)? {
                out.push(entry(name, &bytes));
            }
        }
        Ok(out)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, OutboxError> {
        let mut st = self.state();
        st.catch_up(&self.dir, false)?;
        match st.find(name)? {
            Some(Found::Log(loc)) => Ok(read_record(&st.segments[loc.seg as usize], loc)?.body),
            Some(Found::Legacy) => {
                drop(st);
                self.read_legacy(name)?
                    .ok_or_else(|| OutboxError::NotFound(name.to_owned()))
            }
            None => Err(OutboxError::NotFound(name.to_owned())),
        }
    }

    fn all(&self) -> Result<Vec<(String, Vec<u8>)>, OutboxError> {
        let mut st = self.state();
        st.catch_up(&self.dir, false)?;
        let legacy: Vec<String> = st.legacy.iter().map(|(_, n)| n.clone()).collect();
        let mut out = Vec::with_capacity(st.order.len() + legacy.len());
        for name in legacy {
            if let Some(bytes) = self.read_legacy(&name)? {
                out.push((name, bytes));
            }
        }
        for loc in &st.order {
            let rec = read_record(&st.segments[loc.seg as usize], *loc)?;
            out.push((rec.name, rec.body));
        }
        Ok(out)
    }

    /// An earlier version's `.eml` file; `None` if it was removed since.
    fn read_legacy(&self, name: &str) -> Result<Option<Vec<u8>>, OutboxError> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(OutboxError::Io { path, source }),
        }
    }
}

impl State {
    /// Indexes what was appended since the last call (by any process). `exclusive`: the
    /// caller holds the append lock, so a record that is short or fails its checksum is torn
    /// (its writer died) and is cut off; without the lock it may still be being written, and
    /// reading stops before it.
    fn catch_up(&mut self, dir: &Path, exclusive: bool) -> Result<(), OutboxError> {
        if !self.loaded {
            self.load(dir)?;
            for i in 0..self.segments.len().saturating_sub(1) {
                self.scan(i, exclusive)?;
            }
        }
        loop {
            if let Some(last) = self.segments.len().checked_sub(1) {
                self.scan(last, exclusive)?;
                if self.segments[last].scanned < ROLL_AT {
                    return Ok(());
                }
            }
            // The last segment is full (or there is none yet): another process may have
            // begun the next.
            let next = self.segments.last().map_or(1, |s| s.number + 1);
            match open_segment(dir, next, false)? {
                Some(seg) => self.segments.push(seg),
                None => return Ok(()),
            }
        }
    }

    /// Finds the segments and an earlier version's `.eml` files.
    fn load(&mut self, dir: &Path) -> Result<(), OutboxError> {
        let io = |source| OutboxError::Io {
            path: dir.to_owned(),
            source,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.loaded = true;
                return Ok(());
            }
            Err(e) => return Err(io(e)),
        };
        let mut numbers = Vec::new();
        for e in entries {
            let e = e.map_err(io)?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if let Some(n) = segment_number(&name) {
                numbers.push(n);
            } else if is_outbox_file_name(&name) {
                // Removed meanwhile, or unreadable metadata: listed last.
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                self.legacy_names.insert(name.clone());
                self.legacy.push((modified, name));
            }
        }
        self.legacy.sort_unstable();
        if !self.legacy.is_empty() {
            tracing::info!(
                files = self.legacy.len(),
                dir = %dir.display(),
                "outbox: reading an earlier version's .eml files in place"
            );
        }
        numbers.sort_unstable();
        for n in numbers {
            if let Some(seg) = open_segment(dir, n, false)? {
                self.segments.push(seg);
            }
        }
        self.loaded = true;
        Ok(())
    }

    /// Indexes segment `i` from where its scan stopped to its end.
    fn scan(&mut self, i: usize, exclusive: bool) -> Result<(), OutboxError> {
        let (file, path, start) = {
            let seg = &self.segments[i];
            (seg.file.clone(), seg.path.clone(), seg.scanned)
        };
        let io = |source| OutboxError::Io {
            path: path.clone(),
            source,
        };
        let len = file.metadata().map_err(io)?.len();
        if len <= start {
            return Ok(());
        }
        let mut reader = BufReader::with_capacity(256 << 10, &*file);
        reader.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut pos = start;
        let mut payload = Vec::new();
        let whole = loop {
            if pos == len {
                break true;
            }
            let mut header = [0; HEADER];
            if len - pos < HEADER as u64 || !read_all(&mut reader, &mut header).map_err(io)? {
                break false;
            }
            let Some((crc, name, id, body)) = parse_header(&header) else {
                break false;
            };
            let total = (HEADER + name + id + body) as u64;
            if len - pos < total {
                break false;
            }
            payload.resize(name + id + body, 0);
            if !read_all(&mut reader, &mut payload).map_err(io)?
                || checksum(&header, &payload) != crc
            {
                break false;
            }
            let Ok(name) = std::str::from_utf8(&payload[..name]) else {
                break false;
            };
            let loc = Loc {
                seg: i as u32,
                len: total as u32,
                off: pos,
            };
            self.insert(name, loc);
            pos += total;
        };
        self.segments[i].scanned = pos;
        if !whole {
            if exclusive {
                tracing::warn!(
                    segment = %path.display(),
                    offset = pos,
                    bytes = len - pos,
                    "outbox: cutting off a torn last record (a crash while appending)"
                );
                file.set_len(pos).map_err(io)?;
            } else {
                tracing::debug!(
                    segment = %path.display(),
                    offset = pos,
                    "outbox: stopped before a record still being written (or torn)"
                );
            }
        }
        Ok(())
    }

    fn insert(&mut self, name: &str, loc: Loc) {
        let i = self.order.len() as u32;
        self.order.push(loc);
        match self.by_hash.entry(name_hash(name)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(i);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(name.into(), i);
            }
        }
    }

    fn find(&self, name: &str) -> Result<Option<Found>, OutboxError> {
        if let Some(&i) = self.by_hash.get(&name_hash(name)) {
            let loc = self.order[i as usize];
            if read_record(&self.segments[loc.seg as usize], loc)?.name == name {
                return Ok(Some(Found::Log(loc)));
            }
        }
        if let Some(&i) = self.collided.get(name) {
            return Ok(Some(Found::Log(self.order[i as usize])));
        }
        Ok(self.legacy_names.contains(name).then_some(Found::Legacy))
    }
}

/// Fills `buf`; `false` when the file ended first.
fn read_all(reader: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
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

    /// The outbox directory's file names, sorted.
    fn files(outbox: &Outbox) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(outbox.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_sent_message_is_kept_byte_for_byte_and_listed_newest_first() {
        let dir = tempdir("list");
        let outbox = Outbox::in_data_dir(&dir);
        assert!(outbox.list(10).await.unwrap().is_empty(), "no outbox yet");
        assert!(!outbox.dir().exists(), "reading creates nothing");
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
        assert_eq!(list[1].file, file_name(&first.message_id));
        assert_eq!(outbox.read(&list[1].file).await.unwrap(), first.raw);
        assert_eq!(outbox.read(&list[0].file).await.unwrap(), second.raw);
        assert_eq!(outbox.list(1).await.unwrap().len(), 1);
        assert_eq!(files(&outbox), [".lock", "segment-000001.log"]);
        let all = outbox.all_messages().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].1, first.raw, "oldest first");
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
        let size = std::fs::metadata(outbox.dir().join(segment_name(1)))
            .unwrap()
            .len();
        outbox.send_raw(&again).await.unwrap();
        let list = outbox.list(10).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].subject, "Invitation");
        assert_eq!(outbox.read(&list[0].file).await.unwrap(), first.raw);
        let after = std::fs::metadata(outbox.dir().join(segment_name(1)))
            .unwrap()
            .len();
        assert_eq!(size, after, "nothing appended");
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
            "segment-000001.log",
            ".lock",
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
    async fn concurrent_sends_of_one_message_id_write_one_message() {
        let dir = tempdir("race");
        let outbox = Outbox::in_data_dir(&dir);
        let first = email("a@example.org", "Invitation");
        let writers: Vec<_> = (0..16)
            .map(|i| {
                // A separate `Outbox` per writer, as the mailer and the dev routes are.
                let outbox = Outbox::in_data_dir(&dir);
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
        let list = outbox.list(10).await.unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].subject.starts_with("Copy "), "{:?}", list[0]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_sends_of_many_messages_all_land_whole_while_read() {
        let dir = tempdir("many");
        let outbox = Outbox::in_data_dir(&dir);
        let writers: Vec<_> = (0..400)
            .map(|i| {
                let outbox = outbox.clone();
                let msg = email(&format!("c{i}@example.org"), &format!("Invitation {i}"));
                tokio::spawn(async move {
                    outbox.send_raw(&msg).await.unwrap();
                    msg
                })
            })
            .collect();
        // A reader meanwhile, as the dev routes may be.
        let reader = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    for e in outbox.list(50).await.unwrap() {
                        outbox.read(&e.file).await.unwrap();
                    }
                }
            })
        };
        let mut sent = Vec::new();
        for w in writers {
            sent.push(w.await.unwrap());
        }
        reader.await.unwrap();
        assert_eq!(outbox.list(1000).await.unwrap().len(), 400);
        for msg in &sent {
            let got = outbox.read(&file_name(&msg.message_id)).await.unwrap();
            assert_eq!(got, msg.raw);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_re_send_answers_with_the_same_file_and_writes_nothing() {
        let dir = tempdir("again");
        let outbox = Outbox::in_data_dir(&dir);
        let msg = email("a@example.org", "Invitation");
        let (file, wrote) = outbox.write(&msg.message_id, &msg.raw).await.unwrap();
        assert!(wrote);
        let (again, wrote_again) = outbox.write(&msg.message_id, b"other bytes").await.unwrap();
        assert_eq!(again, file);
        assert!(!wrote_again);
        assert_eq!(outbox.read(&file).await.unwrap(), msg.raw);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn reopening_rebuilds_the_index_from_the_segments() {
        let dir = tempdir("reopen");
        let outbox = Outbox::in_data_dir(&dir);
        let a = email("a@example.org", "A");
        let b = email("b@example.org", "B");
        outbox.send_raw(&a).await.unwrap();
        outbox.send_raw(&b).await.unwrap();
        drop(outbox);

        let outbox = Outbox::in_data_dir(&dir);
        let list = outbox.list(10).await.unwrap();
        assert_eq!(
            list.iter().map(|e| e.subject.as_str()).collect::<Vec<_>>(),
            ["B", "A"]
        );
        assert_eq!(outbox.read(&file_name(&a.message_id)).await.unwrap(), a.raw);
        let (_, wrote) = outbox.write(&a.message_id, b"again").await.unwrap();
        assert!(!wrote, "the rebuilt index knows the Message-ID");
        let c = email("c@example.org", "C");
        outbox.send_raw(&c).await.unwrap();
        assert_eq!(outbox.list(10).await.unwrap()[0].subject, "C");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_torn_last_record_is_cut_off_and_the_next_append_takes_its_place() {
        let dir = tempdir("torn");
        let outbox = Outbox::in_data_dir(&dir);
        let a = email("a@example.org", "A");
        outbox.send_raw(&a).await.unwrap();
        drop(outbox);
        let segment = dir.join(OUTBOX_DIR).join(segment_name(1));
        let whole = std::fs::metadata(&segment).unwrap().len();
        // A crash halfway through appending B.
        let b = email("b@example.org", "B");
        let rec = encode(&file_name(&b.message_id), &b.message_id, &b.raw).unwrap();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes.extend_from_slice(&rec[..rec.len() / 2]);
        std::fs::write(&segment, &bytes).unwrap();

        // A reader stops before it and cuts nothing.
        let outbox = Outbox::in_data_dir(&dir);
        assert_eq!(outbox.list(10).await.unwrap().len(), 1);
        assert!(matches!(
            outbox.read(&file_name(&b.message_id)).await,
            Err(OutboxError::NotFound(_))
        ));
        assert_eq!(
            std::fs::metadata(&segment).unwrap().len(),
            bytes.len() as u64
        );

        // The re-send of B after the crash lands, once, where the torn record was.
        let (_, wrote) = outbox.write(&b.message_id, &b.raw).await.unwrap();
        assert!(wrote);
        assert_eq!(
            std::fs::metadata(&segment).unwrap().len(),
            whole + rec.len() as u64
        );
        drop(outbox);
        let outbox = Outbox::in_data_dir(&dir);
        assert_eq!(outbox.read(&file_name(&b.message_id)).await.unwrap(), b.raw);
        assert_eq!(outbox.list(10).await.unwrap().len(), 2);

        // A whole-length record whose bytes were not all written fails its checksum.
        drop(outbox);
        let c = email("c@example.org", "C");
        let mut rec = encode(&file_name(&c.message_id), &c.message_id, &c.raw).unwrap();
        let n = rec.len();
        rec[n - 10..].fill(0);
        let mut bytes = std::fs::read(&segment).unwrap();
        let before = bytes.len() as u64;
        bytes.extend_from_slice(&rec);
        std::fs::write(&segment, &bytes).unwrap();
        let outbox = Outbox::in_data_dir(&dir);
        let d = email("d@example.org", "D");
        let d_len = encode(&file_name(&d.message_id), &d.message_id, &d.raw)
            .unwrap()
            .len();
        outbox.send_raw(&d).await.unwrap();
        let list = outbox.list(10).await.unwrap();
        assert_eq!(
            list.iter().map(|e| e.subject.as_str()).collect::<Vec<_>>(),
            ["D", "B", "A"]
        );
        assert_eq!(
            std::fs::metadata(&segment).unwrap().len(),
            before + d_len as u64,
            "C's bytes were cut off"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn an_earlier_versions_eml_files_stay_readable_and_are_not_sent_again() {
        let dir = tempdir("legacy");
        let old = email("old@example.org", "Sent by an earlier version");
        let out = dir.join(OUTBOX_DIR);
        std::fs::create_dir_all(&out).unwrap();
        let old_file = file_name(&old.message_id);
        std::fs::write(out.join(&old_file), &old.raw).unwrap();

        let outbox = Outbox::in_data_dir(&dir);
        assert_eq!(outbox.read(&old_file).await.unwrap(), old.raw);
        let (file, wrote) = outbox.write(&old.message_id, &old.raw).await.unwrap();
        assert_eq!(file, old_file);
        assert!(
            !wrote,
            "a Message-ID an earlier version wrote is not written again"
        );
        let new = email("new@example.org", "New");
        outbox.send_raw(&new).await.unwrap();
        let list = outbox.list(10).await.unwrap();
        assert_eq!(
            list.iter().map(|e| e.to.as_str()).collect::<Vec<_>>(),
            ["new@example.org", "old@example.org"]
        );
        assert_eq!(outbox.all_messages().unwrap().len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn another_processs_appends_are_seen() {
        // Two logs of one directory stand for two processes: each reads what the other
        // appended, and a Message-ID the other wrote is not written again.
        let dir = tempdir("two");
        let out = dir.join(OUTBOX_DIR);
        let one = Log {
            dir: out.clone(),
            state: Mutex::default(),
        };
        let two = Log {
            dir: out,
            state: Mutex::default(),
        };
        assert!(two.list(10).unwrap().is_empty());
        let a = email("a@example.org", "A");
        assert!(one.append("ma.eml", &a.message_id, &a.raw).unwrap());
        assert_eq!(two.read("ma.eml").unwrap(), a.raw);
        assert!(!two.append("ma.eml", &a.message_id, b"again").unwrap());
        assert!(two.append("mb.eml", "b", b"B").unwrap());
        assert_eq!(one.read("mb.eml").unwrap(), b"B");
        assert_eq!(one.all().unwrap().len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_segment_rolls_over_and_every_reader_follows() {
        let dir = tempdir("roll");
        let out = dir.join(OUTBOX_DIR);
        let writer = Log {
            dir: out.clone(),
            state: Mutex::default(),
        };
        let reader = Log {
            dir: out.clone(),
            state: Mutex::default(),
        };
        assert!(
            reader.all().unwrap().is_empty(),
            "the reader starts before any segment"
        );
        let big = vec![b'x'; 1 << 20];
        let n = (ROLL_AT >> 20) as usize + 3;
        for i in 0..n {
            assert!(writer.append(&format!("m{i}.eml"), "id", &big).unwrap());
        }
        assert!(out.join(segment_name(2)).exists());
        assert!(!out.join(segment_name(3)).exists());
        assert!(std::fs::metadata(out.join(segment_name(1))).unwrap().len() < ROLL_AT + (2 << 20));
        assert_eq!(
            reader.all().unwrap().len(),
            n,
            "the reader followed into segment 2"
        );
        assert!(!reader.append("m0.eml", "id", b"again").unwrap());
        assert_eq!(reader.read(&format!("m{}.eml", n - 1)).unwrap(), big);
        let reopened = Log {
            dir: out,
            state: Mutex::default(),
        };
        assert_eq!(reopened.list(1).unwrap()[0].file, format!("m{}.eml", n - 1));
        assert_eq!(reopened.all().unwrap().len(), n);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn segment_names_round_trip_and_nothing_else_is_a_segment() {
        assert_eq!(segment_number(&segment_name(7)), Some(7));
        for other in ["segment-.log", "segment-+1.log", "segment-01.eml", "x.log"] {
            assert_eq!(segment_number(other), None, "{other}");
        }
        assert!(!is_outbox_file_name(&segment_name(1)));
    }
}
