//! A call's stored packets in capture-time order, read one block at a time: exporting an
//! hour-long call (a pcap, a WAV) holds a block and a window of packets in memory, not the
//! call.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::path::PathBuf;

use crate::index::CallRow;
use crate::segment::{self, BlockKind, BlockRef, StoredRecord};
use crate::StoreError;

/// Media packets held back to restore capture-time order: a packet that arrived up to this
/// many packets late still comes out in place (HEP agents and reassembly deliver slightly out
/// of order; the store keeps arrival order).
pub const REORDER_WINDOW: usize = 4096;

/// A media record waiting in the window, ordered by time, then arrival.
struct Pending {
    seq: u64,
    rec: StoredRecord,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.rec.ts_us, self.seq).cmp(&(o.rec.ts_us, o.seq))
    }
}

/// Iterator over a call's packets by capture time (see [`crate::Store::packets`]). SIP
/// messages come from memory (a call has few); media is read block by block. A damaged block
/// ends the iteration with its error.
pub struct CallPackets {
    dir: PathBuf,
    call_ref: u64,
    blocks: std::vec::IntoIter<BlockRef>,
    file: Option<(u32, File)>,
    sip: VecDeque<StoredRecord>,
    block: VecDeque<StoredRecord>,
    window: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    done: bool,
}

impl CallPackets {
    pub(crate) fn new(dir: PathBuf, row: &CallRow, mut sip: Vec<StoredRecord>) -> Self {
        sip.sort_by_key(|r| r.ts_us);
        CallPackets {
            dir,
            call_ref: row.call_ref,
            blocks: row.blocks.clone().into_iter(),
            file: None,
            sip: sip.into(),
            block: VecDeque::new(),
            window: BinaryHeap::new(),
            seq: 0,
            done: false,
        }
    }

    /// The next media record in stored order, reading the next media block when needed.
    fn next_media(&mut self) -> Result<Option<StoredRecord>, StoreError> {
        loop {
            if let Some(r) = self.block.pop_front() {
                return Ok(Some(r));
            }
            let Some(br) = self.blocks.next() else {
                return Ok(None);
            };
            let path = self.dir.join(format!("{:06}.seg", br.segment));
            if self.file.as_ref().map(|f| f.0) != Some(br.segment) {
                let f = File::open(&path)
                    .map_err(|e| StoreError::io(&path, e).unless_gone(&self.dir))?;
                self.file = Some((br.segment, f));
            }
            let Some((_, f)) = self.file.as_mut() else {
                continue;
            };
            let Some((hdr, raw)) =
                segment::read_block_of(f, br.offset, |k| k == BlockKind::Media as u8)
                    .map_err(|e| StoreError::segment(&path, e))?
            else {
                continue;
            };
            segment::call_records(&hdr, &raw, br.offset, self.call_ref, &mut self.block)
                .map_err(|e| StoreError::segment(&path, e))?;
        }
    }
}

impl Iterator for CallPackets {
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        while self.window.len() < REORDER_WINDOW {
            match self.next_media() {
                Ok(Some(rec)) => {
                    self.seq += 1;
                    self.window.push(Reverse(Pending { seq: self.seq, rec }));
                }
                Ok(None) => break,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let media_ts = self.window.peek().map(|p| p.0.rec.ts_us);
        let sip_first = match (self.sip.front(), media_ts) {
            (Some(s), Some(m)) => s.ts_us <= m,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => {
                self.done = true;
                return None;
            }
        };
        if sip_first {
            self.sip.pop_front().map(Ok)
        } else {
            self.window.pop().map(|p| Ok(p.0.rec))
        }
    }
}
