#![no_main]
//! SIP message parsing, every accessor, stream framing and the datagram classifier.

use libfuzzer_sys::fuzz_target;
use siphon_sip::{frame, looks_like_sip, multipart, sdp::Sdp, Framing, Message};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_sip(data);
    if let Framing::Complete(n) | Framing::Invalid { skip: n } = frame(data) {
        assert!(n <= data.len());
        assert!(n > 0);
    }
    let Ok(m) = Message::parse(data) else {
        return;
    };
    let _ = (m.is_request(), m.method(), m.request_uri(), m.status());
    let _ = (m.reason_phrase(), m.call_id(), m.cseq(), m.from(), m.to());
    assert_eq!(m.from_tag(), m.from().and_then(|f| f.tag));
    assert_eq!(m.to_tag(), m.to().and_then(|t| t.tag));
    let _ = (m.contact(), m.via_branch(), m.user_agent(), m.reason());
    let _ = (m.x_cid(), m.session_id(), m.icid(), m.content_type());
    let _ = (m.header_count(), m.dropped_headers(), m.headers().count());
    for name in [
        "Via",
        "v",
        "Contact",
        "Route",
        "Authorization",
        "X-Unknown",
        "",
    ] {
        let _ = m.header(name);
        let _ = m.header_values(name).count();
    }
    let body = m.body();
    assert!(body.len() <= data.len());
    for s in m.sdp_bodies() {
        let _ = Sdp::parse(s);
    }
    if let Some(ct) = m.content_type() {
        let _ = multipart::parts(ct, body).count();
    }
});
