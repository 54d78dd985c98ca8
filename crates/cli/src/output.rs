//! Call objects (design §9 JSON contract) and the call table.

use serde_json::{json, Value};
use siphon_store::{format_rfc3339_us, CallRow, StoredStream};

fn opt(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_string())
    }
}

/// A stream object: `{src, dst, ssrc, payload_type, codec, clock_rate, packets, lost, duplicates,
/// reordered, max_delta_ms, jitter_mean_ms, jitter_max_ms, first, last, direction}`.
pub fn stream_json(s: &StoredStream) -> Value {
    json!({
        "src": s.src.to_string(),
        "dst": s.dst.to_string(),
        "ssrc": format!("0x{:08X}", s.ssrc),
        "payload_type": s.payload_type,
        "codec": s.codec,
        "clock_rate": s.clock_rate,
        "packets": s.packets,
        "lost": s.lost,
        "duplicates": s.duplicates,
        "reordered": s.reordered,
        "max_delta_ms": s.max_delta_us as f64 / 1000.0,
        "jitter_mean_ms": s.jitter_mean_us as f64 / 1000.0,
        "jitter_max_ms": s.jitter_max_us as f64 / 1000.0,
        "first": format_rfc3339_us(s.first_us),
        "last": format_rfc3339_us(s.last_us),
        "direction": s.direction.as_str(),
    })
}

/// A call object.
pub fn call_json(r: &CallRow) -> Value {
    json!({
        "call_id": r.call_id_str(),
        "method": r.method,
        "start": format_rfc3339_us(r.start_us),
        "answer": r.answer_us.map(format_rfc3339_us),
        "end": format_rfc3339_us(r.end_us),
        "duration_s": (r.end_us - r.start_us) as f64 / 1e6,
        "caller": r.caller,
        "caller_domain": r.caller_domain,
        "callee": r.callee,
        "callee_domain": r.callee_domain,
        "ruri": opt(&r.ruri),
        "caller_ua": opt(&r.caller_ua),
        "callee_ua": opt(&r.callee_ua),
        "caller_addr": opt(&r.caller_addr),
        "callee_addr": opt(&r.callee_addr),
        "status_code": r.status,
        "reason": opt(&r.reason),
        "q850_cause": r.q850,
        "state": r.state,
        "phase": r.phase,
        "hangup": opt(&r.hangup),
        "messages": r.messages,
        "rtp_packets": r.rtp_packets,
        "rtcp_packets": r.rtcp_packets,
        "x_cid": opt(&r.x_cid),
        "session_id": opt(&r.session_id),
        "icid": opt(&r.icid),
        "close_reason": opt(&r.close_reason),
        "streams": r.streams.iter().map(stream_json).collect::<Vec<_>>(),
        "mos": r.mos_avg,
        "mos_min": r.mos_min,
        "verdict": opt(&r.verdict),
    })
}

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
