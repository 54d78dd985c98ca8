//! A lenient SDP (RFC 8866) scanner that extracts what call correlation and media analysis need:
//! origin, connection addresses, media lines, RTCP ports, directions, rtpmaps, labels, SRTP
//! crypto presence and packet time. It never fails: unknown or garbled lines are ignored.

use std::net::IpAddr;

use smallvec::SmallVec;

use crate::bytes::{find_byte, parse_u16, parse_u32, split_digits, split_once, trim};

/// The `\n`-separated lines of a buffer (line ends found by one `memchr` iterator over the
/// whole buffer, which costs less per short line than a new search; a final empty line is
/// not given: SDP parsing skips empty lines anyway).
struct Lines<'a> {
    buf: &'a [u8],
    start: usize,
    ends: memchr::Memchr<'a>,
}

impl<'a> Lines<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Lines {
            buf,
            start: 0,
            ends: memchr::memchr_iter(b'\n', buf),
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.start >= self.buf.len() {
            return None;
        }
        let end = self.ends.next().unwrap_or(self.buf.len());
        let line = self.buf.get(self.start..end).unwrap_or_default();
        self.start = end.saturating_add(1);
        Some(line)
    }
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    fn from_attr(a: &[u8]) -> Option<Direction> {
        Some(match a {
            b"sendrecv" => Direction::SendRecv,
            b"sendonly" => Direction::SendOnly,
            b"recvonly" => Direction::RecvOnly,
            b"inactive" => Direction::Inactive,
            _ => return None,
        })
    }
}

/// An `a=rtpmap` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpMap<'a> {
    /// Payload type number.
    pub payload_type: u8,
    /// Encoding name as written, e.g. `PCMA`.
    pub encoding: &'a [u8],
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count (encoding parameters), when given.
    pub channels: Option<u16>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// Media type, e.g. `audio`.
    pub kind: &'a [u8],
    /// Transport port (0 means the stream is rejected or disabled).
    pub port: u16,
    /// Number of ports (`m=audio 4000/2 ...`), 1 when not given.
    pub port_count: u16,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub proto: &'a [u8],
    /// Numeric payload types in `m=` order; non-numeric formats are skipped.
    pub formats: SmallVec<[u8; 16]>,
    /// Media-level `c=` address, else the session-level one.
    pub connection: Option<IpAddr>,
    /// `a=rtcp:port [IN IP4|IP6 addr]`.
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    /// `a=rtcp-mux` present.
    pub rtcp_mux: bool,
    /// Media-level direction, else session-level, else send-receive.
    pub direction: Direction,
    /// `a=rtpmap` attributes in order.
    pub rtpmaps: SmallVec<[RtpMap<'a>; 4]>,
    /// `a=label` value.
    pub label: Option<&'a [u8]>,
    /// At least one `a=crypto` attribute (SDES-SRTP).
    pub crypto: bool,
    /// `a=ptime` in milliseconds (integer part).
    pub ptime: Option<u32>,
}

impl<'a> Media<'a> {
    /// The rtpmap for payload type `pt`.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap<'a>> {
        self.rtpmaps.iter().find(|r| r.payload_type == pt)
    }
}

/// The parts of a session description this crate extracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp<'a> {
    /// The `o=` line value.
    pub origin: Option<&'a [u8]>,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level direction (send-receive when absent).
    pub direction: Direction,
    /// Media sections in order.
    pub media: SmallVec<[Media<'a>; 2]>,
}

/// A set of media section numbers: the first 64 in a word, any more (rare) in a vector.
#[derive(Default)]
struct Flags {
    low: u64,
    high: Vec<usize>,
}

impl Flags {
    fn get(&self, i: usize) -> bool {
        match u32::try_from(i).ok().and_then(|s| 1u64.checked_shl(s)) {
            Some(bit) => self.low & bit != 0,
            None => self.high.contains(&i),
        }
    }

    fn set(&mut self, i: usize) {
        match u32::try_from(i).ok().and_then(|s| 1u64.checked_shl(s)) {
            Some(bit) => self.low |= bit,
            None if !self.high.contains(&i) => self.high.push(i),
            None => {}
        }
    }
}

/// Parser state for the current section.
enum Section {
    Session,
    Media,
    /// A garbled `m=` line: its attributes are ignored.
    Skipped,
}

impl<'a> Sdp<'a> {
    /// Scans an SDP body. Accepts `\n` or `\r\n`; never fails.
    pub fn parse(buf: &'a [u8]) -> Sdp<'a> {
        let mut sdp = Sdp {
            origin: None,
            connection: None,
            direction: Direction::SendRecv,
            media: SmallVec::new(),
        };
        let mut session_dir = None;
        // Media sections whose direction is their own (a media-level connection is one that
        // is set: it is only ever set from a media-level `c=`).
        let mut media_dir = Flags::default();
        let mut section = Section::Session;
        for raw in Lines::new(buf) {
            let line = match raw {
                [head @ .., b'\r'] => head,
                _ => raw,
            };
            let (Some(&kind), Some(b'=')) = (line.first(), line.get(1)) else {
                continue;
            };
            let value = line.get(2..).unwrap_or_default();
            match kind {
                b'm' => match parse_m_line(value) {
                    Some(m) => {
                        sdp.media.push(m);
                        section = Section::Media;
                    }
                    None => section = Section::Skipped,
                },
                b'o' if matches!(section, Section::Session) && sdp.origin.is_none() => {
                    sdp.origin = Some(trim(value));
                }
                b'c' => {
                    let addr = parse_connection(value);
                    match section {
                        Section::Session => {
                            if sdp.connection.is_none() {
                                sdp.connection = addr;
                            }
                        }
                        Section::Media => {
                            if let Some(m) = sdp.media.last_mut() {
                                if m.connection.is_none() {
                                    m.connection = addr;
                                }
                            }
                        }
                        Section::Skipped => {}
                    }
                }
                b'a' => {
                    let attr = trim(value);
                    // Attribute names are short: a plain scan beats a vector search here.
                    let (name, val) = match attr.iter().position(|&b| b == b':') {
                        Some(i) => (
                            attr.get(..i).unwrap_or_default(),
                            attr.get(i.saturating_add(1)..).unwrap_or_default(),
                        ),
                        None => (attr, &[][..]),
                    };
                    match section {
                        Section::Session => {
                            if let Some(d) = Direction::from_attr(name) {
                                session_dir.get_or_insert(d);
                            }
                        }
                        Section::Media => {
                            let at = sdp.media.len().saturating_sub(1);
                            if let Some(m) = sdp.media.last_mut() {
                                let mut dir_set = media_dir.get(at);
                                media_attr(m, &mut dir_set, name, val);
                                if dir_set {
                                    media_dir.set(at);
                                }
                            }
                        }
                        Section::Skipped => {}
                    }
                }
                _ => {}
            }
        }
        sdp.direction = session_dir.unwrap_or_default();
        for (i, m) in sdp.media.iter_mut().enumerate() {
            if m.connection.is_none() {
                m.connection = sdp.connection;
            }
            if !media_dir.get(i) {
                m.direction = sdp.direction;
            }
        }
        sdp
    }
}

fn media_attr<'a>(m: &mut Media<'a>, dir_set: &mut bool, name: &'a [u8], val: &'a [u8]) {
    if let Some(d) = Direction::from_attr(name) {
        if !*dir_set {
            m.direction = d;
            *dir_set = true;
        }
        return;
    }
    match name {
        b"rtpmap" => {
            if let Some(r) = parse_rtpmap(val) {
                m.rtpmaps.push(r);
            }
        }
        b"rtcp" if m.rtcp.is_none() => {
            let mut it = val
                .split(|b| crate::bytes::is_lws(*b))
                .filter(|t| !t.is_empty());
            if let Some(port) = it.next().and_then(parse_u16) {
                let _nettype = it.next();
                let addrtype = it.next();
                let addr = it.next();
                let ip = match (addrtype, addr) {
                    (Some(_), Some(a)) => parse_ip(a),
                    _ => None,
                };
                m.rtcp = Some((port, ip));
            }
        }
        b"rtcp-mux" => m.rtcp_mux = true,
        b"label" if m.label.is_none() => m.label = Some(trim(val)),
        b"crypto" => m.crypto = true,
        b"ptime" if m.ptime.is_none() => {
            let (digits, _) = split_digits(trim(val));
            m.ptime = parse_u32(digits);
        }
        _ => {}
    }
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`
fn parse_m_line(value: &[u8]) -> Option<Media<'_>> {
    let mut it = value
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|t| !t.is_empty());
    let kind = it.next()?;
    let port_field = it.next()?;
    let proto = it.next()?;
    let (port, port_count) = match split_once(port_field, b'/') {
        Some((p, c)) => (parse_u16(p)?, parse_u16(c)?),
        None => (parse_u16(port_field)?, 1),
    };
    let formats = it
        .filter_map(|f| parse_u16(f).and_then(|v| u8::try_from(v).ok()))
        .collect();
    Some(Media {
        kind,
        port,
        port_count,
        proto,
        formats,
        connection: None,
        rtcp: None,
        rtcp_mux: false,
        direction: Direction::SendRecv,
        rtpmaps: SmallVec::new(),
        label: None,
        crypto: false,
        ptime: None,
    })
}

/// `c=IN IP4 <addr>[/ttl[/n]]`
fn parse_connection(value: &[u8]) -> Option<IpAddr> {
    let mut it = value
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|t| !t.is_empty());
    let _nettype = it.next()?;
    let _addrtype = it.next()?;
    parse_ip(it.next()?)
}

/// An IP address, ignoring a `/ttl` or `/count` suffix.
fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    let s = trim(s.get(..find_byte(s, b'/').unwrap_or(s.len()))?);
    if let Some(v4) = dotted_quad(s) {
        return Some(IpAddr::V4(v4));
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// The common case of [`parse_ip`] without the general parser: four decimal octets of one to
/// three digits, no leading zeros. `None` for anything else, which the general parser then
/// reads (or rejects) as before.
fn dotted_quad(s: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split(|&b| b == b'.');
    for o in &mut octets {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || (p.len() > 1 && p.first() == Some(&b'0')) {
            return None;
        }
        *o = u8::try_from(crate::bytes::parse_u16(p)?).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(std::net::Ipv4Addr::from(octets))
}

/// `<pt> <encoding>/<clock>[/<channels>]`
fn parse_rtpmap(val: &[u8]) -> Option<RtpMap<'_>> {
    let val = trim(val);
    let sp = val.iter().position(|&b| b == b' ' || b == b'\t')?;
    let pt = u8::try_from(parse_u16(val.get(..sp)?)?).ok()?;
    let rest = trim(val.get(sp..)?);
    let mut parts = rest.split(|&b| b == b'/');
    let encoding = trim(parts.next()?);
    let clock_rate = parse_u32(trim(parts.next()?))?;
    let channels = parts.next().and_then(|c| parse_u16(trim(c)));
    if encoding.is_empty() {
        return None;
    }
    Some(RtpMap {
        payload_type: pt,
        encoding,
        clock_rate,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const OFFER: &[u8] = b"v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\n\
s=-\r\n\
c=IN IP4 192.0.2.1\r\n\
t=0 0\r\n\
a=sendonly\r\n\
m=audio 49170 RTP/AVP 0 8 97 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:97 opus/48000/2\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=rtcp:53020 IN IP4 192.0.2.9\r\n\
a=ptime:20\r\n\
a=label:1\r\n\
m=video 51372/2 RTP/SAVP 99\r\n\
c=IN IP6 2001:db8::2\r\n\
a=rtpmap:99 H264/90000\r\n\
a=rtcp-mux\r\n\
a=recvonly\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";

    #[test]
    fn session_level_values_apply_to_media_without_their_own() {
        let s = Sdp::parse(OFFER);
        assert_eq!(
            s.origin,
            Some(&b"alice 2890844526 2890844526 IN IP4 192.0.2.1"[..])
        );
        assert_eq!(s.connection, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
        assert_eq!(s.direction, Direction::SendOnly);
        assert_eq!(s.media.len(), 3);
        let a = &s.media[0];
        assert_eq!(a.kind, b"audio");
        assert_eq!((a.port, a.port_count), (49170, 1));
        assert_eq!(a.proto, b"RTP/AVP");
        assert_eq!(a.formats[..], [0, 8, 97, 101]);
        assert_eq!(a.connection, s.connection);
        assert_eq!(a.direction, Direction::SendOnly);
        assert_eq!(
            a.rtcp,
            Some((53020, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)))))
        );
        assert!(!a.rtcp_mux);
        assert_eq!(a.label, Some(&b"1"[..]));
        assert_eq!(a.ptime, Some(20));
        assert!(!a.crypto);
    }

    #[test]
    fn rtpmap_with_and_without_channels() {
        let s = Sdp::parse(OFFER);
        let a = &s.media[0];
        assert_eq!(
            a.rtpmap(97),
            Some(&RtpMap {
                payload_type: 97,
                encoding: b"opus",
                clock_rate: 48000,
                channels: Some(2)
            })
        );
        assert_eq!(a.rtpmap(0).map(|r| r.channels), Some(None));
        assert_eq!(a.rtpmap(8), None);
    }

    #[test]
    fn media_level_connection_direction_mux_and_crypto() {
        let s = Sdp::parse(OFFER);
        let v = &s.media[1];
        assert_eq!((v.port, v.port_count), (51372, 2));
        assert_eq!(
            v.connection,
            Some(IpAddr::V6("2001:db8::2".parse::<Ipv6Addr>().unwrap()))
        );
        assert_eq!(v.direction, Direction::RecvOnly);
        assert!(v.rtcp_mux);
        assert!(v.crypto);
        assert_eq!(v.rtcp, None);
        let d = &s.media[2];
        assert_eq!(d.port, 9);
        assert!(d.formats.is_empty());
    }

    #[test]
    fn defaults_to_sendrecv_and_accepts_lf_only() {
        let s = Sdp::parse(b"v=0\nc=IN IP4 10.0.0.1/127\nm=audio 5004 RTP/AVP 8\na=rtcp:5005\n");
        assert_eq!(s.direction, Direction::SendRecv);
        assert_eq!(s.media[0].direction, Direction::SendRecv);
        assert_eq!(
            s.media[0].connection,
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert_eq!(s.media[0].rtcp, Some((5005, None)));
    }

    #[test]
    fn directions_of_media_beyond_the_sixty_fourth_are_their_own() {
        let mut body = b"v=0\r\na=recvonly\r\n".to_vec();
        for i in 0..70 {
            body.extend_from_slice(format!("m=audio {} RTP/AVP 0\r\n", 4000 + 2 * i).as_bytes());
            if i == 3 || i == 66 {
                body.extend_from_slice(b"a=sendonly\r\na=inactive\r\n");
            }
        }
        let s = Sdp::parse(&body);
        assert_eq!(s.media.len(), 70);
        for (i, m) in s.media.iter().enumerate() {
            let own = i == 3 || i == 66;
            let want = if own {
                Direction::SendOnly
            } else {
                Direction::RecvOnly
            };
            assert_eq!(m.direction, want, "m-line {i}");
        }
    }

    proptest::proptest! {
        #[test]
        fn dotted_quads_read_as_the_general_parser_reads_them(
            s in proptest::collection::vec(
                proptest::sample::select(b"0123456789.:a+ ".to_vec()),
                0..20,
            ),
        ) {
            let general = std::str::from_utf8(&s).ok().and_then(|t| t.parse::<Ipv4Addr>().ok());
            if let Some(fast) = dotted_quad(&s) {
                proptest::prop_assert_eq!(Some(fast), general);
            }
        }

        #[test]
        fn dotted_digit_groups_read_as_the_general_parser_reads_them(
            groups in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(b"0125".to_vec()), 0..5),
                3..6,
            ),
        ) {
            let s = groups.join(&b'.');
            let general = std::str::from_utf8(&s).ok().and_then(|t| t.parse::<Ipv4Addr>().ok());
            proptest::prop_assert_eq!(dotted_quad(&s), general);
        }

        #[test]
        fn every_address_is_read_by_the_fast_path(a: [u8; 4]) {
            let text = Ipv4Addr::from(a).to_string();
            proptest::prop_assert_eq!(dotted_quad(text.as_bytes()), Some(Ipv4Addr::from(a)));
        }
    }

    #[test]
    fn garbled_lines_are_ignored() {
        let s = Sdp::parse(
            b"v=0\r\nc=IN IP4 not-an-ip\r\nxyz\r\n=\r\nm=audio 99999 RTP/AVP 0\r\na=sendonly\r\n\
m=audio 7000 RTP/AVP 0 300 x\r\na=rtpmap:300 X/1\r\na=rtpmap:0 /8000\r\na=ptime:20.5\r\n",
        );
        assert_eq!(s.connection, None);
        assert_eq!(s.direction, Direction::SendRecv);
        assert_eq!(s.media.len(), 1);
        let m = &s.media[0];
        assert_eq!(m.port, 7000);
        assert_eq!(m.formats[..], [0]);
        assert_eq!(m.direction, Direction::SendRecv);
        assert!(m.rtpmaps.is_empty());
        assert_eq!(m.ptime, Some(20));
        assert_eq!(m.connection, None);
    }

    #[test]
    fn empty_and_binary_input_give_an_empty_description() {
        assert_eq!(Sdp::parse(b"").media.len(), 0);
        assert_eq!(Sdp::parse(b"\xff\x00m=\x80").media.len(), 0);
    }
}
