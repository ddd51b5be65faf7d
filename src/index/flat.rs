//! The HNSW graph as flat arrays, for searching.
//!
//! hnsw_rs's search walks `Arc`-linked nodes behind `RwLock`s and keeps its
//! own copy of every vector: ~3x slower per query than hnswlib's flat
//! layout, and ~2.6x the raw vectors in memory. So the graph (built by
//! `build`, or copied out of an old library's hnsw_rs graph) is one CSR
//! adjacency list per layer (row ids, u32), searched here over the
//! library's own memory-mapped f32 vectors. That is ~130 bytes per paper
//! beside the vectors, the scores are exact f32 cosines, and loading it is
//! one read of a small file.
//!
//!
//! The walk itself scores rows against 8-bit codes of the vectors (one
//! scale per row), not the f32 vectors: a 384-d row is then 6 cache lines
//! instead of 24, and at 75k papers all codes (29 MB) stay near the core
//! where the f32 vectors (115 MB) come from memory: the f32 dot product was
//! 64% of a query, mostly stalled on those loads (perf). The best rows the
//! walk keeps are then re-scored with the f32 vectors, so a user still sees
//! exact cosines, and recall is the f32 walk's (see [`RESCORE`]). The codes
//! cost 1/4 of the raw vectors in memory.
//!
//! File layout (little-endian): b"PSIMGRAF" | u32 version | u64 rows |
//! u32 entry row | u32 layers, then per layer: (rows + 1) u32 offsets and
//! offsets[rows] u32 neighbour rows | (version 2) u32 code dim, 0 for no
//! codes, then rows f32 scales and rows * dim i8 codes | u32 crc32 of
//! everything before. Version 1 files (no codes) are searched in f32.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use memmap2::Mmap;

use super::{dot, dot_i8, prefetch, Neighbor};

/// How many of the walk's best rows (times k) are re-scored in f32. The
/// codes' error (~1e-3 in cosine) reorders near-ties only: on the 75k arXiv
/// vectors (1,000 held-out queries, ef 64 and 128) re-scoring 2k, 3k or all
/// `ef` rows gave the same recall@10 (0.9884, 0.9958), 1k lost 0.007.
const RESCORE: usize = 4;

const MAGIC: &[u8; 8] = b"PSIMGRAF";
const VERSION: u32 = 2;

/// One layer's adjacency: the neighbours of row r are
/// `ids[offsets[r]..offsets[r + 1]]`.
#[derive(Debug, Clone, PartialEq)]
struct Layer {
    offsets: Vec<u32>,
    ids: Vec<u32>,
}

impl Layer {
    fn of(&self, row: u32) -> &[u32] {
        let r = row as usize;
        match (self.offsets.get(r), self.offsets.get(r + 1)) {
            (Some(&a), Some(&b)) => self.ids.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlatGraph {
    rows: usize,
    entry: u32,
    /// layers[0] holds every row; higher layers fewer.
    layers: Vec<Layer>,
    codes: Option<Codes>,
}

/// Each row's vector as i8 codes with one scale: `v ≈ scale · code`,
/// symmetric, the largest |component| mapped to 127.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Codes {
    dim: usize,
    scale: Vec<f32>,
    q: CodeBytes,
}

/// The codes themselves: built in memory, or left in the mapped file they
/// were read from. Copying them out (29 MB at 75k papers, into fresh pages
/// the kernel must zero first) took 22% of a cold CLI search's CPU samples
/// (~20 ms of its wall time); mapped, a search touches only the pages of
/// the rows it visits.
#[derive(Clone)]
enum CodeBytes {
    Owned(Vec<i8>),
    Mapped {
        map: Arc<Mmap>,
        at: usize,
        len: usize,
    },
}

impl CodeBytes {
    fn as_slice(&self) -> &[i8] {
        match self {
            CodeBytes::Owned(v) => v,
            CodeBytes::Mapped { map, at, len } => bytemuck::cast_slice(&map[*at..*at + *len]),
        }
    }
}

impl PartialEq for CodeBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl std::fmt::Debug for CodeBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CodeBytes({} codes)", self.as_slice().len())
    }
}

impl Codes {
    pub(super) fn new<'a>(rows: impl Iterator<Item = &'a [f32]>, dim: usize) -> Self {
        let mut scale = Vec::new();
        let mut q = Vec::new();
        for v in rows {
            let (s, codes) = symmetric(v, 127.0);
            scale.push(s);
            q.extend(codes.map(|x| x as i8));
        }
        Codes {
            dim,
            scale,
            q: CodeBytes::Owned(q),
        }
    }

    fn row(&self, r: u32) -> &[i8] {
        &self.q.as_slice()[r as usize * self.dim..(r as usize + 1) * self.dim]
    }
}

/// How the walk scores a row against the query.
pub(super) trait Scorer {
    fn score(&self, r: u32) -> f32;
    fn prefetch(&self, r: u32);
}

/// Exact f32 cosines over the library's vectors.
struct F32Rows<'a> {
    vectors: &'a [f32],
    dim: usize,
    query: &'a [f32],
}

impl F32Rows<'_> {
    fn row(&self, r: u32) -> &[f32] {
        &self.vectors[r as usize * self.dim..(r as usize + 1) * self.dim]
    }
}

impl Scorer for F32Rows<'_> {
    fn score(&self, r: u32) -> f32 {
        dot(self.row(r), self.query)
    }
    fn prefetch(&self, r: u32) {
        prefetch(self.row(r));
    }
}

/// Approximate cosines from the codes, the query quantized to i16 (its own
/// rounding is ~1e-5 of the codes').
pub(super) struct CodedRows<'a> {
    codes: &'a Codes,
    query: Vec<i16>,
    /// A row's score is `dot · scale[row] · query_scale`.
    query_scale: f32,
}

impl<'a> CodedRows<'a> {
    pub(super) fn new(codes: &'a Codes, query: &[f32]) -> Self {
        // Keep |sum| = |q|·127·dim below 2³¹ so the i32 sums are exact.
        let limit = ((i32::MAX as usize) / (127 * codes.dim.max(1))).min(i16::MAX as usize);
        let (query_scale, q) = symmetric(query, limit as f32);
        CodedRows {
            codes,
            query: q.map(|x| x as i16).collect(),
            query_scale,
        }
    }
}

/// Symmetric quantization of `v` to whole numbers in ±`limit`: the scale
/// (largest |component| / limit; 0 for a zero or non-finite vector) and the
/// rounded values, as f32s for the caller to narrow.
fn symmetric(v: &[f32], limit: f32) -> (f32, impl Iterator<Item = f32> + '_) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / limit
    } else {
        0.0
    };
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    let values = v
        .iter()
        .map(move |x| (x * inv).round().clamp(-limit, limit));
    (scale, values)
}

impl Scorer for CodedRows<'_> {
    fn score(&self, r: u32) -> f32 {
        let s = self.codes.scale[r as usize] * self.query_scale;
        dot_i8(self.codes.row(r), &self.query) as f32 * s
    }
    fn prefetch(&self, r: u32) {
        prefetch(self.codes.row(r));
    }
}

/// A score with a total order, for the heaps.
#[derive(Clone, Copy, PartialEq)]
pub(super) struct Scored(pub(super) f32, pub(super) u32);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
    }
}

thread_local! {
    /// Visited marks by epoch: no clearing between searches.
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

impl FlatGraph {
    /// From each row's neighbour lists per layer (`adjacency[row][layer]`)
    /// and the entry row (a row on the top layer).
    pub fn new(adjacency: &[Vec<Vec<u32>>], entry: u32) -> Self {
        let rows = adjacency.len();
        let top = adjacency.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let layers = (0..top)
            .map(|l| {
                let mut offsets = Vec::with_capacity(rows + 1);
                let mut ids = Vec::new();
                offsets.push(0);
                for adj in adjacency {
                    if let Some(n) = adj.get(l) {
                        ids.extend(n.iter().copied().filter(|&x| (x as usize) < rows));
                    }
                    offsets.push(ids.len() as u32);
                }
                Layer { offsets, ids }
            })
            .collect();
        FlatGraph {
            rows,
            entry,
            layers,
            codes: None,
        }
    }

    /// Adds 8-bit codes of the rows' vectors (`rows`, in row order, each
    /// `dim` long), which the walk then scores against.
    pub fn with_codes<'a>(mut self, rows: impl Iterator<Item = &'a [f32]>, dim: usize) -> Self {
        let codes = Codes::new(rows, dim);
        self.codes = (codes.scale.len() == self.rows).then_some(codes);
        self
    }

    /// [`FlatGraph::with_codes`] with codes already made (by the builder).
    pub(super) fn with_built_codes(mut self, codes: Codes) -> Self {
        self.codes = (codes.scale.len() == self.rows).then_some(codes);
        self
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The entry row and the number of layers: where a walk starts.
    pub(super) fn top(&self) -> (u32, usize) {
        (self.entry, self.layers.len())
    }

    /// Row `row`'s neighbours on `layer` (empty past the top).
    pub(super) fn links(&self, layer: usize, row: u32) -> &[u32] {
        self.layers.get(layer).map_or(&[], |l| l.of(row))
    }

    /// Top `k` rows by cosine for which `keep` holds, best first, searching
    /// `ef` wide on the bottom layer. `vectors` are the rows' unit vectors;
    /// the scores returned are exact f32 cosines over them.
    pub fn search(
        &self,
        vectors: &[f32],
        dim: usize,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<Neighbor> {
        if k == 0 || self.rows == 0 || vectors.len() < self.rows * dim || query.len() != dim {
            return Vec::new();
        }
        let exact = F32Rows {
            vectors,
            dim,
            query,
        };
        let mut found = match &self.codes {
            Some(codes) if codes.dim == dim => {
                let mut found = self.walk(&CodedRows::new(codes, query), ef.max(k), keep);
                if found.len() > RESCORE * k {
                    found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    found.truncate(RESCORE * k);
                }
                found.iter().for_each(|s| exact.prefetch(s.1));
                found.iter_mut().for_each(|s| s.0 = exact.score(s.1));
                found
            }
            _ => self.walk(&exact, ef.max(k), keep),
        };
        found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        found.truncate(k);
        found
            .into_iter()
            .map(|Scored(score, row)| Neighbor {
                row: row as usize,
                score,
            })
            .collect()
    }

    /// The HNSW walk: greedy descent through the upper layers, then a beam
    /// `ef` wide on layer 0. Returns the best `ef` kept rows, unordered.
    fn walk<S: Scorer>(
        &self,
        scorer: &S,
        ef: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<Scored> {
        let mut ep = self.entry.min(self.rows as u32 - 1);
        let mut best = scorer.score(ep);
        for layer in self.layers.iter().skip(1).rev() {
            loop {
                let mut moved = false;
                for &n in layer.of(ep) {
                    let s = scorer.score(n);
                    if s > best {
                        (best, ep, moved) = (s, n, true);
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        let keep = |r: u32| keep.is_none_or(|f| f(r as usize));
        VISITED.with(|v| {
            let mut v = v.borrow_mut();
            let (marks, epoch) = &mut *v;
            if marks.len() < self.rows {
                marks.resize(self.rows, 0);
            }
            *epoch = epoch.wrapping_add(1);
            if *epoch == 0 {
                marks.fill(0);
                *epoch = 1;
            }
            let epoch = *epoch;
            let mut candidates = BinaryHeap::new();
            let mut results: BinaryHeap<Reverse<Scored>> = BinaryHeap::new();
            marks[ep as usize] = epoch;
            candidates.push(Scored(best, ep));
            if keep(ep) {
                results.push(Reverse(Scored(best, ep)));
            }
            let layer0 = &self.layers[0];
            while let Some(Scored(s, c)) = candidates.pop() {
                if results.len() >= ef && results.peek().is_some_and(|w| s < w.0 .0) {
                    break;
                }
                // Mark and prefetch the new neighbours first, then score: the
                // loads of later rows overlap the dots of earlier ones.
                for group in layer0.of(c).chunks(64) {
                    let mut fresh = [0u32; 64];
                    let mut count = 0;
                    for &n in group {
                        let m = &mut marks[n as usize];
                        if *m != epoch {
                            *m = epoch;
                            scorer.prefetch(n);
                            fresh[count] = n;
                            count += 1;
                        }
                    }
                    for &n in &fresh[..count] {
                        let sn = scorer.score(n);
                        let worst = results.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0);
                        if results.len() < ef || sn > worst {
                            candidates.push(Scored(sn, n));
                            if keep(n) {
                                results.push(Reverse(Scored(sn, n)));
                                if results.len() > ef {
                                    results.pop();
                                }
                            }
                        }
                    }
                }
            }
            results.into_iter().map(|Reverse(s)| s).collect()
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&(self.rows as u64).to_le_bytes());
        b.extend_from_slice(&self.entry.to_le_bytes());
        b.extend_from_slice(&(self.layers.len() as u32).to_le_bytes());
        for l in &self.layers {
            b.extend(l.offsets.iter().flat_map(|x| x.to_le_bytes()));
            b.extend(l.ids.iter().flat_map(|x| x.to_le_bytes()));
        }
        match &self.codes {
            Some(c) => {
                b.extend_from_slice(&(c.dim as u32).to_le_bytes());
                b.extend(c.scale.iter().flat_map(|x| x.to_le_bytes()));
                b.extend(c.q.as_slice().iter().map(|&x| x as u8));
            }
            None => b.extend_from_slice(&0u32.to_le_bytes()),
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and validates [`FlatGraph::to_bytes`]; `rows` is what the
    /// manifest says. Every offset and neighbour is range-checked, so a
    /// search can never index out of bounds.
    pub fn from_bytes(b: &[u8], rows: usize) -> Result<Self, String> {
        Self::parse(b, rows, None)
    }

    /// [`FlatGraph::from_bytes`] of a mapped file (shared, read-only), whose
    /// codes stay in the map. The file must never change while mapped (a
    /// library's files are never modified in place).
    pub fn from_map(map: Arc<Mmap>, rows: usize) -> Result<Self, String> {
        let graph = Self::parse(&map, rows, Some(&map))?;
        // The checksum read every page, and they would all stay resident;
        // only the codes are used from the map, page by page as searches
        // visit rows. (A hint: if it fails, the pages just stay.)
        // SAFETY: a read-only shared file mapping: a dropped page is read
        // again from the file, which never changes while mapped.
        let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        Ok(graph)
    }

    /// `b` is `map`'s bytes when there is a map.
    fn parse(b: &[u8], rows: usize, map: Option<&Arc<Mmap>>) -> Result<Self, String> {
        let mut r = Reader::sealed(b, MAGIC, 32, "graph")?;
        let version = r.u32()?;
        if !(1..=VERSION).contains(&version) {
            return Err(format!(
                "graph format version {version}, this papersim reads 1 to {VERSION}"
            ));
        }
        let n = r.u64()?;
        if n != rows as u64 {
            return Err(format!("holds {n} rows, the manifest says {rows}"));
        }
        // Rows are u32 ids; and `rows + 1` offsets below must not overflow.
        if u32::try_from(rows).is_err() {
            return Err(format!("{rows} rows: past u32 row ids"));
        }
        let entry = r.u32()?;
        let nl = r.u32()? as usize;
        if nl == 0 || nl > 64 || (rows > 0 && entry as usize >= rows) {
            return Err(format!("{nl} layers, entry {entry}: not plausible"));
        }
        let mut layers = Vec::with_capacity(nl);
        for l in 0..nl {
            let offsets = r.u32s(rows + 1)?;
            let count = *offsets.last().unwrap_or(&0) as usize;
            if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) {
                return Err(format!("layer {l}: offsets not ascending"));
            }
            let ids = r.u32s(count)?;
            if ids.iter().any(|&x| x as usize >= rows) {
                return Err(format!("layer {l}: a neighbour past the last row"));
            }
            layers.push(Layer { offsets, ids });
        }
        let codes = if version >= 2 {
            read_codes(&mut r, rows, map)?
        } else {
            None
        };
        if r.left() != 0 {
            return Err(format!("{} trailing bytes", r.left()));
        }
        Ok(FlatGraph {
            rows,
            entry,
            layers,
            codes,
        })
    }
}

fn read_codes(
    r: &mut Reader,
    rows: usize,
    map: Option<&Arc<Mmap>>,
) -> Result<Option<Codes>, String> {
    let dim = r.u32()? as usize;
    if dim == 0 {
        return Ok(None);
    }
    let scale: Vec<f32> = r.u32s(rows)?.into_iter().map(f32::from_bits).collect();
    if scale.iter().any(|s| !s.is_finite() || *s < 0.0) {
        return Err("a code scale that is not a finite positive number".into());
    }
    let len = rows.checked_mul(dim).ok_or("too large")?;
    let at = r.at;
    let bytes = r.take(len)?;
    let q = match map {
        Some(map) => CodeBytes::Mapped {
            map: Arc::clone(map),
            at,
            len,
        },
        None => CodeBytes::Owned(bytemuck::cast_slice(bytes).to_vec()),
    };
    Ok(Some(Codes { dim, scale, q }))
}

/// Reads a papersim binary file (magic, fields, crc32 footer) field by
/// field; every read is bounds-checked. Shared by the flat graph and the
/// library's rows file.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Checks `b`'s magic, at least `min_len` bytes, and its crc32 footer;
    /// reads from after the magic up to the footer.
    pub(crate) fn sealed(
        b: &'a [u8],
        magic: &[u8; 8],
        min_len: usize,
        what: &str,
    ) -> Result<Self, String> {
        if b.len() < min_len.max(12) || &b[..8] != magic {
            return Err(format!("not a papersim {what} file (bad magic)"));
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err("checksum mismatch: the file is damaged".into());
        }
        Ok(Reader { b: body, at: 8 })
    }

    /// Bytes not read yet.
    pub(crate) fn left(&self) -> usize {
        self.b.len() - self.at
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .at
            .checked_add(n)
            .and_then(|end| self.b.get(self.at..end))
            .ok_or("truncated")?;
        self.at += n;
        Ok(s)
    }
    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, String> {
        let bytes = n.checked_mul(4).ok_or("too large")?;
        Ok(self
            .take(bytes)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::bench::{recall, synthetic};
    use super::super::{exact_search, HnswIndex, HnswParams};
    use super::*;

    #[test]
    fn flat_search_matches_exact_and_round_trips() {
        let seed = 17;
        println!("flat graph test seed {seed}");
        let dim = 32;
        let v = synthetic(3000, dim, seed);
        let flat = HnswIndex::build(&v, dim, HnswParams::default()).flatten();
        assert_eq!(flat.rows(), 3000);
        let (mut truth, mut found) = (Vec::new(), Vec::new());
        for q in (0..3000).step_by(31) {
            let qv = &v[q * dim..(q + 1) * dim];
            let t = exact_search(&v, dim, qv, 10, &|_| true);
            let f = flat.search(&v, dim, qv, 10, 64, None);
            // Scores are exact cosines, best first.
            assert!(f.windows(2).all(|w| w[0].score >= w[1].score));
            assert!((f[0].score - t[0].score).abs() < 1e-6);
            truth.push(t.iter().map(|n| n.row).collect());
            found.push(f.iter().map(|n| n.row).collect());
        }
        let r = recall(&truth, &found);
        assert!(r >= 0.98, "recall@10 {r} (seed {seed})");

        // A filter is applied inside the walk: only kept rows come back.
        let qv = &v[..dim];
        let odd = |r: usize| r % 2 == 1;
        let f = flat.search(&v, dim, qv, 10, 64, Some(&odd));
        assert_eq!(f.len(), 10);
        assert!(f.iter().all(|n| n.row % 2 == 1));

        // With 8-bit codes the walk is approximate but the answer is not:
        // the same recall within a hair, the same exact scores.
        let coded = flat.clone().with_codes(v.chunks_exact(dim), dim);
        assert!(coded.codes.is_some());
        let mut coded_found = Vec::new();
        for q in (0..3000).step_by(31) {
            let qv = &v[q * dim..(q + 1) * dim];
            let c = coded.search(&v, dim, qv, 10, 64, None);
            for n in &c {
                assert_eq!(n.score, dot(&v[n.row * dim..(n.row + 1) * dim], qv));
            }
            coded_found.push(c.iter().map(|n| n.row).collect());
        }
        let rc = recall(&truth, &coded_found);
        assert!(
            rc >= r - 0.005,
            "recall@10 with codes {rc}, f32 {r} (seed {seed})"
        );
        let c = coded.search(&v, dim, qv, 10, 64, Some(&odd));
        assert!(c.len() == 10 && c.iter().all(|n| n.row % 2 == 1));

        // Read from a mapped file the codes stay in the map; the graph is
        // the same, and so is every answer.
        let dir = tempfile::tempdir().unwrap();
        for graph in [&flat, &coded] {
            let bytes = graph.to_bytes();
            assert_eq!(&FlatGraph::from_bytes(&bytes, 3000).unwrap(), graph);
            let path = dir.path().join("graph.flat");
            std::fs::write(&path, &bytes).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            let map = Arc::new(unsafe { Mmap::map(&file) }.unwrap());
            let mapped = FlatGraph::from_map(map, 3000).unwrap();
            assert_eq!(&mapped, graph);
            assert_eq!(
                mapped
                    .codes
                    .as_ref()
                    .map(|c| matches!(c.q, CodeBytes::Mapped { .. })),
                graph.codes.as_ref().map(|_| true)
            );
            for q in (0..3000).step_by(97) {
                let qv = &v[q * dim..(q + 1) * dim];
                assert_eq!(
                    mapped.search(&v, dim, qv, 10, 64, None),
                    graph.search(&v, dim, qv, 10, 64, None)
                );
            }
        }
        let bytes = coded.to_bytes();
        assert!(FlatGraph::from_bytes(&bytes, 2999).is_err());
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(FlatGraph::from_bytes(&bytes[..cut], 3000).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        assert!(FlatGraph::from_bytes(&flipped, 3000).is_err());
    }

    /// Libraries written before the codes existed (version 1: no code
    /// section) still open, and are walked in f32.
    #[test]
    fn version_1_files_still_read() {
        let dim = 8;
        let v = synthetic(200, dim, 5);
        let flat = HnswIndex::build(&v, dim, HnswParams::default()).flatten();
        let v2 = flat.to_bytes();
        // Version 1 is version 2 without the trailing "no codes" u32.
        let mut v1 = v2[..v2.len() - 8].to_vec();
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        let back = FlatGraph::from_bytes(&v1, 200).unwrap();
        assert_eq!(back, flat);
        assert_eq!(back.search(&v, dim, &v[..dim], 1, 16, None)[0].row, 0);
        let mut future = v2.clone();
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        let n = future.len() - 4;
        let crc = crc32fast::hash(&future[..n]);
        future[n..].copy_from_slice(&crc.to_le_bytes());
        let e = FlatGraph::from_bytes(&future, 200).unwrap_err();
        assert!(e.contains("version 3"), "{e}");
    }

    /// A header forged to agree with a forged manifest (and resealed with
    /// its crc32) claiming more rows than u32 ids hold: an error, where
    /// `rows + 1` offsets used to overflow (a panic, or in a release build an
    /// empty offsets list indexed at 0).
    #[test]
    fn from_bytes_refuses_rows_past_u32() {
        for rows in [u64::MAX, u64::from(u32::MAX) + 1] {
            let mut b = Vec::new();
            b.extend_from_slice(MAGIC);
            b.extend_from_slice(&VERSION.to_le_bytes());
            b.extend_from_slice(&rows.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&[0u8; 16]);
            let crc = crc32fast::hash(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            let e = FlatGraph::from_bytes(&b, rows as usize).unwrap_err();
            assert!(e.contains("u32"), "{e}");
        }
    }
}
