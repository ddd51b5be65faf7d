//! For scripts: errors as JSON under `--json`, shell completions, the man page.
//!
//! With `--json`, everything a script reads is one JSON document on standard
//! output: the result, or, when the command fails, an error object
//!
//! ```json
//! {"error": {"kind": "query.unknown_paper", "message": "...", "file": null, "line": null}}
//! ```
//!
//! on one line, with exit status 2. Standard output is where the script
//! already reads the result, so it needs to read only one stream and can
//! tell the two apart by the `error` key and the exit status; the usual
//! `papersim: error: …` line still goes to standard error for people and logs.
//!
//! `kind` is the library's error enum and variant in snake case
//! (`corpus.bad_record`, `store.not_a_library`, `pipeline.unknown_ids`,
//! `query.unknown_paper`, …: the innermost papersim error, through the
//! wrappers that only pass another one on), `usage` for a command line that
//! cannot work, and `io` for a bare I/O error. `file` and `line` are set
//! when the error names them (a corpus record's `file:line`, a library or
//! manifest file) and `null` otherwise.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgMatches, Args};
use serde::Serialize;

use papersim::bench::index::BenchError;
use papersim::corpus::CorpusError;
use papersim::embed::EmbedError;
use papersim::eval::EvalError;
use papersim::index::IndexError;
use papersim::pipeline::PipelineError;
use papersim::query::QueryError;
use papersim::store::StoreError;
use papersim::threads::ThreadsError;

/// The exit status of every error.
pub const ERROR_EXIT: u8 = 2;

/// Whether the parsed command line asked for `--json` (on whichever
/// subcommand defines it).
pub fn wants_json(matches: &ArgMatches) -> bool {
    let here = matches
        .try_get_one::<bool>("json")
        .ok()
        .flatten()
        .copied()
        .unwrap_or(false);
    here || matches.subcommand().is_some_and(|(_, m)| wants_json(m))
}

/// What went wrong, as `--json` prints it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ErrorInfo {
    /// A stable name for the kind of error (see the module documentation).
    pub kind: String,
    /// The error and its causes, as the plain-text output words them.
    pub message: String,
    /// The file the error is about, when it names one.
    pub file: Option<PathBuf>,
    /// The 1-based line in `file`, when the error names one.
    pub line: Option<usize>,
}

/// Prints `e` for people on standard error and, under `--json`, as an
/// error object on standard output; the exit status is 2.
pub fn report_error(e: &anyhow::Error, json: bool) -> ExitCode {
    eprintln!("papersim: error: {e:#}");
    if json {
        print_error_json(&classify(e));
    }
    ExitCode::from(ERROR_EXIT)
}

fn print_error_json(info: &ErrorInfo) {
    #[derive(Serialize)]
    struct Doc<'a> {
        error: &'a ErrorInfo,
    }
    let doc = serde_json::to_string(&Doc { error: info }).unwrap_or_default();
    // Nothing more can be done if standard output is gone too.
    let _ = super::emit(&format!("{doc}\n"));
}

/// A command line clap could not parse. Help and version requests print
/// and exit as usual; a real error prints clap's message (and, when the
/// arguments hold `--json`, the error object) and exits with status 2.
pub fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let _ = e.print();
    // Before parsing there is no `--json` flag to ask, so look at the words.
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if json {
        let rendered = e.render().to_string();
        let first = rendered.lines().next().unwrap_or("");
        print_error_json(&ErrorInfo {
            kind: "usage".into(),
            message: first.strip_prefix("error: ").unwrap_or(first).to_string(),
            file: None,
            line: None,
        });
    }
    ExitCode::from(ERROR_EXIT)
}

/// Classifies `e` by the first papersim error in its chain.
pub fn classify(e: &anyhow::Error) -> ErrorInfo {
    let message = format!("{e:#}");
    for cause in e.chain() {
        if let Some((kind, file, line)) = papersim_error(cause) {
            return ErrorInfo {
                kind,
                message,
                file,
                line,
            };
        }
    }
    let io = e
        .chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some());
    ErrorInfo {
        kind: if io { "io" } else { "usage" }.into(),
        message,
        file: None,
        line: None,
    }
}

type Where = (String, Option<PathBuf>, Option<usize>);

/// The kind, file and line of a papersim error, unwrapping the variants
/// that only carry another stage's error.
fn papersim_error(e: &(dyn StdError + 'static)) -> Option<Where> {
    let file = |p: &Path| Some(p.to_path_buf());
    if let Some(e) = e.downcast_ref::<PipelineError>() {
        return Some(match e {
            PipelineError::Corpus(c) => corpus(c),
            PipelineError::Embed(c) => embed(c),
            PipelineError::Store(c) => store(c),
            PipelineError::UnknownIds { path, .. } | PipelineError::Empty { path, .. } => {
                (kind("pipeline", e), file(path), None)
            }
        });
    }
    if let Some(e) = e.downcast_ref::<EvalError>() {
        return Some(match e {
            EvalError::Query(q) => query(q),
            EvalError::Embed(q) => embed(q),
            EvalError::Io { path, .. } => (kind("eval", e), file(path), None),
            EvalError::Parse { path, line, .. } => (kind("eval", e), file(path), Some(*line)),
            EvalError::NoCorpus { dir } => (kind("eval", e), file(dir), None),
            EvalError::NoneInLibrary { .. } => (kind("eval", e), None, None),
        });
    }
    if let Some(e) = e.downcast_ref::<BenchError>() {
        return Some(match e {
            BenchError::Store(s) => store(s),
            BenchError::Npy { path, .. } => (kind("bench", e), file(path), None),
            BenchError::NoHnswRs => (kind("bench", e), None, None),
        });
    }
    #[cfg(feature = "serve")]
    if let Some(e) = e.downcast_ref::<papersim::serve::ServeError>() {
        use papersim::serve::ServeError;
        return Some(match e {
            ServeError::Store(s) => store(s),
            ServeError::Query(q) => query(q),
            ServeError::Key(k) => {
                use papersim::serve::auth::KeyError;
                match k {
                    KeyError::Read { path, .. } | KeyError::Empty { path } => {
                        (kind("serve", k), file(path), None)
                    }
                    KeyError::BadKey { path, line, .. } => {
                        (kind("serve", k), file(path), Some(*line))
                    }
                }
            }
            ServeError::Io { .. } | ServeError::Anonymous { .. } | ServeError::Origin { .. } => {
                (kind("serve", e), None, None)
            }
        });
    }
    if let Some(e) = e.downcast_ref::<QueryError>() {
        return Some(query(e));
    }
    if let Some(e) = e.downcast_ref::<StoreError>() {
        return Some(store(e));
    }
    if let Some(e) = e.downcast_ref::<CorpusError>() {
        return Some(corpus(e));
    }
    if let Some(e) = e.downcast_ref::<EmbedError>() {
        return Some(embed(e));
    }
    if let Some(e) = e.downcast_ref::<IndexError>() {
        return Some(index(e));
    }
    if e.downcast_ref::<ThreadsError>().is_some() {
        return Some(("threads.invalid".into(), None, None));
    }
    None
}

fn corpus(e: &CorpusError) -> Where {
    let (file, line) = match e {
        CorpusError::BadRecord(issue) => (Some(issue.path.clone()), Some(issue.line)),
        CorpusError::Listing { path, line, .. } => (Some(path.clone()), Some(*line)),
        CorpusError::Io { path, .. }
        | CorpusError::UnknownFormat { path, .. }
        | CorpusError::BadHeader { path, .. }
        | CorpusError::OaiError { path, .. }
        | CorpusError::Zotero { path, .. } => (Some(path.clone()), None),
        CorpusError::Fetch { url, .. } => (Some(PathBuf::from(url)), None),
        _ => (None, None),
    };
    (kind("corpus", e), file, line)
}

fn store(e: &StoreError) -> Where {
    let (file, line) = match e {
        StoreError::Index(i) => return index(i),
        StoreError::BadPaper { path, line, .. } => (Some(path.clone()), Some(*line)),
        StoreError::Io { path, .. }
        | StoreError::NotALibrary { path }
        | StoreError::BadManifest { path, .. }
        | StoreError::Corrupt { path, .. } => (Some(path.clone()), None),
        StoreError::Invalid(_) => (None, None),
    };
    (kind("store", e), file, line)
}

fn query(e: &QueryError) -> Where {
    match e {
        QueryError::Embed(x) => embed(x),
        QueryError::Index(x) => index(x),
        QueryError::Store(x) => store(x),
        QueryError::LibraryChanged { dir } => (kind("query", e), Some(dir.clone()), None),
        _ => (kind("query", e), None, None),
    }
}

fn embed(e: &EmbedError) -> Where {
    let file = match e {
        EmbedError::BadModelFile { path, .. } | EmbedError::Io { path, .. } => Some(path.clone()),
        _ => None,
    };
    (kind("embed", e), file, None)
}

fn index(e: &IndexError) -> Where {
    let IndexError::Keyword { path, .. } = e;
    (kind("index", e), Some(path.clone()), None)
}

/// `stage.variant_name`, the variant's name taken from its derived `Debug`
/// (`UnknownPaper { .. }` → `unknown_paper`), so that a new variant is
/// named without a list here to keep up to date.
fn kind(stage: &str, e: &dyn std::fmt::Debug) -> String {
    let debug = format!("{e:?}");
    let mut out = format!("{stage}.");
    for (i, c) in debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .enumerate()
    {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// `papersim completions SHELL`.
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// Writes the completion script of `shell` to standard output.
pub fn completions(a: CompletionsArgs, mut cmd: clap::Command) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "papersim", &mut script);
    super::emit(&String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}

/// `papersim man`.
#[derive(Args)]
pub struct ManArgs {
    /// Write papersim.1 and one page per command (papersim-search.1, …) into
    /// DIR instead of printing papersim.1 on standard output.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints the man page, or writes every page into `--out-dir`.
pub fn man(a: ManArgs, cmd: clap::Command) -> Result<ExitCode> {
    match &a.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(cmd, dir))
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            eprintln!("papersim: wrote man pages to {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            super::emit(&String::from_utf8_lossy(&page))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_innermost_variant_in_snake_case() {
        let e = anyhow::Error::new(PipelineError::Store(StoreError::NotALibrary {
            path: "lib".into(),
        }));
        let info = classify(&e);
        assert_eq!(info.kind, "store.not_a_library");
        assert_eq!(info.file, Some(PathBuf::from("lib")));
        let e = anyhow::Error::new(QueryError::EmptyQuery).context("searching");
        assert_eq!(classify(&e).kind, "query.empty_query");
        let e = anyhow::anyhow!("give --beir DIR");
        assert_eq!(classify(&e).kind, "usage");
    }
}
