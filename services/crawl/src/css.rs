//! Image URLs and `@import`s of a whole stylesheet: a `<style>` block or an external
//! stylesheet (see `resources` for fetching those).
//!
//! Comments (`/* ... */`, and the `<!--` / `-->` tokens CSS ignores) are removed first,
//! so a commented-out `url()` yields nothing. The sheet is then cut into statements on
//! `;`, `{` and `}` outside quotes and parentheses: an `@import` statement names another
//! stylesheet, every other statement is read as a declaration (an image-bearing
//! property's `url()`s and `image-set()` strings, see [`crate::style`]). Selectors and
//! at-rule preludes (`a:hover`, `@media (min-width: 9em)`) are never image properties,
//! so nesting needs no parser. URLs are returned as written: the caller resolves them
//! against the stylesheet's own URL (or the page's base for a `<style>` block).

use crate::style::{background_urls, urls};

/// What a stylesheet refers to, URLs as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sheet {
    /// Image URLs, in order.
    pub images: Vec<String>,
    /// Stylesheets it `@import`s, in order.
    pub imports: Vec<String>,
}

/// Scans a stylesheet's text.
pub fn scan(css: &str) -> Sheet {
    let text = strip_comments(css);
    let mut sheet = Sheet::default();
    for stmt in statements(&text) {
        let stmt = stmt.trim();
        // `get`: byte 7 may fall inside a multi-byte character (found by the fuzz corpus)
        if stmt
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("@import"))
        {
            if let Some(u) = import_target(&stmt[7..]) {
                sheet.imports.push(u);
            }
        } else if !stmt.starts_with('@') {
            sheet.images.extend(background_urls(stmt));
        }
    }
    sheet
}

/// The URL of an `@import` prelude: `url(x)`, `url("x")` or `"x"`, then media queries.
fn import_target(rest: &str) -> Option<String> {
    let rest = rest.trim_start();
    let first = rest.chars().next()?;
    if first == '"' || first == '\'' {
        let mut val = String::new();
        let mut escaped = false;
        for c in rest[1..].chars() {
            match (escaped, c) {
                (true, c) => {
                    val.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, c) if c == first => return (!val.is_empty()).then_some(val),
                (false, c) => val.push(c),
            }
        }
        return None;
    }
    urls(rest).into_iter().next()
}

/// The text without comments; strings are kept as they are (a `/*` inside quotes is
/// not a comment).
fn strip_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    let mut quote: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        if let Some(q) = quote {
            if c == '\\' {
                let n = rest[1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&rest[..1 + n]);
                rest = &rest[1 + n..];
                continue;
            }
            if c == q || c == '\n' {
                quote = None;
            }
        } else if rest.starts_with("/*") {
            rest = rest[2..].find("*/").map_or("", |i| &rest[2 + i + 2..]);
            out.push(' ');
            continue;
        } else if rest.starts_with("<!--") || rest.starts_with("-->") {
            let n = if rest.starts_with("<!--") { 4 } else { 3 };
            rest = &rest[n..];
            out.push(' ');
            continue;
        } else if c == '"' || c == '\'' {
            quote = Some(c);
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Splits on `;`, `{` and `}` outside quotes and parentheses.
fn statements(text: &str) -> Vec<&str> {
    crate::style::split_outside(text, &[';', '{', '}'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_with_a_multibyte_character_near_its_start_does_not_panic() {
        // byte 7 inside "é": slicing at it used to panic (found by the fuzz corpus)
        assert_eq!(scan("@imporé url(a.png)").imports, Vec::<String>::new());
        assert_eq!(
            scan("a{background:url(x.png)}@imporé;").images,
            vec!["x.png".to_string()]
        );
    }

    #[test]
    fn a_stylesheet_with_every_form() {
        let css = include_str!("../fixtures/css/site.css");
        let s = scan(css);
        assert_eq!(
            s.images,
            [
                "img/hero.jpg",
                "img/tile.png",
                "/img/abs.webp",
                "img/bullet.svg",
                "img/before.png",
                "img/mask.svg",
                "img/webkit-mask.svg",
                "img/set-1x.avif",
                "img/set-2x.avif",
                "img/str-1x.jpg",
                "img/str-2x.jpg",
                "img/media.png",
                "img/nested.gif",
                "https://cdn.example.net/far.jpg",
                "img/list.png",
            ]
        );
        assert_eq!(s.imports, ["more.css", "print.css", "quoted.css"]);
    }

    #[test]
    fn nothing_from_comments_fonts_or_strings() {
        let css = r#"
            /* .x { background: url(commented.jpg) } */
            <!-- .y { background-image: url(cdo.jpg) } -->
            @font-face { font-family: X; src: url(font.woff2) format("woff2") }
            .q::after { content: "url(not-an-image.png)" }
            .c { cursor: url(pointer.cur), auto; filter: url(#f) }
            /* unterminated comment .z { background: url(late.jpg) }
        "#;
        let s = scan(css);
        assert_eq!(
            s.images,
            ["cdo.jpg"],
            "the CDO/CDC tokens are ignored, the rule between them is live CSS"
        );
        assert!(s.imports.is_empty());
    }

    #[test]
    fn malformed_sheets_do_not_panic() {
        for css in [
            "",
            "{",
            "}",
            "@import",
            "@import url(",
            "@import '",
            "a{background:url(",
            "a{background:url('x",
            "/*",
            "\"",
            "a { background: image-set(",
            "@IMPORT 'X.css'",
            "é{background:url(é.png)}",
        ] {
            let _ = scan(css);
        }
        assert_eq!(scan("@IMPORT 'X.css'").imports, ["X.css"]);
        assert_eq!(scan("é{background:url(é.png)}").images, ["é.png"]);
    }
}
