//! `siphon wav` on real captures: channels, silence on the silent side of a one-way call,
//! time range cuts, and clear errors for bad options.

mod support {
    pub mod scratch;
}

use std::path::{Path, PathBuf};

use std::process::Command;
use support::scratch::Scratch;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn siphon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siphon"))
}

fn store_of(name: &str, test: &str) -> Scratch {
    let data = Scratch::new("wav", test).at("data");
    let st = siphon()
        .args(["import", "--quiet", "--data"])
        .arg(&data)
        .arg(corpus().join(name))
        .status()
        .unwrap();
    assert!(st.success());
    data
}

/// (channels, rate, samples per channel) of a PCM WAV file, interleaved samples.
fn read_wav(p: &Path) -> (u16, u32, Vec<i16>) {
    let b = std::fs::read(p).unwrap();
    assert_eq!(&b[0..4], b"RIFF");
    assert_eq!(&b[8..12], b"WAVE");
    let mut off = 12;
    let (mut ch, mut rate, mut samples) = (0, 0, Vec::new());
    while off + 8 <= b.len() {
        let id = &b[off..off + 4];
        let len = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
        let body = &b[off + 8..(off + 8 + len).min(b.len())];
        if id == b"fmt " {
            ch = u16::from_le_bytes([body[2], body[3]]);
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        } else if id == b"data" {
            samples = body
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
        }
        off += 8 + len + (len & 1);
    }
    (ch, rate, samples)
}

fn wav(data: &Path, id: &str, extra: &[&str], out: &Path) -> std::process::Output {
    siphon()
        .args(["wav", "--data"])
        .arg(data)
        .arg(id)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn two_way_call_renders_both_channels() {
    let data = store_of("basic_twoway_g711a.pcap", "two-way");
    let out = data.with_file_name("call.wav");
    let o = wav(&data, "1-5790@127.0.0.1", &[], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ch, rate, s) = read_wav(&out);
    assert_eq!((ch, rate), (2, 8000));
    let left = s.iter().step_by(2).filter(|v| **v != 0).count();
    let right = s.iter().skip(1).step_by(2).filter(|v| **v != 0).count();
    // 236 packets of 240 samples each way; A-law never decodes to exactly 0.
    assert_eq!(left, 236 * 240);
    assert_eq!(right, 236 * 240);
}

#[test]
fn one_way_call_has_a_silent_right_channel() {
    let data = store_of("basic_oneway_g711a.pcap", "one-way");
    let out = data.with_file_name("call.wav");
    let o = wav(&data, "1-5572@127.0.0.1", &[], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ch, _, s) = read_wav(&out);
    assert_eq!(ch, 2);
    assert!(s.iter().skip(1).step_by(2).all(|v| *v == 0));
    assert!(s.iter().step_by(2).any(|v| *v != 0));
    // The DTMF digit is reported, not rendered.
    assert!(String::from_utf8_lossy(&o.stderr).contains("DTMF 1"));
}

#[test]
fn range_and_mono_options_cut_and_mix() {
    let data = store_of("basic_twoway_g711a.pcap", "range");
    let out = data.with_file_name("cut.wav");
    let o = wav(
        &data,
        "1-5790@127.0.0.1",
        &["--start", "2", "--end", "4", "--mono"],
        &out,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ch, rate, s) = read_wav(&out);
    assert_eq!((ch, rate), (1, 8000));
    assert_eq!(s.len(), 16_000, "2 s at 8 kHz");
    let o = wav(&data, "1-5790@127.0.0.1", &["--rate", "16000"], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_wav(&out).1, 16000);
    let o = wav(&data, "1-5790@127.0.0.1", &["--rate", "5"], &out);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--rate"));
    let o = wav(&data, "no-such-call", &[], &out);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no call"));
}

/// Writes a capture of one call whose caller sends `payloads` (20 ms each, RTP timestamp step
/// `ts_step`) with payload type `pt` announced as `rtpmap`; the callee sends nothing.
fn call_capture(path: &Path, pt: u8, rtpmap: &str, ts_step: u32, payloads: &[Vec<u8>]) -> i64 {
    use siphon_wire::link::LinkType;
    use siphon_wire::write::{synth_udp_frame, PcapWriter};
    let a_sig: std::net::SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let b_sig: std::net::SocketAddr = "10.0.0.2:5060".parse().unwrap();
    let a_rtp: std::net::SocketAddr = "10.0.0.1:30000".parse().unwrap();
    let b_rtp: std::net::SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let sdp = |ip: &str, port: u16| {
        format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\n")
    };
    let msg = |first: &str, from_tag: &str, to_tag: &str, cseq: &str, body: &str| {
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{first}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx{cseq}\r\nFrom: <sip:alice@a>;tag={from_tag}\r\nTo: <sip:bob@b>{to_tag}\r\nCall-ID: codec-call@test\r\nCSeq: {cseq}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let t0 = 1_800_000_000_000_000i64;
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap(), LinkType::ETHERNET).unwrap();
    let mut put = |t: i64, src, dst, p: &[u8]| {
        let f = synth_udp_frame(src, dst, p);
        w.write_frame(t, &f, f.len() as u32).unwrap();
    };
    put(
        t0,
        a_sig,
        b_sig,
        msg(
            "INVITE sip:bob@b SIP/2.0",
            "a1",
            "",
            "1 INVITE",
            &sdp("10.0.0.1", 30000),
        )
        .as_bytes(),
    );
    put(
        t0 + 10_000,
        b_sig,
        a_sig,
        msg(
            "SIP/2.0 200 OK",
            "a1",
            ";tag=b1",
            "1 INVITE",
            &sdp("10.0.0.2", 40000),
        )
        .as_bytes(),
    );
    put(
        t0 + 20_000,
        a_sig,
        b_sig,
        msg("ACK sip:bob@b SIP/2.0", "a1", ";tag=b1", "1 ACK", "").as_bytes(),
    );
    let first_rtp = t0 + 100_000;
    for (i, p) in payloads.iter().enumerate() {
        let mut pkt = vec![0x80, pt];
        pkt.extend_from_slice(&(i as u16).to_be_bytes());
        pkt.extend_from_slice(&(i as u32 * ts_step).to_be_bytes());
        pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        pkt.extend_from_slice(p);
        put(first_rtp + i as i64 * 20_000, a_rtp, b_rtp, &pkt);
    }
    let end = first_rtp + payloads.len() as i64 * 20_000 + 50_000;
    put(
        end,
        a_sig,
        b_sig,
        msg("BYE sip:bob@b SIP/2.0", "a1", ";tag=b1", "2 BYE", "").as_bytes(),
    );
    put(
        end + 5_000,
        b_sig,
        a_sig,
        msg("SIP/2.0 200 OK", "a1", ";tag=b1", "2 BYE", "").as_bytes(),
    );
    first_rtp - t0
}

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Signal-to-noise ratio (dB) of `got` against `want`.
fn snr_db(want: &[i16], got: &[i16]) -> f64 {
    let (mut s, mut n) = (0f64, 0f64);
    for (a, b) in want.iter().zip(got) {
        s += f64::from(*a).powi(2);
        n += (f64::from(*a) - f64::from(*b)).powi(2);
    }
    10.0 * (s / n.max(1e-9)).log10()
}

/// G.722 and L16 calls written as captures, imported and rendered by `siphon wav`, equal the
/// reference decoders (ffmpeg for G.722, the PCM itself for L16): SNR ≥ 40 dB.
#[test]
fn g722_and_l16_calls_from_real_encoders_render_like_the_reference() {
    let dir = Scratch::new("wav", "codecs");
    // G.722: 2 s of a 440 Hz tone encoded by ffmpeg, 160 bytes per 20 ms, RTP clock 8000.
    let g722 = dir.join("tone.g722");
    run(Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=2",
            "-ar",
            "16000",
            "-ac",
            "1",
            "-c:a",
            "g722",
            "-f",
            "g722",
        ])
        .arg(&g722));
    let reference = dir.join("tone.raw");
    run(Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "g722", "-i"])
        .arg(&g722)
        .args(["-f", "s16le", "-ar", "16000", "-ac", "1"])
        .arg(&reference));
    let want: Vec<i16> = std::fs::read(&reference)
        .unwrap()
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let bytes = std::fs::read(&g722).unwrap();
    let payloads: Vec<Vec<u8>> = bytes.chunks_exact(160).map(|c| c.to_vec()).collect();
    let cap = dir.join("g722.pcap");
    let offset_us = call_capture(&cap, 9, "G722/8000", 160, &payloads);
    let data = dir.join("data");
    run(siphon()
        .args(["import", "--quiet", "--data"])
        .arg(&data)
        .arg(&cap));
    let out = dir.join("g722.wav");
    run(siphon()
        .args(["wav", "--data"])
        .arg(&data)
        .args(["codec-call@test", "-o"])
        .arg(&out));
    let (ch, rate, s) = read_wav(&out);
    assert_eq!((ch, rate), (2, 16000));
    let left: Vec<i16> = s.iter().step_by(2).copied().collect();
    let skip = (offset_us * 16 / 1000) as usize;
    let n = payloads.len() * 320;
    let snr = snr_db(&want[..n], &left[skip..skip + n]);
    assert!(snr >= 40.0, "G.722 SNR {snr:.1} dB");
    assert!(
        s.iter().skip(1).step_by(2).all(|v| *v == 0),
        "callee sent nothing"
    );

    // L16 at 16 kHz mono: network byte order PCM; rendered samples equal it exactly.
    let pcm: Vec<i16> = (0..32_000)
        .map(|i| ((i as f64 * 0.07).sin() * 12_000.0) as i16)
        .collect();
    let payloads: Vec<Vec<u8>> = pcm
        .chunks_exact(320)
        .map(|c| c.iter().flat_map(|v| v.to_be_bytes()).collect())
        .collect();
    let cap = dir.join("l16.pcap");
    let offset_us = call_capture(&cap, 96, "L16/16000/1", 320, &payloads);
    let data = dir.join("data-l16");
    run(siphon()
        .args(["import", "--quiet", "--data"])
        .arg(&data)
        .arg(&cap));
    let out = dir.join("l16.wav");
    run(siphon()
        .args(["wav", "--mono", "--data"])
        .arg(&data)
        .args(["codec-call@test", "-o"])
        .arg(&out));
    let (ch, rate, s) = read_wav(&out);
    assert_eq!((ch, rate), (1, 16000));
    let skip = (offset_us * 16 / 1000) as usize;
    assert_eq!(&s[skip..skip + pcm.len()], &pcm[..]);
    let _ = std::fs::remove_dir_all(&dir);
}
