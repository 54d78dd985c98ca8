//! The input is a sequence of small TCP segments, each `[flow+flags, seq offset (2 bytes),
//! length, payload...]`, pushed into one reassembler with a line framer.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use siphon_wire::decode::{Packet, TcpInfo, Transport};
use siphon_wire::tcp::{Framer, Framing, TcpReassembler};

/// Messages end with '\n'; a message starting with '!' is garbage to skip.
struct Lines;

impl Framer for Lines {
    fn frame(&self, buf: &[u8]) -> Framing {
        if buf.first() == Some(&b'!') {
            return Framing::Invalid { skip: 2 };
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => Framing::Complete(i + 1),
            None => Framing::Incomplete,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let addrs: Vec<SocketAddr> = (0..4u16)
        .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060 + i))
        .collect();
    let mut reassembler = TcpReassembler::new(3, 256);
    let mut rest = data;
    let mut ts = 0i64;
    // The first segment's seq base wraps soon, to reach the modular comparisons.
    let base = u32::MAX - 300;
    while let [head, s0, s1, len, tail @ ..] = rest {
        let len = usize::from(*len % 64).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        ts += 1;
        let flow = usize::from(head & 3);
        let seq = base.wrapping_add(u32::from(u16::from_be_bytes([*s0, *s1])));
        let pkt = Packet {
            ts_us: ts,
            src: addrs[flow],
            dst: addrs[(flow + 1) % 4],
            transport: Transport::Tcp,
            payload,
            tcp: Some(TcpInfo {
                seq,
                syn: head & 0x10 != 0,
                fin: head & 0x20 != 0,
                rst: head & 0x40 != 0,
            }),
            reassembled: false,
        };
        reassembler.push(&pkt, &Lines, &mut |m| {
            assert!(!m.bytes.is_empty());
            assert_eq!(m.ts_us, ts);
        });
        assert!(reassembler.stats().flows_active <= 3);
    }
});
