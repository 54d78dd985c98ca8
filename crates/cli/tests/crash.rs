//! Crash safety: a real `siphon import` killed with SIGKILL in the middle leaves a store that
//! opens, reads back without corruption, and holds at least every packet of the last flush it
//! reported; `siphon reindex` rebuilds the same calls from the segments alone.

mod support {
    pub mod gen;
}

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn siphon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siphon"))
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn calls_json(data: &Path, dialogs: bool) -> Vec<Value> {
    let mut c = siphon();
    c.args(["calls", "--json", "--limit", "0", "--data"])
        .arg(data);
    if dialogs {
        c.arg("--dialogs");
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "calls: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn stored_packets(calls: &[Value]) -> u64 {
    calls
        .iter()
        .map(|c| {
            c["messages"].as_u64().unwrap()
                + c["rtp_packets"].as_u64().unwrap()
                + c["rtcp_packets"].as_u64().unwrap()
        })
        .sum()
}

#[test]
fn sigkill_mid_import_loses_at_most_the_last_flush_interval() {
    let dir = std::env::temp_dir().join(format!("siphon-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cap = dir.join("big.pcap");
    let g = support::gen::generate(&corpus(), &cap, 400, 500_000);
    let data = dir.join("data");

    let mut child = siphon()
        .args(["import", "--verbose", "--flush-count", "5000", "--data"])
        .arg(&data)
        .arg(&cap)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it after a few flushes, while it is writing.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut durable = 0u64;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(n) = line
            .strip_prefix("flushed ")
            .and_then(|r| r.strip_suffix(" packets"))
        {
            durable = n.parse().unwrap();
            if durable >= 60_000 {
                break;
            }
        }
    }
    unsafe_kill(child.id());
    let _ = child.wait();
    assert!(durable >= 60_000, "import ended before it could be killed");
    assert!(durable < g.packets, "import finished before the kill");

    // It opens; every call reads back whole; nothing flushed is missing.
    let calls = calls_json(&data, false);
    let dialogs = calls_json(&data, true);
    let stored = stored_packets(&calls) + stored_packets(&dialogs);
    assert!(stored >= durable, "stored {stored} < flushed {durable}");
    // No more than was read before the kill: the next flush at most.
    assert!(
        stored <= durable + 5_000 + 4096,
        "stored {stored}, flushed {durable}"
    );
    for c in calls.iter().step_by(7) {
        let id = c["call_id"].as_str().unwrap();
        let out = dir.join("c.pcap");
        let o = siphon()
            .args(["pcap", "--data"])
            .arg(&data)
            .arg(id)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let want = c["messages"].as_u64().unwrap() + c["rtp_packets"].as_u64().unwrap();
        let got = String::from_utf8_lossy(&o.stderr);
        assert!(
            got.contains(&format!("wrote {want} packets")),
            "{id}: {got} (want {want})"
        );
    }

    // The index rebuilt from the segments alone has the same calls.
    let st = siphon()
        .args(["reindex", "--data"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success());
    let again = calls_json(&data, false);
    let ids = |v: &[Value]| -> Vec<String> {
        let mut x: Vec<String> = v
            .iter()
            .map(|c| c["call_id"].as_str().unwrap().to_string())
            .collect();
        x.sort();
        x
    };
    assert_eq!(ids(&again), ids(&calls));
    assert!(stored_packets(&again) >= stored_packets(&calls));

    // A later import into the same store works (torn tails were cut).
    let small = corpus().join("basic_twoway_g711a.pcap");
    let st = siphon()
        .args(["import", "--quiet", "--data"])
        .arg(&data)
        .arg(&small)
        .status()
        .unwrap();
    assert!(st.success());
    let _ = std::fs::remove_dir_all(&dir);
}

fn unsafe_kill(pid: u32) {
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn truncated_capture_imports_up_to_the_damage_and_says_where() {
    let dir = std::env::temp_dir().join(format!("siphon-trunc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let full = std::fs::read(corpus().join("basic_twoway_g711a.pcap")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &full[..full.len() - 100]).unwrap();
    let data = dir.join("data");
    let out = siphon()
        .args(["import", "--json", "--data"])
        .arg(&data)
        .arg(&cut)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a damaged file is exit status 2"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packets"], 478, "every frame before the damage");
    let err = v["errors"][0].as_str().unwrap();
    assert!(
        err.contains("cut.pcap") && err.contains("truncated"),
        "{err}"
    );
    let calls = calls_json(&data, false);
    assert_eq!(calls.len(), 1);
    // The cut frame was the last one: the 200 OK to BYE.
    assert_eq!(calls[0]["messages"], 6);
    let garbage = dir.join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture file at all").unwrap();
    let out = siphon()
        .args(["import", "--data"])
        .arg(&data)
        .arg(&garbage)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("garbage.pcap"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
