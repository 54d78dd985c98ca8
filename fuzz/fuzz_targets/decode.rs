//! First byte picks the link type, the rest is the frame; decoded twice into one decoder (the
//! second time sees the reassembly state the first left).
#![no_main]

use libfuzzer_sys::fuzz_target;
use siphon_wire::decode::Decoder;
use siphon_wire::link::LinkType;

const LINKS: [LinkType; 9] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::ADDRESSED,
];

fuzz_target!(|data: &[u8]| {
    let Some((first, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(*first) % LINKS.len()];
    let mut decoder = Decoder::with_limits(8, 1_000_000);
    for ts in [0, 1] {
        if let Ok(Some(p)) = decoder.decode_raw(ts, link, frame) {
            assert!(p.payload.len() <= 65_535);
        }
    }
    assert_eq!(decoder.stats().frames, 2);
});
