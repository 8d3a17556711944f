//! CRC-16/KERMIT as used by the ZVT serial transport.
//!
//! Polynomial 0x1021 in reflected form (0x8408), initial value 0, no final
//! XOR. ZVT computes it over the *unstuffed* APDU followed by the ETX byte and
//! transmits it low byte first.

const POLY_REFLECTED: u16 = 0x8408;

/// Continues a CRC-16/KERMIT computation over `bytes`, starting from `crc`.
pub fn crc16_kermit_update(mut crc: u16, bytes: &[u8]) -> u16 {
    for &byte in bytes {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// CRC-16/KERMIT of `bytes`.
pub fn crc16_kermit(bytes: &[u8]) -> u16 {
    crc16_kermit_update(0, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_check_value() {
        // The catalogue check value of CRC-16/KERMIT.
        assert_eq!(crc16_kermit(b"123456789"), 0x2189);
    }

    #[test]
    fn empty_input_is_initial_value() {
        assert_eq!(crc16_kermit(&[]), 0);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data = b"\x06\x00\x06\x12\x34\x56\xba\x09\x78\x03";
        let (head, tail) = data.split_at(4);
        assert_eq!(
            crc16_kermit_update(crc16_kermit(head), tail),
            crc16_kermit(data)
        );
    }
}
