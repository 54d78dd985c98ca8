//! Compression of the store's blocks: its compressor (`block_compressor`) against zstd's own
//! parameters at the same level, on two loads cut in blocks as the writer cuts them (sealed
//! once they hold 256 KiB), each packet behind a record-sized header. Prints MB/s, the
//! compression ratio and the time per record of each, best of 3 passes.
//!
//! - SIP, at `storage.zstd_level` (`SIPHON_BENCH_ZSTD_LEVEL`, default 1): 64 MB of records made
//!   from the corpus's calls (`many_calls_24.pcap`), every copy of a call with its own random
//!   Call-ID, tags, branches, SDP session ids and RTP ports (as on a live network; the rest of
//!   each message repeats).
//! - Media, at the writer's media level: 64 MB of the RTP frames of `basic_twoway_g711a.pcap`,
//!   their payloads replaced by random bytes of about G.711 speech's entropy (5 bits a byte).
//!
//! `cargo bench -p siphon-store --bench block_zstd`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use siphon_wire::capture::CaptureReader;
use siphon_wire::decode::Decoder;

/// Bytes of records each load makes.
const LOAD_BYTES: usize = 64 << 20;

/// Records cut in blocks as the writer cuts them: a block is sealed once it holds 256 KiB.
#[derive(Default)]
struct Blocks {
    sealed: Vec<Vec<u8>>,
    filling: Vec<u8>,
    bytes: usize,
    /// Records in the sealed blocks, and in the one filling.
    records: usize,
    in_filling: usize,
}

impl Blocks {
    fn enough(&self) -> bool {
        self.bytes >= LOAD_BYTES
    }

    /// Adds a record: a record-sized header holding `head`, then what `body` writes.
    fn record(&mut self, head: u32, body: impl FnOnce(&mut Vec<u8>)) {
        self.filling.extend_from_slice(&[0u8; 18]);
        self.filling.extend_from_slice(&head.to_le_bytes());
        body(&mut self.filling);
        self.in_filling += 1;
        if self.filling.len() >= 256 << 10 {
            self.bytes += self.filling.len();
            self.records += std::mem::take(&mut self.in_filling);
            self.sealed.push(std::mem::take(&mut self.filling));
        }
    }
}

/// xorshift64: the same loads in every run.
fn xorshift() -> impl FnMut() -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// The frames of a corpus capture with their decoded packets' payloads, as `keep` maps them.
fn corpus_frames<T>(
    corpus: &Path,
    file: &str,
    keep: impl Fn(&[u8], &siphon_wire::decode::Packet<'_>) -> Option<T>,
) -> Vec<T> {
    let mut r = CaptureReader::open(&corpus.join(file)).unwrap();
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        if let Ok(Some(p)) = dec.decode(&f) {
            out.extend(keep(f.data, &p));
        }
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("block_zstd: bench");
        return;
    }
    let level: i32 = std::env::var("SIPHON_BENCH_ZSTD_LEVEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let mut rnd = xorshift();

    let msgs = corpus_frames(&corpus, "many_calls_24.pcap", |_, p| {
        let sip = p.src.port() < 10000 || p.dst.port() < 10000;
        sip.then(|| p.payload.to_vec())
    });
    let mut sip = Blocks::default();
    while !sip.enough() {
        // One copy of the corpus's calls: each identifier gets one random value for the copy.
        let mut ids: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for m in &msgs {
            let head = rnd() as u32;
            sip.record(head, |out| randomise_ids(m, &mut ids, &mut rnd, out));
        }
    }
    compare("SIP", &sip, level);

    // Each RTP frame, and where its payload starts.
    let frames = corpus_frames(&corpus, "basic_twoway_g711a.pcap", |data, p| {
        let rtp = p.src.port() >= 10000 && p.dst.port() >= 10000 && p.payload.len() > 12;
        rtp.then(|| (data.to_vec(), data.len() - p.payload.len() + 12))
    });
    let mut media = Blocks::default();
    while !media.enough() {
        for (f, payload_at) in &frames {
            let head = rnd() as u32;
            media.record(head, |out| {
                let at = out.len() + payload_at;
                out.extend_from_slice(f);
                // Bytes drawn from 32 values (5 bits each): about as compressible as G.711 speech.
                for b in out.iter_mut().skip(at) {
                    *b = (rnd() >> 24) as u8 & 0x7f | 0x50;
                }
            });
        }
    }
    compare("RTP", &media, siphon_store::MEDIA_ZSTD_LEVEL);
}

/// zstd's own parameters and the store's compressor at `level`, on `blocks`.
fn compare(what: &str, blocks: &Blocks, level: i32) {
    println!(
        "{} blocks of {what}, zstd level {level}",
        blocks.sealed.len()
    );
    let own = zstd::bulk::Compressor::new(level).unwrap();
    let store = siphon_store::block_compressor(level).unwrap();
    for (name, mut z) in [
        ("zstd's own parameters", own),
        ("the store's compressor", store),
    ] {
        let mut out = Vec::with_capacity(1 << 20);
        let (mut best, mut size) = (f64::MAX, 0usize);
        for _ in 0..3 {
            let t = Instant::now();
            size = 0;
            for b in &blocks.sealed {
                out.clear();
                size += z.compress_to_buffer(b, &mut out).unwrap();
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name}: {:.0} MB/s, ratio {:.3} ({size} bytes from {}), {:.0} ns per record",
            blocks.bytes as f64 / best / 1e6,
            blocks.bytes as f64 / size as f64,
            blocks.bytes,
            best * 1e9 / blocks.records as f64
        );
    }
}

/// Copies SIP message `m` into `out` with the value after each of `tag=`, `branch=`,
/// `Call-ID: `, the SDP origin's user and `m=audio ` replaced by the copy's random value for it.
fn randomise_ids(
    m: &[u8],
    ids: &mut HashMap<Vec<u8>, Vec<u8>>,
    rnd: &mut impl FnMut() -> u64,
    out: &mut Vec<u8>,
) {
    const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    // Marker, length of the random value, digits only.
    const IDS: [(&[u8], usize, bool); 5] = [
        (b"tag=", 24, false),
        (b"branch=", 24, false),
        (b"Call-ID: ", 24, false),
        (b"o=user1 ", 10, true),
        (b"m=audio ", 5, true),
    ];
    let mut i = 0;
    while let Some(rest) = m.get(i..).filter(|r| !r.is_empty()) {
        let Some(&(marker, len, digits)) = IDS.iter().find(|(k, _, _)| rest.starts_with(k)) else {
            out.push(rest[0]);
            i += 1;
            continue;
        };
        out.extend_from_slice(marker);
        let start = i + marker.len();
        let end = m[start..]
            .iter()
            .position(|b| b";\r\n> ".contains(b))
            .map_or(m.len(), |p| start + p);
        let value = ids.entry(m[start..end].to_vec()).or_insert_with(|| {
            (0..len)
                .map(|_| {
                    let r = rnd();
                    if digits {
                        b'0' + (r % 10) as u8
                    } else {
                        ALNUM[(r % ALNUM.len() as u64) as usize]
                    }
                })
                .collect()
        });
        out.extend_from_slice(value);
        i = end;
    }
}
