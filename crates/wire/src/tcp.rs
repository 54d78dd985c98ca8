//! TCP stream reassembly into application messages.
//!
//! Each direction of a connection is one flow keyed by (source, destination). In-order bytes
//! go to the application [`Framer`], which says where messages end; out-of-order segments are
//! held (at most `max_buffer_per_flow` bytes and 256 segments) until the gap before them fills.
//! When the hold limit is reached the gap is skipped and counted. Retransmitted bytes are
//! dropped, partly new segments are trimmed. Sequence numbers compare modulo 2^32.
//!
//! Memory per flow is bounded by about twice `max_buffer_per_flow` (stream buffer plus held
//! segments); at most `max_flows` flows are kept, the least recently active evicted first.
//! When the stream buffer is empty, messages are framed straight out of the segment, without
//! copying.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::decode::{Packet, Transport};

/// What a framer found at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A complete message of this many bytes starts the buffer.
    Complete(usize),
    /// The buffer holds the start of a message; more bytes are needed.
    Incomplete,
    /// The buffer does not start with a message; drop `skip` bytes (at least 1) and retry.
    Invalid {
        /// Bytes to drop.
        skip: usize,
    },
}

/// Splits a byte stream into application messages.
pub trait Framer {
    /// Looks at the start of `buf` (never empty).
    fn frame(&self, buf: &[u8]) -> Framing;
}

/// One complete application message out of a TCP stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpMessage<'a> {
    /// Capture time of the segment that completed the message.
    pub ts_us: i64,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// The message bytes.
    pub bytes: &'a [u8],
}

/// Reassembly counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// TCP segments pushed.
    pub segments: u64,
    /// Segments carrying only (or partly) bytes already seen.
    pub retransmissions: u64,
    /// Segments that arrived ahead of a gap and were held.
    pub out_of_order: u64,
    /// Gaps given up on (the bytes missing were never seen within the hold limit).
    pub gaps_skipped: u64,
    /// Flows dropped to stay within `max_flows`.
    pub flows_evicted: u64,
    /// Stream bytes thrown away: skipped by the framer, partial messages cut by a gap, an
    /// eviction, a reset or the end of a flow, and messages over the buffer limit.
    pub bytes_dropped: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Flows currently tracked.
    pub flows_active: u64,
}

const MAX_HELD_SEGMENTS: usize = 256;

#[derive(Debug)]
struct Held {
    seq: u32,
    data: Vec<u8>,
    fin: bool,
}

#[derive(Debug)]
struct Flow {
    /// Sequence number of the next stream byte expected.
    next_seq: u32,
    /// In-order bytes not yet framed into a message.
    buf: Vec<u8>,
    held: Vec<Held>,
    held_bytes: usize,
    last_active: u64,
    /// Sequence number of the SYN, when it was seen.
    isn: Option<u32>,
}

impl Flow {
    fn new(next_seq: u32, tick: u64) -> Flow {
        Flow {
            isn: None,
            next_seq,
            buf: Vec::new(),
            held: Vec::new(),
            held_bytes: 0,
            last_active: tick,
        }
    }

    fn buffered(&self) -> u64 {
        (self.buf.len() + self.held_bytes) as u64
    }
}

/// Per-flow TCP reassembly state keyed by (src, dst).
#[derive(Debug)]
pub struct TcpReassembler {
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
    max_flows: usize,
    max_buffer: usize,
    tick: u64,
    stats: TcpStats,
    scratch: Vec<u64>,
}

/// `a - b` as a signed distance modulo 2^32.
fn seq_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

/// What the framer, the output and the counters need while a segment is processed.
struct Ctx<'f, 'o> {
    ts_us: i64,
    src: SocketAddr,
    dst: SocketAddr,
    framer: &'f dyn Framer,
    out: &'o mut dyn FnMut(TcpMessage<'_>),
    max_buffer: usize,
}

impl TcpReassembler {
    /// Tracks at most `max_flows` flows (at least 1), each buffering at most
    /// `max_buffer_per_flow` bytes of partial message and as much of held out-of-order data.
    pub fn new(max_flows: usize, max_buffer_per_flow: usize) -> Self {
        TcpReassembler {
            flows: HashMap::new(),
            max_flows: max_flows.max(1),
            max_buffer: max_buffer_per_flow.max(1),
            tick: 0,
            stats: TcpStats::default(),
            scratch: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> TcpStats {
        TcpStats {
            flows_active: self.flows.len() as u64,
            ..self.stats
        }
    }

    /// Feed one TCP segment (packets of another transport are ignored). Calls `out` for every
    /// complete message the framer finds. SYN sets the initial sequence number; a flow seen
    /// mid-stream starts at its first segment with data. FIN ends the flow of its direction,
    /// RST both directions.
    pub fn push(
        &mut self,
        pkt: &Packet<'_>,
        framer: &dyn Framer,
        out: &mut dyn FnMut(TcpMessage<'_>),
    ) {
        let Some(tcp) = pkt.tcp else { return };
        if pkt.transport != Transport::Tcp {
            return;
        }
        self.stats.segments += 1;
        self.tick += 1;
        let key = (pkt.src, pkt.dst);
        if tcp.rst {
            // A reset aborts both directions.
            for k in [key, (pkt.dst, pkt.src)] {
                if let Some(flow) = self.flows.remove(&k) {
                    self.stats.bytes_dropped += flow.buffered();
                }
            }
            return;
        }
        let mut seq = tcp.seq;
        if tcp.syn {
            seq = seq.wrapping_add(1);
            // A SYN with the initial sequence number being followed is a retransmission; any
            // other starts a new connection.
            let restart = self.flows.get(&key).is_some_and(|f| f.isn != Some(tcp.seq));
            if restart {
                if let Some(old) = self.flows.remove(&key) {
                    self.stats.bytes_dropped += old.buffered();
                }
            }
        } else if !self.flows.contains_key(&key) && pkt.payload.is_empty() {
            // Pure ACK or lone FIN of a flow not followed: nothing to start from.
            return;
        }
        if !self.flows.contains_key(&key) {
            if self.flows.len() >= self.max_flows {
                self.evict();
            }
            let mut flow = Flow::new(seq, self.tick);
            if tcp.syn {
                flow.isn = Some(tcp.seq);
            }
            self.flows.insert(key, flow);
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_active = self.tick;
        let mut ctx = Ctx {
            ts_us: pkt.ts_us,
            src: pkt.src,
            dst: pkt.dst,
            framer,
            out,
            max_buffer: self.max_buffer,
        };
        let ended = segment(flow, seq, pkt.payload, tcp.fin, &mut ctx, &mut self.stats);
        if ended {
            if let Some(flow) = self.flows.remove(&key) {
                self.stats.bytes_dropped += flow.buffered();
            }
        }
    }

    /// Drops the least recently active eighth of the flows (at least one).
    fn evict(&mut self) {
        let n = (self.flows.len() / 8).max(1);
        self.scratch.clear();
        self.scratch
            .extend(self.flows.values().map(|f| f.last_active));
        if self.scratch.is_empty() {
            return;
        }
        let idx = (n - 1).min(self.scratch.len() - 1);
        let (_, threshold, _) = self.scratch.select_nth_unstable(idx);
        let threshold = *threshold;
        let stats = &mut self.stats;
        self.flows.retain(|_, f| {
            if f.last_active <= threshold {
                stats.flows_evicted += 1;
                stats.bytes_dropped += f.buffered();
                false
            } else {
                true
            }
        });
    }
}

/// Processes one segment of a flow; true when the flow ended (FIN reached).
fn segment(
    flow: &mut Flow,
    seq: u32,
    payload: &[u8],
    fin: bool,
    ctx: &mut Ctx<'_, '_>,
    stats: &mut TcpStats,
) -> bool {
    loop {
        let ahead = seq_diff(seq, flow.next_seq);
        if ahead <= 0 {
            break;
        }
        if payload.is_empty() && !fin {
            return false;
        }
        // Out of order: hold it if the limits allow.
        if let Some(h) = flow.held.iter_mut().find(|h| h.seq == seq) {
            stats.retransmissions += 1;
            if payload.len() > h.data.len() {
                flow.held_bytes = flow.held_bytes - h.data.len() + payload.len();
                h.data.clear();
                h.data.extend_from_slice(payload);
            }
            h.fin |= fin;
            return false;
        }
        let fits = flow.held_bytes + payload.len() <= ctx.max_buffer
            && flow.held.len() < MAX_HELD_SEGMENTS;
        if fits {
            stats.out_of_order += 1;
            flow.held_bytes += payload.len();
            flow.held.push(Held {
                seq,
                data: payload.to_vec(),
                fin,
            });
            return false;
        }
        // The gap before the held data never filled: give up on it.
        stats.gaps_skipped += 1;
        stats.bytes_dropped += flow.buf.len() as u64;
        flow.buf.clear();
        let nearest = flow
            .held
            .iter()
            .map(|h| h.seq)
            .min_by_key(|s| seq_diff(*s, flow.next_seq));
        match nearest {
            Some(s) if seq_diff(s, seq) < 0 => {
                flow.next_seq = s;
                if drain_held(flow, ctx, stats) {
                    return true;
                }
            }
            _ => flow.next_seq = seq,
        }
    }
    let mut ended = in_order(flow, seq, payload, fin, ctx, stats);
    if !ended {
        ended = drain_held(flow, ctx, stats);
    }
    ended
}

/// Applies a segment starting at or before `next_seq`; true when it carried the FIN.
fn in_order(
    flow: &mut Flow,
    seq: u32,
    payload: &[u8],
    fin: bool,
    ctx: &mut Ctx<'_, '_>,
    stats: &mut TcpStats,
) -> bool {
    let behind = usize::try_from(-seq_diff(seq, flow.next_seq)).unwrap_or(0);
    let fresh = payload.get(behind..).unwrap_or_default();
    if behind > 0 && !payload.is_empty() {
        stats.retransmissions += 1;
    }
    if !fresh.is_empty() {
        flow.next_seq = flow.next_seq.wrapping_add(fresh.len() as u32);
        deliver(flow, fresh, ctx, stats);
    }
    // A FIN counts only where it sits: right after the segment's data.
    fin && seq_diff(seq.wrapping_add(payload.len() as u32), flow.next_seq) == 0
}

/// Applies held segments that the stream has reached; true when one carried the FIN.
fn drain_held(flow: &mut Flow, ctx: &mut Ctx<'_, '_>, stats: &mut TcpStats) -> bool {
    while let Some(i) = flow
        .held
        .iter()
        .position(|h| seq_diff(h.seq, flow.next_seq) <= 0)
    {
        let h = flow.held.swap_remove(i);
        flow.held_bytes = flow.held_bytes.saturating_sub(h.data.len());
        let all_old = seq_diff(h.seq.wrapping_add(h.data.len() as u32), flow.next_seq) <= 0;
        if all_old && !h.fin {
            stats.retransmissions += 1;
            continue;
        }
        if in_order(flow, h.seq, &h.data, h.fin, ctx, stats) {
            return true;
        }
    }
    false
}

/// Appends in-order bytes to the stream and hands out complete messages.
fn deliver(flow: &mut Flow, data: &[u8], ctx: &mut Ctx<'_, '_>, stats: &mut TcpStats) {
    if flow.buf.is_empty() {
        let used = frame_all(data, ctx, stats);
        let rest = data.get(used..).unwrap_or_default();
        flow.buf.extend_from_slice(rest);
    } else {
        flow.buf.extend_from_slice(data);
        let used = frame_all(&flow.buf, ctx, stats);
        flow.buf.drain(..used.min(flow.buf.len()));
    }
    if flow.buf.len() > ctx.max_buffer {
        // A message larger than the limit: drop what there is; the framer resynchronises.
        stats.bytes_dropped += flow.buf.len() as u64;
        flow.buf.clear();
    }
}

/// Runs the framer over `buf`; returns the bytes consumed.
fn frame_all(buf: &[u8], ctx: &mut Ctx<'_, '_>, stats: &mut TcpStats) -> usize {
    let mut pos = 0;
    while let Some(rest) = buf.get(pos..).filter(|r| !r.is_empty()) {
        match ctx.framer.frame(rest) {
            Framing::Complete(n) if n > 0 && n <= rest.len() => {
                if let Some(bytes) = rest.get(..n) {
                    stats.messages += 1;
                    (ctx.out)(TcpMessage {
                        ts_us: ctx.ts_us,
                        src: ctx.src,
                        dst: ctx.dst,
                        bytes,
                    });
                }
                pos += n;
            }
            Framing::Complete(_) | Framing::Incomplete => break,
            Framing::Invalid { skip } => {
                let skip = skip.clamp(1, rest.len());
                stats.bytes_dropped += skip as u64;
                pos += skip;
            }
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpInfo;

    /// Messages are lines ending in '\n'; a line starting with '!' is garbage (1 byte skipped).
    struct Lines;

    impl Framer for Lines {
        fn frame(&self, buf: &[u8]) -> Framing {
            if buf.first() == Some(&b'!') {
                return Framing::Invalid { skip: 1 };
            }
            match buf.iter().position(|b| *b == b'\n') {
                Some(i) => Framing::Complete(i + 1),
                None => Framing::Incomplete,
            }
        }
    }

    fn a() -> SocketAddr {
        "10.0.0.1:5060".parse().unwrap()
    }
    fn b() -> SocketAddr {
        "10.0.0.2:5060".parse().unwrap()
    }

    fn seg<'a>(ts: i64, seq: u32, flags: &str, payload: &'a [u8]) -> Packet<'a> {
        seg_from(a(), b(), ts, seq, flags, payload)
    }

    fn seg_from<'a>(
        src: SocketAddr,
        dst: SocketAddr,
        ts: i64,
        seq: u32,
        flags: &str,
        payload: &'a [u8],
    ) -> Packet<'a> {
        Packet {
            ts_us: ts,
            src,
            dst,
            transport: Transport::Tcp,
            payload,
            tcp: Some(TcpInfo {
                seq,
                syn: flags.contains('S'),
                fin: flags.contains('F'),
                rst: flags.contains('R'),
            }),
            reassembled: false,
        }
    }

    /// Pushes the segments; returns (ts, message) pairs.
    fn run(r: &mut TcpReassembler, segs: &[Packet<'_>]) -> Vec<(i64, String)> {
        let mut got = Vec::new();
        for s in segs {
            r.push(s, &Lines, &mut |m: TcpMessage<'_>| {
                got.push((m.ts_us, String::from_utf8_lossy(m.bytes).into_owned()))
            });
        }
        got
    }

    fn texts(v: &[(i64, String)]) -> Vec<&str> {
        v.iter().map(|(_, s)| s.as_str()).collect()
    }

    #[test]
    fn several_messages_in_one_segment() {
        let mut r = TcpReassembler::new(16, 4096);
        let got = run(
            &mut r,
            &[seg(1, 99, "S", b""), seg(2, 100, "", b"one\ntwo\nthree\n")],
        );
        assert_eq!(texts(&got), ["one\n", "two\n", "three\n"]);
        assert_eq!(r.stats().messages, 3);
        assert_eq!(r.stats().segments, 2);
    }

    #[test]
    fn one_message_over_three_segments_has_the_last_segments_time() {
        let mut r = TcpReassembler::new(16, 4096);
        let got = run(
            &mut r,
            &[
                seg(1, 100, "", b"hel"),
                seg(2, 103, "", b"lo wo"),
                seg(3, 108, "", b"rld\n"),
            ],
        );
        assert_eq!(got, vec![(3, "hello world\n".to_string())]);
    }

    #[test]
    fn retransmission_is_dropped_and_overlap_trimmed() {
        let mut r = TcpReassembler::new(16, 4096);
        let got = run(
            &mut r,
            &[
                seg(1, 100, "", b"abc\n"),
                seg(2, 100, "", b"abc\n"),    // full retransmission
                seg(3, 102, "", b"c\ndef\n"), // overlaps 2 bytes
                seg(4, 108, "", b"ghi\n"),
            ],
        );
        assert_eq!(texts(&got), ["abc\n", "def\n", "ghi\n"]);
        assert_eq!(r.stats().retransmissions, 2);
    }

    #[test]
    fn out_of_order_segments_are_held_until_the_gap_fills() {
        let mut r = TcpReassembler::new(16, 4096);
        let got = run(
            &mut r,
            &[
                seg(1, 100, "", b"first\n"),
                seg(2, 112, "", b"third\n"),
                seg(3, 118, "", b"fourth\n"),
                seg(4, 106, "", b"secnd\n"),
                seg(5, 106, "", b"secnd\n"), // retransmission after the gap filled
            ],
        );
        assert_eq!(texts(&got), ["first\n", "secnd\n", "third\n", "fourth\n"]);
        assert_eq!((got[1].0, got[2].0, got[3].0), (4, 4, 4));
        assert_eq!(r.stats().out_of_order, 2);
        assert_eq!(r.stats().retransmissions, 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = TcpReassembler::new(16, 4096);
        let isn = u32::MAX - 3;
        let got = run(
            &mut r,
            &[
                seg(1, isn, "S", b""),
                // Bytes at MAX-2 .. MAX+5 (wrapping), sent out of order.
                seg(2, 3, "", b"xyz\n"),
                seg(3, u32::MAX - 2, "", b"abcdef"),
                seg(4, u32::MAX - 2, "", b"abc"), // old data, across the wrap
            ],
        );
        assert_eq!(texts(&got), ["abcdefxyz\n"]);
        assert_eq!(r.stats().out_of_order, 1);
        assert_eq!(r.stats().retransmissions, 1);
    }

    #[test]
    fn gap_never_filled_is_skipped_when_the_hold_limit_is_reached() {
        let mut r = TcpReassembler::new(16, 16);
        let got = run(
            &mut r,
            &[
                seg(1, 100, "", b"ok\npart"), // "part" waits for more
                // bytes 107..110 never arrive
                seg(2, 110, "", b"lost\nAAA\n"),
                seg(3, 119, "", b"BBB\n"),
                seg(4, 123, "", b"CCC\n"), // 17 bytes held would exceed 16
            ],
        );
        assert_eq!(texts(&got), ["ok\n", "lost\n", "AAA\n", "BBB\n", "CCC\n"]);
        let s = r.stats();
        assert_eq!(s.gaps_skipped, 1);
        assert_eq!(s.bytes_dropped, 4); // "part"
    }

    #[test]
    fn fin_ends_the_flow_and_rst_ends_both_directions() {
        let mut r = TcpReassembler::new(16, 4096);
        run(&mut r, &[seg(1, 100, "F", b"bye\n")]);
        assert_eq!(r.stats().flows_active, 0);
        let back = |ts, seq, flags, p| seg_from(b(), a(), ts, seq, flags, p);
        run(
            &mut r,
            &[seg(2, 200, "", b"half"), back(3, 900, "", b"other")],
        );
        assert_eq!(r.stats().flows_active, 2);
        run(&mut r, &[back(4, 905, "R", b"")]);
        let s = r.stats();
        assert_eq!(s.flows_active, 0);
        assert_eq!(s.bytes_dropped, 9);
    }

    #[test]
    fn out_of_order_fin_waits_for_the_data_before_it() {
        let mut r = TcpReassembler::new(16, 4096);
        let got = run(
            &mut r,
            &[
                seg(1, 100, "", b"a\n"),
                seg(2, 104, "F", b""),
                seg(3, 102, "", b"b\n"),
            ],
        );
        assert_eq!(texts(&got), ["a\n", "b\n"]);
        assert_eq!(r.stats().flows_active, 0);
    }

    #[test]
    fn mid_stream_flow_starts_at_first_data_and_pure_acks_start_nothing() {
        let mut r = TcpReassembler::new(16, 4096);
        run(&mut r, &[seg(1, 5000, "", b"")]);
        assert_eq!(r.stats().flows_active, 0);
        let got = run(
            &mut r,
            &[seg(2, 7000, "", b"x\n"), seg(3, 7002, "", b"y\n")],
        );
        assert_eq!(texts(&got), ["x\n", "y\n"]);
    }

    #[test]
    fn syn_retransmission_keeps_the_flow_and_a_new_syn_restarts_it() {
        let mut r = TcpReassembler::new(16, 4096);
        let got = run(
            &mut r,
            &[
                seg(1, 10, "S", b""),
                seg(2, 11, "", b"pa"),
                seg(3, 10, "S", b""),
                seg(4, 13, "", b"rt\n"),
            ],
        );
        assert_eq!(texts(&got), ["part\n"]);
        // Not the sequence followed: a new connection on the same ports.
        let got = run(
            &mut r,
            &[
                seg(5, 16, "", b"zz"),
                seg(6, 500, "S", b""),
                seg(7, 501, "", b"new\n"),
            ],
        );
        assert_eq!(texts(&got), ["new\n"]);
        assert_eq!(r.stats().bytes_dropped, 2);
    }

    #[test]
    fn framer_garbage_is_skipped_and_counted() {
        let mut r = TcpReassembler::new(16, 4096);
        let got = run(&mut r, &[seg(1, 0, "", b"!!!ok\n")]);
        assert_eq!(texts(&got), ["ok\n"]);
        assert_eq!(r.stats().bytes_dropped, 3);
    }

    #[test]
    fn message_over_the_buffer_limit_is_dropped() {
        let mut r = TcpReassembler::new(16, 8);
        let got = run(
            &mut r,
            &[
                seg(1, 0, "", b"0123456789"),
                seg(2, 10, "", b"ab\n"),
                seg(3, 13, "", b"ok\n"),
            ],
        );
        // The long line's tail "ab\n" comes out as a fragment: the framer resynchronises.
        assert_eq!(texts(&got), ["ab\n", "ok\n"]);
        assert_eq!(r.stats().bytes_dropped, 10);
    }

    #[test]
    fn least_recently_active_flows_are_evicted() {
        let mut r = TcpReassembler::new(4, 4096);
        for port in 0..4u16 {
            let src = SocketAddr::new(a().ip(), 1000 + port);
            run(
                &mut r,
                &[seg_from(src, b(), i64::from(port), 0, "", b"pending")],
            );
        }
        // Touch flow 0 so flow 1 becomes the oldest.
        run(
            &mut r,
            &[seg_from(
                SocketAddr::new(a().ip(), 1000),
                b(),
                9,
                7,
                "",
                b"\n",
            )],
        );
        run(
            &mut r,
            &[seg_from(
                SocketAddr::new(a().ip(), 2000),
                b(),
                10,
                0,
                "",
                b"x",
            )],
        );
        let s = r.stats();
        assert_eq!(s.flows_evicted, 1);
        assert_eq!(s.flows_active, 4);
        assert_eq!(s.bytes_dropped, 7); // flow 1's "pending"
        assert!(r
            .flows
            .contains_key(&(SocketAddr::new(a().ip(), 1000), b())));
        assert!(!r
            .flows
            .contains_key(&(SocketAddr::new(a().ip(), 1001), b())));
    }

    #[test]
    fn udp_packets_are_ignored() {
        let mut r = TcpReassembler::new(16, 4096);
        let mut p = seg(1, 0, "", b"x\n");
        p.transport = Transport::Udp;
        p.tcp = None;
        assert!(run(&mut r, &[p]).is_empty());
        assert_eq!(r.stats().segments, 0);
    }
}
