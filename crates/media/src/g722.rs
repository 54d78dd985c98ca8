//! ITU-T G.722 (SB-ADPCM, 64 kbit/s, mode 1) decoder.
//!
//! Written from the block description of Recommendation G.722 (11/1988), clause 6
//! (decoder): each octet carries a 6-bit lower sub-band code (bits 5..0) and a 2-bit
//! higher sub-band code (bits 7..6). The two sub-bands are ADPCM-decoded with their own
//! adaptive quantiser scale and pole/zero predictor, then recombined by the 24-tap
//! receive QMF into two 16 kHz output samples. Fixed-point arithmetic follows the
//! Recommendation, so the output is bit-exact with the reference decoder.

/// QM6: 6-bit inverse quantiser outputs for the lower sub-band (Table 6), by code.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];

/// QM4: 4-bit inverse quantiser outputs used to adapt the lower predictor (Table 7).
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];

/// RIL4 → magnitude index (RL42), then WL: log scale factor multipliers (Table 8).
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];

/// QM2: 2-bit inverse quantiser outputs for the higher sub-band (Table 9).
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// IH → magnitude index (RIH2), then WH: log scale factor multipliers (Table 10).
const RIH2: [usize; 4] = [2, 1, 2, 1];
const WH: [i32; 3] = [0, -214, 798];

/// ILB: antilog table of the scale factor mantissa (clause 3.5, SCALEL/SCALEH).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

/// QMF coefficients h0, h2, ..., h22 (Table 11); h(2i+1) = h(22-2i) by symmetry.
const QMF_EVEN: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

fn sat16(v: i32) -> i32 {
    v.clamp(-32768, 32767)
}

/// Sign bit of a 16-bit two's complement quantity as the Recommendation uses it:
/// zero counts as positive.
fn negative(v: i32) -> bool {
    v < 0
}

/// One sub-band ADPCM state: quantiser scale and the pole-zero predictor.
#[derive(Clone, Debug)]
struct Band {
    /// Log scale factor (NBL / NBH).
    nb: i32,
    /// Linear scale factor (DETL / DETH), derived from the delayed `nb`.
    det: i32,
    /// Predictor output (SL / SH) for the current sample.
    s: i32,
    /// Zero-section output (SZL / SZH) for the current sample.
    sz: i32,
    /// Pole coefficients AL1/AL2 (AH1/AH2).
    a: [i32; 2],
    /// Zero coefficients BL1..BL6 (BH1..BH6).
    b: [i32; 6],
    /// Delayed quantised difference signals DLT1..DLT6 (already doubled, saturated).
    d: [i32; 6],
    /// Delayed partially reconstructed signal signs PLT1, PLT2.
    p_neg: [bool; 2],
    /// Delayed reconstructed signal RLT1 (doubled, saturated).
    r1: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Band {
            nb: 0,
            det,
            s: 0,
            sz: 0,
            a: [0; 2],
            b: [0; 6],
            d: [0; 6],
            p_neg: [false; 2],
            r1: 0,
        }
    }

    /// Predictor adaptation for one sample (PARREC, RECONS, UPPOL2, UPPOL1, UPZERO,
    /// DELAYA, FILTEP, FILTEZ, PREDIC), given the quantised difference `dt`.
    fn adapt(&mut self, dt: i32) {
        // PARREC: partially reconstructed signal.
        let p_neg = negative(self.sz + dt);
        let same1 = p_neg == self.p_neg[0];
        let same2 = p_neg == self.p_neg[1];

        // UPPOL2: second pole coefficient.
        let a1_lim = self.a[0].clamp(-8191, 8191);
        let wd2 = (if same1 { -a1_lim } else { a1_lim }) >> 5;
        let wd3 = if same2 { 128 } else { -128 };
        let a2 = (wd2 + wd3 + ((self.a[1] * 127) >> 7)).clamp(-12288, 12288);

        // UPPOL1: first pole coefficient, bounded by the stability limit 15360 - |AL2|.
        let wd1 = if same1 { 192 } else { -192 };
        let lim = 15360 - a2;
        let a1 = (wd1 + ((self.a[0] * 255) >> 8)).clamp(-lim, lim);

        // UPZERO: sign-sign update of the six zero coefficients.
        for (b, &d) in self.b.iter_mut().zip(self.d.iter()) {
            let leak = (*b * 255) >> 8;
            *b = if dt == 0 {
                leak
            } else if negative(d) == negative(dt) {
                leak + 128
            } else {
                leak - 128
            };
        }

        // DELAYA: shift the difference signal memory (stored doubled, as FILTEZ uses it).
        self.d.rotate_right(1);
        self.d[0] = sat16(dt << 1);
        self.p_neg = [p_neg, self.p_neg[0]];

        // FILTEZ: zero section output.
        self.sz = self
            .b
            .iter()
            .zip(self.d.iter())
            .map(|(&b, &d)| (b * d) >> 15)
            .sum();

        // RECONS (predictor path) and FILTEP: pole section output.
        let r0 = sat16((self.s + dt) << 1);
        let sp = ((a1 * r0) >> 15) + ((a2 * self.r1) >> 15);
        self.r1 = r0;
        self.a = [a1, a2];

        // PREDIC.
        self.s = sat16(self.sz + sp);
    }
}

/// SCALEL/SCALEH: linear scale factor from the log scale factor; `shift_base` is 8 for
/// the lower and 10 for the higher sub-band.
fn scale(nb: i32, shift_base: i32) -> i32 {
    let mantissa = ILB.get(((nb >> 6) & 31) as usize).copied().unwrap_or(2048);
    let shift = (nb >> 11) - shift_base;
    let lin = if shift < 0 {
        mantissa >> (-shift).min(31)
    } else {
        mantissa << shift.min(15)
    };
    lin << 2
}

/// Streaming G.722 decoder: 64 kbit/s input, 16 kHz 16-bit output, two samples per octet.
#[derive(Clone, Debug)]
pub struct G722Decoder {
    low: Band,
    high: Band,
    /// Receive QMF delay lines: XD (difference) and XS (sum), newest first.
    xd: [i32; 12],
    xs: [i32; 12],
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    /// A decoder in the reset state of the Recommendation.
    pub fn new() -> Self {
        G722Decoder {
            low: Band::new(32),
            high: Band::new(8),
            xd: [0; 12],
            xs: [0; 12],
        }
    }

    /// Decodes `payload` (one octet per 125 µs) and appends `2 * payload.len()` samples
    /// at 16 kHz to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &octet in payload {
            let [a, b] = self.decode_octet(octet);
            out.push(a);
            out.push(b);
        }
    }

    fn decode_octet(&mut self, octet: u8) -> [i16; 2] {
        let ilr = usize::from(octet & 0x3F);
        let ih = usize::from(octet >> 6);

        // Lower sub-band: INVQBL (6-bit output), RECONS, LIMIT.
        let dl = (self.low.det * QM6.get(ilr).copied().unwrap_or(0)) >> 15;
        let rl = (self.low.s + dl).clamp(-16384, 16383);
        // INVQAL (4-bit, predictor path), then adaptation.
        let ril = ilr >> 2;
        let dlt = (self.low.det * QM4.get(ril).copied().unwrap_or(0)) >> 15;
        self.low.adapt(dlt);
        // LOGSCL, SCALEL.
        let wl = RL42.get(ril).and_then(|&i| WL.get(i)).copied().unwrap_or(0);
        self.low.nb = (((self.low.nb * 127) >> 7) + wl).clamp(0, 18432);
        self.low.det = scale(self.low.nb, 8);

        // Higher sub-band: INVQAH, RECONS, LIMIT, adaptation, LOGSCH, SCALEH.
        let dh = (self.high.det * QM2.get(ih).copied().unwrap_or(0)) >> 15;
        let rh = (self.high.s + dh).clamp(-16384, 16383);
        self.high.adapt(dh);
        let wh = RIH2.get(ih).and_then(|&i| WH.get(i)).copied().unwrap_or(0);
        self.high.nb = (((self.high.nb * 127) >> 7) + wh).clamp(0, 22528);
        self.high.det = scale(self.high.nb, 10);

        // Receive QMF.
        self.xd.rotate_right(1);
        self.xs.rotate_right(1);
        self.xd[0] = rl - rh;
        self.xs[0] = rl + rh;
        let mut xout1 = 0i32;
        let mut xout2 = 0i32;
        for (i, (&d, &s)) in self.xd.iter().zip(self.xs.iter()).enumerate() {
            let h_even = QMF_EVEN.get(i).copied().unwrap_or(0);
            let h_odd = QMF_EVEN.get(11 - i).copied().unwrap_or(0);
            xout1 += d * h_even;
            xout2 += s * h_odd;
        }
        [sat16(xout1 >> 11) as i16, sat16(xout2 >> 11) as i16]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_two_samples_per_octet() {
        let mut dec = G722Decoder::new();
        let mut out = Vec::new();
        dec.decode(&[0xFF; 160], &mut out);
        assert_eq!(out.len(), 320);
    }

    #[test]
    fn idle_pattern_decodes_to_near_silence() {
        // 0xFA..0xFF style codes with tiny magnitudes: the lower code 0x3E/0x3F and
        // higher code 3 are the smallest steps, so output must stay very quiet.
        let mut dec = G722Decoder::new();
        let mut out = Vec::new();
        dec.decode(&[0xFF; 800], &mut out);
        assert!(out.iter().all(|s| s.abs() < 64), "{:?}", &out[..16]);
    }

    #[test]
    fn arbitrary_octets_stay_in_range_and_state_bounded() {
        let mut dec = G722Decoder::new();
        let mut out = Vec::new();
        let bytes: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        dec.decode(&bytes, &mut out);
        assert_eq!(out.len(), 40_000);
        for band in [&dec.low, &dec.high] {
            assert!(band.a[1].abs() <= 12288);
            assert!(band.a[0].abs() <= 15360 + 12288);
            assert!(band.b.iter().all(|b| b.abs() <= 32768));
        }
    }
}
