//! The server's request parsing (`papersim::serve::request`) on arbitrary
//! bytes: JSON bodies of `POST /search`, `/related`, `/embed` (TEI) and
//! `/v1/embeddings` (OpenAI), and the query string of
//! `GET /papers/{id}/similar`. Parsing needs no library or model, so this is
//! exactly what a handler runs before any work.
//!
//! Input layout: byte 0 picks the route (`ROUTES`, modulo) and, above that,
//! the request limits (`MAX_INPUTS`), so the over-limit paths are reached
//! with small inputs; the rest is the body (or query string). Every outcome
//! must be a validated request that honours the limits, or a 4xx error with
//! a message: never a panic, never a 5xx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use papersim::serve::request::{parse_request, ParseLimits, ParsedRequest, Route};

const ROUTES: [Route; 5] = [
    Route::Search,
    Route::Similar,
    Route::Related,
    Route::EmbedTei,
    Route::EmbedOpenAi,
];

const MAX_INPUTS: [usize; 4] = [128, 1, 2, 8];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let pick = usize::from(pick);
    let route = ROUTES[pick % ROUTES.len()];
    let limits = ParseLimits {
        max_k: 200,
        max_inputs: MAX_INPUTS[(pick / ROUTES.len()) % MAX_INPUTS.len()],
        dim: 384,
    };
    match parse_request(route, body, &limits) {
        Ok(parsed) => {
            let k_ok = |k: usize| (1..=limits.max_k).contains(&k);
            match parsed {
                ParsedRequest::Search(s) => {
                    assert_eq!(route, Route::Search);
                    assert!(!s.query.trim().is_empty());
                    assert!(k_ok(s.opts.k));
                }
                ParsedRequest::Similar(o) => {
                    assert_eq!(route, Route::Similar);
                    assert!(k_ok(o.k));
                    assert!(o.filter.categories.iter().all(|c| !c.trim().is_empty()));
                }
                ParsedRequest::Related(r) => {
                    assert_eq!(route, Route::Related);
                    assert!(k_ok(r.opts.k));
                    assert!((0.0..=1.0).contains(&r.req.diversity));
                    let _ = r.needs_model();
                }
                ParsedRequest::EmbedTei(e) => {
                    assert_eq!(route, Route::EmbedTei);
                    assert!(!e.texts.is_empty() && e.texts.len() <= limits.max_inputs);
                }
                ParsedRequest::EmbedOpenAi(e) => {
                    assert_eq!(route, Route::EmbedOpenAi);
                    assert!(!e.texts.is_empty() && e.texts.len() <= limits.max_inputs);
                }
            }
        }
        Err(e) => {
            assert!(e.status.is_client_error(), "{route:?}: {} {e:?}", e.status);
            assert!(!e.message.is_empty());
        }
    }
});
