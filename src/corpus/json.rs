//! JSON-lines formats: arXiv (our dump and the Kaggle snapshot), BEIR corpora,
//! and `{"id", "text"}` text records.

use serde_json::{Map, Value};

use super::fields::{
    arxiv_abs_url, arxiv_id_month, clean_abstract, ensure_text, normalize_date, normalize_whitespace,
    split_author_string, split_categories,
};
use super::input::{too_long_reason, Line, LineReader};
use super::{CorpusError, Event, Paper, Source, TextRecord};

type Object = Map<String, Value>;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    Arxiv,
    Beir,
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

fn type_name(value: &Value) -> &'static str {
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
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
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
    let created = object.get("versions")?.as_array()?.first()?.get("created")?;
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
