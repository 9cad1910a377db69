//! Arbitrary-length decimal numbers, compared without converting them.

use std::cmp::Ordering;

/// Orders two runs of ASCII digits by their value, however long; leading
/// zeros are ignored and an empty run is zero.
pub(crate) fn cmp_decimal(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Whether a run of ASCII digits is zero (or empty).
pub(crate) fn is_zero(digits: &str) -> bool {
    digits.bytes().all(|c| c == b'0')
}

/// The length of the run of ASCII digits `s` starts with.
pub(crate) fn digits_len(s: &[u8]) -> usize {
    s.iter().take_while(|c| c.is_ascii_digit()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_order() {
        assert_eq!(cmp_decimal("0010", "9"), Ordering::Greater);
        assert_eq!(cmp_decimal("", "000"), Ordering::Equal);
        assert_eq!(
            cmp_decimal("123456789012345678901234567890", "123456789012345678901234567891"),
            Ordering::Less
        );
        assert!(is_zero("000") && is_zero("") && !is_zero("010"));
        assert_eq!(digits_len(b"123a4"), 3);
    }
}
