//! The HEP packets Kamailio's siptrace module sent during one proxied call, decoded and
//! checked field by field against the reference decode in `hep_kamailio.expected.json`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value;
use siphon_hep::{chunk, chunks_v3, decode, encode_v3, is_hep, HepPacket, Payload, ProtoType};

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    let path = corpus(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("corpus file {}: {e}", path.display()))
}

/// A UDP datagram found in a capture.
struct Datagram {
    src: SocketAddr,
    dst: SocketAddr,
    payload: Vec<u8>,
}

/// Minimal classic-pcap reader: Ethernet + IPv4 + UDP, little-endian microsecond files.
fn udp_datagrams(file: &[u8]) -> Vec<Datagram> {
    assert_eq!(
        &file[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian µs pcap"
    );
    assert_eq!(
        u32::from_le_bytes(file[20..24].try_into().unwrap()),
        1,
        "ethernet"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at < file.len() {
        let rec = &file[at..at + 16];
        let incl = u32::from_le_bytes(rec[8..12].try_into().unwrap()) as usize;
        let frame = &file[at + 16..at + 16 + incl];
        at += 16 + incl;
        if frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if ip[9] != 17 {
            continue;
        }
        let src_ip = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst_ip = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let udp = &ip[ihl..total];
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        let dport = u16::from_be_bytes([udp[2], udp[3]]);
        let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        out.push(Datagram {
            src: SocketAddr::new(src_ip.into(), sport),
            dst: SocketAddr::new(dst_ip.into(), dport),
            payload: udp[8..ulen].to_vec(),
        });
    }
    out
}

fn chunk_name(kind: u16) -> &'static str {
    match kind {
        chunk::IP_FAMILY => "ip_family",
        chunk::IP_PROTOCOL => "ip_proto",
        chunk::IPV4_SRC => "src_ip4",
        chunk::IPV4_DST => "dst_ip4",
        chunk::IPV6_SRC => "src_ip6",
        chunk::IPV6_DST => "dst_ip6",
        chunk::SRC_PORT => "src_port",
        chunk::DST_PORT => "dst_port",
        chunk::TS_SEC => "ts_sec",
        chunk::TS_USEC => "ts_usec",
        chunk::PROTO_TYPE => "proto_type",
        chunk::CAPTURE_ID => "capture_id",
        chunk::AUTH_KEY => "auth_key",
        chunk::PAYLOAD => "payload",
        chunk::COMPRESSED_PAYLOAD => "compressed_payload",
        chunk::CORRELATION_ID => "correlation_id",
        _ => "other",
    }
}

/// The value of the Call-ID header (long or compact form) of a SIP message.
fn call_id(msg: &[u8]) -> Option<&[u8]> {
    let head_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(msg.len());
    msg[..head_end].split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        let name = line[..colon].trim_ascii();
        let is_call_id = name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i");
        is_call_id.then(|| line[colon + 1..].trim_ascii())
    })
}

fn looks_like_sip(msg: &[u8]) -> bool {
    let first = msg.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    first.starts_with(b"SIP/2.0 ") || (first.ends_with(b" SIP/2.0") && first.contains(&b' '))
}

fn expected() -> Value {
    serde_json::from_slice(&read("hep_kamailio.expected.json")).unwrap()
}

fn hep_datagrams() -> Vec<Datagram> {
    let all = udp_datagrams(&read("hep_kamailio.pcap"));
    assert!(all.iter().all(|d| d.dst.port() == 9060));
    all
}

#[test]
fn every_kamailio_packet_matches_the_reference_decode() {
    let exp = expected();
    let packets = exp["hep"]["packets"].as_array().unwrap();
    let messages = exp["sip"]["messages"].as_array().unwrap();
    let datagrams = hep_datagrams();
    assert_eq!(datagrams.len(), 14);
    assert_eq!(packets.len(), datagrams.len());
    assert_eq!(messages.len(), datagrams.len());

    for (i, (d, want)) in datagrams.iter().zip(packets).enumerate() {
        let ctx = format!("frame {}", i + 1);
        assert_eq!(d.src.to_string(), want["outer_src"], "{ctx}");
        assert_eq!(d.dst.to_string(), want["outer_dst"], "{ctx}");
        assert!(is_hep(&d.payload), "{ctx}");

        let (p, used) = decode(&d.payload, false).unwrap();
        assert_eq!(used, d.payload.len(), "{ctx}");
        assert_eq!(used as u64, want["total_length"].as_u64().unwrap(), "{ctx}");
        assert_eq!(u64::from(p.version), want["hep_version"], "{ctx}");
        assert_eq!(p.src.to_string(), want["src"], "{ctx}");
        assert_eq!(p.dst.to_string(), want["dst"], "{ctx}");
        assert_eq!(u64::from(p.ip_protocol), want["ip_proto"], "{ctx}");
        let family = if p.src.is_ipv4() { 2 } else { 10 };
        assert_eq!(family, want["ip_family"].as_u64().unwrap(), "{ctx}");
        let ts_sec = want["ts_sec"].as_i64().unwrap();
        let ts_usec = want["ts_usec"].as_i64().unwrap();
        assert_eq!(p.ts_us, ts_sec * 1_000_000 + ts_usec, "{ctx}");
        assert_eq!(u64::from(p.proto_type), want["proto_type"], "{ctx}");
        assert_eq!(p.proto(), ProtoType::SIP, "{ctx}");
        assert_eq!(
            p.capture_id.map(u64::from),
            want["capture_id"].as_u64(),
            "{ctx}"
        );
        assert_eq!(p.auth_key, None, "{ctx}");
        assert_eq!(p.correlation_id, None, "{ctx}");

        let Payload::Plain(body) = p.payload else {
            panic!("{ctx}: plain payload expected, got {:?}", p.payload);
        };
        assert_eq!(
            body.len() as u64,
            want["payload_length"].as_u64().unwrap(),
            "{ctx}"
        );

        let order: Vec<&str> = chunks_v3(&d.payload)
            .unwrap()
            .0
            .map(|c| chunk_name(c.unwrap().kind))
            .collect();
        let want_order: Vec<&str> = want["chunk_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(order, want_order, "{ctx}");

        let msg = &messages[i];
        assert!(looks_like_sip(body), "{ctx}: {:?}", &body[..40]);
        assert_eq!(
            call_id(body),
            Some(msg["call_id"].as_str().unwrap().as_bytes()),
            "{ctx}"
        );
        assert_eq!(p.src.to_string(), msg["src"], "{ctx}");
        assert_eq!(p.dst.to_string(), msg["dst"], "{ctx}");
    }
}

#[test]
fn reencoding_kamailio_packets_is_byte_identical() {
    for (i, d) in hep_datagrams().iter().enumerate() {
        let (p, _) = decode(&d.payload, false).unwrap();
        let mut out = Vec::new();
        encode_v3(&p, &mut out);
        assert_eq!(out, d.payload, "frame {}", i + 1);
    }
}

#[test]
fn kamailio_packets_decode_back_to_back_as_a_tcp_stream_would_carry_them() {
    let datagrams = hep_datagrams();
    let stream: Vec<u8> = datagrams.iter().flat_map(|d| d.payload.clone()).collect();
    let mut rest = &stream[..];
    let mut decoded: Vec<HepPacket<'_>> = Vec::new();
    while !rest.is_empty() {
        let (p, used) = decode(rest, false).unwrap();
        decoded.push(p);
        rest = &rest[used..];
    }
    assert_eq!(decoded.len(), datagrams.len());
    for (p, d) in decoded.iter().zip(&datagrams) {
        assert_eq!(*p, decode(&d.payload, false).unwrap().0);
    }
}

#[test]
fn hep_payloads_are_the_sip_datagrams_seen_on_the_wire() {
    let wire = udp_datagrams(&read("hep_kamailio_wire.pcap"));
    for (i, d) in hep_datagrams().iter().enumerate() {
        let (p, _) = decode(&d.payload, false).unwrap();
        let Payload::Plain(body) = p.payload else {
            panic!("plain payload expected");
        };
        assert!(
            wire.iter()
                .any(|w| w.src == p.src && w.dst == p.dst && w.payload == body),
            "frame {}: HEP payload {} -> {} not found on the wire",
            i + 1,
            p.src,
            p.dst
        );
    }
}
