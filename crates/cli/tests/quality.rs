//! Quality reports on real captures: what `siphon quality` and `siphon calls` say about a clean
//! two-way call, a one-way-audio call and an impaired call, checked against the E-model inputs
//! each report states and the capture's ground truth.

mod support {
    pub mod scratch;
}

use std::path::{Path, PathBuf};

use std::process::Command;
use support::scratch::Scratch;

use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn siphon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siphon"))
}

fn json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Imports one capture into a fresh store; returns the store and the call's quality.json.
fn quality_of(name: &str) -> (Scratch, Value) {
    let data = Scratch::new("quality", name).at("data");
    let st = siphon()
        .args(["import", "--quiet", "--data"])
        .arg(&data)
        .arg(corpus().join(name))
        .status()
        .unwrap();
    assert!(st.success());
    let calls = json(siphon().args(["calls", "--json", "--data"]).arg(&data));
    let id = calls[0]["call_id"].as_str().unwrap().to_string();
    let q = json(
        siphon()
            .args(["quality", "--json", "--data"])
            .arg(&data)
            .arg(&id),
    );
    (data, q)
}

/// Recomputes R and MOS from the inputs a direction states (seed 002's formula, G.711 row).
fn check_emodel(d: &Value) {
    let e = &d["emodel"];
    let loss = e["loss_pct"].as_f64().unwrap();
    let (ie, bpl) = (e["ie"].as_f64().unwrap(), e["bpl"].as_f64().unwrap());
    let delay = e["delay_ms"].as_f64().unwrap();
    let h = if delay >= 177.3 { 1.0 } else { 0.0 };
    let id = 0.024 * delay + 0.11 * (delay - 177.3) * h;
    let ie_eff = ie + (95.0 - ie) * loss / (loss + bpl);
    let r = 93.2 - id - ie_eff;
    let mos = if r < 0.0 {
        1.0
    } else if r > 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
    .clamp(1.0, 4.5);
    assert!((e["r_factor"].as_f64().unwrap() - r).abs() < 1e-6, "{e}");
    assert!((e["mos"].as_f64().unwrap() - mos).abs() < 1e-6, "{e}");
}

#[test]
fn clean_two_way_call_is_excellent_with_normal_audio() {
    let (_, q) = quality_of("basic_twoway_g711a.pcap");
    assert_eq!(q["audio_status"], "Normal");
    assert_eq!(q["verdict"], "Excellent");
    assert!(q["degraded_leg"].is_null());
    for dir in ["uac", "uas"] {
        let d = &q["directions"][dir];
        assert_eq!(d["emodel"]["codec"], "PCMA");
        assert_eq!(d["lost"], 0);
        assert_eq!(d["packets"], 236);
        assert!(d["emodel"]["rtt_ms"].is_null(), "no RTCP in this capture");
        check_emodel(d);
    }
    assert!(!q["timeseries"].as_array().unwrap().is_empty());
}

#[test]
fn one_way_audio_is_diagnosed() {
    let (data, q) = quality_of("basic_oneway_g711a.pcap");
    assert_eq!(q["audio_status"], "OWA");
    assert!(q["directions"]["uas"].is_null());
    assert!(!q["directions"]["uac"].is_null());
    let cause = q["diagnostic"]["probable_cause"].as_str().unwrap();
    assert!(!cause.is_empty());
    assert!(!q["diagnostic"]["recommendation"]
        .as_str()
        .unwrap()
        .is_empty());
    // The call summary carries the verdict and it is searchable.
    let bad = json(
        siphon()
            .args(["calls", "--json", "--verdict", "bad", "--data"])
            .arg(&data),
    );
    assert_eq!(bad.as_array().unwrap().len(), 1);
    let good = json(
        siphon()
            .args(["calls", "--json", "--verdict", "Excellent", "--data"])
            .arg(&data),
    );
    assert!(good.as_array().unwrap().is_empty());
}

#[test]
fn impaired_call_loss_is_the_ground_truth_and_lowers_mos() {
    let (data, q) = quality_of("impaired_twoway.pcap");
    let truth: Value = serde_json::from_slice(
        &std::fs::read(corpus().join("impaired_twoway.ground_truth.json")).unwrap(),
    )
    .unwrap();
    let t = &truth["streams"].as_array().unwrap()[0];
    let d = &q["directions"]["uac"];
    assert_eq!(d["lost"], t["lost"]);
    let expected = t["last_seq"].as_u64().unwrap() - t["first_seq"].as_u64().unwrap() + 1;
    let pct = t["lost"].as_f64().unwrap() * 100.0 / expected as f64;
    assert!((d["loss_pct"].as_f64().unwrap() - pct).abs() < 1e-9);
    check_emodel(d);
    check_emodel(&q["directions"]["uas"]);
    assert!(d["emodel"]["mos"].as_f64().unwrap() < 4.41);
    // Loss above 1 % caps the verdict at Fair.
    assert_eq!(q["verdict"], "Fair");
    let calls = json(
        siphon()
            .args(["calls", "--json", "--max-mos", "4.3", "--data"])
            .arg(&data),
    );
    assert_eq!(calls.as_array().unwrap().len(), 1);
    let none = json(
        siphon()
            .args(["calls", "--json", "--min-mos", "4.4", "--data"])
            .arg(&data),
    );
    assert!(none.as_array().unwrap().is_empty());
}

#[test]
fn unanswered_calls_are_not_graded() {
    let data = Scratch::new("quality", "failed").at("data");
    let st = siphon()
        .args(["import", "--quiet", "--data"])
        .arg(&data)
        .arg(corpus().join("failed_calls.pcap"))
        .status()
        .unwrap();
    assert!(st.success());
    let calls = json(siphon().args(["calls", "--json", "--data"]).arg(&data));
    for c in calls.as_array().unwrap() {
        assert!(c["mos"].is_null() && c["verdict"].is_null(), "{c}");
    }
}
