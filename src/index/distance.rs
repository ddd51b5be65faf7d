//! The scores of every search: f32 dot products (cosines of unit vectors),
//! the integer dot products of 8-bit codes, and a prefetch hint. Each has a
//! portable loop and an AVX2 kernel picked at run time (the CPU is checked
//! once); the tests hold each kernel to its portable reference.

/// Dot product: the distance of every HNSW step and the whole cost of an
/// exact scan. AVX2+FMA when the CPU has them, else a portable loop
/// (`dot_portable`).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: the CPU has AVX2 and FMA (checked above); equal lengths.
        return unsafe { simd::dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// A portable loop with eight independent accumulators, which the compiler
/// keeps in SSE registers (a single running sum could not be reordered).
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Integer dot product of an i8 code row and an i16 query: the score of a
/// step through a quantized graph (see `codes`). The sum is exact, so the
/// AVX2 and portable paths agree bit for bit. Callers bound
/// `|q| · 127 · len` below 2³¹.
pub fn dot_i8(codes: &[i8], q: &[i16]) -> i32 {
    let n = codes.len().min(q.len());
    let (codes, q) = (&codes[..n], &q[..n]);
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: the CPU has AVX2 (checked above); equal lengths.
        return unsafe { simd::dot_i8_avx2(codes, q) };
    }
    dot_i8_portable(codes, q)
}

fn dot_i8_portable(codes: &[i8], q: &[i16]) -> i32 {
    codes.iter().zip(q).fold(0i32, |acc, (&c, &x)| {
        acc.wrapping_add(i32::from(c) * i32::from(x))
    })
}

/// Asks the CPU to start loading the first cache lines (up to 6) of `v` (a
/// row about to be scored): a search scores rows in graph order, which at
/// 75k papers is a cache miss per row, and the hardware prefetcher
/// continues a stream once the first lines are in flight.
#[inline(always)]
pub fn prefetch<T>(v: &[T]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = v.as_ptr() as *const i8;
        let bytes = std::mem::size_of_val(v).min(6 * 64);
        let mut at = 0;
        while at < bytes {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at));
            at += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }

    #[target_feature(enable = "avx2")]
    unsafe fn hsum(s: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(s, 1);
        let q = _mm_add_ps(_mm256_castps256_ps128(s), hi);
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
        _mm_cvtss_f32(q)
    }

    /// Sign-extends 16 codes to i16 and multiplies them with `vpmaddwd`
    /// (pairs summed into i32 lanes, exact), two chains of 16 a step.
    ///
    /// # Safety
    /// The CPU must support AVX2; `a` and `q` must have equal length.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_i8_avx2(a: &[i8], q: &[i16]) -> i32 {
        let n = a.len();
        let (pa, pq) = (a.as_ptr(), q.as_ptr());
        let step = |i: usize| {
            let c = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i) as *const __m128i));
            _mm256_madd_epi16(c, _mm256_loadu_si256(pq.add(i) as *const __m256i))
        };
        let mut s0 = _mm256_setzero_si256();
        let mut s1 = _mm256_setzero_si256();
        let mut i = 0;
        while i + 32 <= n {
            s0 = _mm256_add_epi32(s0, step(i));
            s1 = _mm256_add_epi32(s1, step(i + 16));
            i += 32;
        }
        if i + 16 <= n {
            s0 = _mm256_add_epi32(s0, step(i));
            i += 16;
        }
        let s = _mm256_add_epi32(s0, s1);
        let h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        let h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0b01_00_11_10));
        let h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0b10_11_00_01));
        let mut sum = _mm_cvtsi128_si32(h);
        while i < n {
            sum = sum.wrapping_add(i32::from(*pa.add(i)) * i32::from(*pq.add(i)));
            i += 1;
        }
        sum
    }

    /// Two 8-lane FMA chains (16 floats a step) hide the FMA latency; 384-d
    /// vectors are 24 steps.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `a` and `b` must have equal length.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut s0 = _mm256_setzero_ps();
        let mut s1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
            s1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                s1,
            );
            i += 16;
        }
        if i + 8 <= n {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
            i += 8;
        }
        let mut sum = hsum(_mm256_add_ps(s0, s1));
        while i < n {
            sum += *pa.add(i) * *pb.add(i);
            i += 1;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LENGTHS: [usize; 14] = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 37, 384, 385];

    #[test]
    fn dot_matches_naive_at_every_length() {
        for n in LENGTHS {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - naive).abs() < 1e-4, "n={n}");
            assert!((dot_portable(&a, &b) as f64 - naive).abs() < 1e-4, "n={n}");
            #[cfg(target_arch = "x86_64")]
            if simd::available() {
                // SAFETY: checked just above; equal lengths.
                let d = unsafe { simd::dot_avx2(&a, &b) };
                assert!((d - dot_portable(&a, &b)).abs() < 1e-4, "n={n}");
            }
        }
    }

    #[test]
    fn i8_dot_is_exact_at_every_length() {
        for n in LENGTHS {
            let a: Vec<i8> = (0..n)
                .map(|i| ((i * 37) % 255) as i32 - 127)
                .map(|x| x as i8)
                .collect();
            let q: Vec<i16> = (0..n)
                .map(|i| (((i * 7919) % 65535) as i32 - 32767) as i16)
                .collect();
            let naive: i64 = a
                .iter()
                .zip(&q)
                .map(|(&x, &y)| i64::from(x) * i64::from(y))
                .sum();
            assert_eq!(i64::from(dot_i8(&a, &q)), naive, "n={n}");
            assert_eq!(i64::from(dot_i8_portable(&a, &q)), naive, "n={n}");
            #[cfg(target_arch = "x86_64")]
            if simd::available() {
                // SAFETY: checked just above; equal lengths.
                let d = unsafe { simd::dot_i8_avx2(&a, &q) };
                assert_eq!(d, dot_i8_portable(&a, &q), "n={n}");
            }
        }
    }

    #[test]
    fn prefetch_takes_any_slice() {
        prefetch::<f32>(&[]);
        prefetch(&[1i8; 1000]);
    }
}
