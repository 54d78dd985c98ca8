//! Importing a capture a second time: `siphon import` skips a file the store already holds
//! (by content, whatever its name), refuses one that grew since, and `--force` imports anyway.

mod support {
    pub mod scratch;
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::scratch::Scratch;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn import(data: &Path, files: &[&Path], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siphon"))
        .args(["import", "--quiet", "--json", "--data"])
        .arg(data)
        .args(extra)
        .args(files)
        .output()
        .unwrap()
}

fn calls(data: &Path) -> usize {
    let out = Command::new(env!("CARGO_BIN_EXE_siphon"))
        .args(["calls", "--json", "--limit", "1000", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().len()
}

fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_capture_imported_before_is_skipped_even_renamed_and_force_imports_it_again() {
    let dir = Scratch::new("reimport", "same");
    let data = dir.join("data");
    let many = corpus().join("many_calls_24.pcap");
    let failed = corpus().join("failed_calls.pcap");
    let out = import(&data, &[&many, &failed], &[]);
    assert!(out.status.success());
    let first = calls(&data);
    assert_eq!(first as u64, summary(&out)["calls"].as_u64().unwrap());
    // The same capture under another name, beside a new one.
    let copy = dir.join("renamed.pcap");
    std::fs::copy(&many, &copy).unwrap();
    let two = corpus().join("basic_twoway_g711a.pcap");
    let out = import(&data, &[&copy, &two], &[]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already imported into this store"), "{err}");
    let s = summary(&out);
    assert_eq!(s["skipped"].as_array().unwrap().len(), 1);
    assert_eq!(s["calls"], 1);
    assert_eq!(calls(&data), first + 1);
    // The same capture twice in one command: imported once.
    let other = dir.join("other.pcap");
    std::fs::copy(corpus().join("hold_unhold_dtmf_callee_bye.pcap"), &other).unwrap();
    let out = import(&data, &[&other, &other], &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(summary(&out)["skipped"].as_array().unwrap().len(), 1);
    assert_eq!(summary(&out)["calls"], 1);
    assert_eq!(calls(&data), first + 2);
    // --force: stored once more.
    let out = import(&data, &[&copy], &["--force"]);
    assert!(out.status.success());
    assert_eq!(summary(&out)["calls"], 24);
    assert_eq!(calls(&data), first + 2 + 24);
}

#[test]
fn a_capture_that_grew_since_its_import_is_refused() {
    let dir = Scratch::new("reimport", "grown");
    let data = dir.join("data");
    let many = corpus().join("many_calls_24.pcap");
    let bytes = std::fs::read(&many).unwrap();
    // What a capture still being written looked like at the first import: cut mid-packet.
    let part = dir.join("live.pcap");
    std::fs::write(&part, &bytes[..bytes.len() / 2 + 7]).unwrap();
    let out = import(&data, &[&part], &[]);
    assert_eq!(out.status.code(), Some(2), "the cut packet is damage");
    let before = calls(&data);
    assert!(before > 0 && before < 24, "{before} calls");
    // The whole capture now, under the same name.
    std::fs::write(&part, &bytes).unwrap();
    let out = import(&data, &[&part], &[]);
    assert_eq!(out.status.code(), Some(1));
    let refused = summary(&out)["refused"].clone();
    assert_eq!(refused.as_array().unwrap().len(), 1);
    assert!(
        refused[0]
            .as_str()
            .unwrap()
            .contains("would store its first calls twice"),
        "{refused}"
    );
    assert_eq!(calls(&data), before);
    let out = import(&data, &[&part], &["--force"]);
    assert!(out.status.success());
    assert_eq!(summary(&out)["calls"], 24);
}
