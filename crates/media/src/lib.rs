//! Codecs and WAV rendering for Siphon: turns the RTP packets of a call into a WAV file.
//!
//! Promises:
//! - G.711 A-law/µ-law expansion is bit-exact with the ITU-T G.711 tables; G.722
//!   (64 kbit/s) is decoded by a fixed-point implementation of the ITU-T decoder; L16 in
//!   network byte order at any rate and channel count; Opus through libopus at 48 kHz.
//! - [`WavRenderer`] places audio by RTP timestamp relative to capture time: losses become
//!   silence of the right length, duplicates are dropped, reordered packets land in place,
//!   SSRC changes and timestamp jumps re-anchor to capture time, and both directions stay
//!   aligned within one packet time (see the [`render`] module for the exact rules).
//! - Stereo output puts caller → callee on the left, callee → caller on the right (or
//!   mixes them into mono), at the highest natural codec rate or a chosen rate.
//! - RFC 4733 telephone-events are reported as [`Dtmf`] digits, never rendered.
//! - No input can panic: unknown codecs and corrupt payloads render as silence with a
//!   warning. Memory stays bounded (a few seconds of audio) whatever the call length.
//! - The crate does no I/O of its own beyond writing to the `Write + Seek` it is given.
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

mod codec;
pub mod g711;
mod g722;
pub mod render;
pub mod replay;
mod resample;

pub use codec::{codec_for, Codec};
pub use g722::G722Decoder;
pub use render::{Channel, Dtmf, RenderOptions, RenderReport, RtpPacket, WavRenderer};
pub use replay::{render_call, CallPacket, CallRenderer};
