//! `bench embed` and `bench index`: throughput and memory, measured the
//! same way every time so that runs on different machines compare.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::{emit, emit_json, model_source, spinner};
use papersim::bench;
use papersim::bench::index as index_bench;
use papersim::embed::{BatchLimits, DeviceSpec, Embedder, Precision};
use papersim::index::HnswParams;
use papersim::report;
use papersim::store;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Embedding throughput on real abstracts, per device: docs/s, tokens/s,
    /// padding, batch latency.
    Embed(BenchEmbedArgs),
    /// The HNSW index: build time, peak memory, and recall@10 against exact
    /// search with queries/s on 1 and 2 threads for each ef. The last
    /// --queries rows are the queries (not indexed).
    Index(BenchIndexArgs),
}

pub fn run(command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Embed(a) => embed(a),
        BenchCommand::Index(a) => index(a),
    }
}

#[derive(Args)]
pub struct BenchEmbedArgs {
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
    /// Precisions to compare on each device, comma-separated: f32, bf16, int8 (CPU), f16 (CUDA).
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
    /// Print the result as JSON (an error too, on standard output).
    #[arg(long)]
    json: bool,
}

fn embed(a: BenchEmbedArgs) -> Result<ExitCode> {
    let corpus = a.corpus.clone().unwrap_or_else(bench::default_corpus);
    let texts = bench::abstracts(&corpus, a.n)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let files = model_source(a.model.as_deref()).resolve()?;
    let mut rows = Vec::new();
    for device in &a.device {
        for &precision in &a.precision {
            // A device or precision this machine or build cannot run is
            // skipped, so `--device cpu,cuda:0` still measures the CPU.
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
            let row = bench::embed(&embedder, &refs)?;
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
        store::write_atomic(path, |w| w.write_all(bench::svg(&rows, &title).as_bytes()))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        emit_json(&rows)?;
    } else {
        emit(&format!(
            "{} abstracts from {}\n\n{}",
            refs.len(),
            corpus.display(),
            bench::markdown(&rows)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct IndexSource {
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
pub struct BenchIndexArgs {
    #[command(flatten)]
    source: IndexSource,
    /// Queries, taken from the end of the vectors.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// ef values to sweep.
    #[arg(long, value_delimiter = ',', default_values_t = index_bench::DEFAULT_EFS)]
    ef: Vec<usize>,
    /// HNSW links per node.
    #[arg(long, default_value_t = HnswParams::default().m)]
    hnsw_m: usize,
    /// HNSW construction breadth.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    ef_construction: usize,
    /// What builds the graph: papersim (what libraries use) or hnsw-rs (the
    /// hnsw_rs crate's insertion, for comparison; needs --features hnsw-rs).
    #[arg(long, default_value = "papersim", value_name = "papersim|hnsw-rs")]
    builder: index_bench::GraphBuilder,
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

fn index(a: BenchIndexArgs) -> Result<ExitCode> {
    let (mut label, mut vectors, dim) =
        match (&a.source.library, &a.source.vectors, a.source.synthetic) {
            (Some(dir), _, _) => {
                // Measured first, while this process holds nothing else.
                let (memory, vectors, dim) = index_bench::library_memory(dir)?;
                eprintln!("{memory}");
                (dir.display().to_string(), vectors, dim)
            }
            (_, Some(path), _) => {
                let (v, dim) = index_bench::read_npy(path)?;
                (path.display().to_string(), v, dim)
            }
            (_, _, Some(n)) => (
                format!("synthetic {n} x 384"),
                index_bench::synthetic(n, 384, 42),
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
    let spec = index_bench::BenchSpec {
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
    let r = index_bench::run(&label, &vectors, dim, &spec, &|s| {
        spinner.set_message(s.to_string())
    })?;
    spinner.finish_and_clear();
    if a.json {
        emit_json(&r)?;
    } else {
        emit(&report::index_bench(&r))?;
    }
    Ok(ExitCode::SUCCESS)
}
