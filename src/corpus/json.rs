//! JSON-lines formats: arXiv (our dump and the Kaggle snapshot), BEIR corpora,
//! OpenAlex works, Semantic Scholar papers, and `{"id", "text"}` text records.

use serde_json::{Map, Value};

use super::fields::{
    self, arxiv_abs_url, arxiv_id_month, clean_abstract, ensure_text, normalize_date,
    normalize_doi, normalize_whitespace, split_author_string, split_categories,
};
use super::input::{too_long_reason, Line, LineReader};
use super::{CorpusError, Event, Paper, Source, TextRecord};

pub(crate) type Object = Map<String, Value>;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    Arxiv,
    Beir,
    OpenAlex,
    /// A Semantic Scholar papers file read alone: abstracts only where a
    /// record has its own `abstract` (the Graph API's shape).
    S2,
}

pub(crate) struct JsonLinesSource {
    lines: LineReader,
    shape: Shape,
}

impl JsonLinesSource {
    pub(crate) fn new(lines: LineReader, shape: Shape) -> Self {
        JsonLinesSource { lines, shape }
    }
}

impl Source for JsonLinesSource {
    fn next_event(&mut self) -> Result<Option<Event>, CorpusError> {
        loop {
            let line = match self.lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return Ok(None),
                Err(failure) => {
                    let (line, reason) = self.lines.failure(failure)?;
                    return Ok(Some(Event::Fatal { line, reason }));
                }
            };
            let number = line.number;
            let object = match parse_object_line(&line) {
                Parsed::Blank => continue,
                Parsed::Bad(reason) => {
                    return Ok(Some(Event::Bad {
                        line: number,
                        reason,
                    }))
                }
                Parsed::Object(object) => object,
            };
            let paper = match self.shape {
                Shape::Arxiv => arxiv_paper(&object),
                Shape::Beir => beir_paper(&object),
                Shape::OpenAlex => openalex_paper(&object),
                Shape::S2 => s2_paper(&object, |_| None),
            };
            return Ok(Some(match paper {
                Ok(paper) => Event::Paper {
                    paper,
                    line: number,
                },
                Err(reason) => Event::Bad {
                    line: number,
                    reason,
                },
            }));
        }
    }
}

pub(crate) enum Parsed {
    Blank,
    Bad(String),
    Object(Object),
}

pub(crate) fn parse_object_line(line: &Line<'_>) -> Parsed {
    if line.too_long {
        return Parsed::Bad(too_long_reason());
    }
    let text = match std::str::from_utf8(line.bytes) {
        Ok(text) => text,
        Err(e) => {
            return Parsed::Bad(format!(
                "invalid UTF-8 at byte {} of the line",
                e.valid_up_to() + 1
            ))
        }
    };
    if text.trim().is_empty() {
        return Parsed::Blank;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Parsed::Object(object),
        Ok(other) => Parsed::Bad(format!(
            "expected a JSON object, found {}",
            type_name(&other)
        )),
        Err(e) => Parsed::Bad(format!("invalid JSON: {e}")),
    }
}

pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Missing and `null` read as absent; any other non-string is a bad record.
fn get_str<'a>(object: &'a Object, key: &str) -> Result<Option<&'a str>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "field `{key}` must be a string, found {}",
            type_name(other)
        )),
    }
}

fn required_id(object: &Object, key: &str) -> Result<String, String> {
    match object.get(key) {
        None | Some(Value::Null) => Err(format!("missing `{key}`")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!("empty `{key}`")),
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(other) => Err(format!(
            "`{key}` must be a string, found {}",
            type_name(other)
        )),
    }
}

/// A list of strings, or one string split with `split` (the Kaggle snapshot
/// stores authors and categories as single strings).
fn string_list(
    object: &Object,
    key: &str,
    split: fn(&str) -> Vec<String>,
) -> Result<Vec<String>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(split(s)),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => {
                        let s = normalize_whitespace(s);
                        if !s.is_empty() {
                            out.push(s);
                        }
                    }
                    other => {
                        return Err(format!(
                            "field `{key}` must be a list of strings, found {} at index {i}",
                            type_name(other)
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(format!(
            "field `{key}` must be a list of strings or a string, found {}",
            type_name(other)
        )),
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.and_then(fields::non_empty)
}

/// A string at `path` inside nested objects, ignoring anything of another
/// shape (optional details are not worth a bad record).
fn nested_str<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))?
        .as_str()
        .filter(|s| !s.trim().is_empty())
}

/// `display_name`s (or another key) of the objects in the array at `key`.
fn names_in(object: &Object, key: &str, name: &[&str]) -> Vec<String> {
    let Some(Value::Array(items)) = object.get(key) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if let Some(n) = nested_str(item, name).and_then(fields::non_empty) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The first of `keys` present as a string (a number is taken as its
/// decimal text: Semantic Scholar's corpus ids and years are numbers).
fn str_or_number(object: &Object, keys: &[&str]) -> Result<Option<String>, String> {
    for key in keys {
        match object.get(*key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if s.trim().is_empty() => continue,
            Some(Value::String(s)) => return Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) => return Ok(Some(n.to_string())),
            Some(other) => {
                return Err(format!(
                    "field `{key}` must be a string or a number, found {}",
                    type_name(other)
                ))
            }
        }
    }
    Ok(None)
}

/// An OpenAlex `abstract_inverted_index` (`{"word": [positions]}`) back to
/// text: words in position order, one space apart.
fn rebuild_inverted_index(index: &Object) -> Result<String, String> {
    let mut placed: Vec<(u64, &str)> = Vec::new();
    for (word, positions) in index {
        let Value::Array(positions) = positions else {
            return Err(format!(
                "`abstract_inverted_index` entry `{word}` must be a list of positions, found {}",
                type_name(positions)
            ));
        };
        for position in positions {
            let Some(at) = position.as_u64() else {
                return Err(format!(
                    "`abstract_inverted_index` entry `{word}` has a position that is not a whole number: {position}"
                ));
            };
            placed.push((at, word));
        }
    }
    placed.sort_unstable();
    let mut text = String::new();
    for (_, word) in placed {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(word);
    }
    Ok(text)
}

/// An OpenAlex work (`https://openalex.org/W...`): the id without its
/// prefix, `title` (or `display_name`), the abstract rebuilt from its
/// inverted index, authors from `authorships`, `publication_date` (else
/// `publication_year`), the DOI, topics (else concepts) as categories, and
/// the primary location's source as journal or booktitle.
fn openalex_paper(object: &Object) -> Result<Paper, String> {
    let full_id = required_id(object, "id")?;
    let id = full_id
        .strip_prefix("https://openalex.org/")
        .filter(|rest| !rest.is_empty())
        .unwrap_or(&full_id)
        .to_string();
    let title = match get_str(object, "title")? {
        Some(title) => normalize_whitespace(title),
        None => normalize_whitespace(get_str(object, "display_name")?.unwrap_or("")),
    };
    let abstract_text = match object.get("abstract_inverted_index") {
        None | Some(Value::Null) => String::new(),
        Some(Value::Object(index)) => clean_abstract(&rebuild_inverted_index(index)?),
        Some(other) => {
            return Err(format!(
                "field `abstract_inverted_index` must be an object, found {}",
                type_name(other)
            ))
        }
    };
    ensure_text(&title, &abstract_text)?;
    let mut authors = Vec::new();
    if let Some(Value::Array(authorships)) = object.get("authorships") {
        for authorship in authorships {
            let name = nested_str(authorship, &["author", "display_name"])
                .or_else(|| nested_str(authorship, &["raw_author_name"]));
            if let Some(name) = name {
                authors.push(normalize_whitespace(name));
            }
        }
    }
    let mut categories = names_in(object, "topics", &["display_name"]);
    if categories.is_empty() {
        categories = names_in(object, "concepts", &["display_name"]);
    }
    let date = match get_str(object, "publication_date")? {
        Some(raw) => normalize_date(raw),
        None => str_or_number(object, &["publication_year"])?,
    };
    let doi = get_str(object, "doi")?.and_then(normalize_doi);
    let location = object.get("primary_location");
    let url = location
        .and_then(|l| nested_str(l, &["landing_page_url"]))
        .map(str::to_string)
        .or_else(|| doi.as_ref().map(|doi| format!("https://doi.org/{doi}")))
        .or_else(|| Some(full_id.clone()));
    let source = location.and_then(|l| l.get("source"));
    let venue = source
        .and_then(|s| nested_str(s, &["display_name"]))
        .and_then(fields::non_empty);
    let (journal, booktitle) = match source.and_then(|s| nested_str(s, &["type"])) {
        Some("conference") => (None, venue),
        Some("journal") => (venue, None),
        _ => (None, None),
    };
    Ok(Paper {
        id,
        title,
        abstract_text,
        authors,
        categories,
        date,
        url,
        doi,
        journal,
        booktitle,
        eprint: None,
        collections: Vec::new(),
    })
}

/// A Semantic Scholar paper (the datasets' `papers` records, lower-case
/// keys, or the Graph API's camelCase ones): `corpusid` as the id, `title`,
/// the record's own `abstract` else `abstract_of(corpusid)`, `authors[].name`,
/// `publicationdate` (else `year`), `externalids.DOI` and `.ArXiv` (as
/// `eprint`), fields of study as categories, `journal.name` or `venue`.
pub(crate) fn s2_paper(
    object: &Object,
    abstract_of: impl FnOnce(&str) -> Option<String>,
) -> Result<Paper, String> {
    let id = str_or_number(object, &["corpusid", "corpusId"])?
        .ok_or_else(|| "missing `corpusid`".to_string())?;
    let title = normalize_whitespace(get_str(object, "title")?.unwrap_or(""));
    let abstract_text = match get_str(object, "abstract")? {
        Some(text) => clean_abstract(text),
        None => abstract_of(&id)
            .map(|t| clean_abstract(&t))
            .unwrap_or_default(),
    };
    ensure_text(&title, &abstract_text)?;
    let authors = names_in(object, "authors", &["name"]);
    let date = match ["publicationdate", "publicationDate"]
        .iter()
        .find_map(|key| get_str(object, key).transpose())
        .transpose()?
    {
        Some(raw) => normalize_date(raw),
        None => str_or_number(object, &["year"])?,
    };
    let external = object
        .get("externalids")
        .or_else(|| object.get("externalIds"));
    let external_id = |key: &str| external.and_then(|e| nested_str(e, &[key]));
    let doi = external_id("DOI").and_then(normalize_doi);
    let eprint = external_id("ArXiv").and_then(fields::non_empty);
    let mut categories = names_in(object, "s2fieldsofstudy", &["category"]);
    if categories.is_empty() {
        categories = names_in(object, "s2FieldsOfStudy", &["category"]);
    }
    let url = non_empty(get_str(object, "url")?)
        .or_else(|| eprint.as_deref().and_then(arxiv_abs_url))
        .or_else(|| doi.as_ref().map(|doi| format!("https://doi.org/{doi}")));
    let venue = object
        .get("journal")
        .and_then(|j| nested_str(j, &["name"]))
        .or_else(|| object.get("venue").and_then(Value::as_str))
        .and_then(fields::non_empty);
    let conference = ["publicationtypes", "publicationTypes"].iter().any(|key| {
        object
            .get(*key)
            .and_then(Value::as_array)
            .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("Conference")))
    });
    let (journal, booktitle) = if conference {
        (None, venue)
    } else {
        (venue, None)
    };
    Ok(Paper {
        id,
        title,
        abstract_text,
        authors,
        categories,
        date,
        url,
        doi,
        journal,
        booktitle,
        eprint,
        collections: Vec::new(),
    })
}

fn arxiv_paper(object: &Object) -> Result<Paper, String> {
    let id = required_id(object, "id")?;
    let title = normalize_whitespace(get_str(object, "title")?.unwrap_or(""));
    let abstract_text = clean_abstract(get_str(object, "abstract")?.unwrap_or(""));
    ensure_text(&title, &abstract_text)?;
    let authors = string_list(object, "authors", split_author_string)?;
    let categories = string_list(object, "categories", split_categories)?;
    let date = arxiv_date(object, &id)?;
    let url = match non_empty(get_str(object, "abs_url")?) {
        Some(url) => Some(url),
        None => non_empty(get_str(object, "url")?).or_else(|| arxiv_abs_url(&id)),
    };
    Ok(Paper {
        id,
        title,
        abstract_text,
        authors,
        categories,
        date,
        url,
        ..Paper::default()
    })
}

/// The date a paper was first made public. The Kaggle snapshot's
/// `update_date` is the last revision's, so its `versions[0].created`
/// (`Mon, 2 Apr 2007 19:18:42 GMT`) comes first; then the fields our dump
/// and other exports use. The id of an arXiv paper names the month of its
/// first version, so a date from a later month (a revision or a re-listing)
/// gives way to that month (`YYYY-MM`), and a paper with no date gets it.
fn arxiv_date(object: &Object, id: &str) -> Result<Option<String>, String> {
    let mut date = first_version_date(object);
    if date.is_none() {
        // Our dump, the Kaggle snapshot, and other exports name the date differently.
        for key in ["first_listed", "published", "date", "update_date"] {
            if let Some(raw) = get_str(object, key)? {
                date = normalize_date(raw);
                if date.is_some() {
                    break;
                }
            }
        }
    }
    let Some(month) = arxiv_id_month(id) else {
        return Ok(date);
    };
    Ok(match date {
        Some(d) if d.get(..7).is_none_or(|m| m <= month.as_str()) => Some(d),
        _ => Some(month),
    })
}

/// `versions[0].created` of a Kaggle record, when it parses as a date. A
/// malformed `versions` is ignored rather than a bad record: the paper is
/// still good without it.
fn first_version_date(object: &Object) -> Option<String> {
    let created = object
        .get("versions")?
        .as_array()?
        .first()?
        .get("created")?;
    let date = normalize_date(created.as_str()?)?;
    // normalize_date keeps unparseable text as given; only a real date counts here.
    (date.len() == 10 && date.as_bytes()[4] == b'-').then_some(date)
}

fn beir_paper(object: &Object) -> Result<Paper, String> {
    let id = required_id(object, "_id")?;
    let title = normalize_whitespace(get_str(object, "title")?.unwrap_or(""));
    let abstract_text = clean_abstract(get_str(object, "text")?.unwrap_or(""));
    ensure_text(&title, &abstract_text)?;
    let url = match object.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(metadata)) => non_empty(get_str(metadata, "url")?),
        Some(other) => {
            return Err(format!(
                "field `metadata` must be an object, found {}",
                type_name(other)
            ))
        }
    };
    Ok(Paper {
        id,
        title,
        abstract_text,
        authors: Vec::new(),
        categories: Vec::new(),
        date: None,
        url,
        ..Paper::default()
    })
}

pub(crate) fn text_record(object: &Object) -> Result<TextRecord, String> {
    let id = required_id(object, "id")?;
    let text = match get_str(object, "text")? {
        None => return Err("missing `text`".to_string()),
        Some(text) if text.trim().is_empty() => return Err("empty `text`".to_string()),
        Some(text) => text.to_string(),
    };
    Ok(TextRecord { id, text })
}
