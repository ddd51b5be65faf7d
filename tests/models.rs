//! Sentence-transformers models other than all-MiniLM-L6-v2: tiny
//! random-weight fixtures (built by scripts/make-test-models.py, with their
//! reference vectors) embedded to cosine >= 0.9999 on both CPU backends, and
//! architectures or modules papersim cannot run refused by name.

use std::path::{Path, PathBuf};

use papersim::embed::{from_dir, CandleBert, DeviceSpec, Embedder, Precision};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn references(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let vec = r["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (r["text"].as_str().unwrap().to_string(), vec)
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

fn check(name: &str, dim: usize) {
    let dir = fixture(name);
    let files = from_dir(&dir, name).unwrap();
    let refs = references(&dir);
    let texts: Vec<&str> = refs.iter().map(|r| r.0.as_str()).collect();
    let cpu = Embedder::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap();
    let candle = Embedder::with_backend(
        &files,
        Box::new(CandleBert::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap()),
    )
    .unwrap();
    for (label, e) in [("cpu", &cpu), ("candle", &candle)] {
        assert_eq!(e.info().dim, dim, "{name} {label}");
        let (v, _) = e.embed(&texts, &|_| {}).unwrap();
        for (i, (text, want)) in refs.iter().enumerate() {
            let got = &v[i * dim..(i + 1) * dim];
            let c = cosine(got, want);
            assert!(c >= 0.9999, "{name} {label}: cosine {c} on {text:?}");
        }
    }
}

#[test]
fn bert_with_cls_pooling_and_a_dense_head_matches_its_reference() {
    check("bert-cls-dense", 16);
}

#[test]
fn roberta_positions_start_after_the_padding_id() {
    check("roberta-mean", 32);
}

/// A copy of the BERT fixture with `edit` applied to it.
fn variant(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let src = fixture("bert-cls-dense");
    let tmp = tempfile::tempdir().unwrap();
    for sub in ["", "1_Pooling", "2_Dense"] {
        std::fs::create_dir_all(tmp.path().join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.path().is_file() {
                std::fs::copy(e.path(), tmp.path().join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    edit(tmp.path());
    tmp
}

#[test]
fn an_unsupported_architecture_is_refused_by_name() {
    let tmp = variant(|d| {
        let p = d.join("config.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("\"bert\"", "\"gpt2\"")).unwrap();
    });
    let err = from_dir(tmp.path(), "gpt2-like").unwrap_err().to_string();
    assert!(
        err.contains("\"gpt2\"") && err.contains("config.json"),
        "{err}"
    );
}

#[test]
fn an_unsupported_module_is_refused_by_name() {
    let tmp = variant(|d| {
        let p = d.join("modules.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            text.replace(
                "sentence_transformers.models.Dense",
                "sentence_transformers.models.LSTM",
            ),
        )
        .unwrap();
    });
    let err = from_dir(tmp.path(), "lstm").unwrap_err().to_string();
    assert!(
        err.contains("sentence_transformers.models.LSTM") && err.contains("modules.json"),
        "{err}"
    );
}
