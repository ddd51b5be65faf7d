//! Request handlers: papersim's own endpoints, TEI's `/embed`, OpenAI's
//! `/v1/embeddings`, and the page.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use super::error::{body_error, ApiError};
use super::fair::Client;
use super::queue::Refused;
use super::request::{
    is_similarity, parse_embed_openai, parse_embed_tei, parse_related, parse_search, parse_similar,
    parse_similarity, parse_tokenize, ParseLimits, RelatedQuery,
};
use super::Shared;
use crate::embed::{Prompt, Role};
use crate::query;
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
    let e = s.embedder.info();
    Json(json!({
        // text-embeddings-inference's `/info` fields, as its clients read them.
        "model_id": s.model_name,
        "model_sha": null,
        "model_dtype": "float32",
        "model_type": {"embedding": {"pooling": e.pooling}},
        "max_concurrent_requests": s.limits.max_waiting_queries,
        "max_input_length": e.max_seq_length,
        "tokenization_workers": 1,
        "max_batch_tokens": s.limits.batch_tokens,
        "max_batch_requests": null,
        "max_client_batch_size": s.limits.max_inputs,
        "auto_truncate": true,
        "sha": null,
        "docker_label": null,
        // papersim's own.
        "library": lib.dir(),
        "generation": m.generation,
        "papers": lib.len(),
        "model": m.model,
        // The prompts TEI's prompt_name may name, and the ones used by default.
        "prompts": s.embedder.prompts().prompts,
        "default_prompt_name": s.embedder.prompts().default_name,
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

/// What request parsing checks: the server's limits and the model's dimension.
fn parse_limits(s: &Shared) -> ParseLimits {
    ParseLimits {
        max_k: s.limits.max_k,
        max_inputs: s.limits.max_inputs,
        dim: s.embedder.info().dim,
    }
}

/// The prompt an embedding request gets: TEI's `prompt_name` when given (a
/// 422 naming the model's prompts when it has no such prompt), else the
/// model's `default_prompt_name`'s, as TEI and sentence-transformers'
/// `encode` do.
fn request_prompt(s: &Shared, prompt_name: Option<&str>) -> Result<Option<Prompt>, ApiError> {
    match prompt_name {
        Some(name) => s
            .embedder
            .prompts()
            .named(name)
            .map(|p| Some(p).filter(|p| !p.text.is_empty()))
            .map_err(|e| ApiError::field("prompt_name", e.to_string())),
        None => Ok(s.embedder.prompt(Role::Plain).cloned()),
    }
}

/// A queue refusal as a 429, counted by reason.
fn refused(s: &Shared, r: Refused) -> ApiError {
    s.metrics.refuse(r.reason);
    ApiError::too_many(r.reason, r.retry_after)
}

/// Embeds `texts` through the shared queue, `prompt` in front of each.
/// Returns one vector per text and the tokens they were embedded with (the
/// prompt's included). `truncate` false: a text over the model's window is
/// a 413 instead of being cut.
async fn embed_texts(
    s: &Shared,
    client: Client,
    texts: Vec<String>,
    prompt: Option<Prompt>,
    truncate: bool,
    field: &str,
) -> Result<(Vec<Vec<f32>>, usize), ApiError> {
    s.queue.precheck(client).map_err(|r| refused(s, r))?;
    let e = s.embedder.clone();
    let (texts, counts) = s
        .blocking(move || {
            // The queue embeds texts as given, so the prompt goes on here,
            // before the tokens are counted.
            let texts: Vec<String> = match &prompt {
                Some(p) => texts.iter().map(|t| p.apply(t)).collect(),
                None => texts,
            };
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
    let per_text: Vec<usize> = counts.iter().map(|&(n, _)| n).collect();
    let tokens: usize = per_text.iter().sum();
    let rx = s
        .queue
        .embed(client, texts, per_text)
        .map_err(|r| refused(s, r))?;
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

pub async fn search(
    State(s): State<Shared>,
    Extension(client): Extension<Client>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = parse_search(&body.map_err(body_error)?, &parse_limits(&s))?;
    let opts = req.opts;
    let lib = s.library();
    // Embedded in keyword mode too: the cosine is the score every mode shows.
    let vector = {
        let prompt = s.embedder.prompt(Role::Query).cloned();
        let (mut v, _) =
            embed_texts(&s, client, vec![req.query.clone()], prompt, true, "query").await?;
        v.pop()
    };
    let text = req.query.clone();
    let o = opts.clone();
    let l = lib.clone();
    let why = req.why;
    // With stored sentence vectors a one-sentence query is explained from
    // them and its own vector, in the same blocking task: no model call.
    let (mut hits, explained) = s
        .blocking(move || {
            let mut hits = query::search_embedded(&l, vector.as_deref(), &text, &o)?;
            let explained = match (why, vector.as_deref()) {
                (true, Some(v)) if !hits.is_empty() => {
                    query::explain_query_stored(&l, &text, v, &mut hits)?
                }
                _ => false,
            };
            Ok::<_, query::QueryError>((hits, explained))
        })
        .await??;
    if req.why && !explained && !hits.is_empty() {
        let (l, text) = (lib.clone(), req.query.clone());
        let rx = s
            .queue
            .task(client, RELATED_COST_TOKENS, move |e| {
                query::explain_query(&l, e, &text, &mut hits).map(|()| hits)
            })
            .map_err(|r| refused(&s, r))?;
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
    let paper = lib.paper(row).map_err(query::QueryError::from)?;
    Ok(Json(&*paper).into_response())
}

pub async fn similar(
    State(s): State<Shared>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let opts = parse_similar(uri.query().unwrap_or_default(), &parse_limits(&s))?;
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

pub async fn related(
    State(s): State<Shared>,
    Extension(client): Extension<Client>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let parsed = parse_related(&body.map_err(body_error)?, &parse_limits(&s))?;
    let needs_model = parsed.needs_model();
    let RelatedQuery { req, opts, format } = parsed;
    let lib = s.library();
    let (l, o, r) = (lib.clone(), opts.clone(), req.clone());
    let hits = if needs_model {
        // Drafts and explanations are embedded by the queue's worker, in
        // turn with the merged embedding batches.
        let rx = s
            .queue
            .task(client, RELATED_COST_TOKENS, move |e| {
                query::related(&l, Some(e), &r, &o)
            })
            .map_err(|r| refused(&s, r))?;
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

/// text-embeddings-inference's `POST /embed`.
pub async fn embed_tei(
    State(s): State<Shared>,
    Extension(client): Extension<Client>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    let req = parse_embed_tei(&body.map_err(body_error)?, &parse_limits(&s))?;
    let prompt = request_prompt(&s, req.prompt_name.as_deref())?;
    let (vectors, _) = embed_texts(&s, client, req.texts, prompt, req.truncate, "inputs").await?;
    Ok(Json(vectors))
}

/// text-embeddings-inference's `POST /`: texts to embed, or a sentence pair
/// (`{"inputs": {"source_sentence", "sentences"}}`) to compare, as
/// `huggingface_hub`'s `feature_extraction` and `sentence_similarity` send
/// them to a TEI url.
pub async fn tei_root(
    State(s): State<Shared>,
    Extension(client): Extension<Client>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(body_error)?;
    if is_similarity(&body) {
        return similarity(&s, client, &body).await.map(|v| Json(json!(v)));
    }
    let req = parse_embed_tei(&body, &parse_limits(&s))?;
    let prompt = request_prompt(&s, req.prompt_name.as_deref())?;
    let (vectors, _) = embed_texts(&s, client, req.texts, prompt, req.truncate, "inputs").await?;
    Ok(Json(json!(vectors)))
}

/// text-embeddings-inference's `POST /similarity`: the cosine of
/// `source_sentence` to each of `sentences`.
pub async fn similarity_tei(
    State(s): State<Shared>,
    Extension(client): Extension<Client>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<f32>>, ApiError> {
    similarity(&s, client, &body.map_err(body_error)?)
        .await
        .map(Json)
}

async fn similarity(s: &Shared, client: Client, body: &[u8]) -> Result<Vec<f32>, ApiError> {
    let q = parse_similarity(body, &parse_limits(s))?;
    let mut texts = Vec::with_capacity(q.others.len() + 1);
    texts.push(q.source);
    texts.extend(q.others);
    let prompt = request_prompt(s, None)?;
    let (vectors, _) = embed_texts(s, client, texts, prompt, q.truncate, "inputs").await?;
    let (source, others) = vectors
        .split_first()
        .ok_or_else(|| ApiError::internal("no vectors came back"))?;
    Ok(others
        .iter()
        .map(|v| crate::index::dot(source, v))
        .collect())
}

/// text-embeddings-inference's `POST /tokenize`: per input, its tokens as
/// `{id, text, special, start, stop}` (byte offsets; none for special tokens).
pub async fn tokenize_tei(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = parse_tokenize(&body.map_err(body_error)?, &parse_limits(&s))?;
    let e = s.embedder.clone();
    let spans = s
        .blocking(move || {
            let refs: Vec<&str> = q.texts.iter().map(String::as_str).collect();
            e.token_spans(&refs, q.add_special_tokens)
        })
        .await?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Tokenizer", e.to_string()))?;
    Ok(Json(json!(spans)))
}

/// OpenAI's model object for the one model served; `created` is when the
/// server started.
fn model_object(s: &Shared) -> Value {
    let started = std::time::SystemTime::now()
        .checked_sub(s.started.elapsed())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    json!({
        "id": s.model_name,
        "object": "model",
        "created": started,
        "owned_by": "papersim",
    })
}

/// OpenAI's `GET /v1/models`: the one model served.
pub async fn models_openai(State(s): State<Shared>) -> Json<Value> {
    Json(json!({"object": "list", "data": [model_object(&s)]}))
}

/// OpenAI's `GET /v1/models/{id}`: the served model under its own name, a
/// 404 in OpenAI's error shape for any other.
pub async fn model_openai(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    // The catch-all keeps the leading slash of the rest of the path.
    let id = id.trim_start_matches('/');
    if id == s.model_name {
        return Json(model_object(&s)).into_response();
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "The model {id:?} does not exist; this server has {:?}",
            s.model_name
        ),
    )
    .with_field("model")
    .openai()
    .into_response()
}

/// OpenAI's `POST /v1/embeddings`.
pub async fn embed_openai(
    State(s): State<Shared>,
    Extension(client): Extension<Client>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = match body {
        Ok(body) => openai(&s, client, &body).await,
        Err(e) => Err(body_error(e)),
    };
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.openai().into_response(),
    }
}

async fn openai(s: &Shared, client: Client, body: &[u8]) -> Result<Value, ApiError> {
    let req = parse_embed_openai(body, &parse_limits(s))?;
    let base64 = req.base64;
    let model = req.model.unwrap_or_else(|| s.model_name.clone());
    // OpenAI's API has no prompt field: the model's default_prompt_name's.
    let prompt = request_prompt(s, None)?;
    let (vectors, tokens) = embed_texts(s, client, req.texts, prompt, true, "input").await?;
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
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}
