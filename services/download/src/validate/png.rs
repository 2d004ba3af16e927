//! PNG: walk every chunk, verify its CRC, require `IHDR` first, image data, and `IEND`.

use super::bytes::{be32, fourcc};
use super::Rejection;
use imgcrawl_events::Format;

/// The 8-byte PNG signature.
pub(crate) const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

const F: Format = Format::Png;

/// Walks the chunks from the signature to `IEND`; bytes after `IEND` are ignored.
pub(crate) fn check(b: &[u8]) -> Result<(), Rejection> {
    let mut pos = SIGNATURE.len();
    let mut first = true;
    let mut has_data = false;
    loop {
        let Some(len) = be32(b, pos) else {
            return Err(Rejection::truncated(F, "no IEND chunk"));
        };
        if len > 0x7FFF_FFFF {
            return Err(Rejection::corrupt(
                F,
                format_args!("chunk length {len} at offset {pos} is out of range"),
            ));
        }
        let data_end = pos + 8 + len as usize;
        let Some(kind) = b.get(pos + 4..pos + 8) else {
            return Err(Rejection::truncated(F, "chunk header cut off"));
        };
        let name = fourcc(kind);
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(Rejection::corrupt(
                F,
                format_args!("invalid chunk type {name:?} at offset {pos}"),
            ));
        }
        let (Some(stored), Some(body)) = (be32(b, data_end), b.get(pos + 4..data_end)) else {
            return Err(Rejection::truncated(
                F,
                format_args!("{name} chunk cut off"),
            ));
        };
        if crc32(body) != stored {
            return Err(Rejection::corrupt(
                F,
                format_args!("crc mismatch in {name} chunk at offset {pos}"),
            ));
        }
        if first && (kind != b"IHDR" || len != 13) {
            return Err(Rejection::corrupt(F, "first chunk is not a valid IHDR"));
        }
        first = false;
        match kind {
            b"IDAT" => has_data = true,
            b"IEND" if has_data => return Ok(()),
            b"IEND" => return Err(Rejection::corrupt(F, "no IDAT chunk before IEND")),
            _ => {}
        }
        pos = data_end + 4;
    }
}

/// The CRC-32 table (IEEE 802.3 polynomial, reflected), built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

/// CRC-32 as PNG (and zlib, and Ethernet) define it.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &byte in data {
        c = CRC_TABLE[((c ^ u32::from(byte)) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(crc32(b""), 0);
    }
}
