//! The sentence vectors file (`sentences.<gen>.i8`), a sealed file (see
//! [`crate::format`]): one vector per sentence of each paper
//! ([`crate::corpus::paper_sentences`]: its title, then its abstract's
//! sentences), as 8-bit codes with one scale each.
//!
//! Layout (little-endian): magic "PSIMSEN\0" | format version u32 | dim u32 |
//! rows u64 | sentences u64 | (rows + 1) u64 offsets (row r's sentences are
//! `offsets[r]..offsets[r+1]`) | sentences f32 scales | sentences·dim i8
//! codes | space u32 (0 or 1) | with a space: the papers' whitening (dim f32
//! mean, dim·dim f32 matrix), the sentences' (the same), rows f32 whitened
//! norms of the paper vectors, sentences f32 whitened norms of the
//! sentences | method u32 ([`SentenceMethod`]: 0 separate, 1 contextual) |
//! crc32 u32 of everything before. Version 2 files end after the space and
//! version 1 files after the codes (no space); both are still read, and
//! their sentences were embedded separately.
//!
//! The space ([`Space`]) is fitted at build and kept by `add`, `remove`,
//! `compact` and `repair`: rows added later are normed in it, not refitted.
//!
//! 8-bit codes: a 384-d sentence takes 388 bytes instead of 1,536, and
//! sentence scores only need to rank candidates (the codes keep cosines to
//! about 0.01).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::fsio::{io_err, write_sealed};
use super::manifest::FileEntry;
use super::StoreError;
use crate::embed::SentenceMethod;
use crate::format::{Reader, SealedWriter};
use crate::index::{Space, Whitening, FIT_SAMPLE};

const MAGIC: &[u8; 8] = b"PSIMSEN\0";
const VERSION: u32 = 3;
/// The last version that does not record its method (always separate).
const VERSION_SEPARATE: u32 = 2;
/// The last version without a space.
const VERSION_NO_SPACE: u32 = 1;

/// Sentence vectors of every row of a library, as i8 codes: sentence `i` is
/// about `scale(i) · code(i)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentenceVectors {
    dim: usize,
    offsets: Vec<u64>,
    scales: Vec<f32>,
    codes: Vec<i8>,
    /// The re-ranking space, shared by copies made for `compact`.
    space: Option<Arc<Space>>,
    /// With a space: each row's paper vector's whitened norm.
    paper_norms: Vec<f32>,
    /// With a space: each sentence's whitened norm.
    sentence_norms: Vec<f32>,
    /// How the sentences were embedded: what `add` must do too.
    method: SentenceMethod,
}

/// Symmetric 8-bit code of `v`: the largest |component| maps to 127. A zero
/// (or NaN) vector gets scale 0: it scores 0 against everything.
pub fn quantize(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if !(max.is_finite() && max > 0.0) {
        out.extend(std::iter::repeat_n(0i8, v.len()));
        return 0.0;
    }
    let s = max / 127.0;
    out.extend(v.iter().map(|x| (x / s).round().clamp(-127.0, 127.0) as i8));
    s
}

impl SentenceVectors {
    /// No rows yet, `dim` floats per sentence, embedded by `method`.
    pub fn new(dim: usize, method: SentenceMethod) -> Self {
        SentenceVectors {
            dim,
            offsets: vec![0],
            scales: Vec::new(),
            codes: Vec::new(),
            space: None,
            paper_norms: Vec::new(),
            sentence_norms: Vec::new(),
            method,
        }
    }

    /// How the sentences were embedded (separately in libraries built
    /// before the contextual method).
    pub fn method(&self) -> SentenceMethod {
        self.method
    }

    /// No rows yet, the same dim, method and space as `self` (rows copied in with
    /// [`SentenceVectors::push_from`] keep their norms).
    pub fn empty_like(&self) -> Self {
        SentenceVectors {
            space: self.space.clone(),
            ..SentenceVectors::new(self.dim, self.method)
        }
    }

    /// Sets the re-ranking space (or none) and computes every row's norms
    /// in it; `papers` are the rows' paper vectors, `rows · dim` floats.
    /// Rows pushed later with [`SentenceVectors::push_row`] are not normed:
    /// set the space once all rows are in.
    pub fn set_space(&mut self, space: Option<Arc<Space>>, papers: &[f32]) {
        use rayon::prelude::*;
        self.paper_norms.clear();
        self.sentence_norms.clear();
        if let Some(s) = &space {
            let dim = self.dim.max(1);
            self.paper_norms = papers
                .par_chunks_exact(dim)
                .map(|v| s.papers.norm(v))
                .collect();
            self.sentence_norms = (0..self.len())
                .into_par_iter()
                .map(|i| s.sentences.norm(&self.decode(i)))
                .collect();
        }
        self.space = space;
    }

    /// The re-ranking space, when the build fitted one (large enough
    /// libraries built by this version).
    pub fn space(&self) -> Option<&Space> {
        self.space.as_deref()
    }

    /// The space, shared.
    pub fn space_shared(&self) -> Option<Arc<Space>> {
        self.space.clone()
    }

    /// Row `row`'s paper vector's whitened norm (0 without a space).
    pub fn paper_norm(&self, row: usize) -> f32 {
        self.paper_norms.get(row).copied().unwrap_or(0.0)
    }

    /// Sentence `i`'s whitened norm (0 without a space).
    pub fn sentence_norm(&self, i: usize) -> f32 {
        self.sentence_norms.get(i).copied().unwrap_or(0.0)
    }

    /// Fits a re-ranking space to `papers` (the rows' paper vectors,
    /// `rows · dim` floats) and these sentences, and norms every row and
    /// sentence in it; no space when there are too few of either
    /// ([`Space::fit`]).
    pub fn fit_space(&mut self, papers: &[f32]) {
        let sample = self.sample_f32(FIT_SAMPLE);
        let space = Space::fit(papers, &sample, self.dim).map(Arc::new);
        self.set_space(space, papers);
    }

    /// At most `max` sentences, evenly spaced over the rows, decoded to f32
    /// (`n · dim` floats): what a space is fitted to, without decoding all
    /// of a large library's sentences at once.
    fn sample_f32(&self, max: usize) -> Vec<f32> {
        let step = self.len().div_ceil(max.max(1)).max(1);
        (0..self.len())
            .step_by(step)
            .flat_map(|i| self.decode(i))
            .collect()
    }

    /// Sentence `i` decoded to f32.
    fn decode(&self, i: usize) -> Vec<f32> {
        let s = self.scales[i];
        self.code(i).iter().map(|&c| f32::from(c) * s).collect()
    }

    /// Appends one row: its sentences' f32 vectors, `n · dim` floats.
    pub fn push_row(&mut self, vectors: &[f32]) {
        let dim = self.dim.max(1);
        for v in vectors.chunks_exact(dim) {
            let s = quantize(v, &mut self.codes);
            self.scales.push(s);
        }
        self.offsets.push(self.scales.len() as u64);
    }

    /// Appends row `row` of `other` (same dim) as it is.
    pub fn push_from(&mut self, other: &SentenceVectors, row: usize) {
        let r = other.range(row);
        if self.space.is_some() && other.space.is_some() {
            self.paper_norms.push(other.paper_norm(row));
            self.sentence_norms
                .extend(r.clone().map(|i| other.sentence_norm(i)));
        }
        self.scales.extend_from_slice(&other.scales[r.clone()]);
        self.codes
            .extend_from_slice(&other.codes[r.start * other.dim..r.end * other.dim]);
        self.offsets.push(self.scales.len() as u64);
    }

    /// Floats per sentence vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows (papers) held, dead ones included.
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Sentences held, all rows together.
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    /// True when no row has a sentence.
    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// Indexes of row `row`'s sentences (empty past the last row).
    pub fn range(&self, row: usize) -> std::ops::Range<usize> {
        match (self.offsets.get(row), self.offsets.get(row + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        }
    }

    /// Sentence `i`'s code.
    pub fn code(&self, i: usize) -> &[i8] {
        &self.codes[i * self.dim..(i + 1) * self.dim]
    }

    /// Sentence `i`'s scale.
    pub fn scale(&self, i: usize) -> f32 {
        self.scales[i]
    }

    /// Row `row`'s sentence vectors decoded to f32, `n · dim` floats.
    pub fn row_f32(&self, row: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.range(row).len() * self.dim);
        for i in self.range(row) {
            out.extend(self.decode(i));
        }
        out
    }

    /// True when the space is set and every row and sentence is normed.
    fn normed(&self) -> bool {
        self.space.is_some()
            && self.paper_norms.len() == self.rows()
            && self.sentence_norms.len() == self.len()
    }

    /// Bytes of the file this writes, seal included.
    pub fn file_bytes(&self) -> u64 {
        let space = if self.normed() {
            2 * (self.dim + self.dim * self.dim) + self.rows() + self.len()
        } else {
            0
        };
        (8 + 4
            + 4
            + 8
            + 8
            + self.offsets.len() * 8
            + self.scales.len() * 4
            + self.codes.len()
            + 4
            + space * 4
            + 4
            + 4) as u64
    }
}

/// Writes the rows of `parts`, one after the other, as one sentences file.
pub(super) fn write_sentences(
    path: &Path,
    parts: &[&SentenceVectors],
    dim: usize,
) -> Result<FileEntry, StoreError> {
    if let Some(p) = parts.iter().find(|p| p.dim != dim) {
        return Err(StoreError::Invalid(format!(
            "sentence vectors of dim {}, the library's is {dim}",
            p.dim
        )));
    }
    // The first part's space is the file's; every part must be normed in
    // it, or the file is written without one.
    let space = parts.first().and_then(|p| p.space.clone()).filter(|s| {
        parts
            .iter()
            .all(|p| p.normed() && p.space.as_deref() == Some(s))
    });
    let rows: usize = parts.iter().map(|p| p.rows()).sum();
    let sentences: usize = parts.iter().map(|p| p.len()).sum();
    write_sealed(path, |w| {
        let mut w = SealedWriter::new(w, MAGIC, VERSION)?;
        w.write_all(&(dim as u32).to_le_bytes())?;
        w.write_all(&(rows as u64).to_le_bytes())?;
        w.write_all(&(sentences as u64).to_le_bytes())?;
        let mut base = 0u64;
        w.write_all(&0u64.to_le_bytes())?;
        for p in parts {
            let bytes: Vec<u8> = p.offsets[1..]
                .iter()
                .flat_map(|o| (o + base).to_le_bytes())
                .collect();
            w.write_all(&bytes)?;
            base += p.len() as u64;
        }
        for p in parts {
            let bytes: Vec<u8> = p.scales.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_all(&bytes)?;
        }
        for p in parts {
            let bytes: Vec<u8> = p.codes.iter().map(|&c| c as u8).collect();
            w.write_all(&bytes)?;
        }
        let floats = |w: &mut SealedWriter<_>, xs: &[f32]| -> std::io::Result<()> {
            let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_all(&bytes)
        };
        match &space {
            Some(s) => {
                w.write_all(&1u32.to_le_bytes())?;
                for wh in [&s.papers, &s.sentences] {
                    floats(&mut w, wh.mean())?;
                    floats(&mut w, wh.matrix())?;
                }
                for p in parts {
                    floats(&mut w, &p.paper_norms)?;
                }
                for p in parts {
                    floats(&mut w, &p.sentence_norms)?;
                }
            }
            None => w.write_all(&0u32.to_le_bytes())?,
        }
        // The first part's method is the file's, as its space is: rows
        // added later are embedded the library's way.
        let method = match parts
            .first()
            .map_or(SentenceMethod::Contextual, |p| p.method)
        {
            SentenceMethod::Separate => 0u32,
            SentenceMethod::Contextual => 1,
        };
        w.write_all(&method.to_le_bytes())?;
        w.finish().map(drop)
    })
}

/// Reads and checks a sentences file: seal, version, shape against the
/// manifest's (`rows`, `dim`), offsets ascending and in range, size exact.
pub(super) fn read_sentences(
    path: &Path,
    dim: usize,
    rows: usize,
) -> Result<SentenceVectors, StoreError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    parse(&bytes, dim, rows).map_err(|reason| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    })
}

fn parse(bytes: &[u8], dim: usize, rows: usize) -> Result<SentenceVectors, String> {
    let mut r = Reader::sealed(bytes, MAGIC, 32, "sentence vectors")?;
    let version = r.u32()?;
    if !(VERSION_NO_SPACE..=VERSION).contains(&version) {
        return Err(format!(
            "sentence vectors format version {version}, this papersim reads \
             {VERSION_NO_SPACE} to {VERSION}"
        ));
    }
    let fdim = r.u32()? as usize;
    let frows = r.u64()? as usize;
    let n = r.u64()? as usize;
    if fdim != dim || frows != rows {
        return Err(format!(
            "sentence vectors of {frows} rows x {fdim} dims, the manifest says {rows} x {dim}"
        ));
    }
    let offsets_bytes = rows
        .checked_add(1)
        .and_then(|x| x.checked_mul(8))
        .ok_or("too large")?;
    let offsets: Vec<u64> = r
        .take(offsets_bytes)?
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    if offsets.first() != Some(&0)
        || offsets.last() != Some(&(n as u64))
        || offsets.windows(2).any(|w| w[0] > w[1])
    {
        return Err("sentence offsets are not ascending from 0 to the count".into());
    }
    let scales = floats(&mut r, n)?;
    if let Some(i) = scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
        return Err(format!("sentence {i} has scale {}", scales[i]));
    }
    let codes: Vec<i8> = r
        .take(n.checked_mul(dim).ok_or("too large")?)?
        .iter()
        .map(|&b| b as i8)
        .collect();
    let mut out = SentenceVectors {
        dim,
        offsets,
        scales,
        codes,
        ..SentenceVectors::new(dim, SentenceMethod::Separate)
    };
    if version != VERSION_NO_SPACE {
        match r.u32()? {
            0 => {}
            1 => {
                let mut whitening = || -> Result<Whitening, String> {
                    let mean = floats(&mut r, dim)?;
                    let matrix = floats(&mut r, dim.checked_mul(dim).ok_or("too large")?)?;
                    if let Some(x) = mean.iter().chain(&matrix).find(|x| !x.is_finite()) {
                        return Err(format!("the whitening holds {x}"));
                    }
                    Whitening::from_parts(dim, mean, matrix).ok_or_else(|| "whitening shape".into())
                };
                let papers = whitening()?;
                let sentences = whitening()?;
                out.paper_norms = floats(&mut r, rows)?;
                out.sentence_norms = floats(&mut r, n)?;
                if let Some(x) = out
                    .paper_norms
                    .iter()
                    .chain(&out.sentence_norms)
                    .find(|x| !x.is_finite() || **x < 0.0)
                {
                    return Err(format!("a whitened norm is {x}"));
                }
                out.space = Some(Arc::new(Space { papers, sentences }));
            }
            other => return Err(format!("space flag {other}, expected 0 or 1")),
        }
    }
    if version > VERSION_SEPARATE {
        out.method = match r.u32()? {
            0 => SentenceMethod::Separate,
            1 => SentenceMethod::Contextual,
            other => return Err(format!("sentence method {other}, expected 0 or 1")),
        };
    }
    if r.left() != 0 {
        return Err(format!(
            "{} bytes past the end of the sentence vectors",
            r.left()
        ));
    }
    Ok(out)
}

/// `n` little-endian f32s.
fn floats(r: &mut Reader, n: usize) -> Result<Vec<f32>, String> {
    Ok(r.take(n.checked_mul(4).ok_or("too large")?)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sentences.1.i8");
        let mut a = SentenceVectors::new(2, SentenceMethod::Contextual);
        a.push_row(&[0.6, 0.8, 1.0, 0.0]);
        a.push_row(&[]);
        let mut b = SentenceVectors::new(2, SentenceMethod::Contextual);
        b.push_row(&[0.0, -1.0]);
        let entry = write_sentences(&path, &[&a, &b], 2).unwrap();
        assert_eq!(entry.crc32, crate::format::CRC_RESIDUE);
        let mut both = a.clone();
        both.push_from(&b, 0);
        assert_eq!(entry.bytes, both.file_bytes());
        let got = read_sentences(&path, 2, 3).unwrap();
        assert_eq!(got, both);
        assert_eq!(got.range(0), 0..2);
        assert_eq!(got.range(1), 2..2);
        assert_eq!(got.range(2), 2..3);
        let back = got.row_f32(0);
        assert!((back[0] - 0.6).abs() < 0.01 && (back[1] - 0.8).abs() < 0.01);
        assert_eq!(got.row_f32(2), vec![0.0, -1.0]);
        // The wrong shape, then a flipped byte, are refused by name.
        let e = read_sentences(&path, 2, 4).unwrap_err().to_string();
        assert!(e.contains("the manifest says 4 x 2"), "{e}");
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = read_sentences(&path, 2, 3).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }

    #[test]
    fn zero_vector_quantizes_to_scale_zero() {
        let mut out = Vec::new();
        assert_eq!(quantize(&[0.0, 0.0], &mut out), 0.0);
        assert_eq!(out, vec![0, 0]);
        out.clear();
        let s = quantize(&[0.5, -0.25], &mut out);
        assert_eq!(out, vec![127, -64]);
        assert!((s - 0.5 / 127.0).abs() < 1e-9);
    }

    #[test]
    fn the_space_and_norms_round_trip_and_version_1_and_2_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let dim = 2;
        // 4 papers of 2 sentences each, skewed so the whitening is not flat.
        let papers: Vec<f32> = [0.9, 0.1, 0.8, 0.3, 0.95, -0.2, 0.7, 0.5].to_vec();
        let mut a = SentenceVectors::new(dim, SentenceMethod::Contextual);
        for r in 0..4 {
            let t = r as f32 * 0.3;
            a.push_row(&[t.cos(), t.sin(), (t + 1.0).cos(), (t + 1.0).sin()]);
        }
        let decoded: Vec<f32> = (0..4).flat_map(|r| a.row_f32(r)).collect();
        // A sample of 3 of the 8 sentences: every third, from the first.
        let sample = a.sample_f32(3);
        assert_eq!(sample.len(), 3 * dim);
        assert_eq!(sample[..dim], decoded[..dim]);
        assert_eq!(sample[dim..2 * dim], decoded[3 * dim..4 * dim]);
        assert_eq!(a.sample_f32(100), decoded);
        let space = Arc::new(Space::fit(&papers, &decoded, dim).unwrap());
        a.set_space(Some(space.clone()), &papers);
        assert!(a.paper_norm(3) > 0.0 && a.sentence_norm(7) > 0.0);
        let path = dir.path().join("sentences.1.i8");
        let entry = write_sentences(&path, &[&a], dim).unwrap();
        assert_eq!(entry.bytes, a.file_bytes());
        let got = read_sentences(&path, dim, 4).unwrap();
        assert_eq!(got, a);
        // Rows copied for compact keep their norms; the file keeps the space.
        let mut kept = got.empty_like();
        kept.push_from(&got, 2);
        assert_eq!(kept.space(), Some(&*space));
        assert_eq!(kept.paper_norm(0), got.paper_norm(2));
        assert_eq!(kept.sentence_norm(1), got.sentence_norm(5));
        // A part without norms drops the space from the file rather than
        // writing norms for some rows only.
        let mut bare = SentenceVectors::new(dim, SentenceMethod::Contextual);
        bare.push_row(&[1.0, 0.0]);
        write_sentences(&path, &[&got, &bare], dim).unwrap();
        let mixed = read_sentences(&path, dim, 5).unwrap();
        assert!(mixed.space().is_none());
        assert_eq!(mixed.paper_norm(0), 0.0);
        // A version 1 file (no space flag) reads as a library without space.
        write_sealed(&path, |w| {
            let mut w = SealedWriter::new(w, MAGIC, VERSION_NO_SPACE)?;
            w.write_all(&2u32.to_le_bytes())?;
            w.write_all(&1u64.to_le_bytes())?;
            w.write_all(&1u64.to_le_bytes())?;
            w.write_all(&0u64.to_le_bytes())?;
            w.write_all(&1u64.to_le_bytes())?;
            w.write_all(&(1.0f32 / 127.0).to_le_bytes())?;
            w.write_all(&[127u8, 0])?;
            w.finish().map(drop)
        })
        .unwrap();
        let old = read_sentences(&path, dim, 1).unwrap();
        assert!(old.space().is_none());
        assert_eq!(old.row_f32(0), vec![1.0, 0.0]);
        assert_eq!(old.method(), SentenceMethod::Separate);
        // A version 2 file (a space flag, no method) was embedded separately.
        write_sealed(&path, |w| {
            let mut w = SealedWriter::new(w, MAGIC, VERSION_SEPARATE)?;
            w.write_all(&2u32.to_le_bytes())?;
            w.write_all(&1u64.to_le_bytes())?;
            w.write_all(&1u64.to_le_bytes())?;
            w.write_all(&0u64.to_le_bytes())?;
            w.write_all(&1u64.to_le_bytes())?;
            w.write_all(&(1.0f32 / 127.0).to_le_bytes())?;
            w.write_all(&[127u8, 0])?;
            w.write_all(&0u32.to_le_bytes())?;
            w.finish().map(drop)
        })
        .unwrap();
        let old = read_sentences(&path, dim, 1).unwrap();
        assert_eq!(old.method(), SentenceMethod::Separate);
        assert_eq!(old.row_f32(0), vec![1.0, 0.0]);
        // Rows added to such a library keep its method in the new file.
        let mut added = old.empty_like();
        added.push_row(&[0.0, 1.0]);
        write_sentences(&path, &[&old, &added], dim).unwrap();
        let both = read_sentences(&path, dim, 2).unwrap();
        assert_eq!(both.method(), SentenceMethod::Separate);
        assert_eq!(both.row_f32(1), vec![0.0, 1.0]);
    }
}
