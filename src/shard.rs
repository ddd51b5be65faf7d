//! Builds beyond one machine: a corpus embedded as N independent shards (one
//! Slurm array task each), then merged into one library without embedding
//! anything again.
//!
//! A paper belongs to shard [`shard_of`]`(id, N)`: a stable hash of its id
//! alone, so a shard holds the same papers whatever the corpus file's order
//! and whichever other shards ran, failed or were resubmitted.
//!
//! ```text
//! SHARD_DIR/
//!   shard.json      the commit point: K, N, model, template, corpus sha256,
//!                   counts, and the size and crc32 of the two files below
//!   papers.bin      sealed: u64 rows | rows x u64 position in the corpus | JSON lines
//!   vectors.bin     sealed: u32 dim | u64 rows | rows x dim f32
//!   embed-cache.bin the checkpoint of an unfinished shard (see store's cache)
//! ```
//!
//! Both data files are written atomically and `shard.json` last, so a folder
//! with a `shard.json` whose files match it is a finished shard, and any other
//! state is an unfinished one that a rerun resumes from its checkpoint.
//! [`merge`] checks every shard (same model, precision, template, corpus and
//! N; shards `0..N` each present once; no id twice) before it commits one
//! library, its rows in corpus order, exactly as a single-process `build` of
//! the same corpus would.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::corpus::{self, Issue, Paper, ReadOptions, TextTemplate};
use crate::embed::{is_unit, EmbedStats, Embedder, ModelInfo};
use crate::format::{self, SealedWriter};
use crate::index::HnswParams;
use crate::pipeline::{self, embed_resumable, PipelineError, Progress};
use crate::store::{
    read_manifest, write_atomic, CommitSpec, Contents, EmbedCache, FileEntry, Library, StoreError,
};

/// The file that makes a folder a finished shard.
pub const SHARD_MANIFEST: &str = "shard.json";
/// `format` in `shard.json`.
pub const FORMAT_NAME: &str = "papersim-shard";
/// `format_version` in `shard.json`; bumped when an older reader could
/// misread the files.
pub const FORMAT_VERSION: u32 = 1;

const PAPERS_FILE: &str = "papers.bin";
const VECTORS_FILE: &str = "vectors.bin";
const PAPERS_MAGIC: &[u8; 8] = b"PSIMSHPA";
const VECTORS_MAGIC: &[u8; 8] = b"PSIMSHVE";
const FILE_VERSION: u32 = 1;

/// Everything that can stop a sharded build or a merge.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// `--shard` (or the Slurm variables) do not name a shard.
    #[error("{0}")]
    BadSpec(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The folder has no `shard.json`: its task never finished, or it is no shard.
    #[error("{}: not a finished shard (no {SHARD_MANIFEST}): its build task did not finish; rerun it (`papersim build --shard K/N --out {}` resumes) or leave the folder out", path.display(), path.display())]
    NotAShard {
        /// The folder.
        path: PathBuf,
    },
    /// A shard's manifest or files are damaged or do not match each other.
    #[error("{}: damaged shard: {reason}; rebuild it with `papersim build --shard K/N --out` on the same folder", path.display())]
    Damaged {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The output folder already holds another shard.
    #[error("{}: holds shard {found}, not {asked}; give each shard its own --out folder, or delete this one", path.display())]
    WrongShard {
        /// The folder.
        path: PathBuf,
        /// The shard it holds.
        found: ShardSpec,
        /// The shard asked for.
        asked: ShardSpec,
    },
    /// A shard was built from other inputs than the first one given.
    #[error("{}: foreign shard: {reason} than {}; merge only shards of one build", path.display(), first.display())]
    Foreign {
        /// The foreign shard.
        path: PathBuf,
        /// The first shard given, the reference.
        first: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Two folders hold the same shard.
    #[error("{} and {}: both hold shard {index}/{count}; give each shard once", first.display(), second.display())]
    DuplicateShard {
        /// K.
        index: usize,
        /// N.
        count: usize,
        /// The first folder.
        first: PathBuf,
        /// The second one.
        second: PathBuf,
    },
    /// Shards of `0..N` are missing.
    #[error("{}: shard {} of {count} missing (given {given}); build {} and merge all {count}", first.display(), list(missing), if missing.len() == 1 { "it" } else { "them" })]
    Missing {
        /// The missing shard numbers.
        missing: Vec<usize>,
        /// N.
        count: usize,
        /// How many shards were given.
        given: usize,
        /// The first shard given (the build they belong to).
        first: PathBuf,
    },
    /// One id is in two shards.
    #[error("{} and {}: paper {id:?} is in both; these shards are not of one corpus", first.display(), second.display())]
    DuplicateId {
        /// The paper id.
        id: String,
        /// The shard it was found in first.
        first: PathBuf,
        /// The other shard.
        second: PathBuf,
    },
    /// `merge` was given no shard.
    #[error("no shard folders given; nothing to merge")]
    NoShards,
    /// The library merged into was built with another model or template.
    #[error("{}: {reason}; merge into a new library folder instead", path.display())]
    LibraryMismatch {
        /// The library.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Reading the corpus or embedding failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Opening or committing the library failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(v: &[usize]) -> String {
    v.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ShardError + '_ {
    move |source| ShardError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Shard K of N (`K/N`, K counted from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    /// K, in `0..count`.
    pub index: usize,
    /// N, at least 1.
    pub count: usize,
}

impl ShardSpec {
    /// A checked `K/N`.
    pub fn new(index: usize, count: usize) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::BadSpec(format!(
                "shard {index}/{count}: N must be at least 1"
            )));
        }
        if index >= count {
            return Err(ShardError::BadSpec(format!(
                "shard {index}/{count}: K counts from 0 and must be below N (0..{})",
                count - 1
            )));
        }
        Ok(ShardSpec { index, count })
    }

    /// The shard of a Slurm array task: `SLURM_ARRAY_TASK_ID` of
    /// `SLURM_ARRAY_TASK_COUNT`, or None when they are not set. The array
    /// must be `--array=0-(N-1)`; a resubmission of some tasks changes the
    /// count, so it must pass `--shard K/N` (the bundled sbatch script does).
    pub fn from_env() -> Result<Option<Self>, ShardError> {
        Self::from_vars(
            std::env::var("SLURM_ARRAY_TASK_ID").ok().as_deref(),
            std::env::var("SLURM_ARRAY_TASK_COUNT").ok().as_deref(),
        )
    }

    fn from_vars(id: Option<&str>, count: Option<&str>) -> Result<Option<Self>, ShardError> {
        let (Some(id), Some(count)) = (id, count) else {
            return Ok(None);
        };
        let parse = |name: &str, v: &str| {
            v.trim().parse::<usize>().map_err(|_| {
                ShardError::BadSpec(format!("{name}={v:?}: not a number; pass --shard K/N"))
            })
        };
        let (k, n) = (
            parse("SLURM_ARRAY_TASK_ID", id)?,
            parse("SLURM_ARRAY_TASK_COUNT", count)?,
        );
        Self::new(k, n).map(Some).map_err(|_| {
            ShardError::BadSpec(format!(
                "SLURM_ARRAY_TASK_ID={k} is not below SLURM_ARRAY_TASK_COUNT={n}: submit the \
                 array as --array=0-{} or pass --shard K/N (needed when resubmitting some tasks)",
                n.saturating_sub(1)
            ))
        })
    }

    /// Whether the paper with this id belongs to this shard.
    pub fn holds(&self, id: &str) -> bool {
        shard_of(id, self.count) == self.index
    }
}

impl FromStr for ShardSpec {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Self, ShardError> {
        let bad = || ShardError::BadSpec(format!("--shard {s:?}: expected K/N, e.g. 0/8"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        ShardSpec::new(k, n)
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard of `count` that holds the paper `id`: the first 8 bytes of the
/// sha256 of the id (little-endian) modulo `count`. Stable across machines,
/// versions and corpus orders; roughly even for any ids.
pub fn shard_of(id: &str, count: usize) -> usize {
    let d = Sha256::digest(id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(b) % count.max(1) as u64) as usize
}

/// Which corpus a shard was cut from, and how it was read: every shard of
/// one build records the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusSource {
    /// The corpus file as given to the build.
    pub path: String,
    /// Hex sha256 of the file's bytes (compressed, if it is).
    pub sha256: String,
    /// The format it was read as.
    pub format: String,
    /// `--limit`: only the first this many good papers were sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Good papers read (after `limit`), in all shards together.
    pub papers: usize,
    /// Bad records the reader skipped, in all shards together.
    pub bad_records: usize,
}

/// The two data files of a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFiles {
    /// `papers.bin`.
    pub papers: FileEntry,
    /// `vectors.bin`.
    pub vectors: FileEntry,
}

/// `shard.json`: what a finished shard holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// K and N.
    pub shard: ShardSpec,
    /// The model that embedded the papers (id, weights sha256, dim, precision).
    pub model: ModelInfo,
    /// How a paper became the embedded text.
    pub text_template: TextTemplate,
    /// The corpus the shard was cut from.
    pub corpus: CorpusSource,
    /// Papers (and vectors) in this shard.
    pub papers: usize,
    /// Papers of this shard left out: the model gave a zero or NaN vector.
    pub degenerate: usize,
    /// The files, with size and crc32.
    pub files: ShardFiles,
    /// When it was finished, RFC 3339.
    pub created: String,
}

impl ShardManifest {
    /// Why `other` cannot be merged with this shard, if it cannot.
    fn differs(&self, other: &ShardManifest) -> Option<String> {
        let (a, b) = (self, other);
        if a.shard.count != b.shard.count {
            return Some(format!(
                "it is one of {} shards, not {}",
                b.shard.count, a.shard.count
            ));
        }
        if a.model.weights_sha256 != b.model.weights_sha256 || a.model.dim != b.model.dim {
            return Some(format!(
                "it was embedded by model {} (weights sha256 {}), not {} ({})",
                b.model.id, b.model.weights_sha256, a.model.id, a.model.weights_sha256
            ));
        }
        if !same_model(&a.model, &b.model) {
            return Some(format!(
                "it was embedded at precision {:?} ({:?} pooling, {} tokens), not {:?} ({:?}, {})",
                b.model.precision,
                b.model.pooling,
                b.model.max_seq_length,
                a.model.precision,
                a.model.pooling,
                a.model.max_seq_length
            ));
        }
        if a.text_template != b.text_template {
            return Some(format!(
                "its text template is {:?}, not {:?}",
                b.text_template.as_str(),
                a.text_template.as_str()
            ));
        }
        let (ca, cb) = (&a.corpus, &b.corpus);
        if ca.sha256 != cb.sha256 || ca.limit != cb.limit || ca.format != cb.format {
            return Some(format!(
                "it was cut from another corpus ({} sha256 {}, limit {:?}, format {})",
                cb.path, cb.sha256, cb.limit, cb.format
            ));
        }
        None
    }
}

/// One model at one precision: everything but how the user named it.
fn same_model(a: &ModelInfo, b: &ModelInfo) -> bool {
    a.weights_sha256 == b.weights_sha256
        && a.dim == b.dim
        && a.precision == b.precision
        && a.pooling == b.pooling
        && a.max_seq_length == b.max_seq_length
}

/// How [`build`] reads and embeds its shard of a corpus.
pub struct ShardOptions {
    /// Corpus format and strictness.
    pub read: ReadOptions,
    /// How a paper becomes the embedded text; recorded in the shard.
    pub template: TextTemplate,
    /// Shard only the first this many good papers of the corpus.
    pub limit: Option<usize>,
    /// Texts embedded between two checkpoints (see [`embed_resumable`]).
    pub checkpoint_texts: usize,
}

/// What a sharded build did.
#[derive(Debug, Clone, Serialize)]
pub struct ShardReport {
    /// The shard folder, as displayed.
    pub out: String,
    /// K/N.
    pub shard: String,
    /// The corpus file, as displayed.
    pub corpus: String,
    /// True when the folder already held this finished shard: nothing was done.
    pub up_to_date: bool,
    /// Papers in the shard.
    pub papers: usize,
    /// Good papers of the whole corpus (all shards).
    pub corpus_papers: usize,
    /// Papers of this shard the model gave a zero or NaN vector: left out.
    pub degenerate: usize,
    /// Papers whose vectors a killed earlier run had already computed.
    pub resumed: usize,
    /// Throughput of the texts embedded by this run.
    pub embed: EmbedStats,
    /// [`EmbedStats::docs_per_s`] of `embed`.
    pub docs_per_s: f64,
    /// Seconds of the whole run.
    pub total_seconds: f64,
    /// The embedding device, e.g. `cpu` or `cuda:0`.
    pub device: String,
    /// Bad records of the corpus and degenerate papers; not serialised.
    #[serde(skip)]
    pub issues: Vec<Issue>,
}

/// Embeds shard `spec` of the corpus at `corpus_path` into the folder `out`.
/// A folder that already holds this shard, finished, of the same corpus,
/// model and template, is left alone (`up_to_date`); an unfinished one
/// resumes from its checkpoint; one of other inputs is rebuilt; one holding
/// another shard is refused.
pub fn build(
    corpus_path: &Path,
    out: &Path,
    spec: ShardSpec,
    embedder: &Embedder,
    opts: &ShardOptions,
    progress: &dyn Fn(Progress),
) -> Result<ShardReport, ShardError> {
    let start = Instant::now();
    let spec = ShardSpec::new(spec.index, spec.count)?;
    let model = embedder.info().clone();
    let sha256 = file_sha256(corpus_path)?;
    fs::create_dir_all(out).map_err(io_err(out))?;
    let _lock = lock(out)?;

    let report = |papers: usize, corpus_papers: usize| ShardReport {
        out: out.display().to_string(),
        shard: spec.to_string(),
        corpus: corpus_path.display().to_string(),
        up_to_date: false,
        papers,
        corpus_papers,
        degenerate: 0,
        resumed: 0,
        embed: EmbedStats::default(),
        docs_per_s: 0.0,
        total_seconds: 0.0,
        device: embedder.device_name(),
        issues: Vec::new(),
    };
    match read_shard_manifest(out) {
        Ok(m) if m.shard != spec => {
            return Err(ShardError::WrongShard {
                path: out.to_path_buf(),
                found: m.shard,
                asked: spec,
            })
        }
        Ok(m) => {
            let same = same_model(&m.model, &model)
                && m.text_template == opts.template
                && m.corpus.sha256 == sha256
                && m.corpus.limit == opts.limit
                && opts
                    .read
                    .format
                    .is_none_or(|f| f.to_string() == m.corpus.format);
            if same && load(out, &m).is_ok() {
                let mut r = report(m.papers, m.corpus.papers);
                r.up_to_date = true;
                r.degenerate = m.degenerate;
                r.total_seconds = start.elapsed().as_secs_f64();
                return Ok(r);
            }
            // Other inputs, or damaged: this run replaces it.
            remove_manifest(out)?;
        }
        Err(ShardError::NotAShard { .. }) => {}
        Err(_) => remove_manifest(out)?,
    }

    // Streamed: a task keeps only its own papers in memory, whatever the
    // corpus size.
    let mut reader = corpus::open(corpus_path, &opts.read).map_err(PipelineError::from)?;
    let mut mine: Vec<(u64, Paper)> = Vec::new();
    let mut corpus_papers = 0usize;
    for p in reader.by_ref() {
        let p = p.map_err(PipelineError::from)?;
        if spec.holds(&p.id) {
            mine.push((corpus_papers as u64, p));
        }
        corpus_papers += 1;
        if opts.limit.is_some_and(|l| corpus_papers >= l) {
            break;
        }
    }
    let summary = reader.into_summary();
    if corpus_papers == 0 {
        return Err(PipelineError::Empty {
            path: corpus_path.to_path_buf(),
            read: summary.read,
            skipped: summary.skipped,
        }
        .into());
    }
    let mut issues = summary.issues;
    progress(Progress::Read(mine.len()));
    let texts: Vec<String> = mine.iter().map(|(_, p)| opts.template.render(p)).collect();
    let dim = model.dim;
    let mut cache = EmbedCache::open(out, dim, &model.weights_sha256)?;
    let (vectors, stats, resumed) = embed_resumable(
        embedder,
        &texts,
        &mut cache,
        opts.checkpoint_texts,
        progress,
    )?;

    let mut kept = Vec::with_capacity(mine.len());
    let mut kept_vectors = Vec::with_capacity(vectors.len());
    let mut degenerate = 0;
    for ((pos, p), v) in mine.into_iter().zip(vectors.chunks_exact(dim)) {
        if is_unit(v) {
            kept.push((pos, p));
            kept_vectors.extend_from_slice(v);
        } else {
            degenerate += 1;
            issues.push(pipeline::degenerate(corpus_path, &p));
        }
    }

    progress(Progress::Stage("writing the shard"));
    let files = ShardFiles {
        papers: write_atomic(&out.join(PAPERS_FILE), |w| write_papers(w, &kept))?,
        vectors: write_atomic(&out.join(VECTORS_FILE), |w| {
            write_vectors(w, &kept_vectors, dim)
        })?,
    };
    let manifest = ShardManifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        shard: spec,
        model,
        text_template: opts.template.clone(),
        corpus: CorpusSource {
            path: corpus_path.display().to_string(),
            sha256,
            format: summary.format.to_string(),
            limit: opts.limit,
            papers: corpus_papers,
            bad_records: summary.skipped,
        },
        papers: kept.len(),
        degenerate,
        files,
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    // The commit point: from here on the folder is a finished shard.
    write_atomic(&out.join(SHARD_MANIFEST), |w| {
        serde_json::to_writer_pretty(&mut *w, &manifest)?;
        w.write_all(b"\n")
    })?;
    cache.remove()?;
    let mut r = report(kept.len(), corpus_papers);
    r.degenerate = degenerate;
    r.resumed = resumed;
    r.docs_per_s = stats.docs_per_s();
    r.embed = stats;
    r.total_seconds = start.elapsed().as_secs_f64();
    r.issues = issues;
    Ok(r)
}

/// Reads and checks `dir/shard.json` (format and version; not the files).
pub fn read_shard_manifest(dir: &Path) -> Result<ShardManifest, ShardError> {
    let path = dir.join(SHARD_MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ShardError::NotAShard {
                path: dir.to_path_buf(),
            })
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let damaged = |reason: String| ShardError::Damaged {
        path: path.clone(),
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| damaged(format!("not JSON: {e}")))?;
    if v["format"] != FORMAT_NAME {
        return Err(damaged(format!(
            "format is {}, not {FORMAT_NAME:?}",
            v["format"]
        )));
    }
    if v["format_version"] != FORMAT_VERSION {
        return Err(damaged(format!(
            "format version {} (this papersim reads {FORMAT_VERSION}); rebuild the shard with this papersim",
            v["format_version"]
        )));
    }
    serde_json::from_value(v).map_err(|e| damaged(e.to_string()))
}

/// A finished shard, read and checked: its manifest, and its rows with
/// their positions in the corpus.
struct Loaded {
    positions: Vec<u64>,
    papers: Vec<Paper>,
    vectors: Vec<f32>,
}

/// Reads a shard's files, checking each against the manifest (size, crc32)
/// and its own seal, and their row counts against each other.
fn load(dir: &Path, m: &ShardManifest) -> Result<Loaded, ShardError> {
    let papers_bytes = read_checked(dir, &m.files.papers)?;
    let vectors_bytes = read_checked(dir, &m.files.vectors)?;
    let ppath = dir.join(&m.files.papers.name);
    let vpath = dir.join(&m.files.vectors.name);
    let (positions, papers) =
        parse_papers(&papers_bytes).map_err(|reason| ShardError::Damaged {
            path: ppath.clone(),
            reason,
        })?;
    let vectors =
        parse_vectors(&vectors_bytes, m.model.dim).map_err(|reason| ShardError::Damaged {
            path: vpath.clone(),
            reason,
        })?;
    if papers.len() != m.papers || vectors.len() != m.papers * m.model.dim {
        return Err(ShardError::Damaged {
            path: dir.join(SHARD_MANIFEST),
            reason: format!(
                "{} papers and {} vectors, the manifest says {}",
                papers.len(),
                vectors.len() / m.model.dim.max(1),
                m.papers
            ),
        });
    }
    if let Some(p) = papers.iter().find(|p| !m.shard.holds(&p.id)) {
        return Err(ShardError::Damaged {
            path: ppath,
            reason: format!("paper {:?} does not belong to shard {}", p.id, m.shard),
        });
    }
    Ok(Loaded {
        positions,
        papers,
        vectors,
    })
}

fn read_checked(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>, ShardError> {
    let path = dir.join(&entry.name);
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ShardError::Damaged {
                    path: path.clone(),
                    reason: "missing".into(),
                }
            } else {
                io_err(&path)(e)
            }
        })?;
    let damaged = |reason: String| ShardError::Damaged {
        path: path.clone(),
        reason,
    };
    if bytes.len() as u64 != entry.bytes {
        return Err(damaged(format!(
            "{} bytes, {SHARD_MANIFEST} says {}",
            bytes.len(),
            entry.bytes
        )));
    }
    let crc = crc32fast::hash(&bytes);
    if crc != entry.crc32 {
        return Err(damaged(format!(
            "checksum {crc:08x}, {SHARD_MANIFEST} says {:08x}",
            entry.crc32
        )));
    }
    Ok(bytes)
}

fn write_papers(w: &mut dyn Write, rows: &[(u64, Paper)]) -> io::Result<()> {
    let mut w = SealedWriter::new(w, PAPERS_MAGIC, FILE_VERSION)?;
    w.write_all(&(rows.len() as u64).to_le_bytes())?;
    for (pos, _) in rows {
        w.write_all(&pos.to_le_bytes())?;
    }
    for (_, p) in rows {
        serde_json::to_writer(&mut w, p)?;
        w.write_all(b"\n")?;
    }
    w.finish().map(drop)
}

fn parse_papers(b: &[u8]) -> Result<(Vec<u64>, Vec<Paper>), String> {
    let mut r = format::Reader::sealed(b, PAPERS_MAGIC, 24, "shard papers")?;
    let version = r.u32()?;
    if version != FILE_VERSION {
        return Err(format!("version {version}, expected {FILE_VERSION}"));
    }
    let rows = usize::try_from(r.u64()?).map_err(|_| "too many rows")?;
    let bytes = rows.checked_mul(8).ok_or("too many rows")?;
    let positions: Vec<u64> = r
        .take(bytes)?
        .chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_le_bytes(a)
        })
        .collect();
    let text = std::str::from_utf8(r.take(r.left())?).map_err(|e| e.to_string())?;
    let papers = text
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("paper {}: {e}", i + 1)))
        .collect::<Result<Vec<Paper>, String>>()?;
    if papers.len() != rows {
        return Err(format!("{} papers, the header says {rows}", papers.len()));
    }
    Ok((positions, papers))
}

fn write_vectors(w: &mut dyn Write, vectors: &[f32], dim: usize) -> io::Result<()> {
    let mut w = SealedWriter::new(w, VECTORS_MAGIC, FILE_VERSION)?;
    w.write_all(&(dim as u32).to_le_bytes())?;
    w.write_all(&((vectors.len() / dim.max(1)) as u64).to_le_bytes())?;
    for chunk in vectors.chunks(1 << 16) {
        w.write_all(bytemuck::cast_slice(chunk))?;
    }
    w.finish().map(drop)
}

fn parse_vectors(b: &[u8], dim: usize) -> Result<Vec<f32>, String> {
    let mut r = format::Reader::sealed(b, VECTORS_MAGIC, 28, "shard vectors")?;
    let version = r.u32()?;
    if version != FILE_VERSION {
        return Err(format!("version {version}, expected {FILE_VERSION}"));
    }
    let d = r.u32()? as usize;
    if d != dim {
        return Err(format!("dimension {d}, the manifest says {dim}"));
    }
    let rows = usize::try_from(r.u64()?).map_err(|_| "too many rows")?;
    let bytes = rows
        .checked_mul(dim)
        .and_then(|n| n.checked_mul(4))
        .ok_or("too many rows")?;
    let body = r.take(bytes)?;
    if r.left() != 0 {
        return Err(format!("{} bytes after the last row", r.left()));
    }
    Ok(body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The hex sha256 of a file's bytes.
fn file_sha256(path: &Path) -> Result<String, ShardError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// One writer per shard folder: a task resubmitted while the first is still
/// running waits instead of writing the same files.
fn lock(dir: &Path) -> Result<File, ShardError> {
    let path = dir.join("lock");
    let f = File::create(&path).map_err(io_err(&path))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => {
            eprintln!(
                "papersim: {}: another papersim is building this shard; waiting",
                dir.display()
            );
            f.lock().map_err(io_err(&path))?;
            Ok(f)
        }
        Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

fn remove_manifest(dir: &Path) -> Result<(), ShardError> {
    let path = dir.join(SHARD_MANIFEST);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
        _ => File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir)),
    }
}

/// How [`merge`] builds a new library; a library merged into keeps its own.
pub struct MergeOptions {
    /// HNSW parameters of a new library's index.
    pub index: HnswParams,
}

/// What a merge did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    /// The library directory, as displayed.
    pub library: String,
    /// Shards merged (N).
    pub shards: usize,
    /// The corpus the shards were cut from, as the first shard recorded it.
    pub corpus: String,
    /// Papers in all shards together.
    pub papers: usize,
    /// True when a new library was written; false when merged into one.
    pub created: bool,
    /// Papers the library did not have (all of them for a new library).
    pub new: usize,
    /// Papers whose stored version changed: the old row is dead.
    pub replaced: usize,
    /// Papers identical to the library's version: left alone.
    pub unchanged: usize,
    /// Papers the library now holds, dead rows excluded.
    pub live: usize,
    /// The library's generation after the merge.
    pub generation: u64,
    /// Seconds spent reading and checking the shards.
    pub check_seconds: f64,
    /// Seconds spent writing the library and building its indexes.
    pub index_seconds: f64,
    /// Seconds of the whole merge.
    pub total_seconds: f64,
}

/// Builds the library at `library` from the shard folders `shards` (or adds
/// their papers to the library there, like `add`, reusing the shards'
/// vectors). Every shard is read and checked first: one model, precision,
/// template, corpus and N; shards `0..N` each given once; each finished and
/// intact; no id twice. Only then is anything committed, rows in corpus
/// order; the graph and keyword index are built once.
pub fn merge(
    library: &Path,
    shards: &[PathBuf],
    opts: &MergeOptions,
    progress: &dyn Fn(Progress),
) -> Result<MergeReport, ShardError> {
    let start = Instant::now();
    let first_dir = shards.first().ok_or(ShardError::NoShards)?;
    progress(Progress::Stage("checking the shards"));
    let manifests = shards
        .iter()
        .map(|d| read_shard_manifest(d))
        .collect::<Result<Vec<_>, _>>()?;
    let first = &manifests[0];
    for (dir, m) in shards.iter().zip(&manifests).skip(1) {
        if let Some(reason) = first.differs(m) {
            return Err(ShardError::Foreign {
                path: dir.clone(),
                first: first_dir.clone(),
                reason,
            });
        }
    }
    let count = first.shard.count;
    let mut by_index: Vec<Option<usize>> = vec![None; count];
    for (i, m) in manifests.iter().enumerate() {
        match by_index.get_mut(m.shard.index) {
            Some(Some(j)) => {
                return Err(ShardError::DuplicateShard {
                    index: m.shard.index,
                    count,
                    first: shards[*j].clone(),
                    second: shards[i].clone(),
                })
            }
            Some(slot) => *slot = Some(i),
            None => {
                return Err(ShardError::Damaged {
                    path: shards[i].join(SHARD_MANIFEST),
                    reason: format!("shard {} is not below N", m.shard),
                })
            }
        }
    }
    let missing: Vec<usize> = (0..count).filter(|&k| by_index[k].is_none()).collect();
    if !missing.is_empty() {
        return Err(ShardError::Missing {
            missing,
            count,
            given: shards.len(),
            first: first_dir.clone(),
        });
    }

    // Every shard's files, checked; ids unique across them.
    let dim = first.model.dim;
    let mut rows: Vec<(u64, usize, usize)> = Vec::new(); // (position, shard, row)
    let mut loaded = Vec::with_capacity(count);
    for (i, (dir, m)) in shards.iter().zip(&manifests).enumerate() {
        let l = load(dir, m)?;
        rows.extend(l.positions.iter().enumerate().map(|(r, &p)| (p, i, r)));
        loaded.push(l);
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (i, l) in loaded.iter().enumerate() {
        for p in &l.papers {
            if let Some(j) = seen.insert(p.id.as_str(), i) {
                return Err(ShardError::DuplicateId {
                    id: p.id.clone(),
                    first: shards[j].clone(),
                    second: shards[i].clone(),
                });
            }
        }
    }
    drop(seen);
    rows.sort_unstable();
    let mut papers = Vec::with_capacity(rows.len());
    let mut vectors = Vec::with_capacity(rows.len() * dim);
    for &(_, i, r) in &rows {
        papers.push(loaded[i].papers[r].clone());
        vectors.extend_from_slice(&loaded[i].vectors[r * dim..(r + 1) * dim]);
    }
    drop(loaded);
    let template = &first.text_template;
    let texts: Vec<String> = papers.iter().map(|p| template.render(p)).collect();
    let check_seconds = start.elapsed().as_secs_f64();

    let index_start = Instant::now();
    let stage = |s: &str| progress(Progress::Stage(s));
    let mut report = MergeReport {
        library: library.display().to_string(),
        shards: count,
        corpus: first.corpus.path.clone(),
        papers: papers.len(),
        created: false,
        new: 0,
        replaced: 0,
        unchanged: 0,
        live: 0,
        generation: 0,
        check_seconds,
        index_seconds: 0.0,
        total_seconds: 0.0,
    };
    match read_manifest(library) {
        Err(StoreError::NotALibrary { .. }) => {
            let spec = CommitSpec {
                model: &first.model,
                text_template: template,
                index: opts.index,
            };
            let contents = Contents {
                papers: &papers,
                texts: &texts,
                vectors: &vectors,
            };
            let m = Library::commit(library, contents, &spec, &stage)?;
            report.created = true;
            report.new = papers.len();
            report.live = m.papers;
            report.generation = m.generation;
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {
            let lib = Library::open(library)?;
            let lm = lib.manifest();
            let mismatch = if lm.model.weights_sha256 != first.model.weights_sha256 {
                Some(format!(
                    "the library's model is {} (weights sha256 {}), the shards' {} ({})",
                    lm.model.id,
                    lm.model.weights_sha256,
                    first.model.id,
                    first.model.weights_sha256
                ))
            } else if lm.model.precision != first.model.precision {
                Some(format!(
                    "the library's precision is {:?}, the shards' {:?}",
                    lm.model.precision, first.model.precision
                ))
            } else if lm.text_template != *template {
                Some(format!(
                    "the library's text template is {:?}, the shards' {:?}",
                    lm.text_template.as_str(),
                    template.as_str()
                ))
            } else {
                None
            };
            if let Some(reason) = mismatch {
                return Err(ShardError::LibraryMismatch {
                    path: library.to_path_buf(),
                    reason,
                });
            }
            let mut dead = Vec::new();
            let (mut add_papers, mut add_texts, mut add_vectors) =
                (Vec::new(), Vec::new(), Vec::new());
            for (k, (p, t)) in papers.into_iter().zip(texts).enumerate() {
                match lib.row_of(&p.id) {
                    Some(row) if *lib.paper(row)? == p => {
                        report.unchanged += 1;
                        continue;
                    }
                    Some(row) => {
                        dead.push(row);
                        report.replaced += 1;
                    }
                    None => report.new += 1,
                }
                add_vectors.extend_from_slice(&vectors[k * dim..(k + 1) * dim]);
                add_papers.push(p);
                add_texts.push(t);
            }
            let contents = Contents {
                papers: &add_papers,
                texts: &add_texts,
                vectors: &add_vectors,
            };
            let m = if add_papers.is_empty() {
                lm.clone()
            } else {
                lib.update(contents, &dead, &stage)?
            };
            report.live = m.papers - m.dead.len();
            report.generation = m.generation;
        }
    }
    report.index_seconds = index_start.elapsed().as_secs_f64();
    report.total_seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_parse_and_check() {
        assert_eq!(
            "2/4".parse::<ShardSpec>().unwrap(),
            ShardSpec { index: 2, count: 4 }
        );
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
        assert_eq!(ShardSpec::from_vars(None, Some("4")).unwrap(), None);
        assert_eq!(
            ShardSpec::from_vars(Some("3"), Some("4")).unwrap(),
            Some(ShardSpec { index: 3, count: 4 })
        );
        let e = ShardSpec::from_vars(Some("4"), Some("4")).unwrap_err();
        assert!(e.to_string().contains("--array=0-3"), "{e}");
    }

    #[test]
    fn the_shard_of_an_id_is_stable_and_roughly_even() {
        // Pinned: a change here would scatter every existing shard.
        assert_eq!(shard_of("1812.06145", 4), shard_of("1812.06145", 4));
        let ids: Vec<String> = (0..4000).map(|i| format!("2401.{i:05}")).collect();
        let mut counts = [0usize; 4];
        for id in &ids {
            counts[shard_of(id, 4)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
        assert!(ids.iter().all(|id| shard_of(id, 1) == 0));
    }

    #[test]
    fn shard_files_round_trip_and_damage_is_named() {
        let p = Paper {
            id: "a".into(),
            title: "T".into(),
            abstract_text: "A".into(),
            authors: vec![],
            categories: vec![],
            date: None,
            url: None,
            ..Paper::default()
        };
        let mut b = Vec::new();
        write_papers(&mut b, &[(7, p.clone())]).unwrap();
        assert_eq!(parse_papers(&b).unwrap(), (vec![7], vec![p]));
        let mut v = Vec::new();
        write_vectors(&mut v, &[0.6, 0.8], 2).unwrap();
        assert_eq!(parse_vectors(&v, 2).unwrap(), vec![0.6, 0.8]);
        assert!(parse_vectors(&v, 3).is_err());
        let mut flipped = v.clone();
        flipped[20] ^= 1;
        assert!(parse_vectors(&flipped, 2).unwrap_err().contains("checksum"));
        assert!(
            parse_papers(&v).is_err(),
            "a vectors file is not a papers file"
        );
    }
}
