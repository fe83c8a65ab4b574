//! Type fingerprints: 64-bit FNV-1a hashes computed at compile time.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The fingerprint of a name.
pub const fn fingerprint_str(s: &str) -> u64 {
    let bytes = s.as_bytes();
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// Combines fingerprints in order (the order matters).
pub const fn fingerprint_combine(parts: &[u64]) -> u64 {
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < parts.len() {
        let mut b = 0;
        while b < 8 {
            h ^= (parts[i] >> (b * 8)) & 0xff;
            h = h.wrapping_mul(FNV_PRIME);
            b += 1;
        }
        i += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_content_matter() {
        let a = fingerprint_str("a");
        let b = fingerprint_str("b");
        assert_ne!(a, b);
        assert_ne!(fingerprint_combine(&[a, b]), fingerprint_combine(&[b, a]));
        assert_eq!(fingerprint_combine(&[a, b]), fingerprint_combine(&[a, b]));
    }
}
