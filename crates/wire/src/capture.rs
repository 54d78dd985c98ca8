//! Reading pcap and pcapng capture files, plain or gzip-compressed.
//!
//! [`CaptureReader`] streams frames out of one reusable buffer: a frame borrows the reader
//! until the next call, and reading a frame allocates nothing. The file format is found from
//! its magic number, never from its name.
//!
//! pcap-parser parses the file and section headers and the interface descriptions; packet
//! records are framed here by hand, because pcap-parser's packet block parser collects block
//! options into a `Vec` (one allocation per frame for files that carry options).

use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::link::LinkType;

/// One captured frame; `data` borrows the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture time, microseconds since the Unix epoch.
    pub ts_us: i64,
    /// Link type of the interface the frame was captured on.
    pub link: LinkType,
    /// Captured bytes (may be shorter than `orig_len` when the snapshot length cut it).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// Interface number: 0 for pcap; for pcapng the interface's position among all interface
    /// descriptions of the file (later sections are numbered after earlier ones).
    pub interface: u32,
}

/// Container format of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    /// Classic libpcap format (either byte order, micro- or nanosecond timestamps).
    Pcap {
        /// The file was gzip-compressed.
        gzip: bool,
    },
    /// pcapng.
    PcapNg {
        /// The file was gzip-compressed.
        gzip: bool,
    },
}

impl CaptureFormat {
    /// Whether the input was gzip-compressed.
    pub fn is_gzip(self) -> bool {
        match self {
            CaptureFormat::Pcap { gzip } | CaptureFormat::PcapNg { gzip } => gzip,
        }
    }

    /// Whether the container is pcapng.
    pub fn is_pcapng(self) -> bool {
        matches!(self, CaptureFormat::PcapNg { .. })
    }
}

impl fmt::Display for CaptureFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = if self.is_pcapng() { "pcapng" } else { "pcap" };
        f.write_str(base)?;
        if self.is_gzip() {
            f.write_str(".gz")?;
        }
        Ok(())
    }
}

/// Why a capture could not be read (further).
///
/// Offsets count bytes of the capture data, after decompression when the input is gzip.
#[derive(Debug)]
pub enum CaptureError {
    /// Reading the input failed.
    Io(io::Error),
    /// The input does not start with a pcap, pcapng or gzip magic number.
    NotACapture,
    /// The input ends in the middle of a header or record starting at `offset`.
    Truncated {
        /// Byte offset of the incomplete record.
        offset: u64,
    },
    /// The record starting at `offset` is malformed.
    Corrupt {
        /// Byte offset of the malformed record.
        offset: u64,
        /// What was wrong with it.
        what: &'static str,
    },
}

impl CaptureError {
    /// Stable snake_case label for counting.
    pub fn reason(&self) -> &'static str {
        match self {
            CaptureError::Io(_) => "io",
            CaptureError::NotACapture => "not_a_capture",
            CaptureError::Truncated { .. } => "truncated",
            CaptureError::Corrupt { .. } => "corrupt",
        }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io(e) => write!(f, "cannot read the capture: {e}"),
            CaptureError::NotACapture => {
                f.write_str("not a capture file: no pcap, pcapng or gzip magic number at the start")
            }
            CaptureError::Truncated { offset } => write!(
                f,
                "file is truncated at byte {offset}: the last record is incomplete"
            ),
            CaptureError::Corrupt { offset, what } => {
                write!(f, "file is corrupt at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaptureError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for CaptureError {
    fn from(e: io::Error) -> Self {
        CaptureError::Io(e)
    }
}

/// Initial size of the read buffer.
const INITIAL_BUFFER: usize = 256 * 1024;
/// Largest pcapng block or pcap record accepted.
const MAX_RECORD: usize = 16 * 1024 * 1024;
/// Record lengths up to this are accepted whatever the file's snapshot length says.
const MIN_SNAPLEN_LIMIT: u32 = 262_144;

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAP_MAGIC_MODIFIED: u32 = 0xa1b2_cd34;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_PB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
const OPT_IF_TSOFFSET: u16 = 14;

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count = self.count.saturating_add(n as u64);
        Ok(n)
    }
}

type Input = Box<dyn Read + Send>;
/// Decompressor over the sniffed magic bytes followed by the rest of the input.
type Gunzip = MultiGzDecoder<Counting<io::Chain<Cursor<Vec<u8>>, Input>>>;

enum Source {
    Plain(Input),
    Gzip(Box<Gunzip>),
}

impl Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Plain(r) => r.read(buf),
            Source::Gzip(r) => r.read(buf),
        }
    }
}

/// Timestamp resolution of a pcapng interface.
#[derive(Clone, Copy, Debug)]
enum Resolution {
    /// 10^-n seconds, n <= 19.
    Decimal(u32),
    /// 2^-n seconds, n <= 63.
    Binary(u32),
}

impl Resolution {
    fn from_tsresol(v: u8) -> Option<Resolution> {
        let n = u32::from(v & 0x7f);
        if v & 0x80 == 0 {
            (n <= 19).then_some(Resolution::Decimal(n))
        } else {
            (n <= 63).then_some(Resolution::Binary(n))
        }
    }

    fn to_us(self, units: u64) -> i128 {
        let units = i128::from(units);
        match self {
            Resolution::Decimal(n) if n <= 6 => units * 10i128.pow(6 - n),
            Resolution::Decimal(n) => units / 10i128.pow(n - 6),
            Resolution::Binary(n) => (units * 1_000_000) >> n,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    resolution: Resolution,
    offset_s: i64,
    number: u32,
}

#[derive(Debug)]
enum Layout {
    Pcap {
        big_endian: bool,
        nanos: bool,
        record_header: usize,
        link: LinkType,
        max_caplen: u32,
    },
    PcapNg {
        big_endian: bool,
        interfaces: Vec<Interface>,
        next_number: u32,
    },
}

/// Position of a frame inside the buffer, found before the frame is handed out.
struct Record {
    ts_us: i64,
    link: LinkType,
    data_start: usize,
    data_len: usize,
    orig_len: u32,
    interface: u32,
}

/// Streaming reader of pcap / pcapng / gzip-compressed captures.
pub struct CaptureReader {
    src: Source,
    buf: Vec<u8>,
    /// First unconsumed byte of `buf`.
    start: usize,
    /// End of valid data in `buf`.
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Bytes of the record last handed out, consumed at the next call.
    pending: usize,
    eof: bool,
    /// The gzip stream ended before its trailer.
    gzip_cut: bool,
    done: bool,
    format: CaptureFormat,
    layout: Layout,
}

impl fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.format)
            .field("offset", &self.offset())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

fn read_u32(b: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(bytes)
    } else {
        u32::from_le_bytes(bytes)
    })
}

fn read_u16(b: &[u8], at: usize, big_endian: bool) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if big_endian {
        u16::from_be_bytes(bytes)
    } else {
        u16::from_le_bytes(bytes)
    })
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let Some(rest) = buf.get_mut(n..) else { break };
        match r.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Major version of a pcapng section header block.
fn parse_section_header(block: &[u8]) -> Result<u16, &'static str> {
    match pcap_parser::pcapng::parse_sectionheaderblock(block) {
        Ok((_, shb)) => Ok(shb.major_version),
        Err(_) => Err("unreadable pcapng section header"),
    }
}

/// Link type, snapshot length, timestamp resolution and offset of an interface description.
fn parse_interface(
    block: &[u8],
    be: bool,
) -> Result<(LinkType, u32, Resolution, i64), &'static str> {
    let parsed = if be {
        pcap_parser::pcapng::parse_interfacedescriptionblock_be(block)
    } else {
        pcap_parser::pcapng::parse_interfacedescriptionblock_le(block)
    };
    let Ok((_, idb)) = parsed else {
        return Err("unreadable pcapng interface description");
    };
    let resolution = Resolution::from_tsresol(idb.if_tsresol).ok_or("invalid if_tsresol option")?;
    // pcap-parser reads if_tsoffset as little-endian whatever the section's byte order.
    let offset_s = idb
        .options
        .iter()
        .find(|o| o.code.0 == OPT_IF_TSOFFSET && o.len == 8)
        .and_then(|o| o.value.get(..8))
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map(|b| {
            if be {
                i64::from_be_bytes(b)
            } else {
                i64::from_le_bytes(b)
            }
        })
        .unwrap_or(0);
    let link = LinkType(u32::from(idb.linktype.0 as u16));
    Ok((link, idb.snaplen, resolution, offset_s))
}

impl CaptureReader {
    /// Opens a pcap, pcapng or gzip-compressed pcap/pcapng (detected by magic, not by file name).
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let file = File::open(path)?;
        CaptureReader::from_reader(Box::new(file))
    }

    /// Reads a capture from any byte stream (format detected by magic).
    pub fn from_reader(mut r: Box<dyn Read + Send>) -> Result<CaptureReader, CaptureError> {
        let mut magic = [0u8; 2];
        let n = read_full(&mut r, &mut magic)?;
        let sniffed = magic.get(..n).unwrap_or_default();
        let gzip = sniffed == [0x1f, 0x8b];
        let src = if gzip {
            let chained = Cursor::new(sniffed.to_vec()).chain(r);
            Source::Gzip(Box::new(MultiGzDecoder::new(Counting {
                inner: chained,
                count: 0,
            })))
        } else {
            Source::Plain(r)
        };
        let mut reader = CaptureReader {
            src,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            base: 0,
            pending: 0,
            eof: false,
            gzip_cut: false,
            done: false,
            format: CaptureFormat::Pcap { gzip },
            layout: Layout::Pcap {
                big_endian: false,
                nanos: false,
                record_header: 16,
                link: LinkType::ETHERNET,
                max_caplen: MIN_SNAPLEN_LIMIT,
            },
        };
        if !gzip {
            // The sniffed bytes are the start of the capture itself.
            if let Some(dst) = reader.buf.get_mut(..n) {
                dst.copy_from_slice(sniffed);
                reader.end = n;
            }
        }
        reader.read_file_header()?;
        Ok(reader)
    }

    /// Container format and compression of the input.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Bytes of the input consumed so far (of the compressed input when it is gzip), for a
    /// progress indicator.
    pub fn bytes_consumed(&self) -> u64 {
        match &self.src {
            Source::Plain(_) => self.offset().saturating_add(self.pending as u64),
            Source::Gzip(d) => d.get_ref().count,
        }
    }

    /// Next frame; `Ok(None)` at a clean end. After an error the reader is finished (further
    /// calls return `Ok(None)`); every frame before the damage has been returned.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        self.start = self.start.saturating_add(self.pending).min(self.end);
        self.pending = 0;
        let rec = match self.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                self.done = true;
                return Ok(None);
            }
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        let Some(data) = rec
            .data_start
            .checked_add(rec.data_len)
            .and_then(|end| self.buf.get(rec.data_start..end))
        else {
            self.done = true;
            return Err(CaptureError::Corrupt {
                offset: self.offset(),
                what: "record outside the read buffer",
            });
        };
        Ok(Some(Frame {
            ts_us: rec.ts_us,
            link: rec.link,
            data,
            orig_len: rec.orig_len,
            interface: rec.interface,
        }))
    }

    /// Stream offset of the first unconsumed byte.
    fn offset(&self) -> u64 {
        self.base.saturating_add(self.start as u64)
    }

    fn available(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    fn avail_slice(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Makes `n` unconsumed bytes available; false when the input ends first.
    fn ensure(&mut self, n: usize) -> Result<bool, CaptureError> {
        while self.available() < n {
            if self.eof {
                return Ok(false);
            }
            if self.end == self.buf.len() {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.base = self.base.saturating_add(self.start as u64);
                    self.end -= self.start;
                    self.start = 0;
                } else {
                    let grown = self.buf.len().saturating_mul(2).max(INITIAL_BUFFER);
                    self.buf.resize(grown.min(MAX_RECORD + 64), 0);
                    if self.end == self.buf.len() {
                        // Cannot happen: callers never ask for more than MAX_RECORD.
                        return Ok(false);
                    }
                }
            }
            let Some(space) = self.buf.get_mut(self.end..) else {
                return Ok(false);
            };
            match self.src.read(space) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end = self.end.saturating_add(k).min(self.buf.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(self.src, Source::Gzip(_)) => {
                    self.eof = true;
                    match e.kind() {
                        io::ErrorKind::UnexpectedEof => self.gzip_cut = true,
                        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                            return Err(CaptureError::Corrupt {
                                offset: self.offset(),
                                what: "the gzip compressed data is corrupt",
                            })
                        }
                        _ => return Err(CaptureError::Io(e)),
                    }
                }
                Err(e) => return Err(CaptureError::Io(e)),
            }
        }
        Ok(true)
    }

    /// End of input at a record boundary: clean unless the gzip stream was cut short.
    fn end_of_records(&self) -> Result<Option<Record>, CaptureError> {
        if self.available() > 0 {
            return Err(CaptureError::Truncated {
                offset: self.offset(),
            });
        }
        if self.gzip_cut {
            return Err(CaptureError::Truncated {
                offset: self.offset(),
            });
        }
        Ok(None)
    }

    fn corrupt(&self, what: &'static str) -> CaptureError {
        CaptureError::Corrupt {
            offset: self.offset(),
            what,
        }
    }

    fn read_file_header(&mut self) -> Result<(), CaptureError> {
        if !self.ensure(4)? {
            return Err(CaptureError::NotACapture);
        }
        let gzip = self.format.is_gzip();
        let avail = self.avail_slice();
        let le = read_u32(avail, 0, false).unwrap_or(0);
        let be = read_u32(avail, 0, true).unwrap_or(0);
        if le == PCAPNG_SHB {
            self.format = CaptureFormat::PcapNg { gzip };
            self.layout = Layout::PcapNg {
                big_endian: false,
                interfaces: Vec::new(),
                next_number: 0,
            };
            // The section header is read as the first block.
            return Ok(());
        }
        let known = [PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_MODIFIED];
        if !known.contains(&le) && !known.contains(&be) {
            return Err(CaptureError::NotACapture);
        }
        if !self.ensure(24)? {
            return Err(CaptureError::Truncated { offset: 0 });
        }
        let big_endian = !known.contains(&le);
        let avail = self.avail_slice();
        let (magic, snaplen, network) = if big_endian && be == PCAP_MAGIC_MODIFIED {
            // pcap-parser knows only the little-endian flavour of this one.
            (
                be,
                read_u32(avail, 16, true).unwrap_or(0),
                read_u32(avail, 20, true).unwrap_or(0),
            )
        } else {
            match pcap_parser::parse_pcap_header(avail) {
                Ok((_, h)) => {
                    let magic = if big_endian { be } else { le };
                    (magic, h.snaplen, h.network.0 as u32)
                }
                Err(_) => return Err(self.corrupt("unreadable pcap file header")),
            }
        };
        self.layout = Layout::Pcap {
            big_endian,
            nanos: magic == PCAP_MAGIC_NS,
            record_header: if magic == PCAP_MAGIC_MODIFIED { 24 } else { 16 },
            // Upper bits carry FCS information.
            link: LinkType(network & 0xffff),
            max_caplen: snaplen.max(MIN_SNAPLEN_LIMIT),
        };
        self.start = self.start.saturating_add(24);
        Ok(())
    }

    fn next_record(&mut self) -> Result<Option<Record>, CaptureError> {
        match self.layout {
            Layout::Pcap {
                big_endian,
                nanos,
                record_header,
                link,
                max_caplen,
            } => self.next_pcap(big_endian, nanos, record_header, link, max_caplen),
            Layout::PcapNg { .. } => self.next_pcapng(),
        }
    }

    fn next_pcap(
        &mut self,
        big_endian: bool,
        nanos: bool,
        record_header: usize,
        link: LinkType,
        max_caplen: u32,
    ) -> Result<Option<Record>, CaptureError> {
        if !self.ensure(record_header)? {
            return self.end_of_records();
        }
        let hdr = self.avail_slice();
        let field = |i: usize| read_u32(hdr, i * 4, big_endian).unwrap_or(0);
        let (sec, frac, caplen, orig_len) = (field(0), field(1), field(2), field(3));
        if caplen > max_caplen || caplen as usize > MAX_RECORD {
            return Err(self.corrupt("record length exceeds the snapshot length"));
        }
        let caplen = caplen as usize;
        let total = record_header.saturating_add(caplen);
        if !self.ensure(total)? {
            return Err(CaptureError::Truncated {
                offset: self.offset(),
            });
        }
        let frac_us = if nanos {
            i64::from(frac / 1000)
        } else {
            i64::from(frac)
        };
        let ts_us = i64::from(sec)
            .saturating_mul(1_000_000)
            .saturating_add(frac_us);
        self.pending = total;
        Ok(Some(Record {
            ts_us,
            link,
            data_start: self.start.saturating_add(record_header),
            data_len: caplen,
            orig_len,
            interface: 0,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Record>, CaptureError> {
        loop {
            if !self.ensure(12)? {
                return self.end_of_records();
            }
            let Layout::PcapNg { big_endian, .. } = self.layout else {
                return Ok(None);
            };
            let avail = self.avail_slice();
            let block_type = read_u32(avail, 0, big_endian).unwrap_or(0);
            let mut be = big_endian;
            if block_type == PCAPNG_SHB {
                be = match read_u32(avail, 8, false) {
                    Some(PCAPNG_BOM) => false,
                    Some(v) if v.swap_bytes() == PCAPNG_BOM => true,
                    _ => return Err(self.corrupt("bad byte-order magic in section header")),
                };
            }
            let len = read_u32(avail, 4, be).unwrap_or(0) as usize;
            if len < 12 || !len.is_multiple_of(4) {
                return Err(self.corrupt("bad pcapng block length"));
            }
            if len > MAX_RECORD {
                return Err(self.corrupt("pcapng block larger than 16 MiB"));
            }
            if !self.ensure(len)? {
                return Err(CaptureError::Truncated {
                    offset: self.offset(),
                });
            }
            let block = self
                .buf
                .get(self.start..self.start.saturating_add(len))
                .unwrap_or_default();
            if read_u32(block, len - 4, be) != Some(len as u32) {
                return Err(self.corrupt("pcapng block trailer length does not match"));
            }
            let body = block.get(8..len - 4).unwrap_or_default();
            let body_start = self.start.saturating_add(8);
            match block_type {
                PCAPNG_SHB => {
                    let major = parse_section_header(block);
                    self.start_section(major, be)?;
                }
                PCAPNG_IDB => {
                    let iface = parse_interface(block, be);
                    self.add_interface(iface)?;
                }
                PCAPNG_EPB | PCAPNG_PB => {
                    let rec = self.packet_block(block_type, body, body_start, be)?;
                    self.pending = len;
                    return Ok(Some(rec));
                }
                PCAPNG_SPB => {
                    let rec = self.simple_packet_block(body, body_start, be)?;
                    self.pending = len;
                    return Ok(Some(rec));
                }
                _ => {}
            }
            self.start = self.start.saturating_add(len);
        }
    }

    fn start_section(
        &mut self,
        major: Result<u16, &'static str>,
        be: bool,
    ) -> Result<(), CaptureError> {
        match major {
            Ok(1) => {}
            Ok(_) => return Err(self.corrupt("unsupported pcapng major version")),
            Err(what) => return Err(self.corrupt(what)),
        }
        if let Layout::PcapNg {
            big_endian,
            interfaces,
            ..
        } = &mut self.layout
        {
            *big_endian = be;
            interfaces.clear();
        }
        Ok(())
    }

    fn add_interface(
        &mut self,
        iface: Result<(LinkType, u32, Resolution, i64), &'static str>,
    ) -> Result<(), CaptureError> {
        let (link, snaplen, resolution, offset_s) = iface.map_err(|what| self.corrupt(what))?;
        if let Layout::PcapNg {
            interfaces,
            next_number,
            ..
        } = &mut self.layout
        {
            interfaces.push(Interface {
                link,
                snaplen,
                resolution,
                offset_s,
                number: *next_number,
            });
            *next_number = next_number.saturating_add(1);
        }
        Ok(())
    }

    fn interface(&self, id: usize) -> Option<Interface> {
        match &self.layout {
            Layout::PcapNg { interfaces, .. } => interfaces.get(id).copied(),
            Layout::Pcap { .. } => None,
        }
    }

    fn packet_block(
        &self,
        block_type: u32,
        body: &[u8],
        body_start: usize,
        be: bool,
    ) -> Result<Record, CaptureError> {
        let field = |at: usize| read_u32(body, at, be);
        let (if_id, ts_high, ts_low, caplen, orig_len) = if block_type == PCAPNG_EPB {
            match (field(0), field(4), field(8), field(12), field(16)) {
                (Some(a), Some(b), Some(c), Some(d), Some(e)) => (a as usize, b, c, d, e),
                _ => return Err(self.corrupt("enhanced packet block too short")),
            }
        } else {
            // Obsolete Packet Block: 16-bit interface id and drop counter.
            match (
                read_u16(body, 0, be),
                field(4),
                field(8),
                field(12),
                field(16),
            ) {
                (Some(a), Some(b), Some(c), Some(d), Some(e)) => (usize::from(a), b, c, d, e),
                _ => return Err(self.corrupt("packet block too short")),
            }
        };
        let caplen = caplen as usize;
        if caplen > body.len().saturating_sub(20) {
            return Err(self.corrupt("packet block captured length exceeds the block"));
        }
        let Some(iface) = self.interface(if_id) else {
            return Err(self.corrupt("packet block names an undeclared interface"));
        };
        let units = (u64::from(ts_high) << 32) | u64::from(ts_low);
        let ts = iface.resolution.to_us(units) + i128::from(iface.offset_s) * 1_000_000;
        Ok(Record {
            ts_us: clamp_i64(ts),
            link: iface.link,
            data_start: body_start.saturating_add(20),
            data_len: caplen,
            orig_len,
            interface: iface.number,
        })
    }

    fn simple_packet_block(
        &self,
        body: &[u8],
        body_start: usize,
        be: bool,
    ) -> Result<Record, CaptureError> {
        let Some(iface) = self.interface(0) else {
            return Err(self.corrupt("simple packet block before any interface description"));
        };
        let Some(orig_len) = read_u32(body, 0, be) else {
            return Err(self.corrupt("simple packet block too short"));
        };
        let mut len = (orig_len as usize).min(body.len().saturating_sub(4));
        if iface.snaplen > 0 {
            len = len.min(iface.snaplen as usize);
        }
        Ok(Record {
            // Simple packet blocks carry no timestamp.
            ts_us: 0,
            link: iface.link,
            data_start: body_start.saturating_add(4),
            data_len: len,
            orig_len,
            interface: iface.number,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: Vec<u8>) -> Result<CaptureReader, CaptureError> {
        CaptureReader::from_reader(Box::new(Cursor::new(bytes)))
    }

    fn pcap_header(magic: u32, big_endian: bool, link: u32) -> Vec<u8> {
        let mut v = Vec::new();
        let w32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        w32(&mut v, magic);
        let ver: [u8; 4] = if big_endian {
            [0, 2, 0, 4]
        } else {
            [2, 0, 4, 0]
        };
        v.extend_from_slice(&ver);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, 65535);
        w32(&mut v, link);
        v
    }

    fn pcap_record(v: &mut Vec<u8>, big_endian: bool, sec: u32, frac: u32, data: &[u8]) {
        for x in [sec, frac, data.len() as u32, data.len() as u32 + 4] {
            v.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            });
        }
        v.extend_from_slice(data);
    }

    #[test]
    fn pcap_all_magics_and_byte_orders_read_timestamps_right() {
        for (magic, frac, want_frac_us) in [
            (PCAP_MAGIC_US, 123_456, 123_456),
            (PCAP_MAGIC_NS, 123_456_789, 123_456),
        ] {
            for be in [false, true] {
                let mut v = pcap_header(magic, be, 1);
                pcap_record(&mut v, be, 1_700_000_000, frac, b"abc");
                pcap_record(&mut v, be, 1_700_000_001, 0, b"defg");
                let mut r = reader(v).unwrap();
                assert_eq!(r.format(), CaptureFormat::Pcap { gzip: false });
                let f = r.next_frame().unwrap().unwrap();
                assert_eq!(f.ts_us, 1_700_000_000_000_000 + want_frac_us);
                assert_eq!(f.data, b"abc");
                assert_eq!(f.orig_len, 7);
                assert_eq!(f.link, LinkType::ETHERNET);
                let f = r.next_frame().unwrap().unwrap();
                assert_eq!(f.data, b"defg");
                assert!(r.next_frame().unwrap().is_none());
                assert!(r.next_frame().unwrap().is_none());
            }
        }
    }

    #[test]
    fn modified_pcap_skips_the_longer_record_header() {
        let mut v = pcap_header(PCAP_MAGIC_MODIFIED, false, 1);
        for x in [5u32, 6, 2, 2, 0, 0] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(b"hi");
        let mut r = reader(v).unwrap();
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(f.data, b"hi");
        assert_eq!(f.ts_us, 5_000_006);
    }

    #[test]
    fn empty_and_unknown_inputs_are_not_captures() {
        assert!(matches!(reader(vec![]), Err(CaptureError::NotACapture)));
        assert!(matches!(
            reader(b"hello world, not a pcap".to_vec()),
            Err(CaptureError::NotACapture)
        ));
    }

    #[test]
    fn cut_file_header_is_truncated_at_zero() {
        let v = pcap_header(PCAP_MAGIC_US, false, 1);
        let err = reader(v[..10].to_vec()).unwrap_err();
        assert!(matches!(err, CaptureError::Truncated { offset: 0 }));
    }

    #[test]
    fn cut_record_yields_previous_frames_then_truncated_then_none() {
        let mut v = pcap_header(PCAP_MAGIC_US, false, 1);
        pcap_record(&mut v, false, 1, 0, b"first");
        let second_at = v.len() as u64;
        pcap_record(&mut v, false, 2, 0, b"second");
        v.truncate(v.len() - 2);
        let mut r = reader(v).unwrap();
        assert_eq!(r.next_frame().unwrap().unwrap().data, b"first");
        let err = r.next_frame().unwrap_err();
        match err {
            CaptureError::Truncated { offset } => assert_eq!(offset, second_at),
            e => panic!("unexpected {e:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!("file is truncated at byte {second_at}: the last record is incomplete")
        );
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn oversized_record_is_corrupt() {
        let mut v = pcap_header(PCAP_MAGIC_US, false, 1);
        for x in [1u32, 0, 0x7fff_ffff, 0x7fff_ffff] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        let mut r = reader(v).unwrap();
        let err = r.next_frame().unwrap_err();
        assert!(matches!(err, CaptureError::Corrupt { offset: 24, .. }));
        assert!(err.to_string().starts_with("file is corrupt at byte 24"));
    }

    #[test]
    fn frames_larger_than_the_initial_buffer_are_read() {
        let mut v = pcap_header(PCAP_MAGIC_US, false, 1);
        // snaplen 65535 in the header, but 262144 is always accepted.
        let big = vec![0xabu8; 262_144];
        pcap_record(&mut v, false, 1, 0, &big);
        pcap_record(&mut v, false, 1, 0, &big[..10]);
        let mut r = reader(v).unwrap();
        assert_eq!(r.next_frame().unwrap().unwrap().data.len(), 262_144);
        assert_eq!(r.next_frame().unwrap().unwrap().data.len(), 10);
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn bytes_consumed_tracks_records_handed_out() {
        let mut v = pcap_header(PCAP_MAGIC_US, false, 1);
        pcap_record(&mut v, false, 1, 0, b"abcd");
        let total = v.len() as u64;
        let mut r = reader(v).unwrap();
        assert_eq!(r.bytes_consumed(), 24);
        r.next_frame().unwrap().unwrap();
        assert_eq!(r.bytes_consumed(), total);
    }

    #[test]
    fn resolutions_convert_to_microseconds() {
        assert_eq!(Resolution::from_tsresol(6).unwrap().to_us(5), 5);
        assert_eq!(Resolution::from_tsresol(9).unwrap().to_us(5_123_456), 5_123);
        assert_eq!(Resolution::from_tsresol(3).unwrap().to_us(7), 7_000);
        assert_eq!(
            Resolution::from_tsresol(0x80 | 10).unwrap().to_us(1024),
            1_000_000
        );
        assert_eq!(
            Resolution::from_tsresol(0x80 | 20).unwrap().to_us(1 << 19),
            500_000
        );
        assert!(Resolution::from_tsresol(20).is_none());
        assert!(Resolution::from_tsresol(0x80 | 64).is_none());
    }

    #[test]
    fn reading_a_frame_reuses_one_buffer() {
        let mut v = pcap_header(PCAP_MAGIC_US, false, 1);
        for i in 0..10_000u32 {
            pcap_record(&mut v, false, i, 0, &[i as u8; 60]);
        }
        let mut r = reader(v).unwrap();
        let cap = r.buf.capacity();
        let mut n = 0;
        while let Some(f) = r.next_frame().unwrap() {
            assert_eq!(f.data.len(), 60);
            n += 1;
        }
        assert_eq!(n, 10_000);
        assert_eq!(r.buf.capacity(), cap);
    }

    /// Hand-built pcapng in either byte order.
    struct Ng {
        v: Vec<u8>,
        be: bool,
    }

    impl Ng {
        fn new(be: bool) -> Ng {
            Ng { v: Vec::new(), be }
        }
        fn u16(&self, x: u16) -> [u8; 2] {
            if self.be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        }
        fn u32(&self, x: u32) -> [u8; 4] {
            if self.be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            }
        }
        fn block(&mut self, ty: u32, body: &[u8]) -> &mut Self {
            let padded = body.len().div_ceil(4) * 4;
            let len = 12 + padded as u32;
            let (t, l) = (self.u32(ty), self.u32(len));
            self.v.extend_from_slice(&t);
            self.v.extend_from_slice(&l);
            self.v.extend_from_slice(body);
            self.v.resize(self.v.len() + padded - body.len(), 0);
            self.v.extend_from_slice(&l);
            self
        }
        fn shb(&mut self) -> &mut Self {
            let mut b = self.u32(PCAPNG_BOM).to_vec();
            b.extend_from_slice(&self.u16(1));
            b.extend_from_slice(&self.u16(0));
            b.extend_from_slice(&(-1i64).to_le_bytes());
            self.block(PCAPNG_SHB, &b)
        }
        fn idb(&mut self, link: u16, tsresol: Option<u8>, tsoffset: Option<i64>) -> &mut Self {
            let mut b = self.u16(link).to_vec();
            b.extend_from_slice(&self.u16(0));
            b.extend_from_slice(&self.u32(262_144));
            if let Some(r) = tsresol {
                b.extend_from_slice(&self.u16(9));
                b.extend_from_slice(&self.u16(1));
                b.extend_from_slice(&[r, 0, 0, 0]);
            }
            if let Some(o) = tsoffset {
                b.extend_from_slice(&self.u16(14));
                b.extend_from_slice(&self.u16(8));
                b.extend_from_slice(&if self.be {
                    o.to_be_bytes()
                } else {
                    o.to_le_bytes()
                });
            }
            b.extend_from_slice(&[0, 0, 0, 0]);
            self.block(PCAPNG_IDB, &b)
        }
        fn epb(&mut self, if_id: u32, ts: u64, data: &[u8]) -> &mut Self {
            let mut b = Vec::new();
            for x in [
                if_id,
                (ts >> 32) as u32,
                ts as u32,
                data.len() as u32,
                data.len() as u32 + 100,
            ] {
                b.extend_from_slice(&self.u32(x));
            }
            b.extend_from_slice(data);
            b.resize(20 + data.len().div_ceil(4) * 4, 0);
            // An epb_flags option, as dumpcap writes.
            b.extend_from_slice(&self.u16(2));
            b.extend_from_slice(&self.u16(4));
            b.extend_from_slice(&self.u32(1));
            b.extend_from_slice(&[0, 0, 0, 0]);
            self.block(PCAPNG_EPB, &b)
        }
        fn spb(&mut self, data: &[u8]) -> &mut Self {
            let mut b = self.u32(data.len() as u32).to_vec();
            b.extend_from_slice(data);
            self.block(PCAPNG_SPB, &b)
        }
    }

    #[test]
    fn pcapng_two_interfaces_with_different_links_and_resolutions() {
        for be in [false, true] {
            let mut ng = Ng::new(be);
            ng.shb()
                .idb(1, Some(9), None) // Ethernet, nanoseconds
                .idb(113, Some(0x80 | 20), Some(100)) // SLL, 2^-20 s, +100 s
                .block(0x0bad_0001, b"unknown block is skipped")
                .epb(0, 1_700_000_000_123_456_789, b"eth-frame")
                .epb(1, (5u64 << 20) | (1 << 19), b"sll")
                .spb(b"simple");
            let mut r = reader(ng.v.clone()).unwrap();
            assert_eq!(r.format(), CaptureFormat::PcapNg { gzip: false });
            let f = r.next_frame().unwrap().unwrap();
            assert_eq!(
                (f.ts_us, f.link, f.data, f.interface, f.orig_len),
                (
                    1_700_000_000_123_456,
                    LinkType::ETHERNET,
                    &b"eth-frame"[..],
                    0,
                    109
                )
            );
            let f = r.next_frame().unwrap().unwrap();
            assert_eq!(
                (f.ts_us, f.link, f.data, f.interface),
                (105_500_000, LinkType::LINUX_SLL, &b"sll"[..], 1)
            );
            let f = r.next_frame().unwrap().unwrap();
            assert_eq!(
                (f.link, f.data, f.interface),
                (LinkType::ETHERNET, &b"simple"[..], 0)
            );
            assert!(r.next_frame().unwrap().is_none());
        }
    }

    #[test]
    fn pcapng_sections_renumber_interfaces_and_switch_byte_order() {
        let mut first = Ng::new(false);
        first.shb().idb(1, None, None).epb(0, 7, b"a");
        let mut second = Ng::new(true);
        second.shb().idb(101, Some(3), None).epb(0, 7, b"b");
        let mut bytes = first.v;
        bytes.extend_from_slice(&second.v);
        let mut r = reader(bytes).unwrap();
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.ts_us, f.link, f.interface), (7, LinkType::ETHERNET, 0));
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.ts_us, f.link, f.interface), (7_000, LinkType::RAW, 1));
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn pcapng_packet_for_undeclared_interface_is_corrupt() {
        let mut ng = Ng::new(false);
        ng.shb().idb(1, None, None).epb(0, 1, b"ok");
        let second = ng.v.len() as u64;
        ng.epb(3, 1, b"bad");
        let mut r = reader(ng.v.clone()).unwrap();
        assert!(r.next_frame().unwrap().is_some());
        match r.next_frame() {
            Err(CaptureError::Corrupt { offset, what }) => {
                assert_eq!(offset, second);
                assert!(what.contains("interface"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn pcapng_cut_block_is_truncated_at_its_start() {
        let mut ng = Ng::new(false);
        ng.shb().idb(1, None, None).epb(0, 1, b"first");
        let cut_at = ng.v.len();
        ng.epb(0, 2, b"second frame");
        let mut bytes = ng.v.clone();
        bytes.truncate(bytes.len() - 6);
        let mut r = reader(bytes).unwrap();
        assert_eq!(r.next_frame().unwrap().unwrap().data, b"first");
        match r.next_frame() {
            Err(CaptureError::Truncated { offset }) => assert_eq!(offset, cut_at as u64),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn pcapng_block_trailer_mismatch_is_corrupt() {
        let mut ng = Ng::new(false);
        ng.shb().idb(1, None, None).epb(0, 1, b"x");
        let n = ng.v.len();
        ng.v[n - 1] ^= 0xff;
        let mut r = reader(ng.v).unwrap();
        assert!(matches!(
            r.next_frame(),
            Err(CaptureError::Corrupt { what, .. }) if what.contains("trailer")
        ));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_input_is_detected_and_reads_the_same() {
        let mut ng = Ng::new(false);
        ng.shb()
            .idb(1, None, None)
            .epb(0, 1, b"one")
            .epb(0, 2, b"two");
        let gz = gzip(&ng.v);
        let gz_len = gz.len() as u64;
        let mut r = reader(gz).unwrap();
        assert_eq!(r.format(), CaptureFormat::PcapNg { gzip: true });
        assert_eq!(r.format().to_string(), "pcapng.gz");
        assert_eq!(r.next_frame().unwrap().unwrap().data, b"one");
        assert_eq!(r.next_frame().unwrap().unwrap().data, b"two");
        assert!(r.next_frame().unwrap().is_none());
        assert_eq!(r.bytes_consumed(), gz_len);
    }

    #[test]
    fn cut_gzip_stream_reports_truncation_after_complete_frames() {
        let mut v = pcap_header(PCAP_MAGIC_US, false, 1);
        for i in 0..200u32 {
            pcap_record(&mut v, false, i, 0, &[i as u8; 100]);
        }
        let gz = gzip(&v);
        let cut = gz[..gz.len() - 20].to_vec();
        let mut r = reader(cut).unwrap();
        let mut n = 0;
        let err = loop {
            match r.next_frame() {
                Ok(Some(f)) => {
                    assert_eq!(f.data, &[n as u8; 100][..]);
                    n += 1;
                }
                Ok(None) => panic!("clean end on a cut gzip stream"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, CaptureError::Truncated { .. }), "{err:?}");
        assert!(n > 0 && n <= 200);
    }
}
