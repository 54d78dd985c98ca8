//! Codec output against reference tools: sox for G.711, ffmpeg for G.722 and Opus.
//! The tools are required (apt: sox, ffmpeg); a missing tool fails the test.

mod common;

use std::process::Command;

use common::{read_s16le, render, run, scratch, snr_db};
use siphon_media::{g711, Channel, Codec, G722Decoder, RenderOptions, RtpPacket};

/// Every code several times, in a scrambled order.
fn all_codes() -> Vec<u8> {
    (0..2048u32)
        .map(|i| (i.wrapping_mul(97) ^ (i >> 3)) as u8)
        .chain(0..=255u8)
        .collect()
}

/// Decodes `bytes` with sox as `encoding` ("a-law" or "u-law") to signed 16-bit.
fn sox_g711(bytes: &[u8], encoding: &str, tag: &str) -> Vec<i16> {
    let dir = scratch(tag);
    let (input, output) = (dir.join("in.raw"), dir.join("out.raw"));
    std::fs::write(&input, bytes).unwrap();
    run(Command::new("sox")
        .args([
            "-t", "raw", "-r", "8000", "-e", encoding, "-b", "8", "-c", "1",
        ])
        .arg(&input)
        .args(["-t", "raw", "-e", "signed", "-b", "16"])
        .arg(&output));
    let decoded = read_s16le(&output);
    let _ = std::fs::remove_dir_all(&dir);
    decoded
}

/// Renders `payload` as consecutive 20 ms packets of one direction, mono.
fn render_packets(payloads: &[&[u8]], pt: u8, map: Vec<(u8, Codec)>, ts_step: u32) -> common::Wav {
    let t0 = 1_700_000_000_000_000i64;
    render(
        RenderOptions {
            mono: true,
            ..Default::default()
        },
        t0,
        |r| {
            r.set_codec_map(Channel::Left, map);
            for (k, p) in payloads.iter().enumerate() {
                r.push(
                    Channel::Left,
                    &RtpPacket {
                        capture_us: t0 + 20_000 * k as i64,
                        seq: 1000u16.wrapping_add(k as u16),
                        timestamp: 5000u32.wrapping_add(ts_step * k as u32),
                        ssrc: 0x1234_5678,
                        payload_type: pt,
                        marker: k == 0,
                        payload: p,
                    },
                );
            }
        },
    )
}

#[test]
fn pcma_equals_sox_sample_for_sample() {
    let codes = all_codes();
    let reference = sox_g711(&codes, "a-law", "pcma");
    let mut ours = Vec::new();
    g711::decode_alaw(&codes, &mut ours);
    assert_eq!(reference.len(), codes.len());
    assert_eq!(ours, reference);

    // The same bytes through the renderer, as 160-byte (20 ms) packets.
    let payloads: Vec<&[u8]> = codes.chunks(160).collect();
    let wav = render_packets(&payloads, 8, Vec::new(), 160);
    assert_eq!(wav.spec.sample_rate, 8000);
    assert_eq!(wav.channels[0], reference);
}

#[test]
fn pcmu_equals_sox_sample_for_sample() {
    let codes = all_codes();
    let reference = sox_g711(&codes, "u-law", "pcmu");
    let mut ours = Vec::new();
    g711::decode_ulaw(&codes, &mut ours);
    assert_eq!(ours, reference);

    let payloads: Vec<&[u8]> = codes.chunks(160).collect();
    let wav = render_packets(&payloads, 0, Vec::new(), 160);
    assert_eq!(wav.channels[0], reference);
}

/// A 3 s chirp (150 Hz rising) at `rate` from ffmpeg's lavfi source.
fn chirp_source(rate: u32) -> String {
    format!("aevalsrc=0.6*sin(2*PI*(150+900*t)*t):s={rate}:d=3")
}

#[test]
fn g722_within_40db_of_ffmpeg_decode() {
    let dir = scratch("g722");
    let encoded = dir.join("out.g722");
    let reference = dir.join("ref.raw");
    for (i, source) in [
        "sine=f=440:d=3:sample_rate=16000".to_string(),
        chirp_source(16_000),
    ]
    .iter()
    .enumerate()
    {
        run(Command::new("ffmpeg")
            .args([
                "-y",
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(source)
            .args(["-ar", "16000", "-ac", "1", "-c:a", "g722", "-f", "g722"])
            .arg(&encoded));
        run(Command::new("ffmpeg")
            .args([
                "-y",
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "g722",
                "-i",
            ])
            .arg(&encoded)
            .args(["-f", "s16le", "-ac", "1", "-ar", "16000"])
            .arg(&reference));
        let bytes = std::fs::read(&encoded).unwrap();
        let expected = read_s16le(&reference);
        assert_eq!(expected.len(), bytes.len() * 2, "source {i}");

        // Direct decoder.
        let mut direct = Vec::new();
        G722Decoder::new().decode(&bytes, &mut direct);
        let snr = snr_db(&expected, &direct);
        assert!(snr >= 40.0, "source {i}: direct decode snr {snr:.1} dB");
        // ffmpeg's decoder is bit-exact with the ITU reference, and so is ours.
        assert_eq!(direct, expected, "source {i}: not bit-exact");

        // Through the renderer: 160 octets = 20 ms per packet, RTP clock 8000.
        let payloads: Vec<&[u8]> = bytes.chunks(160).collect();
        let wav = render_packets(
            &payloads,
            9,
            vec![(9, siphon_media::codec_for(9, Some(("G722", 8000, None))))],
            160,
        );
        assert_eq!(wav.spec.sample_rate, 16_000, "G.722 renders at 16 kHz");
        assert_eq!(wav.frames(), expected.len());
        let snr = snr_db(&expected, &wav.channels[0]);
        assert!(snr >= 40.0, "source {i}: rendered snr {snr:.1} dB");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Splits an Ogg stream into its packets.
fn ogg_packets(data: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    let mut off = 0;
    while off + 27 <= data.len() {
        assert_eq!(&data[off..off + 4], b"OggS", "ogg page sync at {off}");
        let segments = usize::from(data[off + 26]);
        let table = &data[off + 27..off + 27 + segments];
        let mut body = off + 27 + segments;
        for &len in table {
            current.extend_from_slice(&data[body..body + usize::from(len)]);
            body += usize::from(len);
            if len < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        off = body;
    }
    packets
}

#[test]
fn opus_within_40db_of_ffmpeg_decode() {
    let dir = scratch("opus");
    let encoded = dir.join("out.ogg");
    let reference = dir.join("ref.raw");
    run(Command::new("ffmpeg")
        .args([
            "-y",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(chirp_source(48_000))
        .args([
            "-ac",
            "1",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
            "-frame_duration",
            "20",
            "-f",
            "ogg",
        ])
        .arg(&encoded));
    // Decode with libopus too, so both sides run the same decoder.
    run(Command::new("ffmpeg")
        .args([
            "-y",
            "-hide_banner",
            "-loglevel",
            "error",
            "-c:a",
            "libopus",
            "-i",
        ])
        .arg(&encoded)
        .args(["-f", "s16le", "-ac", "1", "-ar", "48000"])
        .arg(&reference));
    let packets = ogg_packets(&std::fs::read(&encoded).unwrap());
    let head = &packets[0];
    assert_eq!(&head[..8], b"OpusHead");
    let pre_skip = usize::from(u16::from_le_bytes([head[10], head[11]]));
    let audio: Vec<&[u8]> = packets[2..].iter().map(Vec::as_slice).collect();
    assert!(audio.len() >= 140, "{} packets", audio.len());

    let wav = render_packets(
        &audio,
        111,
        vec![(
            111,
            siphon_media::codec_for(111, Some(("opus", 48_000, Some(2)))),
        )],
        960,
    );
    assert_eq!(wav.spec.sample_rate, 48_000);
    assert_eq!(wav.frames(), audio.len() * 960);
    let expected = read_s16le(&reference);
    let ours = &wav.channels[0][pre_skip..];
    let n = expected.len().min(ours.len());
    assert!(n >= 3 * 48_000 - 960, "compared {n} samples");
    let snr = snr_db(&expected[..n], &ours[..n]);
    assert!(snr >= 40.0, "opus snr {snr:.1} dB");
    assert!(wav.report.warnings.is_empty(), "{:?}", wav.report.warnings);
    let _ = std::fs::remove_dir_all(&dir);
}
