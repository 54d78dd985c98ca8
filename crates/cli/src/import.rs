//! `siphon import`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use siphon_ingest::{IngestConfig, Pipeline};
use siphon_store::{StoreConfig, StoreWriter, Subdirs};
use siphon_wire::capture::CaptureReader;

use crate::ledger::{self, Entry, Fingerprint, Ledger, Seen};

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    data: crate::DataArg,
    /// Capture files (pcap, pcapng, optionally gzip-compressed).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Bucket layout of the store: none, daily or hourly (UTC, by call start).
    #[arg(long, default_value = "daily")]
    subdirs: Subdirs,
    /// Flush to disk after this many packets...
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    flush_count: u64,
    /// ...or after this many seconds, whichever comes first.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    flush_interval_secs: u64,
    /// Completed Call-IDs kept in memory so late messages rejoin their call.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    id_cache_size: usize,
    /// Do not fsync at each flush (faster; a power cut may then lose more than one interval).
    #[arg(long)]
    no_fsync: bool,
    /// UDP/TCP ports parsed as SIP (SIP is also found by content on any port). Repeatable.
    #[arg(long = "sip-port", value_name = "PORT", default_values_t = [5060u16, 5061, 5080])]
    sip_ports: Vec<u16>,
    /// Keep RTP-looking packets on ports no SDP announced (as orphan streams).
    #[arg(long)]
    heuristic_rtp: bool,
    /// Accept HEP v1/v2 on the HEP port as well as v3.
    #[arg(long)]
    hep_legacy: bool,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
    /// Print a line on stderr after every flush ("flushed N packets": the first N packets read
    /// are durable).
    #[arg(short, long)]
    verbose: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Import files this store has imported before (recognised by their content, see
    /// `imports.jsonl` in the store) once more: their calls are then stored twice.
    #[arg(long)]
    force: bool,
}

pub fn run(a: ImportArgs) -> Result<ExitCode> {
    for f in &a.files {
        if !f.is_file() {
            bail!("{}: no such capture file", f.display());
        }
    }
    let mut scfg = StoreConfig::new(&a.data.data);
    scfg.subdirs = a.subdirs;
    scfg.flush_count = a.flush_count.max(1);
    scfg.flush_interval = Duration::from_secs(a.flush_interval_secs);
    scfg.id_cache_size = a.id_cache_size;
    scfg.fsync = !a.no_fsync;
    let mut writer = StoreWriter::open(scfg)?;
    let mut icfg = IngestConfig {
        sip_ports: a.sip_ports.clone(),
        heuristic_rtp: a.heuristic_rtp,
        hep_legacy: a.hep_legacy,
        ..IngestConfig::default()
    };
    icfg.calls.id_cache_size = a.id_cache_size;
    let mut pipe = Pipeline::new(icfg, writer.first_ref());

    // Files imported before are skipped: their calls would be stored twice.
    let mut ledger = Ledger::open(&a.data.data)?;
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut refused = Vec::new();
    let mut todo: Vec<(&PathBuf, Option<Fingerprint>)> = Vec::new();
    for f in &a.files {
        let fp = match ledger::fingerprint(f) {
            Ok(fp) => fp,
            Err(e) => {
                failures.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        if a.force {
            todo.push((f, Some(fp)));
            continue;
        }
        if let Some((same, _)) = todo.iter().find(|(_, q)| q.as_ref() == Some(&fp)) {
            eprintln!(
                "siphon: {}: the same capture as {}, given before it; skipped",
                f.display(),
                same.display()
            );
            skipped.push(serde_json::json!({
                "file": f.display().to_string(),
                "same_as": same.display().to_string(),
            }));
            continue;
        }
        match ledger.seen(&fp) {
            Seen::New => todo.push((f, Some(fp))),
            Seen::Same(e) => {
                eprintln!(
                    "siphon: {}: already imported into this store on {} (from {}); skipped (--force imports it again)",
                    f.display(),
                    e.imported,
                    e.file
                );
                skipped.push(serde_json::json!({
                    "file": f.display().to_string(),
                    "imported": e.imported,
                    "from": e.file,
                }));
            }
            Seen::Grown(e) => {
                refused.push(format!(
                    "{}: begins as {}, imported on {} ({} bytes then, {} now): importing it again would store its first calls twice; --force imports it anyway",
                    f.display(),
                    e.file,
                    e.imported,
                    e.fingerprint.size,
                    fp.size
                ));
            }
        }
    }
    let mut imported = Vec::new();

    let total: u64 = todo
        .iter()
        .filter_map(|(_, fp)| fp.as_ref())
        .map(|fp| fp.size)
        .sum();
    let bar = if !a.quiet && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let t0 = Instant::now();
    let mut done_bytes = 0u64;
    for (f, fp) in &mut todo {
        let f: &PathBuf = f;
        let mut reader = match CaptureReader::open(f) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        let mut n = 0u64;
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    pipe.push_frame(&frame, &mut writer);
                    n += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    failures.push(format!(
                        "{}: {e} ({n} frames before the damage were imported)",
                        f.display()
                    ));
                    break;
                }
            }
            if n.is_multiple_of(4096) {
                if let Some(b) = &bar {
                    b.set_position(done_bytes + reader.bytes_consumed());
                    b.set_message(format!("{} calls", pipe.stats().calls));
                }
            }
            if writer.should_flush() {
                writer.flush_refs(&pipe.dirty())?;
                if a.verbose {
                    eprintln!("flushed {} packets", pipe.stats().frames);
                }
            }
        }
        done_bytes += std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        // Read to its end or to damage: either way all it can give is in.
        if let Some(fp) = fp.take() {
            imported.push(Entry {
                fingerprint: fp,
                imported: siphon_store::format_rfc3339_us(now_us()),
                file: std::fs::canonicalize(f)
                    .or_else(|_| std::path::absolute(f))
                    .unwrap_or_else(|_| f.to_path_buf())
                    .display()
                    .to_string(),
            });
        }
    }
    pipe.finish("end of capture", &mut writer);
    let ws = writer.close(Vec::new())?;
    // Only once their packets are durable.
    ledger.record(imported)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let secs = t0.elapsed().as_secs_f64();
    let st = pipe.stats();
    let pps = st.frames as f64 / secs.max(1e-9);
    if a.json {
        let v = serde_json::json!({
            "packets": st.frames,
            "bytes": st.bytes,
            "calls": st.calls,
            "dialogs": st.dialogs,
            "sip_messages": st.sip_messages,
            "rtp_packets": st.rtp_packets,
            "rtcp_packets": st.rtcp_packets,
            "orphan_rtp_packets": st.orphan_rtp_packets,
            "hep_packets": st.hep_packets,
            "unmatched": st.unmatched,
            "not_udp_tcp": st.not_udp_tcp,
            "malformed": st.malformed,
            "seconds": secs,
            "packets_per_second": pps,
            "stored": {
                "sip_block_bytes": ws.sip_block_bytes,
                "media_block_bytes": ws.media_block_bytes,
                "summary_block_bytes": ws.summary_block_bytes,
                "blocks": ws.blocks,
                "flushes": ws.flushes,
            },
            "errors": failures,
            "skipped": skipped,
            "refused": refused,
        });
        crate::out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
    } else {
        eprintln!(
            "imported {} packets ({:.1} MB) in {:.2} s: {:.0} packets/s",
            st.frames,
            st.bytes as f64 / 1e6,
            secs,
            pps
        );
        eprintln!(
            "  calls {}  dialogs {}  SIP messages {}  RTP {}  RTCP {}  HEP {}",
            st.calls, st.dialogs, st.sip_messages, st.rtp_packets, st.rtcp_packets, st.hep_packets
        );
        eprintln!(
            "  not SIP/RTP {}  not UDP/TCP {}  malformed {}",
            st.unmatched,
            st.not_udp_tcp,
            st.malformed_total()
        );
        for (r, n) in &st.malformed {
            eprintln!("    {r}: {n}");
        }
        for f in failures.iter().chain(&refused) {
            eprintln!("siphon: error: {f}");
        }
    }
    Ok(if !failures.is_empty() {
        ExitCode::from(2)
    } else if !refused.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
