//! HEP decoding (v3 and legacy), bounded payload inflation, and the v3 encode/decode
//! round trip on whatever decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use siphon_hep::{decode, encode_v3, HepPacket, MAX_PACKET_LEN};

const INFLATE_LIMIT: usize = 4096;

fn check(p: &HepPacket<'_>, used: usize, input_len: usize) {
    assert!(used <= input_len);

    let mut scratch = Vec::new();
    if let Ok(bytes) = p.payload.bytes(&mut scratch, INFLATE_LIMIT) {
        if p.payload.is_compressed() {
            assert!(bytes.len() <= INFLATE_LIMIT);
        }
    }

    let mut out = Vec::new();
    encode_v3(p, &mut out);
    assert!(out.len() <= MAX_PACKET_LEN);
    let (q, n) = decode(&out, false).expect("re-encoded packet decodes");
    assert_eq!(n, out.len());
    // A full-size packet may have had byte fields cut to fit; anything smaller is exact.
    if out.len() < MAX_PACKET_LEN {
        assert_eq!(q, HepPacket { version: 3, ..*p });
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok((p, used)) = decode(data, false) {
        assert_eq!(p.version, 3);
        check(&p, used, data.len());
    }
    if let Ok((p, used)) = decode(data, true) {
        check(&p, used, data.len());
    }
});
