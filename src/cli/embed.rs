//! `embed`: texts in, vectors out, for use outside papersim.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::{emit_json, print_issues, progress_bar, ModelArgs};
use papersim::corpus;
use papersim::embed::Role;
use papersim::store;

#[derive(Args)]
pub struct EmbedArgs {
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
    /// With --output, print a JSON summary {"embedded", "skipped", "dim",
    /// "output", "docs_per_s"} on standard output instead of a line on
    /// standard error (without --output the embeddings are the JSON output).
    #[arg(long)]
    json: bool,
}

pub fn embed(a: EmbedArgs) -> Result<ExitCode> {
    let (records, issues) = corpus::read_text_records(&a.input, a.strict)?;
    print_issues(&issues);
    let embedder = a.model.load()?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let bar = progress_bar(texts.len() as u64);
    // As sentence-transformers' encode(): the default_prompt_name's prompt,
    // or the one --prompt names.
    let (vectors, stats) = embedder.embed_as(Role::Plain, &texts, &|n| bar.inc(n as u64))?;
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
            store::write_atomic(path, write)
                .with_context(|| format!("writing {}", path.display()))?;
            if a.json {
                return emit_json(&serde_json::json!({
                    "embedded": records.len(),
                    "skipped": issues.len(),
                    "dim": dim,
                    "output": path,
                    "docs_per_s": stats.docs_per_s(),
                }))
                .map(|()| ExitCode::SUCCESS);
            }
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
