//! What a stored call gives back: its SIP messages, a pcap of all its packets, its audio as
//! WAV. Shared by the command line and the HTTP API.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::net::SocketAddr;

use siphon_media::{CallPacket, CallRenderer, RenderOptions, RenderReport};
use siphon_sip::Message;
use siphon_store::{CallRow, Store, StoreError};
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
    for r in store.sip_records(row)? {
        if from_us.is_some_and(|f| r.ts_us < f) || to_us.is_some_and(|t| r.ts_us > t) {
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

/// Writes the call's packets, in capture-time order, as pcap; returns how many. Original
/// frames are written as captured; when link types are mixed, for packets stored without a
/// frame (HEP) or when SIP came over TCP (stored one message per frame), frames are rebuilt
/// as Ethernet/IP (valid checksums) with running TCP sequence numbers.
/// Packets are read a block at a time, twice (to choose the link type, then to write).
pub fn write_pcap<W: Write>(store: &Store, row: &CallRow, out: W) -> Result<usize, ExportError> {
    let plan = plan_pcap(store, row)?;
    write_pcap_planned(store, row, &plan, out)
}

/// The pcap's link type, chosen by reading every packet of the call once.
#[derive(Debug, Clone, Copy)]
pub struct PcapPlan {
    link: LinkType,
    mixed: bool,
}

/// The first pass of [`write_pcap`]. A damaged store is reported here, before any output (an
/// HTTP response cannot change its status once it streams).
pub fn plan_pcap(store: &Store, row: &CallRow) -> Result<PcapPlan, StoreError> {
    let mut dec = Decoder::new();
    let mut first = None;
    let mut mixed = false;
    for r in store.packets(row, true)? {
        let r = r?;
        let link = *first.get_or_insert(r.link);
        // Frames are rebuilt when link types differ, for TCP (sequence numbers), and for
        // records stored without a frame (`LinkType::ADDRESSED`, from HEP).
        mixed = mixed
            || r.link != link
            || r.link == LinkType::ADDRESSED
            || matches!(dec.decode_raw(r.ts_us, r.link, &r.data), Ok(Some(p)) if p.transport == Transport::Tcp);
    }
    let first = first.unwrap_or(LinkType::ETHERNET);
    Ok(PcapPlan {
        link: if mixed { LinkType::ETHERNET } else { first },
        mixed,
    })
}

/// The second pass of [`write_pcap`]: writes the pcap; returns how many packets it wrote.
pub fn write_pcap_planned<W: Write>(
    store: &Store,
    row: &CallRow,
    plan: &PcapPlan,
    out: W,
) -> Result<usize, ExportError> {
    let mut dec = Decoder::new();
    let mut w = PcapWriter::new(out, plan.link)?;
    let mut tcp_seq: HashMap<(SocketAddr, SocketAddr), u32> = HashMap::new();
    let mut n = 0;
    for r in store.packets(row, true)? {
        let r = r?;
        if !plan.mixed {
            w.write_frame(r.ts_us, &r.data, r.data.len() as u32)?;
            n += 1;
            continue;
        }
        let frame = match dec.decode_raw(r.ts_us, r.link, &r.data) {
            Ok(Some(p)) if p.transport == Transport::Tcp => {
                let seq = tcp_seq.entry((p.src, p.dst)).or_insert(1);
                let f = synth_tcp_frame(p.src, p.dst, *seq, p.payload);
                *seq = seq.wrapping_add(p.payload.len() as u32);
                f
            }
            Ok(Some(p)) => synth_udp_frame(p.src, p.dst, p.payload),
            _ => continue,
        };
        w.write_frame(r.ts_us, &frame, frame.len() as u32)?;
        n += 1;
    }
    let mut f = w.into_inner()?;
    f.flush()?;
    Ok(n)
}

/// A new file in the temporary directory (`TMPDIR`, else `/tmp`), readable by this process
/// only and already unlinked: it goes away with its handle, even if the process is killed.
pub fn scratch_file() -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("siphon-export-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            // Left by an earlier process with the same id: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Renders the call's audio as WAV into `out`: its SIP messages first (for the SDP), then its
/// media a block at a time.
pub fn write_wav<W: Write + Seek>(
    store: &Store,
    row: &CallRow,
    opts: RenderOptions,
    out: W,
) -> Result<RenderReport, ExportError> {
    let mut sip = store.sip_records(row)?;
    sip.sort_by_key(|r| r.ts_us);
    let sip: Vec<CallPacket<'_>> = sip
        .iter()
        .map(|r| CallPacket {
            ts_us: r.ts_us,
            is_sip: true,
            link: r.link,
            frame: &r.data,
        })
        .collect();
    let mut render = CallRenderer::new(&sip, row.start_us, &row.from_tag, opts, out);
    for r in store.packets(row, false)? {
        let r = r?;
        render.push_media(&CallPacket {
            ts_us: r.ts_us,
            is_sip: false,
            link: r.link,
            frame: &r.data,
        });
    }
    Ok(render.finish()?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    #[test]
    fn scratch_files_are_private_unlinked_and_distinct() {
        use std::os::unix::fs::MetadataExt;
        let mut a = scratch_file().unwrap();
        let mut b = scratch_file().unwrap();
        a.write_all(b"first").unwrap();
        b.write_all(b"second").unwrap();
        let mut back = String::new();
        a.seek(SeekFrom::Start(0)).unwrap();
        a.read_to_string(&mut back).unwrap();
        assert_eq!(back, "first");
        let m = a.metadata().unwrap();
        assert_eq!(m.mode() & 0o777, 0o600);
        // Unlinked: no name in any directory, nothing left behind after a crash.
        assert_eq!(m.nlink(), 0);
        assert_eq!(b.metadata().unwrap().nlink(), 0);
        let prefix = format!("siphon-export-{}-", std::process::id());
        let left = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count();
        assert_eq!(left, 0);
    }
}
