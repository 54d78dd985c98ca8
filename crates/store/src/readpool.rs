//! Read connections to bucket indexes kept open between queries.
//!
//! Opening a bucket's index costs far more than a look-up in it (about 270 µs against 10 µs:
//! the file, the WAL's shared memory, the schema), and a Call-ID look-up without a time tries
//! every bucket, newest first. A long-running reader (the HTTP API) keeps its connections
//! here, so that a look-up across a year of daily buckets costs a few milliseconds instead of
//! a tenth of a second.
//!
//! A kept connection must not outlive its file: retention deletes whole buckets, and a file
//! still open keeps its disk space. Connections are checked against the file's identity
//! (device and inode) when taken, and [`ReadPool::sweep`] closes those unused for
//! [`IDLE_FOR`] or whose file is gone; the owner calls it every few seconds.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Connections unused this long are closed by [`ReadPool::sweep`].
pub const IDLE_FOR: Duration = Duration::from_secs(120);
/// Idle connections kept per index file (concurrent queries on one bucket open more).
const PER_FILE: usize = 4;
/// Idle connections kept in all, by default.
const TOTAL: usize = 256;
/// At most this many, whatever the file limit (each takes some 200 KiB of memory while kept).
const MAX_TOTAL: usize = 512;
/// File descriptors a kept connection holds: the index, its write-ahead log and its shared
/// memory.
const FDS_PER_CONN: u64 = 3;

struct Idle {
    conn: Connection,
    /// (device, inode) of the file when it was opened.
    file: (u64, u64),
    since: Instant,
}

/// Kept connections by index path, and how many in all.
#[derive(Default)]
struct Idles {
    by_path: HashMap<PathBuf, Vec<Idle>>,
    count: usize,
}

/// Idle read connections by index path.
pub struct ReadPool {
    idle: Mutex<Idles>,
    /// Most idle connections kept. When full, connections in use are closed after use rather
    /// than others evicted: a look-up walks the buckets in the same order every time, which
    /// an LRU policy would turn into no hits at all.
    total: usize,
}

impl Default for ReadPool {
    fn default() -> Self {
        ReadPool::with_capacity(TOTAL)
    }
}

fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

impl ReadPool {
    /// An empty pool that keeps up to 256 connections.
    pub fn new() -> ReadPool {
        ReadPool::default()
    }

    /// An empty pool that keeps up to `total` connections.
    pub fn with_capacity(total: usize) -> ReadPool {
        ReadPool {
            idle: Mutex::new(Idles::default()),
            total,
        }
    }

    /// An empty pool sized to use at most half of the file descriptors above the first 1,024
    /// of a process whose limit is `nofile` (at least 16 connections, at most 512).
    pub fn for_file_limit(nofile: u64) -> ReadPool {
        let n = nofile.saturating_sub(1024) / FDS_PER_CONN / 2;
        ReadPool::with_capacity(usize::try_from(n).unwrap_or(MAX_TOTAL).clamp(16, MAX_TOTAL))
    }

    /// Most connections kept.
    pub fn capacity(&self) -> usize {
        self.total
    }

    /// Runs `f` on a read connection to the index at `path`: a kept one if its file is still
    /// the same, else a new one; kept afterwards.
    pub fn with<R>(&self, path: &Path, f: impl FnOnce(&Connection) -> R) -> rusqlite::Result<R> {
        let file = identity(path).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("{}: {e}", path.display())),
            )
        })?;
        let kept = self.idle.lock().ok().and_then(|mut idle| {
            let idle = &mut *idle;
            let list = idle.by_path.get_mut(path)?;
            // Connections to a file since replaced (a bucket removed, then made again) go.
            let before = list.len();
            list.retain(|c| c.file == file);
            let c = list.pop();
            idle.count -= before - list.len();
            if list.is_empty() {
                idle.by_path.remove(path);
            }
            c
        });
        let (conn, fresh) = match kept {
            Some(c) => (c.conn, false),
            None => (crate::index::open_read(path)?, true),
        };
        let r = f(&conn);
        self.put(path.to_path_buf(), file, conn, fresh);
        Ok(r)
    }

    /// Keeps a connection after use, if there is room.
    fn put(&self, path: PathBuf, file: (u64, u64), conn: Connection, fresh: bool) {
        // A new connection that found the index not made yet (the writer creating it, or
        // unable to on a full disk) is not kept: SQLite would go on answering "no such table"
        // from the empty schema it read. Checked only when there is room, and unlocked.
        if self.kept() >= self.total
            || (fresh && !crate::index::schema_ready(&conn).unwrap_or(false))
        {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if idle.count >= self.total {
            return;
        }
        let list = idle.by_path.entry(path).or_default();
        if list.len() < PER_FILE {
            list.push(Idle {
                conn,
                file,
                since: Instant::now(),
            });
            idle.count += 1;
        }
    }

    /// Closes the connections unused for [`IDLE_FOR`] and those whose file was removed or
    /// replaced. Returns how many are kept.
    pub fn sweep(&self) -> usize {
        let Ok(mut idle) = self.idle.lock() else {
            return 0;
        };
        idle.by_path.retain(|path, list| {
            let file = identity(path).ok();
            list.retain(|c| c.since.elapsed() < IDLE_FOR && Some(c.file) == file);
            !list.is_empty()
        });
        idle.count = idle.by_path.values().map(Vec::len).sum();
        idle.count
    }

    /// Closes every kept connection.
    pub fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            *idle = Idles::default();
        }
    }

    /// Connections kept now.
    pub fn kept(&self) -> usize {
        self.idle.lock().map(|idle| idle.count).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(path: &Path, v: i64) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER);
             CREATE TABLE calls (x); CREATE TABLE call_keys (x);",
        )
        .unwrap();
        c.execute("INSERT INTO t VALUES (?1)", [v]).unwrap();
    }

    fn value(c: &Connection) -> i64 {
        c.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap()
    }

    use crate::open_files_under as held;

    #[test]
    fn a_connection_is_reused_and_a_replaced_or_removed_file_is_not_read_through_it() {
        let dir = std::env::temp_dir().join(format!("siphon-readpool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("index.sqlite");
        db(&p, 1);
        let pool = ReadPool::new();
        assert_eq!(pool.with(&p, value).unwrap(), 1);
        assert_eq!(pool.kept(), 1, "kept after use");
        let nested = pool
            .with(&p, |a| {
                let b = pool.with(&p, |b| (value(b), pool.kept())).unwrap();
                (value(a), b)
            })
            .unwrap();
        assert_eq!(nested, (1, (1, 0)), "both in use: none kept meanwhile");
        assert_eq!(pool.kept(), 2);

        // The bucket is removed (retention) and made again (a late call): the kept
        // connections read the old file, so they must not be handed out.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        db(&p, 2);
        assert_eq!(pool.with(&p, value).unwrap(), 2);
        assert_eq!(pool.kept(), 1, "the stale ones were closed");

        // Removed for good: the sweep closes what is kept, giving the space back.
        assert!(held(&dir) > 0);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(pool.sweep(), 0);
        assert_eq!(held(&dir), 0, "no file of the removed bucket is open");
        assert!(pool.with(&p, value).is_err(), "a missing index is an error");
    }

    /// The index file exists before the writer has made its tables (and stays so on a full
    /// disk): a connection that read it then must not be kept, or it would answer "no such
    /// table" for ever.
    #[test]
    fn a_connection_to_an_index_not_made_yet_is_not_kept() {
        let dir = std::env::temp_dir().join(format!("siphon-readpool-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("index.sqlite");
        std::fs::write(&p, b"").unwrap();
        let pool = ReadPool::new();
        let count =
            |c: &Connection| c.query_row("SELECT count(*) FROM calls", [], |r| r.get::<_, i64>(0));
        assert!(pool.with(&p, count).unwrap().is_err(), "no table yet");
        assert_eq!(pool.kept(), 0);
        drop(crate::index::open(&p).unwrap());
        assert_eq!(pool.with(&p, count).unwrap().unwrap(), 0);
        assert_eq!(pool.kept(), 1);
        assert_eq!(
            pool.with(&p, count).unwrap().unwrap(),
            0,
            "kept and working"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_pool_keeps_the_connections_it_has() {
        let dir = std::env::temp_dir().join(format!("siphon-readpool-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let paths: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("{i}.sqlite"))).collect();
        for (i, p) in paths.iter().enumerate() {
            db(p, i as i64);
        }
        let pool = ReadPool::with_capacity(2);
        for _ in 0..2 {
            for (i, p) in paths.iter().enumerate() {
                assert_eq!(pool.with(p, value).unwrap(), i as i64);
            }
        }
        assert_eq!(pool.kept(), 2);
        // The first two stay: the same walk again finds them kept.
        let before = held(&dir);
        assert_eq!(pool.with(&paths[0], |_| held(&dir)).unwrap(), before);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_capacity_follows_the_file_limit() {
        assert_eq!(ReadPool::for_file_limit(1024).capacity(), 16);
        assert_eq!(ReadPool::for_file_limit(4096).capacity(), 512);
        assert_eq!(ReadPool::for_file_limit(2560).capacity(), 256);
        assert_eq!(ReadPool::for_file_limit(1 << 20).capacity(), 512);
    }
}
