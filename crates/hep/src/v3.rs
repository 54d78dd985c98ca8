//! HEP v3: `HEP3`, a u16 total length, then type-length-value chunks, all in network order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{be_u16, HepError, HepPacket, Payload};

/// The four bytes every HEP v3 packet starts with.
pub const HEP3_MAGIC: &[u8; 4] = b"HEP3";

/// Size of the packet header: magic + u16 total length.
pub const HEADER_LEN: usize = 6;

/// Size of a chunk header: u16 vendor id, u16 type id, u16 length (header included).
pub const CHUNK_HEADER_LEN: usize = 6;

/// Largest packet the u16 total length can describe.
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// Address family values of the [`chunk::IP_FAMILY`] chunk (Linux `AF_*` numbers).
pub const AF_INET: u8 = 2;
/// IPv6 address family.
pub const AF_INET6: u8 = 10;

/// Type ids of the generic chunks (vendor id 0).
pub mod chunk {
    /// u8 address family: 2 IPv4, 10 IPv6.
    pub const IP_FAMILY: u16 = 1;
    /// u8 IP protocol number (17 UDP, 6 TCP).
    pub const IP_PROTOCOL: u16 = 2;
    /// 4-byte IPv4 source address.
    pub const IPV4_SRC: u16 = 3;
    /// 4-byte IPv4 destination address.
    pub const IPV4_DST: u16 = 4;
    /// 16-byte IPv6 source address.
    pub const IPV6_SRC: u16 = 5;
    /// 16-byte IPv6 destination address.
    pub const IPV6_DST: u16 = 6;
    /// u16 source port.
    pub const SRC_PORT: u16 = 7;
    /// u16 destination port.
    pub const DST_PORT: u16 = 8;
    /// u32 timestamp, seconds since the Unix epoch.
    pub const TS_SEC: u16 = 9;
    /// u32 microseconds to add to [`TS_SEC`].
    pub const TS_USEC: u16 = 10;
    /// u8 protocol type of the payload (see [`crate::ProtoType`]).
    pub const PROTO_TYPE: u16 = 11;
    /// u32 capture agent id.
    pub const CAPTURE_ID: u16 = 12;
    /// u16 keep-alive timer (ignored by the decoder).
    pub const KEEP_ALIVE: u16 = 13;
    /// Authentication key bytes.
    pub const AUTH_KEY: u16 = 14;
    /// Captured payload bytes.
    pub const PAYLOAD: u16 = 15;
    /// Gzip-compressed captured payload.
    pub const COMPRESSED_PAYLOAD: u16 = 16;
    /// Correlation id bytes.
    pub const CORRELATION_ID: u16 = 17;
    /// u16 VLAN id.
    pub const VLAN: u16 = 18;
    /// Group id / node name bytes (heplify and heplify-server carry the node name here).
    pub const NODE_NAME: u16 = 19;
    /// Source MAC address (ignored by the decoder).
    pub const SRC_MAC: u16 = 20;
    /// Destination MAC address (ignored by the decoder).
    pub const DST_MAC: u16 = 21;
}

/// One chunk of a HEP v3 packet, borrowed from the packet buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Vendor id; 0 is the generic vendor whose types [`chunk`] lists.
    pub vendor: u16,
    /// Type id.
    pub kind: u16,
    /// The chunk body (the length field minus the 6-byte chunk header).
    pub body: &'a [u8],
}

/// Iterator over the chunks of one HEP v3 packet (see [`chunks_v3`]).
///
/// Yields `Err(HepError::BadChunkLength)` once for a malformed chunk, then stops.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<'a>, HepError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match split_chunk(self.rest) {
            Ok((c, tail)) => {
                self.rest = tail;
                Some(Ok(c))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn split_chunk(b: &[u8]) -> Result<(Chunk<'_>, &[u8]), HepError> {
    // The 6-byte chunk header: vendor, type, length (header included).
    let [v0, v1, k0, k1, l0, l1, ..] = *b else {
        return Err(HepError::BadChunkLength);
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let body_len = len
        .checked_sub(CHUNK_HEADER_LEN)
        .ok_or(HepError::BadChunkLength)?;
    let rest = b.get(CHUNK_HEADER_LEN..).unwrap_or_default();
    let (body, tail) = rest
        .split_at_checked(body_len)
        .ok_or(HepError::BadChunkLength)?;
    let chunk = Chunk {
        vendor: u16::from_be_bytes([v0, v1]),
        kind: u16::from_be_bytes([k0, k1]),
        body,
    };
    Ok((chunk, tail))
}

/// Check the HEP v3 header and iterate over the packet's chunks.
///
/// Returns the iterator and the number of bytes the packet occupies (its total length
/// field); bytes after that are not looked at.
pub fn chunks_v3(buf: &[u8]) -> Result<(Chunks<'_>, usize), HepError> {
    let seen = buf.get(..HEP3_MAGIC.len()).unwrap_or(buf);
    if !HEP3_MAGIC.starts_with(seen) {
        return Err(HepError::BadMagic);
    }
    let total = usize::from(be_u16(buf, 4).ok_or(HepError::TooShort)?);
    if total < HEADER_LEN {
        return Err(HepError::TooShort);
    }
    let packet = buf.get(..total).ok_or(HepError::Truncated {
        need: total,
        have: buf.len(),
    })?;
    let rest = packet.get(HEADER_LEN..).unwrap_or_default();
    Ok((Chunks { rest }, total))
}

/// Decode one HEP v3 packet; returns the packet and the number of bytes it occupied.
///
/// The packet's total length field may be shorter than `buf` (the rest is left for the
/// caller: TCP streams carry HEP packets back to back) but not longer
/// ([`HepError::Truncated`]). Chunks may come in any order; vendor chunks and unknown types
/// are skipped; when a chunk repeats, the last one wins. Defaults for absent chunks: no
/// timestamp gives `ts_us == 0`, no ports give port 0, no IP protocol or protocol type
/// gives 0, no payload chunk gives [`Payload::None`]. A missing source or destination
/// address is [`HepError::MissingAddress`]. Integer chunks shorter than their type
/// (e.g. a 2-byte capture id) are read as big-endian numbers; longer ones, and address
/// chunks of the wrong size, are [`HepError::BadChunkLength`].
///
/// Never allocates.
pub fn decode_v3(buf: &[u8]) -> Result<(HepPacket<'_>, usize), HepError> {
    let (chunks, used) = chunks_v3(buf)?;
    let mut f = Fields::default();
    for c in chunks {
        let c = c?;
        if c.vendor == 0 {
            f.apply(c.kind, c.body)?;
        }
    }
    Ok((f.finish()?, used))
}

#[derive(Default)]
struct Fields<'a> {
    family: Option<u8>,
    ip_protocol: u8,
    src4: Option<Ipv4Addr>,
    dst4: Option<Ipv4Addr>,
    src6: Option<Ipv6Addr>,
    dst6: Option<Ipv6Addr>,
    src_port: u16,
    dst_port: u16,
    ts_sec: u32,
    ts_usec: u32,
    proto_type: u8,
    capture_id: Option<u32>,
    auth_key: Option<&'a [u8]>,
    correlation_id: Option<&'a [u8]>,
    node_name: Option<&'a [u8]>,
    vlan: Option<u16>,
    payload: Payload<'a>,
}

/// Big-endian unsigned integer of 1..=`width` bytes.
fn be_uint(body: &[u8], width: usize) -> Result<u32, HepError> {
    let v = match *body {
        [a] => u32::from(a),
        [a, b] => u32::from(u16::from_be_bytes([a, b])),
        [a, b, c] => u32::from_be_bytes([0, a, b, c]),
        [a, b, c, d] => u32::from_be_bytes([a, b, c, d]),
        _ => return Err(HepError::BadChunkLength),
    };
    if body.len() > width {
        return Err(HepError::BadChunkLength);
    }
    Ok(v)
}

fn uint8(body: &[u8]) -> Result<u8, HepError> {
    u8::try_from(be_uint(body, 1)?).map_err(|_| HepError::BadChunkLength)
}

fn uint16(body: &[u8]) -> Result<u16, HepError> {
    u16::try_from(be_uint(body, 2)?).map_err(|_| HepError::BadChunkLength)
}

fn ipv4(body: &[u8]) -> Result<Ipv4Addr, HepError> {
    <[u8; 4]>::try_from(body)
        .map(Ipv4Addr::from)
        .map_err(|_| HepError::BadChunkLength)
}

fn ipv6(body: &[u8]) -> Result<Ipv6Addr, HepError> {
    <[u8; 16]>::try_from(body)
        .map(Ipv6Addr::from)
        .map_err(|_| HepError::BadChunkLength)
}

impl<'a> Fields<'a> {
    fn apply(&mut self, kind: u16, body: &'a [u8]) -> Result<(), HepError> {
        match kind {
            chunk::IP_FAMILY => self.family = Some(uint8(body)?),
            chunk::IP_PROTOCOL => self.ip_protocol = uint8(body)?,
            chunk::IPV4_SRC => self.src4 = Some(ipv4(body)?),
            chunk::IPV4_DST => self.dst4 = Some(ipv4(body)?),
            chunk::IPV6_SRC => self.src6 = Some(ipv6(body)?),
            chunk::IPV6_DST => self.dst6 = Some(ipv6(body)?),
            chunk::SRC_PORT => self.src_port = uint16(body)?,
            chunk::DST_PORT => self.dst_port = uint16(body)?,
            chunk::TS_SEC => self.ts_sec = be_uint(body, 4)?,
            chunk::TS_USEC => self.ts_usec = be_uint(body, 4)?,
            chunk::PROTO_TYPE => self.proto_type = uint8(body)?,
            chunk::CAPTURE_ID => self.capture_id = Some(be_uint(body, 4)?),
            chunk::AUTH_KEY => self.auth_key = Some(body),
            chunk::PAYLOAD => self.payload = Payload::Plain(body),
            chunk::COMPRESSED_PAYLOAD => self.payload = Payload::Gzip(body),
            chunk::CORRELATION_ID => self.correlation_id = Some(body),
            chunk::VLAN => self.vlan = Some(uint16(body)?),
            chunk::NODE_NAME => self.node_name = Some(body),
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<HepPacket<'a>, HepError> {
        let v4 = match (self.src4, self.dst4) {
            (Some(s), Some(d)) => Some((IpAddr::V4(s), IpAddr::V4(d))),
            _ => None,
        };
        let v6 = match (self.src6, self.dst6) {
            (Some(s), Some(d)) => Some((IpAddr::V6(s), IpAddr::V6(d))),
            _ => None,
        };
        let pair = if self.family == Some(AF_INET6) {
            v6.or(v4)
        } else {
            v4.or(v6)
        };
        let (src, dst) = pair.ok_or(HepError::MissingAddress)?;
        Ok(HepPacket {
            version: 3,
            src: SocketAddr::new(src, self.src_port),
            dst: SocketAddr::new(dst, self.dst_port),
            ip_protocol: self.ip_protocol,
            ts_us: i64::from(self.ts_sec) * 1_000_000 + i64::from(self.ts_usec),
            proto_type: self.proto_type,
            capture_id: self.capture_id,
            auth_key: self.auth_key,
            correlation_id: self.correlation_id,
            node_name: self.node_name,
            vlan: self.vlan,
            payload: self.payload,
        })
    }
}

/// Seconds and microseconds for the two timestamp chunks.
///
/// Negative times are written as 0. Times past `u32::MAX` seconds put the excess in the
/// microsecond field (up to `u32::MAX` µs), so every time the decoder can produce is
/// written back unchanged; later ones are clamped.
fn split_ts(ts_us: i64) -> (u32, u32) {
    if ts_us <= 0 {
        return (0, 0);
    }
    let sec = (ts_us / 1_000_000).min(i64::from(u32::MAX));
    let usec = ts_us - sec * 1_000_000;
    (
        u32::try_from(sec).unwrap_or(u32::MAX),
        u32::try_from(usec).unwrap_or(u32::MAX),
    )
}

fn put_chunk(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    // Callers keep bodies at most MAX_PACKET_LEN - CHUNK_HEADER_LEN long.
    let len = u16::try_from(body.len() + CHUNK_HEADER_LEN).unwrap_or(u16::MAX);
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

/// Write a bytes chunk, cutting the body so the packet stays within [`MAX_PACKET_LEN`];
/// the chunk is left out when not even its header fits.
fn put_bounded(out: &mut Vec<u8>, start: usize, kind: u16, body: &[u8]) {
    let used = out.len().saturating_sub(start);
    let Some(room) = MAX_PACKET_LEN
        .checked_sub(used)
        .and_then(|r| r.checked_sub(CHUNK_HEADER_LEN))
    else {
        return;
    };
    put_chunk(out, kind, body.get(..room).unwrap_or(body));
}

/// Encode as HEP v3 and append the packet to `out`.
///
/// Chunk order is the one Kamailio's siptrace module uses: IP family, IP protocol, source
/// and destination address, source and destination port, timestamp seconds and
/// microseconds, protocol type, capture id, then (this codec's additions, only when set)
/// VLAN, then correlation id, auth key, node name (chunk 19), and the payload last: chunk 15
/// for [`Payload::Plain`], chunk 16 for [`Payload::Gzip`] (its bytes are written as they
/// are: compress with [`crate::gzip`] first), nothing for [`Payload::None`].
///
/// `version` is ignored (always v3). Both addresses IPv4 give IPv4 chunks; otherwise both
/// are written as IPv6 (an IPv4 address as IPv4-mapped). The timestamp is written as
/// described for [`HepPacket::ts_us`]; negative times become 0. A packet cannot exceed
/// 65535 bytes: byte fields that do not fit are cut, the payload first (it is written last).
pub fn encode_v3(p: &HepPacket<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(HEP3_MAGIC);
    out.extend_from_slice(&[0, 0]);
    match (p.src.ip(), p.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            put_chunk(out, chunk::IP_FAMILY, &[AF_INET]);
            put_chunk(out, chunk::IP_PROTOCOL, &[p.ip_protocol]);
            put_chunk(out, chunk::IPV4_SRC, &s.octets());
            put_chunk(out, chunk::IPV4_DST, &d.octets());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            put_chunk(out, chunk::IP_FAMILY, &[AF_INET6]);
            put_chunk(out, chunk::IP_PROTOCOL, &[p.ip_protocol]);
            put_chunk(out, chunk::IPV6_SRC, &v6(s).octets());
            put_chunk(out, chunk::IPV6_DST, &v6(d).octets());
        }
    }
    put_chunk(out, chunk::SRC_PORT, &p.src.port().to_be_bytes());
    put_chunk(out, chunk::DST_PORT, &p.dst.port().to_be_bytes());
    let (sec, usec) = split_ts(p.ts_us);
    put_chunk(out, chunk::TS_SEC, &sec.to_be_bytes());
    put_chunk(out, chunk::TS_USEC, &usec.to_be_bytes());
    put_chunk(out, chunk::PROTO_TYPE, &[p.proto_type]);
    if let Some(id) = p.capture_id {
        put_chunk(out, chunk::CAPTURE_ID, &id.to_be_bytes());
    }
    if let Some(vlan) = p.vlan {
        put_chunk(out, chunk::VLAN, &vlan.to_be_bytes());
    }
    let optional = [
        (chunk::CORRELATION_ID, p.correlation_id),
        (chunk::AUTH_KEY, p.auth_key),
        (chunk::NODE_NAME, p.node_name),
    ];
    for (kind, body) in optional {
        if let Some(body) = body {
            put_bounded(out, start, kind, body);
        }
    }
    match p.payload {
        Payload::Plain(b) => put_bounded(out, start, chunk::PAYLOAD, b),
        Payload::Gzip(b) => put_bounded(out, start, chunk::COMPRESSED_PAYLOAD, b),
        Payload::None => {}
    }
    let total = u16::try_from(out.len().saturating_sub(start)).unwrap_or(u16::MAX);
    if let Some(len) = out.get_mut(start + 4..start + HEADER_LEN) {
        len.copy_from_slice(&total.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, gzip, ProtoType};
    use proptest::prelude::*;

    fn ch(vendor: u16, kind: u16, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&vendor.to_be_bytes());
        v.extend_from_slice(&kind.to_be_bytes());
        v.extend_from_slice(&((body.len() + 6) as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    /// Decode a packet built from `chunks` (the buffer is leaked to outlive the test).
    fn dec(chunks: &[Vec<u8>]) -> Result<HepPacket<'static>, HepError> {
        let buf: &'static [u8] = Box::leak(packet(chunks).into_boxed_slice());
        decode_v3(buf).map(|(p, _)| p)
    }

    fn packet(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut v = b"HEP3".to_vec();
        v.extend_from_slice(&((body.len() + 6) as u16).to_be_bytes());
        v.extend_from_slice(&body);
        v
    }

    const SIP: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: x1\r\n\r\n";

    /// The chunks Kamailio's siptrace sends, in its order.
    fn kamailio_chunks() -> Vec<Vec<u8>> {
        vec![
            ch(0, 1, &[2]),
            ch(0, 2, &[17]),
            ch(0, 3, &[10, 0, 0, 1]),
            ch(0, 4, &[10, 0, 0, 2]),
            ch(0, 7, &5070u16.to_be_bytes()),
            ch(0, 8, &5060u16.to_be_bytes()),
            ch(0, 9, &1_700_000_000u32.to_be_bytes()),
            ch(0, 10, &123_456u32.to_be_bytes()),
            ch(0, 11, &[1]),
            ch(0, 12, &101u32.to_be_bytes()),
            ch(0, 15, SIP),
        ]
    }

    fn expected_kamailio() -> HepPacket<'static> {
        HepPacket {
            version: 3,
            src: "10.0.0.1:5070".parse().unwrap(),
            dst: "10.0.0.2:5060".parse().unwrap(),
            ip_protocol: 17,
            ts_us: 1_700_000_000_123_456,
            proto_type: 1,
            capture_id: Some(101),
            auth_key: None,
            correlation_id: None,
            node_name: None,
            vlan: None,
            payload: Payload::Plain(SIP),
        }
    }

    #[test]
    fn decodes_every_kamailio_field() {
        let buf = packet(&kamailio_chunks());
        let (p, used) = decode_v3(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(p, expected_kamailio());
        assert_eq!(p.proto(), ProtoType::SIP);
    }

    #[test]
    fn shuffled_chunk_order_decodes_the_same() {
        let mut chunks = kamailio_chunks();
        chunks.reverse();
        assert_eq!(decode_v3(&packet(&chunks)).unwrap().0, expected_kamailio());
        chunks.rotate_left(4);
        assert_eq!(decode_v3(&packet(&chunks)).unwrap().0, expected_kamailio());
    }

    #[test]
    fn unknown_and_vendor_chunks_are_skipped() {
        let mut chunks = kamailio_chunks();
        // A vendor chunk reusing generic type ids must not override anything.
        chunks.insert(3, ch(0x0003, 15, b"vendor payload"));
        chunks.insert(5, ch(0x1234, 3, &[9, 9, 9, 9, 9]));
        // Unknown generic types, MACs, keep-alive: skipped whatever their size.
        chunks.push(ch(0, 0x0099, b"whatever"));
        chunks.push(ch(0, 0, b""));
        chunks.push(ch(0, 13, &[0, 30]));
        chunks.push(ch(0, 20, &[1, 2, 3, 4, 5, 6, 7, 8]));
        chunks.push(ch(0, 0x0026, b"tags"));
        let p = dec(&chunks).unwrap();
        assert_eq!(p, expected_kamailio());
    }

    #[test]
    fn auth_key_correlation_id_node_name_and_vlan_are_returned() {
        let mut chunks = kamailio_chunks();
        chunks.push(ch(0, 14, b"secret"));
        chunks.push(ch(0, 17, b"call-1@host"));
        chunks.push(ch(0, 19, b"edge-node-7"));
        chunks.push(ch(0, 18, &42u16.to_be_bytes()));
        let p = dec(&chunks).unwrap();
        assert_eq!(p.auth_key, Some(&b"secret"[..]));
        assert_eq!(p.correlation_id, Some(&b"call-1@host"[..]));
        assert_eq!(p.node_name, Some(&b"edge-node-7"[..]));
        assert_eq!(p.vlan, Some(42));
    }

    #[test]
    fn empty_byte_chunks_are_present_but_empty() {
        let mut chunks = kamailio_chunks();
        chunks.pop(); // the payload chunk
        chunks.push(ch(0, 14, b""));
        chunks.push(ch(0, 15, b""));
        let p = dec(&chunks).unwrap();
        assert_eq!(p.auth_key, Some(&b""[..]));
        assert_eq!(p.payload, Payload::Plain(b""));
    }

    #[test]
    fn gzip_payload_chunk_decodes_with_bounded_limit() {
        let mut z = Vec::new();
        gzip(SIP, &mut z);
        let mut chunks = kamailio_chunks();
        chunks.pop(); // the payload chunk
        chunks.push(ch(0, 16, &z));
        let buf = packet(&chunks);
        let (p, _) = decode_v3(&buf).unwrap();
        assert_eq!(p.payload, Payload::Gzip(&z));
        let mut scratch = Vec::new();
        assert_eq!(p.payload.bytes(&mut scratch, SIP.len()).unwrap(), SIP);
        assert_eq!(
            p.payload.bytes(&mut scratch, SIP.len() - 1),
            Err(HepError::GzipTooLarge)
        );
    }

    #[test]
    fn last_payload_chunk_wins() {
        let mut chunks = kamailio_chunks();
        chunks.push(ch(0, 15, b"second"));
        assert_eq!(
            decode_v3(&packet(&chunks)).unwrap().0.payload,
            Payload::Plain(b"second")
        );
    }

    #[test]
    fn missing_payload_is_none_and_bytes_reports_it() {
        let mut chunks = kamailio_chunks();
        chunks.pop(); // the payload chunk
        let p = dec(&chunks).unwrap();
        assert_eq!(p.payload, Payload::None);
        assert_eq!(
            p.payload.bytes(&mut Vec::new(), 100),
            Err(HepError::MissingPayload)
        );
    }

    #[test]
    fn missing_timestamp_ports_and_types_default_to_zero() {
        let chunks = vec![
            ch(0, 3, &[10, 0, 0, 1]),
            ch(0, 4, &[10, 0, 0, 2]),
            ch(0, 15, SIP),
        ];
        let p = dec(&chunks).unwrap();
        assert_eq!(p.ts_us, 0);
        assert_eq!(p.src, "10.0.0.1:0".parse().unwrap());
        assert_eq!(p.dst, "10.0.0.2:0".parse().unwrap());
        assert_eq!((p.ip_protocol, p.proto_type, p.capture_id), (0, 0, None));
    }

    #[test]
    fn seconds_without_microseconds_is_whole_seconds() {
        let chunks = vec![
            ch(0, 3, &[10, 0, 0, 1]),
            ch(0, 4, &[10, 0, 0, 2]),
            ch(0, 9, &7u32.to_be_bytes()),
        ];
        assert_eq!(decode_v3(&packet(&chunks)).unwrap().0.ts_us, 7_000_000);
    }

    #[test]
    fn missing_address_is_an_error() {
        let only_src = vec![ch(0, 3, &[10, 0, 0, 1]), ch(0, 15, SIP)];
        assert_eq!(decode_v3(&packet(&only_src)), Err(HepError::MissingAddress));
        // A keep-alive style packet: capture id and timer only.
        let keepalive = vec![ch(0, 12, &7u32.to_be_bytes()), ch(0, 13, &[0, 30])];
        assert_eq!(
            decode_v3(&packet(&keepalive)),
            Err(HepError::MissingAddress)
        );
        // Source v4, destination v6: no complete pair.
        let mixed = vec![ch(0, 3, &[10, 0, 0, 1]), ch(0, 6, &[0; 16])];
        assert_eq!(decode_v3(&packet(&mixed)), Err(HepError::MissingAddress));
    }

    #[test]
    fn ipv6_addresses_decode() {
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let chunks = vec![
            ch(0, 1, &[10]),
            ch(0, 2, &[6]),
            ch(0, 5, &s.octets()),
            ch(0, 6, &d.octets()),
            ch(0, 7, &5061u16.to_be_bytes()),
            ch(0, 8, &5062u16.to_be_bytes()),
            ch(0, 15, SIP),
        ];
        let p = dec(&chunks).unwrap();
        assert_eq!(p.src, "[2001:db8::1]:5061".parse().unwrap());
        assert_eq!(p.dst, "[2001:db8::2]:5062".parse().unwrap());
        assert_eq!(p.ip_protocol, 6);
    }

    #[test]
    fn family_chunk_picks_between_two_complete_pairs() {
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let both = |family: u8| {
            vec![
                ch(0, 1, &[family]),
                ch(0, 3, &[10, 0, 0, 1]),
                ch(0, 4, &[10, 0, 0, 2]),
                ch(0, 5, &s.octets()),
                ch(0, 6, &s.octets()),
            ]
        };
        assert!(decode_v3(&packet(&both(10))).unwrap().0.src.is_ipv6());
        assert!(decode_v3(&packet(&both(2))).unwrap().0.src.is_ipv4());
        // Family says IPv6 but only IPv4 addresses are present: use them.
        let v4_only = vec![
            ch(0, 1, &[10]),
            ch(0, 3, &[1, 2, 3, 4]),
            ch(0, 4, &[5, 6, 7, 8]),
        ];
        assert!(decode_v3(&packet(&v4_only)).unwrap().0.src.is_ipv4());
    }

    #[test]
    fn short_integer_chunks_are_read_big_endian() {
        let mut chunks = kamailio_chunks();
        chunks.push(ch(0, 12, &0x0102u16.to_be_bytes()));
        assert_eq!(
            decode_v3(&packet(&chunks)).unwrap().0.capture_id,
            Some(0x0102)
        );
    }

    #[test]
    fn wrong_sized_known_chunks_are_rejected() {
        for bad in [
            ch(0, 3, &[1, 2, 3]),
            ch(0, 4, &[1, 2, 3, 4, 5]),
            ch(0, 5, &[0; 4]),
            ch(0, 7, &[0, 0, 0]),
            ch(0, 9, &[0; 5]),
            ch(0, 11, &[]),
            ch(0, 1, &[0, 2]),
        ] {
            let mut chunks = kamailio_chunks();
            chunks.push(bad.clone());
            assert_eq!(
                decode_v3(&packet(&chunks)),
                Err(HepError::BadChunkLength),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn truncated_buffer_reports_need_and_have() {
        let buf = packet(&kamailio_chunks());
        let cut = &buf[..buf.len() - 10];
        assert_eq!(
            decode_v3(cut),
            Err(HepError::Truncated {
                need: buf.len(),
                have: buf.len() - 10
            })
        );
    }

    #[test]
    fn overlong_chunk_is_rejected() {
        let mut buf = packet(&kamailio_chunks());
        // The payload chunk is last; claim 1 byte more than the packet holds.
        let pay = buf.len() - SIP.len() - 6;
        let len = (SIP.len() + 7) as u16;
        buf[pay + 4..pay + 6].copy_from_slice(&len.to_be_bytes());
        assert_eq!(decode_v3(&buf), Err(HepError::BadChunkLength));
        // Same with a chunk that runs past the total length into trailing bytes.
        buf.extend_from_slice(b"trailing");
        assert_eq!(decode_v3(&buf), Err(HepError::BadChunkLength));
    }

    #[test]
    fn zero_and_short_chunk_lengths_are_rejected() {
        for len in [0u16, 1, 5] {
            let mut chunks = kamailio_chunks();
            let mut bad = ch(0, 2, &[17]);
            bad[4..6].copy_from_slice(&len.to_be_bytes());
            chunks.insert(1, bad);
            assert_eq!(decode_v3(&packet(&chunks)), Err(HepError::BadChunkLength));
        }
    }

    #[test]
    fn partial_chunk_header_at_the_end_is_rejected() {
        let mut chunks = kamailio_chunks();
        chunks.push(vec![0, 0, 0]);
        assert_eq!(decode_v3(&packet(&chunks)), Err(HepError::BadChunkLength));
    }

    #[test]
    fn header_errors() {
        assert_eq!(decode_v3(b""), Err(HepError::TooShort));
        assert_eq!(decode_v3(b"HEP"), Err(HepError::TooShort));
        assert_eq!(decode_v3(b"HEP3\x00"), Err(HepError::TooShort));
        assert_eq!(decode_v3(b"HEP3\x00\x05xx"), Err(HepError::TooShort));
        assert_eq!(decode_v3(b"HEP2\x00\x06"), Err(HepError::BadMagic));
        assert_eq!(decode_v3(b"SIP"), Err(HepError::BadMagic));
        assert_eq!(decode_v3(b"INVITE sip:a SIP/2.0"), Err(HepError::BadMagic));
        assert_eq!(
            decode_v3(b"HEP3\x00\x10"),
            Err(HepError::Truncated { need: 16, have: 6 })
        );
    }

    #[test]
    fn empty_packet_body_has_no_address() {
        assert_eq!(decode_v3(b"HEP3\x00\x06"), Err(HepError::MissingAddress));
        let (chunks, used) = chunks_v3(b"HEP3\x00\x06").unwrap();
        assert_eq!((chunks.count(), used), (0, 6));
    }

    #[test]
    fn extra_bytes_after_total_length_are_ignored() {
        let mut buf = packet(&kamailio_chunks());
        let n = buf.len();
        buf.extend_from_slice(b"\x00\x00\x00garbage");
        let (p, used) = decode_v3(&buf).unwrap();
        assert_eq!(used, n);
        assert_eq!(p, expected_kamailio());
    }

    #[test]
    fn two_packets_back_to_back_decode_in_turn() {
        let first = packet(&kamailio_chunks());
        let mut second_chunks = kamailio_chunks();
        second_chunks.push(ch(0, 15, b"SIP/2.0 100 Trying\r\n\r\n"));
        second_chunks.push(ch(0, 12, &202u32.to_be_bytes()));
        let second = packet(&second_chunks);
        let stream = [first.clone(), second.clone()].concat();

        let (p1, n1) = decode(&stream, false).unwrap();
        assert_eq!(n1, first.len());
        assert_eq!(p1, expected_kamailio());
        let (p2, n2) = decode(&stream[n1..], false).unwrap();
        assert_eq!(n2, second.len());
        assert_eq!(p2.capture_id, Some(202));
        assert_eq!(p2.payload, Payload::Plain(b"SIP/2.0 100 Trying\r\n\r\n"));
        assert_eq!(n1 + n2, stream.len());
    }

    #[test]
    fn chunk_iterator_reports_vendor_chunks_and_stops_after_an_error() {
        let buf = packet(&[ch(7, 1, b"v"), ch(0, 2, &[6]), vec![0, 0, 0, 9, 0, 0]]);
        let items: Vec<_> = chunks_v3(&buf).unwrap().0.collect();
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[0],
            Ok(Chunk {
                vendor: 7,
                kind: 1,
                body: b"v"
            })
        );
        assert_eq!(
            items[1],
            Ok(Chunk {
                vendor: 0,
                kind: 2,
                body: &[6]
            })
        );
        assert_eq!(items[2], Err(HepError::BadChunkLength));
    }

    fn kinds(buf: &[u8]) -> Vec<u16> {
        chunks_v3(buf).unwrap().0.map(|c| c.unwrap().kind).collect()
    }

    #[test]
    fn encode_matches_kamailio_bytes_and_order() {
        let buf = packet(&kamailio_chunks());
        let mut out = Vec::new();
        encode_v3(&expected_kamailio(), &mut out);
        assert_eq!(out, buf);
        assert_eq!(kinds(&out), [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 15]);
    }

    #[test]
    fn encode_places_optional_chunks_before_the_payload() {
        let mut p = expected_kamailio();
        p.vlan = Some(9);
        p.correlation_id = Some(b"cid");
        p.auth_key = Some(b"key");
        p.node_name = Some(b"node");
        let mut out = Vec::new();
        encode_v3(&p, &mut out);
        assert_eq!(
            kinds(&out),
            [1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 18, 17, 14, 19, 15]
        );
        assert_eq!(decode_v3(&out).unwrap(), (p, out.len()));
    }

    #[test]
    fn encode_appends_to_existing_bytes() {
        let mut out = b"prefix".to_vec();
        encode_v3(&expected_kamailio(), &mut out);
        assert_eq!(&out[..6], b"prefix");
        let (p, used) = decode_v3(&out[6..]).unwrap();
        assert_eq!((p, used), (expected_kamailio(), out.len() - 6));
    }

    #[test]
    fn encode_gzip_and_no_payload() {
        let mut z = Vec::new();
        gzip(SIP, &mut z);
        let mut p = expected_kamailio();
        p.payload = Payload::Gzip(&z);
        let mut out = Vec::new();
        encode_v3(&p, &mut out);
        assert_eq!(*kinds(&out).last().unwrap(), 16);
        assert_eq!(decode_v3(&out).unwrap().0, p);

        p.payload = Payload::None;
        out.clear();
        encode_v3(&p, &mut out);
        assert_eq!(*kinds(&out).last().unwrap(), 12);
        assert_eq!(decode_v3(&out).unwrap().0, p);
    }

    #[test]
    fn encode_mixed_families_as_ipv6() {
        let mut p = expected_kamailio();
        p.dst = "[2001:db8::5]:5060".parse().unwrap();
        let mut out = Vec::new();
        encode_v3(&p, &mut out);
        let (q, _) = decode_v3(&out).unwrap();
        assert_eq!(q.src, "[::ffff:10.0.0.1]:5070".parse().unwrap());
        assert_eq!(q.dst, p.dst);
    }

    #[test]
    fn encode_cuts_oversized_payload_to_fit_65535_bytes() {
        let big = vec![b'a'; 70_000];
        let mut p = expected_kamailio();
        p.auth_key = Some(b"k");
        p.payload = Payload::Plain(&big);
        let mut out = Vec::new();
        encode_v3(&p, &mut out);
        assert_eq!(out.len(), MAX_PACKET_LEN);
        let (q, used) = decode_v3(&out).unwrap();
        assert_eq!(used, MAX_PACKET_LEN);
        assert_eq!(q.auth_key, Some(&b"k"[..]));
        let Payload::Plain(cut) = q.payload else {
            panic!("plain payload expected")
        };
        assert!(cut.len() < big.len() && cut.iter().all(|&b| b == b'a'));

        // A huge node name leaves no room at all for the payload chunk header.
        p.node_name = Some(&big);
        out.clear();
        encode_v3(&p, &mut out);
        let (q, used) = decode_v3(&out).unwrap();
        assert_eq!(used, MAX_PACKET_LEN);
        assert_eq!(q.payload, Payload::None);
    }

    #[test]
    fn encode_timestamps_edge_cases() {
        let mut p = expected_kamailio();
        let mut out = Vec::new();
        for (ts, want) in [
            (-5, 0),
            (0, 0),
            (999_999, 999_999),
            (
                i64::from(u32::MAX) * 1_000_000 + i64::from(u32::MAX),
                i64::from(u32::MAX) * 1_000_000 + i64::from(u32::MAX),
            ),
            (
                i64::MAX,
                i64::from(u32::MAX) * 1_000_000 + i64::from(u32::MAX),
            ),
        ] {
            p.ts_us = ts;
            out.clear();
            encode_v3(&p, &mut out);
            assert_eq!(decode_v3(&out).unwrap().0.ts_us, want, "ts {ts}");
        }
    }

    fn arb_addr_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
        prop_oneof![
            (
                any::<[u8; 4]>(),
                any::<u16>(),
                any::<[u8; 4]>(),
                any::<u16>()
            )
                .prop_map(|(s, sp, d, dp)| (
                    SocketAddr::new(Ipv4Addr::from(s).into(), sp),
                    SocketAddr::new(Ipv4Addr::from(d).into(), dp)
                )),
            (
                any::<[u8; 16]>(),
                any::<u16>(),
                any::<[u8; 16]>(),
                any::<u16>()
            )
                .prop_map(|(s, sp, d, dp)| (
                    SocketAddr::new(Ipv6Addr::from(s).into(), sp),
                    SocketAddr::new(Ipv6Addr::from(d).into(), dp)
                )),
        ]
    }

    type Owned = (
        (SocketAddr, SocketAddr),
        (u8, u8, i64, Option<u32>, Option<u16>),
        (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>),
        (u8, Vec<u8>),
    );

    fn arb_packet() -> impl Strategy<Value = Owned> {
        let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40));
        (
            arb_addr_pair(),
            (
                any::<u8>(),
                any::<u8>(),
                0..=i64::from(u32::MAX) * 1_000_000 + i64::from(u32::MAX),
                any::<Option<u32>>(),
                any::<Option<u16>>(),
            ),
            (bytes(), bytes(), bytes()),
            (0u8..3, proptest::collection::vec(any::<u8>(), 0..600)),
        )
    }

    fn build(o: &Owned) -> HepPacket<'_> {
        let ((src, dst), (ipp, pt, ts, cid, vlan), (auth, corr, node), (kind, pay)) = o;
        HepPacket {
            version: 3,
            src: *src,
            dst: *dst,
            ip_protocol: *ipp,
            ts_us: *ts,
            proto_type: *pt,
            capture_id: *cid,
            auth_key: auth.as_deref(),
            correlation_id: corr.as_deref(),
            node_name: node.as_deref(),
            vlan: *vlan,
            payload: match kind {
                0 => Payload::Plain(pay),
                1 => Payload::Gzip(pay),
                _ => Payload::None,
            },
        }
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(o in arb_packet()) {
            let p = build(&o);
            let mut out = Vec::new();
            encode_v3(&p, &mut out);
            let (q, used) = decode_v3(&out).unwrap();
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(q, p);
        }

        #[test]
        fn any_chunk_order_decodes_the_same(
            order in Just((0..11usize).collect::<Vec<_>>()).prop_shuffle()
        ) {
            let base = kamailio_chunks();
            let chunks: Vec<Vec<u8>> = order.iter().map(|&i| base[i].clone()).collect();
            prop_assert_eq!(dec(&chunks).unwrap(), expected_kamailio());
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_v3(&data);
            let mut with_magic = b"HEP3".to_vec();
            with_magic.extend_from_slice(&data);
            if let Ok((p, used)) = decode_v3(&with_magic) {
                prop_assert!(used <= with_magic.len());
                let _ = p.payload.bytes(&mut Vec::new(), 64);
            }
            if let Ok((chunks, _)) = chunks_v3(&with_magic) {
                for c in chunks {
                    let _ = c;
                }
            }
        }

        #[test]
        fn random_chunks_with_valid_framing_never_panic(
            chunks in proptest::collection::vec(
                (0u16..2, 0u16..25, proptest::collection::vec(any::<u8>(), 0..20)),
                0..20,
            ),
            trailing in proptest::collection::vec(any::<u8>(), 0..10),
        ) {
            let raw: Vec<Vec<u8>> = chunks.iter().map(|(v, k, b)| ch(*v, *k, b)).collect();
            let mut buf = packet(&raw);
            let total = buf.len();
            buf.extend_from_slice(&trailing);
            match decode_v3(&buf) {
                Ok((p, used)) => {
                    prop_assert_eq!(used, total);
                    let mut out = Vec::new();
                    encode_v3(&p, &mut out);
                    prop_assert_eq!(decode_v3(&out).unwrap().0, p);
                }
                Err(e) => prop_assert!(matches!(
                    e,
                    HepError::BadChunkLength | HepError::MissingAddress
                )),
            }
        }
    }
}
