//! Paper metadata on disk, read one row at a time.
//!
//! `papers.<gen>.jsonl` holds one JSON paper per line (row i is line i + 1).
//! Beside it, `papers.<gen>.rows` says where each line lies, its crc32, and
//! each row's id, date and categories, what lookups and filters need
//! (little-endian; strings are u32 length + UTF-8 bytes):
//!
//! ```text
//! b"PSIMROWS" | u32 version | u64 rows
//! rows x (u64 offset, u32 length, u32 crc32 of the line without its newline)
//! rows x (id, date or "", categories joined by "\n")
//! u32 crc32 of everything before
//! ```
//!
//! Why: parsing every paper at open cost ~0.5 s and ~2.5x the raw vectors in
//! memory at 75k papers, while a query shows ten of them. With the rows file,
//! opening reads ~20 bytes per paper plus its id; a paper is parsed when it is
//! asked for, from a memory map, its line checked against its own crc32 (so
//! a damaged line is an error naming the file, never a wrong title). The
//! whole file's crc32 is still in the manifest, for `verify`. The rows file
//! is a sealed file (see [`crate::format`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::fsio::{self, io_err};
use super::manifest::FileEntry;
use super::StoreError;
use crate::corpus::Paper;
use crate::format::{self, Reader};

const MAGIC: &[u8; 8] = b"PSIMROWS";
const VERSION: u32 = 1;
const HEADER: usize = 20;
const LINE: usize = 16;

/// Where one row's line lies in the papers file.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Line {
    offset: u64,
    len: u32,
    crc: u32,
}

/// What the rows file keeps of each paper besides where its line is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facts<'a> {
    pub id: &'a str,
    /// "" when the paper has none.
    pub date: &'a str,
    /// Joined by "\n" (a category never holds one).
    pub categories: Cow<'a, str>,
}

impl<'a> Facts<'a> {
    pub(crate) fn of(p: &'a Paper) -> Self {
        Facts {
            id: &p.id,
            date: p.date.as_deref().unwrap_or_default(),
            categories: Cow::Owned(p.categories.join("\n")),
        }
    }
}

/// The papers of an open library.
pub struct Papers {
    path: PathBuf,
    map: Mmap,
    lines: Vec<Line>,
    /// Every row's id, date and categories, one after the other; row r's
    /// are `text[spans[r][0]..spans[r][1]]`, `[1]..[2]` and `[2]..[3]`.
    text: String,
    spans: Vec<[u32; 4]>,
}

impl Papers {
    /// Opens `papers` (the JSONL file) with its `rows` file; both must hold
    /// `count` rows. The rows file's checksum is checked here; the JSONL
    /// file's lines are checked as they are read.
    pub(crate) fn open(papers: &Path, rows: &Path, count: usize) -> Result<Self, StoreError> {
        let file = File::open(papers).map_err(io_err(papers))?;
        let size = file.metadata().map_err(io_err(papers))?.len();
        // SAFETY: library files are never modified in place (a commit writes
        // new names), so the mapping cannot change under us.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(papers))?;
        // Mapped rather than read: every byte is copied out below, and a
        // buffer freed again would stay in the resident set (see
        // `library::load_graph`).
        let rows_file = File::open(rows).map_err(io_err(rows))?;
        // SAFETY: as above.
        let bytes = unsafe { Mmap::map(&rows_file) }.map_err(io_err(rows))?;
        let corrupt = |reason: String| StoreError::Corrupt {
            path: rows.to_path_buf(),
            reason,
        };
        let (lines, facts) = parse_rows(&bytes, count, size).map_err(corrupt)?;
        let (text, spans) = pack_facts(&facts).map_err(corrupt)?;
        Ok(Papers {
            path: papers.to_path_buf(),
            map,
            lines,
            text,
            spans,
        })
    }

    /// Rows (papers) in the file, dead ones included.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the file holds no papers.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn field(&self, row: usize, i: usize) -> Option<&str> {
        let s = self.spans.get(row)?;
        self.text.get(s[i] as usize..s[i + 1] as usize)
    }

    /// Row `row`'s paper id, without parsing the paper.
    pub fn id(&self, row: usize) -> Option<&str> {
        self.field(row, 0)
    }

    /// Row `row`'s date, without parsing the paper.
    pub fn date(&self, row: usize) -> Option<&str> {
        self.field(row, 1).filter(|d| !d.is_empty())
    }

    /// Row `row`'s categories, without parsing the paper.
    pub fn categories(&self, row: usize) -> impl Iterator<Item = &str> {
        self.field(row, 2)
            .unwrap_or_default()
            .split('\n')
            .filter(|c| !c.is_empty())
    }

    /// Row `row`'s facts, as a rows file keeps them.
    pub(crate) fn facts(&self, row: usize) -> Facts<'_> {
        Facts {
            id: self.id(row).unwrap_or_default(),
            date: self.field(row, 1).unwrap_or_default(),
            categories: Cow::Borrowed(self.field(row, 2).unwrap_or_default()),
        }
    }

    /// Rows by id; where an id is on several rows, the last one wins (the
    /// caller keeps live rows only).
    pub(crate) fn rows_by_id(&self, live: impl Fn(usize) -> bool) -> HashMap<String, usize> {
        (0..self.len())
            .filter(|&r| live(r))
            .filter_map(|r| Some((self.id(r)?.to_string(), r)))
            .collect()
    }

    /// Row `row`'s paper.
    pub fn get(&self, row: usize) -> Result<Cow<'_, Paper>, StoreError> {
        let missing = || StoreError::Invalid(format!("row {row} is past the {} rows", self.len()));
        let line = self.lines.get(row).ok_or_else(missing)?;
        let bad = |reason: String| StoreError::BadPaper {
            path: self.path.clone(),
            line: row + 1,
            reason,
        };
        // parse_rows checked every range against the file's size.
        let start = line.offset as usize;
        let text = self
            .map
            .get(start..start + line.len as usize)
            .ok_or_else(|| bad("past the end of the file".into()))?;
        let crc = crc32fast::hash(text);
        if crc != line.crc {
            return Err(bad(format!(
                "checksum {crc:08x}, the rows file says {:08x}: the file is damaged; \
                 `papersim verify` checks the whole library",
                line.crc
            )));
        }
        let paper: Paper = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        Ok(Cow::Owned(paper))
    }

    /// Every paper, in row order.
    pub fn all(&self) -> Result<Vec<Paper>, StoreError> {
        (0..self.len())
            .map(|r| self.get(r).map(Cow::into_owned))
            .collect()
    }

    /// The papers file (`papers.<gen>.jsonl`) this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Every row's facts in one string, and where each field starts.
fn pack_facts(facts: &[Facts]) -> Result<(String, Vec<[u32; 4]>), String> {
    let size = facts
        .iter()
        .map(|f| f.id.len() + f.date.len() + f.categories.len());
    let mut text = String::with_capacity(size.sum());
    let mut spans = Vec::with_capacity(facts.len());
    for f in facts {
        let mut span = [0u32; 4];
        span[0] = text.len() as u32;
        for (i, s) in [f.id, f.date, &f.categories].into_iter().enumerate() {
            text.push_str(s);
            span[i + 1] = u32::try_from(text.len())
                .map_err(|_| "ids, dates and categories pass 4 GiB".to_string())?;
        }
        spans.push(span);
    }
    Ok((text, spans))
}

/// Reads a rows file: `count` rows whose lines lie within `size` bytes.
fn parse_rows(b: &[u8], count: usize, size: u64) -> Result<(Vec<Line>, Vec<Facts<'_>>), String> {
    let mut r = Reader::sealed(b, MAGIC, HEADER + 4, "rows")?;
    let version = r.u32()?;
    if version != VERSION {
        return Err(format!(
            "rows file version {version}; this papersim reads {VERSION}"
        ));
    }
    let rows = r.u64()?;
    if rows != count as u64 {
        return Err(format!("{rows} rows, the manifest says {count}"));
    }
    if (r.left() as u64) < rows.saturating_mul(LINE as u64) {
        return Err(format!("too short for {rows} rows"));
    }
    let mut lines = Vec::with_capacity(count);
    for i in 0..count {
        let line = Line {
            offset: r.u64()?,
            len: r.u32()?,
            crc: r.u32()?,
        };
        if line.offset.saturating_add(u64::from(line.len)) > size {
            return Err(format!(
                "row {i}'s line ends past the papers file's {size} bytes"
            ));
        }
        lines.push(line);
    }
    let mut facts = Vec::with_capacity(count);
    for i in 0..count {
        let mut s = [""; 3];
        for (f, name) in s.iter_mut().zip(["id", "date", "categories"]) {
            let n = r.u32()? as usize;
            *f = std::str::from_utf8(r.take(n)?)
                .map_err(|_| format!("row {i}: {name} is not UTF-8"))?;
        }
        facts.push(Facts {
            id: s[0],
            date: s[1],
            categories: Cow::Borrowed(s[2]),
        });
    }
    if r.left() != 0 {
        return Err(format!("{} stray bytes after the rows", r.left()));
    }
    Ok((lines, facts))
}

/// A writer that notes where each line of what passes through it starts,
/// and its crc32: the rows file of the papers file being written.
pub(crate) struct LineRecorder<'a> {
    inner: &'a mut dyn Write,
    lines: Vec<Line>,
    at: u64,
    start: u64,
    crc: crc32fast::Hasher,
}

impl<'a> LineRecorder<'a> {
    pub(crate) fn new(inner: &'a mut dyn Write) -> Self {
        LineRecorder {
            inner,
            lines: Vec::new(),
            at: 0,
            start: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// The lines seen, each ended by a newline. Bytes after the last
    /// newline are an unfinished line: an error.
    fn finish(self) -> io::Result<Vec<Line>> {
        if self.at != self.start {
            return Err(io::Error::other("papers file does not end with a newline"));
        }
        Ok(self.lines)
    }
}

impl Write for LineRecorder<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let mut rest = &buf[..n];
        while let Some(i) = rest.iter().position(|&c| c == b'\n') {
            self.crc.update(&rest[..i]);
            let end = self.at + i as u64;
            let len = u32::try_from(end - self.start)
                .map_err(|_| io::Error::other("a paper's line is over 4 GiB"))?;
            let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
            self.lines.push(Line {
                offset: self.start,
                len,
                crc,
            });
            self.at = end + 1;
            self.start = self.at;
            rest = &rest[i + 1..];
        }
        self.crc.update(rest);
        self.at += rest.len() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `papers` as JSON lines.
pub(crate) fn write_lines(w: &mut dyn Write, papers: &[Paper]) -> io::Result<()> {
    for p in papers {
        serde_json::to_writer(&mut *w, p)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes `papers.<generation>.jsonl` through `fill` and its rows file, with
/// `facts` for the papers of the lines `fill` writes. Returns both entries.
pub(crate) fn write(
    dir: &Path,
    generation: u64,
    facts: &[Facts],
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(FileEntry, FileEntry), StoreError> {
    let path = dir.join(format!("papers.{generation}.jsonl"));
    let mut lines = Vec::new();
    let papers = fsio::write_file(&path, |w| {
        let mut rec = LineRecorder::new(w);
        fill(&mut rec)?;
        lines = rec.finish()?;
        Ok(())
    })?;
    if lines.len() != facts.len() {
        return Err(StoreError::Invalid(format!(
            "{}: {} lines written for {} papers",
            path.display(),
            lines.len(),
            facts.len()
        )));
    }
    let rows = fsio::write_sealed(&dir.join(format!("papers.{generation}.rows")), |w| {
        let mut b = format::begin(MAGIC, VERSION);
        b.reserve(HEADER + lines.len() * LINE);
        b.extend_from_slice(&(lines.len() as u64).to_le_bytes());
        for l in &lines {
            b.extend_from_slice(&l.offset.to_le_bytes());
            b.extend_from_slice(&l.len.to_le_bytes());
            b.extend_from_slice(&l.crc.to_le_bytes());
        }
        for f in facts {
            for s in [f.id, f.date, &f.categories] {
                b.extend_from_slice(&(s.len() as u32).to_le_bytes());
                b.extend_from_slice(s.as_bytes());
            }
        }
        format::seal(&mut b);
        w.write_all(&b)
    })?;
    Ok((papers, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn paper(id: &str, title: &str) -> Paper {
        Paper {
            id: id.into(),
            title: title.into(),
            abstract_text: format!("About {title}.\nWith a newline inside."),
            authors: vec!["A. Author".into()],
            categories: vec!["cs.CL".into()],
            date: Some("2024-01-02".into()),
            url: None,
            ..Default::default()
        }
    }

    fn written(papers: &[Paper]) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let facts: Vec<Facts> = papers.iter().map(Facts::of).collect();
        let (p, r) = write(dir.path(), 3, &facts, |w| write_lines(w, papers)).unwrap();
        let (p, r) = (dir.path().join(p.name), dir.path().join(r.name));
        (dir, p, r)
    }

    #[test]
    fn rows_give_back_each_paper_and_id() {
        let mut papers: Vec<Paper> = (0..50)
            .map(|i| paper(&format!("p{i}"), &format!("Title \"{i}\" ü")))
            .collect();
        papers[3].date = None;
        papers[4].categories = vec![];
        papers[5].categories = vec!["cs.LG".into(), "stat.ML".into()];
        let (_d, p, r) = written(&papers);
        let lib = Papers::open(&p, &r, 50).unwrap();
        assert_eq!(lib.len(), 50);
        for (i, want) in papers.iter().enumerate() {
            assert_eq!(&*lib.get(i).unwrap(), want);
            assert_eq!(lib.id(i), Some(want.id.as_str()));
            assert_eq!(lib.date(i), want.date.as_deref());
            assert!(lib
                .categories(i)
                .eq(want.categories.iter().map(String::as_str)));
            assert_eq!(lib.facts(i), Facts::of(want));
        }
        assert!(lib.get(50).is_err());
        assert_eq!(lib.all().unwrap(), papers);
        assert_eq!(lib.rows_by_id(|r| r != 7).get("p9"), Some(&9));
        assert_eq!(lib.rows_by_id(|r| r != 7).get("p7"), None);
    }

    #[test]
    fn a_damaged_line_is_an_error_naming_the_file_and_line() {
        let papers: Vec<Paper> = (0..5).map(|i| paper(&format!("p{i}"), "x")).collect();
        let (_d, p, r) = written(&papers);
        let mut b = fs::read(&p).unwrap();
        let second = b.iter().position(|&c| c == b'\n').unwrap() + 10;
        b[second] ^= 1;
        fs::write(&p, &b).unwrap();
        let lib = Papers::open(&p, &r, 5).unwrap();
        assert!(lib.get(0).is_ok());
        let e = lib.get(1).unwrap_err().to_string();
        assert!(
            e.contains("papers.3.jsonl:2:") && e.contains("checksum"),
            "{e}"
        );
    }

    #[test]
    fn a_damaged_or_mismatched_rows_file_is_refused() {
        let papers: Vec<Paper> = (0..5).map(|i| paper(&format!("p{i}"), "x")).collect();
        let (_d, p, r) = written(&papers);
        assert!(Papers::open(&p, &r, 6).is_err());
        // A manifest claiming absurd counts: an error, not an allocation.
        for count in [usize::MAX, 6_000_000_000_000] {
            assert!(Papers::open(&p, &r, count).is_err());
        }
        let good = fs::read(&r).unwrap();
        for at in [0, 9, 25, good.len() / 2, good.len() - 1] {
            let mut b = good.clone();
            b[at] ^= 0x10;
            fs::write(&r, &b).unwrap();
            let e = Papers::open(&p, &r, 5).err().unwrap().to_string();
            assert!(e.contains("papers.3.rows"), "{e}");
        }
        fs::write(&r, &good[..good.len() / 2]).unwrap();
        assert!(Papers::open(&p, &r, 5).is_err());
        // A papers file shorter than the rows say.
        fs::write(&r, &good).unwrap();
        let b = fs::read(&p).unwrap();
        fs::write(&p, &b[..b.len() / 2]).unwrap();
        let e = Papers::open(&p, &r, 5).err().unwrap().to_string();
        assert!(e.contains("past the papers file"), "{e}");
    }

    #[test]
    fn recorder_splits_lines_across_writes() {
        let mut out = Vec::new();
        let mut rec = LineRecorder::new(&mut out);
        for chunk in [&b"ab"[..], b"c\nde", b"\n\nf", b"gh\n"] {
            rec.write_all(chunk).unwrap();
        }
        let lines = rec.finish().unwrap();
        let got: Vec<_> = lines.iter().map(|l| (l.offset, l.len)).collect();
        assert_eq!(got, vec![(0, 3), (4, 2), (7, 0), (8, 3)]);
        assert_eq!(lines[0].crc, crc32fast::hash(b"abc"));
        assert_eq!(lines[3].crc, crc32fast::hash(b"fgh"));
        let mut out = Vec::new();
        let mut rec = LineRecorder::new(&mut out);
        rec.write_all(b"x\ny").unwrap();
        assert!(rec.finish().is_err());
    }
}
