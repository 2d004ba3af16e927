//! The job's image filters, applied to a validated image.

use imgcrawl_events::{ImageFilters, RejectReason};

use crate::validate::{ImageInfo, Rejection};
use imgcrawl_events::Format;

/// Checks `info` (of `bytes` bytes) against the job's filters: sizes below the minimums
/// are `too_small`, a format outside a non-empty `formats` list is `format_not_accepted`.
/// Names in `formats` are read with [`Format::from_name`] (`jpg` = `jpeg`); unknown names
/// match nothing. An SVG without an intrinsic size (0x0) fails any minimum dimension.
pub fn apply(filters: &ImageFilters, info: &ImageInfo, bytes: u64) -> Result<(), Rejection> {
    if bytes < filters.min_bytes {
        let detail = format!(
            "{bytes} bytes is below the job's min_bytes {}",
            filters.min_bytes
        );
        return Err(Rejection::new(RejectReason::TooSmall, detail));
    }
    if info.width < filters.min_width || info.height < filters.min_height {
        let detail = format!(
            "{}x{} is below the job's minimum {}x{}",
            info.width, info.height, filters.min_width, filters.min_height
        );
        return Err(Rejection::new(RejectReason::TooSmall, detail));
    }
    if !filters.formats.is_empty()
        && !filters
            .formats
            .iter()
            .any(|f| Format::from_name(f) == Some(info.format))
    {
        let detail = format!(
            "{} is not among the job's formats [{}]",
            info.format,
            filters.formats.join(", ")
        );
        return Err(Rejection::new(RejectReason::FormatNotAccepted, detail));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(format: Format, width: u32, height: u32) -> ImageInfo {
        ImageInfo {
            format,
            width,
            height,
            content_type: format.content_type(),
        }
    }

    #[test]
    fn defaults_accept_everything() {
        assert!(apply(&ImageFilters::default(), &info(Format::Svg, 0, 0), 1).is_ok());
    }

    #[test]
    fn minimums_reject_too_small() {
        let f = ImageFilters {
            min_width: 100,
            min_height: 50,
            min_bytes: 1000,
            ..Default::default()
        };
        assert!(apply(&f, &info(Format::Png, 100, 50), 1000).is_ok());
        for (w, h, bytes) in [(99, 50, 1000), (100, 49, 1000), (100, 50, 999)] {
            let r = apply(&f, &info(Format::Png, w, h), bytes).expect_err("too small");
            assert_eq!(r.reason, RejectReason::TooSmall, "{w}x{h} {bytes}");
        }
        let svg = apply(&f, &info(Format::Svg, 0, 0), 5000).expect_err("unsized svg");
        assert_eq!(svg.reason, RejectReason::TooSmall);
    }

    #[test]
    fn formats_match_by_alias() {
        let f = ImageFilters {
            formats: vec!["JPG".into(), "webp".into(), "nonsense".into()],
            ..Default::default()
        };
        assert!(apply(&f, &info(Format::Jpeg, 1, 1), 1).is_ok());
        assert!(apply(&f, &info(Format::Webp, 1, 1), 1).is_ok());
        let r = apply(&f, &info(Format::Gif, 1, 1), 1).expect_err("gif");
        assert_eq!(r.reason, RejectReason::FormatNotAccepted);
        assert!(r.detail.contains("gif is not among"), "{}", r.detail);
    }
}
