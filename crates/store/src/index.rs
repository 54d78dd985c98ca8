//! The SQLite index of one bucket: one row per call (or dialog), with its summary, its streams
//! and the blocks that hold its packets, both packed as compact blobs.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use siphon_calls::{CallState, CallSummary, StreamDirection, StreamSummary};

use crate::segment::{get_varint, put_varint, unzigzag as unzz, zigzag as zz, BlockRef};

/// Index schema version, kept in `meta`. Version 1 indexed `calls.call_id` itself (UNIQUE);
/// version 2 looks Call-IDs up through `call_keys`.
pub const INDEX_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS calls (
  ref INTEGER PRIMARY KEY,
  call_id BLOB NOT NULL,
  method TEXT,
  start_us INTEGER NOT NULL,
  answer_d INTEGER,
  end_d INTEGER NOT NULL,
  caller TEXT, caller_domain TEXT, callee TEXT, callee_domain TEXT,
  status INTEGER, state INTEGER, phase INTEGER, hangup INTEGER,
  messages INTEGER, rtp INTEGER, rtcp INTEGER,
  mos_avg INTEGER, mos_min INTEGER, verdict INTEGER,
  blocks BLOB, cold BLOB
);
CREATE INDEX IF NOT EXISTS calls_start ON calls(start_us);
CREATE TABLE IF NOT EXISTS call_keys (
  run INTEGER NOT NULL, call_key INTEGER NOT NULL, ref INTEGER NOT NULL,
  PRIMARY KEY (run, call_key, ref)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS key_runs (run INTEGER PRIMARY KEY, keys INTEGER NOT NULL);
";

/// Call-IDs are looked up by a 64-bit key (FNV-1a of the Call-ID: stable across versions and
/// platforms, since it is stored), in `call_keys`, and the row's own `call_id` is compared.
///
/// Why not an index on `calls.call_id`: Call-IDs are random, so each new row lands at a
/// random place of such an index, and once the index outgrows the page cache every flush
/// rewrites about one page per new call (a collector at tens of thousands of calls per second
/// spent most of its time there). Instead keys go into sorted runs of `call_keys`, and a
/// look-up seeks once per run. A writer (see [`KeyWriter`]) adds each flush's keys to a small
/// run (at most [`SMALL_RUN_KEYS`]), whose pages a flush rewrites, and gathers them in memory
/// until they make a full run ([`RUN_KEYS`]), written in key order in one go in place of its
/// small runs: at the highest rates, a few hundred runs per hour and about one page written
/// per hundred keys.
pub fn call_key(call_id: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in call_id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

/// Keys per full run of `call_keys` (see [`call_key`]).
pub const RUN_KEYS: i64 = 1 << 18;

/// Keys per small run, the ones a writer adds to at each flush (see [`KeyWriter`]). A random
/// key lands on any page of its run, so a flush rewrites up to a whole run: with full runs
/// that was about one page per six keys, twice the bytes of everything else a flush writes.
pub const SMALL_RUN_KEYS: i64 = 1 << 14;

/// Adds the Call-ID keys a writer's flushes bring to one bucket's `call_keys` (see
/// [`call_key`]): each flush's keys go into the latest small run (a new one once it holds
/// [`SMALL_RUN_KEYS`]) and are kept in memory too; once those make [`RUN_KEYS`], they are
/// written as one full run, in key order, a slice of [`FULL_RUN_SLICE`] keys per flush (or
/// twice the flush's own keys, if more; so that no flush takes much longer than the others),
/// and then the small runs they came in are deleted, as many keys per flush (while the next
/// full run is written). Until then their keys are in both, and found once. Small runs
/// left by a writer that stopped before (or by a failed transaction, see
/// [`reset`](Self::reset)) stay as they are: still found, only smaller.
#[derive(Debug, Default)]
pub struct KeyWriter {
    /// Small runs this writer made whose keys are being gathered, with the number of keys
    /// each holds.
    small: Vec<(i64, i64)>,
    /// The keys of those small runs.
    gathered: Vec<(i64, i64)>,
    /// The full run being written.
    full: Option<FullRun>,
    /// Small runs whose keys are all in a full run, to delete.
    retired: Vec<i64>,
}

#[derive(Debug)]
struct FullRun {
    run: i64,
    /// Sorted.
    keys: Vec<(i64, i64)>,
    written: usize,
    /// The small runs the keys came in.
    replaces: Vec<i64>,
}

/// Keys of a full run written per flush, and keys of retired small runs deleted per flush
/// (see [`KeyWriter`]). Small enough that the flushes writing a full run take little longer
/// than the others: with 16,384, at 400,000 messages/s the pipeline's backlog rose from
/// about 30,000 packets to 180,000 for the 3 s of each full run.
pub const FULL_RUN_SLICE: usize = 1 << 12;

impl KeyWriter {
    /// Adds the keys of calls newly written to the index, `(call_key, ref)`, and carries on
    /// writing a full run. Call inside the transaction that writes their rows; after an
    /// error, [`reset`](Self::reset).
    pub fn add(&mut self, conn: &Connection, keys: &mut [(i64, i64)]) -> rusqlite::Result<()> {
        self.add_with(conn, keys, SMALL_RUN_KEYS, RUN_KEYS, FULL_RUN_SLICE)
    }

    fn add_with(
        &mut self,
        conn: &Connection,
        keys: &mut [(i64, i64)],
        small_keys: i64,
        full_keys: i64,
        slice: usize,
    ) -> rusqlite::Result<()> {
        // A full run gets at least twice as many keys per flush as the flush brings, so that
        // the next one (gathered meanwhile) is never bigger than this one: runs, and the keys
        // held in memory, stay bounded whatever the flush size.
        let slice = slice.max(keys.len().saturating_mul(2));
        if !keys.is_empty() {
            keys.sort_unstable();
            let n = keys.len() as i64;
            let (run, had) = match self.small.last() {
                Some(&(run, had)) if had < small_keys => (run, had),
                _ => (last_run(conn)?.map_or(0, |(r, _)| r + 1), 0),
            };
            insert_run(conn, run, had, keys)?;
            match self.small.last_mut() {
                Some(last) if last.0 == run => last.1 = had + n,
                _ => self.small.push((run, n)),
            }
            self.gathered.extend_from_slice(keys);
        }
        if self.full.is_none() && self.gathered.len() as i64 >= full_keys {
            let mut keys = std::mem::take(&mut self.gathered);
            keys.sort_unstable();
            self.full = Some(FullRun {
                run: last_run(conn)?.map_or(0, |(r, _)| r + 1),
                keys,
                written: 0,
                replaces: self.small.drain(..).map(|(r, _)| r).collect(),
            });
        }
        if let Some(f) = self.full.as_mut() {
            // In key order, so that the run's pages are written once, full.
            let next = f.keys.get(f.written..).unwrap_or_default();
            let part = next.get(..slice.min(next.len())).unwrap_or_default();
            insert_run(conn, f.run, f.written as i64, part)?;
            f.written += part.len();
            if f.written >= f.keys.len() {
                self.retired.append(&mut f.replaces);
                self.full = None;
            }
        }
        // Retired small runs go a slice of keys per flush too (their keys are all in a full
        // run, so a part-deleted run is harmless), alongside the next full run's slices:
        // both keep pace with the keys coming in.
        if let Some(&run) = self.retired.last() {
            let cut = conn
                .prepare_cached(
                    "DELETE FROM call_keys WHERE run = ?1 AND call_key <= (SELECT call_key
                       FROM call_keys WHERE run = ?1 ORDER BY call_key LIMIT 1 OFFSET ?2)",
                )?
                .execute(params![run, slice.saturating_sub(1) as i64])?;
            if cut == 0 {
                // Fewer than a slice left.
                conn.prepare_cached("DELETE FROM call_keys WHERE run = ?1")?
                    .execute(params![run])?;
                conn.prepare_cached("DELETE FROM key_runs WHERE run = ?1")?
                    .execute(params![run])?;
                self.retired.pop();
            }
        }
        Ok(())
    }

    /// Forgets the runs made so far (after a failed transaction, whose keys may not be in
    /// them): they stay in the index as runs of their own, a full run maybe part-written and
    /// its small runs not deleted (their keys are found once all the same).
    pub fn reset(&mut self) {
        *self = KeyWriter::default();
    }
}

/// The latest run of `call_keys` and the number of keys it holds.
fn last_run(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    conn.query_row(
        "SELECT run, keys FROM key_runs ORDER BY run DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Keys inserted by one statement of [`insert_run`].
const KEYS_PER_INSERT: usize = 64;

/// `INSERT OR IGNORE` of [`KEYS_PER_INSERT`] rows of `call_keys`.
static KEYS_INSERT_MANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let rows = vec!["(?, ?, ?)"; KEYS_PER_INSERT].join(", ");
    format!("INSERT OR IGNORE INTO call_keys (run, call_key, ref) VALUES {rows}")
});

/// Adds sorted `keys` to run `run`, which held `had` keys.
fn insert_run(conn: &Connection, run: i64, had: i64, keys: &[(i64, i64)]) -> rusqlite::Result<()> {
    // Many rows per statement: a statement's own work (binding, stepping, resetting) is
    // most of the cost of a row this small.
    let mut batches = keys.chunks_exact(KEYS_PER_INSERT);
    let mut st = conn.prepare_cached(&KEYS_INSERT_MANY)?;
    for batch in &mut batches {
        let mut at = 1;
        for (k, r) in batch {
            st.raw_bind_parameter(at, run)?;
            st.raw_bind_parameter(at + 1, k)?;
            st.raw_bind_parameter(at + 2, r)?;
            at += 3;
        }
        st.raw_execute()?;
    }
    let mut st = conn.prepare_cached(
        "INSERT OR IGNORE INTO call_keys (run, call_key, ref) VALUES (?1, ?2, ?3)",
    )?;
    for (k, r) in batches.remainder() {
        st.execute(params![run, k, r])?;
    }
    conn.execute(
        "INSERT INTO key_runs (run, keys) VALUES (?1, ?2)
         ON CONFLICT(run) DO UPDATE SET keys = excluded.keys",
        params![run, had + keys.len() as i64],
    )?;
    Ok(())
}

/// Adds the keys of calls newly written to the index, `(call_key, ref)`, to the latest run
/// (a new one once it holds [`RUN_KEYS`]: the keys of one write stay together). For writes of
/// many keys at once (an upgrade); flushes and rebuilds use a [`KeyWriter`]. Call
/// inside the transaction that writes their rows.
pub fn add_call_keys(conn: &Connection, keys: &mut [(i64, i64)]) -> rusqlite::Result<()> {
    add_call_keys_with(conn, keys, RUN_KEYS)
}

fn add_call_keys_with(
    conn: &Connection,
    keys: &mut [(i64, i64)],
    run_keys: i64,
) -> rusqlite::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    let (run, had) = match last_run(conn)? {
        Some((run, n)) if n < run_keys => (run, n),
        Some((run, _)) => (run + 1, 0),
        None => (0, 0),
    };
    insert_run(conn, run, had, keys)
}

/// Brings a version 1 index (Call-IDs indexed in `calls`) to version 2: its Call-IDs get
/// their keys. The old index on `calls.call_id` stays (SQLite cannot drop a column
/// constraint); reads use the keys.
fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    let version: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if version.is_none_or(|v| v >= INDEX_VERSION) {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    // A run's worth of rows at a time, so that memory does not grow with the index.
    let mut after = i64::MIN;
    loop {
        let mut keys: Vec<(i64, i64)> = {
            let mut st = conn
                .prepare("SELECT call_id, ref FROM calls WHERE ref > ?1 ORDER BY ref LIMIT ?2")?;
            let rows = st.query_map(params![after, RUN_KEYS], |r| {
                let id: Vec<u8> = r.get(0)?;
                Ok((call_key(&id), r.get::<_, i64>(1)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let Some(last) = keys.iter().map(|k| k.1).max() else {
            break;
        };
        after = last;
        add_call_keys(conn, &mut keys)?;
    }
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'version'",
        params![INDEX_VERSION],
    )?;
    tx.commit()
}

const STATES: [&str; 8] = [
    "in-progress",
    "answered",
    "busy",
    "cancelled",
    "rejected",
    "no-answer",
    "failed",
    "ok",
];
const PHASES: [&str; 4] = ["pending", "active", "closing", "complete"];
const HANGUPS: [&str; 3] = ["", "caller", "callee"];
/// Verdict names; the code is stored, 0 meaning none.
const VERDICTS: [&str; 6] = ["", "Excellent", "Good", "Fair", "Poor", "Bad"];

/// Code of a verdict name (case-insensitive), for searches.
pub fn verdict_code(v: &str) -> Option<i64> {
    VERDICTS
        .iter()
        .position(|n| !n.is_empty() && n.eq_ignore_ascii_case(v))
        .map(|p| p as i64)
}

/// The verdict code of a call graded with no media either way.
fn no_audio_verdict() -> i64 {
    static CODE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *CODE.get_or_init(|| verdict_index(siphon_quality::report("", None, None).verdict))
}

/// The stored code of a verdict (its position in `VERDICTS`).
fn verdict_index(v: siphon_quality::Verdict) -> i64 {
    use siphon_quality::Verdict;
    match v {
        Verdict::Excellent => 1,
        Verdict::Good => 2,
        Verdict::Fair => 3,
        Verdict::Poor => 4,
        Verdict::Bad => 5,
    }
}

fn code(names: &[&str], v: &str) -> i64 {
    names.iter().position(|n| *n == v).unwrap_or(0) as i64
}

fn name(names: &[&str], c: Option<i64>) -> String {
    c.and_then(|c| usize::try_from(c).ok())
        .and_then(|c| names.get(c))
        .unwrap_or(&"")
        .to_string()
}

/// Packs the caller and callee signalling addresses (either may be absent).
fn pack_addrs(a: Option<SocketAddr>, b: Option<SocketAddr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(14);
    for x in [a, b] {
        match x {
            Some(x) => put_addr(&mut out, &x),
            None => out.push(0),
        }
    }
    out
}

fn unpack_addrs(buf: &[u8]) -> (String, String, usize) {
    let mut pos = 0;
    let mut one = || -> String {
        if buf.get(pos) == Some(&0) {
            pos += 1;
            return String::new();
        }
        get_addr(buf, &mut pos)
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    let a = one();
    let b = one();
    (a, b, pos)
}

/// Page cache of a bucket index opened for writing, KiB. A flush dirties a few hundred pages
/// (the right edges of the B-trees, the small key runs), far fewer than this holds. A larger
/// cache costs at every commit: once a B-tree balance has renumbered pages through SQLite's
/// reserved lock page, the commit walks every cached page to drop those past the end (64 MiB:
/// about 1.5 % of the pipeline at 300,000 messages/s).
const WRITE_CACHE_KIB: u32 = 16 << 10;

/// WAL bytes after which a commit copies the WAL into the database itself (SQLite's default
/// is 1,000 pages). The checkpoint thread copies it every few flushes (see `checkpoint.rs`),
/// and the next flush starts the log again; this bound is for when that thread falls behind.
/// A busy collector's flush writes hundreds of pages, many of them the same pages again (the
/// B-trees' right edges, the small key runs): with SQLite's default, every other commit
/// checkpointed and copied those pages again (commits of 4 and 20 ms in turn at 400,000
/// messages/s).
const WAL_CHECKPOINT_BYTES: i64 = 32 << 20;

/// Page size of a new bucket index, bytes. A flush appends thousands of rows and keys at the
/// right edges of the B-trees: with 16 KiB pages they split a quarter as often as with SQLite's
/// 4 KiB. On 4,000,000 messages in one thread (the `serve` bench's pipeline
/// ceiling, three interleaved pairs), flushes took 1.46–1.51 s against 1.80–1.90 s; a
/// Call-ID look-up reads larger pages (`/flow` on 1,000,008 calls: p99 1.02 ms against 0.70).
pub const PAGE_SIZE: i64 = 16 << 10;

/// Opens (creating if needed) a bucket index.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // Before anything is written: the page size of a new index (an existing one keeps its own).
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // A flush writes thousands of rows and keys in one transaction: a page cache that holds
    // the hot part of the B-trees (the small key runs are written at random places) keeps
    // SQLite from spilling pages mid-transaction, and the statement journal stays in memory.
    conn.pragma_update(None, "cache_size", -(WRITE_CACHE_KIB as i64))?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        WAL_CHECKPOINT_BYTES / page.max(512),
    )?;
    // The tables and the version of a new index in one transaction: a reader sees all of
    // them or none (see `schema_ready`). An existing index keeps its version for `upgrade`.
    {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(SCHEMA)?;
        tx.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('version', ?1)",
            params![INDEX_VERSION],
        )?;
        tx.commit()?;
    }
    upgrade(&conn)?;
    Ok(conn)
}

/// Whether the index has its tables (a writer made them, at the current version); an error
/// when it cannot be read at all (not a database).
pub fn schema_ready(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('calls', 'call_keys')",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n == 2)
}

/// Opens an existing bucket index read-only.
pub fn open_read(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// One stream as stored in the index (figures, not running state).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredStream {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// SSRC.
    pub ssrc: u32,
    /// First payload type.
    pub payload_type: u8,
    /// Codec name.
    pub codec: String,
    /// RTP clock rate (0 unknown).
    pub clock_rate: u32,
    /// Direction relative to the call.
    pub direction: StreamDirection,
    /// Packets received.
    pub packets: u64,
    /// Packets lost (RFC 3550, never negative).
    pub lost: u64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Late (reordered) packets.
    pub reordered: u64,
    /// Largest gap between packets, µs.
    pub max_delta_us: u64,
    /// Mean and max jitter, µs.
    pub jitter_mean_us: u64,
    /// See `jitter_mean_us`.
    pub jitter_max_us: u64,
    /// First and last packet time, µs since the epoch.
    pub first_us: i64,
    /// See `first_us`.
    pub last_us: i64,
    /// What the receiver reported in RTCP about this stream (absent when no report block
    /// named it).
    pub rtcp: Option<RtcpStored>,
    /// Payload types seen (bit n: type n), marker bits and payload type changes.
    pub payload_types: u128,
    /// See `payload_types`.
    pub markers: u64,
    /// See `payload_types`.
    pub payload_type_changes: u32,
}

/// RTCP figures kept with a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RtcpStored {
    /// Report blocks seen.
    pub reports: u32,
    /// Last fraction lost, in 1/256.
    pub fraction_lost: u8,
    /// Last cumulative loss reported.
    pub cumulative_lost: i32,
    /// Last jitter reported, µs.
    pub jitter_us: u64,
    /// Mean, min and max RTT from LSR/DLSR, µs (0 samples: none).
    pub rtt_samples: u32,
    /// See `rtt_samples`.
    pub rtt_mean_us: u64,
    /// See `rtt_samples`.
    pub rtt_min_us: u64,
    /// See `rtt_samples`.
    pub rtt_max_us: u64,
}

impl StoredStream {
    /// Figures of a live stream.
    pub fn from_summary(s: &StreamSummary) -> Self {
        StoredStream {
            src: s.src,
            dst: s.dst,
            ssrc: s.ssrc,
            payload_type: s.payload_type,
            codec: s.codec.clone(),
            clock_rate: s.clock_rate,
            direction: s.direction,
            packets: s.stats.packets,
            lost: s.stats.lost(),
            duplicates: s.stats.duplicates,
            reordered: s.stats.reordered,
            max_delta_us: u64::try_from(s.stats.max_delta_us).unwrap_or(0),
            jitter_mean_us: (s.stats.mean_jitter_ms() * 1000.0).round() as u64,
            jitter_max_us: (s.stats.max_jitter_ms() * 1000.0).round() as u64,
            first_us: s.stats.first_us,
            last_us: s.stats.last_us,
            payload_types: s.stats.payload_types_seen,
            markers: s.stats.markers,
            payload_type_changes: s.stats.payload_type_changes,
            rtcp: (s.rtcp.reports > 0).then(|| RtcpStored {
                reports: s.rtcp.reports,
                fraction_lost: s
                    .rtcp
                    .fraction_lost
                    .map_or(0, |f| (f * 256.0).round().clamp(0.0, 255.0) as u8),
                cumulative_lost: s.rtcp.cumulative_lost.unwrap_or(0),
                jitter_us: s.rtcp.jitter_ms.map_or(0, |j| (j * 1000.0).round() as u64),
                rtt_samples: s.rtcp.rtt_count,
                rtt_mean_us: s.rtcp.rtt_ms().map_or(0, |r| (r * 1000.0).round() as u64),
                rtt_min_us: s.rtcp.rtt_min_ms.map_or(0, |r| (r * 1000.0).round() as u64),
                rtt_max_us: s.rtcp.rtt_max_ms.map_or(0, |r| (r * 1000.0).round() as u64),
            }),
        }
    }

    fn same_stream(&self, o: &StoredStream) -> bool {
        self.src == o.src && self.dst == o.dst && self.ssrc == o.ssrc
    }

    /// Adds the figures of a later part of the same stream.
    pub fn merge(&mut self, later: &StoredStream) {
        self.packets += later.packets;
        self.lost += later.lost;
        self.duplicates += later.duplicates;
        self.reordered += later.reordered;
        self.max_delta_us = self.max_delta_us.max(later.max_delta_us);
        self.jitter_max_us = self.jitter_max_us.max(later.jitter_max_us);
        self.first_us = self.first_us.min(later.first_us);
        self.last_us = self.last_us.max(later.last_us);
    }
}

/// Merges streams of a reopened call: earlier figures plus later ones, by (src, dst, SSRC).
pub fn merge_streams(earlier: &[StoredStream], later: &[StoredStream]) -> Vec<StoredStream> {
    let mut out = earlier.to_vec();
    for l in later {
        match out.iter_mut().find(|e| e.same_stream(l)) {
            Some(e) => e.merge(l),
            None => out.push(l.clone()),
        }
    }
    out
}

fn put_addr(out: &mut Vec<u8>, a: &SocketAddr) {
    match a.ip() {
        IpAddr::V4(v) => {
            out.push(4);
            out.extend_from_slice(&v.octets());
        }
        IpAddr::V6(v) => {
            out.push(6);
            out.extend_from_slice(&v.octets());
        }
    }
    out.extend_from_slice(&a.port().to_be_bytes());
}

fn get_bytes<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
    let s = buf.get(*pos..pos.checked_add(n)?)?;
    *pos += n;
    Some(s)
}

fn get_addr(buf: &[u8], pos: &mut usize) -> Option<SocketAddr> {
    let fam = *buf.get(*pos)?;
    *pos += 1;
    let ip: IpAddr = match fam {
        4 => {
            let b: [u8; 4] = get_bytes(buf, pos, 4)?.try_into().ok()?;
            IpAddr::from(b)
        }
        6 => {
            let b: [u8; 16] = get_bytes(buf, pos, 16)?.try_into().ok()?;
            IpAddr::from(b)
        }
        _ => return None,
    };
    let p: [u8; 2] = get_bytes(buf, pos, 2)?.try_into().ok()?;
    Some(SocketAddr::new(ip, u16::from_be_bytes(p)))
}

/// Packs streams; times are relative to `base_us` (the call start).
pub fn pack_streams(streams: &[StoredStream], base_us: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(streams.len() * 48);
    put_varint(&mut out, streams.len() as u64);
    for s in streams {
        put_addr(&mut out, &s.src);
        put_addr(&mut out, &s.dst);
        out.extend_from_slice(&s.ssrc.to_be_bytes());
        out.push(s.payload_type);
        put_varint(&mut out, s.codec.len() as u64);
        out.extend_from_slice(s.codec.as_bytes());
        put_varint(&mut out, u64::from(s.clock_rate));
        out.push(match s.direction {
            StreamDirection::Uac => 1,
            StreamDirection::Uas => 2,
            StreamDirection::Unknown => 0,
        });
        for v in [
            s.packets,
            s.lost,
            s.duplicates,
            s.reordered,
            s.max_delta_us,
            s.jitter_mean_us,
            s.jitter_max_us,
        ] {
            put_varint(&mut out, v);
        }
        put_varint(&mut out, zz(s.first_us - base_us));
        put_varint(&mut out, zz(s.last_us - s.first_us));
        out.extend_from_slice(&s.payload_types.to_le_bytes());
        put_varint(&mut out, s.markers);
        put_varint(&mut out, u64::from(s.payload_type_changes));
        match &s.rtcp {
            None => out.push(0),
            Some(r) => {
                out.push(1);
                put_varint(&mut out, u64::from(r.reports));
                out.push(r.fraction_lost);
                put_varint(&mut out, zz(i64::from(r.cumulative_lost)));
                for v in [
                    r.jitter_us,
                    u64::from(r.rtt_samples),
                    r.rtt_mean_us,
                    r.rtt_min_us,
                    r.rtt_max_us,
                ] {
                    put_varint(&mut out, v);
                }
            }
        }
    }
    out
}

/// Unpacks [`pack_streams`]; damaged bytes give the streams read so far.
pub fn unpack_streams(buf: &[u8], base_us: i64) -> Vec<StoredStream> {
    let mut out = Vec::new();
    let mut pos = 0;
    let n = get_varint(buf, &mut pos).unwrap_or(0);
    for _ in 0..n {
        let Some(s) = unpack_one(buf, &mut pos, base_us) else {
            break;
        };
        out.push(s);
    }
    out
}

fn unpack_one(buf: &[u8], pos: &mut usize, base_us: i64) -> Option<StoredStream> {
    let src = get_addr(buf, pos)?;
    let dst = get_addr(buf, pos)?;
    let ssrc = u32::from_be_bytes(get_bytes(buf, pos, 4)?.try_into().ok()?);
    let payload_type = *get_bytes(buf, pos, 1)?.first()?;
    let clen = usize::try_from(get_varint(buf, pos)?).ok()?;
    let codec = String::from_utf8_lossy(get_bytes(buf, pos, clen)?).into_owned();
    let clock_rate = u32::try_from(get_varint(buf, pos)?).ok()?;
    let direction = match get_bytes(buf, pos, 1)?.first()? {
        1 => StreamDirection::Uac,
        2 => StreamDirection::Uas,
        _ => StreamDirection::Unknown,
    };
    let mut v = [0u64; 7];
    for x in &mut v {
        *x = get_varint(buf, pos)?;
    }
    // Damaged blobs may not overflow (nor panic in a debug build).
    let first_us = base_us.saturating_add(unzz(get_varint(buf, pos)?));
    let last_us = first_us.saturating_add(unzz(get_varint(buf, pos)?));
    let payload_types = u128::from_le_bytes(get_bytes(buf, pos, 16)?.try_into().ok()?);
    let markers = get_varint(buf, pos)?;
    let payload_type_changes = u32::try_from(get_varint(buf, pos)?).ok()?;
    let rtcp = match *get_bytes(buf, pos, 1)?.first()? {
        1 => {
            let reports = u32::try_from(get_varint(buf, pos)?).ok()?;
            let fraction_lost = *get_bytes(buf, pos, 1)?.first()?;
            let cumulative_lost = i32::try_from(unzz(get_varint(buf, pos)?)).ok()?;
            let mut r = [0u64; 5];
            for x in &mut r {
                *x = get_varint(buf, pos)?;
            }
            Some(RtcpStored {
                reports,
                fraction_lost,
                cumulative_lost,
                jitter_us: r[0],
                rtt_samples: u32::try_from(r[1]).ok()?,
                rtt_mean_us: r[2],
                rtt_min_us: r[3],
                rtt_max_us: r[4],
            })
        }
        _ => None,
    };
    let [packets, lost, duplicates, reordered, max_delta_us, jitter_mean_us, jitter_max_us] = v;
    Some(StoredStream {
        src,
        dst,
        ssrc,
        payload_type,
        codec,
        clock_rate,
        direction,
        packets,
        lost,
        duplicates,
        reordered,
        max_delta_us,
        jitter_mean_us,
        jitter_max_us,
        first_us,
        last_us,
        rtcp,
        payload_types,
        markers,
        payload_type_changes,
    })
}

/// Packs block references (sorted, delta-encoded).
pub fn pack_blocks(blocks: &[BlockRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocks.len() * 4);
    let mut prev = BlockRef {
        segment: 0,
        offset: 0,
    };
    for b in blocks {
        if b.segment != prev.segment {
            put_varint(&mut out, u64::from(b.segment) * 2 + 1);
            put_varint(&mut out, b.offset);
        } else {
            put_varint(&mut out, (b.offset - prev.offset.min(b.offset)) * 2);
        }
        prev = *b;
    }
    out
}

/// Unpacks [`pack_blocks`].
pub fn unpack_blocks(buf: &[u8]) -> Vec<BlockRef> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut cur = BlockRef {
        segment: 0,
        offset: 0,
    };
    while pos < buf.len() {
        let Some(v) = get_varint(buf, &mut pos) else {
            break;
        };
        if v & 1 == 1 {
            let Some(off) = get_varint(buf, &mut pos) else {
                break;
            };
            cur = BlockRef {
                segment: u32::try_from(v / 2).unwrap_or(u32::MAX),
                offset: off,
            };
        } else {
            // Damaged input may not overflow (nor panic in a debug build).
            cur.offset = cur.offset.saturating_add(v / 2);
        }
        out.push(cur);
    }
    out
}

/// A call as read from the index.
#[derive(Debug, Clone)]
pub struct CallRow {
    /// Bucket key ("" for an unbucketed store, "YYYYMMDD", "YYYYMMDD/HH").
    pub bucket: String,
    /// Call-ID bytes.
    pub call_id: Vec<u8>,
    /// Store handle.
    pub call_ref: u64,
    /// First method.
    pub method: String,
    /// Times (µs since the epoch).
    pub start_us: i64,
    /// See `start_us`.
    pub answer_us: Option<i64>,
    /// See `start_us`.
    pub end_us: i64,
    /// From user/domain, To user/domain, R-URI, user agents, signalling addresses.
    pub caller: String,
    /// See `caller`.
    pub caller_domain: String,
    /// See `caller`.
    pub callee: String,
    /// See `caller`.
    pub callee_domain: String,
    /// See `caller`.
    pub ruri: String,
    /// See `caller`.
    pub caller_ua: String,
    /// See `caller`.
    pub callee_ua: String,
    /// See `caller`.
    pub caller_addr: String,
    /// See `caller`.
    pub callee_addr: String,
    /// Final status, reason phrase, Q.850 cause.
    pub status: Option<u16>,
    /// See `status`.
    pub reason: String,
    /// See `status`.
    pub q850: Option<u16>,
    /// Outcome and phase.
    pub state: String,
    /// See `state`.
    pub phase: String,
    /// "caller", "callee" or "".
    pub hangup: String,
    /// Counts.
    pub messages: u32,
    /// See `messages`.
    pub rtp_packets: u64,
    /// See `messages`.
    pub rtcp_packets: u64,
    /// Correlation headers.
    pub x_cid: String,
    /// See `x_cid`.
    pub session_id: String,
    /// See `x_cid`.
    pub icid: String,
    /// Why the call was closed when not by SIP.
    pub close_reason: String,
    /// From tag of the initial request.
    pub from_tag: Vec<u8>,
    /// Streams.
    pub streams: Vec<StoredStream>,
    /// Blocks holding the call's packets.
    pub blocks: Vec<BlockRef>,
    /// Summary block holding the cold fields (filled in by [`crate::Store`] when read).
    pub cold: Option<BlockRef>,
    /// Worst direction's MOS average, and the lowest interval MOS (two decimals).
    pub mos_avg: Option<f64>,
    /// See `mos_avg`.
    pub mos_min: Option<f64>,
    /// Quality verdict ("" until the call completes).
    pub verdict: String,
    /// The quality report (`quality.json`), when the call is complete.
    pub quality_json: Option<Vec<u8>>,
}

impl CallRow {
    /// Call-ID as text.
    pub fn call_id_str(&self) -> String {
        String::from_utf8_lossy(&self.call_id).into_owned()
    }

    /// True for INVITE dialogs.
    pub fn is_call(&self) -> bool {
        self.method == "INVITE"
    }
}

fn nz(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn get_str(buf: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let n = usize::try_from(get_varint(buf, pos)?).ok()?;
    Some(get_bytes(buf, pos, n)?.to_vec())
}

/// Packs the fields of a call that searches do not need (R-URI, user agents, addresses,
/// reason, correlation headers, streams...). They are stored in a summary block of the
/// segment; the index row keeps only where.
pub fn pack_cold(s: &CallSummary, streams: &[StoredStream]) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    for f in [
        s.ruri.as_bytes(),
        s.caller_ua.as_bytes(),
        s.callee_ua.as_bytes(),
        s.reason.as_bytes(),
        s.x_cid.as_bytes(),
        s.session_id.as_bytes(),
        s.icid.as_bytes(),
        s.close_reason.as_bytes(),
        &s.from_tag,
    ] {
        put_bytes(&mut out, f);
    }
    put_varint(&mut out, s.q850.map_or(0, |q| u64::from(q) + 1));
    out.extend_from_slice(&pack_addrs(s.caller_addr, s.callee_addr));
    out.extend_from_slice(&pack_streams(streams, s.start_us));
    out
}

/// Fills a row's cold fields from [`pack_cold`] bytes; damaged bytes leave the rest empty.
pub fn unpack_cold(buf: &[u8], row: &mut CallRow) {
    let mut pos = 0;
    let mut strs: Vec<Vec<u8>> = Vec::with_capacity(9);
    for _ in 0..9 {
        match get_str(buf, &mut pos) {
            Some(v) => strs.push(v),
            None => return,
        }
    }
    let t = |i: usize| String::from_utf8_lossy(strs.get(i).map_or(&[][..], |v| v)).into_owned();
    row.ruri = t(0);
    row.caller_ua = t(1);
    row.callee_ua = t(2);
    row.reason = t(3);
    row.x_cid = t(4);
    row.session_id = t(5);
    row.icid = t(6);
    row.close_reason = t(7);
    row.from_tag = strs.get(8).cloned().unwrap_or_default();
    let Some(q) = get_varint(buf, &mut pos) else {
        return;
    };
    row.q850 = q.checked_sub(1).and_then(|q| u16::try_from(q).ok());
    let rest = buf.get(pos..).unwrap_or_default();
    let (a, b, used) = unpack_addrs(rest);
    row.caller_addr = a;
    row.callee_addr = b;
    row.streams = unpack_streams(rest.get(used..).unwrap_or_default(), row.start_us);
}

/// The quality report of a call as stored in its summary block (JSON). A call with no
/// streams at all stores none: its report (no media either way) follows from the row alone
/// and is rebuilt on read by [`derived_quality`], which saves the JSON of every
/// signalling-only call.
pub fn stored_quality(s: &CallSummary, stored_streams: &[StoredStream]) -> Option<Vec<u8>> {
    let q = s.quality.as_ref()?;
    if stored_streams.is_empty() && s.streams.is_empty() {
        return None;
    }
    serde_json::to_vec(q).ok()
}

/// The quality report of a completed, answered call that has no streams (see
/// [`stored_quality`]); `None` for any other row.
pub fn derived_quality(row: &CallRow) -> Option<Vec<u8>> {
    let graded = row.phase == "complete"
        && row.method == "INVITE"
        && row.answer_us.is_some()
        && row.streams.is_empty();
    if !graded {
        return None;
    }
    let s = row_to_summary(row);
    serde_json::to_vec(&siphon_calls::quality::report_for(&s)).ok()
}

/// Inserts or replaces a call row; `cold` is where its cold fields were written. For many
/// rows, an [`Upsert`] prepares the statement once.
pub fn upsert(
    conn: &Connection,
    s: &CallSummary,
    blocks: &[BlockRef],
    cold: Option<BlockRef>,
) -> rusqlite::Result<()> {
    Upsert::new(conn)?.row(s, blocks, cold)
}

/// The statement that writes call rows, prepared once for the rows of a flush (finding a
/// cached statement by its text and handing it back cost about a sixth of writing a row).
pub struct Upsert<'c>(rusqlite::CachedStatement<'c>);

impl<'c> Upsert<'c> {
    /// Prepares (or takes from the connection's cache) the statement.
    pub fn new(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached(UPSERT_SQL).map(Upsert)
    }

    /// Inserts or replaces a call row; `cold` is where its cold fields were written.
    pub fn row(
        &mut self,
        s: &CallSummary,
        blocks: &[BlockRef],
        cold: Option<BlockRef>,
    ) -> rusqlite::Result<()> {
        write_row(&mut self.0, s, blocks, cold)
    }
}

const UPSERT_SQL: &str =
    "INSERT OR REPLACE INTO calls (ref, call_id, method, start_us, answer_d, end_d,
           caller, caller_domain, callee, callee_domain, status, state, phase, hangup,
           messages, rtp, rtcp, blocks, cold, mos_avg, mos_min, verdict)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
           ?18, ?19, ?20, ?21, ?22)
         ON CONFLICT(ref) DO UPDATE SET method = excluded.method,
           start_us = excluded.start_us, answer_d = excluded.answer_d, end_d = excluded.end_d,
           caller = excluded.caller, caller_domain = excluded.caller_domain,
           callee = excluded.callee, callee_domain = excluded.callee_domain,
           status = excluded.status, state = excluded.state, phase = excluded.phase,
           hangup = excluded.hangup, messages = excluded.messages, rtp = excluded.rtp,
           rtcp = excluded.rtcp, blocks = excluded.blocks, cold = excluded.cold,
           mos_avg = excluded.mos_avg, mos_min = excluded.mos_min, verdict = excluded.verdict";

fn write_row(
    st: &mut rusqlite::Statement<'_>,
    s: &CallSummary,
    blocks: &[BlockRef],
    cold: Option<BlockRef>,
) -> rusqlite::Result<()> {
    let phase = match s.phase {
        siphon_calls::Phase::Pending => 0i64,
        siphon_calls::Phase::Active => 1,
        siphon_calls::Phase::Closing => 2,
        siphon_calls::Phase::Complete => 3,
    };
    let hangup = match s.hangup {
        None => 0i64,
        Some(siphon_calls::HangupSide::Caller) => 1,
        Some(siphon_calls::HangupSide::Callee) => 2,
    };
    let q = s.quality.as_ref();
    // An answered call without streams has no report in memory; its (derived) report's
    // verdict is searchable all the same.
    let noa = q.is_none()
        && s.method == "INVITE"
        && s.answer_us.is_some()
        && s.streams.is_empty()
        && s.phase == siphon_calls::Phase::Complete;
    let mos_min = q.and_then(|q| {
        [&q.directions.uac, &q.directions.uas]
            .into_iter()
            .flatten()
            .map(|d| d.mos.min)
            .reduce(f64::min)
    });
    // Each value bound with its own type (no `dyn ToSql` per value): a flush binds 22 per
    // row, tens of thousands of rows per flush at the highest rates. Every one of the 22 is
    // bound on every row, so no value of the previous row is left behind.
    st.raw_bind_parameter(1, s.call_ref as i64)?;
    st.raw_bind_parameter(2, s.call_id.as_slice())?;
    st.raw_bind_parameter(3, (s.method != "INVITE").then_some(s.method.as_str()))?;
    st.raw_bind_parameter(4, s.start_us)?;
    st.raw_bind_parameter(5, s.answer_us.map(|a| a - s.start_us))?;
    st.raw_bind_parameter(6, s.end_us - s.start_us)?;
    st.raw_bind_parameter(7, nz(&s.caller_user))?;
    st.raw_bind_parameter(8, nz(&s.caller_domain))?;
    st.raw_bind_parameter(9, nz(&s.callee_user))?;
    st.raw_bind_parameter(10, nz(&s.callee_domain))?;
    st.raw_bind_parameter(11, s.status)?;
    st.raw_bind_parameter(12, code(&STATES, s.state.as_str()))?;
    st.raw_bind_parameter(13, phase)?;
    st.raw_bind_parameter(14, hangup)?;
    st.raw_bind_parameter(15, s.messages)?;
    st.raw_bind_parameter(16, s.rtp_packets as i64)?;
    st.raw_bind_parameter(17, s.rtcp_packets as i64)?;
    st.raw_bind_parameter(18, pack_blocks(blocks))?;
    st.raw_bind_parameter(19, cold.map(|c| pack_blocks(&[c])))?;
    st.raw_bind_parameter(
        20,
        q.and_then(|q| q.mos).map(|m| (m * 100.0).round() as i64),
    )?;
    st.raw_bind_parameter(21, mos_min.map(|m| (m * 100.0).round() as i64))?;
    st.raw_bind_parameter(
        22,
        q.map(|q| verdict_index(q.verdict))
            .or_else(|| noa.then(no_audio_verdict)),
    )?;
    st.raw_execute()?;
    Ok(())
}

const COLS: &str = "ref, call_id, method, start_us, answer_d, end_d, caller, caller_domain, callee,
  callee_domain, status, state, phase, hangup, messages, rtp, rtcp, blocks, cold, mos_avg, mos_min,
  verdict";

fn row_to_call(bucket: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<CallRow> {
    let t = |i: usize| -> rusqlite::Result<String> {
        Ok(r.get::<_, Option<String>>(i)?.unwrap_or_default())
    };
    let start_us: i64 = r.get(3)?;
    let blocks: Option<Vec<u8>> = r.get(17)?;
    let cold: Option<Vec<u8>> = r.get(18)?;
    let method = t(2)?;
    Ok(CallRow {
        bucket: bucket.to_string(),
        call_ref: r.get::<_, i64>(0)? as u64,
        call_id: r.get(1)?,
        method: if method.is_empty() {
            "INVITE".to_string()
        } else {
            method
        },
        start_us,
        answer_us: r
            .get::<_, Option<i64>>(4)?
            .map(|d| start_us.saturating_add(d)),
        end_us: start_us.saturating_add(r.get::<_, i64>(5)?),
        caller: t(6)?,
        caller_domain: t(7)?,
        callee: t(8)?,
        callee_domain: t(9)?,
        status: r.get(10)?,
        state: name(&STATES, r.get(11)?),
        phase: name(&PHASES, r.get(12)?),
        hangup: name(&HANGUPS, r.get(13)?),
        messages: r.get(14)?,
        rtp_packets: r.get::<_, i64>(15)? as u64,
        rtcp_packets: r.get::<_, i64>(16)? as u64,
        blocks: blocks.map(|b| unpack_blocks(&b)).unwrap_or_default(),
        cold: cold.and_then(|b| unpack_blocks(&b).first().copied()),
        mos_avg: r.get::<_, Option<i64>>(19)?.map(|m| m as f64 / 100.0),
        mos_min: r.get::<_, Option<i64>>(20)?.map(|m| m as f64 / 100.0),
        verdict: name(&VERDICTS, r.get(21)?),
        quality_json: None,
        ruri: String::new(),
        caller_ua: String::new(),
        callee_ua: String::new(),
        caller_addr: String::new(),
        callee_addr: String::new(),
        reason: String::new(),
        q850: None,
        x_cid: String::new(),
        session_id: String::new(),
        icid: String::new(),
        close_reason: String::new(),
        from_tag: Vec::new(),
        streams: Vec::new(),
    })
}

/// The calls whose Call-ID has key `?1`.
const KEY_LOOKUP: &str =
    "SELECT k.ref FROM key_runs r CROSS JOIN call_keys k ON k.run = r.run AND k.call_key = ?1";

/// The row of one Call-ID (the latest, should a Call-ID have been reused for a new call).
pub fn get(conn: &Connection, bucket: &str, call_id: &[u8]) -> rusqlite::Result<Option<CallRow>> {
    // Candidates first, one seek per run (CROSS JOIN keeps the runs as the outer loop: left
    // to itself the planner scans every key), then their rows (in one statement the planner
    // walked the whole table in `ref` order instead).
    let refs: rusqlite::Result<Vec<i64>> = conn.prepare_cached(KEY_LOOKUP).and_then(|mut st| {
        st.query_map(params![call_key(call_id)], |r| r.get(0))?
            .collect()
    });
    let by_key = refs.and_then(|mut refs| {
        refs.sort_unstable_by(|a, b| b.cmp(a));
        refs.dedup();
        let mut st = conn.prepare_cached(&format!("SELECT {COLS} FROM calls WHERE ref = ?1"))?;
        for r in refs {
            let row = st
                .query_row(params![r], |x| row_to_call(bucket, x))
                .optional()?;
            if let Some(row) = row.filter(|row| row.call_id == call_id) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    });
    match by_key {
        // An index written by an older version that no writer has opened since.
        Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such table") => conn
            .query_row(
                &format!("SELECT {COLS} FROM calls WHERE call_id = ?1"),
                params![call_id],
                |r| row_to_call(bucket, r),
            )
            .optional(),
        other => other,
    }
}

/// Search filter.
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    /// Calls that started at or after (µs).
    pub from_us: Option<i64>,
    /// Calls that started before (µs).
    pub to_us: Option<i64>,
    /// Substring of the caller user or domain.
    pub caller: Option<String>,
    /// Substring of the callee user or domain.
    pub callee: Option<String>,
    /// Final status code.
    pub status: Option<u16>,
    /// Outcome ("answered", "busy", ...).
    pub state: Option<String>,
    /// Include non-INVITE dialogs (REGISTER, OPTIONS, ...).
    pub include_dialogs: bool,
    /// Only non-INVITE dialogs.
    pub only_dialogs: bool,
    /// MOS average at least / at most.
    pub min_mos: Option<f64>,
    /// See `min_mos`.
    pub max_mos: Option<f64>,
    /// Verdict (Excellent, Good, Fair, Poor, Bad).
    pub verdict: Option<String>,
    /// At most this many rows (0: no limit).
    pub limit: usize,
}

/// Calls of one bucket matching the query, by start time.
pub fn search(conn: &Connection, bucket: &str, q: &CallQuery) -> rusqlite::Result<Vec<CallRow>> {
    let mut sql = format!("SELECT {COLS} FROM calls WHERE start_us >= :from AND start_us < :to");
    let from = q.from_us.unwrap_or(i64::MIN);
    let to = q.to_us.unwrap_or(i64::MAX);
    let mut args: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":from", &from), (":to", &to)];
    // `method` is NULL for INVITE dialogs (calls).
    if q.only_dialogs {
        sql.push_str(" AND method IS NOT NULL");
    } else if !q.include_dialogs {
        sql.push_str(" AND method IS NULL");
    }
    if let Some(c) = &q.caller {
        sql.push_str(" AND (instr(caller, :caller) > 0 OR instr(caller_domain, :caller) > 0)");
        args.push((":caller", c));
    }
    if let Some(c) = &q.callee {
        sql.push_str(" AND (instr(callee, :callee) > 0 OR instr(callee_domain, :callee) > 0)");
        args.push((":callee", c));
    }
    if let Some(st) = &q.status {
        sql.push_str(" AND status = :status");
        args.push((":status", st));
    }
    let state_code = q.state.as_deref().map(|v| code(&STATES, v));
    if let Some(st) = &state_code {
        sql.push_str(" AND state = :state");
        args.push((":state", st));
    }
    let min_mos = q.min_mos.map(|m| (m * 100.0).round() as i64);
    if let Some(m) = &min_mos {
        sql.push_str(" AND mos_avg >= :min_mos");
        args.push((":min_mos", m));
    }
    let max_mos = q.max_mos.map(|m| (m * 100.0).round() as i64);
    if let Some(m) = &max_mos {
        sql.push_str(" AND mos_avg <= :max_mos");
        args.push((":max_mos", m));
    }
    let verdict = q.verdict.as_deref().map(|v| verdict_code(v).unwrap_or(-1));
    if let Some(v) = &verdict {
        sql.push_str(" AND verdict = :verdict");
        args.push((":verdict", v));
    }
    sql.push_str(" ORDER BY start_us, ref");
    if q.limit > 0 {
        sql.push_str(&format!(" LIMIT {}", q.limit));
    }
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(args.as_slice(), |r| row_to_call(bucket, r))?;
    rows.collect()
}

/// Largest call handle in the index.
pub fn max_ref(conn: &Connection) -> rusqlite::Result<u64> {
    let v: Option<i64> = conn.query_row("SELECT max(ref) FROM calls", [], |r| r.get(0))?;
    Ok(v.unwrap_or(0) as u64)
}

/// Where a restart after a crash must read the bucket's segments again (see the writer).
pub fn set_recover_from(conn: &Connection, at: BlockRef) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('recover_from', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![format!("{}:{}", at.segment, at.offset)],
    )?;
    Ok(())
}

/// The point saved by [`set_recover_from`]; `None` when there is none (a store written before
/// recovery points, or one just recovered).
pub fn recover_from(conn: &Connection) -> rusqlite::Result<Option<BlockRef>> {
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'recover_from'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| {
        let (s, o) = v.split_once(':')?;
        Some(BlockRef {
            segment: s.parse().ok()?,
            offset: o.parse().ok()?,
        })
    }))
}

/// Removes the recovery point (after a recovery or a rebuild).
pub fn clear_recover_from(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM meta WHERE key = 'recover_from'", [])?;
    Ok(())
}

/// Turns a stored row back into a summary, for a call that receives late messages.
pub fn row_to_summary(r: &CallRow) -> CallSummary {
    CallSummary {
        call_ref: r.call_ref,
        call_id: r.call_id.clone(),
        method: r.method.clone(),
        start_us: r.start_us,
        answer_us: r.answer_us,
        end_us: r.end_us,
        caller_user: r.caller.clone(),
        caller_domain: r.caller_domain.clone(),
        callee_user: r.callee.clone(),
        callee_domain: r.callee_domain.clone(),
        ruri: r.ruri.clone(),
        caller_ua: r.caller_ua.clone(),
        callee_ua: r.callee_ua.clone(),
        caller_addr: r.caller_addr.parse().ok(),
        callee_addr: r.callee_addr.parse().ok(),
        from_tag: r.from_tag.clone(),
        status: r.status,
        reason: r.reason.clone(),
        q850: r.q850,
        state: CallState::parse(&r.state).unwrap_or(CallState::InProgress),
        phase: siphon_calls::Phase::Complete,
        hangup: match r.hangup.as_str() {
            "caller" => Some(siphon_calls::HangupSide::Caller),
            "callee" => Some(siphon_calls::HangupSide::Callee),
            _ => None,
        },
        messages: r.messages,
        rtp_packets: r.rtp_packets,
        rtcp_packets: r.rtcp_packets,
        streams: Vec::new(),
        x_cid: r.x_cid.clone(),
        session_id: r.session_id.clone(),
        icid: r.icid.clone(),
        cancel_seen: r.state == "cancelled",
        close_reason: r.close_reason.clone(),
        quality: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A completed call `r` with `messages` SIP messages (its start time follows `r`).
    pub(crate) fn call(r: u64, messages: u32) -> CallSummary {
        CallSummary {
            call_ref: r,
            call_id: format!(
                "{:x}-{r}@example.com",
                r.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            )
            .into_bytes(),
            method: "INVITE".into(),
            start_us: 1_800_000_000_000_000 + r as i64,
            answer_us: None,
            end_us: 1_800_000_000_000_000 + r as i64 + 1000,
            caller_user: format!("alice{r}"),
            caller_domain: "a.example".into(),
            callee_user: format!("bob{r}"),
            callee_domain: String::new(),
            ruri: String::new(),
            caller_ua: String::new(),
            callee_ua: String::new(),
            caller_addr: None,
            callee_addr: None,
            from_tag: Vec::new(),
            status: Some(486),
            reason: String::new(),
            q850: None,
            state: CallState::Busy,
            phase: siphon_calls::Phase::Complete,
            hangup: None,
            messages,
            rtp_packets: 0,
            rtcp_packets: 0,
            streams: Vec::new(),
            x_cid: String::new(),
            session_id: String::new(),
            icid: String::new(),
            cancel_seen: false,
            close_reason: String::new(),
            quality: None,
        }
    }

    /// `index.db` in a fresh scratch directory of its own, for tests.
    pub(crate) fn temp_db(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("siphon-index-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("index.db")
    }

    #[test]
    fn a_new_index_has_large_pages_and_an_existing_one_keeps_its_own() {
        let page_size =
            |c: &Connection| -> i64 { c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap() };
        // The writer's own checkpoint comes at the same log size whatever the pages.
        let autocheckpoint = |c: &Connection| -> i64 {
            c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                .unwrap()
        };
        let fresh = temp_db("pages-new");
        let c = open(&fresh).unwrap();
        assert_eq!(page_size(&c), PAGE_SIZE);
        assert_eq!(autocheckpoint(&c) * PAGE_SIZE, WAL_CHECKPOINT_BYTES);
        // An index made with SQLite's default pages (as earlier versions made them) opens as
        // it is: its pages are not rewritten.
        let old = temp_db("pages-old");
        {
            let c = Connection::open(&old).unwrap();
            c.pragma_update(None, "journal_mode", "WAL").unwrap();
            c.execute_batch(SCHEMA).unwrap();
        }
        let c = open(&old).unwrap();
        assert_eq!(page_size(&c), 4096);
        assert_eq!(autocheckpoint(&c) * 4096, WAL_CHECKPOINT_BYTES);
        assert!(schema_ready(&c).unwrap());
        for p in [fresh, old] {
            let _ = std::fs::remove_dir_all(p.parent().unwrap());
        }
    }

    #[test]
    fn call_ids_are_found_across_key_runs_and_a_reused_one_gives_the_latest_call() {
        let path = temp_db("runs");
        let conn = open(&path).unwrap();
        let calls: Vec<CallSummary> = (1..=50).map(|r| call(r, 3)).collect();
        // Runs of 8 keys, written 7 per flush: a run takes whole flushes until it holds 8 or
        // more, so 50 keys make 4 runs.
        for chunk in calls.chunks(7) {
            let mut keys = Vec::new();
            for s in chunk {
                upsert(&conn, s, &[], None).unwrap();
                keys.push((call_key(&s.call_id), s.call_ref as i64));
            }
            add_call_keys_with(&conn, &mut keys, 8).unwrap();
        }
        let runs: i64 = conn
            .query_row("SELECT count(*) FROM key_runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runs, 4);
        for s in &calls {
            let row = get(&conn, "b", &s.call_id).unwrap().expect("found");
            assert_eq!(row.call_ref, s.call_ref);
        }
        assert!(get(&conn, "b", b"no-such-call").unwrap().is_none());
        // The same Call-ID used again later by a new call.
        let mut again = call(77, 9);
        again.call_id = calls[3].call_id.clone();
        upsert(&conn, &again, &[], None).unwrap();
        add_call_keys_with(&conn, &mut [(call_key(&again.call_id), 77)], 8).unwrap();
        let row = get(&conn, "b", &again.call_id).unwrap().unwrap();
        assert_eq!((row.call_ref, row.messages), (77, 9));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_run_of_many_keys_holds_each_once_and_finds_every_call() {
        let path = temp_db("batches");
        let conn = open(&path).unwrap();
        // Three whole statements of keys and a remainder, one key given twice.
        let n = 3 * KEYS_PER_INSERT as u64 + 7;
        let calls: Vec<CallSummary> = (1..=n).map(|r| call(r, 2)).collect();
        let mut keys = Vec::new();
        for s in &calls {
            upsert(&conn, s, &[], None).unwrap();
            keys.push((call_key(&s.call_id), s.call_ref as i64));
        }
        keys.push(keys[5]);
        add_call_keys(&conn, &mut keys).unwrap();
        let held: i64 = conn
            .query_row("SELECT count(*) FROM call_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(held, n as i64);
        for s in &calls {
            let row = get(&conn, "b", &s.call_id).unwrap().expect("found");
            assert_eq!(row.call_ref, s.call_ref);
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_writer_adds_keys_to_small_runs_and_rewrites_them_as_full_runs_a_slice_at_a_time() {
        let path = temp_db("keywriter");
        let conn = open(&path).unwrap();
        let runs = |conn: &Connection| -> Vec<(i64, i64)> {
            conn.prepare("SELECT run, keys FROM key_runs ORDER BY run")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let held = |conn: &Connection, run: i64| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM call_keys WHERE run = ?1",
                [run],
                |r| r.get(0),
            )
            .unwrap()
        };
        let calls: Vec<CallSummary> = (1..=40).map(|r| call(r, 3)).collect();
        let mut kw = KeyWriter::default();
        // Small runs of 4 keys, full runs of 16 written 8 keys per flush, 3 keys per flush.
        let flush = |kw: &mut KeyWriter, chunk: &[CallSummary]| {
            let tx = conn.unchecked_transaction().unwrap();
            let mut keys = Vec::new();
            for s in chunk {
                upsert(&conn, s, &[], None).unwrap();
                keys.push((call_key(&s.call_id), s.call_ref as i64));
            }
            kw.add_with(&conn, &mut keys, 4, 16, 8).unwrap();
            tx.commit().unwrap();
        };
        let mut seen = Vec::new();
        for (i, chunk) in calls.chunks(3).enumerate() {
            flush(&mut kw, chunk);
            seen.extend_from_slice(chunk);
            // Every call written so far is found at every step (once, though its key may be
            // in a small run and in the full run being written).
            for s in &seen {
                assert_eq!(
                    get(&conn, "b", &s.call_id).unwrap().unwrap().call_ref,
                    s.call_ref
                );
            }
            // Small runs 0, 1, 2 take 6 keys each (a run takes whole flushes until it holds 4
            // or more); at 18 keys full run 3 starts with a first slice of 8.
            if i == 5 {
                assert_eq!(runs(&conn), vec![(0, 6), (1, 6), (2, 6), (3, 8)]);
            }
        }
        // Flushes without new calls finish the full run and delete the small runs it
        // replaces, one per flush.
        for _ in 0..4 {
            flush(&mut kw, &[]);
        }
        // 40 keys: full runs 3 and 7 (in place of small runs 0-2 and 4-6), small run 8.
        assert_eq!(runs(&conn), vec![(3, 18), (7, 18), (8, 4)]);
        for (run, keys) in runs(&conn) {
            assert_eq!(held(&conn, run), keys, "run {run}");
        }
        // After a reset (a failed transaction), the writer starts a new small run and leaves
        // the old one alone.
        kw.reset();
        let extra = call(41, 3);
        flush(&mut kw, std::slice::from_ref(&extra));
        assert_eq!(runs(&conn), vec![(3, 18), (7, 18), (8, 4), (9, 1)]);
        for s in calls.iter().chain([&extra]) {
            assert_eq!(
                get(&conn, "b", &s.call_id).unwrap().unwrap().call_ref,
                s.call_ref
            );
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn retired_small_runs_are_deleted_a_slice_at_a_time_and_every_call_stays_found() {
        let path = temp_db("keywriter-sliced-deletes");
        let conn = open(&path).unwrap();
        let total_keys = |conn: &Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM call_keys", [], |r| r.get(0))
                .unwrap()
        };
        let calls: Vec<CallSummary> = (1..=60).map(|r| call(r, 3)).collect();
        let mut kw = KeyWriter::default();
        // Small runs of 8 keys, full runs of 16, slices of 3; one call per flush.
        let mut seen: Vec<&CallSummary> = Vec::new();
        let mut before = 0;
        let mut most_deleted = 0;
        for s in calls.iter().map(Some).chain(std::iter::repeat_n(None, 12)) {
            let tx = conn.unchecked_transaction().unwrap();
            let mut keys = Vec::new();
            if let Some(s) = s {
                upsert(&conn, s, &[], None).unwrap();
                keys.push((call_key(&s.call_id), s.call_ref as i64));
                seen.push(s);
            }
            kw.add_with(&conn, &mut keys, 8, 16, 3).unwrap();
            tx.commit().unwrap();
            let after = total_keys(&conn);
            // Keys added this flush: its own (1) and a full run's slice (3).
            most_deleted = most_deleted.max(before + 4 - after);
            before = after;
            for s in &seen {
                assert_eq!(
                    get(&conn, "b", &s.call_id).unwrap().unwrap().call_ref,
                    s.call_ref
                );
            }
        }
        assert!(
            most_deleted <= 3 + 4,
            "at most a slice deleted per flush, besides the slice written: {most_deleted}"
        );
        assert!(
            most_deleted >= 3,
            "retired runs were deleted in slices: {most_deleted}"
        );
        // Everything retired is gone: only full runs and the small runs not yet gathered.
        let runs: Vec<(i64, i64)> = conn
            .prepare("SELECT run, keys FROM key_runs ORDER BY run")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(runs.iter().map(|r| r.1).sum::<i64>(), 60, "{runs:?}");
        assert_eq!(total_keys(&conn), 60);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn runs_stay_bounded_when_flushes_bring_more_keys_than_a_slice() {
        let path = temp_db("keywriter-big-flushes");
        let conn = open(&path).unwrap();
        let calls: Vec<CallSummary> = (1..=360).map(|r| call(r, 3)).collect();
        let mut kw = KeyWriter::default();
        // Small runs of 4, full runs of 16 written 2 keys per flush, 6 keys per flush: a full
        // run must not take so many flushes that the next one gathers more keys than it had.
        for chunk in calls.chunks(6) {
            let tx = conn.unchecked_transaction().unwrap();
            let mut keys = Vec::new();
            for s in chunk {
                upsert(&conn, s, &[], None).unwrap();
                keys.push((call_key(&s.call_id), s.call_ref as i64));
            }
            kw.add_with(&conn, &mut keys, 4, 16, 2).unwrap();
            tx.commit().unwrap();
            let biggest: i64 = conn
                .query_row("SELECT max(keys) FROM key_runs", [], |r| r.get(0))
                .unwrap();
            assert!(biggest <= 24, "a run of {biggest} keys");
            assert!(
                kw.gathered.len() <= 24,
                "{} keys gathered",
                kw.gathered.len()
            );
        }
        for s in &calls {
            assert_eq!(
                get(&conn, "b", &s.call_id).unwrap().unwrap().call_ref,
                s.call_ref
            );
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_call_id_look_up_seeks_each_run_instead_of_scanning_the_keys() {
        let path = temp_db("plan");
        let conn = open(&path).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {KEY_LOOKUP}"))
            .unwrap()
            .query_map([1i64], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.starts_with("SEARCH k USING PRIMARY KEY (run=? AND call_key=?)")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.starts_with("SCAN k")), "{plan:?}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn an_index_of_the_first_version_is_read_as_it_is_and_upgraded_by_a_writer() {
        let path = temp_db("v1");
        {
            // The first version's schema: Call-IDs indexed in the calls table itself.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
                 INSERT INTO meta VALUES ('version', 1);
                 CREATE TABLE calls (ref INTEGER PRIMARY KEY, call_id BLOB NOT NULL UNIQUE,
                   method TEXT, start_us INTEGER NOT NULL, answer_d INTEGER,
                   end_d INTEGER NOT NULL, caller TEXT, caller_domain TEXT, callee TEXT,
                   callee_domain TEXT, status INTEGER, state INTEGER, phase INTEGER,
                   hangup INTEGER, messages INTEGER, rtp INTEGER, rtcp INTEGER,
                   mos_avg INTEGER, mos_min INTEGER, verdict INTEGER, blocks BLOB, cold BLOB);
                 CREATE INDEX calls_start ON calls(start_us);",
            )
            .unwrap();
            for r in 1..=20 {
                upsert(&c, &call(r, 5), &[], None).unwrap();
            }
        }
        let wanted = call(13, 5).call_id;
        // A reader before any writer has opened it.
        let ro = open_read(&path).unwrap();
        assert_eq!(get(&ro, "b", &wanted).unwrap().unwrap().call_ref, 13);
        drop(ro);
        // A writer upgrades it; the rows are found through their keys, new ones too.
        let conn = open(&path).unwrap();
        let v: i64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(v, INDEX_VERSION);
        let keyed: i64 = conn
            .query_row("SELECT count(*) FROM call_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(keyed, 20);
        assert_eq!(get(&conn, "b", &wanted).unwrap().unwrap().call_ref, 13);
        let new = call(21, 2);
        upsert(&conn, &new, &[], None).unwrap();
        add_call_keys(&conn, &mut [(call_key(&new.call_id), 21)]).unwrap();
        assert_eq!(get(&conn, "b", &new.call_id).unwrap().unwrap().call_ref, 21);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn stored_verdict_codes_match_the_names_searched_for() {
        use siphon_quality::Verdict;
        for v in [
            Verdict::Excellent,
            Verdict::Good,
            Verdict::Fair,
            Verdict::Poor,
            Verdict::Bad,
        ] {
            assert_eq!(Some(verdict_index(v)), verdict_code(v.as_str()), "{v:?}");
            assert_eq!(name(&VERDICTS, Some(verdict_index(v))), v.as_str());
        }
    }

    #[test]
    fn block_refs_round_trip() {
        let b = vec![
            BlockRef {
                segment: 1,
                offset: 16,
            },
            BlockRef {
                segment: 1,
                offset: 5000,
            },
            BlockRef {
                segment: 3,
                offset: 16,
            },
            BlockRef {
                segment: 3,
                offset: 1 << 40,
            },
        ];
        assert_eq!(unpack_blocks(&pack_blocks(&b)), b);
    }

    #[test]
    fn streams_round_trip_v4_and_v6() {
        let s = StoredStream {
            src: "127.0.0.1:20000".parse().unwrap(),
            dst: "[2001:db8::1]:40000".parse().unwrap(),
            ssrc: 0xDEE0EE8F,
            payload_type: 8,
            codec: "PCMA".into(),
            clock_rate: 8000,
            direction: StreamDirection::Uac,
            packets: 236,
            lost: 3,
            duplicates: 2,
            reordered: 1,
            max_delta_us: 34_835,
            jitter_mean_us: 362,
            jitter_max_us: 827,
            first_us: 1_795_335_337_621_789,
            last_us: 1_795_335_344_671_502,
            rtcp: Some(RtcpStored {
                reports: 3,
                fraction_lost: 12,
                cumulative_lost: -2,
                jitter_us: 1250,
                rtt_samples: 2,
                rtt_mean_us: 41_000,
                rtt_min_us: 40_000,
                rtt_max_us: 42_000,
            }),
            payload_types: (1 << 8) | (1 << 101),
            markers: 1,
            payload_type_changes: 2,
        };
        let base = 1_795_335_337_116_552;
        assert_eq!(
            unpack_streams(&pack_streams(std::slice::from_ref(&s), base), base),
            vec![s]
        );
    }

    #[test]
    fn damaged_blobs_do_not_panic() {
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let _ = unpack_streams(&junk, 0);
            let _ = unpack_blocks(&junk);
        }
        // Offsets that add up past 2^64 saturate instead of overflowing.
        let mut huge = Vec::new();
        for _ in 0..3 {
            crate::segment::put_varint(&mut huge, u64::MAX - 1);
        }
        let b = unpack_blocks(&huge);
        assert_eq!(b.len(), 3);
        assert_eq!(b[2].offset, u64::MAX);
        // A stream whose times add up past 2^63 (found by the `store` fuzz target).
        let s = StoredStream {
            src: "127.0.0.1:20000".parse().unwrap(),
            dst: "127.0.0.1:30000".parse().unwrap(),
            ssrc: 1,
            payload_type: 0,
            codec: "PCMU".into(),
            clock_rate: 8000,
            direction: StreamDirection::Uac,
            packets: 1,
            lost: 0,
            duplicates: 0,
            reordered: 0,
            max_delta_us: 0,
            jitter_mean_us: 0,
            jitter_max_us: 0,
            first_us: i64::MAX - 5,
            last_us: i64::MAX - 5,
            rtcp: None,
            payload_types: 1,
            markers: 0,
            payload_type_changes: 0,
        };
        let packed = pack_streams(std::slice::from_ref(&s), 0);
        let back = unpack_streams(&packed, i64::MAX - 1);
        assert_eq!(back[0].first_us, i64::MAX);
        assert_eq!(back[0].last_us, i64::MAX);
    }
}
