//! Request parsing, apart from the handlers: a request body (JSON) or query
//! string in, a validated request or a 4xx [`ApiError`] out. Pure functions
//! with no server state (the limits they check are passed in), so that the
//! fuzz target `serve_request` can run them on arbitrary bytes; the handlers
//! in `api` call them and do only the work.

use axum::http::{StatusCode, Uri};
use serde::Deserialize;

use super::error::{parse_json, ApiError};
use crate::query::{self, Filter, Mode, Options, RelatedRequest, Strategy};
use crate::report;

/// The server's limits that parsing checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Results per query (`k`).
    pub max_k: usize,
    /// Texts per embedding request.
    pub max_inputs: usize,
    /// The model's dimension: the only `dimensions` an embedding request may ask for.
    pub dim: usize,
}

/// The endpoints whose requests carry something to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /search` (JSON body).
    Search,
    /// `GET /papers/{id}/similar` (query string).
    Similar,
    /// `POST /related` (JSON body).
    Related,
    /// `POST /embed`, text-embeddings-inference's shape (JSON body).
    EmbedTei,
    /// `POST /v1/embeddings`, OpenAI's shape (JSON body).
    EmbedOpenAi,
}

/// A validated request of any [`Route`].
#[derive(Debug)]
pub enum ParsedRequest {
    /// From [`Route::Search`].
    Search(SearchQuery),
    /// From [`Route::Similar`]: the options only; the paper id is in the path.
    Similar(Options),
    /// From [`Route::Related`].
    Related(RelatedQuery),
    /// From [`Route::EmbedTei`].
    EmbedTei(EmbedQuery),
    /// From [`Route::EmbedOpenAi`].
    EmbedOpenAi(OpenAiQuery),
}

/// Parses `input` as a request to `route`: the body for the POST routes, the
/// query string (without `?`) for [`Route::Similar`]. Errors are 4xx; on
/// `/v1/embeddings` they are not yet marked for OpenAI's shape (the handler
/// does that, as it does for its other errors).
pub fn parse_request(
    route: Route,
    input: &[u8],
    limits: &ParseLimits,
) -> Result<ParsedRequest, ApiError> {
    match route {
        Route::Search => parse_search(input, limits).map(ParsedRequest::Search),
        Route::Similar => {
            let query = std::str::from_utf8(input).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "Validation",
                    "the query string is not UTF-8",
                )
            })?;
            parse_similar(query, limits).map(ParsedRequest::Similar)
        }
        Route::Related => parse_related(input, limits).map(ParsedRequest::Related),
        Route::EmbedTei => parse_embed_tei(input, limits).map(ParsedRequest::EmbedTei),
        Route::EmbedOpenAi => parse_embed_openai(input, limits).map(ParsedRequest::EmbedOpenAi),
    }
}

#[derive(Debug, Default, Deserialize)]
// papersim's own endpoints refuse a field they do not know (a misplaced
// `since` would otherwise be a filter silently not applied); the
// OpenAI and TEI bodies keep ignoring what their clients add.
#[serde(deny_unknown_fields)]
struct Filters {
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
    limits: &ParseLimits,
    k: usize,
    mode: Option<&str>,
    default_mode: Mode,
    filters: &Filters,
    filter_prefix: &str,
) -> Result<Options, ApiError> {
    if k == 0 || k > limits.max_k {
        return Err(ApiError::field(
            "k",
            format!("k must be between 1 and {}", limits.max_k),
        ));
    }
    let mode = match mode {
        None => default_mode,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
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

/// A `POST /search`.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// Not blank.
    pub query: String,
    /// Validated `k` (1 to `max_k`, default 10), mode and filters.
    pub opts: Options,
    /// Explain each result; costs a forward pass on the embedding worker.
    pub why: bool,
}

/// Parses a `POST /search` body: `query` (required, not blank), `k`, `mode`,
/// `filters` and `why`.
pub fn parse_search(body: &[u8], limits: &ParseLimits) -> Result<SearchQuery, ApiError> {
    let req: SearchBody = parse_json(body)?;
    let opts = options(
        limits,
        req.k,
        req.mode.as_deref(),
        query::DEFAULT_MODE,
        &req.filters,
        "filters.",
    )?;
    if req.query.trim().is_empty() {
        return Err(ApiError::field("query", "the query is empty"));
    }
    Ok(SearchQuery {
        query: req.query,
        opts,
        why: req.why,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimilarParams {
    #[serde(default = "default_k")]
    k: usize,
    mode: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Comma-separated.
    category: Option<String>,
}

/// The query string of `GET /papers/{id}/similar` (without `?`).
pub fn parse_similar(query: &str, limits: &ParseLimits) -> Result<Options, ApiError> {
    // axum's own query parsing, so its error text stays what it was; a string
    // that no URI could carry never reaches the handler.
    let uri: Uri = format!("/?{query}").parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Validation",
            "the query string is not valid in a URI",
        )
    })?;
    let axum::extract::Query(p) = axum::extract::Query::<SimilarParams>::try_from_uri(&uri)
        .map_err(|e| {
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
    options(
        limits,
        p.k,
        p.mode.as_deref(),
        query::PAPER_DEFAULT_MODE,
        &filters,
        "",
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelatedBody {
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

/// A `POST /related`.
#[derive(Debug, Clone)]
pub struct RelatedQuery {
    /// Draft, seeds, negatives, query, exclusions, diversity (in `[0, 1]`)
    /// and whether to explain (default yes).
    pub req: RelatedRequest,
    /// Validated `k` (1 to `max_k`, default 20), mode and filters.
    pub opts: Options,
    /// How the list is rendered (JSON unless `format` says otherwise).
    pub format: report::Format,
}

impl RelatedQuery {
    /// Whether answering needs the model: explanations, or a draft or query
    /// to embed outside keyword mode.
    pub fn needs_model(&self) -> bool {
        let has_text = [&self.req.draft, &self.req.query]
            .iter()
            .any(|t| t.as_deref().is_some_and(|t| !t.trim().is_empty()));
        self.req.explain || (has_text && self.opts.mode != Mode::Keyword)
    }
}

/// Parses a `POST /related` body. Whether seeds exist and a positive was
/// given is checked later, against the library.
pub fn parse_related(body: &[u8], limits: &ParseLimits) -> Result<RelatedQuery, ApiError> {
    let b: RelatedBody = parse_json(body)?;
    let opts = options(
        limits,
        b.k,
        b.mode.as_deref(),
        query::PAPER_DEFAULT_MODE,
        &b.filters,
        "filters.",
    )?;
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
    Ok(RelatedQuery { req, opts, format })
}

/// One text or a list, as both TEI and OpenAI accept; OpenAI's token-id
/// forms are recognised only to refuse them clearly.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Inputs {
    One(String),
    Many(Vec<String>),
    // Parsed only to tell token ids from a type error; never read.
    TokenIds(#[allow(dead_code)] Vec<u32>),
    TokenIdLists(#[allow(dead_code)] Vec<Vec<u32>>),
}

impl Inputs {
    fn into_texts(self, limits: &ParseLimits, field: &str) -> Result<Vec<String>, ApiError> {
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
        if texts.len() > limits.max_inputs {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Validation",
                format!(
                    "{} inputs; at most {} per request",
                    texts.len(),
                    limits.max_inputs
                ),
            )
            .with_field(field));
        }
        Ok(texts)
    }
}

fn check_dimensions(limits: &ParseLimits, dimensions: Option<usize>) -> Result<(), ApiError> {
    let dim = limits.dim;
    match dimensions {
        Some(d) if d != dim => Err(ApiError::field(
            "dimensions",
            format!("the model gives {dim} dimensions; {d} is not supported"),
        )),
        _ => Ok(()),
    }
}

/// text-embeddings-inference's `POST /embed`.
#[derive(Debug, Deserialize)]
struct TeiBody {
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

/// A `POST /embed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedQuery {
    /// At least one, at most `max_inputs`.
    pub texts: Vec<String>,
    /// Cut texts past the model's window (true) or refuse them (false).
    pub truncate: bool,
    /// TEI's `prompt_name`: one of the model's prompts, checked against the
    /// model by the handler (parsing does not know the model). None: the
    /// model's `default_prompt_name`, as TEI does.
    pub prompt_name: Option<String>,
}

/// Parses a text-embeddings-inference `POST /embed` body. Options papersim
/// cannot honour (`normalize: false`, left truncation, another
/// `dimensions`) are 422s rather than silently ignored.
pub fn parse_embed_tei(body: &[u8], limits: &ParseLimits) -> Result<EmbedQuery, ApiError> {
    let req: TeiBody = parse_json(body)?;
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
    check_dimensions(limits, req.dimensions)?;
    let texts = req.inputs.into_texts(limits, "inputs")?;
    Ok(EmbedQuery {
        texts,
        truncate: req.truncate.unwrap_or(true),
        prompt_name: req.prompt_name,
    })
}

/// OpenAI's `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
struct OpenAiBody {
    input: Inputs,
    /// Any name is accepted (the server has one model) and echoed back.
    model: Option<String>,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
    #[allow(dead_code)]
    user: Option<String>,
}

/// A `POST /v1/embeddings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiQuery {
    /// At least one, at most `max_inputs`; always truncated to the model's window.
    pub texts: Vec<String>,
    /// Vectors as base64 of little-endian f32 (else JSON floats).
    pub base64: bool,
    /// The model the client named, echoed in the response (None: the
    /// served model's name).
    pub model: Option<String>,
}

/// Parses an OpenAI `POST /v1/embeddings` body; `model` is accepted and
/// echoed, `user` ignored, token-id inputs and other `dimensions` refused.
pub fn parse_embed_openai(body: &[u8], limits: &ParseLimits) -> Result<OpenAiQuery, ApiError> {
    let req: OpenAiBody = parse_json(body)?;
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
    check_dimensions(limits, req.dimensions)?;
    let texts = req.input.into_texts(limits, "input")?;
    let model = req.model.filter(|m| !m.trim().is_empty());
    Ok(OpenAiQuery {
        texts,
        base64,
        model,
    })
}

/// text-embeddings-inference's `POST /similarity` (and `POST /` with a
/// sentence pair, as `huggingface_hub`'s `sentence_similarity` sends it).
#[derive(Debug, Deserialize)]
struct SimilarityBody {
    inputs: SimilarityInputs,
    truncate: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct SimilarityInputs {
    source_sentence: String,
    sentences: Vec<String>,
}

/// A sentence-similarity request: the cosine of `source` to each of `others`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimilarityQuery {
    /// The sentence compared to the others.
    pub source: String,
    /// At least one, at most `max_inputs - 1`.
    pub others: Vec<String>,
    /// Cut texts past the model's window (true) or refuse them (false).
    pub truncate: bool,
}

/// Parses a TEI `POST /similarity` body.
pub fn parse_similarity(body: &[u8], limits: &ParseLimits) -> Result<SimilarityQuery, ApiError> {
    let req: SimilarityBody = parse_json(body)?;
    let others = req.inputs.sentences;
    if others.is_empty() {
        return Err(
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Empty", "no sentences")
                .with_field("inputs.sentences"),
        );
    }
    if others.len() + 1 > limits.max_inputs {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Validation",
            format!(
                "{} sentences; at most {} per request",
                others.len(),
                limits.max_inputs.saturating_sub(1)
            ),
        )
        .with_field("inputs.sentences"));
    }
    Ok(SimilarityQuery {
        source: req.inputs.source_sentence,
        others,
        truncate: req.truncate.unwrap_or(true),
    })
}

/// Whether a TEI `POST /` body is a sentence pair (`inputs` an object)
/// rather than texts to embed.
pub fn is_similarity(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        inputs: serde_json::Value,
    }
    serde_json::from_slice::<Probe>(body).is_ok_and(|p| p.inputs.is_object())
}

/// text-embeddings-inference's `POST /tokenize`.
#[derive(Debug, Deserialize)]
struct TokenizeBody {
    inputs: Inputs,
    #[serde(default = "yes")]
    add_special_tokens: bool,
}

/// A `POST /tokenize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizeQuery {
    /// At least one, at most `max_inputs`.
    pub texts: Vec<String>,
    /// Include `[CLS]`/`[SEP]` (TEI's default).
    pub add_special_tokens: bool,
}

/// Parses a TEI `POST /tokenize` body.
pub fn parse_tokenize(body: &[u8], limits: &ParseLimits) -> Result<TokenizeQuery, ApiError> {
    let req: TokenizeBody = parse_json(body)?;
    Ok(TokenizeQuery {
        texts: req.inputs.into_texts(limits, "inputs")?,
        add_special_tokens: req.add_special_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParseLimits = ParseLimits {
        max_k: 200,
        max_inputs: 4,
        dim: 384,
    };

    #[test]
    fn valid_requests() {
        let s = parse_search(
            br#"{"query": "graph neural networks", "k": 5, "mode": "keyword", "filters": {"since": "2020", "categories": ["cs.LG"]}}"#,
            &LIMITS,
        )
        .unwrap();
        assert_eq!((s.opts.k, s.opts.mode, s.why), (5, Mode::Keyword, false));
        assert_eq!(s.opts.filter.since.as_deref(), Some("2020"));

        let o = parse_similar("k=3&category=cs.LG,%20cs.AI,&until=2021-05", &LIMITS).unwrap();
        assert_eq!(o.k, 3);
        assert_eq!(o.filter.categories, ["cs.LG", "cs.AI"]);
        assert_eq!(parse_similar("", &LIMITS).unwrap().k, 10);

        let r = parse_related(
            br#"{"seeds": ["a"], "why": false, "mode": "keyword", "query": "x"}"#,
            &LIMITS,
        )
        .unwrap();
        assert_eq!((r.opts.k, r.format), (20, report::Format::Json));
        assert!(!r.needs_model());
        let r =
            parse_related(br#"{"abstract": "a draft", "format": "markdown"}"#, &LIMITS).unwrap();
        assert!(r.needs_model() && r.req.explain);

        let e = parse_embed_tei(br#"{"inputs": "hi", "truncate": false}"#, &LIMITS).unwrap();
        assert_eq!(
            e,
            EmbedQuery {
                texts: vec!["hi".into()],
                truncate: false,
                prompt_name: None,
            }
        );
        let e = parse_embed_tei(br#"{"inputs": "hi", "prompt_name": "query"}"#, &LIMITS).unwrap();
        assert_eq!(e.prompt_name.as_deref(), Some("query"));
        let e = parse_embed_openai(
            br#"{"input": ["a", "b"], "model": "m", "encoding_format": "base64", "dimensions": 384}"#,
            &LIMITS,
        )
        .unwrap();
        assert_eq!(
            e,
            OpenAiQuery {
                texts: vec!["a".into(), "b".into()],
                base64: true,
                model: Some("m".into()),
            }
        );
        let q = parse_similarity(
            br#"{"inputs": {"source_sentence": "a", "sentences": ["b", "c"]}}"#,
            &LIMITS,
        )
        .unwrap();
        assert_eq!(
            (q.source.as_str(), q.others.len(), q.truncate),
            ("a", 2, true)
        );
        assert!(is_similarity(
            br#"{"inputs": {"source_sentence": "a", "sentences": []}}"#
        ));
        assert!(!is_similarity(br#"{"inputs": "a"}"#));
        let t =
            parse_tokenize(br#"{"inputs": "hi", "add_special_tokens": false}"#, &LIMITS).unwrap();
        assert_eq!((t.texts.len(), t.add_special_tokens), (1, false));
    }

    #[test]
    fn invalid_requests_are_4xx_naming_the_field() {
        let cases: &[(Route, &[u8], u16, Option<&str>)] = &[
            (Route::Search, br#"{"query": "  "}"#, 422, Some("query")),
            (Route::Search, br#"{"query": "x", "k": 0}"#, 422, Some("k")),
            (
                Route::Search,
                br#"{"query": "x", "k": 201}"#,
                422,
                Some("k"),
            ),
            (
                Route::Search,
                br#"{"query": "x", "mode": "fuzzy"}"#,
                422,
                Some("mode"),
            ),
            (
                Route::Search,
                br#"{"query": "x", "filters": {"until": "May"}}"#,
                422,
                Some("filters.until"),
            ),
            (Route::Search, b"{\"query\": ", 400, None),
            (Route::Similar, b"k=abc", 422, None),
            (Route::Similar, b"since=20", 422, Some("since")),
            (Route::Similar, b"since=2026-13", 422, Some("since")),
            (Route::Similar, b"k=3&sinse=2020", 422, None),
            (
                Route::Search,
                br#"{"query": "x", "since": "2020"}"#,
                422,
                Some("since"),
            ),
            (
                Route::Search,
                br#"{"query": "x", "filters": {"sinse": "2020"}}"#,
                422,
                Some("filters.sinse"),
            ),
            (
                Route::Related,
                br#"{"seeds": ["a"], "categories": ["cs.LG"]}"#,
                422,
                Some("categories"),
            ),
            (
                Route::Search,
                br#"{"query": "x", "filters": {"since": "2020-99-99"}}"#,
                422,
                Some("filters.since"),
            ),
            (Route::Similar, b"k=1 2", 400, None),
            (Route::Similar, b"\xff", 400, None),
            (
                Route::Related,
                br#"{"seeds": ["a"], "diversity": 1.5}"#,
                422,
                Some("diversity"),
            ),
            (
                Route::Related,
                br#"{"seeds": ["a"], "format": "pdf"}"#,
                422,
                Some("format"),
            ),
            (Route::EmbedTei, br#"{"inputs": []}"#, 422, Some("inputs")),
            (
                Route::EmbedTei,
                br#"{"inputs": ["a","b","c","d","e"]}"#,
                413,
                Some("inputs"),
            ),
            (
                Route::EmbedTei,
                br#"{"inputs": "a", "normalize": false}"#,
                422,
                Some("normalize"),
            ),
            (
                Route::EmbedTei,
                br#"{"inputs": "a", "truncation_direction": "Left"}"#,
                422,
                Some("truncation_direction"),
            ),
            (
                Route::EmbedTei,
                br#"{"inputs": "a", "prompt_name": 3}"#,
                422,
                Some("prompt_name"),
            ),
            (
                Route::EmbedOpenAi,
                br#"{"input": [1, 2]}"#,
                422,
                Some("input"),
            ),
            (
                Route::EmbedOpenAi,
                br#"{"input": "a", "dimensions": 3}"#,
                422,
                Some("dimensions"),
            ),
            (
                Route::EmbedOpenAi,
                br#"{"input": "a", "encoding_format": "hex"}"#,
                422,
                Some("encoding_format"),
            ),
            (Route::EmbedOpenAi, br#"{"model": "m"}"#, 422, Some("input")),
        ];
        for &(route, body, status, field) in cases {
            let e = parse_request(route, body, &LIMITS).unwrap_err();
            assert_eq!(
                e.status.as_u16(),
                status,
                "{route:?} {:?}: {e:?}",
                String::from_utf8_lossy(body)
            );
            if field.is_some() {
                assert_eq!(
                    e.field.as_deref(),
                    field,
                    "{route:?} {:?}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
}
