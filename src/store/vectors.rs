//! The vectors file (`vectors.<gen>.f32`), a sealed file (see
//! [`crate::format`]), memory-mapped when a library is open.
//!
//! Layout (little-endian): magic "PSIMVEC\0" | format version u32 | dim u32 |
//! rows u64 | 8 reserved bytes | rows*dim f32 | crc32 u32 of everything before.
//! The 32-byte header keeps the f32 data 4-aligned in an mmap.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use memmap2::Mmap;

use super::fsio::{io_err, write_sealed};
use super::manifest::FileEntry;
use super::StoreError;
use crate::format::SealedWriter;

const MAGIC: &[u8; 8] = b"PSIMVEC\0";
const VERSION: u32 = 1;
const HEADER: usize = 32;

/// Writes the rows of `parts`, one after the other, as one vectors file.
pub(super) fn write_vectors(
    path: &Path,
    parts: &[&[f32]],
    dim: usize,
) -> Result<FileEntry, StoreError> {
    let rows = parts.iter().map(|p| p.len()).sum::<usize>() / dim.max(1);
    write_sealed(path, |w| {
        let mut w = SealedWriter::new(w, MAGIC, VERSION)?;
        w.write_all(&(dim as u32).to_le_bytes())?;
        w.write_all(&(rows as u64).to_le_bytes())?;
        w.write_all(&[0u8; 8])?;
        for chunk in parts.iter().flat_map(|p| p.chunks(1 << 16)) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_all(&bytes)?;
        }
        w.finish().map(drop)
    })
}

/// The vectors of a library, memory-mapped.
pub struct Vectors {
    map: Mmap,
    dim: usize,
    rows: usize,
}

impl Vectors {
    /// Maps and validates a vectors file: magic, version, shape against the
    /// manifest's, and that the size matches the shape exactly. (Its seal is
    /// checked with the whole file's crc32 before, at `Library::open`.)
    pub(super) fn open(path: &Path, dim: usize, rows: usize) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(io_err(path))?;
        // SAFETY: the library's files are never modified in place (every
        // commit writes new files), so the mapping cannot change under us.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        if map.len() < HEADER + 4 || &map[..8] != MAGIC {
            return Err(corrupt("not a papersim vectors file (bad magic)".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([map[o], map[o + 1], map[o + 2], map[o + 3]]);
        let version = u32_at(8);
        if version != VERSION {
            return Err(corrupt(format!(
                "vectors format version {version}, this papersim reads {VERSION}"
            )));
        }
        let fdim = u32_at(12) as usize;
        let frows = u64::from_le_bytes(map[16..24].try_into().unwrap_or_default()) as usize;
        if fdim != dim || frows != rows {
            return Err(corrupt(format!(
                "holds {frows} x {fdim} vectors, the manifest says {rows} x {dim}"
            )));
        }
        // A forged header and manifest may agree on a shape whose size
        // overflows: that is a wrong size too, not a panic.
        let want = rows
            .checked_mul(dim)
            .and_then(|n| n.checked_mul(4))
            .and_then(|n| n.checked_add(HEADER + 4));
        if want != Some(map.len()) {
            return Err(corrupt(format!(
                "{} bytes, not the size of {rows} x {dim} vectors",
                map.len()
            )));
        }
        if cfg!(target_endian = "big") {
            return Err(corrupt(
                "vectors are little-endian; this host is not".into(),
            ));
        }
        Ok(Vectors { map, dim, rows })
    }

    /// Floats per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Vectors in the file, one per library row, dead rows included.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// All vectors, `rows * dim`.
    pub fn as_slice(&self) -> &[f32] {
        let data = &self.map[HEADER..HEADER + self.rows * self.dim * 4];
        // `open` checked the length; the mmap is page-aligned and the header
        // is 32 bytes, so this cast cannot fail.
        bytemuck::try_cast_slice(data).unwrap_or(&[])
    }

    /// Row `i`'s vector (0-based, `dim` floats, L2-normalised); panics when
    /// `i` is past the last row.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.as_slice()[i * self.dim..(i + 1) * self.dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_a_wrong_shape_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors.1.f32");
        let (a, b) = ([0.6f32, 0.8, 1.0, 0.0], [0.0f32, 1.0]);
        let entry = write_vectors(&path, &[&a, &b], 2).unwrap();
        assert_eq!(entry.bytes, (HEADER + 6 * 4 + 4) as u64);
        assert_eq!(entry.crc32, crate::format::CRC_RESIDUE);
        let v = Vectors::open(&path, 2, 3).unwrap();
        assert_eq!(v.as_slice(), &[0.6, 0.8, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!(v.row(1), &[1.0, 0.0]);
        let e = Vectors::open(&path, 2, 4).err().unwrap().to_string();
        assert!(e.contains("holds 3 x 2 vectors"), "{e}");
    }
}
