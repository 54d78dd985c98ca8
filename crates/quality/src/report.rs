//! The call's quality report: per-direction E-model and statistics, verdict, audio status,
//! degraded leg and the 5-second timeseries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::{codec_params, CodecMatch};
use crate::emodel::{emodel, mos_with, sanitize_rtt_ms, EModelInput, EModelResult};
use crate::stats::Stats;
use crate::verdict::{breaches, verdict, Metrics, Verdict};

/// Length of one timeseries interval in µs (5 s).
pub const INTERVAL_US: i64 = 5_000_000;
/// A direction whose MOS average is below this is degraded.
pub const DEGRADED_MOS_BELOW: f64 = 3.5;

/// Start (µs) of the 5-second interval holding `ts_us`, on the grid `origin_us + k·5 s`.
///
/// Bucket both directions of a call from the same origin (e.g. the call start) so that
/// [`report`] can align them: the timeseries joins the directions on equal `start_us`.
/// Saturates at the ends of the `i64` range.
pub fn interval_start(origin_us: i64, ts_us: i64) -> i64 {
    let offset = ts_us.saturating_sub(origin_us);
    origin_us.saturating_add(offset.div_euclid(INTERVAL_US).saturating_mul(INTERVAL_US))
}

/// Whether audio flowed in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AudioStatus {
    /// Media in both directions: two-way audio.
    Normal,
    /// One-way audio: media in exactly one direction.
    #[serde(rename = "OWA")]
    Owa,
    /// No audio: media in neither direction.
    #[serde(rename = "NOA")]
    Noa,
}

/// Troubleshooting help attached to OWA and NOA reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// What most likely went wrong.
    pub probable_cause: String,
    /// What to check or change.
    pub recommendation: String,
}

/// One 5-second interval of one direction, as measured from RTP (and RTCP when known).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IntervalSample {
    /// Interval start, µs since the Unix epoch (see [`interval_start`]).
    pub start_us: i64,
    /// Packets received in the interval.
    pub packets: u64,
    /// Packets expected in the interval (from sequence numbers).
    pub expected: u64,
    /// Packets lost in the interval.
    pub lost: u64,
    /// Interarrival jitter in the interval, ms.
    pub jitter_ms: f64,
    /// RTT measured in the interval (RTCP), ms.
    pub rtt_ms: Option<f64>,
}

/// Whole-direction measurements.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DirectionInput {
    /// Codec name (SDP encoding name), looked up with [`codec_params`].
    pub codec: String,
    /// Packets received.
    pub packets: u64,
    /// Packets expected (RFC 3550 extended sequence numbers).
    pub expected: u64,
    /// Packets lost (duplicates not counted as received).
    pub lost: u64,
    /// Mean interarrival jitter, ms.
    pub jitter_mean_ms: f64,
    /// Largest interarrival jitter, ms.
    pub jitter_max_ms: f64,
    /// Round-trip time of the direction (RTCP), ms; `None` when unknown.
    pub rtt_ms: Option<f64>,
    /// Whether any RTP or RTCP of this direction was seen.
    pub has_media: bool,
    /// The direction's 5-second intervals.
    pub intervals: Vec<IntervalSample>,
}

/// Per-direction part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionReport {
    /// E-model over the whole direction (its loss and RTT).
    pub emodel: EModelResult,
    /// Verdict of this direction alone.
    pub verdict: Verdict,
    /// Packets received.
    pub packets: u64,
    /// Packets expected.
    pub expected: u64,
    /// Packets lost.
    pub lost: u64,
    /// lost / expected in percent (0 when nothing was expected, at most 100).
    pub loss_pct: f64,
    /// Mean interarrival jitter, ms.
    pub jitter_mean_ms: f64,
    /// Largest interarrival jitter, ms.
    pub jitter_max_ms: f64,
    /// Number of intervals the statistics are over (after merging repeated starts).
    pub intervals: usize,
    /// MOS per interval.
    pub mos: Stats,
    /// Jitter per interval, ms.
    pub jitter_ms: Stats,
    /// Loss per interval, percent.
    pub loss_pct_stats: Stats,
    /// RTT per interval that measured one, ms; `None` when no RTT is known at all.
    pub rtt_ms: Option<Stats>,
}

/// The two directions of a call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Directions {
    /// Caller → callee media; `None` when it has none.
    pub uac: Option<DirectionReport>,
    /// Callee → caller media; `None` when it has none.
    pub uas: Option<DirectionReport>,
}

/// One direction's figures in one interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PointValues {
    /// MOS of the interval.
    pub mos: f64,
    /// Jitter of the interval, ms.
    pub jitter_ms: f64,
    /// Loss of the interval, percent.
    pub loss_pct: f64,
}

/// One point of the timeseries: an interval start and each direction's figures there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimePoint {
    /// Interval start, µs.
    pub t: i64,
    /// Caller → callee figures, `None` when that direction has no interval starting at `t`.
    pub uac: Option<PointValues>,
    /// Callee → caller figures, `None` when that direction has no interval starting at `t`.
    pub uas: Option<PointValues>,
}

/// The call's `quality.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// Call-ID.
    pub call_id: String,
    /// Call verdict (see [`report`]).
    pub verdict: Verdict,
    /// Worst MOS average of the directions with media; `None` when neither has media.
    pub mos: Option<f64>,
    /// Normal, OWA or NOA.
    pub audio_status: AudioStatus,
    /// `"uac"`, `"uas"`, `"both"` or `None`.
    pub degraded_leg: Option<String>,
    /// Present for OWA and NOA.
    pub diagnostic: Option<Diagnostic>,
    /// Per-direction reports.
    pub directions: Directions,
    /// 5-second points, ascending by `t`.
    pub timeseries: Vec<TimePoint>,
    /// Human-readable remarks on how figures were obtained or why the verdict is what it is.
    pub notes: Vec<String>,
}

/// Audio status from which directions carry media.
///
/// The product documentation phrases this with RTCP samples ("both UAC and UAS have RTCP
/// samples"). We use media presence, RTP or RTCP: many endpoints send no RTCP at all (or it
/// is not captured), which would turn healthy two-way calls into NOA, while captured RTP is
/// the direct evidence that audio flows in that direction. RTCP alone (e.g. RTCP via HEP
/// from a media server whose RTP is not captured) still counts as media.
pub fn audio_status(uac_has_media: bool, uas_has_media: bool) -> AudioStatus {
    match (uac_has_media, uas_has_media) {
        (true, true) => AudioStatus::Normal,
        (false, false) => AudioStatus::Noa,
        _ => AudioStatus::Owa,
    }
}

/// Degraded leg from the directions' MOS averages: a direction is degraded when its average
/// is strictly below 3.5 (a NaN average counts as degraded); `None` for a direction without
/// media, which is never called degraded (its absence is reported as OWA/NOA instead).
pub fn degraded_leg(uac_mos_avg: Option<f64>, uas_mos_avg: Option<f64>) -> Option<&'static str> {
    let degraded = |m: Option<f64>| m.is_some_and(|m| m.is_nan() || m < DEGRADED_MOS_BELOW);
    match (degraded(uac_mos_avg), degraded(uas_mos_avg)) {
        (true, true) => Some("both"),
        (true, false) => Some("uac"),
        (false, true) => Some("uas"),
        (false, false) => None,
    }
}

/// The diagnostic for an audio status: `None` for Normal.
pub fn diagnostic(status: AudioStatus, uac_has_media: bool) -> Option<Diagnostic> {
    let (cause, advice) = match status {
        AudioStatus::Normal => return None,
        AudioStatus::Noa => (
            "no audio: no RTP or RTCP in either direction; media blocked both ways \
             (firewall, NAT without a media relay), unreachable addresses in the SDP, a \
             failed media relay, or the media not captured (relay on another host, RTP \
             ports outside the capture range)"
                .to_string(),
            "check that each side's SDP address and port are reachable from the other side, \
             that the media relay (RTPProxy/RTPEngine) is running, that firewalls pass the \
             RTP port range, and that the capture covers the media ports \
             (rtp_port_min/rtp_port_max)"
                .to_string(),
        ),
        AudioStatus::Owa => {
            let (silent, dir, hearer) = if uac_has_media {
                ("callee", "uas", "caller")
            } else {
                ("caller", "uac", "callee")
            };
            (
                format!(
                    "one-way audio: no RTP or RTCP from the {silent} ({dir} direction), so \
                     the {hearer} cannot hear the {silent}; usually NAT or a firewall \
                     dropping the {silent}'s media, or a private or wrong address in the \
                     {silent}'s SDP"
                ),
                format!(
                    "compare the c= address and m= port in the {silent}'s SDP with the source \
                     address of its media; use symmetric RTP or a media relay for endpoints \
                     behind NAT; check firewall rules for the RTP port range on the \
                     {silent}'s path, and that the {silent} is not muted or on hold"
                ),
            )
        }
    };
    Some(Diagnostic {
        probable_cause: cause,
        recommendation: advice,
    })
}

/// A value in ms that must be finite and non-negative; anything else becomes 0.
fn clean_ms(value: f64, replaced: &mut u32) -> f64 {
    if value.is_finite() && value >= 0.0 {
        value
    } else {
        *replaced += 1;
        0.0
    }
}

/// An RTT that must be finite and non-negative; anything else becomes unknown.
fn clean_rtt(value: Option<f64>, replaced: &mut u32) -> Option<f64> {
    let clean = sanitize_rtt_ms(value);
    if clean.is_none() && value.is_some() {
        *replaced += 1;
    }
    clean
}

/// lost / expected in percent, at most 100; 0 when nothing was expected.
fn loss_pct(lost: u64, expected: u64) -> f64 {
    if expected == 0 {
        0.0
    } else {
        (lost as f64 / expected as f64 * 100.0).min(100.0)
    }
}

/// One direction graded.
struct Graded {
    report: DirectionReport,
    points: Vec<(i64, PointValues)>,
}

fn grade_direction(label: &str, d: &DirectionInput, notes: &mut Vec<String>) -> Graded {
    let mut replaced = 0u32;
    let jitter_mean_ms = clean_ms(d.jitter_mean_ms, &mut replaced);
    let jitter_max_ms = clean_ms(d.jitter_max_ms, &mut replaced);
    let rtt = clean_rtt(d.rtt_ms, &mut replaced);
    let loss = loss_pct(d.lost, d.expected);
    if d.lost > d.expected {
        notes.push(format!(
            "{label}: lost ({}) exceeds expected ({}): loss taken as {}",
            d.lost,
            d.expected,
            if d.expected == 0 { "0 %" } else { "100 %" }
        ));
    }

    // Merge intervals sharing a start: counts add up, jitter and RTT take the larger value.
    let mut merged: BTreeMap<i64, IntervalSample> = BTreeMap::new();
    let mut repeats = 0usize;
    for iv in &d.intervals {
        let jitter_ms = clean_ms(iv.jitter_ms, &mut replaced);
        let rtt_ms = clean_rtt(iv.rtt_ms, &mut replaced);
        match merged.get_mut(&iv.start_us) {
            None => {
                merged.insert(
                    iv.start_us,
                    IntervalSample {
                        jitter_ms,
                        rtt_ms,
                        ..iv.clone()
                    },
                );
            }
            Some(m) => {
                repeats += 1;
                m.packets = m.packets.saturating_add(iv.packets);
                m.expected = m.expected.saturating_add(iv.expected);
                m.lost = m.lost.saturating_add(iv.lost);
                m.jitter_ms = m.jitter_ms.max(jitter_ms);
                m.rtt_ms = match (m.rtt_ms, rtt_ms) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    if repeats > 0 {
        notes.push(format!(
            "{label}: {repeats} intervals with a repeated start merged"
        ));
    }
    if replaced > 0 {
        notes.push(format!(
            "{label}: {replaced} NaN, infinite or negative values replaced (jitter by 0, rtt by unknown)"
        ));
    }

    let whole = emodel(&EModelInput {
        codec: d.codec.clone(),
        loss_pct: loss,
        rtt_ms: rtt,
    });
    match whole.codec_match {
        CodecMatch::Exact => {}
        CodecMatch::Substring => notes.push(format!(
            "{label}: codec {:?} matched {} by substring",
            d.codec, whole.matched_codec
        )),
        CodecMatch::Default => notes.push(format!(
            "{label}: codec {:?} unknown: G.711 parameters used (Ie 0, Bpl 25)",
            d.codec
        )),
    }
    if rtt.is_none() {
        notes.push(format!("{label}: rtt unknown: one-way delay taken as 0"));
    }

    let (params, _) = codec_params(&d.codec);
    let mut points = Vec::with_capacity(merged.len());
    let mut rtts = Vec::new();
    for (start, iv) in &merged {
        let iv_loss = loss_pct(iv.lost, iv.expected);
        if let Some(r) = iv.rtt_ms {
            rtts.push(r);
        }
        let mos = mos_with(&params, iv_loss, iv.rtt_ms.or(rtt));
        points.push((
            *start,
            PointValues {
                mos,
                jitter_ms: iv.jitter_ms,
                loss_pct: iv_loss,
            },
        ));
    }
    let series = |f: fn(&PointValues) -> f64, whole: f64| {
        let values: Vec<f64> = points.iter().map(|(_, p)| f(p)).collect();
        Stats::from_values(&values).unwrap_or(Stats::single(whole))
    };
    if points.is_empty() {
        notes.push(format!(
            "{label}: no intervals: statistics are of the whole-direction figures"
        ));
    }
    let mos = series(|p| p.mos, whole.mos);
    let jitter_stats = series(|p| p.jitter_ms, jitter_mean_ms);
    let loss_stats = series(|p| p.loss_pct, loss);
    let rtt_stats = Stats::from_values(&rtts).or(rtt.map(Stats::single));

    let metrics = Metrics {
        mos: mos.avg,
        jitter_ms: jitter_mean_ms,
        loss_pct: loss,
        latency_ms: whole.delay_known.then_some(whole.delay_ms),
    };
    for b in breaches(&metrics) {
        notes.push(format!(
            "{label}: {} {:.2} {} above the {} threshold {} {}",
            b.metric,
            b.value,
            b.unit,
            if b.severe { "severe" } else { "warning" },
            b.threshold,
            b.unit
        ));
    }

    Graded {
        report: DirectionReport {
            verdict: verdict(&metrics),
            emodel: whole,
            packets: d.packets,
            expected: d.expected,
            lost: d.lost,
            loss_pct: loss,
            jitter_mean_ms,
            jitter_max_ms,
            intervals: points.len(),
            mos,
            jitter_ms: jitter_stats,
            loss_pct_stats: loss_stats,
            rtt_ms: rtt_stats,
        },
        points,
    }
}

/// Grades a call from its two media directions (`uac` caller → callee, `uas` callee → caller).
///
/// - A direction is graded when it is given and `has_media`; otherwise its report is `None`
///   and it counts as silent for the audio status ([`audio_status`]).
/// - Per direction: the E-model over the whole direction (loss = lost/expected, RTT as
///   given); for each interval the MOS from the interval's loss and the interval's RTT, else
///   the direction's RTT, else d = 0. Statistics are over the intervals (nearest-rank
///   percentiles); intervals sharing a start are merged first (counts added, the larger
///   jitter and RTT kept). A direction without intervals is summarised by its whole-direction
///   figures (all five statistics equal the single value). RTT statistics are over the
///   intervals that measured an RTT, else the direction's RTT, else `None`.
/// - The direction's verdict ([`verdict`]) uses its MOS average (the `mos.avg` statistic),
///   mean jitter, whole-direction loss and one-way latency RTT/2 (unknown latency exceeds no
///   threshold).
/// - The call verdict is the worst direction verdict, which equals applying the verdict rules
///   to the worst MOS average and the worst of each metric. One-way audio and no audio are
///   Bad (one party cannot hear the other), whatever the MOS of the direction that does flow.
/// - `degraded_leg` per [`degraded_leg`]; `diagnostic` per [`diagnostic`].
/// - The timeseries joins the directions' intervals on equal start (bucket both from the same
///   origin, see [`interval_start`]), ascending.
///
/// Sanitising: NaN, infinite or negative jitter becomes 0; such an RTT becomes unknown;
/// lost > expected gives 100 % loss (0 % when nothing was expected). Every replacement is noted.
/// No input makes this function panic.
pub fn report(
    call_id: &str,
    uac: Option<&DirectionInput>,
    uas: Option<&DirectionInput>,
) -> QualityReport {
    let mut notes = Vec::new();
    let mut grade = |label: &str, d: Option<&DirectionInput>| match d {
        Some(d) if d.has_media => Some(grade_direction(label, d, &mut notes)),
        _ => {
            notes.push(format!("{label}: no media"));
            None
        }
    };
    let uac_graded = grade("uac", uac);
    let uas_graded = grade("uas", uas);

    let status = audio_status(uac_graded.is_some(), uas_graded.is_some());
    let uac_avg = uac_graded.as_ref().map(|g| g.report.mos.avg);
    let uas_avg = uas_graded.as_ref().map(|g| g.report.mos.avg);
    let mos = match (uac_avg, uas_avg) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let verdict = match status {
        AudioStatus::Normal => uac_graded
            .iter()
            .chain(uas_graded.iter())
            .map(|g| g.report.verdict)
            .max()
            .unwrap_or(Verdict::Bad),
        AudioStatus::Owa => {
            notes.push("one-way audio: verdict Bad".to_string());
            Verdict::Bad
        }
        AudioStatus::Noa => {
            notes.push("no audio: verdict Bad".to_string());
            Verdict::Bad
        }
    };

    let mut series: BTreeMap<i64, TimePoint> = BTreeMap::new();
    let mut add = |g: &Option<Graded>, is_uac: bool| {
        for (t, p) in g.iter().flat_map(|g| g.points.iter()) {
            let point = series.entry(*t).or_insert(TimePoint {
                t: *t,
                uac: None,
                uas: None,
            });
            if is_uac {
                point.uac = Some(*p);
            } else {
                point.uas = Some(*p);
            }
        }
    };
    add(&uac_graded, true);
    add(&uas_graded, false);

    QualityReport {
        call_id: call_id.to_string(),
        verdict,
        mos,
        audio_status: status,
        degraded_leg: degraded_leg(uac_avg, uas_avg).map(str::to_string),
        diagnostic: diagnostic(status, uac_graded.is_some()),
        directions: Directions {
            uac: uac_graded.map(|g| g.report),
            uas: uas_graded.map(|g| g.report),
        },
        timeseries: series.into_values().collect(),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A clean G.711 direction: 1000 packets, no loss, 5 ms jitter, RTT 40 ms, intervals at 0, 5, 10 s.
    fn clean() -> DirectionInput {
        DirectionInput {
            codec: "PCMU".into(),
            packets: 1000,
            expected: 1000,
            lost: 0,
            jitter_mean_ms: 5.0,
            jitter_max_ms: 9.0,
            rtt_ms: Some(40.0),
            has_media: true,
            intervals: (0..3)
                .map(|i| IntervalSample {
                    start_us: i * INTERVAL_US,
                    packets: 250,
                    expected: 250,
                    lost: 0,
                    jitter_ms: 5.0,
                    rtt_ms: None,
                })
                .collect(),
        }
    }

    /// A direction whose every interval has `loss` % loss (of 1000 expected).
    fn lossy(codec: &str, lost_per_mille: u64) -> DirectionInput {
        DirectionInput {
            codec: codec.into(),
            lost: lost_per_mille,
            intervals: vec![IntervalSample {
                start_us: 0,
                packets: 1000 - lost_per_mille,
                expected: 1000,
                lost: lost_per_mille,
                jitter_ms: 5.0,
                rtt_ms: None,
            }],
            ..clean()
        }
    }

    #[test]
    fn two_clean_directions_are_normal_and_excellent() {
        let r = report("c1", Some(&clean()), Some(&clean()));
        assert_eq!(r.audio_status, AudioStatus::Normal);
        assert_eq!(r.verdict, Verdict::Excellent);
        assert_eq!(r.diagnostic, None);
        assert_eq!(r.degraded_leg, None);
        // d = 20 → Id = 0.48, R = 92.72 → MOS = 1 + 3.2452 + 92.72·32.72·7.28·7e-6 = 4.399806…
        let m = r.mos.unwrap();
        assert!((m - (1.0 + 0.035 * 92.72 + 92.72 * 32.72 * 7.28 * 7e-6)).abs() < 1e-9);
        let uac = r.directions.uac.as_ref().unwrap();
        assert_eq!(uac.intervals, 3);
        assert_eq!(uac.rtt_ms, Some(Stats::single(40.0)));
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn one_way_audio_caller_silent_is_bad_with_diagnostic() {
        let silent = DirectionInput {
            has_media: false,
            ..clean()
        };
        let r = report("c", Some(&silent), Some(&clean()));
        assert_eq!(r.audio_status, AudioStatus::Owa);
        assert_eq!(r.verdict, Verdict::Bad);
        assert!(r.directions.uac.is_none());
        assert!(r.directions.uas.is_some());
        let d = r.diagnostic.unwrap();
        assert!(d.probable_cause.contains("from the caller (uac direction)"));
        assert!(d.probable_cause.contains("callee cannot hear the caller"));
        assert!(d.recommendation.contains("caller's SDP"));
        assert!(r.notes.contains(&"uac: no media".to_string()));
        assert!(r.notes.contains(&"one-way audio: verdict Bad".to_string()));
        // The flowing direction still gives the call's MOS.
        assert_eq!(r.mos, Some(r.directions.uas.unwrap().mos.avg));
    }

    #[test]
    fn one_way_audio_callee_missing_is_bad_with_diagnostic() {
        let r = report("c", Some(&clean()), None);
        assert_eq!(r.audio_status, AudioStatus::Owa);
        assert_eq!(r.verdict, Verdict::Bad);
        let d = r.diagnostic.unwrap();
        assert!(d.probable_cause.contains("from the callee (uas direction)"));
        assert!(d.probable_cause.contains("caller cannot hear the callee"));
        // A silent direction is not a degraded leg.
        assert_eq!(r.degraded_leg, None);
    }

    #[test]
    fn no_audio_is_bad_with_diagnostic() {
        let r = report("c", None, None);
        assert_eq!(r.audio_status, AudioStatus::Noa);
        assert_eq!(r.verdict, Verdict::Bad);
        assert_eq!(r.mos, None);
        assert!(r.timeseries.is_empty());
        let d = r.diagnostic.unwrap();
        assert!(d.probable_cause.starts_with("no audio"));
        assert!(d.recommendation.contains("rtp_port_min"));
        let silent = DirectionInput {
            has_media: false,
            ..clean()
        };
        assert_eq!(
            report("c", Some(&silent), Some(&silent)).audio_status,
            AudioStatus::Noa
        );
    }

    #[test]
    fn audio_status_serialises_as_documented() {
        let s = |a| serde_json::to_string(&a).unwrap();
        assert_eq!(s(AudioStatus::Normal), "\"Normal\"");
        assert_eq!(s(AudioStatus::Owa), "\"OWA\"");
        assert_eq!(s(AudioStatus::Noa), "\"NOA\"");
    }

    #[test]
    fn degraded_leg_edge_at_mos_average_3_5() {
        assert_eq!(degraded_leg(Some(3.4999), Some(3.5)), Some("uac"));
        assert_eq!(degraded_leg(Some(3.5), Some(3.4999)), Some("uas"));
        assert_eq!(degraded_leg(Some(3.4999), Some(3.4999)), Some("both"));
        assert_eq!(degraded_leg(Some(3.5), Some(3.5)), None);
        assert_eq!(degraded_leg(Some(3.5001), Some(4.4)), None);
        assert_eq!(degraded_leg(None, Some(3.0)), Some("uas"));
        assert_eq!(degraded_leg(None, None), None);
        assert_eq!(degraded_leg(Some(f64::NAN), None), Some("uac"));
    }

    #[test]
    fn degraded_leg_from_measured_loss() {
        // G.711, RTT 40 (Id 0.48). 3 % loss: Ie_eff = 95·3/28 = 10.178571, R = 82.541429,
        // MOS 4.1489 (not degraded). 15 % loss: Ie_eff = 95·15/40 = 35.625, R = 57.095,
        // MOS = 1 + 1.998325 + 57.095·(−2.905)·42.905·7e-6 = 2.948512 (degraded).
        let good = lossy("pcmu", 30);
        let bad = lossy("pcmu", 150);
        let r = |a: &DirectionInput, b: &DirectionInput| report("c", Some(a), Some(b)).degraded_leg;
        assert_eq!(r(&bad, &good).as_deref(), Some("uac"));
        assert_eq!(r(&good, &bad).as_deref(), Some("uas"));
        assert_eq!(r(&bad, &bad).as_deref(), Some("both"));
        assert_eq!(r(&good, &good), None);
        let rep = report("c", Some(&bad), Some(&good));
        let mos = rep.directions.uac.unwrap().mos.avg;
        assert!((mos - 2.948512).abs() < 1e-5, "{mos}");
        // 15 % loss is above the severe threshold.
        assert_eq!(rep.verdict, Verdict::Bad);
    }

    #[test]
    fn timeseries_aligns_directions_by_interval_start() {
        let mut a = clean();
        let mut b = clean();
        // uac at 0, 5, 10 s; uas at 5, 10, 15 s.
        for iv in &mut b.intervals {
            iv.start_us += INTERVAL_US;
            iv.jitter_ms = 7.0;
        }
        a.intervals.reverse(); // input order does not matter
        let r = report("c", Some(&a), Some(&b));
        let ts: Vec<(i64, bool, bool)> = r
            .timeseries
            .iter()
            .map(|p| (p.t, p.uac.is_some(), p.uas.is_some()))
            .collect();
        assert_eq!(
            ts,
            vec![
                (0, true, false),
                (5_000_000, true, true),
                (10_000_000, true, true),
                (15_000_000, false, true),
            ]
        );
        assert_eq!(r.timeseries[1].uac.unwrap().jitter_ms, 5.0);
        assert_eq!(r.timeseries[1].uas.unwrap().jitter_ms, 7.0);
    }

    #[test]
    fn interval_start_buckets_on_the_origin_grid() {
        let o = 1_700_000_000_123_456;
        assert_eq!(interval_start(o, o), o);
        assert_eq!(interval_start(o, o + 4_999_999), o);
        assert_eq!(interval_start(o, o + 5_000_000), o + 5_000_000);
        assert_eq!(interval_start(o, o - 1), o - 5_000_000);
        assert_eq!(interval_start(0, i64::MIN), i64::MIN);
        let _ = interval_start(i64::MAX, i64::MIN);
    }

    #[test]
    fn interval_mos_uses_interval_rtt_else_direction_rtt_else_zero() {
        let mut d = clean();
        d.intervals[0].rtt_ms = Some(400.0); // d = 200
        let r = report("c", Some(&d), Some(&d));
        let ts = &r.timeseries;
        let (p, _) = codec_params("pcmu");
        assert_eq!(ts[0].uac.unwrap().mos, mos_with(&p, 0.0, Some(400.0)));
        assert_eq!(ts[1].uac.unwrap().mos, mos_with(&p, 0.0, Some(40.0)));
        // RTT stats are over the intervals that measured one.
        assert_eq!(r.directions.uac.unwrap().rtt_ms, Some(Stats::single(400.0)));

        d.rtt_ms = None;
        d.intervals[0].rtt_ms = None;
        let r = report("c", Some(&d), Some(&d));
        assert_eq!(r.timeseries[0].uac.unwrap().mos, mos_with(&p, 0.0, None));
        assert_eq!(r.directions.uac.as_ref().unwrap().rtt_ms, None);
        assert!(r
            .notes
            .contains(&"uac: rtt unknown: one-way delay taken as 0".to_string()));
        assert!(!r.directions.uac.unwrap().emodel.delay_known);
    }

    #[test]
    fn interval_loss_and_stats_follow_each_interval() {
        let mut d = clean();
        // Interval losses 0 %, 2 %, 4 % (of 250).
        d.intervals[1].lost = 5;
        d.intervals[2].lost = 10;
        d.lost = 15;
        let r = report("c", Some(&d), Some(&clean()));
        let uac = r.directions.uac.unwrap();
        assert_eq!(uac.loss_pct, 1.5);
        let l = uac.loss_pct_stats;
        assert_eq!((l.min, l.max, l.p5, l.p95), (0.0, 4.0, 0.0, 4.0));
        assert!((l.avg - 2.0).abs() < 1e-12);
        assert!(uac.mos.min < uac.mos.max);
        assert_eq!(uac.mos.max, r.timeseries[0].uac.unwrap().mos);
        // 1.5 % loss is above the warning threshold → Fair.
        assert_eq!(uac.verdict, Verdict::Fair);
        assert_eq!(r.verdict, Verdict::Fair);
        assert!(r
            .notes
            .iter()
            .any(|n| n == "uac: loss 1.50 % above the warning threshold 1 %"));
    }

    #[test]
    fn call_verdict_is_the_worst_direction() {
        let mut jittery = clean();
        jittery.jitter_mean_ms = 55.0;
        let r = report("c", Some(&clean()), Some(&jittery));
        assert_eq!(r.directions.uac.unwrap().verdict, Verdict::Excellent);
        assert_eq!(r.directions.uas.unwrap().verdict, Verdict::Bad);
        assert_eq!(r.verdict, Verdict::Bad);
        let mut far = clean();
        far.rtt_ms = Some(310.0); // latency 155 ms > 150
        assert_eq!(
            report("c", Some(&far), Some(&clean())).verdict,
            Verdict::Fair
        );
    }

    #[test]
    fn repeated_interval_starts_are_merged() {
        let mut d = clean();
        d.intervals.push(IntervalSample {
            start_us: 0,
            packets: 250,
            expected: 250,
            lost: 50,
            jitter_ms: 12.0,
            rtt_ms: Some(60.0),
        });
        let r = report("c", Some(&d), Some(&clean()));
        assert_eq!(r.timeseries.len(), 3);
        let p = r.timeseries[0].uac.unwrap();
        // 50 lost of 500 expected = 10 %; larger jitter kept.
        assert_eq!((p.loss_pct, p.jitter_ms), (10.0, 12.0));
        assert_eq!(r.directions.uac.unwrap().intervals, 3);
        assert!(r
            .notes
            .contains(&"uac: 1 intervals with a repeated start merged".to_string()));
    }

    #[test]
    fn direction_without_intervals_uses_whole_figures() {
        let mut d = clean();
        d.intervals.clear();
        let r = report("c", Some(&d), Some(&clean()));
        let uac = r.directions.uac.unwrap();
        assert_eq!(uac.intervals, 0);
        assert_eq!(uac.mos, Stats::single(uac.emodel.mos));
        assert_eq!(uac.jitter_ms, Stats::single(5.0));
        assert_eq!(uac.loss_pct_stats, Stats::single(0.0));
        assert!(r.timeseries.iter().all(|p| p.uac.is_none()));
    }

    #[test]
    fn nonsense_values_are_sanitised_and_noted() {
        let mut d = clean();
        d.jitter_mean_ms = f64::NAN;
        d.jitter_max_ms = -1.0;
        d.rtt_ms = Some(f64::INFINITY);
        d.intervals[0].jitter_ms = f64::NEG_INFINITY;
        d.lost = 2000; // more than expected
        let r = report("c", Some(&d), Some(&clean()));
        let uac = r.directions.uac.unwrap();
        assert_eq!((uac.jitter_mean_ms, uac.jitter_max_ms), (0.0, 0.0));
        assert_eq!(uac.emodel.rtt_ms, None);
        assert_eq!(uac.loss_pct, 100.0);
        assert_eq!(uac.jitter_ms.min, 0.0);
        assert!(r.notes.iter().any(|n| n.starts_with("uac: 4 NaN")));
        assert!(r.notes.iter().any(|n| n.contains("loss taken as 100 %")));
    }

    #[test]
    fn codec_match_is_noted() {
        let mut a = clean();
        a.codec = "AMR-WB/16000".into();
        let mut b = clean();
        b.codec = "EVS".into();
        let r = report("c", Some(&a), Some(&b));
        assert!(r
            .notes
            .contains(&"uac: codec \"AMR-WB/16000\" matched AMR-WB by substring".to_string()));
        assert!(r.notes.contains(
            &"uas: codec \"EVS\" unknown: G.711 parameters used (Ie 0, Bpl 25)".to_string()
        ));
    }

    #[test]
    fn json_has_the_documented_shape_and_round_trips() {
        let r = report("abc@host", Some(&clean()), None);
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        for key in [
            "call_id",
            "verdict",
            "mos",
            "audio_status",
            "degraded_leg",
            "diagnostic",
            "directions",
            "timeseries",
            "notes",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["audio_status"], "OWA");
        assert_eq!(v["verdict"], "Bad");
        assert!(v["degraded_leg"].is_null());
        assert!(v["directions"]["uas"].is_null());
        let uac = &v["directions"]["uac"];
        for key in [
            "emodel",
            "verdict",
            "packets",
            "expected",
            "lost",
            "loss_pct",
            "jitter_mean_ms",
            "jitter_max_ms",
            "intervals",
            "mos",
            "jitter_ms",
            "loss_pct_stats",
            "rtt_ms",
        ] {
            assert!(uac.get(key).is_some(), "{key}");
        }
        for key in ["avg", "min", "max", "p5", "p95"] {
            assert!(uac["mos"][key].is_number(), "{key}");
        }
        assert_eq!(uac["emodel"]["codec_match"], "exact");
        assert_eq!(uac["emodel"]["matched_codec"], "G.711 mu-law");
        assert_eq!(v["timeseries"][0]["t"], 0);
        assert!(v["timeseries"][0]["uas"].is_null());
        assert!(v["timeseries"][0]["uac"]["mos"].is_number());
        let back: QualityReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            proptest::num::f64::ANY,
            -10.0f64..500.0,
            Just(f64::NAN),
            Just(f64::INFINITY),
        ]
    }

    fn any_interval() -> impl Strategy<Value = IntervalSample> {
        (
            prop_oneof![any::<i64>(), (0i64..6).prop_map(|k| k * INTERVAL_US)],
            any::<u64>(),
            prop_oneof![any::<u64>(), 0u64..300],
            prop_oneof![any::<u64>(), 0u64..300],
            any_f64(),
            proptest::option::of(any_f64()),
        )
            .prop_map(|(start_us, packets, expected, lost, jitter_ms, rtt_ms)| {
                IntervalSample {
                    start_us,
                    packets,
                    expected,
                    lost,
                    jitter_ms,
                    rtt_ms,
                }
            })
    }

    fn any_direction() -> impl Strategy<Value = DirectionInput> {
        (
            ".{0,10}",
            (any::<u64>(), any::<u64>(), any::<u64>()),
            (any_f64(), any_f64(), proptest::option::of(any_f64())),
            any::<bool>(),
            proptest::collection::vec(any_interval(), 0..12),
        )
            .prop_map(
                |(codec, (packets, expected, lost), (jm, jx, rtt), has_media, intervals)| {
                    DirectionInput {
                        codec,
                        packets,
                        expected,
                        lost,
                        jitter_mean_ms: jm,
                        jitter_max_ms: jx,
                        rtt_ms: rtt,
                        has_media,
                        intervals,
                    }
                },
            )
    }

    /// Every number in the report.
    fn numbers(r: &QualityReport) -> Vec<f64> {
        fn stats(s: &Stats) -> [f64; 5] {
            [s.avg, s.min, s.max, s.p5, s.p95]
        }
        let mut out: Vec<f64> = r.mos.into_iter().collect();
        for d in [&r.directions.uac, &r.directions.uas].into_iter().flatten() {
            let e = &d.emodel;
            out.extend([
                e.ie, e.bpl, e.loss_pct, e.delay_ms, e.id, e.ie_eff, e.r_factor, e.mos,
            ]);
            out.extend(e.rtt_ms);
            out.extend([d.loss_pct, d.jitter_mean_ms, d.jitter_max_ms]);
            out.extend(stats(&d.mos));
            out.extend(stats(&d.jitter_ms));
            out.extend(stats(&d.loss_pct_stats));
            out.extend(d.rtt_ms.iter().flat_map(stats));
        }
        for p in &r.timeseries {
            for v in [p.uac, p.uas].into_iter().flatten() {
                out.extend([v.mos, v.jitter_ms, v.loss_pct]);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn report_never_panics_and_stays_in_range(
            uac in proptest::option::of(any_direction()),
            uas in proptest::option::of(any_direction()),
        ) {
            let r = report("x", uac.as_ref(), uas.as_ref());
            // No NaN or infinity anywhere (JSON would turn them into null).
            for n in numbers(&r) {
                prop_assert!(n.is_finite(), "{n}");
            }
            for d in [&r.directions.uac, &r.directions.uas].into_iter().flatten() {
                let m = d.mos;
                prop_assert!((1.0..=4.5).contains(&d.emodel.mos));
                prop_assert!(1.0 <= m.min && m.max <= 4.5);
                prop_assert!(m.min <= m.p5 && m.p5 <= m.p95 && m.p95 <= m.max);
                prop_assert!(m.min <= m.avg && m.avg <= m.max);
                prop_assert!((0.0..=100.0).contains(&d.loss_pct));
            }
            for p in &r.timeseries {
                for v in [p.uac, p.uas].into_iter().flatten() {
                    prop_assert!((1.0..=4.5).contains(&v.mos));
                    prop_assert!((0.0..=100.0).contains(&v.loss_pct) && v.jitter_ms >= 0.0);
                }
            }
            for w in r.timeseries.windows(2) {
                prop_assert!(w[0].t < w[1].t);
            }
            prop_assert!(serde_json::to_string(&r).is_ok());
        }
    }
}
