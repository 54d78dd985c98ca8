//! SIP message lists, ladder diagrams and pcap export of one call.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};
use siphon_sip::Message;
use siphon_store::{format_rfc3339_us, CallRow, Store};
use siphon_wire::decode::{Decoder, Transport};
use siphon_wire::link::LinkType;
use siphon_wire::write::{synth_tcp_frame, synth_udp_frame, PcapWriter};

/// One SIP message of a call.
pub struct FlowMessage {
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: &'static str,
    pub method: Option<String>,
    pub status: Option<u16>,
    pub reason: Option<String>,
    pub cseq: String,
    pub call_id: String,
    pub has_sdp: bool,
    pub raw: Vec<u8>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The call's SIP messages in capture order.
pub fn messages(store: &Store, row: &CallRow) -> Result<Vec<FlowMessage>> {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for r in store.records(row)? {
        if r.kind != siphon_ingest::Kind::Sip as u8 {
            continue;
        }
        let Ok(Some(p)) = dec.decode_raw(r.ts_us, r.link, &r.data) else {
            continue;
        };
        let Ok(m) = Message::parse(p.payload) else {
            continue;
        };
        out.push(FlowMessage {
            ts_us: r.ts_us,
            src: p.src,
            dst: p.dst,
            transport: match p.transport {
                Transport::Udp => "UDP",
                Transport::Tcp => "TCP",
            },
            method: m.method().map(lossy),
            status: m.status(),
            reason: m.reason_phrase().map(lossy),
            cseq: m
                .cseq()
                .map(|c| format!("{} {}", c.seq, lossy(c.method)))
                .unwrap_or_default(),
            call_id: m.call_id().map(lossy).unwrap_or_default(),
            has_sdp: m.sdp_bodies().next().is_some(),
            raw: p.payload.to_vec(),
        });
    }
    Ok(out)
}

/// `{ts, src, dst, transport, method | status, cseq, call_id, raw}`.
pub fn message_json(m: &FlowMessage) -> Value {
    let mut v = json!({
        "ts": format_rfc3339_us(m.ts_us),
        "src": m.src.to_string(),
        "dst": m.dst.to_string(),
        "transport": m.transport,
        "cseq": m.cseq,
        "call_id": m.call_id,
        "raw": lossy(&m.raw),
    });
    if let Some(o) = v.as_object_mut() {
        match (&m.method, m.status) {
            (Some(meth), _) => {
                o.insert("method".into(), json!(meth));
            }
            (None, Some(s)) => {
                o.insert("status".into(), json!(s));
                o.insert("reason".into(), json!(m.reason));
            }
            _ => {}
        }
    }
    v
}

const COL: usize = 26;

/// A text ladder: one column per endpoint, an arrow per message with time and delta.
pub fn ladder(row: &CallRow, msgs: &[FlowMessage]) -> String {
    let mut cols: Vec<SocketAddr> = Vec::new();
    for m in msgs {
        for a in [m.src, m.dst] {
            if !cols.contains(&a) {
                cols.push(a);
            }
        }
    }
    let mut out = String::new();
    out.push_str(&format!(
        "Call-ID {}  {} → {}  state {}  {} messages\n\n",
        row.call_id_str(),
        row.caller,
        row.callee,
        row.state,
        msgs.len()
    ));
    let lead = 32;
    let mut head = " ".repeat(lead);
    for c in &cols {
        let s = c.to_string();
        let s: String = s.chars().take(COL - 1).collect();
        head.push_str(&format!("{s:^COL$}"));
    }
    out.push_str(head.trim_end());
    out.push('\n');
    let width = COL * cols.len();
    let center = |i: usize| i * COL + COL / 2;
    let mut prev: Option<i64> = None;
    for m in msgs {
        let mut line: Vec<char> = vec![' '; width];
        for i in 0..cols.len() {
            if let Some(c) = line.get_mut(center(i)) {
                *c = '│';
            }
        }
        let a = cols.iter().position(|c| *c == m.src).unwrap_or(0);
        let b = cols.iter().position(|c| *c == m.dst).unwrap_or(0);
        let (l, r) = (center(a.min(b)), center(a.max(b)));
        for c in line.iter_mut().take(r).skip(l + 1) {
            *c = '─';
        }
        if a < b {
            if let Some(c) = line.get_mut(r.saturating_sub(1)) {
                *c = '►';
            }
        } else if a > b {
            if let Some(c) = line.get_mut(l + 1) {
                *c = '◄';
            }
        }
        let mut label = match (&m.method, m.status) {
            (Some(meth), _) => meth.clone(),
            (None, Some(s)) => format!("{s} {}", m.reason.clone().unwrap_or_default()),
            _ => "?".into(),
        };
        if m.has_sdp {
            label.push_str(" (SDP)");
        }
        let span = r.saturating_sub(l).saturating_sub(3);
        let label: Vec<char> = label.chars().take(span).collect();
        let start = l + 2 + (span.saturating_sub(label.len())) / 2;
        for (i, ch) in label.iter().enumerate() {
            if let Some(c) = line.get_mut(start + i) {
                *c = *ch;
            }
        }
        let t = format_rfc3339_us(m.ts_us);
        let time = t.get(11..26).unwrap_or(&t);
        let delta = match prev {
            Some(p) => format!("+{:.6}", (m.ts_us - p) as f64 / 1e6),
            None => String::new(),
        };
        prev = Some(m.ts_us);
        let body: String = line.into_iter().collect();
        out.push_str(&format!("{time:<16}{delta:>14}  {}\n", body.trim_end()));
    }
    out
}

/// Writes the call's packets, in capture-time order, to a pcap file; returns how many.
pub fn write_pcap(store: &Store, row: &CallRow, path: &Path) -> Result<usize> {
    let mut recs = store.records(row)?;
    recs.sort_by_key(|r| r.ts_us);
    let first_link = recs.first().map(|r| r.link).unwrap_or(LinkType::ETHERNET);
    let mixed = recs.iter().any(|r| r.link != first_link);
    let mut dec = Decoder::new();
    let has_tcp = recs.iter().any(|r| {
        matches!(dec.decode_raw(r.ts_us, r.link, &r.data), Ok(Some(p)) if p.transport == Transport::Tcp)
    });
    let mixed = mixed || has_tcp;
    let link = if mixed {
        LinkType::ETHERNET
    } else {
        first_link
    };
    let tmp = path.with_extension("pcap.part");
    let f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let mut w = PcapWriter::new(f, link)?;
    let mut dec = Decoder::new();
    // SIP over TCP is stored one message per frame; give each flow running sequence numbers
    // so that readers reassemble it as the stream it was.
    let mut tcp_seq: std::collections::HashMap<(SocketAddr, SocketAddr), u32> =
        std::collections::HashMap::new();
    for r in &recs {
        let decoded = dec.decode_raw(r.ts_us, r.link, &r.data);
        let frame = match decoded {
            Ok(Some(p)) if p.transport == Transport::Tcp => {
                let seq = tcp_seq.entry((p.src, p.dst)).or_insert(1);
                let f = synth_tcp_frame(p.src, p.dst, *seq, p.payload);
                *seq = seq.wrapping_add(p.payload.len() as u32);
                if link != LinkType::ETHERNET {
                    continue;
                }
                f
            }
            Ok(Some(p)) if mixed => synth_udp_frame(p.src, p.dst, p.payload),
            _ if mixed => continue,
            _ => r.data.clone(),
        };
        w.write_frame(r.ts_us, &frame, frame.len() as u32)?;
    }
    let mut f = w.into_inner()?;
    std::io::Write::flush(&mut f)?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    Ok(recs.len())
}
