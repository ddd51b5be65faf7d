//! One greedy client and three polite ones on one server, each with its own
//! API key: the polite clients' median latency under load stays within 2x
//! of their median on an idle server, with no errors, while the greedy one
//! is answered in part and refused (429) in part. Its own test binary, so
//! no other test's work on the machine's cores skews the timings.
#![cfg(feature = "serve")]

mod common;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;

const KEYS: [&str; 4] = [
    "greedy-0123456789abcdef",
    "polite-1-0123456789abcd",
    "polite-2-0123456789abcd",
    "polite-3-0123456789abcd",
];
/// Requests each polite client sends per phase, one at a time.
const POLITE_REQUESTS: usize = 25;
/// A polite client's pause between its requests.
const THINK: Duration = Duration::from_millis(200);
/// The greedy client: this many connections at once, each sending batches
/// of this many abstracts back to back; when refused, it waits as
/// Retry-After says (at most 2 s), as the openai and huggingface_hub
/// clients do.
const GREEDY_CONNECTIONS: usize = 4;
const GREEDY_BATCH: usize = 64;

/// Abstracts of the bundled arXiv sample (no model needed to read them).
fn abstracts() -> Vec<String> {
    let file = std::fs::File::open(common::arxiv_sample()).unwrap();
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    reader
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter_map(|v| {
            v["abstract"]
                .as_str()
                .map(|a| a.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .take(400)
        .collect()
}

/// One `/embed` request with `key`: status, latency, and Retry-After (0
/// when none).
fn post(addr: SocketAddr, key: &str, body: &serde_json::Value) -> (u16, Duration, u64) {
    let auth = format!("Bearer {key}");
    let started = Instant::now();
    let a = common::http::exchange(
        addr,
        "POST",
        "/embed",
        &[("Authorization", &auth)],
        Some(body.to_string().as_bytes()),
    );
    let wait = a
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (a.status, started.elapsed(), wait)
}

/// The three polite clients at once: every latency, and the non-200s.
fn polite_round(addr: SocketAddr, texts: &Arc<Vec<String>>) -> (Vec<f64>, Vec<u16>) {
    let handles: Vec<_> = (1..4)
        .map(|c| {
            let texts = texts.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for i in 0..POLITE_REQUESTS {
                    let text = &texts[(c * 37 + i) % 100];
                    let (status, took, _) = post(addr, KEYS[c], &json!({ "inputs": text }));
                    out.push((status, took));
                    std::thread::sleep(THINK);
                }
                out
            })
        })
        .collect();
    let all: Vec<(u16, Duration)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let ms = all.iter().map(|(_, d)| d.as_secs_f64() * 1000.0).collect();
    let errors = all.iter().map(|&(s, _)| s).filter(|&s| s != 200).collect();
    (ms, errors)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn a_greedy_client_cannot_slow_the_polite_ones_down() {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    let Some(lib) = common::library_once(&LIB, &common::arxiv_sample(), &["--limit", "40"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, KEYS.join("\n")).unwrap();
    // Owner-only, as the docs ask (else the server warns).
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (mut child, addr) = common::start_server(lib, &["--api-key-file", common::s(&keys)]);
    let texts = Arc::new(abstracts());

    // Warm up (first forwards, allocations), then the idle baseline.
    polite_round(addr, &texts);
    let (idle, idle_errors) = polite_round(addr, &texts);
    assert!(idle_errors.is_empty(), "{idle_errors:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let greedy_ok = Arc::new(AtomicUsize::new(0));
    let greedy_refused = Arc::new(AtomicUsize::new(0));
    let greedy: Vec<_> = (0..GREEDY_CONNECTIONS)
        .map(|g| {
            let (stop, ok, refused, texts) = (
                stop.clone(),
                greedy_ok.clone(),
                greedy_refused.clone(),
                texts.clone(),
            );
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let batch: Vec<&String> = (0..GREEDY_BATCH)
                        .map(|j| &texts[100 + (g * 71 + i * GREEDY_BATCH + j) % 300])
                        .collect();
                    let (status, _, retry_after) = post(addr, KEYS[0], &json!({ "inputs": batch }));
                    if status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        // As the openai and huggingface_hub clients do.
                        std::thread::sleep(Duration::from_secs(retry_after.min(2)));
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // Let the greedy client fill the queue first.
    let greedy_started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let (loaded, loaded_errors) = polite_round(addr, &texts);
    let greedy_seconds = greedy_started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in greedy {
        h.join().unwrap();
    }
    // Its last requests finish after the polite round: count them too.
    let greedy_seconds = greedy_seconds.max(greedy_started.elapsed().as_secs_f64());
    let (ok_during, refused_during) = (
        greedy_ok.load(Ordering::Relaxed),
        greedy_refused.load(Ordering::Relaxed),
    );
    let metrics = String::from_utf8(
        common::http::exchange(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", &format!("Bearer {}", KEYS[1]))],
            None,
        )
        .body,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();

    let (idle_p50, loaded_p50) = (
        percentile(idle.clone(), 0.5),
        percentile(loaded.clone(), 0.5),
    );
    let report = json!({
        "polite_idle_ms": {"p50": idle_p50, "p90": percentile(idle, 0.9)},
        "polite_loaded_ms": {"p50": loaded_p50, "p90": percentile(loaded, 0.9)},
        "polite_loaded_errors": loaded_errors.len(),
        "greedy_answered": ok_during,
        "greedy_refused": refused_during,
        "greedy_texts_per_s": (ok_during * GREEDY_BATCH) as f64 / greedy_seconds,
        "refusals": metrics.lines().filter(|l| l.starts_with("papersim_rejected_total{")).collect::<Vec<_>>(),
    });
    eprintln!("fairness: {report:#}");
    assert!(
        loaded_errors.is_empty(),
        "polite errors under load: {loaded_errors:?}"
    );
    assert!(
        loaded_p50 <= 2.0 * idle_p50,
        "polite p50 {loaded_p50:.1} ms under load vs {idle_p50:.1} ms idle"
    );
    assert!(
        greedy_ok.load(Ordering::Relaxed) > 0,
        "the greedy client got nothing"
    );
    assert!(
        greedy_refused.load(Ordering::Relaxed) > 0,
        "the greedy client was never refused"
    );
}
