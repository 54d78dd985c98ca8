//! Verdicts from MOS and the individual metric thresholds.

use serde::{Deserialize, Serialize};

/// Overall grade of a call or direction. Ordered best first, so the worst of several is `max()`.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[serde(rename_all = "PascalCase")]
pub enum Verdict {
    /// MOS > 4.34 and no metric above its warning threshold. Very satisfied.
    Excellent,
    /// 4.03 < MOS ≤ 4.34 and no metric above its warning threshold. Satisfied.
    Good,
    /// 3.60 ≤ MOS ≤ 4.03, or a better MOS with some metric above its warning threshold.
    Fair,
    /// 3.10 ≤ MOS < 3.60 (a warning threshold does not change it).
    Poor,
    /// MOS < 3.10, or some metric above its severe threshold.
    Bad,
}

impl Verdict {
    /// The name as serialised (`"Excellent"` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Excellent => "Excellent",
            Verdict::Good => "Good",
            Verdict::Fair => "Fair",
            Verdict::Poor => "Poor",
            Verdict::Bad => "Bad",
        }
    }
}

/// MOS under which the verdict is Bad.
pub const MOS_BAD_BELOW: f64 = 3.10;
/// MOS under which the verdict is at best Poor.
pub const MOS_POOR_BELOW: f64 = 3.60;
/// MOS the verdict must exceed to be Good.
pub const MOS_GOOD_ABOVE: f64 = 4.03;
/// MOS the verdict must exceed to be Excellent.
pub const MOS_EXCELLENT_ABOVE: f64 = 4.34;
/// Jitter (ms) above which the verdict is at best Fair.
pub const JITTER_WARN_MS: f64 = 20.0;
/// Jitter (ms) above which the verdict is Bad.
pub const JITTER_SEVERE_MS: f64 = 50.0;
/// One-way latency (ms) above which the verdict is at best Fair.
pub const LATENCY_WARN_MS: f64 = 150.0;
/// One-way latency (ms) above which the verdict is Bad.
pub const LATENCY_SEVERE_MS: f64 = 400.0;
/// Packet loss (%) above which the verdict is at best Fair.
pub const LOSS_WARN_PCT: f64 = 1.0;
/// Packet loss (%) above which the verdict is Bad.
pub const LOSS_SEVERE_PCT: f64 = 5.0;

/// The figures a verdict is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// MOS (for a direction: its MOS average).
    pub mos: f64,
    /// Jitter in ms (for a direction: its mean jitter).
    pub jitter_ms: f64,
    /// Packet loss in percent.
    pub loss_pct: f64,
    /// One-way latency (RTT / 2) in ms; `None` when unknown, which exceeds no threshold.
    pub latency_ms: Option<f64>,
}

/// Verdict from MOS alone: Bad < 3.10 ≤ Poor < 3.60 ≤ Fair ≤ 4.03 < Good ≤ 4.34 < Excellent.
/// A NaN MOS is Bad.
///
/// The seed states Bad as "MOS < 3.10", Good as "MOS > 4.03" and Excellent (table) as
/// "MOS > 4.34"; so 3.10 is Poor, 4.03 is Fair and 4.34 is Good. 3.60 is claimed by both
/// "Poor: between 3.10 and 3.60" and "Fair: between 3.60 and 4.03": we make it Fair, like the
/// lower edge 3.10 of Poor. The table's R ranges are not used: the verdict is defined on MOS
/// (R = 90 is MOS 4.339, just under 4.34).
pub fn mos_verdict(mos: f64) -> Verdict {
    if mos.is_nan() || mos < MOS_BAD_BELOW {
        Verdict::Bad
    } else if mos < MOS_POOR_BELOW {
        Verdict::Poor
    } else if mos <= MOS_GOOD_ABOVE {
        Verdict::Fair
    } else if mos <= MOS_EXCELLENT_ABOVE {
        Verdict::Good
    } else {
        Verdict::Excellent
    }
}

/// A metric above one of its thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breach {
    /// `"jitter"`, `"latency"` or `"loss"`.
    pub metric: &'static str,
    /// The measured value (ms or %).
    pub value: f64,
    /// The threshold it exceeds.
    pub threshold: f64,
    /// Unit of value and threshold (`"ms"` or `"%"`).
    pub unit: &'static str,
    /// Whether the severe threshold (→ Bad) rather than the warning one (→ at best Fair) is exceeded.
    pub severe: bool,
}

/// Metrics strictly above their warning or severe thresholds, in the order jitter, latency,
/// loss. NaN values exceed nothing.
pub fn breaches(m: &Metrics) -> Vec<Breach> {
    let checks = [
        (
            "jitter",
            Some(m.jitter_ms),
            JITTER_WARN_MS,
            JITTER_SEVERE_MS,
            "ms",
        ),
        (
            "latency",
            m.latency_ms,
            LATENCY_WARN_MS,
            LATENCY_SEVERE_MS,
            "ms",
        ),
        (
            "loss",
            Some(m.loss_pct),
            LOSS_WARN_PCT,
            LOSS_SEVERE_PCT,
            "%",
        ),
    ];
    let mut out = Vec::new();
    for (metric, value, warn, severe, unit) in checks {
        let Some(value) = value else { continue };
        if value > severe {
            out.push(Breach {
                metric,
                value,
                threshold: severe,
                unit,
                severe: true,
            });
        } else if value > warn {
            out.push(Breach {
                metric,
                value,
                threshold: warn,
                unit,
                severe: false,
            });
        }
    }
    out
}

/// The verdict of the seed's logic, evaluated in its order:
/// Bad if MOS < 3.10 or jitter > 50 ms or loss > 5 % or latency > 400 ms; else Poor if
/// MOS < 3.60; else Fair if MOS ≤ 4.03 or any warning threshold (jitter > 20 ms,
/// latency > 150 ms, loss > 1 %) is exceeded; else Good if MOS ≤ 4.34; else Excellent.
///
/// So a warning threshold caps the verdict at Fair but never lowers Poor, and Excellent
/// (which the seed's logic list omits) needs MOS > 4.34 with every metric within its warning
/// threshold, like Good. Thresholds are strict: a value equal to a threshold does not exceed it.
pub fn verdict(m: &Metrics) -> Verdict {
    let by_mos = mos_verdict(m.mos);
    let by_metrics = breaches(m)
        .iter()
        .map(|b| {
            if b.severe {
                Verdict::Bad
            } else {
                Verdict::Fair
            }
        })
        .max()
        .unwrap_or(Verdict::Excellent);
    by_mos.max(by_metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_mos(mos: f64) -> Metrics {
        Metrics {
            mos,
            jitter_ms: 0.0,
            loss_pct: 0.0,
            latency_ms: Some(0.0),
        }
    }

    fn v(m: Metrics) -> Verdict {
        verdict(&m)
    }

    #[test]
    fn mos_3_10_is_the_edge_between_bad_and_poor() {
        assert_eq!(v(with_mos(3.0999)), Verdict::Bad);
        assert_eq!(v(with_mos(3.10)), Verdict::Poor);
        assert_eq!(v(with_mos(3.1001)), Verdict::Poor);
    }

    #[test]
    fn mos_3_60_is_the_edge_between_poor_and_fair() {
        assert_eq!(v(with_mos(3.5999)), Verdict::Poor);
        assert_eq!(v(with_mos(3.60)), Verdict::Fair);
        assert_eq!(v(with_mos(3.6001)), Verdict::Fair);
    }

    #[test]
    fn mos_4_03_is_fair_and_good_needs_more() {
        assert_eq!(v(with_mos(4.0299)), Verdict::Fair);
        assert_eq!(v(with_mos(4.03)), Verdict::Fair);
        assert_eq!(v(with_mos(4.0301)), Verdict::Good);
    }

    #[test]
    fn mos_4_34_is_good_and_excellent_needs_more() {
        assert_eq!(v(with_mos(4.3399)), Verdict::Good);
        assert_eq!(v(with_mos(4.34)), Verdict::Good);
        assert_eq!(v(with_mos(4.3401)), Verdict::Excellent);
        assert_eq!(v(with_mos(4.5)), Verdict::Excellent);
    }

    #[test]
    fn nan_mos_is_bad() {
        assert_eq!(v(with_mos(f64::NAN)), Verdict::Bad);
    }

    #[test]
    fn jitter_20_and_50_ms_edges() {
        let m = |j| Metrics {
            jitter_ms: j,
            ..with_mos(4.4)
        };
        assert_eq!(v(m(19.99)), Verdict::Excellent);
        assert_eq!(v(m(20.0)), Verdict::Excellent);
        assert_eq!(v(m(20.01)), Verdict::Fair);
        assert_eq!(v(m(50.0)), Verdict::Fair);
        assert_eq!(v(m(50.01)), Verdict::Bad);
    }

    #[test]
    fn latency_150_and_400_ms_edges() {
        let m = |l| Metrics {
            latency_ms: Some(l),
            ..with_mos(4.2)
        };
        assert_eq!(v(m(149.99)), Verdict::Good);
        assert_eq!(v(m(150.0)), Verdict::Good);
        assert_eq!(v(m(150.01)), Verdict::Fair);
        assert_eq!(v(m(400.0)), Verdict::Fair);
        assert_eq!(v(m(400.01)), Verdict::Bad);
    }

    #[test]
    fn unknown_latency_exceeds_nothing() {
        let m = Metrics {
            latency_ms: None,
            ..with_mos(4.4)
        };
        assert_eq!(v(m), Verdict::Excellent);
        assert!(breaches(&m).is_empty());
    }

    #[test]
    fn loss_1_and_5_percent_edges() {
        let m = |l| Metrics {
            loss_pct: l,
            ..with_mos(4.4)
        };
        assert_eq!(v(m(0.99)), Verdict::Excellent);
        assert_eq!(v(m(1.0)), Verdict::Excellent);
        assert_eq!(v(m(1.01)), Verdict::Fair);
        assert_eq!(v(m(5.0)), Verdict::Fair);
        assert_eq!(v(m(5.01)), Verdict::Bad);
    }

    #[test]
    fn warning_caps_at_fair_but_does_not_lower_poor() {
        let m = |mos| Metrics {
            jitter_ms: 30.0,
            ..with_mos(mos)
        };
        assert_eq!(v(m(4.4)), Verdict::Fair);
        assert_eq!(v(m(4.1)), Verdict::Fair);
        assert_eq!(v(m(3.8)), Verdict::Fair);
        assert_eq!(v(m(3.3)), Verdict::Poor);
        assert_eq!(v(m(3.0)), Verdict::Bad);
    }

    #[test]
    fn severe_threshold_is_bad_whatever_the_mos() {
        let m = Metrics {
            loss_pct: 6.0,
            ..with_mos(4.4)
        };
        assert_eq!(v(m), Verdict::Bad);
    }

    #[test]
    fn breaches_report_the_threshold_exceeded() {
        let m = Metrics {
            mos: 4.0,
            jitter_ms: 60.0,
            loss_pct: 2.0,
            latency_ms: Some(100.0),
        };
        let b = breaches(&m);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].metric, b[0].threshold, b[0].severe),
            ("jitter", 50.0, true)
        );
        assert_eq!(
            (b[1].metric, b[1].threshold, b[1].severe),
            ("loss", 1.0, false)
        );
        assert!(breaches(&Metrics {
            jitter_ms: f64::NAN,
            ..with_mos(4.4)
        })
        .is_empty());
    }

    #[test]
    fn worst_is_max_and_serialises_pascal_case() {
        assert_eq!(Verdict::Good.max(Verdict::Poor), Verdict::Poor);
        assert_eq!(
            serde_json::to_string(&Verdict::Excellent).unwrap(),
            "\"Excellent\""
        );
        let back: Verdict = serde_json::from_str("\"Bad\"").unwrap();
        assert_eq!(back, Verdict::Bad);
        for x in [
            Verdict::Excellent,
            Verdict::Good,
            Verdict::Fair,
            Verdict::Poor,
            Verdict::Bad,
        ] {
            assert_eq!(
                serde_json::to_string(&x).unwrap(),
                format!("\"{}\"", x.as_str())
            );
        }
    }
}
