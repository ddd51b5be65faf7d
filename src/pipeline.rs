//! `build`: corpus → embeddings → a committed library.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::corpus::{self, CorpusError, Issue, Paper, ReadOptions, TextTemplate};
use crate::embed::{is_unit, EmbedError, EmbedStats, Embedder};
use crate::index::HnswParams;
use crate::store::{read_manifest, CommitSpec, Contents, Library, Manifest, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: no usable papers (read {read}, skipped {skipped}); nothing to build", path.display())]
    Empty {
        path: std::path::PathBuf,
        read: usize,
        skipped: usize,
    },
}

pub struct BuildOptions {
    pub read: ReadOptions,
    pub template: TextTemplate,
    pub index: HnswParams,
    /// Stop after this many good papers.
    pub limit: Option<usize>,
}

/// What a build reports, in the units people compare tools by.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub library: String,
    pub corpus: String,
    pub format: String,
    pub papers: usize,
    pub skipped: usize,
    pub embed: EmbedStats,
    pub docs_per_s: f64,
    pub tokens_per_s: f64,
    pub padding_ratio: f64,
    pub index_seconds: f64,
    pub total_seconds: f64,
    pub device: String,
    #[serde(skip)]
    pub issues: Vec<Issue>,
    #[serde(skip)]
    pub manifest: Option<Manifest>,
}

/// Progress events, for a progress bar.
pub enum Progress<'a> {
    /// The corpus is read; this many papers will be embedded.
    Read(usize),
    /// This many more papers are embedded.
    Embedded(usize),
    /// A named step after embedding started.
    Stage(&'a str),
}

pub fn build(
    corpus_path: &Path,
    library: &Path,
    embedder: &Embedder,
    opts: &BuildOptions,
    progress: &dyn Fn(Progress),
) -> Result<BuildReport, PipelineError> {
    let start = Instant::now();
    // Fail before the long embedding if the target holds something a
    // commit would refuse to replace (a damaged or foreign manifest).
    match read_manifest(library) {
        Ok(_) | Err(StoreError::NotALibrary { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let mut reader = corpus::open(corpus_path, &opts.read)?;
    let mut papers: Vec<Paper> = Vec::new();
    for p in reader.by_ref() {
        papers.push(p?);
        if opts.limit.is_some_and(|l| papers.len() >= l) {
            break;
        }
    }
    let summary = reader.into_summary();
    let mut issues = summary.issues;
    let mut skipped = summary.skipped;
    if papers.is_empty() {
        return Err(PipelineError::Empty {
            path: corpus_path.to_path_buf(),
            read: summary.read,
            skipped,
        });
    }
    progress(Progress::Read(papers.len()));

    let texts: Vec<String> = papers.iter().map(|p| opts.template.render(p)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (vectors, stats) = embedder.embed(&refs, &|n| progress(Progress::Embedded(n)))?;

    // A degenerate vector would poison the index; such papers are reported
    // and left out, like any other bad record.
    let dim = embedder.info().dim;
    let mut kept_papers = Vec::with_capacity(papers.len());
    let mut kept_texts = Vec::with_capacity(papers.len());
    let mut kept_vectors = Vec::with_capacity(vectors.len());
    for ((p, t), v) in papers.into_iter().zip(texts).zip(vectors.chunks_exact(dim)) {
        if is_unit(v) {
            kept_papers.push(p);
            kept_texts.push(t);
            kept_vectors.extend_from_slice(v);
        } else {
            skipped += 1;
            issues.push(Issue {
                path: corpus_path.to_path_buf(),
                line: 0,
                reason: format!(
                    "paper {:?}: the model gave a zero or NaN vector; skipped",
                    p.id
                ),
            });
        }
    }

    let index_start = Instant::now();
    let spec = CommitSpec {
        model: embedder.info(),
        text_template: &opts.template,
        index: opts.index,
    };
    let contents = Contents {
        papers: &kept_papers,
        texts: &kept_texts,
        vectors: &kept_vectors,
    };
    let manifest = Library::commit(library, contents, &spec, &|s| progress(Progress::Stage(s)))?;
    Ok(BuildReport {
        library: library.display().to_string(),
        corpus: corpus_path.display().to_string(),
        format: summary.format.to_string(),
        papers: kept_papers.len(),
        skipped,
        docs_per_s: stats.docs_per_s(),
        tokens_per_s: stats.tokens_per_s(),
        padding_ratio: stats.padding_ratio(),
        embed: stats,
        index_seconds: index_start.elapsed().as_secs_f64(),
        total_seconds: start.elapsed().as_secs_f64(),
        device: embedder.device_name(),
        issues,
        manifest: Some(manifest),
    })
}
