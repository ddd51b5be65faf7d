//! Turning a batch of token vectors into one vector per text, the way
//! sentence-transformers' Pooling module does, then L2-normalising.

use serde::{Deserialize, Serialize};

/// How a text's token vectors become one vector, as the model's
/// `1_Pooling/config.json` says. Recorded (lowercase) in library manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over the tokens the attention mask keeps (padding excluded).
    Mean,
    /// The first token (`[CLS]`).
    Cls,
    /// Element-wise max over kept tokens.
    Max,
    /// The last kept token (decoder-style embedding models).
    #[serde(rename = "lasttoken")]
    LastToken,
}

impl Pooling {
    /// Pools `hidden` (`[batch, seq, dim]`, row-major) under `mask`
    /// (`[batch, seq]`, 1 = real token) into `[batch, dim]`, L2-normalised.
    pub fn pool(&self, hidden: &[f32], mask: &[u32], seq: usize, dim: usize) -> Vec<f32> {
        let mut out = self.pool_raw(hidden, mask, seq, dim);
        for o in out.chunks_mut(dim.max(1)) {
            normalize(o);
        }
        out
    }

    /// [`pool`](Self::pool) without the L2 normalisation, for models whose
    /// `Dense` layers come after pooling.
    pub fn pool_raw(&self, hidden: &[f32], mask: &[u32], seq: usize, dim: usize) -> Vec<f32> {
        let batch = mask.len() / seq.max(1);
        let mut out = vec![0f32; batch * dim];
        for b in 0..batch {
            let o = &mut out[b * dim..(b + 1) * dim];
            let m = &mask[b * seq..(b + 1) * seq];
            let h = &hidden[b * seq * dim..(b + 1) * seq * dim];
            match self {
                Pooling::Cls => o.copy_from_slice(&h[..dim]),
                Pooling::LastToken => {
                    if let Some(t) = m.iter().rposition(|&k| k != 0) {
                        o.copy_from_slice(&h[t * dim..(t + 1) * dim]);
                    }
                }
                Pooling::Mean => {
                    let mut n = 0f32;
                    for (t, _) in m.iter().enumerate().filter(|(_, &k)| k != 0) {
                        n += 1.0;
                        for (acc, x) in o.iter_mut().zip(&h[t * dim..(t + 1) * dim]) {
                            *acc += x;
                        }
                    }
                    // sentence-transformers clamps the count to 1e-9; with at
                    // least [CLS] and [SEP] present n >= 2 anyway.
                    let n = n.max(1e-9);
                    o.iter_mut().for_each(|x| *x /= n);
                }
                Pooling::Max => {
                    o.fill(f32::NEG_INFINITY);
                    for (t, _) in m.iter().enumerate().filter(|(_, &k)| k != 0) {
                        for (acc, x) in o.iter_mut().zip(&h[t * dim..(t + 1) * dim]) {
                            *acc = acc.max(*x);
                        }
                    }
                }
            }
        }
        out
    }
}

/// Scales `v` to unit length in place; returns false (and leaves `v`
/// untouched) for a zero or non-finite vector, which must never be indexed.
pub fn normalize(v: &mut [f32]) -> bool {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two texts, seq 3, dim 2; the second has one padding token.
    const HIDDEN: [f32; 12] = [1., 0., 3., 0., 2., 0., 0., 1., 0., 3., 100., 100.];
    const MASK: [u32; 6] = [1, 1, 1, 1, 1, 0];

    #[test]
    fn mean_ignores_padding_and_normalises() {
        let v = Pooling::Mean.pool(&HIDDEN, &MASK, 3, 2);
        assert_eq!(v, vec![1., 0., 0., 1.]);
    }

    #[test]
    fn cls_takes_the_first_token() {
        let v = Pooling::Cls.pool(&HIDDEN, &MASK, 3, 2);
        assert_eq!(v, vec![1., 0., 0., 1.]);
    }

    #[test]
    fn max_ignores_padding() {
        let h = [1., -2., 3., 4., 0., 0., 0., 3., 4., 0., 100., 100.];
        let v = Pooling::Max.pool(&h, &MASK, 3, 2);
        assert_eq!(v, vec![0.6, 0.8, 0.8, 0.6]);
    }

    #[test]
    fn zero_and_nan_vectors_are_refused() {
        assert!(!normalize(&mut [0.0, 0.0]));
        assert!(!normalize(&mut [f32::NAN, 1.0]));
        let mut v = [3.0, 4.0];
        assert!(normalize(&mut v));
        assert_eq!(v, [0.6, 0.8]);
    }
}
