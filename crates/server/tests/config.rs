//! `siphon serve`'s configuration through its public API: the shipped example file, the
//! reference in docs/config.md, files with mistakes, the environment, and secrets.

use std::path::{Path, PathBuf};

use siphon_server::config::{keys, Config, ConfigError};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example_path() -> PathBuf {
    repo().join("etc/siphon.toml")
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A file in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "siphon-config-test-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn parse_error(r: Result<Config, ConfigError>) -> (PathBuf, usize, usize, String) {
    match r {
        Err(ConfigError::Parse {
            path,
            line,
            column,
            message,
        }) => (path, line, column, message),
        other => panic!("expected a Parse error, got {other:?}"),
    }
}

#[test]
fn runs_with_no_file_and_no_environment() {
    let c = Config::load_with_env(None, no_env()).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.storage.data, PathBuf::from("./data"));
    assert_eq!(c.http.listen, "127.0.0.1:3001");
    assert_eq!(c.hep.udp_listen.as_deref(), Some("0.0.0.0:9060"));
    assert_eq!(c.capture.interface, None);
    // The process environment of the test run has no SIPHON_<SECTION>_ variables.
    assert_eq!(Config::load(None).unwrap(), Config::default());
}

#[test]
fn example_file_parses_to_the_defaults_it_shows() {
    let c = Config::load_with_env(Some(&example_path()), no_env()).unwrap();
    assert_eq!(c, Config::default());
}

/// The example file with its commented-out `# key = value` examples switched on.
fn example_with_examples_enabled() -> String {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let all = keys();
    let mut section = String::new();
    let mut out = String::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
        }
        let enabled = line.strip_prefix("# ").filter(|rest| {
            rest.split_once(" = ")
                .is_some_and(|(k, _)| all.iter().any(|(s, n, _)| *s == section && *n == k))
        });
        out.push_str(enabled.unwrap_or(line));
        out.push('\n');
    }
    out
}

#[test]
fn example_file_with_its_examples_enabled_equals_what_it_says() {
    let f = TempFile::new("example-enabled", &example_with_examples_enabled());
    let c = Config::load_with_env(Some(&f.0), no_env()).unwrap();
    let mut want = Config::default();
    want.node.id = "sbc-fra-1".into();
    want.storage.retention_days = Some(30);
    want.storage.retention_max_bytes = Some(500_000_000_000);
    want.hep.auth_key = Some("replace-with-a-long-random-key".into());
    want.hep.tls_listen = Some("0.0.0.0:9061".into());
    want.hep.tls_cert_file = Some("/etc/siphon/hep-cert.pem".into());
    want.hep.tls_key_file = Some("/etc/siphon/hep-key.pem".into());
    want.hep.tls_client_ca_file = Some("/etc/siphon/agents-ca.pem".into());
    want.capture.interface = Some("eth0".into());
    want.capture.bpf = Some("udp and (port 5060 or portrange 10000-20000)".into());
    want.http.auth_token = Some("replace-with-a-long-random-token".into());
    assert_eq!(c, want);
    assert_eq!(
        c.bpf_filter(),
        "udp and (port 5060 or portrange 10000-20000)"
    );
}

#[test]
fn example_file_shows_every_key_with_a_comment() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (section, key, _) in keys() {
        let start = lines
            .iter()
            .position(|l| *l == format!("[{section}]"))
            .unwrap_or_else(|| panic!("no [{section}] in etc/siphon.toml"));
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.starts_with('['))
            .map_or(lines.len(), |e| start + 1 + e);
        let at = lines[start..end]
            .iter()
            .position(|l| {
                l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} = "))
            })
            .unwrap_or_else(|| panic!("{section}.{key} missing from etc/siphon.toml"));
        let above = lines[start + at - 1];
        assert!(
            above.starts_with('#') || lines[start + at].starts_with('#'),
            "{section}.{key} has no comment"
        );
    }
}

#[test]
fn reference_documents_every_key_with_its_environment_variable() {
    let doc = std::fs::read_to_string(repo().join("docs/config.md")).unwrap();
    for (section, key, var) in keys() {
        let heading = format!("## `[{section}]`");
        let start = doc
            .find(&heading)
            .unwrap_or_else(|| panic!("docs/config.md has no {heading}"));
        let body = &doc[start + heading.len()..];
        let body = &body[..body.find("\n## ").unwrap_or(body.len())];
        let row = body
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("docs/config.md: no row for {section}.{key}"));
        assert!(
            row.contains(&format!("`{var}`")),
            "{section}.{key}: {var} not in {row}"
        );
        assert_eq!(
            row.matches(" | ").count(),
            4,
            "{section}.{key}: five columns: {row}"
        );
    }
    for part in [
        "## Precedence",
        "defaults",
        "environment",
        "--http-listen",
        "## Example",
    ] {
        assert!(doc.contains(part), "docs/config.md lacks {part}");
    }
}

#[test]
fn reference_example_parses_and_validates() {
    let doc = std::fs::read_to_string(repo().join("docs/config.md")).unwrap();
    let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
    let text = &doc[start..start + doc[start..].find("```").unwrap()];
    let f = TempFile::new("doc-example", text);
    let c = Config::load_with_env(
        Some(&f.0),
        env(&[
            ("SIPHON_HEP_AUTH_KEY", "k"),
            ("SIPHON_HTTP_AUTH_TOKEN", "t0ken"),
        ]),
    )
    .unwrap();
    assert_eq!(c.storage.retention_max_bytes, Some(500_000_000_000));
    assert_eq!(c.hep.tcp_listen, None);
    assert_eq!(c.capture.interface.as_deref(), Some("eth1"));
}

#[test]
fn every_toml_example_of_the_reference_parses_and_validates() {
    let doc = std::fs::read_to_string(repo().join("docs/config.md")).unwrap();
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .collect();
    assert!(blocks.len() >= 2, "{} examples", blocks.len());
    for (i, text) in blocks.iter().enumerate() {
        let f = TempFile::new(&format!("doc-example-{i}"), text);
        if let Err(e) = Config::load_with_env(Some(&f.0), no_env()) {
            panic!("example {i} of docs/config.md: {e}\n{text}");
        }
    }
    // The TLS example is among them.
    assert!(blocks
        .iter()
        .any(|b| b.contains("tls_listen = \"0.0.0.0:9061\"")));
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let path = std::env::temp_dir().join("siphon-config-test-no-such-file.toml");
    let e = Config::load_with_env(Some(&path), no_env()).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("siphon-config-test-no-such-file.toml"),
        "{e}"
    );
}

#[test]
fn unknown_key_names_the_key_and_the_line() {
    let f = TempFile::new(
        "unknown-key",
        "[storage]\ndata = \"/srv\"\nflush_cont = 10\n",
    );
    let (path, line, column, message) = parse_error(Config::load_with_env(Some(&f.0), no_env()));
    assert_eq!(path, f.0);
    assert_eq!((line, column), (3, 1));
    assert!(message.contains("unknown field `flush_cont`"), "{message}");
    assert!(
        message.contains("`flush_count`"),
        "allowed keys listed: {message}"
    );
    let shown = Config::load_with_env(Some(&f.0), no_env())
        .unwrap_err()
        .to_string();
    assert!(
        shown.starts_with(&format!("{}:3:1: ", f.0.display())),
        "{shown}"
    );
}

#[test]
fn unknown_section_names_the_section_and_the_line() {
    let f = TempFile::new(
        "unknown-section",
        "[node]\nid = \"a\"\n\n[sipflow]\nx = 1\n",
    );
    let (_, line, _, message) = parse_error(Config::load_with_env(Some(&f.0), no_env()));
    assert_eq!(line, 4);
    assert!(message.contains("unknown field `sipflow`"), "{message}");
}

#[test]
fn wrong_type_gives_line_and_column_and_the_key() {
    let f = TempFile::new(
        "wrong-type",
        "# comment\n[capture]\nsip_ports = [5060, \"5080\"]\n",
    );
    let (_, line, column, message) = parse_error(Config::load_with_env(Some(&f.0), no_env()));
    assert_eq!((line, column), (3, 20));
    assert!(message.contains("capture.sip_ports"), "{message}");
    let f = TempFile::new("wrong-type-2", "[http]\nlisten = 3001\n");
    let (_, line, column, message) = parse_error(Config::load_with_env(Some(&f.0), no_env()));
    assert_eq!((line, column), (2, 10));
    assert!(
        message.contains("http.listen") && message.contains("string"),
        "{message}"
    );
}

#[test]
fn invalid_toml_gives_line_and_column() {
    let f = TempFile::new("bad-toml", "[hep]\nlegacy = tru\n");
    let (_, line, column, _) = parse_error(Config::load_with_env(Some(&f.0), no_env()));
    assert_eq!((line, column), (2, 10));
}

#[test]
fn invalid_value_in_the_file_names_the_key_and_what_is_allowed() {
    let f = TempFile::new("bad-value", "[storage]\nsubdirs = \"weekly\"\n");
    let e = Config::load_with_env(Some(&f.0), no_env()).unwrap_err();
    match &e {
        ConfigError::Invalid { key, message } => {
            assert_eq!(key, "storage.subdirs");
            assert!(
                message.contains("\"weekly\"") && message.contains("hourly"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let f = TempFile::new(
        "bad-range",
        "[capture]\nrtp_port_min = 40000\nrtp_port_max = 30000\n",
    );
    let e = Config::load_with_env(Some(&f.0), no_env()).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Invalid { key, .. } if key == "capture.rtp_port_min"),
        "{e:?}"
    );
}

#[test]
fn environment_beats_the_file_and_lists_parse() {
    let f = TempFile::new(
        "env-over-file",
        "[http]\nlisten = \"127.0.0.1:4000\"\n[capture]\nsip_ports = [5060]\n[storage]\nflush_count = 10\n",
    );
    let c = Config::load_with_env(
        Some(&f.0),
        env(&[
            ("SIPHON_HTTP_LISTEN", "0.0.0.0:4001"),
            ("SIPHON_CAPTURE_SIP_PORTS", "5062,5064"),
            ("SIPHON_HEP_AUTH_KEY", "abc"),
        ]),
    )
    .unwrap();
    assert_eq!(c.http.listen, "0.0.0.0:4001");
    assert_eq!(c.capture.sip_ports, vec![5062, 5064]);
    assert_eq!(
        c.storage.flush_count, 10,
        "keys the environment does not set keep the file's value"
    );
    assert_eq!(c.hep.auth_key.as_deref(), Some("abc"));
}

#[test]
fn bad_environment_value_names_the_variable() {
    let e = Config::load_with_env(None, env(&[("SIPHON_CALLS_PENDING_TIMEOUT_SECS", "5m")]))
        .unwrap_err();
    match &e {
        ConfigError::Env { var, message } => {
            assert_eq!(var, "SIPHON_CALLS_PENDING_TIMEOUT_SECS");
            assert!(message.contains("whole number"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn secrets_never_show_in_debug_check_output_or_errors() {
    let f = TempFile::new(
        "secrets",
        "[hep]\nauth_key = \"hep-s3cr3t\"\n[http]\nauth_token = \"http-s3cr3t\"\n",
    );
    let c = Config::load_with_env(Some(&f.0), no_env()).unwrap();
    assert_eq!(c.hep.auth_key.as_deref(), Some("hep-s3cr3t"));
    assert_eq!(c.http.auth_token.as_deref(), Some("http-s3cr3t"));
    let shown = format!("{c:?}\n{c:#?}\n{}", c.to_toml_redacted());
    assert!(
        !shown.contains("hep-s3cr3t") && !shown.contains("http-s3cr3t"),
        "{shown}"
    );
    assert!(c.to_toml_redacted().contains("auth_token = \"<set>\""));
    // A token the API cannot use is refused without echoing it.
    let e =
        Config::load_with_env(None, env(&[("SIPHON_HTTP_AUTH_TOKEN", "bad s3cr3t")])).unwrap_err();
    assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e}");
}

#[test]
fn check_output_is_a_loadable_file() {
    let mut c = Config::default();
    c.storage.retention_days = Some(7);
    c.capture.interface = Some("any".into());
    let f = TempFile::new("check-output", &c.to_toml_redacted());
    assert_eq!(Config::load_with_env(Some(&f.0), no_env()).unwrap(), c);
}

#[test]
fn mappings_follow_the_file() {
    let f = TempFile::new(
        "mappings",
        "[storage]\nsubdirs = \"hourly\"\nfsync = \"never\"\nflush_count = 42\n\
         [calls]\nactive_timeout_secs = 60\n[hep]\nudp_listen = \"0.0.0.0:9070\"\ntcp_listen = \"\"\nlegacy = true\n\
         [capture]\nsip_ports = [5070]\nrtp_port_min = 20000\nrtp_port_max = 21000\n",
    );
    let c = Config::load_with_env(Some(&f.0), no_env()).unwrap();
    let s = c.store_config();
    assert_eq!(s.subdirs, siphon_store::Subdirs::Hourly);
    assert!(!s.fsync);
    assert_eq!(s.flush_count, 42);
    assert_eq!(c.call_config().active_timeout_s, 60);
    let i = c.ingest_config();
    assert_eq!(i.hep_ports, vec![9070]);
    assert!(i.hep_legacy);
    assert_eq!(i.sip_ports, vec![5070]);
    assert_eq!(i.calls.active_timeout_s, 60);
    assert!(c
        .bpf_filter()
        .starts_with("((udp or tcp) and (port 5070)) or (udp and portrange 20000-21000)"));
}
