#![no_main]
//! The pipeline and its correlator under hostile traffic: a sequence of UDP datagrams between a
//! few addresses (SIP on 5060, anything on other ports) and clock steps, with small limits so
//! that eviction, timeouts, late messages and re-opened calls all run. Checks what the `Sink`
//! contract promises: a call is opened before its first record, nothing is left open after
//! `finish`.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use siphon_calls::{CallRef, CallSummary};
use siphon_ingest::{IngestConfig, Pipeline, Record, Sink};
use siphon_wire::capture::Frame;
use siphon_wire::link::LinkType;
use siphon_wire::write::synth_udp_frame;

#[derive(Default)]
struct Checked {
    opened: HashSet<CallRef>,
    completed: HashMap<Vec<u8>, CallSummary>,
}

impl Sink for Checked {
    fn record(&mut self, rec: &Record<'_>) {
        assert!(rec.call_ref == 0 || self.opened.contains(&rec.call_ref));
    }
    fn call_opened(&mut self, call_ref: CallRef, _call_id: &[u8], _ts_us: i64) {
        self.opened.insert(call_ref);
    }
    fn call_completed(&mut self, summary: Box<CallSummary>) {
        assert!(self.opened.contains(&summary.call_ref));
        self.completed.insert(summary.call_id.clone(), *summary);
    }
    fn resolve(&mut self, call_id: &[u8]) -> Option<CallSummary> {
        self.completed.get(call_id).cloned()
    }
}

fn addr(i: u8, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1 + (i & 3)), port))
}

fuzz_target!(|data: &[u8]| {
    let mut cfg = IngestConfig::default();
    cfg.calls.pending_timeout_s = 2;
    cfg.calls.active_timeout_s = 3;
    cfg.calls.closing_grace_s = 1;
    cfg.calls.non_invite_timeout_s = 1;
    cfg.calls.id_cache_size = 4;
    cfg.calls.max_open_calls = 8;
    cfg.calls.max_streams_per_call = 4;
    let mut pipe = Pipeline::new(cfg, 1);
    let mut sink = Checked::default();
    let mut clock: i64 = 1_700_000_000_000_000;
    let mut rest = data;
    // Each step: a control byte (0xf0 and up: the clock moves on by its low bits in half
    // seconds and the state machine runs), else a datagram: the control byte picks the
    // addresses and which side is SIP's 5060 (or, with bit 6, an RTP-like pair of ports), then
    // 2 bytes of port, a length byte (in 4-byte units) and the payload.
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        if c >= 0xf0 {
            clock += i64::from(c & 0x0f) * 500_000;
            pipe.tick(clock, &mut sink);
            continue;
        }
        let (src_port, dst_port, tail) = match rest {
            [a, b, tail @ ..] if c & 0x40 == 0 => {
                let p = u16::from_be_bytes([*a, *b]);
                if c & 0x20 == 0 {
                    (5060, p, tail)
                } else {
                    (p, 5060, tail)
                }
            }
            [a, b, tail @ ..] => (
                u16::from_be_bytes([*a, *b]),
                4000 + u16::from(c & 0x1f) * 2,
                tail,
            ),
            _ => break,
        };
        let Some((&len, tail)) = tail.split_first() else {
            break;
        };
        let n = (usize::from(len) * 4).min(tail.len());
        let (payload, tail) = tail.split_at(n);
        rest = tail;
        clock += 1_000;
        let frame = synth_udp_frame(addr(c, src_port), addr(c >> 2, dst_port), payload);
        pipe.push_frame(
            &Frame {
                ts_us: clock,
                link: LinkType::ETHERNET,
                data: &frame,
                orig_len: frame.len() as u32,
                interface: 0,
            },
            &mut sink,
        );
    }
    pipe.finish("end of input", &mut sink);
    assert_eq!(pipe.open_calls(), 0);
});
