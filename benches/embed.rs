//! Forward pass and pooling at a few batch shapes, on the real model.
//! `cargo bench --bench embed` (skips with a message when the model is absent).

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use papersim::embed::{
    from_dir, Backend, CandleBert, CpuBert, DeviceSpec, Pooling, Precision, TokenBatch,
};

const SHAPES: [(usize, usize); 4] = [(1, 32), (8, 128), (16, 256), (32, 128)];

fn batch(b: usize, seq: usize) -> TokenBatch {
    let row: Vec<u32> = (0..seq as u32).map(|i| 1000 + i % 20000).collect();
    let rows: Vec<&[u32]> = (0..b).map(|_| row.as_slice()).collect();
    TokenBatch::pad(&rows, 0)
}

fn forward(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    let Ok(files) = from_dir(&dir, "all-MiniLM-L6-v2") else {
        eprintln!(
            "SKIPPED: no model at {} (run scripts/fetch-model.sh)",
            dir.display()
        );
        return;
    };
    let model = CandleBert::load(&files, DeviceSpec::Cpu, Precision::F32).expect("load model");
    let mut g = c.benchmark_group("forward");
    g.sample_size(10);
    for (b, seq) in SHAPES {
        let tb = batch(b, seq);
        g.throughput(Throughput::Elements((b * seq) as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{b}x{seq}")),
            &tb,
            |bench, tb| bench.iter(|| model.forward(tb).expect("forward")),
        );
    }
    g.finish();
}

fn pooling(c: &mut Criterion) {
    let mut g = c.benchmark_group("pooling");
    for (b, seq) in SHAPES {
        let tb = batch(b, seq);
        let hidden: Vec<f32> = (0..b * seq * 384).map(|i| (i % 97) as f32 * 0.01).collect();
        g.bench_function(format!("mean {b}x{seq}"), |bench| {
            bench.iter(|| Pooling::Mean.pool(&hidden, &tb.mask, tb.seq, 384))
        });
    }
    g.finish();
}

criterion_group!(benches, forward, pooling);
criterion_main!(benches);
