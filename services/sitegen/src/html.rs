//! A tiny HTML page writer that also records what the page links to.
//!
//! The page's markup is written by hand (so every extraction case looks the way it does
//! on real sites); alongside, the author declares the resolved page links and image
//! paths the markup contains. The crate's tests re-extract them from the markup with an
//! HTML parser, so the declaration cannot silently drift from the HTML.

/// An HTML page under construction.
#[derive(Debug, Clone, Default)]
pub struct Page {
    title: String,
    head: String,
    body: String,
    /// In-scope page paths the markup links to (resolved).
    pub links: Vec<String>,
    /// Image paths the markup references (resolved, same origin).
    pub images: Vec<String>,
    /// Image paths the markup references on the alternate origin.
    pub alt_images: Vec<String>,
}

impl Page {
    /// An empty page titled `title`.
    pub fn new(title: &str) -> Page {
        Page {
            title: title.into(),
            ..Default::default()
        }
    }

    /// Appends markup to `<head>`.
    pub fn head(&mut self, html: &str) -> &mut Page {
        self.head.push_str(html);
        self.head.push('\n');
        self
    }

    /// Appends markup to `<body>`.
    pub fn body(&mut self, html: &str) -> &mut Page {
        self.body.push_str(html);
        self.body.push('\n');
        self
    }

    /// Declares in-scope page links the markup contains.
    pub fn links(&mut self, paths: &[&str]) -> &mut Page {
        self.links.extend(paths.iter().map(|p| p.to_string()));
        self
    }

    /// Declares images the markup references.
    pub fn images(&mut self, paths: &[&str]) -> &mut Page {
        self.images.extend(paths.iter().map(|p| p.to_string()));
        self
    }

    /// Declares images the markup references on the alternate origin.
    pub fn alt_images(&mut self, paths: &[&str]) -> &mut Page {
        self.alt_images.extend(paths.iter().map(|p| p.to_string()));
        self
    }

    /// The full document.
    pub fn render(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n{}</head>\n<body>\n{}</body>\n</html>\n",
            escape(&self.title),
            self.head,
            self.body
        )
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_document_with_escaped_title() {
        let mut p = Page::new("a <b> & c");
        p.head("<meta name=\"x\">")
            .body("<p>hi</p>")
            .links(&["/x"])
            .images(&["/i.png"]);
        let html = p.render();
        assert!(html.contains("<title>a &lt;b&gt; &amp; c</title>"));
        assert!(html.contains("<meta name=\"x\">\n</head>"));
        assert!(html.contains("<p>hi</p>"));
        assert_eq!(p.links, vec!["/x"]);
    }
}
