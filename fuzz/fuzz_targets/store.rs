#![no_main]
//! What the store reads back from disk, damaged or hostile: segment files (scan, torn-tail
//! recovery, block reading and record decoding) and the index's packed block lists and
//! streams; and the times the command line and the API take (Unix seconds or RFC 3339). The
//! first byte picks which.
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use siphon_store::index::{pack_blocks, unpack_blocks, unpack_streams};
use siphon_store::segment::{self, SEG_MAGIC, SEG_VERSION};
use siphon_store::{format_rfc3339_us, parse_time_us};

static N: AtomicU64 = AtomicU64::new(0);

fn segment_file(body: &[u8]) {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!(
        "siphon-fuzz-{}-{}.seg",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    {
        let mut f = std::fs::File::create(&path).unwrap();
        // A valid file header, so the fuzzer works on the blocks.
        f.write_all(SEG_MAGIC).unwrap();
        f.write_all(&SEG_VERSION.to_le_bytes()).unwrap();
        f.write_all(&[0u8; 4]).unwrap();
        f.write_all(body).unwrap();
    }
    if let Ok(scan) = segment::scan(&path) {
        assert!(scan.valid_end <= 16 + body.len() as u64);
        let mut f = std::fs::File::open(&path).unwrap();
        for (off, _) in scan.blocks {
            if let Ok((hdr, raw)) = segment::read_block(&mut f, off) {
                let _ = segment::for_each_record(&hdr, &raw, off, |_, _, _, _, _, data| {
                    assert!(data.len() <= raw.len());
                });
            }
        }
    }
    // Recovery cuts a torn tail; what remains must scan clean.
    if segment::recover(&path).is_ok() {
        let again = segment::scan(&path).unwrap();
        assert!(again.sealed || again.torn_bytes == 0);
    }
    let _ = std::fs::remove_file(&path);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => segment_file(rest),
        3 => {
            let _ = parse_time_us(&String::from_utf8_lossy(rest));
            if let Some(b) = rest.get(..8) {
                let t = i64::from_le_bytes(b.try_into().unwrap());
                let text = format_rfc3339_us(t);
                // Four-digit years read back exactly.
                if (-62_135_596_800_000_000..253_402_300_800_000_000).contains(&t) {
                    assert_eq!(parse_time_us(&text), Some(t), "{text}");
                }
            }
        }
        1 => {
            let blocks = unpack_blocks(rest);
            // The writer packs sorted lists of offsets inside files; those come back as they
            // were.
            if blocks.windows(2).all(|w| w[0] <= w[1]) && blocks.iter().all(|b| b.offset < 1 << 62)
            {
                assert_eq!(unpack_blocks(&pack_blocks(&blocks)), blocks);
            }
        }
        _ => {
            let _ = unpack_streams(rest, 1_800_000_000_000_000);
        }
    }
});
