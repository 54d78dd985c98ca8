//! `multipart/*` bodies (RFC 2046), e.g. SIPREC's `multipart/mixed` with an SDP part and an
//! `application/rs-metadata+xml` part.
//!
//! Lenient: when the Content-Type has no `boundary` parameter, or the declared boundary never
//! occurs, the boundary is taken from a first body line that starts with `--`. A missing close
//! delimiter ends the last part at the end of the body.

use crate::bytes::{find, find_byte, param, split_once, trim, trim_end, unquote};
use crate::headers::{self, Hdr};

/// One body part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Part<'a> {
    /// The part's Content-Type value (with parameters), when present.
    pub content_type: Option<&'a [u8]>,
    /// The raw header lines of the part (may be empty).
    pub headers: &'a [u8],
    /// The part's content, without the line break that precedes the next delimiter.
    pub body: &'a [u8],
}

/// Iterator over the parts of a multipart body; see [`parts`].
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    body: &'a [u8],
    boundary: &'a [u8],
    /// Offset just after the boundary of the delimiter that opens the next part.
    pos: usize,
    done: bool,
}

/// Splits a multipart `body` using the boundary of `content_type` (the full Content-Type value).
/// Yields nothing when no boundary can be found.
pub fn parts<'a>(content_type: &'a [u8], body: &'a [u8]) -> Parts<'a> {
    let declared = split_once(content_type, b';')
        .and_then(|(_, params)| param(params, b"boundary"))
        .map(unquote)
        .filter(|b| !b.is_empty());
    let mut first = declared.and_then(|b| find_delimiter(body, 0, b).map(|d| (b, d)));
    if first.is_none() {
        first = inferred_boundary(body).and_then(|b| find_delimiter(body, 0, b).map(|d| (b, d)));
    }
    match first {
        Some((boundary, (_, after))) => Parts {
            body,
            boundary,
            pos: after,
            done: false,
        },
        None => Parts {
            body,
            boundary: &[],
            pos: 0,
            done: true,
        },
    }
}

/// The boundary named by a first body line `--boundary`.
fn inferred_boundary(body: &[u8]) -> Option<&[u8]> {
    let body = body.get(crate::message::leading_blank(body)..)?;
    let rest = body.strip_prefix(b"--")?;
    let line = rest.get(..find_byte(rest, b'\n').unwrap_or(rest.len()))?;
    let b = trim_end(line);
    (!b.is_empty()).then_some(b)
}

/// Finds `--boundary` at the start of a line at or after `from`; returns the offsets of the
/// delimiter's first `-` and of the byte just after the boundary.
fn find_delimiter(body: &[u8], from: usize, boundary: &[u8]) -> Option<(usize, usize)> {
    if boundary.is_empty() {
        return None;
    }
    let mut search = from;
    loop {
        let rel = find(body.get(search..)?, boundary)?;
        let at = search.checked_add(rel)?;
        let after = at.checked_add(boundary.len())?;
        if let Some(start) = at.checked_sub(2) {
            let dashes = body.get(start..at) == Some(&b"--"[..]);
            let line_start = start == 0
                || start
                    .checked_sub(1)
                    .and_then(|p| body.get(p))
                    .is_some_and(|&b| b == b'\n');
            if dashes && line_start && start >= from {
                return Some((start, after));
            }
        }
        search = at.checked_add(1)?;
    }
}

impl<'a> Iterator for Parts<'a> {
    type Item = Part<'a>;

    fn next(&mut self) -> Option<Part<'a>> {
        if self.done {
            return None;
        }
        let rest = self.body.get(self.pos..).unwrap_or_default();
        if rest.starts_with(b"--") {
            self.done = true;
            return None;
        }
        // Skip transport padding and the line break after the delimiter.
        let Some(nl) = find_byte(rest, b'\n') else {
            self.done = true;
            return None;
        };
        let start = self.pos.saturating_add(nl).saturating_add(1);
        let (content, next) = match find_delimiter(self.body, start, self.boundary) {
            Some((d, after)) => {
                let mut end = d;
                if end > start && self.body.get(end.saturating_sub(1)) == Some(&b'\n') {
                    end = end.saturating_sub(1);
                    if end > start && self.body.get(end.saturating_sub(1)) == Some(&b'\r') {
                        end = end.saturating_sub(1);
                    }
                }
                (self.body.get(start..end).unwrap_or_default(), Some(after))
            }
            None => (self.body.get(start..).unwrap_or_default(), None),
        };
        match next {
            Some(after) => self.pos = after,
            None => self.done = true,
        }
        Some(split_part(content))
    }
}

/// Splits a part into header lines and content at the first empty line.
fn split_part(content: &[u8]) -> Part<'_> {
    let (headers, body) = if let Some(b) = content.strip_prefix(b"\r\n") {
        (&[][..], b)
    } else if let Some(b) = content.strip_prefix(b"\n") {
        (&[][..], b)
    } else {
        let crlf = find(content, b"\n\r\n").map(|i| (i, 3));
        let lf = find(content, b"\n\n").map(|i| (i, 2));
        let blank = match (crlf, lf) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        match blank {
            Some((i, len)) => (
                content.get(..i.saturating_add(1)).unwrap_or_default(),
                content.get(i.saturating_add(len)..).unwrap_or_default(),
            ),
            None => (&[][..], content),
        }
    };
    let mut content_type = None;
    let _ = headers::scan(headers, 0, usize::MAX, |ns, ne, vs, ve| {
        if content_type.is_none()
            && headers.get(ns..ne).map(Hdr::from_name) == Some(Hdr::ContentType)
        {
            content_type = headers.get(vs..ve).map(trim);
        }
    });
    Part {
        content_type,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPREC: &[u8] = b"--foobar\r\n\
Content-Type: application/sdp\r\n\
\r\n\
v=0\r\n\
o=- 1 1 IN IP4 10.0.0.1\r\n\
m=audio 4000 RTP/AVP 0\r\n\
\r\n\
--foobar\r\n\
Content-Type: application/rs-metadata+xml\r\n\
Content-Disposition: recording-session\r\n\
\r\n\
<?xml version=\"1.0\"?>\r\n<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>\r\n\
--foobar--\r\n";

    #[test]
    fn siprec_body_splits_into_sdp_and_metadata() {
        let p: Vec<_> = parts(b"multipart/mixed;boundary=foobar", SIPREC).collect();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].content_type, Some(&b"application/sdp"[..]));
        assert_eq!(
            p[0].body,
            &b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n"[..]
        );
        assert_eq!(p[0].headers, b"Content-Type: application/sdp\r\n");
        assert_eq!(p[1].content_type, Some(&b"application/rs-metadata+xml"[..]));
        assert!(p[1].body.starts_with(b"<?xml"));
        assert!(p[1].body.ends_with(b"/>"));
    }

    #[test]
    fn quoted_boundary_preamble_and_lf_only() {
        let body = b"preamble\n--b 1\nc: text/plain\n\nhello\n--b 1\n\nno headers\n--b 1--\n";
        let p: Vec<_> = parts(b"multipart/mixed; boundary=\"b 1\"", body).collect();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].content_type, Some(&b"text/plain"[..]));
        assert_eq!(p[0].body, b"hello");
        assert_eq!(p[1].content_type, None);
        assert_eq!(p[1].headers, b"");
        assert_eq!(p[1].body, b"no headers");
    }

    #[test]
    fn boundary_is_inferred_when_missing_or_wrong() {
        let body = b"--xyz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--xyz--\r\n";
        for ct in [&b"multipart/mixed"[..], b"multipart/mixed;boundary=other"] {
            let p: Vec<_> = parts(ct, body).collect();
            assert_eq!(p.len(), 1, "{}", ct.escape_ascii());
            assert_eq!(p[0].body, b"v=0");
        }
    }

    #[test]
    fn missing_close_delimiter_ends_at_body_end() {
        let body = b"--b\r\nContent-Type: a/b\r\n\r\ntail";
        let p: Vec<_> = parts(b"multipart/mixed;boundary=b", body).collect();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].body, b"tail");
    }

    #[test]
    fn boundary_text_inside_a_line_does_not_split() {
        let body = b"--b\r\n\r\nx --b y\r\n--b--";
        let p: Vec<_> = parts(b"multipart/mixed;boundary=b", body).collect();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].body, b"x --b y");
    }

    #[test]
    fn no_boundary_anywhere_yields_nothing() {
        assert_eq!(parts(b"multipart/mixed", b"just text").count(), 0);
        assert_eq!(parts(b"multipart/mixed;boundary=", b"").count(), 0);
    }
}
