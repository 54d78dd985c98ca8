//! Ingest listeners and the pipeline thread.
//!
//! ```text
//! HEP/UDP thread ─┐
//! HEP/TCP threads ├─ batches ─► bounded queue ─► pipeline thread: Pipeline → StoreWriter
//! capture thread ─┘   (full: listeners wait)         tick each second: state machine,
//!                                                      interval flush, metrics, retention
//! ```
//! When the queue is full, listeners stop reading until there is room
//! (`siphon_queue_wait_seconds_total`): TCP then holds its sender back, and UDP datagrams and
//! captured packets wait in the kernel's buffers, whose overflow the kernel counts; those
//! drops are read and exported (`siphon_dropped_packets{reason="kernel"|"interface"}`).

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use siphon_calls::{CallRef, CallSummary};
use siphon_ingest::{IngestStats, Pipeline, Record, Sink, SIP_METHODS};
use siphon_store::{StoreWriter, WriteStats};
use siphon_wire::capture::Frame;
use siphon_wire::link::LinkType;

use crate::config::Config;
use crate::metrics::{ClassLabel, MethodLabel, Metrics, ReasonLabel, SourceLabel, TypeLabel};

/// Packets per batch handed from a listener to the pipeline.
const BATCH: usize = 256;
/// Largest HEP packet accepted over TCP.
const MAX_HEP_TCP: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    HepUdp,
    HepTcp,
    HepTls,
    Interface(LinkType),
}

impl Source {
    fn label(&self) -> &'static str {
        match self {
            Source::HepUdp => "hep_udp",
            Source::HepTcp => "hep_tcp",
            Source::HepTls => "hep_tls",
            Source::Interface(_) => "interface",
        }
    }
}

/// Packets from one listener: one buffer, (time, start, length) per packet.
struct Batch {
    source: Source,
    buf: Vec<u8>,
    items: Vec<(i64, usize, usize)>,
}

impl Batch {
    fn new(source: Source) -> Self {
        // A fresh batch starts small and grows with what it carries: a listener that drains
        // often sends small batches, and while the pipeline is busy (a flush) thousands of
        // them may wait, so preallocating a full batch each would fault in (and zero) memory
        // that is never used.
        Batch {
            source,
            buf: Vec::with_capacity(BATCH * 32),
            items: Vec::with_capacity(BATCH / 8),
        }
    }

    fn push(&mut self, ts_us: i64, data: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(data);
        self.items.push((ts_us, start, data.len()));
    }

    fn is_full(&self) -> bool {
        self.items.len() >= BATCH
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// What waits in the queue to the pipeline.
#[derive(Default)]
struct QueueLoad {
    packets: AtomicUsize,
    bytes: AtomicUsize,
    /// The most `packets` since the pipeline last read it.
    peak: AtomicUsize,
}

impl QueueLoad {
    /// The pipeline took `b` off the queue.
    fn taken(&self, b: &Batch) {
        self.packets.fetch_sub(b.items.len(), Ordering::AcqRel);
        self.bytes.fetch_sub(b.buf.len(), Ordering::AcqRel);
    }
}

/// Bytes a queued packet may take on average: the queue holds at most `queue_packets` packets
/// and `queue_packets` KiB, so large packets (HEP can carry 64 KiB) cannot make it huge.
const QUEUE_BYTES_PER_PACKET: usize = 1024;

/// The listeners' end of the queue to the pipeline, bounded in packets and bytes (not batches:
/// a listener that drains its socket often sends small batches).
#[derive(Clone)]
struct QueueTx {
    tx: SyncSender<Batch>,
    /// Sent and not yet taken by the pipeline.
    load: Arc<QueueLoad>,
    limit: usize,
    byte_limit: usize,
    /// Batches the pipeline is done with, for reuse: a listener fills warm buffers instead of
    /// asking the allocator for fresh pages (which the kernel must zero) for every batch.
    pool: SharedPool,
}

/// Buffer bytes kept in empty batches for reuse. While the pipeline flushes, listeners fill
/// hundreds of batches (one per socket read); once it has caught up they come back, and
/// those kept spare the next flush's backlog fresh pages. Memory at rest stays below the
/// queue's own byte limit (`queue_packets` KiB).
const POOL_MAX_BYTES: usize = 64 << 20;
/// Largest buffer a kept batch may have.
const POOL_MAX_BUF: usize = 1 << 20;

/// Empty batches for reuse, and the capacity of their buffers.
#[derive(Default)]
struct Pool {
    batches: Vec<Batch>,
    bytes: usize,
}

type SharedPool = Arc<std::sync::Mutex<Pool>>;

impl QueueTx {
    /// An empty batch, reused when one is free.
    fn batch(&self, source: Source) -> Batch {
        let reused = self.pool.lock().ok().and_then(|mut p| {
            let b = p.batches.pop()?;
            p.bytes -= b.buf.capacity();
            Some(b)
        });
        match reused {
            Some(mut b) => {
                b.source = source;
                b.buf.clear();
                b.items.clear();
                b
            }
            None => Batch::new(source),
        }
    }
}

/// Gives a processed batch back to the listeners.
fn recycle(pool: &std::sync::Mutex<Pool>, batch: Batch) {
    // A batch that grew for large packets goes back to the allocator instead.
    let cap = batch.buf.capacity();
    if cap > POOL_MAX_BUF {
        return;
    }
    if let Ok(mut p) = pool.lock() {
        if p.bytes + cap <= POOL_MAX_BYTES {
            p.bytes += cap;
            p.batches.push(batch);
        }
    }
}

/// A listener's counters, looked up once (a label lookup per batch would cost a string).
struct SendCounters {
    packets: prometheus_client::metrics::counter::Counter,
    bytes: prometheus_client::metrics::counter::Counter,
    queue_full: prometheus_client::metrics::counter::Counter,
    waited: prometheus_client::metrics::counter::Counter<f64, std::sync::atomic::AtomicU64>,
}

/// How often a stream listener looks again for room in a full queue.
const QUEUE_RETRY: Duration = Duration::from_millis(1);

impl SendCounters {
    fn new(source: Source, metrics: &Metrics) -> Self {
        let label = SourceLabel {
            source: source.label().to_string(),
        };
        SendCounters {
            packets: metrics.received_packets.get_or_create(&label).clone(),
            bytes: metrics.received_bytes.get_or_create(&label).clone(),
            queue_full: metrics
                .drops
                .get_or_create(&ReasonLabel {
                    reason: "queue_full".into(),
                })
                .clone(),
            waited: metrics.queue_wait_seconds.get_or_create(&label).clone(),
        }
    }

    /// Hands a batch to the pipeline, or counts it as dropped when the queue is full; false
    /// when the pipeline is gone.
    fn send(&mut self, q: &QueueTx, batch: Batch) -> bool {
        self.count(&batch);
        match enqueue(q, batch) {
            Enqueued::Sent => true,
            Enqueued::Full(b) => {
                self.queue_full.inc_by(b.items.len() as u64);
                true
            }
            Enqueued::Gone => false,
        }
    }

    /// [`send`](Self::send), but while the queue is full it waits instead of dropping, and
    /// stops reading meanwhile. Over TCP, flow control then holds the sender back (the socket
    /// buffers, then the sender's own queue), so a pipeline that stalls for a moment (a slow
    /// disk) loses nothing. Over UDP and capture, packets wait in the socket or capture
    /// buffer, and beyond it the kernel drops them (counted as `kernel` or `interface`):
    /// under overload the core is not spent reading packets only to drop them. The wait is
    /// counted in `siphon_queue_wait_seconds_total`. When the collector stops, a batch still
    /// waiting is dropped and counted as `queue_full`.
    fn send_waiting(&mut self, q: &QueueTx, batch: Batch, stop: &AtomicBool) -> bool {
        self.count(&batch);
        let mut batch = batch;
        let mut since: Option<Instant> = None;
        loop {
            match enqueue(q, batch) {
                Enqueued::Sent => break,
                Enqueued::Gone => return false,
                Enqueued::Full(b) => {
                    if stop.load(Ordering::Relaxed) {
                        self.queue_full.inc_by(b.items.len() as u64);
                        break;
                    }
                    since.get_or_insert_with(Instant::now);
                    batch = b;
                    std::thread::sleep(QUEUE_RETRY);
                }
            }
        }
        if let Some(t) = since {
            self.waited.inc_by(t.elapsed().as_secs_f64());
        }
        true
    }

    fn count(&self, batch: &Batch) {
        self.packets.inc_by(batch.items.len() as u64);
        self.bytes.inc_by(batch.buf.len() as u64);
    }
}

/// What became of a batch handed to the queue.
enum Enqueued {
    Sent,
    /// No room: the batch comes back.
    Full(Batch),
    /// The pipeline is gone.
    Gone,
}

fn enqueue(q: &QueueTx, batch: Batch) -> Enqueued {
    if batch.items.is_empty() {
        return Enqueued::Sent;
    }
    let n = batch.items.len();
    let bytes = batch.buf.len();
    let queued = q.load.packets.fetch_add(n, Ordering::AcqRel) + n;
    let over = queued > q.limit;
    let over = q.load.bytes.fetch_add(bytes, Ordering::AcqRel) + bytes > q.byte_limit || over;
    // A batch larger than the limits on its own (256 packets of 64 KiB) goes into an empty
    // queue all the same: waiting for room it could never have would stall its listener.
    let over = over && queued > n;
    let back = if over {
        batch
    } else {
        match q.tx.try_send(batch) {
            Ok(()) => {
                q.load.peak.fetch_max(queued, Ordering::Relaxed);
                return Enqueued::Sent;
            }
            Err(TrySendError::Full(b)) => b,
            Err(TrySendError::Disconnected(_)) => return Enqueued::Gone,
        }
    };
    q.load.packets.fetch_sub(n, Ordering::AcqRel);
    q.load.bytes.fetch_sub(bytes, Ordering::AcqRel);
    Enqueued::Full(back)
}

/// A running collector.
pub struct Collector {
    stop: Arc<AtomicBool>,
    listeners: Vec<JoinHandle<()>>,
    pipeline: Option<JoinHandle<Result<WriteStats>>>,
    /// True once the pipeline thread has ended; before a shutdown that is a failure: nothing
    /// is ingested any more.
    pipeline_ended: Arc<AtomicBool>,
    /// Set to give up writing at a stop while the store fails (see `give_up`).
    give_up: Arc<AtomicBool>,
    /// Where the HEP UDP listener is bound (useful with port 0).
    pub hep_udp_addr: Option<SocketAddr>,
    /// Where the HEP TCP listener is bound.
    pub hep_tcp_addr: Option<SocketAddr>,
    /// Where the HEP TLS listener is bound.
    pub hep_tls_addr: Option<SocketAddr>,
}

/// Starts the pipeline thread and every configured listener.
pub fn start(cfg: &Config, metrics: Arc<Metrics>) -> Result<Collector> {
    let stop = Arc::new(AtomicBool::new(false));
    let limit = cfg.pipeline.queue_packets.max(BATCH);
    // The channel's slots are allocated up front: one per 16 packets of the limit. Batches
    // average far more than 16 packets under load; a backlog of smaller ones makes the
    // listeners wait like any other overflow.
    let (tx, rx) = sync_channel::<Batch>((limit / 16).max(1024));
    let queued = Arc::new(QueueLoad::default());
    let pool = SharedPool::default();
    let tx = QueueTx {
        tx,
        load: queued.clone(),
        limit,
        byte_limit: limit.saturating_mul(QUEUE_BYTES_PER_PACKET),
        pool: pool.clone(),
    };
    let writer = StoreWriter::open(cfg.store_config())
        .with_context(|| format!("opening the store at {}", cfg.storage.data.display()))?;
    let ws = writer.stats();
    if ws.recovered_calls > 0 || ws.repaired_rows > 0 {
        eprintln!(
            "siphon: the store was not closed cleanly: {} calls rebuilt from the segments, {} index rows completed",
            ws.recovered_calls, ws.repaired_rows
        );
    }
    let mut listeners = Vec::new();
    let mut hep_udp_addr = None;
    let mut udp_ports = Vec::new();
    if let Some(a) = &cfg.hep.udp_listen {
        let addr: SocketAddr = a.parse().with_context(|| format!("hep.udp_listen {a:?}"))?;
        let sock = udp_socket(addr, cfg.hep.recv_buffer_bytes)
            .with_context(|| format!("binding HEP UDP on {addr}"))?;
        let local = sock.local_addr()?;
        hep_udp_addr = Some(local);
        udp_ports.push(local.port());
        let (tx, stop, m) = (tx.clone(), stop.clone(), metrics.clone());
        listeners.push(
            std::thread::Builder::new()
                .name("hep-udp".into())
                .spawn(move || udp_loop(sock, tx, stop, m))?,
        );
    }
    let max = cfg.hep.max_tcp_connections;
    let mut stream = |key: &str, a: &str, tls| -> Result<SocketAddr> {
        let (addr, h) = stream_listener(key, a, tls, &tx, &stop, &metrics, max)?;
        listeners.push(h);
        Ok(addr)
    };
    let hep_tcp_addr = match &cfg.hep.tcp_listen {
        Some(a) => Some(stream("hep.tcp_listen", a, None)?),
        None => None,
    };
    let hep_tls_addr = match (&cfg.hep.tls_listen, cfg.hep_tls()?) {
        (Some(a), Some(tls)) => Some(stream("hep.tls_listen", a, Some(tls))?),
        (Some(_), None) => bail!("hep.tls_listen needs hep.tls_cert_file and hep.tls_key_file"),
        (None, _) => None,
    };
    if let Some(dev) = &cfg.capture.interface {
        let cap = open_capture(cfg, dev)?;
        let (tx, stop, m) = (tx.clone(), stop.clone(), metrics.clone());
        listeners.push(
            std::thread::Builder::new()
                .name("capture".into())
                .spawn(move || capture_loop(cap, tx, stop, m))?,
        );
    }
    drop(tx);
    let mut icfg = cfg.ingest_config();
    icfg.hep_auth_key = cfg.hep.auth_key.as_ref().map(|k| k.as_bytes().to_vec());
    let pipe = Pipeline::new(icfg, writer.first_ref());
    let m = metrics.clone();
    let retention = (cfg.storage.retention_days, cfg.storage.retention_max_bytes);
    let root = cfg.storage.data.clone();
    let stop2 = stop.clone();
    let ended = Arc::new(AtomicBool::new(false));
    let give_up = Arc::new(AtomicBool::new(false));
    let stop_retry = StopRetry {
        wait: Duration::from_secs(cfg.storage.stop_retry_secs),
        give_up: give_up.clone(),
    };
    let flag = EndFlag(ended.clone());
    let pipeline = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            let _flag = flag;
            pipeline_loop(
                rx, queued, pool, pipe, writer, m, stop2, udp_ports, root, retention, stop_retry,
            )
        })?;
    Ok(Collector {
        stop,
        listeners,
        pipeline: Some(pipeline),
        pipeline_ended: ended,
        give_up,
        hep_udp_addr,
        hep_tcp_addr,
        hep_tls_addr,
    })
}

/// Set when the pipeline thread ends, by returning or by a panic (it is set on unwinding).
struct EndFlag(Arc<AtomicBool>);

impl Drop for EndFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Collector {
    /// A flag that turns true when the pipeline thread ends (see `pipeline_ended`).
    pub fn pipeline_ended(&self) -> Arc<AtomicBool> {
        self.pipeline_ended.clone()
    }

    /// A flag that, once set, makes a stop give up retrying a failing store at once (a second
    /// SIGTERM/SIGINT sets it): what waits in memory is then lost, and `shutdown` says so.
    pub fn give_up(&self) -> Arc<AtomicBool> {
        self.give_up.clone()
    }

    /// Stops the listeners, lets the pipeline drain its queue, completes open calls with the
    /// reason "collector shutdown", flushes and seals the store.
    pub fn shutdown(mut self) -> Result<WriteStats> {
        self.stop.store(true, Ordering::SeqCst);
        for l in self.listeners.drain(..) {
            let _ = l.join();
        }
        match self.pipeline.take() {
            Some(p) => match p.join() {
                Ok(r) => r,
                Err(_) => bail!("the pipeline thread panicked"),
            },
            None => bail!("already shut down"),
        }
    }
}

fn udp_socket(addr: SocketAddr, rcvbuf: usize) -> Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    if rcvbuf > 0 {
        // With CAP_NET_ADMIN (root) the size is honoured past net.core.rmem_max; otherwise
        // the kernel caps it, and the startup log says so.
        let forced =
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBufForce, &rcvbuf)
                .is_ok();
        if !forced {
            let _ = s.set_recv_buffer_size(rcvbuf);
        }
        // Linux reports twice the size asked (book-keeping overhead included).
        let got = s.recv_buffer_size().unwrap_or(0) / 2;
        if got < rcvbuf {
            eprintln!(
                "siphon: HEP UDP receive buffer is {got} bytes, not the {rcvbuf} configured: \
                 raise net.core.rmem_max (sysctl) or run with CAP_NET_ADMIN"
            );
        }
    }
    s.bind(&addr.into())?;
    let u: UdpSocket = s.into();
    u.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(u)
}

/// How long the UDP and capture listeners let packets gather in the kernel's buffer once
/// they have drained it.
const UDP_GATHER: Duration = Duration::from_millis(1);
/// Longest sleep of an idle UDP listener.
const UDP_IDLE_MAX: Duration = Duration::from_millis(8);

/// Datagrams read per `recvmmsg` call.
const MMSG: usize = 32;
/// Largest datagram read whole (a UDP payload is at most 65,507 bytes).
const MAX_DATAGRAM: usize = 65_536;

fn udp_loop(sock: UdpSocket, tx: QueueTx, stop: Arc<AtomicBool>, m: Arc<Metrics>) {
    use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;
    // Non-blocking `recvmmsg` drains the socket MMSG datagrams per system call; when it is
    // empty the thread sleeps for UDP_GATHER instead of waking on every datagram. On a core
    // shared with the pipeline a wake-up per datagram costs more than the datagram itself;
    // this way a busy link is read in large batches, and an idle one waits at most 1 ms.
    if sock.set_nonblocking(true).is_err() {
        eprintln!("siphon: HEP UDP socket cannot be made non-blocking");
        return;
    }
    let fd = sock.as_raw_fd();
    let mut bufs: Vec<Vec<u8>> = (0..MMSG).map(|_| vec![0u8; MAX_DATAGRAM]).collect();
    let mut headers = MultiHeaders::<()>::preallocate(MMSG, None);
    let mut lens = [0usize; MMSG];
    let mut counters = SendCounters::new(Source::HepUdp, &m);
    let mut idle = UDP_GATHER;
    while !stop.load(Ordering::Relaxed) {
        let mut batch = tx.batch(Source::HepUdp);
        let mut drained = false;
        while !batch.is_full() {
            let got = {
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                    .iter_mut()
                    .map(|b| [IoSliceMut::new(b.as_mut_slice())])
                    .collect();
                match recvmmsg(
                    fd,
                    &mut headers,
                    iovs.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                ) {
                    Ok(res) => {
                        let mut n = 0;
                        for (slot, r) in lens.iter_mut().zip(res) {
                            *slot = r.bytes;
                            n += 1;
                        }
                        Ok(n)
                    }
                    Err(e) => Err(e),
                }
            };
            match got {
                Ok(n) => {
                    let ts = now_us();
                    for (b, len) in bufs.iter().zip(lens).take(n) {
                        batch.push(ts, b.get(..len).unwrap_or_default());
                    }
                    if n < MMSG {
                        drained = true;
                        break;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => {
                    drained = true;
                    break;
                }
                Err(nix::errno::Errno::EINTR) => continue,
                // ICMP errors reported on the socket and the like: nothing to read this time.
                Err(_) => {
                    drained = true;
                    break;
                }
            }
        }
        let got_some = !batch.items.is_empty();
        if !counters.send_waiting(&tx, batch, &stop) {
            break;
        }
        if drained {
            // Idle: back off up to 8 ms (packets wait in the socket buffer meanwhile); busy:
            // 1 ms, so batches stay large and the first packet waits little.
            idle = if got_some {
                UDP_GATHER
            } else {
                (idle * 2).min(UDP_IDLE_MAX)
            };
            std::thread::sleep(idle);
        }
    }
}

/// Binds the HEP stream listener of configuration key `key` on `a` (TCP, or TLS with `tls`)
/// and starts its accept thread.
fn stream_listener(
    key: &str,
    a: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    tx: &QueueTx,
    stop: &Arc<AtomicBool>,
    metrics: &Arc<Metrics>,
    max: usize,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let addr: SocketAddr = a.parse().with_context(|| format!("{key} {a:?}"))?;
    let kind = if tls.is_some() { "tls" } else { "tcp" };
    let l = TcpListener::bind(addr)
        .with_context(|| format!("binding HEP {} on {addr}", kind.to_uppercase()))?;
    let bound = l.local_addr()?;
    l.set_nonblocking(true)?;
    let (tx, stop, m) = (tx.clone(), stop.clone(), metrics.clone());
    let h = std::thread::Builder::new()
        .name(format!("hep-{kind}"))
        .spawn(move || tcp_accept_loop(l, tx, stop, m, max, tls))?;
    Ok((bound, h))
}

fn tcp_accept_loop(
    l: TcpListener,
    tx: QueueTx,
    stop: Arc<AtomicBool>,
    m: Arc<Metrics>,
    max: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut conns = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((s, _)) => {
                if open.load(Ordering::SeqCst) >= max {
                    m.drops
                        .get_or_create(&ReasonLabel {
                            reason: "tcp_connection_limit".into(),
                        })
                        .inc();
                    continue;
                }
                open.fetch_add(1, Ordering::SeqCst);
                let source = if tls.is_some() {
                    Source::HepTls
                } else {
                    Source::HepTcp
                };
                let gauge = m
                    .hep_connections
                    .get_or_create(&SourceLabel {
                        source: source.label().into(),
                    })
                    .clone();
                gauge.inc();
                // Given back when the connection ends, or at once if its thread cannot start.
                let slot = ConnSlot {
                    gauge,
                    open: open.clone(),
                };
                let (tx, stop, m) = (tx.clone(), stop.clone(), m.clone());
                let tls = tls.clone();
                let name = if tls.is_some() {
                    "hep-tls-conn"
                } else {
                    "hep-tcp-conn"
                };
                if let Ok(h) = std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || {
                        match tls {
                            Some(cfg) => tls_conn(s, cfg, tx, stop, m),
                            None => tcp_conn(s, tx, stop, m),
                        }
                        drop(slot);
                    })
                {
                    conns.push(h);
                }
                conns.retain(|h: &JoinHandle<()>| !h.is_finished());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

/// A HEP connection's place among `hep.max_tcp_connections` and in the
/// `siphon_hep_connections` gauge, given back when dropped.
struct ConnSlot {
    gauge: prometheus_client::metrics::gauge::Gauge,
    open: Arc<AtomicUsize>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.gauge.dec();
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a TLS client has to complete its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads HEP v3 packets back to back from a TCP connection.
fn tcp_conn(mut s: TcpStream, tx: QueueTx, stop: Arc<AtomicBool>, m: Arc<Metrics>) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    hep_stream(&mut s, Source::HepTcp, tx, stop, m);
}

/// Completes the TLS handshake of a connection, then reads HEP v3 packets from it as from
/// TCP. A handshake that fails (no or an untrusted client certificate, not TLS at all) or
/// takes over [`TLS_HANDSHAKE_TIMEOUT`] drops the connection, counted as malformed with
/// reason `hep_tls_handshake`.
fn tls_conn(
    mut s: TcpStream,
    cfg: Arc<rustls::ServerConfig>,
    tx: QueueTx,
    stop: Arc<AtomicBool>,
    m: Arc<Metrics>,
) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = s.set_write_timeout(Some(TLS_HANDSHAKE_TIMEOUT));
    let refused = || {
        m.malformed
            .get_or_create(&ReasonLabel {
                reason: "hep_tls_handshake".into(),
            })
            .inc();
    };
    let Ok(mut conn) = rustls::ServerConnection::new(cfg) else {
        refused();
        return;
    };
    // The handshake is driven one read at a time (rustls' `complete_io` reads on for as long
    // as bytes come), so that the deadline holds whatever the client sends: one trickling its
    // handshake a byte at a time is dropped as surely as a silent one.
    let t0 = Instant::now();
    loop {
        while conn.wants_write() {
            if conn.write_tls(&mut s).is_err() {
                refused();
                return;
            }
        }
        if !conn.is_handshaking() {
            break;
        }
        if stop.load(Ordering::Relaxed) || t0.elapsed() > TLS_HANDSHAKE_TIMEOUT {
            refused();
            return;
        }
        match conn.read_tls(&mut s) {
            // The peer closed before the handshake ended.
            Ok(0) => {
                refused();
                return;
            }
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    // Tell the client why (the alert rustls queued), then drop it.
                    let _ = conn.write_tls(&mut s);
                    refused();
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                refused();
                return;
            }
        }
    }
    let mut tls = rustls::StreamOwned::new(conn, s);
    hep_stream(&mut tls, Source::HepTls, tx, stop, m);
}

/// Reads HEP v3 packets back to back from a stream (framed by their length field), whose
/// reads time out every 100 ms so that a quiet connection still hands over what it framed
/// and sees a stop.
fn hep_stream(
    s: &mut impl Read,
    source: Source,
    tx: QueueTx,
    stop: Arc<AtomicBool>,
    m: Arc<Metrics>,
) {
    // Reads land in `buf[end..]` and packets are framed from `buf[start..end]`, in place; a
    // packet cut by the end of a read moves to the front once the room runs out. Twice the
    // largest packet: a read always has room for at least one more.
    let mut buf = vec![0u8; 2 * (MAX_HEP_TCP + 1)];
    let (mut start, mut end) = (0usize, 0usize);
    let mut batch = tx.batch(source);
    let mut counters = SendCounters::new(source, &m);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if buf.len() - end <= MAX_HEP_TCP {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        let room = buf.len() - end;
        let n_read = match s.read(buf.get_mut(end..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let next = tx.batch(source);
                if !counters.send_waiting(&tx, std::mem::replace(&mut batch, next), &stop) {
                    return;
                }
                if stopping {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        end += n_read;
        // The packets of one read arrived together: one clock reading for them all.
        let ts = now_us();
        let mut framing_lost = false;
        while let Some(head) = buf.get(start..end).and_then(|w| w.get(..6)) {
            let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
            if head.get(..4) != Some(b"HEP3".as_slice()) || !(6..=MAX_HEP_TCP).contains(&len) {
                framing_lost = true;
                break;
            }
            let Some(pkt) = buf.get(start..end).and_then(|w| w.get(..len)) else {
                break;
            };
            batch.push(ts, pkt);
            start += len;
            if batch.is_full() {
                let next = tx.batch(source);
                if !counters.send_waiting(&tx, std::mem::replace(&mut batch, next), &stop) {
                    return;
                }
            }
        }
        if framing_lost {
            // Not HEP (or a length no HEP packet has): the packets framed before it go on,
            // then the connection is dropped and the sender reconnects.
            m.malformed
                .get_or_create(&ReasonLabel {
                    reason: if source == Source::HepTls {
                        "hep_tls_framing"
                    } else {
                        "hep_tcp_framing"
                    }
                    .into(),
                })
                .inc();
            let _ = counters.send_waiting(&tx, batch, &stop);
            return;
        }
        if start == end {
            (start, end) = (0, 0);
        }
        // A read that filled all the room likely left more in the socket: read on, so that
        // a busy connection hands over large batches. Otherwise whatever is framed goes now: a
        // sender that pauses must not leave packets waiting.
        if n_read == room && !batch.is_full() {
            continue;
        }
        let next = tx.batch(source);
        if !counters.send_waiting(&tx, std::mem::replace(&mut batch, next), &stop) {
            return;
        }
    }
    let _ = counters.send_waiting(&tx, batch, &stop);
}

fn open_capture(cfg: &Config, dev: &str) -> Result<pcap::Capture<pcap::Active>> {
    let mut cap = pcap::Capture::from_device(dev)
        .with_context(|| format!("capture interface {dev:?}"))?
        .promisc(cfg.capture.promiscuous)
        .snaplen(cfg.capture.snaplen)
        .buffer_size(cfg.capture.buffer_bytes)
        .timeout(100)
        .immediate_mode(true)
        .open()
        .with_context(|| format!("opening {dev:?} for capture (needs root or CAP_NET_RAW)"))?;
    let filter = cfg.bpf_filter();
    cap.filter(&filter, true)
        .with_context(|| format!("BPF filter {filter:?}"))?;
    // Non-blocking reads: with immediate mode libpcap may not honour the read timeout, and a
    // partial batch must not wait for the next packet.
    cap.setnonblock()
        .with_context(|| format!("non-blocking capture on {dev:?}"))
}

fn capture_loop(
    mut cap: pcap::Capture<pcap::Active>,
    tx: QueueTx,
    stop: Arc<AtomicBool>,
    m: Arc<Metrics>,
) {
    let link = LinkType(cap.get_datalink().0 as u32);
    let mut batch = tx.batch(Source::Interface(link));
    let mut counters = SendCounters::new(Source::Interface(link), &m);
    let mut last_stats = Instant::now();
    let (mut kernel_seen, mut if_seen) = (0u32, 0u32);
    while !stop.load(Ordering::Relaxed) {
        match cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts.tv_sec * 1_000_000 + p.header.ts.tv_usec;
                batch.push(ts, p.data);
                if batch.is_full() {
                    let next = tx.batch(Source::Interface(link));
                    if !counters.send_waiting(&tx, std::mem::replace(&mut batch, next), &stop) {
                        return;
                    }
                }
            }
            Err(pcap::Error::TimeoutExpired) => {
                // Non-blocking: nothing to read. Hand over what there is and let packets
                // gather in the capture buffer rather than spin.
                let next = tx.batch(Source::Interface(link));
                if !counters.send_waiting(&tx, std::mem::replace(&mut batch, next), &stop) {
                    return;
                }
                std::thread::sleep(UDP_GATHER);
            }
            Err(e) => {
                eprintln!("siphon: capture stopped: {e}");
                break;
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            if let Ok(s) = cap.stats() {
                let k = s.dropped.wrapping_sub(kernel_seen);
                let i = s.if_dropped.wrapping_sub(if_seen);
                kernel_seen = s.dropped;
                if_seen = s.if_dropped;
                m.drops
                    .get_or_create(&ReasonLabel {
                        reason: "kernel".into(),
                    })
                    .inc_by(u64::from(k));
                m.drops
                    .get_or_create(&ReasonLabel {
                        reason: "interface".into(),
                    })
                    .inc_by(u64::from(i));
            }
        }
    }
    let _ = counters.send(&tx, batch);
}

/// The store writer, counting completed calls into the metrics.
struct MeteredSink<'a> {
    writer: &'a mut StoreWriter,
    metrics: &'a Metrics,
}

impl Sink for MeteredSink<'_> {
    fn record(&mut self, rec: &Record<'_>) {
        self.writer.record(rec);
    }
    fn call_opened(&mut self, call_ref: CallRef, call_id: &[u8], ts_us: i64) {
        self.writer.call_opened(call_ref, call_id, ts_us);
    }
    fn call_completed(&mut self, summary: Box<CallSummary>) {
        self.metrics.call_completed(&summary);
        self.writer.call_completed(summary);
    }
    fn resolve(&mut self, call_id: &[u8]) -> Option<CallSummary> {
        self.writer.resolve(call_id)
    }
}

/// Publishes what changed in the pipeline's counters since the last call.
fn publish(m: &Metrics, now: &IngestStats, last: &IngestStats) {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    for (t, a, b) in [
        ("sip", now.sip_messages, last.sip_messages),
        ("rtp", now.rtp_packets, last.rtp_packets),
        ("rtcp", now.rtcp_packets, last.rtcp_packets),
        (
            "other",
            now.unmatched + now.not_udp_tcp,
            last.unmatched + last.not_udp_tcp,
        ),
    ] {
        if a > b {
            m.packets_by_type
                .get_or_create(&TypeLabel { r#type: t.into() })
                .inc_by(d(a, b));
        }
    }
    for (reason, n) in &now.malformed {
        let before = last.malformed.get(reason).copied().unwrap_or(0);
        if *n > before {
            m.malformed
                .get_or_create(&ReasonLabel {
                    reason: (*reason).to_string(),
                })
                .inc_by(n - before);
        }
    }
    for (i, (a, b)) in now
        .sip_requests
        .iter()
        .zip(last.sip_requests.iter())
        .enumerate()
    {
        if a > b {
            let method = SIP_METHODS.get(i).copied().unwrap_or("other");
            m.sip_requests
                .get_or_create(&MethodLabel {
                    method: method.into(),
                })
                .inc_by(a - b);
        }
    }
    for (i, (a, b)) in now
        .sip_responses
        .iter()
        .zip(last.sip_responses.iter())
        .enumerate()
    {
        if a > b {
            let class = if i == 0 {
                "other".to_string()
            } else {
                format!("{i}xx")
            };
            m.sip_responses
                .get_or_create(&ClassLabel { class })
                .inc_by(a - b);
        }
    }
}

/// Kernel drops of our UDP sockets, from /proc/net/udp{,6} (last column), by local port.
fn udp_kernel_drops(ports: &[u16]) -> u64 {
    let mut total = 0;
    for f in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let Some(local) = cols.get(1) else { continue };
            let Some(port) = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            else {
                continue;
            };
            if ports.contains(&port) {
                total += cols.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    total
}

/// How often the pipeline thread advances the call state machine.
const EXPIRE_EVERY: Duration = Duration::from_millis(100);

/// Longest wait before a failed flush is tried again (the wait doubles from 1 s).
const FLUSH_RETRY_MAX: Duration = Duration::from_secs(10);
/// Bytes the store writer may hold in memory while its flushes fail. Beyond, packets are
/// dropped and counted (`store_unavailable`) until a flush succeeds; the calls' state goes on.
const STORE_BACKLOG_MAX: usize = 256 << 20;
/// How often a failing store is said so on stderr.
const STORE_ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

/// Failed flushes in a row, and when to try again.
#[derive(Default)]
struct FlushState {
    failures: u64,
    backoff: Duration,
    retry_at: Option<Instant>,
    logged_at: Option<Instant>,
}

/// A flush, unless a failed one is waiting for its retry time. A failure (a full disk, an I/O
/// error) does not stop the pipeline: it is counted, logged at most once a minute, shown by
/// `/health`, and retried after 1, 2, 4... up to 10 s; the writer keeps what was not written.
fn try_flush(pipe: &mut Pipeline, writer: &mut StoreWriter, m: &Metrics, fs: &mut FlushState) {
    if fs.retry_at.is_some_and(|t| Instant::now() < t) {
        return;
    }
    let t0 = Instant::now();
    match writer.flush_refs(&pipe.dirty()) {
        Ok(()) => {
            m.store_flush_seconds.observe(t0.elapsed().as_secs_f64());
            if fs.failures > 0 {
                eprintln!(
                    "siphon serve: store writes resumed after {} failed flushes",
                    fs.failures
                );
                if let Ok(mut e) = m.store_error.lock() {
                    *e = None;
                }
            }
            *fs = FlushState::default();
        }
        Err(e) => {
            m.store_errors.inc();
            fs.failures += 1;
            fs.backoff = (fs.backoff * 2).clamp(Duration::from_secs(1), FLUSH_RETRY_MAX);
            fs.retry_at = Some(Instant::now() + fs.backoff);
            let msg = e.to_string();
            if fs
                .logged_at
                .is_none_or(|t| t.elapsed() >= STORE_ERROR_LOG_EVERY)
            {
                fs.logged_at = Some(Instant::now());
                eprintln!(
                    "siphon serve: store write failed ({} in a row), retrying in {} s: {msg}",
                    fs.failures,
                    fs.backoff.as_secs()
                );
            }
            if let Ok(mut slot) = m.store_error.lock() {
                *slot = Some(msg);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn pipeline_loop(
    rx: Receiver<Batch>,
    queued: Arc<QueueLoad>,
    pool: SharedPool,
    mut pipe: Pipeline,
    mut writer: StoreWriter,
    m: Arc<Metrics>,
    _stop: Arc<AtomicBool>,
    udp_ports: Vec<u16>,
    root: std::path::PathBuf,
    retention: (Option<u32>, Option<u64>),
    stop_retry: StopRetry,
) -> Result<WriteStats> {
    let mut last_tick = Instant::now();
    let mut last_expire = Instant::now();
    let mut last_retention: Option<Instant> = None;
    let mut last_stats = IngestStats::default();
    let mut kernel_seen = udp_kernel_drops(&udp_ports);
    let mut written_seen = 0u64;
    let mut fs = FlushState::default();
    // Set each second while flushes fail and the writer holds more than STORE_BACKLOG_MAX.
    let mut shedding = false;
    // Tests of what `serve` does when its pipeline dies: a debug build panics on purpose
    // after this many batches.
    #[cfg(debug_assertions)]
    let mut panic_in: Option<u64> = std::env::var("SIPHON_DEBUG_PIPELINE_PANIC_AFTER_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok());
    // ...and tests of a pipeline that stalls (a slow disk) stop it once, this many ms.
    #[cfg(debug_assertions)]
    let mut stall_ms: Option<u64> = std::env::var("SIPHON_DEBUG_PIPELINE_STALL_MS")
        .ok()
        .and_then(|v| v.parse().ok());
    loop {
        match rx.recv_timeout(EXPIRE_EVERY) {
            Ok(batch) if shedding => {
                queued.taken(&batch);
                m.drops
                    .get_or_create(&ReasonLabel {
                        reason: "store_unavailable".into(),
                    })
                    .inc_by(batch.items.len() as u64);
                recycle(&pool, batch);
                if writer.should_flush() {
                    try_flush(&mut pipe, &mut writer, &m, &mut fs);
                }
            }
            Ok(batch) => {
                queued.taken(&batch);
                #[cfg(debug_assertions)]
                if let Some(ms) = stall_ms.take() {
                    std::thread::sleep(Duration::from_millis(ms));
                }
                #[cfg(debug_assertions)]
                if let Some(n) = panic_in.as_mut() {
                    if *n == 0 {
                        panic!("SIPHON_DEBUG_PIPELINE_PANIC_AFTER_BATCHES reached");
                    }
                    *n -= 1;
                }
                let mut sink = MeteredSink {
                    writer: &mut writer,
                    metrics: &m,
                };
                for (ts, start, len) in &batch.items {
                    let Some(data) = batch.buf.get(*start..start + len) else {
                        continue;
                    };
                    match batch.source {
                        Source::HepUdp | Source::HepTcp | Source::HepTls => {
                            pipe.push_hep(data, &mut sink)
                        }
                        Source::Interface(link) => {
                            let frame = Frame {
                                ts_us: *ts,
                                link,
                                data,
                                orig_len: data.len() as u32,
                                interface: 0,
                            };
                            pipe.push_frame(&frame, &mut sink);
                        }
                    }
                }
                recycle(&pool, batch);
                if writer.should_flush() {
                    try_flush(&mut pipe, &mut writer, &m, &mut fs);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // The state machine runs every 100 ms: calls complete in small batches, so the flush
        // that writes their final rows stays short instead of stalling the pipeline once a
        // second with a second's worth of completed calls.
        if last_expire.elapsed() >= EXPIRE_EVERY {
            last_expire = Instant::now();
            let mut sink = MeteredSink {
                writer: &mut writer,
                metrics: &m,
            };
            pipe.tick(now_us(), &mut sink);
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            if writer.interval_elapsed() || fs.failures > 0 {
                try_flush(&mut pipe, &mut writer, &m, &mut fs);
            }
            let backlog = writer.backlog_bytes();
            m.store_backlog_bytes.set(backlog as i64);
            let shed = fs.failures > 0 && backlog > STORE_BACKLOG_MAX;
            if shed && !shedding {
                eprintln!(
                    "siphon serve: the store cannot be written and {} MiB wait in memory: \
                     packets are dropped until it can (store_unavailable)",
                    backlog >> 20
                );
            }
            shedding = shed;
            let st = pipe.stats().clone();
            publish(&m, &st, &last_stats);
            last_stats = st;
            m.active_calls.set(pipe.open_calls() as i64);
            m.queue_peak_packets
                .set(queued.peak.swap(0, Ordering::Relaxed) as i64);
            let ws = writer.stats();
            let written = ws.sip_block_bytes + ws.media_block_bytes + ws.summary_block_bytes;
            m.store_bytes.inc_by(written.saturating_sub(written_seen));
            written_seen = written;
            let k = udp_kernel_drops(&udp_ports);
            if k > kernel_seen {
                m.drops
                    .get_or_create(&ReasonLabel {
                        reason: "kernel".into(),
                    })
                    .inc_by(k - kernel_seen);
            }
            kernel_seen = k;
            if retention.0.is_some() || retention.1.is_some() {
                // Every 10 minutes; every 30 s while flushes fail (a full disk may be one that
                // retention can free).
                let every = if fs.failures > 0 { 30 } else { 600 };
                let due = last_retention.is_none_or(|t| t.elapsed() >= Duration::from_secs(every));
                if due {
                    last_retention = Some(Instant::now());
                    retention_pass(&root, retention, &mut writer);
                }
            }
        }
    }
    {
        let mut sink = MeteredSink {
            writer: &mut writer,
            metrics: &m,
        };
        pipe.finish("collector shutdown", &mut sink);
    }
    let st = pipe.stats().clone();
    publish(&m, &st, &last_stats);
    write_before_stop(&mut writer, &m, &stop_retry, &root, retention)?;
    Ok(writer.close(Vec::new())?)
}

/// Deletes the buckets that `retention` (days, bytes) no longer keeps; a failure is logged and
/// the next pass tries again.
fn retention_pass(
    root: &std::path::Path,
    retention: (Option<u32>, Option<u64>),
    writer: &mut StoreWriter,
) {
    if let Err(e) =
        siphon_store::retention_with(root, retention.0, retention.1, now_us(), &mut |key| {
            writer.release_bucket(key)
        })
    {
        eprintln!("siphon serve: retention: {e} (tried again at the next pass)");
    }
}

/// How a stop treats a store that cannot be written.
struct StopRetry {
    /// How long to keep retrying (`storage.stop_retry_secs`).
    wait: Duration,
    /// Set by a second SIGTERM/SIGINT: give up now.
    give_up: Arc<AtomicBool>,
}

/// Writes what the writer holds before a stop. While the store cannot be written (a full
/// disk), retries every second for up to `retry.wait`, running retention every 30 s, and
/// says so on stderr; the operator may free space meanwhile. Fails, saying what is lost, if
/// the store still cannot be written by then or `retry.give_up` is set.
fn write_before_stop(
    writer: &mut StoreWriter,
    m: &Metrics,
    retry: &StopRetry,
    root: &std::path::Path,
    retention: (Option<u32>, Option<u64>),
) -> Result<()> {
    let t0 = Instant::now();
    let mut last_retention: Option<Instant> = None;
    let mut failures = 0u64;
    loop {
        let err = match writer.flush_refs(&[]) {
            Ok(()) => {
                if failures > 0 {
                    eprintln!(
                        "siphon serve: the store was written after {failures} failed attempts"
                    );
                    if let Ok(mut e) = m.store_error.lock() {
                        *e = None;
                    }
                }
                return Ok(());
            }
            Err(e) => e,
        };
        failures += 1;
        m.store_errors.inc();
        m.store_backlog_bytes.set(writer.backlog_bytes() as i64);
        let held = format!(
            "{} calls ({:.1} MiB)",
            writer.unwritten_calls(),
            writer.backlog_bytes() as f64 / f64::from(1u32 << 20)
        );
        if t0.elapsed() >= retry.wait || retry.give_up.load(Ordering::SeqCst) {
            bail!(
                "stopped without storing {held} held in memory: the store cannot be written: {err}"
            );
        }
        if failures == 1 {
            eprintln!(
                "siphon serve: the store cannot be written ({err}); {held} wait in memory: \
                 retrying for up to {} s (storage.stop_retry_secs) while space is freed; \
                 a second SIGTERM or Ctrl-C gives up",
                retry.wait.as_secs()
            );
        }
        if (retention.0.is_some() || retention.1.is_some())
            && last_retention.is_none_or(|t| t.elapsed() >= Duration::from_secs(30))
        {
            last_retention = Some(Instant::now());
            retention_pass(root, retention, writer);
        }
        let pause = Instant::now();
        while pause.elapsed() < Duration::from_secs(1)
            && t0.elapsed() < retry.wait
            && !retry.give_up.load(Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Batch {
        let mut b = Batch::new(Source::HepUdp);
        for _ in 0..n {
            b.push(0, b"HEP3");
        }
        b
    }

    fn queue_full(m: &Metrics) -> u64 {
        m.drops
            .get_or_create(&ReasonLabel {
                reason: "queue_full".into(),
            })
            .get()
    }

    fn queue(tx: SyncSender<Batch>, limit: usize, byte_limit: usize) -> QueueTx {
        QueueTx {
            tx,
            load: Arc::new(QueueLoad::default()),
            limit,
            byte_limit,
            pool: SharedPool::default(),
        }
    }

    #[test]
    fn the_queue_is_bounded_in_packets_whatever_the_batch_sizes() {
        let m = Metrics::new();
        let (tx, rx) = sync_channel::<Batch>(1000);
        let q = queue(tx, 10, usize::MAX);
        let mut c = SendCounters::new(Source::HepUdp, &m);
        // Many small batches fill it as surely as one big one.
        for _ in 0..10 {
            assert!(c.send(&q, batch(1)));
        }
        assert_eq!(queue_full(&m), 0);
        assert!(c.send(&q, batch(3)));
        assert_eq!(
            queue_full(&m),
            3,
            "a batch over the limit is dropped whole and counted"
        );
        assert_eq!(q.load.packets.load(Ordering::SeqCst), 10);
        // The high-water mark counts what was queued, not what was refused.
        assert_eq!(q.load.peak.swap(0, Ordering::Relaxed), 10);
        // The pipeline takes batches: room again.
        for _ in 0..4 {
            let b = rx.recv().unwrap();
            q.load.taken(&b);
        }
        assert!(c.send(&q, batch(4)));
        assert_eq!(queue_full(&m), 3);
        assert_eq!(q.load.packets.load(Ordering::SeqCst), 10);
        assert_eq!(
            q.load.peak.load(Ordering::Relaxed),
            10,
            "6 left, then 4 more"
        );
        // Every packet offered is counted as received, dropped or not.
        let received = m
            .received_packets
            .get_or_create(&SourceLabel {
                source: "hep_udp".into(),
            })
            .get();
        assert_eq!(received, 17);
        // A pipeline that is gone stops the listener (once there is room to try).
        drop(rx);
        q.load.packets.store(0, Ordering::SeqCst);
        q.load.bytes.store(0, Ordering::SeqCst);
        assert!(!c.send(&q, batch(1)));
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_so_large_packets_cannot_make_it_huge() {
        let m = Metrics::new();
        let (tx, rx) = sync_channel::<Batch>(1000);
        // 100 packets, 10 KB.
        let q = queue(tx, 100, 10_000);
        let mut c = SendCounters::new(Source::HepTcp, &m);
        let big = |n: usize| {
            let mut b = Batch::new(Source::HepTcp);
            for _ in 0..n {
                b.push(0, &[0u8; 4_000]);
            }
            b
        };
        assert!(c.send(&q, big(2)));
        assert!(
            c.send(&q, big(1)),
            "over the byte limit: dropped, not an error"
        );
        assert_eq!(queue_full(&m), 1);
        assert_eq!(q.load.bytes.load(Ordering::SeqCst), 8_000);
        let b = rx.recv().unwrap();
        q.load.taken(&b);
        assert_eq!(q.load.bytes.load(Ordering::SeqCst), 0);
        assert!(c.send(&q, big(2)));
        assert_eq!(queue_full(&m), 1);
    }

    #[test]
    fn a_batch_over_the_byte_limit_on_its_own_is_taken_by_an_empty_queue() {
        let m = Metrics::new();
        let (tx, rx) = sync_channel::<Batch>(1000);
        let q = queue(tx, 100, 10_000);
        let mut c = SendCounters::new(Source::HepTcp, &m);
        let mut huge = Batch::new(Source::HepTcp);
        for _ in 0..4 {
            huge.push(0, &[0u8; 4_000]);
        }
        // Were it to wait, a stop after 2 s would end the wait, dropping and counting it.
        let stop = Arc::new(AtomicBool::new(false));
        let later = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            later.store(true, Ordering::SeqCst);
        });
        assert!(c.send_waiting(&q, huge, &stop));
        assert_eq!(queue_full(&m), 0, "taken, not waited for");
        assert_eq!(rx.recv().unwrap().items.len(), 4);
    }

    #[test]
    fn a_waiting_listener_gives_up_its_batch_when_the_collector_stops() {
        let m = Metrics::new();
        let (tx, _rx) = sync_channel::<Batch>(1000);
        let q = queue(tx, 300, 1 << 20);
        let mut c = SendCounters::new(Source::HepTcp, &m);
        let stop = Arc::new(AtomicBool::new(false));
        assert!(c.send_waiting(&q, batch(256), &stop));
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                stop.store(true, Ordering::SeqCst);
            })
        };
        // No room for 100 more: it waits until the stop, then drops and counts them.
        assert!(c.send_waiting(&q, batch(100), &stop));
        stopper.join().unwrap();
        assert_eq!(queue_full(&m), 100);
    }

    #[test]
    fn udp_datagrams_of_any_length_arrive_whole_and_in_order() {
        let m = Arc::new(Metrics::new());
        let (tx, rx) = sync_channel::<Batch>(1000);
        let q = queue(tx, 1 << 20, 1 << 30);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (m, stop) = (m.clone(), stop.clone());
            std::thread::spawn(move || udp_loop(sock, q, stop, m))
        };
        // One byte, an Ethernet MTU's worth and one more, a jumbo frame's, the largest datagram
        // there is, and more than one read's worth of small ones; each with a pattern of its own.
        let mut sizes = vec![1, 1_472, 1_473, 9_000, 65_507];
        sizes.extend((0..2 * MMSG).map(|i| 100 + i));
        let sent: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 7 + j * 13) as u8).collect())
            .collect();
        let out = UdpSocket::bind("127.0.0.1:0").unwrap();
        for d in &sent {
            out.send_to(d, to).unwrap();
        }
        let mut got: Vec<Vec<u8>> = Vec::new();
        let t0 = Instant::now();
        while got.len() < sent.len() && t0.elapsed() < Duration::from_secs(10) {
            if let Ok(b) = rx.recv_timeout(Duration::from_millis(100)) {
                got.extend(b.items.iter().map(|&(_, at, n)| b.buf[at..at + n].to_vec()));
            }
        }
        stop.store(true, Ordering::SeqCst);
        reader.join().unwrap();
        assert_eq!(got.len(), sent.len());
        for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
            assert!(
                g == s,
                "datagram {i}: {} bytes read, {} sent",
                g.len(),
                s.len()
            );
        }
    }

    #[test]
    fn a_batch_grown_for_large_packets_is_not_kept_for_reuse() {
        let pool = std::sync::Mutex::new(Pool::default());
        recycle(&pool, batch(3));
        let mut huge = Batch::new(Source::HepTcp);
        huge.push(0, &vec![0u8; POOL_MAX_BUF + 1]);
        recycle(&pool, huge);
        assert_eq!(pool.lock().unwrap().batches.len(), 1);
    }

    #[test]
    fn kept_batches_stay_within_the_pool_byte_limit_and_are_handed_out_again() {
        let (tx, _rx) = sync_channel(4);
        let q = queue(tx, 1 << 20, 1 << 30);
        let mut full = 0;
        while q.pool.lock().unwrap().bytes + POOL_MAX_BUF <= POOL_MAX_BYTES {
            let mut b = Batch::new(Source::HepTcp);
            b.push(0, &vec![0u8; POOL_MAX_BUF]);
            recycle(&q.pool, b);
            full += 1;
        }
        let mut b = Batch::new(Source::HepTcp);
        b.push(0, &vec![0u8; POOL_MAX_BUF]);
        recycle(&q.pool, b);
        let p = q.pool.lock().unwrap();
        assert_eq!(p.batches.len(), full, "one over the limit is not kept");
        assert!(p.bytes <= POOL_MAX_BYTES);
        drop(p);
        let reused = q.batch(Source::HepUdp);
        assert!(reused.buf.capacity() >= POOL_MAX_BUF && reused.items.is_empty());
        assert_eq!(reused.source, Source::HepUdp);
        assert_eq!(q.pool.lock().unwrap().batches.len(), full - 1);
    }
}
