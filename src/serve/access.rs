//! The gate every request passes: CORS preflight, the API key, the
//! client's request rate; it tells the handlers who the client is.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Verdict;
use super::error::ApiError;
use super::fair::{Bucket, Client, Refusal};
use super::Shared;

/// Routes open without a key: the health check (for load balancers and
/// probes), and the page's own files, which hold no library data, so that a
/// browser can load the page and then ask its user for the key.
fn is_public(method: &Method, path: &str) -> bool {
    path == "/health" || (method == Method::GET && matches!(path, "/" | "/app.js" | "/style.css"))
}

/// Whether `s` is an origin as browsers send it: `*`, or
/// `http(s)://host[:port]` with no path.
pub fn is_origin(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// The request's `Origin` when the server allows it.
fn allowed_origin<'a>(s: &Shared, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let o = origin.to_str().ok()?;
    s.access
        .cors_origins
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
        .then_some(origin)
}

fn cors_headers(resp: &mut Response, origin: Option<HeaderValue>) {
    let h = resp.headers_mut();
    // Caches must not hand one origin's answer to another.
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
}

/// A refusal in the dialect of the route: OpenAI's shape under `/v1/`,
/// TEI's (papersim's) elsewhere.
fn refuse(s: &Shared, path: &str, why: Refusal, e: ApiError) -> Response {
    s.metrics.refuse(why);
    if path.starts_with("/v1/") {
        e.openai().into_response()
    } else {
        e.into_response()
    }
}

/// Preflight, key, rate; then the handler, with the [`Client`] in the
/// request's extensions; CORS headers on the way out.
pub async fn gate(State(s): State<Shared>, mut req: Request, next: Next) -> Response {
    let origin = allowed_origin(&s, req.headers()).cloned();
    let path = req.uri().path().to_string();
    // A preflight carries no credentials: answered here, before the key.
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut resp = if origin.is_some() {
            let mut r = StatusCode::NO_CONTENT.into_response();
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            r
        } else {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "this origin may not call the server; start it with --cors-origin ORIGIN",
            )
            .into_response()
        };
        cors_headers(&mut resp, origin);
        return resp;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let verdict = if is_public(req.method(), &path) {
        Verdict::Open
    } else {
        let value = req.headers().get(header::AUTHORIZATION);
        s.access.keys.check(value.map(HeaderValue::as_bytes))
    };
    let client = match verdict {
        Verdict::Key(n) => Client::Key(n),
        // Without keys (or on a public route) the address tells clients
        // apart; behind a reverse proxy that is the proxy's, so keys do.
        Verdict::Open => Client::Addr(peer.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into())),
        Verdict::Missing | Verdict::Wrong => {
            let e = ApiError::unauthorized(verdict == Verdict::Missing);
            let mut resp = refuse(&s, &path, Refusal::Unauthorized, e);
            cors_headers(&mut resp, origin);
            return resp;
        }
    };
    let limits = &s.limits;
    if limits.client_rate > 0.0 && path != "/health" {
        let now = Instant::now();
        let (rate, burst) = (limits.client_rate, limits.client_burst.max(1.0));
        let taken = {
            let mut rates = s.rates.lock().unwrap_or_else(|p| p.into_inner());
            // Forget clients whose buckets refilled (a new one is the same),
            // so the map holds only recent clients.
            if rates.len() > 1024 {
                rates.retain(|_, b| !b.is_full(now, rate, burst));
            }
            rates
                .entry(client)
                .or_insert_with(|| Bucket::full(burst, now))
                .take(now, rate, burst)
        };
        if let Err(wait) = taken {
            let secs = wait.as_secs_f64().ceil() as u64;
            let e = ApiError::too_many(Refusal::ClientRate, secs);
            let mut resp = refuse(&s, &path, Refusal::ClientRate, e);
            cors_headers(&mut resp, origin);
            return resp;
        }
    }
    req.extensions_mut().insert(client);
    let mut resp = next.run(req).await;
    cors_headers(&mut resp, origin);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for ok in [
            "*",
            "https://lab.example.org",
            "http://localhost:5173",
            "http://[::1]:8080",
        ] {
            assert!(is_origin(ok), "{ok}");
        }
        for bad in [
            "lab.example.org",
            "https://lab.example.org/",
            "https://",
            "ftp://x",
            "https://a b",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }

    #[test]
    fn only_health_and_the_pages_files_are_public() {
        assert!(is_public(&Method::GET, "/health"));
        assert!(is_public(&Method::GET, "/"));
        assert!(is_public(&Method::GET, "/app.js"));
        // TEI's POST / embeds: it needs the key.
        assert!(!is_public(&Method::POST, "/"));
        for p in [
            "/info",
            "/metrics",
            "/search",
            "/v1/models",
            "/embed",
            "/papers/x",
        ] {
            assert!(!is_public(&Method::GET, p), "{p}");
        }
    }
}
