//! Request handlers: papersim's own endpoints, TEI's `/embed`, OpenAI's
//! `/v1/embeddings`, and the page.

use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, JsonBody};
use super::Shared;
use crate::query::{self, Filter, Mode, Options, RelatedRequest, Strategy};
use crate::report;

/// Admission weight of a related-work task in the embedding queue: a draft
/// plus the explanation sentences of a result list, roughly.
const RELATED_COST_TOKENS: usize = 4096;

pub async fn page_index() -> Html<&'static str> {
    Html(include_str!("page/index.html"))
}

pub async fn page_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("page/app.js"),
    )
        .into_response()
}

pub async fn page_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("page/style.css"),
    )
        .into_response()
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("no route {}", uri.path()),
    )
}

pub async fn health(State(s): State<Shared>) -> Json<Value> {
    let lib = s.library();
    Json(json!({"status": "ok", "generation": lib.manifest().generation, "papers": lib.len()}))
}

pub async fn info(State(s): State<Shared>) -> Json<Value> {
    let lib = s.library();
    let m = lib.manifest();
    Json(json!({
        "library": lib.dir(),
        "generation": m.generation,
        "papers": lib.len(),
        "model": m.model,
        // Library vectors and the model both run in f32.
        "precision": "f32",
        "device": s.embedder.device_name(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": s.started.elapsed().as_secs_f64(),
        "limits": s.limits,
        "manifest": m,
    }))
}

pub async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    since: Option<String>,
    until: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
}

impl Filters {
    fn to_filter(&self, prefix: &str) -> Result<Filter, ApiError> {
        let bound = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(query::parse_date_bound)
                .transpose()
                .map_err(|e| ApiError::field(format!("{prefix}{name}"), e))
        };
        Ok(Filter {
            since: bound("since", &self.since)?,
            until: bound("until", &self.until)?,
            categories: self.categories.clone(),
        })
    }
}

/// Validated query options from a request's k, mode and filters.
fn options(
    s: &Shared,
    k: usize,
    mode: Option<&str>,
    filters: &Filters,
    filter_prefix: &str,
) -> Result<Options, ApiError> {
    if k == 0 || k > s.limits.max_k {
        return Err(ApiError::field(
            "k",
            format!("k must be between 1 and {}", s.limits.max_k),
        ));
    }
    let mode = match mode {
        None => query::DEFAULT_MODE,
        Some(m) => m.parse::<Mode>().map_err(|e| ApiError::field("mode", e))?,
    };
    Ok(Options {
        k,
        mode,
        strategy: Strategy::Auto,
        filter: filters.to_filter(filter_prefix)?,
    })
}

fn default_k() -> usize {
    10
}

fn default_related_k() -> usize {
    20
}

fn yes() -> bool {
    true
}

/// Embeds `texts` through the shared queue. Returns one vector per text and
/// the tokens they were embedded with. `truncate` false: a text over the
/// model's window is a 413 instead of being cut.
async fn embed_texts(
    s: &Shared,
    texts: Vec<String>,
    truncate: bool,
    field: &str,
) -> Result<(Vec<Vec<f32>>, usize), ApiError> {
    let e = s.embedder.clone();
    let (texts, counts) = s
        .blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let counts = e.token_counts(&refs);
            (texts, counts)
        })
        .await?;
    let counts = counts
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Tokenizer", e.to_string()))?;
    if !truncate {
        if let Some(i) = counts.iter().position(|&(_, cut)| cut) {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Validation",
                format!(
                    "input {i} is longer than the model's {} tokens; shorten it or send \"truncate\": true",
                    s.embedder.info().max_seq_length
                ),
            )
            .with_field(format!("{field}[{i}]")));
        }
    }
    let tokens: usize = counts.iter().map(|&(n, _)| n).sum();
    let rx = s.queue.embed(texts, tokens).map_err(|_| {
        s.metrics.rejected_overload.fetch_add(1, Ordering::Relaxed);
        ApiError::overloaded()
    })?;
    let rows = rx
        .await
        .map_err(|_| ApiError::internal("the embedding worker failed"))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let dim = s.embedder.info().dim;
    Ok((
        rows.chunks_exact(dim).map(<[f32]>::to_vec).collect(),
        tokens,
    ))
}

#[derive(Debug, Deserialize)]
pub struct SearchRequest {
    query: String,
    #[serde(default = "default_k")]
    k: usize,
    mode: Option<String>,
    #[serde(default)]
    filters: Filters,
    /// Explain each result (the paper's sentence closest to the query, shared
    /// terms). Costs a forward pass over the results' sentences, on the
    /// embedding worker.
    #[serde(default)]
    why: bool,
}

pub async fn search(
    State(s): State<Shared>,
    JsonBody(req): JsonBody<SearchRequest>,
) -> Result<Json<Value>, ApiError> {
    let opts = options(&s, req.k, req.mode.as_deref(), &req.filters, "filters.")?;
    if req.query.trim().is_empty() {
        return Err(ApiError::field("query", "the query is empty"));
    }
    let lib = s.library();
    let vector = if opts.mode == Mode::Keyword {
        None
    } else {
        let (mut v, _) = embed_texts(&s, vec![req.query.clone()], true, "query").await?;
        v.pop()
    };
    let text = req.query.clone();
    let o = opts.clone();
    let l = lib.clone();
    let mut hits = s
        .blocking(move || query::search_embedded(&l, vector.as_deref(), &text, &o))
        .await??;
    if req.why && !hits.is_empty() {
        let (l, text) = (lib.clone(), req.query.clone());
        let rx = s
            .queue
            .task(RELATED_COST_TOKENS, move |e| {
                query::explain_query(&l, e, &text, &mut hits).map(|()| hits)
            })
            .map_err(|_| {
                s.metrics.rejected_overload.fetch_add(1, Ordering::Relaxed);
                ApiError::overloaded()
            })?;
        hits = rx
            .await
            .map_err(|_| ApiError::internal("the embedding worker failed"))??;
    }
    Ok(Json(json!({
        "query": req.query,
        "mode": opts.mode,
        "generation": lib.manifest().generation,
        "results": hits,
    })))
}

pub async fn paper(State(s): State<Shared>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let lib = s.library();
    let row = query::row_of(&lib, &id)?;
    Ok(Json(&lib.papers()[row]).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SimilarParams {
    #[serde(default = "default_k")]
    k: usize,
    mode: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Comma-separated.
    category: Option<String>,
}

pub async fn similar(
    State(s): State<Shared>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = Query::<SimilarParams>::try_from_uri(&uri).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation",
            e.body_text(),
        )
    })?;
    let filters = Filters {
        since: p.since,
        until: p.until,
        categories: p
            .category
            .iter()
            .flat_map(|c| c.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect(),
    };
    let opts = options(&s, p.k, p.mode.as_deref(), &filters, "")?;
    let lib = s.library();
    let l = lib.clone();
    let pid = id.clone();
    let hits = s
        .blocking(move || query::similar(&l, &pid, &opts))
        .await??;
    Ok(Json(json!({
        "id": id,
        "generation": lib.manifest().generation,
        "results": hits,
    })))
}

#[derive(Debug, Deserialize)]
pub struct RelatedBody {
    #[serde(rename = "abstract")]
    draft: Option<String>,
    query: Option<String>,
    #[serde(default)]
    seeds: Vec<String>,
    #[serde(default)]
    negatives: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default = "default_related_k")]
    k: usize,
    #[serde(default)]
    diversity: f32,
    #[serde(default)]
    filters: Filters,
    format: Option<String>,
    mode: Option<String>,
    /// Explanations per result (the slow part).
    #[serde(default = "yes")]
    why: bool,
}

pub async fn related(
    State(s): State<Shared>,
    JsonBody(b): JsonBody<RelatedBody>,
) -> Result<Json<Value>, ApiError> {
    let opts = options(&s, b.k, b.mode.as_deref(), &b.filters, "filters.")?;
    if !(0.0..=1.0).contains(&b.diversity) {
        return Err(ApiError::field(
            "diversity",
            "diversity must be between 0 and 1",
        ));
    }
    let format = match b.format.as_deref() {
        None => report::Format::Json,
        Some(f) => f
            .parse::<report::Format>()
            .map_err(|e| ApiError::field("format", e))?,
    };
    let req = RelatedRequest {
        draft: b.draft,
        seeds: b.seeds,
        negatives: b.negatives,
        query: b.query,
        exclude: b.exclude,
        diversity: b.diversity,
        explain: b.why,
    };
    let has_text = [&req.draft, &req.query]
        .iter()
        .any(|t| t.as_deref().is_some_and(|t| !t.trim().is_empty()));
    let needs_model = req.explain || (has_text && opts.mode != Mode::Keyword);
    let lib = s.library();
    let (l, o, r) = (lib.clone(), opts.clone(), req.clone());
    let hits = if needs_model {
        // Drafts and explanations are embedded by the queue's worker, in
        // turn with the merged embedding batches.
        let rx = s
            .queue
            .task(RELATED_COST_TOKENS, move |e| {
                query::related(&l, Some(e), &r, &o)
            })
            .map_err(|_| {
                s.metrics.rejected_overload.fetch_add(1, Ordering::Relaxed);
                ApiError::overloaded()
            })?;
        rx.await
            .map_err(|_| ApiError::internal("the embedding worker failed"))??
    } else {
        s.blocking(move || query::related(&l, None, &r, &o))
            .await??
    };
    let text = match format {
        report::Format::Json => None,
        f => {
            let q = json!({"abstract": req.draft, "seeds": req.seeds, "query": req.query});
            Some(report::render(f, &q, &hits, 100))
        }
    };
    Ok(Json(json!({
        "generation": lib.manifest().generation,
        "results": hits,
        "text": text,
    })))
}

/// One text or a list, as both TEI and OpenAI accept; OpenAI's token-id
/// forms are recognised only to refuse them clearly.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Inputs {
    One(String),
    Many(Vec<String>),
    // Parsed only to tell token ids from a type error; never read.
    TokenIds(#[allow(dead_code)] Vec<u32>),
    TokenIdLists(#[allow(dead_code)] Vec<Vec<u32>>),
}

impl Inputs {
    fn into_texts(self, s: &Shared, field: &str) -> Result<Vec<String>, ApiError> {
        let texts = match self {
            Inputs::One(t) => vec![t],
            Inputs::Many(v) => v,
            Inputs::TokenIds(_) | Inputs::TokenIdLists(_) => {
                return Err(ApiError::field(
                    field,
                    "token-id inputs are not supported; send strings",
                ))
            }
        };
        if texts.is_empty() {
            return Err(
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Empty", "no inputs")
                    .with_field(field),
            );
        }
        if texts.len() > s.limits.max_inputs {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Validation",
                format!(
                    "{} inputs; at most {} per request",
                    texts.len(),
                    s.limits.max_inputs
                ),
            )
            .with_field(field));
        }
        Ok(texts)
    }
}

/// text-embeddings-inference's `POST /embed`.
#[derive(Debug, Deserialize)]
pub struct TeiRequest {
    inputs: Inputs,
    #[serde(default = "yes")]
    normalize: bool,
    /// TEI's default is false unless its server runs with --auto-truncate;
    /// papersim truncates by default, as sentence-transformers and
    /// `papersim embed` do.
    truncate: Option<bool>,
    truncation_direction: Option<String>,
    prompt_name: Option<String>,
    dimensions: Option<usize>,
}

pub async fn embed_tei(
    State(s): State<Shared>,
    JsonBody(req): JsonBody<TeiRequest>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    if !req.normalize {
        return Err(ApiError::field(
            "normalize",
            "papersim's vectors are always L2-normalised; normalize: false is not supported",
        ));
    }
    if let Some(d) = req
        .truncation_direction
        .as_deref()
        .filter(|d| !d.eq_ignore_ascii_case("right"))
    {
        return Err(ApiError::field(
            "truncation_direction",
            format!("{d:?}: only \"Right\" is supported"),
        ));
    }
    if req.prompt_name.is_some() {
        return Err(ApiError::field("prompt_name", "the model has no prompts"));
    }
    check_dimensions(&s, req.dimensions)?;
    let texts = req.inputs.into_texts(&s, "inputs")?;
    let (vectors, _) = embed_texts(&s, texts, req.truncate.unwrap_or(true), "inputs").await?;
    Ok(Json(vectors))
}

fn check_dimensions(s: &Shared, dimensions: Option<usize>) -> Result<(), ApiError> {
    let dim = s.embedder.info().dim;
    match dimensions {
        Some(d) if d != dim => Err(ApiError::field(
            "dimensions",
            format!("the model gives {dim} dimensions; {d} is not supported"),
        )),
        _ => Ok(()),
    }
}

/// OpenAI's `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
pub struct OpenAiRequest {
    input: Inputs,
    /// Accepted whatever it names: the server has one model.
    #[allow(dead_code)]
    model: Option<String>,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
    #[allow(dead_code)]
    user: Option<String>,
}

pub async fn embed_openai(
    State(s): State<Shared>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let result = match body {
        Ok(body) => openai(&s, &body).await,
        Err(e) => Err(super::error::body_error(e)),
    };
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.openai().into_response(),
    }
}

async fn openai(s: &Shared, body: &[u8]) -> Result<Value, ApiError> {
    let req: OpenAiRequest = super::error::parse_json(body)?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        // The official Python client asks for base64 by default.
        Some("base64") => true,
        Some(f) => {
            return Err(ApiError::field(
                "encoding_format",
                format!("{f:?}: expected \"float\" or \"base64\""),
            ))
        }
    };
    check_dimensions(s, req.dimensions)?;
    let texts = req.input.into_texts(s, "input")?;
    let (vectors, tokens) = embed_texts(s, texts, true, "input").await?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": s.embedder.info().id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}
