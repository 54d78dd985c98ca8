//! The captured payload: plain or compressed, with bounded decompression.

use std::io::{Read, Write};

use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::HepError;

/// The payload a HEP packet carries, borrowed from the packet buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Payload<'a> {
    /// Chunk 15 (or the body of a v1/v2 packet): the captured bytes as they are.
    Plain(&'a [u8]),
    /// Chunk 16: the captured bytes, gzip-compressed (zlib streams are accepted too).
    Gzip(&'a [u8]),
    /// The packet has no payload chunk.
    #[default]
    None,
}

impl<'a> Payload<'a> {
    /// Plain bytes, decompressing gzip (bounded: at most `limit` bytes out; over the limit is
    /// an error) into `scratch`.
    ///
    /// A plain payload is returned as it is, whatever its size, and `scratch` is not touched.
    /// A compressed payload is inflated into `scratch` (cleared first; reuse it across packets
    /// to avoid allocating). [`Payload::None`] gives [`HepError::MissingPayload`].
    pub fn bytes<'s>(
        &'s self,
        scratch: &'s mut Vec<u8>,
        limit: usize,
    ) -> Result<&'s [u8], HepError> {
        match *self {
            Payload::Plain(b) => Ok(b),
            Payload::Gzip(z) => {
                inflate(z, scratch, limit)?;
                Ok(scratch.as_slice())
            }
            Payload::None => Err(HepError::MissingPayload),
        }
    }

    /// The bytes as carried on the wire (compressed for [`Payload::Gzip`]), if any.
    pub fn raw(&self) -> Option<&'a [u8]> {
        match *self {
            Payload::Plain(b) | Payload::Gzip(b) => Some(b),
            Payload::None => None,
        }
    }

    /// True for [`Payload::Gzip`].
    pub fn is_compressed(&self) -> bool {
        matches!(self, Payload::Gzip(_))
    }
}

/// Gzip `plain` and append the result to `out`, ready to be carried as [`Payload::Gzip`].
pub fn gzip(plain: &[u8], out: &mut Vec<u8>) {
    let mut enc = GzEncoder::new(out, Compression::default());
    // Writing into a Vec cannot fail (allocation failure aborts), so the results carry
    // no information.
    let _ = enc.write_all(plain);
    let _ = enc.finish();
}

fn is_zlib_header(z: &[u8]) -> bool {
    match z {
        [cmf, flg, ..] => cmf & 0x0f == 8 && ((u16::from(*cmf) << 8) | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

// Never inlined: the inflater's state is built on the stack (about 52 KiB), and a caller that
// inlined it would grow its own frame by as much, touching that many pages of stack on every
// packet, compressed or not.
#[cold]
#[inline(never)]
fn inflate(z: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), HepError> {
    out.clear();
    // Read one byte more than allowed so that "exactly at the limit" and "over" differ.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let res = if z.starts_with(&[0x1f, 0x8b]) {
        GzDecoder::new(z).take(cap).read_to_end(out)
    } else if is_zlib_header(z) {
        ZlibDecoder::new(z).take(cap).read_to_end(out)
    } else {
        return Err(HepError::BadGzip);
    };
    if out.len() > limit {
        out.clear();
        return Err(HepError::GzipTooLarge);
    }
    if res.is_err() {
        out.clear();
        return Err(HepError::BadGzip);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::ZlibEncoder;

    fn gz(plain: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        gzip(plain, &mut v);
        v
    }

    #[test]
    fn plain_is_returned_as_is_whatever_the_limit() {
        let p = Payload::Plain(b"INVITE sip:a@b SIP/2.0\r\n");
        let mut scratch = vec![1, 2, 3];
        assert_eq!(
            p.bytes(&mut scratch, 0).unwrap(),
            b"INVITE sip:a@b SIP/2.0\r\n"
        );
        assert_eq!(scratch, [1, 2, 3], "scratch untouched for plain payloads");
        assert!(!p.is_compressed());
        assert_eq!(p.raw(), Some(&b"INVITE sip:a@b SIP/2.0\r\n"[..]));
    }

    #[test]
    fn none_is_missing_payload() {
        let mut scratch = Vec::new();
        assert_eq!(
            Payload::None.bytes(&mut scratch, 100),
            Err(HepError::MissingPayload)
        );
        assert_eq!(Payload::None.raw(), None);
        assert_eq!(Payload::default(), Payload::None);
    }

    #[test]
    fn gzip_round_trips_into_scratch() {
        let plain = b"SIP/2.0 200 OK\r\nCall-ID: abc\r\n\r\n".repeat(20);
        let z = gz(&plain);
        assert!(z.len() < plain.len());
        let p = Payload::Gzip(&z);
        assert!(p.is_compressed());
        let mut scratch = Vec::new();
        assert_eq!(p.bytes(&mut scratch, plain.len()).unwrap(), &plain[..]);
    }

    #[test]
    fn gzip_limit_is_enforced_exactly() {
        let plain = vec![b'x'; 1000];
        let z = gz(&plain);
        let p = Payload::Gzip(&z);
        let mut scratch = Vec::new();
        assert_eq!(p.bytes(&mut scratch, 1000).unwrap().len(), 1000);
        assert_eq!(p.bytes(&mut scratch, 999), Err(HepError::GzipTooLarge));
        assert!(scratch.is_empty(), "partial output is not left behind");
        assert_eq!(p.bytes(&mut scratch, 0), Err(HepError::GzipTooLarge));
    }

    #[test]
    fn gzip_of_empty_input_fits_a_zero_limit() {
        let z = gz(b"");
        let mut scratch = Vec::new();
        assert_eq!(Payload::Gzip(&z).bytes(&mut scratch, 0).unwrap(), b"");
    }

    #[test]
    fn scratch_is_cleared_between_uses() {
        let z = gz(b"second");
        let mut scratch = b"first payload left over".to_vec();
        assert_eq!(
            Payload::Gzip(&z).bytes(&mut scratch, 64).unwrap(),
            b"second"
        );
    }

    #[test]
    fn zlib_stream_is_accepted() {
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
        enc.write_all(b"OPTIONS sip:x SIP/2.0\r\n").unwrap();
        let z = enc.finish().unwrap();
        let mut scratch = Vec::new();
        assert_eq!(
            Payload::Gzip(&z).bytes(&mut scratch, 100).unwrap(),
            b"OPTIONS sip:x SIP/2.0\r\n"
        );
    }

    #[test]
    fn garbage_and_truncated_streams_are_bad_gzip() {
        let mut scratch = Vec::new();
        assert_eq!(
            Payload::Gzip(b"not compressed at all").bytes(&mut scratch, 100),
            Err(HepError::BadGzip)
        );
        assert_eq!(
            Payload::Gzip(b"").bytes(&mut scratch, 100),
            Err(HepError::BadGzip)
        );
        let z = gz(&b"INVITE sip:bob@example.com SIP/2.0\r\n".repeat(4));
        let cut = &z[..z.len() / 2];
        assert_eq!(
            Payload::Gzip(cut).bytes(&mut scratch, 10_000),
            Err(HepError::BadGzip)
        );
        let mut corrupt = z.clone();
        let n = corrupt.len();
        corrupt[n - 6] ^= 0xff; // CRC32 trailer
        assert_eq!(
            Payload::Gzip(&corrupt).bytes(&mut scratch, 10_000),
            Err(HepError::BadGzip)
        );
    }
}
