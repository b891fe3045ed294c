//! Decimal text of integers on the stack: stream ids and the numbers sent
//! to replicas are formatted on every command, without `fmt`.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_to_string() {
        for v in [0, 7, 10, 12345, u64::MAX] {
            assert_eq!(&*Decimal::of(v), v.to_string().as_bytes());
        }
    }
}
