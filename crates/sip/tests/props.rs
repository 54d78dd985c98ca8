//! Property tests: no input makes the parsers panic, and `frame()` cuts a stream of generated
//! messages exactly at their boundaries.

mod common;

use proptest::prelude::*;
use siphon_sip::sdp::Sdp;
use siphon_sip::{frame, looks_like_sip, multipart, Framing, Message, NameAddr};

/// Calls every accessor, as a consumer would.
fn exercise(buf: &[u8]) {
    let _ = looks_like_sip(buf);
    let _ = frame(buf);
    let _ = Sdp::parse(buf);
    let _ = multipart::parts(b"multipart/mixed;boundary=XyZ", buf).count();
    let _ = multipart::parts(b"multipart/mixed", buf).count();
    let Ok(m) = Message::parse(buf) else {
        return;
    };
    let _ = (m.is_request(), m.method(), m.request_uri(), m.status());
    let _ = (m.reason_phrase(), m.call_id(), m.cseq(), m.from(), m.to());
    // The tag-only readers agree with the full parse.
    assert_eq!(m.from_tag(), m.from().and_then(|f| f.tag));
    assert_eq!(m.to_tag(), m.to().and_then(|t| t.tag));
    let _ = (m.contact(), m.via_branch(), m.user_agent(), m.reason());
    let _ = (m.x_cid(), m.session_id(), m.icid(), m.content_type());
    let _ = (m.header_count(), m.dropped_headers(), format!("{m:?}"));
    for name in ["via", "v", "Contact", "X-Unknown", "Authorization", "", "l"] {
        let _ = m.header(name);
        let _ = m.header_values(name).count();
    }
    let _ = m.headers().count();
    let body = m.body();
    assert!(body.len() <= buf.len());
    for sdp in m.sdp_bodies() {
        let s = Sdp::parse(sdp);
        for media in &s.media {
            let _ = media.rtpmap(0);
        }
    }
    if let Some(ct) = m.content_type() {
        let _ = multipart::parts(ct, body).count();
    }
}

/// Bytes that matter to the grammar, to make mutations hit interesting paths.
const SPECIAL: &[u8] = b":;,\"<>\r\n \t=@[]/-\\\xff0v";

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![any::<u8>(), prop::sample::select(SPECIAL)];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(p, b)| Mutation::Set(p, b)),
        (any::<usize>(), byte).prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1..20usize).prop_map(|(p, n)| Mutation::Delete(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1..200usize).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
    ]
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    let len = buf.len().max(1);
    match *m {
        Mutation::Set(p, b) => {
            if !buf.is_empty() {
                buf[p % len] = b;
            }
        }
        Mutation::Insert(p, b) => buf.insert(p % (buf.len() + 1), b),
        Mutation::Delete(p, n) => {
            let p = p % len;
            let end = (p + n).min(buf.len());
            if p < end {
                buf.drain(p..end);
            }
        }
        Mutation::Truncate(p) => buf.truncate(p % len),
        Mutation::Duplicate(p, n) => {
            let p = p % len;
            let end = (p + n).min(buf.len());
            if p < end {
                let chunk = buf[p..end].to_vec();
                buf.splice(p..p, chunk);
            }
        }
    }
}

/// A generated SIP message with known framing.
#[derive(Debug, Clone)]
struct Gen {
    keepalive: usize,
    bytes: Vec<u8>,
    call_id: String,
    body: Vec<u8>,
}

fn gen_message() -> impl Strategy<Value = Gen> {
    (
        0..3usize,
        prop::bool::ANY,
        prop::sample::select(vec![
            "INVITE",
            "ACK",
            "BYE",
            "OPTIONS",
            "SIP/2.0 200 OK",
            "SIP/2.0 180",
        ]),
        "[a-zA-Z0-9.@-]{1,30}",
        prop::sample::select(vec!["Content-Length", "content-length", "l", "L"]),
        prop::sample::select(vec![":", " : ", ":\t", ":\r\n "]),
        prop::collection::vec(("X-[A-Za-z]{1,8}", "[ -~]{0,40}", prop::bool::ANY), 0..8),
        prop::collection::vec(any::<u8>(), 0..300),
        prop::bool::ANY,
    )
        .prop_map(
            |(keepalive, lf_only, start, call_id, cl_name, cl_sep, extra, body, omit_cl)| {
                let eol: &[u8] = if lf_only { b"\n" } else { b"\r\n" };
                let mut b = Vec::new();
                for _ in 0..keepalive {
                    b.extend_from_slice(b"\r\n");
                }
                if start.starts_with("SIP/") {
                    b.extend_from_slice(start.as_bytes());
                } else {
                    b.extend_from_slice(format!("{start} sip:u@h SIP/2.0").as_bytes());
                }
                b.extend_from_slice(eol);
                b.extend_from_slice(format!("Call-ID: {call_id}").as_bytes());
                b.extend_from_slice(eol);
                for (name, value, fold) in &extra {
                    b.extend_from_slice(format!("{name}: {}", value.trim()).as_bytes());
                    if *fold {
                        b.extend_from_slice(eol);
                        b.extend_from_slice(b"\tcontinued");
                    }
                    b.extend_from_slice(eol);
                }
                let body = if omit_cl { Vec::new() } else { body };
                if !omit_cl {
                    b.extend_from_slice(format!("{cl_name}{cl_sep}{}", body.len()).as_bytes());
                    b.extend_from_slice(eol);
                }
                b.extend_from_slice(eol);
                b.extend_from_slice(&body);
                Gen {
                    keepalive: keepalive * 2,
                    bytes: b,
                    call_id,
                    body,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&buf);
    }

    #[test]
    fn tag_of_agrees_with_a_full_parse(
        parts in prop::collection::vec(
            prop_oneof![
                Just("<".to_owned()), Just(">".to_owned()), Just("\"".to_owned()),
                Just("\\".to_owned()), Just(";".to_owned()), Just(";tag=".to_owned()),
                Just("TAG=".to_owned()), Just("sip:".to_owned()), "[a-z0-9@=. ]{0,5}",
            ],
            0..14,
        )
    ) {
        let v = parts.concat();
        let v = v.as_bytes();
        prop_assert_eq!(NameAddr::tag_of(v), NameAddr::parse(v).tag);
    }

    #[test]
    fn arbitrary_text_lines_never_panic(lines in prop::collection::vec("[ -~\t]{0,60}", 0..30)) {
        let mut buf = b"INVITE sip:x SIP/2.0\r\n".to_vec();
        for l in &lines {
            buf.extend_from_slice(l.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        exercise(&buf);
        prop_assert!(Message::parse(&buf).is_ok());
    }

    #[test]
    fn mutated_real_messages_never_panic(
        idx in 0..common::SAMPLES.len(),
        muts in prop::collection::vec(mutation(), 1..12),
    ) {
        let mut buf = common::SAMPLES[idx].to_vec();
        for m in &muts {
            apply(&mut buf, m);
        }
        exercise(&buf);
    }

    #[test]
    fn frame_splits_concatenated_messages_at_their_lengths(
        msgs in prop::collection::vec(gen_message(), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(|g| g.bytes.iter().copied()).collect();
        let mut rest = &stream[..];
        for g in &msgs {
            prop_assert_eq!(frame(rest), Framing::Complete(g.bytes.len()));
            let m = Message::parse(&rest[..g.bytes.len()]).unwrap();
            prop_assert_eq!(m.call_id(), Some(g.call_id.as_bytes()));
            prop_assert_eq!(m.body(), &g.body[..]);
            rest = &rest[g.bytes.len()..];
        }
        prop_assert!(rest.is_empty());
        // Any proper prefix of the last message (beyond its keep-alives) is incomplete.
        let last = msgs.last().unwrap();
        let start = stream.len() - last.bytes.len();
        let n = last.keepalive + cut.index(last.bytes.len() - last.keepalive);
        prop_assert_eq!(frame(&stream[start..start + n]), Framing::Incomplete);
    }
}

#[test]
fn samples_parse() {
    for s in common::SAMPLES {
        let m = Message::parse(s).unwrap();
        assert!(m.call_id().is_some());
        assert_eq!(frame(s), Framing::Complete(s.len()), "{}", s.escape_ascii());
        exercise(s);
    }
    let siprec = Message::parse(common::SAMPLES[2]).unwrap();
    let sdps: Vec<_> = siprec.sdp_bodies().map(Sdp::parse).collect();
    assert_eq!(sdps.len(), 1);
    assert_eq!(sdps[0].media[0].rtcp.map(|r| r.0), Some(5001));
}
