//! SVG: text that opens (after an optional BOM, XML declaration, comments, processing
//! instructions and doctype) with an `<svg` root element. No DOM: a small tokenizer
//! reads the prolog and the root element's attributes.
//!
//! Refused: any `<!ENTITY` declaration (the billion-laughs expansion bomb and external
//! entities), a malformed root element, and a document that does not end with the
//! root's closing tag (truncation). Dimensions come from `width`/`height` (unitless,
//! `px`, or absolute units converted at 96 dpi) or the `viewBox`; with neither the SVG
//! has no intrinsic size and reports 0x0.

use super::Rejection;
use imgcrawl_events::Format;
use imgcrawl_events::RejectReason;

const F: Format = Format::Svg;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The root element's attributes and where its start tag ends.
struct Root<'a> {
    attrs: Vec<(&'a str, &'a str)>,
    self_closing: bool,
    end: usize,
}

/// Offset of the `<svg` root start tag after the prolog, or `None` if the bytes do not
/// look like an SVG document.
pub(crate) fn find_root(b: &[u8]) -> Option<usize> {
    let mut i = if b.starts_with(BOM) { BOM.len() } else { 0 };
    loop {
        i += b
            .get(i..)?
            .iter()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
        let rest = b.get(i..)?;
        if rest.starts_with(b"<?") {
            i += 2 + find(&rest[2..], b"?>")? + 2;
        } else if rest.starts_with(b"<!--") {
            i += 4 + find(&rest[4..], b"-->")? + 3;
        } else if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case(b"<!doctype") {
            i += 9 + doctype_len(&rest[9..])?;
        } else if rest.starts_with(b"<svg")
            && matches!(rest.get(4), Some(c) if c.is_ascii_whitespace() || *c == b'>' || *c == b'/')
        {
            return Some(i);
        } else {
            return None;
        }
    }
}

/// Length of a doctype body up to and including its closing `>`, skipping quoted
/// strings and an internal subset in `[...]`.
fn doctype_len(b: &[u8]) -> Option<usize> {
    let (mut quote, mut subset) = (None, false);
    for (i, &c) in b.iter().enumerate() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(c),
            (None, b'[') => subset = true,
            (None, b']') => subset = false,
            (None, b'>') if !subset => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Validates the document; returns its nominal `(width, height)`.
pub(crate) fn check(b: &[u8]) -> Result<(u32, u32), Rejection> {
    let Some(start) = find_root(b) else {
        return Err(Rejection::corrupt(F, "no <svg> root element"));
    };
    if b.windows(8).any(|w| w.eq_ignore_ascii_case(b"<!ENTITY")) {
        let detail = "svg: declares an xml entity (possible billion-laughs expansion); refused";
        return Err(Rejection::new(RejectReason::DecodeFailed, detail));
    }
    let root = parse_root(b, start + 4)?;
    if !root.self_closing && !ends_with_root_close(&b[root.end..]) {
        return Err(Rejection::truncated(F, "no closing </svg> tag at the end"));
    }
    Ok(dimensions(&root.attrs))
}

/// Parses the attributes of the root start tag from `i` (just after `<svg`).
fn parse_root(b: &[u8], mut i: usize) -> Result<Root<'_>, Rejection> {
    let cut = || Rejection::truncated(F, "root element cut off");
    let bad = |what: &str| Rejection::corrupt(F, format_args!("malformed root element: {what}"));
    let mut attrs = Vec::new();
    loop {
        i += b
            .get(i..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
        match b.get(i) {
            None => return Err(cut()),
            Some(b'>') => {
                return Ok(Root {
                    attrs,
                    self_closing: false,
                    end: i + 1,
                })
            }
            Some(b'/') if b.get(i + 1) == Some(&b'>') => {
                return Ok(Root {
                    attrs,
                    self_closing: true,
                    end: i + 2,
                })
            }
            Some(_) => {}
        }
        let name_len = b[i..]
            .iter()
            .take_while(|&&c| !c.is_ascii_whitespace() && !b"=>/<\"'".contains(&c))
            .count();
        if name_len == 0 {
            return Err(bad("expected an attribute name"));
        }
        let name = std::str::from_utf8(&b[i..i + name_len])
            .map_err(|_| bad("attribute name is not utf-8"))?;
        i += name_len;
        i += b
            .get(i..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
        if b.get(i) != Some(&b'=') {
            return Err(if i >= b.len() {
                cut()
            } else {
                bad("expected '=' after an attribute name")
            });
        }
        i += 1;
        i += b
            .get(i..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
        let quote = match b.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => q,
            Some(_) => return Err(bad("attribute value is not quoted")),
            None => return Err(cut()),
        };
        let len = b
            .get(i + 1..)
            .unwrap_or_default()
            .iter()
            .position(|&c| c == quote)
            .ok_or_else(cut)?;
        let value = std::str::from_utf8(&b[i + 1..i + 1 + len])
            .map_err(|_| bad("attribute value is not utf-8"))?;
        attrs.push((name, value));
        i += len + 2;
    }
}

/// Whether the text after the root start tag ends with `</svg>` (optionally followed
/// by whitespace and comments).
fn ends_with_root_close(tail: &[u8]) -> bool {
    let mut t = tail.trim_ascii_end();
    while t.ends_with(b"-->") {
        let Some(open) = t.windows(4).rposition(|w| w == b"<!--") else {
            return false;
        };
        t = t[..open].trim_ascii_end();
    }
    let Some(body) = t.strip_suffix(b">") else {
        return false;
    };
    let Some(open) = body.windows(2).rposition(|w| w == b"</") else {
        return false;
    };
    let name = body[open + 2..].trim_ascii();
    name == b"svg" || name.ends_with(b":svg")
}

/// Nominal size from `width`, `height` and `viewBox` (aspect ratio fills a missing side).
fn dimensions(attrs: &[(&str, &str)]) -> (u32, u32) {
    let attr = |n: &str| attrs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let w = attr("width").and_then(length);
    let h = attr("height").and_then(length);
    let vb = attr("viewBox").and_then(view_box);
    let (w, h) = match (w, h, vb) {
        (Some(w), Some(h), _) => (w, h),
        (Some(w), None, Some((vw, vh))) => (w, w * vh / vw),
        (None, Some(h), Some((vw, vh))) => (h * vw / vh, h),
        (None, None, Some((vw, vh))) => (vw, vh),
        (w, h, None) => (w.unwrap_or(0.0), h.unwrap_or(0.0)),
    };
    (pixels(w), pixels(h))
}

/// A CSS length in pixels: unitless, `px`, or an absolute unit; relative units
/// (`%`, `em`, ...) give `None`.
fn length(s: &str) -> Option<f64> {
    let s = s.trim();
    let num = s.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
    let unit = s[num.len()..].to_ascii_lowercase();
    let factor = match unit.as_str() {
        "" | "px" => 1.0,
        "in" => 96.0,
        "cm" => 96.0 / 2.54,
        "mm" => 96.0 / 25.4,
        "q" => 96.0 / 101.6,
        "pt" => 96.0 / 72.0,
        "pc" => 16.0,
        _ => return None,
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * factor)
}

/// `viewBox="min-x min-y width height"` (whitespace and/or commas); width and height > 0.
fn view_box(s: &str) -> Option<(f64, f64)> {
    let nums: Vec<f64> = s
        .split(|c: char| c.is_ascii_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match nums[..] {
        [_, _, w, h] if w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0 => Some((w, h)),
        _ => None,
    }
}

/// Rounds a nominal length up to whole pixels (0 for nothing usable).
fn pixels(v: f64) -> u32 {
    if v.is_finite() && v > 0.0 {
        v.ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

#[cfg(test)]
#[path = "svg_tests.rs"]
mod tests;
