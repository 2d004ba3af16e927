//! The SHA-256 of an image's bytes, as the pipeline writes it everywhere: 64 lowercase
//! hex digits (blob names, object keys, event fields, database keys).

use std::fmt;
use std::str::FromStr;

use sha2::Digest;

/// A SHA-256 digest; displays as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

/// A text that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sha256 {0:?} is not 64 lowercase hex digits")]
pub struct InvalidSha256(pub String);

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256 {
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    /// Lowercase hex SHA-256 of `bytes`: `Sha256::of(bytes).to_string()`.
    pub fn hex(bytes: &[u8]) -> String {
        Sha256::of(bytes).to_string()
    }

    /// Whether `text` is 64 lowercase hex digits (upper case is refused: names and keys
    /// are compared as text).
    pub fn is_valid(text: &str) -> bool {
        text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// Parses 64 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Sha256, InvalidSha256> {
        if !Sha256::is_valid(text) {
            return Err(InvalidSha256(text.to_owned()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| InvalidSha256(text.to_owned()))?;
        Ok(Sha256(out))
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for Sha256 {
    fn from(bytes: [u8; 32]) -> Sha256 {
        Sha256(bytes)
    }
}

impl FromStr for Sha256 {
    type Err = InvalidSha256;

    fn from_str(s: &str) -> Result<Sha256, InvalidSha256> {
        Sha256::parse(s)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the digest's length.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digests_display_as_lowercase_hex_and_parse_back() {
        assert_eq!(Sha256::hex(b"abc"), ABC);
        assert_eq!(Sha256::of(b"abc").to_string(), ABC);
        assert_eq!(Sha256::parse(ABC), Ok(Sha256::of(b"abc")));
        assert_eq!(ABC.parse::<Sha256>(), Ok(Sha256::of(b"abc")));
    }

    #[test]
    fn only_64_lowercase_hex_digits_parse() {
        assert!(Sha256::is_valid(ABC));
        for bad in [
            "",
            &ABC[..63],
            &ABC.to_uppercase(),
            "../../etc/passwd",
            &format!("{ABC}0"),
            &ABC.replace('a', "g"),
        ] {
            assert!(!Sha256::is_valid(bad), "{bad}");
            assert!(Sha256::parse(bad).is_err(), "{bad}");
        }
    }
}
