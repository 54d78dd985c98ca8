//! `siphon`: import captures into the call store and query it from the shell.

mod flow;
mod import;
mod ledger;
mod output;
mod wav;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use siphon_store::{parse_time_us, CallQuery, Store};

// Call summaries are many small strings made and freed at high rates; mimalloc keeps that
// cheap (about 8 % of the collector's per-message cost against glibc's allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` is set (to
/// 1: keep them). mimalloc asks the kernel for huge pages on the memory it maps; the first
/// touch of each then zeroes 2 MiB at once, much of which a table of open calls or a queue of
/// packets never uses. Measured in pairs on a 2-core virtual machine: `serve` over HEP/UDP at
/// 350,000 and 375,000 messages/s used 2.37–2.55 µs of CPU per message without, against
/// 2.51–2.72 µs with (5 pairs, each lower without; `docs/benchmarks.md`, seventh round).
fn huge_pages_off() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // A kernel without the flag (before 3.15) refuses it: nothing changes then.
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
}

/// Siphon: SIP and RTP capture, call store, ladders, quality and replay.
#[derive(Parser)]
#[command(name = "siphon", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct DataArg {
    /// Store directory.
    #[arg(
        long,
        env = "SIPHON_DATA",
        default_value = "./data",
        value_name = "DIR"
    )]
    data: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the collector: HEP v3 over UDP/TCP (port 9060) and, when configured, TLS
    /// (hep.tls_listen), optional live capture from an interface, the call store, the HTTP API
    /// (port 3001) and Prometheus metrics.
    ///
    /// Settings come from the defaults, then --config FILE, then SIPHON_* environment
    /// variables, then these flags. See docs/config.md. Stops cleanly on SIGTERM/SIGINT.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short, value_name = "FILE", env = "SIPHON_CONFIG")]
        config: Option<PathBuf>,
        /// Store directory (overrides storage.data).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// HEP listen address for UDP and TCP, e.g. 0.0.0.0:9060.
        #[arg(long, value_name = "ADDR:PORT")]
        hep_listen: Option<String>,
        /// HTTP listen address, e.g. 127.0.0.1:3001.
        #[arg(long, value_name = "ADDR:PORT")]
        http_listen: Option<String>,
        /// Capture live from this network interface (libpcap; needs root or CAP_NET_RAW).
        #[arg(long, value_name = "IF")]
        interface: Option<String>,
    },
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Import pcap, pcapng or gzip'd capture files into the store.
    ///
    /// SIP is found on the --sip-port ports and by content on any port; RTP/RTCP through the SDP
    /// of the calls; HEP packets inside the capture are unwrapped. A damaged file is imported
    /// up to the damage, reported, and the exit status is 2. A file the store already holds
    /// (by content, under any name) is skipped; one that grew since it was imported is refused
    /// (exit status 1): see --force.
    Import(import::ImportArgs),
    /// List calls (INVITE dialogs), newest last.
    Calls(CallsArgs),
    /// Show the SIP messages of a call as a ladder diagram (or JSON with --json).
    Flow {
        #[command(flatten)]
        data: DataArg,
        /// The Call-ID.
        call_id: String,
        /// Print the JSON list of messages instead of a ladder.
        #[arg(long)]
        json: bool,
    },
    /// Write a call's SIP and RTP/RTCP packets to a pcap file (original bytes and times).
    Pcap {
        #[command(flatten)]
        data: DataArg,
        /// The Call-ID.
        call_id: String,
        /// Output file.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Show a call's quality report: per direction MOS (ITU-T G.107 E-model), loss, jitter,
    /// RTT, verdict, one-way/no-audio diagnosis, 5-second timeseries.
    Quality {
        #[command(flatten)]
        data: DataArg,
        /// The Call-ID.
        call_id: String,
        /// Print quality.json instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Render a call's audio to WAV: stereo, caller→callee left and callee→caller right (or
    /// --mono), PCMU/PCMA/G.722/L16/Opus; lost packets become silence of the right length.
    Wav {
        #[command(flatten)]
        data: DataArg,
        /// The Call-ID.
        call_id: String,
        /// Output file.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Start: seconds from the call start, or an RFC 3339 time.
        #[arg(long, value_name = "S")]
        start: Option<String>,
        /// End: seconds from the call start, or an RFC 3339 time.
        #[arg(long, value_name = "S")]
        end: Option<String>,
        /// Mix both directions into one channel.
        #[arg(long)]
        mono: bool,
        /// Output sample rate (default: the codec's natural rate).
        #[arg(long, value_name = "HZ")]
        rate: Option<u32>,
    },
    /// Rebuild every index of the store from its segment files.
    Reindex {
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate a configuration file and print the effective settings (secrets hidden). Files
    /// it names (the HEP/TLS certificate, key and client CA) are read and checked too.
    Check {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Args)]
struct CallsArgs {
    #[command(flatten)]
    data: DataArg,
    /// Calls that started at or after T (RFC 3339, a date, or Unix seconds).
    #[arg(long, value_name = "T")]
    from: Option<String>,
    /// Calls that started before T.
    #[arg(long, value_name = "T")]
    to: Option<String>,
    /// Caller (From user or domain) contains S.
    #[arg(long, value_name = "S")]
    caller: Option<String>,
    /// Callee (To user or domain) contains S.
    #[arg(long, value_name = "S")]
    callee: Option<String>,
    /// Final SIP status code.
    #[arg(long, value_name = "N")]
    status: Option<u16>,
    /// Outcome: answered, busy, cancelled, rejected, no-answer, failed.
    #[arg(long)]
    state: Option<String>,
    /// List non-INVITE dialogs (REGISTER, OPTIONS, MESSAGE, ...) instead of calls.
    #[arg(long)]
    dialogs: bool,
    /// MOS (worst direction's average) at least X.
    #[arg(long, value_name = "X")]
    min_mos: Option<f64>,
    /// MOS at most X (e.g. --max-mos 3.5 for poor calls).
    #[arg(long, value_name = "X")]
    max_mos: Option<f64>,
    /// Verdict: Excellent, Good, Fair, Poor or Bad.
    #[arg(long)]
    verdict: Option<String>,
    /// At most N rows (0: all).
    #[arg(long, default_value_t = 100, value_name = "N")]
    limit: usize,
    /// JSON output (an array of call objects).
    #[arg(long)]
    json: bool,
}

fn time_arg(name: &str, v: &Option<String>) -> Result<Option<i64>> {
    match v {
        None => Ok(None),
        Some(s) => match parse_time_us(s) {
            Some(t) => Ok(Some(t)),
            None => bail!("--{name} {s:?}: expected RFC 3339 (2026-11-25T10:00:00Z), a date (2026-11-25) or Unix seconds"),
        },
    }
}

/// Prints to stdout; a closed pipe (`siphon calls | head`) ends the program quietly.
pub(crate) fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("siphon: error: writing output: {e}");
        std::process::exit(1);
    }
}

fn find_call(store: &Store, call_id: &str) -> Result<siphon_store::CallRow> {
    match store.find(call_id)? {
        Some(r) => Ok(r),
        None => bail!(
            "no call with Call-ID {call_id:?} in {}",
            store.root().display()
        ),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Serve {
            config,
            data,
            hep_listen,
            http_listen,
            interface,
        } => {
            let mut cfg = siphon_server::config::Config::load(config.as_deref())?;
            siphon_server::serve::Overrides {
                data,
                hep_listen,
                http_listen,
                interface,
            }
            .apply(&mut cfg)?;
            siphon_server::serve::run(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Config(ConfigCmd::Check { file }) => {
            let loaded = siphon_server::config::Config::load(Some(&file))
                .and_then(|c| c.hep_tls().map(|_| c));
            match loaded {
                Ok(cfg) => {
                    eprintln!("{}: configuration is valid", file.display());
                    out(&cfg.to_toml_redacted());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("siphon: error: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Cmd::Import(a) => import::run(a),
        Cmd::Calls(a) => {
            let store = Store::open(&a.data.data)?;
            let q = CallQuery {
                from_us: time_arg("from", &a.from)?,
                to_us: time_arg("to", &a.to)?,
                caller: a.caller,
                callee: a.callee,
                status: a.status,
                state: a.state,
                include_dialogs: false,
                only_dialogs: a.dialogs,
                min_mos: a.min_mos,
                max_mos: a.max_mos,
                verdict: a.verdict,
                limit: a.limit,
            };
            if let Some(v) = &q.verdict {
                if siphon_store::index::verdict_code(v).is_none() {
                    bail!("--verdict {v:?}: expected Excellent, Good, Fair, Poor or Bad");
                }
            }
            let rows = store.search(&q)?;
            if a.json {
                let v: Vec<_> = rows.iter().map(output::call_json).collect();
                out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
            } else {
                output::print_call_table(&rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Flow {
            data,
            call_id,
            json,
        } => {
            let store = Store::open(&data.data)?;
            let row = find_call(&store, &call_id)?;
            let msgs = flow::messages(&store, &row)?;
            if json {
                let v: Vec<_> = msgs.iter().map(flow::message_json).collect();
                out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
            } else {
                out(&flow::ladder(&row, &msgs));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Pcap {
            data,
            call_id,
            output,
        } => {
            let store = Store::open(&data.data)?;
            let row = find_call(&store, &call_id)?;
            let n = flow::write_pcap(&store, &row, &output)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!("wrote {n} packets to {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Quality {
            data,
            call_id,
            json,
        } => {
            let store = Store::open(&data.data)?;
            let row = find_call(&store, &call_id)?;
            let Some(q) = &row.quality_json else {
                bail!("call {call_id:?} has no quality report yet (it is not complete)");
            };
            let v: serde_json::Value = serde_json::from_slice(q)?;
            if json {
                out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
            } else {
                out(&output::quality_text(&v));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Wav {
            data,
            call_id,
            output,
            start,
            end,
            mono,
            rate,
        } => {
            let store = Store::open(&data.data)?;
            let row = find_call(&store, &call_id)?;
            let offset = |name: &str, v: &Option<String>| -> Result<Option<i64>> {
                let Some(v) = v else { return Ok(None) };
                if let Ok(secs) = v.parse::<f64>() {
                    if (0.0..1e9).contains(&secs) {
                        return Ok(Some(row.start_us + (secs * 1e6).round() as i64));
                    }
                    bail!("--{name} {v:?}: seconds from the call start must be 0 or more");
                }
                match parse_time_us(v) {
                    Some(t) if v.contains('-') => Ok(Some(t)),
                    _ => bail!(
                        "--{name} {v:?}: expected seconds from the call start or an RFC 3339 time"
                    ),
                }
            };
            if let Some(r) = rate {
                if !(1000..=384_000).contains(&r) {
                    bail!("--rate {r}: expected 1000 to 384000 Hz");
                }
            }
            let opts = siphon_media::RenderOptions {
                start_us: offset("start", &start)?,
                end_us: offset("end", &end)?,
                mono,
                rate,
            };
            let rep = wav::write(&store, &row, opts, &output)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "wrote {} ({} Hz, {} channel(s), {:.2} s); {} lost packet(s) filled with silence, {} duplicate(s) dropped",
                output.display(),
                rep.rate,
                rep.channels,
                rep.samples_written as f64 / f64::from(rep.rate.max(1)),
                rep.lost_packets_filled,
                rep.duplicates_dropped
            );
            for d in &rep.dtmf {
                eprintln!(
                    "DTMF {} at {} ({} ms, {})",
                    d.digit,
                    siphon_store::format_rfc3339_us(d.start_us),
                    d.duration_ms,
                    match d.channel {
                        siphon_media::Channel::Left => "caller",
                        siphon_media::Channel::Right => "callee",
                    }
                );
            }
            for w in &rep.warnings {
                eprintln!("warning: {w}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Reindex { data } => {
            let _ = Store::open(&data.data)?;
            let t0 = std::time::Instant::now();
            let rep = siphon_store::reindex(&data.data, &siphon_calls::CallConfig::default())?;
            eprintln!(
                "rebuilt {} bucket(s): {} segment(s), {} blocks, {} records, {} calls/dialogs; {} torn bytes cut, {} damaged blocks skipped; {:.2} s",
                rep.buckets,
                rep.segments,
                rep.blocks,
                rep.records,
                rep.calls,
                rep.torn_bytes,
                rep.damaged_blocks,
                t0.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    huge_pages_off();
    let cli = Cli::parse();
    match run(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("siphon: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
