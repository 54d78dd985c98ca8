//! Message boundaries on a byte stream (SIP over TCP or TLS, RFC 3261 section 18.3) and a cheap
//! "is this SIP?" check for datagrams.

use crate::bytes::{find_byte, parse_u64, starts_with_ci, trim};
use crate::headers::{self, Hdr, Unterminated};
use crate::message::parse_start_line;

/// Longest header section (start line included) [`frame`] waits for before declaring the stream
/// invalid.
pub const MAX_HEADER_SECTION: usize = 64 * 1024;

/// Largest Content-Length [`frame`] accepts.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Result of [`frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// The first message is complete and spans `buf[..n]` (leading CRLF keep-alives included).
    Complete(usize),
    /// More bytes are needed.
    Incomplete,
    /// The buffer does not start with a usable SIP message: drop `skip` bytes (at least one)
    /// and try again.
    Invalid {
        /// Bytes to discard: up to the next line that could start a message, or everything.
        skip: usize,
    },
}

/// Finds the length of the first SIP message in a stream buffer.
///
/// Leading CR/LF bytes (RFC 5626 keep-alives) are folded into the message that follows, so
/// `Complete(n)` may count them; [`crate::Message::parse`] skips them. A buffer holding only
/// keep-alives is `Incomplete`. The message length is its header section plus Content-Length
/// (full or compact `l:` form; absent means 0). A malformed start line, a header section longer
/// than [`MAX_HEADER_SECTION`] without an end, or a Content-Length that is not a number or
/// exceeds [`MAX_BODY`] is `Invalid`.
pub fn frame(buf: &[u8]) -> Framing {
    let lead = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let rest = buf.get(lead..).unwrap_or_default();
    if rest.is_empty() {
        return Framing::Incomplete;
    }
    let window = rest.get(..MAX_HEADER_SECTION).unwrap_or(rest);
    let Some(nl) = find_byte(window, b'\n') else {
        if rest.len() < MAX_HEADER_SECTION && plausible_partial_start(rest) {
            return Framing::Incomplete;
        }
        return invalid(buf, lead.saturating_add(1));
    };
    let hdr_start = lead.saturating_add(nl).saturating_add(1);
    if parse_start_line(window.get(..nl).unwrap_or_default()).is_err() {
        return invalid(buf, hdr_start);
    }
    let mut content_length: Option<(usize, usize)> = None;
    let limit = MAX_HEADER_SECTION.saturating_sub(nl.saturating_add(1));
    let scanned = headers::scan(buf, hdr_start, limit, |ns, ne, vs, ve| {
        if content_length.is_none()
            && buf.get(ns..ne).map(Hdr::from_name) == Some(Hdr::ContentLength)
        {
            content_length = Some((vs, ve));
        }
    });
    let body_start = match scanned {
        Ok(b) => b,
        Err(Unterminated::Eof { .. }) => return Framing::Incomplete,
        Err(Unterminated::TooLong) => return invalid(buf, hdr_start),
    };
    let body_len = match content_length {
        None => 0,
        Some((vs, ve)) => {
            let value = buf.get(vs..ve).unwrap_or_default();
            match parse_u64(trim(value)).and_then(|n| usize::try_from(n).ok()) {
                Some(n) if n <= MAX_BODY => n,
                _ => return invalid(buf, hdr_start),
            }
        }
    };
    match body_start.checked_add(body_len) {
        Some(total) if total <= buf.len() => Framing::Complete(total),
        Some(_) => Framing::Incomplete,
        None => invalid(buf, hdr_start),
    }
}

/// `Invalid` skipping to the first line at or after `from` that could start a message.
fn invalid(buf: &[u8], from: usize) -> Framing {
    Framing::Invalid {
        skip: resync(buf, from.max(1)),
    }
}

/// Offset of the first line start at or after `from` whose line is a valid start line, or an
/// unfinished line that could become one; `buf.len()` when there is none.
fn resync(buf: &[u8], from: usize) -> usize {
    let mut p = from;
    // Move to a line start.
    if p > 0 && buf.get(p.saturating_sub(1)) != Some(&b'\n') {
        match buf.get(p..).and_then(|t| find_byte(t, b'\n')) {
            Some(nl) => p = p.saturating_add(nl).saturating_add(1),
            None => return buf.len(),
        }
    }
    while let Some(tail) = buf.get(p..).filter(|t| !t.is_empty()) {
        match find_byte(tail, b'\n') {
            Some(nl) => {
                let line = tail.get(..nl).unwrap_or_default();
                if parse_start_line(line).is_ok() {
                    return p;
                }
                p = p.saturating_add(nl).saturating_add(1);
            }
            None => {
                if tail.len() < MAX_HEADER_SECTION && plausible_partial_start(tail) {
                    return p;
                }
                return buf.len();
            }
        }
    }
    buf.len()
}

/// Could this unfinished first line (no line break yet) still become a request or status line?
fn plausible_partial_start(partial: &[u8]) -> bool {
    const VERSION: &[u8] = b"SIP/2.0 ";
    let partial = match partial {
        [head @ .., b'\r'] => head,
        _ => partial,
    };
    if partial.iter().any(|&b| b < 0x20 && b != b'\t') || partial.contains(&0x7f) {
        return false;
    }
    let n = partial.len().min(VERSION.len());
    if starts_with_ci(VERSION, partial.get(..n).unwrap_or_default()) {
        return true;
    }
    let method_len = partial
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
        .count();
    if method_len == 0 || method_len > 32 {
        return false;
    }
    matches!(partial.get(method_len), None | Some(b' '))
}

/// Cheap check that a datagram starts with a SIP request line (`METHOD SP uri SP SIP/2.0`) or
/// status line (`SIP/2.0 NNN`). Leading CR/LF bytes are skipped.
pub fn looks_like_sip(buf: &[u8]) -> bool {
    let lead = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let rest = buf.get(lead..).unwrap_or_default();
    if !rest.first().is_some_and(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    let line = rest.get(..find_byte(rest, b'\n').unwrap_or(rest.len()));
    line.is_some_and(|l| parse_start_line(l).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";
    const OPTIONS_COMPACT: &[u8] = b"OPTIONS sip:x SIP/2.0\nl : 2\n\nab";
    const RESPONSE_NO_CL: &[u8] = b"SIP/2.0 200 OK\r\nCall-ID: 1\r\n\r\n";

    #[test]
    fn complete_message_with_content_length() {
        assert_eq!(frame(INVITE), Framing::Complete(INVITE.len()));
        let mut two = INVITE.to_vec();
        two.extend_from_slice(RESPONSE_NO_CL);
        assert_eq!(frame(&two), Framing::Complete(INVITE.len()));
    }

    #[test]
    fn compact_content_length_and_lf_only() {
        assert_eq!(
            frame(OPTIONS_COMPACT),
            Framing::Complete(OPTIONS_COMPACT.len())
        );
    }

    #[test]
    fn missing_content_length_means_empty_body() {
        let mut b = RESPONSE_NO_CL.to_vec();
        b.extend_from_slice(b"SIP/2.0 180");
        assert_eq!(frame(&b), Framing::Complete(RESPONSE_NO_CL.len()));
    }

    #[test]
    fn every_proper_prefix_is_incomplete() {
        for n in 0..INVITE.len() {
            assert_eq!(frame(&INVITE[..n]), Framing::Incomplete, "prefix {n}");
        }
    }

    #[test]
    fn keepalives_are_folded_into_the_next_message() {
        let mut b = b"\r\n\r\n".to_vec();
        assert_eq!(frame(&b), Framing::Incomplete);
        b.extend_from_slice(INVITE);
        assert_eq!(frame(&b), Framing::Complete(INVITE.len() + 4));
        assert!(crate::Message::parse(&b).is_ok());
    }

    #[test]
    fn folded_content_length_is_read() {
        let m = b"BYE sip:x SIP/2.0\r\nContent-Length:\r\n 3\r\n\r\nabc";
        assert_eq!(frame(m), Framing::Complete(m.len()));
    }

    #[test]
    fn garbage_is_skipped_up_to_the_next_start_line() {
        let mut b = b"\x16\x03\x01garbage\r\nmore junk\r\n".to_vec();
        let junk = b.len();
        b.extend_from_slice(INVITE);
        assert_eq!(frame(&b), Framing::Invalid { skip: junk });
        assert_eq!(frame(&b[junk..]), Framing::Complete(INVITE.len()));
        assert_eq!(
            frame(b"\x00\x01\x02 no line end"),
            Framing::Invalid { skip: 15 }
        );
    }

    #[test]
    fn skip_stops_before_an_unfinished_line_that_may_be_a_message() {
        let b = b"HTTP/1.1 200 OK\r\nSIP/2.";
        assert_eq!(frame(b), Framing::Invalid { skip: 17 });
    }

    #[test]
    fn bad_content_length_is_invalid() {
        for cl in [&b"-1"[..], b"abc", b"99999999999999999999999", b"16777217"] {
            let mut m = b"MESSAGE sip:x SIP/2.0\r\nContent-Length: ".to_vec();
            m.extend_from_slice(cl);
            m.extend_from_slice(b"\r\n\r\n");
            assert_eq!(
                frame(&m),
                Framing::Invalid { skip: m.len() },
                "{}",
                cl.escape_ascii()
            );
        }
    }

    #[test]
    fn oversized_header_section_is_invalid() {
        let mut m = b"INVITE sip:x SIP/2.0\r\n".to_vec();
        while m.len() <= MAX_HEADER_SECTION {
            m.extend_from_slice(b"X-Filler: 0123456789abcdef0123456789abcdef\r\n");
        }
        assert!(matches!(frame(&m), Framing::Invalid { skip } if skip > 0));
        let mut long_line = b"INVITE sip:".to_vec();
        long_line.resize(MAX_HEADER_SECTION + 10, b'a');
        assert!(matches!(frame(&long_line), Framing::Invalid { .. }));
    }

    #[test]
    fn looks_like_sip_accepts_requests_and_responses_only() {
        assert!(looks_like_sip(INVITE));
        assert!(looks_like_sip(RESPONSE_NO_CL));
        assert!(looks_like_sip(b"\r\nACK sip:a@b SIP/2.0"));
        assert!(looks_like_sip(b"sip/2.0 486 Busy Here\r\n"));
        assert!(!looks_like_sip(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!looks_like_sip(b"SIP/2.0 OK\r\n"));
        assert!(!looks_like_sip(b"INVITE SIP/2.0\r\n"));
        assert!(!looks_like_sip(b"\x80\x08\x00\x01rtp"));
        assert!(!looks_like_sip(b"\r\n\r\n"));
        assert!(!looks_like_sip(b""));
    }
}
