//! The write side: receives pipeline output, buffers it in blocks, and at each flush makes the
//! blocks durable first and then commits the index rows that point to them (inserted while the
//! blocks are synced, committed after).

use std::collections::{HashSet, VecDeque};
use std::io;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use siphon_calls::{CallRef, CallSummary, RefMap};
use siphon_ingest::{Record, Sink};
use siphon_wire::link::LinkType;

use crate::checkpoint::Checkpointer;
use crate::index::{self, merge_streams, StoredStream};
use crate::segment::{
    BlockBuf, BlockKind, BlockRef, SegmentWriter, KIND_CALL_DEF, KIND_QUALITY, KIND_SUMMARY,
};
use crate::{bucket_key, list_segments, StoreConfig, StoreError};

/// A bucket's index is checkpointed (on the checkpoint thread) after this many commits.
const CHECKPOINT_EVERY_COMMITS: u32 = 4;

/// SIP blocks are cut at this raw size: small enough that reading one call's ladder
/// decompresses little, large enough to compress well across calls.
const SIP_BLOCK_MAX: usize = 256 << 10;
/// What a completed call's summary waiting to be written is counted as in
/// [`StoreWriter::backlog_bytes`]: an estimate for its strings, streams and quality report.
pub const SUMMARY_BYTES: usize = 1024;
/// Summary blocks are cut at this raw size.
const SUMMARY_BLOCK_MAX: usize = 128 << 10;
const MEDIA_BLOCK_MAX: usize = 256 << 10;
/// zstd window of the block compressors: the size at which SIP and media blocks are sealed.
const BLOCK_WINDOW_LOG: u32 = SIP_BLOCK_MAX.trailing_zeros();
const _: () = assert!(SIP_BLOCK_MAX == 1 << BLOCK_WINDOW_LOG && MEDIA_BLOCK_MAX <= SIP_BLOCK_MAX);

/// A compressor of blocks (SIP, summary and media) at `level`, its window set to the block
/// size (256 KiB). A block is sealed once it holds 256 KiB or a little more, so zstd would take
/// it for a large input and pick its parameters for those (a 512 KiB window), which compress the
/// same bytes to the same size more slowly. `cargo bench -p siphon-store --bench block_zstd`:
/// SIP whose calls each have their own random identifiers, at level 1: 1,680–2,160 MB/s against
/// 1,550–1,650 MB/s, the output 291 bytes larger in 4.9 MB; RTP with G.711-like payloads, at the
/// media level: 1,320–1,350 MB/s against 1,030–1,100 MB/s, 256 bytes larger in 56.6 MB.
pub fn block_compressor(level: i32) -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut z = zstd::bulk::Compressor::new(level)?;
    z.set_parameter(zstd::zstd_safe::CParameter::WindowLog(BLOCK_WINDOW_LOG))?;
    Ok(z)
}

/// zstd level of media blocks: audio payloads hardly compress, headers do; a negative (fast)
/// level keeps most of the gain at a fraction of the cost.
pub const MEDIA_ZSTD_LEVEL: i32 = -3;

/// Counters of the write side.
#[derive(Debug, Clone, Default)]
pub struct WriteStats {
    /// Records buffered.
    pub records: u64,
    /// Raw bytes of SIP records and of media records.
    pub sip_raw_bytes: u64,
    /// See `sip_raw_bytes`.
    pub media_raw_bytes: u64,
    /// Compressed bytes of SIP blocks and of media blocks written.
    pub sip_block_bytes: u64,
    /// See `sip_block_bytes`.
    pub media_block_bytes: u64,
    /// Compressed bytes of summary blocks (the index's cold fields).
    pub summary_block_bytes: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Flushes done.
    pub flushes: u64,
    /// Call rows written.
    pub rows_written: u64,
    /// Total time spent in flushes.
    pub flush_time: Duration,
    /// At open, after an unclean stop: calls rebuilt from the segments (they had no index row
    /// yet) and rows that got blocks they did not list.
    pub recovered_calls: u64,
    /// See `recovered_calls`.
    pub repaired_rows: u64,
}

struct Pending {
    bytes: Vec<u8>,
    /// (offset in `bytes`, call refs of the block)
    blocks: Vec<(usize, Vec<CallRef>)>,
}

struct Bucket {
    key: String,
    dir: PathBuf,
    conn: Connection,
    /// `conn`'s file, for the checkpoint thread.
    index_path: PathBuf,
    /// Commits since a checkpoint was last asked for.
    commits: u32,
    /// The recovery point last saved in `conn` (see `save_recovery_points`).
    recover_saved: Option<BlockRef>,
    /// Given up for retention (see [`StoreWriter::release_bucket`]): its files are closed and
    /// `conn` is an empty in-memory database; nothing is written to it any more.
    released: bool,
    /// Its directory, segments and index are open. Until then (they could not be, e.g. on a
    /// full disk) `conn` is an empty in-memory database, records for the bucket are held in
    /// memory, and every flush tries to open it first (see `open_files`).
    opened: bool,
    /// Where this writer adds Call-ID keys to `conn`.
    keys: index::KeyWriter,
    seg: Option<SegmentWriter>,
    next_seg: u32,
    sip: BlockBuf,
    sip_calls: HashSet<CallRef, foldhash::fast::RandomState>,
    pending: Pending,
}

/// How a flush syncs a segment before committing the rows that list its blocks.
type SyncSegment = Arc<dyn Fn(&SegmentWriter) -> io::Result<()> + Send + Sync>;

/// A segment's sync before its rows are committed: on a thread of its own, or done in place
/// when no thread could be started.
enum SegmentSync<'scope> {
    Running(std::thread::ScopedJoinHandle<'scope, io::Result<()>>),
    Done(io::Result<()>),
}

impl<'scope> SegmentSync<'scope> {
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        seg: &'scope SegmentWriter,
        sync: &'scope SyncSegment,
    ) -> Self {
        match std::thread::Builder::new()
            .name("segment-sync".into())
            .spawn_scoped(scope, || sync(seg))
        {
            Ok(h) => SegmentSync::Running(h),
            Err(_) => SegmentSync::Done(sync(seg)),
        }
    }

    /// Waits for the sync, if there is one.
    fn wait(sync: Option<Self>) -> io::Result<()> {
        match sync {
            Some(SegmentSync::Running(h)) => h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the segment's sync thread panicked"))),
            Some(SegmentSync::Done(r)) => r,
            None => Ok(()),
        }
    }
}

struct OpenCall {
    /// Index in `StoreWriter::buckets`.
    bucket: usize,
    blocks: Vec<BlockRef>,
    earlier_streams: Vec<StoredStream>,
    /// The final summary of a completed call, until the flush writes it (boxed: most
    /// entries are open calls without one).
    summary: Option<Box<CallSummary>>,
    media: BlockBuf,
    /// The first block written for the call since its index row was last written (or ever,
    /// when it has none yet): a restart after a crash recovers from there.
    unindexed: Option<BlockRef>,
    /// The call has a row, and its Call-ID key, in its bucket's index.
    keyed: bool,
}

/// The store's writer; implements the pipeline's [`Sink`].
pub struct StoreWriter {
    cfg: StoreConfig,
    /// Buckets opened in this run; calls and records refer to them by position.
    buckets: Vec<Bucket>,
    bucket_pos: HashMap<String, usize>,
    /// The time range [start, end) of the bucket last looked up by time, and its position.
    last_range: Option<(i64, i64, usize)>,
    calls: RefMap<OpenCall>,
    /// Calls whose media buffer filled since the last flush (each at least once): a flush
    /// seals these rather than looking at every open call.
    with_media: Vec<CallRef>,
    /// Per bucket, the `unindexed` blocks of open calls in the order they were set, which is
    /// block order (blocks are appended): the first entry still matching its call is where a
    /// restart must recover from (see `save_recovery_points`).
    unindexed: Vec<VecDeque<(BlockRef, CallRef)>>,
    completed: Vec<CallRef>,
    /// Call-IDs of `completed`, for late messages that reopen a call before the flush.
    completed_ids: HashMap<Vec<u8>, CallRef>,
    sip_zstd: zstd::bulk::Compressor<'static>,
    media_zstd: zstd::bulk::Compressor<'static>,
    since_flush: u64,
    /// Calls opened or completed since the last flush (their rows must be written even when
    /// no packet arrives).
    changes: u64,
    last_flush: Instant,
    error: Option<StoreError>,
    stats: WriteStats,
    first_ref: CallRef,
    /// Copies the indexes' logs into their files off this thread (see `checkpoint.rs`).
    checkpointer: Option<Checkpointer>,
    /// Makes a segment's appended blocks durable (tests put a slow or failing one in).
    sync_segment: SyncSegment,
    /// Held while the writer lives: one writer per store.
    _lock: std::fs::File,
}

impl StoreWriter {
    /// Opens the store at `cfg.root` for writing (creating it), cutting torn tails of segments
    /// left by a crash.
    pub fn open(cfg: StoreConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&cfg.root).map_err(|e| StoreError::io(&cfg.root, e))?;
        let lock = crate::try_lock_writer(&cfg.root)?.ok_or_else(|| {
            StoreError::Invalid(format!(
                "{} is open for writing by another siphon process (serve or import)",
                cfg.root.display()
            ))
        })?;
        // Handles must not repeat across runs: start above every handle in use. Small handles
        // keep records and index rows short (they are stored as varints).
        let mut first_ref = 1u64;
        let mut stats = WriteStats::default();
        // After an unclean stop, the tail of each bucket is read again first (see `recover`).
        for b in crate::list_buckets(&cfg.root)? {
            let r = crate::recover::recover_bucket(&b.dir, &siphon_calls::CallConfig::default())?;
            stats.recovered_calls += r.calls_rebuilt;
            stats.repaired_rows += r.rows_repaired;
        }
        for b in crate::list_buckets(&cfg.root)? {
            let path = b.dir.join("index.sqlite");
            if let Ok(conn) = index::open_read(&path) {
                if let Ok(m) = index::max_ref(&conn) {
                    first_ref = first_ref.max(m + 1);
                }
            }
        }
        Ok(StoreWriter {
            sip_zstd: block_compressor(cfg.zstd_level).map_err(|e| StoreError::io(&cfg.root, e))?,
            media_zstd: block_compressor(MEDIA_ZSTD_LEVEL)
                .map_err(|e| StoreError::io(&cfg.root, e))?,
            cfg,
            buckets: Vec::new(),
            bucket_pos: HashMap::default(),
            last_range: None,
            calls: RefMap::new(),
            with_media: Vec::new(),
            unindexed: Vec::new(),
            completed: Vec::new(),
            completed_ids: HashMap::default(),
            since_flush: 0,
            changes: 0,
            last_flush: Instant::now(),
            error: None,
            stats,
            _lock: lock,
            first_ref,
            checkpointer: Checkpointer::start(),
            sync_segment: Arc::new(SegmentWriter::sync),
        })
    }

    /// The handle the pipeline should give its first new call.
    pub fn first_ref(&self) -> CallRef {
        self.first_ref
    }

    /// Counters so far.
    pub fn stats(&self) -> &WriteStats {
        &self.stats
    }

    /// Bytes held in memory until a flush writes them: blocks sealed and not appended, open
    /// SIP blocks, calls' media buffers, and completed calls' summaries (counted at
    /// [`SUMMARY_BYTES`] each). It grows while flushes fail (a full disk).
    pub fn backlog_bytes(&self) -> usize {
        let buckets: usize = self
            .buckets
            .iter()
            .map(|b| b.pending.bytes.len() + b.sip.raw_len())
            .sum();
        let media: usize = self
            .with_media
            .iter()
            .filter_map(|r| self.calls.get(r))
            .map(|c| c.media.raw_len())
            .sum();
        buckets + media + self.completed.len() * SUMMARY_BYTES
    }

    /// Completed calls whose final rows are not written yet (more than none only while
    /// flushes fail).
    pub fn unwritten_calls(&self) -> usize {
        self.completed.len()
    }

    /// True when `flush_count` packets or `flush_interval` have passed since the last flush.
    pub fn should_flush(&self) -> bool {
        // The clock is read once every 256 packets: cheap on the hot path, precise enough.
        self.since_flush >= self.cfg.flush_count
            || (self.since_flush > 0
                && self.since_flush.is_multiple_of(256)
                && self.last_flush.elapsed() >= self.cfg.flush_interval)
    }

    /// Position of the bucket a packet time falls in, opening it if needed.
    fn bucket_at(&mut self, ts_us: i64) -> Result<usize, StoreError> {
        if let Some((a, b, i)) = self.last_range {
            if (a..b).contains(&ts_us) {
                return Ok(i);
            }
        }
        let key = bucket_key(self.cfg.subdirs, ts_us);
        let i = self.bucket(&key)?;
        let range = crate::bucket_range(&key).unwrap_or((i64::MIN, i64::MAX));
        self.last_range = Some((range.0, range.1, i));
        Ok(i)
    }

    /// Position of the bucket `key`, made if needed. Its files are opened now if they can be,
    /// else by a later flush: a bucket that cannot be opened yet (a full disk at the start of
    /// a new day) holds its records in memory rather than losing them.
    fn bucket(&mut self, key: &str) -> Result<usize, StoreError> {
        if let Some(i) = self.bucket_pos.get(key) {
            return Ok(*i);
        }
        let dir = if key.is_empty() {
            self.cfg.root.clone()
        } else {
            self.cfg.root.join(key)
        };
        let placeholder = Connection::open_in_memory().map_err(|e| StoreError::index(&dir, e))?;
        let mut bucket = Bucket {
            key: key.to_string(),
            index_path: dir.join("index.sqlite"),
            dir,
            conn: placeholder,
            commits: 0,
            recover_saved: None,
            released: false,
            opened: false,
            keys: index::KeyWriter::default(),
            seg: None,
            next_seg: 1,
            sip: BlockBuf::default(),
            sip_calls: HashSet::default(),
            pending: Pending {
                bytes: Vec::new(),
                blocks: Vec::new(),
            },
        };
        // An error is the next flush's to report, when it tries again.
        let _ = Self::open_files(&mut bucket);
        // A released bucket's place is taken (no call refers to it any more), so that a
        // long run does not keep one per bucket retention removed.
        let at = match self.buckets.iter().position(|b| b.released) {
            Some(at) => {
                if let Some(slot) = self.buckets.get_mut(at) {
                    *slot = bucket;
                }
                at
            }
            None => {
                self.buckets.push(bucket);
                self.buckets.len() - 1
            }
        };
        self.bucket_pos.insert(key.to_string(), at);
        Ok(at)
    }

    /// Opens a bucket's directory, segments (recovering a torn tail) and index, unless done.
    fn open_files(b: &mut Bucket) -> Result<(), StoreError> {
        if b.opened || b.released {
            return Ok(());
        }
        std::fs::create_dir_all(&b.dir).map_err(|e| StoreError::io(&b.dir, e))?;
        let mut next_seg = 1;
        for (n, p) in list_segments(&b.dir)? {
            crate::segment::recover(&p).map_err(|e| StoreError::segment(&p, e))?;
            next_seg = next_seg.max(n + 1);
        }
        b.conn = index::open(&b.index_path).map_err(|e| StoreError::index(&b.index_path, e))?;
        b.next_seg = next_seg;
        b.opened = true;
        Ok(())
    }

    fn note_error(&mut self, e: StoreError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn seal_sip(b: &mut Bucket, z: &mut zstd::bulk::Compressor<'static>, st: &mut WriteStats) {
        if b.sip.is_empty() {
            return;
        }
        let at = b.pending.bytes.len();
        if b.sip
            .seal_into(BlockKind::Sip, z, &mut b.pending.bytes)
            .is_ok()
        {
            st.sip_block_bytes += (b.pending.bytes.len() - at) as u64;
            st.blocks += 1;
            b.pending.blocks.push((at, b.sip_calls.drain().collect()));
        } else {
            b.pending.bytes.truncate(at);
        }
    }

    fn seal_media(&mut self, call_ref: CallRef) -> Result<(), StoreError> {
        let Some(c) = self.calls.get_mut(&call_ref) else {
            return Ok(());
        };
        if c.media.is_empty() {
            return Ok(());
        }
        let key = c.bucket;
        let mut media = std::mem::take(&mut c.media);
        let z = &mut self.media_zstd;
        let st = &mut self.stats;
        let b = match self.buckets.get_mut(key) {
            Some(b) => b,
            None => return Err(StoreError::Invalid("media for an unknown bucket".into())),
        };
        // SIP first: a media block never precedes the SIP that bound its call, so a rebuild
        // reading the segment in order sees the call before its media.
        Self::seal_sip(b, &mut self.sip_zstd, st);
        let at = b.pending.bytes.len();
        media
            .seal_into(BlockKind::Media, z, &mut b.pending.bytes)
            .map_err(|e| StoreError::io(&b.dir, e))?;
        st.media_block_bytes += (b.pending.bytes.len() - at) as u64;
        st.blocks += 1;
        b.pending.blocks.push((at, vec![call_ref]));
        Ok(())
    }

    /// The writer's entry of a call, made on first use in the bucket of `ts_us`.
    fn call_entry(&mut self, call_ref: CallRef, ts_us: i64) -> Result<&mut OpenCall, StoreError> {
        let bucket = match self.calls.get(&call_ref) {
            Some(c) => c.bucket,
            None => self.bucket_at(ts_us)?,
        };
        Ok(self.calls.get_or_insert_with(call_ref, || OpenCall {
            bucket,
            blocks: Vec::new(),
            earlier_streams: Vec::new(),
            summary: None,
            media: BlockBuf::default(),
            unindexed: None,
            keyed: false,
        }))
    }

    /// True when something is buffered and `flush_interval` has passed (for callers that flush
    /// on a timer when traffic is slow).
    pub fn interval_elapsed(&self) -> bool {
        (self.since_flush > 0 || self.changes > 0)
            && self.last_flush.elapsed() >= self.cfg.flush_interval
    }

    /// Writes every buffered block, makes it durable, then commits the index rows of the calls
    /// that changed. `dirty` holds the current summaries of open calls that changed.
    pub fn flush(&mut self, dirty: Vec<CallSummary>) -> Result<(), StoreError> {
        let refs: Vec<&CallSummary> = dirty.iter().collect();
        self.flush_refs(&refs)
    }

    /// [`flush`](Self::flush) with the summaries of open calls borrowed (from the pipeline)
    /// rather than copied.
    pub fn flush_refs(&mut self, dirty: &[&CallSummary]) -> Result<(), StoreError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let t0 = Instant::now();
        // Rows to commit, per bucket: open calls that changed (their summary is the pipeline's)
        // and calls completed since the last flush (their summary was handed over).
        let mut by_bucket: Vec<Vec<(CallRef, &CallSummary)>> = Vec::new();
        for s in dirty {
            let e = self.call_entry(s.call_ref, s.start_us)?;
            // Open again (a late message reopened a completed call): the open summary rules.
            e.summary = None;
            let at = e.bucket;
            if by_bucket.len() <= at {
                by_bucket.resize_with(at + 1, Vec::new);
            }
            by_bucket[at].push((s.call_ref, *s));
        }
        // Boxes are moved, not the summaries: no large transient copies at every flush.
        let mut completed: Vec<Box<CallSummary>> = Vec::with_capacity(self.completed.len());
        let mut completed_bucket: Vec<usize> = Vec::with_capacity(self.completed.len());
        for r in &self.completed {
            if let Some(c) = self.calls.get_mut(r) {
                if let Some(s) = c.summary.take() {
                    completed_bucket.push(c.bucket);
                    completed.push(s);
                }
            }
        }
        for (s, at) in completed.iter().zip(completed_bucket) {
            if by_bucket.len() <= at {
                by_bucket.resize_with(at + 1, Vec::new);
            }
            by_bucket[at].push((s.call_ref, s));
        }
        let res = self.write_flush(by_bucket, t0);
        if res.is_err() {
            // Not all written (a full disk): the final summaries go back to their calls, to be
            // written by the next flush. Rows that were committed are written again, the same.
            for s in completed {
                if let Some(c) = self.calls.get_mut(&s.call_ref) {
                    if c.summary.is_none() {
                        c.summary = Some(s);
                    }
                }
            }
        }
        res
    }

    /// The part of a flush that writes: segments, then index rows per bucket, then recovery
    /// points. Safe to run again after an error: blocks not appended stay pending, and rows
    /// are upserts.
    fn write_flush(
        &mut self,
        mut by_bucket: Vec<Vec<(CallRef, &CallSummary)>>,
        t0: Instant,
    ) -> Result<(), StoreError> {
        // Buckets that could not be opened when their first record came: before anything is
        // written, so that a failure here leaves everything as it was.
        for b in &mut self.buckets {
            Self::open_files(b)?;
        }
        let with_media = std::mem::take(&mut self.with_media);
        for (i, &r) in with_media.iter().enumerate() {
            if let Err(e) = self.seal_media(r) {
                // Still to seal at the next flush.
                self.with_media
                    .extend_from_slice(with_media.get(i..).unwrap_or_default());
                return Err(e);
            }
        }
        // Buckets whose index is to be checkpointed after this flush.
        let mut checkpoint: Vec<usize> = Vec::new();
        for key in 0..self.buckets.len() {
            let mut new_refs: Vec<(CallRef, BlockRef)> = Vec::new();
            let rows = by_bucket
                .get_mut(key)
                .map(std::mem::take)
                .unwrap_or_default();
            let z = &mut self.sip_zstd;
            let st = &mut self.stats;
            let Some(b) = self.buckets.get_mut(key) else {
                continue;
            };
            Self::seal_sip(b, z, st);
            // The cold fields of every row to commit go into summary blocks (cut at
            // SUMMARY_BLOCK_MAX raw bytes, so reading one call's fields stays cheap).
            let mut cold = BlockBuf::default();
            let mut streams_of: Vec<(CallRef, &CallSummary, usize)> =
                Vec::with_capacity(rows.len());
            let mut cold_at: Vec<usize> = Vec::new();
            for &(r, s) in &rows {
                let Some(c) = self.calls.get(&r) else {
                    continue;
                };
                let now: Vec<StoredStream> =
                    s.streams.iter().map(StoredStream::from_summary).collect();
                let streams = if c.earlier_streams.is_empty() {
                    now
                } else {
                    merge_streams(&c.earlier_streams, &now)
                };
                cold.push(
                    KIND_SUMMARY,
                    LinkType(0),
                    r,
                    s.start_us,
                    0,
                    &index::pack_cold(s, &streams),
                );
                if let Some(json) = index::stored_quality(s, &streams) {
                    cold.push(KIND_QUALITY, LinkType(0), r, s.start_us, 0, &json);
                }
                streams_of.push((r, s, cold_at.len()));
                if cold.raw_len() >= SUMMARY_BLOCK_MAX {
                    let at = b.pending.bytes.len();
                    cold.seal_into(BlockKind::Summary, z, &mut b.pending.bytes)
                        .map_err(|e| StoreError::io(&b.dir, e))?;
                    st.summary_block_bytes += (b.pending.bytes.len() - at) as u64;
                    st.blocks += 1;
                    b.pending.blocks.push((at, Vec::new()));
                    cold_at.push(at);
                }
            }
            if !cold.is_empty() {
                let at = b.pending.bytes.len();
                cold.seal_into(BlockKind::Summary, z, &mut b.pending.bytes)
                    .map_err(|e| StoreError::io(&b.dir, e))?;
                st.summary_block_bytes += (b.pending.bytes.len() - at) as u64;
                st.blocks += 1;
                b.pending.blocks.push((at, Vec::new()));
                cold_at.push(at);
            }
            let mut cold_refs: Vec<BlockRef> = Vec::new();
            // Appended, to be synced before any row that lists it is committed.
            let mut to_sync = false;
            if !b.pending.blocks.is_empty() {
                if b.seg.is_none() {
                    let n = b.next_seg;
                    b.next_seg += 1;
                    let p = b.dir.join(format!("{n:06}.seg"));
                    b.seg = Some(SegmentWriter::create(&p, n).map_err(|e| StoreError::io(&p, e))?);
                }
                if let Some(seg) = b.seg.as_mut() {
                    let base = seg
                        .append(&b.pending.bytes, b.pending.blocks.len() as u32)
                        .map_err(|e| StoreError::io(&b.dir, e))?;
                    for (off, calls) in b.pending.blocks.drain(..) {
                        let br = BlockRef {
                            segment: seg.number,
                            offset: base + off as u64,
                        };
                        for c in calls {
                            new_refs.push((c, br));
                        }
                    }
                    cold_refs = cold_at
                        .iter()
                        .map(|off| BlockRef {
                            segment: seg.number,
                            offset: base + *off as u64,
                        })
                        .collect();
                    b.pending.bytes.clear();
                    // Synced once appended and accounted for: should the sync fail, the blocks
                    // are not appended a second time (the next flush's sync covers them), and
                    // their calls still list them; no index row is committed before a sync.
                    to_sync = self.cfg.fsync;
                }
            }
            new_refs.sort_unstable_by_key(|&(_, br)| br);
            if self.unindexed.len() < self.buckets.len() {
                self.unindexed
                    .resize_with(self.buckets.len(), VecDeque::new);
            }
            for (c, br) in new_refs {
                if let Some(oc) = self.calls.get_mut(&c) {
                    if oc.blocks.last() != Some(&br) {
                        oc.blocks.push(br);
                    }
                    if oc.unindexed.is_none() {
                        oc.unindexed = Some(br);
                        if let Some(q) = self.unindexed.get_mut(oc.bucket) {
                            q.push_back((br, c));
                        }
                    }
                }
            }
            let Some(b) = self.buckets.get_mut(key) else {
                continue;
            };
            let Bucket {
                conn,
                keys: key_writer,
                seg,
                dir,
                ..
            } = b;
            let calls = &self.calls;
            let sync_segment = &self.sync_segment;
            // Index rows, one transaction per bucket, committed once the data is durable. The
            // segment is synced on a thread of its own while this one inserts the rows (not
            // yet committed: no reader sees them, and a crash leaves none), so the pipeline
            // does not wait for the disk as long as it has rows to insert.
            let (synced, written) = std::thread::scope(|scope| {
                let sync = seg
                    .as_ref()
                    .filter(|_| to_sync)
                    .map(|sg| SegmentSync::start(scope, sg, sync_segment));
                if rows.is_empty() {
                    return (SegmentSync::wait(sync), Ok(None));
                }
                let inserted = (|| -> rusqlite::Result<(rusqlite::Transaction<'_>, u64)> {
                    let tx = conn.unchecked_transaction()?;
                    let mut up = index::Upsert::new(conn)?;
                    let mut n = 0u64;
                    let mut keys: Vec<(i64, i64)> = Vec::new();
                    for &(r, s, block_no) in &streams_of {
                        let Some(c) = calls.get(&r) else {
                            continue;
                        };
                        let mut blocks = c.blocks.clone();
                        blocks.sort_unstable();
                        blocks.dedup();
                        up.row(s, &blocks, cold_refs.get(block_no).copied())?;
                        if !c.keyed {
                            keys.push((index::call_key(&s.call_id), r as i64));
                        }
                        n += 1;
                    }
                    drop(up);
                    key_writer.add(conn, &mut keys)?;
                    Ok((tx, n))
                })();
                // The sync is over before anything else is written to the bucket, whatever
                // became of the rows; a failed one rolls them back (`tx` dropped uncommitted).
                let synced = SegmentSync::wait(sync);
                let written = match (inserted, &synced) {
                    (Ok((tx, n)), Ok(())) => tx.commit().map(|()| Some(n)),
                    (Ok(_), Err(_)) => Ok(None),
                    (Err(e), _) => Err(e),
                };
                (synced, written)
            });
            if written.is_err() || synced.is_err() {
                key_writer.reset();
            }
            if let Err(e) = synced {
                return Err(StoreError::io(dir, e));
            }
            if rows.is_empty() {
                continue;
            }
            let n = written
                .map_err(|e| StoreError::index(dir, e))?
                .unwrap_or_default();
            b.commits += 1;
            if b.commits >= CHECKPOINT_EVERY_COMMITS {
                b.commits = 0;
                checkpoint.push(key);
            }
            self.stats.rows_written += n;
            for &(r, _, _) in &streams_of {
                if let Some(oc) = self.calls.get_mut(&r) {
                    oc.unindexed = None;
                    oc.keyed = true;
                }
            }
        }
        for r in self.completed.drain(..) {
            self.calls.remove(&r);
        }
        self.save_recovery_points()?;
        // Asked for once this flush has made its last commit: a checkpoint that copies the
        // whole log lets the next flush start the log again from its beginning. Asked for
        // between two commits of the same flush, the checkpoint ran (on its own thread) before
        // the second, which then wrote past it: the log was never started again and grew until
        // the writer's own checkpoint copied it all, in a flush taking several times as long.
        if let Some(ck) = &self.checkpointer {
            for key in checkpoint {
                if let Some(b) = self.buckets.get(key) {
                    ck.request(&b.index_path);
                }
            }
        }
        self.completed_ids.clear();
        self.since_flush = 0;
        self.changes = 0;
        self.last_flush = Instant::now();
        self.stats.flushes += 1;
        self.stats.flush_time += t0.elapsed();
        Ok(())
    }

    /// Records in each bucket's index where a restart after a crash must start reading the
    /// segments again: the first block of an open call that its row does not list yet (calls
    /// are written to the index with a delay, see `siphon_calls::SNAPSHOT_DELAY_US`), else the
    /// end of what is written. Written after the rows, so a crash in between leaves an earlier,
    /// still correct point.
    fn save_recovery_points(&mut self) -> Result<(), StoreError> {
        let mut from: Vec<Option<BlockRef>> = vec![None; self.buckets.len()];
        let live = |calls: &RefMap<OpenCall>, br: BlockRef, r: CallRef| {
            calls.get(&r).is_some_and(|c| c.unindexed == Some(br))
        };
        for (q, slot) in self.unindexed.iter_mut().zip(from.iter_mut()) {
            // Entries of calls since written (or gone) are dropped as they come to the front.
            while let Some(&(br, r)) = q.front() {
                if live(&self.calls, br, r) {
                    *slot = Some(br);
                    break;
                }
                q.pop_front();
            }
            // A call that stays unindexed for long (one closing while its media goes on) holds
            // the front: the stale entries behind it go once they outnumber the open calls.
            if q.len() > 2 * self.calls.len() + 1024 {
                q.retain(|&(br, r)| live(&self.calls, br, r));
            }
        }
        for (b, at) in self.buckets.iter_mut().zip(from) {
            if b.released {
                continue;
            }
            let end = match &b.seg {
                Some(seg) => BlockRef {
                    segment: seg.number,
                    offset: seg.len(),
                },
                None => BlockRef {
                    segment: b.next_seg,
                    offset: 0,
                },
            };
            let point = at.unwrap_or(end);
            // A bucket no longer written keeps its point: no commit for it at every flush.
            if b.recover_saved != Some(point) {
                index::set_recover_from(&b.conn, point)
                    .map_err(|e| StoreError::index(&b.dir, e))?;
                b.recover_saved = Some(point);
            }
        }
        Ok(())
    }

    /// Closes the files of bucket `key` so that retention can remove it and get its space
    /// back (an open file's space is freed only when it is closed). True when the bucket is
    /// not open in this writer, or is now released; false while a call still open or records
    /// not yet flushed belong to it (retention then keeps it until a later pass). Records
    /// that arrive later for the bucket's time range open it again.
    pub fn release_bucket(&mut self, key: &str) -> bool {
        let Some(&i) = self.bucket_pos.get(key) else {
            return true;
        };
        if self.calls.values().any(|c| c.bucket == i) {
            return false;
        }
        let Some(b) = self.buckets.get_mut(i) else {
            return true;
        };
        if !b.sip.is_empty() || !b.pending.blocks.is_empty() {
            return false;
        }
        let Ok(empty) = Connection::open_in_memory() else {
            return false;
        };
        if let Some(seg) = b.seg.take() {
            // The bucket is about to be removed: a failed seal loses nothing kept.
            let _ = seg.seal();
        }
        drop(std::mem::replace(&mut b.conn, empty));
        b.keys.reset();
        b.released = true;
        self.bucket_pos.remove(key);
        if self.last_range.is_some_and(|(_, _, at)| at == i) {
            self.last_range = None;
        }
        if let Some(q) = self.unindexed.get_mut(i) {
            q.clear();
        }
        true
    }

    /// Flushes and seals every segment. `open` holds the final summaries of calls still open.
    pub fn close(mut self, open: Vec<CallSummary>) -> Result<WriteStats, StoreError> {
        self.flush(open)?;
        // Its pending checkpoints done and its connections closed first, so that closing the
        // writer's own connections checkpoints what is left and removes the logs.
        self.checkpointer = None;
        // Normally every call is complete and written by now: nothing to recover. A caller
        // that closes with calls neither finished nor passed in keeps the recovery points.
        let all_written = self.calls.values().all(|c| c.unindexed.is_none());
        for b in self.buckets.drain(..).filter(|b| !b.released) {
            if let Some(seg) = b.seg {
                seg.seal().map_err(|e| StoreError::io(&b.dir, e))?;
            }
            if all_written {
                index::clear_recover_from(&b.conn).map_err(|e| StoreError::index(&b.dir, e))?;
            }
        }
        Ok(self.stats)
    }

    /// Root directory.
    pub fn root(&self) -> &Path {
        &self.cfg.root
    }
}

/// Appends a pipeline record to a block: its head, then its frame (see [`Record::head`]).
fn push_record(buf: &mut BlockBuf, kind: u8, rec: &Record<'_>) {
    buf.push_parts(
        kind,
        rec.link,
        rec.call_ref,
        rec.ts_us,
        rec.node,
        rec.head,
        rec.frame,
    );
}

impl Sink for StoreWriter {
    fn record(&mut self, rec: &Record<'_>) {
        self.since_flush += 1;
        self.stats.records += 1;
        let kind = rec.kind as u8;
        if rec.kind == siphon_ingest::Kind::Sip || rec.call_ref == 0 {
            let key = match self.calls.get_mut(&rec.call_ref) {
                Some(c) => Ok(c.bucket),
                None => self.bucket_at(rec.ts_us),
            };
            self.stats.sip_raw_bytes += (rec.head.len() + rec.frame.len()) as u64;
            match key {
                Ok(key) => {
                    if let Some(b) = self.buckets.get_mut(key) {
                        push_record(&mut b.sip, kind, rec);
                        if rec.call_ref != 0 {
                            b.sip_calls.insert(rec.call_ref);
                        }
                        if b.sip.raw_len() >= SIP_BLOCK_MAX {
                            Self::seal_sip(b, &mut self.sip_zstd, &mut self.stats);
                        }
                    }
                }
                Err(e) => self.note_error(e),
            }
            return;
        }
        self.stats.media_raw_bytes += (rec.head.len() + rec.frame.len()) as u64;
        // A known call in one look-up (every RTP packet comes here).
        let c = match self.calls.get_mut(&rec.call_ref) {
            Some(c) => c,
            None => match self.call_entry(rec.call_ref, rec.ts_us) {
                Ok(c) => c,
                Err(e) => return self.note_error(e),
            },
        };
        let was_empty = c.media.is_empty();
        push_record(&mut c.media, kind, rec);
        let full = c.media.raw_len() >= MEDIA_BLOCK_MAX;
        if was_empty {
            self.with_media.push(rec.call_ref);
        }
        if full {
            if let Err(e) = self.seal_media(rec.call_ref) {
                self.note_error(e);
            }
        }
    }

    fn call_opened(&mut self, call_ref: CallRef, call_id: &[u8], ts_us: i64) {
        let key = match self.call_entry(call_ref, ts_us) {
            Ok(c) => c.bucket,
            Err(e) => return self.note_error(e),
        };
        if let Some(b) = self.buckets.get_mut(key) {
            b.sip
                .push(KIND_CALL_DEF, LinkType(0), call_ref, ts_us, 0, call_id);
            b.sip_calls.insert(call_ref);
        }
    }

    fn call_completed(&mut self, summary: Box<CallSummary>) {
        self.changes += 1;
        let r = summary.call_ref;
        self.completed_ids.insert(summary.call_id.clone(), r);
        match self.call_entry(r, summary.start_us) {
            Ok(e) => {
                e.summary = Some(summary);
                self.completed.push(r);
            }
            Err(e) => self.note_error(e),
        }
    }

    fn resolve(&mut self, call_id: &[u8]) -> Option<CallSummary> {
        // A call completed but not flushed yet.
        if let Some(r) = self.completed_ids.remove(call_id) {
            if let Some(c) = self.calls.get(&r) {
                if let Some(s) = c.summary.as_ref() {
                    let mut s = CallSummary::clone(s);
                    self.completed.retain(|x| *x != r);
                    if let Some(c) = self.calls.get_mut(&r) {
                        c.earlier_streams =
                            s.streams.iter().map(StoredStream::from_summary).collect();
                    }
                    s.streams.clear();
                    return Some(s);
                }
            }
        }
        // A call in the index. Only the buckets open in this run are searched.
        for (key, b) in self.buckets.iter().enumerate().filter(|(_, b)| !b.released) {
            if let Ok(Some(mut row)) = index::get(&b.conn, &b.key, call_id) {
                if crate::load_cold(&b.dir, std::slice::from_mut(&mut row)).is_err() {
                    continue;
                }
                let s = index::row_to_summary(&row);
                self.calls.insert(
                    row.call_ref,
                    OpenCall {
                        bucket: key,
                        blocks: row.blocks.clone(),
                        earlier_streams: row.streams.clone(),
                        summary: None,
                        media: BlockBuf::default(),
                        unindexed: None,
                        keyed: true,
                    },
                );
                return Some(s);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::call;
    use siphon_ingest::Kind;

    fn sip(w: &mut StoreWriter, r: CallRef) {
        let s = call(r, 1);
        w.record(&Record {
            ts_us: s.start_us,
            kind: Kind::Sip,
            call_ref: r,
            node: 0,
            link: LinkType(1),
            head: &[],
            frame: b"OPTIONS sip:x SIP/2.0\r\n\r\n",
        });
    }

    /// Calls `first..first + n`, each opened, with one SIP message, and completed.
    fn short_calls(w: &mut StoreWriter, first: CallRef, n: u64) {
        for r in first..first + n {
            let s = call(r, 1);
            w.call_opened(r, &s.call_id, s.start_us);
            sip(w, r);
            w.call_completed(Box::new(s));
        }
    }

    /// A bucket whose directory cannot be made (here a file is in the way; in life, a full
    /// disk at the start of a day) loses nothing: its records wait in memory, every flush
    /// fails and says why, and the first flush after the obstacle is gone writes them all.
    #[test]
    fn records_for_a_bucket_that_cannot_be_opened_wait_until_it_can() {
        let (root, mut w) = crate::scratch_writer("writer-unopened");
        let c = call(1, 1);
        let key = bucket_key(crate::Subdirs::Daily, c.start_us);
        std::fs::write(root.join(&key), b"in the way").unwrap();
        w.call_opened(1, &c.call_id, c.start_us);
        sip(&mut w, 1);
        w.call_completed(Box::new(c.clone()));
        let e = w.flush_refs(&[]).unwrap_err();
        assert!(e.to_string().contains(&key), "{e}");
        assert!(w.flush_refs(&[]).is_err(), "still in the way");
        assert_eq!(w.unwritten_calls(), 1);
        assert!(w.backlog_bytes() > 0);

        std::fs::remove_file(root.join(&key)).unwrap();
        w.flush_refs(&[]).unwrap();
        assert_eq!(w.unwritten_calls(), 0);
        w.close(Vec::new()).unwrap();
        let store = crate::Store::open(&root).unwrap();
        let id = String::from_utf8(c.call_id.clone()).unwrap();
        let row = store.find(&id).unwrap().expect("the call is stored");
        let recs = store.sip_records(&row).unwrap();
        let frames: Vec<&[u8]> = recs.iter().map(|r| r.data.as_slice()).collect();
        assert_eq!(frames, vec![&b"OPTIONS sip:x SIP/2.0\r\n\r\n"[..]]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn retention_frees_a_released_bucket_and_keeps_one_with_an_open_call() {
        let (root, mut w) = crate::scratch_writer("writer-release");
        let day = 86_400_000_000i64;
        let on_day = |r: CallRef, d: i64| {
            let mut s = call(r, 1);
            s.start_us += d * day;
            s.end_us += d * day;
            s
        };
        let open = |w: &mut StoreWriter, s: &CallSummary| {
            w.call_opened(s.call_ref, &s.call_id, s.start_us);
            w.record(&Record {
                ts_us: s.start_us,
                kind: Kind::Sip,
                call_ref: s.call_ref,
                node: 0,
                link: LinkType(1),
                head: &[],
                frame: b"INVITE sip:x SIP/2.0\r\n\r\n",
            });
        };
        // Call 1 on day 0, complete; call 2 on day 1, still open.
        let (c1, c2) = (on_day(1, 0), on_day(2, 1));
        open(&mut w, &c1);
        w.call_completed(Box::new(c1.clone()));
        open(&mut w, &c2);
        w.flush_refs(&[]).unwrap();
        let key0 = bucket_key(crate::Subdirs::Daily, c1.start_us);
        let key1 = bucket_key(crate::Subdirs::Daily, c2.start_us);
        let (dir0, dir1) = (root.join(&key0), root.join(&key1));
        let held = crate::open_files_under;
        assert!(held(&dir0) > 0, "the writer holds day 0's files");
        let now = c1.start_us + 30 * day;
        let gone =
            crate::retention_with(&root, Some(2), None, now, &mut |k| w.release_bucket(k)).unwrap();
        assert_eq!(gone, vec![key0.clone()], "day 1 has an open call");
        assert!(!dir0.exists() && dir1.exists());
        assert_eq!(
            held(&dir0),
            0,
            "no file of the removed bucket is still open"
        );
        // A late call for day 0 opens its bucket again and is stored there.
        let c3 = on_day(3, 0);
        open(&mut w, &c3);
        w.call_completed(Box::new(c3.clone()));
        w.flush_refs(&[]).unwrap();
        let conn = index::open_read(&dir0.join("index.sqlite")).unwrap();
        assert_eq!(
            index::get(&conn, &key0, &c3.call_id)
                .unwrap()
                .unwrap()
                .call_ref,
            3
        );
        assert_eq!(
            w.buckets.len(),
            2,
            "the released bucket's place was taken again"
        );
        drop(conn);
        // Once day 1's call completes, its bucket goes too.
        w.call_completed(Box::new(c2.clone()));
        w.flush_refs(&[]).unwrap();
        let gone =
            crate::retention_with(&root, Some(2), None, now, &mut |k| w.release_bucket(k)).unwrap();
        assert!(gone.contains(&key1), "{gone:?}");
        assert_eq!(held(&dir1), 0);
        w.close(Vec::new()).unwrap();
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_call_that_stays_unindexed_does_not_make_the_recovery_queue_grow_without_bound() {
        let (root, mut w) = crate::scratch_writer("writer-queue");
        // Call 1 opens and is never written (as a call closing while its media goes on);
        // many short calls come and go behind it.
        let first = call(1, 1);
        w.call_opened(1, &first.call_id, first.start_us);
        sip(&mut w, 1);
        w.flush_refs(&[]).unwrap();
        let mut longest = 0;
        for batch in 0..40u64 {
            short_calls(&mut w, 2 + batch * 200, 200);
            w.flush_refs(&[]).unwrap();
            longest = longest.max(w.unindexed.iter().map(VecDeque::len).sum::<usize>());
        }
        // The recovery point stays at call 1's block all along.
        let b = &w.buckets[0];
        let from = index::recover_from(&b.conn).unwrap();
        assert_eq!(from, w.calls.get(&1).and_then(|c| c.unindexed));
        assert!(from.is_some());
        assert!(
            longest <= 2 * w.calls.len() + 1024 + 200,
            "{longest} queued entries for {} open calls",
            w.calls.len()
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A bucket's index is checkpointed once a flush has made its last commit (the recovery
    /// point's, after the rows'): a checkpoint that copies the whole log then lets the next
    /// flush start the log again from its beginning. Asked for between the two, it ran (on
    /// its own thread) before the second commit, which wrote past it: the log then never
    /// started again and grew until the writer's own checkpoint copied all of it at once.
    #[test]
    fn a_checkpoint_is_asked_for_after_the_flushs_last_commit() {
        let (root, mut w) = crate::scratch_writer("writer-checkpoint");
        let (ck, requests) = Checkpointer::recording();
        w.checkpointer = Some(ck);
        let mut asked = 0;
        for batch in 0..(3 * CHECKPOINT_EVERY_COMMITS as u64) {
            short_calls(&mut w, 1 + batch * 50, 50);
            w.flush_refs(&[]).unwrap();
            let requests = requests.lock().unwrap();
            for (path, wal_then) in requests.get(asked..).unwrap_or_default() {
                let wal_now = std::fs::metadata(crate::checkpoint::wal_of(path))
                    .unwrap()
                    .len();
                assert_eq!(
                    wal_now, *wal_then,
                    "flush {batch} wrote to the log after asking for its checkpoint"
                );
            }
            asked = requests.len();
        }
        assert_eq!(
            asked, 3,
            "one checkpoint per {CHECKPOINT_EVERY_COMMITS} flushes"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    /// Rows of the calls in the index file of bucket `key` under `root`, as a reader sees them.
    fn committed_rows(root: &Path, key: &str) -> i64 {
        let conn = index::open_read(&root.join(key).join("index.sqlite")).unwrap();
        conn.query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
            .unwrap()
    }

    /// A flush inserts its rows while the segment is synced on another thread, and commits
    /// them only once the sync is over: a reader looking while the sync runs sees none.
    #[test]
    fn rows_are_committed_only_once_their_segment_is_synced() {
        let (root, mut w) = crate::scratch_writer("writer-sync-order");
        w.cfg.fsync = true;
        let key = bucket_key(crate::Subdirs::Daily, call(1, 1).start_us);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (seen2, root2, key2) = (seen.clone(), root.clone(), key.clone());
        w.sync_segment = Arc::new(move |seg: &SegmentWriter| {
            // Long enough for the flush's thread to have inserted its 500 rows meanwhile.
            std::thread::sleep(Duration::from_millis(300));
            seen2.lock().unwrap().push(committed_rows(&root2, &key2));
            seg.sync()
        });
        short_calls(&mut w, 1, 500);
        w.flush_refs(&[]).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![0],
            "no row before the sync ended"
        );
        assert_eq!(committed_rows(&root, &key), 500);
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A segment that cannot be synced (an I/O error) fails the flush with the error and
    /// commits none of its rows; the next flush that can sync writes them all.
    #[test]
    fn a_failed_segment_sync_commits_no_row_and_a_later_flush_writes_them() {
        let (root, mut w) = crate::scratch_writer("writer-sync-fails");
        w.cfg.fsync = true;
        let key = bucket_key(crate::Subdirs::Daily, call(1, 1).start_us);
        w.sync_segment = Arc::new(|_: &SegmentWriter| Err(io::Error::other("disk gone")));
        short_calls(&mut w, 1, 200);
        let e = w.flush_refs(&[]).unwrap_err();
        assert!(e.to_string().contains("disk gone"), "{e}");
        assert_eq!(committed_rows(&root, &key), 0);
        assert_eq!(w.unwritten_calls(), 200);

        w.sync_segment = Arc::new(SegmentWriter::sync);
        w.flush_refs(&[]).unwrap();
        assert_eq!(committed_rows(&root, &key), 200);
        assert_eq!(w.unwritten_calls(), 0);
        w.close(Vec::new()).unwrap();
        let store = crate::Store::open(&root).unwrap();
        for r in [1, 200] {
            let id = String::from_utf8(call(r, 1).call_id).unwrap();
            let row = store.find(&id).unwrap().expect("the call is stored");
            assert_eq!(store.sip_records(&row).unwrap().len(), 1, "{id}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
