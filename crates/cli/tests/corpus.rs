//! End-to-end correctness on the real captures of `../shared/corpus`: each capture is imported
//! with the real `siphon` binary into its own store, and the store must give back what tshark
//! decoded from the same capture (`X.expected.json`): the same Call-IDs, per call the same SIP
//! messages (µs time, src, dst, transport, method or status, CSeq) in capture order, the same
//! RTP streams with the same packet counts; and each call's exported pcap, read back by tshark,
//! holds that call's SIP messages and RTP packets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn siphon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siphon"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("siphon-corpus-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn captures() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in [corpus(), corpus().join("external")] {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".pcap") || name.ends_with(".pcapng") {
                v.push(p);
            }
        }
    }
    v.sort();
    assert!(v.len() >= 14, "corpus incomplete: {v:?}");
    v
}

fn expected(cap: &Path) -> Value {
    let s = cap.to_string_lossy();
    let base = s.trim_end_matches(".pcapng").trim_end_matches(".pcap");
    let p = format!("{base}.expected.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))).unwrap()
}

/// µs since the epoch from tshark's `time_epoch_str` ("1795335337.116552000").
fn epoch_us(s: &str) -> i64 {
    let (a, b) = s.split_once('.').unwrap_or((s, "0"));
    let frac: String = b.chars().chain(std::iter::repeat('0')).take(6).collect();
    a.parse::<i64>().unwrap() * 1_000_000 + frac.parse::<i64>().unwrap()
}

/// µs since the epoch from our RFC 3339 `ts`.
fn rfc3339_us(s: &str) -> i64 {
    let out = s.trim_end_matches('Z');
    let (date, time) = out.split_once('T').unwrap();
    let mut d = date.split('-').map(|x| x.parse::<i64>().unwrap());
    let (y, m, dd) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
    let (hms, frac) = time.split_once('.').unwrap();
    let mut t = hms.split(':').map(|x| x.parse::<i64>().unwrap());
    let (h, mi, se) = (t.next().unwrap(), t.next().unwrap(), t.next().unwrap());
    // days from civil
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + dd - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000) + frac.parse::<i64>().unwrap()
}

type Msg = (i64, String, String, String, String, String);

fn expected_messages(exp: &Value) -> BTreeMap<String, Vec<Msg>> {
    let mut m: BTreeMap<String, Vec<Msg>> = BTreeMap::new();
    for x in exp["sip"]["messages"].as_array().unwrap() {
        let what = match x["method"].as_str() {
            Some(meth) => meth.to_string(),
            None => x["status"].as_u64().unwrap().to_string(),
        };
        m.entry(x["call_id"].as_str().unwrap().to_string())
            .or_default()
            .push((
                epoch_us(x["time_epoch_str"].as_str().unwrap()),
                x["src"].as_str().unwrap().to_string(),
                x["dst"].as_str().unwrap().to_string(),
                x["transport"].as_str().unwrap().to_string(),
                what,
                x["cseq"].as_str().unwrap().to_string(),
            ));
    }
    m
}

fn our_messages(flow: &Value) -> Vec<Msg> {
    flow.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let what = match x["method"].as_str() {
                Some(meth) => meth.to_string(),
                None => x["status"].as_u64().unwrap().to_string(),
            };
            (
                rfc3339_us(x["ts"].as_str().unwrap()),
                x["src"].as_str().unwrap().to_string(),
                x["dst"].as_str().unwrap().to_string(),
                x["transport"].as_str().unwrap().to_string(),
                what,
                x["cseq"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark is needed for the corpus tests (apt-get install tshark)");
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_corpus_capture_round_trips_against_tshark() {
    let mut checked = 0;
    for cap in captures() {
        let name = cap.file_name().unwrap().to_string_lossy().into_owned();
        let exp = expected(&cap);
        let dir = tmpdir(&name);
        let data = dir.join("data");
        let st = siphon()
            .args(["import", "--quiet", "--data"])
            .arg(&data)
            .arg(&cap)
            .status()
            .unwrap();
        assert!(st.success(), "{name}: import failed");

        // Same Call-IDs (calls and non-call dialogs together).
        let mut ours = BTreeMap::new();
        for flag in [None, Some("--dialogs")] {
            let mut c = siphon();
            c.args(["calls", "--json", "--limit", "0", "--data"])
                .arg(&data);
            if let Some(f) = flag {
                c.arg(f);
            }
            for call in run_json(&mut c).as_array().unwrap() {
                ours.insert(call["call_id"].as_str().unwrap().to_string(), call.clone());
            }
        }
        let want_msgs = expected_messages(&exp);
        let want_ids: BTreeSet<String> = want_msgs.keys().cloned().collect();
        let got_ids: BTreeSet<String> = ours.keys().cloned().collect();
        assert_eq!(got_ids, want_ids, "{name}: Call-IDs");

        // Per call, the same SIP messages in capture order.
        for (id, want) in &want_msgs {
            let flow = run_json(
                siphon()
                    .args(["flow", "--json", "--data"])
                    .arg(&data)
                    .arg(id),
            );
            assert_eq!(&our_messages(&flow), want, "{name}: messages of {id}");
        }

        // The same RTP streams with the same packet counts. Streams to or from an address that
        // a captured SDP announced belong to calls; the others (e.g. the far leg of a media
        // relay whose signalling is not in the capture) are only found heuristically.
        let mut sdp_addrs = BTreeSet::new();
        for m in exp["sip"]["messages"].as_array().unwrap() {
            let Some(sdp) = m.get("sdp").filter(|v| v.is_object()) else {
                continue;
            };
            let ip = sdp["connection"][0]
                .as_str()
                .unwrap_or("")
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string();
            for media in sdp["media"].as_array().unwrap() {
                let port = media.as_str().unwrap().split(' ').nth(1).unwrap();
                let addr = if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                };
                sdp_addrs.insert(addr);
            }
        }
        let mut want_streams = BTreeSet::new();
        let mut orphan_packets = 0;
        for s in exp["rtp"]["streams"].as_array().unwrap() {
            let (src, dst) = (s["src"].as_str().unwrap(), s["dst"].as_str().unwrap());
            if !sdp_addrs.contains(src) && !sdp_addrs.contains(dst) {
                orphan_packets += s["packets"].as_u64().unwrap();
                continue;
            }
            want_streams.insert((
                src.to_string(),
                dst.to_string(),
                s["ssrc"].as_str().unwrap().to_string(),
                s["packets"].as_u64().unwrap(),
            ));
        }
        if orphan_packets > 0 {
            let h = dir.join("heuristic");
            let summary = run_json(
                siphon()
                    .args(["import", "--quiet", "--json", "--heuristic-rtp", "--data"])
                    .arg(&h)
                    .arg(&cap),
            );
            assert_eq!(
                summary["orphan_rtp_packets"].as_u64().unwrap(),
                orphan_packets,
                "{name}: RTP on ports no SDP announced"
            );
        }
        // Stream figures equal tshark's: jitter mean/max and max delta within 0.01 ms; lost
        // equal where there are no duplicates (tshark's Lost counts a duplicate as a negative
        // loss; ours follows RFC 3550, checked against ground truth in its own test).
        for s in exp["rtp"]["streams"].as_array().unwrap() {
            let key = (
                s["src"].as_str().unwrap(),
                s["dst"].as_str().unwrap(),
                s["ssrc"].as_str().unwrap(),
            );
            let Some(o) = ours
                .values()
                .flat_map(|c| c["streams"].as_array().unwrap().iter())
                .find(|o| {
                    (
                        o["src"].as_str().unwrap(),
                        o["dst"].as_str().unwrap(),
                        o["ssrc"].as_str().unwrap(),
                    ) == key
                })
            else {
                continue;
            };
            for (a, b) in [
                ("jitter_mean_ms", "mean_jitter_ms"),
                ("jitter_max_ms", "max_jitter_ms"),
                ("max_delta_ms", "max_delta_ms"),
            ] {
                let (x, y) = (o[a].as_f64().unwrap(), s[b].as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 0.0105,
                    "{name} {key:?}: {a} {x} vs tshark {y}"
                );
            }
            assert_eq!(
                o["payload_types"], s["payload_types"],
                "{name} {key:?}: payload types"
            );
            if o["duplicates"].as_u64().unwrap() == 0 {
                assert_eq!(
                    o["lost"].as_i64().unwrap(),
                    s["lost"].as_i64().unwrap().max(0),
                    "{name} {key:?}: lost"
                );
            }
        }

        let mut got_streams = BTreeSet::new();
        for c in ours.values() {
            for s in c["streams"].as_array().unwrap() {
                got_streams.insert((
                    s["src"].as_str().unwrap().to_string(),
                    s["dst"].as_str().unwrap().to_string(),
                    s["ssrc"].as_str().unwrap().to_string(),
                    s["packets"].as_u64().unwrap(),
                ));
            }
        }
        assert_eq!(got_streams, want_streams, "{name}: RTP streams");

        // Each call's pcap, read back by tshark, holds its SIP messages and RTP packets.
        for (id, want) in &want_msgs {
            let out = dir.join("call.pcap");
            let st = siphon()
                .args(["pcap", "--data"])
                .arg(&data)
                .arg(id)
                .arg("-o")
                .arg(&out)
                .status()
                .unwrap();
            assert!(st.success(), "{name}: pcap export of {id}");
            let o = out.to_str().unwrap();
            let sip = tshark(&[
                "-n",
                "-r",
                o,
                "-Y",
                "sip",
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
                "-e",
                "sip.Call-ID",
                "-e",
                "sip.CSeq",
            ]);
            let mut got: Vec<(i64, String, String)> = Vec::new();
            for line in sip.lines() {
                let f: Vec<&str> = line.split('\t').collect();
                got.push((epoch_us(f[0]), f[1].to_string(), f[2].to_string()));
            }
            let want_sip: Vec<(i64, String, String)> = want
                .iter()
                .map(|m| (m.0, id.clone(), m.5.clone()))
                .collect();
            assert_eq!(got, want_sip, "{name}: SIP in the pcap of {id}");
            let call = &ours[id];
            let want_rtp: u64 = call["streams"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["packets"].as_u64().unwrap())
                .sum();
            let rtp = tshark(&[
                "-n",
                "-r",
                o,
                "-o",
                "rtp.heuristic_rtp:TRUE",
                "-Y",
                "rtp",
                "-T",
                "fields",
                "-e",
                "rtp.ssrc",
            ]);
            assert_eq!(
                rtp.lines().count() as u64,
                want_rtp,
                "{name}: RTP in the pcap of {id}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
        checked += 1;
    }
    assert!(checked >= 14);
}

#[test]
fn impaired_capture_matches_its_ground_truth_exactly() {
    let cap = corpus().join("impaired_twoway.pcap");
    let truth: Value = serde_json::from_slice(
        &std::fs::read(corpus().join("impaired_twoway.ground_truth.json")).unwrap(),
    )
    .unwrap();
    let dir = tmpdir("impaired-truth");
    let data = dir.join("data");
    assert!(siphon()
        .args(["import", "--quiet", "--data"])
        .arg(&data)
        .arg(&cap)
        .status()
        .unwrap()
        .success());
    let calls = run_json(siphon().args(["calls", "--json", "--data"]).arg(&data));
    let streams: Vec<&Value> = calls
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["streams"].as_array().unwrap().iter())
        .collect();
    for t in truth["streams"].as_array().unwrap() {
        let s = streams
            .iter()
            .find(|s| s["ssrc"] == t["ssrc"] && s["src"] == t["src"] && s["dst"] == t["dst"])
            .unwrap_or_else(|| panic!("stream {} missing", t["ssrc"]));
        assert_eq!(
            s["packets"], t["captured_packets"],
            "packets of {}",
            t["ssrc"]
        );
        assert_eq!(s["lost"], t["lost"], "lost of {}", t["ssrc"]);
        assert_eq!(
            s["duplicates"], t["duplicated"],
            "duplicates of {}",
            t["ssrc"]
        );
        assert_eq!(s["reordered"], t["reordered"], "reordered of {}", t["ssrc"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
