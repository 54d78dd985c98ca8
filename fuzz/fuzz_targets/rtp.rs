#![no_main]
//! RTP/RTCP header views and stream statistics on arbitrary bytes.
use libfuzzer_sys::fuzz_target;
use siphon_rtp::{
    looks_like_rtcp, looks_like_rtp, parse_rtcp, rtcp_packets, RtpHeader, StreamStats,
};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_rtp(data);
    let _ = looks_like_rtcp(data);
    let _ = parse_rtcp(data);
    for p in rtcp_packets(data) {
        assert!(p.len >= 4);
    }
    if let Ok(h) = RtpHeader::parse(data) {
        assert!(h.payload_offset + h.payload_len <= data.len());
    }
    // Interpret the input as a sequence of (time, seq, timestamp) triples for one stream.
    let mut s = StreamStats::new();
    for (i, c) in data.chunks_exact(8).enumerate() {
        let seq = u16::from_be_bytes([c[0], c[1]]);
        let ts = u32::from_be_bytes([c[2], c[3], c[4], c[5]]);
        let dt = i64::from(u16::from_be_bytes([c[6], c[7]]));
        s.push(
            i as i64 * 20_000 + dt,
            seq,
            ts,
            c[0] & 0x7f,
            c[1] & 1 == 1,
            Some(8000),
        );
    }
    assert!(s.lost() <= s.expected());
});
