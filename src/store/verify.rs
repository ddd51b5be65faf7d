//! `papersim verify`: check every file of a library, and rebuild the indexes
//! from the stored papers and vectors when only the indexes are damaged.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fsio;
use super::library::{load_data, load_graph, load_keyword, load_sentences};
use super::manifest::{live_rows, read_manifest, MANIFEST};
use super::{CommitSpec, Contents, Library, Manifest, Papers, StoreError};
use crate::embed::is_unit;

/// One check and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The file or folder checked, relative to the library.
    pub file: String,
    /// What was checked, e.g. `size, crc32 and seal`.
    pub what: String,
    /// None when the check passed.
    pub problem: Option<String>,
}

/// The outcome of [`verify`]: every check run, passed or not.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The library's directory.
    pub library: PathBuf,
    /// The generation checked, from the manifest.
    pub generation: u64,
    /// Rows the manifest records, dead ones included.
    pub papers: usize,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
    /// Every check passed.
    pub ok: bool,
    /// Only the graph or keyword index is damaged: `--repair` can rebuild
    /// them from the intact papers and vectors.
    pub repairable: bool,
}

fn check(file: &str, what: &str, r: Result<(), String>) -> Check {
    Check {
        file: file.to_string(),
        what: what.to_string(),
        problem: r.err(),
    }
}

/// Checks the manifest (format, version, its own checksum), every file's
/// size, crc32 and seal, that papers parse and ids are unique, that every vector
/// is unit length, and that the graph and keyword index load and hold every
/// paper. An unreadable manifest is an error; everything else is reported.
pub fn verify(dir: &Path) -> Result<VerifyReport, StoreError> {
    let m = read_manifest(dir)?;
    let mut checks = Vec::new();
    checks.push(check(MANIFEST, "format, version, checksum", Ok(())));
    for (rel, entry) in m.files.all() {
        checks.push(check(
            &rel,
            "size, crc32 and seal",
            fsio::check(&dir.join(&rel), entry).map_err(|e| e.to_string()),
        ));
    }
    let data_ok = match load_data(dir, &m) {
        Ok((papers, vectors)) => {
            let parsed = papers_ok(&papers, dir, &m);
            let bad = (0..vectors.rows()).find(|&r| !is_unit(vectors.row(r)));
            let ok = parsed.is_ok() && bad.is_none();
            checks.push(check(
                &m.files.papers.name,
                "papers parse, ids match the rows file and are unique",
                parsed,
            ));
            checks.push(check(
                &m.files.vectors.name,
                "every vector unit length",
                bad.map_or(Ok(()), |r| Err(format!("row {r} is not unit length"))),
            ));
            ok
        }
        Err(e) => {
            checks.push(check(
                &m.files.papers.name,
                "papers and vectors load",
                Err(e.to_string()),
            ));
            false
        }
    };
    // Parsers of damaged files are not run: tantivy asserts on bad input,
    // and the damage is already reported.
    let damaged = |prefix: &str| {
        checks
            .iter()
            .any(|c| c.problem.is_some() && c.file.starts_with(prefix))
    };
    let not_loaded = || Err("not loaded: its files are damaged".to_string());
    let keyword = if damaged(&m.files.keyword_dir) {
        not_loaded()
    } else {
        load_keyword(dir, &m).map(|_| ()).map_err(|e| e.to_string())
    };
    let graph = &m.files.flat.name;
    let loaded = if damaged(graph) {
        not_loaded()
    } else {
        load_graph(dir, &m).map(|_| ()).map_err(|e| e.to_string())
    };
    let sentences = m.files.sentences.as_ref().map(|entry| {
        let loaded = if damaged(&entry.name) {
            not_loaded()
        } else {
            load_sentences(dir, &m)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        (entry.name.clone(), loaded)
    });
    checks.push(check(graph, "flat graph loads, holds every paper", loaded));

    checks.push(check(
        &m.files.keyword_dir,
        "keyword index opens, holds every paper",
        keyword,
    ));
    if let Some((name, loaded)) = sentences {
        checks.push(check(
            &name,
            "sentence vectors load, one list per paper",
            loaded,
        ));
    }

    let index_files =
        |c: &Check| c.file.starts_with("graph.") || c.file.starts_with(&m.files.keyword_dir);
    let failed: Vec<&Check> = checks.iter().filter(|c| c.problem.is_some()).collect();
    Ok(VerifyReport {
        library: dir.to_path_buf(),
        generation: m.generation,
        papers: m.papers,
        ok: failed.is_empty(),
        repairable: !failed.is_empty() && data_ok && failed.iter().all(|c| index_files(c)),
        checks,
    })
}

/// Every paper parses (its line's checksum right), has the id the rows file
/// gives it, and no id is on two live rows.
fn papers_ok(papers: &Papers, dir: &Path, m: &Manifest) -> Result<(), String> {
    let all = papers.all().map_err(|e| e.to_string())?;
    if let Some(r) = (0..all.len()).find(|&r| papers.id(r) != Some(all[r].id.as_str())) {
        return Err(format!(
            "row {r}: id {:?}, the rows file says {:?}",
            all[r].id,
            papers.id(r).unwrap_or_default()
        ));
    }
    // A replaced paper's id is on its dead row too: live ids are unique.
    let live = live_rows(dir, m).unwrap_or_else(|_| vec![true; all.len()]);
    let mut ids: Vec<&str> = all
        .iter()
        .zip(&live)
        .filter(|(_, l)| **l)
        .map(|(p, _)| p.id.as_str())
        .collect();
    ids.sort_unstable();
    match ids.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(format!("duplicate id {:?}", w[0])),
        None => Ok(()),
    }
}

/// Rebuilds the graph and keyword index from the stored papers and vectors
/// as a new generation (the damaged files are dropped by the commit).
pub fn repair(dir: &Path, progress: &dyn Fn(&str)) -> Result<Manifest, StoreError> {
    let m = read_manifest(dir)?;
    for entry in [&m.files.papers, &m.files.vectors, &m.files.rows] {
        fsio::check(&dir.join(&entry.name), entry)?;
    }
    let (papers, vectors) = load_data(dir, &m)?;
    let papers = papers.all()?;
    // Rebuilt from the live rows only: a repair is also a compaction.
    let live = live_rows(dir, &m)?;
    let rows: Vec<usize> = (0..papers.len()).filter(|&r| live[r]).collect();
    let papers: Vec<_> = rows.iter().map(|&r| papers[r].clone()).collect();
    let mut kept = Vec::with_capacity(rows.len() * m.dim);
    for &r in &rows {
        kept.extend_from_slice(vectors.row(r));
    }
    let texts: Vec<String> = papers.iter().map(|p| m.text_template.render(p)).collect();
    // Sentence vectors are data, like the vectors: kept when intact (a
    // damaged file fails here, and is not repairable without the model).
    let sentences = match &m.files.sentences {
        Some(_) => {
            let all = load_sentences(dir, &m)?;
            let mut kept = all.empty_like();
            for &r in &rows {
                kept.push_from(&all, r);
            }
            Some(kept)
        }
        None => None,
    };
    let spec = CommitSpec {
        model: &m.model,
        text_template: &m.text_template,
        index: m.index,
    };
    let contents = Contents {
        papers: &papers,
        texts: &texts,
        vectors: &kept,
        sentences: sentences.as_ref(),
    };
    Library::commit(dir, contents, &spec, progress)
}
