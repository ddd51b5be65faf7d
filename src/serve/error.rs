//! HTTP errors as JSON, and a JSON body extractor whose errors name the
//! offending field.
//!
//! Two error shapes, because clients of each dialect parse their own:
//! text-embeddings-inference's `{"error": "...", "error_type": "..."}` (with
//! a `field` added: papersim's own shape) everywhere, and OpenAI's
//! `{"error": {"message", "type", "param", "code"}}` under `/v1/`.

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use super::fair::Refusal;
use crate::query::QueryError;

/// An error response: status, TEI-style kind, message and offending field,
/// rendered as JSON in the TEI shape or, after [`openai`](Self::openai), in
/// OpenAI's.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status; 429 also gets a `Retry-After` header
    /// ([`retry_after`](Self::retry_after) seconds), 401 a
    /// `WWW-Authenticate: Bearer`.
    pub status: StatusCode,
    /// TEI's error_type: Validation, Overloaded, Backend, Tokenizer, Empty,
    /// NotFound, Timeout, Unauthorized.
    pub kind: &'static str,
    /// What went wrong, for a person reading the response.
    pub message: String,
    /// The request field at fault, as a path (`inputs[2]`, `filters.since`).
    pub field: Option<String>,
    /// Seconds for a 429's `Retry-After`.
    pub retry_after: u64,
    openai: bool,
}

impl ApiError {
    /// An error with no field, in the TEI shape.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
            retry_after: 1,
            openai: false,
        }
    }

    /// A 422 about one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation", message)
        }
    }

    /// Names (or renames) the request field at fault, keeping status and message.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A 500 of kind `Backend`: the server, not the request, failed.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Backend", message)
    }

    /// A 429 of kind `Overloaded`: the embedding queue or the index work
    /// queue is full (the response carries `Retry-After: 1`).
    pub fn overloaded() -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Overloaded",
            "the embedding queue is full; retry shortly",
        )
    }

    /// A 429 of kind `Overloaded` for a client over its share: of the
    /// embedding queue or of the request rate.
    pub fn too_many(reason: Refusal, retry_after: u64) -> Self {
        let message = match reason {
            Refusal::ClientRate => {
                "this client sent more requests than its rate allows; retry after the Retry-After seconds"
            }
            Refusal::ClientShare => {
                "this client already has its share of the embedding queue waiting; retry after the Retry-After seconds"
            }
            _ => "the embedding queue is full; retry shortly",
        };
        ApiError {
            retry_after: retry_after.max(1),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Overloaded", message)
        }
    }

    /// A 401: no key, or a wrong one. The message never repeats the token.
    pub fn unauthorized(missing: bool) -> Self {
        let message = if missing {
            "this server needs an API key: send the header `Authorization: Bearer KEY`"
        } else {
            "the API key is not one of this server's keys"
        };
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// Render in OpenAI's shape.
    pub fn openai(mut self) -> Self {
        self.openai = true;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.openai {
            // As OpenAI's own API answers: a bad key is an
            // invalid_request_error whose code is invalid_api_key.
            let (kind, code) = match self.status.as_u16() {
                401 => ("invalid_request_error", Some("invalid_api_key")),
                429 => ("rate_limit_error", None),
                400..=499 => ("invalid_request_error", None),
                _ => ("server_error", None),
            };
            serde_json::json!({"error": {
                "message": self.message,
                "type": kind,
                "param": self.field,
                "code": code,
            }})
        } else {
            serde_json::json!({
                "error": self.message,
                "error_type": self.kind,
                "field": self.field,
            })
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(self.retry_after),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match &e {
            QueryError::UnknownPaper { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "NotFound", e.to_string())
            }
            QueryError::EmptyQuery | QueryError::NoPositives | QueryError::DegenerateQuery => {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Validation",
                    e.to_string(),
                )
            }
            _ => ApiError::internal(e.to_string()),
        }
    }
}

/// A body that could not be read: over the limit (413) or cut off (400).
pub fn body_error(e: BytesRejection) -> ApiError {
    let status = e.status();
    let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "request body too large".to_string()
    } else {
        e.body_text()
    };
    ApiError::new(status, "Validation", msg)
}

/// Deserializes a JSON body. Malformed JSON (or trailing data) is a 400; a
/// body of the wrong shape is a 422 naming the field at fault by its path
/// (`filters.since`, or the parent's path plus the name for a missing field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.classify() != serde_json::error::Category::Data {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "Validation",
                format!("malformed JSON: {inner}"),
            );
        }
        let msg = inner.to_string();
        // "missing field `k`" is reported at the parent's path, as is
        // "unknown field `x`, expected ..." (papersim's own bodies deny them).
        let named = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|prefix| msg.strip_prefix(prefix))
            .and_then(|r| r.split('`').next());
        let field = match (named, path.as_str()) {
            (Some(f), ".") => f.to_string(),
            (Some(f), p) if p == f || p.ends_with(&format!(".{f}")) => p.to_string(),
            (Some(f), p) => format!("{p}.{f}"),
            (None, p) => p.to_string(),
        };
        ApiError::field(field.clone(), format!("{field}: {msg}"))
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Validation",
            format!("malformed JSON: {e}"),
        )
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Req {
        query: String,
        #[serde(default)]
        filters: Filters,
    }
    #[derive(Debug, Default, serde::Deserialize)]
    #[allow(dead_code)]
    struct Filters {
        since: Option<String>,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<Req>(br#"{"query": 3}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("query"));
        let e = parse_json::<Req>(br#"{}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("query"));
        let e = parse_json::<Req>(br#"{"query": "x", "filters": {"since": 2020}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("filters.since"));
    }

    #[test]
    fn broken_json_is_a_400() {
        for body in [
            &b"{\"query\": "[..],
            b"not json",
            b"{\"query\": \"x\"} trailing",
        ] {
            let e = parse_json::<Req>(body).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body:?}");
        }
    }
}
