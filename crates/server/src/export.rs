//! What a stored call gives back: its SIP messages, a pcap of all its packets, its audio as
//! WAV. Shared by the command line and the HTTP API.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::net::SocketAddr;

use siphon_media::{render_call, CallPacket, RenderOptions, RenderReport};
use siphon_sip::Message;
use siphon_store::{CallRow, Store, StoreError, StoredRecord};
use siphon_wire::decode::{Decoder, Transport};
use siphon_wire::link::LinkType;
use siphon_wire::write::{synth_tcp_frame, synth_udp_frame, PcapWriter};

/// One SIP message of a call.
#[derive(Debug, Clone)]
pub struct FlowMessage {
    /// Capture time, µs since the epoch.
    pub ts_us: i64,
    /// Sender and receiver.
    pub src: SocketAddr,
    /// See `src`.
    pub dst: SocketAddr,
    /// "UDP" or "TCP".
    pub transport: &'static str,
    /// Request method, or `None` for responses.
    pub method: Option<String>,
    /// Response status and reason.
    pub status: Option<u16>,
    /// See `status`.
    pub reason: Option<String>,
    /// "1 INVITE".
    pub cseq: String,
    /// Call-ID header value.
    pub call_id: String,
    /// True when the message carries SDP.
    pub has_sdp: bool,
    /// The message bytes.
    pub raw: Vec<u8>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The call's SIP messages by capture time (stable: messages with the same time keep their
/// arrival order), optionally only those within [from, to] (µs). HEP senders stamp each
/// message when they saw it, and their packets may arrive out of that order.
pub fn messages(
    store: &Store,
    row: &CallRow,
    from_us: Option<i64>,
    to_us: Option<i64>,
) -> Result<Vec<FlowMessage>, StoreError> {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for r in store.records(row)? {
        if r.kind != siphon_ingest::Kind::Sip as u8
            || from_us.is_some_and(|f| r.ts_us < f)
            || to_us.is_some_and(|t| r.ts_us > t)
        {
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
    out.sort_by_key(|m| m.ts_us);
    Ok(out)
}

/// `{ts, src, dst, transport, method | status (+reason), cseq, call_id, raw}` (design §9).
pub fn message_json(m: &FlowMessage) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ts": siphon_store::format_rfc3339_us(m.ts_us),
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
                o.insert("method".into(), serde_json::json!(meth));
            }
            (None, Some(s)) => {
                o.insert("status".into(), serde_json::json!(s));
                o.insert("reason".into(), serde_json::json!(m.reason));
            }
            _ => {}
        }
    }
    v
}

fn sorted_records(store: &Store, row: &CallRow) -> Result<Vec<StoredRecord>, StoreError> {
    let mut recs = store.records(row)?;
    recs.sort_by_key(|r| r.ts_us);
    Ok(recs)
}

/// Writes the call's packets, in capture-time order, as pcap; returns how many. Original
/// frames are written as captured; when link types are mixed or SIP came over TCP (stored one
/// message per frame), frames are rebuilt as Ethernet/IP with running TCP sequence numbers.
pub fn write_pcap<W: Write>(store: &Store, row: &CallRow, out: W) -> Result<usize, ExportError> {
    let recs = sorted_records(store, row)?;
    let first_link = recs.first().map(|r| r.link).unwrap_or(LinkType::ETHERNET);
    let mut dec = Decoder::new();
    let has_tcp = recs.iter().any(|r| {
        matches!(dec.decode_raw(r.ts_us, r.link, &r.data), Ok(Some(p)) if p.transport == Transport::Tcp)
    });
    let mixed = has_tcp || recs.iter().any(|r| r.link != first_link);
    let link = if mixed {
        LinkType::ETHERNET
    } else {
        first_link
    };
    let mut w = PcapWriter::new(out, link)?;
    let mut tcp_seq: HashMap<(SocketAddr, SocketAddr), u32> = HashMap::new();
    let mut n = 0;
    for r in &recs {
        let frame = match dec.decode_raw(r.ts_us, r.link, &r.data) {
            Ok(Some(p)) if p.transport == Transport::Tcp => {
                let seq = tcp_seq.entry((p.src, p.dst)).or_insert(1);
                let f = synth_tcp_frame(p.src, p.dst, *seq, p.payload);
                *seq = seq.wrapping_add(p.payload.len() as u32);
                f
            }
            Ok(Some(p)) if mixed => synth_udp_frame(p.src, p.dst, p.payload),
            _ if mixed => continue,
            _ => r.data.clone(),
        };
        w.write_frame(r.ts_us, &frame, frame.len() as u32)?;
        n += 1;
    }
    let mut f = w.into_inner()?;
    f.flush()?;
    Ok(n)
}

/// Renders the call's audio as WAV into `out`.
pub fn write_wav<W: Write + Seek>(
    store: &Store,
    row: &CallRow,
    opts: RenderOptions,
    out: W,
) -> Result<RenderReport, ExportError> {
    let recs = sorted_records(store, row)?;
    let packets: Vec<CallPacket<'_>> = recs
        .iter()
        .map(|r| CallPacket {
            ts_us: r.ts_us,
            is_sip: r.kind == siphon_ingest::Kind::Sip as u8,
            link: r.link,
            frame: &r.data,
        })
        .collect();
    Ok(render_call(
        &packets,
        row.start_us,
        &row.from_tag,
        opts,
        out,
    )?)
}

/// Export failures.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}
