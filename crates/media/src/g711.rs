//! ITU-T G.711 expansion (A-law and µ-law) to 16-bit linear PCM.
//!
//! Both laws are expanded through 256-entry tables built at compile time from the
//! segment/quantisation rules of G.711, so decoding is a single lookup per byte.

/// Expands one A-law code to linear PCM (ITU-T G.711 Table 1a, scaled to 16 bits).
pub const fn alaw_to_linear(code: u8) -> i16 {
    // Even bits are inverted on the line.
    let a = code ^ 0x55;
    let mantissa = ((a & 0x0F) as i16) << 4;
    let segment = (a & 0x70) >> 4;
    let magnitude = match segment {
        0 => mantissa + 8,
        1 => mantissa + 0x108,
        s => (mantissa + 0x108) << (s - 1),
    };
    // Bit 7 set (after inversion) means positive.
    if a & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// Expands one µ-law code to linear PCM (ITU-T G.711 Table 2a, scaled to 16 bits).
pub const fn ulaw_to_linear(code: u8) -> i16 {
    // All bits are inverted on the line.
    let u = !code;
    let segment = (u & 0x70) >> 4;
    // Biased magnitude: ((mantissa << 1) + 33) << segment, in units of 4.
    let biased = ((((u & 0x0F) as i16) << 3) + 0x84) << segment;
    if u & 0x80 != 0 {
        0x84 - biased
    } else {
        biased - 0x84
    }
}

// Evaluated at compile time with i < 256: an out-of-range index would fail the build.
#[allow(clippy::indexing_slicing)]
const fn alaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0usize;
    while i < 256 {
        t[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    t
}

// Evaluated at compile time with i < 256: an out-of-range index would fail the build.
#[allow(clippy::indexing_slicing)]
const fn ulaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0usize;
    while i < 256 {
        t[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    t
}

/// A-law expansion table indexed by code.
pub static ALAW: [i16; 256] = alaw_table();
/// µ-law expansion table indexed by code.
pub static ULAW: [i16; 256] = ulaw_table();

/// Appends the A-law expansion of `payload` to `out`.
pub fn decode_alaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&b| lookup(&ALAW, b)));
}

/// Appends the µ-law expansion of `payload` to `out`.
pub fn decode_ulaw(payload: &[u8], out: &mut Vec<i16>) {
    out.extend(payload.iter().map(|&b| lookup(&ULAW, b)));
}

#[inline(always)]
fn lookup(table: &[i16; 256], code: u8) -> i16 {
    // A u8 index can never be out of range of a 256-entry table.
    table.get(usize::from(code)).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alaw_known_codes_match_g711_table() {
        // 0xD5 / 0x55 are the smallest positive / negative codes.
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        // 0xAA / 0x2A are the largest magnitudes.
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn ulaw_known_codes_match_g711_table() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
    }

    #[test]
    fn tables_are_odd_symmetric_and_monotonic_per_sign() {
        for code in 0..=255u8 {
            assert_eq!(ALAW[usize::from(code)], -ALAW[usize::from(code ^ 0x80)]);
            assert_eq!(ULAW[usize::from(code)], -ULAW[usize::from(code ^ 0x80)]);
        }
        // Within one sign the µ-law magnitudes decrease with the code.
        for code in 0x80..0xFFu8 {
            assert!(ULAW[usize::from(code)] > ULAW[usize::from(code + 1)]);
        }
    }

    #[test]
    fn decode_appends_one_sample_per_byte() {
        let mut out = vec![1];
        decode_alaw(&[0xD5, 0x55], &mut out);
        decode_ulaw(&[0xFF], &mut out);
        assert_eq!(out, vec![1, 8, -8, 0]);
    }
}
