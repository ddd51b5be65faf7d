//! `papersim export`: the live vectors as a float32 `.npy` matrix and the
//! papers as JSON lines in the same order, for numpy, faiss or a vector
//! database to take over.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fsio::write_atomic;
use super::papers::write_lines;
use super::{Library, StoreError};

/// What [`export`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Rows written: the library's live papers.
    pub rows: usize,
    /// Floats per vector (the `.npy` matrix's second dimension).
    pub dim: usize,
    /// The `.npy` file written.
    pub vectors: PathBuf,
    /// The JSON-lines file of papers written, if one was asked for.
    pub metadata: Option<PathBuf>,
}

/// Writes row i of `vectors` (L2-normalised f32, little-endian, C order) for
/// line i of `metadata`. Dead rows are left out. Each file appears whole or
/// not at all (written under a temporary name, then renamed).
pub fn export(
    lib: &Library,
    vectors: &Path,
    metadata: Option<&Path>,
) -> Result<ExportReport, StoreError> {
    let rows: Vec<usize> = (0..lib.len()).filter(|&r| lib.is_live(r)).collect();
    let dim = lib.vectors().dim();
    write_atomic(vectors, |w| {
        w.write_all(&npy_header(rows.len(), dim))?;
        let mut buf = Vec::with_capacity(dim * 4);
        for &r in &rows {
            buf.clear();
            buf.extend(lib.vectors().row(r).iter().flat_map(|x| x.to_le_bytes()));
            w.write_all(&buf)?;
        }
        Ok(())
    })?;
    if let Some(path) = metadata {
        let papers = rows
            .iter()
            .map(|&r| lib.paper(r).map(|p| p.into_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        write_atomic(path, |w| write_lines(w, &papers))?;
    }
    Ok(ExportReport {
        rows: rows.len(),
        dim,
        vectors: vectors.to_path_buf(),
        metadata: metadata.map(Path::to_path_buf),
    })
}

/// Writes `data` (`rows * dim`) as a float32 .npy matrix, atomically.
pub fn write_npy(path: &Path, data: &[f32], dim: usize) -> Result<(), StoreError> {
    write_atomic(path, |w| {
        w.write_all(&npy_header(data.len() / dim.max(1), dim))?;
        for chunk in data.chunks(1 << 16) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_all(&bytes)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The .npy v1.0 header of a `rows x dim` little-endian float32 matrix,
/// space-padded so the data starts on a 64-byte boundary (as numpy writes it).
pub fn npy_header(rows: usize, dim: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let unpadded = 6 + 2 + 2 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let len = dict.len() + pad + 1;
    let mut h = Vec::with_capacity(unpadded + pad);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&(len as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.extend(std::iter::repeat_n(b' ', pad));
    h.push(b'\n');
    h
}

#[cfg(test)]
mod tests {
    use super::npy_header;

    #[test]
    fn npy_header_is_aligned_and_describes_the_shape() {
        for (r, d) in [(0, 384), (74_728, 384), (3, 7)] {
            let h = npy_header(r, d);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
            let len = u16::from_le_bytes([h[8], h[9]]) as usize;
            assert_eq!(10 + len, h.len());
            let text = std::str::from_utf8(&h[10..]).unwrap();
            assert!(text.contains(&format!("'shape': ({r}, {d})")), "{text}");
            assert!(text.ends_with('\n'));
        }
    }
}
