//! Call quality grading: the simplified ITU-T G.107 E-model with codec impairment parameters,
//! verdicts (Excellent … Bad) with the jitter, latency and loss thresholds, audio status
//! (Normal / one-way / no audio) with diagnostics, per-direction statistics, the degraded leg
//! and the 5-second timeseries that make up a call's `quality.json`.
//!
//! Promises: every function is pure (no I/O, no clock, no global state) and total: any input,
//! NaN and negative values included, gives a report whose numbers are all finite, with MOS in
//! [1.0, 4.5]. The formulas and thresholds are documented on each item and in
//! `docs/quality.md`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
#![forbid(unsafe_code)]

mod codec;
mod emodel;
mod report;
mod stats;
mod verdict;

pub use codec::{codec_params, CodecMatch, CodecParams, CodecRow, CODECS, DEFAULT_CODEC};
pub use emodel::{
    delay_impairment, effective_ie, emodel, mos_from_r, sanitize_loss_pct, sanitize_rtt_ms,
    EModelInput, EModelResult, DELAY_KNEE_MS, R0,
};
pub use report::{
    audio_status, degraded_leg, diagnostic, interval_start, report, AudioStatus, Diagnostic,
    DirectionInput, DirectionReport, Directions, IntervalSample, PointValues, QualityReport,
    TimePoint, DEGRADED_MOS_BELOW, INTERVAL_US,
};
pub use stats::{nearest_rank, Stats};
pub use verdict::{
    breaches, mos_verdict, verdict, Breach, Metrics, Verdict, JITTER_SEVERE_MS, JITTER_WARN_MS,
    LATENCY_SEVERE_MS, LATENCY_WARN_MS, LOSS_SEVERE_PCT, LOSS_WARN_PCT, MOS_BAD_BELOW,
    MOS_EXCELLENT_ABOVE, MOS_GOOD_ABOVE, MOS_POOR_BELOW,
};
