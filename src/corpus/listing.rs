//! arXiv listings: the arXiv API's Atom feed, OAI-PMH `ListRecords` pages in
//! the `arXivRaw` and `arXiv` metadata formats, and the RSS feed, told apart
//! by their root element.
//!
//! A listing is read whole (a day of a category is a few hundred KB) into a
//! small element tree, so that a response cut short is an error naming the
//! element it ends inside, never a listing that silently lost its tail. An
//! OAI-PMH `<error>` is an error with arXiv's code and words. An OAI-PMH
//! page's `resumptionToken` is returned with its papers for the caller that
//! pages through a listing.

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;

use super::fields::{
    arxiv_abs_url, clean_abstract, ensure_text, normalize_date, normalize_doi,
    normalize_whitespace, split_author_string, split_categories, strip_version,
};
use super::{Event, Paper};

/// A listing's papers (each with the line its record starts on, or why it
/// was skipped) and, for an OAI-PMH page that is not the last, the token
/// that asks for the next one.
#[derive(Debug, Default)]
pub struct Listing {
    /// Papers and skipped records, in document order.
    pub(crate) events: Vec<Event>,
    /// A non-empty OAI-PMH `resumptionToken`.
    pub resumption_token: Option<String>,
}

impl Listing {
    /// The papers read, in listing order (skipped records left out).
    pub fn papers(&self) -> impl Iterator<Item = &Paper> {
        self.events.iter().filter_map(|e| match e {
            Event::Paper { paper, .. } => Some(paper),
            _ => None,
        })
    }
}

/// Why a listing cannot be read at all. The line is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingFailure {
    /// Not well-formed XML, or cut short.
    Malformed {
        /// Where the parser stopped.
        line: usize,
        /// What is wrong, in words for the user.
        reason: String,
    },
    /// An OAI-PMH error response.
    Oai {
        /// The OAI-PMH error code (`badResumptionToken`, `noRecordsMatch`, ...).
        code: String,
        /// The server's message.
        message: String,
    },
}

/// One XML element: local name (namespace prefix dropped), attributes by
/// local name, text (character data of the element itself, references
/// resolved) and children.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
    line: usize,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn text_of(&self, name: &str) -> String {
        self.child(name)
            .map(|c| normalize_whitespace(&c.text))
            .unwrap_or_default()
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn local(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    match name.rsplit_once(':') {
        Some((_, local)) => local.to_string(),
        None => name.into_owned(),
    }
}

/// 1-based line of byte `pos` of `bytes`.
fn line_at(bytes: &[u8], pos: usize) -> usize {
    1 + bytes[..pos.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// The character a general entity reference stands for: the five XML
/// predefined ones, and `&#N;` / `&#xN;` character references.
fn resolve_reference(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Parses `bytes` into its root element.
fn parse_tree(bytes: &[u8]) -> Result<Element, ListingFailure> {
    let mut reader = Reader::from_reader(bytes);
    let mut stack: Vec<Element> = Vec::new();
    let malformed = |pos: usize, reason: String| ListingFailure::Malformed {
        line: line_at(bytes, pos),
        reason,
    };
    let start =
        |e: &quick_xml::events::BytesStart, pos: usize| -> Result<Element, ListingFailure> {
            let mut attrs = Vec::new();
            for a in e.attributes() {
                let a = a.map_err(|err| malformed(pos, format!("bad attribute: {err}")))?;
                let value = a
                    .unescape_value()
                    .map_err(|err| malformed(pos, format!("bad attribute value: {err}")))?;
                attrs.push((local(a.key.as_ref()), value.into_owned()));
            }
            Ok(Element {
                name: local(e.name().as_ref()),
                attrs,
                line: line_at(bytes, pos),
                ..Element::default()
            })
        };
    loop {
        let pos = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|err| {
            malformed(
                reader.error_position() as usize,
                format!("not well-formed XML: {err}"),
            )
        })?;
        match event {
            XmlEvent::Start(e) => stack.push(start(&e, pos)?),
            XmlEvent::Empty(e) => {
                let element = start(&e, pos)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            XmlEvent::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err(malformed(pos, "a closing tag without its opening".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            XmlEvent::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let text = t
                        .decode()
                        .map_err(|err| malformed(pos, format!("bad text: {err}")))?;
                    top.text.push_str(&text);
                }
            }
            XmlEvent::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            XmlEvent::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(&r).into_owned();
                    match resolve_reference(&name) {
                        Some(c) => top.text.push(c),
                        None => {
                            return Err(malformed(pos, format!("unknown entity `&{name};`")));
                        }
                    }
                }
            }
            XmlEvent::Eof => {
                return Err(match stack.last() {
                    Some(open) => malformed(
                        bytes.len(),
                        format!(
                            "the listing ends inside <{}> (opened on line {}): it was cut short, \
                             e.g. by an interrupted download; fetch it again",
                            open.name, open.line
                        ),
                    ),
                    None => malformed(bytes.len(), "no XML element in the file".into()),
                });
            }
            _ => {}
        }
    }
}

/// Reads a listing in any of the dialects the module names.
pub fn parse_listing(bytes: &[u8]) -> Result<Listing, ListingFailure> {
    let root = parse_tree(bytes)?;
    match root.name.as_str() {
        "feed" => Ok(atom(&root)),
        "OAI-PMH" => oai(&root),
        "rss" => Ok(rss(&root)),
        other => Err(ListingFailure::Malformed {
            line: root.line,
            reason: format!(
                "root element <{other}> is none of an arXiv listing's: <feed> (arXiv API), \
                 <OAI-PMH> or <rss>"
            ),
        }),
    }
}

/// An arXiv id from an abs link or OAI identifier, without its version.
fn arxiv_id(raw: &str) -> String {
    let raw = raw.trim();
    let id = ["/abs/", "oai:arXiv.org:", "arXiv:"]
        .iter()
        .find_map(|p| raw.split_once(p).map(|(_, id)| id))
        .unwrap_or(raw);
    strip_version(id).to_string()
}

fn paper_event(paper: Paper, line: usize) -> Event {
    match ensure_text(&paper.title, &paper.abstract_text) {
        Ok(()) if !paper.id.is_empty() => Event::Paper { paper, line },
        Ok(()) => Event::Bad {
            line,
            reason: "record has no arXiv id".into(),
        },
        Err(reason) => Event::Bad { line, reason },
    }
}

fn new_paper(id: String) -> Paper {
    Paper {
        url: arxiv_abs_url(&id),
        id,
        ..Paper::default()
    }
}

/// The arXiv API's Atom feed (one `<entry>` per paper).
fn atom(root: &Element) -> Listing {
    let events = root
        .all("entry")
        .map(|e| {
            let mut p = new_paper(arxiv_id(&e.text_of("id")));
            p.title = e.text_of("title");
            p.abstract_text = clean_abstract(&e.text_of("summary"));
            p.authors = e
                .all("author")
                .map(|a| a.text_of("name"))
                .filter(|n| !n.is_empty())
                .collect();
            let primary = e.child("primary_category").and_then(|c| c.attr("term"));
            p.categories = primary
                .into_iter()
                .chain(e.all("category").filter_map(|c| c.attr("term")))
                .fold(Vec::new(), |mut acc: Vec<String>, c| {
                    if !acc.iter().any(|x| x == c) {
                        acc.push(c.to_string());
                    }
                    acc
                });
            p.date = normalize_date(&e.text_of("published"));
            p.doi = normalize_doi(&e.text_of("doi"));
            p.journal = Some(e.text_of("journal_ref")).filter(|j| !j.is_empty());
            paper_event(p, e.line)
        })
        .collect();
    Listing {
        events,
        resumption_token: None,
    }
}

/// An OAI-PMH response: `ListRecords` in `arXivRaw` or `arXiv`, or an error.
fn oai(root: &Element) -> Result<Listing, ListingFailure> {
    if let Some(error) = root.child("error") {
        return Err(ListingFailure::Oai {
            code: error.attr("code").unwrap_or("unknown").to_string(),
            message: normalize_whitespace(&error.text),
        });
    }
    let Some(list) = root.child("ListRecords") else {
        return Err(ListingFailure::Malformed {
            line: root.line,
            reason: "an OAI-PMH response without <ListRecords> (only ListRecords is read)".into(),
        });
    };
    let mut events = Vec::new();
    for record in list.all("record") {
        let deleted = record
            .child("header")
            .and_then(|h| h.attr("status"))
            .is_some_and(|s| s == "deleted");
        if deleted {
            continue;
        }
        let metadata = record.child("metadata").and_then(|m| m.children.first());
        let Some(m) = metadata else {
            events.push(Event::Bad {
                line: record.line,
                reason: "OAI-PMH record without metadata".into(),
            });
            continue;
        };
        let mut p = new_paper(arxiv_id(&m.text_of("id")));
        p.title = m.text_of("title");
        p.abstract_text = clean_abstract(&m.text_of("abstract"));
        p.categories = split_categories(&m.text_of("categories"));
        p.doi = normalize_doi(&m.text_of("doi"));
        p.journal = Some(m.text_of("journal-ref")).filter(|j| !j.is_empty());
        match m.name.as_str() {
            "arXivRaw" => {
                p.authors = split_author_string(&m.text_of("authors"));
                // The first version's submission date.
                p.date = m
                    .child("version")
                    .and_then(|v| normalize_date(&v.text_of("date")));
            }
            "arXiv" => {
                p.authors = m
                    .child("authors")
                    .map(|a| {
                        a.all("author")
                            .map(|x| {
                                normalize_whitespace(&format!(
                                    "{} {}",
                                    x.text_of("forenames"),
                                    x.text_of("keyname")
                                ))
                            })
                            .filter(|n| !n.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                p.date = normalize_date(&m.text_of("created"));
            }
            other => {
                events.push(Event::Bad {
                    line: m.line,
                    reason: format!(
                        "metadata format <{other}> is not read; ask for metadataPrefix=arXivRaw or arXiv"
                    ),
                });
                continue;
            }
        }
        events.push(paper_event(p, record.line));
    }
    let resumption_token = list
        .child("resumptionToken")
        .map(|t| t.text.trim().to_string())
        .filter(|t| !t.is_empty());
    Ok(Listing {
        events,
        resumption_token,
    })
}

/// arXiv's RSS feed: `<item>`s whose description is
/// `arXiv:ID Announce Type: new \nAbstract: ...`.
fn rss(root: &Element) -> Listing {
    let items = root
        .child("channel")
        .into_iter()
        .flat_map(|c| c.all("item"));
    let events = items
        .map(|item| {
            let mut p = new_paper(arxiv_id(&item.text_of("link")));
            p.title = item.text_of("title");
            let description = item.child("description").map_or("", |d| d.text.as_str());
            let abstract_text = description
                .split_once("Abstract:")
                .map_or(description, |(_, a)| a);
            p.abstract_text = clean_abstract(abstract_text);
            p.authors = split_author_string(&item.text_of("creator"));
            p.categories = item
                .all("category")
                .map(|c| normalize_whitespace(&c.text))
                .collect();
            p.date = normalize_date(&item.text_of("pubDate"));
            p.doi = normalize_doi(&item.text_of("doi"));
            paper_event(p, item.line)
        })
        .collect();
    Listing {
        events,
        resumption_token: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn papers(xml: &str) -> Vec<Paper> {
        parse_listing(xml.as_bytes())
            .map(|l| l.papers().cloned().collect())
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn atom_entry_fields() {
        let got = papers(
            r#"<?xml version='1.0'?><feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">
<entry><id>http://arxiv.org/abs/2606.00001v2</id><title>A &amp; B</title>
<published>2026-06-30T09:39:13Z</published><summary>Line one
 two.</summary><author><name>Ann Lee</name></author><author><name>Bo Wu</name></author>
<arxiv:primary_category term="cs.LG"/><category term="cs.LG"/><category term="stat.ML"/></entry></feed>"#,
        );
        assert_eq!(got.len(), 1);
        let p = &got[0];
        assert_eq!(p.id, "2606.00001");
        assert_eq!(p.title, "A & B");
        assert_eq!(p.abstract_text, "Line one two.");
        assert_eq!(p.authors, ["Ann Lee", "Bo Wu"]);
        assert_eq!(p.categories, ["cs.LG", "stat.ML"]);
        assert_eq!(p.date.as_deref(), Some("2026-06-30"));
        assert_eq!(p.url.as_deref(), Some("https://arxiv.org/abs/2606.00001"));
    }

    #[test]
    fn oai_error_is_a_failure_with_code() {
        let err = parse_listing(
            br#"<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><error code='badResumptionToken'>Bad &#39;x&#39;.</error></OAI-PMH>"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ListingFailure::Oai {
                code: "badResumptionToken".into(),
                message: "Bad 'x'.".into()
            }
        );
    }

    #[test]
    fn cut_short_names_the_open_element() {
        let err = parse_listing(b"<feed>\n<entry>\n<summary>abc").unwrap_err();
        match err {
            ListingFailure::Malformed { line, reason } => {
                assert_eq!(line, 3);
                assert!(reason.contains("<summary>"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ids_lose_versions_and_prefixes() {
        assert_eq!(arxiv_id("https://arxiv.org/abs/2606.31824v1"), "2606.31824");
        assert_eq!(arxiv_id("oai:arXiv.org:hep-th/9901001"), "hep-th/9901001");
        assert_eq!(arxiv_id("2606.31824"), "2606.31824");
    }
}
