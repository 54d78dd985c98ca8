//! Link, IP and UDP/TCP decoding with IP fragment reassembly.
//!
//! [`Decoder::decode`] turns one captured frame into at most one UDP datagram or TCP segment
//! ([`Packet`]) whose payload borrows the frame, or the decoder's reassembly buffer when IP
//! fragments were joined. A frame that needs no reassembly is decoded without allocating.
//!
//! Links: Ethernet II with any number (up to 4) of 802.1Q / 802.1ad (0x8100, 0x88a8, 0x9100,
//! 0x9200) tags, Linux cooked v1 and v2, raw IP, BSD null and OpenBSD loop. Network: IPv4,
//! IPv6 with hop-by-hop / routing / destination-options / fragment / authentication headers,
//! and IP-in-IP (IPv4 protocol 4, protocol 41) up to two tunnel levels, reporting the
//! innermost addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use etherparse::{
    err, Ethernet2HeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};

use crate::capture::Frame;
use crate::defrag::{DefragPool, FragKey};
use crate::link::LinkType;

/// Transport protocol of a decoded packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP datagram.
    Udp,
    /// TCP segment.
    Tcp,
}

/// The TCP header fields stream reassembly needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// Sequence number of the first payload byte (of the SYN when `syn`).
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
}

/// A UDP datagram or TCP segment with its addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture time in microseconds since the Unix epoch (of the last fragment when reassembled).
    pub ts_us: i64,
    /// Source address and port (innermost IP header when tunnelled).
    pub src: SocketAddr,
    /// Destination address and port (innermost IP header when tunnelled).
    pub dst: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// UDP or TCP payload.
    pub payload: &'a [u8],
    /// TCP header fields; `None` for UDP.
    pub tcp: Option<TcpInfo>,
    /// True when IP fragments were joined to make this packet.
    pub reassembled: bool,
}

/// Why a frame gave no packet. Several are normal events on a busy link (`not_ip`,
/// `unsupported_ip_proto`), all are counted in [`DecodeStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The link-layer header is cut short.
    TruncatedLink,
    /// The capture's link type is not one this decoder understands.
    UnsupportedLink,
    /// The link layer carries something other than IPv4/IPv6 (ARP, STP, LLC, ...).
    NotIp,
    /// An IP header or the IP payload is cut short.
    TruncatedIp,
    /// An IP header is malformed (wrong version, lengths inconsistent).
    BadIpHeader,
    /// The IP payload is neither UDP nor TCP (ICMP, ESP, ...).
    UnsupportedIpProto,
    /// The UDP header or payload is cut short.
    TruncatedUdp,
    /// The UDP length field is smaller than the header.
    BadUdpHeader,
    /// The TCP header is cut short.
    TruncatedTcp,
    /// The TCP data offset is smaller than the header.
    BadTcpHeader,
    /// A fragment overlaps data already received with different bytes; the datagram is dropped.
    FragmentOverlap,
    /// Fragments would make a datagram over 64 KiB; the datagram is dropped.
    FragmentTooLarge,
    /// A fragment is inconsistent (unaligned length, conflicting end).
    BadFragment,
    /// A reassembled datagram contains another fragment (tunnelled fragments of fragments).
    NestedFragment,
    /// More than two levels of IP-in-IP.
    TunnelTooDeep,
    /// More IPv6 extension headers than the decoder follows (8).
    TooManyExtensionHeaders,
}

impl DecodeError {
    /// Number of variants (size of [`DecodeStats::errors`]).
    pub const COUNT: usize = 16;

    /// Every variant, in declaration order.
    pub const ALL: [DecodeError; DecodeError::COUNT] = [
        DecodeError::TruncatedLink,
        DecodeError::UnsupportedLink,
        DecodeError::NotIp,
        DecodeError::TruncatedIp,
        DecodeError::BadIpHeader,
        DecodeError::UnsupportedIpProto,
        DecodeError::TruncatedUdp,
        DecodeError::BadUdpHeader,
        DecodeError::TruncatedTcp,
        DecodeError::BadTcpHeader,
        DecodeError::FragmentOverlap,
        DecodeError::FragmentTooLarge,
        DecodeError::BadFragment,
        DecodeError::NestedFragment,
        DecodeError::TunnelTooDeep,
        DecodeError::TooManyExtensionHeaders,
    ];

    /// Stable snake_case label.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TruncatedLink => "truncated_link",
            DecodeError::UnsupportedLink => "unsupported_link",
            DecodeError::NotIp => "not_ip",
            DecodeError::TruncatedIp => "truncated_ip",
            DecodeError::BadIpHeader => "bad_ip_header",
            DecodeError::UnsupportedIpProto => "unsupported_ip_proto",
            DecodeError::TruncatedUdp => "truncated_udp",
            DecodeError::BadUdpHeader => "bad_udp_header",
            DecodeError::TruncatedTcp => "truncated_tcp",
            DecodeError::BadTcpHeader => "bad_tcp_header",
            DecodeError::FragmentOverlap => "fragment_overlap",
            DecodeError::FragmentTooLarge => "fragment_too_large",
            DecodeError::BadFragment => "bad_fragment",
            DecodeError::NestedFragment => "nested_fragment",
            DecodeError::TunnelTooDeep => "tunnel_too_deep",
            DecodeError::TooManyExtensionHeaders => "too_many_extension_headers",
        }
    }

    /// Position in [`DecodeError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for DecodeError {}

/// Counters kept by a [`Decoder`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames given to the decoder.
    pub frames: u64,
    /// UDP datagrams produced.
    pub udp: u64,
    /// TCP segments produced.
    pub tcp: u64,
    /// IP fragments seen.
    pub fragments: u64,
    /// Fragments stored for reassembly (not counting duplicates and rejected ones).
    pub fragments_held: u64,
    /// Exact duplicate fragments ignored.
    pub fragments_duplicate: u64,
    /// Datagrams completed from fragments.
    pub reassembled: u64,
    /// Reassemblies dropped to make room (the oldest when the in-flight limit is reached).
    pub reassemblies_evicted: u64,
    /// Reassemblies dropped because they did not complete within the timeout (capture time).
    pub reassemblies_expired: u64,
    /// Reassemblies in flight right now.
    pub reassemblies_in_flight: u64,
    /// Errors by kind, indexed by [`DecodeError::index`].
    pub errors: [u64; DecodeError::COUNT],
}

impl DecodeStats {
    /// How many frames failed with `e`.
    pub fn error_count(&self, e: DecodeError) -> u64 {
        self.errors.get(e.index()).copied().unwrap_or(0)
    }

    /// Non-zero error counts by reason label.
    pub fn error_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DecodeError::ALL
            .iter()
            .map(|e| (e.reason(), self.error_count(*e)))
            .filter(|(_, n)| *n > 0)
    }
}

/// Default limit of reassemblies in flight.
pub const DEFAULT_MAX_REASSEMBLIES: usize = 1024;
/// Default reassembly timeout, in microseconds of capture time.
pub const DEFAULT_REASSEMBLY_TIMEOUT_US: i64 = 30_000_000;
/// Largest datagram reassembled (IP payload bytes).
pub const MAX_DATAGRAM: u32 = 65_535;

/// Frame decoder with IP reassembly state and counters.
#[derive(Debug)]
pub struct Decoder {
    pool: DefragPool,
    stats: DecodeStats,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with at most 1024 reassemblies in flight, 64 KiB per datagram and a 30 s
    /// timeout measured in capture time; the oldest reassembly is evicted (and counted) first.
    pub fn new() -> Decoder {
        Decoder::with_limits(DEFAULT_MAX_REASSEMBLIES, DEFAULT_REASSEMBLY_TIMEOUT_US)
    }

    /// A decoder with other reassembly bounds (`max_reassemblies` at least 1).
    pub fn with_limits(max_reassemblies: usize, timeout_us: i64) -> Decoder {
        Decoder {
            pool: DefragPool::new(max_reassemblies.max(1), MAX_DATAGRAM, timeout_us),
            stats: DecodeStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Decode one frame. `Ok(None)` when the frame was an IP fragment held for reassembly.
    /// When reassembly completes, the returned packet's payload borrows the decoder's buffer.
    pub fn decode<'a>(&'a mut self, frame: &Frame<'a>) -> Result<Option<Packet<'a>>, DecodeError> {
        self.decode_raw(frame.ts_us, frame.link, frame.data)
    }

    /// Decode one frame given as link type and bytes.
    pub fn decode_raw<'a>(
        &'a mut self,
        ts_us: i64,
        link: LinkType,
        data: &'a [u8],
    ) -> Result<Option<Packet<'a>>, DecodeError> {
        self.stats.frames += 1;
        let step = walk_frame(ts_us, link, data);
        let frag = match step {
            Ok(Step::Done(p)) => {
                count_packet(&mut self.stats, &p);
                return Ok(Some(p));
            }
            Ok(Step::Fragment(f)) => f,
            Err(e) => {
                count_error(&mut self.stats, e);
                return Err(e);
            }
        };
        self.stats.fragments += 1;
        let complete = self.pool.add(
            ts_us,
            frag.key,
            frag.offset,
            frag.more,
            frag.data,
            &mut self.stats,
        );
        self.stats.reassemblies_in_flight = self.pool.in_flight() as u64;
        match complete {
            Ok(false) => Ok(None),
            Ok(true) => {
                self.stats.reassembled += 1;
                let at = At {
                    ts_us,
                    src: frag.src,
                    dst: frag.dst,
                    v6: frag.v6,
                    depth: frag.depth,
                    reassembled: true,
                };
                match walk_proto(frag.proto, self.pool.output(), at) {
                    Ok(Step::Done(p)) => {
                        count_packet(&mut self.stats, &p);
                        Ok(Some(p))
                    }
                    Ok(Step::Fragment(_)) => {
                        count_error(&mut self.stats, DecodeError::NestedFragment);
                        Err(DecodeError::NestedFragment)
                    }
                    Err(e) => {
                        count_error(&mut self.stats, e);
                        Err(e)
                    }
                }
            }
            Err(e) => {
                count_error(&mut self.stats, e);
                Err(e)
            }
        }
    }
}

fn count_packet(stats: &mut DecodeStats, p: &Packet<'_>) {
    match p.transport {
        Transport::Udp => stats.udp += 1,
        Transport::Tcp => stats.tcp += 1,
    }
}

fn count_error(stats: &mut DecodeStats, e: DecodeError) {
    if let Some(n) = stats.errors.get_mut(e.index()) {
        *n += 1;
    }
}

/// Outcome of walking a frame's headers.
enum Step<'a> {
    Done(Packet<'a>),
    Fragment(Frag<'a>),
}

/// An IP fragment to hand to the reassembly pool.
struct Frag<'a> {
    key: FragKey,
    offset: u32,
    more: bool,
    data: &'a [u8],
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    v6: bool,
    depth: u8,
}

/// Context of an IP payload: its addresses and where it sits.
#[derive(Clone, Copy)]
struct At {
    ts_us: i64,
    src: IpAddr,
    dst: IpAddr,
    v6: bool,
    /// Tunnel level: 0 for the outermost IP header.
    depth: u8,
    reassembled: bool,
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const MAX_VLAN_TAGS: usize = 4;
const MAX_TUNNEL_DEPTH: u8 = 2;
const MAX_EXT_HEADERS: usize = 8;

const PROTO_HOPOPT: u8 = 0;
const PROTO_IPIP: u8 = 4;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_IPV6: u8 = 41;
const PROTO_ROUTING: u8 = 43;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_AH: u8 = 51;
const PROTO_DSTOPTS: u8 = 60;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(s.try_into().ok()?))
}

fn walk_frame(ts_us: i64, link: LinkType, data: &[u8]) -> Result<Step<'_>, DecodeError> {
    let top = |v6: bool| At {
        ts_us,
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        v6,
        depth: 0,
        reassembled: false,
    };
    let (ethertype, rest) = match link {
        LinkType::ETHERNET => {
            let eth =
                Ethernet2HeaderSlice::from_slice(data).map_err(|_| DecodeError::TruncatedLink)?;
            let rest = data.get(eth.slice().len()..).unwrap_or_default();
            (eth.ether_type().0, rest)
        }
        LinkType::LINUX_SLL => {
            let proto = be16(data, 14).ok_or(DecodeError::TruncatedLink)?;
            (proto, data.get(16..).unwrap_or_default())
        }
        LinkType::LINUX_SLL2 => {
            if data.len() < 20 {
                return Err(DecodeError::TruncatedLink);
            }
            let proto = be16(data, 0).ok_or(DecodeError::TruncatedLink)?;
            (proto, data.get(20..).unwrap_or_default())
        }
        LinkType::NULL | LinkType::LOOP => {
            let fam: [u8; 4] = data
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or(DecodeError::TruncatedLink)?;
            let rest = data.get(4..).unwrap_or_default();
            let (le, be) = (u32::from_le_bytes(fam), u32::from_be_bytes(fam));
            return match (le, be) {
                (2, _) | (_, 2) => walk_v4(rest, top(false)),
                (24 | 28 | 30, _) | (_, 24 | 28 | 30) => walk_v6(rest, top(true)),
                _ => Err(DecodeError::NotIp),
            };
        }
        LinkType::RAW => return walk_ip(data, top(false)),
        LinkType::IPV4 => return walk_v4(data, top(false)),
        LinkType::IPV6 => return walk_v6(data, top(true)),
        LinkType::ADDRESSED => return walk_addressed(ts_us, data),
        _ => return Err(DecodeError::UnsupportedLink),
    };
    walk_ethertype(ethertype, rest, top(false))
}

/// A [`LinkType::ADDRESSED`] record (see [`crate::write::addressed_payload_into`]).
fn walk_addressed(ts_us: i64, data: &[u8]) -> Result<Step<'_>, DecodeError> {
    let (&kind, rest) = data.split_first().ok_or(DecodeError::TruncatedLink)?;
    let (src, dst, rest) = match kind & 0x0f {
        4 => {
            let (s, d, rest) = addr_pair::<4>(rest)?;
            (IpAddr::from(s), IpAddr::from(d), rest)
        }
        6 => {
            let (s, d, rest) = addr_pair::<16>(rest)?;
            (IpAddr::from(s), IpAddr::from(d), rest)
        }
        _ => return Err(DecodeError::NotIp),
    };
    let (ports, payload) = rest
        .split_first_chunk::<4>()
        .ok_or(DecodeError::TruncatedUdp)?;
    let src = SocketAddr::new(src, u16::from_be_bytes([ports[0], ports[1]]));
    let dst = SocketAddr::new(dst, u16::from_be_bytes([ports[2], ports[3]]));
    let (transport, tcp) = match kind >> 4 {
        0 => (Transport::Udp, None),
        1 => (
            Transport::Tcp,
            Some(TcpInfo {
                seq: 0,
                syn: false,
                fin: false,
                rst: false,
            }),
        ),
        _ => return Err(DecodeError::UnsupportedIpProto),
    };
    Ok(Step::Done(Packet {
        ts_us,
        src,
        dst,
        transport,
        payload,
        tcp,
        reassembled: false,
    }))
}

/// Source and destination addresses of `N` bytes, and the bytes after them.
type AddrPair<'a, const N: usize> = ([u8; N], [u8; N], &'a [u8]);

/// Two addresses of `N` bytes at the start of `b`, and what follows them.
fn addr_pair<const N: usize>(b: &[u8]) -> Result<AddrPair<'_, N>, DecodeError> {
    let (s, rest) = b.split_first_chunk::<N>().ok_or(DecodeError::TruncatedIp)?;
    let (d, rest) = rest
        .split_first_chunk::<N>()
        .ok_or(DecodeError::TruncatedIp)?;
    Ok((*s, *d, rest))
}

fn walk_ethertype(mut ethertype: u16, mut data: &[u8], at: At) -> Result<Step<'_>, DecodeError> {
    let mut tags = 0;
    while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100 | 0x9200) {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Err(DecodeError::NotIp);
        }
        let vlan =
            SingleVlanHeaderSlice::from_slice(data).map_err(|_| DecodeError::TruncatedLink)?;
        ethertype = vlan.ether_type().0;
        data = data.get(vlan.slice().len()..).unwrap_or_default();
    }
    match ethertype {
        ETH_IPV4 => walk_v4(data, at),
        ETH_IPV6 => walk_v6(data, At { v6: true, ..at }),
        _ => Err(DecodeError::NotIp),
    }
}

/// IP header of either version, chosen by the version nibble.
fn walk_ip(data: &[u8], at: At) -> Result<Step<'_>, DecodeError> {
    match data.first().map(|b| b >> 4) {
        None => Err(DecodeError::TruncatedIp),
        Some(4) => walk_v4(data, at),
        Some(6) => walk_v6(data, at),
        Some(_) => Err(DecodeError::BadIpHeader),
    }
}

fn walk_v4(data: &[u8], at: At) -> Result<Step<'_>, DecodeError> {
    let h = Ipv4HeaderSlice::from_slice(data).map_err(|e| match e {
        err::ipv4::HeaderSliceError::Len(_) => DecodeError::TruncatedIp,
        err::ipv4::HeaderSliceError::Content(_) => DecodeError::BadIpHeader,
    })?;
    let hlen = h.slice().len();
    let total = match usize::from(h.total_len()) {
        // Captured before segmentation offload filled it in.
        0 => data.len(),
        t if t < hlen => return Err(DecodeError::BadIpHeader),
        t if t > data.len() => return Err(DecodeError::TruncatedIp),
        t => t,
    };
    let payload = data.get(hlen..total).ok_or(DecodeError::TruncatedIp)?;
    let src = IpAddr::V4(h.source_addr());
    let dst = IpAddr::V4(h.destination_addr());
    let proto = h.protocol().0;
    let at = At {
        src,
        dst,
        v6: false,
        ..at
    };
    let offset = u32::from(h.fragments_offset().byte_offset());
    if h.more_fragments() || offset != 0 {
        let mut k_src = [0u8; 16];
        let mut k_dst = [0u8; 16];
        k_src[..4].copy_from_slice(&h.source());
        k_dst[..4].copy_from_slice(&h.destination());
        return Ok(Step::Fragment(Frag {
            key: FragKey {
                v6: false,
                src: k_src,
                dst: k_dst,
                id: u32::from(h.identification()),
                proto,
            },
            offset,
            more: h.more_fragments(),
            data: payload,
            proto,
            src,
            dst,
            v6: false,
            depth: at.depth,
        }));
    }
    walk_proto(proto, payload, at)
}

fn walk_v6(data: &[u8], at: At) -> Result<Step<'_>, DecodeError> {
    let h = Ipv6HeaderSlice::from_slice(data).map_err(|e| match e {
        err::ipv6::HeaderSliceError::Len(_) => DecodeError::TruncatedIp,
        err::ipv6::HeaderSliceError::Content(_) => DecodeError::BadIpHeader,
    })?;
    let hlen = h.slice().len();
    let end = match usize::from(h.payload_length()) {
        // Jumbogram or segmentation offload: the capture length decides.
        0 => data.len(),
        n => hlen.checked_add(n).ok_or(DecodeError::BadIpHeader)?,
    };
    if end > data.len() {
        return Err(DecodeError::TruncatedIp);
    }
    let payload = data.get(hlen..end).ok_or(DecodeError::TruncatedIp)?;
    let at = At {
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        v6: true,
        ..at
    };
    walk_v6_exts(h.next_header().0, payload, at, h.source(), h.destination())
}

/// Follows IPv6 extension headers, then hands the upper layer to [`walk_proto`].
fn walk_v6_exts(
    mut next: u8,
    mut data: &[u8],
    at: At,
    src: [u8; 16],
    dst: [u8; 16],
) -> Result<Step<'_>, DecodeError> {
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            PROTO_HOPOPT | PROTO_ROUTING | PROTO_DSTOPTS => {
                let ext = Ipv6RawExtHeaderSlice::from_slice(data)
                    .map_err(|_| DecodeError::TruncatedIp)?;
                next = ext.next_header().0;
                data = data.get(ext.slice().len()..).unwrap_or_default();
            }
            PROTO_AH => {
                let len = data
                    .get(1)
                    .map(|l| (usize::from(*l) + 2) * 4)
                    .ok_or(DecodeError::TruncatedIp)?;
                next = *data.first().ok_or(DecodeError::TruncatedIp)?;
                data = data.get(len..).ok_or(DecodeError::TruncatedIp)?;
            }
            PROTO_FRAGMENT => {
                let f = Ipv6FragmentHeaderSlice::from_slice(data)
                    .map_err(|_| DecodeError::TruncatedIp)?;
                let rest = data.get(f.slice().len()..).unwrap_or_default();
                next = f.next_header().0;
                let offset = u32::from(f.fragment_offset().byte_offset());
                if offset == 0 && !f.more_fragments() {
                    // Atomic fragment: the whole datagram is here.
                    data = rest;
                    continue;
                }
                return Ok(Step::Fragment(Frag {
                    key: FragKey {
                        v6: true,
                        src,
                        dst,
                        id: f.identification(),
                        proto: next,
                    },
                    offset,
                    more: f.more_fragments(),
                    data: rest,
                    proto: next,
                    src: at.src,
                    dst: at.dst,
                    v6: true,
                    depth: at.depth,
                }));
            }
            _ => return walk_upper(next, data, at),
        }
    }
    Err(DecodeError::TooManyExtensionHeaders)
}

/// Upper layer of an IP payload, including what follows an IPv6 fragment header.
fn walk_proto(proto: u8, data: &[u8], at: At) -> Result<Step<'_>, DecodeError> {
    match (at.v6, at.src, at.dst) {
        (true, IpAddr::V6(s), IpAddr::V6(d)) => {
            walk_v6_exts(proto, data, at, s.octets(), d.octets())
        }
        _ => walk_upper(proto, data, at),
    }
}

fn walk_upper(proto: u8, data: &[u8], at: At) -> Result<Step<'_>, DecodeError> {
    match proto {
        PROTO_UDP => walk_udp(data, at),
        PROTO_TCP => walk_tcp(data, at),
        PROTO_IPIP | PROTO_IPV6 => {
            if at.depth >= MAX_TUNNEL_DEPTH {
                return Err(DecodeError::TunnelTooDeep);
            }
            let inner = At {
                depth: at.depth + 1,
                ..at
            };
            if proto == PROTO_IPIP {
                walk_v4(data, inner)
            } else {
                walk_v6(data, inner)
            }
        }
        _ => Err(DecodeError::UnsupportedIpProto),
    }
}

fn walk_udp(data: &[u8], at: At) -> Result<Step<'_>, DecodeError> {
    let h = UdpHeaderSlice::from_slice(data).map_err(|_| DecodeError::TruncatedUdp)?;
    let len = match usize::from(h.length()) {
        // IPv6 jumbogram: the IP layer decides.
        0 if at.v6 => data.len(),
        n if n < 8 => return Err(DecodeError::BadUdpHeader),
        n => n,
    };
    let payload = data.get(8..len).ok_or(DecodeError::TruncatedUdp)?;
    Ok(Step::Done(Packet {
        ts_us: at.ts_us,
        src: SocketAddr::new(at.src, h.source_port()),
        dst: SocketAddr::new(at.dst, h.destination_port()),
        transport: Transport::Udp,
        payload,
        tcp: None,
        reassembled: at.reassembled,
    }))
}

fn walk_tcp(data: &[u8], at: At) -> Result<Step<'_>, DecodeError> {
    let h = TcpHeaderSlice::from_slice(data).map_err(|e| match e {
        err::tcp::HeaderSliceError::Len(_) => DecodeError::TruncatedTcp,
        err::tcp::HeaderSliceError::Content(_) => DecodeError::BadTcpHeader,
    })?;
    let payload = data
        .get(h.slice().len()..)
        .ok_or(DecodeError::TruncatedTcp)?;
    Ok(Step::Done(Packet {
        ts_us: at.ts_us,
        src: SocketAddr::new(at.src, h.source_port()),
        dst: SocketAddr::new(at.dst, h.destination_port()),
        transport: Transport::Tcp,
        payload,
        tcp: Some(TcpInfo {
            seq: h.sequence_number(),
            syn: h.syn(),
            fin: h.fin(),
            rst: h.rst(),
        }),
        reassembled: at.reassembled,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    pub(crate) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.push(5 << 4);
        v.push(flags);
        v.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        v.extend_from_slice(payload);
        v
    }

    /// IPv4 header + payload; `frag` is (id, byte offset, more fragments).
    pub(crate) fn ipv4(
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        frag: (u16, u16, bool),
        payload: &[u8],
    ) -> Vec<u8> {
        let mut v = vec![0x45, 0];
        v.extend_from_slice(&(20 + payload.len() as u16).to_be_bytes());
        v.extend_from_slice(&frag.0.to_be_bytes());
        let flags = (frag.1 / 8) | if frag.2 { 0x2000 } else { 0 };
        v.extend_from_slice(&flags.to_be_bytes());
        v.extend_from_slice(&[64, proto, 0, 0]);
        v.extend_from_slice(&src);
        v.extend_from_slice(&dst);
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(&[next, 64]);
        v.extend_from_slice(&src.octets());
        v.extend_from_slice(&dst.octets());
        v.extend_from_slice(payload);
        v
    }

    /// IPv6 fragment header + fragment data.
    pub(crate) fn v6_frag(next: u8, id: u32, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
        let mut v = vec![next, 0];
        v.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    pub(crate) fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    fn a6() -> Ipv6Addr {
        "2001:db8::1".parse().unwrap()
    }
    fn b6() -> Ipv6Addr {
        "2001:db8::2".parse().unwrap()
    }

    fn sa(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
    }

    fn sa6(ip: Ipv6Addr, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(ip), port)
    }

    fn v4_udp_packet() -> Vec<u8> {
        ipv4(A, B, 17, (0, 0, false), &udp(5060, 5070, b"INVITE"))
    }

    fn expect_udp(d: &mut Decoder, link: LinkType, frame: &[u8], src: SocketAddr, dst: SocketAddr) {
        let p = d.decode_raw(42, link, frame).unwrap().unwrap();
        assert_eq!((p.src, p.dst, p.transport), (src, dst, Transport::Udp));
        assert_eq!(p.payload, b"INVITE");
        assert_eq!(p.ts_us, 42);
        assert!(!p.reassembled);
    }

    #[test]
    fn ethernet_ipv4_udp_decodes_addresses_and_payload_and_trims_padding() {
        let mut d = Decoder::new();
        let mut frame = eth(0x0800, &v4_udp_packet());
        frame.extend_from_slice(&[0; 12]); // Ethernet padding
        expect_udp(&mut d, LinkType::ETHERNET, &frame, sa(A, 5060), sa(B, 5070));
        assert_eq!(d.stats().udp, 1);
        assert_eq!(d.stats().frames, 1);
    }

    #[test]
    fn vlan_and_qinq_tags_are_skipped() {
        let mut d = Decoder::new();
        for tags in [
            &[0x8100u16][..],
            &[0x88a8, 0x8100],
            &[0x9100, 0x8100],
            &[0x8100, 0x8100],
        ] {
            let mut inner = Vec::new();
            for (i, _) in tags.iter().enumerate() {
                inner.extend_from_slice(&[0x00, 0x64]); // TCI: VLAN 100
                let next = tags.get(i + 1).copied().unwrap_or(0x0800);
                inner.extend_from_slice(&next.to_be_bytes());
            }
            inner.extend_from_slice(&v4_udp_packet());
            let frame = eth(tags[0], &inner);
            expect_udp(&mut d, LinkType::ETHERNET, &frame, sa(A, 5060), sa(B, 5070));
        }
    }

    #[test]
    fn linux_cooked_v1_and_v2_decode() {
        let mut d = Decoder::new();
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&v4_udp_packet());
        expect_udp(&mut d, LinkType::LINUX_SLL, &sll, sa(A, 5060), sa(B, 5070));
        let mut sll2 = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        sll2.extend_from_slice(&ipv6(a6(), b6(), 17, &udp(1, 2, b"INVITE")));
        expect_udp(
            &mut d,
            LinkType::LINUX_SLL2,
            &sll2,
            sa6(a6(), 1),
            sa6(b6(), 2),
        );
    }

    #[test]
    fn bsd_null_and_loop_accept_both_byte_orders() {
        let mut d = Decoder::new();
        for link in [LinkType::NULL, LinkType::LOOP] {
            for fam in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
                let mut f = fam.to_vec();
                f.extend_from_slice(&v4_udp_packet());
                expect_udp(&mut d, link, &f, sa(A, 5060), sa(B, 5070));
            }
            for fam in [24u32, 28, 30] {
                for bytes in [fam.to_le_bytes(), fam.to_be_bytes()] {
                    let mut f = bytes.to_vec();
                    f.extend_from_slice(&ipv6(a6(), b6(), 17, &udp(1, 2, b"INVITE")));
                    expect_udp(&mut d, link, &f, sa6(a6(), 1), sa6(b6(), 2));
                }
            }
            let mut f = 7u32.to_le_bytes().to_vec();
            f.extend_from_slice(&v4_udp_packet());
            assert_eq!(d.decode_raw(0, link, &f), Err(DecodeError::NotIp));
        }
    }

    #[test]
    fn raw_ip_link_types_decode() {
        let mut d = Decoder::new();
        let v6 = ipv6(a6(), b6(), 17, &udp(1, 2, b"INVITE"));
        expect_udp(
            &mut d,
            LinkType::RAW,
            &v4_udp_packet(),
            sa(A, 5060),
            sa(B, 5070),
        );
        expect_udp(&mut d, LinkType::RAW, &v6, sa6(a6(), 1), sa6(b6(), 2));
        expect_udp(
            &mut d,
            LinkType::IPV4,
            &v4_udp_packet(),
            sa(A, 5060),
            sa(B, 5070),
        );
        expect_udp(&mut d, LinkType::IPV6, &v6, sa6(a6(), 1), sa6(b6(), 2));
        assert_eq!(
            d.decode_raw(0, LinkType::IPV4, &v6),
            Err(DecodeError::BadIpHeader)
        );
        assert_eq!(
            d.decode_raw(0, LinkType::RAW, &[0x10; 40]),
            Err(DecodeError::BadIpHeader)
        );
    }

    #[test]
    fn ipv6_extension_headers_are_followed() {
        let mut d = Decoder::new();
        // hop-by-hop -> routing -> destination options -> UDP
        let mut exts = vec![43, 0, 1, 4, 0, 0, 0, 0];
        exts.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        exts.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        exts.extend_from_slice(&udp(1, 2, b"INVITE"));
        let frame = eth(0x86dd, &ipv6(a6(), b6(), 0, &exts));
        expect_udp(
            &mut d,
            LinkType::ETHERNET,
            &frame,
            sa6(a6(), 1),
            sa6(b6(), 2),
        );
        // An atomic fragment (offset 0, no more fragments) is not held.
        let atomic = v6_frag(17, 9, 0, false, &udp(1, 2, b"INVITE"));
        let frame = eth(0x86dd, &ipv6(a6(), b6(), 44, &atomic));
        expect_udp(
            &mut d,
            LinkType::ETHERNET,
            &frame,
            sa6(a6(), 1),
            sa6(b6(), 2),
        );
        // Nine destination-options headers in a row are too many.
        let mut many = Vec::new();
        for _ in 0..9 {
            many.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        let frame = eth(0x86dd, &ipv6(a6(), b6(), 60, &many));
        assert_eq!(
            d.decode_raw(0, LinkType::ETHERNET, &frame),
            Err(DecodeError::TooManyExtensionHeaders)
        );
    }

    #[test]
    fn ip_in_ip_reports_the_innermost_addresses_up_to_two_levels() {
        let mut d = Decoder::new();
        let outer = |proto: u8, inner: &[u8]| {
            ipv4([192, 0, 2, 1], [192, 0, 2, 2], proto, (0, 0, false), inner)
        };
        let one = outer(4, &v4_udp_packet());
        expect_udp(&mut d, LinkType::RAW, &one, sa(A, 5060), sa(B, 5070));
        let v6_in_v4 = outer(41, &ipv6(a6(), b6(), 17, &udp(1, 2, b"INVITE")));
        expect_udp(&mut d, LinkType::RAW, &v6_in_v4, sa6(a6(), 1), sa6(b6(), 2));
        let two = outer(4, &one);
        expect_udp(&mut d, LinkType::RAW, &two, sa(A, 5060), sa(B, 5070));
        let three = outer(4, &two);
        assert_eq!(
            d.decode_raw(0, LinkType::RAW, &three),
            Err(DecodeError::TunnelTooDeep)
        );
        let v4_in_v6 = ipv6(a6(), b6(), 4, &v4_udp_packet());
        expect_udp(&mut d, LinkType::RAW, &v4_in_v6, sa(A, 5060), sa(B, 5070));
    }

    #[test]
    fn tcp_segment_carries_sequence_and_flags() {
        let mut d = Decoder::new();
        let seg = tcp(5060, 40000, 0xdead_beef, 0x02 | 0x01 | 0x04, b"hi");
        let frame = eth(0x0800, &ipv4(A, B, 6, (0, 0, false), &seg));
        let p = d
            .decode_raw(1, LinkType::ETHERNET, &frame)
            .unwrap()
            .unwrap();
        assert_eq!(p.transport, Transport::Tcp);
        assert_eq!(p.payload, b"hi");
        assert_eq!(
            p.tcp,
            Some(TcpInfo {
                seq: 0xdead_beef,
                syn: true,
                fin: true,
                rst: true
            })
        );
        assert_eq!(d.stats().tcp, 1);
    }

    #[test]
    fn malformed_and_foreign_frames_give_counted_reasons() {
        let mut d = Decoder::new();
        let cases: Vec<(LinkType, Vec<u8>, DecodeError)> = vec![
            (LinkType::ETHERNET, vec![0; 10], DecodeError::TruncatedLink),
            (LinkType(148), vec![0; 40], DecodeError::UnsupportedLink),
            (
                LinkType::ETHERNET,
                eth(0x0806, &[0; 28]),
                DecodeError::NotIp,
            ),
            (
                LinkType::ETHERNET,
                eth(0x0026, &[0; 38]),
                DecodeError::NotIp,
            ),
            (
                LinkType::ETHERNET,
                eth(0x0800, &[0x45, 0, 0]),
                DecodeError::TruncatedIp,
            ),
            (
                LinkType::ETHERNET,
                eth(0x0800, &[0x65; 20]),
                DecodeError::BadIpHeader,
            ),
            (
                LinkType::RAW,
                ipv4(A, B, 1, (0, 0, false), &[8, 0, 0, 0]),
                DecodeError::UnsupportedIpProto,
            ),
            (
                LinkType::RAW,
                ipv4(A, B, 17, (0, 0, false), &[0; 5]),
                DecodeError::TruncatedUdp,
            ),
            (
                LinkType::RAW,
                ipv4(A, B, 17, (0, 0, false), &[0, 1, 0, 2, 0, 4, 0, 0]),
                DecodeError::BadUdpHeader,
            ),
            (
                LinkType::RAW,
                ipv4(A, B, 17, (0, 0, false), &[0, 1, 0, 2, 0, 40, 0, 0]),
                DecodeError::TruncatedUdp,
            ),
            (
                LinkType::RAW,
                ipv4(A, B, 6, (0, 0, false), &[0; 12]),
                DecodeError::TruncatedTcp,
            ),
            (
                LinkType::RAW,
                ipv4(A, B, 6, (0, 0, false), &[0; 20]),
                DecodeError::BadTcpHeader,
            ),
        ];
        for (link, frame, want) in &cases {
            assert_eq!(d.decode_raw(0, *link, frame), Err(*want), "{want:?}");
        }
        // IPv4 total length beyond the captured bytes.
        let mut cut = v4_udp_packet();
        cut.truncate(30);
        assert_eq!(
            d.decode_raw(0, LinkType::RAW, &cut),
            Err(DecodeError::TruncatedIp)
        );
        let s = d.stats();
        assert_eq!(s.error_count(DecodeError::NotIp), 2);
        assert_eq!(s.error_count(DecodeError::TruncatedUdp), 2);
        assert_eq!(s.error_count(DecodeError::TruncatedIp), 2);
        assert_eq!(s.frames, cases.len() as u64 + 1);
        let labels: Vec<_> = s.error_counts().map(|(r, _)| r).collect();
        assert!(labels.contains(&"unsupported_ip_proto"));
    }

    #[test]
    fn reasons_are_unique_snake_case_and_indexed_in_order() {
        let mut seen = std::collections::HashSet::new();
        for (i, e) in DecodeError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(seen.insert(e.reason()));
            assert!(e
                .reason()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    /// The UDP datagram (header + payload) split into IPv4 fragment frames of `size` bytes.
    fn v4_fragments(id: u16, payload: &[u8], size: usize) -> Vec<Vec<u8>> {
        let datagram = udp(5060, 5070, payload);
        let chunks: Vec<_> = datagram.chunks(size).collect();
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let more = i + 1 < chunks.len();
                eth(0x0800, &ipv4(A, B, 17, (id, (i * size) as u16, more), c))
            })
            .collect()
    }

    fn v6_fragments(id: u32, payload: &[u8], size: usize) -> Vec<Vec<u8>> {
        let datagram = udp(5060, 5070, payload);
        let chunks: Vec<_> = datagram.chunks(size).collect();
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let more = i + 1 < chunks.len();
                let f = v6_frag(17, id, (i * size) as u16, more, c);
                eth(0x86dd, &ipv6(a6(), b6(), 44, &f))
            })
            .collect()
    }

    fn body() -> Vec<u8> {
        (0..100u8).collect()
    }

    /// Feeds frames in order; returns the payload of the packet completed by the last one.
    fn feed(
        d: &mut Decoder,
        frames: &[Vec<u8>],
    ) -> Result<Option<(Vec<u8>, SocketAddr, bool)>, DecodeError> {
        let mut last = None;
        for (i, f) in frames.iter().enumerate() {
            let r = d.decode_raw(i as i64, LinkType::ETHERNET, f)?;
            last = r.map(|p| (p.payload.to_vec(), p.src, p.reassembled));
        }
        Ok(last)
    }

    #[test]
    fn ipv4_fragments_reassemble_in_order_reversed_and_duplicated() {
        for reorder in 0..3 {
            let mut d = Decoder::new();
            let mut frames = v4_fragments(7, &body(), 32);
            match reorder {
                1 => frames.reverse(),
                2 => {
                    let dup = frames[1].clone();
                    frames.insert(1, dup);
                }
                _ => {}
            }
            let (payload, src, reassembled) = feed(&mut d, &frames).unwrap().unwrap();
            assert_eq!(payload, body());
            assert_eq!(src, sa(A, 5060));
            assert!(reassembled);
            assert_eq!(d.stats().reassembled, 1);
            assert_eq!(d.stats().reassemblies_in_flight, 0);
            if reorder == 2 {
                assert_eq!(d.stats().fragments_duplicate, 1);
            }
        }
    }

    #[test]
    fn ipv6_fragments_reassemble_in_order_reversed_and_duplicated() {
        for reorder in 0..3 {
            let mut d = Decoder::new();
            let mut frames = v6_fragments(0x1234_5678, &body(), 24);
            match reorder {
                1 => frames.reverse(),
                2 => {
                    let dup = frames[0].clone();
                    frames.insert(2, dup);
                }
                _ => {}
            }
            let got = feed(&mut d, &frames).unwrap();
            let (payload, src, reassembled) = got.unwrap();
            assert_eq!(payload, body());
            assert_eq!(src, sa6(a6(), 5060));
            assert!(reassembled);
            assert_eq!(d.stats().fragments_duplicate, u64::from(reorder == 2));
        }
    }

    #[test]
    fn overlapping_fragments_are_rejected() {
        let mut d = Decoder::new();
        let datagram = udp(5060, 5070, &body());
        let first = eth(0x0800, &ipv4(A, B, 17, (9, 0, true), &datagram[..40]));
        let overlap = eth(0x0800, &ipv4(A, B, 17, (9, 32, false), &[0xee; 76]));
        assert_eq!(d.decode_raw(0, LinkType::ETHERNET, &first), Ok(None));
        assert_eq!(
            d.decode_raw(1, LinkType::ETHERNET, &overlap),
            Err(DecodeError::FragmentOverlap)
        );
        assert_eq!(d.stats().reassemblies_in_flight, 0);
        // The same for IPv6.
        let f1 = v6_frag(17, 3, 0, true, &datagram[..40]);
        let f2 = v6_frag(17, 3, 32, false, &[0xee; 76]);
        let (p1, p2) = (ipv6(a6(), b6(), 44, &f1), ipv6(a6(), b6(), 44, &f2));
        assert_eq!(d.decode_raw(2, LinkType::RAW, &p1), Ok(None));
        assert_eq!(
            d.decode_raw(3, LinkType::RAW, &p2),
            Err(DecodeError::FragmentOverlap)
        );
        assert_eq!(d.stats().error_count(DecodeError::FragmentOverlap), 2);
    }

    #[test]
    fn fragment_past_64k_is_rejected() {
        let mut d = Decoder::new();
        let f = ipv4(A, B, 17, (1, 65_528, false), &[0; 16]);
        assert_eq!(
            d.decode_raw(0, LinkType::RAW, &f),
            Err(DecodeError::FragmentTooLarge)
        );
    }

    #[test]
    fn reassembly_of_a_tunnelled_datagram_reports_inner_addresses() {
        let mut d = Decoder::new();
        let inner = v4_udp_packet();
        let (c1, c2) = inner.split_at(16);
        let o = |off: u16, more: bool, c: &[u8]| {
            ipv4([192, 0, 2, 1], [192, 0, 2, 2], 4, (5, off, more), c)
        };
        assert_eq!(d.decode_raw(0, LinkType::RAW, &o(0, true, c1)), Ok(None));
        let last = o(16, false, c2);
        let p = d.decode_raw(1, LinkType::RAW, &last).unwrap().unwrap();
        assert_eq!(
            (p.src, p.dst, p.payload),
            (sa(A, 5060), sa(B, 5070), &b"INVITE"[..])
        );
        assert!(p.reassembled);
        assert_eq!(p.ts_us, 1);
    }

    #[test]
    fn reassemblies_are_bounded_by_count_and_capture_time() {
        let mut d = Decoder::with_limits(2, 1_000_000);
        for id in 0..3u16 {
            let f = v4_fragments(id, &body(), 32);
            assert_eq!(d.decode_raw(0, LinkType::ETHERNET, &f[0]), Ok(None));
        }
        assert_eq!(d.stats().reassemblies_evicted, 1);
        assert_eq!(d.stats().reassemblies_in_flight, 2);
        // Two seconds later both remaining ones are stale.
        let late = v4_fragments(99, &body(), 32);
        assert_eq!(
            d.decode_raw(2_000_000, LinkType::ETHERNET, &late[0]),
            Ok(None)
        );
        assert_eq!(d.stats().reassemblies_expired, 2);
        assert_eq!(d.stats().reassemblies_in_flight, 1);
        // The rest of datagram 0 cannot complete: its start was evicted.
        let f0 = v4_fragments(0, &body(), 32);
        for f in &f0[1..] {
            assert_eq!(d.decode_raw(2_000_001, LinkType::ETHERNET, f), Ok(None));
        }
    }

    #[test]
    fn decode_of_frame_uses_frame_fields() {
        let mut d = Decoder::new();
        let data = eth(0x0800, &v4_udp_packet());
        let frame = Frame {
            ts_us: 77,
            link: LinkType::ETHERNET,
            data: &data,
            orig_len: data.len() as u32,
            interface: 0,
        };
        let p = d.decode(&frame).unwrap().unwrap();
        assert_eq!((p.ts_us, p.payload), (77, &b"INVITE"[..]));
    }
}
