//! Prometheus metrics of the collector (`GET /metrics`).
//!
//! Hot-path counters live in the pipeline's own statistics; the pipeline thread publishes them
//! here once a second (as deltas), so ingest pays nothing per packet for metrics.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A label set with one label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// Where packets came from: hep_udp, hep_tcp, hep_tls, interface.
    pub source: String,
}

/// Packet type label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// sip, rtp, rtcp, other.
    pub r#type: String,
}

/// Reason label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: String,
}

/// SIP method label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// Request method.
    pub method: String,
}

/// SIP response class label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    /// 1xx .. 6xx.
    pub class: String,
}

/// Call outcome label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// answered, busy, cancelled, rejected, no-answer, failed.
    pub outcome: String,
}

/// Direction label for quality histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// uac (caller→callee) or uas.
    pub direction: String,
}

/// Every metric the collector exports.
pub struct Metrics {
    registry: Registry,
    /// Packets and bytes received, by source.
    pub received_packets: Family<SourceLabel, Counter>,
    /// See `received_packets`.
    pub received_bytes: Family<SourceLabel, Counter>,
    /// Packets by what they turned out to be.
    pub packets_by_type: Family<TypeLabel, Counter>,
    /// Packets dropped before analysis: queue_full, kernel, interface.
    pub drops: Family<ReasonLabel, Counter>,
    /// Seconds listeners waited for room in the pipeline's queue, not reading meanwhile.
    pub queue_wait_seconds: Family<SourceLabel, Counter<f64, AtomicU64>>,
    /// Malformed or refused input by reason.
    pub malformed: Family<ReasonLabel, Counter>,
    /// SIP requests by method and responses by class.
    pub sip_requests: Family<MethodLabel, Counter>,
    /// See `sip_requests`.
    pub sip_responses: Family<ClassLabel, Counter>,
    /// Calls open now.
    pub active_calls: Gauge,
    /// Completed calls by outcome.
    pub calls: Family<OutcomeLabel, Counter>,
    /// Answer-seizure ratio, average call duration (s), network effectiveness ratio, over the
    /// calls completed since start.
    pub asr: Gauge<f64, AtomicU64>,
    /// See `asr`.
    pub acd_seconds: Gauge<f64, AtomicU64>,
    /// See `asr`.
    pub ner: Gauge<f64, AtomicU64>,
    /// MOS, jitter (ms) and loss (%) per direction of completed calls.
    pub mos: Family<DirectionLabel, Histogram>,
    /// See `mos`.
    pub jitter_ms: Family<DirectionLabel, Histogram>,
    /// See `mos`.
    pub loss_pct: Family<DirectionLabel, Histogram>,
    /// Time of a store flush, and bytes written to segments.
    pub store_flush_seconds: Histogram,
    /// See `store_flush_seconds`.
    pub store_bytes: Counter,
    /// The most packets waiting for the pipeline at once over the last second.
    pub queue_peak_packets: Gauge,
    /// HEP connections open now, by source (hep_tcp, hep_tls): the agents sending over TCP.
    pub hep_connections: Family<SourceLabel, Gauge>,
    /// Flushes that failed (a full disk, an I/O error); each is retried.
    pub store_errors: Counter,
    /// Bytes held in memory waiting to be written (grows while flushes fail).
    pub store_backlog_bytes: Gauge,
    /// The last flush error while flushes fail; `None` once one succeeds (for `/health`).
    pub store_error: Mutex<Option<String>>,
    /// Calls and talk time behind ASR/ACD/NER.
    totals: Mutex<CallTotals>,
    /// Read from the system at each encoding.
    process_cpu_seconds: Counter<f64, AtomicU64>,
    /// See `process_cpu_seconds`.
    process_resident_bytes: Gauge,
    /// Held while `process_cpu_seconds` is brought up to date.
    process_read: Mutex<()>,
}

#[derive(Default)]
struct CallTotals {
    attempts: u64,
    answered: u64,
    effective: u64,
    talk_s: f64,
}

fn mos_hist() -> Histogram {
    Histogram::new([1.0, 2.0, 2.5, 3.0, 3.1, 3.5, 3.6, 4.0, 4.03, 4.2, 4.34, 4.5])
}

fn jitter_hist() -> Histogram {
    Histogram::new([1.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0])
}

fn loss_hist() -> Histogram {
    Histogram::new([0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0])
}

impl Metrics {
    /// All metrics, registered under the `siphon_` prefix, and the process's CPU time and
    /// memory under their usual names (`process_cpu_seconds_total`,
    /// `process_resident_memory_bytes`).
    pub fn new() -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("siphon");
        let received_packets = Family::<SourceLabel, Counter>::default();
        let received_bytes = Family::<SourceLabel, Counter>::default();
        let packets_by_type = Family::<TypeLabel, Counter>::default();
        let drops = Family::<ReasonLabel, Counter>::default();
        let queue_wait_seconds = Family::<SourceLabel, Counter<f64, AtomicU64>>::default();
        let malformed = Family::<ReasonLabel, Counter>::default();
        let sip_requests = Family::<MethodLabel, Counter>::default();
        let sip_responses = Family::<ClassLabel, Counter>::default();
        let active_calls = Gauge::default();
        let calls = Family::<OutcomeLabel, Counter>::default();
        let asr = Gauge::<f64, AtomicU64>::default();
        let acd_seconds = Gauge::<f64, AtomicU64>::default();
        let ner = Gauge::<f64, AtomicU64>::default();
        let store_flush_seconds = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]);
        let store_bytes = Counter::default();
        let queue_peak_packets = Gauge::default();
        let hep_connections = Family::<SourceLabel, Gauge>::default();
        let store_errors = Counter::default();
        let store_backlog_bytes = Gauge::default();
        registry.register(
            "received_packets",
            "Packets received, by source",
            received_packets.clone(),
        );
        registry.register(
            "received_bytes",
            "Bytes received, by source",
            received_bytes.clone(),
        );
        registry.register(
            "packets",
            "Packets analysed, by type",
            packets_by_type.clone(),
        );
        registry.register(
            "dropped_packets",
            "Packets dropped before analysis, by reason",
            drops.clone(),
        );
        registry.register(
            "malformed_packets",
            "Malformed or refused input, by reason",
            malformed.clone(),
        );
        registry.register(
            "sip_requests",
            "SIP requests, by method",
            sip_requests.clone(),
        );
        registry.register(
            "sip_responses",
            "SIP responses, by class",
            sip_responses.clone(),
        );
        registry.register(
            "active_calls",
            "Calls and dialogs open now",
            active_calls.clone(),
        );
        registry.register("calls", "Completed calls, by outcome", calls.clone());
        registry.register(
            "asr_ratio",
            "Answer-seizure ratio of completed calls",
            asr.clone(),
        );
        registry.register(
            "acd_seconds",
            "Average duration of answered calls",
            acd_seconds.clone(),
        );
        registry.register(
            "ner_ratio",
            "Network effectiveness ratio of completed calls",
            ner.clone(),
        );
        let mos = Family::<DirectionLabel, Histogram>::new_with_constructor(
            mos_hist as fn() -> Histogram,
        );
        let jitter_ms = Family::<DirectionLabel, Histogram>::new_with_constructor(
            jitter_hist as fn() -> Histogram,
        );
        let loss_pct = Family::<DirectionLabel, Histogram>::new_with_constructor(
            loss_hist as fn() -> Histogram,
        );
        registry.register(
            "call_mos",
            "MOS (E-model) of completed calls, per direction",
            mos.clone(),
        );
        registry.register(
            "call_jitter_ms",
            "Mean jitter of completed calls, per direction",
            jitter_ms.clone(),
        );
        registry.register(
            "call_loss_percent",
            "Packet loss of completed calls, per direction",
            loss_pct.clone(),
        );
        registry.register(
            "store_flush_seconds",
            "Time to write and commit one flush",
            store_flush_seconds.clone(),
        );
        registry.register(
            "store_written_bytes",
            "Bytes written to segment files",
            store_bytes.clone(),
        );
        registry.register(
            "pipeline_queue_peak_packets",
            "Most packets waiting for the pipeline at once over the last second (listeners wait at pipeline.queue_packets)",
            queue_peak_packets.clone(),
        );
        registry.register(
            "hep_connections",
            "HEP connections open now, by source (hep_tcp, hep_tls)",
            hep_connections.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Seconds listeners waited for room in the pipeline queue, not reading meanwhile (TCP holds the sender back; UDP and capture packets wait in kernel buffers)",
            queue_wait_seconds.clone(),
        );
        registry.register(
            "store_errors",
            "Store flushes that failed (full disk, I/O error); each is retried, and what it held stays in memory up to a bound",
            store_errors.clone(),
        );
        registry.register(
            "store_backlog_bytes",
            "Bytes held in memory waiting to be written to the store (grows while flushes fail)",
            store_backlog_bytes.clone(),
        );
        let process_cpu_seconds = Counter::<f64, AtomicU64>::default();
        let process_resident_bytes = Gauge::default();
        root.register(
            "process_cpu_seconds",
            "User and system CPU time of the process, in seconds",
            process_cpu_seconds.clone(),
        );
        root.register(
            "process_resident_memory_bytes",
            "Resident memory of the process (Linux), in bytes",
            process_resident_bytes.clone(),
        );
        Metrics {
            registry: root,
            process_cpu_seconds,
            process_resident_bytes,
            process_read: Mutex::new(()),
            received_packets,
            received_bytes,
            packets_by_type,
            drops,
            queue_wait_seconds,
            malformed,
            sip_requests,
            sip_responses,
            active_calls,
            calls,
            asr,
            acd_seconds,
            ner,
            mos,
            jitter_ms,
            loss_pct,
            store_flush_seconds,
            store_bytes,
            queue_peak_packets,
            hep_connections,
            store_errors,
            store_backlog_bytes,
            store_error: Mutex::new(None),
            totals: Mutex::new(CallTotals::default()),
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.read_process();
        let mut s = String::new();
        if encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }

    /// Brings the process metrics up to date.
    fn read_process(&self) {
        use nix::sys::resource::{getrusage, UsageWho};
        if let Ok(u) = getrusage(UsageWho::RUSAGE_SELF) {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            let total = secs(u.user_time()) + secs(u.system_time());
            // A counter only goes up: add what was used since the last reading, one scrape
            // at a time (two at once would both add the same time).
            let _one = self.process_read.lock();
            let seen = self.process_cpu_seconds.get();
            if total > seen {
                self.process_cpu_seconds.inc_by(total - seen);
            }
        }
        if let Some(kib) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|st| {
                st.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            })
        {
            self.process_resident_bytes.set(kib.saturating_mul(1024));
        }
    }

    /// Accounts a completed call: outcome, ASR/ACD/NER, quality histograms.
    pub fn call_completed(&self, c: &siphon_calls::CallSummary) {
        if !c.is_call() {
            return;
        }
        let outcome = c.state.as_str().to_string();
        self.calls.get_or_create(&OutcomeLabel { outcome }).inc();
        if let Ok(mut t) = self.totals.lock() {
            t.attempts += 1;
            if c.answer_us.is_some() {
                t.answered += 1;
                t.talk_s += c.talk_s();
            }
            // NER counts every attempt the network completed: answered, or ended by the user
            // (busy, no answer, rejected, cancelled); not server or network failures.
            if !matches!(c.state, siphon_calls::CallState::Failed) {
                t.effective += 1;
            }
            let a = t.attempts as f64;
            self.asr.set(t.answered as f64 / a);
            self.ner.set(t.effective as f64 / a);
            if t.answered > 0 {
                self.acd_seconds.set(t.talk_s / t.answered as f64);
            }
        }
        if let Some(q) = &c.quality {
            for (label, d) in [("uac", &q.directions.uac), ("uas", &q.directions.uas)] {
                if let Some(d) = d {
                    let l = DirectionLabel {
                        direction: label.to_string(),
                    };
                    self.mos.get_or_create(&l).observe(d.emodel.mos);
                    self.jitter_ms.get_or_create(&l).observe(d.jitter_mean_ms);
                    self.loss_pct.get_or_create(&l).observe(d.loss_pct);
                }
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the `siphon_*` and `process_*` series a PromQL text refers to, without
    /// the suffixes a counter or histogram adds.
    fn series(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = ["siphon_", "process_"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min()
        {
            let tail = rest.get(i..).unwrap_or_default();
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let mut name = tail.get(..end).unwrap_or_default();
            for suffix in ["_total", "_bucket", "_sum", "_count"] {
                name = name.strip_suffix(suffix).unwrap_or(name);
            }
            out.push(name.to_string());
            rest = tail.get(end..).unwrap_or_default();
        }
        out
    }

    #[test]
    fn every_series_the_grafana_dashboard_queries_is_exported() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../../etc/grafana/siphon-dashboard.json"))
                .unwrap();
        // A family is exported once it has a series: give each one.
        let m = Metrics::new();
        let source = SourceLabel {
            source: "hep_udp".into(),
        };
        m.received_packets.get_or_create(&source).inc();
        m.received_bytes.get_or_create(&source).inc();
        m.queue_wait_seconds.get_or_create(&source).inc_by(0.5);
        m.packets_by_type
            .get_or_create(&TypeLabel {
                r#type: "sip".into(),
            })
            .inc();
        let reason = ReasonLabel {
            reason: "queue_full".into(),
        };
        m.drops.get_or_create(&reason).inc();
        m.malformed.get_or_create(&reason).inc();
        m.sip_requests
            .get_or_create(&MethodLabel {
                method: "INVITE".into(),
            })
            .inc();
        m.sip_responses
            .get_or_create(&ClassLabel {
                class: "2xx".into(),
            })
            .inc();
        m.calls
            .get_or_create(&OutcomeLabel {
                outcome: "answered".into(),
            })
            .inc();
        let dir = DirectionLabel {
            direction: "uac".into(),
        };
        m.mos.get_or_create(&dir).observe(4.1);
        m.jitter_ms.get_or_create(&dir).observe(3.0);
        m.loss_pct.get_or_create(&dir).observe(0.0);
        let exported = m.encode();
        let mut queried = Vec::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                queried.extend(series(t["expr"].as_str().unwrap_or_default()));
            }
        }
        assert!(queried.len() >= 15, "{queried:?}");
        for name in &queried {
            assert!(
                exported.contains(&format!("# TYPE {name} ")),
                "the dashboard queries {name}, which /metrics does not export:\n{exported}"
            );
        }
        assert!(queried
            .iter()
            .any(|n| n == "siphon_pipeline_queue_peak_packets"));
        assert!(queried.iter().any(|n| n == "process_cpu_seconds"));
    }

    #[test]
    fn the_process_cpu_time_and_memory_are_read_from_the_system() {
        let m = Metrics::new();
        // Some CPU time to account.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let text = m.encode();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
        };
        assert!(value("process_cpu_seconds_total") > 0.0);
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
    }
}
