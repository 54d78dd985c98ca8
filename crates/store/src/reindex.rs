//! Rebuilding the index of every bucket from the segment files alone.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;
use siphon_calls::{CallConfig, CallRef, CallSummary, Correlator};
use siphon_sip::Message;
use siphon_wire::decode::Decoder;
use siphon_wire::link::LinkType;

use crate::index::{self, StoredStream};
use crate::segment::{
    self, BlockBuf, BlockKind, BlockRef, SegmentWriter, KIND_CALL_DEF, KIND_QUALITY, KIND_SUMMARY,
};
use crate::{list_buckets, list_segments, StoreError};

/// What a rebuild found.
#[derive(Debug, Clone, Default)]
pub struct ReindexReport {
    /// Buckets rebuilt.
    pub buckets: usize,
    /// Segments read.
    pub segments: usize,
    /// Blocks read.
    pub blocks: u64,
    /// Records read.
    pub records: u64,
    /// Call rows written.
    pub calls: u64,
    /// Bytes cut from torn segment tails.
    pub torn_bytes: u64,
    /// Blocks that failed their checksum (skipped).
    pub damaged_blocks: u64,
}

/// Rows are committed in batches of this many calls.
const BATCH: usize = 10_000;

/// Writes finished calls: their cold fields to a summary block of the rebuild's own segment,
/// then their index rows.
pub(crate) struct Emitter<'a> {
    dir: &'a Path,
    conn: &'a Connection,
    pub(crate) seg: Option<SegmentWriter>,
    seg_no: u32,
    zstd: zstd::bulk::Compressor<'static>,
    cold: BlockBuf,
    rows: Vec<(Box<CallSummary>, Vec<BlockRef>)>,
    keys: index::KeyWriter,
}

impl<'a> Emitter<'a> {
    /// An emitter that writes its summary blocks to a new segment `seg_no` of `dir`.
    pub(crate) fn new(
        dir: &'a Path,
        conn: &'a Connection,
        seg_no: u32,
    ) -> Result<Self, StoreError> {
        Ok(Emitter {
            dir,
            conn,
            seg: None,
            seg_no,
            zstd: zstd::bulk::Compressor::new(3).map_err(|e| StoreError::io(dir, e))?,
            cold: BlockBuf::default(),
            rows: Vec::new(),
            keys: index::KeyWriter::default(),
        })
    }

    pub(crate) fn add(
        &mut self,
        s: Box<CallSummary>,
        blocks: Vec<BlockRef>,
    ) -> Result<(), StoreError> {
        let streams: Vec<StoredStream> = s.streams.iter().map(StoredStream::from_summary).collect();
        self.cold.push(
            KIND_SUMMARY,
            LinkType(0),
            s.call_ref,
            s.start_us,
            0,
            &index::pack_cold(&s, &streams),
        );
        if let Some(json) = index::stored_quality(&s, &streams) {
            self.cold
                .push(KIND_QUALITY, LinkType(0), s.call_ref, s.start_us, 0, &json);
        }
        self.rows.push((s, blocks));
        if self.rows.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> Result<u64, StoreError> {
        if self.rows.is_empty() {
            return Ok(0);
        }
        if self.seg.is_none() {
            let p = self.dir.join(format!("{:06}.seg", self.seg_no));
            self.seg =
                Some(SegmentWriter::create(&p, self.seg_no).map_err(|e| StoreError::io(&p, e))?);
        }
        let mut bytes = Vec::new();
        self.cold
            .seal_into(BlockKind::Summary, &mut self.zstd, &mut bytes)
            .map_err(|e| StoreError::io(self.dir, e))?;
        let Some(seg) = self.seg.as_mut() else {
            return Ok(0);
        };
        let at = seg
            .append(&bytes, 1)
            .map_err(|e| StoreError::io(self.dir, e))?;
        seg.sync().map_err(|e| StoreError::io(self.dir, e))?;
        let cold = BlockRef {
            segment: self.seg_no,
            offset: at,
        };
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| StoreError::index(self.dir, e))?;
        let n = self.rows.len() as u64;
        // Every call emitted here is new to the index (a rebuild, or a call recovered because
        // it had no row): its Call-ID key goes in with its row.
        let mut keys: Vec<(i64, i64)> = Vec::with_capacity(self.rows.len());
        let mut up = index::Upsert::new(self.conn).map_err(|e| StoreError::index(self.dir, e))?;
        for (s, mut bl) in self.rows.drain(..) {
            bl.sort_unstable();
            bl.dedup();
            up.row(&s, &bl, Some(cold))
                .map_err(|e| StoreError::index(self.dir, e))?;
            keys.push((index::call_key(&s.call_id), s.call_ref as i64));
        }
        drop(up);
        let added = self
            .keys
            .add(self.conn, &mut keys)
            .and_then(|()| tx.commit());
        if added.is_err() {
            self.keys.reset();
        }
        added.map_err(|e| StoreError::index(self.dir, e))?;
        Ok(n)
    }
}

/// True when a segment holds nothing but summary blocks (written by an earlier rebuild or
/// flushes): such a segment is derived data, and a rebuild replaces it.
fn only_summaries(scan: &segment::ScanReport) -> bool {
    !scan.blocks.is_empty()
        && scan
            .blocks
            .iter()
            .all(|(_, k)| *k == BlockKind::Summary as u8)
}

/// Rebuilds `index.sqlite` of every bucket under `root` from its segments.
pub fn reindex(root: &Path, calls: &CallConfig) -> Result<ReindexReport, StoreError> {
    let _lock = crate::try_lock_writer(root)?.ok_or_else(|| {
        StoreError::Invalid(format!(
            "{} is open for writing by another siphon process; stop it before a rebuild",
            root.display()
        ))
    })?;
    let mut rep = ReindexReport::default();
    for b in list_buckets(root)? {
        rep.buckets += 1;
        let ipath = b.dir.join("index.sqlite");
        for suffix in ["", "-wal", "-shm"] {
            let p = b.dir.join(format!("index.sqlite{suffix}"));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&p, e)),
            }
        }
        let conn = index::open(&ipath).map_err(|e| StoreError::index(&ipath, e))?;
        let mut segments = Vec::new();
        let mut next_seg = 1;
        for (n, p) in list_segments(&b.dir)? {
            next_seg = next_seg.max(n + 1);
            rep.torn_bytes += segment::recover(&p).map_err(|e| StoreError::segment(&p, e))?;
            let scan = segment::scan(&p).map_err(|e| StoreError::segment(&p, e))?;
            if only_summaries(&scan) {
                std::fs::remove_file(&p).map_err(|e| StoreError::io(&p, e))?;
                continue;
            }
            segments.push((n, p, scan));
        }
        let mut out = Emitter {
            dir: &b.dir,
            conn: &conn,
            seg: None,
            seg_no: next_seg,
            zstd: zstd::bulk::Compressor::new(3).map_err(|e| StoreError::io(&b.dir, e))?,
            cold: BlockBuf::default(),
            rows: Vec::new(),
            keys: index::KeyWriter::default(),
        };
        // Media blocks of a flush are written after its SIP block, so a call may be completed
        // only well after its last SIP message: use a long grace period while rebuilding.
        let mut cfg = calls.clone();
        cfg.closing_grace_s = cfg.closing_grace_s.max(600);
        let mut corr = Correlator::new(cfg, 1);
        let mut decoder = Decoder::new();
        let mut blocks: HashMap<CallRef, Vec<BlockRef>> = HashMap::new();
        let mut done: Vec<Box<CallSummary>> = Vec::new();
        let mut last_expire = i64::MIN;
        for (n, p, scan) in segments {
            rep.segments += 1;
            let mut f = std::fs::File::open(&p).map_err(|e| StoreError::io(&p, e))?;
            for (off, kind) in scan.blocks {
                if kind == BlockKind::Summary as u8 {
                    continue;
                }
                let (hdr, raw) = match segment::read_block(&mut f, off) {
                    Ok(v) => v,
                    Err(_) => {
                        rep.damaged_blocks += 1;
                        continue;
                    }
                };
                rep.blocks += 1;
                let br = BlockRef {
                    segment: n,
                    offset: off,
                };
                let mut recs = Vec::new();
                segment::for_each_record(&hdr, &raw, off, |kind, link, r, ts, _node, data| {
                    recs.push((kind, link, r, ts, data.to_vec()));
                })
                .map_err(|e| StoreError::segment(&p, e))?;
                for (kind, link, r, ts, data) in recs {
                    rep.records += 1;
                    if r != 0 {
                        let v = blocks.entry(r).or_default();
                        if v.last() != Some(&br) {
                            v.push(br);
                        }
                    }
                    if kind == KIND_CALL_DEF {
                        corr.preassign(&data, r);
                        continue;
                    }
                    let Ok(Some(pkt)) = decoder.decode_raw(ts, link, &data) else {
                        continue;
                    };
                    if kind == siphon_ingest::Kind::Sip as u8 {
                        if let Ok(msg) = Message::parse(pkt.payload) {
                            let (src, dst) = (pkt.src, pkt.dst);
                            corr.on_sip(ts, src, dst, &msg, &mut |_| None);
                        }
                        if ts.saturating_sub(last_expire) > 1_000_000 {
                            last_expire = ts;
                            corr.expire(ts, &mut done);
                        }
                    } else if r != 0 {
                        let (src, dst, payload) = (pkt.src, pkt.dst, pkt.payload.to_vec());
                        corr.on_call_media(r, ts, src, dst, &payload);
                    }
                }
                for s in done.drain(..) {
                    let bl = blocks.remove(&s.call_ref).unwrap_or_default();
                    out.add(s, bl)?;
                }
            }
        }
        corr.finish("", &mut done);
        for s in done.drain(..) {
            let bl = blocks.remove(&s.call_ref).unwrap_or_default();
            out.add(s, bl)?;
        }
        out.flush()?;
        rep.calls += conn
            .query_row("SELECT count(*) FROM calls", [], |r| r.get::<_, i64>(0))
            .map_err(|e| StoreError::index(&ipath, e))? as u64;
        if let Some(seg) = out.seg.take() {
            seg.seal().map_err(|e| StoreError::io(&b.dir, e))?;
        }
    }
    Ok(rep)
}
