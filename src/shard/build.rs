//! Embedding one shard of a corpus into its folder: resumable, and a no-op
//! when the folder already holds that shard, finished.

use super::*;

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
    let mut cache = EmbedCache::open(out, dim, &model.checkpoint_key())?;
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
