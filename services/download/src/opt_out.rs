//! Opt-outs: an image response whose `X-Robots-Tag` header carries one of the
//! configured directives (by default `noimageindex`, `noai` and `noimageai`, as
//! img2dataset honours) is rejected `opted_out` before its body is read.
//!
//! The header may be repeated and holds comma-separated directives, optionally scoped
//! to one crawler (`otherbot: noai`): a scoped value counts only when it names our
//! robots.txt product token (case-insensitively) or `*`.

/// Directives whose value after a colon is an argument, not a crawler's name.
const WITH_ARGUMENT: [&str; 4] = [
    "unavailable_after",
    "max-snippet",
    "max-image-preview",
    "max-video-preview",
];

/// The first of `directives` that `values` (the `X-Robots-Tag` header values) applies
/// to `agent`, if any.
pub fn opted_out<'a>(
    values: impl IntoIterator<Item = &'a str>,
    agent: &str,
    directives: &[String],
) -> Option<String> {
    for value in values {
        let mut rest = value.trim();
        if let Some((scope, after)) = rest.split_once(':') {
            let scope = scope.trim();
            let is_agent = !scope.contains(',')
                && !WITH_ARGUMENT.iter().any(|d| scope.eq_ignore_ascii_case(d));
            if is_agent {
                if !(scope == "*" || scope.eq_ignore_ascii_case(agent)) {
                    continue;
                }
                rest = after;
            }
        }
        for d in rest.split(',').map(str::trim) {
            if let Some(hit) = directives.iter().find(|w| w.eq_ignore_ascii_case(d)) {
                return Some(hit.to_ascii_lowercase());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        ["noimageindex", "noai", "noimageai"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn directives_are_found_in_any_value_and_any_case() {
        let d = defaults();
        assert_eq!(opted_out(["NoAI"], "imgcrawl", &d).as_deref(), Some("noai"));
        assert_eq!(
            opted_out(["nofollow", "noarchive, noimageindex"], "imgcrawl", &d).as_deref(),
            Some("noimageindex")
        );
        assert_eq!(opted_out(["noindex, nofollow"], "imgcrawl", &d), None);
        assert_eq!(opted_out(Vec::<&str>::new(), "imgcrawl", &d), None);
    }

    #[test]
    fn crawler_scoped_values_apply_only_to_us_or_everyone() {
        let d = defaults();
        assert_eq!(opted_out(["otherbot: noai"], "imgcrawl", &d), None);
        assert_eq!(
            opted_out(["ImgCrawl: noimageai"], "imgcrawl", &d).as_deref(),
            Some("noimageai")
        );
        assert_eq!(
            opted_out(["*: noai"], "imgcrawl", &d).as_deref(),
            Some("noai")
        );
        // a directive with an argument is not a crawler's name
        assert_eq!(
            opted_out(["unavailable_after: 2030-01-01, noai"], "imgcrawl", &d).as_deref(),
            Some("noai")
        );
    }

    #[test]
    fn an_empty_list_honours_nothing() {
        assert_eq!(opted_out(["noai"], "imgcrawl", &[]), None);
    }
}
