//! Configuration of `siphon serve`: one TOML file, `SIPHON_<SECTION>_<KEY>` environment
//! overrides, command-line flags on top, and validation that names the key and says what is
//! allowed. Every key has a default, so the collector runs with no file at all on the embedded
//! store. The reference of every key is `docs/config.md`; `etc/siphon.toml` is a complete example.
//!
//! Precedence, lowest first: defaults < file < environment < command-line flags.
//!
//! Secrets (`hep.auth_key`, `http.auth_token`) never appear in `Debug` output nor in
//! [`Config::to_toml_redacted`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The whole configuration of `siphon serve`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This collector.
    pub node: NodeConfig,
    /// Embedded store.
    pub storage: StorageConfig,
    /// HEP listeners.
    pub hep: HepConfig,
    /// Live capture through libpcap.
    pub capture: CaptureConfig,
    /// Call state machine timeouts.
    pub calls: CallsConfig,
    /// HTTP API, console and metrics.
    pub http: HttpConfig,
    /// Queues between listeners and the pipeline thread.
    pub pipeline: PipelineConfig,
}

/// `[node]`: identity of this collector.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Name of this node in logs, metrics and stored calls. Default: the host name, or "siphon".
    pub id: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: default_node_id(),
        }
    }
}

/// `[storage]`: the embedded store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Root directory of the store.
    pub data: PathBuf,
    /// Buckets by packet time: "none", "daily" or "hourly".
    pub subdirs: String,
    /// Flush after this many packets...
    pub flush_count: u64,
    /// ...or this many seconds after the last flush, whichever comes first.
    pub flush_interval_secs: u64,
    /// Call-IDs of completed calls kept in memory so late messages rejoin their call.
    pub id_cache_size: usize,
    /// "flush": fsync segment data at every flush, before the index commit; "never": leave it to the OS.
    pub fsync: String,
    /// zstd level of SIP and summary blocks: higher is smaller and slower, negative faster.
    pub zstd_level: i32,
    /// Delete buckets older than this many days. None: keep forever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Delete the oldest buckets while the store is larger than this. An integer or a string
    /// with a unit ("50GB", "1.5TiB"). None: no size limit.
    #[serde(
        deserialize_with = "de_opt_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub retention_max_bytes: Option<u64>,
    /// On SIGTERM/SIGINT with the store failing (a full disk), how long `serve` keeps retrying
    /// to write what it holds in memory before it exits without it. 0: no retry.
    pub stop_retry_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data: PathBuf::from("./data"),
            subdirs: "daily".to_owned(),
            flush_count: 150_000,
            flush_interval_secs: 5,
            id_cache_size: 10_000,
            fsync: "flush".to_owned(),
            zstd_level: siphon_store::DEFAULT_ZSTD_LEVEL,
            retention_days: None,
            retention_max_bytes: None,
            stop_retry_secs: 30,
        }
    }
}

/// `[hep]`: HEP listeners. `Debug` hides `auth_key`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HepConfig {
    /// UDP listener, `IP:PORT`. An empty string in the file or environment disables it.
    #[serde(with = "listen")]
    pub udp_listen: Option<String>,
    /// TCP listener, `IP:PORT`. An empty string in the file or environment disables it.
    #[serde(with = "listen")]
    pub tcp_listen: Option<String>,
    /// Also accept HEP v1/v2.
    pub legacy: bool,
    /// When set, packets must carry this auth key (chunk 0x000e); others are dropped and counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<String>,
    /// Socket receive buffer (SO_RCVBUF) of the listeners. An integer or a string with a unit.
    #[serde(deserialize_with = "de_bytes")]
    pub recv_buffer_bytes: usize,
    /// Concurrent HEP TCP connections, and as many over TLS; further ones are refused.
    pub max_tcp_connections: usize,
    /// TLS listener, `IP:PORT`. None (the default, or an empty string): no TLS listener.
    #[serde(with = "listen")]
    pub tls_listen: Option<String>,
    /// PEM certificate chain of the TLS listener, its own certificate first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates; when set, TLS clients must present a certificate chaining to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca_file: Option<PathBuf>,
}

impl Default for HepConfig {
    fn default() -> Self {
        HepConfig {
            udp_listen: Some("0.0.0.0:9060".to_owned()),
            tcp_listen: Some("0.0.0.0:9060".to_owned()),
            legacy: false,
            auth_key: None,
            recv_buffer_bytes: 8 << 20,
            max_tcp_connections: 1024,
            tls_listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
        }
    }
}

impl fmt::Debug for HepConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HepConfig")
            .field("udp_listen", &self.udp_listen)
            .field("tcp_listen", &self.tcp_listen)
            .field("legacy", &self.legacy)
            .field("auth_key", &Redacted(&self.auth_key))
            .field("recv_buffer_bytes", &self.recv_buffer_bytes)
            .field("max_tcp_connections", &self.max_tcp_connections)
            .field("tls_listen", &self.tls_listen)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("tls_client_ca_file", &self.tls_client_ca_file)
            .finish()
    }
}

/// `[capture]`: live capture through libpcap.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Interface to capture on ("eth0", "any"). None: no live capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// BPF filter. None: built from `sip_ports` and the RTP port range (see [`Config::bpf_filter`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf: Option<String>,
    /// Ports whose UDP/TCP payloads are parsed as SIP.
    pub sip_ports: Vec<u16>,
    /// Lowest RTP/RTCP port captured.
    pub rtp_port_min: u16,
    /// Highest RTP/RTCP port captured.
    pub rtp_port_max: u16,
    /// Bytes kept of each frame.
    pub snaplen: i32,
    /// Put the interface in promiscuous mode.
    pub promiscuous: bool,
    /// libpcap's kernel buffer. An integer or a string with a unit.
    #[serde(deserialize_with = "de_bytes")]
    pub buffer_bytes: i32,
    /// Keep RTP-looking packets on ports no SDP announced, as orphan streams.
    pub heuristic_rtp: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interface: None,
            bpf: None,
            sip_ports: vec![5060, 5061, 5080],
            rtp_port_min: 10_000,
            rtp_port_max: 60_000,
            snaplen: 65_535,
            promiscuous: false,
            buffer_bytes: 32 << 20,
            heuristic_rtp: false,
        }
    }
}

/// `[calls]`: the call state machine (PENDING → ACTIVE → CLOSING → COMPLETE). Capture time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// An INVITE with no final answer is closed after this long.
    pub pending_timeout_secs: u64,
    /// An answered call with no SIP or media for this long is closed.
    pub active_timeout_secs: u64,
    /// After BYE/CANCEL/final failure, late packets still join the call for this long.
    pub closing_grace_secs: u64,
    /// A non-INVITE transaction (REGISTER, OPTIONS...) with no final answer is closed after this long.
    pub non_invite_timeout_secs: u64,
    /// Calls and dialogs open at once; a new Call-ID beyond this is refused and counted.
    pub max_open_calls: usize,
    /// RTP streams (SSRCs) analysed per call; packets of further ones still count in totals.
    pub max_streams_per_call: usize,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            pending_timeout_secs: 300,
            active_timeout_secs: 1800,
            closing_grace_secs: 5,
            non_invite_timeout_secs: 32,
            max_open_calls: siphon_calls::CallConfig::default().max_open_calls,
            max_streams_per_call: siphon_calls::CallConfig::default().max_streams_per_call,
        }
    }
}

/// `[http]`: HTTP API, web console and metrics. `Debug` hides `auth_token`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listener, `IP:PORT`.
    pub listen: String,
    /// When set, `/api` and media requests need `Authorization: Bearer <token>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:3001".to_owned(),
            auth_token: None,
        }
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("auth_token", &Redacted(&self.auth_token))
            .finish()
    }
}

/// `[pipeline]`: bounded queues.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Packets queued between the listeners and the pipeline thread; when full, packets are
    /// dropped and counted.
    pub queue_packets: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            queue_packets: 262_144,
        }
    }
}

/// Why a configuration cannot be used. Messages name the file position or the key, what is
/// wrong and what is allowed; they never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("{}: {message}", position(path, *line, *column))]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// What is wrong, naming the key when known.
        message: String,
    },
    /// A value is out of its allowed range or set.
    #[error("invalid `{key}`: {message}")]
    Invalid {
        /// `section.key`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A `SIPHON_*` environment variable cannot be applied.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// What `to_toml_redacted` shows in place of a secret.
pub const REDACTED: &str = "<set>";

/// Prefix of the environment variables read by [`Config::load`].
pub const ENV_PREFIX: &str = "SIPHON_";

/// How an environment variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    /// Integer or string with a unit.
    Bytes,
    /// Comma-separated ports.
    Ports,
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
struct Key {
    section: &'static str,
    name: &'static str,
    kind: Kind,
    secret: bool,
}

const fn key(section: &'static str, name: &'static str, kind: Kind) -> Key {
    Key {
        section,
        name,
        kind,
        secret: false,
    }
}

const fn secret(section: &'static str, name: &'static str) -> Key {
    Key {
        section,
        name,
        kind: Kind::Str,
        secret: true,
    }
}

/// Every key, in file order. `tests` check this list against the structs and the docs.
const KEYS: &[Key] = &[
    key("node", "id", Kind::Str),
    key("storage", "data", Kind::Str),
    key("storage", "subdirs", Kind::Str),
    key("storage", "flush_count", Kind::Int),
    key("storage", "flush_interval_secs", Kind::Int),
    key("storage", "id_cache_size", Kind::Int),
    key("storage", "fsync", Kind::Str),
    key("storage", "zstd_level", Kind::Int),
    key("storage", "retention_days", Kind::Int),
    key("storage", "retention_max_bytes", Kind::Bytes),
    key("storage", "stop_retry_secs", Kind::Int),
    key("hep", "udp_listen", Kind::Str),
    key("hep", "tcp_listen", Kind::Str),
    key("hep", "legacy", Kind::Bool),
    secret("hep", "auth_key"),
    key("hep", "recv_buffer_bytes", Kind::Bytes),
    key("hep", "max_tcp_connections", Kind::Int),
    key("hep", "tls_listen", Kind::Str),
    key("hep", "tls_cert_file", Kind::Str),
    key("hep", "tls_key_file", Kind::Str),
    key("hep", "tls_client_ca_file", Kind::Str),
    key("capture", "interface", Kind::Str),
    key("capture", "bpf", Kind::Str),
    key("capture", "sip_ports", Kind::Ports),
    key("capture", "rtp_port_min", Kind::Int),
    key("capture", "rtp_port_max", Kind::Int),
    key("capture", "snaplen", Kind::Int),
    key("capture", "promiscuous", Kind::Bool),
    key("capture", "buffer_bytes", Kind::Bytes),
    key("capture", "heuristic_rtp", Kind::Bool),
    key("calls", "pending_timeout_secs", Kind::Int),
    key("calls", "active_timeout_secs", Kind::Int),
    key("calls", "closing_grace_secs", Kind::Int),
    key("calls", "non_invite_timeout_secs", Kind::Int),
    key("calls", "max_open_calls", Kind::Int),
    key("calls", "max_streams_per_call", Kind::Int),
    key("http", "listen", Kind::Str),
    secret("http", "auth_token"),
    key("pipeline", "queue_packets", Kind::Int),
];

const SECTIONS: &[&str] = &[
    "node", "storage", "hep", "capture", "calls", "http", "pipeline",
];

fn env_var_name(k: &Key) -> String {
    format!(
        "{ENV_PREFIX}{}_{}",
        k.section.to_ascii_uppercase(),
        k.name.to_ascii_uppercase()
    )
}

/// Every configuration key as `(section, key, environment variable)`, in file order.
pub fn keys() -> Vec<(&'static str, &'static str, String)> {
    KEYS.iter()
        .map(|k| (k.section, k.name, env_var_name(k)))
        .collect()
}

impl Config {
    /// Defaults, then the file (if given), then `SIPHON_<SECTION>_<KEY>` environment variables
    /// (e.g. `SIPHON_HTTP_LISTEN`, `SIPHON_STORAGE_FLUSH_COUNT`, `SIPHON_HEP_AUTH_KEY`; lists
    /// comma-separated), then validation.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(ENV_PREFIX) {
                continue;
            }
            let value = value.into_string().map_err(|_| ConfigError::Env {
                var: name.to_owned(),
                message: "value is not valid UTF-8".to_owned(),
            })?;
            env.push((name.to_owned(), value));
        }
        Config::load_with_env(path, env)
    }

    /// [`Config::load`] with an explicit environment of `(name, value)` pairs; names not starting
    /// with `SIPHON_<SECTION>_` for a known section are ignored, the last of repeated names wins.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a file over the defaults, without environment nor validation.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Parse {
                line,
                column,
                message,
                ..
            } => ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text over the defaults, without environment nor validation. Errors are
    /// `Parse` with an empty path.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_column(text, s.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: PathBuf::new(),
                line,
                column,
                message: toml_message(&e),
            }
        })
    }

    /// Applies `SIPHON_<SECTION>_<KEY>` variables (sorted by name; the last of repeated names
    /// wins) without validating the result.
    pub fn apply_env(
        &mut self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut vars = BTreeMap::new();
        for (name, value) in env {
            if section_of_var(&name).is_some() {
                vars.insert(name, value);
            }
        }
        if vars.is_empty() {
            return Ok(());
        }
        let mut table = toml::Table::try_from(&*self).map_err(|e| ConfigError::Env {
            var: ENV_PREFIX.to_owned(),
            message: format!("cannot represent the configuration: {e}"),
        })?;
        for (var, value) in &vars {
            let Some(section) = section_of_var(var) else {
                continue;
            };
            let rest = var
                .get(ENV_PREFIX.len() + section.len() + 1..)
                .unwrap_or("")
                .to_ascii_lowercase();
            let env_err = |message: String| ConfigError::Env {
                var: var.clone(),
                message,
            };
            let Some(k) = KEYS
                .iter()
                .find(|k| k.section == section && k.name == rest && var == &env_var_name(k))
            else {
                let known: Vec<String> = KEYS
                    .iter()
                    .filter(|k| k.section == section)
                    .map(env_var_name)
                    .collect();
                return Err(env_err(format!(
                    "unknown setting; the [{section}] variables are {}",
                    known.join(", ")
                )));
            };
            let shown = if k.secret {
                REDACTED.to_owned()
            } else {
                format!("{value:?}")
            };
            let v = env_value(k.kind, value).map_err(|m| env_err(format!("{shown}: {m}")))?;
            let sec = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = sec {
                t.insert(k.name.to_owned(), v);
            }
            // Check each variable on its own so the error names the right one.
            Config::deserialize(toml::Value::Table(table.clone()))
                .map_err(|e| env_err(format!("{shown}: {}", toml_message(&e))))?;
        }
        *self = Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Env {
            var: ENV_PREFIX.to_owned(),
            message: toml_message(&e),
        })?;
        Ok(())
    }

    /// Checks every value; the first problem is returned as [`ConfigError::Invalid`] naming the
    /// key, what is wrong and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_node()?;
        self.validate_storage()?;
        self.validate_hep()?;
        self.validate_capture()?;
        self.validate_calls()?;
        self.validate_http()?;
        let q = self.pipeline.queue_packets;
        if !(MIN_QUEUE..=MAX_QUEUE).contains(&q) {
            return Err(invalid(
                "pipeline.queue_packets",
                format!("{q} is out of range; use {MIN_QUEUE} to {MAX_QUEUE}"),
            ));
        }
        Ok(())
    }

    fn validate_node(&self) -> Result<(), ConfigError> {
        let id = &self.node.id;
        if !valid_node_id(id) {
            return Err(invalid(
                "node.id",
                format!(
                    "{id:?} is not allowed; use 1 to {MAX_NODE_ID} letters, digits, '-', '_' or '.'"
                ),
            ));
        }
        Ok(())
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        let s = &self.storage;
        if s.data.as_os_str().is_empty() {
            return Err(invalid(
                "storage.data",
                "is empty; give the store's directory",
            ));
        }
        s.subdirs.parse::<siphon_store::Subdirs>().map_err(|_| {
            invalid(
                "storage.subdirs",
                format!(
                    "{:?} is not allowed; use \"none\", \"daily\" or \"hourly\"",
                    s.subdirs
                ),
            )
        })?;
        if s.flush_count == 0 {
            return Err(invalid(
                "storage.flush_count",
                "is 0; use 1 or more packets",
            ));
        }
        if s.flush_interval_secs == 0 {
            return Err(invalid(
                "storage.flush_interval_secs",
                "is 0; use 1 or more seconds",
            ));
        }
        if s.stop_retry_secs > MAX_STOP_RETRY_SECS {
            return Err(invalid(
                "storage.stop_retry_secs",
                format!(
                    "{} is out of range; use 0 (no retry) to {MAX_STOP_RETRY_SECS} seconds",
                    s.stop_retry_secs
                ),
            ));
        }
        if s.fsync != "flush" && s.fsync != "never" {
            return Err(invalid(
                "storage.fsync",
                format!("{:?} is not allowed; use \"flush\" or \"never\"", s.fsync),
            ));
        }
        if !(MIN_ZSTD_LEVEL..=MAX_ZSTD_LEVEL).contains(&s.zstd_level) {
            return Err(invalid(
                "storage.zstd_level",
                format!(
                    "{} is out of range; use {MIN_ZSTD_LEVEL} (fastest) to {MAX_ZSTD_LEVEL} (smallest)",
                    s.zstd_level
                ),
            ));
        }
        if s.retention_days == Some(0) {
            return Err(invalid(
                "storage.retention_days",
                "is 0; use 1 or more days, or leave the key out to keep data forever",
            ));
        }
        if let Some(b) = s.retention_max_bytes {
            if b < MIN_RETENTION_BYTES {
                return Err(invalid(
                    "storage.retention_max_bytes",
                    format!(
                        "{b} bytes is too small; use at least 1MiB, with a unit such as \"50GB\""
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_hep(&self) -> Result<(), ConfigError> {
        let h = &self.hep;
        if let Some(a) = &h.udp_listen {
            listen_addr("hep.udp_listen", a, true)?;
        }
        if let Some(a) = &h.tcp_listen {
            listen_addr("hep.tcp_listen", a, true)?;
        }
        if h.auth_key.as_deref() == Some("") {
            return Err(invalid(
                "hep.auth_key",
                "is empty; give the key, or leave the key out to accept HEP without one",
            ));
        }
        if !(MIN_SOCKET_BUFFER..=MAX_SOCKET_BUFFER).contains(&h.recv_buffer_bytes) {
            return Err(invalid(
                "hep.recv_buffer_bytes",
                format!(
                    "{} is out of range; use {MIN_SOCKET_BUFFER} to {MAX_SOCKET_BUFFER} bytes",
                    h.recv_buffer_bytes
                ),
            ));
        }
        if h.max_tcp_connections == 0 {
            return Err(invalid(
                "hep.max_tcp_connections",
                "is 0; use 1 or more (disable the listener with tcp_listen = \"\")",
            ));
        }
        self.validate_hep_tls()
    }

    /// The TLS listener's address, and that its files are named. Their contents are checked
    /// by [`hep_tls`](Self::hep_tls), which `serve` and `siphon config check` call.
    fn validate_hep_tls(&self) -> Result<(), ConfigError> {
        let h = &self.hep;
        let Some(a) = &h.tls_listen else {
            return Ok(());
        };
        let tls = listen_addr("hep.tls_listen", a, true)?;
        if let Some(tcp) = h.tcp_listen.as_deref().and_then(|t| t.parse().ok()) {
            if addrs_clash(tls, tcp) {
                return Err(invalid(
                    "hep.tls_listen",
                    format!(
                        "{tls} clashes with hep.tcp_listen {tcp}; use another port, such as 9061"
                    ),
                ));
            }
        }
        if let Ok(http) = self.http.listen.parse::<SocketAddr>() {
            if addrs_clash(tls, http) {
                return Err(invalid(
                    "hep.tls_listen",
                    format!(
                        "{tls} clashes with http.listen {http}; use another port, such as 9061"
                    ),
                ));
            }
        }
        let need = |key: &str, v: &Option<PathBuf>| {
            match v {
            Some(p) if !p.as_os_str().is_empty() => Ok(()),
            _ => Err(invalid(
                key,
                "is not set; hep.tls_listen needs a PEM certificate chain (tls_cert_file) and its private key (tls_key_file)",
            )),
        }
        };
        need("hep.tls_cert_file", &h.tls_cert_file)?;
        need("hep.tls_key_file", &h.tls_key_file)
    }

    /// The rustls configuration of the HEP/TLS listener, from the files `[hep]` names (read
    /// and checked: a missing or unreadable file, no certificate, no key, a key that does not
    /// match the certificate are errors naming the key); None when `tls_listen` is not set.
    pub fn hep_tls(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, ConfigError> {
        let h = &self.hep;
        let (Some(_), Some(cert), Some(key)) = (&h.tls_listen, &h.tls_cert_file, &h.tls_key_file)
        else {
            return Ok(None);
        };
        let ca = h
            .tls_client_ca_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        crate::hep_tls::server_config(cert, key, ca)
            .map(Some)
            .map_err(|e| invalid(e.key, e.message))
    }

    fn validate_capture(&self) -> Result<(), ConfigError> {
        let c = &self.capture;
        if c.interface.as_deref() == Some("") {
            return Err(invalid(
                "capture.interface",
                "is empty; give an interface such as \"eth0\" or \"any\", or leave the key out",
            ));
        }
        if let Some(bpf) = &c.bpf {
            if bpf.trim().is_empty() {
                return Err(invalid(
                    "capture.bpf",
                    "is empty; give a filter, or leave the key out to build one from sip_ports and the RTP range",
                ));
            }
            compile_bpf(bpf)
                .map_err(|e| invalid("capture.bpf", format!("libpcap rejects {bpf:?}: {e}")))?;
        }
        if c.sip_ports.is_empty() {
            return Err(invalid(
                "capture.sip_ports",
                "is empty; list at least one port, e.g. [5060]",
            ));
        }
        if c.sip_ports.contains(&0) {
            return Err(invalid(
                "capture.sip_ports",
                "contains 0; use ports 1 to 65535",
            ));
        }
        if c.rtp_port_min == 0 {
            return Err(invalid("capture.rtp_port_min", "is 0; use 1 to 65535"));
        }
        if c.rtp_port_max == 0 {
            return Err(invalid("capture.rtp_port_max", "is 0; use 1 to 65535"));
        }
        if c.rtp_port_min > c.rtp_port_max {
            return Err(invalid(
                "capture.rtp_port_min",
                format!(
                    "{} is above rtp_port_max {}; the minimum must not exceed the maximum",
                    c.rtp_port_min, c.rtp_port_max
                ),
            ));
        }
        if !(MIN_SNAPLEN..=MAX_SNAPLEN).contains(&c.snaplen) {
            return Err(invalid(
                "capture.snaplen",
                format!(
                    "{} is out of range; use {MIN_SNAPLEN} to {MAX_SNAPLEN} bytes",
                    c.snaplen
                ),
            ));
        }
        if c.buffer_bytes < MIN_PCAP_BUFFER {
            return Err(invalid(
                "capture.buffer_bytes",
                format!(
                    "{} is too small; use {MIN_PCAP_BUFFER} to {} bytes",
                    c.buffer_bytes,
                    i32::MAX
                ),
            ));
        }
        Ok(())
    }

    fn validate_calls(&self) -> Result<(), ConfigError> {
        let c = &self.calls;
        for (k, v) in [
            ("calls.pending_timeout_secs", c.pending_timeout_secs),
            ("calls.active_timeout_secs", c.active_timeout_secs),
            ("calls.closing_grace_secs", c.closing_grace_secs),
            ("calls.non_invite_timeout_secs", c.non_invite_timeout_secs),
        ] {
            if v == 0 {
                return Err(invalid(k, "is 0; use 1 or more seconds"));
            }
        }
        if !(1..=MAX_OPEN_CALLS).contains(&c.max_open_calls) {
            return Err(invalid(
                "calls.max_open_calls",
                format!(
                    "is {}; use 1 to {MAX_OPEN_CALLS} (each open call holds its state in memory)",
                    c.max_open_calls
                ),
            ));
        }
        if !(1..=MAX_STREAMS_PER_CALL).contains(&c.max_streams_per_call) {
            return Err(invalid(
                "calls.max_streams_per_call",
                format!(
                    "is {}; use 1 to {MAX_STREAMS_PER_CALL}",
                    c.max_streams_per_call
                ),
            ));
        }
        Ok(())
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        let http = listen_addr("http.listen", &h.listen, false)?;
        if let Some(t) = &h.auth_token {
            if t.is_empty() {
                return Err(invalid(
                    "http.auth_token",
                    "is empty; give a token, or leave the key out to serve without authentication",
                ));
            }
            if !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    "http.auth_token",
                    "contains spaces, control or non-ASCII characters; use printable ASCII only (it travels in an HTTP header)",
                ));
            }
        }
        if let Some(tcp) = &self.hep.tcp_listen {
            if let Ok(tcp) = tcp.parse::<SocketAddr>() {
                if addrs_clash(tcp, http) {
                    return Err(invalid(
                        "http.listen",
                        format!(
                            "{http} clashes with hep.tcp_listen {tcp}; use another port for one of them"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// BPF filter for live capture: `capture.bpf` when set, else built from `sip_ports` and the
    /// RTP range:
    ///
    /// ```text
    /// F = ((udp or tcp) and (port 5060 or port 5061 or port 5080))
    ///     or (udp and portrange 10000-60000)
    ///     or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44)
    /// filter = F or (vlan and (F or (vlan and (F))))
    /// ```
    ///
    /// IP fragments: a first fragment carries the UDP header and matches the port terms; later
    /// IPv4 fragments have no ports, so every IPv4 fragment with a non-zero offset is kept, and
    /// every IPv6 packet whose first extension header is a Fragment header, so that reassembly
    /// sees all pieces (fragments of other traffic are decoded and dropped). The `vlan` branches
    /// match the same traffic inside one 802.1Q tag or two (QinQ, 802.1ad); deeper stacking
    /// needs a custom `bpf`.
    pub fn bpf_filter(&self) -> String {
        if let Some(bpf) = &self.capture.bpf {
            return bpf.clone();
        }
        let c = &self.capture;
        let mut ports: Vec<u16> = Vec::with_capacity(c.sip_ports.len());
        for p in &c.sip_ports {
            if !ports.contains(p) {
                ports.push(*p);
            }
        }
        let sip = ports
            .iter()
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let rtp = if c.rtp_port_min == c.rtp_port_max {
            format!("port {}", c.rtp_port_min)
        } else {
            format!("portrange {}-{}", c.rtp_port_min, c.rtp_port_max)
        };
        let base = format!(
            "((udp or tcp) and ({sip})) or (udp and {rtp}) or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44)"
        );
        // Nested, not `... or (vlan and vlan and (F))`: libpcap's `vlan` moves the offsets of
        // everything after it in the expression, so a second branch would look one tag deeper.
        format!("{base} or (vlan and ({base} or (vlan and ({base}))))")
    }

    /// The embedded store's settings. Assumes a validated configuration (an invalid `subdirs`
    /// falls back to daily).
    pub fn store_config(&self) -> siphon_store::StoreConfig {
        let s = &self.storage;
        let mut c = siphon_store::StoreConfig::new(s.data.clone());
        c.subdirs = s.subdirs.parse().unwrap_or_default();
        c.flush_count = s.flush_count;
        c.flush_interval = Duration::from_secs(s.flush_interval_secs);
        c.id_cache_size = s.id_cache_size;
        c.fsync = s.fsync != "never";
        c.zstd_level = s.zstd_level;
        c
    }

    /// The call correlator's timeouts and limits (and the Call-ID cache size of
    /// `storage.id_cache_size`).
    pub fn call_config(&self) -> siphon_calls::CallConfig {
        let c = &self.calls;
        siphon_calls::CallConfig {
            pending_timeout_s: c.pending_timeout_secs,
            active_timeout_s: c.active_timeout_secs,
            closing_grace_s: c.closing_grace_secs,
            non_invite_timeout_s: c.non_invite_timeout_secs,
            id_cache_size: self.storage.id_cache_size,
            max_open_calls: c.max_open_calls,
            max_streams_per_call: c.max_streams_per_call,
        }
    }

    /// The pipeline's settings: SIP ports, HEP ports (those of the HEP listeners), HEP v1/v2,
    /// the HEP auth key, the RTP heuristic and the call state machine.
    pub fn ingest_config(&self) -> siphon_ingest::IngestConfig {
        let mut hep_ports: Vec<u16> = [&self.hep.udp_listen, &self.hep.tcp_listen]
            .into_iter()
            .flatten()
            .filter_map(|a| a.parse::<SocketAddr>().ok())
            .map(|a| a.port())
            .collect();
        hep_ports.sort_unstable();
        hep_ports.dedup();
        siphon_ingest::IngestConfig {
            sip_ports: self.capture.sip_ports.clone(),
            hep_ports,
            hep_legacy: self.hep.legacy,
            heuristic_rtp: self.capture.heuristic_rtp,
            hep_auth_key: self.hep.auth_key.as_ref().map(|k| k.as_bytes().to_vec()),
            calls: self.call_config(),
            ..siphon_ingest::IngestConfig::default()
        }
    }

    /// Retention by age, when set.
    pub fn retention_max_age(&self) -> Option<Duration> {
        self.storage
            .retention_days
            .map(|d| Duration::from_secs(u64::from(d) * 86_400))
    }

    /// What `siphon config check` prints: the effective configuration as TOML, every key in
    /// file order, secrets replaced by `"<set>"`, keys not set shown as comments.
    pub fn to_toml_redacted(&self) -> String {
        let mut redacted = self.clone();
        if redacted.hep.auth_key.is_some() {
            redacted.hep.auth_key = Some(REDACTED.to_owned());
        }
        if redacted.http.auth_token.is_some() {
            redacted.http.auth_token = Some(REDACTED.to_owned());
        }
        let table = toml::Table::try_from(&redacted).unwrap_or_default();
        let mut out = String::from(
            "# Effective configuration of siphon serve (defaults < file < environment < flags).\n\
             # Secrets are shown as \"<set>\".\n",
        );
        for section in SECTIONS {
            out.push_str(&format!("\n[{section}]\n"));
            let values = table.get(*section).and_then(|v| v.as_table());
            for k in KEYS.iter().filter(|k| k.section == *section) {
                match values.and_then(|t| t.get(k.name)) {
                    Some(v) => out.push_str(&format!("{} = {v}\n", k.name)),
                    None => out.push_str(&format!("# {} is not set\n", k.name)),
                }
            }
        }
        out
    }
}

/// zstd levels `storage.zstd_level` accepts: negative levels trade size for speed; above 19
/// zstd needs far more memory per block for little gain.
const MIN_ZSTD_LEVEL: i32 = -7;
const MAX_ZSTD_LEVEL: i32 = 19;

const MAX_NODE_ID: usize = 255;
/// Bounds of `calls.max_open_calls` and `calls.max_streams_per_call`.
const MAX_OPEN_CALLS: usize = 50_000_000;
const MAX_STREAMS_PER_CALL: usize = 1024;
const MIN_QUEUE: usize = 1024;
const MAX_QUEUE: usize = 1 << 24;
const MIN_RETENTION_BYTES: u64 = 1 << 20;
const MIN_SOCKET_BUFFER: usize = 65_536;
const MAX_STOP_RETRY_SECS: u64 = 3600;
const MAX_SOCKET_BUFFER: usize = i32::MAX as usize;
const MIN_SNAPLEN: i32 = 64;
const MAX_SNAPLEN: i32 = 262_144;
const MIN_PCAP_BUFFER: i32 = 65_536;

fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NODE_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn default_node_id() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| valid_node_id(s))
        .unwrap_or_else(|| "siphon".to_owned())
}

/// Parses a listener address; port 0 is refused (an operator never means "any port").
fn listen_addr(key: &str, addr: &str, may_disable: bool) -> Result<SocketAddr, ConfigError> {
    let hint = if may_disable {
        "; use IP:PORT such as \"0.0.0.0:9060\" or \"[::]:9060\", or \"\" to disable"
    } else {
        "; use IP:PORT such as \"127.0.0.1:3001\" or \"[::]:3001\""
    };
    let a: SocketAddr = addr
        .parse()
        .map_err(|_| invalid(key, format!("{addr:?} is not an IP:PORT address{hint}")))?;
    if a.port() == 0 {
        return Err(invalid(key, format!("{addr:?} has port 0{hint}")));
    }
    Ok(a)
}

fn addrs_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.ip().is_unspecified() && a.is_ipv4() == b.is_ipv4())
            || (b.ip().is_unspecified() && a.is_ipv4() == b.is_ipv4()))
}

/// Compiles a filter with libpcap for an Ethernet link, as a syntax check.
fn compile_bpf(filter: &str) -> Result<(), String> {
    let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| e.to_string())?;
    cap.compile(filter, true)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
    (line, column)
}

/// `file:line:column`, or `line L, column C` for text that did not come from a file.
fn position(path: &Path, line: usize, column: usize) -> String {
    if path.as_os_str().is_empty() {
        format!("line {line}, column {column}")
    } else {
        format!("{}:{line}:{column}", path.display())
    }
}

/// serde's type names at the end of a message, in an operator's words.
const EXPECTED: &[(&str, &str)] = &[
    ("expected u16", "expected a whole number from 0 to 65535"),
    (
        "expected u32",
        "expected a whole number from 0 to 4294967295",
    ),
    ("expected u64", "expected a whole number, 0 or more"),
    ("expected usize", "expected a whole number, 0 or more"),
    ("expected i32", "expected a whole number"),
    (
        "expected a sequence",
        "expected a list such as [5060, 5080]",
    ),
];

/// A toml error's message, prefixed with the key it concerns when toml knows it.
fn toml_message(e: &toml::de::Error) -> String {
    let mut message = e.message().trim().to_owned();
    for (raw, human) in EXPECTED {
        if let Some(head) = message.strip_suffix(raw) {
            message = format!("{head}{human}");
        }
    }
    if let Some(at) = message.find("expected struct ") {
        message.truncate(at);
        message.push_str("expected a table of keys");
    }
    let mut bare = e.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let key = shown
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`')))
        .map(str::to_owned);
    match key {
        Some(k) if !k.is_empty() => format!("`{k}`: {message}"),
        _ => message,
    }
}

/// The section of a `SIPHON_<SECTION>_...` variable.
fn section_of_var(var: &str) -> Option<&'static str> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    SECTIONS.iter().copied().find(|s| {
        rest.len() > s.len()
            && rest
                .get(..s.len())
                .is_some_and(|p| p == s.to_ascii_uppercase())
            && rest.as_bytes().get(s.len()) == Some(&b'_')
    })
}

/// Turns an environment value into the TOML value of a key of `kind`.
fn env_value(kind: Kind, value: &str) -> Result<toml::Value, String> {
    let v = value.trim();
    match kind {
        Kind::Str => Ok(toml::Value::String(value.to_owned())),
        Kind::Int => v
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| "expected a whole number".to_owned()),
        Kind::Bytes => Ok(match v.parse::<i64>() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => toml::Value::String(v.to_owned()),
        }),
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err("expected true or false (also 1/0, yes/no, on/off)".to_owned()),
        },
        Kind::Ports => {
            if v.is_empty() {
                return Ok(toml::Value::Array(Vec::new()));
            }
            v.split(',')
                .map(|p| {
                    p.trim()
                        .parse::<u16>()
                        .map(|p| toml::Value::Integer(i64::from(p)))
                        .map_err(|_| {
                            format!("{:?} is not a port; give ports 1 to 65535 separated by commas, e.g. 5060,5080", p.trim())
                        })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(toml::Value::Array)
        }
    }
}

/// Parses a byte size: a whole or decimal number with an optional unit, B, KB, MB, GB, TB
/// (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), case-insensitive, e.g. "50GB",
/// "1.5 TiB", "8388608". Fractions of a byte are dropped.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let mult: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "{s:?} has an unknown unit {unit:?}; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ))
        }
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 9 {
        return Err(format!(
            "{s:?} is not a size; use a number with an optional unit, e.g. \"50GB\" or \"512MiB\""
        ));
    }
    let digits = format!("{int}{frac}");
    let mantissa: u128 = digits.parse().map_err(|_| {
        format!("{s:?} is not a size; use a number with an optional unit, e.g. \"50GB\"")
    })?;
    let scale = 10u128.pow(u32::try_from(frac.len()).unwrap_or(0));
    let bytes = mantissa
        .checked_mul(mult)
        .map(|b| b / scale)
        .filter(|b| *b <= i64::MAX as u128)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    u64::try_from(bytes).map_err(|_| format!("{s:?} is too large"))
}

struct BytesVisitor;

impl serde::de::Visitor<'_> for BytesVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size in bytes: an integer, or a string such as \"50GB\" or \"8MiB\"")
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative; sizes are 0 or more")))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
        parse_bytes(v).map_err(E::custom)
    }
}

fn de_bytes<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let b = d.deserialize_any(BytesVisitor)?;
    T::try_from(b)
        .map_err(|_| serde::de::Error::custom(format!("{b} bytes is too large for this setting")))
}

fn de_opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(BytesVisitor).map(Some)
}

/// Listener addresses: `None` (disabled) is written as an empty string.
mod listen {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_deref().unwrap_or(""))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if s.is_empty() { None } else { Some(s) })
    }
}

/// Debug of a secret: whether it is set, never its value.
struct Redacted<'a>(&'a Option<String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(<redacted>)"),
            None => f.write_str("None"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn invalid_key(r: Result<(), ConfigError>) -> String {
        match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_documented_values_and_validate() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(valid_node_id(&c.node.id));
        assert_eq!(c.storage.data, PathBuf::from("./data"));
        assert_eq!(c.storage.subdirs, "daily");
        assert_eq!(c.storage.flush_count, 150_000);
        assert_eq!(c.storage.flush_interval_secs, 5);
        assert_eq!(c.storage.id_cache_size, 10_000);
        assert_eq!(c.storage.fsync, "flush");
        assert_eq!(c.storage.retention_days, None);
        assert_eq!(c.storage.retention_max_bytes, None);
        assert_eq!(c.hep.udp_listen.as_deref(), Some("0.0.0.0:9060"));
        assert_eq!(c.hep.tcp_listen.as_deref(), Some("0.0.0.0:9060"));
        assert!(!c.hep.legacy);
        assert_eq!(c.hep.auth_key, None);
        assert_eq!(c.hep.recv_buffer_bytes, 8 * 1024 * 1024);
        assert_eq!(c.hep.max_tcp_connections, 1024);
        assert_eq!(c.capture.interface, None);
        assert_eq!(c.capture.bpf, None);
        assert_eq!(c.capture.sip_ports, vec![5060, 5061, 5080]);
        assert_eq!(
            (c.capture.rtp_port_min, c.capture.rtp_port_max),
            (10_000, 60_000)
        );
        assert_eq!(c.capture.snaplen, 65_535);
        assert!(!c.capture.promiscuous);
        assert_eq!(c.capture.buffer_bytes, 32 * 1024 * 1024);
        assert!(!c.capture.heuristic_rtp);
        assert_eq!(
            c.calls,
            CallsConfig {
                pending_timeout_secs: 300,
                active_timeout_secs: 1800,
                closing_grace_secs: 5,
                non_invite_timeout_secs: 32,
                max_open_calls: 500_000,
                max_streams_per_call: 64,
            }
        );
        assert_eq!(c.http.listen, "127.0.0.1:3001");
        assert_eq!(c.http.auth_token, None);
        assert_eq!(c.pipeline.queue_packets, 262_144);
    }

    #[test]
    fn empty_file_text_gives_the_defaults() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
        assert_eq!(
            Config::load_with_env(None, no_env()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn keys_list_matches_the_structs_exactly() {
        let mut c = Config::default();
        c.storage.retention_days = Some(1);
        c.storage.retention_max_bytes = Some(1 << 30);
        c.hep.auth_key = Some("k".into());
        c.hep.tls_cert_file = Some("c.pem".into());
        c.hep.tls_key_file = Some("k.pem".into());
        c.hep.tls_client_ca_file = Some("ca.pem".into());
        c.capture.interface = Some("eth0".into());
        c.capture.bpf = Some("udp".into());
        c.http.auth_token = Some("t".into());
        let table = toml::Table::try_from(&c).unwrap();
        let mut from_structs: Vec<(String, String)> = Vec::new();
        for (section, v) in &table {
            for k in v.as_table().unwrap().keys() {
                from_structs.push((section.clone(), k.clone()));
            }
        }
        from_structs.sort();
        let mut listed: Vec<(String, String)> = KEYS
            .iter()
            .map(|k| (k.section.to_owned(), k.name.to_owned()))
            .collect();
        listed.sort();
        assert_eq!(from_structs, listed);
        let sections: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut expected: Vec<&str> = SECTIONS.to_vec();
        expected.sort_unstable();
        assert_eq!(sections, expected);
    }

    #[test]
    fn env_var_names_follow_section_and_key() {
        let names: Vec<String> = keys().into_iter().map(|(_, _, v)| v).collect();
        assert!(names.contains(&"SIPHON_HTTP_LISTEN".to_owned()));
        assert!(names.contains(&"SIPHON_STORAGE_FLUSH_COUNT".to_owned()));
        assert!(names.contains(&"SIPHON_HEP_AUTH_KEY".to_owned()));
        assert!(names.contains(&"SIPHON_CAPTURE_SIP_PORTS".to_owned()));
        assert_eq!(names.len(), KEYS.len());
    }

    #[test]
    fn section_of_var_needs_an_uppercase_known_section_and_underscore() {
        assert_eq!(section_of_var("SIPHON_HTTP_LISTEN"), Some("http"));
        assert_eq!(section_of_var("SIPHON_HEP_LEGACY"), Some("hep"));
        assert_eq!(section_of_var("SIPHON_HTTP"), None);
        assert_eq!(section_of_var("SIPHON_HTTPX_LISTEN"), None);
        assert_eq!(section_of_var("SIPHON_DATA"), None);
        assert_eq!(section_of_var("SIPHON_BENCH_COPIES"), None);
        assert_eq!(section_of_var("siphon_http_listen"), None);
        assert_eq!(section_of_var("SIPHON_http_listen"), None);
        assert_eq!(section_of_var("HOME"), None);
    }

    #[test]
    fn unrelated_siphon_variables_are_ignored() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("SIPHON_DATA", "/elsewhere"),
                ("SIPHON_BENCH_COPIES", "3"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn env_sets_every_kind_of_value() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("SIPHON_NODE_ID", "sbc-fra-1"),
                ("SIPHON_STORAGE_DATA", "/var/lib/siphon"),
                ("SIPHON_STORAGE_FLUSH_COUNT", "250"),
                ("SIPHON_STORAGE_RETENTION_DAYS", "30"),
                ("SIPHON_STORAGE_RETENTION_MAX_BYTES", "50GB"),
                ("SIPHON_HEP_LEGACY", "yes"),
                ("SIPHON_HEP_RECV_BUFFER_BYTES", "16777216"),
                ("SIPHON_HEP_UDP_LISTEN", ""),
                ("SIPHON_CAPTURE_SIP_PORTS", "5060, 5070 ,5080"),
                ("SIPHON_CAPTURE_PROMISCUOUS", "1"),
                ("SIPHON_CAPTURE_BUFFER_BYTES", "64MiB"),
                ("SIPHON_HTTP_LISTEN", "0.0.0.0:8080"),
            ]),
        )
        .unwrap();
        assert_eq!(c.node.id, "sbc-fra-1");
        assert_eq!(c.storage.data, PathBuf::from("/var/lib/siphon"));
        assert_eq!(c.storage.flush_count, 250);
        assert_eq!(c.storage.retention_days, Some(30));
        assert_eq!(c.storage.retention_max_bytes, Some(50_000_000_000));
        assert!(c.hep.legacy);
        assert_eq!(c.hep.recv_buffer_bytes, 16 << 20);
        assert_eq!(c.hep.udp_listen, None);
        assert_eq!(c.hep.tcp_listen.as_deref(), Some("0.0.0.0:9060"));
        assert_eq!(c.capture.sip_ports, vec![5060, 5070, 5080]);
        assert!(c.capture.promiscuous);
        assert_eq!(c.capture.buffer_bytes, 64 << 20);
        assert_eq!(c.http.listen, "0.0.0.0:8080");
    }

    #[test]
    fn env_errors_name_the_variable() {
        for (var, value, wanted) in [
            ("SIPHON_STORAGE_FLUSH_COUNT", "many", "whole number"),
            ("SIPHON_HEP_LEGACY", "maybe", "true or false"),
            ("SIPHON_CAPTURE_SIP_PORTS", "5060,x", "not a port"),
            ("SIPHON_CAPTURE_SIP_PORTS", "70000", "not a port"),
            ("SIPHON_CAPTURE_RTP_PORT_MIN", "70000", "0 to 65535"),
            (
                "SIPHON_STORAGE_RETENTION_MAX_BYTES",
                "50 parsecs",
                "unknown unit",
            ),
            ("SIPHON_HTTP_LISTN", "0.0.0.0:1", "SIPHON_HTTP_LISTEN"),
        ] {
            match Config::load_with_env(None, env(&[(var, value)])) {
                Err(e @ ConfigError::Env { .. }) => {
                    let ConfigError::Env { var: v, message } = &e else {
                        unreachable!()
                    };
                    assert_eq!(v, var);
                    assert!(message.contains(wanted), "{var}={value}: {message}");
                    assert!(e
                        .to_string()
                        .starts_with(&format!("environment variable {var}: ")));
                }
                other => panic!("{var}={value}: expected Env error, got {other:?}"),
            }
        }
    }

    #[test]
    fn env_value_that_parses_but_is_invalid_gives_invalid_with_the_key() {
        let r = Config::load_with_env(None, env(&[("SIPHON_STORAGE_FSYNC", "always")]));
        assert!(matches!(r, Err(ConfigError::Invalid { ref key, .. }) if key == "storage.fsync"));
    }

    #[test]
    fn last_repeated_env_variable_wins() {
        let c = Config::load_with_env(
            None,
            env(&[
                ("SIPHON_STORAGE_FLUSH_COUNT", "7"),
                ("SIPHON_STORAGE_FLUSH_COUNT", "9"),
            ]),
        )
        .unwrap();
        assert_eq!(c.storage.flush_count, 9);
    }

    #[test]
    fn env_error_for_a_secret_does_not_echo_it() {
        // A secret is a string, so only validation can reject it; the message must not echo it.
        let r = Config::load_with_env(None, env(&[("SIPHON_HTTP_AUTH_TOKEN", "sec ret")]));
        let e = r.unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { ref key, .. } if key == "http.auth_token"));
        assert!(!e.to_string().contains("sec ret"));
    }

    #[test]
    fn each_invalid_value_names_its_key() {
        type Mutate = fn(&mut Config);
        let cases: &[(&str, Mutate)] = &[
            ("node.id", |c| c.node.id = String::new()),
            ("node.id", |c| c.node.id = "two words".into()),
            ("storage.data", |c| c.storage.data = PathBuf::new()),
            ("storage.subdirs", |c| c.storage.subdirs = "weekly".into()),
            ("storage.flush_count", |c| c.storage.flush_count = 0),
            ("storage.zstd_level", |c| c.storage.zstd_level = 20),
            ("storage.zstd_level", |c| c.storage.zstd_level = -8),
            ("storage.flush_interval_secs", |c| {
                c.storage.flush_interval_secs = 0
            }),
            ("storage.fsync", |c| c.storage.fsync = "always".into()),
            ("storage.stop_retry_secs", |c| {
                c.storage.stop_retry_secs = 3601
            }),
            ("storage.retention_days", |c| {
                c.storage.retention_days = Some(0)
            }),
            ("storage.retention_max_bytes", |c| {
                c.storage.retention_max_bytes = Some(500)
            }),
            ("hep.udp_listen", |c| c.hep.udp_listen = Some("9060".into())),
            ("hep.udp_listen", |c| {
                c.hep.udp_listen = Some("0.0.0.0:0".into())
            }),
            ("hep.tcp_listen", |c| {
                c.hep.tcp_listen = Some("localhost:9060".into())
            }),
            ("hep.auth_key", |c| c.hep.auth_key = Some(String::new())),
            ("hep.recv_buffer_bytes", |c| c.hep.recv_buffer_bytes = 1000),
            ("hep.max_tcp_connections", |c| c.hep.max_tcp_connections = 0),
            ("hep.tls_listen", |c| {
                c.hep.tls_listen = Some("127.0.0.1".into())
            }),
            ("hep.tls_cert_file", |c| {
                c.hep.tls_listen = Some("127.0.0.1:9061".into());
                c.hep.tls_key_file = Some("k.pem".into());
            }),
            ("hep.tls_key_file", |c| {
                c.hep.tls_listen = Some("127.0.0.1:9061".into());
                c.hep.tls_cert_file = Some("c.pem".into());
            }),
            ("hep.tls_listen", |c| {
                c.hep.tls_listen = Some("127.0.0.1:3001".into());
                c.hep.tls_cert_file = Some("c.pem".into());
                c.hep.tls_key_file = Some("k.pem".into());
            }),
            ("capture.interface", |c| {
                c.capture.interface = Some(String::new())
            }),
            ("capture.bpf", |c| c.capture.bpf = Some("  ".into())),
            ("capture.bpf", |c| {
                c.capture.bpf = Some("udp and port".into())
            }),
            ("capture.sip_ports", |c| c.capture.sip_ports = vec![]),
            ("capture.sip_ports", |c| c.capture.sip_ports = vec![5060, 0]),
            ("capture.rtp_port_min", |c| c.capture.rtp_port_min = 0),
            ("capture.rtp_port_max", |c| c.capture.rtp_port_max = 0),
            ("capture.rtp_port_min", |c| {
                c.capture.rtp_port_min = 30_000;
                c.capture.rtp_port_max = 20_000;
            }),
            ("capture.snaplen", |c| c.capture.snaplen = 10),
            ("capture.snaplen", |c| c.capture.snaplen = 1 << 20),
            ("capture.buffer_bytes", |c| c.capture.buffer_bytes = -1),
            ("calls.pending_timeout_secs", |c| {
                c.calls.pending_timeout_secs = 0
            }),
            ("calls.active_timeout_secs", |c| {
                c.calls.active_timeout_secs = 0
            }),
            ("calls.closing_grace_secs", |c| {
                c.calls.closing_grace_secs = 0
            }),
            ("calls.non_invite_timeout_secs", |c| {
                c.calls.non_invite_timeout_secs = 0
            }),
            ("calls.max_open_calls", |c| c.calls.max_open_calls = 0),
            ("calls.max_open_calls", |c| {
                c.calls.max_open_calls = 50_000_001
            }),
            ("calls.max_streams_per_call", |c| {
                c.calls.max_streams_per_call = 0
            }),
            ("calls.max_streams_per_call", |c| {
                c.calls.max_streams_per_call = 1025
            }),
            ("http.listen", |c| c.http.listen = "3001".into()),
            ("http.listen", |c| c.http.listen = "0.0.0.0:9060".into()),
            ("http.auth_token", |c| {
                c.http.auth_token = Some(String::new())
            }),
            ("http.auth_token", |c| {
                c.http.auth_token = Some("a b".into())
            }),
            ("pipeline.queue_packets", |c| {
                c.pipeline.queue_packets = 1000
            }),
            ("pipeline.queue_packets", |c| {
                c.pipeline.queue_packets = 1 << 30
            }),
        ];
        for (want, mutate) in cases {
            let mut c = Config::default();
            mutate(&mut c);
            let r = c.validate();
            let msg = r
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert_eq!(&invalid_key(r), want, "{msg}");
            assert!(msg.starts_with(&format!("invalid `{want}`: ")), "{msg}");
        }
    }

    #[test]
    fn edge_values_that_are_allowed_validate() {
        let mut c = Config::default();
        c.hep.udp_listen = None;
        c.hep.tcp_listen = Some("[::]:9060".into());
        c.http.listen = "[::1]:3001".into();
        c.capture.rtp_port_min = 20_000;
        c.capture.rtp_port_max = 20_000;
        c.capture.bpf = Some("udp port 5060".into());
        c.storage.subdirs = "none".into();
        c.storage.fsync = "never".into();
        c.storage.retention_days = Some(1);
        c.storage.retention_max_bytes = Some(1 << 20);
        c.storage.id_cache_size = 0;
        c.pipeline.queue_packets = 1024;
        c.validate().unwrap();
        // HTTP and HEP TCP on the same port but different families or addresses do not clash.
        c.http.listen = "127.0.0.1:9060".into();
        c.validate().unwrap();
        c.hep.tcp_listen = Some("0.0.0.0:9060".into());
        assert_eq!(invalid_key(c.validate()), "http.listen");
    }

    #[test]
    fn parse_bytes_accepts_units_and_fractions() {
        assert_eq!(parse_bytes("8388608"), Ok(8_388_608));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("100B"), Ok(100));
        assert_eq!(parse_bytes("50GB"), Ok(50_000_000_000));
        assert_eq!(parse_bytes("50gb"), Ok(50_000_000_000));
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes("1.5 TiB"), Ok(3 << 39));
        assert_eq!(parse_bytes(" 2 KB "), Ok(2000));
        assert_eq!(parse_bytes("0.5KiB"), Ok(512));
        assert_eq!(parse_bytes("1.0001KB"), Ok(1000));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("GB").is_err());
        assert!(parse_bytes("1.2.3GB").is_err());
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("-5MB").is_err());
        assert!(parse_bytes("99999999999TiB")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_bytes("1.0000000001GB").is_err());
    }

    #[test]
    fn byte_keys_accept_integers_and_strings_in_the_file() {
        let c = Config::from_toml_str(
            "[storage]\nretention_max_bytes = \"2TB\"\n[hep]\nrecv_buffer_bytes = \"16MiB\"\n\
             [capture]\nbuffer_bytes = 1048576\n",
        )
        .unwrap();
        assert_eq!(c.storage.retention_max_bytes, Some(2_000_000_000_000));
        assert_eq!(c.hep.recv_buffer_bytes, 16 << 20);
        assert_eq!(c.capture.buffer_bytes, 1 << 20);
        let e = Config::from_toml_str("[capture]\nbuffer_bytes = \"4GiB\"\n").unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
        let e = Config::from_toml_str("[hep]\nrecv_buffer_bytes = -1\n").unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
    }

    #[test]
    fn empty_listener_in_the_file_disables_it() {
        let c = Config::from_toml_str("[hep]\nudp_listen = \"\"\n").unwrap();
        assert_eq!(c.hep.udp_listen, None);
        assert!(c.hep.tcp_listen.is_some());
        c.validate().unwrap();
    }

    #[test]
    fn line_column_counts_lines_and_characters() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_column(t, 0), (1, 1));
        assert_eq!(line_column(t, 6), (2, 1));
        assert_eq!(line_column(t, 9), (2, 3)); // after "bé", é is 2 bytes
        assert_eq!(line_column(t, 8), (2, 2)); // inside é: rounds down
        assert_eq!(line_column(t, 999), (3, 1));
    }

    #[test]
    fn parse_error_names_key_line_and_column() {
        let e = Config::from_toml_str("[storage]\nflush_count = \"many\"\n").unwrap_err();
        match e {
            ConfigError::Parse {
                line,
                column,
                ref message,
                ..
            } => {
                assert_eq!((line, column), (2, 15));
                assert!(message.contains("storage.flush_count"), "{message}");
            }
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_errors_speak_of_numbers_lists_and_tables_not_rust_types() {
        for (text, want) in [
            (
                "[storage]\nflush_count = \"many\"\n",
                "expected a whole number, 0 or more",
            ),
            (
                "[capture]\nsip_ports = [70000]\n",
                "expected a whole number from 0 to 65535",
            ),
            ("[capture]\nsip_ports = 5060\n", "expected a list"),
            ("[storage]\nretention_days = -1\n", "from 0 to 4294967295"),
            ("node = 5\n", "expected a table of keys"),
        ] {
            let e = Config::from_toml_str(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.starts_with("line "), "no file: position in words: {e}");
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut c = Config::default();
        c.hep.auth_key = Some("hep-secret-1".into());
        c.http.auth_token = Some("http-secret-2".into());
        let d = format!("{c:?} {:?} {:?} {c:#?}", c.hep, c.http);
        assert!(!d.contains("hep-secret-1"), "{d}");
        assert!(!d.contains("http-secret-2"), "{d}");
        assert!(d.contains("auth_key: Some(<redacted>)"), "{d}");
        assert!(d.contains("auth_token: Some(<redacted>)"), "{d}");
        assert!(format!("{:?}", Config::default().hep).contains("auth_key: None"));
    }

    #[test]
    fn redacted_toml_hides_secrets_lists_every_key_and_parses_back() {
        let mut c = Config::default();
        c.hep.auth_key = Some("hep-secret-1".into());
        c.http.auth_token = Some("http-secret-2".into());
        c.hep.udp_listen = None;
        c.storage.retention_days = Some(14);
        let t = c.to_toml_redacted();
        assert!(
            !t.contains("hep-secret-1") && !t.contains("http-secret-2"),
            "{t}"
        );
        assert!(t.contains("auth_key = \"<set>\""), "{t}");
        assert!(t.contains("auth_token = \"<set>\""), "{t}");
        assert!(t.contains("udp_listen = \"\""), "{t}");
        assert!(t.contains("# retention_max_bytes is not set"), "{t}");
        assert!(t.contains("retention_days = 14"), "{t}");
        for k in KEYS {
            assert!(
                t.contains(&format!("\n{} = ", k.name))
                    || t.contains(&format!("# {} is not set", k.name)),
                "{}",
                k.name
            );
        }
        let back = Config::from_toml_str(&t).unwrap();
        let mut expected = c.clone();
        expected.hep.auth_key = Some(REDACTED.into());
        expected.http.auth_token = Some(REDACTED.into());
        assert_eq!(back, expected);
        // Without secrets set, nothing claims one is.
        assert!(!Config::default().to_toml_redacted().contains("= \"<set>\""));
    }

    #[test]
    fn bpf_filter_default_is_built_from_ports_and_range() {
        let base = "((udp or tcp) and (port 5060 or port 5061 or port 5080)) \
                    or (udp and portrange 10000-60000) \
                    or (ip[6:2] & 0x1fff != 0) or (ip6[6] == 44)";
        assert_eq!(
            Config::default().bpf_filter(),
            format!("{base} or (vlan and ({base} or (vlan and ({base}))))")
        );
    }

    #[test]
    fn bpf_filter_custom_ports_single_rtp_port_and_duplicates() {
        let mut c = Config::default();
        c.capture.sip_ports = vec![5070, 5070, 15060];
        c.capture.rtp_port_min = 20_000;
        c.capture.rtp_port_max = 20_000;
        let f = c.bpf_filter();
        assert!(
            f.starts_with(
                "((udp or tcp) and (port 5070 or port 15060)) or (udp and port 20000) or"
            ),
            "{f}"
        );
        c.capture.rtp_port_max = 30_000;
        assert!(c.bpf_filter().contains("(udp and portrange 20000-30000)"));
    }

    #[test]
    fn bpf_filter_configured_is_used_verbatim() {
        let mut c = Config::default();
        c.capture.bpf = Some("host 10.0.0.1 and udp".into());
        assert_eq!(c.bpf_filter(), "host 10.0.0.1 and udp");
    }

    // Minimal frames for checking the built filter with libpcap's own BPF interpreter.
    fn ether(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn vlan(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut inner = vec![0, 42];
        inner.extend_from_slice(&ethertype.to_be_bytes());
        inner.extend_from_slice(payload);
        ether(0x8100, &inner)
    }

    /// An 802.1ad service tag (0x88a8) around an 802.1Q customer tag.
    fn qinq(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut inner = vec![0, 7];
        inner.extend_from_slice(&0x8100u16.to_be_bytes());
        inner.extend_from_slice(&[0, 42]);
        inner.extend_from_slice(&ethertype.to_be_bytes());
        inner.extend_from_slice(payload);
        ether(0x88a8, &inner)
    }

    fn ipv4(proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(20 + payload.len()).unwrap();
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(payload.len()).unwrap();
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    fn udp(sport: u16, dport: u16) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 12, 0, 0, b'd', b'a', b't', b'a']);
        p
    }

    fn tcp(sport: u16, dport: u16) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        p
    }

    #[test]
    fn bpf_filter_default_compiles_and_selects_sip_rtp_and_fragments() {
        let filter = Config::default().bpf_filter();
        let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
        let prog = cap.compile(&filter, true).unwrap();
        let v4 = |proto, frag, l4: Vec<u8>| ether(0x0800, &ipv4(proto, frag, &l4));
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("udp sip", v4(17, 0, udp(40000, 5060)), true),
            ("tcp sip 5061", v4(6, 0, tcp(5061, 33000)), true),
            ("udp sip 5080 src", v4(17, 0, udp(5080, 45000)), true),
            ("udp rtp", v4(17, 0, udp(20000, 20002)), true),
            ("udp rtp top of range", v4(17, 0, udp(60_001, 60_000)), true),
            ("tcp in rtp range", v4(6, 0, tcp(20000, 20002)), false),
            ("udp below range", v4(17, 0, udp(9999, 443)), false),
            ("udp above range", v4(17, 0, udp(60_001, 60_002)), false),
            ("https", v4(6, 0, tcp(443, 50000)), false),
            (
                "later ipv4 fragment",
                v4(17, 100, b"no udp header here".to_vec()),
                true,
            ),
            (
                "first ipv4 fragment, other ports",
                v4(17, 0x2000, udp(443, 443)),
                false,
            ),
            (
                "ipv6 udp sip",
                ether(0x86dd, &ipv6(17, &udp(40000, 5060))),
                true,
            ),
            (
                "ipv6 tcp other",
                ether(0x86dd, &ipv6(6, &tcp(443, 50000))),
                false,
            ),
            (
                "ipv6 fragment",
                ether(0x86dd, &ipv6(44, &[17, 0, 0, 8, 0, 0, 0, 1])),
                true,
            ),
            (
                "vlan udp sip",
                vlan(0x0800, &ipv4(17, 0, &udp(40000, 5060))),
                true,
            ),
            (
                "vlan udp rtp",
                vlan(0x0800, &ipv4(17, 0, &udp(30000, 30001))),
                true,
            ),
            (
                "vlan https",
                vlan(0x0800, &ipv4(6, 0, &tcp(443, 50000))),
                false,
            ),
            (
                "qinq udp sip",
                qinq(0x0800, &ipv4(17, 0, &udp(40000, 5060))),
                true,
            ),
            (
                "qinq udp rtp",
                qinq(0x0800, &ipv4(17, 0, &udp(30000, 30001))),
                true,
            ),
            (
                "qinq ipv6 udp sip",
                qinq(0x86dd, &ipv6(17, &udp(5060, 5060))),
                true,
            ),
            (
                "qinq https",
                qinq(0x0800, &ipv4(6, 0, &tcp(443, 50000))),
                false,
            ),
            ("arp", ether(0x0806, &[0; 28]), false),
        ];
        for (name, frame, want) in cases {
            assert_eq!(prog.filter(&frame), want, "{name}");
        }
    }

    #[test]
    fn bpf_filter_custom_ports_compile_and_select() {
        let mut c = Config::default();
        c.capture.sip_ports = vec![5070];
        c.capture.rtp_port_min = 16384;
        c.capture.rtp_port_max = 32767;
        let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
        let prog = cap.compile(&c.bpf_filter(), true).unwrap();
        let v4 = |proto, l4: Vec<u8>| ether(0x0800, &ipv4(proto, 0, &l4));
        assert!(prog.filter(&v4(17, udp(40000, 5070))));
        assert!(!prog.filter(&v4(17, udp(40000, 5060))));
        assert!(prog.filter(&v4(17, udp(16384, 16386))));
        assert!(!prog.filter(&v4(17, udp(40000, 40002))));
    }

    #[test]
    fn store_config_maps_storage() {
        let mut c = Config::default();
        c.storage.data = PathBuf::from("/srv/siphon");
        c.storage.subdirs = "hourly".into();
        c.storage.flush_count = 77;
        c.storage.flush_interval_secs = 9;
        c.storage.id_cache_size = 123;
        c.storage.fsync = "never".into();
        c.storage.zstd_level = -2;
        let s = c.store_config();
        assert_eq!(s.root, PathBuf::from("/srv/siphon"));
        assert_eq!(s.subdirs, siphon_store::Subdirs::Hourly);
        assert_eq!(s.flush_count, 77);
        assert_eq!(s.flush_interval, Duration::from_secs(9));
        assert_eq!(s.id_cache_size, 123);
        assert!(!s.fsync);
        assert_eq!(s.zstd_level, -2);
        let d = Config::default().store_config();
        assert_eq!(d.subdirs, siphon_store::Subdirs::Daily);
        assert!(d.fsync);
        assert_eq!(d.flush_count, 150_000);
        c.storage.subdirs = "none".into();
        assert_eq!(c.store_config().subdirs, siphon_store::Subdirs::None);
    }

    #[test]
    fn call_config_maps_timeouts_and_cache() {
        let mut c = Config {
            calls: CallsConfig {
                pending_timeout_secs: 11,
                active_timeout_secs: 22,
                closing_grace_secs: 3,
                non_invite_timeout_secs: 44,
                max_open_calls: 66,
                max_streams_per_call: 7,
            },
            ..Config::default()
        };
        c.storage.id_cache_size = 55;
        let k = c.call_config();
        assert_eq!(
            (
                k.pending_timeout_s,
                k.active_timeout_s,
                k.closing_grace_s,
                k.non_invite_timeout_s
            ),
            (11, 22, 3, 44)
        );
        assert_eq!(k.id_cache_size, 55);
        assert_eq!((k.max_open_calls, k.max_streams_per_call), (66, 7));
        let d = Config::default().call_config();
        let lib = siphon_calls::CallConfig::default();
        assert_eq!(
            (
                d.pending_timeout_s,
                d.active_timeout_s,
                d.closing_grace_s,
                d.non_invite_timeout_s,
                d.id_cache_size,
                d.max_open_calls,
                d.max_streams_per_call
            ),
            (
                lib.pending_timeout_s,
                lib.active_timeout_s,
                lib.closing_grace_s,
                lib.non_invite_timeout_s,
                lib.id_cache_size,
                lib.max_open_calls,
                lib.max_streams_per_call
            )
        );
    }

    #[test]
    fn ingest_config_maps_ports_flags_and_calls() {
        let d = Config::default().ingest_config();
        assert_eq!(d.sip_ports, vec![5060, 5061, 5080]);
        assert_eq!(d.hep_ports, vec![9060]);
        assert!(!d.hep_legacy && !d.heuristic_rtp && d.sip_by_content);
        let mut c = Config::default();
        c.capture.sip_ports = vec![5070];
        c.hep.udp_listen = Some("0.0.0.0:9063".into());
        c.hep.tcp_listen = Some("[::]:9061".into());
        c.hep.legacy = true;
        c.capture.heuristic_rtp = true;
        c.calls.pending_timeout_secs = 17;
        let i = c.ingest_config();
        assert_eq!(i.sip_ports, vec![5070]);
        assert_eq!(i.hep_ports, vec![9061, 9063]);
        assert!(i.hep_legacy && i.heuristic_rtp);
        assert_eq!(i.hep_auth_key, None);
        c.hep.auth_key = Some("k3y".into());
        assert_eq!(c.ingest_config().hep_auth_key, Some(b"k3y".to_vec()));
        assert_eq!(i.calls.pending_timeout_s, 17);
        c.hep.udp_listen = None;
        c.hep.tcp_listen = None;
        assert!(c.ingest_config().hep_ports.is_empty());
    }

    #[test]
    fn retention_max_age_is_days() {
        let mut c = Config::default();
        assert_eq!(c.retention_max_age(), None);
        c.storage.retention_days = Some(2);
        assert_eq!(c.retention_max_age(), Some(Duration::from_secs(172_800)));
    }
}
