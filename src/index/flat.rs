//! The HNSW graph as flat arrays, for searching.
//!
//! hnsw_rs builds the graph (its insertion and neighbour selection are what
//! we trust it for), but its search walks `Arc`-linked nodes behind `RwLock`s
//! and keeps its own copy of every vector: ~3x slower per query than
//! hnswlib's flat layout, and ~2.6x the raw vectors in memory. So after each
//! build or insert the graph is copied out into one CSR adjacency list per
//! layer (row ids, u32), searched here over the library's own memory-mapped
//! f32 vectors. That is ~130 bytes per paper beside the vectors, the scores
//! are exact f32 cosines, and loading it is one read of a small file.
//!
//! File layout (little-endian): b"PSIMGRAF" | u32 version | u64 rows |
//! u32 entry row | u32 layers, then per layer: (rows + 1) u32 offsets and
//! offsets[rows] u32 neighbour rows | u32 crc32 of everything before.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::{dot, prefetch, Neighbor};

const MAGIC: &[u8; 8] = b"PSIMGRAF";
const VERSION: u32 = 1;

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
}

/// A score with a total order, for the heaps.
#[derive(Clone, Copy, PartialEq)]
struct Scored(f32, u32);
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
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Top `k` rows by cosine for which `keep` holds, best first, searching
    /// `ef` wide on the bottom layer. `vectors` are the rows' unit vectors.
    pub fn search(
        &self,
        vectors: &[f32],
        dim: usize,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<Neighbor> {
        if k == 0 || self.rows == 0 || vectors.len() < self.rows * dim {
            return Vec::new();
        }
        let row = |r: u32| &vectors[r as usize * dim..(r as usize + 1) * dim];
        let score = |r: u32| dot(row(r), query);
        let ef = ef.max(k);
        // Greedy descent through the upper layers.
        let mut ep = self.entry.min(self.rows as u32 - 1);
        let mut best = score(ep);
        for layer in self.layers.iter().skip(1).rev() {
            loop {
                let mut moved = false;
                for &n in layer.of(ep) {
                    let s = score(n);
                    if s > best {
                        (best, ep, moved) = (s, n, true);
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        // Beam search on layer 0.
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
                            prefetch(row(n));
                            fresh[count] = n;
                            count += 1;
                        }
                    }
                    for &n in &fresh[..count] {
                        let sn = dot(row(n), query);
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
            let mut out: Vec<Neighbor> = results
                .into_iter()
                .map(|Reverse(Scored(score, row))| Neighbor {
                    row: row as usize,
                    score,
                })
                .collect();
            out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
            out.truncate(k);
            out
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
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and validates [`FlatGraph::to_bytes`]; `rows` is what the
    /// manifest says. Every offset and neighbour is range-checked, so a
    /// search can never index out of bounds.
    pub fn from_bytes(b: &[u8], rows: usize) -> Result<Self, String> {
        let mut r = Reader::sealed(b, MAGIC, 32, "graph")?;
        let version = r.u32()?;
        if version != VERSION {
            return Err(format!(
                "graph format version {version}, this papersim reads {VERSION}"
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
        if r.left() != 0 {
            return Err(format!("{} trailing bytes", r.left()));
        }
        Ok(FlatGraph {
            rows,
            entry,
            layers,
        })
    }
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

        let bytes = flat.to_bytes();
        assert_eq!(FlatGraph::from_bytes(&bytes, 3000).unwrap(), flat);
        assert!(FlatGraph::from_bytes(&bytes, 2999).is_err());
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(FlatGraph::from_bytes(&bytes[..cut], 3000).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        assert!(FlatGraph::from_bytes(&flipped, 3000).is_err());
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
