//! Image URLs in CSS declarations: every `url(...)` (and every URL of an `image-set()`)
//! in the value of an image-bearing property ([`IMAGE_PROPERTIES`]), for inline `style`
//! attributes here and for `<style>` blocks and stylesheets in `css`.
//!
//! A small scanner, not a CSS parser: declarations are split on `;` outside quotes and
//! parentheses, and `url()` tokens are read quoted (`"..."`, `'...'`, with `\` escapes)
//! or bare; the quoted strings of `image-set()` / `-webkit-image-set()` are URLs too.
//! Anything malformed is skipped, never an error.

/// Properties whose values hold images (vendor-prefixed `mask` forms included). Other
/// properties (`src` of `@font-face`, `cursor`, `filter`...) are not images, and
/// neither are `border-image` slices (decoration cut into nine pieces).
pub const IMAGE_PROPERTIES: [&str; 13] = [
    "background",
    "background-image",
    "content",
    "list-style",
    "list-style-image",
    "mask",
    "mask-image",
    "-webkit-mask",
    "-webkit-mask-image",
    "mask-border",
    "mask-border-source",
    "-webkit-mask-box-image",
    "-webkit-mask-box-image-source",
];

/// The image URLs of the image-bearing declarations of a declaration list (an inline
/// `style`, or a rule's body), in order.
pub fn background_urls(style: &str) -> Vec<String> {
    let mut out = Vec::new();
    for decl in declarations(style) {
        let Some((prop, value)) = decl.split_once(':') else {
            continue;
        };
        let prop = prop.trim().to_ascii_lowercase();
        if IMAGE_PROPERTIES.contains(&prop.as_str()) {
            out.extend(urls(value));
            out.extend(image_set_strings(value));
        }
    }
    out
}

/// Quoted URL strings directly inside `image-set(...)` / `-webkit-image-set(...)`
/// (`image-set("a.png" 1x, "b.png" 2x)`); their `url()` forms are found by [`urls`].
fn image_set_strings(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = value.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("image-set(") {
        let start = from + i + "image-set(".len();
        let (mut depth, mut quote, mut escaped, mut cur) = (0usize, None::<char>, false, None);
        let mut end = value.len();
        for (j, c) in value[start..].char_indices() {
            if escaped {
                escaped = false;
                if let Some(s) = cur.as_mut() {
                    String::push(s, c);
                }
                continue;
            }
            match (quote, c) {
                (Some(_), '\\') => escaped = true,
                (Some(q), c) if c == q => {
                    quote = None;
                    if let Some(s) = cur.take().filter(|s: &String| !s.is_empty()) {
                        if depth == 0 {
                            out.push(s);
                        }
                    }
                }
                (Some(_), c) => {
                    if let Some(s) = cur.as_mut() {
                        s.push(c);
                    }
                }
                (None, '"' | '\'') => {
                    quote = Some(c);
                    cur = Some(String::new());
                }
                (None, '(') => depth += 1,
                (None, ')') if depth == 0 => {
                    end = start + j;
                    break;
                }
                (None, ')') => depth -= 1,
                _ => {}
            }
        }
        from = end.max(start);
    }
    out
}

/// Splits a declaration list on `;` outside quotes and parentheses.
pub(crate) fn declarations(style: &str) -> Vec<&str> {
    split_outside(style, &[';'])
}

/// Splits `text` on any of `separators` where they stand outside quotes and
/// parentheses (a `;` inside `url("a;b")` separates nothing). Shared by inline
/// styles and stylesheets.
pub(crate) fn split_outside<'a>(text: &'a str, separators: &[char]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut escaped, mut start) = (0usize, None::<char>, false, 0);
    for (i, c) in text.char_indices() {
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
            (None, c) if depth == 0 && separators.contains(&c) => {
                out.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// Every `url(...)` token in a declaration value.
pub(crate) fn urls(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = next_url_token(&value[from..]) {
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

/// Where the next `url(` outside a quoted string starts (`content: "url(x)"` is text).
fn next_url_token(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'u' | b'U'
                if bytes.len() - i >= 4 && bytes[i..i + 4].eq_ignore_ascii_case(b"url(") =>
            {
                return Some(i);
            }
            _ => i += 1,
        }
    }
    None
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
            ("content: url(x.png)", &["x.png"]),
            ("content: \"url(text.png)\" url(real.png)", &["real.png"]),
            ("content: 'it\\'s url(text.png)'", &[]),
            ("list-style: square url(dot.svg) inside", &["dot.svg"]),
            ("list-style-image: url(dot.png)", &["dot.png"]),
            ("mask-image: url(m.svg)", &["m.svg"]),
            ("-webkit-mask-image: url(m.svg)", &["m.svg"]),
            (
                "background-image: image-set(\"a.avif\" type(\"image/avif\"), 'b.jpg' 1x)",
                &["a.avif", "b.jpg"],
            ),
            (
                "background-image: -webkit-image-set(url(a.png) 1x, \"b.png\" 2x)",
                &["a.png", "b.png"],
            ),
            ("cursor: url(c.cur), auto", &[]),
            ("src: url(font.woff2)", &[]),
            ("filter: url(#blur)", &[]),
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
