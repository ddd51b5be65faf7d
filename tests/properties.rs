//! Property tests: batching is a partition within budget, embedding does not
//! depend on order or batching, exact search is a true top-k, and queries
//! on a fixed library are deterministic.

mod common;

use std::sync::OnceLock;

use papersim::embed::batch::{plan, BatchLimits};
use papersim::embed::{from_dir, DeviceSpec, Embedder, Precision};
use papersim::index::exact_search;
use papersim::query::{self, Mode, Options, Strategy};
use papersim::store::Library;
use proptest::prelude::*;

proptest! {
    #[test]
    fn batch_plans_partition_the_texts_within_budget(
        lengths in proptest::collection::vec(1usize..300, 0..200),
        max_tokens in 64usize..5000,
        max_size in 1usize..70,
    ) {
        let limits = BatchLimits { max_tokens, max_size };
        let p = plan(&lengths, limits);
        let mut seen: Vec<usize> = p.iter().flatten().copied().collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for b in &p {
            prop_assert!(!b.is_empty() && b.len() <= max_size);
            let width = b.iter().map(|&i| lengths[i]).max().unwrap();
            prop_assert!(b.len() == 1 || width * b.len() <= max_tokens);
        }
    }

    #[test]
    fn exact_search_is_the_true_top_k(
        raw in proptest::collection::vec(-1.0f32..1.0, 8 * 40),
        q in proptest::collection::vec(-1.0f32..1.0, 8),
        k in 0usize..50,
    ) {
        let hits = exact_search(&raw, 8, &q, k, &|_| true);
        let mut all: Vec<f32> = raw
            .chunks_exact(8)
            .map(|v| v.iter().zip(&q).map(|(a, b)| a * b).sum())
            .collect();
        all.sort_by(|a, b| b.total_cmp(a));
        prop_assert_eq!(hits.len(), k.min(40));
        for (h, want) in hits.iter().zip(&all) {
            prop_assert!((h.score - want).abs() < 1e-4);
        }
    }
}

fn embedder() -> Option<&'static Embedder> {
    static E: OnceLock<Option<Embedder>> = OnceLock::new();
    E.get_or_init(|| {
        let dir = common::model_dir()?;
        let files = from_dir(&dir, "all-MiniLM-L6-v2").ok()?;
        Embedder::load(&files, DeviceSpec::Cpu, Precision::F32).ok()
    })
    .as_ref()
}

const TEXTS: [&str; 10] = [
    "Contrastive learning of sentence embeddings.",
    "Graph neural networks predict molecular properties from atom and bond features.",
    "We study the sample complexity of reinforcement learning with linear function approximation, and prove matching upper and lower bounds.",
    "",
    "Transformers",
    "A survey of diffusion models for image synthesis, covering score matching, DDPM, latent diffusion and guidance.",
    "Protein structure prediction.",
    "日本語の論文の要約です。",
    "We propose a new optimiser. It converges faster. Experiments on ImageNet confirm it.",
    "Federated learning under differential privacy constraints with heterogeneous clients and partial participation.",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    #[test]
    fn embedding_does_not_depend_on_order_or_batching(
        keys in proptest::collection::vec(any::<u32>(), TEXTS.len()),
        max_size in 1usize..8,
    ) {
        let Some(e) = embedder() else { return Ok(()) };
        // A random permutation: the texts ordered by random keys.
        let mut order: Vec<usize> = (0..TEXTS.len()).collect();
        order.sort_by_key(|&i| keys[i]);
        let (canonical, _) = e.embed(&TEXTS, &|_| {}).unwrap();
        let shuffled: Vec<&str> = order.iter().map(|&i| TEXTS[i]).collect();
        let mut small = Embedder::load(
            &from_dir(&common::model_dir().unwrap(), "all-MiniLM-L6-v2").unwrap(),
            DeviceSpec::Cpu,
            Precision::F32,
        )
        .unwrap();
        small.set_limits(BatchLimits { max_tokens: 10_000, max_size });
        let (v, _) = small.embed(&shuffled, &|_| {}).unwrap();
        let dim = e.info().dim;
        for (pos, &i) in order.iter().enumerate() {
            let a = &v[pos * dim..(pos + 1) * dim];
            let b = &canonical[i * dim..(i + 1) * dim];
            prop_assert!(common::cosine(a, b) >= 0.9999, "text {} moved to {}", i, pos);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn queries_on_a_fixed_library_are_deterministic(
        paper in 0usize..61,
        k in 1usize..30,
        mode in prop_oneof![Just(Mode::Dense), Just(Mode::Keyword), Just(Mode::Hybrid)],
        ann in any::<bool>(),
    ) {
        let Some(dir) = common::hf_daily_library() else { return Ok(()) };
        let a = Library::open(dir).unwrap();
        let b = Library::open(dir).unwrap();
        let id = a.papers().id(paper).unwrap().to_string();
        let opts = Options {
            k,
            mode,
            strategy: if ann { Strategy::Ann } else { Strategy::Exact },
            ..Options::default()
        };
        let first = query::similar(&a, &id, &opts).unwrap();
        prop_assert_eq!(&first, &query::similar(&a, &id, &opts).unwrap());
        prop_assert_eq!(&first, &query::similar(&b, &id, &opts).unwrap());
        prop_assert!(first.iter().all(|h| h.id != id));
    }
}
