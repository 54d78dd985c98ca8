//! Import benchmark: builds a capture of ≥ 1 M packets and ≥ 1,000 calls from the corpus
//! (distinct Call-IDs, SSRCs and RTP ports), imports it with `siphon import` pinned to one core,
//! and prints packets/s, MB/s and bytes stored per call, beside tshark's `-z rtp,streams` on
//! the same file in the same run.
//!
//! `cargo bench -p siphon-cli --bench import` (set SIPHON_BENCH_COPIES to change the size; 300
//! copies of the 24-call template = 1,015,200 packets, 7,200 calls; set SIPHON_BENCH_KEEP to keep
//! the capture for profiling).

#[path = "../tests/support/gen.rs"]
mod gen;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn dir_bytes(p: &Path, pred: &dyn Fn(&str) -> bool) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                n += dir_bytes(&path, pred);
            } else if pred(&e.file_name().to_string_lossy()) {
                n += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    n
}

fn analysis_ns_per_packet(cap: &Path) -> (f64, u64) {
    use siphon_wire::capture::CaptureReader;
    use siphon_wire::decode::Decoder;
    let mut r = CaptureReader::open(cap).unwrap();
    let mut dec = Decoder::new();
    let mut pkts = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        let Ok(Some(p)) = dec.decode(&f) else {
            continue;
        };
        if p.src.port() < 10000 {
            continue;
        }
        if let Ok(h) = siphon_rtp::RtpHeader::parse(p.payload) {
            pkts.push((p.ts_us, p.src, p.dst, h));
        }
    }
    let mut streams: std::collections::HashMap<_, siphon_rtp::StreamStats> =
        std::collections::HashMap::new();
    let t0 = Instant::now();
    for (ts, src, dst, h) in &pkts {
        streams.entry((*src, *dst, h.ssrc)).or_default().push(
            *ts,
            h.seq,
            h.timestamp,
            h.payload_type,
            h.marker,
            Some(8000),
        );
    }
    let el = t0.elapsed().as_nanos() as f64;
    std::hint::black_box(&streams);
    (el / pkts.len().max(1) as f64, pkts.len() as u64)
}

fn pinned(cmd: &str) -> Command {
    if Command::new("taskset").arg("--version").output().is_ok() {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", cmd]);
        c
    } else {
        Command::new(cmd)
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("import: bench");
        return;
    }
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    let copies: u32 = std::env::var("SIPHON_BENCH_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = std::env::temp_dir().join(format!("siphon-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cap = dir.join("bench.pcap");
    let g = gen::generate(&corpus, &cap, copies, 500_000);
    println!(
        "capture: {} packets, {} calls, {:.1} MB",
        g.packets,
        g.calls,
        g.bytes as f64 / 1e6
    );
    // Warm the page cache so both tools read from memory.
    let _ = std::fs::read(&cap);

    let data = dir.join("data");
    let t0 = Instant::now();
    let out = pinned(env!("CARGO_BIN_EXE_siphon"))
        .args(["import", "--quiet", "--json", "--data"])
        .arg(&data)
        .arg(&cap)
        .output()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let calls = v["calls"].as_u64().unwrap().max(1) as f64;
    let sip = v["stored"]["sip_block_bytes"].as_u64().unwrap() as f64;
    let media = v["stored"]["media_block_bytes"].as_u64().unwrap() as f64;
    let index = dir_bytes(&data, &|n| n.starts_with("index.sqlite")) as f64;
    let segs = dir_bytes(&data, &|n| n.ends_with(".seg")) as f64;
    let pps = g.packets as f64 / secs;

    let t1 = Instant::now();
    let ts = pinned("tshark")
        .args(["-n", "-q", "-r"])
        .arg(&cap)
        .args(["-z", "rtp,streams"])
        .output();
    let tsecs = t1.elapsed().as_secs_f64();
    let tshark_ok = matches!(&ts, Ok(o) if o.status.success());

    println!(
        "siphon import (1 core): {secs:.2} s, {pps:.0} packets/s, {:.1} MB/s",
        g.bytes as f64 / 1e6 / secs
    );
    println!(
        "  calls {} (expected {}), SIP messages {}, RTP {}",
        v["calls"], g.calls, v["sip_messages"], v["rtp_packets"]
    );
    println!("  stored per call: SIP {:.0} B, RTP {:.0} B, index {:.0} B (segments {:.1} MB, capture {:.1} MB)",
        sip / calls, media / calls, index / calls, segs / 1e6, g.bytes as f64 / 1e6);
    // Stream analysis alone: RFC 3550 accounting + jitter of every RTP packet of the capture,
    // per (src, dst, SSRC), timed in-process; its share of the import time above.
    let (ns, n) = analysis_ns_per_packet(&cap);
    println!(
        "stream analysis: {ns:.1} ns per RTP packet ({n} packets) = {:.1} % of the import time",
        ns * n as f64 / 1e9 / secs * 100.0
    );
    if tshark_ok {
        let tpps = g.packets as f64 / tsecs;
        println!("tshark -z rtp,streams (1 core): {tsecs:.2} s, {tpps:.0} packets/s");
        println!("ratio siphon/tshark: {:.2}x", pps / tpps);
    } else {
        println!("tshark not available: no reference figure");
    }
    if std::env::var_os("SIPHON_BENCH_KEEP").is_some() {
        println!("kept {}", cap.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
