//! Call and stream objects of the JSON contract (design §9), shared by the HTTP API and the
//! command line's `--json` output. Message objects are [`crate::export::message_json`].

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
        "payload_types": (0u8..128).filter(|p| s.payload_types & (1u128 << p) != 0).collect::<Vec<u8>>(),
        "markers": s.markers,
        "payload_type_changes": s.payload_type_changes,
        "rtcp": s.rtcp.map(|r| json!({
            "reports": r.reports,
            "fraction_lost": f64::from(r.fraction_lost) / 256.0,
            "cumulative_lost": r.cumulative_lost,
            "jitter_ms": r.jitter_us as f64 / 1000.0,
            "rtt_ms": (r.rtt_samples > 0).then(|| json!({
                "mean": r.rtt_mean_us as f64 / 1000.0,
                "min": r.rtt_min_us as f64 / 1000.0,
                "max": r.rtt_max_us as f64 / 1000.0,
                "samples": r.rtt_samples,
            })),
        })),
    })
}

/// A call object (`docs/json.md`).
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

#[cfg(test)]
mod tests {
    use super::*;
    use siphon_calls::StreamDirection;

    #[test]
    fn stream_ssrc_is_hex_and_times_are_rfc3339() {
        let s = StoredStream {
            src: "127.0.0.1:20000".parse().unwrap(),
            dst: "[2001:db8::1]:40000".parse().unwrap(),
            ssrc: 0xDEE0EE8F,
            payload_type: 8,
            codec: "PCMA".into(),
            clock_rate: 8000,
            direction: StreamDirection::Uac,
            packets: 236,
            lost: 0,
            duplicates: 0,
            reordered: 0,
            max_delta_us: 34_835,
            jitter_mean_us: 362,
            jitter_max_us: 827,
            first_us: 1_795_335_337_621_789,
            last_us: 1_795_335_344_671_502,
            rtcp: None,
            payload_types: 1 << 8,
            markers: 0,
            payload_type_changes: 0,
        };
        let v = stream_json(&s);
        assert_eq!(v["payload_types"], serde_json::json!([8]));
        assert!(v["rtcp"].is_null());
        assert_eq!(v["ssrc"], "0xDEE0EE8F");
        assert_eq!(v["dst"], "[2001:db8::1]:40000");
        assert_eq!(v["max_delta_ms"], 34.835);
        assert_eq!(v["first"], "2026-11-22T08:15:37.621789Z");
        assert_eq!(v["direction"], "uac");
    }
}
