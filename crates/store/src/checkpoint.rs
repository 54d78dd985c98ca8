//! Copies bucket indexes' write-ahead logs into their database files on a thread of its own.
//!
//! SQLite checkpoints in the committing connection by default: the writer's flush then waits
//! while the WAL's pages are copied and both files are synced, 70 to 170 ms every few seconds
//! at the highest rates, with packets queueing behind it. Here the writer asks for a
//! checkpoint after some commits and carries on; a second connection runs it (`PASSIVE`: it
//! never blocks the writer, and readers are never blocked in WAL mode). Should this thread
//! fall behind or fail, the writer's own automatic checkpoint at a larger WAL size still
//! bounds the log (see `index::open`).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// A bucket's connection not asked for within this long is closed.
const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// Tests: the checkpoints asked for, each with the size of its index's log when asked.
#[cfg(test)]
pub(crate) type Requests = std::sync::Arc<std::sync::Mutex<Vec<(PathBuf, u64)>>>;

/// Tests: the write-ahead log of the index at `path`.
#[cfg(test)]
pub(crate) fn wal_of(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// The handle the writer keeps; dropping it finishes pending checkpoints and ends the thread.
pub(crate) struct Checkpointer {
    tx: Option<SyncSender<PathBuf>>,
    thread: Option<JoinHandle<()>>,
    /// Tests: each request's index and the size of its log when asked, in place of checkpoints.
    #[cfg(test)]
    requests: Option<Requests>,
}

impl Checkpointer {
    /// Starts the thread; `None` if it cannot be spawned (the writer then relies on SQLite's
    /// own checkpoints).
    pub(crate) fn start() -> Option<Self> {
        Self::start_with(IDLE_CLOSE)
    }

    fn start_with(idle: Duration) -> Option<Self> {
        let (tx, rx) = sync_channel::<PathBuf>(64);
        let thread = std::thread::Builder::new()
            .name("index-checkpoint".into())
            .spawn(move || run(rx, idle))
            .ok()?;
        Some(Checkpointer {
            tx: Some(tx),
            thread: Some(thread),
            #[cfg(test)]
            requests: None,
        })
    }

    /// Tests: a checkpointer that only records what it is asked for (see `requests`).
    #[cfg(test)]
    pub(crate) fn recording() -> (Self, Requests) {
        let requests = std::sync::Arc::default();
        let c = Checkpointer {
            tx: None,
            thread: None,
            requests: Some(std::sync::Arc::clone(&requests)),
        };
        (c, requests)
    }

    /// Asks for a checkpoint of the index at `path`. Never waits: with requests already
    /// queued, this one is dropped (the queued ones cover it).
    pub(crate) fn request(&self, path: &Path) {
        #[cfg(test)]
        if let Some(r) = &self.requests {
            let size = std::fs::metadata(wal_of(path)).map_or(0, |m| m.len());
            if let Ok(mut r) = r.lock() {
                r.push((path.to_path_buf(), size));
            }
        }
        if let Some(tx) = &self.tx {
            match tx.try_send(path.to_path_buf()) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rx: Receiver<PathBuf>, idle: Duration) {
    // One connection per bucket written lately; one not asked for within `idle` is closed, so
    // that none is held to a bucket that retention removes (an open file's space is not
    // freed), even while other buckets keep the thread busy.
    let mut open: Vec<(PathBuf, Connection, Instant)> = Vec::new();
    loop {
        let first = match rx.recv_timeout(idle) {
            Ok(p) => Some(p),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut wanted: Vec<PathBuf> = first.into_iter().collect();
        while let Ok(p) = rx.try_recv() {
            if !wanted.contains(&p) {
                wanted.push(p);
            }
        }
        let now = Instant::now();
        for path in wanted {
            let at = match open.iter().position(|(p, _, _)| *p == path) {
                Some(i) => Some(i),
                // Never created here: a bucket removed by retention stays removed.
                None => Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .ok()
                .map(|c| {
                    open.push((path.clone(), c, now));
                    open.len() - 1
                }),
            };
            if let Some((_, c, used)) = at.and_then(|i| open.get_mut(i)) {
                *used = now;
                // A failure (the database busy, or gone with retention) leaves the log to the
                // next request or to the writer's own checkpoint.
                let _ = checkpoint(c);
            }
        }
        open.retain(|(_, _, used)| now.duration_since(*used) < idle);
    }
}

/// One passive checkpoint: (log frames, frames copied), as SQLite reports them.
pub(crate) fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index;

    #[test]
    fn a_requested_checkpoint_copies_the_log_into_the_database_file() {
        let dir = std::env::temp_dir().join(format!("siphon-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("index.sqlite");
        let conn = index::open(&path).unwrap();
        let rows = 2_000u64;
        {
            let tx = conn.unchecked_transaction().unwrap();
            let mut up = index::Upsert::new(&conn).unwrap();
            for r in 1..=rows {
                up.row(&index::tests::call(r, 3), &[], None).unwrap();
            }
            drop(up);
            tx.commit().unwrap();
        }
        // The database file alone, as it is before any checkpoint: the rows are only in the
        // log (fewer pages than the writer's own checkpoint threshold).
        let count = |file: &Path| -> i64 {
            let copy = dir.join("copy.sqlite");
            std::fs::copy(file, &copy).unwrap();
            let c = Connection::open(&copy).unwrap();
            let n = c
                .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
                .unwrap_or(0);
            drop(c);
            let _ = std::fs::remove_file(&copy);
            n
        };
        assert_eq!(count(&path), 0, "no checkpoint yet");
        let ck = Checkpointer::start().unwrap();
        ck.request(&path);
        drop(ck); // waits for the thread
        assert_eq!(count(&path), rows as i64);
        // The writer's connection is still usable and sees everything.
        let n: i64 = conn
            .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, rows as i64);
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bucket_no_longer_asked_for_is_closed_while_others_are_checkpointed() {
        let dir = std::env::temp_dir().join(format!("siphon-ckpt-idle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b) = (dir.join("a"), dir.join("b"));
        let (pa, pb) = (a.join("index.sqlite"), b.join("index.sqlite"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
        }
        let (ca, cb) = (index::open(&pa).unwrap(), index::open(&pb).unwrap());
        drop((ca, cb));
        let held = crate::open_files_under;
        let ck = Checkpointer::start_with(Duration::from_millis(200)).unwrap();
        ck.request(&pa);
        std::thread::sleep(Duration::from_millis(100));
        assert!(held(&a) > 0, "a is open while in use");
        // b keeps the thread busy; a, no longer asked for, is closed all the same.
        for _ in 0..8 {
            ck.request(&pb);
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(held(&a), 0, "a was closed");
        assert!(held(&b) > 0, "b is still in use");
        drop(ck);
        assert_eq!(held(&b), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_index_is_not_created() {
        let dir = std::env::temp_dir().join(format!("siphon-ckpt-missing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("index.sqlite");
        let ck = Checkpointer::start().unwrap();
        ck.request(&path);
        drop(ck);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
