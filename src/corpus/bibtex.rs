//! BibTeX / BibLaTeX (`.bib`), as JabRef, Zotero, Mendeley and Google Scholar
//! export it.
//!
//! The file is cut into entries here, one at a time (`@type{` or `@type(` to
//! the matching close), so a bad entry is skipped and reported at its line
//! and a large file streams; each entry is then parsed by the `biblatex`
//! crate, which resolves `@string` abbreviations, month macros and LaTeX
//! commands (`{\'e}` → `é`, `\"{o}` → `ö`) to Unicode. The parser's byte
//! spans are mapped back to lines of the file. Text outside entries is a
//! comment, as in BibTeX; `@comment` and `@preamble` are skipped, `@string`
//! definitions are kept for the entries after them.
//!
//! A paper: the citation key as its id; `title`; `abstract`; `author` (as
//! `Given von Last, Jr.`); `date` (BibLaTeX) else `year`; `doi`; `url`;
//! `eprint`; `journal`/`journaltitle`; `booktitle`; `keywords` as categories.
//! An entry with neither a title nor an abstract is a bad record; one with a
//! title and no abstract is read (and embedded by its title alone).

use std::collections::HashMap;

use biblatex::{Bibliography, Chunk, ChunksExt, Person, Spanned};

use super::fields::{
    arxiv_abs_url, clean_abstract, ensure_text, non_empty, normalize_date, normalize_doi,
    normalize_whitespace,
};
use super::input::{too_long_reason, LineReader};
use super::{CorpusError, Event, Paper, Source, MAX_LINE_BYTES};

/// One entry's text, cut out of the file.
struct Raw {
    /// Line of its `@`.
    line: usize,
    /// `article`, `string`, ..., lower-case.
    kind: String,
    text: String,
    problem: Option<String>,
}

pub(crate) struct BibtexSource {
    lines: LineReader,
    /// The entry being cut out, and the depth of its delimiters.
    open: Option<(Raw, Depth)>,
    /// `@string` name (lower-case) → its definition's source text.
    strings: HashMap<String, String>,
    /// Entries finished on the current line, handed out before reading on.
    ready: std::collections::VecDeque<Raw>,
    done: bool,
}

#[derive(Debug, Clone, Copy)]
struct Depth {
    /// `}` or `)`.
    close: char,
    /// Braces open inside the entry (the outer delimiter not counted).
    braces: usize,
}

/// `@name` then optional spaces and `{` or `(` at the start of `text`:
/// the entry's type and the byte length of that opening.
fn entry_start(text: &str) -> Option<(String, usize, char)> {
    let rest = text.strip_prefix('@')?;
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    if name_len == 0 {
        return None;
    }
    let after = &rest[name_len..];
    let trimmed = after.trim_start();
    let open = trimmed.chars().next()?;
    let close = match open {
        '{' => '}',
        '(' => ')',
        _ => return None,
    };
    let len = 1 + name_len + (after.len() - trimmed.len()) + 1;
    Some((rest[..name_len].to_ascii_lowercase(), len, close))
}

impl BibtexSource {
    pub(crate) fn new(lines: LineReader) -> Self {
        BibtexSource {
            lines,
            open: None,
            strings: HashMap::new(),
            ready: std::collections::VecDeque::new(),
            done: false,
        }
    }

    /// Cuts entries out of one line, appending finished ones to `ready`.
    fn scan(&mut self, number: usize, text: &str) {
        // An `@type{` at the start of a line while an entry is open: the
        // open one lost its closing brace. Report it there rather than
        // swallow every entry after it.
        let unclosed = matches!(&self.open, Some((raw, _)) if raw.kind != "comment")
            && entry_start(text.trim_start()).is_some();
        if unclosed {
            if let Some((mut raw, _)) = self.open.take() {
                raw.problem.get_or_insert_with(|| {
                    format!("entry not closed before the next entry on line {number}")
                });
                self.ready.push_back(raw);
            }
        }
        let mut rest = text;
        loop {
            match &mut self.open {
                None => {
                    let Some(at) = rest.find('@') else {
                        return;
                    };
                    let Some((kind, len, close)) = entry_start(&rest[at..]) else {
                        // A stray `@` in comment text.
                        rest = &rest[at + 1..];
                        continue;
                    };
                    let raw = Raw {
                        line: number,
                        kind,
                        text: rest[at..at + len].to_string(),
                        problem: None,
                    };
                    self.open = Some((raw, Depth { close, braces: 0 }));
                    rest = &rest[at + len..];
                }
                Some((raw, depth)) => {
                    let mut end = None;
                    for (i, c) in rest.char_indices() {
                        match c {
                            '{' => depth.braces += 1,
                            '}' if depth.braces > 0 => depth.braces -= 1,
                            c if c == depth.close && depth.braces == 0 => {
                                end = Some(i + c.len_utf8());
                                break;
                            }
                            _ => {}
                        }
                    }
                    let taken = end.unwrap_or(rest.len());
                    if raw.problem.is_none() {
                        if raw.text.len() + taken + 1 > MAX_LINE_BYTES {
                            raw.problem = Some(too_long_reason());
                            raw.text = String::new();
                        } else {
                            raw.text.push_str(&rest[..taken]);
                            if end.is_none() {
                                raw.text.push('\n');
                            }
                        }
                    }
                    if end.is_none() {
                        return;
                    }
                    // The entry closed on this line: hand it on and scan on.
                    if let Some((raw, _)) = self.open.take() {
                        self.ready.push_back(raw);
                    }
                    rest = &rest[taken..];
                }
            }
        }
    }

    /// The `@string` definitions `text` may use (and those they use), as
    /// source text to put before it.
    fn strings_for(&self, text: &str) -> String {
        if self.strings.is_empty() {
            return String::new();
        }
        let mut wanted: Vec<&str> = Vec::new();
        let mut queue = vec![text];
        while let Some(source) = queue.pop() {
            for word in source.split(|c: char| !(c.is_alphanumeric() || "_-:.".contains(c))) {
                let key = word.to_lowercase();
                if let Some((name, def)) = self.strings.get_key_value(&key) {
                    if !wanted.contains(&name.as_str()) {
                        wanted.push(name);
                        queue.push(def);
                    }
                }
            }
        }
        // Definitions before their uses: those found later were used by earlier ones.
        let mut out = String::new();
        for name in wanted.iter().rev() {
            out.push_str(&self.strings[*name]);
            out.push('\n');
        }
        out
    }

    fn event(&mut self, raw: Raw) -> Option<Event> {
        let line = raw.line;
        if let Some(reason) = raw.problem {
            return Some(Event::Bad { line, reason });
        }
        match raw.kind.as_str() {
            "comment" | "preamble" => return None,
            _ => {}
        }
        let prefix = self.strings_for(&raw.text);
        let source = format!("{prefix}{}", raw.text);
        // The parser has internal assertions; one tripped by a strange entry
        // must cost that entry, not the whole read.
        let parsed = std::panic::catch_unwind(|| Bibliography::parse(&source));
        let parsed = match parsed {
            Err(_) => {
                return Some(Event::Bad {
                    line,
                    reason: "the BibTeX parser could not read this entry".to_string(),
                })
            }
            Ok(Ok(parsed)) => parsed,
            Ok(Err(e)) => {
                let at = e.span.start.min(source.len());
                let line = match at.checked_sub(prefix.len()) {
                    Some(offset) => {
                        let before = raw.text.get(..offset).unwrap_or(&raw.text);
                        line + before.matches('\n').count()
                    }
                    None => line,
                };
                return Some(Event::Bad {
                    line,
                    reason: format!("bad BibTeX {}: {}", kind_of(&raw.kind), e.kind),
                });
            }
        };
        if raw.kind == "string" {
            for name in string_names(&raw.text) {
                self.strings.insert(name, raw.text.clone());
            }
            return None;
        }
        let entry = parsed.into_iter().next()?;
        Some(match paper(&entry) {
            Ok(paper) => Event::Paper { paper, line },
            Err(reason) => Event::Bad { line, reason },
        })
    }
}

fn kind_of(kind: &str) -> String {
    if kind == "string" {
        "@string".to_string()
    } else {
        "entry".to_string()
    }
}

/// The names an `@string{name = ...}` defines (one, or several separated by
/// commas in the parenthesised form some tools write).
fn string_names(text: &str) -> Vec<String> {
    let body = text
        .split_once(['{', '('])
        .map(|(_, body)| body)
        .unwrap_or("");
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '"' if depth == 0 => quoted = !quoted,
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            _ if quoted => {}
            '=' if depth == 0 => {
                let name = body[start..i].trim().trim_start_matches(',').trim();
                if !name.is_empty() {
                    names.push(name.to_lowercase());
                }
            }
            ',' if depth == 0 => start = i + 1,
            _ => {}
        }
    }
    names
}

impl Source for BibtexSource {
    fn next_event(&mut self) -> Result<Option<Event>, CorpusError> {
        loop {
            if let Some(raw) = self.ready.pop_front() {
                match self.event(raw) {
                    Some(event) => return Ok(Some(event)),
                    None => continue,
                }
            }
            if self.done {
                return Ok(None);
            }
            let (number, text) = match self.lines.next_line() {
                Ok(Some(line)) if line.too_long => {
                    if let Some((raw, _)) = &mut self.open {
                        raw.problem.get_or_insert_with(too_long_reason);
                        continue;
                    }
                    return Ok(Some(Event::Bad {
                        line: line.number,
                        reason: too_long_reason(),
                    }));
                }
                Ok(Some(line)) => match std::str::from_utf8(line.bytes) {
                    Ok(text) => (line.number, text.to_string()),
                    Err(e) => {
                        let reason = format!(
                            "invalid UTF-8 on line {} at byte {}",
                            line.number,
                            e.valid_up_to() + 1
                        );
                        if let Some((raw, _)) = &mut self.open {
                            raw.problem.get_or_insert(reason);
                            continue;
                        }
                        // Outside entries it is comment text; BibTeX ignores it.
                        continue;
                    }
                },
                Ok(None) => {
                    self.done = true;
                    if let Some((mut raw, _)) = self.open.take() {
                        raw.problem.get_or_insert_with(|| {
                            "entry not closed (reached end of file)".to_string()
                        });
                        self.ready.push_back(raw);
                    }
                    continue;
                }
                Err(failure) => {
                    self.done = true;
                    let (line, reason) = self.lines.failure(failure)?;
                    return Ok(Some(Event::Fatal { line, reason }));
                }
            };
            let text = text.trim_start_matches('\u{feff}');
            self.scan(number, text);
        }
    }
}

/// A field's text for embedding and display: LaTeX already decoded by the
/// parser, math kept between `$` signs, whitespace collapsed.
fn text_of(chunks: &[Spanned<Chunk>]) -> String {
    let mut out = String::new();
    for chunk in chunks {
        match &chunk.v {
            Chunk::Normal(s) | Chunk::Verbatim(s) => out.push_str(s),
            Chunk::Math(s) => {
                out.push('$');
                out.push_str(s);
                out.push('$');
            }
        }
    }
    normalize_whitespace(&out)
}

fn person_name(p: &Person) -> String {
    let mut parts = Vec::new();
    for part in [&p.given_name, &p.prefix, &p.name] {
        if !part.trim().is_empty() {
            parts.push(part.trim());
        }
    }
    let mut name = normalize_whitespace(&parts.join(" "));
    if !p.suffix.trim().is_empty() {
        name.push_str(", ");
        name.push_str(p.suffix.trim());
    }
    name
}

fn paper(entry: &biblatex::Entry) -> Result<Paper, String> {
    let field = |name: &str| entry.get(name).map(text_of).filter(|s| !s.is_empty());
    let verbatim = |name: &str| {
        entry
            .get(name)
            .map(|chunks| chunks.format_verbatim())
            .and_then(|s| non_empty(&s))
    };
    let id = entry.key.trim().to_string();
    if id.is_empty() {
        return Err("entry has an empty citation key".to_string());
    }
    let title = field("title").unwrap_or_default();
    let abstract_text = clean_abstract(&field("abstract").unwrap_or_default());
    ensure_text(&title, &abstract_text)?;
    let authors = match entry.author() {
        Ok(people) => people
            .iter()
            .map(person_name)
            .filter(|n| !n.is_empty())
            .collect(),
        Err(_) => field("author")
            .map(|all| all.split(" and ").filter_map(non_empty).collect::<Vec<_>>())
            .unwrap_or_default(),
    };
    let categories = field("keywords")
        .map(|k| {
            k.split([',', ';'])
                .filter_map(non_empty)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let date = match verbatim("date") {
        Some(date) => normalize_date(&date),
        None => verbatim("year").and_then(|y| normalize_date(&y)),
    };
    let doi = verbatim("doi").and_then(|d| normalize_doi(&d));
    let eprint = verbatim("eprint");
    let url = verbatim("url")
        .or_else(|| eprint.as_deref().and_then(arxiv_abs_url))
        .or_else(|| arxiv_abs_url(&id));
    Ok(Paper {
        id,
        title,
        abstract_text,
        authors,
        categories,
        date,
        url,
        doi,
        journal: field("journal").or_else(|| field("journaltitle")),
        booktitle: field("booktitle"),
        eprint,
        collections: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_starts() {
        assert_eq!(
            entry_start("@article{key,"),
            Some(("article".into(), 9, '}'))
        );
        assert_eq!(entry_start("@Misc ( key,"), Some(("misc".into(), 7, ')')));
        assert_eq!(entry_start("@ foo"), None);
        assert_eq!(entry_start("@article key"), None);
    }

    #[test]
    fn string_names_are_found() {
        assert_eq!(string_names("@string{JML = {J. Mach. Learn.}}"), ["jml"]);
        assert_eq!(string_names("@string(a = \"x\", b = {y})"), ["a", "b"]);
    }
}
