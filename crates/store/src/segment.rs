//! Segment files: an append-only sequence of checksummed, zstd-compressed blocks of records.
//!
//! ```text
//! segment := header block* footer?
//! header  := "SIPHSEG\0" version:u32le reserved:u32le                      (16 bytes)
//! block   := "SBK1" kind:u8 codec:u8 reserved:u16 raw_len:u32le comp_len:u32le
//!            records:u32le first_ts_us:i64le crc32c:u32le payload[comp_len]   (32-byte header)
//! footer  := "SIPHEND\0" blocks:u32le data_end:u64le crc32c:u32le          (24 bytes)
//! blocks are SIP (1: SIP messages and call definitions), media (2: one call's RTP/RTCP) or
//! summary (3: the cold fields of the call rows committed at a flush).
//! record  := kind:u8 link:varint call_ref:varint ts_delta:zigzag-varint node:varint len:varint bytes
//! ```
//! A record's `bytes` are the frame as captured, in the pcap link type `link`, or for packets
//! that came without a frame (HEP) an addressed record (`LinkType::ADDRESSED`: see
//! `siphon_wire::write::addressed_payload_into`).
//! The block CRC32C covers the first 28 header bytes and the payload. `ts_delta` is relative to
//! the previous record of the block (the first to `first_ts_us`). A segment without a footer was
//! not closed cleanly: it is read block by block and its torn tail (an incomplete or corrupt
//! last block) is cut off by [`recover`].

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use siphon_ingest::Kind;
use siphon_wire::link::LinkType;

/// Magic of a segment file.
pub const SEG_MAGIC: &[u8; 8] = b"SIPHSEG\0";
/// Current format version.
pub const SEG_VERSION: u32 = 1;
const BLOCK_MAGIC: &[u8; 4] = b"SBK1";
const FOOTER_MAGIC: &[u8; 8] = b"SIPHEND\0";
/// Size of the segment header.
pub const HEADER_LEN: u64 = 16;
/// Size of a block header.
pub const BLOCK_HEADER_LEN: usize = 32;
const FOOTER_LEN: usize = 24;
/// Largest raw (uncompressed) block accepted when reading.
pub const MAX_RAW_BLOCK: u32 = 64 << 20;

/// Record kind byte of a call definition (call handle → Call-ID), stored in SIP blocks.
pub const KIND_CALL_DEF: u8 = 10;

/// Record kind byte of a call summary's cold fields, stored in summary blocks.
pub const KIND_SUMMARY: u8 = 12;

/// Record kind byte of a call's quality report (JSON), stored in summary blocks.
pub const KIND_QUALITY: u8 = 13;

/// What a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BlockKind {
    /// SIP messages and call definitions of many calls.
    Sip = 1,
    /// RTP/RTCP of one call.
    Media = 2,
    /// Call summaries written at a flush (the index's cold fields).
    Summary = 3,
}

/// Where a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockRef {
    /// Segment number in the bucket.
    pub segment: u32,
    /// Byte offset of the block header.
    pub offset: u64,
}

/// A record read back from a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record kind byte ([`Kind`] values, or [`KIND_CALL_DEF`]).
    pub kind: u8,
    /// Link type of `data`.
    pub link: LinkType,
    /// Call handle (0: none).
    pub call_ref: u64,
    /// Capture time (µs).
    pub ts_us: i64,
    /// Capture node.
    pub node: u32,
    /// Frame bytes (or the Call-ID for a call definition).
    pub data: Vec<u8>,
}

/// Errors reading segment data.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// I/O failure.
    #[error("segment i/o: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not what the format says.
    #[error("corrupt segment data at byte {offset}: {what}")]
    Corrupt {
        /// Offset of the block.
        offset: u64,
        /// What was wrong.
        what: &'static str,
    },
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// An open block being filled with records.
#[derive(Debug, Default)]
pub struct BlockBuf {
    raw: Vec<u8>,
    records: u32,
    first_ts: i64,
    prev_ts: i64,
}

impl BlockBuf {
    /// Appends one record.
    pub fn push(
        &mut self,
        kind: u8,
        link: LinkType,
        call_ref: u64,
        ts_us: i64,
        node: u32,
        data: &[u8],
    ) {
        self.push_parts(kind, link, call_ref, ts_us, node, &[], data);
    }

    /// Appends one record whose data is `head` followed by `data`, without joining them
    /// first.
    #[allow(clippy::too_many_arguments)]
    pub fn push_parts(
        &mut self,
        kind: u8,
        link: LinkType,
        call_ref: u64,
        ts_us: i64,
        node: u32,
        head: &[u8],
        data: &[u8],
    ) {
        if self.records == 0 {
            self.first_ts = ts_us;
            self.prev_ts = ts_us;
        }
        self.raw.push(kind);
        put_varint(&mut self.raw, u64::from(link.0));
        put_varint(&mut self.raw, call_ref);
        put_varint(&mut self.raw, zigzag(ts_us.wrapping_sub(self.prev_ts)));
        put_varint(&mut self.raw, u64::from(node));
        put_varint(&mut self.raw, (head.len() + data.len()) as u64);
        self.raw.extend_from_slice(head);
        self.raw.extend_from_slice(data);
        self.prev_ts = ts_us;
        self.records += 1;
    }

    /// Raw bytes buffered.
    pub fn raw_len(&self) -> usize {
        self.raw.len()
    }

    /// Records buffered.
    pub fn records(&self) -> u32 {
        self.records
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Compresses the buffered records into a complete block (header + payload) appended to
    /// `out`, and empties the buffer.
    pub fn seal_into(
        &mut self,
        kind: BlockKind,
        compressor: &mut zstd::bulk::Compressor<'_>,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let start = out.len();
        out.extend_from_slice(BLOCK_MAGIC);
        out.push(kind as u8);
        out.push(1); // zstd
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(self.raw.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]); // comp_len, patched below
        out.extend_from_slice(&self.records.to_le_bytes());
        out.extend_from_slice(&self.first_ts.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // crc, patched below
        let payload_start = out.len();
        // Compressed into a reused buffer, then copied: cheaper than zeroing the compress
        // bound in `out` for every block.
        let n = SCRATCH.with_borrow_mut(|scratch| -> io::Result<usize> {
            scratch.clear();
            scratch.reserve(zstd::zstd_safe::compress_bound(self.raw.len()));
            let n = compressor.compress_to_buffer(&self.raw, scratch)?;
            out.extend_from_slice(scratch);
            Ok(n)
        })?;
        out[start + 12..start + 16].copy_from_slice(&(n as u32).to_le_bytes());
        let mut crc = crc32c::crc32c(&out[start..start + 28]);
        crc = crc32c::crc32c_append(crc, &out[payload_start..]);
        out[start + 28..start + 32].copy_from_slice(&crc.to_le_bytes());
        self.raw.clear();
        self.records = 0;
        Ok(())
    }
}

thread_local! {
    /// Compression output of [`BlockBuf::seal_into`], kept between blocks.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Parsed block header.
#[derive(Debug, Clone, Copy)]
pub struct BlockHeader {
    /// What the block holds.
    pub kind: u8,
    /// Uncompressed size.
    pub raw_len: u32,
    /// Compressed size.
    pub comp_len: u32,
    /// Records in the block.
    pub records: u32,
    /// Time of the first record.
    pub first_ts: i64,
    crc: u32,
    codec: u8,
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn parse_block_header(h: &[u8], offset: u64) -> Result<BlockHeader, SegmentError> {
    if h.len() < BLOCK_HEADER_LEN || &h[..4] != BLOCK_MAGIC {
        return Err(SegmentError::Corrupt {
            offset,
            what: "bad block magic",
        });
    }
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&h[20..28]);
    let hdr = BlockHeader {
        kind: h[4],
        codec: h[5],
        raw_len: le32(h, 8),
        comp_len: le32(h, 12),
        records: le32(h, 16),
        first_ts: i64::from_le_bytes(ts),
        crc: le32(h, 28),
    };
    if hdr.raw_len > MAX_RAW_BLOCK || hdr.comp_len > MAX_RAW_BLOCK {
        return Err(SegmentError::Corrupt {
            offset,
            what: "block larger than the format allows",
        });
    }
    Ok(hdr)
}

/// Reads and verifies the block at `offset`, returning its header and raw (decompressed) bytes.
pub fn read_block(file: &mut File, offset: u64) -> Result<(BlockHeader, Vec<u8>), SegmentError> {
    // Every kind is wanted, so a block always comes back.
    read_block_of(file, offset, |_| true)?.ok_or(SegmentError::Corrupt {
        offset,
        what: "block skipped",
    })
}

/// As [`read_block`], for blocks whose kind (a [`BlockKind`] value) `want` accepts; others are
/// skipped after their header is read (`None`): their payload is neither read nor checked.
pub fn read_block_of(
    file: &mut File,
    offset: u64,
    want: impl Fn(u8) -> bool,
) -> Result<Option<(BlockHeader, Vec<u8>)>, SegmentError> {
    file.seek(SeekFrom::Start(offset))?;
    let mut h = [0u8; BLOCK_HEADER_LEN];
    file.read_exact(&mut h).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => SegmentError::Corrupt {
            offset,
            what: "block header cut short",
        },
        _ => SegmentError::Io(e),
    })?;
    let hdr = parse_block_header(&h, offset)?;
    if !want(hdr.kind) {
        return Ok(None);
    }
    let mut payload = vec![0u8; hdr.comp_len as usize];
    file.read_exact(&mut payload).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => SegmentError::Corrupt {
            offset,
            what: "block payload cut short",
        },
        _ => SegmentError::Io(e),
    })?;
    let mut crc = crc32c::crc32c(&h[..28]);
    crc = crc32c::crc32c_append(crc, &payload);
    if crc != hdr.crc {
        return Err(SegmentError::Corrupt {
            offset,
            what: "block checksum mismatch",
        });
    }
    let raw = match hdr.codec {
        0 => payload,
        1 => zstd::bulk::decompress(&payload, hdr.raw_len as usize).map_err(|_| {
            SegmentError::Corrupt {
                offset,
                what: "block does not decompress",
            }
        })?,
        _ => {
            return Err(SegmentError::Corrupt {
                offset,
                what: "unknown block codec",
            })
        }
    };
    if raw.len() != hdr.raw_len as usize {
        return Err(SegmentError::Corrupt {
            offset,
            what: "block size differs from its header",
        });
    }
    Ok(Some((hdr, raw)))
}

/// The records of call `call_ref` in a raw block (its call definition left out), added to
/// `out`.
pub fn call_records(
    hdr: &BlockHeader,
    raw: &[u8],
    offset: u64,
    call_ref: u64,
    out: &mut impl Extend<StoredRecord>,
) -> Result<(), SegmentError> {
    for_each_record(hdr, raw, offset, |kind, link, r, ts, node, data| {
        if r == call_ref && kind != KIND_CALL_DEF {
            out.extend(std::iter::once(StoredRecord {
                kind,
                link,
                call_ref: r,
                ts_us: ts,
                node,
                data: data.to_vec(),
            }));
        }
    })
}

/// Decodes the records of a raw block, calling `f` for each; stops with an error at the first
/// malformed record.
pub fn for_each_record(
    hdr: &BlockHeader,
    raw: &[u8],
    offset: u64,
    mut f: impl FnMut(u8, LinkType, u64, i64, u32, &[u8]),
) -> Result<(), SegmentError> {
    let bad = |what| SegmentError::Corrupt { offset, what };
    let mut pos = 0usize;
    let mut ts = hdr.first_ts;
    for _ in 0..hdr.records {
        let kind = *raw.get(pos).ok_or(bad("record cut short"))?;
        pos += 1;
        let link = get_varint(raw, &mut pos).ok_or(bad("record cut short"))?;
        let call_ref = get_varint(raw, &mut pos).ok_or(bad("record cut short"))?;
        let dt = get_varint(raw, &mut pos).ok_or(bad("record cut short"))?;
        let node = get_varint(raw, &mut pos).ok_or(bad("record cut short"))?;
        let len = get_varint(raw, &mut pos).ok_or(bad("record cut short"))?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .ok_or(bad("record length overflows"))?;
        let data = raw
            .get(pos..end)
            .ok_or(bad("record longer than its block"))?;
        pos = end;
        ts = ts.wrapping_add(unzigzag(dt));
        f(
            kind,
            LinkType(u32::try_from(link).unwrap_or(u32::MAX)),
            call_ref,
            ts,
            u32::try_from(node).unwrap_or(u32::MAX),
            data,
        );
    }
    Ok(())
}

/// Writes blocks to one segment file.
pub struct SegmentWriter {
    file: File,
    len: u64,
    blocks: u32,
    /// Segment number.
    pub number: u32,
}

impl SegmentWriter {
    /// Creates segment `number` at `path` (which must not exist).
    pub fn create(path: &Path, number: u32) -> io::Result<Self> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let mut h = Vec::with_capacity(16);
        h.extend_from_slice(SEG_MAGIC);
        h.extend_from_slice(&SEG_VERSION.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        if let Err(e) = file.write_all(&h) {
            // A disk that is full: leave no headless file behind.
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(SegmentWriter {
            file,
            len: HEADER_LEN,
            blocks: 0,
            number,
        })
    }

    /// Appends sealed blocks (as made by [`BlockBuf::seal_into`]); returns the offset they start at.
    /// A failed append (a full disk) leaves the segment as it was, so it can be retried.
    pub fn append(&mut self, bytes: &[u8], blocks: u32) -> io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let at = self.len;
        if let Err(e) = self.file.write_all_at(bytes, at) {
            // Whatever part was written goes: the next append starts at `len` again.
            let _ = self.file.set_len(at);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.blocks += blocks;
        Ok(at)
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when only the header is written.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Writes the footer and syncs: the segment is sealed.
    pub fn seal(self) -> io::Result<()> {
        let mut f = Vec::with_capacity(FOOTER_LEN);
        f.extend_from_slice(FOOTER_MAGIC);
        f.extend_from_slice(&self.blocks.to_le_bytes());
        f.extend_from_slice(&self.len.to_le_bytes());
        let crc = crc32c::crc32c(&f);
        f.extend_from_slice(&crc.to_le_bytes());
        std::os::unix::fs::FileExt::write_all_at(&self.file, &f, self.len)?;
        self.file.sync_all()
    }
}

/// Result of scanning a segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Blocks that read back whole.
    pub blocks: Vec<(u64, u8)>,
    /// True when a valid footer ends the file.
    pub sealed: bool,
    /// Offset where valid data ends.
    pub valid_end: u64,
    /// Bytes after `valid_end` (a torn tail when not sealed).
    pub torn_bytes: u64,
}

/// Reads a segment's blocks from the start, verifying each, until the footer, the end or the
/// first damaged block.
pub fn scan(path: &Path) -> Result<ScanReport, SegmentError> {
    let mut file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut h = [0u8; 16];
    if file.read_exact(&mut h).is_err() || &h[..8] != SEG_MAGIC {
        return Err(SegmentError::Corrupt {
            offset: 0,
            what: "not a segment file",
        });
    }
    let mut rep = ScanReport::default();
    let mut off = HEADER_LEN;
    loop {
        if off + FOOTER_LEN as u64 == total {
            let mut f = [0u8; FOOTER_LEN];
            file.seek(SeekFrom::Start(off))?;
            if file.read_exact(&mut f).is_ok()
                && &f[..8] == FOOTER_MAGIC
                && crc32c::crc32c(&f[..20]) == le32(&f, 20)
            {
                rep.sealed = true;
                rep.valid_end = off;
                return Ok(rep);
            }
        }
        if off >= total {
            break;
        }
        match read_block(&mut file, off) {
            Ok((hdr, _)) => {
                rep.blocks.push((off, hdr.kind));
                off += BLOCK_HEADER_LEN as u64 + u64::from(hdr.comp_len);
            }
            Err(SegmentError::Io(e)) => return Err(SegmentError::Io(e)),
            Err(SegmentError::Corrupt { .. }) => break,
        }
    }
    rep.valid_end = off;
    rep.torn_bytes = total - off;
    Ok(rep)
}

/// Cuts the torn tail of an unsealed segment; returns the bytes removed.
pub fn recover(path: &Path) -> Result<u64, SegmentError> {
    let rep = scan(path)?;
    if rep.sealed || rep.torn_bytes == 0 {
        return Ok(0);
    }
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(rep.valid_end)?;
    f.sync_all()?;
    Ok(rep.torn_bytes)
}

/// The record kind byte of a pipeline record.
pub fn kind_byte(k: Kind) -> u8 {
    k as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_with(records: &[(u64, i64, &[u8])]) -> Vec<u8> {
        let mut b = BlockBuf::default();
        for (r, ts, d) in records {
            b.push(1, LinkType::ETHERNET, *r, *ts, 7, d);
        }
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        let mut out = Vec::new();
        b.seal_into(BlockKind::Sip, &mut c, &mut out).unwrap();
        out
    }

    #[test]
    fn records_round_trip_through_a_segment() {
        let dir = tempdir();
        let p = dir.join("000001.seg");
        let mut w = SegmentWriter::create(&p, 1).unwrap();
        let recs: Vec<(u64, i64, &[u8])> = vec![
            (5, 1_000_000, b"one"),
            (6, 999_000, b"two"),
            (5, 2_000_000, b""),
        ];
        let blk = block_with(&recs);
        let at = w.append(&blk, 1).unwrap();
        w.seal().unwrap();
        let mut f = File::open(&p).unwrap();
        let (h, raw) = read_block(&mut f, at).unwrap();
        let mut got = Vec::new();
        for_each_record(&h, &raw, at, |k, l, r, t, n, d| {
            assert_eq!((k, l, n), (1, LinkType::ETHERNET, 7));
            got.push((r, t, d.to_vec()));
        })
        .unwrap();
        let want: Vec<_> = recs.iter().map(|(r, t, d)| (*r, *t, d.to_vec())).collect();
        assert_eq!(got, want);
        let rep = scan(&p).unwrap();
        assert!(rep.sealed);
        assert_eq!(rep.blocks.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A record pushed in two parts reads back as one, the parts joined in order.
    #[test]
    fn a_record_pushed_in_two_parts_reads_back_joined() {
        let mut b = BlockBuf::default();
        b.push_parts(1, LinkType::ADDRESSED, 9, 5_000, 7, b"head:", b"payload");
        b.push_parts(1, LinkType::ADDRESSED, 9, 6_000, 7, b"", b"no head");
        b.push(1, LinkType::ADDRESSED, 9, 7_000, 7, b"whole");
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        let mut blk = Vec::new();
        b.seal_into(BlockKind::Sip, &mut c, &mut blk).unwrap();
        let dir = tempdir();
        let p = dir.join("000001.seg");
        let mut w = SegmentWriter::create(&p, 1).unwrap();
        let at = w.append(&blk, 1).unwrap();
        w.seal().unwrap();
        let (h, raw) = read_block(&mut File::open(&p).unwrap(), at).unwrap();
        let mut got = Vec::new();
        for_each_record(&h, &raw, at, |_, l, r, t, n, d| {
            assert_eq!((l, r, n), (LinkType::ADDRESSED, 9, 7));
            got.push((t, d.to_vec()));
        })
        .unwrap();
        let want: Vec<(i64, Vec<u8>)> = vec![
            (5_000, b"head:payload".to_vec()),
            (6_000, b"no head".to_vec()),
            (7_000, b"whole".to_vec()),
        ];
        assert_eq!(got, want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn torn_tail_is_cut_and_earlier_blocks_survive() {
        let dir = tempdir();
        let p = dir.join("000001.seg");
        let mut w = SegmentWriter::create(&p, 1).unwrap();
        let b1 = block_with(&[(1, 1, b"first")]);
        let b2 = block_with(&[(2, 2, b"second block")]);
        w.append(&b1, 1).unwrap();
        w.append(&b2[..b2.len() - 3], 1).unwrap(); // crash mid-write
        drop(w);
        let rep = scan(&p).unwrap();
        assert!(!rep.sealed);
        assert_eq!(rep.blocks.len(), 1);
        assert_eq!(recover(&p).unwrap(), b2.len() as u64 - 3);
        let rep = scan(&p).unwrap();
        assert_eq!(rep.torn_bytes, 0);
        assert_eq!(rep.blocks.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flipped_byte_is_detected_by_the_checksum() {
        let dir = tempdir();
        let p = dir.join("000001.seg");
        let mut w = SegmentWriter::create(&p, 1).unwrap();
        let mut b = block_with(&[(1, 1, b"payload bytes here")]);
        let n = b.len();
        b[n - 2] ^= 0x40;
        let at = w.append(&b, 1).unwrap();
        drop(w);
        let mut f = File::open(&p).unwrap();
        assert!(matches!(
            read_block(&mut f, at),
            Err(SegmentError::Corrupt {
                what: "block checksum mismatch",
                ..
            })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN, 123_456_789] {
            let mut b = Vec::new();
            put_varint(&mut b, zigzag(v));
            let mut p = 0;
            assert_eq!(unzigzag(get_varint(&b, &mut p).unwrap()), v);
            assert_eq!(p, b.len());
        }
    }

    pub(crate) fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "siphon-seg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
