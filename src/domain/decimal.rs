//! Decimal text of integers, both ways: the hot paths (ids, scores,
//! counters sent to replicas and read back) format numbers on the stack
//! and read them without allocating or going through `fmt` / `str::parse`.

/// `u64` as decimal digits.
pub struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    pub fn of(value: u64) -> Decimal {
        let mut buf = [0u8; 20];
        let (mut n, mut start) = (value, buf.len());
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return Decimal { buf, start };
            }
        }
    }
}

impl AsRef<[u8]> for Decimal {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::ops::Deref for Decimal {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// The count written from `text[from]` up to the next space or the end,
/// and where it ends. None unless those bytes are 1..20 decimal digits that
/// fit a u64 (no sign, no spaces). Every command reads meta, so this skips
/// UTF-8 checks and `str::parse`, and walks slices (no index checks).
pub fn read_count(text: &[u8], from: usize) -> (Option<u64>, usize) {
    let rest = &text[from..];
    let digits = match rest.iter().position(|&b| b == b' ') {
        Some(len) => &rest[..len],
        None => rest,
    };
    // Up to 20 digits fit a u128 without overflow; longer is refused.
    let (mut n, mut digits_only) = (0u128, (1..=20).contains(&digits.len()));
    for &byte in digits {
        let digit = byte.wrapping_sub(b'0');
        digits_only &= digit <= 9;
        n = n.wrapping_mul(10).wrapping_add(u128::from(digit));
    }
    let count = u64::try_from(n).ok().filter(|_| digits_only);
    (count, from + digits.len())
}

/// `digits` as a count (see `read_count`), all of it.
pub fn parse_count(digits: &[u8]) -> Option<u64> {
    match read_count(digits, 0) {
        (n, end) if end == digits.len() => n,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_display() {
        for n in [0, 7, 10, 1_764_000_000_000, u64::MAX] {
            assert_eq!(&*Decimal::of(n), n.to_string().as_bytes());
            assert_eq!(parse_count(&Decimal::of(n)), Some(n));
        }
    }

    #[test]
    fn a_count_is_digits_only_and_fits_a_u64() {
        for bad in ["", "+5", "-1", "1 2", "1.5", "x", "18446744073709551616"] {
            assert_eq!(parse_count(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(read_count(b"k=12 rest", 2), (Some(12), 4));
    }
}
