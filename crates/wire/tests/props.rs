//! Property tests: no input bytes panic; what is written reads back the same.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use siphon_wire::capture::CaptureReader;
use siphon_wire::decode::{Decoder, Packet, TcpInfo, Transport};
use siphon_wire::link::LinkType;
use siphon_wire::tcp::{Framer, Framing, TcpReassembler};
use siphon_wire::write::{synth_tcp_frame, synth_udp_frame, PcapWriter};

const LINKS: [LinkType; 9] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType(147),
];

fn read_everything(bytes: Vec<u8>) {
    if let Ok(mut r) = CaptureReader::from_reader(Box::new(Cursor::new(bytes))) {
        let mut d = Decoder::new();
        let mut errors = 0;
        loop {
            match r.next_frame() {
                Ok(Some(f)) => {
                    let _ = d.decode(&f);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    errors += 1;
                }
            }
        }
        assert!(errors <= 1);
        assert!(r.next_frame().unwrap().is_none());
    }
}

/// Plausible starts of capture files so random tails reach the record parsers.
fn prefixes() -> Vec<Vec<u8>> {
    let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes());
    let mut ng = vec![
        0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
    ];
    ng.extend_from_slice(&[0xff; 8]);
    ng.extend_from_slice(&[28, 0, 0, 0]);
    let mut idb = vec![1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 4, 0, 20, 0, 0, 0];
    let mut ng_idb = ng.clone();
    ng_idb.append(&mut idb);
    vec![Vec::new(), pcap, ng, ng_idb]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Messages are lines ending in '\n'; '!' starts garbage.
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

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
    ]
}

/// IPv4 address families must match for the frame to stay IPv4; mixed pairs become mapped IPv6.
fn same_family(a: SocketAddr, b: SocketAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic_the_capture_reader(
        which in 0usize..4,
        tail in proptest::collection::vec(any::<u8>(), 0..2048),
        zip in any::<bool>(),
    ) {
        let mut bytes = prefixes()[which].clone();
        bytes.extend_from_slice(&tail);
        if zip {
            bytes = gzip(&bytes);
        }
        read_everything(bytes);
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(
        link in 0usize..LINKS.len(),
        data in proptest::collection::vec(any::<u8>(), 0..512),
        ts in any::<i64>(),
    ) {
        let mut d = Decoder::with_limits(4, 1_000);
        let _ = d.decode_raw(ts, LINKS[link], &data);
        let _ = d.decode_raw(ts, LINKS[link], &data);
        prop_assert_eq!(d.stats().frames, 2);
    }

    #[test]
    fn random_ip_payloads_never_panic_the_decoder(
        head in proptest::collection::vec(any::<u8>(), 40..41),
        tail in proptest::collection::vec(any::<u8>(), 0..256),
        v6 in any::<bool>(),
        frags in proptest::collection::vec(any::<u16>(), 1..8),
    ) {
        // Valid-looking IP headers (version and lengths right) with random fields and payload.
        let mut d = Decoder::with_limits(4, 1_000_000);
        for (i, word) in frags.iter().enumerate() {
            let mut p = head.clone();
            let total = p.len() + tail.len();
            if v6 {
                p[0] = 0x60;
                p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
                p[6] = [0, 17, 6, 44, 43, 60, 4, 41][i % 8];
            } else {
                p[0] = 0x45;
                p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                p[6..8].copy_from_slice(&word.to_be_bytes());
                p[9] = [17, 6, 4, 41, 1][i % 5];
                p.truncate(20);
                p.extend_from_slice(&head[20..]);
            }
            p.extend_from_slice(&tail);
            let _ = d.decode_raw(i as i64, LinkType::RAW, &p);
        }
    }

    #[test]
    fn random_segments_never_panic_the_tcp_reassembler(
        segs in proptest::collection::vec(
            (0u8..4, any::<u32>(), 0u32..64, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)),
            0..64,
        ),
        base in any::<u32>(),
    ) {
        let mut r = TcpReassembler::new(3, 64);
        let addrs: Vec<SocketAddr> = (0..4u16)
            .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000 + i))
            .collect();
        let mut delivered = 0usize;
        for (flow, far, near, flags, payload) in &segs {
            // Mostly near sequence numbers so reassembly paths are exercised; some far ones.
            let seq = if far % 8 == 0 { *far } else { base.wrapping_add(*near) };
            let pkt = Packet {
                ts_us: 0,
                src: addrs[usize::from(*flow)],
                dst: addrs[usize::from((*flow + 1) % 4)],
                transport: Transport::Tcp,
                payload,
                tcp: Some(TcpInfo { seq, syn: flags & 1 != 0 && flags & 8 != 0, fin: flags & 2 != 0 && flags & 16 != 0, rst: flags & 4 != 0 && flags & 32 != 0 }),
                reassembled: false,
            };
            r.push(&pkt, &Lines, &mut |m| {
                assert!(!m.bytes.is_empty());
                delivered += m.bytes.len();
            });
            prop_assert!(r.stats().flows_active <= 3);
        }
        let total: usize = segs.iter().map(|s| s.4.len()).sum();
        prop_assert!(delivered <= total);
    }

    #[test]
    fn pcap_writer_frames_read_back_the_same(
        frames in proptest::collection::vec(
            (0i64..4_000_000_000_000_000, proptest::collection::vec(any::<u8>(), 0..300), any::<u32>()),
            0..20,
        ),
        link in any::<u16>(),
    ) {
        let mut w = PcapWriter::new(Vec::new(), LinkType(u32::from(link))).unwrap();
        for (ts, data, orig) in &frames {
            w.write_frame(*ts, data, *orig).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let mut r = CaptureReader::from_reader(Box::new(Cursor::new(bytes))).unwrap();
        for (ts, data, orig) in &frames {
            let f = r.next_frame().unwrap().unwrap();
            prop_assert_eq!(f.ts_us, *ts);
            prop_assert_eq!(f.data, &data[..]);
            prop_assert_eq!(f.orig_len, (*orig).max(data.len() as u32));
            prop_assert_eq!(f.link, LinkType(u32::from(link)));
        }
        prop_assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn synthetic_frames_decode_back(
        src in addr(),
        dst in addr(),
        seq in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        prop_assume!(same_family(src, dst));
        let mut d = Decoder::new();
        let udp = synth_udp_frame(src, dst, &payload);
        let p = d.decode_raw(1, LinkType::ETHERNET, &udp).unwrap().unwrap();
        prop_assert_eq!((p.src, p.dst, p.payload, p.transport), (src, dst, &payload[..], Transport::Udp));
        let tcp = synth_tcp_frame(src, dst, seq, &payload);
        let p = d.decode_raw(1, LinkType::ETHERNET, &tcp).unwrap().unwrap();
        prop_assert_eq!((p.src, p.dst, p.payload), (src, dst, &payload[..]));
        prop_assert_eq!(p.tcp.map(|t| t.seq), Some(seq));
    }

    #[test]
    fn random_fragmentation_in_any_order_reassembles(
        payload in proptest::collection::vec(any::<u8>(), 1..3000),
        size8 in 1usize..64,
        order in proptest::collection::vec(any::<u32>(), 0..400),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        v6 in any::<bool>(),
    ) {
        let src = SocketAddr::new(if v6 { "2001:db8::1".parse().unwrap() } else { IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)) }, 7);
        let dst = SocketAddr::new(if v6 { "2001:db8::2".parse().unwrap() } else { IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)) }, 9);
        let whole = synth_udp_frame(src, dst, &payload);
        let ip = &whole[14..];
        let (hlen, next) = if v6 { (40, 17u8) } else { (20, 17u8) };
        let datagram = &ip[hlen..];
        let size = size8 * 8;
        let chunks: Vec<&[u8]> = datagram.chunks(size).collect();
        let mut frames: Vec<Vec<u8>> = chunks.iter().enumerate().map(|(i, c)| {
            let more = i + 1 < chunks.len();
            let off = (i * size) as u16;
            if v6 {
                let mut fh = vec![next, 0];
                fh.extend_from_slice(&(off | u16::from(more)).to_be_bytes());
                fh.extend_from_slice(&77u32.to_be_bytes());
                fh.extend_from_slice(c);
                let mut p = ip[..40].to_vec();
                p[4..6].copy_from_slice(&(fh.len() as u16).to_be_bytes());
                p[6] = 44;
                p.extend_from_slice(&fh);
                p
            } else {
                let mut p = ip[..20].to_vec();
                p[2..4].copy_from_slice(&((20 + c.len()) as u16).to_be_bytes());
                p[4..6].copy_from_slice(&77u16.to_be_bytes());
                p[6..8].copy_from_slice(&((off / 8) | if more { 0x2000 } else { 0 }).to_be_bytes());
                p.extend_from_slice(c);
                p
            }
        }).collect();
        // Shuffle by the random keys, then repeat some fragments.
        let mut keyed: Vec<(u32, Vec<u8>)> = frames.drain(..).enumerate()
            .map(|(i, f)| (order.get(i).copied().unwrap_or(i as u32), f)).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let mut frames: Vec<Vec<u8>> = keyed.into_iter().map(|(_, f)| f).collect();
        for d in &dups {
            let f = frames[d.index(frames.len())].clone();
            let at = d.index(frames.len());
            frames.insert(at, f);
        }
        let mut dec = Decoder::new();
        let mut done = Vec::new();
        for f in &frames {
            if let Some(p) = dec.decode_raw(3, LinkType::RAW, f).unwrap() {
                prop_assert_eq!((p.src, p.dst), (src, dst));
                prop_assert_eq!(p.reassembled, chunks.len() > 1);
                done.push(p.payload.to_vec());
            }
        }
        // Exactly one completion unless a duplicate of a fragment arrives after it completed,
        // which starts a new (never finished) reassembly.
        prop_assert!(!done.is_empty());
        prop_assert_eq!(&done[0], &payload);
    }

    #[test]
    fn shuffled_and_repeated_segments_give_back_the_messages_in_order(
        lines in proptest::collection::vec(proptest::collection::vec(b'a'..=b'z', 0..30), 1..20),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        keys in proptest::collection::vec(0u32..8, 0..60),
        repeats in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        isn in any::<u32>(),
    ) {
        let messages: Vec<Vec<u8>> = lines.into_iter().map(|mut l| { l.push(b'\n'); l }).collect();
        let stream: Vec<u8> = messages.concat();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len())).collect();
        points.extend([0, stream.len()]);
        points.sort_unstable();
        points.dedup();
        // Segments (offset, bytes); shuffled locally: the sort key adds a small random jitter.
        let mut segs: Vec<(usize, &[u8])> = points.windows(2).map(|w| (w[0], &stream[w[0]..w[1]])).collect();
        let mut keyed: Vec<(u32, (usize, &[u8]))> = segs.drain(..).enumerate()
            .map(|(i, s)| (i as u32 + keys.get(i).copied().unwrap_or(0), s)).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let mut order: Vec<(usize, &[u8])> = keyed.into_iter().map(|(_, s)| s).collect();
        for r in &repeats {
            let s = order[r.index(order.len())];
            order.insert(r.index(order.len() + 1), s);
        }
        let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        let b = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 2);
        let pkt = |seq: u32, syn: bool, payload: &'static [u8]| Packet {
            ts_us: 0, src: a, dst: b, transport: Transport::Tcp, payload,
            tcp: Some(TcpInfo { seq, syn, fin: false, rst: false }), reassembled: false,
        };
        let mut r = TcpReassembler::new(4, 1 << 20);
        let mut got: Vec<Vec<u8>> = Vec::new();
        r.push(&pkt(isn, true, b""), &Lines, &mut |m| got.push(m.bytes.to_vec()));
        for (off, bytes) in order {
            let p = Packet { payload: bytes, ..pkt(isn.wrapping_add(1).wrapping_add(off as u32), false, b"") };
            r.push(&p, &Lines, &mut |m| got.push(m.bytes.to_vec()));
        }
        prop_assert_eq!(got, messages);
        prop_assert_eq!(r.stats().gaps_skipped, 0);
        prop_assert_eq!(r.stats().bytes_dropped, 0);
    }
}
