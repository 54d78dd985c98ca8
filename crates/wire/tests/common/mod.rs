//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use siphon_wire::tcp::{Framer, Framing};

/// The shared capture corpus (never copied into the repository).
pub fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

/// Splits a SIP byte stream: headers up to CRLF CRLF, then Content-Length (or `l:`) bytes of
/// body. Leading CR/LF (keep-alives) are skipped.
pub struct SipTestFramer;

impl Framer for SipTestFramer {
    fn frame(&self, buf: &[u8]) -> Framing {
        let lead = buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        if lead > 0 {
            return Framing::Invalid { skip: lead };
        }
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Framing::Incomplete;
        };
        let mut body = 0usize;
        for line in buf[..end].split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let name = line[..colon].trim_ascii();
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                body = std::str::from_utf8(line[colon + 1..].trim_ascii())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
        }
        let total = end + 4 + body;
        if buf.len() >= total {
            Framing::Complete(total)
        } else {
            Framing::Incomplete
        }
    }
}
