//! Link-layer types (the pcap `LINKTYPE_*` registry).

use std::fmt;

/// A pcap link type (`LINKTYPE_*` value). Open newtype: unknown values survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback, 4-byte address family in the capturing host's byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II (with optional 802.1Q / 802.1ad tags).
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP: the frame starts with an IPv4 or IPv6 header.
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback, 4-byte address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1 (16-byte header).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2 (20-byte header).
    pub const LINUX_SLL2: LinkType = LinkType(276);
    /// This product's record of a packet that arrived without its frame (HEP): a payload
    /// with its addresses and transport, in the first of the registry's private-use values
    /// (`LINKTYPE_USER0`). See [`crate::write::addressed_payload_into`]. Stored only: the
    /// pcap export turns such records into Ethernet frames.
    pub const ADDRESSED: LinkType = LinkType(147);

    /// Short lowercase name, or `None` for a type this crate does not decode.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            LinkType::NULL => "null",
            LinkType::ETHERNET => "ethernet",
            LinkType::RAW => "raw",
            LinkType::LOOP => "loop",
            LinkType::LINUX_SLL => "linux_sll",
            LinkType::IPV4 => "ipv4",
            LinkType::IPV6 => "ipv6",
            LinkType::LINUX_SLL2 => "linux_sll2",
            LinkType::ADDRESSED => "addressed",
            _ => return None,
        })
    }

    /// Whether [`crate::decode::Decoder`] understands this link type.
    pub fn is_supported(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "linktype {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_linktype_registry() {
        assert_eq!(LinkType::NULL.0, 0);
        assert_eq!(LinkType::ETHERNET.0, 1);
        assert_eq!(LinkType::RAW.0, 101);
        assert_eq!(LinkType::LOOP.0, 108);
        assert_eq!(LinkType::LINUX_SLL.0, 113);
        assert_eq!(LinkType::LINUX_SLL2.0, 276);
        assert_eq!(LinkType::IPV4.0, 228);
        assert_eq!(LinkType::IPV6.0, 229);
        // LINKTYPE_USER0, reserved for private use.
        assert_eq!(LinkType::ADDRESSED.0, 147);
    }

    #[test]
    fn display_names_known_and_numbers_unknown_types() {
        assert_eq!(LinkType::LINUX_SLL2.to_string(), "linux_sll2");
        assert_eq!(LinkType(9999).to_string(), "linktype 9999");
        assert!(!LinkType(9999).is_supported());
        assert!(LinkType::RAW.is_supported());
    }
}
