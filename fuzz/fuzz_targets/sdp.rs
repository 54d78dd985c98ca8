#![no_main]
//! SDP scanning and multipart splitting.

use libfuzzer_sys::fuzz_target;
use siphon_sip::{multipart, sdp::Sdp};

fuzz_target!(|data: &[u8]| {
    let s = Sdp::parse(data);
    for m in &s.media {
        for r in &m.rtpmaps {
            assert!(m.rtpmap(r.payload_type).is_some());
        }
    }
    // First line as the Content-Type, the rest as the body.
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (ct, body) = data.split_at(split);
    for p in multipart::parts(ct, body) {
        let _ = Sdp::parse(p.body);
        assert!(p.body.len() <= body.len());
    }
    for p in multipart::parts(b"multipart/mixed", data) {
        let _ = p.content_type;
    }
});
