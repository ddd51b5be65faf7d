//! The sentence vectors file (`sentences.<gen>.i8`), a sealed file (see
//! [`crate::format`]): one vector per sentence of each paper
//! ([`crate::corpus::paper_sentences`]: its title, then its abstract's
//! sentences), as 8-bit codes with one scale each.
//!
//! Layout (little-endian): magic "PSIMSEN\0" | format version u32 | dim u32 |
//! rows u64 | sentences u64 | (rows + 1) u64 offsets (row r's sentences are
//! `offsets[r]..offsets[r+1]`) | sentences f32 scales | sentences·dim i8
//! codes | crc32 u32 of everything before.
//!
//! 8-bit codes: a 384-d sentence takes 388 bytes instead of 1,536, and
//! sentence scores only need to rank candidates (the codes keep cosines to
//! about 0.01).

use std::io::Write;
use std::path::Path;

use super::fsio::{io_err, write_sealed};
use super::manifest::FileEntry;
use super::StoreError;
use crate::format::{Reader, SealedWriter};

const MAGIC: &[u8; 8] = b"PSIMSEN\0";
const VERSION: u32 = 1;

/// Sentence vectors of every row of a library, as i8 codes: sentence `i` is
/// about `scale(i) · code(i)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentenceVectors {
    dim: usize,
    offsets: Vec<u64>,
    scales: Vec<f32>,
    codes: Vec<i8>,
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
    /// No rows yet, `dim` floats per sentence.
    pub fn new(dim: usize) -> Self {
        SentenceVectors {
            dim,
            offsets: vec![0],
            scales: Vec::new(),
            codes: Vec::new(),
        }
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
            let s = self.scales[i];
            out.extend(self.code(i).iter().map(|&c| f32::from(c) * s));
        }
        out
    }

    /// Bytes of the file this writes, seal included.
    pub fn file_bytes(&self) -> u64 {
        (8 + 4 + 4 + 8 + 8 + self.offsets.len() * 8 + self.scales.len() * 4 + self.codes.len() + 4)
            as u64
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
    if version != VERSION {
        return Err(format!(
            "sentence vectors format version {version}, this papersim reads {VERSION}"
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
    let scales: Vec<f32> = r
        .take(n.checked_mul(4).ok_or("too large")?)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = scales.iter().position(|s| !s.is_finite() || *s < 0.0) {
        return Err(format!("sentence {i} has scale {}", scales[i]));
    }
    let codes: Vec<i8> = r
        .take(n.checked_mul(dim).ok_or("too large")?)?
        .iter()
        .map(|&b| b as i8)
        .collect();
    if r.left() != 0 {
        return Err(format!("{} bytes past the codes", r.left()));
    }
    Ok(SentenceVectors {
        dim,
        offsets,
        scales,
        codes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sentences.1.i8");
        let mut a = SentenceVectors::new(2);
        a.push_row(&[0.6, 0.8, 1.0, 0.0]);
        a.push_row(&[]);
        let mut b = SentenceVectors::new(2);
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
}
