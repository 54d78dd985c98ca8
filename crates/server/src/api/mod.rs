//! The collector's HTTP API (all `GET`): health and Prometheus metrics, the seed-compatible
//! `/flow` and `/media`, call search and per-call flow, pcap, WAV and quality under
//! `/api/v1`, and the OpenAPI description at `/api/openapi.json` (`docs/api.md`).
//!
//! Promises:
//! - bodies of errors are `{"error": <stable kind>, "message": <text>}` with 400, 401, 404,
//!   405 or 500; a failing request never takes the server down;
//! - when a token is configured, everything but `/health` and `/metrics` needs
//!   `Authorization: Bearer <token>`, compared in constant time;
//! - store work (SQLite, decompression, rendering) runs on the blocking pool;
//! - no endpoint takes a file path: calls are addressed by Call-ID only.

pub mod json;
mod params;

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use siphon_media::RenderOptions;
use siphon_store::{CallQuery, CallRow, ReadPool, Store, StoreError};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::export::{self, message_json, ExportError};
pub use json::{call_json, stream_json};
use params::{abs_time, check_range, flag, float_in, int_in, rel_time, Cursor};

/// The OpenAPI 3.0 description of every route, served at `/api/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../../../docs/openapi.json");

/// Rows per search page when `limit` is not given, and the most a page may ask for.
pub const DEFAULT_LIMIT: usize = 100;
/// See [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: usize = 1000;

/// What the API serves from.
#[derive(Clone)]
pub struct ApiState {
    /// Root of the call store (read-only access; a missing store reads as empty).
    pub store_root: PathBuf,
    /// Prometheus text exposition for `/metrics`.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Bearer token required on every route but `/health` and `/metrics`; an empty token
    /// matches nothing.
    pub auth_token: Option<String>,
    /// Extra fields merged into the `/health` object (an object's fields; they may override
    /// `status`).
    pub health: Arc<dyn Fn() -> Value + Send + Sync>,
    /// Slots for pcap and WAV exports (see [`export_slots`]).
    pub exports: Arc<Semaphore>,
    /// Index connections kept open between requests; the owner sweeps it (see
    /// [`ReadPool::sweep`]).
    pub read_pool: Arc<ReadPool>,
}

/// pcap and WAV exports built at once; further requests wait for a free slot. Each reads its
/// call a block at a time (some 15 MB whatever the call's length) and a WAV takes temporary
/// disk, so the slots bound what exports take of memory, disk and cores.
pub const MAX_EXPORTS: usize = 4;

/// The export slots an [`ApiState`] starts with.
pub fn export_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_EXPORTS))
}

/// Bytes of a streamed response handed to the connection at a time.
const CHUNK_BYTES: usize = 64 << 10;

/// What a [`BodyWriter`] hands to its body: bytes, then the mark that the export is complete.
enum Piece {
    Data(Vec<u8>),
    End,
}

/// A `Write` on the blocking pool whose bytes go, in chunks, to a streamed response body. A
/// client that goes away makes the next write fail, which stops the export.
struct BodyWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Piece>,
    /// How long a chunk may wait for the client before the export gives up.
    stall: std::time::Duration,
}

/// How long an export waits for a client that has stopped reading.
const EXPORT_STALL: std::time::Duration = std::time::Duration::from_secs(60);

impl BodyWriter {
    fn new(tx: mpsc::Sender<Piece>) -> Self {
        BodyWriter {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx,
            stall: EXPORT_STALL,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.push(Piece::Data(chunk))
    }

    /// Hands an item to the body, waiting at most `stall` for the client to make room: a
    /// client that stops reading would otherwise hold its export slot for ever.
    fn push(&self, mut item: Piece) -> std::io::Result<()> {
        let t0 = std::time::Instant::now();
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "the client went away",
                    ))
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if t0.elapsed() >= self.stall {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the client stopped reading",
                        ));
                    }
                    item = back;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }

    /// The export is complete: the rest goes, then the end mark. A writer dropped without it
    /// (the export failed) cuts the connection, so the client sees a failed transfer rather
    /// than a short file that looks complete.
    fn finish(mut self) -> std::io::Result<()> {
        self.send()?;
        self.push(Piece::End)
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The receiving end of a [`BodyWriter`], as a response body: an error (which cuts the
/// connection) when the writer went away without its end mark.
struct Chunks {
    rx: mpsc::Receiver<Piece>,
    ended: bool,
}

impl Chunks {
    fn new(rx: mpsc::Receiver<Piece>) -> Self {
        Chunks { rx, ended: false }
    }
}

impl futures_core::Stream for Chunks {
    type Item = std::io::Result<Vec<u8>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Piece::Data(d))) => Poll::Ready(Some(Ok(d))),
            Poll::Ready(Some(Piece::End)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(std::io::Error::other(
                    "the export stopped before its end",
                ))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Waits for an export slot.
async fn export_slot(s: &ApiState) -> Result<OwnedSemaphorePermit, ApiError> {
    s.exports
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Internal("exports are shut down".into()))
}

/// API failures, each answered with its status and `{"error": kind, "message": text}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is missing or malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong bearer token (401).
    #[error("missing or invalid bearer token (send Authorization: Bearer <token>)")]
    Unauthorized,
    /// No such call, report or route (404).
    #[error("{0}")]
    NotFound(String),
    /// Anything but GET (405).
    #[error("only GET is supported")]
    MethodNotAllowed,
    /// The store failed (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Stable snake_case label, the `error` field of the body.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Internal(_) => "internal",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // Retention deleted the call's bucket while it was read: the call is no more.
            StoreError::Gone(_) => ApiError::NotFound(format!("call {e}")),
            e => ApiError::Internal(format!("store: {e}")),
        }
    }
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Store(e @ StoreError::Gone(_)) => e.into(),
            e => ApiError::Internal(format!("export: {e}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.kind(), "message": self.to_string() });
        let mut r = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"siphon\""),
            );
        }
        r
    }
}

/// Query parameters, with malformed query strings answered as JSON 400.
struct Params<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))
    }
}

/// The percent-decoded `{call_id}` path segment.
struct CallIdPath(String);

impl<S: Send + Sync> FromRequestParts<S> for CallIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| CallIdPath(p.0))
            .map_err(|e| ApiError::BadRequest(format!("call_id: {}", e.body_text())))
    }
}

/// Who may use a route.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Open,
    Token,
}

/// Every route: path, access, handler. The router and [`route_paths`] both come from here.
fn routes() -> Vec<(&'static str, Access, MethodRouter<ApiState>)> {
    use Access::{Open, Token};
    vec![
        ("/health", Open, get(health)),
        ("/metrics", Open, get(metrics)),
        ("/flow", Token, get(seed_flow)),
        ("/media", Token, get(seed_media)),
        ("/api/sipflow/media", Token, get(seed_media)),
        ("/api/openapi.json", Token, get(openapi)),
        ("/api/v1/calls", Token, get(search_calls)),
        ("/api/v1/calls/{call_id}", Token, get(call)),
        ("/api/v1/calls/{call_id}/flow", Token, get(call_flow)),
        ("/api/v1/calls/{call_id}/pcap", Token, get(call_pcap)),
        ("/api/v1/calls/{call_id}/wav", Token, get(call_wav)),
        ("/api/v1/calls/{call_id}/quality", Token, get(call_quality)),
    ]
}

/// Paths of every route the router serves (all `GET`), in OpenAPI template syntax.
pub fn route_paths() -> Vec<&'static str> {
    routes().into_iter().map(|r| r.0).collect()
}

/// The API router.
pub fn router(state: ApiState) -> Router {
    let mut open = Router::new();
    let mut guarded = Router::new();
    for (path, access, handler) in routes() {
        match access {
            Access::Open => open = open.route(path, handler),
            Access::Token => guarded = guarded.route(path, handler),
        }
    }
    let guarded = guarded.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    open.merge(guarded)
        .fallback(no_route)
        .method_not_allowed_fallback(not_get)
        .with_state(state)
}

/// Equality whose time depends only on the expected token's length.
fn ct_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

fn token_ok(req: &Request, token: &str) -> bool {
    let Some(v) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, given)) = v.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && ct_eq(given.trim().as_bytes(), token.as_bytes())
}

async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    match &s.auth_token {
        Some(t) if !token_ok(&req, t) => ApiError::Unauthorized.into_response(),
        _ => next.run(req).await,
    }
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}", uri.path()))
}

async fn not_get() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Runs store work on the blocking pool; a panic there becomes a 500.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Internal("request processing failed".into()))?
}

/// The store, or `None` when nothing was stored yet.
fn open_store(s: &ApiState) -> Result<Option<Store>, ApiError> {
    match Store::open_pooled(&s.store_root, s.read_pool.clone()) {
        Ok(s) => Ok(Some(s)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn find_call(s: &ApiState, call_id: &str) -> Result<(Store, CallRow), ApiError> {
    find_call_before(s, call_id, None)
}

/// [`find_call`] for a request whose time range ends at `end`: the call started before it,
/// so older buckets are tried first (see [`Store::find_started_before`]).
fn find_call_before(
    s: &ApiState,
    call_id: &str,
    end: Option<i64>,
) -> Result<(Store, CallRow), ApiError> {
    let not_found = || ApiError::NotFound(format!("no call with Call-ID {call_id:?}"));
    let store = open_store(s)?.ok_or_else(not_found)?;
    let row = store
        .find_started_before(call_id, end)?
        .ok_or_else(not_found)?;
    Ok((store, row))
}

fn required(name: &str, v: Option<String>) -> Result<String, ApiError> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("{name}: required")))
}

/// A file name for downloads: the Call-ID with anything unusual replaced.
fn file_stem(call_id: &str) -> String {
    let s: String = call_id
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "call".into()
    } else {
        s
    }
}

fn file_response(
    content_type: &'static str,
    disposition: &'static str,
    name: &str,
    body: impl Into<Body>,
) -> Response {
    let cd = HeaderValue::from_str(&format!("{disposition}; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static(disposition));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, cd),
        ],
        body.into(),
    )
        .into_response()
}

async fn health(State(s): State<ApiState>) -> Json<Value> {
    let mut m = serde_json::Map::new();
    m.insert("status".into(), json!("ok"));
    match (s.health)() {
        Value::Object(o) => m.extend(o),
        Value::Null => {}
        other => {
            m.insert("info".into(), other);
        }
    }
    Json(Value::Object(m))
}

async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (s.metrics)(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// Parameters of the seed-compatible `/flow` and `/media`.
#[derive(Deserialize)]
struct SeedQuery {
    #[serde(alias = "call_id")]
    callid: Option<String>,
    start: Option<String>,
    end: Option<String>,
    format: Option<String>,
}

/// `start`/`end` of a flow.
#[derive(Deserialize)]
struct RangeQuery {
    start: Option<String>,
    end: Option<String>,
}

async fn flow_json(
    s: ApiState,
    call_id: String,
    start: &Option<String>,
    end: &Option<String>,
) -> Result<Json<Value>, ApiError> {
    let (from, to) = (abs_time("start", start)?, abs_time("end", end)?);
    check_range("start", from, "end", to)?;
    let v = blocking(move || {
        let (store, row) = find_call_before(&s, &call_id, to)?;
        let msgs = export::messages(&store, &row, from, to)?;
        Ok(Value::Array(msgs.iter().map(message_json).collect()))
    })
    .await?;
    Ok(Json(v))
}

async fn seed_flow(
    State(s): State<ApiState>,
    Params(q): Params<SeedQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = required("callid", q.callid)?;
    flow_json(s, id, &q.start, &q.end).await
}

async fn call_flow(
    State(s): State<ApiState>,
    CallIdPath(id): CallIdPath,
    Params(q): Params<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    flow_json(s, id, &q.start, &q.end).await
}

/// How a WAV's range is given: absolute times, or `seconds from call start | RFC 3339`.
enum WavRange {
    Absolute(Option<String>, Option<String>),
    FromCallStart(Option<String>, Option<String>),
}

async fn wav_response(
    s: ApiState,
    call_id: String,
    range: WavRange,
    mono: bool,
    rate: Option<u32>,
) -> Result<Response, ApiError> {
    let name = format!("{}.wav", file_stem(&call_id));
    // Absolute times are checked before touching the store.
    if let WavRange::Absolute(a, b) = &range {
        let (from, to) = (abs_time("start", a)?, abs_time("end", b)?);
        check_range("start", from, "end", to)?;
    }
    let slot = export_slot(&s).await?;
    let body = blocking(move || {
        let end = match &range {
            WavRange::Absolute(_, b) => abs_time("end", b)?,
            WavRange::FromCallStart(..) => None,
        };
        let (store, row) = find_call_before(&s, &call_id, end)?;
        let (from, to) = match &range {
            WavRange::Absolute(a, b) => (abs_time("start", a)?, abs_time("end", b)?),
            WavRange::FromCallStart(a, b) => (
                rel_time("start", a, row.start_us)?,
                rel_time("end", b, row.start_us)?,
            ),
        };
        check_range("start", from, "end", to)?;
        // Never render silence before the call: the WAV would be as long as the gap.
        let start_us = from.map(|f| f.max(row.start_us));
        let end_us = to.map(|t| t.max(start_us.unwrap_or(row.start_us)));
        let opts = RenderOptions {
            start_us,
            end_us,
            mono,
            rate,
        };
        // Rendered to an unnamed temporary file, not to memory: an hour of stereo audio is
        // 115 MB at 8 kHz, and its length is only known at the end.
        let mut file = export::scratch_file()
            .map_err(|e| ApiError::Internal(format!("no room to render the WAV: {e}")))?;
        let mut out = std::io::BufWriter::new(&mut file);
        export::write_wav(&store, &row, opts, &mut out)?;
        out.flush()
            .map_err(|e| ApiError::Internal(format!("writing the rendered WAV: {e}")))?;
        drop(out);
        let len = file
            .seek(SeekFrom::End(0))
            .and_then(|n| file.seek(SeekFrom::Start(0)).map(|_| n))
            .map_err(|e| ApiError::Internal(format!("reading the rendered WAV: {e}")))?;
        Ok((file, len, slot))
    })
    .await?;
    let (mut file, len, slot) = body;
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut w = BodyWriter::new(tx);
        if std::io::copy(&mut file, &mut w).is_ok() {
            let _ = w.finish();
        }
    });
    let mut resp = file_response(
        "audio/wav",
        "inline",
        &name,
        Body::from_stream(Chunks::new(rx)),
    );
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(resp)
}

async fn seed_media(
    State(s): State<ApiState>,
    Params(q): Params<SeedQuery>,
) -> Result<Response, ApiError> {
    if let Some(f) = q.format.as_deref().filter(|f| !f.is_empty()) {
        if !f.eq_ignore_ascii_case("wav") {
            return Err(ApiError::BadRequest(format!(
                "format: only wav is supported, not {f:?}"
            )));
        }
    }
    let id = required("callid", q.callid)?;
    wav_response(s, id, WavRange::Absolute(q.start, q.end), false, None).await
}

/// Parameters of `/api/v1/calls/{call_id}/wav`.
#[derive(Deserialize)]
struct WavQuery {
    start: Option<String>,
    end: Option<String>,
    mono: Option<String>,
    rate: Option<String>,
}

async fn call_wav(
    State(s): State<ApiState>,
    CallIdPath(id): CallIdPath,
    Params(q): Params<WavQuery>,
) -> Result<Response, ApiError> {
    let mono = flag("mono", &q.mono)?;
    let rate = int_in("rate", &q.rate, 1000u32..=384_000)?;
    wav_response(s, id, WavRange::FromCallStart(q.start, q.end), mono, rate).await
}

async fn call_pcap(
    State(s): State<ApiState>,
    CallIdPath(id): CallIdPath,
) -> Result<Response, ApiError> {
    let name = format!("{}.pcap", file_stem(&id));
    let slot = export_slot(&s).await?;
    // Errors (unknown call, damaged store) are answered before the body starts; the pcap is
    // then streamed as it is written rather than built whole in memory first.
    let (store, row, plan) = blocking(move || {
        let (store, row) = find_call(&s, &id)?;
        let plan = export::plan_pcap(&store, &row)?;
        Ok((store, row, plan))
    })
    .await?;
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut w = BodyWriter::new(tx);
        if export::write_pcap_planned(&store, &row, &plan, &mut w).is_ok() {
            let _ = w.finish();
        }
    });
    Ok(file_response(
        "application/vnd.tcpdump.pcap",
        "attachment",
        &name,
        Body::from_stream(Chunks::new(rx)),
    ))
}

fn quality_value(row: &CallRow) -> Result<Option<Value>, ApiError> {
    row.quality_json
        .as_deref()
        .map(|q| {
            serde_json::from_slice(q).map_err(|e| {
                ApiError::Internal(format!(
                    "quality report of {:?} is damaged: {e}",
                    row.call_id_str()
                ))
            })
        })
        .transpose()
}

async fn call(
    State(s): State<ApiState>,
    CallIdPath(id): CallIdPath,
) -> Result<Json<Value>, ApiError> {
    let v = blocking(move || {
        let (_, row) = find_call(&s, &id)?;
        let mut v = call_json(&row);
        if let Some(o) = v.as_object_mut() {
            // A damaged report does not hide the call; `/quality` reports the damage.
            let q = quality_value(&row).ok().flatten().unwrap_or(Value::Null);
            o.insert("quality".into(), q);
        }
        Ok(v)
    })
    .await?;
    Ok(Json(v))
}

async fn call_quality(
    State(s): State<ApiState>,
    CallIdPath(id): CallIdPath,
) -> Result<Json<Value>, ApiError> {
    let v = blocking(move || {
        let (_, row) = find_call(&s, &id)?;
        quality_value(&row)?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "call {id:?} has no quality report yet (it is still open, or was never graded)"
            ))
        })
    })
    .await?;
    Ok(Json(v))
}

/// Parameters of `/api/v1/calls`.
#[derive(Deserialize)]
struct SearchQuery {
    from: Option<String>,
    to: Option<String>,
    caller: Option<String>,
    callee: Option<String>,
    status: Option<String>,
    state: Option<String>,
    min_mos: Option<String>,
    max_mos: Option<String>,
    verdict: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    dialogs: Option<String>,
}

/// Call outcomes a search may ask for.
const STATES: [&str; 8] = [
    "answered",
    "busy",
    "cancelled",
    "rejected",
    "no-answer",
    "failed",
    "in-progress",
    "ok",
];

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn search_query(q: &SearchQuery) -> Result<CallQuery, ApiError> {
    let from_us = abs_time("from", &q.from)?;
    let to_us = abs_time("to", &q.to)?;
    check_range("from", from_us, "to", to_us)?;
    let state = nonempty(q.state.clone());
    if let Some(st) = &state {
        if !STATES.contains(&st.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "state: expected one of {}",
                STATES.join(", ")
            )));
        }
    }
    let verdict = nonempty(q.verdict.clone());
    if let Some(v) = &verdict {
        if siphon_store::index::verdict_code(v).is_none() {
            return Err(ApiError::BadRequest(
                "verdict: expected Excellent, Good, Fair, Poor or Bad".into(),
            ));
        }
    }
    let dialogs = nonempty(q.dialogs.clone()).map(|d| d.trim().to_ascii_lowercase());
    let (include_dialogs, only_dialogs) = match dialogs.as_deref() {
        None | Some("false" | "0" | "no") => (false, false),
        Some("true" | "1" | "yes" | "only") => (false, true),
        Some("all") => (true, false),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "dialogs: expected false (calls), true (other dialogs) or all".into(),
            ))
        }
    };
    Ok(CallQuery {
        from_us,
        to_us,
        caller: nonempty(q.caller.clone()),
        callee: nonempty(q.callee.clone()),
        status: int_in("status", &q.status, 100u16..=699)?,
        state,
        include_dialogs,
        only_dialogs,
        min_mos: float_in("min_mos", &q.min_mos, 0.0..=5.0)?,
        max_mos: float_in("max_mos", &q.max_mos, 0.0..=5.0)?,
        verdict,
        limit: 0,
    })
}

/// One page of a search: up to `limit` rows after `cursor`, and the cursor of the next page.
fn search_page(
    s: &ApiState,
    mut q: CallQuery,
    cursor: Option<Cursor>,
    limit: usize,
) -> Result<(Vec<CallRow>, Option<Cursor>), ApiError> {
    let Some(store) = open_store(s)? else {
        return Ok((Vec::new(), None));
    };
    if let Some(c) = &cursor {
        q.from_us = Some(q.from_us.map_or(c.start_us, |f| f.max(c.start_us)));
    }
    // Rows sharing the cursor's start time may precede it, so fetch a margin; when the
    // fetch is cut, rows at the last start time may be incomplete and wait for the next
    // page (the fetch grows if nothing else is left).
    let mut fetch = limit.saturating_add(33);
    let mut rows = loop {
        q.limit = fetch;
        let rows = store.search(&q)?;
        let cut = rows.len() >= fetch;
        let boundary = rows.last().map(|r| r.start_us).filter(|_| cut);
        let kept: Vec<CallRow> = rows
            .into_iter()
            .filter(|r| {
                cursor
                    .as_ref()
                    .is_none_or(|c| c.is_before(r.start_us, &r.call_id))
                    && boundary.is_none_or(|b| r.start_us < b)
            })
            .collect();
        if kept.len() > limit || !cut {
            break kept;
        }
        fetch = fetch.saturating_mul(4);
    };
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| Cursor {
            start_us: r.start_us,
            call_id: r.call_id.clone(),
        })
    } else {
        None
    };
    Ok((rows, next))
}

async fn search_calls(
    State(s): State<ApiState>,
    Params(q): Params<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = int_in("limit", &q.limit, 1usize..=MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let cursor = match nonempty(q.cursor.clone()) {
        None => None,
        Some(c) => Some(Cursor::decode(c.trim()).ok_or_else(|| {
            ApiError::BadRequest("cursor: not a cursor returned by this API".into())
        })?),
    };
    let query = search_query(&q)?;
    let (rows, next) = blocking(move || search_page(&s, query, cursor, limit)).await?;
    Ok(Json(json!({
        "calls": rows.iter().map(call_json).collect::<Vec<_>>(),
        "next_cursor": next.map(|c| c.encode()),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(p: Piece) -> Vec<u8> {
        match p {
            Piece::Data(d) => d,
            Piece::End => panic!("end mark where data was expected"),
        }
    }

    #[test]
    fn body_writer_sends_whole_chunks_and_fails_once_the_client_is_gone() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut w = BodyWriter::new(tx);
        w.write_all(&[7u8; CHUNK_BYTES - 1]).unwrap();
        assert!(
            rx.try_recv().is_err(),
            "nothing sent before a chunk is full"
        );
        w.write_all(&[8u8; 2]).unwrap();
        assert_eq!(data(rx.try_recv().unwrap()).len(), CHUNK_BYTES + 1);
        w.write_all(b"tail").unwrap();
        w.flush().unwrap();
        assert_eq!(data(rx.try_recv().unwrap()), b"tail");
        // The client went away: the export's next chunk fails, so it stops.
        drop(rx);
        w.write_all(b"more").unwrap();
        let e = w.flush().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        assert!(w.write_all(&[0u8; CHUNK_BYTES]).is_err());
    }

    #[test]
    fn body_writer_gives_up_on_a_client_that_stops_reading() {
        let (tx, _rx) = mpsc::channel(1);
        let mut w = BodyWriter::new(tx);
        w.stall = std::time::Duration::from_millis(50);
        // The first chunk fills the channel; nobody takes it, so the second times out.
        w.write_all(&[1u8; CHUNK_BYTES]).unwrap();
        let t0 = std::time::Instant::now();
        let e = w.write_all(&[2u8; CHUNK_BYTES]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(t0.elapsed() >= std::time::Duration::from_millis(50));
    }

    /// Everything the body yields, until its end.
    fn drain(mut c: Chunks) -> Vec<std::io::Result<Vec<u8>>> {
        use futures_core::Stream;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        loop {
            match std::pin::Pin::new(&mut c).poll_next(&mut cx) {
                std::task::Poll::Ready(Some(item)) => out.push(item),
                std::task::Poll::Ready(None) => return out,
                std::task::Poll::Pending => panic!("the writer is gone: no waiting"),
            }
        }
    }

    #[test]
    fn a_finished_export_ends_its_body_and_an_unfinished_one_cuts_it() {
        let (tx, rx) = mpsc::channel(8);
        let mut w = BodyWriter::new(tx);
        w.write_all(b"whole").unwrap();
        w.finish().unwrap();
        let got = drain(Chunks::new(rx));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap(), b"whole");

        // Dropped without `finish` (the export failed): what was sent, then an error, which
        // makes the server cut the connection instead of ending the body.
        let (tx, rx) = mpsc::channel(8);
        let mut w = BodyWriter::new(tx);
        w.write_all(b"partial").unwrap();
        w.flush().unwrap();
        drop(w);
        let got = drain(Chunks::new(rx));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap(), b"partial");
        assert!(got[1].is_err());
    }

    #[test]
    fn token_comparison_needs_the_exact_token() {
        assert!(ct_eq(b"s3cret", b"s3cret"));
        assert!(!ct_eq(b"s3cre", b"s3cret"));
        assert!(!ct_eq(b"s3cret!", b"s3cret"));
        assert!(!ct_eq(b"S3cret", b"s3cret"));
        assert!(!ct_eq(b"", b"s3cret"));
        let req = |v: &str| {
            Request::builder()
                .header(header::AUTHORIZATION, v)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert!(token_ok(&req("Bearer s3cret"), "s3cret"));
        assert!(token_ok(&req("bearer  s3cret "), "s3cret"));
        assert!(!token_ok(&req("Basic s3cret"), "s3cret"));
        assert!(!token_ok(&req("Bearer "), ""));
        assert!(!token_ok(&req("Bearer"), "s3cret"));
    }

    #[test]
    fn errors_have_stable_kinds_and_statuses() {
        assert_eq!(ApiError::BadRequest("x".into()).kind(), "bad_request");
        assert_eq!(ApiError::Unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            ApiError::NotFound("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        let e: ApiError = StoreError::Invalid("broken".into()).into();
        assert_eq!(e.kind(), "internal");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let e: ApiError = ExportError::Store(StoreError::Gone("/s/20261101".into())).into();
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            e.to_string(),
            "call /s/20261101: deleted by retention while it was read"
        );
    }

    #[test]
    fn download_names_keep_only_safe_characters() {
        assert_eq!(file_stem("1-5790@127.0.0.1"), "1-5790@127.0.0.1");
        assert_eq!(file_stem("a/b\"c\r\n"), "a_b_c__");
        assert_eq!(file_stem(""), "call");
    }

    #[test]
    fn openapi_document_parses() {
        let v: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3.0."));
    }
}
