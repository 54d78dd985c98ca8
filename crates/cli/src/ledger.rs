//! The files `siphon import` has imported into a store: `imports.jsonl` at the store's root, a
//! line per file, appended once the file's packets are durable. Importing a file a second time
//! would store each of its calls twice; with the ledger a file already imported is skipped.
//!
//! A file is known by its size and by hashes of its first and last 64 KiB (not its name: a
//! capture copied or renamed is the same capture). One of at least 64 KiB that begins as a
//! recorded one but differs in size or end (a capture that grew since) is refused: importing it
//! again would store its first calls twice. (A smaller file that grew is not recognised.)

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The ledger's file name at the store's root.
pub const FILE: &str = "imports.jsonl";

/// Bytes hashed at each end of a file.
const SPAN: u64 = 64 << 10;

/// What identifies a capture file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub size: u64,
    /// FNV-1a 64 of the first 64 KiB (or the whole file), in hex.
    pub head: String,
    /// FNV-1a 64 of the last 64 KiB (or the whole file), in hex.
    pub tail: String,
}

/// One ledger line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub fingerprint: Fingerprint,
    /// When it was imported (RFC 3339).
    pub imported: String,
    /// The path it was imported from.
    pub file: String,
}

/// What the ledger says of a file about to be imported.
#[derive(Debug)]
pub enum Seen<'a> {
    /// Not imported before.
    New,
    /// The same file was imported.
    Same(&'a Entry),
    /// A file that began the same was imported, with another size or end.
    Grown(&'a Entry),
}

fn fnv1a(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

fn hash_span(f: &mut File, from: u64, len: u64) -> std::io::Result<String> {
    f.seek(SeekFrom::Start(from))?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut buf = vec![0u8; 64 << 10];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = f.read(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            break;
        }
        fnv1a(&mut h, buf.get(..n).unwrap_or_default());
        left -= n as u64;
    }
    Ok(format!("{h:016x}"))
}

/// The fingerprint of the file at `path`.
pub fn fingerprint(path: &Path) -> std::io::Result<Fingerprint> {
    let mut f = File::open(path)?;
    let size = f.metadata()?.len();
    let head = hash_span(&mut f, 0, size.min(SPAN))?;
    let tail = hash_span(&mut f, size.saturating_sub(SPAN), size.min(SPAN))?;
    Ok(Fingerprint { size, head, tail })
}

/// The ledger of one store.
pub struct Ledger {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl Ledger {
    /// Reads the ledger of the store at `root` (none yet: empty). Lines that do not parse (the
    /// torn end of a line written during a crash) are skipped.
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join(FILE);
        let mut entries = Vec::new();
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line.with_context(|| format!("reading {}", path.display()))?;
                    if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                        entries.push(e);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        }
        Ok(Ledger { path, entries })
    }

    /// What the ledger knows of a file with fingerprint `fp`.
    pub fn seen(&self, fp: &Fingerprint) -> Seen<'_> {
        if let Some(e) = self.entries.iter().rev().find(|e| e.fingerprint == *fp) {
            return Seen::Same(e);
        }
        match self
            .entries
            .iter()
            .rev()
            .find(|e| e.fingerprint.size >= SPAN && e.fingerprint.head == fp.head)
        {
            Some(e) => Seen::Grown(e),
            None => Seen::New,
        }
    }

    /// Appends `entries` and makes them durable.
    pub fn record(&mut self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for e in &entries {
            text.push_str(&serde_json::to_string(e)?);
            text.push('\n');
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        // A line torn by a crash before this one must not swallow it.
        if f.metadata().map(|m| m.len()).unwrap_or(0) > 0 && !ends_with_newline(&self.path) {
            text.insert(0, '\n');
        }
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_data())
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.entries.extend(entries);
        Ok(())
    }
}

fn ends_with_newline(path: &Path) -> bool {
    let Ok(mut f) = File::open(path) else {
        return true;
    };
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut last).is_ok() && last[0] == b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("siphon-ledger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entry(fp: Fingerprint, file: &str) -> Entry {
        Entry {
            fingerprint: fp,
            imported: "2026-11-26T00:00:00.000000Z".into(),
            file: file.into(),
        }
    }

    #[test]
    fn a_file_is_known_by_its_content_not_its_name() {
        let d = scratch("content");
        let a = d.join("a.pcap");
        let b = d.join("b.pcap");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&a, &bytes).unwrap();
        std::fs::write(&b, &bytes).unwrap();
        assert_eq!(fingerprint(&a).unwrap(), fingerprint(&b).unwrap());
        // Another last byte: the same beginning, another end.
        let mut end = bytes.clone();
        *end.last_mut().unwrap() ^= 1;
        std::fs::write(&b, &end).unwrap();
        let (fa, fb) = (fingerprint(&a).unwrap(), fingerprint(&b).unwrap());
        assert_eq!((fa.size, &fa.head), (fb.size, &fb.head));
        assert_ne!(fa.tail, fb.tail);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_ledger_tells_a_same_file_from_a_grown_one_and_survives_a_torn_line() {
        let d = scratch("ledger");
        let cap = d.join("x.pcap");
        std::fs::write(&cap, b"0123456789").unwrap();
        let fp = fingerprint(&cap).unwrap();
        let mut l = Ledger::open(&d).unwrap();
        assert!(matches!(l.seen(&fp), Seen::New));
        l.record(vec![entry(fp.clone(), "x.pcap")]).unwrap();
        // A crash mid-line leaves a torn last line; the next record starts a line of its own.
        let mut f = OpenOptions::new().append(true).open(d.join(FILE)).unwrap();
        f.write_all(b"{\"size\":12,\"he").unwrap();
        drop(f);
        let small = d.join("y.pcap");
        std::fs::write(&small, b"abc").unwrap();
        let fy = fingerprint(&small).unwrap();
        let mut l = Ledger::open(&d).unwrap();
        l.record(vec![entry(fy.clone(), "y.pcap")]).unwrap();
        let l = Ledger::open(&d).unwrap();
        assert!(matches!(l.seen(&fp), Seen::Same(e) if e.file == "x.pcap"));
        assert!(matches!(l.seen(&fy), Seen::Same(e) if e.file == "y.pcap"));
        // A capture that grew: its first 64 KiB hash as before, its size and end differ.
        let big = d.join("big.pcap");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&big, &bytes).unwrap();
        let fb = fingerprint(&big).unwrap();
        let mut l = Ledger::open(&d).unwrap();
        l.record(vec![entry(fb.clone(), "big.pcap")]).unwrap();
        let mut more = bytes.clone();
        more.extend_from_slice(b"more packets");
        std::fs::write(&big, &more).unwrap();
        let fm = fingerprint(&big).unwrap();
        assert!(matches!(l.seen(&fm), Seen::Grown(e) if e.file == "big.pcap"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
