//! Fixed RTP header (RFC 3550 §5.1) and RTCP common header (§6.4) views.

/// Why bytes are not an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Fewer than 12 bytes, or fewer than the CSRC list / extension announce.
    Truncated,
    /// The version field is not 2.
    BadVersion,
    /// The padding count is larger than the payload.
    BadPadding,
}

impl RtpError {
    /// Stable label used when counting malformed packets.
    pub fn reason(&self) -> &'static str {
        match self {
            RtpError::Truncated => "rtp_truncated",
            RtpError::BadVersion => "rtp_bad_version",
            RtpError::BadPadding => "rtp_bad_padding",
        }
    }
}

/// The fields of an RTP header that analysis needs, with the payload's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Offset of the payload in the packet.
    pub payload_offset: usize,
    /// Length of the payload without padding.
    pub payload_len: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

impl RtpHeader {
    /// Parses the fixed header, CSRC list, header extension and padding.
    pub fn parse(buf: &[u8]) -> Result<RtpHeader, RtpError> {
        let b0 = *buf.first().ok_or(RtpError::Truncated)?;
        if buf.len() < 12 {
            return Err(RtpError::Truncated);
        }
        if b0 >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let b1 = *buf.get(1).ok_or(RtpError::Truncated)?;
        let csrc = usize::from(b0 & 0x0f);
        let mut off = 12 + 4 * csrc;
        if b0 & 0x10 != 0 {
            let words = be16(buf, off + 2).ok_or(RtpError::Truncated)?;
            off += 4 + 4 * usize::from(words);
        }
        if off > buf.len() {
            return Err(RtpError::Truncated);
        }
        let mut end = buf.len();
        if b0 & 0x20 != 0 {
            let pad = usize::from(*buf.last().ok_or(RtpError::Truncated)?);
            if pad == 0 || off + pad > end {
                return Err(RtpError::BadPadding);
            }
            end -= pad;
        }
        Ok(RtpHeader {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7f,
            seq: be16(buf, 2).ok_or(RtpError::Truncated)?,
            timestamp: be32(buf, 4).ok_or(RtpError::Truncated)?,
            ssrc: be32(buf, 8).ok_or(RtpError::Truncated)?,
            payload_offset: off,
            payload_len: end - off,
        })
    }
}

/// True when the bytes start like an RTCP packet (version 2, packet type 192..=223, RFC 5761 §4).
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    match (buf.first(), buf.get(1)) {
        (Some(b0), Some(b1)) => buf.len() >= 8 && b0 >> 6 == 2 && (192..=223).contains(b1),
        _ => false,
    }
}

/// True when the bytes parse as RTP and are not RTCP (payload type outside 72..=95).
pub fn looks_like_rtp(buf: &[u8]) -> bool {
    if looks_like_rtcp(buf) {
        return false;
    }
    match RtpHeader::parse(buf) {
        Ok(h) => !(72..=95).contains(&h.payload_type),
        Err(_) => false,
    }
}

/// Common header of one RTCP packet inside a compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpHeader {
    /// Packet type (200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, 207 XR, ...).
    pub packet_type: u8,
    /// Report count / subtype (5 bits).
    pub count: u8,
    /// SSRC of the sender (0 when the packet is too short to carry one).
    pub ssrc: u32,
    /// Length in bytes of this packet including its header.
    pub len: usize,
}

/// Iterates over the packets of a compound RTCP packet; stops at the first malformed one.
pub fn rtcp_packets(buf: &[u8]) -> impl Iterator<Item = RtcpHeader> + '_ {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let rest = buf.get(off..)?;
        let b0 = *rest.first()?;
        if b0 >> 6 != 2 {
            return None;
        }
        let packet_type = *rest.get(1)?;
        let words = be16(rest, 2)?;
        let len = (usize::from(words) + 1) * 4;
        if len > rest.len() {
            return None;
        }
        off += len;
        Some(RtcpHeader {
            packet_type,
            count: b0 & 0x1f,
            ssrc: be32(rest, 4).unwrap_or(0),
            len,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pkt(pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut v = vec![0x80, pt];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&ssrc.to_be_bytes());
        v.extend_from_slice(&[0xd5; 160]);
        v
    }

    #[test]
    fn parses_fixed_header_fields() {
        let h = RtpHeader::parse(&pkt(0x88, 7, 1000, 0xdee0ee8f)).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 8);
        assert_eq!((h.seq, h.timestamp, h.ssrc), (7, 1000, 0xdee0ee8f));
        assert_eq!((h.payload_offset, h.payload_len), (12, 160));
    }

    #[test]
    fn csrc_extension_and_padding_move_the_payload() {
        let mut v = pkt(8, 1, 1, 1);
        v[0] = 0x80 | 0x20 | 0x10 | 0x01; // padding, extension, one CSRC
                                          // CSRC at 12..16, extension header at 16..20 announcing one word.
        v[18] = 0;
        v[19] = 1;
        let n = v.len();
        v[n - 1] = 4;
        let h = RtpHeader::parse(&v).unwrap();
        assert_eq!(h.payload_offset, 24);
        assert_eq!(h.payload_len, n - 24 - 4);
    }

    #[test]
    fn rejects_short_wrong_version_and_bad_padding() {
        assert_eq!(RtpHeader::parse(&[0x80; 11]), Err(RtpError::Truncated));
        let mut v = pkt(8, 1, 1, 1);
        v[0] = 0x40;
        assert_eq!(RtpHeader::parse(&v), Err(RtpError::BadVersion));
        let mut v = pkt(8, 1, 1, 1);
        v[0] |= 0x20;
        *v.last_mut().unwrap() = 200;
        assert_eq!(RtpHeader::parse(&v), Err(RtpError::BadPadding));
    }

    #[test]
    fn rtcp_is_told_apart_from_rtp() {
        // SR (200) + SDES (202) compound.
        let mut c = vec![0x80, 200, 0, 6];
        c.extend_from_slice(&0x1234u32.to_be_bytes());
        c.extend_from_slice(&[0; 20]);
        c.extend_from_slice(&[0x81, 202, 0, 1]);
        c.extend_from_slice(&0x1234u32.to_be_bytes());
        assert!(looks_like_rtcp(&c));
        assert!(!looks_like_rtp(&c));
        let types: Vec<u8> = rtcp_packets(&c).map(|p| p.packet_type).collect();
        assert_eq!(types, vec![200, 202]);
        assert!(looks_like_rtp(&pkt(8, 1, 1, 1)));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RtpHeader::parse(&data);
            let _ = looks_like_rtp(&data);
            let _ = rtcp_packets(&data).count();
            if let Ok(h) = RtpHeader::parse(&data) {
                prop_assert!(h.payload_offset + h.payload_len <= data.len());
            }
        }
    }
}
