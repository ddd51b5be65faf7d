//! The command groups of the `papersim` binary: each file holds its clap
//! argument structs beside the handler that turns them into library calls.
//! Nothing here decides anything a library user would also need.

pub mod bench;
pub mod embed;
pub mod eval;
pub mod feed;
pub mod library;
pub mod query;
pub mod scripting;
#[cfg(feature = "serve")]
pub mod serve;
pub mod shard;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use papersim::corpus;
use papersim::embed::{DeviceSpec, Embedder, ModelSource, Precision};
use papersim::pipeline::Progress;

/// Which model, where it runs and at what precision: shared by every
/// command that embeds.
#[derive(Args)]
pub struct ModelArgs {
    /// Model: a sentence-transformers directory, or a hub id ORG/NAME resolved
    /// from the local Hugging Face cache. Default: models/all-MiniLM-L6-v2 when
    /// present, else sentence-transformers/all-MiniLM-L6-v2. For search, the
    /// model recorded in the library.
    #[arg(long, value_name = "PATH|ORG/NAME")]
    pub model: Option<String>,
    /// Where the model runs: cpu, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: DeviceSpec,
    /// Forward-pass precision: f32 (default); int8 (CPU: 8-bit dense
    /// layers, the fastest on CPUs with VNNI; cosine >= 0.998 to f32 on the
    /// reference texts); bf16 (bfloat16 dense layers, cosine >= 0.9999;
    /// faster than f32 only where the CPU's bf16 dot product is: see
    /// docs/performance.md); f16 (CUDA only). A library records it and
    /// queries use it; naming another one for a query is an error.
    #[arg(long, value_name = "f32|int8|bf16|f16")]
    pub precision: Option<Precision>,
    /// One of the model's prompts (config_sentence_transformers.json) to
    /// put in front of every text, instead of the default for the command:
    /// the "query" prompt for search, related and eval's queries; the
    /// "document" (or "passage", "corpus") prompt for build and shard, which
    /// the library records and add must keep; default_prompt_name's for embed.
    #[arg(long, value_name = "NAME")]
    pub prompt: Option<String>,
}

impl ModelArgs {
    /// The model named by --model, or the default one.
    pub fn source(&self) -> ModelSource {
        model_source(self.model.as_deref())
    }

    /// Loads the model for a new library (build, embed, eval's first build).
    pub fn load(&self) -> Result<Embedder> {
        let source = self.source();
        let files = source.resolve()?;
        let spinner = spinner(&format!("loading model {source}"));
        let mut embedder = Embedder::load(&files, self.device, self.precision.unwrap_or_default())?;
        spinner.finish_and_clear();
        if let Some(name) = &self.prompt {
            embedder.override_prompt(name)?;
        }
        Ok(embedder)
    }

    /// What a query session needs to know about the model to use.
    pub fn session(&self) -> papersim::query::ModelChoice {
        papersim::query::ModelChoice {
            source: self.model.as_deref().map(ModelSource::parse),
            device: self.device,
            precision: self.precision,
            prompt: self.prompt.clone(),
        }
    }
}

/// `--model` as given, or the default model.
pub fn model_source(model: Option<&str>) -> ModelSource {
    model
        .map(ModelSource::parse)
        .unwrap_or_else(ModelSource::default_source)
}

/// Writes `text` to standard output. A closed pipe (`papersim … | head`)
/// surfaces as an `io::ErrorKind::BrokenPipe` error, which `main` ends on
/// quietly instead of printing it.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// `println!` that does not panic on a closed pipe (see [`emit`]).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::emit(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// A JSON value, pretty-printed, on standard output.
pub fn emit_json(value: &impl serde::Serialize) -> Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// A spinner on standard error while `msg` runs; hidden when stderr is not
/// a terminal, so logs and pipes stay clean.
pub fn spinner(msg: &str) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A bar counting embedded papers, with rate and ETA.
pub fn progress_bar(len: u64) -> ProgressBar {
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

/// Runs `work` with a progress bar fed by the pipeline's progress events.
pub fn with_pipeline_bar<T>(work: impl FnOnce(&dyn Fn(Progress)) -> T) -> T {
    let bar = progress_bar(0);
    let out = work(&|p| match p {
        Progress::Read(n) => bar.set_length(n as u64),
        Progress::Embedded(n) => bar.inc(n as u64),
        Progress::Stage(s) => bar.set_message(s.to_string()),
    });
    bar.finish_and_clear();
    out
}

/// Reports the first skipped records on standard error, and how many more.
pub fn print_issues(issues: &[corpus::Issue]) {
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

/// Exit status 1 when a query found nothing (grep's convention), else 0.
pub fn found(any: bool) -> ExitCode {
    if any {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
