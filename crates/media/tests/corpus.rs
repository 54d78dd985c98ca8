//! Rendering real captures from the shared corpus.

mod common;

use common::{corpus, read_rtp, render, Rtp, Wav};
use serde_json::Value;
use siphon_media::{g711, Channel, Codec, RenderOptions};

/// Caller → callee RTP leaves the caller from this port in every corpus call.
const CALLER_RTP_PORT: u16 = 20_000;

fn channel_of(p: &Rtp) -> Channel {
    if p.src_port == CALLER_RTP_PORT {
        Channel::Left
    } else {
        Channel::Right
    }
}

fn json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(corpus(name)).unwrap()).unwrap()
}

/// Capture time (µs) of the first SIP message, i.e. the call start.
fn call_start_us(expected: &Value) -> i64 {
    let t = expected["sip"]["messages"][0]["time_epoch"]
        .as_f64()
        .unwrap();
    (t * 1e6).round() as i64
}

fn ssrc(v: &Value) -> u32 {
    u32::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// Renders a whole capture with the given per-direction codec maps.
fn render_capture(pcap: &str, expected: &str, maps: [Vec<(u8, Codec)>; 2]) -> (Vec<Rtp>, i64, Wav) {
    let packets = read_rtp(&corpus(pcap));
    let start = call_start_us(&json(expected));
    let [left, right] = maps;
    let wav = render(RenderOptions::default(), start, |r| {
        r.set_codec_map(Channel::Left, left);
        r.set_codec_map(Channel::Right, right);
        for p in &packets {
            r.push(channel_of(p), &p.packet());
        }
    });
    (packets, start, wav)
}

fn pos_of(us: i64, start: i64) -> usize {
    usize::try_from((us - start) * 8000 / 1_000_000).unwrap()
}

fn alaw(payload: &[u8]) -> Vec<i16> {
    let mut v = Vec::new();
    g711::decode_alaw(payload, &mut v);
    v
}

#[test]
fn impaired_capture_losses_are_silence_of_exact_length_and_duplicates_do_not_double() {
    let truth = json("impaired_twoway.ground_truth.json");
    let (packets, start, wav) = render_capture(
        "impaired_twoway.pcap",
        "impaired_twoway.expected.json",
        [Vec::new(), Vec::new()],
    );
    assert_eq!(wav.spec.sample_rate, 8000);
    assert_eq!(wav.spec.channels, 2);

    let mut expected_frames = 0usize;
    let mut lost_total = 0u64;
    let mut dup_total = 0u64;
    for stream in truth["streams"].as_array().unwrap() {
        let id = ssrc(&stream["ssrc"]);
        let mine: Vec<&Rtp> = packets.iter().filter(|p| p.ssrc == id).collect();
        let channel = channel_of(mine[0]);
        let samples = &wav.channels[channel as usize];
        let first_seq = stream["first_seq"].as_u64().unwrap() as u16;
        let last_seq = stream["last_seq"].as_u64().unwrap() as u16;
        // The first packets are never impaired: the stream is anchored on the first one.
        let first = mine.iter().find(|p| p.seq == first_seq).unwrap();
        let anchor = pos_of(first.capture_us, start);
        let slot = |seq: u16| {
            // Timestamps advance 240 per packet (30 ms) in this capture.
            anchor + usize::from(seq.wrapping_sub(first_seq)) * 240
        };
        for p in &mine {
            assert_eq!(
                p.timestamp.wrapping_sub(first.timestamp),
                u32::from(p.seq.wrapping_sub(first_seq)) * 240,
                "timestamps are regular"
            );
        }
        // Every received packet's slot holds exactly its audio: reordered packets in
        // place, duplicates not added twice.
        for p in &mine {
            let s = slot(p.seq);
            assert_eq!(
                &samples[s..s + 240],
                alaw(&p.payload).as_slice(),
                "seq {}",
                p.seq
            );
        }
        // Lost packets are silence of exactly one packet each.
        let lost: Vec<u16> = stream["lost_seqs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u16)
            .collect();
        for &seq in &lost {
            assert!(mine.iter().all(|p| p.seq != seq));
            let s = slot(seq);
            assert!(
                samples[s..s + 240].iter().all(|&x| x == 0),
                "lost seq {seq}"
            );
            // A-law never decodes to 0, so the neighbours being non-zero shows the gap
            // is exactly one slot long unless they are lost too.
            if !lost.contains(&seq.wrapping_sub(1)) {
                assert_ne!(samples[s - 1], 0, "before lost seq {seq}");
            }
            if !lost.contains(&seq.wrapping_add(1)) {
                assert_ne!(samples[s + 240], 0, "after lost seq {seq}");
            }
        }
        // Nothing but the lost slots is silent inside the stream.
        let zeros = samples[anchor..slot(last_seq) + 240]
            .iter()
            .filter(|&&x| x == 0)
            .count();
        assert_eq!(zeros, lost.len() * 240);
        expected_frames = expected_frames.max(slot(last_seq) + 240);
        lost_total += lost.len() as u64;
        dup_total += stream["duplicated"].as_u64().unwrap();
    }
    assert_eq!(
        wav.frames(),
        expected_frames,
        "output ends with the last packet"
    );
    assert_eq!(wav.report.lost_packets_filled, lost_total);
    assert_eq!(wav.report.lost_packets_filled, 10);
    assert_eq!(wav.report.duplicates_dropped, dup_total);
    assert!(wav.report.warnings.is_empty(), "{:?}", wav.report.warnings);
}

#[test]
fn one_way_capture_gives_silent_right_channel_and_reports_dtmf() {
    // The callee's answer lists PCMU and telephone-event 101 while the caller sends
    // PCMA: payload type 8 falls back to the static table.
    let map = vec![(0, Codec::Pcmu), (101, Codec::TelephoneEvent)];
    let (packets, _start, wav) = render_capture(
        "basic_oneway_g711a.pcap",
        "basic_oneway_g711a.expected.json",
        [map.clone(), map],
    );
    assert_eq!(wav.spec.channels, 2);
    assert!(
        wav.channels[1].iter().all(|&s| s == 0),
        "right channel is silent"
    );
    let audio_packets = packets.iter().filter(|p| p.payload_type == 8).count();
    assert_eq!(audio_packets, 236);
    let nonzero = wav.channels[0].iter().filter(|&&s| s != 0).count();
    assert_eq!(
        nonzero,
        236 * 240,
        "every PCMA sample rendered once, DTMF not rendered"
    );
    assert_eq!(wav.report.dtmf.len(), 1, "{:?}", wav.report.dtmf);
    let d = &wav.report.dtmf[0];
    assert_eq!(d.digit, '1');
    assert_eq!(d.channel, Channel::Left);
    assert_eq!(d.duration_ms, 280);
    let first_event = packets.iter().find(|p| p.payload_type == 101).unwrap();
    assert_eq!(d.start_us, first_event.capture_us);
    assert_eq!(wav.report.lost_packets_filled, 0);
    assert!(wav.report.warnings.is_empty(), "{:?}", wav.report.warnings);
}

#[test]
fn hold_without_timestamp_advance_reanchors_to_capture_time() {
    let map = vec![(8, Codec::Pcma), (101, Codec::TelephoneEvent)];
    let (packets, start, wav) = render_capture(
        "hold_unhold_dtmf_callee_bye.pcap",
        "hold_unhold_dtmf_callee_bye.expected.json",
        [map.clone(), map],
    );
    for channel in [Channel::Left, Channel::Right] {
        let mine: Vec<&Rtp> = packets
            .iter()
            .filter(|p| channel_of(p) == channel && p.payload_type == 8)
            .collect();
        // Find the hold gap: capture time jumps by seconds while timestamps advance 240.
        let resume = mine
            .windows(2)
            .position(|w| w[1].capture_us - w[0].capture_us > 1_000_000)
            .expect("hold gap")
            + 1;
        let before = mine[resume - 1];
        let after = mine[resume];
        assert_eq!(after.timestamp.wrapping_sub(before.timestamp), 240);
        let samples = &wav.channels[channel as usize];
        // After the hold the audio restarts at the capture time of its first packet.
        let p = pos_of(after.capture_us, start);
        assert_eq!(
            &samples[p..p + 240],
            alaw(&after.payload).as_slice(),
            "{channel:?}"
        );
        // The hold itself is silence.
        let end_before = pos_of(before.capture_us, start) + 240 + 240;
        assert!(
            samples[end_before..p].iter().all(|&s| s == 0),
            "{channel:?}"
        );
        assert!(p - end_before > 2 * 8000, "hold lasts over 2 s");
    }
    let digits: String = wav.report.dtmf.iter().map(|d| d.digit).collect();
    assert_eq!(digits, "5");
    assert_eq!(wav.report.dtmf[0].channel, Channel::Left);
}

#[test]
fn start_and_end_cut_the_range() {
    let (packets, start, full) = render_capture(
        "basic_twoway_g711a.pcap",
        "basic_twoway_g711a.expected.json",
        [Vec::new(), Vec::new()],
    );
    let from = start + 2_000_000;
    let to = start + 4_500_000;
    let cut = render(
        RenderOptions {
            start_us: Some(from),
            end_us: Some(to),
            ..Default::default()
        },
        start,
        |r| {
            for p in &packets {
                r.push(channel_of(p), &p.packet());
            }
        },
    );
    assert_eq!(cut.frames(), 2_500_000 * 8000 / 1_000_000);
    let offset = pos_of(from, start);
    for c in 0..2 {
        assert_eq!(
            cut.channels[c],
            full.channels[c][offset..offset + cut.frames()]
        );
    }
}
