//! The HTTP API end to end: stores built from corpus captures with the library, the router
//! served on loopback, every endpoint requested over a plain HTTP/1.1 connection.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use siphon_ingest::{IngestConfig, Pipeline};
use siphon_server::api::{export_slots, route_paths, router, ApiState, OPENAPI_JSON};
use siphon_store::{parse_time_us, StoreConfig, StoreWriter};
use siphon_wire::capture::CaptureReader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "t0ken-for-tests";
const BASIC: &str = "1-5790@127.0.0.1";
/// A Call-ID with a slash, a percent sign, a space and an at sign (see `odd_capture`).
const ODD_ID: &str = "odd/id%41 x@host.example";

fn corpus(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(name);
    assert!(p.is_file(), "corpus file {} is missing", p.display());
    p
}

fn expected(name: &str) -> Value {
    let p = corpus(&format!("{name}.expected.json"));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("api-{name}"));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Imports captures into a store at `root`, as `siphon import` does.
fn import(root: &Path, files: &[PathBuf]) {
    let mut scfg = StoreConfig::new(root);
    scfg.fsync = false;
    let mut writer = StoreWriter::open(scfg).unwrap();
    let mut pipe = Pipeline::new(IngestConfig::default(), writer.first_ref());
    let mut dirty = Vec::new();
    for f in files {
        let mut reader = CaptureReader::open(f).unwrap();
        while let Some(frame) = reader.next_frame().unwrap() {
            pipe.push_frame(&frame, &mut writer);
            if writer.should_flush() {
                pipe.take_dirty(&mut dirty);
                writer.flush(std::mem::take(&mut dirty)).unwrap();
            }
        }
    }
    pipe.finish("end of capture", &mut writer);
    writer.close(Vec::new()).unwrap();
}

/// A capture of rejected calls (INVITE, 486, ACK), each `(Call-ID, INVITE time in µs)`.
fn rejected_calls_capture(path: &Path, calls: &[(String, i64)]) {
    use siphon_wire::link::LinkType;
    use siphon_wire::write::{synth_udp_frame, PcapWriter};
    let a: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:5060".parse().unwrap();
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap(), LinkType::ETHERNET).unwrap();
    for (n, (id, t0)) in calls.iter().enumerate() {
        let head = |first: &str, cseq: &str, to_tag: &str| {
            format!(
                "{first}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-{n}\r\n\
                 From: <sip:alice@host.example>;tag=from-{n}\r\n\
                 To: <sip:bob@host.example>{to_tag}\r\nCall-ID: {id}\r\nCSeq: {cseq}\r\n\
                 Contact: <sip:alice@10.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let to_tag = format!(";tag=to-{n}");
        let msgs = [
            (
                *t0,
                a,
                b,
                head("INVITE sip:bob@host.example SIP/2.0", "1 INVITE", ""),
            ),
            (
                *t0 + 20_000,
                b,
                a,
                head("SIP/2.0 486 Busy Here", "1 INVITE", &to_tag),
            ),
            (
                *t0 + 40_000,
                a,
                b,
                head("ACK sip:bob@host.example SIP/2.0", "1 ACK", &to_tag),
            ),
        ];
        for (ts, s, d, m) in msgs {
            let f = synth_udp_frame(s, d, m.as_bytes());
            w.write_frame(ts, &f, f.len() as u32).unwrap();
        }
    }
    w.into_inner().unwrap();
}

/// The shared store: three corpus captures and the odd Call-ID.
fn store_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = scratch("store");
        let root = dir.join("data");
        let odd = dir.join("odd.pcap");
        rejected_calls_capture(&odd, &[(ODD_ID.to_string(), 1_800_000_000_000_000)]);
        import(
            &root,
            &[
                corpus("basic_twoway_g711a.pcap"),
                corpus("failed_calls.pcap"),
                corpus("many_calls_24.pcap"),
                odd,
            ],
        );
        root
    })
}

async fn serve_root(root: PathBuf, token: Option<&str>) -> SocketAddr {
    serve_slots(root, token, export_slots()).await
}

async fn serve_slots(
    root: PathBuf,
    token: Option<&str>,
    exports: Arc<tokio::sync::Semaphore>,
) -> SocketAddr {
    let state = ApiState {
        store_root: root,
        metrics: Arc::new(|| "# TYPE siphon_up gauge\nsiphon_up 1\n".to_string()),
        auth_token: token.map(str::to_string),
        health: Arc::new(|| json!({"version": "test", "open_calls": 3})),
        exports,
        read_pool: Arc::new(siphon_store::ReadPool::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    addr
}

async fn serve(token: Option<&str>) -> SocketAddr {
    serve_root(store_root().to_path_buf(), token).await
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{} {:?}: {}",
            self.status,
            self.headers,
            self.text()
        );
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    /// The start of the body, for failure messages.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned()
    }

    /// Asserts an error response and returns its message.
    fn error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        assert_eq!(v["error"], kind, "{v}");
        v["message"].as_str().unwrap().to_string()
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = std::str::from_utf8(&b[..eol]).unwrap();
        let n = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut raw))
        .await
        .expect("response within 60 s")
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    } else if let Some((_, n)) = headers
        .iter()
        .find(|(k, _)| k == "content-length" && method != "HEAD")
    {
        assert_eq!(body.len(), n.parse::<usize>().unwrap());
    }
    Resp {
        status,
        headers,
        body,
    }
}

async fn get(addr: SocketAddr, target: &str) -> Resp {
    request(addr, "GET", target, &[]).await
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn ids(calls: &Value) -> Vec<String> {
    calls
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_str().unwrap().to_string())
        .collect()
}

/// Call-IDs of the INVITE calls of a corpus capture.
fn corpus_call_ids(name: &str) -> BTreeSet<String> {
    expected(name)["sip"]["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["first_method"] == "INVITE")
        .map(|c| c["call_id"].as_str().unwrap().to_string())
        .collect()
}

/// `time_epoch_str` ("1795335337.116552000") as µs.
fn epoch_us(s: &str) -> i64 {
    let (sec, frac) = s.split_once('.').unwrap();
    sec.parse::<i64>().unwrap() * 1_000_000 + frac[..6].parse::<i64>().unwrap()
}

const CALL_KEYS: [&str; 32] = [
    "call_id",
    "method",
    "start",
    "answer",
    "end",
    "duration_s",
    "caller",
    "caller_domain",
    "callee",
    "callee_domain",
    "ruri",
    "caller_ua",
    "callee_ua",
    "caller_addr",
    "callee_addr",
    "status_code",
    "reason",
    "q850_cause",
    "state",
    "phase",
    "hangup",
    "messages",
    "rtp_packets",
    "rtcp_packets",
    "x_cid",
    "session_id",
    "icid",
    "close_reason",
    "streams",
    "mos",
    "mos_min",
    "verdict",
];

const STREAM_KEYS: [&str; 20] = [
    "src",
    "dst",
    "ssrc",
    "payload_type",
    "codec",
    "clock_rate",
    "packets",
    "lost",
    "duplicates",
    "reordered",
    "max_delta_ms",
    "jitter_mean_ms",
    "jitter_max_ms",
    "first",
    "last",
    "direction",
    "payload_types",
    "markers",
    "payload_type_changes",
    "rtcp",
];

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(k: &[&str]) -> BTreeSet<String> {
    k.iter().map(|s| s.to_string()).collect()
}

/// (channels, rate, data bytes) of a WAV file.
fn wav_info(b: &[u8]) -> (u16, u32, usize) {
    assert_eq!(&b[0..4], b"RIFF");
    assert_eq!(&b[8..12], b"WAVE");
    let mut pos = 12;
    let mut fmt = None;
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let len = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &b[pos + 8..];
        if id == b"fmt " {
            fmt = Some((
                u16::from_le_bytes(body[2..4].try_into().unwrap()),
                u32::from_le_bytes(body[4..8].try_into().unwrap()),
            ));
        } else if id == b"data" {
            let (ch, rate) = fmt.unwrap();
            return (ch, rate, len);
        }
        pos += 8 + len + (len & 1);
    }
    panic!("no data chunk");
}

/// Records of a little-endian microsecond pcap.
fn pcap_records(b: &[u8]) -> usize {
    assert_eq!(&b[0..4], &0xa1b2_c3d4u32.to_le_bytes(), "pcap magic");
    let mut pos = 24;
    let mut n = 0;
    while pos < b.len() {
        let incl = u32::from_le_bytes(b[pos + 8..pos + 12].try_into().unwrap()) as usize;
        pos += 16 + incl;
        n += 1;
    }
    assert_eq!(pos, b.len(), "last record is whole");
    n
}

#[tokio::test]
async fn health_and_metrics_are_open_even_with_a_token() {
    let addr = serve(Some(TOKEN)).await;
    let r = get(addr, "/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"status": "ok", "version": "test", "open_calls": 3})
    );
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(r.body, b"# TYPE siphon_up gauge\nsiphon_up 1\n");
    let r = request(addr, "HEAD", "/health", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn token_is_required_on_api_flow_and_media_when_set() {
    let addr = serve(Some(TOKEN)).await;
    let good = format!("Bearer {TOKEN}");
    let targets = [
        "/api/v1/calls".to_string(),
        format!("/api/v1/calls/{}", enc(BASIC)),
        format!("/api/v1/calls/{}/quality", enc(BASIC)),
        format!("/flow?callid={}", enc(BASIC)),
        format!("/media?callid={}&format=wav", enc(BASIC)),
        format!("/api/sipflow/media?call_id={}", enc(BASIC)),
        "/api/openapi.json".to_string(),
    ];
    for t in &targets {
        let r = get(addr, t).await;
        r.error(401, "unauthorized");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"siphon\"")
        );
        request(addr, "GET", t, &[("Authorization", "Bearer wrong")])
            .await
            .error(401, "unauthorized");
        request(
            addr,
            "GET",
            t,
            &[("Authorization", &format!("Basic {TOKEN}"))],
        )
        .await
        .error(401, "unauthorized");
        let r = request(addr, "GET", t, &[("Authorization", &good)]).await;
        assert_eq!(r.status, 200, "{t}: {}", r.text());
    }
    // Bad parameters are not revealed before the token is checked.
    get(addr, "/api/v1/calls?limit=0")
        .await
        .error(401, "unauthorized");
}

#[tokio::test]
async fn without_a_token_everything_is_open() {
    let addr = serve(None).await;
    assert_eq!(get(addr, "/api/v1/calls?limit=1").await.status, 200);
    assert_eq!(
        get(addr, &format!("/flow?callid={}", enc(BASIC)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn search_lists_calls_and_applies_every_filter() {
    let addr = serve(None).await;
    let all = get(addr, "/api/v1/calls?limit=1000").await.json();
    assert_eq!(all["next_cursor"], Value::Null);
    let got: BTreeSet<String> = ids(&all["calls"]).into_iter().collect();
    let mut want = corpus_call_ids("basic_twoway_g711a");
    want.extend(corpus_call_ids("failed_calls"));
    want.extend(corpus_call_ids("many_calls_24"));
    want.insert(ODD_ID.to_string());
    assert_eq!(got, want);
    let starts: Vec<i64> = all["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| parse_time_us(c["start"].as_str().unwrap()).unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "ordered by start");

    // Default page size is 100: everything fits.
    assert_eq!(
        get(addr, "/api/v1/calls").await.json()["calls"]
            .as_array()
            .unwrap()
            .len(),
        want.len()
    );

    // Time range: many_calls_24's capture window, as Unix seconds and as RFC 3339.
    let cap = &expected("many_calls_24")["capture"];
    let first = cap["first_frame_epoch"].as_f64().unwrap();
    let last = cap["last_frame_epoch"].as_f64().unwrap();
    let many = corpus_call_ids("many_calls_24");
    let v = get(
        addr,
        &format!("/api/v1/calls?from={first}&to={}", last + 1.0),
    )
    .await
    .json();
    assert_eq!(ids(&v["calls"]).into_iter().collect::<BTreeSet<_>>(), many);
    let from = siphon_store::format_rfc3339_us((first * 1e6).round() as i64);
    let to = siphon_store::format_rfc3339_us(((last + 1.0) * 1e6).round() as i64);
    let v = get(addr, &format!("/api/v1/calls?from={from}&to={to}"))
        .await
        .json();
    assert_eq!(ids(&v["calls"]).into_iter().collect::<BTreeSet<_>>(), many);

    // Outcomes of failed_calls.
    let one = |q: &'static str| async move {
        let v = get(addr, &format!("/api/v1/calls?{q}")).await.json();
        v["calls"].as_array().unwrap().clone()
    };
    let busy = one("state=busy").await;
    assert!(busy.len() == 2 && busy.iter().all(|c| c["status_code"] == 486));
    let nf = one("status=404").await;
    assert!(nf.len() == 1 && nf[0]["state"] == "rejected", "{nf:?}");
    assert_eq!(one("state=cancelled").await[0]["status_code"], 487);
    // Dialogs: REGISTER only, or everything.
    let dialogs = one("dialogs=true").await;
    assert_eq!(dialogs.len(), 1);
    assert_eq!(dialogs[0]["method"], "REGISTER");
    assert_eq!(one("dialogs=all&limit=1000").await.len(), want.len() + 1);
    // Caller / callee substrings.
    assert_eq!(one("caller=alice&limit=1000").await.len(), want.len());
    assert_eq!(one("caller=host.example").await[0]["call_id"], ODD_ID);
    assert_eq!(one("callee=bob").await[0]["call_id"], ODD_ID);
    assert_eq!(one("callee=service&limit=1000").await.len(), 25);
    assert_eq!(one("callee=busy").await[0]["status_code"], 486);
    assert_eq!(one("caller=nobody-like-this").await.len(), 0);
    // Quality: the answered calls are graded; none is bad.
    let answered = one("state=answered&limit=1000").await.len();
    assert_eq!(answered, 25);
    let graded = one("min_mos=1&limit=1000").await;
    assert_eq!(graded.len(), answered);
    assert!(graded.iter().all(|c| c["mos"].as_f64().unwrap() >= 1.0));
    assert_eq!(one("max_mos=1.5").await.len(), 0);
    let verdict = graded[0]["verdict"].as_str().unwrap();
    let same: usize = graded.iter().filter(|c| c["verdict"] == verdict).count();
    let v = get(addr, &format!("/api/v1/calls?limit=1000&verdict={verdict}"))
        .await
        .json();
    assert_eq!(v["calls"].as_array().unwrap().len(), same);
    assert_eq!(one("verdict=bad").await.len(), 0);
}

#[tokio::test]
async fn cursor_pages_through_many_calls_without_duplicates() {
    let addr = serve(None).await;
    let cap = &expected("many_calls_24")["capture"];
    let first = cap["first_frame_epoch"].as_f64().unwrap();
    let last = cap["last_frame_epoch"].as_f64().unwrap() + 1.0;
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut t = format!("/api/v1/calls?from={first}&to={last}&limit=5");
        if let Some(c) = &cursor {
            t.push_str(&format!("&cursor={c}"));
        }
        let v = get(addr, &t).await.json();
        let page = ids(&v["calls"]);
        sizes.push(page.len());
        seen.extend(page);
        match &v["next_cursor"] {
            Value::Null => break,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("next_cursor {other}"),
        }
        assert!(sizes.len() < 10, "paging does not end");
    }
    assert_eq!(sizes, [5, 5, 5, 5, 4]);
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), 24, "no duplicates");
    assert_eq!(unique, corpus_call_ids("many_calls_24"));

    // Paging the whole store gives the same order as one big page.
    let all = ids(&get(addr, "/api/v1/calls?limit=1000").await.json()["calls"]);
    let mut paged = Vec::new();
    let mut t = "/api/v1/calls?limit=7".to_string();
    loop {
        let v = get(addr, &t).await.json();
        paged.extend(ids(&v["calls"]));
        let Some(c) = v["next_cursor"].as_str() else {
            break;
        };
        t = format!("/api/v1/calls?limit=7&cursor={c}");
    }
    assert_eq!(paged, all);
}

#[tokio::test]
async fn cursor_pages_through_calls_that_start_at_the_same_microsecond() {
    let dir = scratch("same-start");
    let t0 = 1_800_000_000_000_000;
    // 60 calls at one instant (more than a page's fetch margin), then 3 later ones.
    let mut calls: Vec<(String, i64)> = (0..60).map(|i| (format!("same-{i:02}@h"), t0)).collect();
    calls.extend((0..3).map(|i| (format!("later-{i}@h"), t0 + 1_000_000 + i)));
    let cap = dir.join("same.pcap");
    rejected_calls_capture(&cap, &calls);
    let root = dir.join("data");
    import(&root, &[cap]);
    let addr = serve_root(root, None).await;
    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut t = "/api/v1/calls?limit=5".to_string();
    loop {
        let v = get(addr, &t).await.json();
        let page = ids(&v["calls"]);
        sizes.push(page.len());
        paged.extend(page);
        let Some(c) = v["next_cursor"].as_str() else {
            break;
        };
        t = format!("/api/v1/calls?limit=5&cursor={c}");
        assert!(sizes.len() < 20, "paging does not end");
    }
    assert_eq!(
        sizes,
        [5; 12].iter().copied().chain([3]).collect::<Vec<_>>()
    );
    let mut want: Vec<String> = calls.iter().map(|c| c.0.clone()).collect();
    want[..60].sort();
    assert_eq!(paged, want);
}

#[tokio::test]
async fn call_object_has_the_documented_shape_and_quality() {
    let addr = serve(None).await;
    let v = get(addr, &format!("/api/v1/calls/{BASIC}")).await.json();
    let mut want = set(&CALL_KEYS);
    want.insert("quality".into());
    assert_eq!(keys(&v), want);
    assert_eq!(v["call_id"], BASIC);
    assert_eq!(v["state"], "answered");
    assert_eq!(v["status_code"], 200);
    assert_eq!(v["messages"], 7);
    let streams = v["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2);
    for s in streams {
        assert_eq!(keys(s), set(&STREAM_KEYS));
        assert_eq!(s["packets"], 236);
        assert_eq!(s["codec"], "PCMA");
    }
    let ssrcs: BTreeSet<&str> = streams
        .iter()
        .map(|s| s["ssrc"].as_str().unwrap())
        .collect();
    assert_eq!(ssrcs, BTreeSet::from(["0x5EC0DA1E", "0xDEE0EE8F"]));
    assert!(v["quality"].is_object());
    // Search rows are the same object without the report.
    let page = get(addr, "/api/v1/calls?limit=1000").await.json();
    let row = page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call_id"] == BASIC)
        .unwrap()
        .clone();
    assert_eq!(keys(&row), set(&CALL_KEYS));
    let mut without = v.clone();
    without.as_object_mut().unwrap().remove("quality");
    assert_eq!(row, without);
}

#[tokio::test]
async fn flow_lists_the_messages_tshark_sees_in_order() {
    let addr = serve(None).await;
    for capture in ["basic_twoway_g711a", "failed_calls"] {
        let exp = expected(capture);
        for id in corpus_call_ids(capture) {
            let want: Vec<&Value> = exp["sip"]["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["call_id"] == id.as_str())
                .collect();
            let v1 = get(addr, &format!("/api/v1/calls/{}/flow", enc(&id)))
                .await
                .json();
            let seed = get(addr, &format!("/flow?callid={}", enc(&id)))
                .await
                .json();
            assert_eq!(v1, seed, "{id}");
            let got = v1.as_array().unwrap();
            assert_eq!(got.len(), want.len(), "{id}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g["call_id"], id.as_str());
                assert_eq!(g["src"], w["src"]);
                assert_eq!(g["dst"], w["dst"]);
                assert_eq!(g["cseq"], w["cseq"]);
                assert_eq!(g["transport"], w["transport"]);
                if w["kind"] == "request" {
                    assert_eq!(g["method"], w["method"]);
                } else {
                    assert_eq!(g["status"], w["status"]);
                }
                assert_eq!(
                    parse_time_us(g["ts"].as_str().unwrap()).unwrap(),
                    epoch_us(w["time_epoch_str"].as_str().unwrap())
                );
                assert!(g["raw"].as_str().unwrap().contains(&id));
            }
        }
    }
    // start/end keep the messages within [start, end], as Unix seconds or RFC 3339.
    let all = get(addr, &format!("/flow?callid={BASIC}")).await.json();
    let all = all.as_array().unwrap();
    let ts = |i: usize| all[i]["ts"].as_str().unwrap().to_string();
    let secs = |i: usize| parse_time_us(&ts(i)).unwrap() as f64 / 1e6;
    let v = get(
        addr,
        &format!("/flow?callid={BASIC}&start={}&end={}", ts(2), ts(4)),
    )
    .await
    .json();
    assert_eq!(v.as_array().unwrap(), &all[2..=4]);
    let v = get(
        addr,
        &format!(
            "/api/v1/calls/{BASIC}/flow?start={:.6}&end={:.6}",
            secs(1),
            secs(3)
        ),
    )
    .await
    .json();
    assert_eq!(v.as_array().unwrap(), &all[1..=3]);
}

#[tokio::test]
async fn pcap_holds_every_packet_of_the_call() {
    let addr = serve(None).await;
    let r = get(addr, &format!("/api/v1/calls/{BASIC}/pcap")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.tcpdump.pcap")
    );
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"1-5790@127.0.0.1.pcap\"")
    );
    let packets = expected("basic_twoway_g711a")["capture"]["packets"]
        .as_u64()
        .unwrap();
    assert_eq!(pcap_records(&r.body) as u64, packets);
    // Streamed as it is written, and the same bytes as the command line's export.
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    let store = siphon_store::Store::open(store_root()).unwrap();
    let row = store.find(BASIC).unwrap().unwrap();
    let mut direct = Vec::new();
    siphon_server::export::write_pcap(&store, &row, &mut direct).unwrap();
    assert!(
        direct.len() > 2 * 65_536,
        "{} bytes: several chunks",
        direct.len()
    );
    assert_eq!(r.body, direct);
    // A signalling-only call: its messages only.
    let busy = get(addr, "/api/v1/calls?status=486").await.json()["calls"][0]["call_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = get(addr, &format!("/api/v1/calls/{}/pcap", enc(&busy))).await;
    let msgs = get(addr, &format!("/flow?callid={}", enc(&busy)))
        .await
        .json();
    assert_eq!(pcap_records(&r.body), msgs.as_array().unwrap().len());
}

#[tokio::test]
async fn wav_renders_both_directions_with_ranges_mono_and_rate() {
    let addr = serve(None).await;
    let r = get(addr, &format!("/api/v1/calls/{BASIC}/wav")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    let (ch, rate, full) = wav_info(&r.body);
    assert_eq!((ch, rate), (2, 8000));
    // About 7 s of audio after 0.5 s of call setup.
    assert!(full > 7 * 8000 * 4 && full < 9 * 8000 * 4, "{full}");
    // Rendered to a file first, so the length is known; the same bytes as the library's.
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let store = siphon_store::Store::open(store_root()).unwrap();
    let row = store.find(BASIC).unwrap().unwrap();
    let mut direct = std::io::Cursor::new(Vec::new());
    siphon_server::export::write_wav(
        &store,
        &row,
        siphon_media::RenderOptions::default(),
        &mut direct,
    )
    .unwrap();
    assert_eq!(r.body, direct.into_inner());

    // Seconds from the call start.
    let r = get(addr, &format!("/api/v1/calls/{BASIC}/wav?start=1&end=2")).await;
    assert_eq!(wav_info(&r.body), (2, 8000, 8000 * 2 * 2));
    let r = get(
        addr,
        &format!("/api/v1/calls/{BASIC}/wav?start=1&end=2&mono=true"),
    )
    .await;
    assert_eq!(wav_info(&r.body), (1, 8000, 8000 * 2));
    let r = get(
        addr,
        &format!("/api/v1/calls/{BASIC}/wav?start=1&end=2&rate=16000"),
    )
    .await;
    assert_eq!(wav_info(&r.body), (2, 16000, 16000 * 4));

    // Seed endpoints: absolute times; the whole call without them.
    let call = get(addr, &format!("/api/v1/calls/{BASIC}")).await.json();
    let t0 = parse_time_us(call["start"].as_str().unwrap()).unwrap();
    let r = get(addr, &format!("/media?callid={BASIC}&format=wav")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(wav_info(&r.body).2, full);
    let (s, e) = (t0 as f64 / 1e6 + 1.0, t0 as f64 / 1e6 + 3.0);
    let r = get(
        addr,
        &format!("/api/sipflow/media?call_id={BASIC}&start={s:.6}&end={e:.6}&format=wav"),
    )
    .await;
    assert_eq!(wav_info(&r.body), (2, 8000, 2 * 8000 * 4));
    let (s, e) = (
        siphon_store::format_rfc3339_us(t0 + 1_000_000),
        siphon_store::format_rfc3339_us(t0 + 2_000_000),
    );
    let r = get(addr, &format!("/media?callid={BASIC}&start={s}&end={e}")).await;
    assert_eq!(wav_info(&r.body), (2, 8000, 8000 * 4));
    // A start long before the call does not pad the file with silence.
    let r = get(addr, &format!("/media?callid={BASIC}&start=0")).await;
    assert_eq!(wav_info(&r.body).2, full);
}

#[tokio::test]
async fn quality_is_served_for_graded_calls_only() {
    let addr = serve(None).await;
    let r = get(addr, &format!("/api/v1/calls/{BASIC}/quality")).await;
    assert_eq!(r.status, 200);
    let q = r.json();
    assert!(q.is_object());
    let call = get(addr, &format!("/api/v1/calls/{BASIC}")).await.json();
    assert_eq!(call["quality"], q);
    let busy = get(addr, "/api/v1/calls?status=486").await.json()["calls"][0]["call_id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = get(addr, &format!("/api/v1/calls/{}/quality", enc(&busy)))
        .await
        .error(404, "not_found");
    assert!(m.contains("no quality report"), "{m}");
    let call = get(addr, &format!("/api/v1/calls/{}", enc(&busy)))
        .await
        .json();
    assert_eq!(call["quality"], Value::Null);
}

#[tokio::test]
async fn unknown_calls_are_404_everywhere() {
    let addr = serve(None).await;
    for t in [
        "/api/v1/calls/nope@nowhere",
        "/api/v1/calls/nope@nowhere/flow",
        "/api/v1/calls/nope@nowhere/pcap",
        "/api/v1/calls/nope@nowhere/wav",
        "/api/v1/calls/nope@nowhere/quality",
        "/flow?callid=nope@nowhere",
        "/media?callid=nope@nowhere&format=wav",
        "/api/sipflow/media?call_id=nope@nowhere&format=wav",
    ] {
        let m = get(addr, t).await.error(404, "not_found");
        assert_eq!(m, "no call with Call-ID \"nope@nowhere\"", "{t}");
    }
    let m = get(addr, "/api/v2/calls").await.error(404, "not_found");
    assert_eq!(m, "no route /api/v2/calls");
    request(addr, "POST", "/api/v1/calls", &[("Content-Length", "0")])
        .await
        .error(405, "method_not_allowed");
    request(addr, "DELETE", "/health", &[])
        .await
        .error(405, "method_not_allowed");
}

#[tokio::test]
async fn bad_parameters_are_400_with_the_parameter_named() {
    let addr = serve(None).await;
    let cases = [
        (
            format!("/flow?callid={BASIC}&start=soon"),
            "start: expected Unix seconds or RFC 3339",
        ),
        (
            format!("/flow?callid={BASIC}&end=2026-13-01"),
            "end: expected Unix seconds or RFC 3339",
        ),
        (
            format!("/flow?callid={BASIC}&start=10&end=5"),
            "end: must be after start",
        ),
        ("/flow".to_string(), "callid: required"),
        ("/flow?callid=".to_string(), "callid: required"),
        ("/media?format=wav".to_string(), "callid: required"),
        (
            format!("/media?callid={BASIC}&format=mp3"),
            "format: only wav is supported, not \"mp3\"",
        ),
        (
            format!("/api/sipflow/media?call_id={BASIC}&format=ogg"),
            "format: only wav is supported, not \"ogg\"",
        ),
        (
            format!("/api/sipflow/media?call_id={BASIC}&start=x"),
            "start: expected Unix seconds or RFC 3339",
        ),
        (
            format!("/api/v1/calls/{BASIC}/flow?end=later"),
            "end: expected Unix seconds or RFC 3339",
        ),
        (
            format!("/api/v1/calls/{BASIC}/wav?start=-1"),
            "start: expected seconds from the call start or RFC 3339",
        ),
        (
            format!("/api/v1/calls/{BASIC}/wav?start=3&end=1"),
            "end: must be after start",
        ),
        (
            format!("/api/v1/calls/{BASIC}/wav?rate=5"),
            "rate: expected an integer from 1000 to 384000",
        ),
        (
            format!("/api/v1/calls/{BASIC}/wav?mono=maybe"),
            "mono: expected true or false",
        ),
        (
            "/api/v1/calls?limit=0".to_string(),
            "limit: expected an integer from 1 to 1000",
        ),
        (
            "/api/v1/calls?limit=1001".to_string(),
            "limit: expected an integer from 1 to 1000",
        ),
        (
            "/api/v1/calls?limit=ten".to_string(),
            "limit: expected an integer from 1 to 1000",
        ),
        (
            "/api/v1/calls?cursor=zz".to_string(),
            "cursor: not a cursor returned by this API",
        ),
        (
            "/api/v1/calls?from=yesterday".to_string(),
            "from: expected Unix seconds or RFC 3339",
        ),
        (
            "/api/v1/calls?from=20&to=10".to_string(),
            "to: must be after from",
        ),
        (
            "/api/v1/calls?status=99".to_string(),
            "status: expected an integer from 100 to 699",
        ),
        (
            "/api/v1/calls?min_mos=high".to_string(),
            "min_mos: expected a number from 0 to 5",
        ),
        (
            "/api/v1/calls?max_mos=NaN".to_string(),
            "max_mos: expected a number from 0 to 5",
        ),
        (
            "/api/v1/calls?verdict=meh".to_string(),
            "verdict: expected Excellent, Good, Fair, Poor or Bad",
        ),
        (
            "/api/v1/calls?dialogs=maybe".to_string(),
            "dialogs: expected false (calls), true (other dialogs) or all",
        ),
    ];
    for (t, want) in &cases {
        let m = get(addr, t).await.error(400, "bad_request");
        assert_eq!(&m, want, "{t}");
    }
    let m = get(addr, "/api/v1/calls?state=happy")
        .await
        .error(400, "bad_request");
    assert!(
        m.starts_with("state: expected one of answered, busy"),
        "{m}"
    );
    // Both spellings of the Call-ID at once is ambiguous.
    let m = get(addr, &format!("/flow?callid={BASIC}&call_id={BASIC}"))
        .await
        .error(400, "bad_request");
    assert!(m.starts_with("query: "), "{m}");
    // A Call-ID that is not UTF-8 once decoded.
    let m = get(addr, "/api/v1/calls/%FF%FE")
        .await
        .error(400, "bad_request");
    assert!(m.starts_with("call_id: "), "{m}");
}

#[tokio::test]
async fn percent_encoded_call_ids_are_decoded() {
    let addr = serve(None).await;
    // '@' raw and encoded.
    let a = get(addr, &format!("/api/v1/calls/{BASIC}")).await.json();
    let b = get(addr, &format!("/api/v1/calls/{}", enc(BASIC)))
        .await
        .json();
    assert_eq!(a, b);
    // '/', '%', ' ' and '@' encoded in the path and in the query.
    let path = enc(ODD_ID);
    assert!(path.contains("%2F") && path.contains("%25") && path.contains("%20"));
    let v = get(addr, &format!("/api/v1/calls/{path}")).await.json();
    assert_eq!(v["call_id"], ODD_ID);
    assert_eq!(v["status_code"], 486);
    let flow = get(addr, &format!("/api/v1/calls/{path}/flow"))
        .await
        .json();
    assert_eq!(flow.as_array().unwrap().len(), 3);
    assert_eq!(
        flow,
        get(addr, &format!("/flow?callid={path}")).await.json()
    );
    let r = get(addr, &format!("/api/v1/calls/{path}/pcap")).await;
    assert_eq!(pcap_records(&r.body), 3);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"odd_id_41_x@host.example.pcap\"")
    );
    // The unencoded slash is another path, not this call.
    get(addr, "/api/v1/calls/odd/id")
        .await
        .error(404, "not_found");
}

#[tokio::test]
async fn a_missing_store_is_empty_and_a_damaged_one_is_a_500() {
    let dir = scratch("broken");
    let addr = serve_root(dir.join("nothing-here"), None).await;
    let v = get(addr, "/api/v1/calls").await.json();
    assert_eq!(v, json!({"calls": [], "next_cursor": null}));
    get(addr, &format!("/api/v1/calls/{BASIC}"))
        .await
        .error(404, "not_found");

    let root = dir.join("damaged");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("index.sqlite"),
        b"this is not a database, not at all....",
    )
    .unwrap();
    let addr = serve_root(root, None).await;
    let m = get(addr, "/api/v1/calls").await.error(500, "internal");
    assert!(m.starts_with("store: "), "{m}");
    get(addr, &format!("/flow?callid={BASIC}"))
        .await
        .error(500, "internal");
    // The server keeps serving.
    assert_eq!(get(addr, "/health").await.status, 200);
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let doc: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.0."), "{version}");
    let paths = doc["paths"].as_object().unwrap();
    let routes: HashSet<&str> = route_paths().into_iter().collect();
    for r in &routes {
        let p = paths
            .get(*r)
            .unwrap_or_else(|| panic!("{r} is not in openapi.json"));
        assert!(p["get"].is_object(), "{r}: no get");
        assert!(p["get"]["responses"]["200"].is_object(), "{r}: no 200");
    }
    for p in paths.keys() {
        assert!(
            routes.contains(p.as_str()),
            "{p} is documented but not served"
        );
    }
    // Every $ref points at a defined schema, parameter or response.
    let text = OPENAPI_JSON;
    for part in text.split("\"$ref\": \"#/").skip(1) {
        let target = &part[..part.find('"').unwrap()];
        let mut node = &doc;
        for seg in target.split('/') {
            node = &node[seg];
        }
        assert!(!node.is_null(), "dangling $ref #/{target}");
    }
    let addr = serve(Some(TOKEN)).await;
    let r = request(
        addr,
        "GET",
        "/api/openapi.json",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(r.json(), doc);
}

#[tokio::test]
async fn exports_wait_for_a_free_slot_and_give_it_back() {
    let slots = Arc::new(tokio::sync::Semaphore::new(0));
    let addr = serve_slots(store_root().to_path_buf(), None, slots.clone()).await;
    for path in [
        format!("/api/v1/calls/{BASIC}/pcap"),
        format!("/api/v1/calls/{BASIC}/wav"),
    ] {
        let req = tokio::spawn(async move { get(addr, &path).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!req.is_finished(), "an export ran without a slot");
        // Other requests do not need one.
        assert_eq!(
            get(addr, &format!("/api/v1/calls/{BASIC}")).await.status,
            200
        );
        slots.add_permits(1);
        let r = req.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body.len() > 10_000);
        // The slot comes back once the export is done.
        let t0 = std::time::Instant::now();
        while slots.available_permits() != 1 {
            assert!(t0.elapsed() < Duration::from_secs(10), "slot not returned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        slots.forget_permits(1);
    }
    // An unknown call is still a 404 with a JSON error, and its slot comes back too.
    slots.add_permits(1);
    get(addr, "/api/v1/calls/nope@nowhere/pcap")
        .await
        .error(404, "not_found");
    assert_eq!(slots.available_permits(), 1);
}
