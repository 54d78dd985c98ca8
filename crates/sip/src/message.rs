//! [`Message`]: one SIP request or response, parsed in a single pass over its header section.

use std::fmt;

use crate::bytes::{find_byte, param, parse_u64, split_once, starts_with_ci, trim, unquote};
use crate::headers::{self, CommaSplit, Hdr, Unterminated, KNOWN};
use crate::multipart::{self, Parts};
use crate::values::{CSeq, NameAddr, ReasonHeader};

/// How many header fields a [`Message`] keeps for by-name lookup. Fields beyond this are counted
/// (see [`Message::header_count`]) but only the first occurrence of each well-known header
/// (Call-ID, CSeq, From, To, Via, Contact, Content-Type, ...) stays reachable.
pub const MAX_HEADERS: usize = 64;

/// Why a buffer is not a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The buffer is empty or holds only line breaks and blanks.
    Empty,
    /// The first line is neither a request line nor a status line.
    NotSip,
    /// The first line looks like SIP but is malformed (bad method, missing URI, bad status).
    BadStartLine,
    /// The header section ends in the middle of a line (truncated message).
    NoHeaderEnd,
    /// The buffer is longer than 4 GiB.
    TooLarge,
}

impl ParseError {
    /// Stable snake_case label, e.g. for counting malformed packets by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::NotSip => "not_sip",
            ParseError::BadStartLine => "bad_start_line",
            ParseError::NoHeaderEnd => "no_header_end",
            ParseError::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    #[inline]
    fn new(start: usize, end: usize) -> Span {
        // Callers guarantee the buffer is at most u32::MAX bytes long.
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    name: Span,
    value: Span,
    id: Hdr,
    /// Spelled out so that every byte of an entry is defined: a blank table is then cleared
    /// in one go rather than entry by entry around the padding.
    _pad: [u8; 3],
}

/// Fills the table beyond the stored entries, which are never read: all zero bytes (id 0), so
/// that a new message's table is cleared rather than copied from a pattern.
const EMPTY_ENTRY: Entry = Entry {
    name: Span { start: 0, end: 0 },
    value: Span { start: 0, end: 0 },
    id: Hdr::CallId,
    _pad: [0; 3],
};

/// Parsed first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request {
        method: (usize, usize),
        uri: (usize, usize),
    },
    Response {
        status: u16,
        reason: (usize, usize),
    },
}

#[inline]
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Parses a request or status line (without its line break). Offsets are relative to `line`.
pub(crate) fn parse_start_line(line: &[u8]) -> Result<StartLine, ParseError> {
    let line = crate::bytes::trim_end(line);
    if starts_with_ci(line, b"SIP/") {
        let rest = line
            .get(..8)
            .filter(|v| v.eq_ignore_ascii_case(b"SIP/2.0 "));
        if rest.is_none() {
            return Err(ParseError::BadStartLine);
        }
        let after = line.get(8..).unwrap_or_default();
        let skip = after.iter().take_while(|&&b| b == b' ').count();
        let code_at = 8usize.saturating_add(skip);
        let code = line.get(code_at..code_at.saturating_add(3));
        let status = match code {
            Some(&[a, b, c]) if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(ParseError::BadStartLine),
        };
        let after_code = code_at.saturating_add(3);
        match line.get(after_code) {
            None | Some(b' ') | Some(b'\t') => {}
            Some(_) => return Err(ParseError::BadStartLine),
        }
        let reason_raw = line.get(after_code..).unwrap_or_default();
        let lead = reason_raw
            .iter()
            .take_while(|&&b| crate::bytes::is_wsp(b))
            .count();
        let rs = after_code.saturating_add(lead).min(line.len());
        return Ok(StartLine::Response {
            status,
            reason: (rs, line.len()),
        });
    }
    let Some(last_sp) = memchr::memrchr(b' ', line) else {
        return Err(ParseError::NotSip);
    };
    let version = line.get(last_sp.saturating_add(1)..).unwrap_or_default();
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(ParseError::NotSip);
    }
    let first_sp = find_byte(line, b' ').unwrap_or(last_sp);
    let method = line.get(..first_sp).unwrap_or_default();
    if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
        return Err(ParseError::BadStartLine);
    }
    let mid = line.get(first_sp..last_sp).unwrap_or_default();
    let lead = mid.iter().take_while(|&&b| b == b' ').count();
    let uri_len = crate::bytes::trim_end(mid).len();
    if uri_len <= lead {
        return Err(ParseError::BadStartLine);
    }
    Ok(StartLine::Request {
        method: (0, first_sp),
        uri: (
            first_sp.saturating_add(lead),
            first_sp.saturating_add(uri_len),
        ),
    })
}

/// Number of leading CR, LF, SP and HT bytes.
#[inline]
pub(crate) fn leading_blank(buf: &[u8]) -> usize {
    buf.iter().take_while(|&&b| crate::bytes::is_lws(b)).count()
}

#[derive(Clone, Copy)]
enum Kind {
    Request { method: Span, uri: Span },
    Response { status: u16, reason: Span },
}

/// A parsed SIP request or response: a view over the original bytes.
///
/// Parsing reads the start line and the header section once, recording header spans in a
/// fixed-size inline table (no allocation). Every accessor is a lookup on that table plus a
/// small scan of one header value.
#[derive(Clone)]
pub struct Message<'a> {
    buf: &'a [u8],
    kind: Kind,
    entries: [Entry; MAX_HEADERS],
    stored: usize,
    total: usize,
    known: [Option<Span>; KNOWN],
    body: Span,
}

impl<'a> Message<'a> {
    /// Parses one SIP message (a UDP datagram, or one frame cut by [`crate::frame`]).
    ///
    /// Leading line breaks are skipped; LF-only line endings, blanks around `:` and folded
    /// values are accepted. A header section that ends right after a complete header line,
    /// without the empty line, is accepted with an empty body.
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, ParseError> {
        let mut msg = Message::blank(buf);
        msg.fill()?;
        Ok(msg)
    }

    /// [`parse`](Self::parse), with the message lent to `f` rather than returned: it is built
    /// and filled in place, never moved. For hot paths: the message is 1.6 KB, and returning
    /// it copied it once or twice per message.
    #[inline]
    pub fn parse_with<R>(
        buf: &'a [u8],
        f: impl FnOnce(Result<&Message<'a>, ParseError>) -> R,
    ) -> R {
        let mut msg = Message::blank(buf);
        match msg.fill() {
            Ok(()) => f(Ok(&msg)),
            Err(e) => f(Err(e)),
        }
    }

    /// A message with no start line or headers yet, for [`fill`](Self::fill).
    #[inline]
    fn blank(buf: &'a [u8]) -> Self {
        Message {
            buf,
            kind: Kind::Response {
                status: 0,
                reason: Span::default(),
            },
            entries: [EMPTY_ENTRY; MAX_HEADERS],
            stored: 0,
            total: 0,
            known: [None; KNOWN],
            body: Span::default(),
        }
    }

    /// Parses `self.buf` into the blank message `self`.
    #[inline(never)]
    fn fill(&mut self) -> Result<(), ParseError> {
        let buf = self.buf;
        if u32::try_from(buf.len()).is_err() {
            return Err(ParseError::TooLarge);
        }
        let start = leading_blank(buf);
        let rest = buf.get(start..).unwrap_or_default();
        if rest.is_empty() {
            return Err(ParseError::Empty);
        }
        let (line, after_line) = match find_byte(rest, b'\n') {
            Some(nl) => (
                rest.get(..nl).unwrap_or_default(),
                Some(start.saturating_add(nl).saturating_add(1)),
            ),
            None => (rest, None),
        };
        let sl = parse_start_line(line)?;
        let Some(hdr_start) = after_line else {
            return Err(ParseError::NoHeaderEnd);
        };
        let at =
            |(s, e): (usize, usize)| Span::new(start.saturating_add(s), start.saturating_add(e));
        let kind = match sl {
            StartLine::Request { method, uri } => Kind::Request {
                method: at(method),
                uri: at(uri),
            },
            StartLine::Response { status, reason } => Kind::Response {
                status,
                reason: at(reason),
            },
        };
        self.kind = kind;
        let msg = self;
        let scanned = headers::scan(buf, hdr_start, usize::MAX, |ns, ne, vs, ve| {
            let name = buf.get(ns..ne).unwrap_or_default();
            let id = Hdr::from_name(name);
            let value = Span::new(vs, ve);
            if let Some(slot) = id.slot().and_then(|i| msg.known.get_mut(i)) {
                if slot.is_none() {
                    *slot = Some(value);
                }
            }
            if let Some(e) = msg.entries.get_mut(msg.stored) {
                *e = Entry {
                    name: Span::new(ns, ne),
                    value,
                    id,
                    _pad: [0; 3],
                };
                msg.stored = msg.stored.saturating_add(1);
            }
            msg.total = msg.total.saturating_add(1);
        });
        let body_start = match scanned {
            Ok(b) => b,
            Err(Unterminated::Eof { at_line_end: true }) => buf.len(),
            Err(_) => return Err(ParseError::NoHeaderEnd),
        };
        let remaining = buf.len().saturating_sub(body_start);
        let body_len = msg
            .known_value(Hdr::ContentLength)
            .and_then(|v| parse_u64(trim(v)))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= remaining)
            .unwrap_or(remaining);
        msg.body = Span::new(body_start, body_start.saturating_add(body_len));
        Ok(())
    }

    #[inline]
    fn slice(&self, s: Span) -> &'a [u8] {
        self.buf
            .get(s.start as usize..s.end as usize)
            .unwrap_or_default()
    }

    #[inline]
    fn known_value(&self, id: Hdr) -> Option<&'a [u8]> {
        let slot = id.slot()?;
        self.known
            .get(slot)
            .copied()
            .flatten()
            .map(|s| self.slice(s))
    }

    /// The whole buffer the message was parsed from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// True for requests, false for responses.
    pub fn is_request(&self) -> bool {
        matches!(self.kind, Kind::Request { .. })
    }

    /// Request method, e.g. `b"INVITE"`; `None` for responses.
    pub fn method(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Request { method, .. } => Some(self.slice(method)),
            Kind::Response { .. } => None,
        }
    }

    /// Request-URI; `None` for responses.
    pub fn request_uri(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Request { uri, .. } => Some(self.slice(uri)),
            Kind::Response { .. } => None,
        }
    }

    /// Status code of a response; `None` for requests.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            Kind::Response { status, .. } => Some(status),
            Kind::Request { .. } => None,
        }
    }

    /// Reason phrase of a response (possibly empty); `None` for requests.
    pub fn reason_phrase(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Response { reason, .. } => Some(self.slice(reason)),
            Kind::Request { .. } => None,
        }
    }

    /// First value of header `name`, trimmed. Names are case-insensitive and compact forms are
    /// equivalent (`i` = Call-ID, `f` = From, `t` = To, `v` = Via, `m` = Contact,
    /// `l` = Content-Length, `c` = Content-Type, `k` = Supported, `s` = Subject,
    /// `e` = Content-Encoding, `o` = Event, `r` = Refer-To, `b` = Referred-By,
    /// `u` = Allow-Events, `x` = Session-Expires, `y` = Identity, plus `a`, `j`, `d`, `n`).
    /// Folded continuation lines are part of the value (line breaks included).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        let name = name.as_bytes();
        let id = Hdr::from_name(name);
        if id != Hdr::Other {
            return self.known_value(id);
        }
        self.stored_entries()
            .iter()
            .find(|e| e.id == Hdr::Other && self.slice(e.name).eq_ignore_ascii_case(name))
            .map(|e| self.slice(e.value))
    }

    /// Every value of header `name`: repeated headers in order, each split on commas outside
    /// quotes and `<...>`. Headers that are not lists (Authorization and the other credentials
    /// headers, Date, User-Agent, Server, Subject, Call-ID, CSeq, ...) are not split.
    pub fn header_values(&self, name: &str) -> impl Iterator<Item = &'a [u8]> + '_ {
        let name = name.as_bytes();
        let id = Hdr::from_name(name);
        self.values_of(id, name)
    }

    fn values_of(&self, id: Hdr, name: &[u8]) -> HeaderValues<'_, 'a> {
        let entries = self.stored_entries();
        let first = entries.iter().position(|e| {
            e.id == id && (id != Hdr::Other || self.slice(e.name).eq_ignore_ascii_case(name))
        });
        let split = !headers::is_single_valued(id, name);
        match first {
            Some(i) => HeaderValues {
                msg: self,
                id,
                name: entries.get(i).map(|e| e.name).unwrap_or_default(),
                next: i,
                current: CommaSplit::new(&[]),
                single: None,
                split,
            },
            None => HeaderValues {
                msg: self,
                id,
                name: Span::default(),
                next: self.stored,
                current: CommaSplit::new(&[]),
                // A well-known header that appeared only after the table filled up.
                single: self.known_value(id),
                split,
            },
        }
    }

    /// All stored header fields as `(name, value)` in order (at most [`MAX_HEADERS`]).
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.stored_entries()
            .iter()
            .map(|e| (self.slice(e.name), self.slice(e.value)))
    }

    fn stored_entries(&self) -> &[Entry] {
        self.entries.get(..self.stored).unwrap_or_default()
    }

    /// Number of header fields in the message, including those beyond [`MAX_HEADERS`].
    pub fn header_count(&self) -> usize {
        self.total
    }

    /// Number of header fields that did not fit the table (0 for almost every message).
    pub fn dropped_headers(&self) -> usize {
        self.total.saturating_sub(self.stored)
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&'a [u8]> {
        self.known_value(Hdr::CallId)
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<CSeq<'a>> {
        self.known_value(Hdr::CSeq).and_then(CSeq::parse)
    }

    /// From header.
    pub fn from(&self) -> Option<NameAddr<'a>> {
        self.known_value(Hdr::From).map(NameAddr::parse)
    }

    /// To header.
    pub fn to(&self) -> Option<NameAddr<'a>> {
        self.known_value(Hdr::To).map(NameAddr::parse)
    }

    /// `tag` parameter of the From header (see [`NameAddr::tag_of`]).
    pub fn from_tag(&self) -> Option<&'a [u8]> {
        self.known_value(Hdr::From).and_then(NameAddr::tag_of)
    }

    /// `tag` parameter of the To header.
    pub fn to_tag(&self) -> Option<&'a [u8]> {
        self.known_value(Hdr::To).and_then(NameAddr::tag_of)
    }

    /// First Contact value.
    pub fn contact(&self) -> Option<NameAddr<'a>> {
        self.values_of(Hdr::Contact, b"")
            .next()
            .map(NameAddr::parse)
    }

    /// `branch` parameter of the top-most Via value.
    pub fn via_branch(&self) -> Option<&'a [u8]> {
        let top = self.values_of(Hdr::Via, b"").next()?;
        let (_, params) = split_once(top, b';')?;
        param(params, b"branch").filter(|b| !b.is_empty())
    }

    /// User-Agent; for responses without one, Server.
    pub fn user_agent(&self) -> Option<&'a [u8]> {
        self.known_value(Hdr::UserAgent).or_else(|| {
            if self.is_request() {
                None
            } else {
                self.known_value(Hdr::Server)
            }
        })
    }

    /// Reason header (RFC 3326). When several values are present the `Q.850` one is preferred,
    /// else the first.
    pub fn reason(&self) -> Option<ReasonHeader<'a>> {
        let mut first = None;
        for r in self
            .values_of(Hdr::Reason, b"")
            .filter_map(ReasonHeader::parse)
        {
            if r.is_q850() {
                return Some(r);
            }
            first.get_or_insert(r);
        }
        first
    }

    /// X-CID header (the correlated call's Call-ID, set by some SBCs).
    pub fn x_cid(&self) -> Option<&'a [u8]> {
        self.known_value(Hdr::XCid)
    }

    /// Session-ID value (RFC 7989) without parameters.
    pub fn session_id(&self) -> Option<&'a [u8]> {
        let v = self.known_value(Hdr::SessionId)?;
        let id = trim(v.get(..find_byte(v, b';').unwrap_or(v.len()))?);
        (!id.is_empty()).then_some(id)
    }

    /// `icid-value` parameter of P-Charging-Vector (quotes removed).
    pub fn icid(&self) -> Option<&'a [u8]> {
        let v = self.known_value(Hdr::PChargingVector)?;
        param(v, b"icid-value")
            .map(|v| trim(unquote(v)))
            .filter(|v| !v.is_empty())
    }

    /// Content-Type value including parameters.
    pub fn content_type(&self) -> Option<&'a [u8]> {
        self.known_value(Hdr::ContentType)
    }

    /// Bytes after the empty line, cut to Content-Length when it is a valid number not beyond
    /// the buffer; otherwise the rest of the buffer.
    pub fn body(&self) -> &'a [u8] {
        self.slice(self.body)
    }

    /// SDP payloads: the body when Content-Type is `application/sdp` (or when there is no
    /// Content-Type and the body starts with `v=0`), or every part of a `multipart/*` body
    /// whose Content-Type is `application/sdp`. Empty bodies are skipped.
    pub fn sdp_bodies(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let body = self.body();
        let inner = match self.content_type() {
            Some(ct) => {
                let mt = media_type(ct);
                if mt.eq_ignore_ascii_case(b"application/sdp") {
                    SdpInner::One(Some(body))
                } else if starts_with_ci(mt, b"multipart/") {
                    SdpInner::Parts(multipart::parts(ct, body))
                } else {
                    SdpInner::One(None)
                }
            }
            None if body.starts_with(b"v=0") => SdpInner::One(Some(body)),
            None => SdpInner::One(None),
        };
        SdpBodies { inner }
    }
}

/// The media type of a Content-Type value (before parameters), trimmed.
pub(crate) fn media_type(ct: &[u8]) -> &[u8] {
    trim(
        ct.get(..find_byte(ct, b';').unwrap_or(ct.len()))
            .unwrap_or_default(),
    )
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        match self.kind {
            Kind::Request { method, uri } => {
                d.field("method", &self.slice(method).escape_ascii().to_string());
                d.field("uri", &self.slice(uri).escape_ascii().to_string());
            }
            Kind::Response { status, reason } => {
                d.field("status", &status);
                d.field("reason", &self.slice(reason).escape_ascii().to_string());
            }
        }
        d.field("headers", &self.total)
            .field("body_len", &self.body().len())
            .finish()
    }
}

struct HeaderValues<'m, 'a> {
    msg: &'m Message<'a>,
    id: Hdr,
    name: Span,
    next: usize,
    current: CommaSplit<'a>,
    single: Option<&'a [u8]>,
    split: bool,
}

impl<'a> Iterator for HeaderValues<'_, 'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(v) = self.current.next() {
                return Some(v);
            }
            if let Some(v) = self.single.take() {
                if self.split {
                    self.current = CommaSplit::new(v);
                    continue;
                }
                let v = trim(v);
                if v.is_empty() {
                    continue;
                }
                return Some(v);
            }
            let entries = self.msg.stored_entries();
            let e = entries.get(self.next)?;
            self.next = self.next.saturating_add(1);
            let matches = e.id == self.id
                && (self.id != Hdr::Other
                    || self
                        .msg
                        .slice(e.name)
                        .eq_ignore_ascii_case(self.msg.slice(self.name)));
            if matches {
                self.single = Some(self.msg.slice(e.value));
            }
        }
    }
}

enum SdpInner<'a> {
    One(Option<&'a [u8]>),
    Parts(Parts<'a>),
}

struct SdpBodies<'a> {
    inner: SdpInner<'a>,
}

impl<'a> Iterator for SdpBodies<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.inner {
            SdpInner::One(b) => b.take().filter(|b| !b.is_empty()),
            SdpInner::Parts(parts) => parts.find_map(|p| {
                let sdp = p
                    .content_type
                    .is_some_and(|ct| media_type(ct).eq_ignore_ascii_case(b"application/sdp"));
                (sdp && !p.body.is_empty()).then_some(p.body)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::Sdp;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds , SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKsecond\r\n\
Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKthird\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice, the caller\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>, <sip:alice@backup.example.com>\r\n\
User-Agent: Phone/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 48\r\n\
\r\n\
v=0\r\nc=IN IP4 10.1.1.1\r\nm=audio 4000 RTP/AVP 0\r\ntrailing";

    fn msg(buf: &[u8]) -> Message<'_> {
        Message::parse(buf).unwrap()
    }

    #[test]
    fn request_line_and_core_headers() {
        let m = msg(INVITE);
        assert!(m.is_request());
        assert_eq!(m.method(), Some(&b"INVITE"[..]));
        assert_eq!(m.request_uri(), Some(&b"sip:bob@biloxi.example.com"[..]));
        assert_eq!(m.status(), None);
        assert_eq!(m.reason_phrase(), None);
        assert_eq!(
            m.call_id(),
            Some(&b"a84b4c76e66710@pc33.atlanta.example.com"[..])
        );
        assert_eq!(
            m.cseq(),
            Some(CSeq {
                seq: 314159,
                method: b"INVITE"
            })
        );
        assert_eq!(m.header_count(), 11);
        assert_eq!(m.dropped_headers(), 0);
        assert_eq!(m.user_agent(), Some(&b"Phone/1.0"[..]));
        assert_eq!(m.content_type(), Some(&b"application/sdp"[..]));
    }

    #[test]
    fn parse_with_lends_what_parse_returns() {
        for buf in [
            INVITE,
            b"SIP/2.0 180 Ringing\r\nCall-ID: x\r\n\r\n".as_slice(),
            b"\r\n",
            b"junk\r\n\r\n",
        ] {
            let owned = Message::parse(buf);
            Message::parse_with(buf, |lent| match (&owned, lent) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.call_id(), b.call_id());
                    assert_eq!(a.status(), b.status());
                    assert_eq!(a.method(), b.method());
                    assert_eq!(a.header_count(), b.header_count());
                    assert!(a.headers().eq(b.headers()));
                    assert_eq!(a.body(), b.body());
                }
                (Err(a), Err(b)) => assert_eq!(*a, b),
                (a, b) => panic!("parse gave {:?}, parse_with {:?}", a.is_ok(), b.is_ok()),
            });
        }
    }

    #[test]
    fn comma_joined_via_top_branch_is_the_first_value() {
        let m = msg(INVITE);
        assert_eq!(m.via_branch(), Some(&b"z9hG4bK776asdhds"[..]));
        let branches: Vec<_> = m
            .header_values("via")
            .map(|v| {
                let (_, p) = split_once(v, b';').unwrap();
                param(p, b"branch").unwrap()
            })
            .collect();
        assert_eq!(
            branches,
            vec![&b"z9hG4bK776asdhds"[..], b"z9hG4bKsecond", b"z9hG4bKthird"]
        );
    }

    #[test]
    fn quoted_comma_in_display_name_does_not_split() {
        let m = msg(INVITE);
        let from = m.from().unwrap();
        assert_eq!(from.display, Some(&b"Alice, the caller"[..]));
        assert_eq!(from.user, Some(&b"alice"[..]));
        assert_eq!(from.host, Some(&b"atlanta.example.com"[..]));
        assert_eq!(from.tag, Some(&b"1928301774"[..]));
        assert_eq!(m.header_values("From").count(), 1);
        let to = m.to().unwrap();
        assert_eq!(to.display, Some(&b"Bob"[..]));
        assert_eq!(to.tag, None);
    }

    #[test]
    fn contact_is_the_first_of_a_list() {
        let m = msg(INVITE);
        let c = m.contact().unwrap();
        assert_eq!(c.uri, b"sip:alice@pc33.atlanta.example.com");
        assert_eq!(m.header_values("m").count(), 2);
    }

    #[test]
    fn body_is_cut_to_content_length() {
        let m = msg(INVITE);
        assert_eq!(m.body().len(), 48);
        assert!(m.body().ends_with(b"RTP/AVP 0\r\n"));
        assert!(m.body().starts_with(b"v=0"));
        let sdps: Vec<_> = m.sdp_bodies().collect();
        assert_eq!(sdps, vec![m.body()]);
        assert_eq!(Sdp::parse(sdps[0]).media[0].port, 4000);
    }

    #[test]
    fn body_takes_rest_when_content_length_is_missing_garbage_or_too_big() {
        for cl in [
            &b""[..],
            b"Content-Length: -5\r\n",
            b"Content-Length: x\r\n",
            b"l: 999\r\n",
        ] {
            let mut b = b"MESSAGE sip:a SIP/2.0\r\n".to_vec();
            b.extend_from_slice(cl);
            b.extend_from_slice(b"\r\nhello");
            let m = Message::parse(&b).unwrap();
            assert_eq!(m.body(), b"hello", "{}", cl.escape_ascii());
        }
    }

    #[test]
    fn compact_forms_are_equivalent() {
        let b = b"SIP/2.0 180 Ringing\r\n\
v: SIP/2.0/UDP h;branch=z9hG4bKc\r\n\
f: <sip:a@h>;tag=f1\r\n\
t: <sip:b@h>;tag=t1\r\n\
i: cid-1\r\n\
CSeq: 1 INVITE\r\n\
m: <sip:b@10.0.0.2>\r\n\
k: timer\r\n\
s: hi\r\n\
e: gzip\r\n\
o: presence\r\n\
r: <sip:c@h>\r\n\
b: <sip:d@h>\r\n\
u: talk\r\n\
x: 1800\r\n\
y: abc\r\n\
c: application/sdp\r\n\
l: 0\r\n\r\n";
        let m = msg(b);
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.reason_phrase(), Some(&b"Ringing"[..]));
        assert_eq!(m.call_id(), Some(&b"cid-1"[..]));
        assert_eq!(m.header("CALL-ID"), Some(&b"cid-1"[..]));
        assert_eq!(m.from().unwrap().tag, Some(&b"f1"[..]));
        assert_eq!(m.to().unwrap().tag, Some(&b"t1"[..]));
        assert_eq!(m.via_branch(), Some(&b"z9hG4bKc"[..]));
        assert_eq!(m.contact().unwrap().host, Some(&b"10.0.0.2"[..]));
        for (full, v) in [
            ("Supported", &b"timer"[..]),
            ("Subject", b"hi"),
            ("Content-Encoding", b"gzip"),
            ("Event", b"presence"),
            ("Refer-To", b"<sip:c@h>"),
            ("Referred-By", b"<sip:d@h>"),
            ("Allow-Events", b"talk"),
            ("Session-Expires", b"1800"),
            ("Identity", b"abc"),
            ("Content-Type", b"application/sdp"),
            ("Content-Length", b"0"),
        ] {
            assert_eq!(m.header(full), Some(v), "{full}");
        }
        assert_eq!(m.header("k"), Some(&b"timer"[..]));
        assert_eq!(m.body(), b"");
        assert_eq!(m.sdp_bodies().count(), 0);
    }

    #[test]
    fn folded_lines_belong_to_the_value() {
        let b = b"OPTIONS sip:x SIP/2.0\r\n\
Subject: first\r\n  second\r\n\tthird\r\n\
Call-ID:\r\n folded-id\r\n\
\r\n";
        let m = msg(b);
        assert_eq!(
            m.header("subject"),
            Some(&b"first\r\n  second\r\n\tthird"[..])
        );
        assert_eq!(m.call_id(), Some(&b"folded-id"[..]));
        assert_eq!(m.header_count(), 2);
    }

    #[test]
    fn lf_only_and_spaces_around_colon() {
        let m = msg(
            b"\r\n\r\nBYE sip:x SIP/2.0\nCall-ID :  abc  \nX-Custom\t:\tv1\nx-custom: v2, v3\n\n",
        );
        assert_eq!(m.method(), Some(&b"BYE"[..]));
        assert_eq!(m.call_id(), Some(&b"abc"[..]));
        assert_eq!(m.header("X-CUSTOM"), Some(&b"v1"[..]));
        let all: Vec<_> = m.header_values("x-custom").collect();
        assert_eq!(all, vec![&b"v1"[..], b"v2", b"v3"]);
        assert_eq!(m.header_values("x-missing").count(), 0);
        assert_eq!(m.header("x-missing"), None);
    }

    #[test]
    fn credentials_headers_are_not_split_on_commas() {
        let m = msg(b"REGISTER sip:x SIP/2.0\r\nAuthorization: Digest username=\"a\",realm=\"b\"\r\nDate: Sat, 13 Nov 2010 23:29:00 GMT\r\n\r\n");
        assert_eq!(m.header_values("authorization").count(), 1);
        assert_eq!(m.header_values("date").count(), 1);
    }

    #[test]
    fn user_agent_falls_back_to_server_for_responses_only() {
        let r = msg(b"SIP/2.0 200 OK\r\nServer: Box/2\r\n\r\n");
        assert_eq!(r.user_agent(), Some(&b"Box/2"[..]));
        let q = msg(b"BYE sip:x SIP/2.0\r\nServer: Box/2\r\n\r\n");
        assert_eq!(q.user_agent(), None);
    }

    #[test]
    fn reason_prefers_q850() {
        let m = msg(b"BYE sip:x SIP/2.0\r\nReason: SIP;cause=200;text=\"Call completed elsewhere\", Q.850;cause=16;text=\"Normal\"\r\n\r\n");
        let r = m.reason().unwrap();
        assert_eq!(r.protocol, b"Q.850");
        assert_eq!(r.cause, Some(16));
        assert_eq!(r.text, Some(&b"Normal"[..]));
        let m = msg(b"BYE sip:x SIP/2.0\r\nReason: SIP ;cause=487\r\n\r\n");
        assert_eq!(m.reason().unwrap().cause, Some(487));
        let m = msg(b"BYE sip:x SIP/2.0\r\nReason: Q.850;cause=16;text=\"Normal\"\r\n\r\n");
        assert_eq!(
            m.reason(),
            Some(ReasonHeader {
                protocol: b"Q.850",
                cause: Some(16),
                text: Some(b"Normal")
            })
        );
    }

    #[test]
    fn correlation_headers() {
        let m = msg(b"INVITE sip:x SIP/2.0\r\n\
X-CID: other-call@host\r\n\
Session-ID: ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2\r\n\
P-Charging-Vector: icid-value=\"AyretyU0dm+6O2IrT5tAFrbHLso=023551024\";icid-generated-at=192.0.6.8;orig-ioi=home1.net\r\n\r\n");
        assert_eq!(m.x_cid(), Some(&b"other-call@host"[..]));
        assert_eq!(
            m.session_id(),
            Some(&b"ab30317f1a784dc48ff824d0d3715d86"[..])
        );
        assert_eq!(
            m.icid(),
            Some(&b"AyretyU0dm+6O2IrT5tAFrbHLso=023551024"[..])
        );
        let m =
            msg(b"INVITE sip:x SIP/2.0\r\nP-Charging-Vector: orig-ioi=a; icid-value=1234\r\n\r\n");
        assert_eq!(m.icid(), Some(&b"1234"[..]));
    }

    #[test]
    fn tel_and_ipv6_uris_in_headers() {
        let m = msg(b"INVITE tel:+15551234 SIP/2.0\r\n\
From: <tel:+15550000;phone-context=x>;tag=9\r\n\
To: <sip:user@[2001:db8::1]:5060>\r\n\r\n");
        let f = m.from().unwrap();
        assert_eq!((f.user, f.host), (Some(&b"+15550000"[..]), None));
        let t = m.to().unwrap();
        assert_eq!(t.user, Some(&b"user"[..]));
        assert_eq!(t.host, Some(&b"2001:db8::1"[..]));
        assert_eq!(m.request_uri(), Some(&b"tel:+15551234"[..]));
    }

    #[test]
    fn non_utf8_bytes_in_display_name() {
        let m =
            msg(b"MESSAGE sip:x SIP/2.0\r\nFrom: \"\xc3\x28\xff caf\xe9\" <sip:a@b>;tag=t\r\n\r\n");
        let f = m.from().unwrap();
        assert_eq!(f.display, Some(&b"\xc3\x28\xff caf\xe9"[..]));
        assert_eq!(f.tag, Some(&b"t"[..]));
    }

    #[test]
    fn multipart_siprec_exposes_only_the_sdp_part() {
        let b = b"INVITE sip:srs@example.com SIP/2.0\r\n\
Call-ID: rec-1\r\n\
Content-Type: multipart/mixed;boundary=\"OSS-unique-boundary-42\"\r\n\
\r\n\
--OSS-unique-boundary-42\r\n\
Content-Type: application/sdp\r\n\
\r\n\
v=0\r\nm=audio 5000 RTP/AVP 0\r\na=label:1\r\nm=audio 5002 RTP/AVP 0\r\na=label:2\r\n\
\r\n\
--OSS-unique-boundary-42\r\n\
Content-Type: application/rs-metadata+xml\r\n\
Content-Disposition: recording-session\r\n\
\r\n\
<?xml version=\"1.0\"?><recording xmlns='urn:ietf:params:xml:ns:recording:1'/>\r\n\
--OSS-unique-boundary-42--\r\n";
        let m = msg(b);
        let sdps: Vec<_> = m.sdp_bodies().collect();
        assert_eq!(sdps.len(), 1);
        let s = Sdp::parse(sdps[0]);
        assert_eq!(s.media.len(), 2);
        assert_eq!(s.media[1].label, Some(&b"2"[..]));
        let kinds: Vec<_> = crate::multipart::parts(m.content_type().unwrap(), m.body())
            .map(|p| p.content_type.unwrap())
            .collect();
        assert_eq!(
            kinds,
            vec![&b"application/sdp"[..], b"application/rs-metadata+xml"]
        );
    }

    #[test]
    fn sdp_without_content_type_is_detected_by_v0() {
        let m = msg(b"SIP/2.0 200 OK\r\n\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\n");
        assert_eq!(m.sdp_bodies().count(), 1);
        let m = msg(b"SIP/2.0 200 OK\r\nContent-Type: text/plain\r\n\r\nv=0\r\n");
        assert_eq!(m.sdp_bodies().count(), 0);
        let m = msg(b"SIP/2.0 200 OK\r\nc: Application/SDP ; x=1\r\n\r\nv=0\r\n");
        assert_eq!(m.sdp_bodies().count(), 1);
    }

    #[test]
    fn response_status_line_variants() {
        let m = msg(b"SIP/2.0 486 Busy Here\r\n\r\n");
        assert_eq!(m.status(), Some(486));
        assert_eq!(m.reason_phrase(), Some(&b"Busy Here"[..]));
        assert!(!m.is_request());
        assert_eq!(m.method(), None);
        assert_eq!(m.request_uri(), None);
        let m = msg(b"SIP/2.0 200\r\n\r\n");
        assert_eq!(m.reason_phrase(), Some(&b""[..]));
    }

    #[test]
    fn parse_errors_have_stable_reasons() {
        let cases: [(&[u8], ParseError, &str); 8] = [
            (b"", ParseError::Empty, "empty"),
            (b"\r\n\r\n", ParseError::Empty, "empty"),
            (b"GET / HTTP/1.1\r\n\r\n", ParseError::NotSip, "not_sip"),
            (b"\x80\x00garbage", ParseError::NotSip, "not_sip"),
            (
                b"SIP/2.0 OK\r\n\r\n",
                ParseError::BadStartLine,
                "bad_start_line",
            ),
            (
                b"INVITE SIP/2.0\r\n\r\n",
                ParseError::BadStartLine,
                "bad_start_line",
            ),
            (
                b"IN<VITE sip:x SIP/2.0\r\n\r\n",
                ParseError::BadStartLine,
                "bad_start_line",
            ),
            (
                b"INVITE sip:x SIP/2.0\r\nCall-ID: trunc",
                ParseError::NoHeaderEnd,
                "no_header_end",
            ),
        ];
        for (buf, err, label) in cases {
            assert_eq!(
                Message::parse(buf).unwrap_err(),
                err,
                "{}",
                buf.escape_ascii()
            );
            assert_eq!(err.reason(), label);
        }
        assert_eq!(ParseError::TooLarge.reason(), "too_large");
        assert_eq!(
            Message::parse(b"INVITE sip:x SIP/2.0").unwrap_err(),
            ParseError::NoHeaderEnd
        );
    }

    #[test]
    fn header_section_without_empty_line_is_accepted_at_line_end() {
        let m = msg(b"ACK sip:x SIP/2.0\r\nCall-ID: 1\r\n");
        assert_eq!(m.call_id(), Some(&b"1"[..]));
        assert_eq!(m.body(), b"");
    }

    #[test]
    fn headers_beyond_the_table_are_counted_and_known_ones_stay_reachable() {
        let mut b = b"INVITE sip:x SIP/2.0\r\n".to_vec();
        for i in 0..MAX_HEADERS + 10 {
            b.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
        }
        b.extend_from_slice(b"Call-ID: late\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKlate, SIP/2.0/UDP g\r\nX-H3: again\r\n\r\n");
        let m = msg(&b);
        assert_eq!(m.header_count(), MAX_HEADERS + 13);
        assert_eq!(m.dropped_headers(), 13);
        assert_eq!(m.call_id(), Some(&b"late"[..]));
        assert_eq!(m.via_branch(), Some(&b"z9hG4bKlate"[..]));
        assert_eq!(m.header_values("via").count(), 2);
        assert_eq!(m.header("x-h3"), Some(&b"3"[..]));
        assert_eq!(m.header_values("x-h3").count(), 1);
        assert_eq!(m.headers().count(), MAX_HEADERS);
    }

    #[test]
    fn debug_output_names_the_start_line() {
        let s = format!("{:?}", msg(INVITE));
        assert!(s.contains("INVITE") && s.contains("headers: 11"), "{s}");
    }
}
