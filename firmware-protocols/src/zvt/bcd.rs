//! Packed BCD numbers and the `F0`–`F9` nibble length prefixes of LLVAR and
//! LLLVAR fields.

/// Decodes packed BCD (two decimal digits per byte, most significant first).
/// Returns `None` if any nibble is not a decimal digit or the value overflows.
pub fn decode_bcd(bytes: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for &byte in bytes {
        for nibble in [byte >> 4, byte & 0x0F] {
            if nibble > 9 {
                return None;
            }
            value = value.checked_mul(10)?.checked_add(u64::from(nibble))?;
        }
    }
    Some(value)
}

/// Encodes `value` as `width` bytes of packed BCD, or `None` if it does not
/// fit in `2 * width` digits.
pub fn encode_bcd(mut value: u64, width: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; width];
    for byte in out.iter_mut().rev() {
        let low = (value % 10) as u8;
        value /= 10;
        let high = (value % 10) as u8;
        value /= 10;
        *byte = (high << 4) | low;
    }
    (value == 0).then_some(out)
}

/// Encodes `value` as packed BCD into a fixed-size array.
pub fn encode_bcd_array<const N: usize>(value: u64) -> Option<[u8; N]> {
    encode_bcd(value, N).and_then(|bytes| bytes.try_into().ok())
}

/// Reads a variable-length prefix of `digits` bytes, each `0xF0 | digit`.
pub fn decode_var_length(bytes: &[u8]) -> Option<usize> {
    let mut len = 0usize;
    for &byte in bytes {
        if byte & 0xF0 != 0xF0 || byte & 0x0F > 9 {
            return None;
        }
        len = len * 10 + usize::from(byte & 0x0F);
    }
    Some(len)
}

/// Writes `len` as a `digits`-byte `F0`–`F9` prefix, or `None` if too large.
pub fn encode_var_length(len: usize, digits: usize, out: &mut Vec<u8>) -> Option<()> {
    let mut prefix = vec![0xF0u8; digits];
    let mut rest = len;
    for byte in prefix.iter_mut().rev() {
        *byte = 0xF0 | (rest % 10) as u8;
        rest /= 10;
    }
    if rest != 0 {
        return None;
    }
    out.extend_from_slice(&prefix);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_round_trip() {
        assert_eq!(
            decode_bcd(&[0x00, 0x00, 0x00, 0x00, 0x10, 0x00]),
            Some(1000)
        );
        assert_eq!(encode_bcd(978, 2), Some(vec![0x09, 0x78]));
        assert_eq!(encode_bcd(1_000_000, 3), None);
        assert_eq!(decode_bcd(&[0xFF, 0xFF]), None);
        assert_eq!(encode_bcd_array::<3>(123_456), Some([0x12, 0x34, 0x56]));
    }

    #[test]
    fn var_length_round_trip() {
        assert_eq!(decode_var_length(&[0xF1, 0xF7]), Some(17));
        assert_eq!(decode_var_length(&[0xF0, 0xF7, 0xF3]), Some(73));
        assert_eq!(decode_var_length(&[0xF1, 0x17]), None);
        assert_eq!(decode_var_length(&[0xFA]), None);
        let mut out = Vec::new();
        encode_var_length(40, 3, &mut out).unwrap();
        assert_eq!(out, [0xF0, 0xF4, 0xF0]);
        assert_eq!(encode_var_length(100, 2, &mut out), None);
    }
}
