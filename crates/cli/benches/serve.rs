//! Collector benchmark.
//!
//! 1. HEP load: `siphon serve` pinned to one core receives HEP v3 (SIP messages of the corpus,
//!    each copy of the 24 calls with its own Call-IDs, tags and branches) over UDP, then
//!    TCP, then TLS, from a sender pinned to the other core, at rising rates for SIPHON_BENCH_SECONDS (default 10; the
//!    issue's figure is 60; SIPHON_BENCH_RATES=a,b,c picks the rates) each; a rate passes when nothing was dropped (queue or kernel) and
//!    every message was analysed. Printed beside the same run's `siphon import` rate.
//! 2. Flow latency: a store of SIPHON_BENCH_CALLS calls (default 1,000,000, SIP only) is built
//!    through the library, served, and `GET /api/v1/calls/{id}/flow` is timed for 2,000 random
//!    calls: p50 and p99.
//! 3. Exports: a store holding one hour-long call (two G.711 streams) is served, its flow, pcap
//!    and WAV are downloaded, and the time and rise of `serve`'s peak memory (VmHWM) are printed
//!    for each.
//!
//! `cargo bench -p siphon-cli --bench serve`; SIPHON_BENCH_SKIP=ceiling,import,load,flow,export leaves
//! parts out, SIPHON_BENCH_TRANSPORTS=udp, tcp or tls (comma-separated) picks transports; HEP over
//! TLS is mutual TLS with certificates made by `openssl`, the sender on rustls.
//! SIPHON_BENCH_WARMUP_SECONDS=W sends each rate for W s more first and judges only the
//! SIPHON_BENCH_SECONDS after: what `serve` sustains once running (its first seconds, when the
//! memory for the open calls is first touched, are judged by runs without it).
//! Over UDP every packet is padded to one length with a vendor chunk (which `serve` skips), so
//! the sender can hand the kernel 64 at a time as one buffer to cut into datagrams (UDP
//! segmentation offload): with one `sendmmsg` per 64 it could not offer much more than
//! 330,000/s. SIPHON_BENCH_UDP_GSO=0 sends the packets unpadded, that way.
//! The pipeline ceiling (pipeline and store in this process, one thread, no sockets) takes the
//! `SIPHON_*` settings `serve` takes (SIPHON_STORAGE_ZSTD_LEVEL=-1, ...), the spawned `serve`
//! gets them too, and it prints what the store kept per message; `scripts/ceiling-pair`
//! compares two builds on it, side by side.

#[path = "../tests/support/gen.rs"]
mod gen;
#[path = "../tests/support/pki.rs"]
mod pki;

// The allocator of the `siphon` binary, so the in-process figure matches it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use siphon_ingest::{IngestConfig, Pipeline};
use siphon_store::{StoreConfig, StoreWriter};
use siphon_wire::capture::{CaptureReader, Frame};
use siphon_wire::decode::Decoder;
use siphon_wire::link::LinkType;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Guard(Child);

impl Drop for Guard {
    /// Stops `serve` as an operator would (SIGTERM: it flushes and exits), killing it if it
    /// has not exited within 30 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pinned(core: u32, bin: &str) -> Command {
    let mut c = Command::new("taskset");
    c.args(["-c", &core.to_string(), bin]);
    c
}

fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut b = Vec::new();
    s.read_to_end(&mut b).unwrap();
    let end = b.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
    let status = String::from_utf8_lossy(&b[..end])
        .split(' ')
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    (status, b[end + 4..].to_vec())
}

/// Sum of the samples of a metric whose line starts with `prefix`.
fn metric_f64(port: u16, prefix: &str) -> f64 {
    let (_, body) = http_get(port, "/metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// [`metric_f64`] of a counter.
fn metric(port: u16, prefix: &str) -> u64 {
    metric_f64(port, prefix) as u64
}

/// CPU time used so far by all threads of process `pid`, in seconds (scheduler statistics).
fn cpu_seconds(pid: u32) -> f64 {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

/// Time core `core` was ready to run but the hypervisor ran something else (`steal` of
/// /proc/stat), in ms: on a virtual machine, a stall of `serve`'s core that no setting of its
/// own explains.
fn steal_ms(core: usize) -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let label = format!("cpu{core} ");
    stat.lines()
        .find(|l| l.starts_with(&label))
        .and_then(|l| l.split_whitespace().nth(8)?.parse::<u64>().ok())
        // USER_HZ is 100 on Linux.
        .map_or(0, |ticks| ticks * 10)
}

fn start_serve(data: &Path, hep: u16, http: u16) -> Guard {
    start_serve_env(data, hep, http, &[])
}

fn start_serve_env(data: &Path, hep: u16, http: u16, env: &[(&str, String)]) -> Guard {
    let c = pinned(0, env!("CARGO_BIN_EXE_siphon"))
        .args(["serve", "--data"])
        .arg(data)
        .args(["--hep-listen", &format!("127.0.0.1:{hep}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .env("SIPHON_STORAGE_FSYNC", "flush")
        .env("SIPHON_HEP_RECV_BUFFER_BYTES", "33554432")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    }
    Guard(c)
}

/// `k` scrambled (a bijection on 32 bits) and written as 8 hex digits: Call-IDs of real traffic
/// are random, so the index must see them in no particular order.
fn scrambled(k: u64) -> [u8; 8] {
    let mut d = [b'0'; 8];
    let mut v = (k as u32).wrapping_mul(0x9E37_79B1).rotate_left(13) ^ 0x5bd1_e995;
    for c in d.iter_mut().rev() {
        *c = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
    }
    d
}

/// An identifier of the corpus's SIP that every copy of a call gets afresh, as each call on a
/// live network has its own: the text that holds it, the same text with an 8-hex-digit
/// placeholder put in, and the text that finds the placeholder again in an encoded packet, with
/// the placeholder's offset in it.
struct FreshId {
    at: &'static [u8],
    with_placeholder: &'static [u8],
    find: &'static [u8],
    offset: usize,
}

/// The Call-ID, both tags and the Via branch.
const FRESH_IDS: [FreshId; 4] = [
    FreshId {
        at: b"-5918@",
        with_placeholder: b"-5918b00000000@",
        find: b"b00000000@",
        offset: 1,
    },
    FreshId {
        at: b"5918SIPpTag",
        with_placeholder: b"5918SIPpTagc00000000",
        find: b"Tagc00000000",
        offset: 4,
    },
    FreshId {
        at: b"5914SIPpTag",
        with_placeholder: b"5914SIPpTagd00000000",
        find: b"Tagd00000000",
        offset: 4,
    },
    FreshId {
        at: b"z9hG4bK-5918-",
        with_placeholder: b"z9hG4bK-5918-e00000000-",
        find: b"-e00000000-",
        offset: 2,
    },
];

/// HEP packets of the SIP messages of the 24-call template, each with the places of its
/// identifiers (offset, which of [`FRESH_IDS`]): the sender writes new ones into every copy, so
/// every call is new (as on a live network) without re-encoding.
struct Template {
    pkts: Vec<Vec<u8>>,
    digits: Vec<Vec<(usize, u64)>>,
    /// Where each packet's timestamp chunks (seconds, microseconds) hold their value.
    stamps: Vec<(usize, usize)>,
    /// Where each packet's SDP connection addresses hold their last three octets.
    media: Vec<Vec<usize>>,
}

/// The SDP connection line of the corpus's calls, and what the template puts in its place: an
/// address of 10.100.100.100–10.199.199.199 whose last three octets every copy of a call gets
/// afresh, so that each call offers media on endpoints of its own (as on a live network, where
/// the collector then tracks some four endpoints per open call). With
/// SIPHON_BENCH_SHARED_MEDIA=1 every copy keeps the corpus's endpoints (as before this
/// version), to compare.
const MEDIA_LINE: &[u8] = b"c=IN IP4 127.0.0.1";
const MEDIA_PLACEHOLDER: &[u8] = b"c=IN IP4 10.100.100.100";

/// `msg` with its Content-Length header set to the length of its body.
fn with_content_length(msg: &[u8]) -> Vec<u8> {
    let Some(end) = msg.windows(4).position(|w| w == b"\r\n\r\n") else {
        return msg.to_vec();
    };
    let body = msg.len() - (end + 4);
    let name = b"\r\nContent-Length:";
    let Some(at) = msg[..end].windows(name.len()).position(|w| w == name) else {
        return msg.to_vec();
    };
    let value = at + name.len();
    let line_end = value + msg[value..].windows(2).position(|w| w == b"\r\n").unwrap();
    let mut out = msg[..value].to_vec();
    out.extend_from_slice(format!(" {body}").as_bytes());
    out.extend_from_slice(&msg[line_end..]);
    out
}

impl Template {
    fn new(corpus: &Path) -> Self {
        let mut r = CaptureReader::open(&corpus.join("many_calls_24.pcap")).unwrap();
        let mut dec = Decoder::new();
        let (mut pkts, mut digits, mut stamps) = (Vec::new(), Vec::new(), Vec::new());
        let mut media = Vec::new();
        let shared_media = std::env::var("SIPHON_BENCH_SHARED_MEDIA").is_ok_and(|v| v == "1");
        while let Some(f) = r.next_frame().unwrap() {
            let Ok(Some(p)) = dec.decode(&f) else {
                continue;
            };
            if p.src.port() >= 10000 && p.dst.port() >= 10000 {
                continue;
            }
            let mut payload = p.payload.to_vec();
            for id in &FRESH_IDS {
                payload = gen::replace_all(&payload, id.at, id.with_placeholder);
            }
            if !shared_media {
                let before = payload.len();
                payload = gen::replace_all(&payload, MEDIA_LINE, MEDIA_PLACEHOLDER);
                if payload.len() != before {
                    payload = with_content_length(&payload);
                    // The rewritten message still parses, its SDP offering the new address.
                    let m = siphon_sip::Message::parse(&payload).unwrap();
                    let sdp = siphon_sip::sdp::Sdp::parse(m.body());
                    let at = sdp.media.first().and_then(|md| md.connection);
                    assert_eq!(at, Some("10.100.100.100".parse().unwrap()));
                }
            }
            let h = siphon_hep::HepPacket {
                version: 3,
                src: p.src,
                dst: p.dst,
                ip_protocol: 17,
                ts_us: p.ts_us,
                proto_type: 1,
                capture_id: Some(1),
                auth_key: None,
                correlation_id: None,
                node_name: None,
                vlan: None,
                payload: siphon_hep::Payload::Plain(&payload),
            };
            let mut b = Vec::new();
            siphon_hep::encode_v3(&h, &mut b);
            let mut at = Vec::new();
            for (kind, id) in FRESH_IDS.iter().enumerate() {
                let found = b.windows(id.find.len()).enumerate();
                for (i, _) in found.filter(|(_, w)| *w == id.find) {
                    at.push((i + id.offset, kind as u64));
                }
            }
            let octets = MEDIA_PLACEHOLDER.len() - b"100.100.100".len();
            let found = b.windows(MEDIA_PLACEHOLDER.len()).enumerate();
            media.push(
                found
                    .filter(|(_, w)| *w == MEDIA_PLACEHOLDER)
                    .map(|(i, _)| i + octets)
                    .collect(),
            );
            stamps.push(stamp_offsets(&b));
            pkts.push(b);
            digits.push(at);
        }
        Template {
            pkts,
            digits,
            stamps,
            media,
        }
    }

    /// Packet `i` of the endless sequence, stamped `ts_us`, written into `out`. A capture
    /// agent stamps packets with the time it saw them: replaying the template's own times
    /// would make every copy of a call start within the same few seconds.
    fn packet<'a>(&self, i: u64, ts_us: i64, out: &'a mut Vec<u8>) -> &'a [u8] {
        let n = self.pkts.len() as u64;
        let k = i / n;
        let j = (i % n) as usize;
        out.clear();
        out.extend_from_slice(&self.pkts[j]);
        for &(at, kind) in &self.digits[j] {
            out[at..at + 8].copy_from_slice(&scrambled(k << 2 | kind));
        }
        // 1xx.1yy.1zz from the copy's number: a million copies before an address comes back.
        let c = k % 1_000_000;
        let (x, y, z) = ((c / 10_000) as u8, (c / 100 % 100) as u8, (c % 100) as u8);
        let octets = [
            b'1',
            b'0' + x / 10,
            b'0' + x % 10,
            b'.',
            b'1',
            b'0' + y / 10,
            b'0' + y % 10,
            b'.',
            b'1',
            b'0' + z / 10,
            b'0' + z % 10,
        ];
        for &at in &self.media[j] {
            out[at..at + octets.len()].copy_from_slice(&octets);
        }
        let (sec, usec) = self.stamps[j];
        out[sec..sec + 4].copy_from_slice(&(ts_us.div_euclid(1_000_000) as u32).to_be_bytes());
        out[usec..usec + 4].copy_from_slice(&(ts_us.rem_euclid(1_000_000) as u32).to_be_bytes());
        out
    }
}

/// Offsets of the values of the timestamp chunks (seconds, microseconds) of a HEP v3 packet.
fn stamp_offsets(pkt: &[u8]) -> (usize, usize) {
    let (mut sec, mut usec) = (None, None);
    let mut at = siphon_hep::HEADER_LEN;
    while at + siphon_hep::CHUNK_HEADER_LEN <= pkt.len() {
        let kind = u16::from_be_bytes([pkt[at + 2], pkt[at + 3]]);
        let len = usize::from(u16::from_be_bytes([pkt[at + 4], pkt[at + 5]]));
        match kind {
            siphon_hep::chunk::TS_SEC => sec = Some(at + siphon_hep::CHUNK_HEADER_LEN),
            siphon_hep::chunk::TS_USEC => usec = Some(at + siphon_hep::CHUNK_HEADER_LEN),
            _ => {}
        }
        at += len.max(siphon_hep::CHUNK_HEADER_LEN);
    }
    (sec.unwrap(), usec.unwrap())
}

/// Microseconds since the Unix epoch.
fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Called once by a sender after `at_ms` milliseconds' worth of packets, with the number sent
/// so far (the end of a warm-up).
struct Mark<'a> {
    at_ms: u64,
    f: &'a mut dyn FnMut(u64),
}

impl Mark<'_> {
    fn check(&mut self, ms: u64, sent: u64) {
        if ms == self.at_ms && ms > 0 {
            (self.f)(sent);
        }
    }
}

/// Vendor id and type of the chunk that pads a HEP packet for [`send_udp`] (vendor chunks are
/// skipped by every HEP reader, `serve`'s included).
const PAD_VENDOR: u16 = 0xffff;
const PAD_TYPE: u16 = 0x0001;

impl Template {
    /// A copy whose packets all have one length (the longest's plus a chunk header), each
    /// padded with a vendor chunk: the kernel can then cut one buffer into many datagrams (UDP
    /// segmentation offload), see [`send_udp`].
    fn padded(&self) -> Template {
        let chunk = siphon_hep::CHUNK_HEADER_LEN;
        // Every packet gets a pad chunk (at least its 6-byte header), so all can end equal.
        let len = self.pkts.iter().map(Vec::len).max().unwrap_or(0) + chunk;
        let pkts: Vec<Vec<u8>> = self
            .pkts
            .iter()
            .map(|p| {
                let pad = len - p.len();
                let mut p = p.clone();
                p.extend_from_slice(&PAD_VENDOR.to_be_bytes());
                p.extend_from_slice(&PAD_TYPE.to_be_bytes());
                p.extend_from_slice(&(pad as u16).to_be_bytes());
                p.resize(len, 0);
                p[4..6].copy_from_slice(&(len as u16).to_be_bytes());
                p
            })
            .collect();
        for (p, q) in self.pkts.iter().zip(&pkts) {
            // The padded packet says what the unpadded one said.
            let (a, b) = (
                siphon_hep::decode_v3(p).unwrap().0,
                siphon_hep::decode_v3(q).unwrap().0,
            );
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
        Template {
            pkts,
            digits: self.digits.clone(),
            stamps: self.stamps.clone(),
            media: self.media.clone(),
        }
    }
}

/// Sends `rate` packets per second for `secs` seconds; returns how many were sent and how long
/// sending took (longer than `secs` when the receiver held the sender back).
///
/// With `gso` (all of `t`'s packets of one length, see [`Template::padded`]) each system
/// call hands the kernel one buffer that it cuts into datagrams (UDP segmentation offload):
/// on loopback the sending core also delivers every datagram to the receiver, and one
/// `sendmmsg` per 64 datagrams left it unable to offer much more than 330,000/s. The
/// receiver still gets one datagram per packet, as from any other sender.
fn send_udp(
    t: &Template,
    to: SocketAddr,
    rate: u64,
    secs: u64,
    gso: bool,
    mark: &mut Mark<'_>,
) -> (u64, Duration) {
    use nix::sys::socket::{
        sendmmsg, sendmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
    };
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    // Many datagrams per system call: one `send_to` each kept the sender below the rates
    // worth measuring (on loopback the sending core also delivers to the receiver).
    const PER_CALL: usize = 64;
    // Connected, so the kernel routes once rather than once per datagram.
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(to).unwrap();
    let fd = s.as_raw_fd();
    let addrs: Vec<Option<SockaddrStorage>> = vec![None; PER_CALL];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(PER_CALL, None);
    // One segmented send carries at most 64 KiB less the IP and UDP headers.
    let seg = t.pkts[0].len();
    assert!(
        !gso || t.pkts.iter().all(|p| p.len() == seg),
        "segmentation offload needs packets of one length"
    );
    let per_call = if gso {
        PER_CALL.min(65_507 / seg)
    } else {
        PER_CALL
    };
    let seg16 = seg as u16;
    let per_ms = rate / 1000;
    let t0 = Instant::now();
    let wall0 = wall_us();
    let mut sent = 0u64;
    let mut pkts: Vec<Vec<u8>> = vec![Vec::new(); PER_CALL];
    let mut joined = Vec::with_capacity(seg * per_call);
    for ms in 0..secs * 1000 {
        mark.check(ms, sent);
        let mut j = 0;
        while j < per_ms {
            let n = (per_ms - j).min(per_call as u64) as usize;
            let ts = |k: usize| wall0 + (ms * 1000 + (j + k as u64) * 1000 / per_ms) as i64;
            if gso {
                joined.clear();
                for k in 0..n {
                    joined.extend_from_slice(t.packet(sent + k as u64, ts(k), &mut pkts[0]));
                }
                let iov = [IoSlice::new(&joined)];
                let cmsg = [ControlMessage::UdpGsoSegments(&seg16)];
                if let Err(e) = sendmsg::<()>(fd, &iov, &cmsg, MsgFlags::empty(), None) {
                    panic!("UDP segmentation offload refused ({e}): SIPHON_BENCH_UDP_GSO=0 sends without it");
                }
            } else {
                for (k, p) in pkts.iter_mut().take(n).enumerate() {
                    t.packet(sent + k as u64, ts(k), p);
                }
                let iovs: Vec<[IoSlice<'_>; 1]> =
                    pkts[..n].iter().map(|p| [IoSlice::new(p)]).collect();
                // Loopback does not drop on send; a short count would only mean a full buffer.
                let _ = sendmmsg(fd, &mut headers, &iovs, &addrs[..n], [], MsgFlags::empty());
            }
            sent += n as u64;
            j += n as u64;
        }
        let due = Duration::from_millis(ms + 1);
        let el = t0.elapsed();
        if el < due {
            std::thread::sleep(due - el);
        }
    }
    (sent, t0.elapsed())
}

/// As [`send_udp`]; over TCP the receiver holds the sender back when it reads too slowly.
fn send_tcp(
    t: &Template,
    to: SocketAddr,
    rate: u64,
    secs: u64,
    mark: &mut Mark<'_>,
) -> (u64, Duration) {
    send_stream(&mut TcpStream::connect(to).unwrap(), t, rate, secs, mark)
}

/// HEP over TLS at `rate` for `secs` seconds, closed cleanly (close_notify, then the TCP
/// connection once `serve` closes its side).
fn send_tls(
    t: &Template,
    pki: &Path,
    to: SocketAddr,
    rate: u64,
    secs: u64,
    mark: &mut Mark<'_>,
) -> (u64, Duration) {
    let mut s = pki::tls_client(pki, to);
    let (sent, took) = send_stream(&mut s, t, rate, secs, mark);
    s.conn.send_close_notify();
    s.flush().unwrap();
    let _ = s.sock.shutdown(std::net::Shutdown::Write);
    let _ = s.sock.read_to_end(&mut Vec::new());
    (sent, took)
}

/// HEP packets back to back on a stream, `rate` per second for `secs` seconds, a millisecond's
/// worth per write.
fn send_stream(
    s: &mut impl Write,
    t: &Template,
    rate: u64,
    secs: u64,
    mark: &mut Mark<'_>,
) -> (u64, Duration) {
    let per_ms = rate / 1000;
    let t0 = Instant::now();
    let wall0 = wall_us();
    let mut sent = 0u64;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut one = Vec::new();
    for ms in 0..secs * 1000 {
        mark.check(ms, sent);
        buf.clear();
        for j in 0..per_ms {
            let ts = wall0 + (ms * 1000 + j * 1000 / per_ms) as i64;
            buf.extend_from_slice(t.packet(sent, ts, &mut one));
            sent += 1;
        }
        s.write_all(&buf).unwrap();
        s.flush().unwrap();
        let due = Duration::from_millis(ms + 1);
        let el = t0.elapsed();
        if el < due {
            std::thread::sleep(due - el);
        }
    }
    (sent, t0.elapsed())
}

/// `serve`'s counters and CPU time at one moment of a load run.
#[derive(Clone, Copy)]
struct Counts {
    sent: u64,
    received: u64,
    dropped: u64,
    cpu: f64,
    at: Instant,
}

fn hep_load(corpus: &Path, dir: &Path, secs: u64) {
    let pkts = Template::new(corpus);
    // Over UDP, segmentation offload unless SIPHON_BENCH_UDP_GSO=0 (see `send_udp`).
    let gso = std::env::var("SIPHON_BENCH_UDP_GSO").map_or(true, |v| v != "0");
    let padded = pkts.padded();
    let udp_pkts = if gso { &padded } else { &pkts };
    if gso {
        let lens = pkts.pkts.iter().map(Vec::len);
        println!(
            "HEP/UDP: every packet padded to {} bytes with a vendor chunk (unpadded {} to {}, {} on average), and sent with UDP segmentation offload; SIPHON_BENCH_UDP_GSO=0 sends them unpadded, 64 to a sendmmsg",
            padded.pkts[0].len(),
            lens.clone().min().unwrap_or(0),
            lens.clone().max().unwrap_or(0),
            lens.sum::<usize>() / pkts.pkts.len().max(1)
        );
    }
    let warm = env_u64("SIPHON_BENCH_WARMUP_SECONDS", 0);
    let mut best = [0u64; 3];
    let only = std::env::var("SIPHON_BENCH_TRANSPORTS").unwrap_or_else(|_| "udp,tcp,tls".into());
    // HEP over TLS: mutual TLS with a CA, server and client certificates made by openssl.
    let pki = dir.join("pki");
    pki::make_pki(&pki);
    // The bench's ports (19060–19081) lie below Linux's ephemeral range, so no client socket
    // can hold one when `serve` binds it.
    let tls_port = 19_062;
    let tls_env = pki::serve_tls_env(&pki, tls_port);
    for (ti, transport) in ["udp", "tcp", "tls"].iter().enumerate() {
        if !only.split(',').any(|t| t.trim() == *transport) {
            continue;
        }
        let rates: Vec<u64> = std::env::var("SIPHON_BENCH_RATES")
            .ok()
            .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![100_000, 200_000, 300_000, 400_000, 500_000, 600_000]);
        for &rate in &rates {
            let data = dir.join(format!("hep-{transport}-{rate}"));
            let (hep, http) = (19_060, 19_061);
            let env: &[(&str, String)] = if ti == 2 { &tls_env } else { &[] };
            let _srv = start_serve_env(&data, hep, http, env);
            let to: SocketAddr = format!("127.0.0.1:{hep}").parse().unwrap();
            // The sender runs on core 1; this process is moved there.
            let _ = Command::new("taskset")
                .args(["-p", "-c", "1", &std::process::id().to_string()])
                .stdout(Stdio::null())
                .status();
            let src = ["hep_udp", "hep_tcp", "hep_tls"][ti];
            let counter = format!("siphon_received_packets_total{{source=\"{src}\"}}");
            let cpu0 = cpu_seconds(_srv.0.id());
            let steal0 = steal_ms(0);
            let t0 = Instant::now();
            // With a warm-up, the figures count from its end: what `serve` sustains once
            // running, beside what it does from a cold start (without).
            let mut at_mark: Option<Counts> = None;
            let pid = _srv.0.id();
            let mut take = |sent: u64| {
                at_mark = Some(Counts {
                    sent,
                    received: metric(http, &counter),
                    dropped: metric(http, "siphon_dropped_packets_total"),
                    cpu: cpu_seconds(pid),
                    at: Instant::now(),
                });
            };
            let mut mark = Mark {
                at_ms: warm * 1000,
                f: &mut take,
            };
            let total = warm + secs;
            let (sent, took) = match ti {
                0 => send_udp(udp_pkts, to, rate, total, gso, &mut mark),
                1 => send_tcp(&pkts, to, rate, total, &mut mark),
                _ => {
                    let tls_to = SocketAddr::new(to.ip(), tls_port);
                    send_tls(&pkts, &pki, tls_to, rate, total, &mut mark)
                }
            };
            // The share of its core `serve` used is taken over the time the load was offered:
            // the wait below for what is left in the queue and the socket buffers would count
            // as idle time (25 s for a 20 s run) and make a saturated core look 80 % busy.
            let (cpu_sent, sent_at) = (cpu_seconds(pid), Instant::now());
            std::thread::sleep(Duration::from_secs(2));
            // A held-back stream sender may leave data in the socket buffers: wait until
            // `serve` has read everything (UDP: until the count has not moved for 3 s; a
            // listener waiting for room in the queue reads nothing meanwhile), up to 60 s.
            let mut seen = metric(http, &counter);
            let (waiting, mut moved) = (Instant::now(), Instant::now());
            while seen < sent
                && moved.elapsed() < Duration::from_secs(3)
                && waiting.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(250));
                let now = metric(http, &counter);
                if now != seen {
                    moved = Instant::now();
                }
                seen = now;
            }
            let cpu = cpu_seconds(_srv.0.id()) - cpu0;
            let steal = steal_ms(0) - steal0;
            let busy = (cpu_sent - cpu0) / (sent_at - t0).as_secs_f64();
            let flushes = metric(http, "siphon_store_flush_seconds_count");
            let (_, body) = http_get(http, "/metrics");
            let flush_s: f64 = String::from_utf8_lossy(&body)
                .lines()
                .find(|l| l.starts_with("siphon_store_flush_seconds_sum"))
                .and_then(|l| l.rsplit(' ').next()?.parse().ok())
                .unwrap_or(0.0);
            let received = metric(http, &counter);
            let dropped = metric(http, "siphon_dropped_packets_total");
            // A full queue makes the listeners wait (over TCP, holding the sender back).
            let waited = metric_f64(http, "siphon_queue_wait_seconds_total");
            let analysed = metric(http, "siphon_packets_total{type=\"sip\"}");
            // The rate counts only if the sender kept it: over TCP a slow reader slows the
            // sender down instead of dropping.
            let kept = took.as_secs_f64() <= total as f64 * 1.01 + 0.05;
            let cpu_end = cpu_seconds(_srv.0.id());
            // From the end of the warm-up on, if there was one.
            let from = at_mark.unwrap_or(Counts {
                sent: 0,
                received: 0,
                dropped: 0,
                cpu: cpu0,
                at: t0,
            });
            let window_dropped = dropped.saturating_sub(from.dropped);
            let ok = if warm > 0 {
                at_mark.is_some() && window_dropped == 0 && analysed == received && kept
            } else {
                dropped == 0 && received == sent && analysed == sent && kept
            };
            if dropped > 0 {
                let (_, body) = http_get(http, "/metrics");
                for l in String::from_utf8_lossy(&body).lines() {
                    if l.starts_with("siphon_dropped_packets_total")
                        || l.starts_with("siphon_store_flush_seconds_bucket")
                    {
                        println!("  {l}");
                    }
                }
            }
            if warm > 0 {
                let w_cpu = cpu_end - from.cpu;
                let w_received = received.saturating_sub(from.received);
                println!(
                    "HEP/{transport} {rate:>7}/s for {secs} s after a {warm} s warm-up at the same rate: sent {}, received {w_received}, dropped {window_dropped} (in the warm-up: {}) -> {} (serve used {:.0} % of its core, {:.2} µs of CPU per message received; in all {flushes} flushes took {flush_s:.1} s; senders held back {waited:.2} s; its core stolen by the hypervisor {steal} ms)",
                    sent.saturating_sub(from.sent),
                    from.dropped,
                    if ok { "pass" } else { "FAIL" },
                    (cpu_sent - from.cpu) / (sent_at - from.at).as_secs_f64() * 100.0,
                    w_cpu * 1e6 / w_received.max(1) as f64
                );
            } else {
                println!(
                    "HEP/{transport} {rate:>7}/s for {secs} s: sent {sent}, received {received}, analysed {analysed}, dropped {dropped} in {:.1} s -> {} (serve used {:.0} % of its core, {:.2} µs of CPU per message received; {flushes} flushes took {flush_s:.1} s; senders held back {waited:.2} s; its core stolen by the hypervisor {steal} ms)",
                    took.as_secs_f64(),
                    if ok { "pass" } else { "FAIL" },
                    busy * 100.0,
                    cpu * 1e6 / received.max(1) as f64
                );
            }
            if !kept {
                println!(
                    "  the sender kept only {:.0}/s: the rate is not measured",
                    sent as f64 / took.as_secs_f64()
                );
            }
            println!(
                "  stored {:.0} bytes per message received (segments and index, {} MB)",
                dir_bytes(&data) as f64 / received.max(1) as f64,
                dir_bytes(&data) / 1_000_000
            );
            let _ = std::fs::remove_dir_all(&data);
            if !ok {
                break;
            }
            best[ti] = rate;
        }
    }
    println!(
        "highest zero-drop SIP message rate on one core: UDP {} msg/s, TCP {} msg/s, TLS {} msg/s (target 400,000; Homer publishes ~120,000)",
        best[0], best[1], best[2]
    );
}

/// The pipeline and store alone, in this process on one core: the ceiling the listeners
/// and the queue can reach.
fn pipeline_ceiling(corpus: &Path, dir: &Path) {
    let t = Template::new(corpus);
    let n = env_u64("SIPHON_BENCH_CEILING_MSGS", 4_000_000);
    // The collector's defaults (flush every 150,000 records, ...) and, as `serve` takes them,
    // `SIPHON_*` environment overrides; without fsync.
    let mut scfg = siphon_server::config::Config::load(None).expect("SIPHON_* environment");
    scfg.storage.data = dir.join("ceiling");
    let mut cfg = scfg.store_config();
    cfg.fsync = false;
    let mut w = StoreWriter::open(cfg).unwrap();
    let mut p = Pipeline::new(scfg.ingest_config(), w.first_ref());
    let mut buf = Vec::new();
    let t0 = Instant::now();
    // Messages are stamped 400,000 per second of packet time, and the state machine ticks
    // every second of it (as the collector ticks every second of wall time): calls complete
    // along the way, as on a live collector, and the work done does not depend on the speed.
    let stamp = |i: u64| 1_800_000_000_000_000 + (i * 5 / 2) as i64;
    for i in 0..n {
        p.push_hep(t.packet(i, stamp(i), &mut buf), &mut w);
        if w.should_flush() {
            w.flush_refs(&p.dirty()).unwrap();
        }
        if i % 400_000 == 399_999 {
            p.tick(stamp(i), &mut w);
        }
    }
    p.finish("end", &mut w);
    let ws = w.close(Vec::new()).unwrap();
    let s = t0.elapsed().as_secs_f64();
    println!(
        "pipeline + store in one thread: {n} HEP SIP messages in {s:.2} s = {:.0} msg/s ({} index rows written in {} flushes, {:.2} s in flushes)",
        n as f64 / s,
        ws.rows_written,
        ws.flushes,
        ws.flush_time.as_secs_f64()
    );
    println!(
        "  stored {:.1} bytes per message (segments and index)",
        dir_bytes(&dir.join("ceiling")) as f64 / n.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(dir.join("ceiling"));
}

fn import_rate(corpus: &Path, dir: &Path) {
    let cap = dir.join("import.pcap");
    let g = gen::generate(corpus, &cap, 150, 500_000);
    let t0 = Instant::now();
    let st = pinned(0, env!("CARGO_BIN_EXE_siphon"))
        .args(["import", "--quiet", "--data"])
        .arg(dir.join("import-data"))
        .arg(&cap)
        .status()
        .unwrap();
    assert!(st.success());
    let s = t0.elapsed().as_secs_f64();
    println!(
        "same run: siphon import {} packets in {s:.2} s = {:.0} packets/s on one core",
        g.packets,
        g.packets as f64 / s
    );
    let _ = std::fs::remove_file(&cap);
}

/// Builds a SIP-only store of `calls` calls through the library; returns the Call-IDs.
fn build_store(corpus: &Path, data: &Path, calls: u64) -> Vec<String> {
    let mut r = CaptureReader::open(&corpus.join("many_calls_24.pcap")).unwrap();
    let mut dec = Decoder::new();
    let mut sip = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        let Ok(Some(p)) = dec.decode(&f) else {
            continue;
        };
        if p.src.port() < 10000 {
            sip.push((p.ts_us, f.data.to_vec()));
        }
    }
    let t_first = sip[0].0;
    let mut cfg = StoreConfig::new(data);
    cfg.subdirs = siphon_store::Subdirs::Daily;
    cfg.fsync = false;
    let mut w = StoreWriter::open(cfg).unwrap();
    let mut p = Pipeline::new(IngestConfig::default(), w.first_ref());
    let copies = calls.div_ceil(24);
    let mut ids = Vec::new();
    for k in 0..copies {
        for (ts, frame) in &sip {
            // Rebuild IP/UDP lengths: the replacement makes the frame longer.
            let tag = String::from_utf8_lossy(&scrambled(k)).into_owned();
            let mut f = gen::replace_all(frame, b"-5918@", format!("-5918c{tag}@").as_bytes());
            let ip_len = (f.len() - 14) as u16;
            f[16..18].copy_from_slice(&ip_len.to_be_bytes());
            f[24..26].copy_from_slice(&[0, 0]);
            let udp_len = (f.len() - 34) as u16;
            f[38..40].copy_from_slice(&udp_len.to_be_bytes());
            f[40..42].copy_from_slice(&[0, 0]);
            let frame = Frame {
                ts_us: 1_800_000_000_000_000 + (ts - t_first) + k as i64 * 40_000,
                link: LinkType::ETHERNET,
                data: &f,
                orig_len: f.len() as u32,
                interface: 0,
            };
            p.push_frame(&frame, &mut w);
            if w.should_flush() {
                w.flush_refs(&p.dirty()).unwrap();
            }
        }
        if k % 97 == 0 {
            let tag = String::from_utf8_lossy(&scrambled(k)).into_owned();
            ids.push(format!("{}-5918c{tag}@127.0.0.1", 1 + (k % 24)));
        }
    }
    p.finish("end", &mut w);
    w.close(Vec::new()).unwrap();
    ids
}

fn flow_latency(corpus: &Path, dir: &Path, calls: u64) {
    let data = dir.join("latency");
    let t0 = Instant::now();
    let ids = build_store(corpus, &data, calls);
    println!(
        "built a store of {} calls in {:.1} s",
        calls.div_ceil(24) * 24,
        t0.elapsed().as_secs_f64()
    );
    let http = 19_071;
    let _srv = start_serve(&data, 19_070, http);
    let mut lat = Vec::new();
    for i in 0..2000 {
        let id = &ids[(i * 7919) % ids.len()];
        let path = format!("/api/v1/calls/{}/flow", id.replace('@', "%40"));
        let t = Instant::now();
        let (st, body) = http_get(http, &path);
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(st, 200, "{path}: {}", String::from_utf8_lossy(&body));
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "GET /api/v1/calls/{{id}}/flow on {} calls: p50 {:.2} ms, p99 {:.2} ms (target p99 < 10 ms)",
        calls.div_ceil(24) * 24,
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
}

/// A store holding one call of `minutes`: the corpus' two-way G.711 call, its RTP repeated
/// (sequence numbers and timestamps carried on) until the BYE. Returns its Call-ID and packets.
fn build_long_call(corpus: &Path, data: &Path, minutes: u64) -> (String, u64) {
    let mut r = CaptureReader::open(&corpus.join("basic_twoway_g711a.pcap")).unwrap();
    let mut dec = Decoder::new();
    let (mut head, mut rtp, mut tail) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(f) = r.next_frame().unwrap() {
        let Ok(Some(p)) = dec.decode(&f) else {
            continue;
        };
        let item = (f.ts_us, f.data.to_vec());
        if p.src.port() >= 10000 && p.dst.port() >= 10000 {
            rtp.push(item);
        } else if rtp.is_empty() {
            head.push(item);
        } else {
            tail.push(item);
        }
    }
    let (first, last) = (rtp[0].0, rtp[rtp.len() - 1].0);
    // One lap of the RTP, plus one packet interval so laps do not overlap.
    let lap = last - first + 30_000;
    let laps = (minutes as i64 * 60_000_000 / lap).max(1);
    let mut cfg = StoreConfig::new(data);
    cfg.fsync = false;
    let mut w = StoreWriter::open(cfg).unwrap();
    let mut p = Pipeline::new(IngestConfig::default(), w.first_ref());
    let mut packets = 0u64;
    let mut push = |ts: i64, data: &[u8], p: &mut Pipeline, w: &mut StoreWriter| {
        let frame = Frame {
            ts_us: ts,
            link: LinkType::ETHERNET,
            data,
            orig_len: data.len() as u32,
            interface: 0,
        };
        p.push_frame(&frame, w);
        if w.should_flush() {
            w.flush_refs(&p.dirty()).unwrap();
        }
        packets += 1;
    };
    for (ts, f) in &head {
        push(*ts, f, &mut p, &mut w);
    }
    // Per direction: packets and RTP clock ticks in one lap.
    let mut per_lap: std::collections::HashMap<[u8; 4], (u16, u32, u16, u32)> = Default::default();
    for (_, f) in &rtp {
        let ssrc: [u8; 4] = f[50..54].try_into().unwrap();
        let seq = u16::from_be_bytes([f[44], f[45]]);
        let ts = u32::from_be_bytes(f[46..50].try_into().unwrap());
        let e = per_lap.entry(ssrc).or_insert((seq, ts, seq, ts));
        e.2 = seq;
        e.3 = ts;
    }
    let mut buf = Vec::new();
    for k in 0..laps {
        for (ts, f) in &rtp {
            buf.clear();
            buf.extend_from_slice(f);
            let ssrc: [u8; 4] = f[50..54].try_into().unwrap();
            let (s0, t0, s1, t1) = per_lap[&ssrc];
            let seq = u16::from_be_bytes([f[44], f[45]])
                .wrapping_add((s1.wrapping_sub(s0).wrapping_add(1)).wrapping_mul(k as u16));
            let rts = u32::from_be_bytes(f[46..50].try_into().unwrap())
                .wrapping_add((t1.wrapping_sub(t0).wrapping_add(240)).wrapping_mul(k as u32));
            buf[44..46].copy_from_slice(&seq.to_be_bytes());
            buf[46..50].copy_from_slice(&rts.to_be_bytes());
            push(ts + k * lap, &buf, &mut p, &mut w);
        }
    }
    for (ts, f) in &tail {
        push(ts + (laps - 1) * lap, f, &mut p, &mut w);
    }
    p.finish("end", &mut w);
    w.close(Vec::new()).unwrap();
    ("1-5790@127.0.0.1".to_string(), packets)
}

/// Peak resident memory of process `pid` so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn export_memory(corpus: &Path, dir: &Path, minutes: u64) {
    let data = dir.join("long-call");
    let (id, packets) = build_long_call(corpus, &data, minutes);
    let http = 19_081;
    let path = |what: &str| format!("/api/v1/calls/{}/{what}", id.replace('@', "%40"));
    let mb = |b: u64| b as f64 / 1e6;
    let mut line = format!("exports of a {minutes}-minute call ({packets} packets):");
    // A fresh `serve` for each, so that one's peak does not hide the other's.
    for what in ["flow", "pcap", "wav"] {
        let srv = start_serve(&data, 19_080, http);
        let pid = srv.0.id();
        let (st, row) = http_get(http, path("").trim_end_matches('/'));
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&row));
        let before = peak_rss(pid);
        let t = Instant::now();
        let (st, body) = http_get(http, &path(what));
        let took = t.elapsed().as_secs_f64();
        assert_eq!(
            st,
            200,
            "{what}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        let rise = peak_rss(pid).saturating_sub(before);
        line.push_str(&format!(
            " {what} {:.3} MB in {:.1} ms, serve's peak memory +{:.1} MB;",
            mb(body.len() as u64),
            took * 1000.0,
            mb(rise),
        ));
    }
    println!("{}", line.trim_end_matches(';'));
    let _ = std::fs::remove_dir_all(&data);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("serve: bench");
        return;
    }
    // Transparent huge pages off, as `siphon` turns them off for itself (unless
    // MIMALLOC_ALLOW_THP is set): the ceiling runs the pipeline in this process, and with them
    // on, zeroing the 2 MiB pages mimalloc asked for took a quarter of its time.
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
    let corpus: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let dir = std::env::temp_dir().join(format!("siphon-bench-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let secs = env_u64("SIPHON_BENCH_SECONDS", 10);
    let calls = env_u64("SIPHON_BENCH_CALLS", 1_000_000);
    let skip = |what: &str| {
        std::env::var("SIPHON_BENCH_SKIP").is_ok_and(|v| v.split(',').any(|x| x.trim() == what))
    };
    if !skip("ceiling") {
        pipeline_ceiling(&corpus, &dir);
    }
    if !skip("import") {
        import_rate(&corpus, &dir);
    }
    if !skip("load") {
        hep_load(&corpus, &dir, secs);
    }
    if !skip("flow") {
        flow_latency(&corpus, &dir, calls);
    }
    if !skip("export") {
        export_memory(&corpus, &dir, env_u64("SIPHON_BENCH_CALL_MINUTES", 60));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bytes in the files under `dir` (what a run left in its store).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}
