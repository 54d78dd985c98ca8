//! A call's SIP messages are read without its media blocks: the ladder of a long call does not
//! decompress its RTP. A damaged media block proves it: the messages still read back.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

mod support;

use support::{corpus, scratch};

use siphon_ingest::{IngestConfig, Kind, Pipeline};
use siphon_store::segment::{self, BlockKind, BLOCK_HEADER_LEN};
use siphon_store::{list_buckets, list_segments, Store, StoreConfig, StoreWriter};
use siphon_wire::capture::CaptureReader;

fn import(root: &Path, file: &Path) {
    let mut cfg = StoreConfig::new(root);
    cfg.fsync = false;
    let mut w = StoreWriter::open(cfg).unwrap();
    let mut p = Pipeline::new(IngestConfig::default(), w.first_ref());
    let mut r = CaptureReader::open(file).unwrap();
    while let Some(f) = r.next_frame().unwrap() {
        p.push_frame(&f, &mut w);
    }
    p.finish("end of capture", &mut w);
    w.close(Vec::new()).unwrap();
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
