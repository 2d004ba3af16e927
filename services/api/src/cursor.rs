//! Opaque keyset cursors of `GET /api/images`.
//!
//! A cursor names the last image of a page by its sort key and id, and the sort it
//! belongs to: `v1.<sort>.<bytes>.<id>`, hex-encoded so clients treat it as opaque.
//! The next page continues strictly after that key, so images added or deleted
//! meanwhile never make a page repeat or skip one that was there all along.

use crate::model::images::Sort;

/// Where the previous page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The sort the cursor belongs to.
    pub sort: Sort,
    /// `bytes` of the last image (0 for the id orders).
    pub bytes: i64,
    /// `id` of the last image.
    pub id: i64,
}

impl Cursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        hex::encode(format!(
            "v1.{}.{}.{}",
            self.sort.name(),
            self.bytes,
            self.id
        ))
    }

    /// Parses a cursor for `sort`; the error says why it is unusable.
    pub fn decode(text: &str, sort: Sort) -> Result<Cursor, String> {
        let bad = || "cursor is not one this server issued".to_string();
        if text.len() > 200 {
            return Err(bad());
        }
        let raw = hex::decode(text).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let parts: Vec<&str> = raw.split('.').collect();
        let [v, s, bytes, id] = parts.as_slice() else {
            return Err(bad());
        };
        if *v != "v1" {
            return Err(bad());
        }
        if *s != sort.name() {
            return Err(format!(
                "cursor belongs to sort `{s}`, not `{}`; start again without a cursor",
                sort.name()
            ));
        }
        Ok(Cursor {
            sort,
            bytes: bytes.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let c = Cursor {
            sort: Sort::Largest,
            bytes: 1234,
            id: 99,
        };
        let text = c.encode();
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(Cursor::decode(&text, Sort::Largest), Ok(c));
        let err = Cursor::decode(&text, Sort::Newest).unwrap_err();
        assert!(err.contains("sort `largest`"), "{err}");
        for bad in [
            "",
            "zz",
            &hex::encode("v2.largest.1.2"),
            &hex::encode("v1.largest.x.2"),
            &"a".repeat(400),
        ] {
            assert!(Cursor::decode(bad, Sort::Largest).is_err(), "{bad}");
        }
    }
}
