//! Capture files in, decoded UDP/TCP packets out; pcap out.
//!
//! * [`capture`]: streaming pcap / pcapng reader (gzip detected by magic), one reusable buffer.
//! * [`decode`]: link, IP (v4/v6, extension headers, IP-in-IP) and UDP/TCP decoding with bounded
//!   IP fragment reassembly. Decoding a plain Ethernet/IPv4/UDP frame allocates nothing.
//! * [`tcp`]: bounded per-flow TCP stream reassembly feeding an application framer.
//! * [`write`](mod@write): pcap writer and synthetic UDP/TCP frames.
//!
//! No input bytes can make this crate panic: every malformed input is a typed error.
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

pub mod capture;
pub mod decode;
mod defrag;
pub mod link;
pub mod tcp;
pub mod write;

#[cfg(test)]
mod tests {
    fn assert_send<T: Send>() {}

    #[test]
    fn stateful_types_can_move_between_threads() {
        assert_send::<crate::capture::CaptureReader>();
        assert_send::<crate::decode::Decoder>();
        assert_send::<crate::tcp::TcpReassembler>();
        assert_send::<crate::write::PcapWriter<std::fs::File>>();
    }
}
