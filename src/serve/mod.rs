//! `papersim serve`: an HTTP API over a library (axum + tokio), speaking
//! text-embeddings-inference's `POST /`, `/embed`, `/similarity`,
//! `/tokenize` and `/info`, and OpenAI's `/v1/embeddings` and `/v1/models`,
//! besides its own search endpoints, and a search page at `GET /`.
//!
//! Threads: tokio's workers parse requests and route them; one queue worker
//! ([`queue`]) owns the model's compute and merges concurrent embeddings
//! into shared forwards; index work (ranking, BM25) runs on tokio's blocking
//! pool behind a semaphore sized to the cores. The library lives behind an
//! `Arc` that a watcher swaps when `manifest.json` names a new generation;
//! a request holds the `Arc` it started with, so a swap never fails it.

mod access;
mod api;
pub mod auth;
pub mod error;
pub mod fair;
pub mod metrics;
pub mod queue;
pub mod request;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{Notify, Semaphore};

use crate::embed::Embedder;
use crate::query::{ModelChoice, Needs, QueryError, Session};
use crate::store::{self, Library, StoreError};
use error::ApiError;
use metrics::Metrics;
use queue::{Queue, QueueLimits};

/// What can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The library could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session could not be opened: model missing or not the library's.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A key file or `PAPERSIM_API_KEY` cannot be used.
    #[error(transparent)]
    Key(#[from] auth::KeyError),
    /// A non-loopback address without a key and without `allow_anonymous`.
    #[error(
        "refusing to listen on {addr} without an API key: anyone who can reach it could read the \
         library and spend its CPU. Put keys in a file (one a line, e.g. \
         `openssl rand -hex 32 > keys.txt; chmod 600 keys.txt`) and pass --api-key-file keys.txt, \
         or set PAPERSIM_API_KEY; pass --allow-anonymous to serve this network without keys on purpose, \
         or listen on 127.0.0.1"
    )]
    Anonymous {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// A `--cors-origin` that is not an origin.
    #[error("--cors-origin {origin:?}: not an origin; give scheme://host[:port] without a path (e.g. https://lab.example.org), or * for any")]
    Origin {
        /// What was given.
        origin: String,
    },
    /// A socket or runtime operation failed (binding the address, serving,
    /// starting tokio or the queue worker).
    #[error("{what}: {source}")]
    Io {
        /// What was being done, e.g. `binding 127.0.0.1:8080`.
        what: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// Request limits; each is documented in the README's "Serving" section.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Limits {
    /// Bytes per request body (413 past it).
    pub max_body_bytes: usize,
    /// Texts per embedding request (413 past it).
    pub max_inputs: usize,
    /// Results per query (422 past it).
    pub max_k: usize,
    /// Per-request deadline (503 when it passes).
    #[serde(serialize_with = "as_secs")]
    pub timeout: Duration,
    /// Tokens that may wait in the embedding queue (429 past it).
    pub max_queued_tokens: usize,
    /// Tokens merged into one embedding call.
    pub batch_tokens: usize,
    /// Index requests (search, similar, related) waiting for a core (429 past it).
    pub max_waiting_queries: usize,
    /// Tokens merged into one embedding call while several clients are
    /// active: a request waits for at most one such call of others' work.
    pub fair_batch_tokens: usize,
    /// Requests a second per client (key or address); 0: no limit.
    pub client_rate: f64,
    /// Requests a client may send at once before `client_rate` applies.
    pub client_burst: f64,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 2 << 20,
            max_inputs: 128,
            max_k: 200,
            timeout: Duration::from_secs(30),
            // ~15 s of work at the 2-core machine's ~4,500 tokens/s: past
            // that, waiting clients would mostly hit the timeout anyway.
            max_queued_tokens: 65_536,
            // Two forwards of the embedder's own 4,096-token budget: one per
            // data-parallel worker on a 2-core machine.
            batch_tokens: 8_192,
            max_waiting_queries: 256,
            // One abstract (~250 tokens) is ~50 ms of the 2-core machine's
            // forward: measured as fast per token as 4,096-token calls.
            fair_batch_tokens: 256,
            client_rate: 0.0,
            client_burst: 20.0,
        }
    }
}

/// What [`run`] serves, where, and under which limits.
pub struct ServeOptions {
    /// The library directory; new generations committed to it are picked up.
    pub library: PathBuf,
    /// The address to listen on.
    pub addr: SocketAddr,
    /// The model (None: the library's), device and precision, checked
    /// against the library as for any query.
    pub model: ModelChoice,
    /// Request limits.
    pub limits: Limits,
    /// How often manifest.json is checked for a new generation.
    pub poll: Duration,
    /// Who may use the server, and from which web pages.
    pub access: Access,
}

/// Who may use the server: keys, whether a non-loopback address may go
/// without one, and the origins of web pages allowed to call it.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The API keys; none: no authentication (loopback, or
    /// `allow_anonymous`).
    pub keys: auth::ApiKeys,
    /// Serve a non-loopback address without keys, on purpose.
    pub allow_anonymous: bool,
    /// Origins (`https://host[:port]`, or `*`) whose pages may call the
    /// API (CORS); none by default.
    pub cors_origins: Vec<String>,
}

/// Refuses a non-loopback address without keys unless anonymous access
/// was asked for; Ok(true) when the server is open to a network on
/// purpose (worth a warning).
pub fn check_exposure(addr: SocketAddr, access: &Access) -> Result<bool, ServeError> {
    if addr.ip().to_canonical().is_loopback() || !access.keys.is_empty() {
        return Ok(false);
    }
    if access.allow_anonymous {
        return Ok(true);
    }
    Err(ServeError::Anonymous { addr })
}

pub(crate) struct AppState {
    library: RwLock<Arc<Library>>,
    access: Access,
    /// Each client's request-rate bucket (when `client_rate` is set).
    rates: std::sync::Mutex<std::collections::HashMap<fair::Client, fair::Bucket>>,
    embedder: Arc<Embedder>,
    queue: Queue,
    metrics: Arc<Metrics>,
    limits: Limits,
    /// Permits for index work on the blocking pool: one per core each way.
    cores: Semaphore,
    waiting: AtomicUsize,
    started: Instant,
    /// The model's name as clients see it (OpenAI's `model`, TEI's
    /// `model_id`): see [`crate::embed::model_name`].
    model_name: String,
}

type Shared = Arc<AppState>;

impl AppState {
    /// The library as of now; requests keep this snapshot to the end.
    fn library(&self) -> Arc<Library> {
        self.library
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_library(&self, lib: Library) {
        note_library(&self.metrics, &lib);
        *self.library.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(lib);
    }

    /// Runs CPU-bound `f` on the blocking pool once a core is free; 429 when
    /// too many are already waiting.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.limits.max_waiting_queries {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            self.metrics.refuse(fair::Refusal::IndexQueueFull);
            return Err(ApiError::overloaded());
        }
        let permit = self.cores.acquire().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let _permit = permit.map_err(|_| ApiError::internal("shutting down"))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ApiError::internal(format!("worker failed: {e}")))
    }
}

fn note_library(m: &Metrics, lib: &Library) {
    m.generation
        .store(lib.manifest().generation, Ordering::Relaxed);
    m.papers.store(lib.len() as u64, Ordering::Relaxed);
}

/// Serves `opts.library` until SIGINT or SIGTERM; `on_ready` gets the bound
/// address (useful with port 0) once the server accepts connections.
pub fn run(opts: ServeOptions, on_ready: &dyn Fn(SocketAddr)) -> Result<(), ServeError> {
    // Before the model is loaded: a refusal should be immediate.
    if check_exposure(opts.addr, &opts.access)? {
        tracing::warn!(
            "listening on {} without an API key (--allow-anonymous): anyone who can reach this address can use the server",
            opts.addr
        );
    }
    for origin in &opts.access.cors_origins {
        if !access::is_origin(origin) {
            return Err(ServeError::Origin {
                origin: origin.clone(),
            });
        }
    }
    let needs = Needs {
        model: true,
        keyword: false,
    };
    let (lib, embedder) = Session::open(&opts.library, &opts.model, needs)?.into_parts();
    let embedder = Arc::new(embedder.ok_or(QueryError::NoModel)?);
    let metrics = Arc::new(Metrics::default());
    let (queue, worker) = Queue::start(
        embedder.clone(),
        QueueLimits {
            batch_tokens: opts.limits.batch_tokens,
            fair_batch_tokens: opts.limits.fair_batch_tokens,
            max_queued_tokens: opts.limits.max_queued_tokens,
        },
        metrics.clone(),
    )
    .map_err(io_err("starting the embedding worker"))?;
    let cores = crate::threads::threads(None).unwrap_or_else(|_| crate::threads::cores());
    note_library(&metrics, &lib);
    let model_name = {
        let m = &lib.manifest().model;
        crate::embed::model_name(&m.id, &m.weights_sha256)
    };
    let state = Arc::new(AppState {
        library: RwLock::new(Arc::new(lib)),
        access: opts.access.clone(),
        rates: std::sync::Mutex::default(),
        embedder,
        queue: queue.clone(),
        metrics,
        limits: opts.limits.clone(),
        cores: Semaphore::new(cores),
        waiting: AtomicUsize::new(0),
        started: Instant::now(),
        model_name,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the async runtime"))?;
    let result = runtime.block_on(serve(state, &opts, on_ready));
    // In-flight requests are done (or the grace period passed): let the
    // worker finish what is queued, then stop it.
    queue.close();
    let _ = worker.join();
    result
}

async fn serve(
    state: Shared,
    opts: &ServeOptions,
    on_ready: &dyn Fn(SocketAddr),
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(io_err(format!("binding {}", opts.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(io_err("reading the bound address"))?;
    tokio::spawn(watch_library(
        state.clone(),
        opts.library.clone(),
        opts.poll,
    ));
    let app = router(state.clone());
    let stopping = Arc::new(Notify::new());
    let notify = stopping.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            notify.notify_one();
        })
        .await
    });
    on_ready(addr);
    // Graceful shutdown waits for every open connection; a client that
    // never finishes must not hold the process forever.
    let grace = state.limits.timeout + Duration::from_secs(5);
    tokio::select! {
        r = &mut server => {
            r.map_err(|e| ServeError::Io { what: "server task".into(), source: std::io::Error::other(e) })?
                .map_err(io_err("serving"))?;
        }
        _ = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("grace period over; closing remaining connections");
            server.abort();
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(api::page_index).post(api::tei_root))
        .route("/app.js", get(api::page_js))
        .route("/style.css", get(api::page_css))
        .route("/health", get(api::health))
        .route("/info", get(api::info))
        .route("/metrics", get(api::metrics))
        .route("/search", post(api::search))
        .route("/papers/{id}", get(api::paper))
        .route("/papers/{id}/similar", get(api::similar))
        .route("/related", post(api::related))
        .route("/embed", post(api::embed_tei))
        .route("/similarity", post(api::similarity_tei))
        .route("/tokenize", post(api::tokenize_tei))
        .route("/v1/models", get(api::models_openai))
        // A catch-all: hub ids have a slash, which clients may or may not
        // percent-encode.
        .route("/v1/models/{*id}", get(api::model_openai))
        .route("/v1/embeddings", post(api::embed_openai))
        .fallback(api::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), access::gate))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .with_state(state)
}

/// Per-request deadline and metrics (count and latency per route).
async fn track(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    s.metrics.start_request();
    let started = Instant::now();
    let resp = match tokio::time::timeout(s.limits.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            s.metrics.timeouts.fetch_add(1, Ordering::Relaxed);
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "Timeout",
                format!(
                    "the request took longer than {} s",
                    s.limits.timeout.as_secs_f64()
                ),
            )
            .into_response()
        }
    };
    s.metrics.end_request(
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// Polls `manifest.json`; when it names another generation, opens that
/// library beside the served one and swaps it in. A generation that fails
/// to open (or was embedded by another model) is logged and skipped; the old
/// one keeps serving until the manifest changes again.
async fn watch_library(state: Shared, dir: PathBuf, poll: Duration) {
    let mut skipped: Option<(u64, u32)> = None;
    loop {
        tokio::time::sleep(poll).await;
        let d = dir.clone();
        let Ok(Ok(m)) = tokio::task::spawn_blocking(move || store::read_manifest(&d)).await else {
            // Mid-rebuild or removed: keep serving what we have.
            continue;
        };
        let current = state.library().manifest().clone();
        let key = (m.generation, m.checksum);
        if (current.generation, current.checksum) == key || skipped == Some(key) {
            continue;
        }
        if m.model.weights_sha256 != state.embedder.info().weights_sha256 {
            tracing::error!(
                "{}: generation {} was embedded by another model ({}); not switching (restart the server)",
                dir.display(),
                m.generation,
                m.model.id
            );
            state.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
            skipped = Some(key);
            continue;
        }
        match open_blocking(&dir).await {
            Ok(lib) => {
                tracing::info!(
                    "{}: now serving generation {} ({} papers)",
                    dir.display(),
                    lib.manifest().generation,
                    lib.len()
                );
                state.set_library(lib);
                state.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                skipped = None;
            }
            Err(e) => {
                tracing::warn!(
                    "{}: generation {} not opened ({e}); still serving generation {}",
                    dir.display(),
                    m.generation,
                    current.generation
                );
                state.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                skipped = Some(key);
            }
        }
    }
}

async fn open_blocking(dir: &Path) -> Result<Library, String> {
    let d = dir.to_path_buf();
    match tokio::task::spawn_blocking(move || Library::open(&d)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
