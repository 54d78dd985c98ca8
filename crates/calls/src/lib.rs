//! Sans-IO call correlation.
//!
//! Feed it parsed SIP messages and RTP/RTCP headers with their capture time and addresses; it
//! groups messages by Call-ID into calls (or non-call dialogs such as REGISTER and OPTIONS),
//! binds media endpoints from SDP offer/answer (re-INVITE and UPDATE included), accounts RTP
//! streams per (src, dst, SSRC), drives the call state machine PENDING → ACTIVE → CLOSING →
//! COMPLETE on capture time, and hands back finished [`CallSummary`]s. It does no I/O.
//!
//! Promises: memory is bounded by the open calls plus `id_cache_size` closed Call-IDs; no input
//! panics; the same sequence of events always gives the same summaries.
#![forbid(unsafe_code)]

mod correlator;
mod endpoints;
pub mod quality;
mod refmap;
mod summary;

pub use correlator::{
    CallConfig, Correlator, MediaClass, SipOutcome, MEDIA_SNAPSHOT_EVERY_US, SNAPSHOT_DELAY_US,
};
pub use refmap::RefMap;
pub use summary::{
    codec_name, CallState, CallSummary, HangupSide, Phase, RtcpFigures, StreamDirection,
    StreamInterval, StreamSummary,
};

/// Numeric handle of a call inside one store; stable for the call's life.
pub type CallRef = u64;
