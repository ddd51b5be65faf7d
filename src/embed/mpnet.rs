//! MPNet's relative-position attention bias, shared by both forward passes
//! ([`super::CpuBert`] and candle's, for CUDA).
//!
//! MPNet is BERT's encoder with RoBERTa's positions (ids from
//! `pad_token_id + 1`, no token types) plus one addition: every attention
//! score gets a learned bias that depends only on the head and on the key's
//! offset from the query, `key - query`, cut into `relative_attention_num_buckets`
//! buckets (exact up to 8 tokens either way, logarithmic up to 128, one
//! bucket beyond). The table (`encoder.relative_attention_bias.weight`,
//! buckets x heads) is one for all layers, so the bias of a sequence is
//! computed once and every layer adds the same values.

/// Offsets from this far on share the last bucket (transformers'
/// `max_distance`, which MPNet's config does not carry).
const MAX_DISTANCE: usize = 128;

/// The bucket of offset `rel` = key position - query position, exactly as
/// transformers' `MPNetEncoder.relative_position_bucket` computes it:
/// half the buckets for keys after the query, half for keys at or before
/// it; within a half, small distances exact, larger ones on a log scale.
/// The log is taken in f32 and truncated, as torch does (a distance of 16
/// lands on its bucket boundary exactly; f64 would not change that here,
/// but the order of operations is kept).
pub fn bucket(rel: i64, num_buckets: usize) -> usize {
    let half = num_buckets / 2;
    // transformers negates first: n > 0 is a key before the query.
    let n = -rel;
    let side = if n < 0 { half } else { 0 };
    let n = n.unsigned_abs() as usize;
    let max_exact = half / 2;
    if n < max_exact {
        return side + n;
    }
    let log_ratio = (n as f32 / max_exact as f32).ln()
        / (MAX_DISTANCE as f32 / max_exact as f32).ln()
        * (half - max_exact) as f32;
    side + (max_exact + log_ratio as usize).min(half - 1)
}

/// The relative-position table of a model: buckets x heads, as stored.
#[derive(Debug, Clone)]
pub struct RelativeBias {
    table: Vec<f32>,
    buckets: usize,
    heads: usize,
}

impl RelativeBias {
    /// `table` holds `buckets * heads` values, bucket-major (PyTorch's
    /// `Embedding(buckets, heads)` weight).
    pub fn new(table: Vec<f32>, buckets: usize, heads: usize) -> Self {
        debug_assert_eq!(table.len(), buckets * heads);
        RelativeBias {
            table,
            buckets,
            heads,
        }
    }

    /// Attention heads the table has a column for.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Head `head`'s bias for a sequence of `n` tokens, times `mul`, by
    /// offset in reverse: `out[j]` is the bias of offset `key - query =
    /// n - 1 - j`, for `j` in `0..2n - 1`. Reversed so that a key's row of
    /// scores (queries in order) reads it forwards: key `k`'s biases are
    /// `out[n - 1 - k..][..n]`.
    pub fn by_offset(&self, head: usize, n: usize, mul: f32, out: &mut [f32]) {
        let last = n as i64 - 1;
        for (j, o) in out[..2 * n - 1].iter_mut().enumerate() {
            let b = bucket(last - j as i64, self.buckets);
            *o = self.table[b * self.heads + head] * mul;
        }
    }

    /// The whole `heads x n x n` bias (query-major, then key), for a
    /// forward pass that adds it as one tensor.
    pub fn dense(&self, n: usize) -> Vec<f32> {
        let buckets: Vec<usize> = (0..n * n)
            .map(|i| bucket((i % n) as i64 - (i / n) as i64, self.buckets))
            .collect();
        (0..self.heads)
            .flat_map(|h| buckets.iter().map(move |&b| self.table[b * self.heads + h]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// transformers 4.57.6's `MPNetEncoder.relative_position_bucket` over
    /// offsets -400..=400 with 32 buckets, as runs: (first offset, bucket),
    /// each bucket holding until the next run's offset.
    const TRANSFORMERS_RUNS: [(i64, usize); 31] = [
        (-400, 15),
        (-90, 14),
        (-63, 13),
        (-45, 12),
        (-31, 11),
        (-22, 10),
        (-15, 9),
        (-11, 8),
        (-7, 7),
        (-6, 6),
        (-5, 5),
        (-4, 4),
        (-3, 3),
        (-2, 2),
        (-1, 1),
        (0, 0),
        (1, 17),
        (2, 18),
        (3, 19),
        (4, 20),
        (5, 21),
        (6, 22),
        (7, 23),
        (8, 24),
        (12, 25),
        (16, 26),
        (23, 27),
        (32, 28),
        (46, 29),
        (64, 30),
        (91, 31),
    ];

    #[test]
    fn buckets_are_transformers_buckets() {
        for (i, &(start, want)) in TRANSFORMERS_RUNS.iter().enumerate() {
            let end = TRANSFORMERS_RUNS.get(i + 1).map_or(401, |r| r.0);
            for rel in start..end {
                assert_eq!(bucket(rel, 32), want, "offset {rel}");
            }
        }
    }

    #[test]
    fn offsets_reversed_and_dense_agree() {
        let (buckets, heads, n) = (32, 3, 40);
        let table: Vec<f32> = (0..buckets * heads)
            .map(|i| i as f32 * 0.25 - 7.0)
            .collect();
        let rb = RelativeBias::new(table, buckets, heads);
        let dense = rb.dense(n);
        let mut rev = vec![0f32; 2 * n - 1];
        for h in 0..heads {
            rb.by_offset(h, n, 2.0, &mut rev);
            for q in 0..n {
                for k in 0..n {
                    let want = dense[(h * n + q) * n + k];
                    assert_eq!(rev[n - 1 - k + q], want * 2.0, "head {h} q {q} k {k}");
                }
            }
        }
        // A key two places after its query: bucket 18 of head 1.
        assert_eq!(dense[(n + 5) * n + 7], rb.table[18 * heads + 1]);
    }
}
