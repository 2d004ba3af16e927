//! [`redact`]: a URL as it may be printed or logged, with every credential removed.
//! The one copy: the bus (NATS URLs), the read model, the index, the API, the HA
//! watcher and the CLI (PostgreSQL URLs) all print URLs through it.
//!
//! A password becomes `***` (`postgres://app:***@db/x`); a user without a password
//! is a role name in a PostgreSQL URL (kept: `psql` needs it) and may be a token
//! anywhere else (`nats://s3cr3t@host`), so it becomes `***` there; query parameters
//! that carry secrets (`password`, `sslpassword`, `token`, `secret`, `key`...) keep
//! their name and lose their value. A string that does not parse as a URL with a host
//! is never echoed: only what follows its last `@` (the host part) is kept, and only
//! when there is such an `@`; otherwise `<unparsable url>`.

use url::Url;

/// What an unparsable URL without a host part prints as.
pub const UNPARSABLE: &str = "<unparsable url>";

/// Query parameters whose values are secrets (matched case-insensitively, by substring).
const SECRET_PARAMS: [&str; 5] = ["pass", "token", "secret", "key", "auth"];

/// `url` with its credentials replaced by `***`; never returns a password.
pub fn redact(url: &str) -> String {
    let url = url.trim();
    match Url::parse(url) {
        Ok(u) if u.has_host() && !u.cannot_be_a_base() => redact_parsed(u),
        _ => redact_unparsable(url),
    }
}

/// A comma-separated list of URLs (NATS server lists), each [`redact`]ed.
pub fn redact_list(urls: &str) -> String {
    urls.split(',').map(redact).collect::<Vec<_>>().join(",")
}

fn redact_parsed(mut u: Url) -> String {
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    } else if !u.username().is_empty() && !matches!(u.scheme(), "postgres" | "postgresql") {
        let _ = u.set_username("***");
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let secret = SECRET_PARAMS.iter().any(|s| lower.contains(s));
                let v = if secret { "***".into() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Keeps only what follows the last `@` (scheme kept, query and fragment dropped).
fn redact_unparsable(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return UNPARSABLE.to_string();
    };
    let scheme = url
        .find("://")
        .filter(|i| *i < at)
        .map_or("", |i| &url[..i + 3]);
    let host = &url[at + 1..];
    let host = host.split(['?', '#']).next().unwrap_or_default();
    format!("{scheme}***@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_shows(secret: &str, url: &str) -> String {
        let r = redact(url);
        assert!(!r.contains(secret), "{url} -> {r}");
        r
    }

    #[test]
    fn passwords_become_stars_and_the_rest_stays() {
        let r = never_shows("secret", "postgres://u:secret@db.internal:6543/imgcrawl");
        assert_eq!(r, "postgres://u:***@db.internal:6543/imgcrawl");
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(
            redact("postgres://imgcrawl@h/db"),
            "postgres://imgcrawl@h/db"
        );
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        // a lone user may be a nats token
        assert_eq!(never_shows("tok", "tls://tok@b:4222"), "tls://***@b:4222");
    }

    #[test]
    fn secret_query_parameters_lose_their_values() {
        let r = never_shows(
            "hunter2",
            "postgres://db/x?sslmode=verify-full&password=hunter2&sslpassword=hunter2",
        );
        assert!(r.contains("sslmode=verify-full"), "{r}");
        never_shows("abc123", "https://h/p?access_token=abc123");
        never_shows("abc123", "s3://bucket?secret_access_key=abc123");
    }

    #[test]
    fn unparsable_urls_never_echo_their_credentials() {
        // a password with a slash: the url crate reads `pa` as a port and fails
        let r = never_shows("ss", "postgres://u:pa/ss@h:5432/db");
        assert_eq!(r, "postgres://***@h:5432/db");
        // a scheme-less nats address (parses as a cannot-be-a-base url)
        assert_eq!(never_shows("pw", "alice:pw@host:4222"), "***@host:4222");
        // a libpq key-value string has no host part to keep
        assert_eq!(never_shows("pw", "host=db password=pw"), UNPARSABLE);
        assert_eq!(never_shows("secret", "::secret::"), UNPARSABLE);
        assert_eq!(
            never_shows("pw", "postgres://u:pw@[::1/db?x=pw"),
            "postgres://***@[::1/db"
        );
        // a password containing `@`: everything up to the last one goes
        never_shows("p@ss", "postgres://u:p@ss@h:bad/db");
        assert_eq!(redact(""), UNPARSABLE);
    }

    #[test]
    fn lists_are_redacted_one_by_one() {
        assert_eq!(
            redact_list("nats://alice:pw@a:4222, tls://tok@b:4222,nats://c:4222"),
            "nats://alice:***@a:4222,tls://***@b:4222,nats://c:4222"
        );
        assert_eq!(redact_list("nats://h:1/p@x"), "nats://h:1/p@x");
    }
}
