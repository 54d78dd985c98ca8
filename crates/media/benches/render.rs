//! Renders a synthetic two-way PCMA call (1 hour by default, `SIPHON_BENCH_SECONDS` to
//! change) to a WAV file and prints time, throughput and peak memory (VmHWM). Targets for
//! one hour: under 300 ms and under 64 MB. sox decoding the same A-law audio to WAV is
//! timed as the reference when it is installed.

use std::fs::File;
use std::io::Write;
use std::process::Command;
use std::time::Instant;

use siphon_media::{Channel, RenderOptions, RtpPacket, WavRenderer};

const TIME_TARGET_MS: f64 = 300.0;
const MEMORY_TARGET_KB: u64 = 64 * 1024;

fn vm_hwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Payload of packet `k` of direction `dir`: a slowly varying A-law pattern.
fn fill(payload: &mut [u8], dir: u8, k: u32) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(31) ^ (i as u8).wrapping_mul(7) ^ dir;
    }
}

fn main() {
    let seconds: u32 = std::env::var("SIPHON_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    let packets_per_dir = seconds * 50; // 20 ms packets
    let dir = std::env::temp_dir().join(format!("siphon-media-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let wav_path = dir.join("call.wav");
    let t0: i64 = 1_700_000_000_000_000;

    let started = Instant::now();
    let file = File::create(&wav_path).expect("create wav");
    let mut r = WavRenderer::new(file, RenderOptions::default(), t0);
    let mut payload = [0u8; 160];
    for k in 0..packets_per_dir {
        let base = t0 + 200_000 + 20_000 * i64::from(k);
        for (dir, ch, ssrc) in [(0u8, Channel::Left, 0x1111), (1, Channel::Right, 0x2222)] {
            fill(&mut payload, dir, k);
            let jitter = i64::from((k * 7 + u32::from(dir) * 3) % 11) * 1000;
            r.push(
                ch,
                &RtpPacket {
                    capture_us: base + jitter + i64::from(dir) * 5_000,
                    seq: k as u16,
                    timestamp: 160u32.wrapping_mul(k).wrapping_add(u32::from(dir) * 999),
                    ssrc,
                    payload_type: 8,
                    marker: k == 0,
                    payload: &payload,
                },
            );
        }
    }
    let report = r.finish().expect("render");
    let elapsed = started.elapsed();
    let hwm = vm_hwm_kb().unwrap_or(0);

    let ms = elapsed.as_secs_f64() * 1000.0;
    let packets = 2 * u64::from(packets_per_dir);
    let in_bytes = packets * 160;
    let out_bytes = std::fs::metadata(&wav_path).map(|m| m.len()).unwrap_or(0);
    println!(
        "siphon-media render: {seconds} s two-way PCMA call, {packets} packets -> {} frames at {} Hz x {}",
        report.samples_written, report.rate, report.channels
    );
    println!(
        "  time {ms:.1} ms ({:.0} packets/s, {:.1} MB/s payload in, {:.1} MB/s WAV out)",
        packets as f64 / elapsed.as_secs_f64(),
        in_bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        out_bytes as f64 / 1e6 / elapsed.as_secs_f64(),
    );
    println!("  peak memory (VmHWM) {:.1} MB", hwm as f64 / 1024.0);
    if seconds == 3600 {
        println!(
            "  targets: time < {TIME_TARGET_MS} ms: {}, memory < 64 MB: {}",
            if ms < TIME_TARGET_MS { "met" } else { "MISSED" },
            if hwm < MEMORY_TARGET_KB {
                "met"
            } else {
                "MISSED"
            }
        );
    }

    // Reference: sox expanding the same A-law audio (interleaved stereo) to WAV.
    let raw_path = dir.join("call.alaw");
    if let Ok(mut raw) = File::create(&raw_path).map(std::io::BufWriter::new) {
        let (mut a, mut b) = ([0u8; 160], [0u8; 160]);
        let mut ok = true;
        for k in 0..packets_per_dir {
            fill(&mut a, 0, k);
            fill(&mut b, 1, k);
            let inter: Vec<u8> = a.iter().zip(b.iter()).flat_map(|(x, y)| [*x, *y]).collect();
            ok &= raw.write_all(&inter).is_ok();
        }
        ok &= raw.flush().is_ok();
        drop(raw);
        let sox_out = dir.join("sox.wav");
        let started = Instant::now();
        let status = Command::new("sox")
            .args([
                "-t", "raw", "-r", "8000", "-e", "a-law", "-b", "8", "-c", "2",
            ])
            .arg(&raw_path)
            .arg(&sox_out)
            .status();
        match status {
            Ok(s) if s.success() && ok => println!(
                "  reference: sox a-law -> wav of the same audio {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            ),
            _ => println!("  reference: sox not available"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
