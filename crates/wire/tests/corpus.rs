//! Every capture of the shared corpus read, decoded and reassembled, checked against the
//! figures tshark computed for it (`X.expected.json`).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::{corpus, SipTestFramer};
use serde_json::Value;
use siphon_wire::capture::{CaptureError, CaptureReader};
use siphon_wire::decode::{DecodeError, Decoder, Transport};
use siphon_wire::link::LinkType;
use siphon_wire::tcp::TcpReassembler;

/// (file, UDP packets, TCP packets, non-IP frames), counted with
/// `tshark -T fields -e frame.protocols` (ARP, STP and CDP are the non-IP frames).
const CAPTURES: &[(&str, u64, u64, u64)] = &[
    ("basic_oneway_g711a.pcap", 252, 0, 0),
    ("basic_twoway_g711a.pcap", 479, 0, 0),
    ("failed_calls.pcap", 28, 0, 0),
    ("hep_kamailio.pcap", 14, 0, 0),
    ("hep_kamailio_wire.pcap", 148, 0, 0),
    ("hold_unhold_dtmf_callee_bye.pcap", 291, 0, 0),
    ("impaired_twoway.pcap", 472, 0, 0),
    ("many_calls_24.pcap", 3384, 0, 0),
    ("twoway_linux_cooked.pcapng", 141, 0, 0),
    ("external/aaa.pcap", 590, 57, 44),
    ("external/ipip.pcap", 0, 4, 0),
    ("external/rtp_rtcp_sip_ipv4_udp.pcap", 3583, 522, 164),
    ("external/sip_ipv4_tcp.pcap", 68, 16, 0),
    ("external/sip_ipv6_udp.pcap", 6, 0, 0),
];

fn expected(capture: &str) -> Value {
    let stem = capture.rsplit_once('.').map(|(s, _)| s).unwrap();
    let path = corpus().join(format!("{stem}.expected.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[derive(Debug, PartialEq, Eq)]
struct OwnedFrame {
    ts_us: i64,
    link: LinkType,
    data: Vec<u8>,
    orig_len: u32,
}

fn read_all(r: &mut CaptureReader) -> (Vec<OwnedFrame>, Option<CaptureError>) {
    let mut frames = Vec::new();
    loop {
        match r.next_frame() {
            Ok(Some(f)) => frames.push(OwnedFrame {
                ts_us: f.ts_us,
                link: f.link,
                data: f.data.to_vec(),
                orig_len: f.orig_len,
            }),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

fn open(name: &str) -> CaptureReader {
    let path = corpus().join(name);
    CaptureReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_close_us(got: i64, want_epoch_s: f64, what: &str) {
    let diff = (got as f64 - want_epoch_s * 1e6).abs();
    assert!(diff < 1.0, "{what}: {got} µs vs {want_epoch_s} s");
}

/// tshark's exact "seconds.nanoseconds" string, truncated to microseconds.
fn epoch_str_us(s: &str) -> i64 {
    let (sec, frac) = s.split_once('.').unwrap();
    let frac = format!("{frac:0<6}");
    sec.parse::<i64>().unwrap() * 1_000_000 + frac[..6].parse::<i64>().unwrap()
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("siphon-wire-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `capture.first_frame_epoch` of sip_ipv6_udp.expected.json equals its last frame's time
/// although the six frames carry increasing times 2012..2092 (tshark's own per-frame times in
/// `sip.messages` say so too); the first frame's time is taken from `sip.messages[0]` there.
const FIRST_EPOCH_FROM_FRAME_1: &[&str] = &["external/sip_ipv6_udp.pcap"];

#[test]
fn every_capture_has_the_expected_frame_count_and_time_span() {
    for (name, ..) in CAPTURES {
        let exp = expected(name);
        let cap = &exp["capture"];
        let mut r = open(name);
        let (frames, err) = read_all(&mut r);
        assert!(err.is_none(), "{name}: {err:?}");
        assert_eq!(
            frames.len() as u64,
            cap["packets"].as_u64().unwrap(),
            "{name}"
        );
        let first = if FIRST_EPOCH_FROM_FRAME_1.contains(name) {
            let m = &exp["sip"]["messages"][0];
            assert_eq!(m["frame"], 1);
            m["time_epoch"].as_f64().unwrap()
        } else {
            cap["first_frame_epoch"].as_f64().unwrap()
        };
        assert_close_us(frames[0].ts_us, first, name);
        let last = frames.last().unwrap().ts_us;
        assert_close_us(last, cap["last_frame_epoch"].as_f64().unwrap(), name);
        assert_eq!(
            r.format().is_pcapng(),
            cap["file_type"] == "pcapng",
            "{name}"
        );
        let size = std::fs::metadata(corpus().join(name)).unwrap().len();
        assert_eq!(r.bytes_consumed(), size, "{name}");
    }
}

#[test]
fn sip_frames_have_the_times_tshark_lists() {
    for (name, ..) in CAPTURES {
        if *name == "hep_kamailio.pcap" {
            // Its `sip.messages` carry the HEP timestamps, not the capture times.
            continue;
        }
        let exp = expected(name);
        let (frames, _) = read_all(&mut open(name));
        for m in sip_messages(&exp) {
            let n = m["frame"].as_u64().unwrap() as usize;
            let want = epoch_str_us(m["time_epoch_str"].as_str().unwrap());
            assert_eq!(frames[n - 1].ts_us, want, "{name} frame {n}");
        }
    }
}

#[test]
fn every_frame_decodes_to_the_expected_transport() {
    for (name, udp, tcp, not_ip) in CAPTURES {
        let mut r = open(name);
        let mut d = Decoder::new();
        let mut other = BTreeMap::new();
        while let Some(f) = r.next_frame().unwrap() {
            if let Err(e) = d.decode(&f) {
                *other.entry(e.reason()).or_insert(0u64) += 1;
            }
        }
        let s = d.stats();
        assert_eq!((s.udp, s.tcp), (*udp, *tcp), "{name}: errors {other:?}");
        assert_eq!(
            s.error_count(DecodeError::NotIp),
            *not_ip,
            "{name}: {other:?}"
        );
        assert_eq!(other.values().sum::<u64>(), *not_ip, "{name}: {other:?}");
    }
}

#[test]
fn gzip_copies_read_identically() {
    let dir = TempDir::new("gzip");
    for (name, ..) in CAPTURES {
        let bytes = std::fs::read(corpus().join(name)).unwrap();
        let gz_path = dir.0.join(format!("{}.gz", name.replace('/', "_")));
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz_path).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(&bytes).unwrap();
        enc.finish().unwrap();
        let (plain, _) = read_all(&mut open(name));
        let mut gz = CaptureReader::open(&gz_path).unwrap();
        assert!(gz.format().is_gzip(), "{name}");
        let (unzipped, err) = read_all(&mut gz);
        assert!(err.is_none(), "{name}: {err:?}");
        assert_eq!(plain, unzipped, "{name}");
        assert_eq!(
            gz.bytes_consumed(),
            std::fs::metadata(&gz_path).unwrap().len()
        );
    }
}

#[test]
fn truncated_copies_yield_every_complete_frame_then_truncated() {
    let dir = TempDir::new("cut");
    for (name, ..) in CAPTURES {
        let bytes = std::fs::read(corpus().join(name)).unwrap();
        // Where the last record starts: bytes consumed before it is read.
        let mut r = open(name);
        let mut starts = Vec::new();
        loop {
            let before = r.bytes_consumed();
            if r.next_frame().unwrap().is_none() {
                break;
            }
            starts.push(before);
        }
        let last_start = *starts.last().unwrap();
        let cut_at = last_start as usize + 10;
        assert!(cut_at < bytes.len(), "{name}");
        let path: &Path = &dir.0.join(name.replace('/', "_"));
        std::fs::write(path, &bytes[..cut_at]).unwrap();
        let mut cut = CaptureReader::open(path).unwrap();
        let (frames, err) = read_all(&mut cut);
        assert_eq!(frames.len(), starts.len() - 1, "{name}");
        match err {
            Some(CaptureError::Truncated { offset }) => assert_eq!(offset, last_start, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(
            cut.next_frame().unwrap().is_none(),
            "{name}: reader finished after the error"
        );
    }
}

fn sip_messages(exp: &Value) -> Vec<&Value> {
    exp["sip"]["messages"].as_array().unwrap().iter().collect()
}

#[test]
fn ipip_capture_reports_the_inner_sip_addresses() {
    let exp = expected("external/ipip.pcap");
    let msgs = sip_messages(&exp);
    let mut r = open("external/ipip.pcap");
    let mut d = Decoder::new();
    let mut i = 0;
    while let Some(f) = r.next_frame().unwrap() {
        let p = d.decode(&f).unwrap().unwrap();
        let m = msgs[i];
        assert_eq!(
            p.src.to_string(),
            m["src"].as_str().unwrap(),
            "frame {}",
            i + 1
        );
        assert_eq!(
            p.dst.to_string(),
            m["dst"].as_str().unwrap(),
            "frame {}",
            i + 1
        );
        assert_eq!(p.transport, Transport::Tcp);
        i += 1;
    }
    assert_eq!(i, msgs.len());
    // Frames 2 and 3 are the tunnelled ones: their outer addresses are not reported.
    assert_eq!(msgs[1]["src"], "10.15.193.31:33093");
}

/// Reassembles the TCP SIP of a capture; returns (ts, src, dst, first line) per message.
fn tcp_sip(name: &str) -> Vec<(i64, String, String, String)> {
    let mut r = open(name);
    let mut d = Decoder::new();
    let mut tcp = TcpReassembler::new(1024, 256 * 1024);
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        let Ok(Some(p)) = d.decode(&f) else { continue };
        if p.transport != Transport::Tcp {
            continue;
        }
        tcp.push(&p, &SipTestFramer, &mut |m| {
            let line = m.bytes.split(|b| *b == b'\r').next().unwrap();
            out.push((
                m.ts_us,
                m.src.to_string(),
                m.dst.to_string(),
                String::from_utf8_lossy(line).into_owned(),
            ));
        });
    }
    out
}

fn check_tcp_sip(name: &str) {
    let exp = expected(name);
    let want: Vec<&Value> = sip_messages(&exp)
        .into_iter()
        .filter(|m| m["transport"] == "TCP")
        .collect();
    let got = tcp_sip(name);
    assert_eq!(got.len(), want.len(), "{name}: {got:?}");
    for ((ts, src, dst, line), m) in got.iter().zip(&want) {
        assert_eq!(src, m["src"].as_str().unwrap(), "{name}");
        assert_eq!(dst, m["dst"].as_str().unwrap(), "{name}");
        assert_eq!(
            *ts,
            epoch_str_us(m["time_epoch_str"].as_str().unwrap()),
            "{name}"
        );
        match m["kind"].as_str().unwrap() {
            "request" => assert!(line.starts_with(m["method"].as_str().unwrap()), "{line}"),
            _ => {
                let status = m["status"].as_u64().unwrap().to_string();
                assert!(line.starts_with(&format!("SIP/2.0 {status}")), "{line}");
            }
        }
    }
}

#[test]
fn tcp_reassembly_yields_the_sip_messages_tshark_lists() {
    check_tcp_sip("external/sip_ipv4_tcp.pcap");
    check_tcp_sip("external/ipip.pcap");
}
