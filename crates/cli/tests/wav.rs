//! `siphon wav` on real captures: channels, silence on the silent side of a one-way call,
//! time range cuts, and clear errors for bad options.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn siphon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siphon"))
}

fn store_of(name: &str, test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("siphon-wav-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
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
