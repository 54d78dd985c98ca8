//! From a call's streams to the inputs of the quality grading (`siphon-quality`).
//!
//! Per direction (uac = caller→callee, uas = callee→caller) the audio streams are summed:
//! telephone-event and comfort-noise streams carry no speech and are left out. A direction's
//! codec is that of its stream with the most packets; its jitter mean is packet-weighted; its
//! RTT is the mean of the RTCP LSR/DLSR measurements of its streams, else of the other
//! direction's (the round trip is the same path), else unknown. Intervals of the direction's
//! streams with the same start are summed.

use std::collections::BTreeMap;

use siphon_quality::{report, DirectionInput, IntervalSample, QualityReport};

use crate::summary::{CallSummary, StreamDirection, StreamSummary};

fn is_audio(st: &StreamSummary) -> bool {
    let c = st.codec.to_ascii_lowercase();
    !(c.starts_with("telephone-event")
        || c == "cn"
        || st.payload_type == 13
        || st.payload_type == 19)
}

fn direction(s: &CallSummary, dir: StreamDirection) -> (DirectionInput, Option<f64>) {
    let streams: Vec<&StreamSummary> = s
        .streams
        .iter()
        .filter(|st| st.direction == dir && is_audio(st))
        .collect();
    let packets: u64 = streams.iter().map(|st| st.stats.packets).sum();
    let codec = streams
        .iter()
        .max_by_key(|st| st.stats.packets)
        .map(|st| st.codec.clone())
        .unwrap_or_default();
    let jitter_mean_ms = if packets == 0 {
        0.0
    } else {
        streams
            .iter()
            .map(|st| st.stats.mean_jitter_ms() * st.stats.packets as f64)
            .sum::<f64>()
            / packets as f64
    };
    let (rtt_sum, rtt_n) = streams.iter().fold((0.0, 0u32), |(a, n), st| {
        (a + st.rtcp.rtt_sum_ms, n + st.rtcp.rtt_count)
    });
    let rtt = (rtt_n > 0).then(|| rtt_sum / f64::from(rtt_n));
    let mut iv: BTreeMap<i64, IntervalSample> = BTreeMap::new();
    for st in &streams {
        for i in &st.intervals {
            let e = iv.entry(i.start_us).or_insert(IntervalSample {
                start_us: i.start_us,
                packets: 0,
                expected: 0,
                lost: 0,
                jitter_ms: 0.0,
                rtt_ms: None,
            });
            e.packets += i.packets;
            e.expected += i.expected();
            e.lost += i.lost();
            e.jitter_ms = e.jitter_ms.max(i.jitter_ms);
            if let Some(r) = i.rtt_ms() {
                e.rtt_ms = Some(e.rtt_ms.map_or(r, |x: f64| x.max(r)));
            }
        }
    }
    (
        DirectionInput {
            codec,
            packets,
            expected: streams.iter().map(|st| st.stats.expected()).sum(),
            lost: streams.iter().map(|st| st.stats.lost()).sum(),
            jitter_mean_ms,
            jitter_max_ms: streams
                .iter()
                .map(|st| st.stats.max_jitter_ms())
                .fold(0.0, f64::max),
            rtt_ms: rtt,
            has_media: packets > 0,
            intervals: iv.into_values().collect(),
        },
        rtt,
    )
}

/// The quality report of a call from its streams.
pub fn report_for(s: &CallSummary) -> QualityReport {
    let (mut uac, rtt_a) = direction(s, StreamDirection::Uac);
    let (mut uas, rtt_b) = direction(s, StreamDirection::Uas);
    if uac.rtt_ms.is_none() {
        uac.rtt_ms = rtt_b;
    }
    if uas.rtt_ms.is_none() {
        uas.rtt_ms = rtt_a;
    }
    let call_id = s.call_id_str();
    report(
        &call_id,
        uac.has_media.then_some(&uac),
        uas.has_media.then_some(&uas),
    )
}
