#![no_main]
//! The WAV renderer and its decoders (G.711, G.722, L16, Opus) on arbitrary packets: the input
//! is split into packets `[channel+codec byte, seq(2), ts(4), len(1), payload...]`.
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use siphon_media::{Channel, Codec, RenderOptions, RtpPacket, WavRenderer};

fuzz_target!(|data: &[u8]| {
    let mut r = WavRenderer::new(Cursor::new(Vec::new()), RenderOptions::default(), 0);
    let map = vec![
        (0, Codec::Pcmu),
        (8, Codec::Pcma),
        (9, Codec::G722),
        (
            96,
            Codec::L16 {
                rate: 16000,
                channels: 2,
            },
        ),
        (97, Codec::Opus { channels: 2 }),
        (101, Codec::TelephoneEvent),
    ];
    r.set_codec_map(Channel::Left, map.clone());
    r.set_codec_map(Channel::Right, map);
    let pts = [0u8, 8, 9, 96, 97, 101, 13, 50];
    let mut rest = data;
    let mut t = 0i64;
    while rest.len() >= 8 {
        let (h, tail) = rest.split_at(8);
        let len = usize::from(h[7]).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        t += 20_000 + i64::from(h[1] & 0x0f) * 1000;
        let channel = if h[0] & 0x80 == 0 {
            Channel::Left
        } else {
            Channel::Right
        };
        r.push(
            channel,
            &RtpPacket {
                capture_us: t,
                seq: u16::from_be_bytes([h[1], h[2]]),
                timestamp: u32::from_be_bytes([h[3], h[4], h[5], h[6]]),
                ssrc: u32::from(h[0] & 0x03),
                payload_type: pts[usize::from(h[0] >> 4 & 0x07)],
                marker: h[0] & 0x08 != 0,
                payload,
            },
        );
    }
    let _ = r.finish();
});
