//! The ingest pipeline, without I/O: captured frames in; classified records (SIP, RTP, RTCP),
//! new calls and completed call summaries out, through a [`Sink`].
//!
//! A frame is decoded (link, IP with defragmentation, UDP/TCP), HEP is unwrapped into the
//! packet it carries, SIP over TCP is reassembled and framed, SIP is recognised by port or by
//! content, and RTP/RTCP by the SDP of open calls (or, as an option, by its looks on any port).
//! Malformed input is counted per reason in [`IngestStats`] and skipped: nothing here panics
//! or blocks on any input.
#![forbid(unsafe_code)]

pub mod rtcp_json;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use siphon_calls::{CallConfig, CallRef, CallSummary, Correlator, MediaClass};
use siphon_hep::Payload;
use siphon_sip::Message;
use siphon_wire::capture::Frame;
use siphon_wire::decode::{DecodeError, Decoder, Packet, Transport};
use siphon_wire::link::LinkType;
use siphon_wire::tcp::{Framer, Framing, TcpMessage, TcpReassembler};
use siphon_wire::write::{addressed_header_into, synth_tcp_frame, synth_udp_frame};

/// What a stored record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A SIP message.
    Sip = 1,
    /// An RTP packet.
    Rtp = 2,
    /// An RTCP packet.
    Rtcp = 3,
    /// RTP found by its looks on a port no SDP announced (heuristic mode).
    OrphanRtp = 4,
}

impl Kind {
    /// The kind from its stored byte.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Sip,
            2 => Kind::Rtp,
            3 => Kind::Rtcp,
            4 => Kind::OrphanRtp,
            _ => return None,
        })
    }
}

/// One packet to store: capture time, what it is, its call, and a link-layer frame that
/// decodes back to it (the original bytes when there are any).
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Capture time, µs since the Unix epoch (the HEP timestamp for HEP-carried packets).
    pub ts_us: i64,
    /// What the packet is.
    pub kind: Kind,
    /// The call it belongs to (0: none).
    pub call_ref: CallRef,
    /// Capture node (HEP capture id; 0 for local captures).
    pub node: u32,
    /// Link type of the stored bytes, `head` then `frame`.
    pub link: LinkType,
    /// What is stored before `frame`: the header of a [`LinkType::ADDRESSED`] record (a
    /// HEP-carried packet, see `siphon_wire::write::addressed_header_into`), whose payload is
    /// `frame`; empty for a captured frame. The two are stored as one.
    pub head: &'a [u8],
    /// The frame (or the payload after `head`).
    pub frame: &'a [u8],
}

/// Receives the pipeline's output.
pub trait Sink {
    /// A packet to store.
    fn record(&mut self, rec: &Record<'_>);
    /// A call (or dialog) seen for the first time; precedes its first record.
    fn call_opened(&mut self, call_ref: CallRef, call_id: &[u8], ts_us: i64);
    /// A call whose summary is final.
    fn call_completed(&mut self, summary: Box<CallSummary>);
    /// The stored summary of a Call-ID that is not open, so late messages rejoin it.
    fn resolve(&mut self, call_id: &[u8]) -> Option<CallSummary>;
}

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Ports on which UDP/TCP payloads are parsed as SIP.
    pub sip_ports: Vec<u16>,
    /// Also recognise SIP by its start line on any port.
    pub sip_by_content: bool,
    /// Ports on which UDP payloads are HEP (HEP is also recognised by its `HEP3` magic anywhere).
    pub hep_ports: Vec<u16>,
    /// Accept HEP v1/v2 too.
    pub hep_legacy: bool,
    /// Keep RTP-looking packets on ports no SDP announced, as orphan streams.
    pub heuristic_rtp: bool,
    /// When set, HEP packets must carry this auth key (chunk 0x000e); others are refused and
    /// counted as `hep_auth_refused`.
    pub hep_auth_key: Option<Vec<u8>>,
    /// Call state machine and caches.
    pub calls: CallConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            sip_ports: vec![5060, 5061, 5080],
            sip_by_content: true,
            hep_ports: vec![9060],
            hep_legacy: false,
            heuristic_rtp: false,
            hep_auth_key: None,
            calls: CallConfig::default(),
        }
    }
}

/// Counters of one ingest run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Frames read.
    pub frames: u64,
    /// Bytes of frames read.
    pub bytes: u64,
    /// SIP messages parsed.
    pub sip_messages: u64,
    /// RTP packets bound to calls.
    pub rtp_packets: u64,
    /// RTCP packets bound to calls.
    pub rtcp_packets: u64,
    /// RTP packets kept by the heuristic on unannounced ports.
    pub orphan_rtp_packets: u64,
    /// HEP packets unwrapped.
    pub hep_packets: u64,
    /// New INVITE calls.
    pub calls: u64,
    /// New non-INVITE dialogs (REGISTER, OPTIONS, ...).
    pub dialogs: u64,
    /// UDP/TCP packets that were neither SIP, HEP nor media of a known call.
    pub unmatched: u64,
    /// Frames carrying something other than UDP or TCP (ARP, ICMP, ...).
    pub not_udp_tcp: u64,
    /// Malformed input by reason.
    pub malformed: BTreeMap<&'static str, u64>,
    /// SIP requests by method ([`SIP_METHODS`], last slot: any other method).
    pub sip_requests: [u64; SIP_METHODS.len() + 1],
    /// SIP responses by class: 1xx..6xx at index 1..=6, anything else at 0.
    pub sip_responses: [u64; 7],
}

/// Methods counted one by one in [`IngestStats::sip_requests`].
pub const SIP_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
];

impl IngestStats {
    /// Total malformed frames.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }

    fn bad(&mut self, reason: &'static str) {
        *self.malformed.entry(reason).or_insert(0) += 1;
    }
}

struct SipFramer;

impl Framer for SipFramer {
    fn frame(&self, buf: &[u8]) -> Framing {
        match siphon_sip::frame(buf) {
            siphon_sip::Framing::Complete(n) => Framing::Complete(n),
            siphon_sip::Framing::Incomplete => Framing::Incomplete,
            siphon_sip::Framing::Invalid { skip } => Framing::Invalid { skip },
        }
    }
}

struct Inner {
    cfg: IngestConfig,
    corr: Correlator,
    stats: IngestStats,
    last_expire_us: i64,
    hep_scratch: Vec<u8>,
    /// The header stored before a HEP-carried packet's payload (reused).
    hep_head: Vec<u8>,
    // Boxes: summaries go to the sink without being copied.
    #[allow(clippy::vec_box)]
    done: Vec<Box<CallSummary>>,
}

/// The pipeline: see the crate documentation.
pub struct Pipeline {
    decoder: Decoder,
    tcp: TcpReassembler,
    inner: Inner,
}

const EXPIRE_EVERY_US: i64 = 1_000_000;
const HEP_PAYLOAD_LIMIT: usize = 1 << 20;

impl Pipeline {
    /// A pipeline whose first new call gets handle `first_ref`.
    pub fn new(cfg: IngestConfig, first_ref: CallRef) -> Self {
        let corr = Correlator::new(cfg.calls.clone(), first_ref);
        Pipeline {
            decoder: Decoder::new(),
            tcp: TcpReassembler::new(65_536, 1 << 20),
            inner: Inner {
                cfg,
                corr,
                stats: IngestStats::default(),
                last_expire_us: i64::MIN,
                hep_scratch: Vec::new(),
                hep_head: Vec::new(),
                done: Vec::new(),
            },
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &IngestStats {
        &self.inner.stats
    }

    /// Calls currently open.
    pub fn open_calls(&self) -> usize {
        self.inner.corr.open_calls()
    }

    /// Summaries of open calls due for the index (changed, and past the first-snapshot delay;
    /// see `siphon_calls::SNAPSHOT_DELAY_US`), for periodic index updates.
    pub fn take_dirty(&mut self, out: &mut Vec<CallSummary>) {
        self.inner.corr.take_dirty(out);
    }

    /// [`take_dirty`](Self::take_dirty) without copies: the summaries stay borrowed from the
    /// pipeline until the consumer (the store writer's `flush_refs`) is done with them.
    pub fn dirty(&mut self) -> Vec<&CallSummary> {
        self.inner.corr.take_dirty_refs()
    }

    /// Feeds one captured frame.
    pub fn push_frame(&mut self, frame: &Frame<'_>, sink: &mut dyn Sink) {
        let inner = &mut self.inner;
        inner.stats.frames += 1;
        inner.stats.bytes += frame.data.len() as u64;
        inner.maybe_expire(frame.ts_us, sink);
        // The store's own record of a frameless packet is not a link layer a capture file
        // or an interface carries: one saying so (`LINKTYPE_USER0`) is someone else's format.
        if frame.link == LinkType::ADDRESSED {
            inner.stats.bad(DecodeError::UnsupportedLink.reason());
            return;
        }
        let pkt = match self.decoder.decode(frame) {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(DecodeError::NotIp | DecodeError::UnsupportedIpProto) => {
                inner.stats.not_udp_tcp += 1;
                return;
            }
            Err(e) => {
                inner.stats.bad(e.reason());
                return;
            }
        };
        match pkt.transport {
            Transport::Udp => inner.udp(&pkt, frame.link, frame.data, 0, sink),
            Transport::Tcp => {
                let sipish = inner.is_sip_port(&pkt) || siphon_sip::looks_like_sip(pkt.payload);
                if !sipish {
                    if !pkt.payload.is_empty() {
                        inner.stats.unmatched += 1;
                    }
                    return;
                }
                self.tcp.push(&pkt, &SipFramer, &mut |m: TcpMessage<'_>| {
                    let f = synth_tcp_frame(m.src, m.dst, 0, m.bytes);
                    inner.sip(
                        m.ts_us,
                        m.src,
                        m.dst,
                        m.bytes,
                        LinkType::ETHERNET,
                        (&[], &f),
                        0,
                        sink,
                    );
                });
            }
        }
    }

    /// Feeds one HEP packet received from the network (UDP datagram or one packet framed from a
    /// TCP stream); the packet it carries keeps its own addresses and timestamp.
    pub fn push_hep(&mut self, data: &[u8], sink: &mut dyn Sink) {
        let inner = &mut self.inner;
        inner.stats.frames += 1;
        inner.stats.bytes += data.len() as u64;
        inner.hep(data, sink);
    }

    /// Advances the call state machine to `now_us` (wall clock of a live collector, so calls
    /// complete even when no packet arrives).
    pub fn tick(&mut self, now_us: i64, sink: &mut dyn Sink) {
        let inner = &mut self.inner;
        inner.last_expire_us = now_us;
        inner.corr.expire(now_us, &mut inner.done);
        for s in inner.done.drain(..) {
            sink.call_completed(s);
        }
    }

    /// Ends the input: every open call is completed with `reason` (e.g. "end of capture").
    pub fn finish(&mut self, reason: &str, sink: &mut dyn Sink) {
        let inner = &mut self.inner;
        inner
            .corr
            .finish_each(reason, &mut |s| sink.call_completed(s));
    }
}

impl Inner {
    fn is_sip_port(&self, p: &Packet<'_>) -> bool {
        self.cfg.sip_ports.contains(&p.src.port()) || self.cfg.sip_ports.contains(&p.dst.port())
    }

    fn maybe_expire(&mut self, ts_us: i64, sink: &mut dyn Sink) {
        if ts_us.saturating_sub(self.last_expire_us) < EXPIRE_EVERY_US {
            return;
        }
        self.last_expire_us = ts_us;
        self.corr.expire(ts_us, &mut self.done);
        for s in self.done.drain(..) {
            sink.call_completed(s);
        }
    }

    fn udp(
        &mut self,
        pkt: &Packet<'_>,
        link: LinkType,
        data: &[u8],
        node: u32,
        sink: &mut dyn Sink,
    ) {
        let payload = pkt.payload;
        let hep_port = self.cfg.hep_ports.contains(&pkt.dst.port())
            || self.cfg.hep_ports.contains(&pkt.src.port());
        if payload.starts_with(b"HEP3") || (hep_port && self.cfg.hep_legacy) {
            self.hep(payload, sink);
            return;
        }
        // The original frame is the record unless the datagram was reassembled from fragments.
        let synth;
        let (link, frame) = if pkt.reassembled {
            synth = synth_udp_frame(pkt.src, pkt.dst, payload);
            (LinkType::ETHERNET, synth.as_slice())
        } else {
            (link, data)
        };
        // A frame is stored whole: nothing before it.
        let stored: (&[u8], &[u8]) = (&[], frame);
        if self.is_sip_port(pkt) || (self.cfg.sip_by_content && siphon_sip::looks_like_sip(payload))
        {
            if payload.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return; // keep-alive
            }
            self.sip(
                pkt.ts_us, pkt.src, pkt.dst, payload, link, stored, node, sink,
            );
            return;
        }
        self.media(
            pkt.ts_us, pkt.src, pkt.dst, payload, link, stored, node, sink,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn media(
        &mut self,
        ts_us: i64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        link: LinkType,
        stored: (&[u8], &[u8]),
        node: u32,
        sink: &mut dyn Sink,
    ) {
        let (kind, call_ref) = match self.corr.on_udp_media(ts_us, src, dst, payload) {
            Some(MediaClass::Rtp(r)) => {
                self.stats.rtp_packets += 1;
                (Kind::Rtp, r)
            }
            Some(MediaClass::Rtcp(r)) => {
                self.stats.rtcp_packets += 1;
                (Kind::Rtcp, r)
            }
            None if self.cfg.heuristic_rtp && siphon_rtp::looks_like_rtp(payload) => {
                self.stats.orphan_rtp_packets += 1;
                (Kind::OrphanRtp, 0)
            }
            None => {
                self.stats.unmatched += 1;
                return;
            }
        };
        sink.record(&Record {
            ts_us,
            kind,
            call_ref,
            node,
            link,
            head: stored.0,
            frame: stored.1,
        });
    }

    fn hep(&mut self, buf: &[u8], sink: &mut dyn Sink) {
        let (hep, _) = match siphon_hep::decode(buf, self.cfg.hep_legacy) {
            Ok(v) => v,
            Err(e) => {
                self.stats.bad(e.reason());
                return;
            }
        };
        if let Some(key) = &self.cfg.hep_auth_key {
            if hep.auth_key != Some(key.as_slice()) {
                self.stats.bad("hep_auth_refused");
                return;
            }
        }
        self.stats.hep_packets += 1;
        let mut scratch = std::mem::take(&mut self.hep_scratch);
        let payload = match hep.payload {
            Payload::Plain(p) => p,
            _ => match hep.payload.bytes(&mut scratch, HEP_PAYLOAD_LIMIT) {
                Ok(p) => p,
                Err(e) => {
                    self.stats.bad(e.reason());
                    self.hep_scratch = scratch;
                    return;
                }
            },
        };
        let node = hep.capture_id.unwrap_or(0);
        let tcp = hep.ip_protocol == 6;
        // Stored as a payload with its addresses, not as a frame: see `LinkType::ADDRESSED`.
        // The header is written on its own and the payload stored from where it lies.
        let mut head = std::mem::take(&mut self.hep_head);
        let stored = addressed_header_into(hep.src, hep.dst, tcp, payload, &mut head);
        let parts = (head.as_slice(), stored);
        match hep.proto_type {
            1 => self.sip(
                hep.ts_us,
                hep.src,
                hep.dst,
                payload,
                LinkType::ADDRESSED,
                parts,
                node,
                sink,
            ),
            // RTP carried in HEP (type 4 in the HEP table; 34 as some senders use).
            4 | 34 => self.media(
                hep.ts_us,
                hep.src,
                hep.dst,
                payload,
                LinkType::ADDRESSED,
                parts,
                node,
                sink,
            ),
            // RTCP as JSON, tied to its call by the correlation id (the Call-ID).
            5 => {
                let call = hep.correlation_id.and_then(|id| self.corr.call_ref_for(id));
                let reports = rtcp_json::parse(payload);
                match call {
                    Some(r)
                        if !reports.is_empty()
                            && self.corr.on_rtcp_reports(r, hep.ts_us, &reports) =>
                    {
                        self.stats.rtcp_packets += 1;
                        sink.record(&Record {
                            ts_us: hep.ts_us,
                            kind: Kind::Rtcp,
                            call_ref: r,
                            node,
                            link: LinkType::ADDRESSED,
                            head: parts.0,
                            frame: parts.1,
                        });
                    }
                    _ => self.stats.unmatched += 1,
                }
            }
            _ => self.stats.unmatched += 1,
        }
        self.hep_head = head;
        self.hep_scratch = scratch;
    }

    #[allow(clippy::too_many_arguments)]
    fn sip(
        &mut self,
        ts_us: i64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        link: LinkType,
        stored: (&[u8], &[u8]),
        node: u32,
        sink: &mut dyn Sink,
    ) {
        // Lent, never moved: the parsed message is 1.6 KB.
        Message::parse_with(payload, |parsed| {
            self.sip_message(ts_us, src, dst, parsed, link, stored, node, sink)
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn sip_message(
        &mut self,
        ts_us: i64,
        src: SocketAddr,
        dst: SocketAddr,
        parsed: Result<&Message<'_>, siphon_sip::ParseError>,
        link: LinkType,
        stored: (&[u8], &[u8]),
        node: u32,
        sink: &mut dyn Sink,
    ) {
        let msg = match parsed {
            Ok(m) => m,
            // Keep-alives (CRLF, blanks) are not malformed.
            Err(siphon_sip::ParseError::Empty) => return,
            Err(e) => {
                self.stats.bad(e.reason());
                return;
            }
        };
        let refused = self.corr.refused;
        let Some(out) = self
            .corr
            .on_sip(ts_us, src, dst, msg, &mut |id| sink.resolve(id))
        else {
            if self.corr.refused > refused {
                self.stats.bad("call_table_full");
            } else {
                self.stats.bad("sip_no_call_id");
            }
            return;
        };
        self.stats.sip_messages += 1;
        if let Some(m) = msg.method() {
            let i = SIP_METHODS
                .iter()
                .position(|x| x.as_bytes() == m)
                .unwrap_or(SIP_METHODS.len());
            if let Some(c) = self.stats.sip_requests.get_mut(i) {
                *c += 1;
            }
        } else if let Some(st) = msg.status() {
            let class = usize::from(st / 100);
            let i = if (1..=6).contains(&class) { class } else { 0 };
            if let Some(c) = self.stats.sip_responses.get_mut(i) {
                *c += 1;
            }
        }
        if out.opened {
            let is_invite = if msg.is_request() {
                msg.method() == Some(b"INVITE".as_slice())
            } else {
                msg.cseq().is_some_and(|c| c.method == b"INVITE")
            };
            if is_invite {
                self.stats.calls += 1;
            } else {
                self.stats.dialogs += 1;
            }
            sink.call_opened(out.call_ref, msg.call_id().unwrap_or_default(), ts_us);
        }
        self.corr.mark_dirty(out.call_ref);
        sink.record(&Record {
            ts_us,
            kind: Kind::Sip,
            call_ref: out.call_ref,
            node,
            link,
            head: stored.0,
            frame: stored.1,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[derive(Default)]
    struct Collect {
        records: Vec<(Kind, CallRef)>,
        /// What each record stores: its head, then its frame.
        stored: Vec<(LinkType, Vec<u8>)>,
        done: Vec<CallSummary>,
    }

    impl Sink for Collect {
        fn record(&mut self, rec: &Record<'_>) {
            self.records.push((rec.kind, rec.call_ref));
            self.stored.push((rec.link, [rec.head, rec.frame].concat()));
        }
        fn call_opened(&mut self, _: CallRef, _: &[u8], _: i64) {}
        fn call_completed(&mut self, s: Box<CallSummary>) {
            self.done.push(*s);
        }
        fn resolve(&mut self, _: &[u8]) -> Option<CallSummary> {
            None
        }
    }

    fn hep(
        src: &str,
        dst: &str,
        ts_us: i64,
        proto: u8,
        corr: Option<&[u8]>,
        payload: &[u8],
    ) -> Vec<u8> {
        let p = siphon_hep::HepPacket {
            version: 3,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ip_protocol: 17,
            ts_us,
            proto_type: proto,
            capture_id: Some(9),
            auth_key: None,
            correlation_id: corr,
            node_name: None,
            vlan: None,
            payload: Payload::Plain(payload),
        };
        let mut out = Vec::new();
        siphon_hep::encode_v3(&p, &mut out);
        out
    }

    fn sip(first: &str, to_tag: &str, cseq: &str, port: u16, ip: &str) -> Vec<u8> {
        let body = format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n");
        format!(
            "{first}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:b@y>{to_tag}\r\nCall-ID: hep-rtcp@x\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// A capture whose link type is the store's private one (USER0 to everyone else) is not
    /// read as the store's records: its frames are counted as an unsupported link.
    #[test]
    fn frames_of_the_private_link_type_from_outside_are_refused() {
        let mut p = Pipeline::new(IngestConfig::default(), 1);
        let mut sink = Collect::default();
        let mut rec = Vec::new();
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:5060".parse().unwrap(),
            "10.0.0.2:5060".parse().unwrap(),
        );
        let msg = sip("INVITE sip:b@y SIP/2.0", "", "1 INVITE", 4000, "10.0.0.1");
        siphon_wire::write::addressed_payload_into(a, b, false, &msg, &mut rec);
        let frame = Frame {
            ts_us: 1_000_000,
            link: LinkType::ADDRESSED,
            data: &rec,
            orig_len: rec.len() as u32,
            interface: 0,
        };
        p.push_frame(&frame, &mut sink);
        assert_eq!(p.stats().malformed.get("unsupported_link"), Some(&1));
        assert_eq!(p.stats().sip_messages, 0);
        assert!(sink.records.is_empty());
        // The same message as an Ethernet frame is read.
        let f = synth_udp_frame(a, b, &msg);
        let frame = Frame {
            link: LinkType::ETHERNET,
            data: &f,
            orig_len: f.len() as u32,
            ..frame
        };
        p.push_frame(&frame, &mut sink);
        assert_eq!(p.stats().sip_messages, 1);
    }

    /// A HEP-carried message is stored as the address record the store reads back (its header
    /// handed over apart from the payload, which is not copied to join them); a captured
    /// frame as the frame itself.
    #[test]
    fn hep_messages_are_stored_as_address_records_and_frames_as_themselves() {
        let mut p = Pipeline::new(IngestConfig::default(), 1);
        let mut sink = Collect::default();
        let inv = sip("INVITE sip:b@y SIP/2.0", "", "1 INVITE", 4000, "10.0.0.1");
        for (a, b) in [
            ("10.0.0.1:5060", "10.0.0.2:5080"),
            ("[2001:db8::1]:5060", "[2001:db8::2]:5062"),
        ] {
            let (a, b): (SocketAddr, SocketAddr) = (a.parse().unwrap(), b.parse().unwrap());
            sink.stored.clear();
            p.push_hep(
                &hep(&a.to_string(), &b.to_string(), 1_000_000, 1, None, &inv),
                &mut sink,
            );
            let mut want = Vec::new();
            siphon_wire::write::addressed_payload_into(a, b, false, &inv, &mut want);
            assert_eq!(sink.stored, vec![(LinkType::ADDRESSED, want)]);
        }
        sink.stored.clear();
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:5060".parse().unwrap(),
            "10.0.0.2:5060".parse().unwrap(),
        );
        let f = synth_udp_frame(a, b, &inv);
        p.push_frame(
            &Frame {
                ts_us: 2_000_000,
                link: LinkType::ETHERNET,
                data: &f,
                orig_len: f.len() as u32,
                interface: 0,
            },
            &mut sink,
        );
        assert_eq!(sink.stored, vec![(LinkType::ETHERNET, f)]);
    }

    /// RTCP that Kamailio or rtpengine send as HEP type 5 JSON lands on the stream it reports
    /// on, found through the HEP correlation id (the Call-ID).
    #[test]
    fn hep_rtcp_json_is_tied_to_its_call_by_correlation_id() {
        let mut p = Pipeline::new(IngestConfig::default(), 1);
        let mut sink = Collect::default();
        let inv = sip("INVITE sip:b@y SIP/2.0", "", "1 INVITE", 4000, "10.0.0.1");
        p.push_hep(
            &hep("10.0.0.1:5060", "10.0.0.2:5060", 1_000_000, 1, None, &inv),
            &mut sink,
        );
        let ok = sip("SIP/2.0 200 OK", ";tag=t2", "1 INVITE", 6000, "10.0.0.2");
        p.push_hep(
            &hep("10.0.0.2:5060", "10.0.0.1:5060", 1_100_000, 1, None, &ok),
            &mut sink,
        );
        for i in 0..3u16 {
            let mut rtp = vec![0x80, 0];
            rtp.extend_from_slice(&i.to_be_bytes());
            rtp.extend_from_slice(&(u32::from(i) * 160).to_be_bytes());
            rtp.extend_from_slice(&0xABCDu32.to_be_bytes());
            rtp.extend_from_slice(&[0xff; 160]);
            let src: SocketAddr = "10.0.0.1:4000".parse().unwrap();
            let dst: SocketAddr = "10.0.0.2:6000".parse().unwrap();
            let f = synth_udp_frame(src, dst, &rtp);
            let frame = Frame {
                ts_us: 1_200_000 + i64::from(i) * 20_000,
                link: LinkType::ETHERNET,
                data: &f,
                orig_len: f.len() as u32,
                interface: 0,
            };
            p.push_frame(&frame, &mut sink);
        }
        let rr = br#"{"type":201,"ssrc":4660,"report_blocks":[{"source_ssrc":43981,"fraction_lost":26,"packets_lost":2,"highest_seq_no":2,"ia_jitter":16,"lsr":0,"dlsr":0}]}"#;
        let json = hep(
            "10.0.0.2:6001",
            "10.0.0.1:4001",
            1_300_000,
            5,
            Some(b"hep-rtcp@x"),
            rr,
        );
        p.push_hep(&json, &mut sink);
        // Without a known correlation id it is counted, not attached.
        let stray = hep(
            "10.0.0.2:6001",
            "10.0.0.1:4001",
            1_300_000,
            5,
            Some(b"nope"),
            rr,
        );
        p.push_hep(&stray, &mut sink);
        assert_eq!(p.stats().rtcp_packets, 1);
        assert!(sink
            .records
            .iter()
            .any(|(k, r)| *k == Kind::Rtcp && *r != 0));
        p.finish("end", &mut sink);
        let s = &sink.done[0];
        assert_eq!(s.rtcp_packets, 1);
        let st = s.streams.iter().find(|st| st.ssrc == 0xABCD).unwrap();
        assert_eq!(st.rtcp.reports, 1);
        assert_eq!(st.rtcp.cumulative_lost, Some(2));
        assert!((st.rtcp.fraction_lost.unwrap() - 26.0 / 256.0).abs() < 1e-12);
        assert!((st.rtcp.jitter_ms.unwrap() - 2.0).abs() < 1e-9);
    }
}
