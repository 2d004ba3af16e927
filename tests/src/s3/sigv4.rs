//! A minimal AWS Signature Version 4 signer for raw S3 requests from tests (create a
//! bucket, HEAD an object and see the headers exactly as the server sends them),
//! independent of the `object_store` client the code under test uses.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Who signs, and for which region.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// Access key id.
    pub access_key: &'a str,
    /// Secret access key.
    pub secret_key: &'a str,
    /// Region in the credential scope.
    pub region: &'a str,
}

/// A request to sign; `path` and `query` are raw (unencoded).
#[derive(Debug, Clone, Copy)]
pub struct Unsigned<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// `host[:port]` as sent in the Host header.
    pub host: &'a str,
    /// Absolute path, e.g. `/bucket/key`.
    pub path: &'a str,
    /// Query parameters.
    pub query: &'a [(&'a str, &'a str)],
    /// The request body.
    pub body: &'a [u8],
}

/// A signed request: the encoded path-and-query to send and the headers to add.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Encoded path and query, exactly as signed.
    pub path_and_query: String,
    /// `x-amz-date`, `x-amz-content-sha256` and `authorization`.
    pub headers: Vec<(&'static str, String)>,
}

/// Percent-encodes everything but the unreserved characters (and `/` if `keep_slash`).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    imgcrawl_events::Sha256::hex(data)
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

impl Signer<'_> {
    /// Signs `req` at `now` (header-based SigV4 for service `s3`, signed payload).
    pub fn sign(&self, req: &Unsigned<'_>, now: DateTime<Utc>) -> Signed {
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let day = now.format("%Y%m%d").to_string();
        let payload = sha256_hex(req.body);
        let path = uri_encode(req.path, true);
        let mut query: Vec<(String, String)> = req
            .query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        query.sort();
        let query = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let signed_headers = "host;x-amz-content-sha256;x-amz-date";
        let canonical = format!(
            "{}\n{path}\n{query}\nhost:{}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\n{signed_headers}\n{payload}",
            req.method, req.host
        );
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let mut key = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            day.as_bytes(),
        );
        for part in [self.region, "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key
        );
        let path_and_query = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        Signed {
            path_and_query,
            headers: vec![
                ("x-amz-date", amz_date),
                ("x-amz-content-sha256", payload),
                ("authorization", authorization),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The "GET Bucket Lifecycle" and "Get Bucket (List Objects)" examples of the AWS
    /// documentation on header-based SigV4 for S3 (signed headers host,
    /// x-amz-content-sha256, x-amz-date; empty body).
    #[test]
    fn signatures_match_the_documented_examples() {
        let signer = Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
        };
        let now = Utc
            .with_ymd_and_hms(2013, 5, 24, 0, 0, 0)
            .single()
            .expect("date");
        let sig = |query: &[(&str, &str)]| {
            let req = Unsigned {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/",
                query,
                body: b"",
            };
            let signed = signer.sign(&req, now);
            let auth = signed.headers[2].1.clone();
            assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="), "{auth}");
            auth.rsplit('=').next().unwrap_or_default().to_string()
        };
        assert_eq!(
            sig(&[("lifecycle", "")]),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
        assert_eq!(
            sig(&[("prefix", "J"), ("max-keys", "2")]),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn queries_are_encoded_and_sorted() {
        let signer = Signer {
            access_key: "a",
            secret_key: "b",
            region: "r",
        };
        let req = Unsigned {
            method: "GET",
            host: "h",
            path: "/b k/x",
            query: &[("prefix", "images/"), ("list-type", "2")],
            body: b"",
        };
        let signed = signer.sign(&req, Utc::now());
        assert_eq!(
            signed.path_and_query,
            "/b%20k/x?list-type=2&prefix=images%2F"
        );
    }
}
