//! A library on disk: papers, their vectors and the HNSW graph, tied together
//! by a manifest.
//!
//! ```text
//! LIBRARY/
//!   manifest.json            the commit point (JSON, format_version, checksums of the rest)
//!   papers.<gen>.jsonl       one paper per line; line i describes vector row i
//!   papers.<gen>.rows        where each line lies, its crc32, and each row's id
//!   vectors.<gen>.f32        magic + version + shape header, f32 rows, crc32 footer
//!   graph.<gen>.flat         the HNSW graph as flat arrays, with 8-bit codes of the rows
//!   keyword.<gen>/           tantivy BM25 index of the same texts (its `row` field is the vector row)
//! ```
//!
//! Libraries of format version 1 also have `graph.<gen>.hnsw.{graph,data}`,
//! the hnsw_rs dump the graph was built as (and the only graph of the oldest
//! ones). They are read as they are; their next commit writes version 2.
//!
//! A commit writes generation `gen+1` under new names (each through a temp
//! name, fsynced, renamed), syncs the folder, then atomically replaces
//! `manifest.json`. A crash at any point leaves the old manifest pointing at
//! the old, untouched files, or the new manifest pointing at complete new
//! ones. The generation before the current one is kept, so a reader that
//! read the old manifest a moment ago still finds its files.

mod cache;
mod export;
mod files;
mod papers;
mod update;
mod verify;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::corpus::{Paper, TextTemplate};
use crate::embed::{is_unit, ModelInfo};
use crate::index::{self, FlatGraph, HnswIndex, HnswParams, IndexError, KeywordIndex};

pub use cache::{text_hash, EmbedCache, TextHash, CACHE_FILE};
pub use export::{export, npy_header, write_npy, ExportReport};
pub(crate) use files::failpoint;
pub use files::{write_atomic, FileEntry, Vectors};
pub use papers::Papers;
pub use verify::{repair, verify, Check, VerifyReport};

pub const MANIFEST: &str = "manifest.json";
pub const FORMAT_NAME: &str = "papersim-library";
/// Bumped whenever a reader of the previous version could misread the files.
/// Version 2: no hnsw_rs graph; the flat graph is the graph.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this papersim still reads.
const OLDEST_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no papersim library here (no {MANIFEST}); create one with `papersim build --corpus FILE --library {}`", path.display(), path.display())]
    NotALibrary { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    BadManifest { path: PathBuf, reason: String },
    #[error("{}: corrupt: {reason}; rebuild the library", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}:{line}: {reason}", path.display())]
    BadPaper {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("refusing to commit: {0}")]
    Invalid(String),
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Files of one generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFiles {
    pub papers: FileEntry,
    pub vectors: FileEntry,
    /// The hnsw_rs dump (graph and data files) of a format version 1
    /// library; none since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<FileEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_data: Option<FileEntry>,
    /// The keyword index folder and every file in it.
    pub keyword_dir: String,
    pub keyword: Vec<FileEntry>,
    /// The graph as flat arrays (`index::FlatGraph`), what queries search.
    /// The oldest libraries have none and search the hnsw_rs graph itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat: Option<FileEntry>,
    /// Where each paper's line lies (`store::papers`). Libraries from before
    /// it parse every paper at open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<FileEntry>,
}

impl ManifestFiles {
    /// Files a query reads whole at open, so whose crc32 is checked then; the
    /// rest are checked for size (and seal) at open and for crc32 when first loaded
    /// (the hnsw_rs graph, the keyword index) or line by line (papers), and
    /// all of it by `verify`.
    fn checked_at_open(&self) -> Vec<&FileEntry> {
        let mut v = vec![&self.vectors];
        if self.rows.is_none() {
            v.push(&self.papers);
        }
        if self.flat.is_none() {
            v.extend(self.hnsw_rs());
        }
        v
    }

    /// Files also read whole at open, by parsers that check their crc32
    /// footers: one pass each, not two (see `files::check_sealed`).
    fn sealed_at_open(&self) -> impl Iterator<Item = &FileEntry> {
        self.flat.iter().chain(&self.rows)
    }

    /// The hnsw_rs dump's files, when the library has them.
    fn hnsw_rs(&self) -> impl Iterator<Item = &FileEntry> {
        self.graph.iter().chain(&self.graph_data)
    }

    /// Every file in the library folder itself.
    fn top_level(&self) -> impl Iterator<Item = &FileEntry> {
        [&self.papers, &self.vectors]
            .into_iter()
            .chain(self.hnsw_rs())
            .chain(&self.flat)
            .chain(&self.rows)
    }

    /// Every file, with its path relative to the library folder.
    fn all(&self) -> Vec<(String, &FileEntry)> {
        let mut v: Vec<(String, &FileEntry)> =
            self.top_level().map(|e| (e.name.clone(), e)).collect();
        v.extend(
            self.keyword
                .iter()
                .map(|e| (format!("{}/{}", self.keyword_dir, e.name), e)),
        );
        v
    }
}

/// What `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub generation: u64,
    pub model: ModelInfo,
    pub text_template: TextTemplate,
    pub papers: usize,
    pub dim: usize,
    pub index: HnswParams,
    /// RFC 3339.
    pub created: String,
    pub updated: String,
    pub files: ManifestFiles,
    /// Rows removed or replaced since the last full build (`remove`, `add`),
    /// ascending. Their papers and vectors stay in the files, so row numbers
    /// never shift; every query leaves them out, and `compact` drops them.
    /// Omitted when empty, so a library without updates keeps its checksum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead: Vec<usize>,
    /// crc32 of this manifest serialised with `checksum` = 0: catches a
    /// damaged manifest that is still valid JSON.
    #[serde(default)]
    pub checksum: u32,
}

impl Manifest {
    fn compute_checksum(&self) -> u32 {
        let mut m = self.clone();
        m.checksum = 0;
        crc32fast::hash(&serde_json::to_vec(&m).unwrap_or_default())
    }
}

/// What a library holds, row by row: paper i, its embedded text, and
/// vector i (`vectors[i*dim..(i+1)*dim]`).
#[derive(Clone, Copy)]
pub struct Contents<'a> {
    pub papers: &'a [Paper],
    pub texts: &'a [String],
    pub vectors: &'a [f32],
}

impl Contents<'_> {
    /// Refuses contents whose parts disagree in length, or with a vector that
    /// is not unit length: a zero or NaN vector must never reach the index.
    fn check(&self, dim: usize) -> Result<(), StoreError> {
        let Contents {
            papers,
            texts,
            vectors,
        } = self;
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
    pub model: &'a ModelInfo,
    pub text_template: &'a TextTemplate,
    pub index: HnswParams,
}

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
    /// The flat graph queries search; None for libraries from before it.
    flat: Option<FlatGraph>,
    /// The hnsw_rs graph of the oldest libraries (no flat graph), loaded on
    /// first use: their queries search it, and `add` copies its links out.
    index: OnceLock<HnswIndex>,
    /// Loaded on first use, for the same reason.
    keyword: OnceLock<KeywordIndex>,
}

impl Library {
    /// Opens `dir`, checking the manifest's format and version, every file's
    /// size and sealed files' seals, and the checksum of every file it reads now, before
    /// reading their contents. Files loaded later are checked when loaded.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let manifest = read_manifest(dir)?;
        for (rel, entry) in manifest.files.all() {
            files::check_quick(&dir.join(rel), entry)?;
        }
        for entry in manifest.files.checked_at_open() {
            files::check(&dir.join(&entry.name), entry)?;
        }
        for entry in manifest.files.sealed_at_open() {
            files::check_sealed(&dir.join(&entry.name), entry)?;
        }
        let (papers, vectors) = load_data(dir, &manifest)?;
        let flat = load_flat(dir, &manifest)?;
        let live = live_rows(dir, &manifest)?;
        Ok(Library {
            dir: dir.to_path_buf(),
            manifest,
            papers,
            live,
            rows_by_id: OnceLock::new(),
            vectors,
            flat,
            index: OnceLock::new(),
            keyword: OnceLock::new(),
        })
    }

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
    fn commit_over(
        dir: &Path,
        contents: Contents,
        spec: &CommitSpec,
        expect: Option<u64>,
        progress: &dyn Fn(&str),
    ) -> Result<Manifest, StoreError> {
        contents.check(spec.model.dim)?;
        fs::create_dir_all(dir).map_err(files::io_err(dir))?;
        let _lock = files::lock(dir)?;
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
        clear_generation(dir, generation);

        match write_generation(dir, generation, previous.as_ref(), contents, spec, progress) {
            Ok(manifest) => {
                files::failpoint("after-manifest");
                remove_stale(dir, &manifest, previous.as_ref());
                Ok(manifest)
            }
            Err(e) => {
                // Out of disk, or any other failure: leave no partial
                // generation behind. The old manifest was never touched.
                clear_generation(dir, generation);
                let _ = fs::remove_file(files::tmp_name(&dir.join(MANIFEST)));
                Err(e)
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Every row's paper, dead rows included (see [`Library::is_live`]).
    pub fn papers(&self) -> &Papers {
        &self.papers
    }

    /// Row `row`'s paper.
    pub fn paper(&self, row: usize) -> Result<std::borrow::Cow<'_, Paper>, StoreError> {
        self.papers.get(row)
    }

    /// Rows: papers and vectors in the files, dead ones included.
    pub fn len(&self) -> usize {
        self.papers.len()
    }

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

    pub fn row_of(&self, id: &str) -> Option<usize> {
        self.rows_by_id
            .get_or_init(|| self.papers.rows_by_id(|r| self.is_live(r)))
            .get(id)
            .copied()
    }

    pub fn vectors(&self) -> &Vectors {
        &self.vectors
    }

    /// The hnsw_rs graph, loaded now if it was not yet.
    pub fn index(&self) -> Result<&HnswIndex, StoreError> {
        if let Some(i) = self.index.get() {
            return Ok(i);
        }
        let loaded = load_graph(&self.dir, &self.manifest)?;
        // Another thread may have won the race; either graph is the same.
        let _ = self.index.set(loaded);
        self.index.get().ok_or_else(|| StoreError::Corrupt {
            path: self.dir.join(MANIFEST),
            reason: "the hnsw_rs graph did not load".into(),
        })
    }

    /// The flat graph, when the library has one.
    pub fn flat(&self) -> Option<&FlatGraph> {
        self.flat.as_ref()
    }

    /// The graph an update extends: the flat graph, or for the oldest
    /// libraries (none) their hnsw_rs graph's links.
    fn graph(&self) -> Result<std::borrow::Cow<'_, FlatGraph>, StoreError> {
        match &self.flat {
            Some(f) => Ok(std::borrow::Cow::Borrowed(f)),
            None => Ok(std::borrow::Cow::Owned(self.index()?.flatten())),
        }
    }

    /// The keyword index, loaded (and its files checked) now if it was not yet.
    pub fn keyword(&self) -> Result<&KeywordIndex, StoreError> {
        if let Some(k) = self.keyword.get() {
            return Ok(k);
        }
        let loaded = load_keyword(&self.dir, &self.manifest)?;
        let _ = self.keyword.set(loaded);
        self.keyword.get().ok_or_else(|| StoreError::Corrupt {
            path: self.dir.join(&self.manifest.files.keyword_dir),
            reason: "keyword index did not load".into(),
        })
    }

    /// Bytes the library's current files take on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.manifest.files.all().iter().map(|(_, e)| e.bytes).sum()
    }
}

fn changed(dir: &Path, then: Option<u64>, now: Option<u64>) -> StoreError {
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
    }: Contents,
    spec: &CommitSpec,
    progress: &dyn Fn(&str),
) -> Result<Manifest, StoreError> {
    let dim = spec.model.dim;
    progress("writing papers");
    let facts: Vec<papers::Facts> = papers.iter().map(papers::Facts::of).collect();
    let (papers_entry, rows_entry) =
        papers::write(dir, generation, &facts, |w| papers::write_lines(w, papers))?;
    files::failpoint("after-papers");
    progress("writing vectors");
    let vectors_entry = files::write_vectors(
        &dir.join(format!("vectors.{generation}.f32")),
        &[vectors],
        dim,
    )?;
    files::failpoint("after-vectors");

    progress("building the HNSW index");
    let params = index::own_graph(spec.index);
    let graph = index::build(vectors, dim, &params);
    progress("writing the index");
    let flat_entry = write_flat(dir, generation, &graph)?;
    files::failpoint("after-graph");

    progress("building the keyword index");
    let keyword_dir = format!("keyword.{generation}");
    let kdir = dir.join(&keyword_dir);
    fs::create_dir_all(&kdir).map_err(files::io_err(&kdir))?;
    KeywordIndex::build(&kdir, texts)?;
    let keyword = keyword_entries(&kdir)?;
    files::sync_dir(dir)?;

    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        generation,
        model: spec.model.clone(),
        text_template: spec.text_template.clone(),
        papers: papers.len(),
        dim,
        index: params,
        created: previous
            .as_ref()
            .map_or_else(|| now.clone(), |m| m.created.clone()),
        updated: now,
        files: ManifestFiles {
            papers: papers_entry,
            vectors: vectors_entry,
            graph: None,
            graph_data: None,
            keyword_dir,
            keyword,
            flat: Some(flat_entry),
            rows: Some(rows_entry),
        },
        dead: Vec::new(),
        checksum: 0,
    };
    write_manifest(dir, manifest)
}

/// Writes `graph` (what queries search) for `generation`.
fn write_flat(dir: &Path, generation: u64, graph: &FlatGraph) -> Result<FileEntry, StoreError> {
    let bytes = graph.to_bytes();
    files::write_sealed(&dir.join(format!("graph.{generation}.flat")), |w| {
        w.write_all(&bytes)
    })
}

fn load_flat(dir: &Path, m: &Manifest) -> Result<Option<FlatGraph>, StoreError> {
    let Some(entry) = &m.files.flat else {
        return Ok(None);
    };
    let path = dir.join(&entry.name);
    let file = fs::File::open(&path).map_err(files::io_err(&path))?;
    // Parsed from a map, not a read into a buffer: a 40 MB buffer freed again
    // stays in the resident set (the allocator keeps it), which an open
    // library's memory bar counts; and the codes stay in the map.
    // SAFETY: a library's files are never modified in place (every commit
    // writes new files), so the mapping cannot change under us.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(files::io_err(&path))?;
    FlatGraph::from_map(std::sync::Arc::new(map), m.papers)
        .map(Some)
        .map_err(|reason| StoreError::Corrupt { path, reason })
}

/// The commit point: seals `manifest` with its checksum and atomically
/// replaces `manifest.json` with it. Every file it names must be durable.
fn write_manifest(dir: &Path, mut manifest: Manifest) -> Result<Manifest, StoreError> {
    manifest.checksum = manifest.compute_checksum();
    files::write_atomic(&dir.join(MANIFEST), |w| {
        serde_json::to_writer_pretty(&mut *w, &manifest)?;
        w.write_all(b"\n")
    })?;
    files::sync_dir(dir)?;
    Ok(manifest)
}

/// Describes every file of a keyword index folder, after syncing it.
fn keyword_entries(kdir: &Path) -> Result<Vec<FileEntry>, StoreError> {
    let mut keyword = Vec::new();
    for e in fs::read_dir(kdir).map_err(files::io_err(kdir))? {
        let path = e.map_err(files::io_err(kdir))?.path();
        // tantivy's lock files are empty and come and go; not data.
        if path.is_file() && !files::file_name(&path).ends_with(".lock") {
            keyword.push(files::entry_of(&path)?);
        }
    }
    keyword.sort_by(|a, b| a.name.cmp(&b.name));
    files::sync_dir(kdir)?;
    Ok(keyword)
}

/// Papers and vectors, with their counts checked against the manifest.
fn load_data(dir: &Path, m: &Manifest) -> Result<(Papers, Vectors), StoreError> {
    let rows = m.files.rows.as_ref().map(|e| dir.join(&e.name));
    let papers = Papers::open(&dir.join(&m.files.papers.name), rows.as_deref(), m.papers)?;
    let vectors = Vectors::open(&dir.join(&m.files.vectors.name), m.dim, m.papers)?;
    Ok((papers, vectors))
}

/// The hnsw_rs graph of a format version 1 library.
fn load_graph(dir: &Path, m: &Manifest) -> Result<HnswIndex, StoreError> {
    let (Some(graph), Some(_)) = (&m.files.graph, &m.files.graph_data) else {
        return Err(StoreError::BadManifest {
            path: dir.join(MANIFEST),
            reason: "fields \"files.graph\" and \"files.graph_data\": the library has no \
                     hnsw_rs graph"
                .into(),
        });
    };
    for entry in m.files.hnsw_rs() {
        files::check(&dir.join(&entry.name), entry)?;
    }
    let name = &graph.name;
    let basename = name
        .strip_suffix(".hnsw.graph")
        .ok_or_else(|| StoreError::BadManifest {
            path: dir.join(MANIFEST),
            reason: format!("files.graph.name {name:?} does not end in .hnsw.graph"),
        })?;
    let index = HnswIndex::load(dir, basename, m.index)?;
    if index.len() != m.papers {
        return Err(StoreError::Corrupt {
            path: dir.join(name),
            reason: format!(
                "graph holds {} points, the manifest says {}",
                index.len(),
                m.papers
            ),
        });
    }
    Ok(index)
}

/// The live-row map of the manifest's dead list, which must be ascending rows
/// of the library.
fn live_rows(dir: &Path, m: &Manifest) -> Result<Vec<bool>, StoreError> {
    let mut live = vec![true; m.papers];
    let mut last = None;
    for &row in &m.dead {
        if row >= m.papers || last.is_some_and(|l| l >= row) {
            return Err(StoreError::BadManifest {
                path: dir.join(MANIFEST),
                reason: format!(
                    "field \"dead\": row {row} is out of order or past the {} rows",
                    m.papers
                ),
            });
        }
        live[row] = false;
        last = Some(row);
    }
    Ok(live)
}

fn load_keyword(dir: &Path, m: &Manifest) -> Result<KeywordIndex, StoreError> {
    let kdir = dir.join(&m.files.keyword_dir);
    for entry in &m.files.keyword {
        files::check(&kdir.join(&entry.name), entry)?;
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

/// Reads and validates `dir/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, StoreError> {
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotALibrary {
                path: dir.to_path_buf(),
            })
        }
        Err(source) => return Err(StoreError::Io { path, source }),
    };
    let bad = |reason: String| StoreError::BadManifest {
        path: path.clone(),
        reason,
    };
    // Check the format and version before the full shape, so that a newer
    // library says "newer" instead of "missing field".
    let head: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("line {}: {e}", e.line())))?;
    if head.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
        return Err(bad(format!(
            "not a {FORMAT_NAME} manifest (field \"format\")"
        )));
    }
    match head.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if (u64::from(OLDEST_FORMAT)..=u64::from(FORMAT_VERSION)).contains(&v) => {}
        Some(v) => {
            return Err(bad(format!(
                "library format version {v}; this papersim reads versions {OLDEST_FORMAT} to \
                 {FORMAT_VERSION} (rebuild the library, or use a matching papersim)"
            )))
        }
        None => {
            return Err(bad(
                "field \"format_version\" is missing or not a number".into()
            ))
        }
    }
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| bad(format!("line {}: {e}", e.line())))?;
    if m.checksum != m.compute_checksum() {
        return Err(bad(format!(
            "checksum {:08x} does not match its contents ({:08x}): the manifest is damaged; \
             rebuild the library",
            m.checksum,
            m.compute_checksum()
        )));
    }
    // A manifest names files inside its own folder only: a name with a path
    // in it (`../x`, `/dev/zero`) could make opening read anything.
    let plain = |n: &str| !n.is_empty() && n != "." && n != ".." && !n.contains(['/', '\\', '\0']);
    let names = m.files.all();
    if let Some((rel, _)) = names
        .iter()
        .find(|(rel, e)| !plain(&e.name) || rel.contains(".."))
    {
        return Err(bad(format!(
            "file name {rel:?} is not a plain name inside the library"
        )));
    }
    if !plain(&m.files.keyword_dir) {
        return Err(bad(format!(
            "keyword_dir {:?} is not a plain name inside the library",
            m.files.keyword_dir
        )));
    }
    if m.dim != m.model.dim {
        return Err(bad(format!(
            "dim {} disagrees with model.dim {}",
            m.dim, m.model.dim
        )));
    }
    Ok(m)
}

/// Removes what a crashed commit of `generation` may have left, so that the
/// retry writes under the same names.
fn clear_generation(dir: &Path, generation: u64) {
    let prefixes = ["papers", "vectors", "graph"].map(|p| format!("{p}.{generation}."));
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
        let ours = ["papers.", "vectors.", "graph.", "keyword."]
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
