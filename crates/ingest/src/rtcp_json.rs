//! RTCP reports carried as JSON in HEP (proto type 5), as rtpengine, Kamailio and heplify send
//! them: `{"type":200|201, "ssrc":N, "report_blocks":[{"source_ssrc", "fraction_lost",
//! "packets_lost", "highest_seq_no", "ia_jitter", "lsr", "dlsr"}], "sender_information":
//! {"ntp_timestamp_sec", "ntp_timestamp_usec", "packets", "octets"}}`. Lenient: missing fields
//! are zero, unknown fields ignored, anything unreadable gives no report.

use serde_json::Value;
use siphon_rtp::{ntp_mid, ReportBlock, RtcpReport};

fn u(v: &Value, k: &str) -> u64 {
    match &v[k] {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
            .unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn i(v: &Value, k: &str) -> i64 {
    match &v[k] {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Decodes one HEP RTCP JSON payload.
pub fn parse(payload: &[u8]) -> Vec<RtcpReport> {
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return Vec::new();
    };
    let blocks: Vec<ReportBlock> = v["report_blocks"]
        .as_array()
        .map(|a| {
            a.iter()
                .take(31)
                .map(|b| ReportBlock {
                    ssrc: u(b, "source_ssrc") as u32,
                    fraction_lost: u(b, "fraction_lost").min(255) as u8,
                    cumulative_lost: i(b, "packets_lost").clamp(-(1 << 23), (1 << 23) - 1) as i32,
                    ext_high_seq: u(b, "highest_seq_no") as u32,
                    jitter: u(b, "ia_jitter") as u32,
                    lsr: u(b, "lsr") as u32,
                    dlsr: u(b, "dlsr") as u32,
                })
                .collect()
        })
        .unwrap_or_default();
    let ssrc = u(&v, "ssrc") as u32;
    match u(&v, "type") {
        200 => {
            let si = &v["sender_information"];
            vec![RtcpReport::Sender {
                ssrc,
                ntp_mid: ntp_mid(u(si, "ntp_timestamp_sec"), u(si, "ntp_timestamp_usec")),
                packets: u(si, "packets") as u32,
                octets: u(si, "octets") as u32,
                blocks,
            }]
        }
        201 => vec![RtcpReport::Receiver { ssrc, blocks }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpengine_style_receiver_report_decodes() {
        let j = br#"{"type":201,"ssrc":305419896,"report_count":1,"report_blocks":[{"source_ssrc":3739283087,"highest_seq_no":59368,"fraction_lost":5,"ia_jitter":40,"packets_lost":3,"lsr":"1234","dlsr":65536}]}"#;
        let r = parse(j);
        match &r[0] {
            RtcpReport::Receiver { ssrc, blocks } => {
                assert_eq!(*ssrc, 305_419_896);
                assert_eq!(blocks[0].ssrc, 0xDEE0_EE8F);
                assert_eq!(blocks[0].fraction_lost, 5);
                assert_eq!(blocks[0].cumulative_lost, 3);
                assert_eq!((blocks[0].lsr, blocks[0].dlsr), (1234, 65536));
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn sender_report_ntp_middle_bits() {
        let j = br#"{"type":200,"ssrc":1,"sender_information":{"ntp_timestamp_sec":3900000000,"ntp_timestamp_usec":500000,"packets":10,"octets":1600},"report_blocks":[]}"#;
        match &parse(j)[0] {
            RtcpReport::Sender {
                ntp_mid, packets, ..
            } => {
                assert_eq!(
                    *ntp_mid,
                    ((3_900_000_000u64 & 0xffff) << 16 | 0x8000) as u32
                );
                assert_eq!(*packets, 10);
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(parse(b"not json").is_empty());
        assert!(parse(br#"{"type":"x"}"#).is_empty());
        assert!(parse(br#"[1,2,3]"#).is_empty());
    }
}
