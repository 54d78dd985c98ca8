//! Index repair after an unclean stop.
//!
//! The writer makes blocks durable before it writes index rows, and it writes the row of a new
//! call only once the call is a few seconds old (or complete), so that short calls cost one row.
//! At every flush it saves, per bucket, the first block that some open call's row does not list
//! yet (`recover_from`). After a crash, the blocks from there on are read again: calls that have
//! a row get the blocks it misses, and calls that have none are rebuilt from their records and
//! closed with the reason "collector restart". Nothing that reached a segment is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::{params, OptionalExtension};
use siphon_calls::{CallConfig, CallRef, Correlator};
use siphon_sip::Message;
use siphon_wire::decode::Decoder;

use crate::index;
use crate::reindex::Emitter;
use crate::segment::BlockRef;
use crate::segment::{self, BlockKind, KIND_CALL_DEF};
use crate::{list_segments, StoreError};

/// What a recovery did in one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoverReport {
    /// Blocks read again.
    pub blocks: u64,
    /// Rows that got blocks they did not list.
    pub rows_repaired: u64,
    /// Calls that had no row and were rebuilt from their records.
    pub calls_rebuilt: u64,
}

/// Packets of one call in one block, by kind.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    blocks: u32,
    sip: i64,
    rtp: i64,
    rtcp: i64,
    last_ts: i64,
}

impl Counts {
    fn add(&mut self, kind: u8, ts: i64) {
        self.blocks = 1;
        match siphon_ingest::Kind::from_u8(kind) {
            Some(siphon_ingest::Kind::Sip) => self.sip += 1,
            Some(siphon_ingest::Kind::Rtp | siphon_ingest::Kind::OrphanRtp) => self.rtp += 1,
            Some(siphon_ingest::Kind::Rtcp) => self.rtcp += 1,
            None => {}
        }
        self.last_ts = self.last_ts.max(ts);
    }

    fn merge(&mut self, o: &Counts) {
        self.blocks += 1;
        self.sip += o.sip;
        self.rtp += o.rtp;
        self.rtcp += o.rtcp;
        self.last_ts = self.last_ts.max(o.last_ts);
    }
}

/// Reason recorded on calls rebuilt by a recovery.
pub const RESTART_REASON: &str = "collector restart";

/// Calls `f(block, kind, link, call, time, bytes)` for every record with a call of the tail's
/// blocks, in write order. A damaged block is skipped, as a rebuild would.
#[allow(clippy::type_complexity)]
fn for_each_tail_record(
    tail: &[(std::path::PathBuf, u32, Vec<u64>)],
    f: &mut dyn FnMut(BlockRef, u8, siphon_wire::link::LinkType, CallRef, i64, &[u8]),
) -> Result<(), StoreError> {
    for (p, n, offsets) in tail {
        let mut file = std::fs::File::open(p).map_err(|e| StoreError::io(p, e))?;
        for &off in offsets {
            let Ok((hdr, raw)) = segment::read_block(&mut file, off) else {
                continue;
            };
            let at = BlockRef {
                segment: *n,
                offset: off,
            };
            segment::for_each_record(&hdr, &raw, off, |kind, link, r, ts, _node, data| {
                if r != 0 {
                    f(at, kind, link, r, ts, data);
                }
            })
            .map_err(|e| StoreError::segment(p, e))?;
        }
    }
    Ok(())
}

/// Repairs the index of the bucket at `dir` from its recovery point, if it has one.
pub fn recover_bucket(dir: &Path, calls: &CallConfig) -> Result<RecoverReport, StoreError> {
    let mut rep = RecoverReport::default();
    let ipath = dir.join("index.sqlite");
    if !ipath.is_file() {
        return Ok(rep);
    }
    // Most opens find nothing to do: look without opening for writing.
    let pending = index::open_read(&ipath)
        .and_then(|c| index::recover_from(&c))
        .map_err(|e| StoreError::index(&ipath, e))?;
    if pending.is_none() {
        return Ok(rep);
    }
    let conn = index::open(&ipath).map_err(|e| StoreError::index(&ipath, e))?;
    let Some(from) = index::recover_from(&conn).map_err(|e| StoreError::index(&ipath, e))? else {
        return Ok(rep);
    };
    let mut next_seg = 1;
    // The tail's blocks, in order. Two passes over them keep memory to per-call figures: the
    // first counts each call's packets per block, the second replays only the calls that
    // have no row.
    let mut tail: Vec<(std::path::PathBuf, u32, Vec<u64>)> = Vec::new();
    for (n, p) in list_segments(dir)? {
        next_seg = next_seg.max(n + 1);
        if n < from.segment {
            continue;
        }
        segment::recover(&p).map_err(|e| StoreError::segment(&p, e))?;
        let scan = segment::scan(&p).map_err(|e| StoreError::segment(&p, e))?;
        let offsets = scan
            .blocks
            .into_iter()
            .filter(|&(off, kind)| {
                kind != BlockKind::Summary as u8
                    && BlockRef {
                        segment: n,
                        offset: off,
                    } >= from
            })
            .map(|(off, _)| off)
            .collect();
        tail.push((p, n, offsets));
    }
    let mut blocks: BTreeMap<CallRef, BTreeMap<BlockRef, Counts>> = BTreeMap::new();
    let mut defs: BTreeMap<CallRef, Vec<u8>> = BTreeMap::new();
    for_each_tail_record(&tail, &mut |at, kind, _link, r, ts, data| {
        let c = blocks.entry(r).or_default().entry(at).or_default();
        if kind == KIND_CALL_DEF {
            defs.insert(r, data.to_vec());
        } else {
            c.add(kind, ts);
        }
    })?;
    rep.blocks = tail.iter().map(|t| t.2.len() as u64).sum();
    // Rows that exist get the blocks they miss; the others are rebuilt below.
    let mut missing: BTreeSet<CallRef> = BTreeSet::new();
    {
        let tx = conn
            .unchecked_transaction()
            .map_err(|e| StoreError::index(&ipath, e))?;
        for (r, bl) in &blocks {
            let stored: Option<(Option<Vec<u8>>, i64)> = conn
                .query_row(
                    "SELECT blocks, start_us FROM calls WHERE ref = ?1",
                    params![*r as i64],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(|e| StoreError::index(&ipath, e))?;
            match stored {
                None => {
                    missing.insert(*r);
                }
                Some((b, start_us)) => {
                    let mut all: BTreeSet<BlockRef> =
                        index::unpack_blocks(b.as_deref().unwrap_or_default())
                            .into_iter()
                            .collect();
                    // A block the row does not list was written after the row's snapshot: its
                    // packets of the call are all newer, and add to the row's counts.
                    let mut more = Counts::default();
                    for (at, c) in bl {
                        if all.insert(*at) {
                            more.merge(c);
                        }
                    }
                    if more.blocks > 0 {
                        let v: Vec<BlockRef> = all.into_iter().collect();
                        conn.execute(
                            "UPDATE calls SET blocks = ?1, messages = messages + ?2,
                               rtp = rtp + ?3, rtcp = rtcp + ?4, end_d = max(end_d, ?5)
                             WHERE ref = ?6",
                            params![
                                index::pack_blocks(&v),
                                more.sip,
                                more.rtp,
                                more.rtcp,
                                more.last_ts.saturating_sub(start_us),
                                *r as i64
                            ],
                        )
                        .map_err(|e| StoreError::index(&ipath, e))?;
                        rep.rows_repaired += 1;
                    }
                }
            }
        }
        tx.commit().map_err(|e| StoreError::index(&ipath, e))?;
    }
    // Calls without a row: their records from their definition on are all in the tail (the
    // recovery point is at or before their first block).
    missing.retain(|r| defs.contains_key(r));
    if !missing.is_empty() {
        let mut cfg = calls.clone();
        cfg.closing_grace_s = cfg.closing_grace_s.max(600);
        let mut corr = Correlator::new(cfg, 1);
        let mut decoder = Decoder::new();
        for_each_tail_record(&tail, &mut |_, kind, link, r, ts, data| {
            if !missing.contains(&r) {
                return;
            }
            if kind == KIND_CALL_DEF {
                corr.preassign(data, r);
                return;
            }
            let Ok(Some(pkt)) = decoder.decode_raw(ts, link, data) else {
                return;
            };
            if kind == siphon_ingest::Kind::Sip as u8 {
                if let Ok(msg) = Message::parse(pkt.payload) {
                    let (src, dst) = (pkt.src, pkt.dst);
                    corr.on_sip(ts, src, dst, &msg, &mut |_| None);
                }
            } else {
                let (src, dst, payload) = (pkt.src, pkt.dst, pkt.payload.to_vec());
                corr.on_call_media(r, ts, src, dst, &payload);
            }
        })?;
        let mut done = Vec::new();
        corr.finish(RESTART_REASON, &mut done);
        let mut out = Emitter::new(dir, &conn, next_seg)?;
        for s in done {
            // Only the calls defined in the tail keep their handle; anything else is ignored.
            if !missing.contains(&s.call_ref) {
                continue;
            }
            let bl: Vec<BlockRef> = blocks
                .get(&s.call_ref)
                .map(|b| b.keys().copied().collect())
                .unwrap_or_default();
            out.add(s, bl)?;
            rep.calls_rebuilt += 1;
        }
        out.flush()?;
        if let Some(seg) = out.seg.take() {
            seg.seal().map_err(|e| StoreError::io(dir, e))?;
        }
    }
    index::clear_recover_from(&conn).map_err(|e| StoreError::index(&ipath, e))?;
    Ok(rep)
}
