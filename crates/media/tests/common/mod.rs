//! Helpers shared by the integration tests: a tiny pcap reader, RTP header parsing,
//! WAV reading and external reference tools.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use siphon_media::{RenderOptions, RenderReport, WavRenderer};

/// The shared capture corpus.
pub fn corpus(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(name);
    assert!(p.exists(), "corpus file missing: {}", p.display());
    p
}

/// One UDP datagram carrying RTP.
#[derive(Clone, Debug)]
pub struct Rtp {
    pub capture_us: i64,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

impl Rtp {
    pub fn packet(&self) -> siphon_media::RtpPacket<'_> {
        siphon_media::RtpPacket {
            capture_us: self.capture_us,
            seq: self.seq,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            payload_type: self.payload_type,
            marker: self.marker,
            payload: &self.payload,
        }
    }
}

fn u16be(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32be(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an RTP packet (version 2, CSRCs, extension and padding removed).
pub fn parse_rtp(udp: &[u8]) -> Option<(u8, bool, u16, u32, u32, Vec<u8>)> {
    if udp.len() < 12 || udp[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(udp[0] & 0x0F);
    let mut off = 12 + 4 * cc;
    if udp[0] & 0x10 != 0 {
        let ext_words = usize::from(u16be(udp, off + 2));
        off += 4 + 4 * ext_words;
    }
    let mut end = udp.len();
    if udp[0] & 0x20 != 0 {
        end -= usize::from(*udp.last()?);
    }
    Some((
        udp[1] & 0x7F,
        udp[1] & 0x80 != 0,
        u16be(udp, 2),
        u32be(udp, 4),
        u32be(udp, 8),
        udp.get(off..end)?.to_vec(),
    ))
}

/// Reads RTP from a classic pcap file: Ethernet, IPv4, UDP, RTP version 2 on even ports
/// at or above 10000 (SIP ports are below that in the corpus).
pub fn read_rtp(path: &Path) -> Vec<Rtp> {
    let d = std::fs::read(path).unwrap();
    let magic = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
    let nanos = match magic {
        0xA1B2_C3D4 => false,
        0xA1B2_3C4D => true,
        m => panic!("unsupported pcap magic {m:#x}"),
    };
    let link = u32::from_le_bytes([d[20], d[21], d[22], d[23]]);
    assert_eq!(link, 1, "only Ethernet captures are read here");
    let le32 = |at: usize| u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= d.len() {
        let secs = i64::from(le32(off));
        let frac = i64::from(le32(off + 4));
        let incl = le32(off + 8) as usize;
        let frame = &d[off + 16..off + 16 + incl];
        off += 16 + incl;
        let us = secs * 1_000_000 + if nanos { frac / 1000 } else { frac };
        let mut eth = 14;
        let mut ethertype = u16be(frame, 12);
        while ethertype == 0x8100 {
            ethertype = u16be(frame, eth + 2);
            eth += 4;
        }
        if ethertype != 0x0800 {
            continue;
        }
        let ip = &frame[eth..];
        let ihl = usize::from(ip[0] & 0x0F) * 4;
        if ip[9] != 17 {
            continue;
        }
        let total = usize::from(u16be(ip, 2)).min(ip.len());
        let udp = &ip[ihl..total];
        let (sp, dp) = (u16be(udp, 0), u16be(udp, 2));
        if sp < 10_000 || dp < 10_000 || sp % 2 != 0 || dp % 2 != 0 {
            continue;
        }
        if let Some((pt, marker, seq, ts, ssrc, payload)) = parse_rtp(&udp[8..]) {
            out.push(Rtp {
                capture_us: us,
                src_port: sp,
                dst_port: dp,
                payload_type: pt,
                marker,
                seq,
                timestamp: ts,
                ssrc,
                payload,
            });
        }
    }
    out
}

/// A rendered WAV read back.
pub struct Wav {
    pub spec: hound::WavSpec,
    /// Samples per channel.
    pub channels: Vec<Vec<i16>>,
    pub report: RenderReport,
}

impl Wav {
    pub fn frames(&self) -> usize {
        self.channels[0].len()
    }
}

/// The renderer type the tests use.
pub type Renderer<'a> = WavRenderer<Cursor<&'a mut Vec<u8>>>;

/// Renders with `feed` and reads the WAV back.
pub fn render(
    opts: RenderOptions,
    call_start_us: i64,
    feed: impl FnOnce(&mut Renderer<'_>),
) -> Wav {
    let mut buf = Vec::new();
    let mut r = WavRenderer::new(Cursor::new(&mut buf), opts, call_start_us);
    feed(&mut r);
    let report = r.finish().expect("render");
    let reader = hound::WavReader::new(Cursor::new(&buf)).expect("valid wav");
    let spec = reader.spec();
    let n = usize::from(spec.channels);
    let samples: Vec<i16> = reader.into_samples::<i16>().map(|s| s.unwrap()).collect();
    assert_eq!(samples.len() % n, 0);
    let mut channels = vec![Vec::with_capacity(samples.len() / n); n];
    for (i, s) in samples.into_iter().enumerate() {
        channels[i % n].push(s);
    }
    assert_eq!(channels[0].len() as u64, report.samples_written);
    assert_eq!(spec.sample_rate, report.rate);
    assert_eq!(spec.channels, report.channels);
    Wav {
        spec,
        channels,
        report,
    }
}

/// Runs a command, panicking with its stderr when it fails.
pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads raw signed 16-bit little-endian samples.
pub fn read_s16le(path: &Path) -> Vec<i16> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Signal-to-noise ratio of `got` against `reference`, over their common length.
pub fn snr_db(reference: &[i16], got: &[i16]) -> f64 {
    let (mut sig, mut err) = (0f64, 0f64);
    for (r, g) in reference.iter().zip(got) {
        let (r, g) = (f64::from(*r), f64::from(*g));
        sig += r * r;
        err += (r - g) * (r - g);
    }
    if err == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (sig / err).log10()
}

/// A scratch directory unique to this test process and `name`.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("siphon-media-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
