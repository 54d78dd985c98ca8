//! Header names, the header-section scanner shared by [`crate::Message::parse`] and
//! [`crate::frame`], and comma-list splitting.

use crate::bytes::{is_wsp, trim_end, ByteFinder};

/// Header names the parser knows (and keeps a direct slot for). Compact forms map to the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Hdr {
    CallId,
    From,
    To,
    Via,
    Contact,
    ContentLength,
    ContentType,
    CSeq,
    Supported,
    Subject,
    ContentEncoding,
    Event,
    ReferTo,
    ReferredBy,
    AllowEvents,
    SessionExpires,
    Identity,
    IdentityInfo,
    AcceptContact,
    RejectContact,
    RequestDisposition,
    UserAgent,
    Server,
    Reason,
    XCid,
    SessionId,
    PChargingVector,
    /// Any other name; compared by bytes.
    Other,
}

/// Number of known ids (everything but [`Hdr::Other`]).
pub(crate) const KNOWN: usize = Hdr::Other as usize;

/// (full name, compact form, id). Compact form `0` means none.
const NAMES: [(&[u8], u8, Hdr); KNOWN] = [
    (b"call-id", b'i', Hdr::CallId),
    (b"from", b'f', Hdr::From),
    (b"to", b't', Hdr::To),
    (b"via", b'v', Hdr::Via),
    (b"contact", b'm', Hdr::Contact),
    (b"content-length", b'l', Hdr::ContentLength),
    (b"content-type", b'c', Hdr::ContentType),
    (b"cseq", 0, Hdr::CSeq),
    (b"supported", b'k', Hdr::Supported),
    (b"subject", b's', Hdr::Subject),
    (b"content-encoding", b'e', Hdr::ContentEncoding),
    (b"event", b'o', Hdr::Event),
    (b"refer-to", b'r', Hdr::ReferTo),
    (b"referred-by", b'b', Hdr::ReferredBy),
    (b"allow-events", b'u', Hdr::AllowEvents),
    (b"session-expires", b'x', Hdr::SessionExpires),
    (b"identity", b'y', Hdr::Identity),
    (b"identity-info", b'n', Hdr::IdentityInfo),
    (b"accept-contact", b'a', Hdr::AcceptContact),
    (b"reject-contact", b'j', Hdr::RejectContact),
    (b"request-disposition", b'd', Hdr::RequestDisposition),
    (b"user-agent", 0, Hdr::UserAgent),
    (b"server", 0, Hdr::Server),
    (b"reason", 0, Hdr::Reason),
    (b"x-cid", 0, Hdr::XCid),
    (b"session-id", 0, Hdr::SessionId),
    (b"p-charging-vector", 0, Hdr::PChargingVector),
];

/// Longest known full name.
const LONGEST: usize = 19;
/// Most known names of one length.
const PER_LEN: usize = 3;

/// Positions in `NAMES` of the full names of each length (`u8::MAX`: none), so that a name is
/// compared with at most `PER_LEN` candidates instead of every known name. Built at compile
/// time: an index out of range there fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
const BY_LEN: [[u8; PER_LEN]; LONGEST + 1] = {
    let mut t = [[u8::MAX; PER_LEN]; LONGEST + 1];
    let mut i = 0;
    while i < KNOWN {
        let len = NAMES[i].0.len();
        let mut j = 0;
        while t[len][j] != u8::MAX {
            j += 1;
        }
        t[len][j] = i as u8;
        i += 1;
    }
    t
};

/// Where the words a name of `len` bytes is compared in start, and their width in bytes:
/// the first and the last `width` bytes of the name (overlapping when the name is shorter
/// than two words), and for names longer than 16 bytes the second 8 too. All candidates of
/// a comparison have the same length (see `BY_LEN`), so the words cover every byte of each
/// and equal words mean equal names; unused words are 0. Loads of a fixed width from both
/// ends of the name, unlike a copy of it into a zeroed buffer, need no call to `memcpy`.
const fn layout(len: usize) -> ([usize; 3], usize) {
    if len >= 16 {
        ([0, 8, len - 8], 8)
    } else if len >= 8 {
        ([0, len - 8, 0], 8)
    } else if len >= 4 {
        ([0, len - 4, 0], 4)
    } else {
        ([0, len.saturating_sub(2), 0], 2)
    }
}

/// How many of the three words of `layout(len)` are used.
const fn words_used(len: usize) -> usize {
    if len >= 16 {
        3
    } else {
        2
    }
}

/// The 8 bytes of `name` at `at` as a little-endian word (0 if out of range).
#[inline]
fn word8(name: &[u8], at: usize) -> u64 {
    name.get(at..at.saturating_add(8))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// As [`word8`], 4 bytes.
#[inline]
fn word4(name: &[u8], at: usize) -> u64 {
    name.get(at..at.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
}

/// As [`word8`], 2 bytes.
#[inline]
fn word2(name: &[u8], at: usize) -> u64 {
    name.get(at..at.saturating_add(2))
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map_or(0, |b| u64::from(u16::from_le_bytes(b)))
}

/// A known full name in the words of [`layout`]: its bytes, and bit 5 (`0x20`) set where it
/// has a letter. Setting that bit in a name's words makes exactly the letters' two cases
/// equal; every other byte must be equal as it is.
struct Key {
    lower: [u64; 3],
    case: [u64; 3],
    id: Hdr,
}

/// The known full names as [`Key`]s, in `NAMES` order (built at compile time, as `BY_LEN`).
#[allow(clippy::indexing_slicing)]
const KEYS: [Key; KNOWN] = {
    let mut t = [const {
        Key {
            lower: [0; 3],
            case: [0; 3],
            id: Hdr::Other,
        }
    }; KNOWN];
    let mut i = 0;
    while i < KNOWN {
        let name = NAMES[i].0;
        assert!(name.len() >= 2 && name.len() <= LONGEST);
        let (starts, width) = layout(name.len());
        let mut w = 0;
        while w < words_used(name.len()) {
            let mut j = 0;
            while j < width {
                let b = name[starts[w] + j];
                // Stored in lowercase: an uppercase byte here would only match itself.
                assert!(!b.is_ascii_uppercase());
                t[i].lower[w] |= (b as u64) << (8 * j);
                if b.is_ascii_lowercase() {
                    t[i].case[w] |= 0x20u64 << (8 * j);
                }
                j += 1;
            }
            w += 1;
        }
        t[i].id = NAMES[i].2;
        i += 1;
    }
    t
};

/// Id of each compact form, by its lowercase letter (built at compile time, as `BY_LEN`).
#[allow(clippy::indexing_slicing)]
const BY_COMPACT: [Hdr; 26] = {
    let mut t = [Hdr::Other; 26];
    let mut i = 0;
    while i < KNOWN {
        let c = NAMES[i].1;
        if c != 0 {
            t[(c - b'a') as usize] = NAMES[i].2;
        }
        i += 1;
    }
    t
};

impl Hdr {
    /// Id of a header name (case-insensitive, compact forms included).
    #[inline]
    pub(crate) fn from_name(name: &[u8]) -> Hdr {
        if let [c] = name {
            let c = c.to_ascii_lowercase();
            return match c {
                b'a'..=b'z' => BY_COMPACT
                    .get(usize::from(c - b'a'))
                    .copied()
                    .unwrap_or(Hdr::Other),
                _ => Hdr::Other,
            };
        }
        let Some(candidates) = BY_LEN.get(name.len()) else {
            return Hdr::Other;
        };
        let n = name.len();
        // As `layout(n)`, spelled out so that each width's loads are fixed.
        let (a, b, c) = if n >= 16 {
            (word8(name, 0), word8(name, 8), word8(name, n - 8))
        } else if n >= 8 {
            (word8(name, 0), word8(name, n - 8), 0)
        } else if n >= 4 {
            (word4(name, 0), word4(name, n - 4), 0)
        } else {
            (word2(name, 0), word2(name, n.saturating_sub(2)), 0)
        };
        for &i in candidates {
            let Some(key) = KEYS.get(usize::from(i)) else {
                break;
            };
            if (a | key.case[0]) == key.lower[0]
                && (b | key.case[1]) == key.lower[1]
                && (c | key.case[2]) == key.lower[2]
            {
                return key.id;
            }
        }
        Hdr::Other
    }

    /// Slot index of a known id.
    #[inline]
    pub(crate) fn slot(self) -> Option<usize> {
        match self {
            Hdr::Other => None,
            id => Some(id as usize),
        }
    }
}

/// Headers whose grammar is not a comma-separated list (RFC 3261 section 7.3.1 and free-text
/// headers): [`crate::Message::header_values`] does not split them.
pub(crate) fn is_single_valued(id: Hdr, name: &[u8]) -> bool {
    match id {
        Hdr::CallId
        | Hdr::CSeq
        | Hdr::Subject
        | Hdr::UserAgent
        | Hdr::Server
        | Hdr::ContentLength
        | Hdr::ContentType
        | Hdr::Identity
        | Hdr::SessionId
        | Hdr::PChargingVector
        | Hdr::XCid => true,
        Hdr::Other => {
            const SINGLE: [&[u8]; 7] = [
                b"www-authenticate",
                b"authorization",
                b"proxy-authenticate",
                b"proxy-authorization",
                b"date",
                b"organization",
                b"timestamp",
            ];
            SINGLE.iter().any(|s| s.eq_ignore_ascii_case(name))
        }
        _ => false,
    }
}

/// How a header-section scan ended without reaching the empty line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unterminated {
    /// The input ended; `at_line_end` is true when its last line was complete.
    Eof { at_line_end: bool },
    /// `limit` bytes were scanned without finding the end.
    TooLong,
}

/// Scans header lines starting at `pos` (the byte after the start line), calling `on_field`
/// with the byte ranges of each trimmed name and trimmed value (folded continuation lines
/// included in the value). Scanning stops at the empty line and returns the offset of the first
/// body byte. At most `limit` bytes past `pos` are examined.
#[inline]
pub(crate) fn scan(
    buf: &[u8],
    mut pos: usize,
    limit: usize,
    mut on_field: impl FnMut(usize, usize, usize, usize),
) -> Result<usize, Unterminated> {
    let end_all = pos.saturating_add(limit).min(buf.len());
    let (newline, colon) = (ByteFinder::new(b'\n'), ByteFinder::new(b':'));
    // Pending field: name start/end, value start/end.
    let mut pending: Option<(usize, usize, usize, usize)> = None;
    loop {
        let window = buf.get(pos..end_all).unwrap_or_default();
        let Some(nl) = newline.find(window) else {
            if let Some((a, b, c, d)) = pending {
                on_field(a, b, c, d);
            }
            return Err(if end_all < buf.len() {
                Unterminated::TooLong
            } else {
                Unterminated::Eof {
                    at_line_end: window.is_empty(),
                }
            });
        };
        let line_end = pos + nl;
        let next = line_end + 1;
        let raw = window.get(..nl).unwrap_or_default();
        let line = match raw {
            [head @ .., b'\r'] => head,
            _ => raw,
        };
        match line.first() {
            None => {
                if let Some((a, b, c, d)) = pending {
                    on_field(a, b, c, d);
                }
                return Ok(next);
            }
            Some(&b) if is_wsp(b) => {
                // Continuation of the previous field's value.
                let content = trim_end(line);
                let lead = content.iter().take_while(|&&c| is_wsp(c)).count();
                if lead < content.len() {
                    if let Some((_, _, vs, ve)) = pending.as_mut() {
                        let cstart = pos + lead;
                        let cend = pos + content.len();
                        if *vs == *ve {
                            *vs = cstart;
                        }
                        *ve = cend;
                    }
                }
            }
            Some(_) => {
                if let Some((a, b, c, d)) = pending.take() {
                    on_field(a, b, c, d);
                }
                if let Some(colon) = colon.find(line) {
                    let name = line.get(..colon).unwrap_or_default();
                    let nlead = name.iter().take_while(|&&c| is_wsp(c)).count();
                    let nlen = trim_end(name).len();
                    if nlen > nlead {
                        let value = line.get(colon + 1..).unwrap_or_default();
                        let vlead = value.iter().take_while(|&&c| is_wsp(c)).count();
                        let vlen = trim_end(value).len().max(vlead);
                        let vbase = pos + colon + 1;
                        pending = Some((pos + nlead, pos + nlen, vbase + vlead, vbase + vlen));
                    }
                }
            }
        }
        pos = next;
    }
}

/// Iterator over the elements of a comma-separated header value: commas inside double quotes or
/// `<...>` do not split. Elements are trimmed; empty ones are skipped.
#[derive(Debug, Clone)]
pub(crate) struct CommaSplit<'a> {
    rest: &'a [u8],
}

impl<'a> CommaSplit<'a> {
    pub(crate) fn new(value: &'a [u8]) -> Self {
        CommaSplit { rest: value }
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.rest.is_empty() {
            let mut in_quotes = false;
            let mut escaped = false;
            let mut angle = false;
            let mut cut = self.rest.len();
            for (i, &b) in self.rest.iter().enumerate() {
                if in_quotes {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_quotes = false;
                    }
                } else if angle {
                    if b == b'>' {
                        angle = false;
                    }
                } else if b == b'"' {
                    in_quotes = true;
                } else if b == b'<' {
                    angle = true;
                } else if b == b',' {
                    cut = i;
                    break;
                }
            }
            let (item, rest) = self.rest.split_at_checked(cut).unwrap_or((self.rest, &[]));
            self.rest = rest.get(1..).unwrap_or_default();
            let item = crate::bytes::trim(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_are_stored_in_lowercase_and_found_in_any_case() {
        for (full, compact, id) in NAMES {
            assert_eq!(full.to_ascii_lowercase(), full.to_vec());
            assert_eq!(Hdr::from_name(full), id);
            assert_eq!(Hdr::from_name(&full.to_ascii_uppercase()), id);
            if compact != 0 {
                assert_eq!(Hdr::from_name(&[compact.to_ascii_uppercase()]), id);
            }
            // One byte off is another name.
            let mut other = full.to_vec();
            if let Some(last) = other.last_mut() {
                *last ^= 0x01;
            }
            assert_ne!(Hdr::from_name(&other), id);
        }
    }

    #[test]
    fn from_name_maps_full_and_compact_forms() {
        assert_eq!(Hdr::from_name(b"Call-ID"), Hdr::CallId);
        assert_eq!(Hdr::from_name(b"i"), Hdr::CallId);
        assert_eq!(Hdr::from_name(b"I"), Hdr::CallId);
        assert_eq!(Hdr::from_name(b"CSEQ"), Hdr::CSeq);
        assert_eq!(Hdr::from_name(b"l"), Hdr::ContentLength);
        assert_eq!(Hdr::from_name(b"y"), Hdr::Identity);
        assert_eq!(Hdr::from_name(b"z"), Hdr::Other);
        assert_eq!(Hdr::from_name(b"X-Foo"), Hdr::Other);
        assert_eq!(Hdr::from_name(b""), Hdr::Other);
    }

    #[test]
    fn every_known_name_and_compact_form_is_found_in_any_case() {
        for &(full, compact, id) in &NAMES {
            assert_eq!(Hdr::from_name(full), id);
            assert_eq!(Hdr::from_name(&full.to_ascii_uppercase()), id);
            if compact != 0 {
                assert_eq!(Hdr::from_name(&[compact]), id);
                assert_eq!(Hdr::from_name(&[compact.to_ascii_uppercase()]), id);
            }
        }
        for other in [
            &b"Max-Forwards"[..],
            b"Allow",
            b"Record-Route",
            b"X-Very-Long-Header-Name",
        ] {
            assert_eq!(Hdr::from_name(other), Hdr::Other);
        }
    }

    /// The definition: the first known full name equal ignoring ASCII case.
    fn from_name_by_definition(name: &[u8]) -> Hdr {
        if let [c] = name {
            return NAMES
                .iter()
                .find(|n| n.1 != 0 && n.1 == c.to_ascii_lowercase())
                .map_or(Hdr::Other, |n| n.2);
        }
        NAMES
            .iter()
            .find(|n| n.0.eq_ignore_ascii_case(name))
            .map_or(Hdr::Other, |n| n.2)
    }

    proptest::proptest! {
        #[test]
        fn from_name_agrees_with_its_definition(
            pick in 0..KNOWN,
            flips in proptest::collection::vec(proptest::num::u8::ANY, 32),
            edit in proptest::option::of((0usize..32, proptest::num::u8::ANY)),
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..24),
        ) {
            // A known name with its case flipped by `flips` (bit 5 toggled for letters and
            // for anything else: '-' becomes '\r'), perhaps one byte changed.
            let mut name: Vec<u8> = NAMES[pick]
                .0
                .iter()
                .zip(&flips)
                .map(|(&b, &f)| if f & 1 == 1 { b ^ 0x20 } else { b })
                .collect();
            if let Some((at, b)) = edit {
                if let Some(x) = name.get_mut(at) {
                    *x = b;
                }
            }
            proptest::prop_assert_eq!(Hdr::from_name(&name), from_name_by_definition(&name));
            proptest::prop_assert_eq!(Hdr::from_name(&raw), from_name_by_definition(&raw));
        }
    }

    #[test]
    fn every_known_id_has_its_own_slot() {
        for (i, &(_, _, id)) in NAMES.iter().enumerate() {
            assert_eq!(id.slot(), Some(i));
        }
    }

    #[test]
    fn comma_split_respects_quotes_and_angle_brackets() {
        let v: Vec<_> =
            CommaSplit::new(br#""Doe, John" <sip:a@b>, <sip:c,d@e>;x=1 , ,f"#).collect();
        assert_eq!(
            v,
            vec![
                &br#""Doe, John" <sip:a@b>"#[..],
                &b"<sip:c,d@e>;x=1"[..],
                &b"f"[..]
            ]
        );
    }

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn collect(buf: &[u8]) -> (Fields, Result<usize, Unterminated>) {
        let mut out = Vec::new();
        let r = scan(buf, 0, usize::MAX, |a, b, c, d| {
            out.push((buf[a..b].to_vec(), buf[c..d].to_vec()))
        });
        (out, r)
    }

    #[test]
    fn scan_handles_folding_lf_and_spaces_around_colon() {
        let buf = b"A : 1\nB:\r\n  two\r\n\tthree  \r\nC:\r\n\r\nbody";
        let (f, r) = collect(buf);
        assert_eq!(r, Ok(buf.len() - 4));
        assert_eq!(
            f,
            vec![
                (b"A".to_vec(), b"1".to_vec()),
                (b"B".to_vec(), b"two\r\n\tthree".to_vec()),
                (b"C".to_vec(), b"".to_vec())
            ]
        );
    }

    #[test]
    fn scan_reports_how_it_ended() {
        assert_eq!(
            collect(b"A: 1\r\n").1,
            Err(Unterminated::Eof { at_line_end: true })
        );
        assert_eq!(
            collect(b"A: 1").1,
            Err(Unterminated::Eof { at_line_end: false })
        );
        let r = scan(b"A: 1\r\nB: 2\r\n\r\n", 0, 6, |_, _, _, _| {});
        assert_eq!(r, Err(Unterminated::TooLong));
    }
}
