//! Semantic Scholar datasets: `papers` and `abstracts` JSON lines (gzip or
//! not, as the Datasets API hands out their shards), joined by `corpusid`.
//!
//! Given a folder, every file in it is classified by its first record: one
//! with a `title` is a papers file, one with an `abstract` and no `title` an
//! abstracts file; other files are ignored with a warning. The abstracts are
//! read into memory first (so the pair fits a subset of the datasets, not the
//! whole ~100 GB), then the papers files are streamed in name order and each
//! paper takes its abstract by `corpusid`. Given a single file, it is read as
//! papers alone, each with the `abstract` of its own record, if any.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::input::{Input, LineReader};
use super::json::{self, Parsed, Shape};
use super::{CorpusError, Event, Source};

/// What a file in the folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Papers,
    Abstracts,
}

pub(crate) struct S2Source {
    /// Papers files still to read, in name order.
    papers: VecDeque<PathBuf>,
    /// The papers file being read, and its lines.
    current: Option<(PathBuf, LineReader)>,
    /// corpusid → abstract.
    abstracts: HashMap<String, String>,
    /// Issues met while reading the abstracts, handed out first.
    pending: VecDeque<(PathBuf, Event)>,
    /// The file of the last event.
    last_file: Option<PathBuf>,
    /// A single papers file, not a folder.
    single: Option<json::JsonLinesSource>,
}

impl S2Source {
    pub(crate) fn open(path: &Path) -> Result<Self, CorpusError> {
        let mut source = S2Source {
            papers: VecDeque::new(),
            current: None,
            abstracts: HashMap::new(),
            pending: VecDeque::new(),
            last_file: None,
            single: None,
        };
        if !path.is_dir() {
            source.single = Some(json::JsonLinesSource::new(
                LineReader::new(Input::open(path)?),
                Shape::S2,
            ));
            return Ok(source);
        }
        let io_error = |source| CorpusError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            let file = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if file.is_file() && !hidden {
                files.push(file);
            }
        }
        files.sort();
        for file in files {
            match classify(&file)? {
                Some(Kind::Papers) => source.papers.push_back(file),
                Some(Kind::Abstracts) => source.read_abstracts(&file)?,
                None => tracing::warn!(
                    "{}: neither Semantic Scholar papers (`corpusid`, `title`) nor abstracts (`corpusid`, `abstract`); ignored",
                    file.display()
                ),
            }
        }
        if source.papers.is_empty() {
            return Err(CorpusError::UnknownFormat {
                path: path.to_path_buf(),
                reason: "the folder holds no Semantic Scholar papers file (JSON lines with `corpusid` and `title`)".to_string(),
            });
        }
        Ok(source)
    }

    fn read_abstracts(&mut self, file: &Path) -> Result<(), CorpusError> {
        let mut lines = LineReader::new(Input::open(file)?);
        loop {
            let line = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return Ok(()),
                Err(failure) => {
                    let (line, reason) = lines.failure(failure)?;
                    self.pending
                        .push_back((file.to_path_buf(), Event::Bad { line, reason }));
                    return Ok(());
                }
            };
            let number = line.number;
            let found = match json::parse_object_line(&line) {
                Parsed::Blank => continue,
                Parsed::Bad(reason) => Err(reason),
                Parsed::Object(object) => abstract_record(&object),
            };
            match found {
                Ok(Some((id, text))) => {
                    self.abstracts.entry(id).or_insert(text);
                }
                Ok(None) => {}
                Err(reason) => self.pending.push_back((
                    file.to_path_buf(),
                    Event::Bad {
                        line: number,
                        reason: format!("abstracts record: {reason}"),
                    },
                )),
            }
        }
    }
}

/// `(corpusid, abstract)`; `None` for a record without an abstract (the
/// dataset has `"abstract": null` for papers whose publisher withholds it).
fn abstract_record(object: &json::Object) -> Result<Option<(String, String)>, String> {
    let id = match object.get("corpusid").or_else(|| object.get("corpusId")) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(other) => {
            return Err(format!(
                "`corpusid` must be a number or a string, found {}",
                json::type_name(other)
            ))
        }
        None => return Err("missing `corpusid`".to_string()),
    };
    match object.get("abstract") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some((id, text.clone()))),
        Some(other) => Err(format!(
            "`abstract` must be a string, found {}",
            json::type_name(other)
        )),
    }
}

/// What the first record of `file` says it is.
fn classify(file: &Path) -> Result<Option<Kind>, CorpusError> {
    let mut lines = LineReader::new(Input::open(file)?);
    for _ in 0..100 {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => return Ok(None),
        };
        match json::parse_object_line(&line) {
            Parsed::Blank => continue,
            Parsed::Bad(_) => return Ok(None),
            Parsed::Object(object) => {
                let has = |key: &str| object.contains_key(key);
                if !(has("corpusid") || has("corpusId")) {
                    return Ok(None);
                }
                return Ok(if has("title") {
                    Some(Kind::Papers)
                } else if has("abstract") {
                    Some(Kind::Abstracts)
                } else {
                    None
                });
            }
        }
    }
    Ok(None)
}

impl Source for S2Source {
    fn next_event(&mut self) -> Result<Option<Event>, CorpusError> {
        if let Some(single) = &mut self.single {
            return single.next_event();
        }
        if let Some((file, event)) = self.pending.pop_front() {
            self.last_file = Some(file);
            return Ok(Some(event));
        }
        loop {
            let Some((file, lines)) = &mut self.current else {
                let Some(next) = self.papers.pop_front() else {
                    return Ok(None);
                };
                let lines = LineReader::new(Input::open(&next)?);
                self.current = Some((next, lines));
                continue;
            };
            self.last_file = Some(file.clone());
            let line = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => {
                    self.current = None;
                    continue;
                }
                Err(failure) => {
                    let (line, reason) = lines.failure(failure)?;
                    self.current = None;
                    return Ok(Some(Event::Bad { line, reason }));
                }
            };
            let number = line.number;
            let object = match json::parse_object_line(&line) {
                Parsed::Blank => continue,
                Parsed::Bad(reason) => {
                    return Ok(Some(Event::Bad {
                        line: number,
                        reason,
                    }))
                }
                Parsed::Object(object) => object,
            };
            let abstracts = &mut self.abstracts;
            let paper = json::s2_paper(&object, |id| abstracts.remove(id));
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

    fn file(&self) -> Option<&Path> {
        self.last_file.as_deref()
    }
}
