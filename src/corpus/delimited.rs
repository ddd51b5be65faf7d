//! CSV and TSV with a header row.
//!
//! Record boundaries are found by a small quote-aware scanner of our own, and
//! each record's fields are then decoded by the `csv` crate. The scanner exists
//! because the `csv` crate is deliberately lenient: it silently merges
//! `"abc"def` into one field and lets an unterminated quote swallow the rest
//! of the file, where we want such rows reported with their line number. A
//! quote inside an unquoted field (`5" disk`) is accepted as a literal, as the
//! `csv` crate and Python's `csv` module do.

use std::io::{self, BufRead};

use csv::{ByteRecord, ReaderBuilder};

use super::fields::{
    arxiv_abs_url, best_date, clean_abstract, ensure_text, last_first_to_first_last, non_empty,
    normalize_doi, normalize_whitespace, split_author_string, split_categories,
};
use super::input::{too_long_reason, Input, ReadFailure};
use super::{CorpusError, Event, Paper, Source, MAX_LINE_BYTES};

/// Header names per field, case-insensitive, in order of preference. Zotero's
/// CSV export names its columns `Key`, `Item Type`, `Publication Year`,
/// `Author` (`Last, First; Last, First`), `Title`, `Publication Title`,
/// `DOI`, `Url`, `Abstract Note`, `Date`, ..., `Manual Tags`; Mendeley and
/// other managers use the plain names.
const ID: &[&str] = &["id", "paper_id", "arxiv_id", "_id", "key", "citation key"];
const TITLE: &[&str] = &["title"];
const ABSTRACT: &[&str] = &["abstract", "text", "summary", "abstract note"];
const AUTHORS: &[&str] = &["authors", "author"];
const CATEGORIES: &[&str] = &["categories", "category", "keywords", "manual tags"];
const DATE: &[&str] = &[
    "date",
    "update_date",
    "published",
    "publication date",
    "year",
    "publication year",
];
const URL: &[&str] = &["url", "abs_url"];
const DOI: &[&str] = &["doi"];
const VENUE: &[&str] = &["publication title", "journal", "venue", "booktitle"];
/// Zotero's item type: `conferencePaper` puts the venue in `booktitle`.
const ITEM_TYPE: &[&str] = &["item type"];
const EPRINT: &[&str] = &["eprint"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// Just after a quote inside a quoted field: either the closing quote or
    /// the first half of an escaped `""`.
    AfterQuote,
}

struct Scanned {
    /// Line the record starts on.
    line: usize,
    problem: Option<String>,
}

/// Splits the byte stream into records, holding at most [`MAX_LINE_BYTES`]
/// of one record.
struct Scanner {
    input: Input,
    delimiter: u8,
    /// Line the next byte is on.
    line: usize,
    buf: Vec<u8>,
}

impl Scanner {
    /// The next non-blank record, its bytes left in `self.buf` without the
    /// terminator (and without `\r` outside quotes).
    fn next(&mut self) -> Result<Option<Scanned>, ReadFailure> {
        loop {
            let Some(scanned) = self.next_raw()? else {
                return Ok(None);
            };
            if scanned.problem.is_some() || !self.buf.is_empty() {
                return Ok(Some(scanned));
            }
        }
    }

    fn next_raw(&mut self) -> Result<Option<Scanned>, ReadFailure> {
        self.buf.clear();
        let start = self.line;
        let mut state = State::FieldStart;
        let mut problem: Option<String> = None;
        let mut too_long = false;
        let mut consumed_any = false;
        loop {
            let chunk = match self.input.reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.input.classify(e)),
            };
            if chunk.is_empty() {
                if !consumed_any {
                    return Ok(None);
                }
                if state == State::Quoted && problem.is_none() {
                    problem = Some("unterminated quoted field (reached end of file)".to_string());
                }
                break;
            }
            consumed_any = true;
            let mut used = 0;
            let mut ended = false;
            for &b in chunk {
                used += 1;
                if b == b'\n' {
                    self.line += 1;
                    if state != State::Quoted {
                        ended = true;
                        break;
                    }
                }
                let keep = match (state, b) {
                    (State::Quoted, b'"') => {
                        state = State::AfterQuote;
                        true
                    }
                    (State::Quoted, _) => true,
                    // Outside quotes `\r` can only be part of a CRLF terminator.
                    (_, b'\r') => false,
                    (State::FieldStart, b'"') => {
                        state = State::Quoted;
                        true
                    }
                    (State::AfterQuote, b'"') => {
                        state = State::Quoted;
                        true
                    }
                    (_, d) if d == self.delimiter => {
                        state = State::FieldStart;
                        true
                    }
                    (State::AfterQuote, _) => {
                        if problem.is_none() {
                            problem = Some(
                                "stray quote: text after the closing quote of a field".to_string(),
                            );
                        }
                        state = State::Unquoted;
                        true
                    }
                    (State::FieldStart | State::Unquoted, _) => {
                        state = State::Unquoted;
                        true
                    }
                };
                if keep && !too_long {
                    if self.buf.len() < MAX_LINE_BYTES {
                        self.buf.push(b);
                    } else {
                        too_long = true;
                        self.buf.clear();
                    }
                }
            }
            self.input.reader.consume(used);
            if ended {
                break;
            }
        }
        if too_long {
            problem = Some(too_long_reason());
        }
        Ok(Some(Scanned {
            line: start,
            problem,
        }))
    }

    fn failure(&self, failure: ReadFailure) -> Result<(usize, String), CorpusError> {
        self.input.failure(failure, self.line)
    }
}

#[derive(Debug, Default)]
struct Columns {
    id: Option<usize>,
    title: Option<usize>,
    abstract_text: Option<usize>,
    authors: Option<usize>,
    categories: Option<usize>,
    /// Every date column present, in [`DATE`]'s order.
    date: Vec<usize>,
    url: Option<usize>,
    doi: Option<usize>,
    venue: Option<usize>,
    item_type: Option<usize>,
    eprint: Option<usize>,
}

pub(crate) struct DelimitedSource {
    scanner: Scanner,
    builder: ReaderBuilder,
    columns: Columns,
    width: usize,
    /// Data rows seen, bad ones included, so `row-{n}` ids do not shift when
    /// an earlier row is fixed.
    rows: usize,
}

impl DelimitedSource {
    /// Reads the header row; a file without one is an empty corpus.
    pub(crate) fn new(input: Input, delimiter: u8) -> Result<Self, CorpusError> {
        let path = input.path().to_path_buf();
        let bad_header = |reason: String| CorpusError::BadHeader {
            path: path.clone(),
            reason,
        };
        let mut builder = ReaderBuilder::new();
        builder
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter);
        let scanner = Scanner {
            input,
            delimiter,
            line: 1,
            buf: Vec::new(),
        };
        let mut source = DelimitedSource {
            scanner,
            builder,
            columns: Columns::default(),
            width: 0,
            rows: 0,
        };
        match source.scanner.next() {
            Ok(Some(Scanned {
                problem: Some(reason),
                ..
            })) => Err(bad_header(reason)),
            Ok(Some(_)) => source.with_header(&path),
            Ok(None) => Ok(source),
            Err(failure) => Err(source.scanner.input.io_error(failure)),
        }
    }

    fn with_header(mut self, path: &std::path::Path) -> Result<Self, CorpusError> {
        let bad_header = |reason: String| CorpusError::BadHeader {
            path: path.to_path_buf(),
            reason,
        };
        let record = self.decode().map_err(bad_header)?;
        let mut names = Vec::with_capacity(record.len());
        for (i, raw) in record.iter().enumerate() {
            let name = std::str::from_utf8(raw)
                .map_err(|_| bad_header(format!("column {} is not valid UTF-8", i + 1)))?;
            // Spreadsheet exports often start with a byte-order mark.
            let name = name
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            names.push(name);
        }
        let find = |aliases: &[&str]| {
            aliases
                .iter()
                .find_map(|alias| names.iter().position(|name| name == alias))
        };
        self.columns = Columns {
            id: find(ID),
            title: find(TITLE),
            abstract_text: find(ABSTRACT),
            authors: find(AUTHORS),
            categories: find(CATEGORIES),
            date: DATE
                .iter()
                .filter_map(|alias| names.iter().position(|name| name == alias))
                .collect(),
            url: find(URL),
            doi: find(DOI),
            venue: find(VENUE),
            item_type: find(ITEM_TYPE),
            eprint: find(EPRINT),
        };
        self.width = names.len();
        if self.columns.title.is_none() && self.columns.abstract_text.is_none() {
            return Err(bad_header(format!(
                "no title or abstract column (expected one of: {}) among: {}",
                [TITLE, ABSTRACT].concat().join(", "),
                names.join(", ")
            )));
        }
        if self.columns.id.is_none() {
            tracing::warn!(
                "{}: no id column ({}); using row-N ids",
                path.display(),
                ID.join(", ")
            );
        }
        Ok(self)
    }

    fn decode(&self) -> Result<ByteRecord, String> {
        let mut reader = self.builder.from_reader(self.scanner.buf.as_slice());
        let mut record = ByteRecord::new();
        match reader.read_byte_record(&mut record) {
            Ok(_) => Ok(record),
            Err(e) => Err(format!("malformed row: {e}")),
        }
    }

    fn paper(&self, record: &ByteRecord) -> Result<Paper, String> {
        if record.len() != self.width {
            return Err(format!(
                "expected {} fields (as in the header), found {}",
                self.width,
                record.len()
            ));
        }
        let field = |index: Option<usize>, name: &str| -> Result<&str, String> {
            match index.and_then(|i| record.get(i)) {
                None => Ok(""),
                Some(raw) => std::str::from_utf8(raw)
                    .map(str::trim)
                    .map_err(|_| format!("invalid UTF-8 in column `{name}`")),
            }
        };
        let id = match self.columns.id {
            Some(_) => {
                let id = field(self.columns.id, "id")?;
                if id.is_empty() {
                    return Err("empty id".to_string());
                }
                id.to_string()
            }
            None => format!("row-{}", self.rows),
        };
        let title = normalize_whitespace(field(self.columns.title, "title")?);
        let abstract_text = clean_abstract(field(self.columns.abstract_text, "abstract")?);
        ensure_text(&title, &abstract_text)?;
        let authors_raw = field(self.columns.authors, "authors")?;
        let authors = if authors_raw.contains(';') {
            // Zotero and Mendeley: `Last, First; Last, First`.
            authors_raw
                .split(';')
                .map(last_first_to_first_last)
                .filter(|a| !a.is_empty())
                .collect()
        } else {
            split_author_string(authors_raw)
        };
        let categories = split_categories(field(self.columns.categories, "categories")?);
        let dates = self
            .columns
            .date
            .iter()
            .map(|&i| field(Some(i), "date"))
            .collect::<Result<Vec<_>, _>>()?;
        let date = best_date(dates);
        let url = match field(self.columns.url, "url")? {
            "" => arxiv_abs_url(&id),
            url => Some(url.to_string()),
        };
        let doi = normalize_doi(field(self.columns.doi, "doi")?);
        let venue = non_empty(field(self.columns.venue, "venue")?);
        let in_proceedings = matches!(
            field(self.columns.item_type, "item type")?,
            "conferencePaper" | "bookSection"
        );
        let (journal, booktitle) = match in_proceedings {
            true => (None, venue),
            false => (venue, None),
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
            eprint: non_empty(field(self.columns.eprint, "eprint")?),
            collections: Vec::new(),
        })
    }
}

impl Source for DelimitedSource {
    fn next_event(&mut self) -> Result<Option<Event>, CorpusError> {
        let scanned = match self.scanner.next() {
            Ok(Some(scanned)) => scanned,
            Ok(None) => return Ok(None),
            Err(failure) => {
                let (line, reason) = self.scanner.failure(failure)?;
                return Ok(Some(Event::Fatal { line, reason }));
            }
        };
        self.rows += 1;
        let line = scanned.line;
        let paper = match scanned.problem {
            Some(reason) => Err(reason),
            None => self.decode().and_then(|record| self.paper(&record)),
        };
        Ok(Some(match paper {
            Ok(paper) => Event::Paper { paper, line },
            Err(reason) => Event::Bad { line, reason },
        }))
    }
}
