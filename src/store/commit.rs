//! The commit protocol: how a new generation of a library is written.
//!
//! A commit takes the writer lock, writes generation `gen+1` under new names
//! (each through a temp name, fsynced, renamed), syncs the folder, then
//! atomically replaces `manifest.json`, the commit point. A crash at any
//! point leaves the old manifest pointing at the old, untouched files, or
//! the new manifest pointing at complete new ones. The generation before the
//! current one is kept, so a reader that read the old manifest a moment ago
//! still finds its files; older ones and crashed commits' leftovers are
//! removed after the manifest is replaced.

use std::fs;
use std::path::Path;

use super::fsio::{self, failpoint, io_err};
use super::manifest::{
    read_manifest, FileEntry, Manifest, ManifestFiles, FORMAT_NAME, FORMAT_VERSION, MANIFEST,
};
use super::sentences::{write_sentences, SentenceVectors};
use super::{papers, vectors, Library, StoreError};
use crate::corpus::{Paper, TextTemplate};
use crate::embed::{is_unit, ModelInfo};
use crate::index::{self, FlatGraph, HnswParams, KeywordIndex};

/// What a library holds, row by row: paper i, its embedded text, and
/// vector i (`vectors[i*dim..(i+1)*dim]`).
#[derive(Clone, Copy)]
pub struct Contents<'a> {
    /// The papers, in row order.
    pub papers: &'a [Paper],
    /// The text embedded for each paper (the rendered template); the keyword
    /// index is built from these.
    pub texts: &'a [String],
    /// `papers.len() * dim` floats, row-major; every row L2-normalised.
    pub vectors: &'a [f32],
    /// Each paper's sentence vectors, one row per paper; none for a library
    /// without them (`build --no-sentences`).
    pub sentences: Option<&'a SentenceVectors>,
}

impl Contents<'_> {
    /// Refuses contents whose parts disagree in length, or with a vector that
    /// is not unit length: a zero or NaN vector must never reach the index.
    pub(super) fn check(&self, dim: usize) -> Result<(), StoreError> {
        let Contents {
            papers,
            texts,
            vectors,
            sentences,
        } = self;
        if let Some(s) = sentences {
            if s.rows() != papers.len() || s.dim() != dim {
                return Err(StoreError::Invalid(format!(
                    "sentence vectors for {} papers of dim {}, not {} of dim {dim}",
                    s.rows(),
                    s.dim(),
                    papers.len()
                )));
            }
        }
        if dim == 0 || vectors.len() != papers.len() * dim || texts.len() != papers.len() {
            return Err(StoreError::Invalid(format!(
                "{} papers, {} texts, {} floats for dim {dim}",
                papers.len(),
                texts.len(),
                vectors.len()
            )));
        }
        if let Some(bad) = vectors.chunks_exact(dim).position(|v| !is_unit(v)) {
            return Err(StoreError::Invalid(format!(
                "vector of paper {:?} is not unit length (zero or NaN)",
                papers[bad].id
            )));
        }
        Ok(())
    }
}

/// What a commit needs besides the contents.
pub struct CommitSpec<'a> {
    /// The model that embedded the vectors, recorded in the manifest so that
    /// queries are embedded by the same one.
    pub model: &'a ModelInfo,
    /// How a paper was rendered into the text that was embedded; recorded so
    /// that `add` renders new papers the same way.
    pub text_template: &'a TextTemplate,
    /// The HNSW graph's parameters, recorded in the manifest.
    pub index: HnswParams,
}

impl Library {
    /// Writes a new generation of the library at `dir` holding exactly
    /// `contents`, then builds its indexes. Every vector must be unit
    /// length: a zero or NaN vector never reaches the index.
    pub fn commit(
        dir: &Path,
        contents: Contents,
        spec: &CommitSpec,
        progress: &dyn Fn(&str),
    ) -> Result<Manifest, StoreError> {
        Self::commit_over(dir, contents, spec, None, progress)
    }

    /// [`Library::commit`], refused if `expect` is given and the library is
    /// no longer at that generation (someone else committed meanwhile).
    pub(super) fn commit_over(
        dir: &Path,
        contents: Contents,
        spec: &CommitSpec,
        expect: Option<u64>,
        progress: &dyn Fn(&str),
    ) -> Result<Manifest, StoreError> {
        contents.check(spec.model.dim)?;
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let _lock = fsio::lock(dir)?;
        let previous = match read_manifest(dir) {
            Ok(m) => Some(m),
            Err(StoreError::NotALibrary { .. }) => None,
            Err(e) => return Err(e),
        };
        let now = previous.as_ref().map(|m| m.generation);
        if expect.is_some() && now != expect {
            return Err(changed(dir, expect, now));
        }
        let generation = previous.as_ref().map_or(0, |m| m.generation) + 1;
        finish(dir, generation, previous.as_ref(), || {
            write_generation(dir, generation, previous.as_ref(), contents, spec, progress)
        })
    }
}

/// Runs `write` (which writes every file of `generation` and then the
/// manifest) between the clean-ups every commit needs: what a crashed commit
/// of this generation left before, and on success stale generations, on
/// failure the partial one. The writer lock must be held.
pub(super) fn finish(
    dir: &Path,
    generation: u64,
    previous: Option<&Manifest>,
    write: impl FnOnce() -> Result<Manifest, StoreError>,
) -> Result<Manifest, StoreError> {
    clear_generation(dir, generation);
    match write() {
        Ok(manifest) => {
            failpoint("after-manifest");
            remove_stale(dir, &manifest, previous);
            Ok(manifest)
        }
        Err(e) => {
            // Out of disk, or any other failure: leave no partial
            // generation behind. The old manifest was never touched.
            clear_generation(dir, generation);
            let _ = fs::remove_file(fsio::tmp_name(&dir.join(MANIFEST)));
            Err(e)
        }
    }
}

/// The error of a commit that found the library at another generation than
/// the one it was opened at.
pub(super) fn changed(dir: &Path, then: Option<u64>, now: Option<u64>) -> StoreError {
    StoreError::Invalid(format!(
        "{}: the library changed since it was opened (generation {} is now {}); \
         run the command again",
        dir.display(),
        then.unwrap_or(0),
        now.unwrap_or(0)
    ))
}

/// Writes every file of `generation`, then the manifest that points to them.
fn write_generation(
    dir: &Path,
    generation: u64,
    previous: Option<&Manifest>,
    Contents {
        papers,
        texts,
        vectors,
        sentences,
    }: Contents,
    spec: &CommitSpec,
    progress: &dyn Fn(&str),
) -> Result<Manifest, StoreError> {
    let dim = spec.model.dim;
    progress("writing papers");
    let facts: Vec<papers::Facts> = papers.iter().map(papers::Facts::of).collect();
    let (papers_entry, rows_entry) =
        papers::write(dir, generation, &facts, |w| papers::write_lines(w, papers))?;
    failpoint("after-papers");
    progress("writing vectors");
    let vectors_entry = vectors::write_vectors(
        &dir.join(format!("vectors.{generation}.f32")),
        &[vectors],
        dim,
    )?;
    failpoint("after-vectors");
    let sentences_entry = match sentences {
        Some(s) => {
            progress("writing sentence vectors");
            let e = write_sentences(&dir.join(format!("sentences.{generation}.i8")), &[s], dim)?;
            failpoint("after-sentences");
            Some(e)
        }
        None => None,
    };

    progress("building the HNSW index");
    let graph = index::build(vectors, dim, &spec.index);
    progress("writing the index");
    let flat_entry = write_graph(dir, generation, &graph)?;
    failpoint("after-graph");

    progress("building the keyword index");
    let keyword_dir = format!("keyword.{generation}");
    let kdir = dir.join(&keyword_dir);
    fs::create_dir_all(&kdir).map_err(io_err(&kdir))?;
    KeywordIndex::build(&kdir, texts)?;
    let keyword = keyword_entries(&kdir)?;
    fsio::sync_dir(dir)?;

    let now = now();
    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        generation,
        model: spec.model.clone(),
        text_template: spec.text_template.clone(),
        papers: papers.len(),
        dim,
        index: spec.index,
        created: previous
            .as_ref()
            .map_or_else(|| now.clone(), |m| m.created.clone()),
        updated: now,
        files: ManifestFiles {
            papers: papers_entry,
            vectors: vectors_entry,
            keyword_dir,
            keyword,
            flat: flat_entry,
            rows: rows_entry,
            sentences: sentences_entry,
        },
        dead: Vec::new(),
        checksum: 0,
    };
    write_manifest(dir, manifest)
}

/// The time a manifest records, RFC 3339 to the second.
pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Writes `graph` (what queries search) for `generation`.
pub(super) fn write_graph(
    dir: &Path,
    generation: u64,
    graph: &FlatGraph,
) -> Result<FileEntry, StoreError> {
    let bytes = graph.to_bytes();
    fsio::write_sealed(&dir.join(format!("graph.{generation}.flat")), |w| {
        w.write_all(&bytes)
    })
}

/// The commit point: seals `manifest` with its checksum and atomically
/// replaces `manifest.json` with it. Every file it names must be durable.
pub(super) fn write_manifest(dir: &Path, mut manifest: Manifest) -> Result<Manifest, StoreError> {
    manifest.checksum = manifest.compute_checksum();
    fsio::write_atomic(&dir.join(MANIFEST), |w| {
        serde_json::to_writer_pretty(&mut *w, &manifest)?;
        w.write_all(b"\n")
    })?;
    Ok(manifest)
}

/// Describes every file of a keyword index folder, after syncing it.
pub(super) fn keyword_entries(kdir: &Path) -> Result<Vec<FileEntry>, StoreError> {
    let mut keyword = Vec::new();
    for e in fs::read_dir(kdir).map_err(io_err(kdir))? {
        let path = e.map_err(io_err(kdir))?.path();
        // tantivy's lock files are empty and come and go; not data.
        if path.is_file() && !fsio::file_name(&path).ends_with(".lock") {
            keyword.push(fsio::entry_of(&path)?);
        }
    }
    keyword.sort_by(|a, b| a.name.cmp(&b.name));
    fsio::sync_dir(kdir)?;
    Ok(keyword)
}

/// Removes what a crashed commit of `generation` may have left, so that the
/// retry writes under the same names.
fn clear_generation(dir: &Path, generation: u64) {
    let prefixes =
        ["papers", "vectors", "graph", "sentences"].map(|p| format!("{p}.{generation}."));
    let keyword = format!("keyword.{generation}");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == keyword || prefixes.iter().any(|p| name.starts_with(p)) {
            remove_any(&e.path());
        }
    }
}

/// Deletes files of generations older than the previous one, and temp files
/// left by crashed commits. Best effort: a leftover file is harmless.
fn remove_stale(dir: &Path, current: &Manifest, previous: Option<&Manifest>) {
    let keep: Vec<&str> = [Some(current), previous]
        .into_iter()
        .flatten()
        .flat_map(|m| {
            let f = &m.files;
            f.top_level()
                .map(|e| e.name.as_str())
                .chain([f.keyword_dir.as_str()])
        })
        .collect();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = ["papers.", "vectors.", "graph.", "keyword.", "sentences."]
            .iter()
            .any(|p| name.starts_with(p))
            || name.ends_with(".tmp");
        if ours && !keep.contains(&name.as_str()) {
            remove_any(&e.path());
        }
    }
}

fn remove_any(path: &Path) {
    let _ = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
}
