//! AMX (Intel Xeon since Sapphire Rapids): the int8 and bf16 products on
//! tile registers. One `tdpbsud` multiplies a 16-row x 64-byte tile of s8
//! weights by a 16-lane x 16-token tile of u8 activation quads into 16 x 16
//! i32 sums (16,384 multiply-adds); `tdpbf16ps` does the same on bf16 pairs
//! into f32 (8,192). An AVX-512 VNNI instruction does 64 or 32.
//!
//! The weights are laid out for the tiles at load: row-major, each row's
//! lanes contiguous, padded to whole tiles (16 lanes, 16 rows). The
//! activations keep the quad and pair layouts of the other paths
//! (`[lane][token]`), which is the layout a B tile loads, with the lanes
//! padded by zeros to the weights'.
//!
//! C is computed 32 rows x 32 tokens at a time (four accumulator tiles, two
//! weight and two activation tiles: all eight tile registers) over the whole
//! K, then stored to a scratch tile and passed through the epilogue of the
//! AVX-512 kernels, so that the int8 results equal the `vpdpbusd` path's bit
//! for bit (the sums are exact either way).
//!
//! Linux hands out tile state only on request (`arch_prctl(ARCH_REQ_XCOMP_PERM,
//! XFEATURE_XTILEDATA)`); [`hardware`] asks once, and the path is offered
//! only when the CPU has AMX-TILE, AMX-INT8 and AMX-BF16, the OS enabled
//! the tile state and the request was granted. Stable Rust has no AMX
//! intrinsics, so the instructions are inline `asm!`, behind the [`Tiles`]
//! trait. The unit tests also implement that trait as an emulation of the
//! instructions' documented semantics (Intel SDM, `TDPBSUD`, `TDPBF16PS`),
//! so the indexing and epilogue here are tested on any AVX-512 CPU; the
//! instructions themselves are checked by the self-check on a CPU that has
//! them, before the path is used.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::super::int8::U8Zero;
use super::avx512::V512;
use super::simd::{self, Epilogue, QEpilogue, Vf32};
use super::{Act, Init, MR, NR};

/// Rows of a tile, and i32 lanes (64 bytes) of a tile row.
pub(in crate::embed::cpu_bert) const TILE: usize = 16;

/// Whether this process may run AMX tile instructions (asked once).
pub(super) fn hardware() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| cpu_has_amx() && request_tile_data())
}

/// AMX-TILE, AMX-INT8 and AMX-BF16 in CPUID, and the tile state enabled by
/// the OS in XCR0.
fn cpu_has_amx() -> bool {
    // CPUID leaf 7 EDX: AMX-BF16 (22), AMX-TILE (24), AMX-INT8 (25).
    const AMX: u32 = (1 << 22) | (1 << 24) | (1 << 25);
    // XCR0: XTILECFG (17) and XTILEDATA (18).
    const TILE_STATE: u64 = (1 << 17) | (1 << 18);
    // SAFETY: CPUID exists on every x86_64 CPU; XGETBV is run only after
    // CPUID says the OS enabled it (OSXSAVE).
    unsafe {
        if __cpuid(0).eax < 7 || __cpuid_count(7, 0).edx & AMX != AMX {
            return false;
        }
        if __cpuid(1).ecx & (1 << 27) == 0 {
            return false;
        }
        let (lo, hi): (u32, u32);
        asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags));
        (u64::from(hi) << 32 | u64::from(lo)) & TILE_STATE == TILE_STATE
    }
}

/// Asks Linux for the tile data state; a refusal leaves AMX unused.
#[cfg(target_os = "linux")]
fn request_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: this request only changes which state the kernel lets the
    // process use; it touches no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

/// Elsewhere the permission protocol is unknown to us: not offered.
#[cfg(not(target_os = "linux"))]
fn request_tile_data() -> bool {
    false
}

/// The tile operations the kernels use. Every tile is 16 rows of 16 i32
/// lanes; tiles are named by number (0-7), as the instructions need.
#[allow(clippy::missing_safety_doc)]
pub(super) trait Tiles {
    /// Sets tiles 0-7 to 16 rows x 64 bytes (`ldtilecfg`).
    unsafe fn configure(&mut self);
    /// Gives the tile state back (`tilerelease`).
    unsafe fn release(&mut self);
    unsafe fn zero<const T: u8>(&mut self);
    /// Tile `T`'s rows from `p`, `stride` lanes apart.
    unsafe fn load<const T: u8>(&mut self, p: *const i32, stride: usize);
    unsafe fn store<const T: u8>(&mut self, p: *mut i32, stride: usize);
    /// Tile C += A·B: s8 quads of A by u8 quads of B into i32 (`tdpbsud`).
    unsafe fn dot_i8<const C: u8, const A: u8, const B: u8>(&mut self);
    /// Tile C += A·B: bf16 pairs into f32 (`tdpbf16ps`).
    unsafe fn dot_bf16<const C: u8, const A: u8, const B: u8>(&mut self);
}

/// The CPU's tiles.
struct Hardware;

impl Tiles for Hardware {
    #[inline(always)]
    unsafe fn configure(&mut self) {
        // Palette 1; bytes 16.. the row widths (u16), 48.. the row counts.
        let mut cfg = [0u8; 64];
        cfg[0] = 1;
        for t in 0..8 {
            cfg[16 + 2 * t..18 + 2 * t].copy_from_slice(&(4 * TILE as u16).to_le_bytes());
            cfg[48 + t] = TILE as u8;
        }
        asm!("ldtilecfg [{}]", in(reg) cfg.as_ptr(), options(nostack, readonly, preserves_flags));
    }

    #[inline(always)]
    unsafe fn release(&mut self) {
        asm!("tilerelease", options(nostack, nomem, preserves_flags));
    }

    #[inline(always)]
    unsafe fn zero<const T: u8>(&mut self) {
        asm!("tilezero tmm{t}", t = const T, options(nostack, nomem, preserves_flags));
    }

    #[inline(always)]
    unsafe fn load<const T: u8>(&mut self, p: *const i32, stride: usize) {
        asm!("tileloadd tmm{t}, [{p} + {s} * 1]", t = const T, p = in(reg) p,
            s = in(reg) 4 * stride, options(nostack, readonly, preserves_flags));
    }

    #[inline(always)]
    unsafe fn store<const T: u8>(&mut self, p: *mut i32, stride: usize) {
        asm!("tilestored [{p} + {s} * 1], tmm{t}", t = const T, p = in(reg) p,
            s = in(reg) 4 * stride, options(nostack, preserves_flags));
    }

    #[inline(always)]
    unsafe fn dot_i8<const C: u8, const A: u8, const B: u8>(&mut self) {
        asm!("tdpbsud tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B,
            options(nostack, nomem, preserves_flags));
    }

    #[inline(always)]
    unsafe fn dot_bf16<const C: u8, const A: u8, const B: u8>(&mut self) {
        asm!("tdpbf16ps tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B,
            options(nostack, nomem, preserves_flags));
    }
}

/// The instructions as the Intel SDM defines them, in plain Rust, for the
/// unit tests on CPUs without AMX.
#[cfg(test)]
pub(super) struct Emulated {
    tiles: [[[i32; TILE]; TILE]; 8],
}

#[cfg(test)]
impl Emulated {
    pub(super) fn new() -> Self {
        Emulated {
            tiles: [[[0; TILE]; TILE]; 8],
        }
    }
}

#[cfg(test)]
impl Tiles for Emulated {
    unsafe fn configure(&mut self) {}

    unsafe fn release(&mut self) {}

    unsafe fn zero<const T: u8>(&mut self) {
        self.tiles[T as usize] = [[0; TILE]; TILE];
    }

    unsafe fn load<const T: u8>(&mut self, p: *const i32, stride: usize) {
        for (r, row) in self.tiles[T as usize].iter_mut().enumerate() {
            row.copy_from_slice(std::slice::from_raw_parts(p.add(r * stride), TILE));
        }
    }

    unsafe fn store<const T: u8>(&mut self, p: *mut i32, stride: usize) {
        for (r, row) in self.tiles[T as usize].iter().enumerate() {
            std::slice::from_raw_parts_mut(p.add(r * stride), TILE).copy_from_slice(row);
        }
    }

    unsafe fn dot_i8<const C: u8, const A: u8, const B: u8>(&mut self) {
        use super::super::int8::unquad;
        let (a, b) = (self.tiles[A as usize], self.tiles[B as usize]);
        for (m, row) in self.tiles[C as usize].iter_mut().enumerate() {
            for (n, acc) in row.iter_mut().enumerate() {
                for k in 0..TILE {
                    let (w, x) = (unquad(a[m][k], true), unquad(b[k][n], false));
                    let dot: i32 = w.iter().zip(&x).map(|(w, x)| w * x).sum();
                    *acc = acc.wrapping_add(dot);
                }
            }
        }
    }

    unsafe fn dot_bf16<const C: u8, const A: u8, const B: u8>(&mut self) {
        use super::super::bf16::unpair;
        let (a, b) = (self.tiles[A as usize], self.tiles[B as usize]);
        for (m, row) in self.tiles[C as usize].iter_mut().enumerate() {
            for (n, acc) in row.iter_mut().enumerate() {
                let mut sum = f32::from_bits(*acc as u32);
                for k in 0..TILE {
                    let ((a0, a1), (b0, b1)) = (unpair(a[m][k]), unpair(b[k][n]));
                    sum += a0 * b0;
                    sum += a1 * b1;
                }
                *acc = sum.to_bits() as i32;
            }
        }
    }
}

/// The int8 dequantization of a tile product.
#[derive(Clone, Copy)]
pub(in crate::embed::cpu_bert) struct TScale<'a> {
    /// Per row, from the block's first.
    pub w_scale: &'a [f32],
    /// Per token, and the zero-point correction (row sums from the block's
    /// first row, zero points of all `n` tokens).
    pub x_scale: &'a [f32],
    pub zero: U8Zero<'a>,
}

/// Rows of C against every token over the whole K, on tiles (the sizes
/// are checked by `kernel::tblock`).
pub(in crate::embed::cpu_bert) struct TBlock<'a> {
    /// Weights: row i, lane g at `a[i * lda + g]`, rows padded to [`TILE`].
    pub a: &'a [i32],
    /// Lanes per row: a multiple of [`TILE`].
    pub lda: usize,
    /// Activations: lane g, token j at `b[g * ldb + j]`, `lda` lanes.
    pub b: &'a [i32],
    pub ldb: usize,
    /// Tokens: a multiple of [`NR`].
    pub n: usize,
    pub rows: usize,
    pub init: Init<'a>,
    pub act: Act,
    /// int8 (`tdpbsud`) with its dequantization; `None`: bf16.
    pub q: Option<TScale<'a>>,
}

/// The product on the CPU's tiles (the emulation in unit tests on a CPU
/// without them).
///
/// # Safety
/// AVX-512 F/BW/VL, AVX2 and FMA must be available, the tiles granted
/// ([`hardware`]), and the slices as `kernel::tblock` asserts.
pub(super) unsafe fn tblock(p: &TBlock<'_>, c: &mut [f32], ldc: usize) {
    #[cfg(test)]
    if !hardware() {
        return run(&mut Emulated::new(), p, c, ldc);
    }
    run(&mut Hardware, p, c, ldc)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn run<T: Tiles>(t: &mut T, p: &TBlock<'_>, c: &mut [f32], ldc: usize) {
    let mut acc = [[0i32; TILE]; TILE];
    t.configure();
    for i in (0..p.rows).step_by(2 * TILE) {
        let two_rows = i + TILE < p.rows;
        for j in (0..p.n).step_by(2 * NR) {
            let two_cols = j + NR < p.n;
            match (two_rows, two_cols, p.q.is_some()) {
                (true, true, true) => product::<T, 2, 2, true>(t, p, i, j),
                (true, false, true) => product::<T, 2, 1, true>(t, p, i, j),
                (false, true, true) => product::<T, 1, 2, true>(t, p, i, j),
                (false, false, true) => product::<T, 1, 1, true>(t, p, i, j),
                (true, true, false) => product::<T, 2, 2, false>(t, p, i, j),
                (true, false, false) => product::<T, 2, 1, false>(t, p, i, j),
                (false, true, false) => product::<T, 1, 2, false>(t, p, i, j),
                (false, false, false) => product::<T, 1, 1, false>(t, p, i, j),
            }
            // Accumulator tile 2·r + h holds rows i + 16r, tokens j + 16h.
            for (tile, r, h) in [(0, 0, 0), (1, 0, 1), (2, 1, 0), (3, 1, 1)] {
                if (r == 1 && !two_rows) || (h == 1 && !two_cols) {
                    continue;
                }
                let out = acc.as_mut_ptr() as *mut i32;
                match tile {
                    0 => t.store::<0>(out, TILE),
                    1 => t.store::<1>(out, TILE),
                    2 => t.store::<2>(out, TILE),
                    _ => t.store::<3>(out, TILE),
                }
                epilogue(p, &acc, i + r * TILE, j + h * NR, c, ldc);
            }
        }
    }
    t.release();
}

/// Accumulator tiles `0..R·J` over the whole K: rows `i..i + 16R` of C by
/// tokens `j..j + 16J`, weight tiles in 4-5, activation tiles in 6-7.
#[inline(always)]
unsafe fn product<T: Tiles, const R: usize, const J: usize, const INT8: bool>(
    t: &mut T,
    p: &TBlock<'_>,
    i: usize,
    j: usize,
) {
    t.zero::<0>();
    t.zero::<1>();
    t.zero::<2>();
    t.zero::<3>();
    let a = p.a.as_ptr().add(i * p.lda);
    let b = p.b.as_ptr().add(j);
    for g in (0..p.lda).step_by(TILE) {
        t.load::<4>(a.add(g), p.lda);
        if R == 2 {
            t.load::<5>(a.add(TILE * p.lda + g), p.lda);
        }
        t.load::<6>(b.add(g * p.ldb), p.ldb);
        if J == 2 {
            t.load::<7>(b.add(g * p.ldb + NR), p.ldb);
        }
        dot::<T, 0, 4, 6, INT8>(t);
        if J == 2 {
            dot::<T, 1, 4, 7, INT8>(t);
        }
        if R == 2 {
            dot::<T, 2, 5, 6, INT8>(t);
        }
        if R == 2 && J == 2 {
            dot::<T, 3, 5, 7, INT8>(t);
        }
    }
}

#[inline(always)]
unsafe fn dot<T: Tiles, const C: u8, const A: u8, const B: u8, const INT8: bool>(t: &mut T) {
    if INT8 {
        t.dot_i8::<C, A, B>()
    } else {
        t.dot_bf16::<C, A, B>()
    }
}

/// The accumulators of rows `i..`, tokens `j..j + 16` through the AVX-512
/// epilogue into C, MR rows at a time.
#[inline(always)]
unsafe fn epilogue(
    p: &TBlock<'_>,
    acc: &[[i32; TILE]; TILE],
    i: usize,
    j: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let rows = TILE.min(p.rows - i);
    let init = p.init.at_row(i);
    let cp = c.as_mut_ptr().add(i * ldc + j);
    // MR-row slices of the tile; rows past the tile (the last slice's
    // 17th and 18th) repeat its last row and are not stored.
    let row = |t: usize, r: usize| acc[(t * MR + r).min(TILE - 1)].as_ptr();
    for t in 0..rows.div_ceil(MR) {
        match &p.q {
            Some(q) => {
                let e = QEpilogue {
                    rows,
                    init,
                    act: p.act,
                    w_scale: &q.w_scale[i..],
                    row_sum: Some(&q.zero.row_sum[i..]),
                };
                let part = std::array::from_fn(|r| [V512::load_i32(row(t, r))]);
                let xs = [V512::load(q.x_scale.as_ptr().add(j))];
                let zero = [V512::load_i32(q.zero.zero.as_ptr().add(j))];
                simd::qstore_tile::<V512, 1>(&e, &part, t, cp, ldc, &xs, Some(&zero));
            }
            None => {
                let e = Epilogue {
                    rows,
                    init,
                    act: p.act,
                };
                let part = std::array::from_fn(|r| [V512::load(row(t, r) as *const f32)]);
                simd::store_tile::<V512, 1>(&e, &part, t, cp, ldc, None, None);
            }
        }
    }
}
