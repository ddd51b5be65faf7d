//! RIS, the tagged format every reference manager exports (`.ris`).
//!
//! A record is the lines from `TY  - TYPE` to `ER  -`; each line is a
//! two-character tag, two spaces, a hyphen, a space and the value. A line
//! without a tag inside a record continues the previous field's value (some
//! exporters wrap long abstracts). Fields read: `ID` (the id; else the DOI,
//! else `ris-N` for the N-th record), `TI`/`T1` (title), `AB`/`N2`
//! (abstract), `AU`/`A1` (authors, `Last, First`), `DA`, `PY`, `Y1` (date,
//! `YYYY/MM/DD/other`), `DO` (DOI), `UR` (URL), `KW` (keywords, as
//! categories), `JO`/`JF`/`JA`/`T2` (journal; `T2`/`BT` of a conference paper
//! is its proceedings).

use super::fields::{
    arxiv_abs_url, best_date, clean_abstract, ensure_text, last_first_to_first_last, non_empty,
    normalize_doi, normalize_whitespace,
};
use super::input::{too_long_reason, LineReader};
use super::{CorpusError, Event, Paper, Source, MAX_LINE_BYTES};

/// Whether `line` opens a record: `TY  - ...` (spacing around the hyphen is
/// not always as the specification says).
pub(crate) fn is_type_line(line: &str) -> bool {
    matches!(tag_line(line), Some(("TY", _)))
}

/// Splits `XX  - value` into its tag and trimmed value.
fn tag_line(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    if bytes.len() < 3
        || !bytes[0].is_ascii_uppercase()
        || !(bytes[1].is_ascii_uppercase() || bytes[1].is_ascii_digit())
    {
        return None;
    }
    // The first two bytes are ASCII, so index 2 is a char boundary.
    let rest = line[2..].trim_start_matches(' ');
    let value = rest.strip_prefix('-')?;
    Some((&line[..2], value.trim()))
}

/// One record being read.
struct Record {
    /// Line of its `TY` tag.
    line: usize,
    kind: String,
    fields: Vec<(String, String)>,
    bytes: usize,
    problem: Option<String>,
}

pub(crate) struct RisSource {
    lines: LineReader,
    record: Option<Record>,
    /// Records started so far, for `ris-N` ids.
    records: usize,
    /// An event found while starting the next record, handed out first.
    pending: Option<Event>,
    done: bool,
}

impl RisSource {
    pub(crate) fn new(lines: LineReader) -> Self {
        RisSource {
            lines,
            record: None,
            records: 0,
            pending: None,
            done: false,
        }
    }

    fn finish(&mut self, record: Record) -> Event {
        let line = record.line;
        match record.problem {
            Some(reason) => Event::Bad { line, reason },
            None => match paper(&record, self.records) {
                Ok(paper) => Event::Paper { paper, line },
                Err(reason) => Event::Bad { line, reason },
            },
        }
    }
}

impl Source for RisSource {
    fn next_event(&mut self) -> Result<Option<Event>, CorpusError> {
        if let Some(event) = self.pending.take() {
            return Ok(Some(event));
        }
        if self.done {
            return Ok(None);
        }
        loop {
            let line = match self.lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => {
                    self.done = true;
                    return Ok(self.record.take().map(|r| Event::Bad {
                        line: r.line,
                        reason: "record not closed by `ER  -` (reached end of file)".to_string(),
                    }));
                }
                Err(failure) => {
                    self.done = true;
                    let (line, reason) = self.lines.failure(failure)?;
                    return Ok(Some(Event::Fatal { line, reason }));
                }
            };
            let number = line.number;
            if line.too_long {
                match &mut self.record {
                    Some(record) => {
                        record.problem.get_or_insert_with(too_long_reason);
                        continue;
                    }
                    None => {
                        return Ok(Some(Event::Bad {
                            line: number,
                            reason: too_long_reason(),
                        }))
                    }
                }
            }
            let text = match std::str::from_utf8(line.bytes) {
                Ok(text) => text.trim_start_matches('\u{feff}').trim_end(),
                Err(e) => {
                    let reason = format!(
                        "invalid UTF-8 on line {number} at byte {}",
                        e.valid_up_to() + 1
                    );
                    match &mut self.record {
                        Some(record) => {
                            record.problem.get_or_insert(reason);
                            continue;
                        }
                        None => {
                            return Ok(Some(Event::Bad {
                                line: number,
                                reason,
                            }))
                        }
                    }
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            match tag_line(text) {
                Some(("TY", kind)) => {
                    self.records += 1;
                    let next = Record {
                        line: number,
                        kind: kind.to_string(),
                        fields: Vec::new(),
                        bytes: 0,
                        problem: None,
                    };
                    if let Some(open) = self.record.replace(next) {
                        return Ok(Some(Event::Bad {
                            line: open.line,
                            reason: format!(
                                "record not closed by `ER  -` before the next `TY` on line {number}"
                            ),
                        }));
                    }
                }
                Some(("ER", _)) => match self.record.take() {
                    Some(record) => return Ok(Some(self.finish(record))),
                    None => {
                        return Ok(Some(Event::Bad {
                            line: number,
                            reason: "`ER` without a record (no `TY` before it)".to_string(),
                        }))
                    }
                },
                tagged => {
                    let Some(record) = &mut self.record else {
                        return Ok(Some(Event::Bad {
                            line: number,
                            reason: "text outside a record (records start with `TY  -`)"
                                .to_string(),
                        }));
                    };
                    record.bytes += text.len();
                    if record.bytes > MAX_LINE_BYTES {
                        record.fields.clear();
                        record.problem.get_or_insert_with(too_long_reason);
                        continue;
                    }
                    match (tagged, record.fields.last_mut()) {
                        (Some((tag, value)), _) => {
                            record.fields.push((tag.to_string(), value.to_string()))
                        }
                        // A wrapped line continues the previous field.
                        (None, Some((_, value))) => {
                            value.push(' ');
                            value.push_str(text.trim());
                        }
                        (None, None) => {
                            record.problem.get_or_insert_with(|| {
                                format!("line {number} has no tag (`XX  - value`)")
                            });
                        }
                    }
                }
            }
        }
    }
}

/// `2019/05/01/`, `2019///`, `2019/05//spring` → `2019-05-01`, `2019`, `2019-05`.
fn ris_date(raw: &str) -> String {
    let parts: Vec<&str> = raw.split('/').map(str::trim).collect();
    let numeric = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [y, m, d, ..] if numeric(y, 4) && numeric(m, 2) && numeric(d, 2) => {
            format!("{y}-{m}-{d}")
        }
        [y, m, ..] if numeric(y, 4) && numeric(m, 2) => format!("{y}-{m}"),
        [y, ..] if numeric(y, 4) => y.to_string(),
        _ => raw.trim().to_string(),
    }
}

fn paper(record: &Record, ordinal: usize) -> Result<Paper, String> {
    let first = |tags: &[&str]| {
        tags.iter().find_map(|tag| {
            record
                .fields
                .iter()
                .find(|(t, v)| t == tag && !v.trim().is_empty())
                .map(|(_, v)| v.as_str())
        })
    };
    let all = |tags: &[&str]| {
        record
            .fields
            .iter()
            .filter(|(t, _)| tags.contains(&t.as_str()))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let title = normalize_whitespace(first(&["TI", "T1"]).unwrap_or(""));
    let abstract_text = clean_abstract(first(&["AB", "N2"]).unwrap_or(""));
    ensure_text(&title, &abstract_text)?;
    let doi = first(&["DO"]).and_then(normalize_doi);
    let id = match first(&["ID"]).and_then(non_empty) {
        Some(id) => id,
        None => doi.clone().unwrap_or_else(|| format!("ris-{ordinal}")),
    };
    let authors = all(&["AU", "A1"])
        .into_iter()
        .map(last_first_to_first_last)
        .filter(|a| !a.is_empty())
        .collect();
    let categories = all(&["KW"])
        .into_iter()
        .filter_map(non_empty)
        .collect::<Vec<_>>();
    let dates: Vec<String> = all(&["DA", "PY", "Y1"]).into_iter().map(ris_date).collect();
    let date = best_date(dates.iter().map(String::as_str));
    let url = first(&["UR"])
        .and_then(non_empty)
        .or_else(|| arxiv_abs_url(&id));
    let conference = matches!(record.kind.as_str(), "CONF" | "CPAPER" | "CHAP");
    let (journal, booktitle) = if conference {
        (None, first(&["T2", "BT"]).and_then(non_empty))
    } else {
        (first(&["JO", "JF", "JA", "T2"]).and_then(non_empty), None)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_dates() {
        assert_eq!(tag_line("TY  - JOUR"), Some(("TY", "JOUR")));
        assert_eq!(tag_line("ER  -"), Some(("ER", "")));
        assert_eq!(tag_line("A1 - Doe, J."), Some(("A1", "Doe, J.")));
        assert_eq!(tag_line("Ty  - x"), None);
        assert_eq!(tag_line("continued text"), None);
        assert!(is_type_line("TY  - CONF"));
        assert_eq!(ris_date("2019/05/01/"), "2019-05-01");
        assert_eq!(ris_date("2019///"), "2019");
        assert_eq!(ris_date("2019/05//Spring"), "2019-05");
        assert_eq!(ris_date("Spring 2019"), "Spring 2019");
    }
}
