//! `siphon serve`: the collector, its HTTP API, and a clean stop on SIGTERM/SIGINT.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::api::{router, ApiState};
use crate::collector;
use crate::config::Config;
use crate::metrics::Metrics;

/// Command-line overrides of the configuration file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Store directory.
    pub data: Option<std::path::PathBuf>,
    /// HEP listen address (UDP and TCP).
    pub hep_listen: Option<String>,
    /// HTTP listen address.
    pub http_listen: Option<String>,
    /// Capture interface.
    pub interface: Option<String>,
}

impl Overrides {
    /// Applies the flags over the loaded configuration, then validates again.
    pub fn apply(&self, cfg: &mut Config) -> Result<()> {
        if let Some(d) = &self.data {
            cfg.storage.data = d.clone();
        }
        if let Some(h) = &self.hep_listen {
            cfg.hep.udp_listen = Some(h.clone());
            cfg.hep.tcp_listen = Some(h.clone());
        }
        if let Some(h) = &self.http_listen {
            cfg.http.listen = h.clone();
        }
        if let Some(i) = &self.interface {
            cfg.capture.interface = Some(i.clone());
        }
        cfg.validate()?;
        Ok(())
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {},
                _ = i.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Raises the soft limit of open files to the hard one (as a server is expected to: the
/// API keeps index connections open, HEP over TCP holds a socket per agent); returns the
/// limit now in force.
fn raise_file_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// Runs the collector until SIGTERM or SIGINT; then stops the listeners, completes open calls,
/// flushes and seals the store.
pub fn run(cfg: Config) -> Result<()> {
    let nofile = raise_file_limit();
    let metrics = Arc::new(Metrics::new());
    let col = collector::start(&cfg, metrics.clone())?;
    eprintln!(
        "siphon serve: node {:?}, store {}",
        cfg.node.id,
        cfg.storage.data.display()
    );
    if let Some(a) = col.hep_udp_addr {
        eprintln!("  HEP over UDP on {a}");
    }
    if let Some(a) = col.hep_tcp_addr {
        eprintln!("  HEP over TCP on {a}");
    }
    if let Some(a) = col.hep_tls_addr {
        eprintln!("  HEP over TLS on {a}");
    }
    if let Some(i) = &cfg.capture.interface {
        eprintln!("  capturing on {i} with filter {:?}", cfg.bpf_filter());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let node = cfg.node.id.clone();
    let read_pool = Arc::new(siphon_store::ReadPool::for_file_limit(nofile));
    let m = metrics.clone();
    let hm = metrics.clone();
    let state = ApiState {
        store_root: cfg.storage.data.clone(),
        metrics: Arc::new(move || m.encode()),
        auth_token: cfg.http.auth_token.as_ref().map(|t| t.to_string()),
        health: Arc::new(move || {
            let store_error = hm.store_error.lock().ok().and_then(|e| e.clone());
            let mut v = serde_json::json!({
                "node": node,
                "uptime_s": started.elapsed().as_secs(),
                "store": "ok",
            });
            if let Some(e) = store_error {
                // Still serving and ingesting: the writes are retried.
                v["status"] = "degraded".into();
                v["store"] = serde_json::json!({ "error": e });
            }
            v
        }),
        exports: crate::api::export_slots(),
        read_pool: read_pool.clone(),
    };
    // Kept index connections are closed once idle or once retention removed their bucket,
    // so that they never hold a deleted file's space for long.
    let sweep_pool = read_pool.clone();
    rt.spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            let pool = sweep_pool.clone();
            let _ = tokio::task::spawn_blocking(move || pool.sweep()).await;
        }
    });
    let listen = cfg.http.listen.clone();
    let col_ended = col.pipeline_ended();
    let served: Result<()> = rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding HTTP on {listen}"))?;
        eprintln!("  HTTP API on http://{}", l.local_addr()?);
        // Until SIGTERM/SIGINT, or until the pipeline ends by itself (a bug): a collector
        // that no longer ingests must not look alive. It then exits with an error, and
        // systemd (Restart=on-failure) starts it again on the store as it was left.
        let ended = col_ended;
        let pipeline_gone = async move {
            while !ended.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            eprintln!("siphon serve: the pipeline stopped unexpectedly; exiting");
        };
        axum::serve(l, router(state))
            .with_graceful_shutdown(async {
                tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = pipeline_gone => {}
                }
            })
            .await?;
        Ok(())
    });
    eprintln!("siphon serve: stopping");
    // The API's index connections first: the writer's close then checkpoints and removes the
    // write-ahead logs.
    read_pool.clear();
    // A second SIGTERM/SIGINT during the stop: give up retrying a store that cannot be
    // written (see `storage.stop_retry_secs`).
    let give_up = col.give_up();
    rt.spawn(async move {
        shutdown_signal().await;
        eprintln!("siphon serve: second stop signal: giving up on what is not stored yet");
        give_up.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let stats = col.shutdown();
    served?;
    let stats = stats?;
    eprintln!(
        "siphon serve: stopped cleanly after {} flushes ({} blocks written)",
        stats.flushes, stats.blocks
    );
    Ok(())
}
