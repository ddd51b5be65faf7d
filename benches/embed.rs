//! Forward pass, dense-layer kernels and pooling at a few shapes, on the
//! real model. `cargo bench --bench embed` (the forward groups skip with a
//! message when the model is absent); `cargo bench --bench embed -- dense`
//! for the kernels alone (f32 against int8, one thread).

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use papersim::embed::{
    from_dir, Backend, CandleBert, CpuBert, DenseBench, DeviceSpec, ModelFiles, Pooling, Precision,
    TokenBatch,
};

const SHAPES: [(usize, usize); 4] = [(1, 32), (8, 128), (16, 256), (32, 128)];

fn batch(b: usize, seq: usize) -> TokenBatch {
    let row: Vec<u32> = (0..seq as u32).map(|i| 1000 + i % 20000).collect();
    let rows: Vec<&[u32]> = (0..b).map(|_| row.as_slice()).collect();
    TokenBatch::pad(&rows, 0)
}

fn model() -> Option<ModelFiles> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    match from_dir(&dir, "all-MiniLM-L6-v2") {
        Ok(f) => Some(f),
        Err(_) => {
            eprintln!(
                "SKIPPED: no model at {} (run scripts/fetch-model.sh)",
                dir.display()
            );
            None
        }
    }
}

fn run_shapes(c: &mut Criterion, group: &str, model: &dyn Backend, shapes: &[(usize, usize)]) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for &(b, seq) in shapes {
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

/// candle's BertModel, the reference.
fn forward(c: &mut Criterion) {
    let Some(files) = model() else { return };
    let model = CandleBert::load(&files, DeviceSpec::Cpu, Precision::F32).expect("load model");
    run_shapes(c, "forward", &model, &SHAPES);
}

/// CpuBert, f32 against int8, on the shapes a build runs most (abstracts
/// of ~240 tokens) and a short query.
fn cpu_forward(c: &mut Criterion) {
    let Some(files) = model() else { return };
    for p in [Precision::F32, Precision::Int8] {
        let model = CpuBert::load(&files, None, p).expect("load model");
        run_shapes(
            c,
            &format!("cpu_forward_{p}"),
            &model,
            &[(1, 32), (16, 256)],
        );
    }
}

/// The dense layers of all-MiniLM-L6-v2 on 240 tokens, one thread: QKV,
/// attention output, FFN in (with GELU), FFN out.
fn dense(c: &mut Criterion) {
    let tokens = 240;
    let shapes = [
        (1152, 384, false, "qkv"),
        (384, 384, false, "attn_out"),
        (1536, 384, true, "ffn_in_gelu"),
        (384, 1536, false, "ffn_out"),
    ];
    let mut g = c.benchmark_group("dense");
    g.sample_size(20);
    for (m, k, gelu, name) in shapes {
        // Multiply-adds x 2: GFLOP/s (or GOP/s for int8) in the report.
        g.throughput(Throughput::Elements(2 * (m * k * tokens) as u64));
        for p in [Precision::F32, Precision::Int8] {
            let mut d = DenseBench::new(m, k, tokens, gelu, p).expect("bench setup");
            g.bench_function(format!("{name} {m}x{k} {p}"), |bench| {
                bench.iter(|| d.run())
            });
        }
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

criterion_group!(benches, forward, cpu_forward, dense, pooling);
criterion_main!(benches);
