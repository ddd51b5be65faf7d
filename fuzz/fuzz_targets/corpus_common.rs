//! Shared by the corpus_* targets: the corpus readers take a path (they
//! stream from disk and sniff gzip), so each input is written to a file in a
//! per-process temporary folder and read through the public API, then the
//! readers' promises are checked, not just the absence of a panic.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use papersim::corpus::{self, Format, Paper, ReadOptions, TextTemplate, MAX_ABSTRACT_CHARS};

fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        // tmpfs when there is one: every run writes its input to a file.
        let base = Path::new("/dev/shm");
        let made = if base.is_dir() {
            tempfile::Builder::new()
                .prefix("papersim-fuzz")
                .tempdir_in(base)
        } else {
            tempfile::Builder::new().prefix("papersim-fuzz").tempdir()
        };
        made.unwrap_or_else(|e| panic!("fuzz harness: no temporary folder: {e}"))
    })
    .path()
}

/// Writes `data` to `name` in the scratch folder.
pub fn write_input(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("fuzz harness: write {name}: {e}"));
    path
}

/// Reads `path` leniently and strictly and checks what the readers promise:
/// counts add up, every issue names the file and a line, ids are unique and
/// non-empty, every paper has text, abstracts respect the cap, and strict
/// mode stops exactly at the first bad record.
pub fn check_corpus(path: &Path, format: Option<Format>) {
    let lenient = ReadOptions {
        format,
        strict: false,
        ..ReadOptions::default()
    };
    let mut reader = match corpus::open(path, &lenient) {
        Ok(reader) => reader,
        Err(e) => {
            // A header or detection failure is an answer; it must say where.
            let msg = e.to_string();
            assert!(!msg.is_empty());
            return;
        }
    };
    let mut papers: Vec<Paper> = Vec::new();
    for item in reader.by_ref() {
        match item {
            Ok(paper) => papers.push(paper),
            // Lenient mode only ends with an error on a real I/O failure.
            Err(e) => panic!("lenient read returned an error: {e}"),
        }
    }
    let summary = reader.into_summary();
    assert_eq!(summary.read, papers.len());
    assert_eq!(summary.skipped, summary.issues.len());
    if let Some(f) = format {
        assert_eq!(summary.format, f);
    }
    let template = TextTemplate::default();
    let mut ids = HashSet::new();
    for p in &papers {
        assert!(!p.id.trim().is_empty(), "empty id: {p:?}");
        assert!(ids.insert(p.id.as_str()), "duplicate id {:?}", p.id);
        assert!(
            !p.title.is_empty() || !p.abstract_text.is_empty(),
            "paper without text: {p:?}"
        );
        assert!(p.abstract_text.chars().count() <= MAX_ABSTRACT_CHARS);
        let _ = template.render(p);
    }
    for issue in &summary.issues {
        assert!(issue.line >= 1, "issue at line 0: {issue}");
        assert!(!issue.reason.is_empty());
        assert!(issue.to_string().starts_with(&path.display().to_string()));
    }

    let strict = ReadOptions {
        format: Some(summary.format),
        strict: true,
        ..ReadOptions::default()
    };
    let Ok(reader) = corpus::open(path, &strict) else {
        panic!("strict open failed where lenient open succeeded");
    };
    let mut strict_papers = Vec::new();
    let mut first_error = None;
    for item in reader {
        match item {
            Ok(paper) => strict_papers.push(paper),
            Err(e) => {
                first_error = Some(e);
                break;
            }
        }
    }
    match (summary.issues.first(), first_error) {
        (None, None) => assert_eq!(strict_papers, papers),
        (Some(issue), Some(corpus::CorpusError::BadRecord(got))) => {
            assert_eq!(&got, issue);
            assert_eq!(strict_papers[..], papers[..strict_papers.len()]);
        }
        (issue, error) => panic!("strict mode disagrees: first issue {issue:?}, error {error:?}"),
    }
}
