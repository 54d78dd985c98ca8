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
use std::time::Duration;

use rusqlite::Connection;

/// Connections kept open by the checkpoint thread (one per bucket recently written).
const KEEP_OPEN: usize = 4;
/// Without requests for this long, the thread closes its connections.
const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// The handle the writer keeps; dropping it finishes pending checkpoints and ends the thread.
pub(crate) struct Checkpointer {
    tx: Option<SyncSender<PathBuf>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread; `None` if it cannot be spawned (the writer then relies on SQLite's
    /// own checkpoints).
    pub(crate) fn start() -> Option<Self> {
        let (tx, rx) = sync_channel::<PathBuf>(64);
        let thread = std::thread::Builder::new()
            .name("index-checkpoint".into())
            .spawn(move || run(rx))
            .ok()?;
        Some(Checkpointer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint of the index at `path`. Never waits: with requests already
    /// queued, this one is dropped (the queued ones cover it).
    pub(crate) fn request(&self, path: &Path) {
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

fn run(rx: Receiver<PathBuf>) {
    let mut open: Vec<(PathBuf, Connection)> = Vec::new();
    loop {
        let first = match rx.recv_timeout(IDLE_CLOSE) {
            Ok(p) => p,
            Err(RecvTimeoutError::Timeout) => {
                // Idle: no connection kept to a bucket that retention may remove meanwhile
                // (an open file's space is not freed).
                open.clear();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut wanted = vec![first];
        while let Ok(p) = rx.try_recv() {
            if !wanted.contains(&p) {
                wanted.push(p);
            }
        }
        for path in wanted {
            let conn = match open.iter().position(|(p, _)| *p == path) {
                Some(i) => {
                    // Most recently used last.
                    let e = open.remove(i);
                    open.push(e);
                    open.last().map(|(_, c)| c)
                }
                // Never created here: a bucket removed by retention stays removed.
                None => match Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                ) {
                    Ok(c) => {
                        if open.len() >= KEEP_OPEN {
                            open.remove(0);
                        }
                        open.push((path.clone(), c));
                        open.last().map(|(_, c)| c)
                    }
                    Err(_) => None,
                },
            };
            if let Some(c) = conn {
                // A failure (the database busy, or gone with retention) leaves the log to the
                // next request or to the writer's own checkpoint.
                let _ = checkpoint(c);
            }
        }
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
