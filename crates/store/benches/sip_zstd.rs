//! Compression of SIP blocks: the store's compressor (`sip_compressor`) against zstd's own
//! parameters at the same level, on 64 MB of the corpus's SIP (`many_calls_24.pcap`) with a
//! third of its digits randomised (Call-IDs, tags, branches, CSeqs, ports and SDP ids then
//! differ between copies as on a live network), cut in blocks as the writer cuts them (sealed
//! once they hold 256 KiB), each message behind a record-sized header. Prints MB/s and the
//! compression ratio of each, best of 3 passes.
//!
//! `cargo bench -p siphon-store --bench sip_zstd` (`SIPHON_BENCH_ZSTD_LEVEL`, default 1).

use std::path::Path;
use std::time::Instant;

use siphon_wire::capture::CaptureReader;
use siphon_wire::decode::Decoder;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("sip_zstd: bench");
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
    while total < 64 << 20 {
        for m in &msgs {
            cur.extend_from_slice(&[0u8; 18]);
            cur.extend_from_slice(&(rnd() as u32).to_le_bytes());
            for &b in m {
                let b = if b.is_ascii_digit() && rnd() % 3 == 0 {
                    b'0' + (rnd() % 10) as u8
                } else {
                    b
                };
                cur.push(b);
            }
            if cur.len() >= 256 << 10 {
                total += cur.len();
                blocks.push(std::mem::take(&mut cur));
            }
        }
    }
    let run = |name: &str, z: &mut zstd::bulk::Compressor<'static>| {
        let mut out = Vec::with_capacity(1 << 20);
        let (mut best, mut size) = (f64::MAX, 0usize);
        for _ in 0..3 {
            let t = Instant::now();
            size = 0;
            for b in &blocks {
                out.clear();
                size += z.compress_to_buffer(b, &mut out).unwrap();
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name}: {:.0} MB/s, ratio {:.3} ({size} bytes from {total})",
            total as f64 / best / 1e6,
            total as f64 / size as f64
        );
    };
    println!("{} blocks of SIP, zstd level {level}", blocks.len());
    run(
        "zstd's own parameters",
        &mut zstd::bulk::Compressor::new(level).unwrap(),
    );
    run(
        "the store's compressor",
        &mut siphon_store::sip_compressor(level).unwrap(),
    );
}
