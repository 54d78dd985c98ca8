//! Writing pcap files and building synthetic frames.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use etherparse::{PacketBuilder, PacketBuilderStep};

use crate::link::LinkType;

/// Snapshot length written in the file header; longer frames are cut to it.
pub const SNAPLEN: u32 = 262_144;

/// Largest payload a synthetic frame carries (the IPv4 UDP maximum).
pub const MAX_SYNTH_PAYLOAD: usize = 65_507;

/// Source MAC address of synthetic frames (locally administered).
pub const SYNTH_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC address of synthetic frames (locally administered).
pub const SYNTH_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Writes a microsecond-resolution, little-endian pcap file.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header (microsecond pcap, snaplen 262144) for frames of `link`.
    pub fn new(mut w: W, link: LinkType) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&link.0.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter { w })
    }

    /// Appends one frame captured at `ts_us` (µs since the epoch; times outside what pcap can
    /// hold, 1970 to 2106, are clamped). Data beyond the snapshot length is cut; `orig_len` is raised to at
    /// least the bytes written.
    pub fn write_frame(&mut self, ts_us: i64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let (sec, usec) = match u32::try_from(ts_us.div_euclid(1_000_000)) {
            Ok(sec) => (sec, ts_us.rem_euclid(1_000_000) as u32),
            Err(_) if ts_us < 0 => (0, 0),
            Err(_) => (u32::MAX, 999_999),
        };
        let data = data.get(..SNAPLEN as usize).unwrap_or(data);
        let caplen = data.len() as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&sec.to_le_bytes());
        h[4..8].copy_from_slice(&usec.to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(caplen).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(data)
    }

    /// Flushes and returns the writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Ethernet + IPv4 (both addresses IPv4) or IPv6 (otherwise; IPv4 addresses mapped) header.
fn ip_step(src: &SocketAddr, dst: &SocketAddr) -> PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(SYNTH_SRC_MAC, SYNTH_DST_MAC);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (s, d) => eth.ipv6(v6_octets(s), v6_octets(d), 64),
    }
}

/// An address as IPv6 (an IPv4 one mapped), for frames and records whose other address is
/// IPv6.
fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn cap(payload: &[u8]) -> &[u8] {
    payload.get(..MAX_SYNTH_PAYLOAD).unwrap_or(payload)
}

/// Builds an Ethernet + IPv4/IPv6 + UDP frame (valid checksums) carrying `payload`, for packets
/// whose original frame is not available (HEP-carried, reassembled). Payloads over 65507 bytes
/// are truncated. IPv4 is used when both addresses are IPv4, IPv6 otherwise.
pub fn synth_udp_frame(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    synth_udp_frame_into(src, dst, payload, &mut out);
    out
}

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded with zero),
/// plus `acc`, folded to 16 bits.
///
/// The sum does not depend on byte order (RFC 1071, section 2): 32-bit words are added in
/// native order into a 64-bit total, which cannot overflow below 2^32 words and which the
/// compiler can vectorise, and the folded result is put in network order at the end.
fn ones_complement_sum(data: &[u8], acc: u64) -> u16 {
    let mut chunks = data.chunks_exact(4);
    let mut native: u64 = (&mut chunks)
        .map(|c| u64::from(u32::from_ne_bytes(c.try_into().unwrap_or([0u8; 4]))))
        .sum();
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Padding to a whole word keeps the 16-bit words aligned: chunks start at even offsets.
        let mut last = [0u8; 4];
        last.get_mut(..rest.len())
            .unwrap_or_default()
            .copy_from_slice(rest);
        native += u64::from(u32::from_ne_bytes(last));
    }
    let network = u16::from_be(fold(native));
    fold(u64::from(network) + acc)
}

/// Folds a 64-bit sum to 16 bits with end-around carries.
fn fold(mut acc: u64) -> u16 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// Ethernet + IPv4 + UDP written directly (the common case of HEP-carried SIP): the same
/// bytes as the packet builder, without its per-field work.
fn synth_udp4_into(
    src: std::net::SocketAddrV4,
    dst: std::net::SocketAddrV4,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let udp_len = (8 + payload.len()) as u16;
    let ip_len = 20 + udp_len;
    out.clear();
    out.reserve(42 + payload.len());
    out.extend_from_slice(&SYNTH_DST_MAC);
    out.extend_from_slice(&SYNTH_SRC_MAC);
    out.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40; // don't fragment, as the builder sets it
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let hsum = !ones_complement_sum(&ip, 0);
    ip[10..12].copy_from_slice(&hsum.to_be_bytes());
    out.extend_from_slice(&ip);
    // UDP checksum over the pseudo-header, the UDP header and the payload.
    let mut pseudo = [0u8; 20];
    pseudo[0..4].copy_from_slice(&src.ip().octets());
    pseudo[4..8].copy_from_slice(&dst.ip().octets());
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&udp_len.to_be_bytes());
    pseudo[12..14].copy_from_slice(&src.port().to_be_bytes());
    pseudo[14..16].copy_from_slice(&dst.port().to_be_bytes());
    pseudo[16..18].copy_from_slice(&udp_len.to_be_bytes());
    let head = ones_complement_sum(&pseudo, 0);
    let sum = !ones_complement_sum(payload, u64::from(head));
    // An all-zero result is sent as all ones (zero means "no checksum").
    let sum = if sum == 0 { 0xffff } else { sum };
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&sum.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Length of the header of a [`LinkType::ADDRESSED`] record with IPv4 addresses.
pub const ADDRESSED_V4_HEADER: usize = 13;
/// Length of the header of a [`LinkType::ADDRESSED`] record with IPv6 addresses.
pub const ADDRESSED_V6_HEADER: usize = 37;

/// Writes a [`LinkType::ADDRESSED`] record into `out` (cleared first): what the store keeps
/// of a packet that arrived without its frame (HEP), and what a synthetic frame would say
/// of it, without the Ethernet, IP and UDP or TCP headers. One byte, the IP version (4 or
/// 6) plus 16 for TCP (0 for UDP); the source and destination addresses (4 bytes each for
/// IPv4, 16 for IPv6; an IPv4 address beside an IPv6 one is mapped, as in a synthetic
/// frame); the source and destination ports (big-endian); the payload, cut as a synthetic
/// frame's is. [`crate::decode::Decoder`] reads it back as the packet of
/// [`synth_udp_frame`] or [`synth_tcp_frame`] (sequence number 0); the pcap export writes
/// that frame.
///
/// A collector writes many more packets than it ever exports: this spares it building
/// and checksumming every frame, and its compressor the headers' lengths and checksums,
/// which differ from one packet to the next.
pub fn addressed_payload_into(
    src: SocketAddr,
    dst: SocketAddr,
    tcp: bool,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    out.clear();
    out.reserve(ADDRESSED_V6_HEADER + cap(payload).len());
    let payload = addressed_header_into(src, dst, tcp, payload, out);
    out.extend_from_slice(payload);
}

/// The record of [`addressed_payload_into`] in two parts, for a caller that stores them one
/// after the other without joining them first: writes its header into `out` (cleared first)
/// and returns the part of `payload` that follows it.
pub fn addressed_header_into<'p>(
    src: SocketAddr,
    dst: SocketAddr,
    tcp: bool,
    payload: &'p [u8],
    out: &mut Vec<u8>,
) -> &'p [u8] {
    let payload = cap(payload);
    out.clear();
    let transport = if tcp { 0x10 } else { 0 };
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(4 | transport);
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
        }
        _ => {
            out.push(6 | transport);
            out.extend_from_slice(&v6_octets(src.ip()));
            out.extend_from_slice(&v6_octets(dst.ip()));
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    payload
}

/// [`synth_udp_frame`] into `out` (cleared first), so a caller can reuse one buffer.
pub fn synth_udp_frame_into(src: SocketAddr, dst: SocketAddr, payload: &[u8], out: &mut Vec<u8>) {
    let payload = cap(payload);
    if let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) {
        return synth_udp4_into(s, d, payload, out);
    }
    synth_udp_built_into(src, dst, payload, out);
}

// Out of line: the packet builder takes about 9 KiB of stack, which every IPv4 frame would
// otherwise reserve (and touch) too.
#[inline(never)]
fn synth_udp_built_into(src: SocketAddr, dst: SocketAddr, payload: &[u8], out: &mut Vec<u8>) {
    let builder = ip_step(&src, &dst).udp(src.port(), dst.port());
    out.clear();
    out.reserve(builder.size(payload.len()));
    if builder.write(out, payload).is_err() {
        // Unreachable with the payload capped; an empty frame is the safe answer.
        out.clear();
    }
}

/// Same as [`synth_udp_frame`] for a TCP segment (PSH|ACK, sequence number `seq`).
pub fn synth_tcp_frame(src: SocketAddr, dst: SocketAddr, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    synth_tcp_frame_into(src, dst, seq, payload, &mut out);
    out
}

/// [`synth_tcp_frame`] into `out` (cleared first).
pub fn synth_tcp_frame_into(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let payload = cap(payload);
    let builder = ip_step(&src, &dst)
        .tcp(src.port(), dst.port(), seq, 65_535)
        .psh()
        .ack(0);
    out.clear();
    out.reserve(builder.size(payload.len()));
    if builder.write(out, payload).is_err() {
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame as the packet builder makes it (the reference for the direct IPv4 writer).
    fn built(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let payload = cap(payload);
        let b = ip_step(&src, &dst).udp(src.port(), dst.port());
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn direct_ipv4_frames_equal_the_packet_builders_byte_for_byte() {
        let pairs = [
            ("127.0.0.1:5060", "127.0.0.1:5090"),
            ("10.1.2.3:1", "192.168.255.254:65535"),
            ("255.255.255.255:65535", "0.0.0.0:0"),
        ];
        for (a, b) in pairs {
            let (a, b): (SocketAddr, SocketAddr) = (a.parse().unwrap(), b.parse().unwrap());
            for len in [
                0usize, 1, 2, 3, 7, 8, 9, 15, 16, 17, 641, 1500, 65_507, 70_000,
            ] {
                let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                let mut out = Vec::new();
                synth_udp_frame_into(a, b, &payload, &mut out);
                assert_eq!(out, built(a, b, &payload), "{a} -> {b}, {len} bytes");
            }
            // All ones: a payload whose sum makes the checksum zero is still well formed.
            let ff = vec![0xffu8; 64];
            let mut out = Vec::new();
            synth_udp_frame_into(a, b, &ff, &mut out);
            assert_eq!(out, built(a, b, &ff));
        }
    }
    use crate::capture::CaptureReader;
    use crate::decode::{Decoder, Transport};

    /// One's-complement sum of the bytes (16-bit big-endian words).
    fn ones_sum(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.concat();
        let mut sum: u32 = 0;
        for c in bytes.chunks(2) {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            sum += u32::from(w);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    proptest::proptest! {
        #[test]
        fn ones_complement_sum_matches_the_wordwise_definition(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            acc in 0u64..=0xffff,
        ) {
            let mut sum = u32::from(ones_sum(&[&data])) + acc as u32;
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            // 0 and 0xffff are the same one's-complement number; only a zero total gives 0.
            let got = ones_complement_sum(&data, acc);
            proptest::prop_assert!(
                u32::from(got) == sum || (got == 0xffff && sum == 0) || (got == 0 && sum == 0xffff),
                "{got:#x} vs {sum:#x}"
            );
        }
    }

    /// Checks IP header and transport checksums of a synthetic frame.
    fn checksums_valid(frame: &[u8], proto: u8) -> bool {
        let ip = &frame[14..];
        match ip[0] >> 4 {
            4 => {
                let hlen = usize::from(ip[0] & 0xf) * 4;
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                let seg = &ip[hlen..total];
                let len = (seg.len() as u16).to_be_bytes();
                let pseudo = [&ip[12..20], &[0, proto], &len[..]].concat();
                ones_sum(&[&ip[..hlen]]) == 0xffff && ones_sum(&[&pseudo, seg]) == 0xffff
            }
            6 => {
                let seg = &ip[40..];
                let len = (seg.len() as u32).to_be_bytes();
                let pseudo = [&ip[8..40], &len[..], &[0, 0, 0, proto]].concat();
                ones_sum(&[&pseudo, seg]) == 0xffff
            }
            _ => false,
        }
    }

    #[test]
    fn pcap_writer_output_reads_back_identically() {
        let frames: Vec<(i64, Vec<u8>, u32)> = vec![
            (1_700_000_000_000_001, b"first".to_vec(), 5),
            (1_700_000_000_999_999, vec![7; 1500], 1600),
            (-1, b"before epoch is clamped".to_vec(), 10),
        ];
        let mut w = PcapWriter::new(Vec::new(), LinkType::LINUX_SLL).unwrap();
        for (ts, data, orig) in &frames {
            w.write_frame(*ts, data, *orig).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let mut r = CaptureReader::from_reader(Box::new(std::io::Cursor::new(bytes))).unwrap();
        for (i, (ts, data, orig)) in frames.iter().enumerate() {
            let f = r.next_frame().unwrap().unwrap();
            assert_eq!(f.data, &data[..]);
            assert_eq!(f.link, LinkType::LINUX_SLL);
            assert_eq!(f.orig_len, (*orig).max(data.len() as u32));
            if i < 2 {
                assert_eq!(f.ts_us, *ts);
            } else {
                assert_eq!(f.ts_us, 0, "times before the epoch clamp to it");
            }
        }
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn pcap_writer_cuts_frames_at_the_snaplen() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::ETHERNET).unwrap();
        w.write_frame(0, &vec![1; SNAPLEN as usize + 10], 0)
            .unwrap();
        let bytes = w.into_inner().unwrap();
        let mut r = CaptureReader::from_reader(Box::new(std::io::Cursor::new(bytes))).unwrap();
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(f.data.len(), SNAPLEN as usize);
        assert_eq!(f.orig_len, SNAPLEN);
    }

    #[test]
    fn addressed_records_decode_as_the_synthetic_frames_would() {
        let pairs = [
            ("10.0.0.1:5060", "192.168.1.2:5080"),
            ("[2001:db8::1]:5060", "[2001:db8::2]:5062"),
            ("10.0.0.1:5060", "[2001:db8::2]:5062"),
            ("0.0.0.0:0", "255.255.255.255:65535"),
        ];
        for (a, b) in pairs {
            let (a, b): (SocketAddr, SocketAddr) = (a.parse().unwrap(), b.parse().unwrap());
            for len in [0usize, 1, 13, 1500, 65_507, 70_000] {
                let payload: Vec<u8> = (0..len).map(|i| (i * 11 + len) as u8).collect();
                for tcp in [false, true] {
                    let mut rec = Vec::new();
                    addressed_payload_into(a, b, tcp, &payload, &mut rec);
                    let head = if a.is_ipv4() && b.is_ipv4() {
                        ADDRESSED_V4_HEADER
                    } else {
                        ADDRESSED_V6_HEADER
                    };
                    assert_eq!(rec.len(), head + len.min(MAX_SYNTH_PAYLOAD));
                    let frame = if tcp {
                        synth_tcp_frame(a, b, 0, &payload)
                    } else {
                        synth_udp_frame(a, b, &payload)
                    };
                    if frame.is_empty() {
                        // No TCP frame holds that much; the record holds it all the same.
                        let mut d = Decoder::new();
                        let p = d.decode_raw(7, LinkType::ADDRESSED, &rec).unwrap().unwrap();
                        assert_eq!(p.payload.len(), len.min(MAX_SYNTH_PAYLOAD));
                        continue;
                    }
                    let mut d1 = Decoder::new();
                    let mut d2 = Decoder::new();
                    let got = d1
                        .decode_raw(7, LinkType::ADDRESSED, &rec)
                        .unwrap()
                        .unwrap();
                    let want = d2
                        .decode_raw(7, LinkType::ETHERNET, &frame)
                        .unwrap()
                        .unwrap();
                    let seq =
                        |p: &crate::decode::Packet<'_>| p.tcp.map(|t| (t.seq, t.syn, t.fin, t.rst));
                    assert_eq!(
                        (
                            got.src,
                            got.dst,
                            got.transport,
                            got.payload,
                            seq(&got),
                            got.ts_us
                        ),
                        (
                            want.src,
                            want.dst,
                            want.transport,
                            want.payload,
                            seq(&want),
                            want.ts_us
                        ),
                        "{a} -> {b}, {len} bytes, tcp {tcp}"
                    );
                    // Cut anywhere in the header: an error, never a packet or a panic.
                    for n in 0..head {
                        assert!(d1.decode_raw(7, LinkType::ADDRESSED, &rec[..n]).is_err());
                    }
                }
            }
        }
        // An unknown version or transport is refused.
        for kind in [0u8, 5, 0x24, 0x34, 0xff] {
            let mut rec = vec![kind];
            rec.extend_from_slice(&[0; 40]);
            assert!(
                Decoder::new()
                    .decode_raw(0, LinkType::ADDRESSED, &rec)
                    .is_err(),
                "{kind:#x}"
            );
        }
    }

    #[test]
    fn synth_udp_frame_decodes_back_with_valid_checksums() {
        let cases = [
            ("10.1.2.3:5060", "10.3.2.1:5080"),
            ("[2001:db8::1]:5060", "[2001:db8::2]:5062"),
        ];
        for (s, d) in cases {
            let (src, dst): (SocketAddr, SocketAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let frame = synth_udp_frame(src, dst, b"OPTIONS sip:x SIP/2.0\r\n\r\n");
            assert!(checksums_valid(&frame, 17), "{s}");
            let mut dec = Decoder::new();
            let p = dec
                .decode_raw(5, LinkType::ETHERNET, &frame)
                .unwrap()
                .unwrap();
            assert_eq!((p.src, p.dst, p.transport), (src, dst, Transport::Udp));
            assert_eq!(p.payload, b"OPTIONS sip:x SIP/2.0\r\n\r\n");
        }
    }

    #[test]
    fn synth_frame_with_mixed_families_uses_mapped_ipv6() {
        let src: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let dst: SocketAddr = "[2001:db8::2]:2".parse().unwrap();
        let frame = synth_udp_frame(src, dst, b"x");
        let p = Decoder::new()
            .decode_raw(0, LinkType::ETHERNET, &frame)
            .map(|p| p.map(|p| (p.src, p.dst)))
            .unwrap();
        assert_eq!(p, Some(("[::ffff:10.0.0.1]:1".parse().unwrap(), dst)));
    }

    #[test]
    fn synth_tcp_frame_decodes_back_with_seq_and_valid_checksums() {
        for (s, d) in [
            ("10.1.2.3:5060", "10.3.2.1:40000"),
            ("[::1]:5060", "[::2]:40000"),
        ] {
            let (src, dst): (SocketAddr, SocketAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let frame = synth_tcp_frame(src, dst, 0xfeed_f00d, b"BYE sip:x SIP/2.0\r\n\r\n");
            assert!(checksums_valid(&frame, 6), "{s}");
            let mut dec = Decoder::new();
            let p = dec
                .decode_raw(5, LinkType::ETHERNET, &frame)
                .unwrap()
                .unwrap();
            assert_eq!((p.src, p.dst, p.transport), (src, dst, Transport::Tcp));
            assert_eq!(
                p.tcp.map(|t| (t.seq, t.syn, t.fin, t.rst)),
                Some((0xfeed_f00d, false, false, false))
            );
            assert_eq!(p.payload, b"BYE sip:x SIP/2.0\r\n\r\n");
            assert_eq!(
                frame[14 + if src.is_ipv4() { 20 } else { 40 } + 13],
                0x18,
                "PSH|ACK"
            );
        }
    }

    #[test]
    fn synth_payload_over_the_udp_maximum_is_truncated() {
        let src: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let dst: SocketAddr = "10.0.0.2:2".parse().unwrap();
        let big = vec![0x55; 70_000];
        let frame = synth_udp_frame(src, dst, &big);
        assert_eq!(frame.len(), 14 + 20 + 8 + MAX_SYNTH_PAYLOAD);
        assert!(checksums_valid(&frame, 17));
        let mut dec = Decoder::new();
        let p = dec
            .decode_raw(0, LinkType::ETHERNET, &frame)
            .unwrap()
            .unwrap();
        assert_eq!(p.payload.len(), MAX_SYNTH_PAYLOAD);
    }
}
