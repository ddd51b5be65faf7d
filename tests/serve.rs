//! `papersim serve` through the real binary on a tiny library: the exact
//! request and response shapes of text-embeddings-inference and OpenAI
//! embeddings clients, papersim's own endpoints, errors for bad requests
//! (and a server that keeps answering after them), overload, hot reload of a
//! new library generation, and graceful shutdown.
#![cfg(feature = "serve")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use common::http::{parse, request};
use common::{ok, papersim};

/// A library of the first `n` papers of the bundled arXiv sample.
fn build_library(dir: &Path, n: usize) {
    common::build_ok(&common::arxiv_sample(), dir, &["--limit", &n.to_string()]);
}

/// One 40-paper library shared by the tests that only read it.
fn library() -> Option<&'static Path> {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    common::library_once(&LIB, &common::arxiv_sample(), &["--limit", "40"])
}

/// A running server, stopped (SIGKILL) when dropped unless already stopped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(lib: &Path, extra: &[&str]) -> Server {
        let extra: Vec<&str> = ["--poll-ms", "100"].iter().chain(extra).copied().collect();
        let (child, addr) = common::start_server(lib, &extra);
        Server { child, addr }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        parse(request(self.addr, "GET", path, None))
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        parse(request(
            self.addr,
            "POST",
            path,
            Some(body.to_string().as_bytes()),
        ))
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// What `papersim embed` (the CLI, sentence-transformers parity tested)
/// gives for `texts`.
fn cli_vectors(texts: &[&str]) -> Vec<Vec<f32>> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let lines: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": i.to_string(), "text": t}).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = ok(papersim(&["embed", input.to_str().unwrap()]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| floats(&serde_json::from_str::<Value>(l).unwrap()["embedding"]))
        .collect()
}

fn assert_same(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    let cos = common::cosine(a, b);
    assert!(cos > 0.9999, "cosine {cos}");
}

const TEXTS: [&str; 3] = [
    "Contrastive learning of sentence embeddings.",
    "Graph neural networks for molecule property prediction.",
    "A survey of reinforcement learning for robotics.",
];

#[test]
fn tei_and_openai_clients_get_their_exact_shapes() {
    let Some(lib) = library() else { return };
    let server = Server::start(lib, &[]);
    let want = cli_vectors(&TEXTS);

    // TEI: a single string still gives a list of vectors.
    let (st, v) = server.post("/embed", &json!({"inputs": TEXTS[0]}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_same(&floats(&v[0]), &want[0]);
    // TEI: a batch, with the fields its Python client sends.
    let (st, v) = server.post(
        "/embed",
        &json!({"inputs": TEXTS, "normalize": true, "truncate": false, "truncation_direction": "Right"}),
    );
    assert_eq!(st, 200, "{v}");
    for (got, want) in v.as_array().unwrap().iter().zip(&want) {
        assert_same(&floats(got), want);
    }

    // OpenAI: floats.
    let (st, v) = server.post(
        "/v1/embeddings",
        &json!({"input": TEXTS, "model": "text-embedding-3-small", "encoding_format": "float"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert!(v["model"].is_string());
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i);
        assert_same(&floats(&d["embedding"]), &want[i]);
    }
    let tokens = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens >= 20, "{v}");
    assert_eq!(v["usage"]["total_tokens"].as_u64(), Some(tokens));
    // OpenAI: base64 (what the official Python client asks for by default),
    // a single string input.
    let (st, v) = server.post(
        "/v1/embeddings",
        &json!({"input": TEXTS[1], "model": "m", "encoding_format": "base64"}),
    );
    assert_eq!(st, 200, "{v}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let got: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_same(&got, &want[1]);
    // OpenAI errors come in OpenAI's shape, naming the parameter.
    let (st, v) = server.post("/v1/embeddings", &json!({"model": "m"}));
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["param"], "input");
    assert_eq!(v["error"]["type"], "invalid_request_error");

    // OpenAI's retrieve-model: the hub id's slash as sent or percent-encoded.
    let (_, list) = server.get("/v1/models");
    for path in [
        "/v1/models/sentence-transformers/all-MiniLM-L6-v2",
        "/v1/models/sentence-transformers%2Fall-MiniLM-L6-v2",
    ] {
        let (st, v) = server.get(path);
        assert_eq!(st, 200, "{path}: {v}");
        assert_eq!(v, list["data"][0], "{path}");
        assert_eq!(v["object"], "model");
    }
}

#[test]
fn search_papers_similar_related_info_and_metrics() {
    let Some(lib) = library() else { return };
    let server = Server::start(lib, &[]);
    let (st, v) = server.get("/health");
    assert_eq!((st, v["status"].as_str()), (200, Some("ok")));

    let (st, info) = server.get("/info");
    assert_eq!(st, 200);
    assert_eq!(info["papers"], 40);
    assert_eq!(info["precision"], "f32");
    assert_eq!(info["model"]["dim"], 384);

    for mode in ["dense", "keyword", "hybrid", "sentences"] {
        let (st, v) = server.post(
            "/search",
            &json!({"query": "neural networks", "k": 5, "mode": mode}),
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["results"].as_array().unwrap().len(), 5, "{mode}: {v}");
    }
    let (_, v) = server.post("/search", &json!({"query": "learning"}));
    let first = v["results"][0].clone();
    let id = first["id"].as_str().unwrap();
    assert!(first["title"].is_string() && first["score"].is_number());
    assert!(first.get("why").is_none(), "why only when asked");

    // With "why", each result names the paper's sentence closest to the query.
    let (st, w) = server.post("/search", &json!({"query": "learning", "why": true}));
    assert_eq!(st, 200, "{w}");
    assert_eq!(
        w["results"][0]["id"], first["id"],
        "explaining does not reorder"
    );
    for r in w["results"].as_array().unwrap() {
        assert_eq!(r["why"]["source"], "query", "{r}");
        assert!(
            !r["why"]["paper_sentence"].as_str().unwrap().is_empty(),
            "{r}"
        );
    }

    let (st, p) = server.get(&format!("/papers/{id}"));
    assert_eq!(st, 200);
    assert_eq!(p["id"], id);
    assert!(p["abstract"].as_str().unwrap().len() > 20);

    let (st, v) = server.get(&format!("/papers/{id}/similar?k=4&mode=dense"));
    assert_eq!(st, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|r| r["id"] != id));

    // Filters: a date bound every result must respect.
    let (st, v) = server.post(
        "/search",
        &json!({"query": "learning", "k": 10, "filters": {"since": "2015"}}),
    );
    assert_eq!(st, 200, "{v}");
    for r in v["results"].as_array().unwrap() {
        assert!(r["date"].as_str().unwrap() >= "2015", "{r}");
    }

    for format in ["markdown", "bibtex"] {
        let (st, v) = server.post(
            "/related",
            &json!({"abstract": "We learn representations of graphs with neural networks.",
                    "seeds": [id], "k": 5, "diversity": 0.3, "format": format}),
        );
        assert_eq!(st, 200, "{v}");
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 5);
        assert!(results
            .iter()
            .all(|r| r["id"] != id && r["why"].is_object()));
        let text = v["text"].as_str().unwrap();
        match format {
            "markdown" => assert!(
                text.starts_with("1. [") && text.contains("\n5. ["),
                "{text}"
            ),
            _ => assert_eq!(text.matches("@misc{").count(), 5, "{text}"),
        }
    }

    let (st, body) = request(server.addr, "GET", "/metrics", None);
    assert_eq!(st, 200);
    let m = String::from_utf8(body).unwrap();
    assert!(
        m.contains("papersim_http_requests_total{route=\"/search\",status=\"200\"}"),
        "{m}"
    );
    assert!(m.contains("papersim_http_request_duration_seconds_bucket{route=\"/papers/{id}/similar\",le=\"+Inf\"} 1"), "{m}");
    assert!(m.contains("papersim_queue_depth "), "{m}");
    assert!(m.contains("papersim_embed_batch_texts_count "), "{m}");

    // The page and its assets are served from the binary.
    let (st, html) = request(server.addr, "GET", "/", None);
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&html).contains("<script src=\"/app.js\">"));
    assert_eq!(request(server.addr, "GET", "/app.js", None).0, 200);
    assert_eq!(request(server.addr, "GET", "/style.css", None).0, 200);
}

#[test]
fn bad_requests_get_json_errors_and_never_wedge_the_server() {
    let Some(lib) = library() else { return };
    let server = Server::start(lib, &["--max-inputs", "4", "--max-body-bytes", "20000"]);
    let long = "word ".repeat(400);
    // (path, body, status, field)
    let cases: Vec<(&str, Value, u16, Option<&str>)> = vec![
        ("/search", json!({"k": 3}), 422, Some("query")),
        ("/search", json!({"query": 5}), 422, Some("query")),
        ("/search", json!({"query": "x", "k": 0}), 422, Some("k")),
        (
            "/search",
            json!({"query": "x", "k": 100000}),
            422,
            Some("k"),
        ),
        ("/search", json!({"query": "x", "k": -1}), 422, Some("k")),
        (
            "/search",
            json!({"query": "x", "mode": "semantic"}),
            422,
            Some("mode"),
        ),
        (
            "/search",
            json!({"query": "x", "filters": {"since": "last year"}}),
            422,
            Some("filters.since"),
        ),
        (
            "/search",
            json!({"query": "x", "filters": {"categories": "cs.CL"}}),
            422,
            Some("filters.categories"),
        ),
        ("/search", json!({"query": "   "}), 422, Some("query")),
        ("/embed", json!({"inputs": []}), 422, Some("inputs")),
        ("/embed", json!({"inputs": [1, "a"]}), 422, Some("inputs")),
        (
            "/embed",
            json!({"inputs": ["a", "b", "c", "d", "e"]}),
            413,
            Some("inputs"),
        ),
        (
            "/embed",
            json!({"inputs": [long.clone()], "truncate": false}),
            413,
            Some("inputs[0]"),
        ),
        (
            "/embed",
            json!({"inputs": "a", "normalize": false}),
            422,
            Some("normalize"),
        ),
        (
            "/v1/embeddings",
            json!({"input": [[1, 2, 3]], "model": "m"}),
            422,
            None,
        ),
        ("/related", json!({"k": 3}), 422, None),
        ("/related", json!({"seeds": ["no-such-paper"]}), 404, None),
        (
            "/related",
            json!({"query": "x", "diversity": 2.0}),
            422,
            Some("diversity"),
        ),
        (
            "/related",
            json!({"query": "x", "format": "docx"}),
            422,
            Some("format"),
        ),
    ];
    for (path, body, status, field) in &cases {
        let (st, v) = server.post(path, body);
        assert_eq!(st, *status, "{path} {body}: {v}");
        let err = if v["error"].is_object() {
            &v["error"]["message"]
        } else {
            &v["error"]
        };
        assert!(err.as_str().is_some_and(|e| !e.is_empty()), "{v}");
        if let Some(f) = field {
            let got = v.get("field").or_else(|| v["error"].get("param"));
            assert_eq!(got.and_then(Value::as_str), Some(*f), "{path} {body}: {v}");
        }
    }
    // A long input is truncated by default, as sentence-transformers does.
    let (st, _) = server.post("/embed", &json!({"inputs": [long]}));
    assert_eq!(st, 200);

    // Broken JSON is a 400; an oversized body a 413; both JSON errors.
    for (body, status) in [
        (&b"{\"query\": "[..], 400),
        (b"not json at all", 400),
        (b"{\"query\": \"x\"} trailing", 400),
        (&vec![b' '; 30_000][..], 413),
    ] {
        let (st, v) = parse(request(server.addr, "POST", "/search", Some(body)));
        assert_eq!(st, status, "{v}");
        assert!(v["error"].is_string(), "{v}");
    }
    // Unknown paper (with a suggestion), unknown route, wrong method.
    let (st, v) = server.get("/papers/no-such-id");
    assert_eq!(st, 404, "{v}");
    assert_eq!(server.get("/nope").0, 404);
    assert_eq!(request(server.addr, "GET", "/search", None).0, 405);
    let (st, _) = request(server.addr, "GET", "/papers/x/similar?k=abc", None);
    assert_eq!(st, 422);

    // Connections that stop mid-request or speak garbage.
    for msg in [
        &b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"qu"[..],
        b"\x00\x01\x02 garbage \r\n\r\n",
    ] {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(msg).unwrap();
        drop(s);
    }
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"BREW /coffee HTCPCP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );

    // Still serving, embeddings included.
    assert_eq!(server.get("/health").0, 200);
    assert_eq!(
        server.post("/embed", &json!({"inputs": "still alive"})).0,
        200
    );
}

#[test]
fn concurrent_embeddings_share_forwards_and_overload_is_a_429() {
    let Some(lib) = library() else { return };
    let server = Server::start(lib, &[]);
    let addr = server.addr;
    let burst = |n: usize, texts: usize| -> Vec<u16> {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                std::thread::spawn(move || {
                    let inputs: Vec<String> = (0..texts)
                        .map(|j| format!("request {i} text {j}: {}", TEXTS[j % 3].repeat(6)))
                        .collect();
                    let body = json!({ "inputs": inputs }).to_string();
                    request(addr, "POST", "/embed", Some(body.as_bytes())).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    };
    let statuses = burst(32, 2);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let m = String::from_utf8(request(addr, "GET", "/metrics", None).1).unwrap();
    // Fewer merged calls than requests: some forwards served several requests.
    let count = |name: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in {m}"))
    };
    let calls = count("papersim_embed_batch_requests_count ");
    let requests = count("papersim_embed_batch_requests_sum ");
    assert!(requests >= 32.0, "{m}");
    assert!(calls < requests, "{calls} calls for {requests} requests");
    drop(server);

    // A queue that holds almost nothing refuses the excess with 429, never 5xx.
    let server = Server::start(lib, &["--max-queued-tokens", "100"]);
    let addr = server.addr;
    let handles: Vec<_> = (0..24)
        .map(|i| {
            std::thread::spawn(move || {
                let inputs: Vec<String> = (0..8)
                    .map(|j| format!("{i} {j} {}", TEXTS[0].repeat(10)))
                    .collect();
                let body = json!({ "inputs": inputs }).to_string();
                request(addr, "POST", "/embed", Some(body.as_bytes())).0
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 429),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert_eq!(server.post("/embed", &json!({"inputs": "after"})).0, 200);
}

#[test]
fn a_new_generation_is_picked_up_without_failing_requests_and_sigterm_finishes_in_flight() {
    if common::model_dir().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    build_library(&lib, 30);
    let server = Server::start(&lib, &[]);
    assert_eq!(server.get("/health").1["papers"], 30);

    // Clients keep querying while the library is rebuilt with more papers.
    let addr = server.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = json!({"query": "neural networks", "k": 5}).to_string();
                    statuses.push(request(addr, "POST", "/search", Some(body.as_bytes())).0);
                }
                statuses
            })
        })
        .collect();
    build_library(&lib, 45);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = server.get("/health");
        if v["papers"] == 45 {
            assert_eq!(v["generation"], 2);
            break;
        }
        assert!(Instant::now() < deadline, "never switched: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(statuses.len() > 3);
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let (_, v) = server.post("/search", &json!({"query": "neural networks", "k": 50}));
    assert_eq!(v["results"].as_array().unwrap().len(), 45);

    // SIGTERM while a slow request (a related list with explanations) runs:
    // it is answered, then the server exits 0.
    let draft = TEXTS.join(" ").repeat(4);
    let slow = std::thread::spawn(move || {
        let body = json!({"abstract": draft, "k": 30}).to_string();
        request(addr, "POST", "/related", Some(body.as_bytes())).0
    });
    std::thread::sleep(Duration::from_millis(150));
    let mut server = server;
    server.signal("-TERM");
    assert_eq!(slow.join().unwrap(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // The port is closed.
    assert!(TcpStream::connect(addr).is_err());
}

/// Rows of `set` in a fixture model's st-reference.json (sentence-transformers' vectors).
fn st_vectors(model: &Path, set: &str) -> Vec<Vec<f32>> {
    let text = std::fs::read_to_string(model.join("st-reference.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["sets"][set]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect()
}

#[test]
fn prompt_names_and_retrieve_model_on_a_model_with_prompts() {
    // The tiny fixture with prompts {"query", "document", "classification"}
    // and default_prompt_name "classification": no download, no ../shared.
    let model = common::root().join("tests/fixtures/models/bert-prompts");
    let refs: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("st-reference.json")).unwrap())
            .unwrap();
    let texts: Vec<String> = refs["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("papers.jsonl");
    let lines: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": format!("p{i}"), "title": format!("Paper {i}"), "abstract": t}).to_string()
        })
        .collect();
    std::fs::write(&corpus, lines.join("\n") + "\n").unwrap();
    let lib = tmp.path().join("lib");
    common::build_ok(&corpus, &lib, &["--model", common::s(&model)]);
    let server = Server::start(&lib, &[]);

    let close = |got: &Value, want: &[Vec<f32>]| {
        let got = got.as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let c = common::cosine(&floats(g), w);
            assert!(c >= 0.9999, "cosine {c} to sentence-transformers");
        }
    };
    // TEI's prompt_name, and the default_prompt_name's prompt without it.
    let (st, v) = server.post("/embed", &json!({"inputs": texts, "prompt_name": "query"}));
    assert_eq!(st, 200, "{v}");
    close(&v, &st_vectors(&model, "prompt:query"));
    let (st, v) = server.post("/", &json!({"inputs": texts}));
    assert_eq!(st, 200, "{v}");
    close(&v, &st_vectors(&model, "plain"));
    let (st, v) = server.post(
        "/v1/embeddings",
        &json!({"input": texts, "encoding_format": "float"}),
    );
    assert_eq!(st, 200, "{v}");
    let data: Vec<Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["embedding"].clone())
        .collect();
    close(&json!(data), &st_vectors(&model, "plain"));
    // An unknown prompt name is a 422 naming the field and the model's prompts.
    let (st, v) = server.post("/embed", &json!({"inputs": "a", "prompt_name": "title"}));
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["field"], "prompt_name");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("\"title\"") && msg.contains("classification, document, query"),
        "{msg}"
    );

    // /search embeds its query with the query prompt: a paper's own text is
    // not a cosine of 1 (its vector had "passage: " in front).
    let (st, v) = server.post(
        "/search",
        &json!({"query": format!("Paper 3. {}", texts[3]), "k": 1, "mode": "dense"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["results"][0]["id"], "p3", "{v}");
    let score = v["results"][0]["score"].as_f64().unwrap();
    assert!(score < 0.999, "the query prompt was not applied: {score}");

    let (_, info) = server.get("/info");
    assert_eq!(info["default_prompt_name"], "classification", "{info}");
    assert_eq!(info["prompts"]["document"], "passage: ", "{info}");
    assert_eq!(
        info["model"]["document_prompt"]["name"], "document",
        "{info}"
    );

    // OpenAI's retrieve-model: the served name (a folder's name), and a 404
    // in OpenAI's error shape for another.
    let (st, v) = server.get("/v1/models/bert-prompts");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["id"], "bert-prompts");
    assert_eq!(v["object"], "model");
    assert_eq!(v["owned_by"], "papersim");
    assert!(
        v["created"].as_u64().is_some_and(|t| t > 1_600_000_000),
        "{v}"
    );
    let (st, v) = server.get("/v1/models/org/other-model");
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(v["error"]["param"], "model", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("org/other-model"),
        "{v}"
    );
}

#[test]
fn a_non_loopback_address_needs_a_key_or_allow_anonymous() {
    let Some(lib) = library() else { return };
    // Refused before the model is loaded: at once, naming the ways out.
    for addr in ["0.0.0.0:8080", "[::]:8080", "192.168.1.20:8080"] {
        let started = Instant::now();
        let out = papersim(&["serve", "--library", common::s(lib), "--addr", addr]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{addr}: {}",
            common::stderr(&out)
        );
        let err = common::stderr(&out);
        for hint in [
            "without an API key",
            "--api-key-file",
            "PAPERSIM_API_KEY",
            "--allow-anonymous",
        ] {
            assert!(err.contains(hint), "{addr}: no {hint:?} in {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{addr}: slow refusal"
        );
    }
    // A weak key is refused by file and line, without repeating the key.
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, "# lab keys\n0123456789abcdef0123\nhunter2\n").unwrap();
    let out = papersim(&[
        "serve",
        "--library",
        common::s(lib),
        "--api-key-file",
        common::s(&keys),
    ]);
    let err = common::stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("keys.txt:3: a key of 7 characters"), "{err}");
    assert!(!err.contains("hunter2"), "the key leaked: {err}");

    // On purpose: it starts, and warns.
    let mut child = common::command(&["serve", "--library", common::s(lib)])
        .args(["--addr", "0.0.0.0:0", "--allow-anonymous"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    let mut out = child.stdout.take().unwrap();
    while out.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let _ = child.kill();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = child.wait();
    assert!(
        String::from_utf8_lossy(&line).contains("on http://0.0.0.0:"),
        "{line:?}"
    );
    assert!(
        err.contains("without an API key (--allow-anonymous)"),
        "{err}"
    );
}

#[test]
fn keys_rate_limits_and_cors() {
    let Some(lib) = library() else { return };
    let (k1, k2) = ("a3f1c9e27b5d4086a1c2", "9d8e7f6a5b4c3d2e1f00");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("{k1}\n{k2}\n")).unwrap();
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let server = Server::start(
        lib,
        &[
            "--api-key-file",
            common::s(&keys),
            "--client-rate",
            "0.5",
            "--client-burst",
            "3",
            "--cors-origin",
            "https://lab.example.org",
        ],
    );
    let get = |path: &str, headers: &[(&str, &str)]| {
        common::http::exchange(server.addr, "GET", path, headers, None)
    };
    let bearer1 = format!("Bearer {k1}");
    let bearer2 = format!("Bearer {k2}");
    let key1 = [("Authorization", bearer1.as_str())];
    let key2 = [("Authorization", bearer2.as_str())];

    assert_eq!(get("/health", &[]).status, 200);
    let no_key = get("/info", &[]);
    assert_eq!(no_key.status, 401);
    assert_eq!(no_key.header("www-authenticate"), Some("Bearer"));
    assert_eq!(no_key.json()["error_type"], "Unauthorized");
    // The key's client gets its burst, then 429 with the wait; the other key
    // has its own bucket.
    for _ in 0..3 {
        assert_eq!(get("/info", &key1).status, 200);
    }
    let limited = get("/info", &key1);
    assert_eq!(limited.status, 429, "{}", limited.head);
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    assert_eq!(get("/v1/models", &key2).status, 200);

    // CORS: an allowed origin's preflight (no key needed) and answers.
    let preflight = |origin: &str| {
        common::http::exchange(
            server.addr,
            "OPTIONS",
            "/search",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
            None,
        )
    };
    let ok = preflight("https://lab.example.org");
    assert_eq!(ok.status, 204, "{}", ok.head);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://lab.example.org")
    );
    assert!(ok
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    let other = preflight("https://elsewhere.example.org");
    assert_eq!(other.status, 403);
    assert_eq!(other.header("access-control-allow-origin"), None);
    let answer = common::http::exchange(
        server.addr,
        "POST",
        "/search",
        &[("Origin", "https://lab.example.org"), key2[0]],
        Some(br#"{"query": "graph neural networks", "k": 2}"#),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://lab.example.org")
    );

    let m = String::from_utf8(get("/metrics", &key2).body).unwrap();
    for (reason, at_least) in [("unauthorized", 1), ("client_rate", 1)] {
        let n: u64 = m
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("papersim_rejected_total{{reason=\"{reason}\"}} "))
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {reason} in {m}"));
        assert!(n >= at_least, "{reason}: {n}");
    }
}
