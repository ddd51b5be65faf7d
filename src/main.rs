//! The `papersim` command: flags and dispatch. Each command group lives in
//! `src/cli/`; everything a command does is a library call.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[cfg(feature = "serve")]
use cli::serve;
use cli::{bench, embed, eval, feed, library, query, scripting, shard};

const AFTER_HELP: &str = "\
Quick start:
  scripts/fetch-model.sh
  papersim build --corpus data/arxiv-sample.jsonl.gz --library lib
  papersim search --library lib \"contrastive learning for sentence embeddings\"
  papersim similar --library lib 1812.06145
  papersim related --library lib --abstract draft.txt --seed 1812.06145 --format markdown

Scripts: every command that prints results takes --json; with --json an error
is {\"error\": {\"kind\", \"message\", \"file\", \"line\"}} on standard output.
PAPERSIM_LIBRARY is the default of every --library.

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
    /// Embed a corpus and write a library (replacing any library at DIR
    /// atomically); with --shard K/N --out DIR, one shard of it (a Slurm array task).
    Build(library::BuildArgs),
    /// Build a library (or add to one) from the N shards of a sharded build,
    /// without embedding: every shard is checked before anything is written.
    Merge(shard::MergeArgs),
    /// Add new and changed papers of a corpus to a library: only their
    /// abstracts are embedded; a changed paper's old version is marked dead.
    Add(library::AddArgs),
    /// Remove papers by id (marked dead: no query returns them; `compact`
    /// reclaims their space).
    Remove(library::RemoveArgs),
    /// Rebuild the library without its dead rows (from the stored vectors,
    /// nothing re-embedded), when they are over --threshold of all rows.
    Compact(library::CompactArgs),
    /// Write the live vectors as a float32 .npy matrix, and the papers as JSON
    /// lines in the same order, for numpy, faiss or a vector database.
    Export(library::ExportArgs),
    /// Papers closest to a query sentence.
    Search(query::SearchArgs),
    /// Papers closest to a paper already in the library (the paper itself excluded).
    Similar(query::SimilarArgs),
    /// A related-work list from a draft abstract, seed papers, negative seeds and/or a query.
    Related(query::RelatedArgs),
    /// New papers (an arXiv listing: API, OAI-PMH, RSS; a file or URL)
    /// ranked against a library, a few of its collections or seed papers,
    /// each with the profile paper and sentence that made it rank.
    Feed(feed::FeedArgs),
    /// Retrieval quality (nDCG@10/20, Recall@100, MRR@10, MAP) per mode.
    Eval(eval::EvalArgs),
    /// Embed {"id","text"} JSON lines; write {"id","embedding"} lines in input order.
    Embed(embed::EmbedArgs),
    /// Show a library's manifest: model, size, index parameters.
    Info(library::InfoArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Check every file of a library (exit 1 when something is damaged);
    /// --repair rebuilds a damaged graph or keyword index from the stored vectors.
    Verify(library::VerifyArgs),
    #[cfg(feature = "serve")]
    /// HTTP API and search page over a library (TEI- and OpenAI-compatible
    /// embeddings too); follows the library's new generations as they are committed.
    Serve(serve::ServeArgs),
    /// Print a shell completion script, e.g. `papersim completions bash >
    /// ~/.local/share/bash-completion/completions/papersim`.
    Completions(scripting::CompletionsArgs),
    /// Print the man page (roff), or write one page per command with --out-dir.
    Man(scripting::ManArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAPERSIM_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return scripting::usage_error(e),
    };
    let json = scripting::wants_json(&matches);
    let command = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli.command,
        Err(e) => return scripting::usage_error(e),
    };
    let result = match command {
        Command::Build(a) => library::build(a),
        Command::Merge(a) => shard::merge(a),
        Command::Add(a) => library::add(a),
        Command::Remove(a) => library::remove(a),
        Command::Compact(a) => library::compact(a),
        Command::Export(a) => library::export(a),
        Command::Search(a) => query::search(a),
        Command::Similar(a) => query::similar(a),
        Command::Related(a) => query::related(a),
        Command::Feed(a) => feed::feed(a),
        Command::Eval(a) => eval::eval(a),
        Command::Embed(a) => embed::embed(a),
        Command::Info(a) => library::info(a),
        Command::Verify(a) => library::verify(a),
        Command::Bench(c) => bench::run(c),
        #[cfg(feature = "serve")]
        Command::Serve(a) => serve::serve(a),
        Command::Completions(a) => scripting::completions(a, Cli::command()),
        Command::Man(a) => scripting::man(a, Cli::command()),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`papersim search … | head`): nothing is
        // wrong, and there is nobody left to tell.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => scripting::report_error(&e, json),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
