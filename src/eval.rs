//! Retrieval quality: BEIR-style query sets and paper-to-paper judgements,
//! scored with the trec_eval definitions (linear gain nDCG, recall, MRR, MAP).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::corpus::{Format, ReadOptions, TextTemplate};
use crate::embed::{is_unit, EmbedError, Embedder, Role, SentenceMethod};
use crate::index::HnswParams;
use crate::index::Neighbor;
use crate::pipeline::{self, BuildOptions};
use crate::query::{
    rank, rank_library, rank_positives, Fusion, Mode, Options, Positive, ProfileScorer, QueryError,
    Strategy,
};
use crate::store::Library;

/// Everything that can go wrong while evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A qrels or queries file could not be read, or the run file not written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file (`run file` for the TREC run output).
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A line of a qrels or queries file is malformed.
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A BEIR folder has neither `corpus.jsonl.gz` nor `corpus.jsonl`.
    #[error("{}: no corpus.jsonl[.gz]", dir.display())]
    NoCorpus {
        /// The BEIR folder.
        dir: PathBuf,
    },
    /// A set has no query to run: none of its judged query ids is in the
    /// library (or, for BEIR, none of its queries is judged), which usually
    /// means the judgements belong to another corpus.
    #[error("{set}: no judged query found in the library")]
    NoneInLibrary {
        /// The set's name, as in [`EvalSet::name`].
        set: String,
    },
    /// Ranking a query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Embedding the queries failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// Relevance judgements: query id → document id → grade.
pub type Qrels = HashMap<String, HashMap<String, i32>>;

/// Depth of every ranking scored (Recall@100 needs 100).
pub const DEPTH: usize = 100;

/// trec_eval measures of one ranking, or their mean over a set's queries.
/// Each is in `[0, 1]`; grades below 1 count as not relevant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// nDCG@10 with linear gain (the grade itself), BEIR's headline measure.
    #[serde(rename = "ndcg@10")]
    pub ndcg10: f64,
    /// nDCG@20 with linear gain.
    #[serde(rename = "ndcg@20")]
    pub ndcg20: f64,
    /// Fraction of the relevant documents found in the top 100.
    #[serde(rename = "recall@100")]
    pub recall100: f64,
    /// Reciprocal rank of the first relevant document within the top 10, else 0.
    #[serde(rename = "mrr@10")]
    pub mrr10: f64,
    /// Average precision over the top 100, divided by all relevant documents.
    #[serde(rename = "map@100")]
    pub map100: f64,
}

/// The mean metrics of one set's queries in one retrieval mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    /// The retrieval mode that was scored.
    pub mode: Mode,
    /// Queries the means are over.
    pub queries: usize,
    /// Means over the queries (0 for all when there were none).
    #[serde(flatten)]
    pub metrics: Metrics,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a qrels file: TSV `query-id corpus-id score` (BEIR, with a header)
/// or whitespace-separated `qid docid grade` / TREC `qid 0 docid grade`.
pub fn read_qrels(path: &Path) -> Result<Qrels, EvalError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut qrels: Qrels = HashMap::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(path))?;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() || (i == 0 && f[0] == "query-id") {
            continue;
        }
        let (q, d, g) = match f.as_slice() {
            [q, d, g] => (q, d, g),
            [q, _, d, g] => (q, d, g),
            _ => {
                return Err(EvalError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason: format!("expected 3 or 4 fields, found {}", f.len()),
                })
            }
        };
        let g: i32 = g.parse().map_err(|_| EvalError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            reason: format!("relevance {g:?} is not an integer"),
        })?;
        qrels
            .entry(q.to_string())
            .or_default()
            .insert(d.to_string(), g);
    }
    Ok(qrels)
}

/// Reads BEIR `queries.jsonl` (`_id`, `text`).
pub fn read_beir_queries(path: &Path) -> Result<Vec<(String, String)>, EvalError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| EvalError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let id = v["_id"]
            .as_str()
            .ok_or_else(|| bad("field \"_id\" missing or not a string".into()))?;
        let text = v["text"]
            .as_str()
            .ok_or_else(|| bad("field \"text\" missing or not a string".into()))?;
        out.push((id.to_string(), text.to_string()));
    }
    Ok(out)
}

/// trec_eval's measures for one ranking (`ranked` doc ids, best first).
pub fn score(ranked: &[&str], judged: &HashMap<String, i32>) -> Metrics {
    let rel = |d: &str| judged.get(d).copied().unwrap_or(0).max(0) as f64;
    let mut ideal: Vec<f64> = judged
        .values()
        .filter(|&&g| g > 0)
        .map(|&g| g as f64)
        .collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let dcg = |gains: &mut dyn Iterator<Item = f64>, k: usize| -> f64 {
        gains
            .take(k)
            .enumerate()
            .map(|(i, g)| g / ((i + 2) as f64).log2())
            .sum()
    };
    let ndcg = |k: usize| {
        let idcg = dcg(&mut ideal.iter().copied(), k);
        if idcg == 0.0 {
            0.0
        } else {
            dcg(&mut ranked.iter().map(|d| rel(d)), k) / idcg
        }
    };
    let n_rel = ideal.len() as f64;
    let top100 = &ranked[..ranked.len().min(100)];
    let found = top100.iter().filter(|d| rel(d) > 0.0).count() as f64;
    let mrr = ranked
        .iter()
        .take(10)
        .position(|d| rel(d) > 0.0)
        .map_or(0.0, |i| 1.0 / (i + 1) as f64);
    let mut hits = 0.0;
    let mut ap = 0.0;
    for (i, d) in top100.iter().enumerate() {
        if rel(d) > 0.0 {
            hits += 1.0;
            ap += hits / (i + 1) as f64;
        }
    }
    Metrics {
        ndcg10: ndcg(10),
        ndcg20: ndcg(20),
        recall100: if n_rel > 0.0 { found / n_rel } else { 0.0 },
        mrr10: mrr,
        map100: if n_rel > 0.0 { ap / n_rel } else { 0.0 },
    }
}

/// One query to run: its id, and what each mode needs.
pub struct EvalQuery {
    /// The query id the judgements are keyed by.
    pub id: String,
    /// Query text, for the keyword side of keyword and hybrid modes.
    pub text: Option<String>,
    /// Unit-length query embedding, for the dense side of dense and hybrid
    /// modes; `None` without an embedder or when the model's vector was not
    /// unit length.
    pub vector: Option<Vec<f32>>,
    /// Its sentences' vectors (`n · dim`), for the sentences mode: a paper's
    /// stored ones, or a short query's own vector.
    pub sentences: Option<Vec<f32>>,
    /// Rows never returned (the query paper itself in paper-to-paper runs).
    pub exclude: Vec<usize>,
}

/// Embeds BEIR queries that have judgements, in one batch. With
/// `ignore_identical_ids` (the BEIR toolkit's default) a document whose id
/// equals the query's is never returned.
pub fn beir_queries(
    lib: &Library,
    queries: &[(String, String)],
    qrels: &Qrels,
    embedder: &Embedder,
    ignore_identical_ids: bool,
) -> Result<Vec<EvalQuery>, EvalError> {
    let judged: Vec<&(String, String)> = queries
        .iter()
        .filter(|(id, _)| qrels.contains_key(id))
        .collect();
    let texts: Vec<&str> = judged.iter().map(|(_, t)| t.as_str()).collect();
    let (vectors, _) = embedder.embed_as(Role::Query, &texts, &|_| {})?;
    let dim = embedder.info().dim;
    Ok(judged
        .iter()
        .zip(vectors.chunks_exact(dim))
        .map(|((id, text), v)| EvalQuery {
            id: id.clone(),
            text: Some(text.clone()),
            vector: is_unit(v).then(|| v.to_vec()),
            sentences: is_unit(v).then(|| v.to_vec()),
            exclude: lib
                .row_of(id)
                .filter(|_| ignore_identical_ids)
                .into_iter()
                .collect(),
        })
        .collect())
}

/// Paper-to-paper queries: each judged query id is a library paper.
pub fn paper_queries(lib: &Library, qrels: &Qrels) -> Result<Vec<EvalQuery>, QueryError> {
    let mut ids: Vec<&String> = qrels.keys().collect();
    ids.sort();
    let mut queries = Vec::new();
    for id in ids {
        let Some(row) = lib.row_of(id) else { continue };
        queries.push(EvalQuery {
            id: id.clone(),
            text: Some(crate::query::paper_text(lib, row)?),
            vector: Some(lib.vectors().row(row).to_vec()),
            sentences: crate::query::stored_sentences(lib, row, Mode::Sentences)?,
            exclude: vec![row],
        });
    }
    Ok(queries)
}

/// Runs every query in `mode` (dense rankings exact, as the reference runs
/// are) and scores it; appends TREC run lines to `run` when given.
pub fn evaluate(
    lib: &Library,
    queries: &[EvalQuery],
    qrels: &Qrels,
    mode: Mode,
    run: Option<&mut dyn Write>,
) -> Result<ModeResult, EvalError> {
    let opts = Options {
        k: DEPTH,
        mode,
        strategy: Strategy::Exact,
        ..Options::default()
    };
    let mut total = Metrics::default();
    let mut lines = String::new();
    for q in queries {
        let ranked: Vec<Neighbor> = rank(
            lib,
            q.vector.as_deref(),
            q.text.as_deref(),
            q.sentences.as_deref(),
            DEPTH,
            &opts,
            &q.exclude,
        )?;
        let ids: Vec<&str> = ranked
            .iter()
            .filter_map(|n| lib.papers().id(n.row))
            .collect();
        let m = score(&ids, qrels.get(&q.id).unwrap_or(&HashMap::new()));
        total.ndcg10 += m.ndcg10;
        total.ndcg20 += m.ndcg20;
        total.recall100 += m.recall100;
        total.mrr10 += m.mrr10;
        total.map100 += m.map100;
        if run.is_some() {
            for (i, (n, id)) in ranked.iter().zip(&ids).enumerate() {
                lines.push_str(&format!(
                    "{} Q0 {id} {} {:.6} papersim-{mode}\n",
                    q.id,
                    i + 1,
                    n.score
                ));
            }
        }
    }
    if let Some(w) = run {
        w.write_all(lines.as_bytes())
            .map_err(io(Path::new("run file")))?;
    }
    let n = queries.len().max(1) as f64;
    Ok(ModeResult {
        mode,
        queries: queries.len(),
        metrics: Metrics {
            ndcg10: total.ndcg10 / n,
            ndcg20: total.ndcg20 / n,
            recall100: total.recall100 / n,
            mrr10: total.mrr10 / n,
            map100: total.map100 / n,
        },
    })
}

/// One judged set: a name for tables, its judgements and its queries.
pub struct EvalSet {
    /// Shown in tables and JSON (`beir DIR`, `paper-qrels FILE`).
    pub name: String,
    /// The set's relevance judgements.
    pub qrels: Qrels,
    /// The judged queries that can be run against the library.
    pub queries: Vec<EvalQuery>,
}

/// The corpus file of a BEIR folder: `corpus.jsonl.gz` or `corpus.jsonl`.
pub fn beir_corpus(beir: &Path) -> Result<PathBuf, EvalError> {
    ["corpus.jsonl.gz", "corpus.jsonl"]
        .iter()
        .map(|f| beir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| EvalError::NoCorpus {
            dir: beir.to_path_buf(),
        })
}

/// How a BEIR corpus becomes a library for evaluation: title + ". " + text,
/// default graph, bad records skipped (BEIR corpora have a few).
pub fn beir_build_options() -> BuildOptions {
    BuildOptions {
        read: ReadOptions {
            format: Some(Format::Beir),
            strict: false,
            collections: Vec::new(),
        },
        template: TextTemplate::default(),
        index: HnswParams::default(),
        limit: None,
        checkpoint_texts: pipeline::CHECKPOINT_TEXTS,
        sentences: Some(SentenceMethod::Contextual),
    }
}

/// The BEIR set of `beir` (`queries.jsonl`, `qrels/<split>.tsv`) against `lib`.
/// With an embedder the judged queries are embedded in one batch; without
/// one (keyword-only runs) they keep only their text.
pub fn beir_set(
    lib: &Library,
    beir: &Path,
    split: &str,
    embedder: Option<&Embedder>,
    ignore_identical_ids: bool,
) -> Result<EvalSet, EvalError> {
    let qrels = read_qrels(&beir.join("qrels").join(format!("{split}.tsv")))?;
    let queries = read_beir_queries(&beir.join("queries.jsonl"))?;
    let queries = match embedder {
        Some(e) => beir_queries(lib, &queries, &qrels, e, ignore_identical_ids)?,
        None => queries
            .into_iter()
            .filter(|(id, _)| qrels.contains_key(id))
            .map(|(id, text)| EvalQuery {
                id,
                text: Some(text),
                vector: None,
                sentences: None,
                exclude: Vec::new(),
            })
            .collect(),
    };
    Ok(EvalSet {
        name: format!("beir {}", beir.display()),
        qrels,
        queries,
    })
}

/// The paper-to-paper set of judgement file `path` against `lib`.
pub fn paper_set(lib: &Library, path: &Path) -> Result<EvalSet, EvalError> {
    let qrels = read_qrels(path)?;
    let queries = paper_queries(lib, &qrels)?;
    Ok(EvalSet {
        name: format!("paper-qrels {}", path.display()),
        qrels,
        queries,
    })
}

/// Scores every set in every mode, in that order; TREC run lines of all of
/// them go to `run` when given. A set with no query found in the library is
/// an error (its ids do not match the library's).
pub fn evaluate_sets(
    lib: &Library,
    sets: &[EvalSet],
    modes: &[Mode],
    mut run: Option<&mut dyn Write>,
) -> Result<Vec<(String, ModeResult)>, EvalError> {
    let mut results = Vec::new();
    for set in sets {
        if set.queries.is_empty() {
            return Err(EvalError::NoneInLibrary {
                set: set.name.clone(),
            });
        }
        for &mode in modes {
            let run: Option<&mut dyn Write> = match run {
                Some(ref mut w) => Some(&mut **w),
                None => None,
            };
            let r = evaluate(lib, &set.queries, &set.qrels, mode, run)?;
            results.push((set.name.clone(), r));
        }
    }
    Ok(results)
}

/// Related-work lists judged by citations: how many of a paper's links a
/// list built from its abstract (and `seeds` of its links) recovers.
#[derive(Debug, Clone, Serialize)]
pub struct RelatedResult {
    /// How the positives were combined: `rrf` (what `related` does) or
    /// `centroid`.
    pub method: &'static str,
    /// The retrieval mode each ranking used.
    pub mode: Mode,
    /// Links given as seeds (the lowest ids of the paper's links).
    pub seeds: usize,
    /// Papers the means are over: those with more links than `seeds`.
    pub queries: usize,
    /// Mean fraction of the other links in the top 10.
    #[serde(rename = "recall@10")]
    pub recall10: f64,
    /// Mean fraction of the other links in the top 20.
    #[serde(rename = "recall@20")]
    pub recall20: f64,
    /// Mean fraction of the other links in the top 50.
    #[serde(rename = "recall@50")]
    pub recall50: f64,
}

/// The fraction of `targets` among the first `k` of `ranked`.
pub fn recall_at(ranked: &[&str], targets: &[&str], k: usize) -> f64 {
    if targets.is_empty() {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|id| targets.contains(id))
        .count();
    found as f64 / targets.len() as f64
}

/// For each judged paper of `qrels` in the library: the draft is the paper
/// (its stored vector and text), the seeds are its `seeds` links of lowest
/// id, the paper and the seeds are excluded, and the list of 50 is scored
/// by recall of the paper's other links.
pub fn evaluate_related(
    lib: &Library,
    qrels: &Qrels,
    mode: Mode,
    fusion: Fusion,
    seeds: usize,
) -> Result<RelatedResult, EvalError> {
    let opts = Options {
        k: 50,
        mode,
        strategy: Strategy::Exact,
        ..Options::default()
    };
    let mut ids: Vec<&String> = qrels.keys().collect();
    ids.sort();
    let (mut n, mut r10, mut r20, mut r50) = (0usize, 0.0, 0.0, 0.0);
    for id in ids {
        let Some(row) = lib.row_of(id) else { continue };
        let mut links: Vec<(&str, usize)> = qrels[id]
            .iter()
            .filter(|(_, &g)| g > 0)
            .filter_map(|(d, _)| Some((d.as_str(), lib.row_of(d)?)))
            .filter(|&(_, r)| r != row)
            .collect();
        if links.len() <= seeds {
            continue;
        }
        links.sort();
        let (seed_links, targets) = links.split_at(seeds);
        let rows: Vec<usize> = std::iter::once(row)
            .chain(seed_links.iter().map(|l| l.1))
            .collect();
        let stored = StoredPositives::read(lib, &rows, mode)?;
        let ranked = rank_positives(lib, &stored.positives(lib, &rows), fusion, &opts, &rows)?;
        let ranked: Vec<&str> = ranked
            .iter()
            .filter_map(|x| lib.papers().id(x.row))
            .collect();
        let targets: Vec<&str> = targets.iter().map(|l| l.0).collect();
        n += 1;
        r10 += recall_at(&ranked, &targets, 10);
        r20 += recall_at(&ranked, &targets, 20);
        r50 += recall_at(&ranked, &targets, 50);
    }
    let d = n.max(1) as f64;
    Ok(RelatedResult {
        method: match fusion {
            Fusion::Rrf => "rrf",
            Fusion::Centroid => "centroid",
        },
        mode,
        seeds,
        queries: n,
        recall10: r10 / d,
        recall20: r20 / d,
        recall50: r50 / d,
    })
}

/// Library papers as positives of a ranking: their stored texts and, for
/// the sentences mode, their stored sentence vectors.
struct StoredPositives {
    texts: Vec<String>,
    sentences: Vec<Option<Vec<f32>>>,
}

impl StoredPositives {
    fn read(lib: &Library, rows: &[usize], mode: Mode) -> Result<Self, QueryError> {
        Ok(StoredPositives {
            texts: rows
                .iter()
                .map(|&r| crate::query::paper_text(lib, r))
                .collect::<Result<_, _>>()?,
            sentences: rows
                .iter()
                .map(|&r| crate::query::stored_sentences(lib, r, mode))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The positives of `rows` (the rows [`Self::read`] was given).
    fn positives<'a>(&'a self, lib: &'a Library, rows: &[usize]) -> Vec<Positive<'a>> {
        rows.iter()
            .zip(&self.texts)
            .zip(&self.sentences)
            .map(|((&r, t), s)| Positive {
                vector: Some(lib.vectors().row(r)),
                text: t,
                sentences: s.as_deref(),
            })
            .collect()
    }
}

/// Papers of the profile experiment: a query paper needs this many links
/// in the library, half of which make the profile.
pub const PROFILE_MIN_LINKS: usize = 4;

/// Depth of the profile experiment's rankings (recall@20, nDCG@20).
pub const PROFILE_DEPTH: usize = 20;

/// One query paper's profile: its links at even positions among them
/// sorted by id; the links at odd positions are the targets. The query
/// paper itself is neither (and never ranked).
pub struct ProfileCase {
    /// The query paper's row.
    pub paper: usize,
    /// The profile's rows.
    pub profile: Vec<usize>,
    /// The ids to be found.
    pub targets: Vec<String>,
}

/// The profile experiment's cases, by query id: every judged paper in the
/// library with at least [`PROFILE_MIN_LINKS`] links there
/// (scripts/profile-experiment.py splits the same way).
pub fn profile_cases(lib: &Library, qrels: &Qrels) -> Vec<ProfileCase> {
    let mut ids: Vec<&String> = qrels.keys().collect();
    ids.sort();
    ids.into_iter()
        .filter_map(|id| {
            let paper = lib.row_of(id)?;
            let mut links: Vec<(&str, usize)> = qrels[id]
                .iter()
                .filter(|(_, &g)| g > 0)
                .filter_map(|(d, _)| Some((d.as_str(), lib.row_of(d)?)))
                .filter(|&(_, r)| r != paper)
                .collect();
            if links.len() < PROFILE_MIN_LINKS {
                return None;
            }
            links.sort();
            Some(ProfileCase {
                paper,
                profile: links.iter().step_by(2).map(|l| l.1).collect(),
                targets: links
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .map(|l| l.0.to_string())
                    .collect(),
            })
        })
        .collect()
}

/// A profile ranker's answer: rows, best first.
pub type Ranked = Result<Vec<usize>, QueryError>;

/// The mean scores of one ranker on the profile experiment.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileResult {
    /// The ranker's name.
    pub ranker: String,
    /// Profiles the means are over.
    pub profiles: usize,
    /// Mean fraction of the targets in the top 20.
    #[serde(rename = "recall@20")]
    pub recall20: f64,
    /// Mean nDCG@20 (binary gains).
    #[serde(rename = "ndcg@20")]
    pub ndcg20: f64,
    /// Mean recall@20 over the profiles at even positions (by query id).
    #[serde(rename = "recall@20 even")]
    pub recall20_even: f64,
    /// The same over the odd positions: choose on one half, confirm on the other.
    #[serde(rename = "recall@20 odd")]
    pub recall20_odd: f64,
}

/// Scores `rank` (a case's profile and excluded rows → ids, best first, at
/// least [`PROFILE_DEPTH`] of them) on every case.
pub fn evaluate_profiles(
    lib: &Library,
    cases: &[ProfileCase],
    ranker: &str,
    rank: &dyn Fn(&ProfileCase, &[usize]) -> Ranked,
) -> Result<ProfileResult, EvalError> {
    let mut recalls = Vec::with_capacity(cases.len());
    let mut ndcg = 0.0;
    for case in cases {
        let exclude: Vec<usize> = case.profile.iter().copied().chain([case.paper]).collect();
        let rows = rank(case, &exclude)?;
        let ranked: Vec<&str> = rows
            .iter()
            .filter_map(|&r| lib.papers().id(r))
            .take(PROFILE_DEPTH)
            .collect();
        let targets: Vec<&str> = case.targets.iter().map(String::as_str).collect();
        recalls.push(recall_at(&ranked, &targets, PROFILE_DEPTH));
        let judged: HashMap<String, i32> = case.targets.iter().map(|t| (t.clone(), 1)).collect();
        ndcg += score(&ranked, &judged).ndcg20;
    }
    let mean = |xs: &mut dyn Iterator<Item = &f64>| {
        let (n, s) = xs.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
        s / n.max(1) as f64
    };
    Ok(ProfileResult {
        ranker: ranker.to_string(),
        profiles: cases.len(),
        recall20: mean(&mut recalls.iter()),
        ndcg20: ndcg / cases.len().max(1) as f64,
        recall20_even: mean(&mut recalls.iter().step_by(2)),
        recall20_odd: mean(&mut recalls.iter().skip(1).step_by(2)),
    })
}

/// `feed`'s ranking ([`ProfileScorer`]) of the library's other papers,
/// the whitening fitted once.
pub fn feed_profile_ranker(
    lib: &Library,
) -> Result<impl Fn(&ProfileCase, &[usize]) -> Ranked + '_, QueryError> {
    let first = lib.vectors().rows().min(1);
    let fitted = ProfileScorer::new(lib, &(0..first).collect::<Vec<_>>(), &[])?;
    let whitening = fitted.whitening().clone();
    let norms: Vec<f32> = (0..lib.len())
        .map(|r| fitted.norm(lib.vectors().row(r)))
        .collect();
    Ok(move |case: &ProfileCase, exclude: &[usize]| {
        let scorer = ProfileScorer::with_whitening(lib, whitening.clone(), &case.profile)?;
        Ok(rank_library(lib, &scorer, &norms, exclude, PROFILE_DEPTH))
    })
}

/// `related`'s ranking with the profile as its seeds, in `mode`.
pub fn related_profile_ranker(
    lib: &Library,
    mode: Mode,
) -> impl Fn(&ProfileCase, &[usize]) -> Ranked + '_ {
    move |case, exclude| {
        let opts = Options {
            k: PROFILE_DEPTH,
            mode,
            strategy: Strategy::Exact,
            ..Options::default()
        };
        let stored = StoredPositives::read(lib, &case.profile, mode)?;
        let positives = stored.positives(lib, &case.profile);
        let ranked = rank_positives(lib, &positives, Fusion::Centroid, &opts, exclude)?;
        Ok(ranked.iter().map(|n| n.row).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, i32)]) -> HashMap<String, i32> {
        pairs.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    #[test]
    fn recall_counts_targets_in_the_top_k() {
        let ranked = ["a", "b", "c", "d"];
        assert_eq!(recall_at(&ranked, &["b", "d"], 2), 0.5);
        assert_eq!(recall_at(&ranked, &["b", "d"], 4), 1.0);
        assert_eq!(recall_at(&ranked, &[], 4), 0.0);
    }

    #[test]
    fn perfect_ranking_scores_one() {
        let j = judged(&[("a", 1), ("b", 1)]);
        let m = score(&["a", "b", "c"], &j);
        assert!((m.ndcg10 - 1.0).abs() < 1e-12);
        assert_eq!(m.recall100, 1.0);
        assert_eq!(m.mrr10, 1.0);
        assert!((m.map100 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn measures_match_hand_computed_values() {
        // Relevant: a (grade 2), b (grade 1); ranking x, a, y, b.
        let j = judged(&[("a", 2), ("b", 1), ("z", 0)]);
        let m = score(&["x", "a", "y", "b"], &j);
        let dcg = 2.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2();
        assert!((m.ndcg10 - dcg / idcg).abs() < 1e-12);
        assert_eq!(m.mrr10, 0.5);
        assert!((m.map100 - (0.5 + 0.5) / 2.0).abs() < 1e-12);
        assert_eq!(m.recall100, 1.0);
        let none = score(&["x"], &j);
        assert_eq!(none, Metrics::default());
    }

    #[test]
    fn qrels_read_beir_and_trec_layouts() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("q.tsv");
        std::fs::write(
            &p,
            "query-id\tcorpus-id\tscore\n1\t31715818\t1\nq2 0 d9 2\n",
        )
        .unwrap();
        let q = read_qrels(&p).unwrap();
        assert_eq!(q["1"]["31715818"], 1);
        assert_eq!(q["q2"]["d9"], 2);
        std::fs::write(&p, "1 2\n").unwrap();
        let err = read_qrels(&p).unwrap_err().to_string();
        assert!(err.contains("q.tsv:1:"), "{err}");
    }
}
