//! An open library: the manifest's files checked and loaded, everything a
//! query needs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::fsio::{self, io_err};
use super::manifest::{live_rows, read_manifest, Manifest};
use super::sentences::{read_sentences, SentenceVectors};
use super::{Papers, StoreError, Vectors};
use crate::corpus::Paper;
use crate::index::{FlatGraph, KeywordIndex};

/// An open library: everything needed to answer queries.
pub struct Library {
    dir: PathBuf,
    manifest: Manifest,
    papers: Papers,
    /// `live[row]` is false for the manifest's dead rows.
    live: Vec<bool>,
    /// Live rows only: a replaced paper's id names its newest row. Built on
    /// first use: a search by text never needs it.
    rows_by_id: OnceLock<HashMap<String, usize>>,
    vectors: Vectors,
    graph: FlatGraph,
    /// Loaded on first use: a dense search never needs it.
    keyword: OnceLock<KeywordIndex>,
    /// Loaded (and checked) on first use, like the keyword index.
    sentence_vectors: OnceLock<SentenceVectors>,
    /// Sentence vectors of papers already explained (`why`), by row: a
    /// paper that comes back in another result list is not embedded again.
    sentences: crate::query::SentenceCache,
}

impl Library {
    /// Opens `dir`, checking the manifest's format and version, every file's
    /// size and sealed files' seals, and the checksum of every file it reads
    /// now, before reading their contents. Files loaded later are checked
    /// when loaded.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let manifest = read_manifest(dir)?;
        let files = &manifest.files;
        for (rel, entry) in files.all() {
            fsio::check_quick(&dir.join(rel), entry)?;
        }
        // Read whole at open: its crc32 is checked now.
        fsio::check(&dir.join(&files.vectors.name), &files.vectors)?;
        // Also read whole at open, by parsers that check their seals: one
        // pass each, not two (see `fsio::check_sealed`).
        for entry in [&files.flat, &files.rows] {
            fsio::check_sealed(&dir.join(&entry.name), entry)?;
        }
        let (papers, vectors) = load_data(dir, &manifest)?;
        let graph = load_graph(dir, &manifest)?;
        let live = live_rows(dir, &manifest)?;
        Ok(Library {
            dir: dir.to_path_buf(),
            manifest,
            papers,
            live,
            rows_by_id: OnceLock::new(),
            vectors,
            graph,
            keyword: OnceLock::new(),
            sentence_vectors: OnceLock::new(),
            sentences: crate::query::SentenceCache::default(),
        })
    }

    /// The library's directory, as given to [`Library::open`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest of the generation that was opened.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Every row's paper, dead rows included (see [`Library::is_live`]).
    pub fn papers(&self) -> &Papers {
        &self.papers
    }

    /// Row `row`'s paper.
    pub fn paper(&self, row: usize) -> Result<Cow<'_, Paper>, StoreError> {
        self.papers.get(row)
    }

    /// Rows: papers and vectors in the files, dead ones included.
    pub fn len(&self) -> usize {
        self.papers.len()
    }

    /// Whether the files hold no rows at all (live or dead).
    pub fn is_empty(&self) -> bool {
        self.papers.is_empty()
    }

    /// False for a removed or replaced row: no query may return it.
    pub fn is_live(&self, row: usize) -> bool {
        self.live.get(row).copied().unwrap_or(false)
    }

    /// Papers a query can return.
    pub fn live_len(&self) -> usize {
        self.papers.len() - self.manifest.dead.len()
    }

    /// Dead rows over all rows: what `compact` would reclaim.
    pub fn dead_fraction(&self) -> f64 {
        self.manifest.dead.len() as f64 / self.papers.len().max(1) as f64
    }

    /// The live row of the paper `id`, if any (its newest row when it was
    /// replaced). Exact match; the id map is built on first call.
    pub fn row_of(&self, id: &str) -> Option<usize> {
        self.rows_by_id
            .get_or_init(|| self.papers.rows_by_id(|r| self.is_live(r)))
            .get(id)
            .copied()
    }

    /// Every row's vector, dead rows included.
    pub fn vectors(&self) -> &Vectors {
        &self.vectors
    }

    /// The HNSW graph over every row (dead ones included: a search filters
    /// them out).
    pub fn graph(&self) -> &FlatGraph {
        &self.graph
    }

    /// Sentence vectors kept for explanations, by row.
    pub(crate) fn sentence_cache(&self) -> &crate::query::SentenceCache {
        &self.sentences
    }

    /// The keyword index, loaded (and its files checked) now if it was not yet.
    pub fn keyword(&self) -> Result<&KeywordIndex, StoreError> {
        if let Some(k) = self.keyword.get() {
            return Ok(k);
        }
        let loaded = load_keyword(&self.dir, &self.manifest)?;
        // Another thread may have won the race; either index is the same.
        let _ = self.keyword.set(loaded);
        self.keyword.get().ok_or_else(|| StoreError::Corrupt {
            path: self.dir.join(&self.manifest.files.keyword_dir),
            reason: "keyword index did not load".into(),
        })
    }

    /// Whether the library stores sentence vectors (built without
    /// `--no-sentences`).
    pub fn has_sentences(&self) -> bool {
        self.manifest.files.sentences.is_some()
    }

    /// The sentence vectors of every row, loaded (and checked) now if they
    /// were not yet; none for a library built without them.
    pub fn sentences(&self) -> Result<Option<&SentenceVectors>, StoreError> {
        if !self.has_sentences() {
            return Ok(None);
        }
        if let Some(s) = self.sentence_vectors.get() {
            return Ok(Some(s));
        }
        let loaded = load_sentences(&self.dir, &self.manifest)?;
        let _ = self.sentence_vectors.set(loaded);
        Ok(self.sentence_vectors.get())
    }

    /// Bytes the library's current files take on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.manifest.files.all().iter().map(|(_, e)| e.bytes).sum()
    }
}

/// Papers and vectors, with their counts checked against the manifest.
pub(super) fn load_data(dir: &Path, m: &Manifest) -> Result<(Papers, Vectors), StoreError> {
    let rows = dir.join(&m.files.rows.name);
    let papers = Papers::open(&dir.join(&m.files.papers.name), &rows, m.papers)?;
    let vectors = Vectors::open(&dir.join(&m.files.vectors.name), m.dim, m.papers)?;
    Ok((papers, vectors))
}

pub(super) fn load_graph(dir: &Path, m: &Manifest) -> Result<FlatGraph, StoreError> {
    let path = dir.join(&m.files.flat.name);
    let file = fs::File::open(&path).map_err(io_err(&path))?;
    // Parsed from a map, not a read into a buffer: a 40 MB buffer freed again
    // stays in the resident set (the allocator keeps it), which an open
    // library's memory bar counts; and the codes stay in the map.
    // SAFETY: a library's files are never modified in place (every commit
    // writes new files), so the mapping cannot change under us.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(&path))?;
    FlatGraph::from_map(Arc::new(map), m.papers)
        .map_err(|reason| StoreError::Corrupt { path, reason })
}

pub(super) fn load_keyword(dir: &Path, m: &Manifest) -> Result<KeywordIndex, StoreError> {
    let kdir = dir.join(&m.files.keyword_dir);
    for entry in &m.files.keyword {
        fsio::check(&kdir.join(&entry.name), entry)?;
    }
    let keyword = KeywordIndex::open(&kdir)?;
    if keyword.len() != m.papers {
        return Err(StoreError::Corrupt {
            path: kdir,
            reason: format!(
                "keyword index holds {} papers, the manifest says {}",
                keyword.len(),
                m.papers
            ),
        });
    }
    Ok(keyword)
}

/// The sentence vectors file of `m`, checked against its manifest entry and
/// shape. Errors when the manifest names none.
pub(super) fn load_sentences(dir: &Path, m: &Manifest) -> Result<SentenceVectors, StoreError> {
    let entry = m
        .files
        .sentences
        .as_ref()
        .ok_or_else(|| StoreError::Invalid("this library stores no sentence vectors".into()))?;
    let path = dir.join(&entry.name);
    fsio::check_quick(&path, entry)?;
    read_sentences(&path, m.dim, m.papers)
}
