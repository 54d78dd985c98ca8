//! The simplified ITU-T G.107 E-model: R-factor from codec, loss and one-way delay, and MOS.

use serde::{Deserialize, Serialize};

use crate::codec::{codec_params, CodecMatch, CodecParams};

/// Basic signal-to-noise ratio term of the R-factor (G.107 default conditions).
pub const R0: f64 = 93.2;
/// One-way delay above which the delay impairment grows steeply (ms).
pub const DELAY_KNEE_MS: f64 = 177.3;

/// What the E-model needs for one stream or interval.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EModelInput {
    /// Codec name, looked up with [`codec_params`].
    pub codec: String,
    /// Packet loss in percent (0–100).
    pub loss_pct: f64,
    /// Round-trip time in ms, `None` when unknown.
    pub rtt_ms: Option<f64>,
}

/// The E-model's inputs as used (after sanitising) and its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EModelResult {
    /// Codec name as given.
    pub codec: String,
    /// How the codec name was matched.
    pub codec_match: CodecMatch,
    /// Name of the table row whose parameters were used.
    pub matched_codec: String,
    /// Equipment impairment of the codec.
    pub ie: f64,
    /// Packet-loss robustness of the codec.
    pub bpl: f64,
    /// Packet loss used, percent.
    pub loss_pct: f64,
    /// Round-trip time used, ms; `None` when unknown.
    pub rtt_ms: Option<f64>,
    /// One-way delay d = RTT / 2 in ms; 0 when the RTT is unknown.
    pub delay_ms: f64,
    /// Whether `delay_ms` comes from a known RTT.
    pub delay_known: bool,
    /// Delay impairment Id.
    pub id: f64,
    /// Effective equipment impairment Ie_eff.
    pub ie_eff: f64,
    /// R = 93.2 − Id − Ie_eff (not clamped; may be negative).
    pub r_factor: f64,
    /// Mean opinion score in [1.0, 4.5].
    pub mos: f64,
}

/// Loss percent as the model uses it: NaN and negative values become 0, values above 100
/// become 100 (+∞ included).
pub fn sanitize_loss_pct(loss_pct: f64) -> f64 {
    if loss_pct.is_nan() || loss_pct <= 0.0 {
        0.0
    } else {
        loss_pct.min(100.0)
    }
}

/// RTT as the model uses it: NaN, infinite and negative values mean "unknown".
pub fn sanitize_rtt_ms(rtt_ms: Option<f64>) -> Option<f64> {
    rtt_ms.filter(|r| r.is_finite() && *r >= 0.0)
}

/// Delay impairment Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3), d the one-way delay in ms,
/// H the Heaviside step (0 below zero, 1 at and above zero).
pub fn delay_impairment(delay_ms: f64) -> f64 {
    let excess = delay_ms - DELAY_KNEE_MS;
    let step = if excess >= 0.0 { 1.0 } else { 0.0 };
    0.024 * delay_ms + 0.11 * excess * step
}

/// Effective equipment impairment Ie_eff = Ie + (95 − Ie) · loss% / (loss% + Bpl).
pub fn effective_ie(ie: f64, bpl: f64, loss_pct: f64) -> f64 {
    let denom = loss_pct + bpl;
    if denom <= 0.0 {
        return ie;
    }
    ie + (95.0 - ie) * loss_pct / denom
}

/// MOS from the R-factor (G.107 Annex B): 1 for R < 0, 4.5 for R > 100, else
/// 1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶; the result is clamped to [1.0, 4.5]
/// (the polynomial dips just under 1 for 0 < R < 6.5). NaN gives 1.
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r < 0.0 {
        return 1.0;
    }
    if r > 100.0 {
        return 4.5;
    }
    let mos = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6;
    mos.clamp(1.0, 4.5)
}

/// MOS of a codec at a loss and RTT that are already sanitised (the per-interval path).
pub(crate) fn mos_with(params: &CodecParams, loss_pct: f64, rtt_ms: Option<f64>) -> f64 {
    let delay_ms = rtt_ms.map_or(0.0, |r| r / 2.0);
    let r = R0 - delay_impairment(delay_ms) - effective_ie(params.ie, params.bpl, loss_pct);
    mos_from_r(r)
}

/// Runs the E-model: R = 93.2 − Id − Ie_eff and its MOS.
///
/// Inputs are sanitised first ([`sanitize_loss_pct`], [`sanitize_rtt_ms`]); the result echoes
/// the values actually used. An unknown RTT means d = 0 (`delay_known` false).
pub fn emodel(input: &EModelInput) -> EModelResult {
    let (params, codec_match) = codec_params(&input.codec);
    let loss_pct = sanitize_loss_pct(input.loss_pct);
    let rtt_ms = sanitize_rtt_ms(input.rtt_ms);
    let delay_ms = rtt_ms.map_or(0.0, |r| r / 2.0);
    let id = delay_impairment(delay_ms);
    let ie_eff = effective_ie(params.ie, params.bpl, loss_pct);
    let r_factor = R0 - id - ie_eff;
    EModelResult {
        codec: input.codec.clone(),
        codec_match,
        matched_codec: params.name.to_string(),
        ie: params.ie,
        bpl: params.bpl,
        loss_pct,
        rtt_ms,
        delay_ms,
        delay_known: rtt_ms.is_some(),
        id,
        ie_eff,
        r_factor,
        mos: mos_from_r(r_factor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(codec: &str, loss_pct: f64, rtt_ms: Option<f64>) -> EModelResult {
        emodel(&EModelInput {
            codec: codec.to_string(),
            loss_pct,
            rtt_ms,
        })
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Expected values computed by hand (python3, same formulas):
    /// d = rtt/2; Id = 0.024 d + 0.11 (d − 177.3)·[d ≥ 177.3]; Ie_eff = Ie + (95 − Ie)·p/(p + Bpl);
    /// R = 93.2 − Id − Ie_eff; MOS = 1 + 0.035 R + R (R − 60)(100 − R)·7e-6.
    #[test]
    fn every_codec_row_matches_hand_computed_values() {
        #[rustfmt::skip]
        let cases = [
            // codec, loss%, rtt,   Id,      Ie_eff,         R,              MOS
            // G.711 mu-law: d=50, Id=1.2, Ie_eff=95·2/27
            ("pcmu",   2.0, Some(100.0), 1.2,    7.037037037037, 84.962962962963, 4.196950940),
            // G.711 A-law: rtt unknown → d=0, Ie_eff=95/26
            ("pcma",   1.0, None,        0.0,    3.653846153846, 89.546153846154, 4.327722822),
            // G.722: d=200 over the knee: Id=4.8+0.11·22.7=7.297, Ie_eff=95·5/30
            ("g722",   5.0, Some(400.0), 7.297, 15.833333333333, 70.069666666667, 3.600265666),
            // G.729: d=40, Ie_eff=11+84·3/22
            ("g729",   3.0, Some(80.0),  0.96,  22.454545454545, 69.785454545455, 3.586921777),
            // G.723.1: d=100, Ie_eff=15+80·1.5/17.5
            ("g723",   1.5, Some(200.0), 2.4,   21.857142857143, 68.942857142857, 3.547037127),
            // GSM-FR: no loss → Ie_eff=Ie=20, d=30
            ("gsm",    0.0, Some(60.0),  0.72,  20.0,            72.48,           3.711052589),
            // Opus: d=15, Ie_eff=95·10/35
            ("opus",  10.0, Some(30.0),  0.36,  27.142857142857, 65.697142857143, 3.389273556),
            // iLBC: d=250: Id=6+0.11·72.7=13.997, Ie_eff=11+84·4/24=25
            ("ilbc",   4.0, Some(500.0), 13.997, 25.0,           54.203,          2.796374337),
            // AMR: d=75, Ie_eff=5+90·2.5/22.5=15
            ("amr",    2.5, Some(150.0), 1.8,   15.0,            76.4,            3.880988992),
            // AMR-WB: d=10, Ie_eff=95·0.5/25.5
            ("amr-wb", 0.5, Some(20.0),  0.24,   1.862745098039, 91.097254901961, 4.364946442),
            // SILK: d=180: Id=4.32+0.11·2.7=4.617, Ie_eff=95·7/32
            ("silk",   7.0, Some(360.0), 4.617, 20.78125,        67.80175,        3.492285127),
            // Speex: d=120, Ie_eff=11+84·1/21=15
            ("speex",  1.0, Some(240.0), 2.88,  15.0,            75.32,           3.835548179),
        ];
        for (codec, loss, rtt, id, ie_eff, r, mos) in cases {
            let e = run(codec, loss, rtt);
            assert_eq!(e.codec_match, CodecMatch::Exact, "{codec}");
            assert!(close(e.id, id), "{codec}: id {} != {id}", e.id);
            assert!(
                close(e.ie_eff, ie_eff),
                "{codec}: ie_eff {} != {ie_eff}",
                e.ie_eff
            );
            assert!(close(e.r_factor, r), "{codec}: R {} != {r}", e.r_factor);
            assert!(
                (e.mos - mos).abs() < 1e-8,
                "{codec}: MOS {} != {mos}",
                e.mos
            );
        }
        // Every row of the table is covered above.
        let covered: Vec<&str> = cases.iter().map(|c| codec_params(c.0).0.name).collect();
        for row in crate::codec::CODECS {
            assert!(covered.contains(&row.params.name), "{}", row.params.name);
        }
    }

    #[test]
    fn best_case_g711_is_r_93_2_and_mos_4_409() {
        // R = 93.2 → MOS = 1 + 3.262 + 93.2·33.2·6.8·7e-6 = 4.409285824
        let e = run("PCMU", 0.0, Some(0.0));
        assert!(close(e.r_factor, 93.2));
        assert!(close(e.mos, 4.409285824));
        assert!(e.delay_known);
    }

    #[test]
    fn heaviside_step_switches_on_at_the_knee() {
        // Just under: no excess term. 0.024·177.2 = 4.2528
        assert!(close(delay_impairment(177.2), 4.2528));
        // At the knee H(0) = 1 but the excess is 0: 0.024·177.3 = 4.2552 (continuous).
        assert!(close(delay_impairment(177.3), 4.2552));
        // Just over: 0.024·177.4 + 0.11·0.1 = 4.2576 + 0.011 = 4.2686
        assert!(close(delay_impairment(177.4), 4.2686));
        // The same through the model, d = RTT/2.
        assert!(close(run("pcmu", 0.0, Some(354.4)).id, 4.2528));
        assert!(close(run("pcmu", 0.0, Some(354.6)).id, 4.2552));
        assert!(close(run("pcmu", 0.0, Some(354.8)).id, 4.2686));
        assert!(close(run("pcmu", 0.0, Some(354.8)).delay_ms, 177.4));
    }

    #[test]
    fn mos_is_clamped_below_zero_and_above_one_hundred() {
        assert_eq!(mos_from_r(-0.001), 1.0);
        assert_eq!(mos_from_r(-50.0), 1.0);
        assert_eq!(mos_from_r(f64::NEG_INFINITY), 1.0);
        assert_eq!(mos_from_r(f64::NAN), 1.0);
        assert_eq!(mos_from_r(100.001), 4.5);
        assert_eq!(mos_from_r(250.0), 4.5);
        assert_eq!(mos_from_r(f64::INFINITY), 4.5);
        // Polynomial endpoints: R=0 → 1, R=100 → 1 + 3.5 = 4.5.
        assert_eq!(mos_from_r(0.0), 1.0);
        assert!(close(mos_from_r(100.0), 4.5));
        // The polynomial dips under 1 for 0 < R < 6.5 (R=3: 1.105 − 3·57·97·7e-6 = 0.988891): clamped.
        assert_eq!(mos_from_r(3.0), 1.0);
        // R = 90 → 1 + 3.15 + 90·30·10·7e-6 = 4.339
        assert!(close(mos_from_r(90.0), 4.339));
    }

    #[test]
    fn heavy_loss_and_delay_give_negative_r_and_mos_one() {
        // G.723.1, 100 % loss, RTT 1000 → d=500: Id = 12 + 0.11·322.7 = 47.497,
        // Ie_eff = 15 + 80·100/116 = 83.965517…, R = 93.2 − 47.497 − 83.9655 = −38.2625
        let e = run("g723", 100.0, Some(1000.0));
        assert!(close(
            e.r_factor,
            93.2 - 47.497 - (15.0 + 80.0 * 100.0 / 116.0)
        ));
        assert!(e.r_factor < 0.0);
        assert_eq!(e.mos, 1.0);
    }

    #[test]
    fn interval_path_agrees_with_emodel() {
        for (codec, loss, rtt) in [
            ("g729", 3.0, Some(80.0)),
            ("silk", 7.0, Some(360.0)),
            ("pcmu", 0.0, None),
        ] {
            let (p, _) = codec_params(codec);
            assert_eq!(mos_with(&p, loss, rtt), run(codec, loss, rtt).mos);
        }
    }

    #[test]
    fn unknown_rtt_means_zero_delay() {
        let e = run("pcmu", 0.0, None);
        assert_eq!(e.delay_ms, 0.0);
        assert!(!e.delay_known);
        assert_eq!(e.id, 0.0);
    }

    #[test]
    fn nonsense_inputs_are_sanitised() {
        let e = run("pcmu", f64::NAN, Some(f64::NAN));
        assert_eq!((e.loss_pct, e.rtt_ms, e.delay_known), (0.0, None, false));
        let e = run("pcmu", -3.0, Some(-10.0));
        assert_eq!((e.loss_pct, e.rtt_ms), (0.0, None));
        let e = run("pcmu", 250.0, Some(f64::INFINITY));
        assert_eq!((e.loss_pct, e.rtt_ms), (100.0, None));
        let e = run("pcmu", f64::INFINITY, None);
        assert_eq!(e.loss_pct, 100.0);
    }

    #[test]
    fn result_echoes_codec_and_match() {
        let e = run("opus/48000/2", 0.0, None);
        assert_eq!(e.codec, "opus/48000/2");
        assert_eq!(e.codec_match, CodecMatch::Substring);
        assert_eq!(e.matched_codec, "Opus");
        let e = run("EVS", 0.0, None);
        assert_eq!(e.codec_match, CodecMatch::Default);
        assert_eq!(e.matched_codec, "G.711 mu-law");
    }

    fn any_codec() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("pcmu".to_string()),
            Just("g729".to_string()),
            Just("g723".to_string()),
            Just("gsm".to_string()),
            Just("ilbc".to_string()),
            Just("amr".to_string()),
            Just("speex".to_string()),
            ".{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn mos_is_always_within_one_and_four_point_five(
            codec in any_codec(),
            loss in proptest::num::f64::ANY,
            rtt in proptest::option::of(proptest::num::f64::ANY),
        ) {
            let e = run(&codec, loss, rtt);
            prop_assert!((1.0..=4.5).contains(&e.mos), "mos {}", e.mos);
            prop_assert!(e.r_factor.is_finite() && e.id.is_finite() && e.ie_eff.is_finite());
        }

        #[test]
        fn mos_from_any_r_is_within_one_and_four_point_five(r in proptest::num::f64::ANY) {
            let m = mos_from_r(r);
            prop_assert!((1.0..=4.5).contains(&m));
        }

        #[test]
        fn more_loss_never_raises_mos(
            codec in any_codec(),
            a in 0.0f64..=100.0,
            b in 0.0f64..=100.0,
            rtt in proptest::option::of(0.0f64..2000.0),
        ) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let m_lo = run(&codec, lo, rtt).mos;
            let m_hi = run(&codec, hi, rtt).mos;
            prop_assert!(m_hi <= m_lo + 1e-12, "loss {lo}→{hi}: mos {m_lo}→{m_hi}");
        }

        #[test]
        fn more_delay_never_raises_mos(
            codec in any_codec(),
            loss in 0.0f64..=100.0,
            a in 0.0f64..5000.0,
            b in 0.0f64..5000.0,
        ) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let m_lo = run(&codec, loss, Some(lo)).mos;
            let m_hi = run(&codec, loss, Some(hi)).mos;
            prop_assert!(m_hi <= m_lo + 1e-12);
        }
    }
}
