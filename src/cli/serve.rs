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
    /// Any other address needs an API key (--api-key-file or
    /// PAPERSIM_API_KEY) or --allow-anonymous.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    addr: std::net::SocketAddr,
    /// API keys, one a line (`#` comments; at least 16 characters each, e.g.
    /// `openssl rand -hex 32`). Every route but /health and the page's own
    /// files then needs `Authorization: Bearer KEY`.
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// Listen on a non-loopback address without a key, on purpose (a
    /// trusted network); a warning is logged at start.
    #[arg(long)]
    allow_anonymous: bool,
    /// An origin whose web pages may call the API from a browser (CORS),
    /// e.g. https://lab.example.org; repeat it or separate by commas; `*`
    /// for any. None by default (the server's own page needs none).
    #[arg(long, value_name = "ORIGIN", value_delimiter = ',')]
    cors_origin: Vec<String>,
    /// Requests a second each client (API key, or address without keys)
    /// may send; past it, 429 with Retry-After. 0: no limit.
    #[arg(long, default_value_t = Limits::default().client_rate, value_name = "N")]
    client_rate: f64,
    /// Requests a client may send at once before --client-rate applies.
    #[arg(long, default_value_t = Limits::default().client_burst, value_name = "N")]
    client_burst: f64,
    /// Tokens merged into one embedding call while several clients are
    /// active: a small request then waits for one such call at most.
    #[arg(long, default_value_t = Limits::default().fair_batch_tokens, value_name = "N")]
    fair_batch_tokens: usize,
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
    /// Tokens that may wait in the embedding queue before requests get 429,
    /// shared evenly between the clients with work in it.
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
    anyhow::ensure!(
        a.client_rate.is_finite() && a.client_rate >= 0.0,
        "--client-rate must be a number of requests a second, 0 for no limit"
    );
    anyhow::ensure!(
        a.client_burst.is_finite() && a.client_burst >= 1.0,
        "--client-burst must be at least 1"
    );
    let access = serve::Access {
        keys: api_keys(a.api_key_file.as_deref())?,
        allow_anonymous: a.allow_anonymous,
        cors_origins: a.cors_origin.clone(),
    };
    let limits = Limits {
        max_inputs: a.max_inputs,
        max_body_bytes: a.max_body_bytes,
        max_k: a.max_k,
        timeout: Duration::from_secs_f64(a.timeout),
        max_queued_tokens: a.max_queued_tokens,
        batch_tokens: a.batch_tokens,
        fair_batch_tokens: a.fair_batch_tokens,
        client_rate: a.client_rate,
        client_burst: a.client_burst,
        ..Limits::default()
    };
    let opts = ServeOptions {
        library: a.library.clone(),
        addr: a.addr,
        model: a.model.session(),
        limits,
        poll: Duration::from_millis(a.poll_ms.max(10)),
        access,
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

/// The keys of `--api-key-file` and `PAPERSIM_API_KEY` together (an
/// environment variable, not a flag: a flag's value shows in process
/// lists). Neither is ever printed.
fn api_keys(file: Option<&std::path::Path>) -> Result<serve::auth::ApiKeys> {
    use serve::auth;
    let mut keys = Vec::new();
    if let Some(path) = file {
        let (from_file, shared) = auth::read_key_file(path).map_err(serve::ServeError::from)?;
        if shared {
            tracing::warn!(
                "{}: other users can read this key file; `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
        keys.extend(from_file);
    }
    if let Some(key) = std::env::var_os("PAPERSIM_API_KEY") {
        let key = key
            .into_string()
            .map_err(|_| anyhow::anyhow!("PAPERSIM_API_KEY: not valid UTF-8"))?;
        let key = key.trim();
        // Set but empty is a mistake to point out, not "no key".
        auth::check_key(key).map_err(|reason| anyhow::anyhow!("PAPERSIM_API_KEY: {reason}"))?;
        keys.push(key.to_string());
    }
    Ok(auth::ApiKeys::new(keys.iter().map(String::as_str)))
}
