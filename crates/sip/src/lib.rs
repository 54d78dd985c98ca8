//! Zero-copy, lenient SIP parsing for packet capture.
//!
//! What this crate promises:
//!
//! * [`Message::parse`] reads a SIP request or response in one pass over its header section
//!   and does not allocate; every accessor returns slices of the input. Any byte sequence is
//!   safe to feed: parsing either succeeds or returns a small [`ParseError`], and no accessor
//!   can panic.
//! * Leniency over strictness: LF-only line endings, blanks around `:`, any header-name case,
//!   compact header forms, folded lines, non-UTF-8 bytes and odd URIs are all accepted. Values
//!   that cannot be understood read as `None`, never as an error.
//! * [`frame`] cuts messages out of a TCP byte stream (bounded: it never asks to buffer more
//!   than [`MAX_HEADER_SECTION`] of headers or [`MAX_BODY`] of body);
//!   [`looks_like_sip`] is a cheap datagram classifier.
//! * [`multipart`] splits multipart bodies (SIPREC) and [`sdp`] scans session descriptions for
//!   the addresses, ports, codecs and directions that media correlation needs.
//!
//! The crate has no dependencies and no `unsafe` code.

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

mod bytes;
mod framing;
mod headers;
mod message;
pub mod multipart;
pub mod sdp;
mod values;

pub use framing::{frame, looks_like_sip, Framing, MAX_BODY, MAX_HEADER_SECTION};
pub use message::{Message, ParseError, MAX_HEADERS};
pub use values::{CSeq, NameAddr, ReasonHeader};
