//! The Hugging Face Daily Papers page as a person copies it from the browser.
//!
//! The copy has no record structure, only a rhythm:
//!
//! ```text
//! <page chrome: "new", "Daily Papers", "Nov 11", ...>   (before the first paper only)
//! Title
//!
//! Abstract, on one or more lines
//!
//!   • 4 authors
//! ·
//! Feb 11, 2020 1          (month day[, year] [upvotes])
//! ```
//!
//! So papers are found by their `• N authors` line: the paragraphs (runs of
//! non-blank lines) since the previous paper are its title and abstract, and
//! the `·` and date lines after the marker belong to it. Before the first
//! paper, known chrome lines are dropped and, should unknown chrome remain,
//! only the last two paragraphs are taken as title and abstract. Between
//! papers, the first paragraph is the title and the rest is the abstract.
//! Issues point at the line where the bad paper starts.

use std::collections::{HashSet, VecDeque};
use std::mem;

use chrono::NaiveDate;

use super::fields::{clean_abstract, normalize_whitespace, slugify};
use super::input::{too_long_reason, LineReader};
use super::{CorpusError, Event, Paper, Source, MAX_LINE_BYTES};

/// Page chrome seen above the first paper, lowercased.
const CHROME: &[&str] = &[
    "new",
    "get trending papers in your email inbox!",
    "subscribe",
    "daily papers",
    "byak and the research community",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

struct Paragraph {
    line: usize,
    text: String,
}

#[derive(Default)]
struct Block {
    paragraphs: Vec<Paragraph>,
    in_paragraph: bool,
    /// First unreadable line: (line, reason).
    problem: Option<(usize, String)>,
    /// Bytes of text held. Capped at [`MAX_LINE_BYTES`] like one record of
    /// the other formats: a text without `• N authors` lines (a wrong file,
    /// a log) would otherwise be buffered whole.
    bytes: usize,
    overflowed: bool,
}

impl Block {
    fn push_line(&mut self, line: usize, text: &str) {
        if self.overflowed || self.bytes + text.len() > MAX_LINE_BYTES {
            if !self.overflowed {
                self.overflowed = true;
                if self.problem.is_none() {
                    self.problem = Some((
                        line,
                        format!(
                            "the text since the previous paper passes {MAX_LINE_BYTES} bytes \
                             (MAX_LINE_BYTES) here without a `• N authors` line; skipped"
                        ),
                    ));
                }
                // Only where the block starts is still needed, for the issue.
                self.paragraphs.truncate(1);
                if let Some(first) = self.paragraphs.first_mut() {
                    first.text = String::new();
                }
            }
            self.in_paragraph = true;
            return;
        }
        self.bytes += text.len();
        match self.paragraphs.last_mut() {
            Some(last) if self.in_paragraph => {
                last.text.push(' ');
                last.text.push_str(text);
            }
            _ => self.paragraphs.push(Paragraph {
                line,
                text: text.to_string(),
            }),
        }
        self.in_paragraph = true;
    }

    fn start_line(&self) -> Option<usize> {
        let first_paragraph = self.paragraphs.first().map(|p| p.line);
        let problem = self.problem.as_ref().map(|(line, _)| *line);
        match (first_paragraph, problem) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

pub(crate) struct HfDailySource {
    lines: LineReader,
    queue: VecDeque<Event>,
    block: Block,
    first_block: bool,
    /// Set between a `• N authors` line and the date line that closes a paper.
    after_marker: bool,
    /// The paper of the last marker, waiting for its date line.
    pending: Option<(Paper, usize)>,
    slugs: HashSet<String>,
    finished: bool,
}

impl HfDailySource {
    pub(crate) fn new(lines: LineReader) -> Self {
        HfDailySource {
            lines,
            queue: VecDeque::new(),
            block: Block::default(),
            first_block: true,
            after_marker: false,
            pending: None,
            slugs: HashSet::new(),
            finished: false,
        }
    }

    fn on_line(&mut self, number: usize, content: Result<String, String>) {
        if self.after_marker {
            if let Ok(text) = &content {
                if text.is_empty() || text == "·" || text == "•" {
                    return;
                }
                if let Some(date) = parse_date_line(text) {
                    self.emit_pending(date);
                    self.after_marker = false;
                    return;
                }
            }
            // No date line: the paper is complete and this line starts the next.
            self.emit_pending(None);
            self.after_marker = false;
        }
        match content {
            Err(reason) => {
                if self.block.problem.is_none() {
                    self.block.problem = Some((number, reason));
                }
                self.block.in_paragraph = true;
            }
            Ok(text) if text.is_empty() => self.block.in_paragraph = false,
            Ok(text) if is_authors_marker(&text) => {
                self.close_block(number);
                self.after_marker = true;
            }
            Ok(text) => self.block.push_line(number, &text),
        }
    }

    fn emit_pending(&mut self, date: Option<String>) {
        if let Some((mut paper, line)) = self.pending.take() {
            paper.date = date;
            self.queue.push_back(Event::Paper { paper, line });
        }
    }

    fn take_block(&mut self) -> Block {
        let mut block = mem::take(&mut self.block);
        if mem::replace(&mut self.first_block, false) {
            let chrome = block
                .paragraphs
                .iter()
                .take_while(|p| is_chrome(&p.text))
                .count();
            block.paragraphs.drain(..chrome);
            let extra = block.paragraphs.len().saturating_sub(2);
            block.paragraphs.drain(..extra);
        }
        block
    }

    fn bad_block(&mut self, block: &Block, fallback_line: usize, reason: &str) {
        let line = block.start_line().unwrap_or(fallback_line);
        let reason = match &block.problem {
            Some((at, problem)) if *at == line => problem.clone(),
            Some((at, problem)) => format!("line {at}: {problem}"),
            None => reason.to_string(),
        };
        self.queue.push_back(Event::Bad { line, reason });
    }

    fn close_block(&mut self, marker_line: usize) {
        let block = self.take_block();
        if block.problem.is_some() || block.paragraphs.is_empty() {
            let reason = "no title or abstract before this `• N authors` line";
            self.bad_block(&block, marker_line, reason);
            return;
        }
        let mut paragraphs = block.paragraphs.into_iter();
        let Some(title) = paragraphs.next() else {
            return;
        };
        let abstract_text = paragraphs.map(|p| p.text).collect::<Vec<_>>().join(" ");
        let title_text = normalize_whitespace(&title.text);
        let paper = Paper {
            id: self.unique_slug(&title_text),
            title: title_text,
            abstract_text: clean_abstract(&abstract_text),
            authors: Vec::new(),
            categories: Vec::new(),
            date: None,
            url: None,
            ..Default::default()
        };
        self.pending = Some((paper, title.line));
    }

    fn unique_slug(&mut self, title: &str) -> String {
        let mut base = slugify(title);
        if base.is_empty() {
            // Titles without ASCII alphanumerics (e.g. all CJK) still need an id.
            base = "paper".to_string();
        }
        let mut slug = base.clone();
        let mut n = 2;
        while self.slugs.contains(&slug) {
            slug = format!("{base}-{n}");
            n += 1;
        }
        self.slugs.insert(slug.clone());
        slug
    }

    fn finish(&mut self) {
        if self.after_marker {
            self.emit_pending(None);
            self.after_marker = false;
        }
        let block = self.take_block();
        if block.problem.is_some() || !block.paragraphs.is_empty() {
            let reason =
                "text after the last paper has no `• N authors` line (incomplete copy?); ignored";
            self.bad_block(&block, 1, reason);
        }
    }
}

impl Source for HfDailySource {
    fn next_event(&mut self) -> Result<Option<Event>, CorpusError> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(Some(event));
            }
            if self.finished {
                return Ok(None);
            }
            match self.lines.next_line() {
                Ok(Some(line)) => {
                    let number = line.number;
                    let content = if line.too_long {
                        Err(too_long_reason())
                    } else {
                        match std::str::from_utf8(line.bytes) {
                            Ok(text) => Ok(text.trim().to_string()),
                            Err(e) => Err(format!(
                                "invalid UTF-8 at byte {} of the line",
                                e.valid_up_to() + 1
                            )),
                        }
                    };
                    self.on_line(number, content);
                }
                Ok(None) => {
                    self.finish();
                    self.finished = true;
                }
                Err(failure) => {
                    let (line, reason) = self.lines.failure(failure)?;
                    // A paper is complete once its marker is seen; only its date is lost.
                    self.emit_pending(None);
                    self.queue.push_back(Event::Fatal { line, reason });
                    self.finished = true;
                }
            }
        }
    }
}

fn is_chrome(text: &str) -> bool {
    CHROME.contains(&text.to_lowercase().as_str()) || parse_date_line(text).is_some()
}

/// `• 4 authors` (also `• 1 author`), whatever the surrounding whitespace.
pub(crate) fn is_authors_marker(text: &str) -> bool {
    let Some(rest) = text.trim().strip_prefix('•') else {
        return false;
    };
    let rest = rest.trim_start();
    let word = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    if word.len() == rest.len() || !word.starts_with(char::is_whitespace) {
        return false;
    }
    matches!(word.trim(), "author" | "authors")
}

fn month_number(token: &str) -> Option<u32> {
    let token = token.to_lowercase();
    if token.len() < 3 {
        return None;
    }
    let index = MONTHS.iter().position(|m| m.starts_with(&token))?;
    u32::try_from(index + 1).ok()
}

/// Parses an hf-daily date line: `month day[, year] [upvotes]`, e.g.
/// `Feb 11, 2020 1`, `Sep 25`, `Sep 14 3`. `None`: not a date line;
/// `Some(None)`: a date without a year, which we cannot place in time.
pub(crate) fn parse_date_line(text: &str) -> Option<Option<String>> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let (month, rest) = tokens.split_first()?;
    let month = month_number(month)?;
    let (day, rest) = rest.split_first()?;
    let (day, has_year) = match day.strip_suffix(',') {
        Some(day) => (day, true),
        None => (*day, false),
    };
    if day.is_empty() || day.len() > 2 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let day: u32 = day.parse().ok()?;
    let (year, rest) = if has_year {
        let (year, rest) = rest.split_first()?;
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        (Some(year.parse::<i32>().ok()?), rest)
    } else {
        (None, rest)
    };
    match rest {
        [] => {}
        [votes] if votes.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return None,
    }
    match year {
        Some(year) => {
            let date = NaiveDate::from_ymd_opt(year, month, day)?;
            Some(Some(date.format("%Y-%m-%d").to_string()))
        }
        None => (1..=31).contains(&day).then_some(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_lines() {
        assert_eq!(
            parse_date_line("Feb 11, 2020 1"),
            Some(Some("2020-02-11".into()))
        );
        assert_eq!(
            parse_date_line("Oct 31, 2023"),
            Some(Some("2023-10-31".into()))
        );
        assert_eq!(
            parse_date_line("Apr 4, 2022"),
            Some(Some("2022-04-04".into()))
        );
        assert_eq!(
            parse_date_line("Sept 3, 2021"),
            Some(Some("2021-09-03".into()))
        );
        assert_eq!(parse_date_line("Sep 25"), Some(None));
        assert_eq!(parse_date_line("Sep 14 3"), Some(None));
        assert_eq!(parse_date_line("Nov 11"), Some(None));
    }

    #[test]
    fn not_date_lines() {
        for text in [
            "Feb 30, 2020",
            "Sep 32",
            "May 2024",
            "Mayhem 3",
            "Ma 3",
            "Sep 3, 20",
            "Sep 3 three",
            "Sep 3 1 2",
            "Objective Mismatch in Model-based Reinforcement Learning",
            "",
        ] {
            assert_eq!(parse_date_line(text), None, "{text:?}");
        }
    }

    #[test]
    fn authors_markers() {
        assert!(is_authors_marker("  • 4 authors"));
        assert!(is_authors_marker("• 1 author  "));
        assert!(is_authors_marker("•12 authors"));
        assert!(!is_authors_marker("• authors"));
        assert!(!is_authors_marker("• 4authors"));
        assert!(!is_authors_marker("4 authors"));
        assert!(!is_authors_marker("• 4 authors and more"));
    }
}
