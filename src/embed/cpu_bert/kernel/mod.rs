//! The CPU encoder's kernels, one file per instruction set, chosen at run
//! time: the register-tile products (f32 and int8), and the column-wise
//! softmax and LayerNorm around them.
//!
//! - [`scalar`]: portable Rust, the reference every other path is checked
//!   against, and the fallback.
//! - [`simd`]: the f32 kernels written once over a small vector trait
//!   ([`simd::Vf32`]), instantiated as AVX2, AVX-512 and NEON.
//! - [`avx2`], [`avx512`], [`avxvnni`], [`neon`]: each instruction set's
//!   vector type and what only its intrinsics reach (the int8 products, GELU's
//!   f64 erf).
//! - [`amx`]: the int8 and bf16 products on AMX tiles (inline `asm!`).
//!
//! [`Isa::select`] picks the best path the CPU has (or the one
//! `PAPERSIM_ISA` names), and runs [`self_check`] on it first: a path whose
//! small fixed products disagree with the scalar kernels is refused with a
//! warning, and the next one down is used.

use super::bf16::BPanel;
use super::int8::{QPanel, QuantSpec};
use super::Cols;

pub(super) mod scalar;
pub(super) mod simd;

#[cfg(target_arch = "x86_64")]
pub(super) mod amx;
#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512;
#[cfg(target_arch = "x86_64")]
pub(super) mod avxvnni;
#[cfg(target_arch = "aarch64")]
pub(super) mod neon;

/// Rows (output features) and columns (tokens) of one register tile.
/// Weights are packed in MR-row tiles whatever the instruction set; a
/// kernel may take several tiles at once (AVX-512 takes two).
pub(super) const MR: usize = 6;
pub(super) const NR: usize = 16;

/// Activation after the intermediate dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Act {
    None,
    /// 0.5·x·(1 + erf(x/√2)): BERT's `gelu`.
    GeluErf,
    /// 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))): `gelu_new`, `gelu_pytorch_tanh`.
    GeluTanh,
}

/// How a panel's accumulators start: as `Start` for the first K block
/// (the bias from the panel's first row), `Load` (C's partial sums) after it.
#[derive(Clone, Copy)]
pub(super) enum Init<'a> {
    Zero,
    Bias(&'a [f32]),
    Load,
    LoadBias(&'a [f32]),
}

impl Init<'_> {
    /// Row `i`'s bias (0 without one).
    pub(super) fn bias(&self, i: usize) -> f32 {
        match self {
            Init::Bias(b) | Init::LoadBias(b) => b[i],
            Init::Zero | Init::Load => 0.0,
        }
    }

    /// Whether C's current values are added.
    pub(super) fn loads(&self) -> bool {
        matches!(self, Init::Load | Init::LoadBias(_))
    }

    /// The same start for the rows from `i` on.
    pub(super) fn at_row(self, i: usize) -> Self {
        match self {
            Init::Bias(b) => Init::Bias(&b[i..]),
            Init::LoadBias(b) => Init::LoadBias(&b[i..]),
            other => other,
        }
    }
}

/// A column of MR x NR tiles of C (`rows` rows, one NR-wide panel of N) over
/// one K block: the kernel's whole loop, so that the checks and dispatch
/// happen once per panel rather than once per tile.
pub(super) struct Panel<'a> {
    /// A from the panel's first row: element (t * MR + r, k) at
    /// `a[t * tile_stride + k * a_ks + r]`.
    pub a: &'a [f32],
    pub tile_stride: usize,
    pub a_ks: usize,
    /// B: element (k, j) at `b[k * ldb + j]`.
    pub b: &'a [f32],
    pub ldb: usize,
    pub kc: usize,
    pub rows: usize,
    pub init: Init<'a>,
    /// Applied when storing: per-column scale, then the activation.
    pub col_scale: Option<&'a [f32]>,
    pub act: Act,
}

/// Which kernels run. Every variant but `Scalar` is only built by
/// [`Isa::select`] (or a test) after the CPU said it has the instruction
/// set: the `unsafe` calls into `#[target_feature]` functions rely on that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Isa {
    Scalar,
    /// AVX2 + FMA: f32 and int8 (`vpmaddwd`).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX2 + FMA + AVX-VNNI (Intel client CPUs since Alder Lake, AMD Zen 5):
    /// f32 as AVX2, int8 by 256-bit `vpdpwssd`.
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    /// AVX-512 F/BW/VL (+ AVX2, FMA): f32 on zmm registers, int8 as AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX-512 with VNNI: int8 by 512-bit `vpdpbusd` (and `vpdpwssd`).
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    /// AVX-512 VNNI with BF16 (Intel since Cooper Lake, AMD Zen 4): bf16
    /// by `vdpbf16ps`; f32 and int8 as `Avx512Vnni`.
    #[cfg(target_arch = "x86_64")]
    Avx512Bf16,
    /// AVX-512 BF16 with AMX-TILE, AMX-INT8 and AMX-BF16 (Intel Xeon since
    /// Sapphire Rapids), granted by the OS: int8 and bf16 on tiles
    /// (`tdpbsud`, `tdpbf16ps`); f32 as `Avx512Bf16`.
    #[cfg(target_arch = "x86_64")]
    Amx,
    /// aarch64 Advanced SIMD: f32 and int8 (`smlal`).
    #[cfg(target_arch = "aarch64")]
    Neon,
}

/// Every name `PAPERSIM_ISA` takes, on any architecture, best first.
pub(super) const ISA_NAMES: [&str; 8] = [
    "amx",
    "avx512-bf16",
    "avx512-vnni",
    "avx512",
    "avx-vnni",
    "avx2",
    "neon",
    "scalar",
];

impl Isa {
    /// This architecture's paths, best first.
    fn ladder() -> &'static [Isa] {
        #[cfg(target_arch = "x86_64")]
        return &[
            Isa::Amx,
            Isa::Avx512Bf16,
            Isa::Avx512Vnni,
            Isa::Avx512,
            Isa::AvxVnni,
            Isa::Avx2,
            Isa::Scalar,
        ];
        #[cfg(target_arch = "aarch64")]
        return &[Isa::Neon, Isa::Scalar];
        #[allow(unreachable_code)]
        &[Isa::Scalar]
    }

    /// The name `PAPERSIM_ISA` takes and `info`/`bench` print.
    pub(super) fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => "avx-vnni",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => "avx512-vnni",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bf16 => "avx512-bf16",
            #[cfg(target_arch = "x86_64")]
            Isa::Amx => "amx",
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => "neon",
        }
    }

    /// Whether this CPU has every instruction the path uses.
    pub(super) fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        let avx2 = || is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        #[cfg(target_arch = "x86_64")]
        let avx512 = || {
            avx2()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
        };
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => avx2(),
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => avx2() && is_x86_feature_detected!("avxvnni"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => avx512(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => avx512() && is_x86_feature_detected!("avx512vnni"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bf16 => {
                Isa::Avx512Vnni.supported() && is_x86_feature_detected!("avx512bf16")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Amx => Isa::Avx512Bf16.supported() && amx::hardware(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
        }
    }

    /// Every path this CPU can run, best first (tests force each).
    pub(super) fn available() -> Vec<Isa> {
        Isa::ladder()
            .iter()
            .copied()
            .filter(|i| i.supported())
            .collect()
    }

    /// [`Isa::available`], and the AMX path on any AVX-512 BF16 CPU (on
    /// an emulation of the tile instructions where the CPU has none), for
    /// the unit tests of the products.
    #[cfg(test)]
    pub(super) fn testable() -> Vec<Isa> {
        let mut isas = Isa::available();
        #[cfg(target_arch = "x86_64")]
        if !isas.contains(&Isa::Amx) && Isa::Avx512Bf16.supported() {
            isas.insert(0, Isa::Amx);
        }
        isas
    }

    /// The path to run: `PAPERSIM_ISA` when set (and not `auto`), else the
    /// best this CPU has; then the self-check, falling down the ladder
    /// past any path that fails it. Returns the path and a warning for
    /// each one refused.
    pub(super) fn select() -> Result<(Isa, Vec<String>), String> {
        let wanted = std::env::var("PAPERSIM_ISA").unwrap_or_default();
        let isa = Isa::parse(wanted.trim())?;
        Ok(Isa::checked(isa, self_check))
    }

    /// The path named `name` ("" or "auto": the best available), if this
    /// CPU runs it.
    pub(super) fn parse(name: &str) -> Result<Isa, String> {
        let available = Isa::available();
        if name.is_empty() || name == "auto" {
            return Ok(available[0]);
        }
        let names: Vec<&str> = available.iter().map(|i| i.name()).collect();
        match Isa::ladder().iter().find(|i| i.name() == name) {
            Some(&isa) if isa.supported() => Ok(isa),
            Some(_) => Err(format!(
                "PAPERSIM_ISA={name}: this CPU lacks the instructions; it runs {}",
                names.join(", ")
            )),
            None if ISA_NAMES.contains(&name) => Err(format!(
                "PAPERSIM_ISA={name}: not an instruction set of this architecture ({}); \
                 this CPU runs {}",
                std::env::consts::ARCH,
                names.join(", ")
            )),
            None => Err(format!(
                "PAPERSIM_ISA={name}: unknown; use auto or one of {}",
                ISA_NAMES.join(", ")
            )),
        }
    }

    /// `isa`, or the first path below it that passes `check`.
    fn checked(isa: Isa, check: impl Fn(Isa) -> Result<(), String>) -> (Isa, Vec<String>) {
        let mut warnings = Vec::new();
        let ladder = Isa::ladder();
        let start = ladder.iter().position(|&i| i == isa).unwrap_or(0);
        for &candidate in ladder[start..].iter().filter(|i| i.supported()) {
            match check(candidate) {
                Ok(()) => return (candidate, warnings),
                Err(why) => warnings.push(format!(
                    "the {} kernels failed their self-check ({why}); falling back",
                    candidate.name()
                )),
            }
        }
        // The scalar kernels are the reference: they cannot disagree with it.
        (Isa::Scalar, warnings)
    }

    /// Whether the path has a u8 × s8 dot product (`vpdpbusd`), which
    /// narrow int8 layers are packed for (see `int8::Layout`).
    pub(super) fn has_u8_dot(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return matches!(
            self,
            Isa::Amx | Isa::Avx512Bf16 | Isa::Avx512Vnni | Isa::AvxVnni
        );
        #[allow(unreachable_code)]
        false
    }

    /// Whether the path has a bf16 dot product, which bf16 layers are
    /// packed for (elsewhere they run on the f32 kernels).
    pub(super) fn has_bf16_dot(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return matches!(self, Isa::Amx | Isa::Avx512Bf16);
        #[allow(unreachable_code)]
        false
    }

    /// Whether the path multiplies int8 and bf16 on tiles ([`tblock`]),
    /// which their layers are packed for.
    pub(super) fn has_tiles(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self == Isa::Amx;
        #[allow(unreachable_code)]
        false
    }

    /// The f32 path's vector width for the element-wise kernels.
    fn f32_kernels(self) -> F32Path {
        match self {
            Isa::Scalar => F32Path::Scalar,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::AvxVnni => F32Path::Avx2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx512Vnni | Isa::Avx512Bf16 | Isa::Amx => F32Path::Avx512,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => F32Path::Neon,
        }
    }
}

/// The f32 kernel family a path uses.
#[derive(Clone, Copy)]
enum F32Path {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

/// One panel of an f32 product into C from `c[0]` (stride `ldc`), raising
/// `col_max` (NR values) to the maximum of each column stored.
pub(super) fn panel(
    isa: Isa,
    p: &Panel<'_>,
    c: &mut [f32],
    ldc: usize,
    col_max: Option<&mut [f32]>,
) {
    let tiles = p.rows.div_ceil(MR);
    assert!(p.rows > 0 && p.kc > 0 && c.len() >= (p.rows - 1) * ldc + NR);
    assert!(p.a.len() >= (tiles - 1) * p.tile_stride + (p.kc - 1) * p.a_ks + MR);
    assert!(p.b.len() >= (p.kc - 1) * p.ldb + NR);
    if let Init::Bias(bias) | Init::LoadBias(bias) = p.init {
        assert!(bias.len() >= tiles * MR);
    }
    if let Some(s) = p.col_scale {
        assert!(s.len() >= NR);
    }
    if let Some(s) = &col_max {
        assert!(s.len() >= NR);
    }
    match isa.f32_kernels() {
        F32Path::Scalar => scalar::panel(p, c, ldc, col_max),
        // SAFETY (all three): the Isa exists only when the CPU has its
        // instructions; the asserts above bound every access the kernel makes.
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx2 => unsafe { avx2::panel(p, c, ldc, col_max) },
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx512 => unsafe { avx512::panel(p, c, ldc, col_max) },
        #[cfg(target_arch = "aarch64")]
        F32Path::Neon => unsafe { neon::panel(p, c, ldc, col_max) },
    }
    #[cfg(test)]
    if tests::broken(isa) {
        c[0] += 1e-3;
    }
}

/// One panel of an int8 product into C from `c[0]` (stride `ldc`): i16
/// pairs on every path, u8 × s8 quads on the paths with a u8 dot product
/// (and the scalar reference).
pub(super) fn qpanel(isa: Isa, p: &QPanel<'_>, c: &mut [f32], ldc: usize) {
    let tiles = p.rows.div_ceil(MR);
    assert!(p.rows > 0 && p.kpc > 0 && c.len() >= (p.rows - 1) * ldc + NR);
    assert!(p.a.len() >= (tiles - 1) * p.tile_stride + p.kpc * MR);
    assert!(p.b.len() >= (p.kpc - 1) * p.ldb + NR);
    assert!(p.w_scale.len() >= p.rows && p.x_scale.len() >= NR);
    if let Init::Bias(bias) | Init::LoadBias(bias) = p.init {
        assert!(bias.len() >= p.rows);
    }
    if let Some(z) = p.u8 {
        assert!(z.row_sum.len() >= p.rows && z.zero.len() >= NR);
        assert!(
            isa == Isa::Scalar || isa.has_u8_dot(),
            "{isa:?}: no u8 dot product"
        );
        // SAFETY (both): as below; the Isa has VNNI (asserted).
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => unsafe { avxvnni::qpanel_u8(p, c, ldc) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni | Isa::Avx512Bf16 | Isa::Amx => unsafe { avx512::qpanel_u8(p, c, ldc) },
            _ => scalar::qpanel(p, c, ldc),
        }
        return;
    }
    match isa {
        Isa::Scalar => scalar::qpanel(p, c, ldc),
        // SAFETY (all): the Isa exists only when the CPU has its
        // instructions; the asserts above bound every access the kernel makes.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => unsafe { avx2::qpanel(p, c, ldc) },
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => unsafe { avxvnni::qpanel(p, c, ldc) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni | Isa::Avx512Bf16 | Isa::Amx => unsafe { avx512::qpanel(p, c, ldc) },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { neon::qpanel(p, c, ldc) },
    }
}

/// One panel of a bf16 product into C from `c[0]` (stride `ldc`), on a
/// path with a bf16 dot product (or the scalar reference).
pub(super) fn bpanel(isa: Isa, p: &BPanel<'_>, c: &mut [f32], ldc: usize) {
    let tiles = p.rows.div_ceil(MR);
    assert!(p.rows > 0 && p.kpc > 0 && c.len() >= (p.rows - 1) * ldc + NR);
    assert!(p.a.len() >= (tiles - 1) * p.tile_stride + p.kpc * MR);
    assert!(p.b.len() >= (p.kpc - 1) * p.ldb + NR);
    if let Init::Bias(bias) | Init::LoadBias(bias) = p.init {
        assert!(bias.len() >= p.rows);
    }
    assert!(
        isa == Isa::Scalar || isa.has_bf16_dot(),
        "{isa:?}: no bf16 dot product"
    );
    match isa {
        // SAFETY: the Isa exists only when the CPU has its instructions;
        // the asserts above bound every access the kernel makes.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bf16 | Isa::Amx => unsafe { avx512::bpanel(p, c, ldc) },
        _ => scalar::bpanel(p, c, ldc),
    }
}

/// Rows of C against every token over the whole K on tiles: int8 or bf16
/// as `p.q` says, on the AMX path.
#[cfg(target_arch = "x86_64")]
pub(super) fn tblock(isa: Isa, p: &amx::TBlock<'_>, c: &mut [f32], ldc: usize) {
    use amx::TILE;
    assert!(isa.has_tiles(), "{isa:?}: no tiles");
    assert!(p.rows > 0 && p.lda > 0 && p.lda.is_multiple_of(TILE));
    assert!(p.n > 0 && p.n.is_multiple_of(NR) && p.n <= p.ldb && p.n <= ldc);
    assert!(p.a.len() >= p.rows.next_multiple_of(TILE) * p.lda);
    assert!(p.b.len() >= (p.lda - 1) * p.ldb + p.n);
    assert!(c.len() >= (p.rows - 1) * ldc + p.n);
    if let Init::Bias(bias) | Init::LoadBias(bias) = p.init {
        assert!(bias.len() >= p.rows);
    }
    if let Some(q) = &p.q {
        assert!(q.w_scale.len() >= p.rows && q.zero.row_sum.len() >= p.rows);
        assert!(q.x_scale.len() >= p.n && q.zero.zero.len() >= p.n);
    }
    // SAFETY: the path exists only where the CPU has AMX and AVX-512 and
    // the OS granted the tiles (in unit tests, on the emulation); the
    // asserts above bound every tile load and store.
    unsafe { amx::tblock(p, c, ldc) }
}

/// Rows 2p and 2p + 1 of `x` (`k` rows of `ld`, `n` columns) rounded to
/// bf16 into row p of `out` as pairs.
pub(super) fn bf16_pairs(isa: Isa, x: &[f32], k: usize, n: usize, ld: usize, out: &mut [i32]) {
    assert!(k > 0 && n.is_multiple_of(NR) && n <= ld && x.len() >= k * ld);
    assert!(out.len() >= k.div_ceil(2) * ld);
    match isa.f32_kernels() {
        // SAFETY: AVX2 is present on every x86 vector path; the asserts
        // bound the accesses.
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx2 | F32Path::Avx512 => unsafe { avx2::bf16_pairs(x, k, n, ld, out) },
        _ => scalar::bf16_pairs(x, k, n, ld, out),
    }
}

/// Quantizes the `k` rows of `x` (`n` columns, rows `ld` apart) as `q`
/// describes, `q.layout.group()` rows into each row of `out`.
pub(super) fn quantize_groups(
    isa: Isa,
    x: &[f32],
    k: usize,
    n: usize,
    ld: usize,
    q: &QuantSpec<'_>,
    out: &mut [i32],
) {
    assert!(k > 0 && n.is_multiple_of(NR) && n <= ld && x.len() >= k * ld);
    assert!(out.len() >= k.div_ceil(q.layout.group()) * ld);
    assert!(q.inv.len() >= n && q.off.len() >= n && (q.sub.is_empty() || q.sub.len() >= n));
    assert!(q.skip.is_empty() || q.skip.len() >= k);
    match isa.f32_kernels() {
        // SAFETY: AVX2 and FMA are present on every x86 vector path; the
        // asserts bound the accesses.
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx2 | F32Path::Avx512 => unsafe { avx2::quantize_groups(x, k, n, ld, q, out) },
        _ => scalar::quantize_groups(x, k, n, ld, q, out),
    }
}

/// Column-wise softmax numerators of Sᵀ (`rows` keys x `c.n` query
/// columns, rows `c.ld` apart), given each column's `max`: `s = exp((s -
/// max) * scale)`, and `inv_sum` = 1 / column sum (both hold `c.n` values).
pub(super) fn softmax_cols(
    isa: Isa,
    s: &mut [f32],
    rows: usize,
    c: Cols,
    scale: f32,
    inv_sum: &mut [f32],
    max: &[f32],
) {
    let (n, ld) = (c.n, c.ld);
    assert!(rows > 0 && n % 8 == 0 && n <= ld && s.len() >= rows * ld);
    let (inv_sum, max) = (&mut inv_sum[..n], &max[..n]);
    let s = &mut s[..rows * ld];
    match isa.f32_kernels() {
        F32Path::Scalar => scalar::softmax_cols(s, c, scale, inv_sum, max),
        // SAFETY: the Isa exists only when the CPU has its instructions
        // (AVX2 and FMA on every x86 vector path); s is cut to rows * ld,
        // inv_sum and max to n <= ld, a multiple of 8.
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx2 | F32Path::Avx512 => unsafe { avx2::softmax_cols(s, c, scale, inv_sum, max) },
        #[cfg(target_arch = "aarch64")]
        F32Path::Neon => unsafe { neon::softmax_cols(s, c, scale, inv_sum, max) },
    }
}

/// LayerNorm of each token column of `x` (`h` feature rows, `c.n` columns,
/// rows `c.ld` apart), in place. `cols` is scratch for `2 * c.n` values.
pub(super) fn layer_norm(
    isa: Isa,
    x: &mut [f32],
    h: usize,
    c: Cols,
    (g, b): &(Vec<f32>, Vec<f32>),
    eps: f32,
    cols: &mut [f32],
) {
    let (n, ld) = (c.n, c.ld);
    assert!(h > 0 && n % 8 == 0 && n <= ld && x.len() >= h * ld);
    assert!(g.len() == h && b.len() == h);
    let x = &mut x[..h * ld];
    let (mean, rstd) = cols[..2 * n].split_at_mut(n);
    match isa.f32_kernels() {
        F32Path::Scalar => scalar::layer_norm(x, c, g, b, eps, mean, rstd),
        // SAFETY: as softmax_cols; x is h * ld, g and b h values.
        #[cfg(target_arch = "x86_64")]
        F32Path::Avx2 | F32Path::Avx512 => unsafe { avx2::layer_norm(x, c, g, b, eps, mean, rstd) },
        #[cfg(target_arch = "aarch64")]
        F32Path::Neon => unsafe { neon::layer_norm(x, c, g, b, eps, mean, rstd) },
    }
}

/// Runs small fixed products (f32 with bias, residual, GELU and column
/// maxima; int8 with each start) and the element-wise kernels on `isa` and
/// on the scalar kernels, and says where they disagree beyond rounding.
pub(super) fn self_check(isa: Isa) -> Result<(), String> {
    if isa == Isa::Scalar {
        return Ok(());
    }
    check::run(isa)
}

mod check;
#[cfg(test)]
pub(super) use check::rng;
#[cfg(test)]
mod tests;
