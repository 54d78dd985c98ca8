//! Typed views of individual header values: `CSeq`, name-addr headers (From, To, Contact) and
//! Reason. All are lenient: odd input yields `None` fields, never an error.

use std::net::Ipv6Addr;

use crate::bytes::{
    find_byte, find_unquoted, param, parse_u16, parse_u32, split_digits, starts_with_ci, trim,
    trim_start, unquote,
};

/// A `CSeq` header value: sequence number and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CSeq<'a> {
    /// Sequence number.
    pub seq: u32,
    /// Method token (may be empty when the header carries only a number).
    pub method: &'a [u8],
}

impl<'a> CSeq<'a> {
    /// Parses `"<number> <method>"`; `None` when the number is missing or does not fit a `u32`.
    pub fn parse(value: &'a [u8]) -> Option<CSeq<'a>> {
        let (digits, rest) = split_digits(trim(value));
        let seq = parse_u32(digits)?;
        let rest = trim_start(rest);
        let end = rest
            .iter()
            .position(|&b| crate::bytes::is_lws(b))
            .unwrap_or(rest.len());
        Some(CSeq {
            seq,
            method: rest.get(..end).unwrap_or_default(),
        })
    }
}

/// A name-addr or addr-spec header value (From, To, Contact, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NameAddr<'a> {
    /// Display name without surrounding quotes (escapes are left as sent); `None` when absent.
    pub display: Option<&'a [u8]>,
    /// The URI (inside `<...>` when present, else up to the first `;`).
    pub uri: &'a [u8],
    /// User part of a `sip:`/`sips:` URI (without password or user parameters), or the number
    /// of a `tel:` URI.
    pub user: Option<&'a [u8]>,
    /// Host of a `sip:`/`sips:` URI, without port and without IPv6 brackets.
    pub host: Option<&'a [u8]>,
    /// The `tag` header parameter.
    pub tag: Option<&'a [u8]>,
}

impl<'a> NameAddr<'a> {
    /// Parses a header value such as `"Alice" <sip:alice@example.com>;tag=1`. Never fails: for an
    /// unrecognised URI `user` and `host` are `None`.
    pub fn parse(value: &'a [u8]) -> NameAddr<'a> {
        let (before, uri, params) = split_name_addr(trim(value));
        let display = before
            .map(|b| trim(unquote(trim(b))))
            .filter(|d| !d.is_empty());
        let uri = trim(uri);
        let (user, host) = uri_user_host(uri);
        NameAddr {
            display,
            uri,
            user,
            host,
            tag: param(params, b"tag").filter(|t| !t.is_empty()),
        }
    }

    /// The `tag` parameter of a header value: `NameAddr::parse(value).tag`, without parsing
    /// the display name and URI (most messages of a call need only the tags).
    pub fn tag_of(value: &'a [u8]) -> Option<&'a [u8]> {
        let params = header_params(trim(value));
        match leading_tag(params) {
            Some(tag) => Some(tag),
            None => param(params, b"tag"),
        }
        .filter(|t| !t.is_empty())
    }
}

/// The tag when it is the first header parameter and its value holds no `"` (as From and To
/// carry it): what [`param`] finds there, read without splitting the parameters. `None`
/// when the parameters are not so: [`param`] then reads them.
#[inline]
fn leading_tag(params: &[u8]) -> Option<&[u8]> {
    // The (empty) item before the first `;`, then `tag`, blanks, `=`.
    let [b';', item @ ..] = trim_start(params) else {
        return None;
    };
    let item = trim_start(item);
    let (name, after) = item.split_at_checked(3)?;
    if !name.eq_ignore_ascii_case(b"tag") {
        return None;
    }
    let [b'=', value @ ..] = trim_start(after) else {
        return None;
    };
    // The value runs to the next `;`; a `"` before it could hide that `;`.
    match memchr::memchr2(b';', b'"', value) {
        None => Some(trim(value)),
        Some(end) if value.get(end) == Some(&b';') => Some(trim(value.get(..end)?)),
        Some(_) => None,
    }
}

/// The parts of a (trimmed) name-addr or addr-spec value: what stands before `<` (when there
/// is one: the display name, as sent), the URI (untrimmed) and the header parameters.
fn split_name_addr(v: &[u8]) -> (Option<&[u8]>, &[u8], &[u8]) {
    match find_unquoted(v, b'<') {
        Some(lt) => {
            let (before, after) = v.split_at_checked(lt).unwrap_or((v, &[]));
            let after = after.get(1..).unwrap_or_default();
            let (uri, params) = match find_byte(after, b'>') {
                Some(gt) => (
                    after.get(..gt).unwrap_or_default(),
                    after.get(gt.saturating_add(1)..).unwrap_or_default(),
                ),
                None => (after, &[][..]),
            };
            (Some(before), uri, params)
        }
        None => match find_unquoted(v, b';') {
            Some(semi) => (
                None,
                v.get(..semi).unwrap_or_default(),
                v.get(semi.saturating_add(1)..).unwrap_or_default(),
            ),
            None => (None, v, &[][..]),
        },
    }
}

/// The header parameters of [`split_name_addr`], in one pass: whether the first unquoted
/// `<` or, without one, the first unquoted `;` starts them is known by the end of the scan
/// that looks for either.
fn header_params(v: &[u8]) -> &[u8] {
    let mut semi = None;
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in v.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted {
            escaped = b == b'\\';
            quoted = b != b'"';
        } else if b == b'"' {
            quoted = true;
        } else if b == b'<' {
            let after = v.get(i.saturating_add(1)..).unwrap_or_default();
            return find_byte(after, b'>')
                .and_then(|gt| after.get(gt.saturating_add(1)..))
                .unwrap_or_default();
        } else if b == b';' && semi.is_none() {
            semi = Some(i);
        }
    }
    semi.and_then(|s| v.get(s.saturating_add(1)..))
        .unwrap_or_default()
}

/// User and host of a `sip:`, `sips:` or `tel:` URI.
pub(crate) fn uri_user_host(uri: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    let rest = if starts_with_ci(uri, b"sips:") {
        uri.get(5..)
    } else if starts_with_ci(uri, b"sip:") {
        uri.get(4..)
    } else if starts_with_ci(uri, b"tel:") {
        let num = uri.get(4..).unwrap_or_default();
        let num = trim(
            num.get(..find_byte(num, b';').unwrap_or(num.len()))
                .unwrap_or_default(),
        );
        return ((!num.is_empty()).then_some(num), None);
    } else {
        None
    };
    let Some(rest) = rest else {
        return (None, None);
    };
    let rest = rest
        .get(..find_byte(rest, b'?').unwrap_or(rest.len()))
        .unwrap_or_default();
    let (user, hostpart) = match find_byte(rest, b'@') {
        Some(at) => (
            Some(rest.get(..at).unwrap_or_default()),
            rest.get(at.saturating_add(1)..).unwrap_or_default(),
        ),
        None => (None, rest),
    };
    let user = user
        .map(|u| {
            let end = u
                .iter()
                .position(|&b| b == b':' || b == b';')
                .unwrap_or(u.len());
            u.get(..end).unwrap_or_default()
        })
        .filter(|u| !u.is_empty());
    let hostport = hostpart
        .get(..find_byte(hostpart, b';').unwrap_or(hostpart.len()))
        .unwrap_or_default();
    (user, host_of(trim(hostport)))
}

/// Host of a `host[:port]` string; IPv6 references lose their brackets, and an unbracketed
/// IPv6 address (a common mistake) is recognised with or without a trailing `:port`.
fn host_of(hostport: &[u8]) -> Option<&[u8]> {
    let host = if let Some(inner) = hostport.strip_prefix(b"[") {
        inner.get(..find_byte(inner, b']').unwrap_or(inner.len()))?
    } else {
        let colons = hostport.iter().filter(|&&b| b == b':').count();
        if colons <= 1 {
            hostport.get(..find_byte(hostport, b':').unwrap_or(hostport.len()))?
        } else if is_ipv6(hostport) {
            hostport
        } else {
            let last = hostport.iter().rposition(|&b| b == b':')?;
            let left = hostport.get(..last)?;
            if is_ipv6(left) {
                left
            } else {
                hostport
            }
        }
    };
    (!host.is_empty()).then_some(host)
}

fn is_ipv6(s: &[u8]) -> bool {
    std::str::from_utf8(s).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok())
}

/// A Reason header value (RFC 3326), e.g. `Q.850;cause=16;text="Normal call clearing"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReasonHeader<'a> {
    /// Protocol token, e.g. `SIP` or `Q.850`.
    pub protocol: &'a [u8],
    /// The `cause` parameter, when present and numeric.
    pub cause: Option<u16>,
    /// The `text` parameter without quotes.
    pub text: Option<&'a [u8]>,
}

impl<'a> ReasonHeader<'a> {
    /// Parses one Reason value; `None` when the protocol token is empty.
    pub fn parse(value: &'a [u8]) -> Option<ReasonHeader<'a>> {
        let v = trim(value);
        let (protocol, params) = match find_unquoted(v, b';') {
            Some(i) => (
                v.get(..i).unwrap_or_default(),
                v.get(i.saturating_add(1)..).unwrap_or_default(),
            ),
            None => (v, &[][..]),
        };
        let protocol = trim(protocol);
        if protocol.is_empty() {
            return None;
        }
        Some(ReasonHeader {
            protocol,
            cause: param(params, b"cause").and_then(parse_u16),
            text: param(params, b"text").map(unquote),
        })
    }

    /// True for the ISDN cause protocol `Q.850` (case-insensitive).
    pub fn is_q850(&self) -> bool {
        self.protocol.eq_ignore_ascii_case(b"Q.850")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_of_reads_the_tag_as_a_full_parse_does() {
        for v in [
            &b"\"Alice\" <sip:alice@example.com>;tag=1928301774"[..],
            b"<sip:bob@example.com>",
            b"<sip:bob@example.com;tag=uri-param>;tag=hdr",
            b"<sip:bob@example.com;tag=uri-param>",
            b"sip:carol@example.com;tag=abc;other=1",
            b"sip:carol@example.com",
            b"\"a;tag=x <quoted>\" <sip:d@e>;TAG=Up",
            b"\"unterminated <sip:x@y>;tag=z",
            b"<sip:no-close;tag=q",
            b" ;tag=",
            b"",
            b"tel:+4930123;tag=7",
        ] {
            assert_eq!(
                NameAddr::tag_of(v),
                NameAddr::parse(v).tag,
                "{}",
                String::from_utf8_lossy(v)
            );
        }
        assert_eq!(
            NameAddr::tag_of(b"<sip:bob@example.com;tag=uri-param>;tag=hdr"),
            Some(&b"hdr"[..])
        );
        assert_eq!(
            NameAddr::tag_of(b"<sip:bob@example.com;tag=uri-param>"),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn tag_of_agrees_with_the_full_parse(
            v in proptest::collection::vec(
                proptest::sample::select(b"<>;=\"\\ tagTAGx:@".to_vec()),
                0..60,
            ),
        ) {
            let (_, _, params) = split_name_addr(trim(&v));
            proptest::prop_assert_eq!(header_params(trim(&v)), params);
            proptest::prop_assert_eq!(NameAddr::tag_of(&v), NameAddr::parse(&v).tag);
        }

        /// Values built around `;tag=`, so that the shortcut for a leading tag is taken or
        /// just missed (a blank, a quote or a `;` in the way) far more often than by chance.
        #[test]
        fn a_leading_tag_reads_as_the_full_parse_does(
            head in proptest::collection::vec(
                proptest::sample::select(b"<>;\" \tsip:a@b".to_vec()),
                0..20,
            ),
            before in proptest::collection::vec(proptest::sample::select(b" \t\r;".to_vec()), 0..3),
            name in proptest::sample::select(vec![&b"tag"[..], b"TaG", b"ta", b"tagx"]),
            after in proptest::collection::vec(proptest::sample::select(b" \t".to_vec()), 0..2),
            rest in proptest::collection::vec(
                proptest::sample::select(b"<>;=\"\\ tagx1\r\n".to_vec()),
                0..24,
            ),
        ) {
            let mut v = head;
            v.push(b';');
            v.extend_from_slice(&before);
            v.extend_from_slice(name);
            v.extend_from_slice(&after);
            v.push(b'=');
            v.extend_from_slice(&rest);
            proptest::prop_assert_eq!(NameAddr::tag_of(&v), NameAddr::parse(&v).tag);
        }
    }

    #[test]
    fn a_leading_tag_is_read_without_the_general_split() {
        assert_eq!(leading_tag(b";tag=abc"), Some(&b"abc"[..]));
        assert_eq!(leading_tag(b" ; TAG = abc ;x=1"), Some(&b"abc"[..]));
        assert_eq!(leading_tag(b";tag=\"a;b\""), None);
        assert_eq!(leading_tag(b";x=1;tag=abc"), None);
        assert_eq!(leading_tag(b"x;tag=abc"), None);
    }

    #[test]
    fn cseq_parses_number_and_method() {
        assert_eq!(
            CSeq::parse(b" 101  INVITE "),
            Some(CSeq {
                seq: 101,
                method: b"INVITE"
            })
        );
        assert_eq!(
            CSeq::parse(b"7"),
            Some(CSeq {
                seq: 7,
                method: b""
            })
        );
        assert_eq!(CSeq::parse(b"INVITE"), None);
        assert_eq!(CSeq::parse(b"99999999999 INVITE"), None);
    }

    #[test]
    fn name_addr_with_quoted_display_and_tag() {
        let n =
            NameAddr::parse(br#""Doe, John" <sip:john@example.com:5060;transport=udp>;tag=abc"#);
        assert_eq!(n.display, Some(&b"Doe, John"[..]));
        assert_eq!(n.uri, b"sip:john@example.com:5060;transport=udp");
        assert_eq!(n.user, Some(&b"john"[..]));
        assert_eq!(n.host, Some(&b"example.com"[..]));
        assert_eq!(n.tag, Some(&b"abc"[..]));
    }

    #[test]
    fn name_addr_addr_spec_form_puts_params_on_the_header() {
        let n = NameAddr::parse(b"sip:bob@10.0.0.1;tag=99");
        assert_eq!(n.display, None);
        assert_eq!(n.uri, b"sip:bob@10.0.0.1");
        assert_eq!(n.host, Some(&b"10.0.0.1"[..]));
        assert_eq!(n.tag, Some(&b"99"[..]));
    }

    #[test]
    fn name_addr_unquoted_display_and_no_user() {
        let n = NameAddr::parse(b"Bob Smith <sips:proxy.example.com>");
        assert_eq!(n.display, Some(&b"Bob Smith"[..]));
        assert_eq!(n.user, None);
        assert_eq!(n.host, Some(&b"proxy.example.com"[..]));
        assert_eq!(n.tag, None);
    }

    #[test]
    fn tel_uri_gives_number_and_no_host() {
        let n = NameAddr::parse(b"<tel:+15551234567;phone-context=example.com>;tag=x");
        assert_eq!(n.user, Some(&b"+15551234567"[..]));
        assert_eq!(n.host, None);
        assert_eq!(n.tag, Some(&b"x"[..]));
    }

    #[test]
    fn ipv6_hosts_bracketed_and_unbracketed() {
        let n = NameAddr::parse(b"<sip:user@[2001:db8::1]:5060>");
        assert_eq!(n.user, Some(&b"user"[..]));
        assert_eq!(n.host, Some(&b"2001:db8::1"[..]));
        let n = NameAddr::parse(b"<sip:9876@fe80:0:0:0:21a:a0ff:fe07:32e0:5060>");
        assert_eq!(n.host, Some(&b"fe80:0:0:0:21a:a0ff:fe07:32e0"[..]));
        let n = NameAddr::parse(b"<sip:9876@fe80::1>");
        assert_eq!(n.host, Some(&b"fe80::1"[..]));
    }

    #[test]
    fn odd_uris_leave_user_and_host_empty() {
        for v in [
            &b"<urn:service:sos>"[..],
            b"<mailto:a@b>",
            b"*",
            b"",
            b"<>",
            b"<sip:>",
        ] {
            let n = NameAddr::parse(v);
            assert_eq!(
                (n.user, n.host),
                (None, None),
                "{:?}",
                v.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn user_parameters_and_password_are_cut() {
        let n = NameAddr::parse(b"<sip:+4930123;npdi;rn=+4930999@gw.example;user=phone>");
        assert_eq!(n.user, Some(&b"+4930123"[..]));
        assert_eq!(n.host, Some(&b"gw.example"[..]));
        let n = NameAddr::parse(b"<sip:alice:secret@h:5061?Subject=x>");
        assert_eq!(n.user, Some(&b"alice"[..]));
        assert_eq!(n.host, Some(&b"h"[..]));
    }

    #[test]
    fn non_utf8_display_name_is_kept_as_bytes() {
        let n = NameAddr::parse(b"\"J\xf6rg \xff\" <sip:j@h>;tag=1");
        assert_eq!(n.display, Some(&b"J\xf6rg \xff"[..]));
        assert_eq!(n.user, Some(&b"j"[..]));
    }

    #[test]
    fn reason_parses_cause_and_quoted_text() {
        let r = ReasonHeader::parse(br#"Q.850;cause=16;text="Normal""#).unwrap();
        assert!(r.is_q850());
        assert_eq!(r.cause, Some(16));
        assert_eq!(r.text, Some(&b"Normal"[..]));
        let r = ReasonHeader::parse(b"SIP ; cause=abc").unwrap();
        assert_eq!(r.protocol, b"SIP");
        assert_eq!(r.cause, None);
        assert_eq!(ReasonHeader::parse(b" ;cause=1"), None);
    }
}
