//! HEP (Homer Encapsulation Protocol) codec: HEP v3 decode and encode, HEP v1/v2 decode.
//!
//! What this crate promises:
//! - Decoding is zero-copy: [`HepPacket`] borrows its byte fields (auth key, correlation
//!   id, node name, payload) from the input buffer, and decoding a packet whose payload is
//!   not compressed allocates nothing.
//! - No input bytes can make it panic; malformed input gives a small `Copy` [`HepError`]
//!   whose [`HepError::reason`] is a stable label for counting.
//! - [`decode_v3`] reports how many bytes the packet occupied, so a TCP stream carrying
//!   packets back to back can be cut into packets.
//! - Compressed payloads (chunk 16) are only inflated on request, into a caller-provided
//!   buffer and up to a caller-provided limit ([`Payload::bytes`]).
//! - [`encode_v3`] writes chunks in the order Kamailio's siptrace module uses, so a packet
//!   decoded from Kamailio and encoded again is byte-identical.
//!
//! Lenient where senders differ (chunk order, unknown and vendor chunks, short integer
//! chunks, absent timestamp or ports), strict where the framing is broken (chunk lengths,
//! total length, address sizes).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
#![forbid(unsafe_code)]

mod error;
mod legacy;
mod payload;
mod v3;

use std::net::SocketAddr;

pub use error::HepError;
pub use legacy::decode_v1v2;
pub use payload::{gzip, Payload};
pub use v3::{
    chunk, chunks_v3, decode_v3, encode_v3, Chunk, Chunks, AF_INET, AF_INET6, CHUNK_HEADER_LEN,
    HEADER_LEN, HEP3_MAGIC, MAX_PACKET_LEN,
};

/// One decoded HEP packet, borrowing its byte fields from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HepPacket<'a> {
    /// HEP version the packet was decoded from (1, 2 or 3); ignored by [`encode_v3`].
    pub version: u8,
    /// Source address and port of the captured packet (port 0 when the packet has none).
    pub src: SocketAddr,
    /// Destination address and port of the captured packet (port 0 when the packet has none).
    pub dst: SocketAddr,
    /// IP protocol number of the captured packet (17 UDP, 6 TCP; 0 when absent).
    pub ip_protocol: u8,
    /// Capture time in microseconds since the Unix epoch: seconds × 10⁶ + the microsecond
    /// field (not normalised: a sender may put more than 10⁶ there). 0 when the packet has
    /// no timestamp (HEP v1, or v3 without chunks 9/10).
    pub ts_us: i64,
    /// Payload protocol type; compare with the [`ProtoType`] constants
    /// (`p.proto_type == ProtoType::SIP`). 0 when absent; always SIP for v1/v2.
    pub proto_type: u8,
    /// Capture agent id (v3 chunk 12; v2 16-bit capture id).
    pub capture_id: Option<u32>,
    /// Authentication key (chunk 14).
    pub auth_key: Option<&'a [u8]>,
    /// Correlation id (chunk 17).
    pub correlation_id: Option<&'a [u8]>,
    /// Node name (chunk 19, the group id chunk heplify uses for the node name).
    pub node_name: Option<&'a [u8]>,
    /// VLAN id (chunk 18).
    pub vlan: Option<u16>,
    /// The captured payload.
    pub payload: Payload<'a>,
}

impl HepPacket<'_> {
    /// The protocol type as an open newtype.
    pub fn proto(&self) -> ProtoType {
        ProtoType(self.proto_type)
    }
}

/// HEP payload protocol type (chunk 11), an open newtype: unknown values are kept.
///
/// [`HepPacket::proto_type`] stays a plain `u8`; these constants compare with it directly
/// (`p.proto_type == ProtoType::SIP`). Numbers follow the HEP specification's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtoType(pub u8);

impl ProtoType {
    /// SIP.
    pub const SIP: Self = Self(0x01);
    /// XMPP.
    pub const XMPP: Self = Self(0x02);
    /// SDP.
    pub const SDP: Self = Self(0x03);
    /// RTP.
    pub const RTP: Self = Self(0x04);
    /// RTCP as JSON.
    pub const RTCP_JSON: Self = Self(0x05);
    /// MGCP.
    pub const MGCP: Self = Self(0x06);
    /// MEGACO (H.248).
    pub const MEGACO: Self = Self(0x07);
    /// M2UA (SS7/SIGTRAN).
    pub const M2UA: Self = Self(0x08);
    /// M3UA (SS7/SIGTRAN).
    pub const M3UA: Self = Self(0x09);
    /// IAX.
    pub const IAX: Self = Self(0x0a);
    /// H.322.
    pub const H322: Self = Self(0x0b);
    /// H.321.
    pub const H321: Self = Self(0x0c);
    /// M2PA.
    pub const M2PA: Self = Self(0x0d);
    /// QoS report as JSON (Kamailio's sipcapture stores it as a report).
    pub const QOS_REPORT_JSON: Self = Self(0x20);
    /// Full MOS report as JSON.
    pub const MOS_FULL_JSON: Self = Self(0x22);
    /// Short MOS report.
    pub const MOS_SHORT: Self = Self(0x23);
    /// SIP as JSON.
    pub const SIP_JSON: Self = Self(0x32);
    /// DNS as JSON.
    pub const DNS_JSON: Self = Self(0x35);
    /// M3UA ISUP as JSON.
    pub const M3UA_ISUP_JSON: Self = Self(0x36);
    /// RTSP as JSON.
    pub const RTSP_JSON: Self = Self(0x37);
    /// Diameter as JSON.
    pub const DIAMETER_JSON: Self = Self(0x38);
    /// GSM MAP as JSON.
    pub const GSM_MAP_JSON: Self = Self(0x39);
    /// RTCP from the pion stack.
    pub const RTCP_PION: Self = Self(0x3a);
    /// CDR records.
    pub const CDR: Self = Self(0x3c);
    /// Free-form log lines.
    pub const LOG: Self = Self(0x64);

    /// Short lowercase name of a known type.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::SIP => "sip",
            Self::XMPP => "xmpp",
            Self::SDP => "sdp",
            Self::RTP => "rtp",
            Self::RTCP_JSON => "rtcp_json",
            Self::MGCP => "mgcp",
            Self::MEGACO => "megaco",
            Self::M2UA => "m2ua",
            Self::M3UA => "m3ua",
            Self::IAX => "iax",
            Self::H322 => "h322",
            Self::H321 => "h321",
            Self::M2PA => "m2pa",
            Self::QOS_REPORT_JSON => "qos_report_json",
            Self::MOS_FULL_JSON => "mos_full_json",
            Self::MOS_SHORT => "mos_short",
            Self::SIP_JSON => "sip_json",
            Self::DNS_JSON => "dns_json",
            Self::M3UA_ISUP_JSON => "m3ua_isup_json",
            Self::RTSP_JSON => "rtsp_json",
            Self::DIAMETER_JSON => "diameter_json",
            Self::GSM_MAP_JSON => "gsm_map_json",
            Self::RTCP_PION => "rtcp_pion",
            Self::CDR => "cdr",
            Self::LOG => "log",
            _ => return None,
        })
    }
}

impl From<u8> for ProtoType {
    fn from(v: u8) -> Self {
        Self(v)
    }
}

impl From<ProtoType> for u8 {
    fn from(v: ProtoType) -> Self {
        v.0
    }
}

impl PartialEq<u8> for ProtoType {
    fn eq(&self, other: &u8) -> bool {
        self.0 == *other
    }
}

impl PartialEq<ProtoType> for u8 {
    fn eq(&self, other: &ProtoType) -> bool {
        *self == other.0
    }
}

pub(crate) fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    <[u8; 2]>::try_from(s).ok().map(u16::from_be_bytes)
}

/// True when `buf` starts like a HEP packet: the `HEP3` magic, or a complete HEP v1/v2
/// header (version 1 or 2, family 2 or 10, IP protocol UDP, TCP, SCTP or IDP).
pub fn is_hep(buf: &[u8]) -> bool {
    buf.starts_with(HEP3_MAGIC) || legacy::is_plausible(buf)
}

/// Decode one packet: HEP v3, or v1/v2 too when `legacy` is true.
///
/// Returns the packet and the number of bytes it occupied (see [`decode_v3`] and
/// [`decode_v1v2`]). With `legacy` false, a buffer that looks like a v1/v2 packet gives
/// [`HepError::UnsupportedVersion`] rather than [`HepError::BadMagic`].
pub fn decode(buf: &[u8], legacy: bool) -> Result<(HepPacket<'_>, usize), HepError> {
    if buf.starts_with(HEP3_MAGIC) {
        decode_v3(buf)
    } else if legacy {
        decode_v1v2(buf)
    } else if legacy::is_plausible(buf) {
        Err(HepError::UnsupportedVersion)
    } else {
        decode_v3(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn proto_type_compares_with_u8_both_ways() {
        assert!(1u8 == ProtoType::SIP);
        assert!(ProtoType::RTCP_JSON == 5u8);
        assert_eq!(ProtoType::from(100), ProtoType::LOG);
        assert_eq!(u8::from(ProtoType::QOS_REPORT_JSON), 32);
        assert_eq!(ProtoType::SIP.name(), Some("sip"));
        assert_eq!(ProtoType(0xee).name(), None);
    }

    #[test]
    fn proto_type_names_are_unique() {
        let names: Vec<_> = (0..=255u8).filter_map(|v| ProtoType(v).name()).collect();
        let set: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(set.len(), names.len());
        assert_eq!(names.len(), 25);
    }

    #[test]
    fn is_hep_recognises_v3_magic_and_rejects_sip_rtp() {
        assert!(is_hep(b"HEP3\x00\x06"));
        assert!(is_hep(b"HEP3"));
        assert!(!is_hep(b"HEP"));
        assert!(!is_hep(b"INVITE sip:bob@example.com SIP/2.0\r\n"));
        assert!(!is_hep(&[
            0x80, 0x08, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4
        ]));
        assert!(!is_hep(b""));
    }

    #[test]
    fn decode_without_legacy_reports_bad_magic_for_other_bytes() {
        assert_eq!(
            decode(b"SIP/2.0 200 OK\r\n", false),
            Err(HepError::BadMagic)
        );
        assert_eq!(decode(b"", false), Err(HepError::TooShort));
        assert_eq!(decode(b"", true), Err(HepError::TooShort));
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), legacy in any::<bool>()) {
            if let Ok((p, used)) = decode(&data, legacy) {
                prop_assert!(used <= data.len());
                prop_assert!(is_hep(&data) || p.version == 3);
                let mut scratch = Vec::new();
                let _ = p.payload.bytes(&mut scratch, 16);
            }
        }
    }
}
