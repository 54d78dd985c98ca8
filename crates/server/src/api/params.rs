//! Query parameter parsing (times, numbers, flags) and the opaque search cursor. Every
//! failure names the parameter and what was expected.

use siphon_store::parse_time_us;

use super::ApiError;

/// A parameter's value, `None` when absent or empty (`?start=` means no start).
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// An absolute time: Unix seconds (fractional ok) or RFC 3339 / a date.
pub fn abs_time(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(s) = given(v) else { return Ok(None) };
    parse_time_us(s)
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest(format!("{name}: expected Unix seconds or RFC 3339")))
}

/// A time relative to `origin_us` in seconds (0 to 1e9), or an absolute RFC 3339 time.
pub fn rel_time(name: &str, v: &Option<String>, origin_us: i64) -> Result<Option<i64>, ApiError> {
    let Some(s) = given(v) else { return Ok(None) };
    let t = match s.parse::<f64>() {
        Ok(secs) if (0.0..1e9).contains(&secs) => Some(origin_us + (secs * 1e6).round() as i64),
        Ok(_) => None,
        Err(_) => parse_time_us(s),
    };
    t.map(Some).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name}: expected seconds from the call start or RFC 3339"
        ))
    })
}

/// Checks that a range is not reversed.
pub fn check_range(
    start_name: &str,
    start: Option<i64>,
    end_name: &str,
    end: Option<i64>,
) -> Result<(), ApiError> {
    match (start, end) {
        (Some(s), Some(e)) if e <= s => Err(ApiError::BadRequest(format!(
            "{end_name}: must be after {start_name}"
        ))),
        _ => Ok(()),
    }
}

/// An integer within `range`.
pub fn int_in<T>(
    name: &str,
    v: &Option<String>,
    range: std::ops::RangeInclusive<T>,
) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let Some(s) = given(v) else { return Ok(None) };
    match s.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::BadRequest(format!(
            "{name}: expected an integer from {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

/// A number within `range`.
pub fn float_in(
    name: &str,
    v: &Option<String>,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Option<f64>, ApiError> {
    let Some(s) = given(v) else { return Ok(None) };
    match s.parse::<f64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::BadRequest(format!(
            "{name}: expected a number from {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

/// A flag: absent is false; `?mono`, `1`, `true`, `yes` are true; `0`, `false`, `no` false.
pub fn flag(name: &str, v: &Option<String>) -> Result<bool, ApiError> {
    match v.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(s) => match s.as_str() {
            "" | "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err(ApiError::BadRequest(format!(
                "{name}: expected true or false"
            ))),
        },
    }
}

/// Position after the last row of a page: the row's (start time, Call-ID), the order of
/// [`siphon_store::Store::search`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Start time of the last row returned, µs.
    pub start_us: i64,
    /// Its Call-ID.
    pub call_id: Vec<u8>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Cursor {
    /// The opaque form: lowercase hex of `"<start_us>:<call-id bytes>"`.
    pub fn encode(&self) -> String {
        let mut raw = format!("{}:", self.start_us).into_bytes();
        raw.extend_from_slice(&self.call_id);
        let mut out = String::with_capacity(raw.len() * 2);
        for b in raw {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// Reads [`Cursor::encode`]'s form; `None` when it is not one.
    pub fn decode(s: &str) -> Option<Cursor> {
        let nib = |c: u8| -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        };
        let s = s.as_bytes();
        if !s.len().is_multiple_of(2) || s.len() > 4096 {
            return None;
        }
        let raw = s
            .chunks_exact(2)
            .map(|p| match p {
                [h, l] => Some(nib(*h)? << 4 | nib(*l)?),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()?;
        let colon = raw.iter().position(|b| *b == b':')?;
        let (num, rest) = raw.split_at(colon);
        let start_us = std::str::from_utf8(num).ok()?.parse().ok()?;
        Some(Cursor {
            start_us,
            call_id: rest.get(1..)?.to_vec(),
        })
    }

    /// True when a row with this start and Call-ID comes after the cursor.
    pub fn is_before(&self, start_us: i64, call_id: &[u8]) -> bool {
        (self.start_us, self.call_id.as_slice()) < (start_us, call_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn cursor_round_trips_with_any_call_id_bytes() {
        for id in [&b"1-5790@127.0.0.1"[..], b"a:b/c%2F", b"", &[0xff, 0, b':']] {
            for t in [0, -5, 1_795_335_337_116_552] {
                let c = Cursor {
                    start_us: t,
                    call_id: id.to_vec(),
                };
                assert_eq!(Cursor::decode(&c.encode()), Some(c));
            }
        }
        for bad in ["", "zz", "abc", "3132", "3a31"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursor_orders_by_start_then_call_id() {
        let c = Cursor {
            start_us: 10,
            call_id: b"b".to_vec(),
        };
        assert!(c.is_before(11, b"a"));
        assert!(c.is_before(10, b"c"));
        assert!(!c.is_before(10, b"b"));
        assert!(!c.is_before(9, b"z"));
    }

    #[test]
    fn times_accept_unix_seconds_and_rfc3339_and_name_the_parameter() {
        assert_eq!(abs_time("start", &None).unwrap(), None);
        assert_eq!(abs_time("start", &s("")).unwrap(), None);
        assert_eq!(abs_time("start", &s("1.5")).unwrap(), Some(1_500_000));
        assert_eq!(
            abs_time("start", &s("2026-11-22T08:15:37.116552Z")).unwrap(),
            Some(1_795_335_337_116_552)
        );
        let e = abs_time("start", &s("soon")).unwrap_err();
        assert_eq!(e.to_string(), "start: expected Unix seconds or RFC 3339");
        assert_eq!(
            rel_time("start", &s("2.5"), 1_000_000).unwrap(),
            Some(3_500_000)
        );
        assert_eq!(
            rel_time("end", &s("1970-01-01T00:00:05Z"), 1_000_000).unwrap(),
            Some(5_000_000)
        );
        assert!(rel_time("end", &s("-3"), 0).is_err());
        assert!(rel_time("end", &s("NaN"), 0).is_err());
        assert!(check_range("start", Some(2), "end", Some(2)).is_err());
        assert!(check_range("start", Some(2), "end", None).is_ok());
    }

    #[test]
    fn numbers_and_flags_are_range_checked() {
        assert_eq!(int_in("limit", &s("5"), 1usize..=1000).unwrap(), Some(5));
        assert!(int_in("limit", &s("0"), 1usize..=1000).is_err());
        assert!(int_in("limit", &s("1001"), 1usize..=1000).is_err());
        assert!(int_in("limit", &s("x"), 1usize..=1000).is_err());
        assert!(float_in("min_mos", &s("inf"), 0.0..=5.0).is_err());
        assert!(float_in("min_mos", &s("NaN"), 0.0..=5.0).is_err());
        assert_eq!(
            float_in("min_mos", &s("3.5"), 0.0..=5.0).unwrap(),
            Some(3.5)
        );
        assert!(flag("mono", &s("")).unwrap());
        assert!(flag("mono", &s("TRUE")).unwrap());
        assert!(!flag("mono", &s("0")).unwrap());
        assert!(!flag("mono", &None).unwrap());
        assert!(flag("mono", &s("maybe")).is_err());
    }
}
