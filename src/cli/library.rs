//! Making and keeping a library: `build`, `add`, `remove`, `compact`,
//! `export`, `info`, `verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::{emit, emit_json, print_issues, spinner, with_pipeline_bar, ModelArgs};
use crate::outln;
use papersim::corpus::{Format, ReadOptions, TextTemplate};
use papersim::embed::SentenceMethod;
use papersim::index::HnswParams;
use papersim::pipeline::{self, BuildOptions};
use papersim::query::Session;
use papersim::report;
use papersim::shard::ShardSpec;
use papersim::store::{self, Library};

#[derive(Args)]
pub struct BuildArgs {
    /// Papers to index: arXiv JSONL (also the Kaggle snapshot), BEIR corpus
    /// JSONL, CSV/TSV with a header (Zotero's CSV export too), a Hugging Face
    /// Daily Papers page saved as text, BibTeX (.bib), RIS (.ris), OpenAlex
    /// works JSONL, a folder of Semantic Scholar papers + abstracts files,
    /// an arXiv listing (API Atom, OAI-PMH, RSS), or a Zotero library read
    /// in place (~/Zotero or its zotero.sqlite, even while Zotero runs).
    /// Gzip is read transparently.
    #[arg(long, value_name = "FILE")]
    pub(super) corpus: PathBuf,
    /// Library directory to create or replace. Never taken from
    /// PAPERSIM_LIBRARY: replacing a library is something to name.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "out",
        conflicts_with = "out"
    )]
    pub(super) library: Option<PathBuf>,
    /// Embed only shard K of N (K from 0): the papers whose id hashes to K,
    /// whatever the file order. Default with --out: SLURM_ARRAY_TASK_ID /
    /// SLURM_ARRAY_TASK_COUNT. `papersim merge` joins the N shards into a library.
    #[arg(long, value_name = "K/N", requires = "out")]
    pub(super) shard: Option<ShardSpec>,
    /// Shard folder to write (with --shard): rerunning a finished shard does
    /// nothing, a killed one resumes from its checkpoint.
    #[arg(long, value_name = "DIR")]
    pub(super) out: Option<PathBuf>,
    /// Corpus format, when auto-detection guesses wrong: arxiv, beir, csv,
    /// tsv, hf-daily, bibtex, ris, openalex, s2, arxiv-listing, zotero.
    #[arg(long, value_name = "FORMAT")]
    pub(super) format: Option<Format>,
    /// Zotero only: take the papers of this collection and its
    /// sub-collections (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(super) collection: Vec<String>,
    /// Stop at the first bad record instead of reporting and skipping it.
    #[arg(long)]
    pub(super) strict: bool,
    /// How a paper becomes the embedded text. Placeholders: {title} {abstract}
    /// {authors} {categories}. A paper with an empty title or abstract is
    /// embedded as the other field alone.
    #[arg(long, default_value = "{title}. {abstract}", value_name = "TEMPLATE")]
    pub(super) template: TextTemplate,
    /// Index only the first N good papers.
    #[arg(long, value_name = "N")]
    pub(super) limit: Option<usize>,
    /// Save the vectors every N embedded papers. An interrupted build (Ctrl-C,
    /// kill, crash) rerun with the same corpus and model continues from the
    /// last save (LIBRARY/embed-cache.bin) instead of starting over.
    #[arg(long, default_value_t = pipeline::CHECKPOINT_TEXTS, value_name = "N")]
    pub(super) checkpoint_every: usize,
    /// HNSW links per node.
    #[arg(long, default_value_t = HnswParams::default().m)]
    pub(super) hnsw_m: usize,
    /// HNSW construction breadth.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    pub(super) ef_construction: usize,
    /// Store no sentence vectors: a smaller library (they are pooled from
    /// each paper's own forward pass, so the build is only a little faster),
    /// whose `similar` and `related` rank by hybrid alone and whose
    /// explanations embed sentences at query time.
    #[arg(long)]
    pub(super) no_sentences: bool,
    /// How sentence vectors are made: contextual (pooled from each paper's
    /// own forward pass, the default) or separate (each sentence embedded
    /// alone as a text of its own: about 2.4x the build time; a little better for
    /// `search --mode sentences` with short queries, a little worse for
    /// `similar` and `related`; see docs/evaluation.md). `add` keeps the
    /// library's method.
    #[arg(
        long,
        value_name = "METHOD",
        default_value = "contextual",
        value_parser = ["contextual", "separate"],
        conflicts_with = "no_sentences"
    )]
    pub(super) sentences: String,
    #[command(flatten)]
    pub(super) model: ModelArgs,
    /// Print the summary as JSON (an error too, on standard output).
    #[arg(long)]
    pub(super) json: bool,
}

pub fn build(a: BuildArgs) -> Result<ExitCode> {
    let library = match (&a.library, &a.out) {
        (_, Some(_)) => return super::shard::build(a),
        (Some(l), None) => l.clone(),
        (None, None) => anyhow::bail!("--library DIR (or --out DIR for a shard) is required"),
    };
    let embedder = a.model.load()?;
    let opts = BuildOptions {
        read: ReadOptions {
            format: a.format,
            strict: a.strict,
            collections: a.collection.clone(),
        },
        template: a.template,
        index: HnswParams {
            m: a.hnsw_m,
            ef_construction: a.ef_construction,
            ..HnswParams::default()
        },
        limit: a.limit,
        checkpoint_texts: a.checkpoint_every,
        sentences: match (a.no_sentences, a.sentences.as_str()) {
            (true, _) => None,
            (false, "separate") => Some(SentenceMethod::Separate),
            (false, _) => Some(SentenceMethod::Contextual),
        },
    };
    let report = with_pipeline_bar(|progress| {
        pipeline::build(&a.corpus, &library, &embedder, &opts, progress)
    })?;
    print_issues(&report.issues);
    if a.json {
        emit_json(&report)?;
    } else {
        emit(&report::build_summary(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct AddArgs {
    /// Library directory (an existing library).
    #[arg(long, value_name = "DIR", env = "PAPERSIM_LIBRARY")]
    library: PathBuf,
    /// Papers to add, in any format `build` reads. Papers whose id the
    /// library has, unchanged, are skipped.
    #[arg(long, value_name = "FILE")]
    corpus: PathBuf,
    /// Corpus format, when auto-detection guesses wrong.
    #[arg(long, value_name = "FORMAT")]
    format: Option<Format>,
    /// Zotero only: take the papers of this collection and its
    /// sub-collections (repeatable).
    #[arg(long, value_name = "NAME")]
    collection: Vec<String>,
    /// Stop at the first bad record instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Read only the first N good papers of the corpus.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Save the vectors every N embedded papers (an interrupted `add` rerun
    /// continues from there).
    #[arg(long, default_value_t = pipeline::CHECKPOINT_TEXTS, value_name = "N")]
    checkpoint_every: usize,
    #[command(flatten)]
    model: ModelArgs,
    /// Print the result as JSON (an error too, on standard output).
    #[arg(long)]
    json: bool,
}

pub fn add(a: AddArgs) -> Result<ExitCode> {
    // The library's own model, checked against what it recorded; the library
    // itself is reopened by `pipeline::add` under its writer lock.
    let embedder = Session::open_embedder(&a.library, &a.model.session())?;
    let opts = pipeline::AddOptions {
        read: ReadOptions {
            format: a.format,
            strict: a.strict,
            collections: a.collection.clone(),
        },
        limit: a.limit,
        checkpoint_texts: a.checkpoint_every,
    };
    let report = with_pipeline_bar(|progress| {
        pipeline::add(&a.corpus, &a.library, &embedder, &opts, progress)
    })?;
    print_issues(&report.issues);
    if a.json {
        emit_json(&report)?;
    } else {
        emit(&report::add_summary(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct RemoveArgs {
    /// Library directory.
    #[arg(long, value_name = "DIR", env = "PAPERSIM_LIBRARY")]
    library: PathBuf,
    /// Ids of the papers to remove. An unknown id is an error and nothing is removed.
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
    /// Print the result as JSON (an error too, on standard output).
    #[arg(long)]
    json: bool,
}

pub fn remove(a: RemoveArgs) -> Result<ExitCode> {
    let m = pipeline::remove(&a.library, &a.ids)?;
    let live = m.papers - m.dead.len();
    let dead = m.dead.len() as f64 / m.papers.max(1) as f64;
    if a.json {
        emit_json(&serde_json::json!({
            "removed": a.ids.len(),
            "live": live,
            "rows": m.papers,
            "dead_fraction": dead,
            "generation": m.generation,
        }))?;
    } else {
        outln!(
            "removed {} papers; {} live, dead rows {:.1}% of {}{}",
            a.ids.len(),
            live,
            100.0 * dead,
            m.papers,
            if dead >= 0.1 {
                " (`papersim compact` reclaims them)"
            } else {
                ""
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct CompactArgs {
    /// Library directory.
    #[arg(long, value_name = "DIR", env = "PAPERSIM_LIBRARY")]
    library: PathBuf,
    /// Compact only when dead rows are at least this fraction of all rows.
    #[arg(long, default_value_t = 0.1, value_name = "FRACTION")]
    threshold: f64,
    /// Compact whatever the fraction.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON (an error too, on standard output).
    #[arg(long)]
    json: bool,
}

pub fn compact(a: CompactArgs) -> Result<ExitCode> {
    let lib = Library::open(&a.library)?;
    let fraction = lib.dead_fraction();
    if !a.force && (fraction < a.threshold || fraction == 0.0) {
        if a.json {
            emit_json(&serde_json::json!({
                "compacted": false,
                "rows": lib.len(),
                "dead_fraction": fraction,
                "threshold": a.threshold,
                "generation": lib.manifest().generation,
            }))?;
        } else {
            outln!(
                "nothing to do: dead rows are {:.1}% of {}, under the threshold {:.1}% (--force compacts anyway)",
                100.0 * fraction,
                lib.len(),
                100.0 * a.threshold
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let spinner = spinner("compacting");
    let m = lib.compact(&|s| spinner.set_message(s.to_string()))?;
    spinner.finish_and_clear();
    if a.json {
        emit_json(&serde_json::json!({
            "compacted": true,
            "rows": m.papers,
            "dropped": lib.len() - m.papers,
            "generation": m.generation,
        }))?;
    } else {
        outln!(
            "compacted: {} rows, {} dead rows dropped (generation {})",
            m.papers,
            lib.len() - m.papers,
            m.generation
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ExportArgs {
    /// Library directory.
    #[arg(long, value_name = "DIR", env = "PAPERSIM_LIBRARY")]
    library: PathBuf,
    /// Output .npy file: live rows x dim, float32, rows L2-normalised.
    #[arg(long, value_name = "OUT.npy")]
    vectors: PathBuf,
    /// Output JSON lines: the paper of each vector row, in the same order.
    #[arg(long, value_name = "OUT.jsonl")]
    metadata: Option<PathBuf>,
    /// Print the result as JSON (an error too, on standard output).
    #[arg(long)]
    json: bool,
}

pub fn export(a: ExportArgs) -> Result<ExitCode> {
    let lib = Library::open(&a.library)?;
    let r = store::export(&lib, &a.vectors, a.metadata.as_deref())?;
    if a.json {
        emit_json(&r)?;
    } else {
        outln!(
            "exported {} x {} vectors to {}{}",
            r.rows,
            r.dim,
            r.vectors.display(),
            r.metadata
                .map(|m| format!(", papers to {}", m.display()))
                .unwrap_or_default()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct InfoArgs {
    /// Library directory.
    #[arg(long, value_name = "DIR", env = "PAPERSIM_LIBRARY")]
    library: PathBuf,
    /// Print the result as JSON (an error too, on standard output).
    #[arg(long)]
    json: bool,
}

pub fn info(a: InfoArgs) -> Result<ExitCode> {
    let lib = Library::open(&a.library)?;
    if a.json {
        let mut v = serde_json::to_value(lib.manifest())?;
        v["disk_bytes"] = lib.disk_bytes().into();
        v["live"] = lib.live_len().into();
        v["dead_fraction"] = lib.dead_fraction().into();
        v["sentences"] = match lib.sentences()? {
            Some(s) => serde_json::json!({
                "vectors": s.len(),
                "method": s.method(),
                "reranking_space": s.space().is_some(),
            }),
            None => serde_json::Value::Null,
        };
        v["cpu_kernels"] = match papersim::embed::cpu_kernels() {
            Ok(k) => serde_json::to_value(k)?,
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        emit_json(&v)?;
    } else {
        emit(&report::library_info(&lib))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Library directory.
    #[arg(long, value_name = "DIR", env = "PAPERSIM_LIBRARY")]
    library: PathBuf,
    /// When only the HNSW graph or keyword index is damaged, rebuild them.
    #[arg(long)]
    repair: bool,
    /// Print the result as JSON (an error too, on standard output).
    #[arg(long)]
    json: bool,
}

pub fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let mut report = store::verify(&a.library)?;
    let mut repaired = false;
    if a.repair && report.repairable {
        let spinner = spinner("rebuilding the indexes from the stored vectors");
        store::repair(&a.library, &|s| spinner.set_message(s.to_string()))?;
        spinner.finish_and_clear();
        repaired = true;
        report = store::verify(&a.library)?;
    }
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["repaired"] = repaired.into();
        emit_json(&v)?;
    } else {
        let advice = if repaired {
            format!(
                "repaired: rebuilt the graph and keyword index (generation {})\n",
                report.generation
            )
        } else if report.repairable {
            format!(
                "only the indexes are damaged: `papersim verify --library {} --repair` rebuilds them\n",
                a.library.display()
            )
        } else if !report.ok {
            "papers or vectors are damaged: rebuild the library with `papersim build`\n".into()
        } else {
            String::new()
        };
        emit(&format!("{}{advice}", report::verify_report(&report)))?;
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
