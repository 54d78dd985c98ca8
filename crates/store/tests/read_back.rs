//! Reading a call back: its SIP messages without its media blocks (the ladder of a long call
//! does not decompress its RTP; a damaged media block proves it), and all its packets by
//! capture time a block at a time, as the exports read them.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

mod support;

use support::{corpus, scratch};

use siphon_ingest::{IngestConfig, Kind, Pipeline};
use siphon_store::segment::{self, BlockKind, BLOCK_HEADER_LEN};
use siphon_store::{list_buckets, list_segments, Store, StoreConfig, StoreWriter};
use siphon_wire::capture::CaptureReader;

fn import(root: &Path, file: &Path) {
    import_swapped(root, file, 0);
}

/// Imports a capture; with `swap` > 0, every run of `swap` frames after the first ten reaches
/// the store in reverse order (times unchanged), as out-of-order HEP delivers them.
fn import_swapped(root: &Path, file: &Path, swap: usize) {
    let mut cfg = StoreConfig::new(root);
    cfg.fsync = false;
    let mut w = StoreWriter::open(cfg).unwrap();
    let mut p = Pipeline::new(IngestConfig::default(), w.first_ref());
    let mut r = CaptureReader::open(file).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        frames.push((f.ts_us, f.link, f.data.to_vec(), f.orig_len, f.interface));
    }
    if swap > 0 {
        for run in frames[10..].chunks_mut(swap) {
            run.reverse();
        }
    }
    for (ts_us, link, data, orig_len, interface) in &frames {
        let f = siphon_wire::capture::Frame {
            ts_us: *ts_us,
            link: *link,
            data,
            orig_len: *orig_len,
            interface: *interface,
        };
        p.push_frame(&f, &mut w);
        if w.should_flush() {
            w.flush_refs(&p.dirty()).unwrap();
        }
    }
    p.finish("end of capture", &mut w);
    w.close(Vec::new()).unwrap();
}

/// What `Store::packets` must give: every record, stably sorted by time.
fn sorted(store: &Store, row: &siphon_store::CallRow) -> Vec<siphon_store::StoredRecord> {
    let mut all = store.records(row).unwrap();
    all.sort_by_key(|r| r.ts_us);
    all
}

#[test]
fn packets_come_by_capture_time_like_a_full_sort() {
    for name in [
        "basic_twoway_g711a.pcap",
        "hold_unhold_dtmf_callee_bye.pcap",
        "many_calls_24.pcap",
    ] {
        let root = scratch(&format!("packets-{name}")).join("data");
        import(&root, &corpus(name));
        let store = Store::open(&root).unwrap();
        let rows = store.search(&siphon_store::CallQuery::default()).unwrap();
        assert!(!rows.is_empty());
        for row in rows {
            let got: Vec<_> = store
                .packets(&row, true)
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            assert_eq!(got, sorted(&store, &row), "{name}: {}", row.call_id_str());
            let media: Vec<_> = store
                .packets(&row, false)
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            assert!(media.iter().all(|r| r.kind != Kind::Sip as u8));
            assert_eq!(
                media.len(),
                got.len() - store.sip_records(&row).unwrap().len()
            );
        }
        let _ = std::fs::remove_dir_all(root.parent().unwrap());
    }
}

#[test]
fn packets_stored_out_of_order_come_back_in_time_order() {
    let root = scratch("packets-swapped").join("data");
    import_swapped(&root, &corpus("basic_twoway_g711a.pcap"), 7);
    let store = Store::open(&root).unwrap();
    let row = store.find("1-5790@127.0.0.1").unwrap().unwrap();
    let stored = store.records(&row).unwrap();
    assert!(
        stored
            .windows(2)
            .any(|w| w[0].kind == w[1].kind && w[0].ts_us > w[1].ts_us),
        "the store keeps arrival order"
    );
    let got: Vec<_> = store
        .packets(&row, true)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(got.len(), stored.len());
    assert!(got.windows(2).all(|w| w[0].ts_us <= w[1].ts_us));
    let _ = std::fs::remove_dir_all(root.parent().unwrap());
}

/// Flips a byte in the payload of every media block; returns how many were damaged.
fn damage_media_blocks(root: &Path) -> usize {
    let mut n = 0;
    for b in list_buckets(root).unwrap() {
        for (_, p) in list_segments(&b.dir).unwrap() {
            let scan = segment::scan(&p).unwrap();
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&p)
                .unwrap();
            for (off, kind) in scan.blocks {
                if kind != BlockKind::Media as u8 {
                    continue;
                }
                let at = off + BLOCK_HEADER_LEN as u64 + 3;
                let mut byte = [0u8];
                f.seek(SeekFrom::Start(at)).unwrap();
                f.read_exact(&mut byte).unwrap();
                f.seek(SeekFrom::Start(at)).unwrap();
                f.write_all(&[byte[0] ^ 0x5a]).unwrap();
                n += 1;
            }
        }
    }
    n
}

#[test]
fn sip_records_skip_media_blocks_unread() {
    let root = scratch("sip-records").join("data");
    import(&root, &corpus("basic_twoway_g711a.pcap"));
    let store = Store::open(&root).unwrap();
    let row = store.find("1-5790@127.0.0.1").unwrap().unwrap();
    let all = store.records(&row).unwrap();
    let sip: Vec<_> = all
        .iter()
        .filter(|r| r.kind == Kind::Sip as u8)
        .cloned()
        .collect();
    assert_eq!(sip.len(), 7);
    assert!(all.len() > 400, "{} records: the call has RTP", all.len());
    assert_eq!(store.sip_records(&row).unwrap(), sip);

    assert!(damage_media_blocks(&root) > 0);
    let store = Store::open(&root).unwrap();
    let row = store.find("1-5790@127.0.0.1").unwrap().unwrap();
    // Reading everything meets the damage; the messages alone never touch it.
    assert!(store.records(&row).is_err());
    assert_eq!(store.sip_records(&row).unwrap(), sip);
    let _ = std::fs::remove_dir_all(root.parent().unwrap());
}
