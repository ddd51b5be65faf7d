//! Reading paper corpora: arXiv / Kaggle-arXiv JSON lines, BEIR corpora,
//! CSV/TSV with a header row (Zotero's CSV export included), the Hugging Face
//! Daily Papers page as a person copies it out of the browser, BibTeX and RIS
//! files from reference managers, OpenAlex works and Semantic Scholar papers
//! and abstracts datasets.
//!
//! All readers stream, so a multi-gigabyte corpus never has to fit in memory,
//! and gzip is recognised by its magic bytes because people rename files.
//! One bad record never aborts a file: it is skipped and reported as an
//! [`Issue`] with `file:line`, unless [`ReadOptions::strict`] asks for the
//! first one to be fatal. In every summary `skipped == issues.len()`.

mod bibtex;
mod delimited;
mod fetch;
mod fields;
mod hf_daily;
mod input;
mod json;
mod listing;
mod ris;
mod s2;
mod sentences;
mod template;
#[cfg(feature = "zotero")]
mod zotero;
#[cfg(not(feature = "zotero"))]
#[path = "zotero_off.rs"]
mod zotero;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use sentences::{
    locate_sentences, paper_sentences, sentence_ranges, split_sentences, LocatedSentences,
    MAX_PAPER_SENTENCES,
};
pub use template::TextTemplate;

pub(crate) use fields::is_arxiv_id;

pub use fetch::{fetch_listing, is_url, next_page_url};
pub use listing::{parse_listing, Listing, ListingFailure};

use input::{Input, LineReader};

/// Longest record accepted, in bytes (1 MiB): one line of a JSON-lines file,
/// one (possibly multi-line) row of a CSV/TSV file, one line of an hf-daily
/// copy. Longer records are bad records. The readers stop buffering at the cap
/// and skip to the end of the record, so a file without newlines or a stray
/// binary blob cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Abstracts are cut to this many characters (at a character boundary),
/// silently: the embedder only looks at the first 256 tokens anyway, and the
/// cap keeps a pathological record from bloating everything downstream.
pub const MAX_ABSTRACT_CHARS: usize = 100_000;

/// The `--format` names, for messages.
const FORMAT_NAMES: &str =
    "arxiv, beir, csv, tsv, hf-daily, bibtex, ris, openalex, s2, arxiv-listing, zotero";

/// Everything that can go wrong while reading a corpus.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The file could not be opened or read. A corrupt gzip stream met while
    /// reading records is reported as a bad record instead.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The corpus file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No `--format` was given and [`detect_format`] could not decide from the
    /// extension or the first lines.
    #[error("cannot tell the format of {}: {reason}; pass --format with one of: {names}", .path.display(), names = FORMAT_NAMES)]
    UnknownFormat {
        /// The corpus file.
        path: PathBuf,
        /// Why detection failed (empty file, unrecognised JSON, ...).
        reason: String,
    },
    /// A `--format` name that is not one of [`Format::ALL`]; holds the name as given.
    #[error("unknown format `{0}`; expected one of: {names}", names = FORMAT_NAMES)]
    UnknownFormatName(String),
    /// The CSV/TSV header row is malformed or has neither a title nor an
    /// abstract column.
    #[error("{}: bad header row: {reason}", .path.display())]
    BadHeader {
        /// The corpus file.
        path: PathBuf,
        /// What is wrong with the header.
        reason: String,
    },
    /// In strict mode, the first bad record, which ends reading.
    #[error("bad record at {0}")]
    BadRecord(Issue),
    /// An arXiv listing (Atom, OAI-PMH, RSS) that is not well-formed or
    /// was cut short: nothing of it is used.
    #[error("{}:{line}: {reason}", .path.display())]
    Listing {
        /// The listing file (or URL).
        path: PathBuf,
        /// 1-based line where reading stopped.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An OAI-PMH server answered with an error instead of records.
    #[error("{}: the OAI-PMH server answered `{code}`: {message}", .path.display())]
    OaiError {
        /// The listing file (or URL).
        path: PathBuf,
        /// The OAI-PMH error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// A listing URL could not be fetched (network, HTTP status, no curl).
    #[error("{url}: {reason}")]
    Fetch {
        /// The page's URL.
        url: String,
        /// What went wrong, and what to do.
        reason: String,
    },
    /// A Zotero database that could not be read (not one, or damaged).
    #[error("{}: {reason}", .path.display())]
    Zotero {
        /// The `zotero.sqlite` file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A `--collection` the Zotero library does not have.
    #[error("no collection named {name:?} in the Zotero library; it has: {known}")]
    UnknownCollection {
        /// The name as given.
        name: String,
        /// The library's collection names, sorted.
        known: String,
    },
    /// `--collection` given for a corpus that is not a Zotero library.
    #[error("--collection needs a Zotero library (--format zotero), not {format}")]
    CollectionsNeedZotero {
        /// The corpus's format.
        format: Format,
    },
    /// A `--template` string that does not parse (unknown placeholder,
    /// unmatched brace, or neither `{title}` nor `{abstract}`).
    #[error("invalid text template `{template}`: {reason}")]
    BadTemplate {
        /// The template as given.
        template: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// One paper, whatever file it came from.
///
/// The bibliographic fields after `url` (`doi`, `journal`, `booktitle`,
/// `eprint`) are kept when the source has them (BibTeX, RIS, Zotero CSV,
/// OpenAlex, Semantic Scholar) and are left out of the stored JSON when
/// empty, so libraries written before they existed read and write the same
/// bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Paper {
    /// Unique within a corpus (duplicates are bad records): the arXiv id, the
    /// BEIR `_id`, the CSV/TSV id column (`row-N` without one), or for
    /// hf-daily a slug of the title.
    pub id: String,
    /// Whitespace-normalised title; may be empty if the abstract is not.
    pub title: String,
    /// Whitespace-normalised abstract, cut to [`MAX_ABSTRACT_CHARS`]
    /// characters; may be empty if the title is not. Serialised as `abstract`.
    #[serde(rename = "abstract")]
    pub abstract_text: String,
    /// Author names in source order; empty when the source has none (hf-daily, BEIR).
    #[serde(default)]
    pub authors: Vec<String>,
    /// Subject categories as given by the source (e.g. arXiv `cs.CL`); often empty.
    #[serde(default)]
    pub categories: Vec<String>,
    /// `YYYY-MM-DD` when the source's date could be parsed, else the source's
    /// text as given (e.g. a bare year from a CSV `year` column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Link to the paper: the source's URL, else the arXiv abstract page when
    /// the id looks like an arXiv id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The DOI without a resolver prefix (`10.1000/xyz`), when the source has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doi: Option<String>,
    /// The journal an article appeared in (BibTeX `journal`/`journaltitle`,
    /// RIS `JO`/`JF`/`T2`, Zotero's Publication Title, OpenAlex and Semantic
    /// Scholar venues that are journals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// The proceedings or book a paper appeared in (BibTeX `booktitle`, RIS
    /// `T2` of a conference paper, OpenAlex conference sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booktitle: Option<String>,
    /// A preprint identifier as BibTeX's `eprint` holds it (e.g. an arXiv id
    /// of a paper whose own id is a citation key or a DOI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eprint: Option<String>,
    /// The collections the paper is filed in (a Zotero library's), each
    /// with the collections above it, so that a collection's name selects
    /// its sub-collections' papers too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
}

/// The input formats understood by [`open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// arXiv metadata as JSON lines (also the Kaggle arXiv snapshot): `id`,
    /// `title`, `abstract`, ...
    Arxiv,
    /// A BEIR `corpus.jsonl`: `_id`, `title`, `text`.
    Beir,
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// The Hugging Face Daily Papers page as text copied from the browser.
    HfDaily,
    /// BibTeX / BibLaTeX (`.bib`, as JabRef, Zotero or Mendeley export it):
    /// one paper per entry, the citation key as its id.
    Bibtex,
    /// RIS (`.ris`): one paper per `TY  -` … `ER  -` record.
    Ris,
    /// OpenAlex works as JSON lines (the API's or the snapshot's), the
    /// abstract rebuilt from `abstract_inverted_index`.
    OpenAlex,
    /// Semantic Scholar datasets: `papers` JSON lines, joined with the
    /// `abstracts` dataset by `corpusid` when given a folder holding both.
    S2,
    /// An arXiv listing: the arXiv API's Atom feed, an OAI-PMH `ListRecords`
    /// page (`arXivRaw` or `arXiv` metadata) or the RSS feed.
    Listing,
    /// A Zotero library read in place: its `zotero.sqlite` or its data
    /// folder.
    Zotero,
}

impl Format {
    /// Every format, in the order they are listed in messages.
    pub const ALL: [Format; 11] = [
        Format::Arxiv,
        Format::Beir,
        Format::Csv,
        Format::Tsv,
        Format::HfDaily,
        Format::Bibtex,
        Format::Ris,
        Format::OpenAlex,
        Format::S2,
        Format::Listing,
        Format::Zotero,
    ];

    /// The name used by `--format` and [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Format::Arxiv => "arxiv",
            Format::Beir => "beir",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::HfDaily => "hf-daily",
            Format::Bibtex => "bibtex",
            Format::Ris => "ris",
            Format::OpenAlex => "openalex",
            Format::S2 => "s2",
            Format::Listing => "arxiv-listing",
            Format::Zotero => "zotero",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = CorpusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| f.name() == wanted)
            .ok_or_else(|| CorpusError::UnknownFormatName(s.to_string()))
    }
}

/// How [`open`] reads a corpus. The default detects the format and skips bad records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// `None` detects the format with [`detect_format`].
    pub format: Option<Format>,
    /// Make the first bad record an error instead of skipping it.
    pub strict: bool,
    /// Zotero only: read the papers of these collections (and of their
    /// sub-collections); empty reads all.
    pub collections: Vec<String>,
}

/// A bad record: where it is and why it was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The file the record is in.
    pub path: PathBuf,
    /// 1-based line where the record starts; 0 for a paper left out after
    /// reading (the model gave it a degenerate vector).
    pub line: usize,
    /// Why the record was skipped, in words for the user.
    pub reason: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.reason)
    }
}

/// What a reader did. `skipped == issues.len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSummary {
    /// The format the file was read as (given or detected).
    pub format: Format,
    /// Papers yielded so far.
    pub read: usize,
    /// Bad records skipped so far (duplicates included).
    pub skipped: usize,
    /// One entry per skipped record, in file order.
    pub issues: Vec<Issue>,
}

/// What a format-specific source hands to [`CorpusReader`], which owns the
/// policy (duplicates, counting, strictness) so that every format gets it alike.
// A paper is moved through once per record; boxing it would cost an
// allocation per paper to save a few hundred bytes on the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Event {
    Paper {
        paper: Paper,
        line: usize,
    },
    Bad {
        line: usize,
        reason: String,
    },
    /// The rest of the input is unreadable (corrupt gzip): reported like a bad
    /// record, then reading stops.
    Fatal {
        line: usize,
        reason: String,
    },
}

pub(crate) trait Source: Send {
    fn next_event(&mut self) -> Result<Option<Event>, CorpusError>;

    /// The file the last event came from, when a source reads several (a
    /// Semantic Scholar folder); `None` means the path given to [`open`].
    fn file(&self) -> Option<&Path> {
        None
    }
}

/// Streaming reader returned by [`open`]: yields good papers; bad records are
/// recorded in its summary and skipped, unless `opts.strict`, where the first
/// bad record is returned as `Err(CorpusError::BadRecord(issue))` and
/// iteration ends. I/O errors also end iteration.
pub struct CorpusReader {
    path: PathBuf,
    source: Box<dyn Source>,
    strict: bool,
    /// id -> line of its first occurrence, to name it in the duplicate's issue.
    seen: HashMap<String, usize>,
    summary: ReadSummary,
    done: bool,
}

impl CorpusReader {
    /// Counts and issues so far; final once the iterator has returned `None`.
    pub fn summary(&self) -> &ReadSummary {
        &self.summary
    }

    /// Consumes the reader for its summary (usually after iterating to the end).
    pub fn into_summary(self) -> ReadSummary {
        self.summary
    }

    /// Records the issue; in strict mode also ends iteration with it.
    fn bad(&mut self, line: usize, reason: String) -> Option<CorpusError> {
        let issue = Issue {
            path: self.source.file().unwrap_or(&self.path).to_path_buf(),
            line,
            reason,
        };
        self.summary.skipped += 1;
        self.summary.issues.push(issue.clone());
        if self.strict {
            self.done = true;
            Some(CorpusError::BadRecord(issue))
        } else {
            None
        }
    }
}

impl Iterator for CorpusReader {
    type Item = Result<Paper, CorpusError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let event = match self.source.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            match event {
                Event::Paper { paper, line } => {
                    if let Some(&first) = self.seen.get(&paper.id) {
                        let reason =
                            format!("duplicate id `{}` (first seen on line {first})", paper.id);
                        if let Some(err) = self.bad(line, reason) {
                            return Some(Err(err));
                        }
                        continue;
                    }
                    self.seen.insert(paper.id.clone(), line);
                    self.summary.read += 1;
                    return Some(Ok(paper));
                }
                Event::Bad { line, reason } => {
                    if let Some(err) = self.bad(line, reason) {
                        return Some(Err(err));
                    }
                }
                Event::Fatal { line, reason } => {
                    let err = self.bad(line, reason);
                    self.done = true;
                    return err.map(Err);
                }
            }
        }
        None
    }
}

/// Opens a corpus for streaming. The format is `opts.format`, or detected with
/// [`detect_format`]. CSV/TSV header problems are reported here.
pub fn open(path: &Path, opts: &ReadOptions) -> Result<CorpusReader, CorpusError> {
    let format = match opts.format {
        Some(format) => format,
        None => detect_format(path)?,
    };
    if !opts.collections.is_empty() && format != Format::Zotero {
        return Err(CorpusError::CollectionsNeedZotero { format });
    }
    let source: Box<dyn Source> = if format == Format::S2 {
        Box::new(s2::S2Source::open(path)?)
    } else if format == Format::Zotero {
        Box::new(EventsSource(
            zotero::read(path, &opts.collections)?.into_iter(),
        ))
    } else {
        open_file(path, format)?
    };
    Ok(CorpusReader {
        path: path.to_path_buf(),
        source,
        strict: opts.strict,
        seen: HashMap::new(),
        summary: ReadSummary {
            format,
            read: 0,
            skipped: 0,
            issues: Vec::new(),
        },
        done: false,
    })
}

/// The source of one file in one of the single-file formats.
fn open_file(path: &Path, format: Format) -> Result<Box<dyn Source>, CorpusError> {
    let input = Input::open(path)?;
    Ok(match format {
        Format::Arxiv => Box::new(json::JsonLinesSource::new(
            LineReader::new(input),
            json::Shape::Arxiv,
        )),
        Format::Beir => Box::new(json::JsonLinesSource::new(
            LineReader::new(input),
            json::Shape::Beir,
        )),
        Format::Csv => Box::new(delimited::DelimitedSource::new(input, b',')?),
        Format::Tsv => Box::new(delimited::DelimitedSource::new(input, b'\t')?),
        Format::HfDaily => Box::new(hf_daily::HfDailySource::new(LineReader::new(input))),
        Format::Bibtex => Box::new(bibtex::BibtexSource::new(LineReader::new(input))),
        Format::Ris => Box::new(ris::RisSource::new(LineReader::new(input))),
        Format::OpenAlex => Box::new(json::JsonLinesSource::new(
            LineReader::new(input),
            json::Shape::OpenAlex,
        )),
        Format::S2 => Box::new(json::JsonLinesSource::new(
            LineReader::new(input),
            json::Shape::S2,
        )),
        Format::Listing => Box::new(read_listing(input)?.into_source()),
        Format::Zotero => Box::new(EventsSource(zotero::read(path, &[])?.into_iter())),
    })
}

/// Reads a listing file whole: a listing that is cut short or an OAI-PMH
/// error fails here, before any paper is handed out.
fn read_listing(mut input: Input) -> Result<Listing, CorpusError> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut input.reader, &mut bytes).map_err(|source| {
        CorpusError::Io {
            path: input.path().to_path_buf(),
            source,
        }
    })?;
    listing_from_bytes(&bytes, input.path())
}

/// Parses listing bytes (a file's or a server's answer), naming `origin` in
/// errors.
pub fn listing_from_bytes(bytes: &[u8], origin: &Path) -> Result<Listing, CorpusError> {
    parse_listing(bytes).map_err(|failure| match failure {
        ListingFailure::Malformed { line, reason } => CorpusError::Listing {
            path: origin.to_path_buf(),
            line,
            reason,
        },
        ListingFailure::Oai { code, message } => CorpusError::OaiError {
            path: origin.to_path_buf(),
            code,
            message,
        },
    })
}

/// Papers already in memory (a listing, pages of one fetched from a
/// server), handed out like a file's.
struct EventsSource(std::vec::IntoIter<Event>);

impl Source for EventsSource {
    fn next_event(&mut self) -> Result<Option<Event>, CorpusError> {
        Ok(self.0.next())
    }
}

impl Listing {
    fn into_source(self) -> EventsSource {
        EventsSource(self.events.into_iter())
    }

    /// Appends the next page's records (OAI-PMH paging) and takes its token.
    pub fn extend(&mut self, next: Listing) {
        self.events.extend(next.events);
        self.resumption_token = next.resumption_token;
    }
}

/// A streaming reader over a listing already read (e.g. fetched), with
/// the same duplicate and bad-record policy as [`open`]; `origin` names it.
pub fn listing_reader(listing: Listing, origin: &Path, strict: bool) -> CorpusReader {
    CorpusReader {
        path: origin.to_path_buf(),
        source: Box::new(listing.into_source()),
        strict,
        seen: HashMap::new(),
        summary: ReadSummary {
            format: Format::Listing,
            read: 0,
            skipped: 0,
            issues: Vec::new(),
        },
        done: false,
    }
}

/// Convenience: reads everything [`open`] yields.
pub fn read_all(path: &Path, opts: &ReadOptions) -> Result<(Vec<Paper>, ReadSummary), CorpusError> {
    let mut reader = open(path, opts)?;
    let papers = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((papers, reader.into_summary()))
}

/// How many lines [`detect_format`] looks through for an hf-daily marker.
const SNIFF_LINES: usize = 2000;

/// Guesses the format: a folder is a Semantic Scholar papers + abstracts
/// pair; from the extension (after stripping `.gz`) where it is unambiguous
/// (`.csv`, `.tsv`/`.tab`, `.txt`/`.md`, `.bib`, `.ris`), otherwise from
/// content: a first non-empty line that is a JSON object with `_id` is BEIR,
/// one with `corpusid` is Semantic Scholar, one with `abstract_inverted_index`
/// or an `https://openalex.org/` id is OpenAlex, one with `id` and `title` or
/// `abstract` is arXiv; a first line `TY  - ...` is RIS, one starting with
/// `@` (after `%` comments) is BibTeX; text with a `• N authors` line is
/// hf-daily; a first line starting with `<` is an arXiv listing (XML). A
/// Zotero data folder, a `.sqlite` file or any SQLite database is Zotero.
pub fn detect_format(path: &Path) -> Result<Format, CorpusError> {
    if zotero::is_data_folder(path) {
        return Ok(Format::Zotero);
    }
    if path.is_dir() {
        return Ok(Format::S2);
    }
    if let Some(format) = format_from_extension(path) {
        return Ok(format);
    }
    let unknown = |reason: &str| CorpusError::UnknownFormat {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if is_sqlite(path) {
        return Ok(Format::Zotero);
    }
    let mut lines = LineReader::new(Input::open(path)?);
    let mut first_non_empty = true;
    for _ in 0..SNIFF_LINES {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(failure) => return Err(lines.io_error(failure)),
        };
        let Ok(text) = std::str::from_utf8(line.bytes) else {
            if first_non_empty {
                return Err(unknown("the first line is not valid UTF-8"));
            }
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if first_non_empty {
            let text = text.trim_start_matches('\u{feff}');
            if text.starts_with('%') {
                // A BibTeX comment line before the first entry.
                continue;
            }
            first_non_empty = false;
            if ris::is_type_line(text) {
                return Ok(Format::Ris);
            }
            if text.starts_with('@') {
                return Ok(Format::Bibtex);
            }
            if text.starts_with('<') {
                return Ok(Format::Listing);
            }
            if text.starts_with('{') {
                let Ok(serde_json::Value::Object(object)) = serde_json::from_str(text) else {
                    return Err(unknown(
                        "the first line starts like JSON but is not a JSON object",
                    ));
                };
                if object.contains_key("_id") {
                    return Ok(Format::Beir);
                }
                if object.contains_key("corpusid") {
                    return Ok(Format::S2);
                }
                let openalex_id = object
                    .get("id")
                    .and_then(|id| id.as_str())
                    .is_some_and(|id| id.starts_with("https://openalex.org/"));
                if openalex_id || object.contains_key("abstract_inverted_index") {
                    return Ok(Format::OpenAlex);
                }
                if object.contains_key("id")
                    && (object.contains_key("title") || object.contains_key("abstract"))
                {
                    return Ok(Format::Arxiv);
                }
                return Err(unknown(
                    "the first line is a JSON object with neither `_id` nor `id` plus `title`/`abstract`",
                ));
            }
        }
        if hf_daily::is_authors_marker(text) {
            return Ok(Format::HfDaily);
        }
    }
    if first_non_empty {
        return Err(unknown("the file is empty"));
    }
    Err(unknown(
        "the first line is not JSON and no `• N authors` line (hf-daily) was found",
    ))
}

/// Whether the file starts with SQLite's header string.
fn is_sqlite(path: &Path) -> bool {
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == b"SQLite format 3\0"
}

fn format_from_extension(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    match Path::new(name).extension()?.to_str()? {
        "csv" => Some(Format::Csv),
        "tsv" | "tab" => Some(Format::Tsv),
        "txt" | "md" => Some(Format::HfDaily),
        "bib" | "bibtex" => Some(Format::Bibtex),
        "ris" => Some(Format::Ris),
        "xml" | "atom" | "rss" => Some(Format::Listing),
        "sqlite" => Some(Format::Zotero),
        _ => None,
    }
}

/// One `{"id": "...", "text": "..."}` line: the input of the `embed` command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextRecord {
    /// Unique within the file; duplicates are bad records.
    pub id: String,
    /// The text to embed, as given; never blank.
    pub text: String,
}

/// Reads a text-records JSON-lines file (gzip or not) with the same handling
/// of bad records as [`open`]: returns the good records and the issues, or in
/// `strict` mode the first issue as `Err(CorpusError::BadRecord)`. A text that
/// is missing, not a string or blank is a bad record.
pub fn read_text_records(
    path: &Path,
    strict: bool,
) -> Result<(Vec<TextRecord>, Vec<Issue>), CorpusError> {
    let mut lines = LineReader::new(Input::open(path)?);
    let mut records = Vec::new();
    let mut issues = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    loop {
        let (line_no, outcome) = match lines.next_line() {
            Ok(Some(line)) => {
                let outcome = match json::parse_object_line(&line) {
                    json::Parsed::Blank => continue,
                    json::Parsed::Bad(reason) => Err(reason),
                    json::Parsed::Object(object) => json::text_record(&object),
                };
                (line.number, outcome)
            }
            Ok(None) => break,
            Err(failure) => {
                let (line, reason) = lines.failure(failure)?;
                let issue = Issue {
                    path: path.to_path_buf(),
                    line,
                    reason,
                };
                if strict {
                    return Err(CorpusError::BadRecord(issue));
                }
                issues.push(issue);
                break;
            }
        };
        let outcome = outcome.and_then(|record| match seen.get(&record.id) {
            Some(first) => Err(format!(
                "duplicate id `{}` (first seen on line {first})",
                record.id
            )),
            None => Ok(record),
        });
        match outcome {
            Ok(record) => {
                seen.insert(record.id.clone(), line_no);
                records.push(record);
            }
            Err(reason) => {
                let issue = Issue {
                    path: path.to_path_buf(),
                    line: line_no,
                    reason,
                };
                if strict {
                    return Err(CorpusError::BadRecord(issue));
                }
                issues.push(issue);
            }
        }
    }
    Ok((records, issues))
}
