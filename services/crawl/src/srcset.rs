//! `srcset` parsing, following the HTML standard's "parse a srcset attribute".
//!
//! A candidate's URL is a run of non-whitespace characters, so a URL may contain commas
//! (`a,b.jpg 2x` is one candidate); trailing commas end it (`a.jpg,b.jpg` is one URL but
//! `a.jpg, b.jpg` two). Descriptors are tokenised with parentheses kept together and
//! validated: at most one `w` (positive integer), `x` (non-negative float) or `h`
//! (positive integer, only with `w`); `w` and `x` are exclusive. A candidate with
//! invalid descriptors is dropped, as browsers do.

/// One image candidate of a `srcset`.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    /// The URL as written (not resolved).
    pub url: &'a str,
    /// The width descriptor (`480w`), if any.
    pub width: Option<u32>,
    /// The density descriptor (`2x`), if any.
    pub density: Option<f64>,
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r')
}

/// Parses a `srcset` attribute value into its valid candidates, in order.
pub fn parse(input: &str) -> Vec<Candidate<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        // Skip whitespace and commas between candidates.
        pos += input[pos..]
            .find(|c: char| !is_ws(c) && c != ',')
            .unwrap_or(input.len() - pos);
        if pos >= input.len() {
            return out;
        }
        let url_end = input[pos..].find(is_ws).map_or(input.len(), |i| pos + i);
        let raw_url = &input[pos..url_end];
        pos = url_end;
        if raw_url.ends_with(',') {
            let url = raw_url.trim_end_matches(',');
            if !url.is_empty() {
                out.push(Candidate {
                    url,
                    width: None,
                    density: None,
                });
            }
            continue;
        }
        let (descriptors, next) = tokenize_descriptors(input, pos);
        pos = next;
        if let Some(c) = descriptors_to_candidate(raw_url, &descriptors) {
            out.push(c);
        }
    }
}

/// The descriptor tokenizer: returns the descriptors and the position after them (past
/// the candidate's terminating comma).
fn tokenize_descriptors(input: &str, start: usize) -> (Vec<&str>, usize) {
    #[derive(PartialEq)]
    enum State {
        InDescriptor,
        InParens,
        After,
    }
    let mut descriptors = Vec::new();
    let skip = input[start..]
        .find(|c: char| !is_ws(c))
        .unwrap_or(input.len() - start);
    let mut cur_start: Option<usize> = None;
    let mut state = State::InDescriptor;
    let chars = input[start + skip..]
        .char_indices()
        .map(|(i, c)| (start + skip + i, c));
    for (i, c) in chars {
        match state {
            State::InDescriptor => match c {
                c if is_ws(c) => {
                    if let Some(s) = cur_start.take() {
                        descriptors.push(&input[s..i]);
                    }
                    state = State::After;
                }
                ',' => {
                    if let Some(s) = cur_start.take() {
                        descriptors.push(&input[s..i]);
                    }
                    return (descriptors, i + 1);
                }
                '(' => {
                    cur_start.get_or_insert(i);
                    state = State::InParens;
                }
                _ => {
                    cur_start.get_or_insert(i);
                }
            },
            State::InParens => {
                if c == ')' {
                    state = State::InDescriptor;
                }
            }
            State::After => {
                if !is_ws(c) {
                    // Reconsume in the descriptor state.
                    state = State::InDescriptor;
                    if c == ',' {
                        return (descriptors, i + 1);
                    }
                    cur_start = Some(i);
                    if c == '(' {
                        state = State::InParens;
                    }
                }
            }
        }
    }
    if let Some(s) = cur_start {
        descriptors.push(&input[s..]);
    }
    (descriptors, input.len())
}

/// A valid non-negative integer (ASCII digits only).
fn parse_int(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A valid floating-point number: `-`? (digits | digits? `.` digits) (`e`|`E` (`+`|`-`)? digits)?
fn parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let has_int = i > int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == frac_start {
            return None;
        }
    } else if !has_int {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse().ok()
}

/// Validates descriptors; `None` drops the candidate.
fn descriptors_to_candidate<'a>(url: &'a str, descriptors: &[&str]) -> Option<Candidate<'a>> {
    let (mut width, mut density, mut height) = (None, None, None);
    for d in descriptors {
        let (last, _) = d.char_indices().last()?;
        let (value, kind) = d.split_at(last);
        match kind {
            "w" if width.is_none() && density.is_none() => {
                width = Some(parse_int(value).filter(|w| *w > 0)?)
            }
            "x" if width.is_none() && density.is_none() && height.is_none() => {
                density = Some(parse_float(value).filter(|x| *x >= 0.0)?)
            }
            "h" if height.is_none() && density.is_none() => {
                height = Some(parse_int(value).filter(|h| *h > 0)?)
            }
            _ => return None,
        }
    }
    if height.is_some() && width.is_none() {
        return None;
    }
    Some(Candidate {
        url,
        width,
        density,
    })
}

/// The URLs of a `srcset`'s valid candidates.
pub fn urls(input: &str) -> Vec<&str> {
    parse(input).into_iter().map(|c| c.url).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srcset_table() {
        let cases: &[(&str, &[&str])] = &[
            ("a.jpg", &["a.jpg"]),
            ("a.jpg 1x, b.jpg 2x", &["a.jpg", "b.jpg"]),
            ("a.jpg 480w,b.jpg 800w", &["a.jpg", "b.jpg"]),
            ("  a.jpg   480w ,  b.jpg  ", &["a.jpg", "b.jpg"]),
            ("a.jpg, b.jpg", &["a.jpg", "b.jpg"]),
            ("a.jpg,b.jpg 2x", &["a.jpg,b.jpg"]),
            ("a.jpg,,, b.jpg", &["a.jpg", "b.jpg"]),
            (
                "/img,w_100,h_50/x.jpg 100w, /img,w_200/x.jpg 200w",
                &["/img,w_100,h_50/x.jpg", "/img,w_200/x.jpg"],
            ),
            (
                "a.jpg 1.5x, b.jpg .5x, c.jpg 1e1x",
                &["a.jpg", "b.jpg", "c.jpg"],
            ),
            ("a.jpg 100w 50h, b.jpg 50h", &["a.jpg"]),
            ("a.jpg 1x 2x, b.jpg", &["b.jpg"]),
            (
                "a.jpg 100w 2x, b.jpg 0w, c.jpg -1x, d.jpg 1.x, e.jpg 3q",
                &[],
            ),
            ("a.jpg (foo, bar) , b.jpg", &["b.jpg"]),
            ("a.jpg 2x,b.jpg 3x", &["a.jpg", "b.jpg"]),
            ("a.jpg\t2x\nb.jpg", &[]),
            ("a.jpg\t2x,\nb.jpg", &["a.jpg", "b.jpg"]),
            (
                "data:image/png;base64,AAA= 1x, c.jpg 2x",
                &["data:image/png;base64,AAA=", "c.jpg"],
            ),
            ("a.jpg 2\u{e9}, b.jpg 1\u{1F600}", &[]),
            ("", &[]),
            (" , , ", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(urls(input), *want, "{input:?}");
        }
    }

    #[test]
    fn descriptors_are_kept() {
        let c = parse("a.jpg 480w, b.jpg 2.5x, c.jpg");
        assert_eq!(c[0].width, Some(480));
        assert_eq!(c[1].density, Some(2.5));
        assert_eq!((c[2].width, c[2].density), (None, None));
    }

    #[test]
    fn floats_follow_the_html_grammar() {
        for ok in ["1", "1.5", ".5", "-1", "1e3", "1E-3", "0"] {
            assert!(parse_float(ok).is_some(), "{ok}");
        }
        for bad in ["", "1.", ".", "-", "1e", "+1", "1x", "1.5.5", "inf", "NaN"] {
            assert!(parse_float(bad).is_none(), "{bad}");
        }
    }
}
