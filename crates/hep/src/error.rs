//! Decode errors.

use std::fmt;

/// What was wrong with a HEP packet (or with its compressed payload).
///
/// Small and `Copy` so that it can be counted per packet; [`HepError::reason`] gives a
/// stable snake_case label for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HepError {
    /// The buffer (or the packet's own length field) is shorter than the fixed header.
    TooShort,
    /// The buffer does not start with `HEP3`.
    BadMagic,
    /// The header announces `need` bytes but only `have` are available.
    Truncated {
        /// Bytes the packet says it occupies.
        need: usize,
        /// Bytes available in the buffer.
        have: usize,
    },
    /// A chunk length below the 6-byte chunk header, a chunk running past the end of the
    /// packet, or a known chunk whose body has the wrong size.
    BadChunkLength,
    /// No complete source/destination address pair of one family.
    MissingAddress,
    /// The packet carries no payload chunk (reported by [`crate::Payload::bytes`]).
    MissingPayload,
    /// The compressed payload is not a valid gzip (or zlib) stream.
    BadGzip,
    /// The compressed payload inflates to more than the caller's limit.
    GzipTooLarge,
    /// A version byte other than 1 or 2 in a legacy packet, or a legacy packet given to a
    /// decoder that only accepts HEP v3.
    UnsupportedVersion,
}

impl HepError {
    /// Stable snake_case label, suitable as a metrics label value.
    pub fn reason(&self) -> &'static str {
        match self {
            HepError::TooShort => "too_short",
            HepError::BadMagic => "bad_magic",
            HepError::Truncated { .. } => "truncated",
            HepError::BadChunkLength => "bad_chunk_length",
            HepError::MissingAddress => "missing_address",
            HepError::MissingPayload => "missing_payload",
            HepError::BadGzip => "bad_gzip",
            HepError::GzipTooLarge => "gzip_too_large",
            HepError::UnsupportedVersion => "unsupported_version",
        }
    }
}

impl fmt::Display for HepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HepError::Truncated { need, have } => {
                write!(f, "truncated hep packet: need {need} bytes, have {have}")
            }
            other => write!(f, "malformed hep packet: {}", other.reason()),
        }
    }
}

impl std::error::Error for HepError {}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [HepError; 9] = [
        HepError::TooShort,
        HepError::BadMagic,
        HepError::Truncated { need: 10, have: 4 },
        HepError::BadChunkLength,
        HepError::MissingAddress,
        HepError::MissingPayload,
        HepError::BadGzip,
        HepError::GzipTooLarge,
        HepError::UnsupportedVersion,
    ];

    #[test]
    fn reasons_are_unique_snake_case_labels() {
        let mut seen = std::collections::HashSet::new();
        for e in ALL {
            let r = e.reason();
            assert!(!r.is_empty());
            assert!(
                r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{r}"
            );
            assert!(seen.insert(r), "duplicate reason {r}");
        }
    }

    #[test]
    fn display_is_lowercase_and_carries_truncation_sizes() {
        let s = HepError::Truncated { need: 10, have: 4 }.to_string();
        assert_eq!(s, "truncated hep packet: need 10 bytes, have 4");
        assert_eq!(
            HepError::BadMagic.to_string(),
            "malformed hep packet: bad_magic"
        );
    }
}
