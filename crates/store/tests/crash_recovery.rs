//! A writer that stops without closing (as after SIGKILL) right after a flush: calls written to
//! the segments but not yet to the index (new calls get their row a few seconds late) are
//! rebuilt when the store is next opened for writing, and every stored packet of every call is
//! found again through the index.

use std::collections::BTreeMap;
use std::path::Path;

mod support;

use support::{corpus, scratch};

use siphon_ingest::{IngestConfig, Pipeline};
use siphon_store::segment::{self, BlockKind, KIND_CALL_DEF};
use siphon_store::{list_buckets, list_segments, Store, StoreConfig, StoreWriter};
use siphon_wire::capture::CaptureReader;

/// Per call handle: its Call-ID (from its definition) and how many packets the segments hold.
fn stored_calls(root: &Path) -> BTreeMap<u64, (Vec<u8>, usize)> {
    let mut out: BTreeMap<u64, (Vec<u8>, usize)> = BTreeMap::new();
    for b in list_buckets(root).unwrap() {
        for (_, p) in list_segments(&b.dir).unwrap() {
            let scan = segment::scan(&p).unwrap();
            let mut f = std::fs::File::open(&p).unwrap();
            for (off, kind) in scan.blocks {
                if kind == BlockKind::Summary as u8 {
                    continue;
                }
                let (hdr, raw) = segment::read_block(&mut f, off).unwrap();
                segment::for_each_record(&hdr, &raw, off, |kind, _, r, _, _, data| {
                    if r == 0 {
                        return;
                    }
                    let e = out.entry(r).or_default();
                    if kind == KIND_CALL_DEF {
                        e.0 = data.to_vec();
                    } else {
                        e.1 += 1;
                    }
                })
                .unwrap();
            }
        }
    }
    out
}

fn index_rows(root: &Path) -> i64 {
    let mut n = 0;
    for b in list_buckets(root).unwrap() {
        let c = rusqlite::Connection::open(b.dir.join("index.sqlite")).unwrap();
        n += c
            .query_row("SELECT count(*) FROM calls", [], |r| r.get::<_, i64>(0))
            .unwrap();
    }
    n
}

#[test]
fn calls_without_an_index_row_at_a_crash_are_rebuilt_with_every_packet() {
    let root = scratch("crash-recovery");
    let mut cfg = StoreConfig::new(&root);
    cfg.fsync = false;
    cfg.flush_count = 100;
    let mut w = StoreWriter::open(cfg.clone()).unwrap();
    let mut p = Pipeline::new(IngestConfig::default(), w.first_ref());
    let mut r = CaptureReader::open(&corpus("many_calls_24.pcap")).unwrap();
    let mut first_ts = None;
    let mut flushes = 0;
    // Calls start every 0.25 s: stop 3.5 s in, while the youngest are not in the index yet.
    while let Some(f) = r.next_frame().unwrap() {
        p.push_frame(&f, &mut w);
        let t0 = *first_ts.get_or_insert(f.ts_us);
        if w.should_flush() {
            w.flush_refs(&p.dirty()).unwrap();
            flushes += 1;
            if f.ts_us - t0 > 3_500_000 {
                break;
            }
        }
    }
    assert!(flushes >= 5, "{flushes} flushes");
    // The process dies here: nothing is closed, sealed or completed (dropping the writer
    // without `close` writes nothing more; the lock goes as with a dead process).
    drop(p);
    drop(w);

    let stored = stored_calls(&root);
    let defined = stored.values().filter(|c| !c.0.is_empty()).count();
    let rows_before = index_rows(&root);
    assert!(defined >= 10, "{defined} calls in the segments");
    assert!(
        (rows_before as usize) < defined,
        "some calls must lack a row for the test to mean anything ({rows_before} rows, {defined} calls)"
    );

    eprintln!("before recovery: {rows_before} index rows for {defined} stored calls");
    let w = StoreWriter::open(cfg).unwrap();
    eprintln!(
        "recovery: {} calls rebuilt, {} rows completed",
        w.stats().recovered_calls,
        w.stats().repaired_rows
    );
    assert_eq!(
        w.stats().recovered_calls as usize,
        defined - rows_before as usize,
        "every call without a row is rebuilt"
    );
    // Calls with a row whose RTP since their last snapshot is in blocks the row does not list.
    assert!(w.stats().repaired_rows > 0);
    w.close(Vec::new()).unwrap();
    assert_eq!(index_rows(&root) as usize, defined);

    let store = Store::open(&root).unwrap();
    for (r, (call_id, packets)) in &stored {
        assert!(
            !call_id.is_empty(),
            "call {r} has records but no definition"
        );
        let row = store
            .find(&String::from_utf8_lossy(call_id))
            .unwrap()
            .unwrap_or_else(|| panic!("{} is not in the index", String::from_utf8_lossy(call_id)));
        assert_eq!(row.call_ref, *r);
        let got = store.records(&row).unwrap().len();
        assert_eq!(
            got,
            *packets,
            "packets of {}",
            String::from_utf8_lossy(call_id)
        );
        // The row's counts agree with what it points to.
        let counted = u64::from(row.messages) + row.rtp_packets + row.rtcp_packets;
        assert_eq!(
            counted,
            *packets as u64,
            "counts of {}",
            String::from_utf8_lossy(call_id)
        );
    }

    // A second open finds nothing left to do.
    let w = StoreWriter::open(StoreConfig::new(&root)).unwrap();
    assert_eq!(w.stats().recovered_calls, 0);
    assert_eq!(w.stats().repaired_rows, 0);
}

#[test]
fn a_second_writer_on_the_same_store_is_refused_until_the_first_is_gone() {
    let root = scratch("two-writers");
    let w = StoreWriter::open(StoreConfig::new(&root)).unwrap();
    let e = StoreWriter::open(StoreConfig::new(&root))
        .err()
        .expect("a second writer");
    assert!(e.to_string().contains("open for writing by another"), "{e}");
    drop(w);
    StoreWriter::open(StoreConfig::new(&root)).unwrap();
}
