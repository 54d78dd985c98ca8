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
    let mut r = CaptureReader::open(&corpus.join("many_calls_24.pcap")).unwrap();
    let mut dec = Decoder::new();
    let mut msgs = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        let Ok(Some(p)) = dec.decode(&f) else {
            continue;
        };
        if p.src.port() >= 10000 && p.dst.port() >= 10000 {
            continue;
        }
        msgs.push(p.payload.to_vec());
    }
    // xorshift64: the same blocks in every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut blocks, mut cur, mut total) = (Vec::new(), Vec::new(), 0usize);
    // Messages in the blocks, and in the block being filled.
    let (mut records, mut in_cur) = (0usize, 0usize);
    while total < 64 << 20 {
        // One copy of the corpus's calls: each identifier gets one random value for the copy.
        let mut ids: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for m in &msgs {
            cur.extend_from_slice(&[0u8; 18]);
            cur.extend_from_slice(&(rnd() as u32).to_le_bytes());
            randomise_ids(m, &mut ids, &mut rnd, &mut cur);
            in_cur += 1;
            if cur.len() >= 256 << 10 {
                total += cur.len();
                records += std::mem::take(&mut in_cur);
                blocks.push(std::mem::take(&mut cur));
            }
        }
    }
    println!("{} blocks of SIP, zstd level {level}", blocks.len());
    run(
        &blocks,
        records,
        "zstd's own parameters",
        &mut zstd::bulk::Compressor::new(level).unwrap(),
    );
    run(
        &blocks,
        records,
        "the store's compressor",
        &mut siphon_store::block_compressor(level).unwrap(),
    );
    let (blocks, records) = media_blocks(&corpus, &mut rnd);
    let level = siphon_store::MEDIA_ZSTD_LEVEL;
    println!("{} blocks of RTP, zstd level {level}", blocks.len());
    run(
        &blocks,
        records,
        "zstd's own parameters",
        &mut zstd::bulk::Compressor::new(level).unwrap(),
    );
    run(
        &blocks,
        records,
        "the store's compressor",
        &mut siphon_store::block_compressor(level).unwrap(),
    );
}

/// Compresses every block three times with `z`; prints the best pass.
fn run(blocks: &[Vec<u8>], records: usize, name: &str, z: &mut zstd::bulk::Compressor<'static>) {
    let total: usize = blocks.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(1 << 20);
    let (mut best, mut size) = (f64::MAX, 0usize);
    for _ in 0..3 {
        let t = Instant::now();
        size = 0;
        for b in blocks {
            out.clear();
            size += z.compress_to_buffer(b, &mut out).unwrap();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{name}: {:.0} MB/s, ratio {:.3} ({size} bytes from {total}), {:.0} ns per record",
        total as f64 / best / 1e6,
        total as f64 / size as f64,
        best * 1e9 / records as f64
    );
}

/// 64 MB of RTP records in 256 KiB blocks, and how many records they hold.
fn media_blocks(corpus: &Path, rnd: &mut impl FnMut() -> u64) -> (Vec<Vec<u8>>, usize) {
    let mut r = CaptureReader::open(&corpus.join("basic_twoway_g711a.pcap")).unwrap();
    let mut dec = Decoder::new();
    // Each RTP frame, and where its payload starts.
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        let Ok(Some(p)) = dec.decode(&f) else {
            continue;
        };
        if p.src.port() >= 10000 && p.dst.port() >= 10000 && p.payload.len() > 12 {
            frames.push((f.data.to_vec(), f.data.len() - p.payload.len() + 12));
        }
    }
    let (mut blocks, mut cur, mut total) = (Vec::new(), Vec::new(), 0usize);
    let (mut records, mut in_cur) = (0usize, 0usize);
    while total < 64 << 20 {
        for (f, payload_at) in &frames {
            cur.extend_from_slice(&[0u8; 18]);
            cur.extend_from_slice(&(rnd() as u32).to_le_bytes());
            let at = cur.len() + payload_at;
            cur.extend_from_slice(f);
            // Bytes drawn from 32 values (5 bits each): about as compressible as G.711 speech.
            for b in cur.iter_mut().skip(at) {
                *b = (rnd() >> 24) as u8 & 0x7f | 0x50;
            }
            in_cur += 1;
            if cur.len() >= 256 << 10 {
                total += cur.len();
                records += std::mem::take(&mut in_cur);
                blocks.push(std::mem::take(&mut cur));
            }
        }
    }
    (blocks, records)
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
