//! The `papersim` command: flags and glue around the library.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use papersim::corpus::{self, Format, ReadOptions, TextTemplate};
use papersim::embed::{BatchLimits, DeviceSpec, Embedder, ModelSource, Precision};
use papersim::eval;
use papersim::index::HnswParams;
use papersim::pipeline::{self, BuildOptions, Progress};
use papersim::query::{self, Filter, Mode, Options, RelatedRequest, Strategy};
use papersim::report::{self, Format as OutFormat};
use papersim::store::{self, Library};

// glibc malloc churns on candle's many short-lived tensors (measured +15-25%
// throughput with mimalloc on this machine).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AFTER_HELP: &str = "\
Quick start:
  scripts/fetch-model.sh
  papersim build --corpus data/arxiv-sample.jsonl.gz --library lib
  papersim search --library lib \"contrastive learning for sentence embeddings\"
  papersim similar --library lib 1812.06145
  papersim related --library lib --abstract draft.txt --seed 1812.06145 --format markdown

Exit status: 0 success (results found), 1 a query found nothing, 2 error.";

#[derive(Parser)]
#[command(
    name = "papersim",
    version,
    about = "Find papers like this one: embed titles and abstracts with a local \
             sentence-transformer, index them, and query by sentence or by paper.",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embed a corpus and write a library (replacing any library at DIR atomically).
    Build(BuildArgs),
    /// Add new and changed papers of a corpus to a library: only their
    /// abstracts are embedded; a changed paper's old version is marked dead.
    Add(AddArgs),
    /// Remove papers by id (marked dead: no query returns them; `compact`
    /// reclaims their space).
    Remove(RemoveArgs),
    /// Rebuild the library without its dead rows (from the stored vectors,
    /// nothing re-embedded), when they are over --threshold of all rows.
    Compact(CompactArgs),
    /// Write the live vectors as a float32 .npy matrix, and the papers as JSON
    /// lines in the same order, for numpy, faiss or a vector database.
    Export(ExportArgs),
    /// Papers closest to a query sentence.
    Search(SearchArgs),
    /// Papers closest to a paper already in the library (the paper itself excluded).
    Similar(SimilarArgs),
    /// A related-work list from a draft abstract, seed papers, negative seeds and/or a query.
    Related(RelatedArgs),
    /// Retrieval quality (nDCG@10/20, Recall@100, MRR@10, MAP) per mode.
    Eval(EvalArgs),
    /// Embed {"id","text"} JSON lines; write {"id","embedding"} lines in input order.
    Embed(EmbedArgs),
    /// Show a library's manifest: model, size, index parameters.
    Info(InfoArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check every file of a library (exit 1 when something is damaged);
    /// --repair rebuilds a damaged graph or keyword index from the stored vectors.
    Verify(VerifyArgs),
    /// HTTP API and search page over a library (TEI- and OpenAI-compatible
    /// embeddings too); follows the library's new generations as they are committed.
    Serve(ServeArgs),
}

#[derive(Args)]
struct ModelArgs {
    /// Model: a sentence-transformers directory, or a hub id ORG/NAME resolved
    /// from the local Hugging Face cache. Default: models/all-MiniLM-L6-v2 when
    /// present, else sentence-transformers/all-MiniLM-L6-v2. For search, the
    /// model recorded in the library.
    #[arg(long, value_name = "PATH|ORG/NAME")]
    model: Option<String>,
    /// Where the model runs: cpu, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    device: DeviceSpec,
    /// Forward-pass precision: f32 (default), int8 (CPU: int8 dense layers,
    /// ~1.4-1.7x faster, cosine >= 0.99 to f32) or f16 (CUDA only). A library
    /// records it and queries use it; naming another one for a query is an error.
    #[arg(long, value_name = "f32|int8|f16")]
    precision: Option<Precision>,
}

#[derive(Args)]
struct BuildArgs {
    /// Papers to index: arXiv JSONL (also the Kaggle snapshot), BEIR corpus
    /// JSONL, CSV/TSV with a header, or a Hugging Face Daily Papers page saved
    /// as text. Gzip is read transparently.
    #[arg(long, value_name = "FILE")]
    corpus: PathBuf,
    /// Library directory to create or replace.
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    /// Corpus format, when auto-detection guesses wrong: arxiv, beir, csv, tsv, hf-daily.
    #[arg(long, value_name = "FORMAT")]
    format: Option<Format>,
    /// Stop at the first bad record instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// How a paper becomes the embedded text. Placeholders: {title} {abstract}
    /// {authors} {categories}. A paper with an empty title or abstract is
    /// embedded as the other field alone.
    #[arg(long, default_value = "{title}. {abstract}", value_name = "TEMPLATE")]
    template: TextTemplate,
    /// Index only the first N good papers.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Save the vectors every N embedded papers. An interrupted build (Ctrl-C,
    /// kill, crash) rerun with the same corpus and model continues from the
    /// last save (LIBRARY/embed-cache.bin) instead of starting over.
    #[arg(long, default_value_t = pipeline::CHECKPOINT_TEXTS, value_name = "N")]
    checkpoint_every: usize,
    /// HNSW links per node.
    #[arg(long, default_value_t = HnswParams::default().m)]
    hnsw_m: usize,
    /// HNSW construction breadth.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    ef_construction: usize,
    #[command(flatten)]
    model: ModelArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct QueryArgs {
    /// Library directory.
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    /// Number of results.
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// Ranking: dense (embeddings), keyword (BM25) or hybrid (both, fused by
    /// reciprocal rank; the best on SciFact, see the README).
    #[arg(long, default_value_t = query::DEFAULT_MODE)]
    mode: Mode,
    /// Only papers dated on or after YYYY[-MM[-DD]].
    #[arg(long, value_name = "DATE", value_parser = query::parse_date_bound)]
    since: Option<String>,
    /// Only papers dated on or before YYYY[-MM[-DD]].
    #[arg(long, value_name = "DATE", value_parser = query::parse_date_bound)]
    until: Option<String>,
    /// Only papers in this category (repeatable; "cs" matches "cs.CL").
    #[arg(long = "category", value_name = "CAT")]
    categories: Vec<String>,
    /// Scan every vector (exact). Default: exact up to 10,000 papers or under
    /// a selective filter, HNSW otherwise.
    #[arg(long, conflicts_with = "ann")]
    exact: bool,
    /// Always use the HNSW graph for the dense ranking.
    #[arg(long)]
    ann: bool,
    /// Output: table, markdown, bibtex, json or csv.
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    format: OutFormat,
    /// Same as --format json: one object {"query", "results": [...]}.
    #[arg(long)]
    json: bool,
}

impl QueryArgs {
    fn options(&self) -> Options {
        Options {
            k: self.k,
            mode: self.mode,
            strategy: match (self.exact, self.ann) {
                (true, _) => Strategy::Exact,
                (_, true) => Strategy::Ann,
                _ => Strategy::Auto,
            },
            filter: Filter {
                since: self.since.clone(),
                until: self.until.clone(),
                categories: self.categories.clone(),
            },
        }
    }

    fn format(&self) -> OutFormat {
        if self.json {
            OutFormat::Json
        } else {
            self.format
        }
    }
}

#[derive(Args)]
struct SearchArgs {
    /// The query: a sentence, a title, or a whole abstract.
    query: String,
    #[command(flatten)]
    q: QueryArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct SimilarArgs {
    /// Id of a paper in the library.
    paper_id: String,
    #[command(flatten)]
    q: QueryArgs,
}

#[derive(Args)]
struct RelatedArgs {
    /// A draft abstract or paragraph: a file, or - for standard input.
    #[arg(long = "abstract", value_name = "FILE")]
    draft: Option<PathBuf>,
    /// A paper of the library to find neighbours of (repeatable).
    #[arg(long = "seed", value_name = "ID")]
    seeds: Vec<String>,
    /// A paper of the library the list should stay away from (repeatable).
    #[arg(long = "negative", value_name = "ID")]
    negatives: Vec<String>,
    /// A query sentence.
    #[arg(long, value_name = "TEXT")]
    query: Option<String>,
    /// A paper never to list (repeatable; seeds and negatives never are).
    #[arg(long, value_name = "ID")]
    exclude: Vec<String>,
    /// Diversity λ in [0, 1] (maximal marginal relevance); 0 = pure relevance.
    #[arg(long, default_value_t = 0.0, value_name = "λ")]
    diversity: f32,
    /// Skip the per-result explanations (faster).
    #[arg(long)]
    no_why: bool,
    #[command(flatten)]
    q: QueryArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct EvalArgs {
    /// Library to evaluate; with --beir and no library there yet, it is built
    /// from the BEIR corpus first (title + ". " + text).
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    /// A BEIR dataset folder: corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv.
    #[arg(long, value_name = "DIR")]
    beir: Option<PathBuf>,
    /// BEIR qrels split.
    #[arg(long, default_value = "test")]
    split: String,
    /// Paper-to-paper judgements: lines "query_paper_id candidate_id relevance".
    #[arg(long, value_name = "FILE")]
    paper_qrels: Option<PathBuf>,
    /// Modes to score, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "dense,keyword,hybrid")]
    modes: Vec<Mode>,
    /// Keep documents whose id equals the query id (the BEIR toolkit drops them).
    #[arg(long)]
    keep_identical_ids: bool,
    /// Write a TREC run (qid Q0 docid rank score tag) of every mode to FILE.
    #[arg(long, value_name = "FILE")]
    run: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EmbedArgs {
    /// JSON lines {"id": ..., "text": ...} (gzip read transparently).
    input: PathBuf,
    /// Output file (written atomically); standard output when absent.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Stop at the first bad line instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Embedding throughput on real abstracts, per device: docs/s, tokens/s,
    /// padding, batch latency.
    Embed(BenchEmbedArgs),
    /// The HNSW index: build time, peak memory, and recall@10 against exact
    /// search with queries/s on 1 and 2 threads for each ef. The last
    /// --queries rows are the queries (not indexed).
    Index(BenchIndexArgs),
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct IndexSource {
    /// The live vectors of a library.
    #[arg(long, value_name = "DIR")]
    library: Option<PathBuf>,
    /// A float32 .npy matrix with L2-normalised rows (e.g. from `papersim export`).
    #[arg(long, value_name = "FILE.npy")]
    vectors: Option<PathBuf>,
    /// N clustered synthetic 384-d unit vectors (deterministic).
    #[arg(long, value_name = "N")]
    synthetic: Option<usize>,
}

#[derive(Args)]
struct BenchIndexArgs {
    #[command(flatten)]
    source: IndexSource,
    /// Queries, taken from the end of the vectors.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// ef values to sweep.
    #[arg(long, value_delimiter = ',', default_values_t = papersim::bench::index::DEFAULT_EFS)]
    ef: Vec<usize>,
    /// HNSW links per node.
    #[arg(long, default_value_t = HnswParams::default().m)]
    hnsw_m: usize,
    /// HNSW construction breadth.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    ef_construction: usize,
    /// What builds the graph: papersim (what libraries use) or hnsw-rs (what
    /// they used before format version 2, ~2x slower to build).
    #[arg(long, default_value = "papersim", value_name = "papersim|hnsw-rs")]
    builder: papersim::bench::index::GraphBuilder,
    /// Only the first N rows (the last --queries of them are the queries):
    /// e.g. a library's original corpus, before papers from another field
    /// were added to its end.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Also write the benchmarked vectors (all rows, queries last) as .npy,
    /// so another library can be measured on exactly the same data.
    #[arg(long, value_name = "FILE.npy")]
    write_vectors: Option<PathBuf>,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchEmbedArgs {
    /// Papers to embed. Default: ../shared/data/arxiv-cs.jsonl.gz when
    /// present, else the bundled data/arxiv-sample.jsonl.gz.
    #[arg(long, value_name = "FILE")]
    corpus: Option<PathBuf>,
    /// How many papers (the first N of the corpus).
    #[arg(short, long, default_value_t = 500)]
    n: usize,
    /// Devices to compare, comma-separated: cpu, cuda:0, ...
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cpu",
        value_name = "DEVICES"
    )]
    device: Vec<DeviceSpec>,
    /// Precisions to compare on each device, comma-separated: f32, int8 (CPU), f16 (CUDA).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "f32",
        value_name = "PRECISIONS"
    )]
    precision: Vec<Precision>,
    /// Model (as for build).
    #[arg(long, value_name = "PATH|ORG/NAME")]
    model: Option<String>,
    /// Write a bar chart of docs/s per device.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Padded tokens per forward pass. Default: 4096 on the CPU (measured
    /// best on 2 cores), 32768 on CUDA.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    batch_tokens: Option<u64>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    /// When only the HNSW graph or keyword index is damaged, rebuild them.
    #[arg(long)]
    repair: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct AddArgs {
    /// Library directory (an existing library).
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    /// Papers to add, in any format `build` reads. Papers whose id the
    /// library has, unchanged, are skipped.
    #[arg(long, value_name = "FILE")]
    corpus: PathBuf,
    /// Corpus format, when auto-detection guesses wrong.
    #[arg(long, value_name = "FORMAT")]
    format: Option<Format>,
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
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RemoveArgs {
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    /// Ids of the papers to remove. An unknown id is an error and nothing is removed.
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
}

#[derive(Args)]
struct CompactArgs {
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    /// Compact only when dead rows are at least this fraction of all rows.
    #[arg(long, default_value_t = 0.1, value_name = "FRACTION")]
    threshold: f64,
    /// Compact whatever the fraction.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct ExportArgs {
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    /// Output .npy file: live rows x dim, float32, rows L2-normalised.
    #[arg(long, value_name = "OUT.npy")]
    vectors: PathBuf,
    /// Output JSON lines: the paper of each vector row, in the same order.
    #[arg(long, value_name = "OUT.jsonl")]
    metadata: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    /// Address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    addr: std::net::SocketAddr,
    /// Texts per embedding request.
    #[arg(long, default_value_t = papersim::serve::Limits::default().max_inputs)]
    max_inputs: usize,
    /// Bytes per request body.
    #[arg(long, default_value_t = papersim::serve::Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Results per query.
    #[arg(long, default_value_t = papersim::serve::Limits::default().max_k)]
    max_k: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = papersim::serve::Limits::default().timeout.as_secs_f64())]
    timeout: f64,
    /// Tokens that may wait in the embedding queue before requests get 429.
    #[arg(long, default_value_t = papersim::serve::Limits::default().max_queued_tokens)]
    max_queued_tokens: usize,
    /// Tokens merged into one embedding call.
    #[arg(long, default_value_t = papersim::serve::Limits::default().batch_tokens)]
    batch_tokens: usize,
    /// How often to check the library for a new generation, in milliseconds.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct InfoArgs {
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAPERSIM_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(a) => build(a),
        Command::Add(a) => add(a),
        Command::Remove(a) => remove(a),
        Command::Compact(a) => compact(a),
        Command::Export(a) => export(a),
        Command::Search(a) => search(a),
        Command::Similar(a) => similar(a),
        Command::Related(a) => related(a),
        Command::Eval(a) => eval(a),
        Command::Embed(a) => embed(a),
        Command::Info(a) => info(a),
        Command::Verify(a) => verify(a),
        Command::Bench(BenchCommand::Embed(a)) => bench_embed(a),
        Command::Bench(BenchCommand::Index(a)) => bench_index(a),
        Command::Serve(a) => serve(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("papersim: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn model_source(m: &Option<String>) -> ModelSource {
    m.as_deref()
        .map(ModelSource::parse)
        .unwrap_or_else(ModelSource::default_source)
}

fn load_model(args: &ModelArgs) -> Result<Embedder> {
    let source = model_source(&args.model);
    let files = source.resolve()?;
    let spinner = spinner(&format!("loading model {source}"));
    let precision = args.precision.unwrap_or_default();
    let embedder = Embedder::load(&files, args.device, precision)?;
    spinner.finish_and_clear();
    Ok(embedder)
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn progress_bar(len: u64) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>9} [{bar:30}] {pos}/{len} papers  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message("embedding");
    pb
}

fn print_issues(issues: &[corpus::Issue]) {
    const SHOWN: usize = 20;
    for i in issues.iter().take(SHOWN) {
        eprintln!("papersim: skipped: {i}");
    }
    if issues.len() > SHOWN {
        eprintln!(
            "papersim: ... and {} more skipped records",
            issues.len() - SHOWN
        );
    }
}

fn build(a: BuildArgs) -> Result<ExitCode> {
    let embedder = load_model(&a.model)?;
    let opts = BuildOptions {
        read: ReadOptions {
            format: a.format,
            strict: a.strict,
        },
        template: a.template,
        index: HnswParams {
            m: a.hnsw_m,
            ef_construction: a.ef_construction,
            ..HnswParams::default()
        },
        limit: a.limit,
        checkpoint_texts: a.checkpoint_every,
    };
    let report = run_build(&a.corpus, &a.library, &embedder, &opts)?;
    print_issues(&report.issues);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::build_summary(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// `pipeline::build` under a progress bar.
fn run_build(
    corpus: &Path,
    library: &Path,
    embedder: &Embedder,
    opts: &BuildOptions,
) -> Result<pipeline::BuildReport> {
    let bar = progress_bar(0);
    let report = pipeline::build(corpus, library, embedder, opts, &|p| match p {
        Progress::Read(n) => bar.set_length(n as u64),
        Progress::Embedded(n) => bar.inc(n as u64),
        Progress::Stage(s) => bar.set_message(s.to_string()),
    })?;
    bar.finish_and_clear();
    Ok(report)
}

fn add(a: AddArgs) -> Result<ExitCode> {
    let lib = open_library(&a.library)?;
    let embedder = query_embedder(lib.manifest(), &a.model, true)?
        .ok_or_else(|| anyhow::anyhow!("no model to embed with"))?;
    drop(lib);
    let opts = pipeline::AddOptions {
        read: ReadOptions {
            format: a.format,
            strict: a.strict,
        },
        limit: a.limit,
        checkpoint_texts: a.checkpoint_every,
    };
    let bar = progress_bar(0);
    let report = pipeline::add(&a.corpus, &a.library, &embedder, &opts, &|p| match p {
        Progress::Read(n) => bar.set_length(n as u64),
        Progress::Embedded(n) => bar.inc(n as u64),
        Progress::Stage(s) => bar.set_message(s.to_string()),
    })?;
    bar.finish_and_clear();
    print_issues(&report.issues);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::add_summary(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(a: RemoveArgs) -> Result<ExitCode> {
    let m = pipeline::remove(&a.library, &a.ids)?;
    let dead = m.dead.len() as f64 / m.papers.max(1) as f64;
    println!(
        "removed {} papers; {} live, dead rows {:.1}% of {}{}",
        a.ids.len(),
        m.papers - m.dead.len(),
        100.0 * dead,
        m.papers,
        if dead >= 0.1 {
            " (`papersim compact` reclaims them)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn compact(a: CompactArgs) -> Result<ExitCode> {
    let lib = open_library(&a.library)?;
    let fraction = lib.dead_fraction();
    if !a.force && (fraction < a.threshold || fraction == 0.0) {
        println!(
            "nothing to do: dead rows are {:.1}% of {}, under the threshold {:.1}% (--force compacts anyway)",
            100.0 * fraction,
            lib.len(),
            100.0 * a.threshold
        );
        return Ok(ExitCode::SUCCESS);
    }
    let spinner = spinner("compacting");
    let m = lib.compact(&|s| spinner.set_message(s.to_string()))?;
    spinner.finish_and_clear();
    println!(
        "compacted: {} rows, {} dead rows dropped (generation {})",
        m.papers,
        lib.len() - m.papers,
        m.generation
    );
    Ok(ExitCode::SUCCESS)
}

fn export(a: ExportArgs) -> Result<ExitCode> {
    let lib = open_library(&a.library)?;
    let r = store::export(&lib, &a.vectors, a.metadata.as_deref())?;
    println!(
        "exported {} x {} vectors to {}{}",
        r.rows,
        r.dim,
        r.vectors.display(),
        r.metadata
            .map(|m| format!(", papers to {}", m.display()))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

fn open_library(dir: &Path) -> Result<Library> {
    Ok(Library::open(dir)?)
}

fn print_hits(
    query: serde_json::Value,
    hits: &[papersim::query::Hit],
    format: OutFormat,
) -> Result<ExitCode> {
    if hits.is_empty() && format == OutFormat::Table {
        eprintln!("papersim: no results");
    } else {
        print!("{}", report::render(format, &query, hits, terminal_width()));
    }
    Ok(if hits.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// The library's own model, unless the mode needs no embeddings.
fn query_embedder(
    manifest: &store::Manifest,
    model: &ModelArgs,
    needed: bool,
) -> Result<Option<Embedder>> {
    if !needed {
        return Ok(None);
    }
    let built = manifest.model.precision;
    if let Some(p) = model.precision.filter(|&p| p != built) {
        anyhow::bail!(
            "--precision {p}: this library was embedded at {built}, and queries must be \
             embedded the same way (leave --precision out)"
        );
    }
    let source = model.model.as_deref().map(ModelSource::parse);
    Ok(Some(query::load_embedder(
        manifest,
        source.as_ref(),
        model.device,
    )?))
}

fn search(a: SearchArgs) -> Result<ExitCode> {
    let opts = a.q.options();
    // On a cold search, loading the model and opening the library (checking
    // its files) are most of the time: they run side by side. The embedder
    // needs only the manifest; query::search checks it against the library.
    let manifest = store::read_manifest(&a.q.library)?;
    let (lib, embedder) = std::thread::scope(|s| {
        let embedder = s.spawn(|| query_embedder(&manifest, &a.model, opts.mode != Mode::Keyword));
        let lib = open_library(&a.q.library).and_then(|lib| {
            if opts.mode != Mode::Dense {
                lib.keyword()?;
            }
            Ok(lib)
        });
        let embedder = embedder
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("loading the model panicked")));
        (lib, embedder)
    });
    let (lib, embedder) = (lib?, embedder?);
    anyhow::ensure!(
        lib.manifest().model == manifest.model,
        "{}: the library was rebuilt with another model while it was being opened; \
         run the command again",
        a.q.library.display()
    );
    let hits = query::search(&lib, embedder.as_ref(), &a.query, &opts)?;
    print_hits(serde_json::json!(a.query), &hits, a.q.format())
}

fn similar(a: SimilarArgs) -> Result<ExitCode> {
    let lib = open_library(&a.q.library)?;
    let hits = query::similar(&lib, &a.paper_id, &a.q.options())?;
    if a.q.format() == OutFormat::Table {
        if let Some(p) = lib.row_of(&a.paper_id).and_then(|r| lib.paper(r).ok()) {
            println!("Papers like {}: {}\n", p.id, p.title);
        }
    }
    print_hits(serde_json::json!(a.paper_id), &hits, a.q.format())
}

fn related(a: RelatedArgs) -> Result<ExitCode> {
    let draft = match &a.draft {
        None => None,
        Some(p) if p.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("reading the draft from standard input")?;
            Some(s)
        }
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?),
    };
    let lib = open_library(&a.q.library)?;
    let opts = a.q.options();
    let needs_model = opts.mode != Mode::Keyword || !a.no_why;
    let has_text = draft.is_some() || a.query.is_some();
    let embedder = query_embedder(
        lib.manifest(),
        &a.model,
        needs_model && (has_text || !a.no_why),
    )?;
    let req = RelatedRequest {
        draft,
        seeds: a.seeds,
        negatives: a.negatives,
        query: a.query,
        exclude: a.exclude,
        diversity: a.diversity,
        explain: !a.no_why,
    };
    let hits = query::related(&lib, embedder.as_ref(), &req, &opts)?;
    let query = serde_json::json!({
        "abstract": req.draft,
        "seeds": req.seeds,
        "negatives": req.negatives,
        "query": req.query,
        "diversity": req.diversity,
        "mode": opts.mode,
    });
    print_hits(query, &hits, a.q.format())
}

fn eval(a: EvalArgs) -> Result<ExitCode> {
    let mut embedder = None;
    if let Some(beir) = &a.beir {
        if !a.library.join(papersim::store::MANIFEST).exists() {
            let corpus = ["corpus.jsonl.gz", "corpus.jsonl"]
                .iter()
                .map(|f| beir.join(f))
                .find(|p| p.is_file())
                .with_context(|| format!("{}: no corpus.jsonl[.gz]", beir.display()))?;
            eprintln!(
                "papersim: building {} from {}",
                a.library.display(),
                corpus.display()
            );
            let e = load_model(&a.model)?;
            let opts = BuildOptions {
                read: ReadOptions {
                    format: Some(Format::Beir),
                    strict: false,
                },
                template: TextTemplate::default(),
                index: HnswParams::default(),
                limit: None,
                checkpoint_texts: pipeline::CHECKPOINT_TEXTS,
            };
            let report = run_build(&corpus, &a.library, &e, &opts)?;
            print_issues(&report.issues);
            embedder = Some(e);
        }
    }
    let lib = open_library(&a.library)?;
    let needs_model = a.beir.is_some() && a.modes.iter().any(|m| *m != Mode::Keyword);
    if embedder.is_none() {
        embedder = query_embedder(lib.manifest(), &a.model, needs_model)?;
    }
    let mut sets: Vec<(String, eval::Qrels, Vec<eval::EvalQuery>)> = Vec::new();
    if let Some(beir) = &a.beir {
        let qrels = eval::read_qrels(&beir.join("qrels").join(format!("{}.tsv", a.split)))?;
        let queries = eval::read_beir_queries(&beir.join("queries.jsonl"))?;
        let queries = match &embedder {
            Some(e) => eval::beir_queries(&lib, &queries, &qrels, e, !a.keep_identical_ids)?,
            None => queries
                .into_iter()
                .filter(|(id, _)| qrels.contains_key(id))
                .map(|(id, text)| eval::EvalQuery {
                    id,
                    text: Some(text),
                    vector: None,
                    exclude: Vec::new(),
                })
                .collect(),
        };
        sets.push((format!("beir {}", beir.display()), qrels, queries));
    }
    if let Some(path) = &a.paper_qrels {
        let qrels = eval::read_qrels(path)?;
        let queries = eval::paper_queries(&lib, &qrels)?;
        sets.push((format!("paper-qrels {}", path.display()), qrels, queries));
    }
    anyhow::ensure!(
        !sets.is_empty(),
        "give --beir DIR and/or --paper-qrels FILE"
    );
    let mut run_out = Vec::new();
    let mut results = Vec::new();
    for (name, qrels, queries) in &sets {
        anyhow::ensure!(
            !queries.is_empty(),
            "{name}: no judged query found in the library"
        );
        for &mode in &a.modes {
            let r = eval::evaluate(
                &lib,
                queries,
                qrels,
                mode,
                a.run.as_ref().map(|_| &mut run_out as &mut dyn Write),
            )?;
            results.push((name.clone(), r));
        }
    }
    if let Some(path) = &a.run {
        std::fs::write(path, &run_out).with_context(|| format!("{}", path.display()))?;
    }
    if a.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .map(|(set, r)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["set"] = set.clone().into();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report::eval_table(&results));
    }
    Ok(ExitCode::SUCCESS)
}

fn embed(a: EmbedArgs) -> Result<ExitCode> {
    let (records, issues) = corpus::read_text_records(&a.input, a.strict)?;
    print_issues(&issues);
    let embedder = load_model(&a.model)?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let bar = progress_bar(texts.len() as u64);
    let (vectors, stats) = embedder.embed(&texts, &|n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let dim = embedder.info().dim;
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        for (r, v) in records.iter().zip(vectors.chunks_exact(dim)) {
            serde_json::to_writer(&mut *w, &serde_json::json!({"id": r.id, "embedding": v}))?;
            w.write_all(b"\n")?;
        }
        w.flush()
    };
    match &a.output {
        Some(path) => {
            let tmp = path.with_extension("tmp");
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&tmp).with_context(|| format!("{}", tmp.display()))?,
            );
            write(&mut f).with_context(|| format!("{}", tmp.display()))?;
            f.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("{}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))?;
            eprintln!(
                "papersim: wrote {} embeddings to {} ({:.1} docs/s)",
                records.len(),
                path.display(),
                stats.docs_per_s()
            );
        }
        None => write(&mut std::io::BufWriter::new(std::io::stdout().lock()))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn info(a: InfoArgs) -> Result<ExitCode> {
    let lib = open_library(&a.library)?;
    if a.json {
        let mut v = serde_json::to_value(lib.manifest())?;
        v["disk_bytes"] = lib.disk_bytes().into();
        v["live"] = lib.live_len().into();
        v["dead_fraction"] = lib.dead_fraction().into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report::library_info(&lib));
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(a: VerifyArgs) -> Result<ExitCode> {
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
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report::verify_report(&report));
        if repaired {
            println!(
                "repaired: rebuilt the graph and keyword index (generation {})",
                report.generation
            );
        } else if report.repairable {
            println!("only the indexes are damaged: `papersim verify --library {} --repair` rebuilds them", a.library.display());
        } else if !report.ok {
            println!("papers or vectors are damaged: rebuild the library with `papersim build`");
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn bench_embed(a: BenchEmbedArgs) -> Result<ExitCode> {
    let corpus = a.corpus.clone().unwrap_or_else(|| {
        let shared = PathBuf::from("../shared/data/arxiv-cs.jsonl.gz");
        if shared.is_file() {
            shared
        } else {
            PathBuf::from("data/arxiv-sample.jsonl.gz")
        }
    });
    let mut reader = corpus::open(&corpus, &ReadOptions::default())?;
    let template = TextTemplate::default();
    let mut texts = Vec::with_capacity(a.n);
    for p in reader.by_ref().take(a.n) {
        texts.push(template.render(&p?));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let files = model_source(&a.model).resolve()?;
    let mut rows = Vec::new();
    for device in &a.device {
        for &precision in &a.precision {
            let mut embedder = match Embedder::load(&files, *device, precision) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("papersim: skipping {device} {precision}: {e}");
                    continue;
                }
            };
            if let Some(n) = a.batch_tokens {
                let limits = embedder.limits();
                embedder.set_limits(BatchLimits {
                    max_tokens: n as usize,
                    ..limits
                });
            }
            let msg = format!("embedding {} papers on {device}, {precision}", refs.len());
            let spinner = spinner(&msg);
            let row = papersim::bench::embed(&embedder, &refs)?;
            spinner.finish_and_clear();
            rows.push(row);
        }
    }
    anyhow::ensure!(!rows.is_empty(), "no device could run");
    if let Some(path) = &a.plot {
        let title = format!(
            "papersim embed: {} abstracts from {}",
            refs.len(),
            corpus.display()
        );
        std::fs::write(path, papersim::bench::svg(&rows, &title))
            .with_context(|| format!("{}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!("{} abstracts from {}\n", refs.len(), corpus.display());
        print!("{}", papersim::bench::markdown(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_index(a: BenchIndexArgs) -> Result<ExitCode> {
    use papersim::bench::index as bench;
    let (mut label, mut vectors, dim) =
        match (&a.source.library, &a.source.vectors, a.source.synthetic) {
            (Some(dir), _, _) => {
                // Measured first, while this process holds nothing else.
                let (memory, v, dim) = bench::library_memory(dir)?;
                eprintln!("{memory}");
                (dir.display().to_string(), v, dim)
            }
            (_, Some(path), _) => {
                let (v, dim) = bench::read_npy(path)?;
                (path.display().to_string(), v, dim)
            }
            (_, _, Some(n)) => (
                format!("synthetic {n} x 384"),
                bench::synthetic(n, 384, 42),
                384,
            ),
            _ => anyhow::bail!("give --library, --vectors or --synthetic"),
        };
    if let Some(n) = a.limit.filter(|&n| n < vectors.len() / dim.max(1)) {
        vectors.truncate(n * dim);
        label = format!("{label} (first {n} rows)");
    }
    if vectors.len() / dim.max(1) < 4 {
        anyhow::bail!("{label}: too few vectors to benchmark");
    }
    if let Some(out) = &a.write_vectors {
        store::write_npy(out, &vectors, dim)?;
    }
    let spec = bench::BenchSpec {
        params: HnswParams {
            m: a.hnsw_m,
            ef_construction: a.ef_construction,
            ..HnswParams::default()
        },
        builder: a.builder,
        queries: a.queries,
        efs: a.ef.clone(),
    };
    let spinner = spinner("benchmarking the index");
    let r = bench::run(&label, &vectors, dim, &spec, &|s| {
        spinner.set_message(s.to_string())
    })?;
    spinner.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", report::index_bench(&r));
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(a: ServeArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        a.timeout.is_finite() && a.timeout > 0.0,
        "--timeout must be a positive number of seconds"
    );
    let limits = papersim::serve::Limits {
        max_inputs: a.max_inputs,
        max_body_bytes: a.max_body_bytes,
        max_k: a.max_k,
        timeout: Duration::from_secs_f64(a.timeout),
        max_queued_tokens: a.max_queued_tokens,
        batch_tokens: a.batch_tokens,
        ..papersim::serve::Limits::default()
    };
    let opts = papersim::serve::ServeOptions {
        library: a.library.clone(),
        addr: a.addr,
        model: a.model.model.as_deref().map(ModelSource::parse),
        device: a.model.device,
        limits,
        poll: Duration::from_millis(a.poll_ms.max(10)),
    };
    papersim::serve::run(opts, &|addr| {
        // Scripts and tests read this line to learn the port.
        println!("papersim: serving {} on http://{addr}", a.library.display());
        let _ = std::io::stdout().flush();
    })?;
    eprintln!("papersim: stopped");
    Ok(ExitCode::SUCCESS)
}
