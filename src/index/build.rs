//! HNSW construction, straight into the flat arrays that queries search.
//!
//! Why our own builder rather than hnsw_rs's insertion (still measurable
//! with `bench index --builder hnsw-rs`): on 73,728 arXiv vectors (M 16, ef_construction
//! 200, 2 threads) it took 84–89 s where hnswlib took 39–47 s, and `perf`
//! put 49% of the build in its layer search, most of that on one load (a
//! neighbour's id behind two `Arc`s, a cache miss per neighbour). That is how
//! it stores links, so no patch of ours could change it. This is hnswlib's
//! algorithm instead (levels floor(-ln U / ln M), greedy descent, an
//! `ef_construction` search per layer, its neighbour-selection heuristic, M
//! links per node on upper layers and 2M on layer 0) over the layout that
//! made our search fast: layer 0 as one flat array, and the walk scoring the
//! 8-bit codes (`codes::Codes`) instead of the f32 rows.
//!
//! Rows are inserted in parallel (rayon), a lock per node guarding writers.
//! Levels come from the seed and the row number alone, so they do not depend
//! on the insertion order; with one thread a build is reproducible.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use rayon::prelude::*;

use super::codes::{CodedRows, Codes, Scored, Scorer};
use super::distance::dot;
use super::{FlatGraph, HnswParams};

/// The highest level a row can draw: with M 16, 1 row in 16^15 reaches it.
const MAX_LEVEL: usize = 15;

/// Builds the graph of `vectors` (`rows * dim`, unit length).
pub fn build(vectors: &[f32], dim: usize, params: &HnswParams) -> FlatGraph {
    let rows = Rows::new(vectors, &[], dim);
    let builder = Builder::new(rows, params, None);
    builder.insert_from(0);
    builder.finish()
}

/// `graph` (over the first `graph.rows()` rows) with the rows after them
/// inserted: `old` and `new` are the vectors of both, in row order.
pub fn extend(
    graph: &FlatGraph,
    old: &[f32],
    new: &[f32],
    dim: usize,
    params: &HnswParams,
) -> FlatGraph {
    let rows = Rows::new(old, new, dim);
    let first = graph.rows();
    let builder = Builder::new(rows, params, Some(graph));
    builder.insert_from(first);
    builder.finish()
}

/// The level row `row` is inserted at: floor(-ln U / ln M), U drawn from
/// the seed and the row number.
fn level(seed: u64, row: usize, m: usize) -> u8 {
    let x = splitmix64(seed ^ (row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    // U in (0, 1]: never ln 0.
    let u = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let ml = 1.0 / (m.max(2) as f64).ln();
    ((-u.ln() * ml) as usize).min(MAX_LEVEL) as u8
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The f32 rows, in up to two parts (a library's stored vectors and the
/// ones an update adds), without copying either.
struct Rows<'a> {
    head: &'a [f32],
    tail: &'a [f32],
    head_rows: usize,
    dim: usize,
}

impl<'a> Rows<'a> {
    fn new(head: &'a [f32], tail: &'a [f32], dim: usize) -> Self {
        let dim = dim.max(1);
        Rows {
            head,
            tail,
            head_rows: head.len() / dim,
            dim,
        }
    }

    fn len(&self) -> usize {
        self.head_rows + self.tail.len() / self.dim
    }

    fn row(&self, r: u32) -> &'a [f32] {
        let (part, r) = match (r as usize).checked_sub(self.head_rows) {
            None => (self.head, r as usize),
            Some(t) => (self.tail, t),
        };
        &part[r * self.dim..(r + 1) * self.dim]
    }

    fn iter(&self) -> impl Iterator<Item = &'a [f32]> {
        self.head
            .chunks_exact(self.dim)
            .chain(self.tail.chunks_exact(self.dim))
    }
}

/// A lock whose holder panicking leaves the links as they were: still valid
/// rows, so carrying on is safe.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Builder<'a> {
    rows: Rows<'a>,
    codes: Codes,
    m: usize,
    m0: usize,
    efc: usize,
    levels: Vec<u8>,
    /// Layer 0: per row a count, then `m0` ids (stride `m0 + 1`). Walks read
    /// it without locking: a list read mid-rewrite holds only row ids all the
    /// same (every slot is always some row), which is all a walk needs; the
    /// count is published after the ids.
    layer0: Vec<AtomicU32>,
    /// Serialises writers of a row's layer-0 list.
    writers: Vec<Mutex<()>>,
    /// Layers 1..=level of each row (most rows have none).
    upper: Vec<Mutex<Vec<Vec<u32>>>>,
    /// The entry row and its level; None until the first row is in.
    entry: Mutex<Option<(u32, usize)>>,
}

impl<'a> Builder<'a> {
    /// A builder for every row of `rows`, holding `graph`'s links for the
    /// rows it covers (a prefix of `rows`).
    fn new(rows: Rows<'a>, params: &HnswParams, graph: Option<&FlatGraph>) -> Self {
        let n = rows.len();
        let m = params.m.max(2);
        let m0 = 2 * m;
        let seed = params.seed;
        let old = graph.map_or(0, FlatGraph::rows).min(n);
        // Old rows' levels are read from the graph below; new rows draw theirs.
        let mut levels: Vec<u8> = (0..n)
            .map(|r| if r < old { 0 } else { level(seed, r, m) })
            .collect();
        let layer0: Vec<AtomicU32> = (0..n * (m0 + 1)).map(|_| AtomicU32::new(0)).collect();
        let mut upper: Vec<Mutex<Vec<Vec<u32>>>> = Vec::with_capacity(n);
        let mut entry = None;
        if let Some(g) = graph.filter(|_| old > 0) {
            let (e, layers) = g.top();
            for r in 0..old as u32 {
                let base = r as usize * (m0 + 1);
                let l0 = g.links(0, r);
                let l0 = &l0[..l0.len().min(m0)];
                for (k, &id) in l0.iter().enumerate() {
                    layer0[base + 1 + k].store(id, Ordering::Relaxed);
                }
                layer0[base].store(l0.len() as u32, Ordering::Relaxed);
                // A row is on a layer when it has links there (or is the
                // entry, which may be alone on the top layer).
                let top = if r == e {
                    layers - 1
                } else {
                    (1..layers)
                        .rev()
                        .find(|&l| !g.links(l, r).is_empty())
                        .unwrap_or(0)
                };
                levels[r as usize] = top as u8;
                upper.push(Mutex::new(
                    (1..=top)
                        .map(|l| g.links(l, r).iter().copied().take(m).collect())
                        .collect(),
                ));
            }
            entry = Some((e, layers - 1));
        }
        for &l in &levels[upper.len()..] {
            upper.push(Mutex::new(vec![Vec::new(); l as usize]));
        }
        Builder {
            codes: Codes::new(rows.iter(), rows.dim),
            rows,
            m,
            m0,
            efc: params.ef_construction.max(m),
            levels,
            layer0,
            writers: (0..n).map(|_| Mutex::new(())).collect(),
            upper,
            entry: Mutex::new(entry),
        }
    }

    /// Inserts rows `first..`, in parallel.
    fn insert_from(&self, first: usize) {
        let n = self.rows.len();
        (first..n).into_par_iter().for_each_init(
            || (Visited::new(n), Vec::with_capacity(self.m0)),
            |(visited, buf), r| self.insert(r as u32, visited, buf),
        );
    }

    fn finish(self) -> FlatGraph {
        let n = self.rows.len();
        let mut buf = Vec::new();
        let adjacency: Vec<Vec<Vec<u32>>> = (0..n as u32)
            .map(|r| {
                self.links(r, 0, &mut buf);
                let mut adj = vec![buf.clone()];
                adj.extend(lock(&self.upper[r as usize]).iter().cloned());
                adj
            })
            .collect();
        let entry = lock(&self.entry).map_or(0, |(e, _)| e);
        FlatGraph::new(&adjacency, entry).with_built_codes(self.codes)
    }

    fn links(&self, r: u32, layer: usize, out: &mut Vec<u32>) {
        out.clear();
        if layer == 0 {
            let base = r as usize * (self.m0 + 1);
            let count = (self.layer0[base].load(Ordering::Acquire) as usize).min(self.m0);
            let ids = &self.layer0[base + 1..base + 1 + count];
            out.extend(ids.iter().map(|a| a.load(Ordering::Relaxed)));
        } else if let Some(l) = lock(&self.upper[r as usize]).get(layer - 1) {
            out.extend_from_slice(l);
        }
    }

    /// Sets `r`'s layer-0 list; the caller holds `r`'s writer lock.
    fn store0(&self, r: u32, ids: &[u32]) {
        let base = r as usize * (self.m0 + 1);
        for (slot, &id) in self.layer0[base + 1..].iter().zip(ids) {
            slot.store(id, Ordering::Relaxed);
        }
        self.layer0[base].store(ids.len().min(self.m0) as u32, Ordering::Release);
    }

    fn insert(&self, r: u32, visited: &mut Visited, buf: &mut Vec<u32>) {
        let q = self.rows.row(r);
        let scorer = CodedRows::new(&self.codes, q);
        let level = self.levels[r as usize] as usize;
        let mut guard = lock(&self.entry);
        let Some((ep, top)) = *guard else {
            *guard = Some((r, level));
            return;
        };
        // A row above the top keeps the entry locked until it is linked and
        // becomes the entry (hnswlib does the same); rare, M^-top of rows.
        let raise = (level > top).then_some(guard);

        let mut cur = Scored(scorer.score(ep), ep);
        for layer in (level + 1..=top).rev() {
            loop {
                let before = cur.1;
                self.links(cur.1, layer, buf);
                for &nb in buf.iter() {
                    let s = scorer.score(nb);
                    if s > cur.0 {
                        cur = Scored(s, nb);
                    }
                }
                if cur.1 == before {
                    break;
                }
            }
        }
        for layer in (0..=level.min(top)).rev() {
            let mut found = self.search_layer(&scorer, cur, layer, visited, buf);
            cur = found[0];
            // Neighbours are chosen on exact cosines: the codes steer the
            // walk, but the heuristic compares distances between rows.
            for s in &mut found {
                s.0 = dot(q, self.rows.row(s.1));
            }
            found.sort_by(|a, b| b.cmp(a));
            let chosen = self.select(&found, self.m);
            self.add_links(r, layer, &chosen);
            for &nb in &chosen {
                self.add_links(nb, layer, &[r]);
            }
        }
        if let Some(mut g) = raise {
            *g = Some((r, level));
        }
    }

    /// The `ef_construction` best rows of `layer` from `ep`, best first.
    fn search_layer(
        &self,
        scorer: &CodedRows,
        ep: Scored,
        layer: usize,
        visited: &mut Visited,
        buf: &mut Vec<u32>,
    ) -> Vec<Scored> {
        visited.next();
        visited.insert(ep.1);
        let mut candidates = BinaryHeap::from([ep]);
        let mut best = BinaryHeap::from([Reverse(ep)]);
        while let Some(c) = candidates.pop() {
            let worst = best.peek().map_or(f32::MIN, |w| w.0 .0);
            if best.len() >= self.efc && c.0 < worst {
                break;
            }
            self.links(c.1, layer, buf);
            buf.retain(|&nb| visited.insert(nb));
            for &nb in buf.iter() {
                scorer.prefetch(nb);
            }
            for &nb in buf.iter() {
                let s = scorer.score(nb);
                let worst = best.peek().map_or(f32::MIN, |w| w.0 .0);
                if best.len() < self.efc || s > worst {
                    candidates.push(Scored(s, nb));
                    best.push(Reverse(Scored(s, nb)));
                    if best.len() > self.efc {
                        best.pop();
                    }
                }
            }
        }
        let mut out: Vec<Scored> = best.into_iter().map(|w| w.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// hnswlib's neighbour heuristic: from `candidates` (scored against the
    /// row being linked, best first) keep a row unless one already kept is
    /// closer to it than the linked row is. It spreads links across
    /// directions, which is what keeps clustered data navigable.
    fn select(&self, candidates: &[Scored], m: usize) -> Vec<u32> {
        let mut chosen: Vec<u32> = Vec::with_capacity(m);
        for &Scored(to_row, c) in candidates {
            if chosen.len() >= m {
                break;
            }
            let v = self.rows.row(c);
            if chosen.iter().all(|&k| dot(v, self.rows.row(k)) <= to_row) {
                chosen.push(c);
            }
        }
        chosen
    }

    /// Adds `ids` to `r`'s links on `layer`, re-selecting them by the
    /// heuristic when there are more than the layer allows. Used both for a
    /// new row's own links and for the links back to it: a row on an upper
    /// layer is reachable there before its lower layers are linked, so
    /// another insert may already have linked back to it on those; merging
    /// keeps those links where overwriting would drop them.
    fn add_links(&self, r: u32, layer: usize, ids: &[u32]) {
        let max = if layer == 0 { self.m0 } else { self.m };
        let merge = |list: &mut Vec<u32>| {
            for &id in ids {
                if id != r && !list.contains(&id) {
                    list.push(id);
                }
            }
            if list.len() > max {
                let v = self.rows.row(r);
                let mut scored: Vec<Scored> = list
                    .iter()
                    .map(|&x| Scored(dot(v, self.rows.row(x)), x))
                    .collect();
                scored.sort_by(|a, b| b.cmp(a));
                *list = self.select(&scored, max);
            }
        };
        if layer == 0 {
            let _w = lock(&self.writers[r as usize]);
            let mut list = Vec::with_capacity(self.m0 + ids.len());
            self.links(r, 0, &mut list);
            merge(&mut list);
            self.store0(r, &list);
        } else if let Some(list) = lock(&self.upper[r as usize]).get_mut(layer - 1) {
            merge(list);
        }
    }
}

/// Rows a search has scored, by epoch: no clearing between searches.
struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    fn new(n: usize) -> Self {
        Visited {
            marks: vec![0; n],
            epoch: 0,
        }
    }

    fn next(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// True the first time `r` is seen this epoch.
    fn insert(&mut self, r: u32) -> bool {
        let m = &mut self.marks[r as usize];
        let fresh = *m != self.epoch;
        *m = self.epoch;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::super::exact::{exact_search, recall, synthetic};
    use super::*;

    /// recall@10 at ef 64 of `graph` over rows 0, 29, 58, ... as queries
    /// (100 of them), against exact search; printed, and at least 0.97.
    fn assert_recall(graph: &FlatGraph, v: &[f32], dim: usize, seed: u64, what: &str) {
        let queries: Vec<&[f32]> = v.chunks_exact(dim).step_by(29).take(100).collect();
        let rows = |hits: Vec<super::super::Neighbor>| hits.iter().map(|n| n.row).collect();
        let truth: Vec<Vec<usize>> = queries
            .iter()
            .map(|q| rows(exact_search(v, dim, q, 10, &|_| true)))
            .collect();
        let found: Vec<Vec<usize>> = queries
            .iter()
            .map(|q| rows(graph.search(v, dim, q, 10, 64, None)))
            .collect();
        let r = recall(&truth, &found);
        println!("{what}: recall@10 at ef 64 = {r:.4} (seed {seed})");
        assert!(r >= 0.97, "{what}: recall@10 {r} (seed {seed})");
    }

    fn params(seed: u64) -> HnswParams {
        HnswParams {
            seed,
            ..HnswParams::default()
        }
    }

    /// Every link is another existing row, once, within the layer's limit;
    /// every row is on layer 0.
    fn check_links(g: &FlatGraph, m: usize) {
        let (entry, layers) = g.top();
        assert!((entry as usize) < g.rows());
        for l in 0..layers {
            let max = if l == 0 { 2 * m } else { m };
            for r in 0..g.rows() as u32 {
                let links = g.links(l, r);
                assert!(links.len() <= max, "row {r} layer {l}: {}", links.len());
                assert!(links.iter().all(|&x| x != r && (x as usize) < g.rows()));
                let mut sorted = links.to_vec();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(
                    sorted.len(),
                    links.len(),
                    "row {r} layer {l}: a repeated link"
                );
                if l == 0 && g.rows() > 1 {
                    assert!(!links.is_empty(), "row {r} has no links");
                }
            }
        }
    }

    #[test]
    fn recall_against_exact() {
        let seed = 42;
        let dim = 32;
        let v = synthetic(3000, dim, seed);
        let g = build(&v, dim, &params(seed));
        assert_eq!(g.rows(), 3000);
        check_links(&g, 16);
        assert_recall(&g, &v, dim, seed, "build");
    }

    #[test]
    fn extending_a_graph_finds_old_and_new_rows() {
        let seed = 7;
        let dim = 32;
        let v = synthetic(3000, dim, seed);
        let (old, new) = v.split_at(2000 * dim);
        let g = build(old, dim, &params(seed));
        let grown = extend(&g, old, new, dim, &params(seed));
        assert_eq!(grown.rows(), 3000);
        check_links(&grown, 16);
        // The old rows keep their level, and the entry stays on top.
        assert!(grown.top().1 >= g.top().1);
        // Every new row is reachable: searched for, it comes back first
        // (all but a near-tie or two: the walk is approximate, and two
        // threads insert in no fixed order).
        let missed: Vec<usize> = (2000..3000)
            .filter(|&r| {
                let hit = grown.search(&v, dim, &v[r * dim..(r + 1) * dim], 1, 64, None);
                hit.first().map(|h| h.row) != Some(r)
            })
            .collect();
        println!("new rows not found first: {missed:?}");
        assert!(
            missed.len() <= 10,
            "{} of 1000 new rows missed",
            missed.len()
        );
        assert_recall(&grown, &v, dim, seed, "after extend");
    }

    #[test]
    fn one_thread_builds_the_same_graph_twice() {
        let dim = 16;
        let v = synthetic(800, dim, 5);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let a = pool.install(|| build(&v, dim, &params(5)));
        let b = pool.install(|| build(&v, dim, &params(5)));
        assert_eq!(a, b);
        let c = pool.install(|| build(&v, dim, &params(6)));
        assert_ne!(a.top(), (0, 0));
        assert_ne!(a, c, "another seed draws other levels");
    }

    #[test]
    fn levels_thin_out_by_m() {
        let n = 200_000;
        let above = (0..n).filter(|&r| level(9, r, 16) >= 1).count();
        let share = above as f64 / n as f64;
        // P(level >= 1) = 1/M.
        assert!((share - 1.0 / 16.0).abs() < 0.005, "{share}");
        assert_eq!(level(9, 123, 16), level(9, 123, 16));
    }

    #[test]
    fn tiny_inputs_build() {
        let dim = 8;
        for n in [0usize, 1, 2, 5] {
            let v = synthetic(n.max(1), dim, 1);
            let v = &v[..n * dim];
            let g = build(v, dim, &params(1));
            assert_eq!(g.rows(), n);
            if n > 0 {
                assert_eq!(g.search(v, dim, &v[..dim], 1, 16, None)[0].row, 0);
            }
        }
    }
}
