//! Image URLs in inline `style` attributes: every `url(...)` in `background` and
//! `background-image` declarations (several layers, `image-set()` included).
//!
//! A small scanner, not a CSS parser: declarations are split on `;` outside quotes and
//! parentheses, and `url()` tokens are read quoted (`"..."`, `'...'`, with `\` escapes)
//! or bare. Anything malformed is skipped, never an error.

/// The `url(...)` values of `background` / `background-image` declarations in `style`.
pub fn background_urls(style: &str) -> Vec<String> {
    let mut out = Vec::new();
    for decl in declarations(style) {
        let Some((prop, value)) = decl.split_once(':') else {
            continue;
        };
        let prop = prop.trim().to_ascii_lowercase();
        if prop == "background" || prop == "background-image" {
            out.extend(urls(value));
        }
    }
    out
}

/// Splits a declaration list on `;` outside quotes and parentheses.
fn declarations(style: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut escaped, mut start) = (0usize, None::<char>, false, 0);
    for (i, c) in style.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (_, '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth = depth.saturating_sub(1),
            (None, ';') if depth == 0 => {
                out.push(&style[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&style[start..]);
    out
}

/// Every `url(...)` token in a declaration value.
fn urls(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = value.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("url(") {
        let start = from + i + 4;
        // `url(` must not be the tail of another identifier (e.g. `myurl(`).
        let preceded = value[..from + i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let (url, end) = read_url(&value[start..]);
        from = start + end;
        if let (false, Some(u)) = (preceded, url) {
            if !u.is_empty() {
                out.push(u);
            }
        }
    }
    out
}

/// Reads a url token's content after `url(`; returns it (if well formed) and the bytes
/// consumed.
fn read_url(s: &str) -> (Option<String>, usize) {
    let trimmed = s.trim_start();
    let lead = s.len() - trimmed.len();
    let mut chars = trimmed.char_indices();
    match chars.next() {
        Some((_, q @ ('"' | '\''))) => {
            let mut val = String::new();
            let mut escaped = false;
            for (i, c) in chars {
                match (escaped, c) {
                    (true, c) => {
                        val.push(c);
                        escaped = false;
                    }
                    (false, '\\') => escaped = true,
                    (false, c) if c == q => {
                        let rest = &trimmed[i + 1..];
                        let close = rest.find(')');
                        let ok = close.is_some_and(|j| rest[..j].trim().is_empty());
                        let used = lead + i + 1 + close.map_or(0, |j| j + 1);
                        return (ok.then_some(val), used);
                    }
                    (false, c) => val.push(c),
                }
            }
            (None, s.len())
        }
        Some(_) => match trimmed.find(')') {
            Some(j) => {
                let v = trimmed[..j].trim().replace('\\', "");
                (Some(v), lead + j + 1)
            }
            None => (None, s.len()),
        },
        None => (None, s.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_table() {
        let cases: &[(&str, &[&str])] = &[
            ("background-image: url(a.jpg)", &["a.jpg"]),
            ("background-image:url('a b.jpg')", &["a b.jpg"]),
            ("BACKGROUND-IMAGE: URL(\"a.jpg\")", &["a.jpg"]),
            ("background: #fff url( a.jpg ) no-repeat", &["a.jpg"]),
            (
                "background-image: url(a.jpg), url(\"b.png\")",
                &["a.jpg", "b.png"],
            ),
            (
                "color: red; background-image: url(a.jpg); margin: 0",
                &["a.jpg"],
            ),
            ("background-image: url('a;b.jpg'); color: red", &["a;b.jpg"]),
            ("background-image: url('it\\'s.jpg')", &["it's.jpg"]),
            (
                "background-image: image-set(url(a.png) 1x, url(b.png) 2x)",
                &["a.png", "b.png"],
            ),
            (
                "background-image: linear-gradient(red, blue), url(c.jpg)",
                &["c.jpg"],
            ),
            (
                "background-image: url(data:image/png;base64,AAA=)",
                &["data:image/png;base64,AAA="],
            ),
            ("border-image: url(x.png)", &[]),
            ("content: url(x.png)", &[]),
            ("background-image: myurl(x.png)", &[]),
            ("background-image: url()", &[]),
            ("background-image: url(", &[]),
            ("background-image: url('unterminated", &[]),
            ("background-image: url('a.jpg' junk)", &[]),
            ("background-image", &[]),
            ("", &[]),
        ];
        for (style, want) in cases {
            assert_eq!(background_urls(style), *want, "{style:?}");
        }
    }
}
