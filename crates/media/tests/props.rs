//! Property tests: arbitrary packet sequences never panic, and for well-formed streams
//! with loss, duplication, reordering and jitter the output is exactly the timeline span.

mod common;

use std::io::Cursor;

use proptest::prelude::*;
use siphon_media::{g711, Channel, Codec, RenderOptions, RtpPacket, WavRenderer};

const T0: i64 = 1_600_000_000_000_000;

#[derive(Clone, Debug)]
struct Raw {
    right: bool,
    dt_us: i64,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload_type: u8,
    marker: bool,
    payload: Vec<u8>,
}

fn raw_packet() -> impl Strategy<Value = Raw> {
    (
        any::<bool>(),
        0i64..80_000,
        any::<u16>(),
        prop_oneof![any::<u32>(), 0u32..100_000],
        0u32..4,
        prop_oneof![
            Just(0u8),
            Just(8),
            Just(9),
            Just(10),
            Just(11),
            Just(13),
            Just(96),
            Just(101),
            Just(111),
            any::<u8>()
        ],
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(
            |(right, dt_us, seq, timestamp, ssrc, payload_type, marker, payload)| Raw {
                right,
                dt_us,
                seq,
                timestamp,
                ssrc,
                payload_type,
                marker,
                payload,
            },
        )
}

fn opts() -> impl Strategy<Value = RenderOptions> {
    (
        prop::option::of(-2_000_000i64..3_000_000),
        prop::option::of(0i64..6_000_000),
        any::<bool>(),
        prop::option::of(prop_oneof![
            Just(8000u32),
            Just(16_000),
            Just(44_100),
            Just(48_000)
        ]),
    )
        .prop_map(|(start, end, mono, rate)| RenderOptions {
            start_us: start.map(|s| T0 + s),
            end_us: end.map(|e| T0 + e),
            mono,
            rate,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_packets_never_panic_and_give_a_valid_wav(
        packets in prop::collection::vec(raw_packet(), 0..120),
        opts in opts(),
    ) {
        let mut buf = Vec::new();
        let mut r = WavRenderer::new(Cursor::new(&mut buf), opts.clone(), T0);
        r.set_codec_map(Channel::Left, vec![
            (101, Codec::TelephoneEvent),
            (111, Codec::Opus { channels: 2 }),
            (96, Codec::L16 { rate: 22_050, channels: 3 }),
        ]);
        r.set_codec_map(Channel::Right, vec![(96, Codec::G722), (13, Codec::ComfortNoise)]);
        let mut t = T0;
        for p in &packets {
            t += p.dt_us;
            let ch = if p.right { Channel::Right } else { Channel::Left };
            r.push(ch, &RtpPacket {
                capture_us: t,
                seq: p.seq,
                timestamp: p.timestamp,
                ssrc: p.ssrc,
                payload_type: p.payload_type,
                marker: p.marker,
                payload: &p.payload,
            });
        }
        let report = r.finish().unwrap();
        let reader = hound::WavReader::new(Cursor::new(&buf)).unwrap();
        prop_assert_eq!(u64::from(reader.duration()), report.samples_written);
        prop_assert_eq!(reader.spec().sample_rate, report.rate);
        // Nothing is rendered past the last capture time plus the largest packet
        // (an L16 payload of 400 bytes is under 0.2 s; allow 1 s) and the end cut.
        let origin = opts.start_us.unwrap_or(T0);
        let mut limit = t + 1_000_000 + 30_000_000;
        if let Some(e) = opts.end_us { limit = limit.min(e); }
        let max_frames = ((limit - origin).max(0) as i128 * i128::from(report.rate) / 1_000_000) as u64 + 1;
        prop_assert!(report.samples_written <= max_frames, "{} > {}", report.samples_written, max_frames);
    }

    #[test]
    fn impaired_streams_render_exactly_their_timeline(
        n in 10usize..150,
        first_seq in any::<u16>(),
        first_ts in any::<u32>(),
        right_offset_us in 0i64..500_000,
        drops in prop::collection::vec(any::<bool>(), 150),
        dups in prop::collection::vec(any::<bool>(), 150),
        swaps in prop::collection::vec(any::<bool>(), 150),
        jitter in prop::collection::vec(0i64..15_000, 150),
    ) {
        // Two PCMA streams of n 20 ms packets; the first and last packets of each are
        // never impaired. Every 7th-ish packet may be lost, duplicated or swapped with
        // its successor, and every packet is jittered by less than a packet time.
        let mut schedule: Vec<(i64, Channel, usize)> = Vec::new();
        let mut lost = 0u64;
        let mut duplicated = 0u64;
        for (ch, base) in [(Channel::Left, 500_000i64), (Channel::Right, 500_000 + right_offset_us)] {
            let mut order: Vec<usize> = (0..n).collect();
            for (i, &swap) in swaps.iter().enumerate().take(n.saturating_sub(2)).skip(1) {
                if swap && i % 5 == 0 {
                    order.swap(i, i + 1);
                }
            }
            for (slot, &k) in order.iter().enumerate() {
                let interior = k > 0 && k + 1 < n;
                if interior && drops[k] && k % 3 == 0 {
                    lost += 1;
                    continue;
                }
                let t = base + 20_000 * slot as i64 + if interior { jitter[k] } else { 0 };
                schedule.push((t, ch, k));
                if interior && dups[k] && k % 4 == 0 {
                    duplicated += 1;
                    schedule.push((t + 200, ch, k));
                }
            }
        }
        schedule.sort_by_key(|(t, ch, _)| (*t, *ch));
        let payload = |k: usize| vec![(k as u8) | 0x80; 160];
        let wav = common::render(RenderOptions::default(), T0, |r| {
            for &(t, ch, k) in &schedule {
                let body = payload(k);
                let ssrc = if ch == Channel::Left { 1 } else { 2 };
                r.push(ch, &RtpPacket {
                    capture_us: T0 + t,
                    seq: first_seq.wrapping_add(k as u16),
                    timestamp: first_ts.wrapping_add(160 * k as u32),
                    ssrc,
                    payload_type: 8,
                    marker: false,
                    payload: &body,
                });
            }
        });
        let right_start = ((500_000 + right_offset_us) * 8000 / 1_000_000) as usize;
        let starts = [4000usize, right_start];
        prop_assert_eq!(wav.frames(), starts[1].max(starts[0]) + 160 * n);
        prop_assert_eq!(wav.report.lost_packets_filled, lost);
        prop_assert_eq!(wav.report.duplicates_dropped, duplicated);
        for (c, &start) in starts.iter().enumerate() {
            let ch = if c == 0 { Channel::Left } else { Channel::Right };
            for k in 0..n {
                let got = &wav.channels[c][start + 160 * k..start + 160 * (k + 1)];
                if schedule.iter().any(|&(_, sch, sk)| sch == ch && sk == k) {
                    let mut want = Vec::new();
                    g711::decode_alaw(&payload(k), &mut want);
                    prop_assert_eq!(got, want.as_slice(), "channel {} packet {}", c, k);
                } else {
                    prop_assert!(got.iter().all(|&x| x == 0), "channel {} lost {}", c, k);
                }
            }
        }
        prop_assert!(wav.report.warnings.is_empty(), "{:?}", wav.report.warnings);
    }
}
