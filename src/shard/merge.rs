//! Joining the N shards of a build into a library, every shard checked
//! before anything is committed.

use super::*;

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
                // Shards embed papers, not sentences: a merged library has
                // no sentence vectors, and adding to one that has them is
                // refused by `Library::update`.
                sentences: None,
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
                sentences: None,
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
