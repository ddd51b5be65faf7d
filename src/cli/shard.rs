//! Builds on a cluster: `build --shard K/N --out DIR` (one array task's
//! shard) and `merge` (the shards into one library).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::library::BuildArgs;
use super::{emit_json, print_issues, spinner, with_pipeline_bar};
use crate::outln;
use papersim::corpus::ReadOptions;
use papersim::index::HnswParams;
use papersim::pipeline::Progress;
use papersim::shard::{self, MergeOptions, ShardOptions, ShardSpec};

/// `papersim build --out DIR [--shard K/N]`.
pub fn build(a: BuildArgs) -> Result<ExitCode> {
    let Some(out) = a.out.clone() else {
        anyhow::bail!("a shard is written with --out DIR");
    };
    let spec = match a.shard {
        Some(s) => s,
        None => ShardSpec::from_env()?.ok_or_else(|| {
            anyhow::anyhow!(
                "--out writes one shard: pass --shard K/N, or run as a Slurm array task \
                 (SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT set)"
            )
        })?,
    };
    let embedder = a.model.load()?;
    let opts = ShardOptions {
        read: ReadOptions {
            format: a.format,
            strict: a.strict,
            collections: a.collection.clone(),
        },
        template: a.template,
        limit: a.limit,
        checkpoint_texts: a.checkpoint_every,
    };
    let r = with_pipeline_bar(|progress| {
        shard::build(&a.corpus, &out, spec, &embedder, &opts, progress)
    })?;
    print_issues(&r.issues);
    if a.json {
        emit_json(&r)?;
    } else if r.up_to_date {
        outln!(
            "shard {} in {} is finished and up to date ({} papers); nothing to do",
            r.shard,
            r.out,
            r.papers
        )?;
    } else {
        outln!(
            "shard {} of {}: {} of {} papers into {}; {} embedded at {:.1} docs/s on {}{}; {:.1} s",
            r.shard,
            r.corpus,
            r.papers,
            r.corpus_papers,
            r.out,
            r.embed.docs,
            r.docs_per_s,
            r.device,
            if r.resumed > 0 {
                format!(", {} resumed from the checkpoint", r.resumed)
            } else {
                String::new()
            },
            r.total_seconds
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct MergeArgs {
    /// Library directory to create, or an existing library to add the
    /// shards' papers to (their vectors are reused, nothing is embedded).
    #[arg(long, value_name = "DIR")]
    library: PathBuf,
    /// The shard folders written by `papersim build --shard K/N --out DIR`:
    /// all N of one build. Nothing is written unless every one checks out.
    #[arg(required = true, value_name = "SHARD_DIR")]
    shards: Vec<PathBuf>,
    /// HNSW links per node (a new library).
    #[arg(long, default_value_t = HnswParams::default().m)]
    hnsw_m: usize,
    /// HNSW construction breadth (a new library).
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    ef_construction: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// `papersim merge --library DIR SHARD_DIR…`.
pub fn merge(a: MergeArgs) -> Result<ExitCode> {
    let opts = MergeOptions {
        index: HnswParams {
            m: a.hnsw_m,
            ef_construction: a.ef_construction,
            ..HnswParams::default()
        },
    };
    let bar = spinner("checking the shards");
    let r = shard::merge(&a.library, &a.shards, &opts, &|p| {
        if let Progress::Stage(s) = p {
            bar.set_message(s.to_string());
        }
    });
    bar.finish_and_clear();
    let r = r?;
    if a.json {
        emit_json(&r)?;
    } else {
        let what = if r.created {
            "a new library".to_string()
        } else {
            format!(
                "{} new, {} replaced, {} unchanged",
                r.new, r.replaced, r.unchanged
            )
        };
        outln!(
            "merged {} shards ({} papers) into {}: {what}; {} live papers, generation {}; \
             checked in {:.1} s, written and indexed in {:.1} s",
            r.shards,
            r.papers,
            r.library,
            r.live,
            r.generation,
            r.check_seconds,
            r.index_seconds
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
