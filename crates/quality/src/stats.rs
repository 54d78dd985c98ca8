//! Summary statistics over a direction's intervals.

use serde::{Deserialize, Serialize};

/// Average, extremes and 5th/95th percentiles of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Arithmetic mean.
    pub avg: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// 5th percentile, nearest-rank.
    pub p5: f64,
    /// 95th percentile, nearest-rank.
    pub p95: f64,
}

impl Stats {
    /// Summarises `values`; `None` when it is empty. Non-finite values are skipped (callers
    /// sanitise first, so none reach here in practice); `None` when nothing finite remains.
    pub fn from_values(values: &[f64]) -> Option<Stats> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let min = *sorted.first()?;
        let max = *sorted.last()?;
        // Running mean: no overflow from summing large values.
        let mut avg = 0.0;
        for (i, v) in sorted.iter().enumerate() {
            avg += (v - avg) / (i as f64 + 1.0);
        }
        Some(Stats {
            avg: avg.clamp(min, max),
            min,
            max,
            p5: nearest_rank(&sorted, 5)?,
            p95: nearest_rank(&sorted, 95)?,
        })
    }

    /// Statistics of a single value (all five fields equal it).
    pub fn single(value: f64) -> Stats {
        Stats {
            avg: value,
            min: value,
            max: value,
            p5: value,
            p95: value,
        }
    }
}

/// The `p`-th percentile (0–100) of ascending `sorted` by the nearest-rank method: the value
/// at 1-based rank ⌈p·n / 100⌉, at least rank 1. Always one of the values (no interpolation).
/// `None` when `sorted` is empty.
pub fn nearest_rank(sorted: &[f64], p: u8) -> Option<f64> {
    let n = sorted.len() as u128;
    let rank = (u128::from(p.min(100)) * n).div_ceil(100).max(1);
    let index = usize::try_from(rank - 1).ok()?;
    sorted.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_one_to_twenty() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        // p5: ⌈0.05·20⌉ = 1 → 1; p95: ⌈0.95·20⌉ = 19 → 19.
        assert_eq!(nearest_rank(&v, 5), Some(1.0));
        assert_eq!(nearest_rank(&v, 95), Some(19.0));
        assert_eq!(nearest_rank(&v, 100), Some(20.0));
        assert_eq!(nearest_rank(&v, 0), Some(1.0));
    }

    #[test]
    fn nearest_rank_on_one_to_ten_rounds_rank_up() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        // p5: ⌈0.5⌉ = 1 → 1; p95: ⌈9.5⌉ = 10 → 10; p50: ⌈5⌉ = 5 → 5.
        assert_eq!(nearest_rank(&v, 5), Some(1.0));
        assert_eq!(nearest_rank(&v, 95), Some(10.0));
        assert_eq!(nearest_rank(&v, 50), Some(5.0));
    }

    #[test]
    fn nearest_rank_on_one_to_hundred_and_empty() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 5), Some(5.0));
        assert_eq!(nearest_rank(&v, 95), Some(95.0));
        assert_eq!(nearest_rank(&[], 5), None);
        assert_eq!(nearest_rank(&[7.0], 95), Some(7.0));
    }

    #[test]
    fn stats_of_known_unsorted_data() {
        // 21 values 0, 5, …, 100 shuffled. p5: ⌈1.05⌉ = 2 → 5; p95: ⌈19.95⌉ = 20 → 95.
        let mut v: Vec<f64> = (0..=20).map(|i| f64::from(i) * 5.0).collect();
        v.reverse();
        v.swap(3, 17);
        let s = Stats::from_values(&v).unwrap();
        assert_eq!(s.min, 0.0);
        assert_eq!(s.max, 100.0);
        assert!((s.avg - 50.0).abs() < 1e-12);
        assert_eq!(s.p5, 5.0);
        assert_eq!(s.p95, 95.0);
    }

    #[test]
    fn stats_of_nothing_is_none_and_of_one_value_is_that_value() {
        assert_eq!(Stats::from_values(&[]), None);
        assert_eq!(Stats::from_values(&[f64::NAN]), None);
        assert_eq!(Stats::from_values(&[3.5]), Some(Stats::single(3.5)));
    }

    #[test]
    fn stats_skip_non_finite_values() {
        let s = Stats::from_values(&[1.0, f64::NAN, 3.0, f64::INFINITY]).unwrap();
        assert_eq!((s.min, s.max, s.avg), (1.0, 3.0, 2.0));
    }

    #[test]
    fn mean_of_huge_values_does_not_overflow() {
        let s = Stats::from_values(&[f64::MAX, f64::MAX]).unwrap();
        assert_eq!(s.avg, f64::MAX);
    }
}
