//! Sample-rate conversion.
//!
//! [`Resampler`] is a rational polyphase windowed-sinc converter (Blackman window, 12
//! zero crossings per side, cut-off at 95 % of the lower Nyquist frequency). It is a
//! pure function of its input timeline: output sample `n` is computed from the input
//! samples around time `n * in_rate / out_rate`, so it needs no state between calls and
//! consecutive output blocks join seamlessly.

use std::collections::VecDeque;
use std::f64::consts::PI;

/// Zero crossings of the sinc kernel on each side of its centre.
const ZERO_CROSSINGS: f64 = 12.0;
/// Cut-off as a fraction of the lower of the two Nyquist frequencies.
const CUTOFF: f64 = 0.95;
/// Largest precomputed coefficient table (phases x taps); beyond it coefficients are
/// computed on demand.
const MAX_TABLE: usize = 1 << 20;

/// A timeline of samples: `data[0]` is at position `base`; positions outside hold zero.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timeline {
    pub(crate) base: i64,
    pub(crate) data: VecDeque<i16>,
}

impl Timeline {
    /// Position one past the last stored sample.
    pub(crate) fn end(&self) -> i64 {
        self.base.saturating_add(self.data.len() as i64)
    }

    /// The sample at `pos` (zero outside the stored range).
    #[cfg(test)]
    pub(crate) fn get(&self, pos: i64) -> i16 {
        pos.checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.data.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// Overwrites samples from `pos` on, growing the stored range (with silence) as
    /// needed at either end.
    pub(crate) fn write(&mut self, pos: i64, samples: &[i16]) {
        if samples.is_empty() {
            return;
        }
        if self.data.is_empty() {
            self.base = pos;
        } else if pos < self.base {
            // Grow at the front with silence.
            let Ok(gap) = usize::try_from(self.base - pos) else {
                return;
            };
            let len = self.data.len();
            self.data.resize(len.saturating_add(gap), 0);
            self.data.rotate_right(gap);
            self.base = pos;
        }
        let Some(start) = pos
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        let len = self.data.len();
        if start > len {
            self.data.resize(start, 0);
        }
        // Overwrite what is stored, append the rest.
        let overlap = len.saturating_sub(start).min(samples.len());
        let (head, tail) = samples.split_at_checked(overlap).unwrap_or((samples, &[]));
        for (slot, &s) in self.data.range_mut(start..start + head.len()).zip(head) {
            *slot = s;
        }
        self.data.extend(tail.iter().copied());
    }

    /// Drops samples before `pos`.
    pub(crate) fn trim_before(&mut self, pos: i64) {
        if pos <= self.base {
            return;
        }
        let drop = usize::try_from(pos - self.base).unwrap_or(usize::MAX);
        if drop >= self.data.len() {
            self.data.clear();
        } else {
            self.data.drain(..drop);
        }
        self.base = pos;
    }

    /// Appends `count` samples starting at `pos` to `dst`.
    pub(crate) fn copy_out(&self, pos: i64, count: usize, dst: &mut Vec<i16>) {
        let start_len = dst.len();
        let end = pos.saturating_add(count as i64);
        // Leading zeros before the stored range.
        let lead = (self.base.min(end) - pos).max(0);
        dst.resize(start_len + lead as usize, 0);
        let from = pos.max(self.base);
        let to = end.min(self.end());
        if to > from {
            let a = (from - self.base) as usize;
            let b = (to - self.base) as usize;
            dst.extend(self.data.range(a..b));
        }
        dst.resize(start_len + count, 0);
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Rational polyphase resampler from `in_rate` to `out_rate`.
#[derive(Clone, Debug)]
pub(crate) struct Resampler {
    /// Interpolation factor L (out_rate / gcd).
    up: i64,
    /// Decimation factor M (in_rate / gcd).
    down: i64,
    /// Taps on each side of the centre, in input samples.
    half: i64,
    /// Normalised cut-off, cycles per input sample.
    fc: f64,
    /// `up` phases of `2 * half` coefficients, or empty when computed on demand.
    table: Vec<f32>,
}

impl Resampler {
    pub(crate) fn new(in_rate: u32, out_rate: u32) -> Self {
        let in_rate = u64::from(in_rate.max(1));
        let out_rate = u64::from(out_rate.max(1));
        let g = gcd(in_rate, out_rate);
        let up = (out_rate / g) as i64;
        let down = (in_rate / g) as i64;
        let fc = 0.5 * CUTOFF * (up as f64 / down as f64).min(1.0);
        let half = if up == down {
            0
        } else {
            (ZERO_CROSSINGS / (2.0 * fc)).ceil() as i64
        };
        let mut r = Resampler {
            up,
            down,
            half,
            fc,
            table: Vec::new(),
        };
        let taps = (2 * half) as usize;
        if up != down && (up as usize).saturating_mul(taps) <= MAX_TABLE {
            let mut table = Vec::with_capacity(up as usize * taps);
            for phase in 0..up {
                table.extend(r.phase_coefficients(phase));
            }
            r.table = table;
        }
        r
    }

    /// True when input and output rates are equal.
    pub(crate) fn is_identity(&self) -> bool {
        self.up == self.down
    }

    /// Input samples on each side of an output sample's centre that it depends on.
    pub(crate) fn half_taps(&self) -> i64 {
        self.half
    }

    /// The input position at or before output position `n`'s centre.
    pub(crate) fn input_floor(&self, n: i64) -> i64 {
        (n as i128 * self.down as i128).div_euclid(self.up as i128) as i64
    }

    fn phase_coefficients(&self, phase: i64) -> Vec<f32> {
        let taps = 2 * self.half;
        let frac = phase as f64 / self.up as f64;
        let mut c: Vec<f64> = (0..taps)
            .map(|k| {
                let x = frac + (self.half - 1 - k) as f64;
                kernel(x, self.fc, self.half as f64)
            })
            .collect();
        let sum: f64 = c.iter().sum();
        if sum.abs() > 1e-9 {
            for v in &mut c {
                *v /= sum;
            }
        }
        c.into_iter().map(|v| v as f32).collect()
    }

    /// Appends output samples `n0 .. n0 + count` computed from `src` to `dst`.
    pub(crate) fn render(&self, src: &Timeline, n0: i64, count: usize, dst: &mut Vec<i16>) {
        if self.is_identity() {
            src.copy_out(n0, count, dst);
            return;
        }
        if count == 0 {
            return;
        }
        let last = n0.saturating_add(count as i64 - 1);
        let first_in = self.input_floor(n0) - self.half + 1;
        let last_in = self.input_floor(last) + self.half;
        // Entirely outside the stored input: silence without filtering.
        if last_in < src.base || first_in >= src.end() {
            dst.resize(dst.len() + count, 0);
            return;
        }
        let mut window = Vec::new();
        src.copy_out(
            first_in,
            usize::try_from(last_in - first_in + 1).unwrap_or(0),
            &mut window,
        );
        let window: Vec<f32> = window.into_iter().map(f32::from).collect();
        let taps = (2 * self.half) as usize;
        for n in n0..=last {
            let prod = n as i128 * self.down as i128;
            let centre = prod.div_euclid(self.up as i128) as i64;
            let phase = prod.rem_euclid(self.up as i128) as i64;
            let start = usize::try_from(centre - self.half + 1 - first_in).unwrap_or(0);
            let on_demand;
            let coeffs: &[f32] = if self.table.is_empty() {
                on_demand = self.phase_coefficients(phase);
                &on_demand
            } else {
                let p = phase as usize * taps;
                self.table.get(p..p + taps).unwrap_or(&[])
            };
            let input = window.get(start..start + taps).unwrap_or(&[]);
            let acc: f32 = coeffs.iter().zip(input).map(|(c, x)| c * x).sum();
            dst.push(acc.round().clamp(-32768.0, 32767.0) as i16);
        }
    }
}

/// Windowed sinc low-pass kernel at offset `x` input samples.
fn kernel(x: f64, fc: f64, half: f64) -> f64 {
    if x.abs() >= half {
        return 0.0;
    }
    let arg = 2.0 * fc * x;
    let sinc = if arg.abs() < 1e-12 {
        1.0
    } else {
        (PI * arg).sin() / (PI * arg)
    };
    let w = 0.42 + 0.5 * (PI * x / half).cos() + 0.08 * (2.0 * PI * x / half).cos();
    2.0 * fc * sinc * w
}

/// Converts one block from `in_rate` to `out_rate` by linear interpolation, appending
/// `round(len * out_rate / in_rate)` samples. Used only for the rare packet whose codec
/// rate differs from its channel's rate.
pub(crate) fn linear_block(input: &[i16], in_rate: u32, out_rate: u32, dst: &mut Vec<i16>) {
    if input.is_empty() || in_rate == 0 || out_rate == 0 {
        return;
    }
    let n_out =
        (input.len() as u64 * u64::from(out_rate) + u64::from(in_rate) / 2) / u64::from(in_rate);
    let step = f64::from(in_rate) / f64::from(out_rate);
    let last = input.len() - 1;
    for j in 0..n_out {
        let t = j as f64 * step;
        let i = (t.floor() as usize).min(last);
        let f = (t - i as f64) as f32;
        let a = f32::from(input.get(i).copied().unwrap_or(0));
        let b = f32::from(input.get((i + 1).min(last)).copied().unwrap_or(0));
        dst.push((a + (b - a) * f).round() as i16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (10_000.0 * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as i16)
            .collect()
    }

    fn snr_db(reference: &[f64], got: &[i16]) -> f64 {
        let (mut sig, mut err) = (0.0, 0.0);
        for (r, g) in reference.iter().zip(got) {
            sig += r * r;
            err += (r - f64::from(*g)).powi(2);
        }
        10.0 * (sig / err.max(1e-9)).log10()
    }

    fn check(in_rate: u32, out_rate: u32, freq: f64) {
        let input = sine(in_rate, freq, in_rate as usize);
        let tl = Timeline {
            base: 0,
            data: input.into_iter().collect(),
        };
        let r = Resampler::new(in_rate, out_rate);
        let mut out = Vec::new();
        // Render in uneven blocks: the result must not depend on the block split.
        let total = out_rate as usize;
        let mut n = 0usize;
        for block in [1usize, 7, 1000, 333].iter().cycle() {
            if n >= total {
                break;
            }
            let c = (*block).min(total - n);
            r.render(&tl, n as i64, c, &mut out);
            n += c;
        }
        assert_eq!(out.len(), total);
        // Compare away from the edges (where the input starts/ends abruptly).
        let skip = out_rate as usize / 20;
        let reference: Vec<f64> = (skip..total - skip)
            .map(|i| 10_000.0 * (2.0 * PI * freq * i as f64 / f64::from(out_rate)).sin())
            .collect();
        let snr = snr_db(&reference, &out[skip..total - skip]);
        assert!(snr > 40.0, "{in_rate}->{out_rate}: snr {snr:.1} dB");
    }

    #[test]
    fn upsampling_8k_to_48k_keeps_a_sine() {
        check(8000, 48_000, 440.0);
    }

    #[test]
    fn upsampling_8k_to_16k_and_44100_keeps_a_sine() {
        check(8000, 16_000, 1000.0);
        check(8000, 44_100, 1000.0);
    }

    #[test]
    fn downsampling_48k_to_8k_keeps_an_in_band_sine() {
        check(48_000, 8000, 700.0);
        check(16_000, 8000, 1500.0);
    }

    #[test]
    fn downsampling_removes_out_of_band_tone() {
        let input = sine(48_000, 10_000.0, 48_000);
        let tl = Timeline {
            base: 0,
            data: input.into_iter().collect(),
        };
        let mut out = Vec::new();
        Resampler::new(48_000, 8000).render(&tl, 0, 8000, &mut out);
        let peak = out[400..7600]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!(peak < 100, "alias peak {peak}");
    }

    #[test]
    fn identity_copies_with_zero_padding() {
        let tl = Timeline {
            base: 10,
            data: [1, 2, 3].into_iter().collect(),
        };
        let mut out = Vec::new();
        Resampler::new(8000, 8000).render(&tl, 8, 7, &mut out);
        assert_eq!(out, vec![0, 0, 1, 2, 3, 0, 0]);
    }

    #[test]
    fn timeline_write_trim_and_get() {
        let mut tl = Timeline::default();
        tl.write(100, &[5, 6]);
        assert_eq!(tl.base, 100);
        tl.write(104, &[9]);
        assert_eq!(tl.get(103), 0);
        assert_eq!(tl.get(104), 9);
        tl.write(101, &[7]);
        assert_eq!(tl.get(101), 7);
        tl.write(97, &[1, 2]);
        assert_eq!(tl.base, 97);
        assert_eq!(
            tl.data.iter().copied().collect::<Vec<_>>(),
            vec![1, 2, 0, 5, 7, 0, 0, 9]
        );
        tl.trim_before(102);
        assert_eq!(tl.get(101), 0);
        assert_eq!(tl.get(104), 9);
        assert_eq!(tl.end(), 105);
        tl.trim_before(1000);
        assert!(tl.data.is_empty());
    }

    #[test]
    fn linear_block_scales_length() {
        let mut out = Vec::new();
        linear_block(&[0; 160], 8000, 16_000, &mut out);
        assert_eq!(out.len(), 320);
        out.clear();
        linear_block(&[100; 960], 48_000, 8000, &mut out);
        assert_eq!(out, vec![100; 160]);
    }
}
