//! The embeddings are sentence-transformers': every reference text's vector,
//! computed by sentence-transformers' all-MiniLM-L6-v2, is matched with
//! cosine >= 0.9999, whatever the batching, and the tokenizer truncates to
//! the same token counts.

mod common;

use papersim::embed::{from_dir, BatchLimits, DeviceSpec, Embedder, Precision};

#[test]
fn embeddings_match_sentence_transformers_at_any_batch_size() {
    let (Some(dir), Some(refs)) = (common::model_dir(), common::references()) else {
        return;
    };
    let files = from_dir(&dir, "models/all-MiniLM-L6-v2").unwrap();
    let mut embedder = Embedder::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap();
    assert_eq!(embedder.info().max_seq_length, 256);
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();

    let ids = embedder.tokenize(&texts).unwrap();
    for (r, t) in refs.iter().zip(&ids) {
        assert_eq!(t.len(), r.n_tokens, "token count of {}", r.id);
    }

    // Default token-budget batches over every text; then one text per
    // forward and an odd size that mixes lengths, over every short text and
    // a slice of the abstracts (the full set at three batchings costs minutes).
    let subset: Vec<usize> = (0..refs.len())
        .filter(|&i| !refs[i].id.starts_with("abs-") || i % 8 == 0)
        .collect();
    let limits = [
        BatchLimits::default(),
        BatchLimits {
            max_tokens: usize::MAX,
            max_size: 1,
        },
        BatchLimits {
            max_tokens: 1500,
            max_size: 7,
        },
    ];
    for (pass, l) in limits.into_iter().enumerate() {
        let rows: Vec<usize> = if pass == 0 {
            (0..refs.len()).collect()
        } else {
            subset.clone()
        };
        let batch_texts: Vec<&str> = rows.iter().map(|&i| texts[i]).collect();
        embedder.set_limits(l);
        let (vectors, stats) = embedder.embed(&batch_texts, &|_| {}).unwrap();
        let dim = embedder.info().dim;
        let mut worst = (f32::MAX, "");
        for (&i, v) in rows.iter().zip(vectors.chunks_exact(dim)) {
            let r = &refs[i];
            let c = common::cosine(v, &r.embedding);
            if c < worst.0 {
                worst = (c, &r.id);
            }
        }
        println!(
            "batch limits {l:?}: min cosine {:.7} ({}), {} texts, padding ratio {:.3}",
            worst.0,
            worst.1,
            rows.len(),
            stats.padding_ratio()
        );
        assert!(worst.0 >= 0.9999, "{} has cosine {}", worst.1, worst.0);
    }
}
