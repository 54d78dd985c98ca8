//! RTP and RTCP views over raw bytes, and per-stream statistics following RFC 3550.
//!
//! Promises: no input can make any function here panic; [`RtpHeader::parse`] and
//! [`rtcp_packets`] read only the bytes they are given; [`StreamStats`] uses constant
//! memory per stream whatever order, duplication or loss the packets arrive with.
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

mod header;
mod rtcp;
mod stats;

pub use header::{looks_like_rtcp, looks_like_rtp, rtcp_packets, RtcpHeader, RtpError, RtpHeader};
pub use rtcp::{ntp_mid, parse_rtcp, rtt_us, ReportBlock, RtcpReport, VoipMetrics};
pub use stats::{clock_rate_for_static, StreamStats};
