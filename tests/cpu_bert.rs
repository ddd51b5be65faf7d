//! CpuBert, the CPU encoder, against candle's BertModel (the reference
//! backend) on real token batches with padding: the hidden states of real
//! tokens agree within 1e-4, padded positions come back zero, and the thread
//! count does not change a single bit.

mod common;

use papersim::embed::{
    from_dir, Backend, CandleBert, CpuBert, DeviceSpec, Embedder, ModelFiles, Precision, TokenBatch,
};

const TEXTS: [&str; 5] = [
    "Attention is all you need.",
    "We present an efficient approach for leveraging the knowledge from multiple modalities in \
     training unimodal 3D convolutional neural networks for the task of dynamic hand gesture \
     recognition. Instead of explicitly combining multimodal information, which is commonplace \
     in many state-of-the-art methods, we propose a different framework in which we embed the \
     knowledge of multiple modalities in individual networks so that each unimodal network can \
     achieve an improved performance. In particular, we dedicate separate networks per available \
     modality and enforce them to collaborate and learn to develop networks with common semantics \
     and better representations. We introduce a spatiotemporal semantic alignment loss to align \
     the content of the features from different networks.",
    "Graph neural networks for molecule property prediction: a survey of message passing, \
     pooling and pre-training strategies.",
    "We study the sample complexity of learning halfspaces under Massart noise and give the \
     first polynomial-time algorithm with optimal misclassification error.",
    "x",
];

/// The token ids of TEXTS, as the embedder cuts them.
fn token_ids(files: &ModelFiles) -> Vec<Vec<u32>> {
    Embedder::load(files, DeviceSpec::Cpu, Precision::F32)
        .unwrap()
        .tokenize(&TEXTS)
        .unwrap()
}

/// Largest |cpu - candle| over real tokens; asserts padding is zero.
fn compare(cpu: &CpuBert, candle: &CandleBert, tb: &TokenBatch) -> f32 {
    let a = cpu.forward(tb).unwrap();
    let b = candle.forward(tb).unwrap();
    let dim = cpu.dim();
    assert_eq!(a.len(), tb.batch * tb.seq * dim);
    assert_eq!(a.len(), b.len());
    let mut worst = 0f32;
    for (cell, &m) in tb.mask.iter().enumerate() {
        let (x, y) = (&a[cell * dim..][..dim], &b[cell * dim..][..dim]);
        if m == 0 {
            assert!(
                x.iter().all(|&v| v == 0.0),
                "padded cell {cell} is not zero"
            );
        } else {
            for (p, q) in x.iter().zip(y) {
                worst = worst.max((p - q).abs());
            }
        }
    }
    worst
}

#[test]
fn hidden_states_match_candle_on_padded_batches() {
    let Some(dir) = common::model_dir() else {
        return;
    };
    let files = from_dir(&dir, "models/all-MiniLM-L6-v2").unwrap();
    let candle = CandleBert::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap();
    let cpu = CpuBert::load(&files, Some(2), Precision::F32).unwrap();
    assert_eq!(cpu.dim(), 384);
    let ids = token_ids(&files);
    let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();

    let mut batches = vec![
        TokenBatch::pad(&rows, 0),
        TokenBatch::pad(&rows[1..2], 0),
        TokenBatch::pad(&[rows[4], rows[0]], 0),
    ];
    // A hole in the mask: candle masks the key and keeps positions, as we must.
    let mut holed = TokenBatch::pad(&[rows[2], rows[3]], 0);
    holed.mask[3] = 0;
    batches.push(holed);
    // 400 tokens: attention's K dimension spans more than one K block.
    let long: Vec<u32> = (0..400u32).map(|i| 1000 + (i * 7919) % 20000).collect();
    batches.push(TokenBatch::pad(&[&long, rows[1]], 0));

    for tb in &batches {
        let worst = compare(&cpu, &candle, tb);
        println!(
            "{}x{}: max |cpu - candle| over real tokens {worst:.2e}",
            tb.batch, tb.seq
        );
        assert!(worst < 1e-4, "{worst}");
    }

    // Threads split the batch by rows; the maths per row is the same.
    let one = CpuBert::load(&files, Some(1), Precision::F32).unwrap();
    if std::env::var("PAPERSIM_THREADS").is_err() {
        assert_eq!(one.threads(), 1);
    }
    assert_eq!(
        one.forward(&batches[0]).unwrap(),
        cpu.forward(&batches[0]).unwrap()
    );
}

#[test]
fn bad_token_ids_are_errors_not_panics() {
    let Some(dir) = common::model_dir() else {
        return;
    };
    let files = from_dir(&dir, "models/all-MiniLM-L6-v2").unwrap();
    let cpu = CpuBert::load(&files, Some(1), Precision::F32).unwrap();
    let err = cpu
        .forward(&TokenBatch::pad(&[&[101, 1_000_000, 102]], 0))
        .unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
    let too_long: Vec<u32> = vec![1000; 600];
    let err = cpu.forward(&TokenBatch::pad(&[&too_long], 0)).unwrap_err();
    assert!(err.to_string().contains("max_position_embeddings"), "{err}");
    let empty = cpu.forward(&TokenBatch::pad(&[], 0)).unwrap();
    assert!(empty.is_empty());
}

/// The f16 path CUDA runs (`--device cuda --precision f16`), run here on
/// the CPU, where candle has the same f16 arithmetic: every vector is
/// finite and mean-pools to within cosine 0.999 of f32's, padded rows
/// included. candle's BertModel masked with f32::MIN cast to f16 (-inf),
/// and 0 * -inf made every f16 vector NaN.
#[test]
fn candle_f16_is_finite_and_matches_f32_on_padded_batches() {
    let Some(dir) = common::model_dir() else {
        return;
    };
    let files = from_dir(&dir, "models/all-MiniLM-L6-v2").unwrap();
    let f32_model = CandleBert::load(&files, DeviceSpec::Cpu, Precision::F32).unwrap();
    let f16_model = CandleBert::load(&files, DeviceSpec::Cpu, Precision::F16).unwrap();
    let ids = token_ids(&files);
    let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let tb = TokenBatch::pad(&rows, 0);
    let (a, b) = (
        f32_model.forward(&tb).unwrap(),
        f16_model.forward(&tb).unwrap(),
    );
    assert!(b.iter().all(|v| v.is_finite()), "f16 gave NaN or inf");
    let dim = f32_model.dim();
    let mean = |h: &[f32], row: usize| -> Vec<f32> {
        let mut m = vec![0f32; dim];
        let cells = (0..tb.seq).filter(|&s| tb.mask[row * tb.seq + s] == 1);
        let n = cells.clone().count() as f32;
        for s in cells {
            let cell = &h[(row * tb.seq + s) * dim..][..dim];
            m.iter_mut().zip(cell).for_each(|(x, &v)| *x += v / n);
        }
        m
    };
    for (row, text) in TEXTS.iter().enumerate() {
        let cos = common::cosine(&mean(&a, row), &mean(&b, row));
        println!("f16 vs f32, {} tokens: cosine {cos:.6}", rows[row].len());
        assert!(cos >= 0.999, "{text:?}: cosine {cos}");
    }
}
