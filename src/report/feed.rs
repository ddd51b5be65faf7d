//! A ranked feed for people: a terminal table, Markdown, and an HTML page
//! that reads well as an e-mail (inline styles only: mail clients drop
//! style sheets and scripts).

use std::fmt::Write;

use crate::query::{Feed, FeedHit};

/// How a feed is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    /// Aligned lines for a terminal.
    Table,
    /// A numbered Markdown list.
    Markdown,
    /// A self-contained HTML page.
    Html,
    /// `{"profile", "ranked", "known", "older", "hits": [...]}`.
    Json,
}

impl std::str::FromStr for FeedFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(FeedFormat::Table),
            "markdown" | "md" => Ok(FeedFormat::Markdown),
            "html" => Ok(FeedFormat::Html),
            "json" => Ok(FeedFormat::Json),
            _ => Err(format!(
                "unknown format {s:?}: expected table, markdown, html or json"
            )),
        }
    }
}

/// Authors as a short line: up to three, then "et al.".
fn authors(hit: &FeedHit) -> String {
    let a = &hit.paper.authors;
    match a.len() {
        0 => String::new(),
        1..=3 => a.join(", "),
        _ => format!("{}, {}, {} et al.", a[0], a[1], a[2]),
    }
}

/// The first line of the summary: how many papers, against how many.
fn headline(feed: &Feed) -> String {
    let mut s = format!(
        "{} of {} new papers, ranked against {} profile papers",
        feed.hits.len(),
        feed.ranked,
        feed.profile
    );
    if feed.known > 0 {
        let _ = write!(s, "; {} already in the library", feed.known);
    }
    if feed.older > 0 {
        let _ = write!(s, "; {} older than --since", feed.older);
    }
    s
}

/// Renders `feed` as `format` says (JSON is serde's, in the binary).
pub fn render_feed(format: FeedFormat, feed: &Feed) -> String {
    match format {
        FeedFormat::Table => table(feed),
        FeedFormat::Markdown => markdown(feed),
        FeedFormat::Html => html(feed),
        FeedFormat::Json => serde_json::to_string_pretty(feed).unwrap_or_default() + "\n",
    }
}

fn table(feed: &Feed) -> String {
    let mut out = format!("{}\n", headline(feed));
    for h in &feed.hits {
        let _ = writeln!(
            out,
            "\n{:>3}. {:.3}  {}  {}\n     {}",
            h.rank,
            h.score,
            h.paper.id,
            h.paper.title,
            authors(h)
        );
        let _ = writeln!(
            out,
            "     because of: {} ({})",
            h.because.title, h.because.id
        );
        if let Some(s) = &h.because.sentence {
            let _ = writeln!(out, "     \"{s}\"");
        }
    }
    out
}

fn markdown(feed: &Feed) -> String {
    let mut out = format!("*{}*\n\n", headline(feed));
    for h in &feed.hits {
        let title = match &h.paper.url {
            Some(url) => format!("[{}]({url})", h.paper.title),
            None => h.paper.title.clone(),
        };
        let _ = writeln!(
            out,
            "{}. **{title}** ({}), {}",
            h.rank,
            h.paper.id,
            authors(h)
        );
        let _ = write!(out, "   Because of *{}*", h.because.title);
        match &h.because.sentence {
            Some(s) => {
                let _ = writeln!(out, ": \"{s}\"");
            }
            None => out.push('\n'),
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn html(feed: &Feed) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>New papers for you</title>\n</head>\n\
         <body style=\"margin:0;padding:16px;font-family:Georgia,serif;color:#222;background:#fff\">\n\
         <div style=\"max-width:720px;margin:0 auto\">\n<h1 style=\"font-size:22px\">New papers for you</h1>\n",
    );
    let _ = writeln!(
        out,
        "<p style=\"color:#666;font-size:14px\">{}</p>",
        esc(&headline(feed))
    );
    for h in &feed.hits {
        let title = esc(&h.paper.title);
        let title = match &h.paper.url {
            Some(url) => format!(
                "<a href=\"{}\" style=\"color:#1a4d8f;text-decoration:none\">{title}</a>",
                esc(url)
            ),
            None => title,
        };
        let _ = write!(
            out,
            "<div style=\"margin:18px 0;padding-bottom:12px;border-bottom:1px solid #ddd\">\n\
             <div style=\"font-size:17px\">{}. {title}</div>\n\
             <div style=\"color:#555;font-size:14px\">{} &middot; {}{}</div>\n\
             <div style=\"font-size:14px;margin-top:6px\">Because of <i>{}</i>",
            h.rank,
            esc(&authors(h)),
            esc(&h.paper.id),
            h.paper
                .date
                .as_deref()
                .map(|d| format!(" &middot; {}", esc(d)))
                .unwrap_or_default(),
            esc(&h.because.title),
        );
        if let Some(s) = &h.because.sentence {
            let _ = write!(
                out,
                "<blockquote style=\"margin:6px 0 0 12px;color:#444\">{}</blockquote>",
                esc(s)
            );
        }
        out.push_str("</div>\n</div>\n");
    }
    out.push_str("</div>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::Paper;
    use crate::query::Because;

    fn feed() -> Feed {
        Feed {
            profile: 2,
            ranked: 1,
            known: 1,
            older: 0,
            hits: vec![FeedHit {
                rank: 1,
                score: 0.5,
                paper: Paper {
                    id: "2606.1".into(),
                    title: "A <b> & c".into(),
                    url: Some("https://arxiv.org/abs/2606.1".into()),
                    ..Paper::default()
                },
                because: Because {
                    id: "K1".into(),
                    title: "Profile \"paper\"".into(),
                    similarity: 0.4,
                    sentence: Some("It <works>.".into()),
                },
            }],
        }
    }

    #[test]
    fn html_escapes_every_text() {
        let page = render_feed(FeedFormat::Html, &feed());
        assert!(page.contains("A &lt;b&gt; &amp; c"), "{page}");
        assert!(page.contains("It &lt;works&gt;."));
        assert!(page.contains("Profile &quot;paper&quot;"));
        assert!(!page.contains("<b>"));
    }

    #[test]
    fn markdown_links_and_explains() {
        let md = render_feed(FeedFormat::Markdown, &feed());
        assert!(
            md.contains("1. **[A <b> & c](https://arxiv.org/abs/2606.1)**"),
            "{md}"
        );
        assert!(md.contains("Because of *Profile \"paper\"*: \"It <works>.\""));
        assert!(md.contains("1 already in the library"));
    }
}
