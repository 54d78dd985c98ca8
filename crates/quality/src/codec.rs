//! Codec impairment parameters (ITU-T G.113 Appendix I values as the product table gives them).

use serde::{Deserialize, Serialize};

/// One codec row of the table: its display name, equipment impairment `Ie` and packet-loss
/// robustness `Bpl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CodecParams {
    /// Display name of the row, e.g. `"G.729"`.
    pub name: &'static str,
    /// Equipment impairment factor (0 = no coding distortion).
    pub ie: f64,
    /// Packet-loss robustness factor (higher = degrades more gracefully under loss).
    pub bpl: f64,
}

/// How [`codec_params`] found its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecMatch {
    /// The name equals a row name or alias, ignoring ASCII case and surrounding whitespace.
    Exact,
    /// A row name or alias occurs inside the name (e.g. `"AMR-WB/16000"`).
    Substring,
    /// Nothing matched: G.711 parameters (Ie 0, Bpl 25) were used.
    Default,
}

/// A row of the codec table with the lower-case aliases it is also known by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecRow {
    /// Name and parameters.
    pub params: CodecParams,
    /// Lower-case aliases (SDP encoding names as commonly written).
    pub aliases: &'static [&'static str],
}

const fn row(name: &'static str, aliases: &'static [&'static str], ie: f64, bpl: f64) -> CodecRow {
    CodecRow {
        params: CodecParams { name, ie, bpl },
        aliases,
    }
}

/// The codec table, in the product documentation's order. The first row is the default.
pub const CODECS: &[CodecRow] = &[
    row("G.711 mu-law", &["pcmu", "g711"], 0.0, 25.0),
    row("G.711 A-law", &["pcma"], 0.0, 25.0),
    row("G.722", &["g722"], 0.0, 25.0),
    row("G.729", &["g729", "g729a"], 11.0, 19.0),
    row("G.723.1", &["g723"], 15.0, 16.0),
    row("GSM-FR", &["gsm"], 20.0, 17.0),
    row("Opus", &["opus"], 0.0, 25.0),
    row("iLBC", &["ilbc"], 11.0, 20.0),
    row("AMR", &["amr"], 5.0, 20.0),
    row("AMR-WB", &["amr-wb"], 0.0, 25.0),
    row("SILK", &["silk"], 0.0, 25.0),
    row("Speex", &["speex"], 11.0, 20.0),
];

/// The G.711 parameters used when no row matches.
pub const DEFAULT_CODEC: CodecParams = CodecParams {
    name: "G.711 mu-law",
    ie: 0.0,
    bpl: 25.0,
};

/// Finds the impairment parameters of a codec name (an SDP encoding name such as `"PCMU"`,
/// `"G729"`, `"opus/48000/2"` or a table name such as `"G.711 A-law"`).
///
/// 1. Exact: the name, trimmed of surrounding whitespace, equals a row name or alias ignoring
///    ASCII case.
/// 2. Substring: some row name or alias occurs inside the lower-cased name. When several do,
///    the longest wins (so `"AMR-WB/16000"` is AMR-WB, not AMR); on equal length, table order.
///    Only this direction is tried: a fragment such as `"g"` does not match `"g722"`.
/// 3. Default: G.711 (Ie 0, Bpl 25).
pub fn codec_params(codec: &str) -> (CodecParams, CodecMatch) {
    let wanted = codec.trim().to_ascii_lowercase();
    for r in CODECS {
        if r.params.name.eq_ignore_ascii_case(&wanted) || r.aliases.iter().any(|a| *a == wanted) {
            return (r.params, CodecMatch::Exact);
        }
    }
    let mut best: Option<(usize, CodecParams)> = None;
    for r in CODECS {
        let name = r.params.name.to_ascii_lowercase();
        let keys = std::iter::once(name.as_str()).chain(r.aliases.iter().copied());
        for key in keys {
            let longer = best.is_none_or(|(len, _)| key.len() > len);
            if longer && wanted.contains(key) {
                best = Some((key.len(), r.params));
            }
        }
    }
    match best {
        Some((_, p)) => (p, CodecMatch::Substring),
        None => (DEFAULT_CODEC, CodecMatch::Default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(codec: &str) -> (&'static str, CodecMatch) {
        let (p, m) = codec_params(codec);
        (p.name, m)
    }

    #[test]
    fn every_row_matches_its_name_and_aliases_exactly() {
        for r in CODECS {
            let (p, m) = codec_params(r.params.name);
            assert_eq!((p, m), (r.params, CodecMatch::Exact), "{}", r.params.name);
            for a in r.aliases {
                assert_eq!(codec_params(a), (r.params, CodecMatch::Exact), "{a}");
                let upper = a.to_ascii_uppercase();
                assert_eq!(
                    codec_params(&upper),
                    (r.params, CodecMatch::Exact),
                    "{upper}"
                );
            }
        }
    }

    #[test]
    fn exact_match_ignores_case_and_surrounding_whitespace() {
        assert_eq!(name_of("PCMU"), ("G.711 mu-law", CodecMatch::Exact));
        assert_eq!(name_of("PcMa"), ("G.711 A-law", CodecMatch::Exact));
        assert_eq!(name_of("G729A"), ("G.729", CodecMatch::Exact));
        assert_eq!(name_of("g.723.1"), ("G.723.1", CodecMatch::Exact));
        assert_eq!(name_of(" AMR-WB "), ("AMR-WB", CodecMatch::Exact));
        assert_eq!(name_of("AMR"), ("AMR", CodecMatch::Exact));
        assert_eq!(name_of("iLBC"), ("iLBC", CodecMatch::Exact));
    }

    #[test]
    fn table_values_are_the_documented_ones() {
        let want = [
            ("pcmu", 0.0, 25.0),
            ("pcma", 0.0, 25.0),
            ("g722", 0.0, 25.0),
            ("g729", 11.0, 19.0),
            ("g729a", 11.0, 19.0),
            ("g723", 15.0, 16.0),
            ("gsm", 20.0, 17.0),
            ("opus", 0.0, 25.0),
            ("ilbc", 11.0, 20.0),
            ("amr", 5.0, 20.0),
            ("amr-wb", 0.0, 25.0),
            ("silk", 0.0, 25.0),
            ("speex", 11.0, 20.0),
        ];
        for (alias, ie, bpl) in want {
            let (p, _) = codec_params(alias);
            assert_eq!((p.ie, p.bpl), (ie, bpl), "{alias}");
        }
        assert_eq!(CODECS.len(), 12);
    }

    #[test]
    fn substring_match_finds_known_names_inside_longer_ones() {
        assert_eq!(name_of("G729/8000"), ("G.729", CodecMatch::Substring));
        assert_eq!(name_of("opus/48000/2"), ("Opus", CodecMatch::Substring));
        assert_eq!(
            name_of("x-PCMA-custom"),
            ("G.711 A-law", CodecMatch::Substring)
        );
        assert_eq!(name_of("G.729 Annex B"), ("G.729", CodecMatch::Substring));
        assert_eq!(name_of("GSM-EFR"), ("GSM-FR", CodecMatch::Substring));
    }

    #[test]
    fn substring_match_prefers_the_longest_key() {
        // "amr" and "amr-wb" both occur; the longer one is the better description.
        assert_eq!(name_of("AMR-WB/16000"), ("AMR-WB", CodecMatch::Substring));
        assert_eq!(name_of("AMR/8000"), ("AMR", CodecMatch::Substring));
        // "g729" and "g729a" both occur.
        assert_eq!(name_of("G729A/8000"), ("G.729", CodecMatch::Substring));
    }

    #[test]
    fn substring_match_is_one_way() {
        // A fragment of a known name is not a match.
        assert_eq!(name_of("g7"), ("G.711 mu-law", CodecMatch::Default));
        assert_eq!(name_of("am"), ("G.711 mu-law", CodecMatch::Default));
    }

    #[test]
    fn unknown_or_empty_codec_defaults_to_g711() {
        for c in [
            "telephone-event",
            "",
            "EVS",
            "L16",
            "unknown",
            "\u{e9}\u{0}",
        ] {
            let (p, m) = codec_params(c);
            assert_eq!(m, CodecMatch::Default, "{c:?}");
            assert_eq!((p.ie, p.bpl), (0.0, 25.0));
            assert_eq!(p, DEFAULT_CODEC);
        }
    }
}
