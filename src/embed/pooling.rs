//! Turning a batch of token vectors into one vector per text, the way
//! sentence-transformers' Pooling module does, then L2-normalising.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::read_json;
use super::EmbedError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over the tokens the attention mask keeps (padding excluded).
    Mean,
    /// The first token ([CLS]).
    Cls,
    /// Element-wise max over kept tokens.
    Max,
}

impl Pooling {
    /// Reads `1_Pooling/config.json`. Exactly one of the modes we implement
    /// must be on; combined modes (sentence-transformers concatenates them)
    /// are refused rather than silently half-implemented.
    pub fn from_config_file(path: &Path) -> Result<Self, EmbedError> {
        #[derive(Deserialize)]
        struct Config {
            #[serde(default)]
            pooling_mode_cls_token: bool,
            #[serde(default)]
            pooling_mode_mean_tokens: bool,
            #[serde(default)]
            pooling_mode_max_tokens: bool,
            #[serde(default)]
            pooling_mode_mean_sqrt_len_tokens: bool,
        }
        let c: Config = read_json(path)?;
        let modes = [
            (c.pooling_mode_mean_tokens, Pooling::Mean),
            (c.pooling_mode_cls_token, Pooling::Cls),
            (c.pooling_mode_max_tokens, Pooling::Max),
        ];
        let on: Vec<Pooling> = modes.iter().filter(|m| m.0).map(|m| m.1).collect();
        match (on.as_slice(), c.pooling_mode_mean_sqrt_len_tokens) {
            ([one], false) => Ok(*one),
            _ => Err(EmbedError::BadModelFile {
                path: path.to_path_buf(),
                reason: "exactly one of pooling_mode_mean_tokens, pooling_mode_cls_token, \
                         pooling_mode_max_tokens must be true (combined or mean_sqrt_len \
                         pooling is not supported)"
                    .into(),
            }),
        }
    }

    /// Pools `hidden` (`[batch, seq, dim]`, row-major) under `mask`
    /// (`[batch, seq]`, 1 = real token) into `[batch, dim]`, L2-normalised.
    pub fn pool(&self, hidden: &[f32], mask: &[u32], seq: usize, dim: usize) -> Vec<f32> {
        let batch = mask.len() / seq.max(1);
        let mut out = vec![0f32; batch * dim];
        for b in 0..batch {
            let o = &mut out[b * dim..(b + 1) * dim];
            let m = &mask[b * seq..(b + 1) * seq];
            let h = &hidden[b * seq * dim..(b + 1) * seq * dim];
            match self {
                Pooling::Cls => o.copy_from_slice(&h[..dim]),
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
            normalize(o);
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

    #[test]
    fn pooling_config_is_read_and_combinations_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("config.json");
        std::fs::write(&p, r#"{"pooling_mode_mean_tokens": true}"#).unwrap();
        assert_eq!(Pooling::from_config_file(&p).unwrap(), Pooling::Mean);
        std::fs::write(
            &p,
            r#"{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": true}"#,
        )
        .unwrap();
        let err = Pooling::from_config_file(&p).unwrap_err().to_string();
        assert!(err.contains("exactly one"), "{err}");
        std::fs::write(&p, r#"{"pooling_mode_mean_tokens": tru"#).unwrap();
        let err = Pooling::from_config_file(&p).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
