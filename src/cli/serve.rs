//! `serve`: the HTTP API and search page over a library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::ModelArgs;
use papersim::serve::{self, Limits, ServeOptions};

#[derive(Args)]
pub struct ServeArgs {
    /// Library directory.
    #[arg(long, value_name = "DIR", env = "PAPERSIM_LIBRARY")]
    library: PathBuf,
    /// Address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    addr: std::net::SocketAddr,
    /// Texts per embedding request.
    #[arg(long, default_value_t = Limits::default().max_inputs)]
    max_inputs: usize,
    /// Bytes per request body.
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Results per query.
    #[arg(long, default_value_t = Limits::default().max_k)]
    max_k: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = Limits::default().timeout.as_secs_f64())]
    timeout: f64,
    /// Tokens that may wait in the embedding queue before requests get 429.
    #[arg(long, default_value_t = Limits::default().max_queued_tokens)]
    max_queued_tokens: usize,
    /// Tokens merged into one embedding call.
    #[arg(long, default_value_t = Limits::default().batch_tokens)]
    batch_tokens: usize,
    /// How often to check the library for a new generation, in milliseconds.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    #[command(flatten)]
    model: ModelArgs,
    /// Startup and shutdown as JSON lines on standard output:
    /// {"event":"listening","addr":"HOST:PORT","url":...,"library":...} and
    /// {"event":"stopped"}.
    #[arg(long)]
    json: bool,
}

pub fn serve(a: ServeArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        a.timeout.is_finite() && a.timeout > 0.0,
        "--timeout must be a positive number of seconds"
    );
    let limits = Limits {
        max_inputs: a.max_inputs,
        max_body_bytes: a.max_body_bytes,
        max_k: a.max_k,
        timeout: Duration::from_secs_f64(a.timeout),
        max_queued_tokens: a.max_queued_tokens,
        batch_tokens: a.batch_tokens,
        ..Limits::default()
    };
    let opts = ServeOptions {
        library: a.library.clone(),
        addr: a.addr,
        model: a.model.session(),
        limits,
        poll: Duration::from_millis(a.poll_ms.max(10)),
    };
    serve::run(opts, &|addr| {
        // Scripts and tests read this line to learn the port. A closed
        // stdout must not stop the server, so the result is not checked.
        let line = if a.json {
            /// The startup event; a struct so that `event` comes first.
            #[derive(serde::Serialize)]
            struct Listening<'a> {
                event: &'static str,
                addr: String,
                url: String,
                library: &'a std::path::Path,
            }
            serde_json::to_string(&Listening {
                event: "listening",
                addr: addr.to_string(),
                url: format!("http://{addr}"),
                library: &a.library,
            })
            .unwrap_or_default()
        } else {
            format!("papersim: serving {} on http://{addr}", a.library.display())
        };
        let _ = super::emit(&format!("{line}\n"));
    })?;
    if a.json {
        let _ = super::emit("{\"event\":\"stopped\"}\n");
    } else {
        eprintln!("papersim: stopped");
    }
    Ok(ExitCode::SUCCESS)
}
