//! HEP v1 and v2: a fixed binary header followed by the payload.
//!
//! ```text
//! u8 version (1|2) | u8 length | u8 family (2|10) | u8 IP protocol | u16 src port | u16 dst port
//! src address, dst address (4 or 16 bytes each)
//! v2 only: u32 seconds | u32 microseconds | u16 capture id | 2 pad bytes
//! payload (the rest of the buffer)
//! ```
//!
//! Ports are big-endian; the v2 time header is written in the sender's host order, which is
//! little-endian for every known sender (Kamailio, captagent, sngrep on x86/ARM), so it is
//! read as little-endian. The length byte is not used: senders disagree on what it counts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::v3::{AF_INET, AF_INET6};
use crate::{HepError, HepPacket, Payload, ProtoType};

/// Fixed part of the v1/v2 header.
const FIXED_LEN: usize = 8;
/// v2 time header: seconds, microseconds, capture id, padding.
const TIME_LEN: usize = 12;

/// Length of the v1/v2 headers (everything before the payload) when `buf` starts with a
/// plausible legacy header, regardless of how many bytes follow.
pub(crate) fn header_len(buf: &[u8]) -> Option<usize> {
    let (&version, &family) = (buf.first()?, buf.get(2)?);
    let addr_len = match family {
        AF_INET => 4,
        AF_INET6 => 16,
        _ => return None,
    };
    let time_len = match version {
        1 => 0,
        2 => TIME_LEN,
        _ => return None,
    };
    Some(FIXED_LEN + 2 * addr_len + time_len)
}

/// True when `buf` holds a complete v1/v2 header of a known family carrying UDP, TCP,
/// SCTP or IDP (Kamailio's stand-in for TLS).
pub(crate) fn is_plausible(buf: &[u8]) -> bool {
    let proto_ok = matches!(buf.get(3), Some(6 | 17 | 22 | 132));
    proto_ok && header_len(buf).is_some_and(|n| buf.len() >= n)
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    <[u8; 4]>::try_from(s).ok().map(u32::from_le_bytes)
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    <[u8; 2]>::try_from(s).ok().map(u16::from_le_bytes)
}

/// Decode one HEP v1 or v2 packet; returns the packet and the number of bytes it occupied.
///
/// v1/v2 have no total length, so the payload is the rest of `buf` and the whole buffer is
/// used (one packet per datagram). These versions carry SIP only: `proto_type` is
/// [`ProtoType::SIP`]. v1 has no time (`ts_us == 0`) and no capture id; v2's 16-bit
/// capture id becomes `capture_id`. The payload is always [`Payload::Plain`] (maybe empty).
///
/// Errors: an empty buffer or one shorter than the 8-byte fixed header is
/// [`HepError::TooShort`]; a version byte other than 1 or 2 is
/// [`HepError::UnsupportedVersion`]; a family other than 2 (IPv4) or 10 (IPv6) is
/// [`HepError::MissingAddress`]; addresses or time header cut short is
/// [`HepError::Truncated`].
pub fn decode_v1v2(buf: &[u8]) -> Result<(HepPacket<'_>, usize), HepError> {
    let version = *buf.first().ok_or(HepError::TooShort)?;
    if version != 1 && version != 2 {
        return Err(HepError::UnsupportedVersion);
    }
    let fixed = buf.get(..FIXED_LEN).ok_or(HepError::TooShort)?;
    let [_, _, family, ip_protocol, sp0, sp1, dp0, dp1] =
        <[u8; FIXED_LEN]>::try_from(fixed).map_err(|_| HepError::TooShort)?;
    let need = header_len(buf).ok_or(HepError::MissingAddress)?;
    let header = buf.get(..need).ok_or(HepError::Truncated {
        need,
        have: buf.len(),
    })?;
    let addrs = header.get(FIXED_LEN..).unwrap_or_default();
    let (src_ip, dst_ip, time_at) = if family == AF_INET {
        let ip = |at: usize| -> Option<IpAddr> {
            let a = <[u8; 4]>::try_from(addrs.get(at..at + 4)?).ok()?;
            Some(Ipv4Addr::from(a).into())
        };
        (ip(0), ip(4), FIXED_LEN + 8)
    } else {
        let ip = |at: usize| -> Option<IpAddr> {
            let a = <[u8; 16]>::try_from(addrs.get(at..at + 16)?).ok()?;
            Some(Ipv6Addr::from(a).into())
        };
        (ip(0), ip(16), FIXED_LEN + 32)
    };
    let (src_ip, dst_ip) = src_ip.zip(dst_ip).ok_or(HepError::MissingAddress)?;
    let (ts_us, capture_id) = if version == 2 {
        let sec = le_u32(header, time_at).ok_or(HepError::TooShort)?;
        let usec = le_u32(header, time_at + 4).ok_or(HepError::TooShort)?;
        let id = le_u16(header, time_at + 8).ok_or(HepError::TooShort)?;
        (
            i64::from(sec) * 1_000_000 + i64::from(usec),
            Some(u32::from(id)),
        )
    } else {
        (0, None)
    };
    let payload = buf.get(need..).unwrap_or_default();
    Ok((
        HepPacket {
            version,
            src: SocketAddr::new(src_ip, u16::from_be_bytes([sp0, sp1])),
            dst: SocketAddr::new(dst_ip, u16::from_be_bytes([dp0, dp1])),
            ip_protocol,
            ts_us,
            proto_type: ProtoType::SIP.0,
            capture_id,
            auth_key: None,
            correlation_id: None,
            node_name: None,
            vlan: None,
            payload: Payload::Plain(payload),
        },
        buf.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode_v3, is_hep};
    use proptest::prelude::*;

    const SIP: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\nCall-ID: r1\r\n\r\n";

    fn v1_ipv4() -> Vec<u8> {
        let mut v = vec![1, 16, 2, 17];
        v.extend_from_slice(&5060u16.to_be_bytes());
        v.extend_from_slice(&5080u16.to_be_bytes());
        v.extend_from_slice(&[192, 168, 1, 10]);
        v.extend_from_slice(&[192, 168, 1, 20]);
        v.extend_from_slice(SIP);
        v
    }

    fn v2(family: u8, src: &[u8], dst: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0, family, 6];
        v.extend_from_slice(&5061u16.to_be_bytes());
        v.extend_from_slice(&5062u16.to_be_bytes());
        v.extend_from_slice(src);
        v.extend_from_slice(dst);
        v.extend_from_slice(&1_600_000_000u32.to_le_bytes());
        v.extend_from_slice(&250_000u32.to_le_bytes());
        v.extend_from_slice(&2001u16.to_le_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(SIP);
        v
    }

    #[test]
    fn v1_ipv4_decodes() {
        let buf = v1_ipv4();
        let (p, used) = decode_v1v2(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(p.version, 1);
        assert_eq!(p.src, "192.168.1.10:5060".parse().unwrap());
        assert_eq!(p.dst, "192.168.1.20:5080".parse().unwrap());
        assert_eq!(p.ip_protocol, 17);
        assert_eq!((p.ts_us, p.capture_id), (0, None));
        assert_eq!(p.proto_type, 1);
        assert_eq!(p.payload, Payload::Plain(SIP));
    }

    #[test]
    fn v2_ipv4_reads_little_endian_time_and_capture_id() {
        let buf = v2(2, &[10, 1, 1, 1], &[10, 2, 2, 2]);
        let (p, used) = decode_v1v2(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(p.version, 2);
        assert_eq!(p.src, "10.1.1.1:5061".parse().unwrap());
        assert_eq!(p.dst, "10.2.2.2:5062".parse().unwrap());
        assert_eq!(p.ip_protocol, 6);
        assert_eq!(p.ts_us, 1_600_000_000_250_000);
        assert_eq!(p.capture_id, Some(2001));
        assert_eq!(p.payload, Payload::Plain(SIP));
    }

    #[test]
    fn v2_ipv6_decodes() {
        let s: Ipv6Addr = "2001:db8::a".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::b".parse().unwrap();
        let buf = v2(10, &s.octets(), &d.octets());
        let (p, _) = decode_v1v2(&buf).unwrap();
        assert_eq!(p.src, "[2001:db8::a]:5061".parse().unwrap());
        assert_eq!(p.dst, "[2001:db8::b]:5062".parse().unwrap());
        assert_eq!(p.capture_id, Some(2001));
        assert_eq!(p.payload, Payload::Plain(SIP));
    }

    #[test]
    fn header_only_packet_has_empty_payload() {
        let buf = &v1_ipv4()[..16];
        assert_eq!(decode_v1v2(buf).unwrap().0.payload, Payload::Plain(b""));
    }

    #[test]
    fn legacy_errors() {
        assert_eq!(decode_v1v2(b""), Err(HepError::TooShort));
        assert_eq!(decode_v1v2(&[2, 0, 2]), Err(HepError::TooShort));
        assert_eq!(
            decode_v1v2(b"HEP3\x00\x06"),
            Err(HepError::UnsupportedVersion)
        );
        assert_eq!(
            decode_v1v2(&[3, 0, 2, 17, 0, 1, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]),
            Err(HepError::UnsupportedVersion)
        );
        assert_eq!(
            decode_v1v2(&[1, 0, 7, 17, 0, 1, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]),
            Err(HepError::MissingAddress)
        );
        let v2buf = v2(2, &[1, 1, 1, 1], &[2, 2, 2, 2]);
        assert_eq!(
            decode_v1v2(&v2buf[..20]),
            Err(HepError::Truncated { need: 28, have: 20 })
        );
        assert_eq!(
            decode_v1v2(&v1_ipv4()[..12]),
            Err(HepError::Truncated { need: 16, have: 12 })
        );
    }

    #[test]
    fn decode_dispatches_on_the_legacy_flag() {
        let buf = v2(2, &[1, 1, 1, 1], &[2, 2, 2, 2]);
        assert_eq!(decode(&buf, true).unwrap().0.version, 2);
        assert_eq!(decode(&buf, false), Err(HepError::UnsupportedVersion));
        assert_eq!(decode(b"garbage!", false), Err(HepError::BadMagic));
        // v3 still decodes with the legacy flag on.
        let mut v3 = Vec::new();
        encode_v3(&decode(&buf, true).unwrap().0, &mut v3);
        assert_eq!(decode(&v3, true).unwrap().0.version, 3);
    }

    #[test]
    fn legacy_headers_are_recognised_by_is_hep() {
        assert!(is_hep(&v1_ipv4()));
        assert!(is_hep(&v2(2, &[1, 1, 1, 1], &[2, 2, 2, 2])));
        assert!(!is_hep(&v1_ipv4()[..15]), "incomplete header");
        let mut bad_proto = v1_ipv4();
        bad_proto[3] = 99;
        assert!(!is_hep(&bad_proto));
    }

    #[test]
    fn v2_reencoded_as_v3_keeps_every_field_but_the_version() {
        let buf = v2(2, &[10, 1, 1, 1], &[10, 2, 2, 2]);
        let (p, _) = decode_v1v2(&buf).unwrap();
        let mut out = Vec::new();
        encode_v3(&p, &mut out);
        let (q, _) = decode(&out, false).unwrap();
        assert_eq!(HepPacket { version: 2, ..q }, p);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok((p, used)) = decode_v1v2(&data) {
                prop_assert_eq!(used, data.len());
                prop_assert!(p.version == 1 || p.version == 2);
            }
            let _ = is_hep(&data);
            let _ = decode(&data, true);
        }

        #[test]
        fn plausible_headers_decode(
            version in 1u8..3,
            v6 in any::<bool>(),
            rest in proptest::collection::vec(any::<u8>(), 60..100),
        ) {
            let mut buf = vec![version, 0, if v6 { 10 } else { 2 }, 17];
            buf.extend_from_slice(&rest);
            prop_assert!(is_hep(&buf));
            let (p, _) = decode_v1v2(&buf).unwrap();
            prop_assert_eq!(p.src.is_ipv6(), v6);
        }
    }
}
