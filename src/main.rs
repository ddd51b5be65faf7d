//! The `papersim` command: flags and glue around the library.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use papersim::corpus::{self, Format, ReadOptions, TextTemplate};
use papersim::embed::{DeviceSpec, Embedder, ModelSource};
use papersim::index::HnswParams;
use papersim::pipeline::{self, BuildOptions, Progress};
use papersim::query::{self, Hit, Strategy};
use papersim::report;
use papersim::store::Library;

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
    /// Papers closest to a query sentence.
    Search(SearchArgs),
    /// Papers closest to a paper already in the library (the paper itself excluded).
    Similar(SimilarArgs),
    /// Embed {"id","text"} JSON lines; write {"id","embedding"} lines in input order.
    Embed(EmbedArgs),
    /// Show a library's manifest: model, size, index parameters.
    Info(InfoArgs),
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
    /// Scan every vector (exact). Default: exact up to 10,000 papers, HNSW above.
    #[arg(long, conflicts_with = "ann")]
    exact: bool,
    /// Always use the HNSW graph.
    #[arg(long)]
    ann: bool,
    /// Print one JSON object {"query", "results": [...]}.
    #[arg(long)]
    json: bool,
}

impl QueryArgs {
    fn strategy(&self) -> Strategy {
        match (self.exact, self.ann) {
            (true, _) => Strategy::Exact,
            (_, true) => Strategy::Ann,
            _ => Strategy::Auto,
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
        Command::Search(a) => search(a),
        Command::Similar(a) => similar(a),
        Command::Embed(a) => embed(a),
        Command::Info(a) => info(a),
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
    let embedder = Embedder::load(&files, args.device)?;
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
    };
    let bar = progress_bar(0);
    let report = pipeline::build(&a.corpus, &a.library, &embedder, &opts, &|p| match p {
        Progress::Read(n) => bar.set_length(n as u64),
        Progress::Embedded(n) => bar.inc(n as u64),
        Progress::Stage(s) => bar.set_message(s.to_string()),
    })?;
    bar.finish_and_clear();
    print_issues(&report.issues);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::build_summary(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn open_library(dir: &Path) -> Result<Library> {
    Ok(Library::open(dir)?)
}

fn print_hits(query: serde_json::Value, hits: &[Hit], json: bool) -> Result<ExitCode> {
    if json {
        let out = serde_json::json!({ "query": query, "results": hits });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if hits.is_empty() {
        eprintln!("papersim: no results");
    } else {
        print!("{}", report::hits_table(hits, terminal_width()));
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

fn search(a: SearchArgs) -> Result<ExitCode> {
    let lib = open_library(&a.q.library)?;
    let source = a.model.model.as_deref().map(ModelSource::parse);
    let embedder = query::load_embedder(lib.manifest(), source.as_ref(), a.model.device)?;
    let hits = query::search(&lib, &embedder, &a.query, a.q.k, a.q.strategy())?;
    print_hits(serde_json::json!(a.query), &hits, a.q.json)
}

fn similar(a: SimilarArgs) -> Result<ExitCode> {
    let lib = open_library(&a.q.library)?;
    let hits = query::similar(&lib, &a.paper_id, a.q.k, a.q.strategy())?;
    if !a.q.json {
        if let Some(p) = lib.row_of(&a.paper_id).map(|r| &lib.papers()[r]) {
            println!("Papers like {}: {}\n", p.id, p.title);
        }
    }
    print_hits(serde_json::json!(a.paper_id), &hits, a.q.json)
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
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report::library_info(&lib));
    }
    Ok(ExitCode::SUCCESS)
}
