//! `build`: corpus → embeddings → a committed library; `add` and `remove`:
//! the same, incrementally.

use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::corpus::{self, CorpusError, Issue, LocatedSentences, Paper, ReadOptions, TextTemplate};
use crate::embed::{
    is_unit, EmbedError, EmbedStats, Embedder, Role, SentenceMethod, SentenceReach, TextSentences,
};
use crate::index::HnswParams;
use crate::store::{
    failpoint, read_manifest, sentence_count_hash, sentence_hash, text_hash, CommitSpec, Contents,
    EmbedCache, Library, Manifest, SentenceVectors, StoreError, TextHash,
};

/// Everything that can stop a `build`, `add` or `remove`.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading the corpus failed (or, in strict mode, hit a bad record).
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// Embedding failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// Opening, checkpointing or committing the library failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `remove` was given ids the library does not hold; nothing was removed.
    #[error("{}: no paper with id {}; nothing was removed", path.display(), ids.join(", "))]
    UnknownIds {
        /// The library.
        path: std::path::PathBuf,
        /// Every requested id that is not in the library.
        ids: Vec<String>,
    },
    /// `build` read no good paper from the corpus; no library was written.
    #[error("{}: no usable papers (read {read}, skipped {skipped}); nothing to build", path.display())]
    Empty {
        /// The corpus file.
        path: std::path::PathBuf,
        /// Good papers read.
        read: usize,
        /// Bad records skipped.
        skipped: usize,
    },
}

/// How [`build`] reads, embeds and indexes a corpus.
pub struct BuildOptions {
    /// Corpus format and strictness.
    pub read: ReadOptions,
    /// How a paper becomes the text that is embedded; recorded in the library.
    pub template: TextTemplate,
    /// HNSW parameters of the index; recorded in the library.
    pub index: HnswParams,
    /// Stop after this many good papers.
    pub limit: Option<usize>,
    /// Texts embedded between two checkpoints (see [`embed_resumable`]).
    pub checkpoint_texts: usize,
    /// Also store a vector per sentence of each paper (what `similar`'s
    /// sentence alignment and cheap explanations use), made this way
    /// (contextual by default: from the paper's own forward pass, see
    /// [`embed_papers`]); None (`--no-sentences`) stores none, to save space.
    pub sentences: Option<SentenceMethod>,
}

/// Texts embedded between two checkpoint appends by default: a kill loses at
/// most this much work (~25 s on two cores), and each call still has enough
/// texts for length-sorted batches to keep padding near zero.
pub const CHECKPOINT_TEXTS: usize = 512;

/// What a build reports, in the units people compare tools by.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The library directory, as displayed.
    pub library: String,
    /// The corpus file, as displayed.
    pub corpus: String,
    /// The corpus format name (given or detected), e.g. `arxiv`.
    pub format: String,
    /// Papers in the built library.
    pub papers: usize,
    /// Records left out: bad records plus papers the model gave a zero or
    /// NaN vector.
    pub skipped: usize,
    /// Throughput of the texts embedded by this run (resumed ones excluded).
    pub embed: EmbedStats,
    /// Papers whose vectors an interrupted earlier run had already computed.
    pub resumed: usize,
    /// [`EmbedStats::docs_per_s`] of `embed`, copied out for JSON readers.
    pub docs_per_s: f64,
    /// [`EmbedStats::tokens_per_s`] of `embed`.
    pub tokens_per_s: f64,
    /// [`EmbedStats::padding_ratio`] of `embed`.
    pub padding_ratio: f64,
    /// Sentences whose vectors were stored (0 with `--no-sentences`).
    pub sentences: usize,
    /// Of those, the ones embedded on their own: every one with
    /// `--sentences separate`; else those the embedded text does not hold
    /// (a template without the abstract) or that the template put before
    /// sentences the model read while they lie past its window. The rest
    /// are pooled from their paper's pass (and the sentences past the
    /// window at the end of a paper are not stored).
    pub sentences_alone: usize,
    /// Seconds spent on sentence vectors besides the papers' forward
    /// passes: the sentences embedded alone and the re-ranking space
    /// (included in `total_seconds`).
    pub sentence_seconds: f64,
    /// Seconds spent fitting the re-ranking space and norming every paper
    /// and sentence in it (included in `sentence_seconds`).
    pub space_seconds: f64,
    /// Seconds spent writing the library and building its indexes.
    pub index_seconds: f64,
    /// Seconds of the whole build, reading the corpus included.
    pub total_seconds: f64,
    /// The embedding device, e.g. `cpu` or `cuda:0`.
    pub device: String,
    /// One per skipped record, for the user; not serialised.
    #[serde(skip)]
    pub issues: Vec<Issue>,
    /// The committed library's manifest; always set by [`build`].
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

/// Builds the library at `library` from the corpus at `corpus_path`: reads
/// it, embeds each paper's rendered text (resuming an interrupted run's
/// checkpoints), drops papers with degenerate vectors, and commits papers,
/// vectors and indexes. A damaged or foreign library at the target is
/// refused before any embedding.
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
    let (papers, summary) = read_corpus(corpus_path, &opts.read, opts.limit)?;
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

    let located: Vec<LocatedSentences> = papers
        .iter()
        .map(|p| corpus::locate_sentences(&opts.template, p))
        .collect();
    let mut cache = EmbedCache::open(
        library,
        embedder.info().dim,
        &embedder.info().checkpoint_key(),
    )?;
    let method = opts.sentences;
    let embedded = embed_papers(
        embedder,
        &located,
        method,
        &mut cache,
        opts.checkpoint_texts,
        progress,
    )?;

    // A degenerate vector would poison the index; such papers are reported
    // and left out, like any other bad record.
    let dim = embedder.info().dim;
    let mut kept_papers = Vec::with_capacity(papers.len());
    let mut kept_texts = Vec::with_capacity(papers.len());
    let mut kept_vectors = Vec::with_capacity(embedded.vectors.len());
    let mut sentences = method.map(|m| SentenceVectors::new(dim, m));
    let rows = papers
        .into_iter()
        .zip(located)
        .zip(embedded.vectors.chunks_exact(dim))
        .zip(&embedded.sentences);
    for (((p, l), v), sentence_row) in rows {
        if is_unit(v) {
            kept_papers.push(p);
            kept_texts.push(l.text);
            kept_vectors.extend_from_slice(v);
            if let Some(s) = &mut sentences {
                s.push_row(sentence_row);
            }
        } else {
            skipped += 1;
            issues.push(degenerate(corpus_path, &p));
        }
    }

    let space_start = Instant::now();
    if let Some(s) = &mut sentences {
        progress(Progress::Stage("fitting the re-ranking space"));
        s.fit_space(&kept_vectors);
    }
    let space_seconds = space_start.elapsed().as_secs_f64();
    let sentence_seconds = embedded.alone_seconds + space_seconds;
    let stats = embedded.stats;

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
        sentences: sentences.as_ref(),
    };
    let manifest = Library::commit(library, contents, &spec, &|s| progress(Progress::Stage(s)))?;
    cache.remove()?;
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
        resumed: embedded.resumed,
        sentences: sentences.as_ref().map_or(0, SentenceVectors::len),
        sentences_alone: embedded.alone,
        sentence_seconds,
        space_seconds,
        index_seconds: index_start.elapsed().as_secs_f64(),
        total_seconds: start.elapsed().as_secs_f64(),
        device: embedder.device_name(),
        issues,
        manifest: Some(manifest),
    })
}

/// Embeds `texts` in input order, taking the vectors of texts an earlier,
/// interrupted run already embedded from `cache` and appending new ones to it
/// as they are made. Returns the vectors, the stats of the texts embedded
/// now, and how many came from the cache.
pub fn embed_resumable(
    embedder: &Embedder,
    texts: &[String],
    cache: &mut EmbedCache,
    checkpoint_texts: usize,
    progress: &dyn Fn(Progress),
) -> Result<(Vec<f32>, EmbedStats, usize), PipelineError> {
    let dim = embedder.info().dim;
    let hashes: Vec<_> = texts.iter().map(|t| text_hash(t)).collect();
    let mut vectors = vec![0f32; texts.len() * dim];
    let mut todo = Vec::new();
    for (i, h) in hashes.iter().enumerate() {
        match cache.found().get(h) {
            Some(v) if v.len() == dim => vectors[i * dim..(i + 1) * dim].copy_from_slice(v),
            _ => todo.push(i),
        }
    }
    let resumed = texts.len() - todo.len();
    if resumed > 0 {
        progress(Progress::Embedded(resumed));
    }
    let mut stats = EmbedStats::default();
    for chunk in todo.chunks(checkpoint_texts.max(1)) {
        let refs: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        // Papers are documents: the model's document prompt (recorded in the
        // manifest through embedder.info()) goes in front of each.
        let (got, s) =
            embedder.embed_as(Role::Document, &refs, &|n| progress(Progress::Embedded(n)))?;
        let chunk_hashes: Vec<_> = chunk.iter().map(|&i| hashes[i]).collect();
        cache.append(&chunk_hashes, &got)?;
        failpoint("after-checkpoint");
        for (k, &i) in chunk.iter().enumerate() {
            vectors[i * dim..(i + 1) * dim].copy_from_slice(&got[k * dim..(k + 1) * dim]);
        }
        stats.add(&s);
    }
    Ok((vectors, stats, resumed))
}

/// Each paper's vector and, when asked, its sentences' vectors: what
/// [`embed_papers`] gives.
#[derive(Debug, Clone, Default)]
pub struct PaperVectors {
    /// `papers · dim` floats, in input order.
    pub vectors: Vec<f32>,
    /// Per paper, its sentences' vectors (`k · dim` floats for the first
    /// `k` of [`LocatedSentences::sentences`], see
    /// [`Embedder::embed_with_sentences`]); empty without sentences.
    pub sentences: Vec<Vec<f32>>,
    /// Throughput of the papers' forward passes run now.
    pub stats: EmbedStats,
    /// Papers taken whole from an interrupted earlier run's checkpoint.
    pub resumed: usize,
    /// Sentences embedded on their own now (see
    /// [`Embedder::embed_with_sentences`]).
    pub alone: usize,
    /// Seconds spent embedding those.
    pub alone_seconds: f64,
}

/// Embeds each paper's text (with the model's document prompt, recorded in
/// the manifest through `embedder.info()`) and, given a `sentences` method,
/// its sentences ([`Embedder::embed_with_sentences`]: contextual ones from
/// the paper's own forward pass).
///
/// Resumable like [`embed_resumable`]: each chunk of `checkpoint_texts`
/// papers is appended to `cache` with its sentences' vectors, and a paper
/// whose vector and sentence vectors are all there is not embedded again.
pub fn embed_papers(
    embedder: &Embedder,
    papers: &[LocatedSentences],
    sentences: Option<SentenceMethod>,
    cache: &mut EmbedCache,
    checkpoint_texts: usize,
    progress: &dyn Fn(Progress),
) -> Result<PaperVectors, PipelineError> {
    let dim = embedder.info().dim;
    let keys: Vec<PaperKeys> = papers
        .iter()
        .map(|p| PaperKeys::new(p, sentences))
        .collect();
    let mut out = PaperVectors {
        vectors: vec![0f32; papers.len() * dim],
        sentences: vec![Vec::new(); papers.len()],
        ..PaperVectors::default()
    };
    let mut todo = Vec::new();
    for (i, keys) in keys.iter().enumerate() {
        match keys.found(cache, dim) {
            Some((paper, row)) => {
                out.vectors[i * dim..(i + 1) * dim].copy_from_slice(paper);
                out.sentences[i] = row;
            }
            None => todo.push(i),
        }
    }
    out.resumed = papers.len() - todo.len();
    if out.resumed > 0 {
        progress(Progress::Embedded(out.resumed));
    }
    let method = sentences.unwrap_or(SentenceMethod::Contextual);
    for chunk in todo.chunks(checkpoint_texts.max(1)) {
        let texts: Vec<&str> = chunk.iter().map(|&i| papers[i].text.as_str()).collect();
        let wanted: Vec<TextSentences> = match sentences {
            Some(_) => chunk
                .iter()
                .map(|&i| TextSentences {
                    sentences: &papers[i].sentences,
                    spans: &papers[i].spans,
                })
                .collect(),
            None => Vec::new(),
        };
        let reach = SentenceReach::Window;
        let got = embedder.embed_with_sentences(
            Role::Document,
            method,
            reach,
            &texts,
            &wanted,
            &|n| progress(Progress::Embedded(n)),
        )?;
        out.stats.add(&got.stats);
        out.alone += got.alone;
        out.alone_seconds += got.alone_seconds;
        let mut hashes = Vec::new();
        let mut vectors = Vec::new();
        for ((k, &i), row) in chunk.iter().enumerate().zip(got.sentences) {
            let v = &got.vectors[k * dim..(k + 1) * dim];
            out.vectors[i * dim..(i + 1) * dim].copy_from_slice(v);
            keys[i].record(v, &row, dim, &mut hashes, &mut vectors);
            out.sentences[i] = row;
        }
        cache.append(&hashes, &vectors)?;
        failpoint("after-checkpoint");
    }
    Ok(out)
}

/// Where a paper's vectors are in the checkpoint: its text's, and its
/// sentences' by the build's method: each as a text of its own (what a
/// separate pass embeds), or as a part of its paper's text (a contextual
/// vector depends on the whole paper), with how many the paper keeps.
struct PaperKeys {
    paper: TextHash,
    sentences: Vec<TextHash>,
    /// Contextual only: the record of how many sentences are kept.
    kept: Option<TextHash>,
}

impl PaperKeys {
    fn new(p: &LocatedSentences, method: Option<SentenceMethod>) -> Self {
        let each = |key: &dyn Fn(&String, Option<&Range<usize>>) -> TextHash| {
            p.sentences
                .iter()
                .zip(&p.spans)
                .map(|(s, span)| key(s, span.as_ref()))
                .collect()
        };
        let (sentences, kept) = match method {
            None => (Vec::new(), None),
            Some(SentenceMethod::Separate) => (each(&|s, _| text_hash(s)), None),
            Some(SentenceMethod::Contextual) => (
                each(&|s, span| sentence_hash(&p.text, s, span)),
                Some(sentence_count_hash(&p.text)),
            ),
        };
        PaperKeys {
            paper: text_hash(&p.text),
            sentences,
            kept,
        }
    }

    /// The paper's vector and its sentences' (`k · dim` floats), when the
    /// checkpoint holds them all.
    fn found<'a>(&self, cache: &'a EmbedCache, dim: usize) -> Option<(&'a [f32], Vec<f32>)> {
        let found = cache.found();
        let get = |h: &TextHash| found.get(h).filter(|v| v.len() == dim);
        let paper = get(&self.paper)?;
        let kept = match &self.kept {
            // A count: exact in f32 (at most MAX_PAPER_SENTENCES).
            Some(h) => get(h)?.first().map(|&k| k as usize)?,
            None => self.sentences.len(),
        };
        let mut row = Vec::with_capacity(kept * dim);
        for h in self.sentences.get(..kept)? {
            row.extend_from_slice(get(h)?);
        }
        Some((paper, row))
    }

    /// Appends the records of the paper's vector `paper` and its kept
    /// sentences' `row` to `hashes` and `vectors`.
    fn record(
        &self,
        paper: &[f32],
        row: &[f32],
        dim: usize,
        hashes: &mut Vec<TextHash>,
        vectors: &mut Vec<f32>,
    ) {
        hashes.push(self.paper);
        vectors.extend_from_slice(paper);
        let kept = row.len() / dim.max(1);
        if let Some(h) = self.kept {
            let mut count = vec![0f32; dim];
            if let Some(c) = count.first_mut() {
                *c = kept as f32;
            }
            hashes.push(h);
            vectors.extend_from_slice(&count);
        }
        hashes.extend_from_slice(&self.sentences[..kept.min(self.sentences.len())]);
        vectors.extend_from_slice(&row[..kept.min(self.sentences.len()) * dim]);
    }
}

/// How [`add`] reads and embeds a corpus; the text template and index
/// parameters are the library's own.
pub struct AddOptions {
    /// Corpus format and strictness.
    pub read: ReadOptions,
    /// Stop after this many good papers of the corpus.
    pub limit: Option<usize>,
    /// Texts embedded between two checkpoints (see [`embed_resumable`]).
    pub checkpoint_texts: usize,
}

/// What `add` did, paper by paper.
#[derive(Debug, Clone, Serialize)]
pub struct AddReport {
    /// The library directory, as displayed.
    pub library: String,
    /// The corpus file, as displayed.
    pub corpus: String,
    /// Good papers read from the corpus.
    pub read: usize,
    /// Ids the library did not have.
    pub new: usize,
    /// Ids whose paper changed: the old row is dead, a new one replaces it.
    pub replaced: usize,
    /// Of the replaced, those whose embedded text is unchanged (only
    /// metadata changed): their vector is reused, not recomputed.
    pub vectors_reused: usize,
    /// Papers identical to the library's version: left alone.
    pub unchanged: usize,
    /// Records left out: bad records plus papers the model gave a zero or
    /// NaN vector (a replacement left out keeps the old version).
    pub skipped: usize,
    /// Vectors taken from an interrupted earlier run's checkpoints.
    pub resumed: usize,
    /// Throughput of the texts embedded by this run.
    pub embed: EmbedStats,
    /// [`EmbedStats::docs_per_s`] of `embed`, copied out for JSON readers.
    pub docs_per_s: f64,
    /// Seconds spent writing the new generation of the library.
    pub update_seconds: f64,
    /// Seconds of the whole add, reading the corpus included.
    pub total_seconds: f64,
    /// Papers the library now holds, dead rows excluded.
    pub live: usize,
    /// Ids of library papers the corpus no longer has (a Zotero item deleted
    /// since): reported, kept; `papersim remove` drops them. Empty when
    /// `--limit` read only part of the corpus.
    pub absent: Vec<String>,
    /// Dead rows over all rows, in `[0, 1]`; `papersim compact` reclaims them.
    pub dead_fraction: f64,
    /// The embedding device, e.g. `cpu` or `cuda:0`.
    pub device: String,
    /// One per skipped record, for the user; not serialised.
    #[serde(skip)]
    pub issues: Vec<Issue>,
}

/// Adds the papers of `corpus_path` that `library` lacks or holds in another
/// version. Only papers whose embedded text (or, in a library with sentence
/// vectors, whose sentences) changed go through the model, resumably like
/// `build`; the rest of the library is reused as it is.
pub fn add(
    corpus_path: &Path,
    library: &Path,
    embedder: &Embedder,
    opts: &AddOptions,
    progress: &dyn Fn(Progress),
) -> Result<AddReport, PipelineError> {
    let start = Instant::now();
    let lib = Library::open(library)?;
    let template = lib.manifest().text_template.clone();
    let dim = lib.manifest().dim;
    let (papers, summary) = read_corpus(corpus_path, &opts.read, opts.limit)?;
    let mut issues = summary.issues;
    let mut skipped = summary.skipped;
    let read = papers.len();
    let absent: Vec<String> = if opts.limit.is_none() {
        let in_corpus: std::collections::HashSet<&str> =
            papers.iter().map(|p| p.id.as_str()).collect();
        (0..lib.len())
            .filter(|&r| lib.is_live(r))
            .filter_map(|r| lib.papers().id(r))
            .filter(|id| !in_corpus.contains(id))
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };

    // Sort each paper: unchanged, new or replaced; replaced with the same
    // text keeps its vector, and with the same sentences its sentence
    // vectors (when the library has them).
    let old_sentences = lib.sentences()?;
    let (mut unchanged, mut new, mut reused) = (0, 0, 0);
    let mut added: Vec<Added> = Vec::new();
    let mut dead = Vec::new();
    for p in papers {
        let text = template.render(&p);
        let old = match lib.row_of(&p.id) {
            Some(row) => Some((row, lib.paper(row)?)),
            None => None,
        };
        match old {
            Some((_, old)) if *old == p => unchanged += 1,
            Some((row, old)) => {
                dead.push(row);
                let same_text = template.render(&old) == text;
                reused += usize::from(same_text);
                let same_sentences = same_text
                    && old_sentences.is_some()
                    && corpus::paper_sentences(&old) == corpus::paper_sentences(&p);
                added.push(Added {
                    paper: p,
                    text,
                    vector_of: same_text.then_some(row),
                    sentences_of: same_sentences.then_some(row),
                });
            }
            None => {
                new += 1;
                added.push(Added {
                    paper: p,
                    text,
                    vector_of: None,
                    sentences_of: None,
                });
            }
        }
    }
    // Through the model: the papers with a new text and, in a library with
    // sentence vectors, those with new sentences, which are made the way
    // the library's own were.
    let method = old_sentences.map(SentenceVectors::method);
    let through: Vec<usize> = (0..added.len())
        .filter(|&i| {
            let a = &added[i];
            a.vector_of.is_none() || (method.is_some() && a.sentences_of.is_none())
        })
        .collect();
    let located: Vec<LocatedSentences> = through
        .iter()
        .map(|&i| corpus::locate_sentences(&template, &added[i].paper))
        .collect();
    progress(Progress::Read(located.len()));
    // The library's model and document prompt (load_embedder set both).
    let mut cache = EmbedCache::open(library, dim, &embedder.info().checkpoint_key())?;
    let embedded = embed_papers(
        embedder,
        &located,
        method,
        &mut cache,
        opts.checkpoint_texts,
        progress,
    )?;
    let mut position = vec![None; added.len()];
    for (k, &i) in through.iter().enumerate() {
        position[i] = Some(k);
    }

    let mut kept_papers = Vec::with_capacity(added.len());
    let mut kept_texts = Vec::with_capacity(added.len());
    let mut vectors = Vec::with_capacity(added.len() * dim);
    // A library with sentence vectors gets those of the added papers too.
    let mut sentences = method.map(|m| SentenceVectors::new(dim, m));
    for (a, at) in added.into_iter().zip(position) {
        let fresh = at.map(|k| &embedded.vectors[k * dim..(k + 1) * dim]);
        let v = match (a.vector_of, fresh) {
            (Some(row), _) => lib.vectors().row(row),
            (None, Some(v)) => v,
            (None, None) => &[],
        };
        let p = a.paper;
        if is_unit(v) {
            vectors.extend_from_slice(v);
            kept_papers.push(p);
            kept_texts.push(a.text);
            if let Some(s) = &mut sentences {
                match (a.sentences_of, old_sentences, at) {
                    (Some(row), Some(old), _) => s.push_from(old, row),
                    (_, _, Some(k)) => s.push_row(&embedded.sentences[k]),
                    // Not reached: a paper without reused sentences went
                    // through the model.
                    _ => s.push_row(&[]),
                }
            }
        } else {
            skipped += 1;
            issues.push(degenerate(corpus_path, &p));
        }
    }
    // A replacement that could not be embedded keeps the old version alive.
    let kept_ids: std::collections::HashSet<&str> =
        kept_papers.iter().map(|p| p.id.as_str()).collect();
    dead.retain(|&row| lib.papers().id(row).is_some_and(|id| kept_ids.contains(id)));
    let replaced = dead.len();

    let mut sentences = sentences.filter(|_| !kept_papers.is_empty());
    // Added rows are normed in the library's space, not a refitted one.
    if let (Some(s), Some(old)) = (&mut sentences, old_sentences) {
        s.set_space(old.space_shared(), &vectors);
    }
    let update_start = Instant::now();
    let contents = Contents {
        papers: &kept_papers,
        texts: &kept_texts,
        vectors: &vectors,
        sentences: sentences.as_ref(),
    };
    let manifest = if kept_papers.is_empty() && dead.is_empty() {
        lib.manifest().clone()
    } else {
        lib.update(contents, &dead, &|s| progress(Progress::Stage(s)))?
    };
    cache.remove()?;
    let live = manifest.papers - manifest.dead.len();
    Ok(AddReport {
        library: library.display().to_string(),
        corpus: corpus_path.display().to_string(),
        read,
        new,
        replaced,
        vectors_reused: reused,
        unchanged,
        skipped,
        resumed: embedded.resumed,
        docs_per_s: embedded.stats.docs_per_s(),
        embed: embedded.stats,
        update_seconds: update_start.elapsed().as_secs_f64(),
        total_seconds: start.elapsed().as_secs_f64(),
        live,
        absent,
        dead_fraction: manifest.dead.len() as f64 / manifest.papers.max(1) as f64,
        device: embedder.device_name(),
        issues,
    })
}

/// A paper `add` adds: new, or replacing the row of the same id.
struct Added {
    paper: Paper,
    /// Its rendered text.
    text: String,
    /// The row whose vector it keeps (same text), if any.
    vector_of: Option<usize>,
    /// The row whose sentence vectors it keeps (same text and sentences).
    sentences_of: Option<usize>,
}

/// Marks the papers `ids` dead. Unknown ids are an error and nothing is
/// removed (a typo should not half-apply).
pub fn remove(library: &Path, ids: &[String]) -> Result<Manifest, PipelineError> {
    let lib = Library::open(library)?;
    let unknown: Vec<String> = ids
        .iter()
        .filter(|id| lib.row_of(id).is_none())
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(PipelineError::UnknownIds {
            path: library.to_path_buf(),
            ids: unknown,
        });
    }
    let rows: Vec<usize> = ids.iter().filter_map(|id| lib.row_of(id)).collect();
    let none = Contents {
        papers: &[],
        texts: &[],
        vectors: &[],
        sentences: None,
    };
    Ok(lib.update(none, &rows, &|_| {})?)
}

/// The first `limit` good papers of a corpus, and what the reader reported.
fn read_corpus(
    path: &Path,
    read: &ReadOptions,
    limit: Option<usize>,
) -> Result<(Vec<Paper>, corpus::ReadSummary), PipelineError> {
    let mut reader = corpus::open(path, read)?;
    let mut papers: Vec<Paper> = Vec::new();
    for p in reader.by_ref() {
        papers.push(p?);
        if limit.is_some_and(|l| papers.len() >= l) {
            break;
        }
    }
    Ok((papers, reader.into_summary()))
}

/// A paper the model embedded as a zero or NaN vector: reported and left
/// out, like any other bad record (it would poison the index).
pub(crate) fn degenerate(corpus: &Path, p: &Paper) -> Issue {
    Issue {
        path: corpus.to_path_buf(),
        line: 0,
        reason: format!(
            "paper {:?}: the model gave a zero or NaN vector; skipped",
            p.id
        ),
    }
}
