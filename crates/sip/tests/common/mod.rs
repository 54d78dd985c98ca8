//! Test helpers: a minimal JSON reader and a minimal libpcap (Ethernet + IPv4/IPv6 + UDP)
//! reader, so the crate needs no extra dev-dependencies.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The shared capture corpus (never copied into the repository).
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn num(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }
    pub fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => &[],
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub fn parse(text: &str) -> Json {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing JSON data");
        v
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, lit: &str) {
        assert!(
            self.s[self.i..].starts_with(lit.as_bytes()),
            "bad JSON at {}",
            self.i
        );
        self.i += lit.len();
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'n' => {
                self.eat("null");
                Json::Null
            }
            b't' => {
                self.eat("true");
                Json::Bool(true)
            }
            b'f' => {
                self.eat("false");
                Json::Bool(false)
            }
            b'"' => Json::Str(self.string()),
            b'[' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    self.ws();
                    if self.s[self.i] == b']' {
                        self.i += 1;
                        return Json::Arr(out);
                    }
                    out.push(self.value());
                    self.ws();
                    if self.s[self.i] == b',' {
                        self.i += 1;
                    }
                }
            }
            b'{' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    self.ws();
                    if self.s[self.i] == b'}' {
                        self.i += 1;
                        return Json::Obj(out);
                    }
                    let k = self.string();
                    self.ws();
                    self.eat(":");
                    let v = self.value();
                    out.push((k, v));
                    self.ws();
                    if self.s[self.i] == b',' {
                        self.i += 1;
                    }
                }
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len() && b"+-0123456789.eE".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                Json::Num(
                    t.parse()
                        .unwrap_or_else(|_| panic!("bad JSON number {t:?}")),
                )
            }
        }
    }
    fn hex4(&mut self) -> u32 {
        let t = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
        self.i += 4;
        u32::from_str_radix(t, 16).unwrap()
    }
    fn string(&mut self) -> String {
        self.eat("\"");
        let mut out = String::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => return out,
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let mut cp = self.hex4();
                            if (0xd800..0xdc00).contains(&cp) {
                                self.eat("\\u");
                                let lo = self.hex4();
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                            }
                            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                        }
                        other => out.push(other as char),
                    }
                }
                _ => {
                    // Copy one UTF-8 sequence.
                    let start = self.i - 1;
                    let len = match c {
                        0xf0..=0xff => 4,
                        0xe0..=0xef => 3,
                        0xc0..=0xdf => 2,
                        _ => 1,
                    };
                    self.i = start + len;
                    out.push_str(std::str::from_utf8(&self.s[start..self.i]).unwrap());
                }
            }
        }
    }
}

/// One UDP datagram from a capture.
#[derive(Debug, Clone)]
pub struct Udp {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Vec<u8>,
}

/// Reads a classic libpcap file with Ethernet link type and returns, per 1-based frame number,
/// the UDP datagram it carries (IPv4 unfragmented or IPv6 without extension headers; optional
/// 802.1Q tag). Other frames are skipped.
pub fn read_pcap_udp(data: &[u8]) -> BTreeMap<usize, Udp> {
    let mut out = BTreeMap::new();
    for_each_frame(data, |frame, pkt| {
        if let Some(u) = decode_udp(pkt) {
            out.insert(frame, u);
        }
    });
    out
}

/// Calls `f(frame_number, packet)` for every record of a classic libpcap Ethernet capture.
fn for_each_frame(data: &[u8], mut f: impl FnMut(usize, &[u8])) {
    assert!(data.len() >= 24, "pcap too short");
    let le = match &data[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a libpcap file"),
    };
    let u32_at = |b: &[u8], o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(
        u32_at(data, 20) & 0x0fff_ffff,
        1,
        "expected Ethernet link type"
    );
    let mut off = 24;
    let mut frame = 0;
    while off + 16 <= data.len() {
        let incl = u32_at(data, off + 8) as usize;
        off += 16;
        let Some(pkt) = data.get(off..off + incl) else {
            break;
        };
        off += incl;
        frame += 1;
        f(frame, pkt);
    }
}

fn be16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(o)?, *b.get(o + 1)?]))
}

/// Transport protocol number and transport-layer bytes of an Ethernet frame (IPv4, IPv4-in-IPv4,
/// IPv6 without extension headers, optional 802.1Q tag). Fragments are skipped.
fn decode_l4(pkt: &[u8]) -> Option<(u8, &[u8])> {
    let mut ethertype = be16(pkt, 12)?;
    let mut l3 = pkt.get(14..)?;
    if ethertype == 0x8100 {
        ethertype = be16(pkt, 16)?;
        l3 = pkt.get(18..)?;
    }
    match ethertype {
        0x0800 => ipv4(l3),
        0x86dd => {
            let plen = usize::from(be16(l3, 4)?);
            Some((*l3.get(6)?, l3.get(40..(40 + plen).min(l3.len()))?))
        }
        _ => None,
    }
}

fn ipv4(l3: &[u8]) -> Option<(u8, &[u8])> {
    let ihl = usize::from(l3.first()? & 0x0f) * 4;
    let frag = be16(l3, 6)?;
    if frag & 0x3fff != 0 {
        return None;
    }
    let total = usize::from(be16(l3, 2)?);
    let payload = l3.get(ihl..total.min(l3.len()))?;
    match *l3.get(9)? {
        4 => ipv4(payload),
        proto => Some((proto, payload)),
    }
}

fn decode_udp(pkt: &[u8]) -> Option<Udp> {
    let (proto, l4) = decode_l4(pkt)?;
    if proto != 17 {
        return None;
    }
    let len = usize::from(be16(l4, 4)?);
    Some(Udp {
        src_port: be16(l4, 0)?,
        dst_port: be16(l4, 2)?,
        payload: l4.get(8..len.min(l4.len()))?.to_vec(),
    })
}

/// One TCP segment with payload.
#[derive(Debug, Clone)]
pub struct TcpSeg {
    pub frame: usize,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub payload: Vec<u8>,
}

/// Every TCP segment carrying payload, in capture order (same link/IP rules as
/// [`read_pcap_udp`]).
pub fn read_pcap_tcp(data: &[u8]) -> Vec<TcpSeg> {
    let mut out = Vec::new();
    for_each_frame(data, |frame, pkt| {
        let Some((6, l4)) = decode_l4(pkt) else {
            return;
        };
        let Some(&off) = l4.get(12) else { return };
        let hl = usize::from(off >> 4) * 4;
        let (Some(sp), Some(dp), Some(payload)) = (be16(l4, 0), be16(l4, 2), l4.get(hl..)) else {
            return;
        };
        if payload.is_empty() {
            return;
        }
        let seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
        out.push(TcpSeg {
            frame,
            src_port: sp,
            dst_port: dp,
            seq,
            payload: payload.to_vec(),
        });
    });
    out
}

/// Real SIP messages used as seeds by the property tests.
pub const SAMPLES: &[&[u8]] = &[
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/UDP h2;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice, A\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@[2001:db8::1]:5060>\r\n\
Reason: Q.850;cause=16;text=\"Normal\"\r\n\
P-Charging-Vector: icid-value=abc;orig-ioi=x\r\n\
Session-ID: 0123456789abcdef;remote=00\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 139\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\n\
c=IN IP4 192.0.2.1\r\n\
m=audio 49170 RTP/AVP 0 97\r\n\
a=rtpmap:97 opus/48000/2\r\n\
a=sendonly\r\n",
    b"SIP/2.0 200 OK\nv: SIP/2.0/TCP h;branch=z9hG4bKx\nf: <tel:+1555>;tag=a\nt: <sip:b@h>;tag=b\ni: id\nCSeq: 2 BYE\nServer: S\nl: 0\n\n",
    b"INVITE sip:srs@example.com SIP/2.0\r\n\
Call-ID: rec\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: multipart/mixed;boundary=XyZ\r\n\
Content-Length: 184\r\n\
\r\n\
--XyZ\r\n\
Content-Type: application/sdp\r\n\
\r\n\
v=0\r\nm=audio 5000 RTP/AVP 0\r\na=label:1\r\na=rtcp:5001 IN IP4 10.0.0.1\r\n\
--XyZ\r\n\
Content-Type: application/rs-metadata+xml\r\n\
\r\n\
<recording/>\r\n\
--XyZ--\r\n",
    b"REGISTER sip:registrar.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKreg;rport\r\n\
From: <sip:u@example.com>;tag=r1\r\n\
To: <sip:u@example.com>\r\n\
Call-ID: reg-1\r\n\
CSeq: 7 REGISTER\r\n\
Subject: folded\r\n value\r\n\
Authorization: Digest username=\"u\", realm=\"r\"\r\n\
Content-Length: 0\r\n\r\n",
];
