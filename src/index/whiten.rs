//! Partial whitening of a library's vectors, for re-ranking.
//!
//! Sentence-transformer vectors are anisotropic: a few directions (what
//! every abstract shares: "we propose", "results show") carry much of the
//! variance, so cosines are inflated by what papers have in common rather
//! than what sets them apart. Whitening with power `p` maps `x` to
//! `Λ^(-p/2) Uᵀ (x − μ)`, where `U Λ Uᵀ` is the covariance of the
//! library's vectors: `p = 0` only centres, `p = 1` makes every direction
//! weigh alike. Cosines in that space are [`Whitening::cosine`].
//!
//! Only the re-ranking uses it: the stored vectors stay the model's own, so
//! dense search and exports keep exact parity with sentence-transformers.
//! Measured on CiteSeer paper-to-paper links (docs/evaluation.md), nDCG@10
//! of the cosine alone over the same candidates: 0.3572 raw, 0.3646
//! centred, 0.3729 at p = 0.25.

use crate::index::dot;

/// A fitted whitening: `M = U Λ^(-p) Uᵀ` and the mean `μ`, so that the
/// whitened dot product of `a` and `b` is `(a − μ)ᵀ M (b − μ)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Whitening {
    dim: usize,
    mean: Vec<f32>,
    /// `dim × dim`, row-major, symmetric.
    matrix: Vec<f32>,
}

/// A query mapped once for [`Whitening::cosine`] against many vectors:
/// `z = M (q − μ)`, `z · μ` and the whitened norm of `q`.
#[derive(Debug, Clone)]
pub struct Projected {
    /// `M (q − μ)`.
    pub z: Vec<f32>,
    /// `z · μ`, subtracted from `z · x` to centre `x`.
    pub offset: f32,
    /// The whitened norm of `q`.
    pub norm: f32,
}

/// Eigenvalues below this fraction of the largest are raised to it: with
/// fewer vectors than dimensions the covariance is singular, and a zero
/// eigenvalue's direction must not be weighted without bound.
const EIGEN_FLOOR: f64 = 1e-6;

/// At most this many vectors are read to estimate the covariance (evenly
/// spaced): enough for a 384-d estimate, and it bounds the cost on large
/// libraries.
pub const FIT_SAMPLE: usize = 50_000;

impl Whitening {
    /// Fits a whitening of power `power` to `vectors` (`n · dim` floats).
    /// None when there are fewer vectors than dimensions: the covariance
    /// would be too poorly estimated to re-weight by.
    pub fn fit(vectors: &[f32], dim: usize, power: f32) -> Option<Whitening> {
        if dim == 0 {
            return None;
        }
        let n = vectors.len() / dim;
        if n < dim.max(2) {
            return None;
        }
        let step = n.div_ceil(FIT_SAMPLE);
        let rows: Vec<&[f32]> = vectors.chunks_exact(dim).step_by(step).collect();
        let mut mean = vec![0.0f64; dim];
        for r in &rows {
            for (m, &x) in mean.iter_mut().zip(r.iter()) {
                *m += f64::from(x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows.len() as f64);
        let cov = covariance(&rows, &mean);
        let (values, vectors) = symmetric_eigen(cov, dim);
        let top = values.iter().copied().fold(0.0f64, f64::max);
        if !(top.is_finite() && top > 0.0) {
            return None;
        }
        // M = Σ (λᵢ/λ₀)^(-p) uᵢ uᵢᵀ; the scale λ₀ cancels in cosines and
        // keeps the entries near 1.
        let weights: Vec<f64> = values
            .iter()
            .map(|&l| (l.max(top * EIGEN_FLOOR) / top).powf(-f64::from(power)))
            .collect();
        let mut matrix = vec![0.0f32; dim * dim];
        for i in 0..dim {
            for j in 0..dim {
                let s: f64 = (0..dim)
                    .map(|k| vectors[i * dim + k] * weights[k] * vectors[j * dim + k])
                    .sum();
                matrix[i * dim + j] = s as f32;
            }
        }
        Some(Whitening {
            dim,
            mean: mean.iter().map(|&m| m as f32).collect(),
            matrix,
        })
    }

    /// A whitening read back from its parts; None when the shapes disagree.
    pub fn from_parts(dim: usize, mean: Vec<f32>, matrix: Vec<f32>) -> Option<Whitening> {
        (mean.len() == dim && matrix.len() == dim * dim).then_some(Whitening { dim, mean, matrix })
    }

    /// Floats per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The mean `μ`.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// `M`, `dim × dim`, row-major.
    pub fn matrix(&self) -> &[f32] {
        &self.matrix
    }

    /// Maps `q` for [`Whitening::cosine`].
    pub fn project(&self, q: &[f32]) -> Projected {
        let centred: Vec<f32> = q.iter().zip(&self.mean).map(|(x, m)| x - m).collect();
        let z: Vec<f32> = self
            .matrix
            .chunks_exact(self.dim)
            .map(|row| dot(row, &centred))
            .collect();
        let norm = dot(&z, &centred).max(0.0).sqrt();
        Projected {
            offset: dot(&z, &self.mean),
            z,
            norm,
        }
    }

    /// The whitened norm of `x`: `√((x − μ)ᵀ M (x − μ))`.
    pub fn norm(&self, x: &[f32]) -> f32 {
        self.project(x).norm
    }

    /// The whitened cosine of a projected query and `x`, whose whitened
    /// norm is `x_norm`; 0 when either norm is 0.
    pub fn cosine(q: &Projected, x: &[f32], x_norm: f32) -> f32 {
        Self::cosine_of_dot(q, dot(&q.z, x), x_norm)
    }

    /// [`Whitening::cosine`] given `z · x` (computed by the caller, e.g.
    /// over quantized codes).
    pub fn cosine_of_dot(q: &Projected, z_dot_x: f32, x_norm: f32) -> f32 {
        let d = q.norm * x_norm;
        if d > 0.0 && d.is_finite() {
            (z_dot_x - q.offset) / d
        } else {
            0.0
        }
    }
}

/// Whitening power of the paper vectors in the re-ranking. Chosen on the
/// even-numbered half of CiteSeer's query papers (0.25 and 0.5 tried); the
/// odd half confirmed it (docs/evaluation.md).
pub const PAPER_POWER: f32 = 0.25;

/// Whitening power of the sentence vectors in the alignment, chosen the same
/// way: sentences share more boilerplate than whole abstracts do, and a
/// stronger whitening discounts it (alignment alone, nDCG@10 on CiteSeer:
/// 0.3158 raw, 0.3398 at 0.25, 0.3442 at 0.5).
pub const SENTENCE_POWER: f32 = 0.5;

/// A library's re-ranking space: one whitening fitted to its paper vectors
/// and one to its sentence vectors, at build.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    /// For whole-paper vectors, power [`PAPER_POWER`].
    pub papers: Whitening,
    /// For sentence vectors, power [`SENTENCE_POWER`].
    pub sentences: Whitening,
}

impl Space {
    /// Fits both whitenings (`papers` and `sentences` are `n · dim` floats);
    /// None when either has fewer vectors than dimensions.
    pub fn fit(papers: &[f32], sentences: &[f32], dim: usize) -> Option<Space> {
        Some(Space {
            papers: Whitening::fit(papers, dim, PAPER_POWER)?,
            sentences: Whitening::fit(sentences, dim, SENTENCE_POWER)?,
        })
    }
}

/// The covariance of `rows` around `mean`, `dim × dim`, row-major.
fn covariance(rows: &[&[f32]], mean: &[f64]) -> Vec<f64> {
    use rayon::prelude::*;
    let dim = mean.len();
    let sum = rows
        .par_chunks(1024)
        .map(|chunk| {
            let mut c = vec![0.0f64; dim * dim];
            let mut x = vec![0.0f64; dim];
            for r in chunk {
                for ((x, &v), m) in x.iter_mut().zip(r.iter()).zip(mean) {
                    *x = f64::from(v) - m;
                }
                // The upper triangle; mirrored below.
                for i in 0..dim {
                    let xi = x[i];
                    for (c, &xj) in c[i * dim + i..(i + 1) * dim].iter_mut().zip(&x[i..]) {
                        *c += xi * xj;
                    }
                }
            }
            c
        })
        .reduce(
            || vec![0.0f64; dim * dim],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        );
    let n = rows.len().max(1) as f64;
    let mut c = sum;
    for i in 0..dim {
        for j in i..dim {
            let v = c[i * dim + j] / n;
            c[i * dim + j] = v;
            c[j * dim + i] = v;
        }
    }
    c
}

/// Eigenvalues and eigenvectors of a symmetric `dim × dim` matrix
/// (row-major): Householder reduction to tridiagonal form, then the
/// implicit QL method (EISPACK's tred2 and tql2, as in JAMA). O(dim³), a
/// few tenths of a second at 384 dimensions, where cyclic Jacobi rotations
/// took seconds per fit. Returns the eigenvalues (unsorted) and a row-major
/// matrix whose column `k` is eigenvector `k`.
fn symmetric_eigen(a: Vec<f64>, dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = dim;
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut v = a;
    let mut d = vec![0.0f64; n];
    let mut e = vec![0.0f64; n];
    tridiagonalize(&mut v, &mut d, &mut e, n);
    tridiagonal_ql(&mut v, &mut d, &mut e, n);
    (d, v)
}

/// Householder reduction of the symmetric `v` to tridiagonal form:
/// diagonal in `d`, subdiagonal in `e[1..]`, and `v` overwritten with the
/// orthogonal transformation (EISPACK tred2).
fn tridiagonalize(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let at = |i: usize, j: usize| i * n + j;
    d.copy_from_slice(&v[at(n - 1, 0)..at(n - 1, 0) + n]);
    for i in (1..n).rev() {
        let scale: f64 = d[..i].iter().map(|x| x.abs()).sum();
        let mut h = 0.0;
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
                v[at(j, i)] = 0.0;
            }
        } else {
            // The Householder vector.
            for x in &mut d[..i] {
                *x /= scale;
                h += *x * *x;
            }
            let mut f = d[i - 1];
            let mut g = if f > 0.0 { -h.sqrt() } else { h.sqrt() };
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            e[..i].fill(0.0);
            // The similarity transformation of the remaining columns.
            for j in 0..i {
                f = d[j];
                v[at(j, i)] = f;
                g = e[j] + v[at(j, j)] * f;
                for k in j + 1..i {
                    g += v[at(k, j)] * d[k];
                    e[k] += v[at(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                let (f, g) = (d[j], e[j]);
                for k in j..i {
                    v[at(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate the transformations.
    for i in 0..n - 1 {
        v[at(n - 1, i)] = v[at(i, i)];
        v[at(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[at(k, i + 1)] / h;
            }
            for j in 0..=i {
                let g: f64 = (0..=i).map(|k| v[at(k, i + 1)] * v[at(k, j)]).sum();
                for k in 0..=i {
                    v[at(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[at(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
        v[at(n - 1, j)] = 0.0;
    }
    v[at(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;
}

/// Eigenvalues (into `d`) and eigenvectors (into `v`'s columns) of the
/// tridiagonal matrix `tridiagonalize` left, by the implicit QL method with
/// Wilkinson shifts (EISPACK tql2).
fn tridiagonal_ql(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let at = |i: usize, j: usize| i * n + j;
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0f64;
    let mut tst1 = 0.0f64;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        // The first negligible subdiagonal element at or after l (e[n-1] is 0).
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }
        if m > l {
            // Bounded, so a matrix with a NaN cannot loop forever.
            for _ in 0..64 {
                // The implicit shift.
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for x in &mut d[l + 2..n] {
                    *x -= h;
                }
                f += h;
                // The implicit QL transformation.
                p = d[m];
                let (mut c, mut c2, mut c3) = (1.0f64, 1.0f64, 1.0f64);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0f64, 0.0f64);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for k in 0..n {
                        let h = v[at(k, i + 1)];
                        v[at(k, i + 1)] = s * v[at(k, i)] + c * h;
                        v[at(k, i)] = c * v[at(k, i)] - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random floats in [-1, 1).
    fn noise(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn eigen_decomposition_reconstructs_the_matrix_with_orthonormal_vectors() {
        // Small and full rank; larger and rank-deficient (fewer rows than
        // dimensions: zero eigenvalues, a repeated one).
        for (dim, rows, seed) in [(6, 6, 1), (1, 1, 3), (48, 20, 4)] {
            let x = noise(seed, rows * dim);
            // A = XᵀX is symmetric positive semi-definite.
            let mut a = vec![0.0f64; dim * dim];
            for i in 0..dim {
                for j in 0..dim {
                    a[i * dim + j] = (0..rows)
                        .map(|k| f64::from(x[k * dim + i]) * f64::from(x[k * dim + j]))
                        .sum();
                }
            }
            let (values, v) = symmetric_eigen(a.clone(), dim);
            assert!(values.iter().all(|&l| l > -1e-9), "{values:?}");
            for i in 0..dim {
                for j in 0..dim {
                    let back: f64 = (0..dim)
                        .map(|k| v[i * dim + k] * values[k] * v[j * dim + k])
                        .sum();
                    let want = a[i * dim + j];
                    assert!((back - want).abs() < 1e-9, "{back} vs {want}");
                    let dot: f64 = (0..dim).map(|k| v[k * dim + i] * v[k * dim + j]).sum();
                    let unit = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - unit).abs() < 1e-9, "columns {i}, {j}: {dot}");
                }
            }
        }
    }

    #[test]
    fn whitening_weighs_directions_by_inverse_variance_and_cosines_match_the_map() {
        // Anisotropic data: axis 0 spread 10x wider than the others.
        let dim = 4;
        let n = 400;
        let mut data = noise(2, n * dim);
        for r in data.chunks_exact_mut(dim) {
            r[0] *= 10.0;
            r[1] += 3.0;
        }
        let w = Whitening::fit(&data, dim, 1.0).unwrap();
        // Axis 0 (wide) and axis 2 (narrow) unit steps weigh by their
        // inverse variance: the narrow one ~100x more.
        let mut e0 = w.mean().to_vec();
        e0[0] += 1.0;
        let mut e2 = w.mean().to_vec();
        e2[2] += 1.0;
        let ratio = (w.norm(&e2) / w.norm(&e0)).powi(2);
        assert!((60.0..160.0).contains(&ratio), "{ratio}");
        // The cosine from a projection equals the cosine of the whitened
        // vectors written out: (a−μ)ᵀM(b−μ) / (|a|_M |b|_M).
        let (a, b) = (&data[0..dim], &data[dim..2 * dim]);
        let pa = w.project(a);
        let got = Whitening::cosine(&pa, b, w.norm(b));
        let centred: Vec<f32> = b.iter().zip(w.mean()).map(|(x, m)| x - m).collect();
        let want = dot(&pa.z, &centred) / (pa.norm * w.norm(b));
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // A vector's whitened cosine with itself is 1.
        assert!((Whitening::cosine(&pa, a, pa.norm) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn power_zero_only_centres() {
        let dim = 3;
        let data = noise(3, 50 * dim);
        let w = Whitening::fit(&data, dim, 0.0).unwrap();
        let (a, b) = (&data[0..dim], &data[dim..2 * dim]);
        let ca: Vec<f32> = a.iter().zip(w.mean()).map(|(x, m)| x - m).collect();
        let cb: Vec<f32> = b.iter().zip(w.mean()).map(|(x, m)| x - m).collect();
        let want = dot(&ca, &cb) / (dot(&ca, &ca).sqrt() * dot(&cb, &cb).sqrt());
        let got = Whitening::cosine(&w.project(a), b, w.norm(b));
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn too_few_vectors_fit_nothing() {
        assert!(Whitening::fit(&noise(4, 3 * 8), 8, 0.5).is_none());
        assert!(Whitening::fit(&[], 0, 0.5).is_none());
        assert!(Whitening::from_parts(2, vec![0.0; 2], vec![0.0; 3]).is_none());
    }
}
