//! `papersim bench index`: build time, memory, and recall@10 against exact
//! search with queries/s on one and two threads, over a sweep of `ef`.
//!
//! The last `queries` rows of the input are the queries and are not indexed,
//! so a query never finds itself. `scripts/bench-vs-hnswlib.sh` splits the
//! same way, so both libraries answer the same questions over the same rows.
//!
//! Also [`library_memory`]: the resident size of an opened library.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::index::{exact_search, FlatGraph, HnswParams};
use crate::store::{Library, StoreError};

pub use crate::index::{recall, synthetic};

/// Why `bench index` could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// [`read_npy`] could not open `path`, or it is not a little-endian
    /// float32, C-order, two-dimensional `.npy` matrix.
    #[error("{}: {reason}", path.display())]
    Npy {
        /// The `.npy` file being read.
        path: PathBuf,
        /// What was wrong with it, for the user.
        reason: String,
    },
    /// [`GraphBuilder::HnswRs`] was asked for, but this binary was built
    /// without the `hnsw-rs` feature.
    #[error("--builder hnsw-rs needs a papersim built with --features hnsw-rs")]
    NoHnswRs,
    /// [`library_memory`] could not open the library.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The `ef` values swept when none are given: search breadth from fast and
/// rough to slow and near-exact.
pub const DEFAULT_EFS: [usize; 5] = [16, 32, 64, 128, 256];
/// Neighbours asked of every search; recall is measured at this depth
/// (recall@10).
pub const K: usize = 10;

/// What [`run`] measures.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// The graph's construction parameters (`m`, `ef_construction`).
    pub params: HnswParams,
    /// What builds the graph.
    pub builder: GraphBuilder,
    /// Query rows taken from the end of the input and left out of the
    /// graph; capped at half the rows.
    pub queries: usize,
    /// The search breadths to sweep, one [`BenchRow`] each.
    pub efs: Vec<usize>,
}

/// What builds the graph being measured; queries always search it flat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GraphBuilder {
    /// `index::build`, what libraries use.
    #[default]
    Papersim,
    /// The hnsw_rs crate's insertion (f16 store), measured against ours.
    /// Needs the `hnsw-rs` feature.
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
    /// Whether this papersim can build with it: hnsw_rs is compiled in only
    /// with the `hnsw-rs` feature.
    fn check(self) -> Result<(), BenchError> {
        match self {
            GraphBuilder::HnswRs if cfg!(not(feature = "hnsw-rs")) => Err(BenchError::NoHnswRs),
            _ => Ok(()),
        }
    }

    fn build(self, base: &[f32], dim: usize, params: &HnswParams) -> FlatGraph {
        match self {
            #[cfg(feature = "hnsw-rs")]
            GraphBuilder::HnswRs => super::hnsw_rs::build(base, dim, params),
            // Without the feature, `check` refused hnsw_rs before this.
            _ => crate::index::build(base, dim, params),
        }
    }
}

/// The graph's search quality and speed at one `ef`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// Search breadth: candidates kept while searching (at least [`K`]
    /// useful).
    pub ef: usize,
    /// Fraction of the exact top-[`K`] the graph found, over all queries
    /// (0 to 1).
    #[serde(rename = "recall@10")]
    pub recall_at_10: f64,
    /// Queries per second answered one at a time on one thread.
    pub qps_1t: f64,
    /// Queries per second with two threads searching in parallel.
    pub qps_2t: f64,
}

/// The result of one [`run`]: the build's cost and one [`BenchRow`] per
/// `ef`.
#[derive(Debug, Clone, Serialize)]
pub struct IndexBench {
    /// Where the vectors came from (a library or `.npy` path, or
    /// `synthetic N x 384`), for the report.
    pub source: String,
    /// Rows in the graph: the input rows less the queries.
    pub indexed: usize,
    /// Query rows, taken from the end of the input.
    pub queries: usize,
    /// Floats per vector.
    pub dim: usize,
    /// HNSW links per node the graph was built with.
    pub m: usize,
    /// HNSW construction breadth the graph was built with.
    pub ef_construction: usize,
    /// What built the graph.
    pub builder: GraphBuilder,
    /// Threads in the rayon pool that built the graph.
    pub build_threads: usize,
    /// Wall-clock seconds the graph build took.
    pub build_s: f64,
    /// The process's peak resident set after the build (VmHWM), MB.
    pub peak_rss_mb: f64,
    /// The raw f32 vectors indexed, MB: what the graph's memory compares to.
    pub raw_vectors_mb: f64,
    /// Exact search (SIMD scan) queries/s on one thread, for scale.
    pub exact_qps_1t: f64,
    /// One row per swept `ef`, in [`BenchSpec::efs`] order.
    pub rows: Vec<BenchRow>,
}

/// Runs the benchmark on `vectors` (`rows * dim`, unit rows).
pub fn run(
    source: &str,
    vectors: &[f32],
    dim: usize,
    spec: &BenchSpec,
    progress: &dyn Fn(&str),
) -> Result<IndexBench, BenchError> {
    spec.builder.check()?;
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
    Ok(IndexBench {
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
    })
}

/// The resident memory of an opened library, measured by
/// [`library_memory`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LibraryMemory {
    /// Seconds `Library::open` took.
    pub open_s: f64,
    /// Resident set growth after opening, MB.
    pub opened_mb: f64,
    /// Resident set growth after 1,000 searches through its graph, MB.
    pub queried_mb: f64,
    /// The library's raw f32 vectors, MB: what the figures compare to.
    pub raw_vectors_mb: f64,
}

impl std::fmt::Display for LibraryMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let (open_s, opened, queried, raw) = (
            self.open_s,
            self.opened_mb,
            self.queried_mb,
            self.raw_vectors_mb,
        );
        write!(
            f,
            "open library: {open_s:.2} s, resident {opened:.0} MB after open, {queried:.0} MB \
             after 1,000 searches; raw f32 vectors {raw:.0} MB ({:.2}x)",
            queried / raw
        )
    }
}

/// Opens the library at `dir` and measures its resident size: after
/// opening, and after 1,000 searches through its own graph (which touch its
/// pages). Call it first, while the process holds nothing else, or the
/// figures count that too. Returns them with the library's live vectors
/// (`rows * dim`) and `dim`, for [`run`].
pub fn library_memory(dir: &Path) -> Result<(LibraryMemory, Vec<f32>, usize), BenchError> {
    let before = rss_mb();
    let start = Instant::now();
    let lib = Library::open(dir)?;
    let open_s = start.elapsed().as_secs_f64();
    let opened_mb = rss_mb() - before;
    let v = lib.vectors();
    let dim = v.dim();
    for r in (0..lib.len()).step_by((lib.len() / 1000).max(1)) {
        drop(
            lib.graph()
                .search(v.as_slice(), dim, v.row(r), 10, 64, None),
        );
    }
    let queried_mb = rss_mb() - before;
    let memory = LibraryMemory {
        open_s,
        opened_mb,
        queried_mb,
        raw_vectors_mb: lib.len() as f64 * dim as f64 * 4.0 / 1e6,
    };
    let mut live = Vec::with_capacity(lib.live_len() * dim);
    for r in (0..lib.len()).filter(|&r| lib.is_live(r)) {
        live.extend_from_slice(v.row(r));
    }
    Ok((memory, live, dim))
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

/// Reads a float32 `.npy` matrix (C order, little-endian) whose rows are unit
/// length; returns the data and the row length.
pub fn read_npy(path: &Path) -> Result<(Vec<f32>, usize), BenchError> {
    let bad = |reason: String| BenchError::Npy {
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

    #[cfg(not(feature = "hnsw-rs"))]
    #[test]
    fn hnsw_rs_without_the_feature_says_how_to_get_it() {
        let spec = BenchSpec {
            params: HnswParams::default(),
            builder: GraphBuilder::HnswRs,
            queries: 10,
            efs: vec![16],
        };
        let e = run("synthetic", &synthetic(100, 8, 1), 8, &spec, &|_| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--builder hnsw-rs needs a papersim built with --features hnsw-rs"
        );
    }

    #[test]
    fn bench_reports_every_ef_with_sane_recall() {
        let v = synthetic(1200, 16, 11);
        let builders: &[GraphBuilder] = if cfg!(feature = "hnsw-rs") {
            &[GraphBuilder::Papersim, GraphBuilder::HnswRs]
        } else {
            &[GraphBuilder::Papersim]
        };
        for &builder in builders {
            let spec = BenchSpec {
                params: HnswParams::default(),
                builder,
                queries: 100,
                efs: vec![16, 128],
            };
            let r = run("synthetic", &v, 16, &spec, &|_| {}).unwrap();
            assert_eq!((r.indexed, r.queries), (1100, 100));
            assert_eq!(r.rows.len(), 2);
            assert!(r.rows[1].recall_at_10 >= r.rows[0].recall_at_10 - 0.02);
            assert!(r.rows[1].recall_at_10 > 0.9, "{builder:?}: {:?}", r.rows);
            assert!(r.rows.iter().all(|x| x.qps_1t > 0.0 && x.qps_2t > 0.0));
        }
    }
}
