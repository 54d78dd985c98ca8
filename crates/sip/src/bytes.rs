//! Small byte-slice helpers shared by the parsers. None of them can panic.

/// SP or HT.
#[inline]
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// SP, HT, CR or LF (folded header values keep their line breaks).
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims SP, HT, CR and LF on both ends.
#[inline]
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

#[inline]
pub(crate) fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_lws(*first) {
            break;
        }
        s = rest;
    }
    s
}

#[inline]
pub(crate) fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if !is_lws(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Position of the first `needle` byte (SIMD where the CPU has it).
#[inline]
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    memchr::memchr(needle, hay)
}

/// A search for one byte, set up once for many short searches (the lines of a header
/// section): `memchr`'s free functions choose their implementation through a function
/// pointer and broadcast the needle on every call, which for a 40-byte line costs about as
/// much as the search.
#[derive(Clone, Copy)]
pub(crate) struct ByteFinder {
    #[cfg(target_arch = "x86_64")]
    avx2: Option<memchr::arch::x86_64::avx2::memchr::One>,
    needle: u8,
}

impl ByteFinder {
    #[inline]
    pub(crate) fn new(needle: u8) -> Self {
        ByteFinder {
            #[cfg(target_arch = "x86_64")]
            avx2: memchr::arch::x86_64::avx2::memchr::One::new(needle),
            needle,
        }
    }

    /// Position of the first `needle` byte in `hay`.
    #[inline]
    pub(crate) fn find(&self, hay: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(one) = &self.avx2 {
            return one.find(hay);
        }
        memchr::memchr(self.needle, hay)
    }
}

/// Position of the first occurrence of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(hay, needle)
}

/// Case-insensitive ASCII prefix test.
#[inline]
pub(crate) fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Splits at the first `sep`, returning the part before and after it (without `sep`).
#[inline]
pub(crate) fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = find_byte(s, sep)?;
    let (a, b) = s.split_at_checked(i)?;
    Some((a, b.get(1..).unwrap_or_default()))
}

/// Parses a run of ASCII digits (nothing else) into a `u64`, `None` on overflow, empty input or
/// any other byte.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Like [`parse_u64`] but for `u32`.
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// Like [`parse_u64`] but for `u16`.
pub(crate) fn parse_u16(s: &[u8]) -> Option<u16> {
    parse_u64(s).and_then(|v| u16::try_from(v).ok())
}

/// The leading digits of `s` (possibly empty) and the rest.
#[inline]
pub(crate) fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    s.split_at_checked(n).unwrap_or((s, &[]))
}

/// Removes one pair of surrounding double quotes, if present.
pub(crate) fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        [b'"', inner @ ..] => inner,
        _ => s,
    }
}

/// Value of parameter `name` (case-insensitive) in a `;`-separated parameter list (`;` inside
/// double quotes does not separate). A parameter's name is what stands before its first `=`,
/// trimmed; its value what follows, trimmed; a parameter without `=` has an empty value.
///
/// Only a parameter that starts with `name` is split, so the others cost one comparison.
pub(crate) fn param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut rest = params;
    loop {
        let (item, tail) = match find_unquoted(rest, b';') {
            Some(i) => (
                rest.get(..i).unwrap_or_default(),
                rest.get(i.saturating_add(1)..),
            ),
            None => (rest, None),
        };
        let item = trim_start(item);
        if let (false, Some((head, after))) = (item.is_empty(), item.split_at_checked(name.len())) {
            if head.eq_ignore_ascii_case(name) {
                match trim_start(after) {
                    [] => return Some(&[]),
                    [b'=', value @ ..] => return Some(trim(value)),
                    _ => {}
                }
            }
        }
        rest = tail?;
    }
}

/// Position of the first `sep` outside a double-quoted string (backslash escapes honoured).
/// `sep` is never found as `"` itself.
pub(crate) fn find_unquoted(s: &[u8], sep: u8) -> Option<usize> {
    let mut at = 0usize;
    loop {
        let i = at.checked_add(memchr::memchr2(b'"', sep, s.get(at..)?)?)?;
        if s.get(i) != Some(&b'"') {
            return Some(i);
        }
        // Inside a quoted string: skip to its closing quote.
        at = i.checked_add(1)?;
        loop {
            let j = at.checked_add(memchr::memchr2(b'"', b'\\', s.get(at..)?)?)?;
            if s.get(j) == Some(&b'"') {
                at = j.checked_add(1)?;
                break;
            }
            at = j.checked_add(2)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_strips_lws_on_both_ends() {
        assert_eq!(trim(b" \t a b\r\n "), b"a b");
        assert_eq!(trim(b"\r\n"), b"");
        assert_eq!(trim(b""), b"");
    }

    #[test]
    fn find_locates_subslices() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"aaa", b"aaaa"), None);
        assert_eq!(find(b"abc", b""), None);
        assert_eq!(find(b"xx--b", b"--b"), Some(2));
    }

    #[test]
    fn parse_numbers_rejects_garbage_and_overflow() {
        assert_eq!(parse_u32(b"123"), Some(123));
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u16(b"65536"), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
    }

    /// The definition of [`param`]: iterates over `;`-separated parameters (outside double
    /// quotes) as trimmed `(name, value)` pairs; a parameter without `=` has an empty value.
    struct Params<'a> {
        rest: &'a [u8],
        done: bool,
    }

    impl<'a> Params<'a> {
        fn new(s: &'a [u8]) -> Self {
            Params {
                rest: s,
                done: false,
            }
        }
    }

    impl<'a> Iterator for Params<'a> {
        type Item = (&'a [u8], &'a [u8]);

        fn next(&mut self) -> Option<Self::Item> {
            loop {
                if self.done {
                    return None;
                }
                let end = find_unquoted(self.rest, b';');
                let (item, rest) = match end {
                    Some(i) => {
                        let (a, b) = self.rest.split_at_checked(i)?;
                        (a, b.get(1..).unwrap_or_default())
                    }
                    None => {
                        self.done = true;
                        (self.rest, &[][..])
                    }
                };
                self.rest = rest;
                let item = trim(item);
                if item.is_empty() {
                    continue;
                }
                return Some(match split_once(item, b'=') {
                    Some((n, v)) => (trim(n), trim(v)),
                    None => (item, &[][..]),
                });
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn param_agrees_with_splitting_every_parameter(
            s in proptest::collection::vec(
                proptest::sample::select(b"tagTAG=; \t\"\\x".to_vec()),
                0..40,
            ),
            name in proptest::sample::select(vec![&b"tag"[..], b"t", b"ta", b"x"]),
        ) {
            let expected = Params::new(&s)
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v);
            proptest::prop_assert_eq!(param(&s, name), expected);
        }
    }

    #[test]
    fn params_skip_semicolons_inside_quotes() {
        let p: Vec<_> = Params::new(b" a=1 ; b=\"x;y\";c ;").collect();
        assert_eq!(
            p,
            vec![
                (&b"a"[..], &b"1"[..]),
                (&b"b"[..], &b"\"x;y\""[..]),
                (&b"c"[..], &b""[..])
            ]
        );
        assert_eq!(param(b"tag=1;Branch=z9", b"branch"), Some(&b"z9"[..]));
    }

    #[test]
    fn unquote_removes_one_pair_of_quotes() {
        assert_eq!(unquote(b"\"a b\""), b"a b");
        assert_eq!(unquote(b"\"open"), b"open");
        assert_eq!(unquote(b"plain"), b"plain");
        assert_eq!(unquote(b"\""), b"");
    }

    #[test]
    fn find_unquoted_honours_escapes() {
        assert_eq!(find_unquoted(br#""a\",b",c"#, b','), Some(7));
        assert_eq!(find_unquoted(b"\"a,b", b','), None);
        assert_eq!(find_unquoted(b"\"a\\", b','), None);
        assert_eq!(find_unquoted(b"a\"b\"c;d", b';'), Some(5));
        assert_eq!(find_unquoted(b"ab", b'"'), None);
    }

    /// The definition, one byte at a time.
    fn find_unquoted_bytewise(s: &[u8], sep: u8) -> Option<usize> {
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, &b) in s.iter().enumerate() {
            if in_quotes {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_quotes = false;
                }
            } else if b == b'"' {
                in_quotes = true;
            } else if b == sep {
                return Some(i);
            }
        }
        None
    }

    proptest::proptest! {
        #[test]
        fn find_unquoted_agrees_with_its_bytewise_definition(
            s in proptest::collection::vec(
                proptest::sample::select(b"ab;,\"\\ ".to_vec()),
                0..80,
            ),
            sep in proptest::sample::select(b";,\"a".to_vec()),
        ) {
            proptest::prop_assert_eq!(find_unquoted(&s, sep), find_unquoted_bytewise(&s, sep));
        }
    }
}
