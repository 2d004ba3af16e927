//! Tests of the SVG tokenizer pieces.

use super::*;

#[test]
fn lengths_convert_absolute_units_and_refuse_relative_ones() {
    assert_eq!(length("100"), Some(100.0));
    assert_eq!(length(" 12.5px "), Some(12.5));
    assert_eq!(length("1in"), Some(96.0));
    assert_eq!(length("72pt"), Some(96.0));
    assert_eq!(length("1e2"), Some(100.0));
    assert_eq!(length("50%"), None);
    assert_eq!(length("2em"), None);
    assert_eq!(length("-5"), None);
    assert_eq!(length("abc"), None);
    assert_eq!(length(""), None);
}

#[test]
fn view_boxes_need_four_numbers_and_a_positive_size() {
    assert_eq!(view_box("0 0 300 150"), Some((300.0, 150.0)));
    assert_eq!(view_box("0,0,30,15"), Some((30.0, 15.0)));
    assert_eq!(view_box("-10, -10 , 20 40"), Some((20.0, 40.0)));
    assert_eq!(view_box("0 0 0 10"), None);
    assert_eq!(view_box("0 0 10"), None);
    assert_eq!(view_box("a b c d"), None);
}

#[test]
fn dimensions_fill_a_missing_side_from_the_aspect_ratio() {
    assert_eq!(
        dimensions(&[("width", "200"), ("viewBox", "0 0 100 50")]),
        (200, 100)
    );
    assert_eq!(
        dimensions(&[("height", "10"), ("viewBox", "0 0 100 50")]),
        (20, 10)
    );
    assert_eq!(dimensions(&[("viewBox", "0 0 100.2 50")]), (101, 50));
    assert_eq!(
        dimensions(&[
            ("width", "100%"),
            ("height", "100%"),
            ("viewBox", "0 0 64 32")
        ]),
        (64, 32)
    );
    assert_eq!(dimensions(&[]), (0, 0));
}

#[test]
fn prolog_is_skipped_but_other_documents_are_not_svg() {
    let ok: [&[u8]; 4] = [
        b"<svg/>",
        b"\xEF\xBB\xBF <?xml version=\"1.0\"?>\n<!-- hi -->\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x.dtd\">\n<svg>",
        b"<!doctype svg [ <!ATTLIST svg a CDATA \"]>\"> ]><svg\n>",
        b"<?xml-stylesheet href=\"a.css\"?><svg xmlns=\"http://www.w3.org/2000/svg\">",
    ];
    for doc in ok {
        assert!(find_root(doc).is_some(), "{}", String::from_utf8_lossy(doc));
    }
    let not: [&[u8]; 5] = [
        b"<html><svg></svg></html>",
        b"<svgfoo/>",
        b"<!-- unterminated <svg/>",
        b"hello",
        b"",
    ];
    for doc in not {
        assert!(find_root(doc).is_none(), "{}", String::from_utf8_lossy(doc));
    }
}

#[test]
fn closing_tag_detection() {
    assert!(ends_with_root_close(b"<g/></svg>"));
    assert!(ends_with_root_close(b"</svg >\n<!-- trailing -->\n"));
    assert!(ends_with_root_close(b"</svg:svg>"));
    assert!(!ends_with_root_close(b"<g/></sv"));
    assert!(!ends_with_root_close(b"<rect/>"));
    assert!(!ends_with_root_close(b"</g>"));
}
