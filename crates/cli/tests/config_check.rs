//! `siphon config check FILE`: valid files print the effective settings with secrets hidden;
//! invalid ones fail with the file, the place and the key.

use std::path::Path;
use std::process::Command;

fn check(text: &str, name: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("siphon-config-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_siphon"))
        .args(["config", "check"])
        .arg(&p)
        .env_remove("SIPHON_DATA")
        .output()
        .unwrap();
    // The file has served; the directory goes with the last test's file.
    let _ = std::fs::remove_file(&p);
    let _ = std::fs::remove_dir(&dir);
    out
}

#[test]
fn the_shipped_example_is_valid_and_secrets_are_hidden() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/siphon.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let o = check(&format!("{text}\n"), "example.toml");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = check("[http]\nauth_token = \"tok-123\"\n", "secret.toml");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("auth_token"), "{out}");
    assert!(!out.contains("tok-123"), "{out}");
}

#[test]
fn errors_name_the_file_line_and_key() {
    let o = check("[storage]\nflush_cont = 5\n", "typo.toml");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("typo.toml") && err.contains("flush_cont") && err.contains(":2:"),
        "{err}"
    );
    let o = check("[storage]\nsubdirs = \"weekly\"\n", "bad.toml");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("storage.subdirs") && err.contains("weekly"),
        "{err}"
    );
}
