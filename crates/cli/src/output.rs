//! Call objects (design §9 JSON contract) and the call table.

use serde_json::Value;
use siphon_store::{format_rfc3339_us, CallRow};

pub use siphon_server::api::call_json;

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The human table of `siphon calls`.
pub fn print_call_table(rows: &[CallRow]) {
    let mut t = format!(
        "{:<27} {:<36} {:<20} {:<20} {:>6} {:<10} {:>9} {:>5} {:>7} {:>4} {:<9}\n",
        "START (UTC)",
        "CALL-ID",
        "FROM",
        "TO",
        "STATUS",
        "STATE",
        "DURATION",
        "MSGS",
        "RTP",
        "MOS",
        "VERDICT"
    );
    for r in rows {
        let from = if r.caller.is_empty() {
            &r.caller_domain
        } else {
            &r.caller
        };
        let to = if r.callee.is_empty() {
            &r.callee_domain
        } else {
            &r.callee
        };
        t.push_str(&format!(
            "{:<27} {:<36} {:<20} {:<20} {:>6} {:<10} {:>8.1}s {:>5} {:>7} {:>4} {:<9}\n",
            format_rfc3339_us(r.start_us),
            cut(&r.call_id_str(), 36),
            cut(from, 20),
            cut(to, 20),
            r.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            r.state,
            (r.end_us - r.start_us) as f64 / 1e6,
            r.messages,
            r.rtp_packets,
            r.mos_avg
                .map(|m| format!("{m:.2}"))
                .unwrap_or_else(|| "-".into()),
            if r.verdict.is_empty() {
                "-"
            } else {
                &r.verdict
            }
        ));
    }
    crate::out(&t);
    eprintln!("{} row(s)", rows.len());
}

fn num(v: &Value, unit: &str) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.2}{unit}"),
        None => "-".into(),
    }
}

/// A short human reading of a quality report.
pub fn quality_text(q: &Value) -> String {
    let mut t = format!(
        "Call-ID {}\nverdict {}  audio {}  degraded leg {}\n",
        q["call_id"].as_str().unwrap_or(""),
        q["verdict"].as_str().unwrap_or("-"),
        q["audio_status"].as_str().unwrap_or("-"),
        q["degraded_leg"].as_str().unwrap_or("none"),
    );
    if let Some(d) = q["diagnostic"].as_object() {
        t.push_str(&format!(
            "probable cause: {}\nrecommendation: {}\n",
            d.get("probable_cause")
                .and_then(|v| v.as_str())
                .unwrap_or(""),
            d.get("recommendation")
                .and_then(|v| v.as_str())
                .unwrap_or("")
        ));
    }
    for dir in ["uac", "uas"] {
        let d = &q["directions"][dir];
        let label = if dir == "uac" {
            "caller→callee (uac)"
        } else {
            "callee→caller (uas)"
        };
        if d.is_null() {
            t.push_str(&format!("{label}: no media\n"));
            continue;
        }
        let e = &d["emodel"];
        t.push_str(&format!(
            "{label}: codec {}  packets {}  lost {} ({})  jitter mean {} max {}  RTT {}  R {}  MOS {} (min {}, p5 {})\n",
            e["codec"].as_str().unwrap_or("?"),
            d["packets"],
            d["lost"],
            num(&d["loss_pct"], " %"),
            num(&d["jitter_mean_ms"], " ms"),
            num(&d["jitter_max_ms"], " ms"),
            num(&e["rtt_ms"], " ms"),
            num(&e["r_factor"], ""),
            num(&e["mos"], ""),
            num(&d["mos"]["min"], ""),
            num(&d["mos"]["p5"], ""),
        ));
    }
    if let Some(n) = q["notes"].as_array() {
        for x in n {
            t.push_str(&format!("note: {}\n", x.as_str().unwrap_or("")));
        }
    }
    t
}
