//! Answered calls without any RTP store no quality JSON (it follows from the row), yet read
//! back with the same report the grading gives them: no audio either way. Calls with media
//! keep their stored report.

use std::path::Path;

mod support;

use support::{corpus, scratch};

use siphon_ingest::{IngestConfig, Pipeline};
use siphon_quality::AudioStatus;
use siphon_store::segment::{self, KIND_QUALITY};
use siphon_store::{list_buckets, list_segments, CallQuery, Store, StoreConfig, StoreWriter};
use siphon_wire::capture::CaptureReader;
use siphon_wire::decode::Decoder;

/// Imports a capture; with `sip_only`, frames between two ports ≥ 10000 (the RTP) are left out.
fn import(root: &Path, file: &Path, sip_only: bool) {
    let mut cfg = StoreConfig::new(root);
    cfg.fsync = false;
    let mut w = StoreWriter::open(cfg).unwrap();
    let mut p = Pipeline::new(IngestConfig::default(), w.first_ref());
    let mut r = CaptureReader::open(file).unwrap();
    let mut dec = Decoder::new();
    while let Some(f) = r.next_frame().unwrap() {
        if sip_only {
            if let Ok(Some(pkt)) = dec.decode(&f) {
                if pkt.src.port() >= 10000 && pkt.dst.port() >= 10000 {
                    continue;
                }
            }
        }
        p.push_frame(&f, &mut w);
        if w.should_flush() {
            w.flush_refs(&p.dirty()).unwrap();
        }
    }
    p.finish("end of capture", &mut w);
    w.close(Vec::new()).unwrap();
}

/// Quality records stored in the segments of a store.
fn stored_quality_records(root: &Path) -> usize {
    let mut n = 0;
    for b in list_buckets(root).unwrap() {
        for (_, p) in list_segments(&b.dir).unwrap() {
            let scan = segment::scan(&p).unwrap();
            let mut f = std::fs::File::open(&p).unwrap();
            for (off, _) in scan.blocks {
                let (hdr, raw) = segment::read_block(&mut f, off).unwrap();
                segment::for_each_record(&hdr, &raw, off, |kind, _, _, _, _, _| {
                    if kind == KIND_QUALITY {
                        n += 1;
                    }
                })
                .unwrap();
            }
        }
    }
    n
}

fn answered(root: &Path) -> Vec<siphon_store::index::CallRow> {
    let store = Store::open(root).unwrap();
    let rows = store.search(&CallQuery::default()).unwrap();
    rows.into_iter()
        .filter(|r| r.answer_us.is_some())
        .map(|r| {
            store
                .find(&String::from_utf8_lossy(&r.call_id))
                .unwrap()
                .unwrap()
        })
        .collect()
}

#[test]
fn answered_calls_without_rtp_read_back_a_no_audio_report_that_is_not_stored() {
    let root = scratch("signalling-only");
    import(&root, &corpus("many_calls_24.pcap"), true);
    assert_eq!(stored_quality_records(&root), 0);
    let rows = answered(&root);
    assert!(rows.len() >= 20, "{} answered calls", rows.len());
    for row in &rows {
        assert!(row.streams.is_empty());
        let json = row.quality_json.as_ref().expect("a derived report");
        let q: siphon_quality::QualityReport = serde_json::from_slice(json).unwrap();
        assert_eq!(q.audio_status, AudioStatus::Noa, "{q:?}");
        assert_eq!(q.call_id, String::from_utf8_lossy(&row.call_id));
        assert_eq!(q.mos, None);
        let again = siphon_calls::quality::report_for(&siphon_store::index::row_to_summary(row));
        assert_eq!(q, again);
        // The index columns say the same, so searches by verdict or MOS find the call.
        assert_eq!(row.verdict, q.verdict.as_str());
        assert_eq!(row.mos_avg, None);
    }
}

#[test]
fn calls_with_rtp_keep_their_stored_report() {
    let root = scratch("with-media");
    import(&root, &corpus("many_calls_24.pcap"), false);
    let rows = answered(&root);
    assert!(!rows.is_empty());
    assert_eq!(stored_quality_records(&root), rows.len());
    for row in &rows {
        assert!(!row.streams.is_empty());
        let q: siphon_quality::QualityReport =
            serde_json::from_slice(row.quality_json.as_ref().unwrap()).unwrap();
        assert_eq!(q.audio_status, AudioStatus::Normal, "{q:?}");
        assert!(q.mos.is_some());
    }
}
