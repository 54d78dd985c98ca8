//! `siphon config check FILE`: valid files print the effective settings with secrets hidden;
//! invalid ones fail with the file, the place and the key.

use std::path::Path;
use std::process::Command;

fn check(text: &str, name: &str) -> std::process::Output {
    // Tests run in parallel: each check has its own directory, so one test's clean-up never
    // removes the directory another is writing to.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("siphon-config-check-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_siphon"))
        .args(["config", "check"])
        .arg(&p)
        .env_remove("SIPHON_DATA")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
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

/// A self-signed certificate and its key, `NAME.pem` and `NAME.key` in `dir`, by `openssl`.
fn self_signed(dir: &Path, name: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let o = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &key,
            "-out",
            &pem,
        ])
        .output()
        .expect("openssl (Debian package openssl) must be installed");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn hep_tls_files_are_read_and_checked_and_key_contents_never_shown() {
    let dir = std::env::temp_dir().join(format!("siphon-config-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    self_signed(&dir, "a");
    self_signed(&dir, "b");
    let p = |n: &str| dir.join(n).display().to_string();
    let conf = |cert: &str, key: &str| {
        format!(
            "[hep]\ntls_listen = \"127.0.0.1:9061\"\ntls_cert_file = {cert:?}\ntls_key_file = {key:?}\n"
        )
    };
    let good = check(&conf(&p("a.pem"), &p("a.key")), "tls-good.toml");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let cases = [
        // (cert, key, the key named, what the message says)
        (
            p("a.pem"),
            p("b.key"),
            "hep.tls_key_file",
            "does not match the certificate",
        ),
        (
            p("missing.pem"),
            p("a.key"),
            "hep.tls_cert_file",
            "cannot be read",
        ),
        (
            p("a.pem"),
            p("a.pem"),
            "hep.tls_key_file",
            "holds no private key",
        ),
        (
            p("a.key"),
            p("a.key"),
            "hep.tls_cert_file",
            "holds no certificate",
        ),
    ];
    for (cert, key, named, says) in cases {
        let o = check(&conf(&cert, &key), "tls-bad.toml");
        assert!(!o.status.success(), "{cert} {key}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(named) && err.contains(says), "{named}: {err}");
        assert!(!err.contains("-----"), "PEM contents shown: {err}");
    }
    let no_key = check(
        "[hep]\ntls_listen = \"127.0.0.1:9061\"\ntls_cert_file = \"/x.pem\"\n",
        "tls-nokey.toml",
    );
    let err = String::from_utf8_lossy(&no_key.stderr);
    assert!(
        err.contains("hep.tls_key_file") && err.contains("is not set"),
        "{err}"
    );
    let clash = check(
        "[hep]\ntcp_listen = \"0.0.0.0:9060\"\ntls_listen = \"127.0.0.1:9060\"\n",
        "tls-clash.toml",
    );
    let err = String::from_utf8_lossy(&clash.stderr);
    assert!(
        err.contains("hep.tls_listen") && err.contains("clashes with hep.tcp_listen"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
