//! Rebuilding the index of every bucket from the segment files alone.

use std::collections::HashMap;
use std::path::Path;

use siphon_calls::{CallConfig, CallRef, CallSummary, Correlator};
use siphon_sip::Message;
use siphon_wire::decode::Decoder;

use crate::index::{self, StoredStream};
use crate::segment::{self, BlockRef, KIND_CALL_DEF};
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

/// Rebuilds `index.sqlite` of every bucket under `root` from its segments.
pub fn reindex(root: &Path, calls: &CallConfig) -> Result<ReindexReport, StoreError> {
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
        // Media blocks of a flush are written after its SIP block, so a call may be completed
        // only well after its last SIP message: use a long grace period while rebuilding.
        let mut cfg = calls.clone();
        cfg.closing_grace_s = cfg.closing_grace_s.max(600);
        let mut corr = Correlator::new(cfg, 1);
        let mut decoder = Decoder::new();
        let mut blocks: HashMap<CallRef, Vec<BlockRef>> = HashMap::new();
        let mut done: Vec<CallSummary> = Vec::new();
        let mut last_expire = i64::MIN;
        let tx = conn
            .unchecked_transaction()
            .map_err(|e| StoreError::index(&ipath, e))?;
        let write = |done: &mut Vec<CallSummary>,
                     blocks: &mut HashMap<CallRef, Vec<BlockRef>>,
                     rep: &mut ReindexReport|
         -> Result<(), StoreError> {
            for s in done.drain(..) {
                let streams: Vec<StoredStream> =
                    s.streams.iter().map(StoredStream::from_summary).collect();
                let mut bl = blocks.remove(&s.call_ref).unwrap_or_default();
                bl.sort_unstable();
                bl.dedup();
                index::upsert(&conn, &s, &streams, &bl)
                    .map_err(|e| StoreError::index(&ipath, e))?;
                rep.calls += 1;
            }
            Ok(())
        };
        for (n, p) in list_segments(&b.dir)? {
            rep.segments += 1;
            rep.torn_bytes += segment::recover(&p).map_err(|e| StoreError::segment(&p, e))?;
            let scan = segment::scan(&p).map_err(|e| StoreError::segment(&p, e))?;
            let mut f = std::fs::File::open(&p).map_err(|e| StoreError::io(&p, e))?;
            for (off, _) in scan.blocks {
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
                write(&mut done, &mut blocks, &mut rep)?;
            }
        }
        corr.finish("", &mut done);
        write(&mut done, &mut blocks, &mut rep)?;
        tx.commit().map_err(|e| StoreError::index(&ipath, e))?;
    }
    Ok(rep)
}
