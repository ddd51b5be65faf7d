//! Fetching an arXiv listing from its URL (the arXiv API, an OAI-PMH
//! `ListRecords` request, the RSS feed), paging through OAI-PMH resumption
//! tokens.
//!
//! The download is `curl`'s (on every Linux, macOS and Windows 10+): a TLS
//! stack compiled into papersim would cost every build far more than the
//! one command a day a listing takes. Every page is read and parsed before
//! any paper is handed out, so a failure anywhere (network, HTTP status, a
//! page cut short, an OAI-PMH error) is an error and never a partial
//! listing.

use std::path::PathBuf;
use std::process::Command;

use super::{listing_from_bytes, CorpusError, Listing};

/// Pages of one OAI-PMH listing fetched at most (a day of all of arXiv is a
/// few dozen): a server that hands out tokens forever must not loop us.
pub const MAX_PAGES: usize = 1000;

/// Whether `source` names a URL rather than a file.
pub fn is_url(source: &str) -> bool {
    ["http://", "https://"].iter().any(|p| {
        source
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    })
}

fn failed(url: &str, reason: String) -> CorpusError {
    CorpusError::Fetch {
        url: url.to_string(),
        reason,
    }
}

/// One GET by curl: the body, or why not.
fn get(url: &str) -> Result<Vec<u8>, CorpusError> {
    let out = Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--compressed",
            "--max-time",
            "300",
            "--user-agent",
            concat!("papersim/", env!("CARGO_PKG_VERSION")),
            "--",
            url,
        ])
        .output()
        .map_err(|e| {
            failed(
                url,
                format!("cannot run curl ({e}); download the listing yourself and pass the file"),
            )
        })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(failed(url, format!("download failed: {why}")));
    }
    Ok(out.stdout)
}

/// The URL of the page after `url` for an OAI-PMH `token`: the request's
/// base with `verb=ListRecords&resumptionToken=…` (the token replaces every
/// other argument, as OAI-PMH requires).
pub fn next_page_url(url: &str, token: &str) -> String {
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    let mut encoded = String::with_capacity(token.len());
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{base}?verb=ListRecords&resumptionToken={encoded}")
}

/// Fetches the listing at `url`, every OAI-PMH page of it, and parses it
/// whole. Errors name the page's URL.
pub fn fetch_listing(url: &str) -> Result<Listing, CorpusError> {
    let mut listing = page(url)?;
    let mut pages = 1;
    while let Some(token) = listing.resumption_token.clone() {
        if pages == MAX_PAGES {
            return Err(failed(
                url,
                format!(
                    "still more pages after {MAX_PAGES}; ask for a shorter listing (from/until)"
                ),
            ));
        }
        let next = next_page_url(url, &token);
        listing.extend(page(&next)?);
        pages += 1;
    }
    Ok(listing)
}

fn page(url: &str) -> Result<Listing, CorpusError> {
    let bytes = get(url)?;
    listing_from_bytes(&bytes, &PathBuf::from(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_replaces_the_arguments() {
        assert_eq!(
            next_page_url(
                "https://oaipmh.arxiv.org/oai?verb=ListRecords&metadataPrefix=arXivRaw&set=cs",
                "verb%3DListRecords%26skip%3D30"
            ),
            "https://oaipmh.arxiv.org/oai?verb=ListRecords&resumptionToken=verb%253DListRecords%2526skip%253D30"
        );
    }

    #[test]
    fn urls_are_told_from_files() {
        assert!(is_url("https://export.arxiv.org/api/query?id_list=1"));
        assert!(is_url("HTTP://x"));
        assert!(!is_url("listing.xml"));
    }
}
