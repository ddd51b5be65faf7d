//! `papersim bench index`: build time, memory, and recall@10 against exact
//! search with queries/s on one and two threads, over a sweep of `ef`.
//!
//! The last `queries` rows of the input are the queries and are not indexed,
//! so a query never finds itself. `scripts/bench-vs-hnswlib.sh` splits the
//! same way, so both libraries answer the same questions over the same rows.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::{exact_search, FlatGraph, HnswIndex, HnswParams, IndexError, Store};

pub const DEFAULT_EFS: [usize; 5] = [16, 32, 64, 128, 256];
pub const K: usize = 10;

#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub params: HnswParams,
    pub builder: GraphBuilder,
    pub queries: usize,
    pub efs: Vec<usize>,
}

/// What builds the graph being measured; queries always search it flat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GraphBuilder {
    /// `index::build`, what libraries use.
    #[default]
    Papersim,
    /// hnsw_rs (f16 store), what libraries used before format version 2:
    /// kept to show what the change bought.
    HnswRs,
}

impl std::str::FromStr for GraphBuilder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "papersim" => Ok(GraphBuilder::Papersim),
            "hnsw-rs" => Ok(GraphBuilder::HnswRs),
            _ => Err(format!(
                "unknown builder {s:?}: expected papersim or hnsw-rs"
            )),
        }
    }
}

impl std::fmt::Display for GraphBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            GraphBuilder::Papersim => "papersim",
            GraphBuilder::HnswRs => "hnsw-rs",
        })
    }
}

impl GraphBuilder {
    fn build(self, base: &[f32], dim: usize, params: &HnswParams) -> FlatGraph {
        match self {
            GraphBuilder::Papersim => super::build(base, dim, params),
            GraphBuilder::HnswRs => {
                let params = HnswParams {
                    store: Store::F16,
                    ..*params
                };
                HnswIndex::build(base, dim, params)
                    .flatten()
                    .with_codes(base.chunks_exact(dim), dim)
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub ef: usize,
    #[serde(rename = "recall@10")]
    pub recall_at_10: f64,
    pub qps_1t: f64,
    pub qps_2t: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexBench {
    pub source: String,
    pub indexed: usize,
    pub queries: usize,
    pub dim: usize,
    pub m: usize,
    pub ef_construction: usize,
    pub builder: GraphBuilder,
    pub build_threads: usize,
    pub build_s: f64,
    /// The process's peak resident set after the build (VmHWM), MB.
    pub peak_rss_mb: f64,
    /// The raw f32 vectors indexed, MB: what the graph's memory compares to.
    pub raw_vectors_mb: f64,
    /// Exact search (SIMD scan) queries/s on one thread, for scale.
    pub exact_qps_1t: f64,
    pub rows: Vec<BenchRow>,
}

/// Runs the benchmark on `vectors` (`rows * dim`, unit rows).
pub fn run(
    source: &str,
    vectors: &[f32],
    dim: usize,
    spec: &BenchSpec,
    progress: &dyn Fn(&str),
) -> IndexBench {
    let rows = vectors.len() / dim;
    let nq = spec.queries.min(rows / 2);
    let (base, queries) = vectors.split_at((rows - nq) * dim);
    let queries: Vec<&[f32]> = queries.chunks_exact(dim).collect();

    progress("exact ground truth");
    let start = Instant::now();
    let truth: Vec<Vec<usize>> = queries
        .par_iter()
        .map(|q| {
            exact_search(base, dim, q, K, &|_| true)
                .iter()
                .map(|n| n.row)
                .collect()
        })
        .collect();
    let exact_qps_1t =
        nq as f64 / start.elapsed().as_secs_f64() / rayon::current_num_threads() as f64;

    progress("building the graph");
    let start = Instant::now();
    let flat = spec.builder.build(base, dim, &spec.params);
    let build_s = start.elapsed().as_secs_f64();
    let peak_rss_mb = peak_rss_mb();

    let one = thread_pool(1);
    let two = thread_pool(2);
    let mut out = Vec::new();
    for &ef in &spec.efs {
        progress(&format!("searching, ef {ef}"));
        let search = |q: &&[f32]| flat.search(base, dim, q, K, ef, None);
        let start = Instant::now();
        let found: Vec<Vec<usize>> = one.install(|| {
            queries
                .iter()
                .map(|q| search(q).iter().map(|n| n.row).collect())
                .collect()
        });
        let qps_1t = nq as f64 / start.elapsed().as_secs_f64();
        let start = Instant::now();
        two.install(|| queries.par_iter().for_each(|q| drop(search(q))));
        let qps_2t = nq as f64 / start.elapsed().as_secs_f64();
        out.push(BenchRow {
            ef,
            recall_at_10: recall(&truth, &found),
            qps_1t,
            qps_2t,
        });
    }
    IndexBench {
        source: source.to_string(),
        indexed: rows - nq,
        queries: nq,
        dim,
        m: spec.params.m,
        ef_construction: spec.params.ef_construction,
        builder: spec.builder,
        build_threads: rayon::current_num_threads(),
        build_s,
        peak_rss_mb,
        raw_vectors_mb: base.len() as f64 * 4.0 / 1e6,
        exact_qps_1t,
        rows: out,
    }
}

fn thread_pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap_or_else(|_| {
            rayon::ThreadPoolBuilder::new()
                .build()
                .expect("a thread pool")
        })
}

/// Fraction of the true top-k found, over all queries.
pub fn recall(truth: &[Vec<usize>], found: &[Vec<usize>]) -> f64 {
    let total: usize = truth.iter().map(Vec::len).sum();
    let hit: usize = truth
        .iter()
        .zip(found)
        .map(|(t, f)| f.iter().filter(|r| t.contains(r)).count())
        .sum();
    hit as f64 / total.max(1) as f64
}

/// Peak resident set of this process (Linux VmHWM), MB; 0 elsewhere.
pub fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:") / 1024.0
}

/// Current resident set of this process (Linux VmRSS), MB; 0 elsewhere.
pub fn rss_mb() -> f64 {
    status_kb("VmRSS:") / 1024.0
}

fn status_kb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Deterministic clustered unit vectors (xorshift, no rand dependency): one
/// cluster per ~100 rows (20 at least), each point its centre plus noise, so
/// neighbours are about as close as real abstracts' (cosine ~0.7 within a
/// cluster). Uniform random vectors would make every neighbour equally far.
pub fn synthetic(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.max(1);
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let clusters = (rows / 100).clamp(20, 5000);
    let centers: Vec<f32> = (0..clusters * dim).map(|_| next()).collect();
    let mut out = Vec::with_capacity(rows * dim);
    for r in 0..rows {
        let c = &centers[(r % clusters) * dim..(r % clusters + 1) * dim];
        let mut v: Vec<f32> = c.iter().map(|x| x + 0.6 * next()).collect();
        crate::embed::normalize(&mut v);
        out.extend(v);
    }
    out
}

/// Reads a float32 `.npy` matrix (C order, little-endian) whose rows are unit
/// length; returns the data and the row length.
pub fn read_npy(path: &Path) -> Result<(Vec<f32>, usize), IndexError> {
    let bad = |reason: String| IndexError::Load {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut pre = [0u8; 10];
    f.read_exact(&mut pre)
        .map_err(|_| bad("not a .npy file (too short)".into()))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (bad magic)".into()));
    }
    let hlen = match pre[6] {
        1 => u16::from_le_bytes([pre[8], pre[9]]) as usize,
        2 | 3 => {
            let mut more = [0u8; 2];
            f.read_exact(&mut more)
                .map_err(|_| bad("truncated header".into()))?;
            u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]) as usize
        }
        v => return Err(bad(format!(".npy version {v} is not supported"))),
    };
    if hlen > 1 << 16 {
        return Err(bad(format!("header of {hlen} bytes is not plausible")));
    }
    let mut header = vec![0u8; hlen];
    f.read_exact(&mut header)
        .map_err(|_| bad("truncated header".into()))?;
    let header = String::from_utf8_lossy(&header);
    if !header.contains("'descr': '<f4'") {
        return Err(bad(format!(
            "dtype must be little-endian float32 ('<f4'); header: {}",
            header.trim()
        )));
    }
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-order arrays are not supported".into()));
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in the header".into()))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad(format!("bad shape ({shape})"))))
        .collect::<Result<_, _>>()?;
    let [rows, dim] = dims[..] else {
        return Err(bad(format!("expected a 2-d matrix, shape is ({shape})")));
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| bad(e.to_string()))?;
    if bytes.len() != rows * dim * 4 || dim == 0 {
        return Err(bad(format!(
            "{} data bytes for shape ({rows}, {dim}); expected {}",
            bytes.len(),
            rows * dim * 4
        )));
    }
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(r) = data
        .chunks_exact(dim)
        .position(|v| !crate::embed::is_unit(v))
    {
        return Err(bad(format!(
            "row {r} is not unit length (zero, NaN, or not L2-normalised)"
        )));
    }
    Ok((data, dim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_found_true_neighbours() {
        let truth = vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]];
        let found = vec![vec![1, 2, 9, 4], vec![8, 7, 6, 5]];
        assert_eq!(recall(&truth, &found), 7.0 / 8.0);
    }

    #[test]
    fn npy_round_trip_and_bad_rows_are_named() {
        let dim = 8;
        let v = synthetic(30, dim, 5);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("v.npy");
        let mut bytes = crate::store::npy_header(30, dim);
        bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        std::fs::write(&path, &bytes).unwrap();
        let (back, d) = read_npy(&path).unwrap();
        assert_eq!((back, d), (v.clone(), dim));

        let mut zeroed = bytes.clone();
        let at = bytes.len() - dim * 4 * 3;
        zeroed[at..at + dim * 4].fill(0);
        std::fs::write(&path, &zeroed).unwrap();
        let e = read_npy(&path).unwrap_err().to_string();
        assert!(e.contains("row 27"), "{e}");
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read_npy(&path).is_err());
    }

    #[test]
    fn builder_names_round_trip() {
        for b in [GraphBuilder::Papersim, GraphBuilder::HnswRs] {
            assert_eq!(b.to_string().parse::<GraphBuilder>(), Ok(b));
        }
        let e = "hnswlib".parse::<GraphBuilder>().unwrap_err();
        assert!(e.contains("papersim or hnsw-rs"), "{e}");
    }

    #[test]
    fn bench_reports_every_ef_with_sane_recall() {
        let v = synthetic(1200, 16, 11);
        for builder in [GraphBuilder::Papersim, GraphBuilder::HnswRs] {
            let spec = BenchSpec {
                params: HnswParams::default(),
                builder,
                queries: 100,
                efs: vec![16, 128],
            };
            let r = run("synthetic", &v, 16, &spec, &|_| {});
            assert_eq!((r.indexed, r.queries), (1100, 100));
            assert_eq!(r.rows.len(), 2);
            assert!(r.rows[1].recall_at_10 >= r.rows[0].recall_at_10 - 0.02);
            assert!(r.rows[1].recall_at_10 > 0.9, "{builder:?}: {:?}", r.rows);
            assert!(r.rows.iter().all(|x| x.qps_1t > 0.0 && x.qps_2t > 0.0));
        }
    }
}
