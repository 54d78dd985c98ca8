//! Siphon's embedded call store.
//!
//! ```text
//! <root>/<bucket>/index.sqlite   one row per call: summary, streams, and the blocks holding its packets
//! <root>/<bucket>/NNNNNN.seg     append-only segments of checksummed zstd blocks of records
//! ```
//! A bucket is `YYYYMMDD` (daily, default), `YYYYMMDD/HH` (hourly) or the root itself (none),
//! chosen by the UTC start time of the call, so that a call lives in exactly one bucket.
//!
//! Promises:
//! - the index is committed only after the blocks it points to were written (and fsynced when
//!   `fsync` is on): after a crash, every indexed packet reads back, and at most what arrived
//!   since the last flush is lost;
//! - a torn segment tail is cut on the next open; a damaged block is reported, never returned;
//! - records are self-describing, so [`reindex`] rebuilds every index from the segments alone.
#![forbid(unsafe_code)]

mod checkpoint;
pub mod index;
mod ordered;
mod readpool;
pub mod recover;
mod reindex;
pub mod segment;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use index::{CallQuery, CallRow, StoredStream};
pub use ordered::{CallPackets, REORDER_WINDOW};
pub use readpool::ReadPool;
pub use reindex::{reindex, ReindexReport};
pub use segment::StoredRecord;
pub use writer::{block_compressor, StoreWriter, WriteStats, MEDIA_ZSTD_LEVEL};

/// How the store is divided into buckets by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Subdirs {
    /// One bucket: the root.
    None,
    /// One bucket a day (`YYYYMMDD`).
    #[default]
    Daily,
    /// One bucket an hour (`YYYYMMDD/HH`).
    Hourly,
}

impl std::str::FromStr for Subdirs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Subdirs::None),
            "daily" => Ok(Subdirs::Daily),
            "hourly" => Ok(Subdirs::Hourly),
            _ => Err(format!("subdirs must be none, daily or hourly, not {s:?}")),
        }
    }
}

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root directory.
    pub root: PathBuf,
    /// Bucketing.
    pub subdirs: Subdirs,
    /// Flush after this many packets...
    pub flush_count: u64,
    /// ...or this long since the last flush, whichever comes first.
    pub flush_interval: Duration,
    /// Completed Call-IDs remembered in memory so late messages rejoin their call cheaply.
    pub id_cache_size: usize,
    /// fsync segment data at every flush, before the index commit.
    pub fsync: bool,
    /// zstd level of SIP and summary blocks (media blocks use a fast negative level: audio
    /// hardly compresses).
    pub zstd_level: i32,
}

/// Default [`StoreConfig::zstd_level`]. On SIP traffic with random tags, branches and
/// Call-IDs, cut in 256 KiB blocks as the store cuts them, level 1 wrote 3 % fewer bytes than
/// level 3 and took fewer instructions (see `docs/benchmarks.md`).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

impl StoreConfig {
    /// Defaults for a store at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StoreConfig {
            root: root.into(),
            subdirs: Subdirs::Daily,
            flush_count: 100_000,
            flush_interval: Duration::from_secs(5),
            id_cache_size: 10_000,
            fsync: true,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File-system failure.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: String,
        /// What.
        source: std::io::Error,
    },
    /// SQLite failure.
    #[error("index {path}: {source}")]
    Index {
        /// Where.
        path: String,
        /// What.
        source: rusqlite::Error,
    },
    /// Damaged segment data.
    #[error("{path}: {source}")]
    Segment {
        /// Where.
        path: String,
        /// What.
        source: segment::SegmentError,
    },
    /// No store at the path.
    #[error("no store at {0} (run `siphon import` first, or pass --data)")]
    NotFound(String),
    /// Anything else.
    #[error("{0}")]
    Invalid(String),
    /// The bucket holding what was read was deleted (by retention) while it was being read.
    #[error("{0}: deleted by retention while it was read")]
    Gone(String),
}

impl StoreError {
    fn io(p: impl AsRef<Path>, e: std::io::Error) -> Self {
        StoreError::Io {
            path: p.as_ref().display().to_string(),
            source: e,
        }
    }

    fn index(p: impl AsRef<Path>, e: rusqlite::Error) -> Self {
        StoreError::Index {
            path: p.as_ref().display().to_string(),
            source: e,
        }
    }

    fn segment(p: impl AsRef<Path>, e: segment::SegmentError) -> Self {
        StoreError::Segment {
            path: p.as_ref().display().to_string(),
            source: e,
        }
    }

    /// True when retrying may help (I/O trouble such as a full disk), false for damaged data.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Io { .. } | StoreError::Index { .. })
    }

    /// `self`, or [`StoreError::Gone`] when bucket directory `dir` is no longer there: a read
    /// that failed because retention deleted the bucket under it.
    pub(crate) fn unless_gone(self, dir: &Path) -> Self {
        if dir.exists() {
            self
        } else {
            StoreError::Gone(dir.display().to_string())
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The bucket a packet time falls in.
pub fn bucket_key(subdirs: Subdirs, ts_us: i64) -> String {
    let secs = ts_us.div_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    match subdirs {
        Subdirs::None => String::new(),
        Subdirs::Daily => format!("{y:04}{m:02}{d:02}"),
        Subdirs::Hourly => format!("{y:04}{m:02}{d:02}/{:02}", secs.rem_euclid(86_400) / 3600),
    }
}

/// Time range [start, end) in µs that a bucket key covers; `None` for the root bucket.
pub fn bucket_range(key: &str) -> Option<(i64, i64)> {
    let day = key.get(0..8)?;
    let y: i64 = day.get(0..4)?.parse().ok()?;
    let m: u32 = day.get(4..6)?.parse().ok()?;
    let d: u32 = day.get(6..8)?.parse().ok()?;
    let start = days_from_civil(y, m, d) * 86_400_000_000;
    match key.get(9..11) {
        Some(h) => {
            let h: i64 = h.parse().ok()?;
            let s = start + h * 3_600_000_000;
            Some((s, s + 3_600_000_000))
        }
        None => Some((start, start + 86_400_000_000)),
    }
}

/// A bucket on disk.
#[derive(Debug, Clone)]
pub struct BucketDir {
    /// Key ("" for the root).
    pub key: String,
    /// Directory.
    pub dir: PathBuf,
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// Every bucket under `root` that has an index, in key order.
pub fn list_buckets(root: &Path) -> Result<Vec<BucketDir>, StoreError> {
    let mut out = Vec::new();
    if root.join("index.sqlite").exists() {
        out.push(BucketDir {
            key: String::new(),
            dir: root.to_path_buf(),
        });
    }
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(root, e)),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_digits(&name, 8) || !e.path().is_dir() {
            continue;
        }
        if e.path().join("index.sqlite").exists() || !list_segments(&e.path())?.is_empty() {
            out.push(BucketDir {
                key: name.clone(),
                dir: e.path(),
            });
        }
        if let Ok(hours) = std::fs::read_dir(e.path()) {
            for h in hours.flatten() {
                let hn = h.file_name().to_string_lossy().into_owned();
                if is_digits(&hn, 2) && h.path().is_dir() {
                    out.push(BucketDir {
                        key: format!("{name}/{hn}"),
                        dir: h.path(),
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Segment files of a bucket directory, by number.
pub fn list_segments(dir: &Path) -> Result<Vec<(u32, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_suffix(".seg")
            .and_then(|n| n.parse::<u32>().ok())
        {
            out.push((n, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Fills the cold fields (R-URI, user agents, addresses, streams...) of rows of one bucket
/// from the summary blocks they point to; each block is read once.
pub fn load_cold(dir: &Path, rows: &mut [CallRow]) -> Result<(), StoreError> {
    // Rows by the summary block holding them; each block is read once and only the wanted
    // records are copied out.
    let mut by_block: std::collections::BTreeMap<segment::BlockRef, HashMap<u64, Vec<usize>>> =
        std::collections::BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(c) = r.cold {
            by_block
                .entry(c)
                .or_default()
                .entry(r.call_ref)
                .or_default()
                .push(i);
        }
    }
    let mut file: Option<(u32, std::fs::File)> = None;
    for (cold, wanted) in by_block {
        if file.as_ref().map(|f| f.0) != Some(cold.segment) {
            let p = dir.join(format!("{:06}.seg", cold.segment));
            file = Some((
                cold.segment,
                std::fs::File::open(&p).map_err(|e| StoreError::io(&p, e).unless_gone(dir))?,
            ));
        }
        let Some((_, f)) = file.as_mut() else {
            continue;
        };
        let (hdr, raw) =
            segment::read_block(f, cold.offset).map_err(|e| StoreError::segment(dir, e))?;
        let mut found: Vec<(u8, u64, Vec<u8>)> = Vec::new();
        segment::for_each_record(&hdr, &raw, cold.offset, |kind, _, r, _, _, data| {
            if (kind == segment::KIND_SUMMARY || kind == segment::KIND_QUALITY)
                && wanted.contains_key(&r)
            {
                found.push((kind, r, data.to_vec()));
            }
        })
        .map_err(|e| StoreError::segment(dir, e))?;
        for (kind, r, data) in found {
            for &i in wanted.get(&r).map(Vec::as_slice).unwrap_or_default() {
                if kind == segment::KIND_SUMMARY {
                    index::unpack_cold(&data, &mut rows[i]);
                } else {
                    rows[i].quality_json = Some(data.clone());
                }
            }
        }
    }
    for r in rows.iter_mut() {
        if r.quality_json.is_none() && r.cold.is_some() {
            r.quality_json = index::derived_quality(r);
        }
    }
    Ok(())
}

/// Name of the file a writer holds an exclusive lock on for as long as it runs.
pub const WRITER_LOCK: &str = ".writer.lock";

/// Takes the store's writer lock: `Ok(None)` when another process (or another writer of this
/// one) holds it. The operating system releases it when the process dies.
pub fn try_lock_writer(root: &Path) -> Result<Option<std::fs::File>, StoreError> {
    let p = root.join(WRITER_LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| StoreError::io(&p, e))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::io(&p, e)),
    }
}

/// Repairs the index of every bucket after an unclean stop (see [`recover`]), when no writer
/// runs: a reader that finds a store left by a killed writer sees every packet it stored.
/// Best effort: a reader without write access leaves the store as it is.
fn recover_if_unlocked(root: &Path) {
    let Ok(Some(_lock)) = try_lock_writer(root) else {
        return;
    };
    let Ok(buckets) = list_buckets(root) else {
        return;
    };
    for b in buckets {
        let _ = recover::recover_bucket(&b.dir, &siphon_calls::CallConfig::default());
    }
}

/// The result of query `q`, or `empty` when it failed because the index has no tables yet: the
/// writer is making it (or cannot, on a full disk), and a reader sees no calls there rather
/// than an error. Should the tables be there once it failed, the writer made them in between:
/// `q` runs again.
fn not_made_yet<T>(
    conn: &rusqlite::Connection,
    mut q: impl FnMut() -> rusqlite::Result<T>,
    empty: T,
) -> rusqlite::Result<T> {
    match q() {
        Err(e) => match index::schema_ready(conn) {
            Ok(false) => Ok(empty),
            Ok(true) => q(),
            // A damaged file (not a database) stays an error.
            Err(_) => Err(e),
        },
        r => r,
    }
}

/// The read side of a store.
pub struct Store {
    root: PathBuf,
    /// Index connections kept open between queries (a long-running reader's), if any.
    pool: Option<std::sync::Arc<ReadPool>>,
}

impl Store {
    /// Opens the store at `root` for reading.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        if !root.is_dir() {
            return Err(StoreError::NotFound(root.display().to_string()));
        }
        recover_if_unlocked(root);
        Ok(Store {
            root: root.to_path_buf(),
            pool: None,
        })
    }

    /// [`Store::open`], with index connections taken from and kept in `pool` (see
    /// [`ReadPool`]): for a process that queries again and again.
    pub fn open_pooled(root: &Path, pool: std::sync::Arc<ReadPool>) -> Result<Store, StoreError> {
        let mut s = Store::open(root)?;
        s.pool = Some(pool);
        Ok(s)
    }

    /// Runs `f` on a read connection to the index at `p`.
    fn read<R>(
        &self,
        p: &Path,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let r = match &self.pool {
            Some(pool) => pool.with(p, f).and_then(|r| r),
            None => index::open_read(p).and_then(|c| f(&c)),
        };
        r.map_err(|e| StoreError::index(p, e))
    }

    /// Root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Calls matching `q`, by start time, across buckets (buckets outside the range are skipped).
    pub fn search(&self, q: &CallQuery) -> Result<Vec<CallRow>, StoreError> {
        let mut out = Vec::new();
        for b in list_buckets(&self.root)? {
            if let Some((s, e)) = bucket_range(&b.key) {
                if q.from_us.is_some_and(|f| e <= f) || q.to_us.is_some_and(|t| s >= t) {
                    continue;
                }
            }
            let p = b.dir.join("index.sqlite");
            if !p.exists() {
                continue;
            }
            // A bucket deleted by retention meanwhile has no calls any more.
            let mut rows = match self.read(&p, |conn| {
                not_made_yet(conn, || index::search(conn, &b.key, q), Vec::new())
            }) {
                Err(_) if !b.dir.exists() => continue,
                r => r?,
            };
            match load_cold(&b.dir, &mut rows) {
                Err(StoreError::Gone(_)) => continue,
                r => r?,
            }
            out.extend(rows);
            if q.limit > 0 && out.len() >= q.limit {
                break;
            }
        }
        out.sort_by(|a, b| (a.start_us, &a.call_id).cmp(&(b.start_us, &b.call_id)));
        if q.limit > 0 {
            out.truncate(q.limit);
        }
        Ok(out)
    }

    /// The call with this Call-ID, in whichever bucket holds it (the newest, should the
    /// Call-ID have been used again). Every bucket is tried, newest first.
    pub fn find(&self, call_id: &str) -> Result<Option<CallRow>, StoreError> {
        self.find_started_before(call_id, None)
    }

    /// [`Store::find`] for a call known to have started before `before` (µs), as one whose
    /// messages are asked for up to that time: buckets that begin at or after it are tried
    /// only once the others did not have the call. Over months of hourly buckets, a look-up of
    /// an old call then skips every newer bucket.
    pub fn find_started_before(
        &self,
        call_id: &str,
        before: Option<i64>,
    ) -> Result<Option<CallRow>, StoreError> {
        let buckets = list_buckets(&self.root)?;
        let later = |b: &BucketDir| {
            before.is_some_and(|t| bucket_range(&b.key).is_some_and(|(start, _)| start >= t))
        };
        let (newer, rest): (Vec<&BucketDir>, Vec<&BucketDir>) =
            buckets.iter().partition(|b| later(b));
        for b in rest.into_iter().rev().chain(newer.into_iter().rev()) {
            let p = b.dir.join("index.sqlite");
            if !p.exists() {
                continue;
            }
            // A bucket deleted by retention meanwhile no longer holds the call.
            let found = match self.read(&p, |conn| {
                not_made_yet(conn, || index::get(conn, &b.key, call_id.as_bytes()), None)
            }) {
                Err(_) if !b.dir.exists() => continue,
                r => r?,
            };
            if let Some(mut r) = found {
                match load_cold(&b.dir, std::slice::from_mut(&mut r)) {
                    Err(StoreError::Gone(_)) => continue,
                    r => r?,
                }
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Every stored packet of a call (SIP, RTP, RTCP) in capture order within each block;
    /// SIP blocks come in write order, so SIP messages keep the order they were captured in.
    pub fn records(&self, row: &CallRow) -> Result<Vec<StoredRecord>, StoreError> {
        self.records_in(row, |_| true)
    }

    /// The call's SIP messages only, as [`Store::records`] gives them. Its media blocks are
    /// skipped unread: a ladder of an hour-long call does not decompress the hour's RTP.
    pub fn sip_records(&self, row: &CallRow) -> Result<Vec<StoredRecord>, StoreError> {
        let mut recs = self.records_in(row, |kind| kind != segment::BlockKind::Media as u8)?;
        recs.retain(|r| r.kind == siphon_ingest::Kind::Sip as u8);
        Ok(recs)
    }

    /// The call's packets by capture time: its SIP messages (`with_sip`) and its media, read
    /// one block at a time, so memory does not grow with the call's length. Media that arrived
    /// up to [`REORDER_WINDOW`] packets late comes out in place; equal times keep the order
    /// they were stored in, SIP first.
    pub fn packets(&self, row: &CallRow, with_sip: bool) -> Result<CallPackets, StoreError> {
        let sip = if with_sip {
            self.sip_records(row)?
        } else {
            Vec::new()
        };
        Ok(CallPackets::new(self.bucket_dir(row), row, sip))
    }

    fn bucket_dir(&self, row: &CallRow) -> PathBuf {
        if row.bucket.is_empty() {
            self.root.clone()
        } else {
            self.root.join(&row.bucket)
        }
    }

    fn records_in(
        &self,
        row: &CallRow,
        want: impl Fn(u8) -> bool + Copy,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let dir = self.bucket_dir(row);
        let mut out = Vec::new();
        let mut open: Option<(u32, std::fs::File)> = None;
        for br in &row.blocks {
            if open.as_ref().map(|o| o.0) != Some(br.segment) {
                let p = dir.join(format!("{:06}.seg", br.segment));
                let f =
                    std::fs::File::open(&p).map_err(|e| StoreError::io(&p, e).unless_gone(&dir))?;
                open = Some((br.segment, f));
            }
            let Some((_, f)) = open.as_mut() else {
                continue;
            };
            let Some((hdr, raw)) = segment::read_block_of(f, br.offset, want)
                .map_err(|e| StoreError::segment(dir.join(format!("{:06}.seg", br.segment)), e))?
            else {
                continue;
            };
            segment::call_records(&hdr, &raw, br.offset, row.call_ref, &mut out)
                .map_err(|e| StoreError::segment(&dir, e))?;
        }
        Ok(out)
    }
}

/// A writer on a fresh store in the temporary directory (`siphon-<name>-<pid>`), without
/// fsync, and the store's root, for tests.
#[cfg(test)]
pub(crate) fn scratch_writer(name: &str) -> (PathBuf, StoreWriter) {
    let root = std::env::temp_dir().join(format!("siphon-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut cfg = StoreConfig::new(&root);
    cfg.fsync = false;
    let w = StoreWriter::open(cfg).unwrap();
    (root, w)
}

/// Files this process holds open whose paths begin with `path` (a directory, or a file and
/// its `-wal`/`-shm` companions), for tests that check files are closed.
#[cfg(test)]
pub(crate) fn open_files_under(path: &Path) -> usize {
    let prefix = path.to_string_lossy();
    std::fs::read_dir("/proc/self/fd")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|p| p.to_string_lossy().starts_with(&*prefix))
                .count()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keys_are_utc_dates_and_hours() {
        // 2026-11-25 13:42:17 UTC
        let t = 1_795_614_137_000_000;
        assert_eq!(bucket_key(Subdirs::Daily, t), "20261125");
        assert_eq!(bucket_key(Subdirs::Hourly, t), "20261125/13");
        assert_eq!(bucket_key(Subdirs::None, t), "");
        assert_eq!(bucket_key(Subdirs::Daily, 0), "19700101");
        assert_eq!(bucket_key(Subdirs::Daily, -1), "19691231");
    }

    #[test]
    fn retention_deletes_old_and_oversize_buckets_but_never_today() {
        let root = std::env::temp_dir().join(format!("siphon-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let day = 86_400_000_000i64;
        let now = 1_795_614_137_000_000; // 2026-11-25
        for d in 0..5 {
            let key = bucket_key(Subdirs::Daily, now - d * day);
            let dir = root.join(&key);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("index.sqlite"), vec![0u8; 1000]).unwrap();
        }
        let gone = retention(&root, Some(2), None, now).unwrap();
        assert_eq!(gone, vec!["20261121".to_string(), "20261122".to_string()]);
        let gone = retention(&root, None, Some(1500), now).unwrap();
        assert_eq!(gone, vec!["20261123".to_string(), "20261124".to_string()]);
        let left: Vec<String> = list_buckets(&root)
            .unwrap()
            .into_iter()
            .map(|b| b.key)
            .collect();
        assert_eq!(left, vec!["20261125".to_string()]);
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A bucket whose index file exists without its tables (the writer is making it, or could
    /// not on a full disk) reads as empty, pooled or not, and its calls appear once it is made.
    #[test]
    fn a_bucket_whose_index_is_not_made_yet_reads_as_empty() {
        use siphon_ingest::Sink;
        let (root, mut w) = crate::scratch_writer("unmade");
        let c = crate::index::tests::call(1, 1);
        w.call_completed(Box::new(c.clone()));
        w.close(Vec::new()).unwrap();
        let id = String::from_utf8(c.call_id.clone()).unwrap();
        // A newer day whose index file is there, still empty.
        let key = bucket_key(Subdirs::Daily, c.start_us + 86_400_000_000);
        std::fs::create_dir_all(root.join(&key)).unwrap();
        std::fs::write(root.join(&key).join("index.sqlite"), b"").unwrap();
        let pool = std::sync::Arc::new(ReadPool::new());
        for store in [
            Store::open(&root).unwrap(),
            Store::open_pooled(&root, pool.clone()).unwrap(),
        ] {
            let rows = store.search(&CallQuery::default()).unwrap();
            assert_eq!(rows.len(), 1);
            assert!(
                store.find(&id).unwrap().is_some(),
                "found past the empty bucket"
            );
            assert!(store.find("nobody").unwrap().is_none());
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A query that fails because the index has no tables, made by the writer just after it
    /// failed (before the reader looked at the schema), runs again and sees the new rows: the
    /// reader gives neither an error nor "no calls".
    #[test]
    fn a_query_that_raced_the_making_of_the_index_runs_again() {
        let path = crate::index::tests::temp_db("raced");
        std::fs::write(&path, b"").unwrap();
        let reader = index::open_read(&path).unwrap();
        let mut tries = 0;
        let rows = not_made_yet(
            &reader,
            || {
                tries += 1;
                let r = index::search(&reader, "b", &CallQuery::default());
                if tries == 1 {
                    assert!(r.is_err(), "no tables yet");
                    let w = index::open(&path).unwrap();
                    index::upsert(&w, &crate::index::tests::call(1, 1), &[], None).unwrap();
                }
                r
            },
            Vec::new(),
        )
        .unwrap();
        assert_eq!((tries, rows.len()), (2, 1));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// A reader thread's errors and how many reads it made.
    type Reader = std::thread::JoinHandle<(Vec<String>, usize)>;

    /// Two readers of the store at `root`, one with a pool of connections and one without,
    /// each running `read` until `stop_readers`; `read` notes errors and returns how many
    /// reads it made.
    fn start_readers(
        root: &Path,
        read: fn(&Store, &mut Vec<String>) -> usize,
    ) -> (std::sync::Arc<std::sync::atomic::AtomicBool>, Vec<Reader>) {
        let pool = std::sync::Arc::new(ReadPool::new());
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers = (0..2)
            .map(|i| {
                let (root, pool, done) = (root.to_path_buf(), pool.clone(), done.clone());
                std::thread::spawn(move || {
                    let store = if i == 0 {
                        Store::open_pooled(&root, pool).unwrap()
                    } else {
                        Store::open(&root).unwrap()
                    };
                    let (mut errors, mut reads) = (Vec::new(), 0);
                    while !done.load(std::sync::atomic::Ordering::SeqCst) {
                        reads += read(&store, &mut errors);
                    }
                    (errors, reads)
                })
            })
            .collect();
        (done, readers)
    }

    /// Stops the readers of [`start_readers`]; fails on any error they met. Returns how many
    /// reads each made.
    fn stop_readers(done: &std::sync::atomic::AtomicBool, readers: Vec<Reader>) -> Vec<usize> {
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        readers
            .into_iter()
            .map(|r| {
                let (errors, reads) = r.join().unwrap();
                assert!(
                    errors.is_empty(),
                    "{} errors, first: {}",
                    errors.len(),
                    errors[0]
                );
                reads
            })
            .collect()
    }

    /// Readers that search and look up calls while the writer makes one bucket after another
    /// (each index made while they read) never get an error, and in the end see every call.
    #[test]
    fn reads_while_the_writer_makes_bucket_after_bucket_never_fail() {
        use siphon_ingest::Sink;
        let (root, mut w) = crate::scratch_writer("making");
        let day = 86_400_000_000i64;
        let (done, readers) = start_readers(&root, |store, errors| {
            if let Err(e) = store.search(&CallQuery::default()) {
                errors.push(format!("search: {e}"));
            }
            if let Err(e) = store.find("nobody") {
                errors.push(format!("find: {e}"));
            }
            1
        });
        let buckets = 150;
        for d in 0..buckets {
            let mut c = crate::index::tests::call(d + 1, 1);
            c.start_us += d as i64 * day;
            c.end_us += d as i64 * day;
            w.call_completed(Box::new(c));
            w.flush(Vec::new()).unwrap();
        }
        stop_readers(&done, readers);
        w.close(Vec::new()).unwrap();
        let rows = Store::open(&root)
            .unwrap()
            .search(&CallQuery::default())
            .unwrap();
        assert_eq!(rows.len(), buckets as usize);
        let _ = std::fs::remove_dir_all(&root);
    }

    /// Readers that search, look up and read calls while retention deletes the oldest buckets
    /// (the writer making new ones) never get an error: a bucket deleted under them reads as
    /// gone, and a call in it as not found.
    #[test]
    fn reads_while_retention_deletes_buckets_never_fail() {
        use siphon_ingest::Sink;
        let (root, mut w) = crate::scratch_writer("retained");
        let day = 86_400_000_000i64;
        let (done, readers) = start_readers(&root, |store, errors| {
            let rows = match store.search(&CallQuery::default()) {
                Ok(rows) => rows,
                Err(e) => {
                    errors.push(format!("search: {e}"));
                    return 0;
                }
            };
            let mut reads = 0;
            for r in rows.iter().take(3) {
                match store.find(&r.call_id_str()) {
                    Err(e) => errors.push(format!("find: {e}")),
                    Ok(None) => {}
                    // Deleted between the look-up and the read: gone.
                    Ok(Some(row)) => match store.records(&row) {
                        Ok(_) | Err(StoreError::Gone(_)) => reads += 1,
                        Err(e) => errors.push(format!("records: {e}")),
                    },
                }
            }
            reads
        });
        let buckets = 150;
        let mut deleted = 0;
        for d in 0..buckets {
            let mut c = crate::index::tests::call(d + 1, 1);
            c.start_us += d as i64 * day;
            c.end_us += d as i64 * day;
            w.call_completed(Box::new(c.clone()));
            w.flush(Vec::new()).unwrap();
            // Keep the newest few: whatever ended more than 3 days before this call.
            deleted += retention_with(&root, Some(3), None, c.start_us, &mut |k| {
                w.release_bucket(k)
            })
            .unwrap()
            .len();
        }
        let reads = stop_readers(&done, readers);
        assert!(reads.iter().all(|&n| n > 0), "{reads:?}");
        assert!(deleted > 100, "{deleted} buckets deleted");
        w.close(Vec::new()).unwrap();
        let _ = std::fs::remove_dir_all(&root);
    }

    /// Retention renames a bucket aside before it empties it; what a stop in between left is
    /// deleted by the next pass. A call whose bucket went between its look-up and the reading
    /// of its packets reads as gone.
    #[test]
    fn retention_deletes_what_an_interrupted_pass_left_and_reads_say_gone() {
        use siphon_ingest::Sink;
        let (root, mut w) = crate::scratch_writer("aside");
        let day = 86_400_000_000i64;
        let c = crate::index::tests::call(1, 1);
        w.call_opened(1, &c.call_id, c.start_us);
        w.record(&siphon_ingest::Record {
            ts_us: c.start_us,
            kind: siphon_ingest::Kind::Sip,
            call_ref: 1,
            node: 0,
            link: siphon_wire::link::LinkType(1),
            head: &[],
            frame: b"OPTIONS sip:x SIP/2.0\r\n\r\n",
        });
        w.call_completed(Box::new(c.clone()));
        w.flush(Vec::new()).unwrap();
        let store = Store::open(&root).unwrap();
        let row = store.find(&c.call_id_str()).unwrap().unwrap();
        assert_eq!(store.records(&row).unwrap().len(), 1);
        // Left by an interrupted pass.
        let left = root.join(format!("{DELETING}20200101"));
        std::fs::create_dir_all(left.join("x")).unwrap();
        std::fs::write(left.join("x/000001.seg"), b"old").unwrap();
        let deleted = retention_with(&root, Some(1), None, c.start_us + 3 * day, &mut |k| {
            w.release_bucket(k)
        })
        .unwrap();
        assert_eq!(deleted.len(), 1);
        assert!(!left.exists());
        let names: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(DELETING) || is_digits(n, 8))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        match store.records(&row) {
            Err(StoreError::Gone(_)) => {}
            r => panic!("{:?}", r.map(|v| v.len())),
        }
        assert!(store.find(&c.call_id_str()).unwrap().is_none());
        w.close(Vec::new()).unwrap();
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A request whose time range ends at some time looks first in the buckets that begin
    /// before it: with a Call-ID used on two days, the call of the earlier day is found for a
    /// range on that day, the newer one otherwise, and a range before both still finds one.
    #[test]
    fn a_look_up_with_an_end_time_tries_the_older_buckets_first() {
        use siphon_ingest::Sink;
        let (root, mut w) = crate::scratch_writer("before");
        let day = 86_400_000_000i64;
        let first = crate::index::tests::call(1, 1);
        let mut again = crate::index::tests::call(2, 1);
        again.call_id = first.call_id.clone();
        again.start_us += 2 * day;
        again.end_us += 2 * day;
        w.call_completed(Box::new(first.clone()));
        w.call_completed(Box::new(again.clone()));
        w.close(Vec::new()).unwrap();
        let id = String::from_utf8(first.call_id.clone()).unwrap();
        let pool = std::sync::Arc::new(ReadPool::new());
        for store in [
            Store::open(&root).unwrap(),
            Store::open_pooled(&root, pool.clone()).unwrap(),
        ] {
            let found = |before| store.find_started_before(&id, before).unwrap().unwrap();
            assert_eq!(store.find(&id).unwrap().unwrap().call_ref, 2, "the newest");
            assert_eq!(found(None).call_ref, 2);
            assert_eq!(found(Some(first.start_us + day)).call_ref, 1);
            assert_eq!(found(Some(again.start_us + 1)).call_ref, 2);
            assert_eq!(
                found(Some(first.start_us - day)).call_ref,
                2,
                "then the others"
            );
            assert!(store
                .find_started_before("nobody", Some(0))
                .unwrap()
                .is_none());
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn bucket_range_covers_its_key() {
        for t in [
            0i64,
            1_795_614_137_000_000,
            951_782_400_000_000, /* 2000-02-29 */
        ] {
            for sd in [Subdirs::Daily, Subdirs::Hourly] {
                let k = bucket_key(sd, t);
                let (s, e) = bucket_range(&k).unwrap();
                assert!(s <= t && t < e, "{k}");
            }
        }
    }
}

/// Deletes whole buckets: those that ended more than `max_age_days` ago, then the oldest ones
/// while the store is larger than `max_bytes`. The bucket of `now_us` is never deleted.
/// Returns the keys deleted.
pub fn retention(
    root: &Path,
    max_age_days: Option<u32>,
    max_bytes: Option<u64>,
    now_us: i64,
) -> Result<Vec<String>, StoreError> {
    retention_with(root, max_age_days, max_bytes, now_us, &mut |_| true)
}

/// [`retention`] for a store a writer has open: each bucket is deleted only once `release`
/// (the writer's [`StoreWriter::release_bucket`]) has closed its files, so that its space is
/// freed; a bucket it keeps is left for a later pass.
pub fn retention_with(
    root: &Path,
    max_age_days: Option<u32>,
    max_bytes: Option<u64>,
    now_us: i64,
    release: &mut dyn FnMut(&str) -> bool,
) -> Result<Vec<String>, StoreError> {
    fn size(p: &Path) -> u64 {
        let mut n = 0;
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                if path.is_dir() {
                    n += size(&path);
                } else {
                    n += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
        n
    }
    let mut buckets: Vec<(BucketDir, (i64, i64))> = list_buckets(root)?
        .into_iter()
        .filter_map(|b| bucket_range(&b.key).map(|r| (b, r)))
        .filter(|(_, (s, e))| !(*s <= now_us && now_us < *e))
        .collect();
    buckets.sort_by_key(|(_, r)| r.0);
    // Not in the way of this pass: a leftover that cannot be removed is reported after it.
    let leftover = remove_left_to_delete(root);
    let mut deleted = Vec::new();
    if let Some(days) = max_age_days {
        let cutoff = now_us - i64::from(days) * 86_400_000_000;
        for (b, (_, end)) in &buckets {
            if *end <= cutoff && release(&b.key) {
                delete_bucket(root, b)?;
                deleted.push(b.key.clone());
            }
        }
        buckets.retain(|(b, _)| !deleted.contains(&b.key));
    }
    if let Some(max) = max_bytes {
        let mut total = size(root);
        for (b, _) in &buckets {
            if total <= max {
                break;
            }
            if !release(&b.key) {
                continue;
            }
            let n = size(&b.dir);
            delete_bucket(root, b)?;
            total = total.saturating_sub(n);
            deleted.push(b.key.clone());
        }
    }
    leftover.map(|()| deleted)
}

/// Prefix of a bucket directory being deleted: retention first renames the bucket out of the
/// way, in one step, so that readers find it whole or not at all (and SQLite cannot make its
/// `-shm` file again in a directory being emptied), then deletes it.
const DELETING: &str = ".deleting-";

fn delete_bucket(root: &Path, b: &BucketDir) -> Result<(), StoreError> {
    // A name of its own each time: a leftover of the same bucket (made again by late packets
    // after an earlier deletion that was cut short) is not in the way.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let aside = root.join(format!("{DELETING}{}.{nanos}", b.key.replace('/', "-")));
    std::fs::rename(&b.dir, &aside).map_err(|e| StoreError::io(&b.dir, e))?;
    std::fs::remove_dir_all(&aside).map_err(|e| StoreError::io(&aside, e))
}

/// Deletes what a stop in the middle of a deletion left (see [`DELETING`]); the first failure,
/// if any, once all were tried.
fn remove_left_to_delete(root: &Path) -> Result<(), StoreError> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Ok(());
    };
    let mut first = Ok(());
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(DELETING) {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                first = first.and(Err(StoreError::io(e.path(), err)));
            }
        }
    }
    first
}

/// Formats µs since the epoch as RFC 3339 UTC with microseconds (`2026-11-25T13:42:17.123456Z`).
pub fn format_rfc3339_us(ts_us: i64) -> String {
    let secs = ts_us.div_euclid(1_000_000);
    let us = ts_us.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Parses a time given on the command line or in a query: Unix seconds (with an optional
/// fraction), or RFC 3339 (`2026-11-25T13:42:17Z`, `2026-11-25 13:42:17.5+01:00`, or just a date).
pub fn parse_time_us(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        if v.is_finite() {
            return Some((v * 1e6).round() as i64);
        }
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut t = days_from_civil(y, m as u32, d as u32) * 86_400_000_000;
    if b.len() == 10 {
        return Some(t);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    t += (hh * 3600 + mm * 60 + ss) * 1_000_000;
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            return None;
        }
        let mut us = String::from(&digits[..digits.len().min(6)]);
        while us.len() < 6 {
            us.push('0');
        }
        t += us.parse::<i64>().ok()?;
        rest = &frac[digits.len()..];
    }
    match rest {
        "" | "Z" | "z" => Some(t),
        off => {
            let sign = match off.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = off.get(1..3)?.parse().ok()?;
            let om: i64 = off.get(4..6)?.parse().ok()?;
            Some(t - sign * (oh * 3600 + om * 60) * 1_000_000)
        }
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_offsets_apply() {
        let t = 1_795_335_337_116_552;
        let s = format_rfc3339_us(t);
        assert_eq!(s, "2026-11-22T08:15:37.116552Z");
        assert_eq!(parse_time_us(&s), Some(t));
        assert_eq!(parse_time_us("2026-11-22T09:15:37.116552+01:00"), Some(t));
        assert_eq!(parse_time_us("1795335337.116552"), Some(t));
        assert_eq!(parse_time_us("2026-11-22"), Some(1_795_305_600_000_000));
        assert_eq!(parse_time_us("yesterday"), None);
        assert_eq!(parse_time_us("2026-13-01"), None);
    }
}
