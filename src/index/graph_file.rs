//! The graph on disk (`graph.<gen>.flat`), a sealed file (see
//! [`crate::format`]).
//!
//! Layout (little-endian): b"PSIMGRAF" | u32 version 2 | u64 rows |
//! u32 entry row | u32 layers, then per layer: (rows + 1) u32 offsets and
//! offsets[rows] u32 neighbour rows | u32 code dim, 0 for no codes, then
//! rows f32 scales and rows * dim i8 codes | u32 crc32 of everything before.
//! Any other version is refused.

use std::sync::Arc;

use memmap2::Mmap;

use super::codes::{CodeBytes, Codes};
use super::graph::{FlatGraph, Layer};
use crate::format::{self, Reader};

const MAGIC: &[u8; 8] = b"PSIMGRAF";
const VERSION: u32 = 2;

impl FlatGraph {
    /// The graph as a sealed `graph.<gen>.flat` file, in the layout above;
    /// read back with [`FlatGraph::from_bytes`] or [`FlatGraph::from_map`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = format::begin(MAGIC, VERSION);
        b.extend_from_slice(&(self.rows as u64).to_le_bytes());
        b.extend_from_slice(&self.entry.to_le_bytes());
        b.extend_from_slice(&(self.layers.len() as u32).to_le_bytes());
        for l in &self.layers {
            b.extend(l.offsets.iter().flat_map(|x| x.to_le_bytes()));
            b.extend(l.ids.iter().flat_map(|x| x.to_le_bytes()));
        }
        match &self.codes {
            Some(c) => {
                b.extend_from_slice(&(c.dim as u32).to_le_bytes());
                b.extend(c.scale.iter().flat_map(|x| x.to_le_bytes()));
                b.extend(c.q.as_slice().iter().map(|&x| x as u8));
            }
            None => b.extend_from_slice(&0u32.to_le_bytes()),
        }
        format::seal(&mut b);
        b
    }

    /// Parses and validates [`FlatGraph::to_bytes`]; `rows` is what the
    /// manifest says. Every offset and neighbour is range-checked, so a
    /// search can never index out of bounds.
    pub fn from_bytes(b: &[u8], rows: usize) -> Result<Self, String> {
        parse(b, rows, None)
    }

    /// [`FlatGraph::from_bytes`] of a mapped file (shared, read-only), whose
    /// codes stay in the map. The file must never change while mapped (a
    /// library's files are never modified in place).
    pub fn from_map(map: Arc<Mmap>, rows: usize) -> Result<Self, String> {
        let graph = parse(&map, rows, Some(&map))?;
        // The checksum read every page, and they would all stay resident;
        // only the codes are used from the map, page by page as searches
        // visit rows. (A hint: if it fails, the pages just stay.)
        // SAFETY: a read-only shared file mapping: a dropped page is read
        // again from the file, which never changes while mapped.
        let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        Ok(graph)
    }
}

/// `b` is `map`'s bytes when there is a map.
fn parse(b: &[u8], rows: usize, map: Option<&Arc<Mmap>>) -> Result<FlatGraph, String> {
    let mut r = Reader::sealed(b, MAGIC, 32, "graph")?;
    let version = r.u32()?;
    if version != VERSION {
        return Err(format!(
            "graph format version {version}, this papersim reads {VERSION}"
        ));
    }
    let n = r.u64()?;
    if n != rows as u64 {
        return Err(format!("holds {n} rows, the manifest says {rows}"));
    }
    // Rows are u32 ids; and `rows + 1` offsets below must not overflow.
    if u32::try_from(rows).is_err() {
        return Err(format!("{rows} rows: past u32 row ids"));
    }
    let entry = r.u32()?;
    let nl = r.u32()? as usize;
    if nl == 0 || nl > 64 || (rows > 0 && entry as usize >= rows) {
        return Err(format!("{nl} layers, entry {entry}: not plausible"));
    }
    let mut layers = Vec::with_capacity(nl);
    for l in 0..nl {
        let offsets = r.u32s(rows + 1)?;
        let count = *offsets.last().unwrap_or(&0) as usize;
        if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(format!("layer {l}: offsets not ascending"));
        }
        let ids = r.u32s(count)?;
        if ids.iter().any(|&x| x as usize >= rows) {
            return Err(format!("layer {l}: a neighbour past the last row"));
        }
        layers.push(Layer { offsets, ids });
    }
    let codes = read_codes(&mut r, rows, map)?;
    if r.left() != 0 {
        return Err(format!("{} trailing bytes", r.left()));
    }
    Ok(FlatGraph {
        rows,
        entry,
        layers,
        codes,
    })
}

fn read_codes(
    r: &mut Reader,
    rows: usize,
    map: Option<&Arc<Mmap>>,
) -> Result<Option<Codes>, String> {
    let dim = r.u32()? as usize;
    if dim == 0 {
        return Ok(None);
    }
    let scale: Vec<f32> = r.u32s(rows)?.into_iter().map(f32::from_bits).collect();
    if scale.iter().any(|s| !s.is_finite() || *s < 0.0) {
        return Err("a code scale that is not a finite positive number".into());
    }
    let len = rows.checked_mul(dim).ok_or("too large")?;
    let at = r.at();
    let bytes = r.take(len)?;
    let q = match map {
        Some(map) => CodeBytes::Mapped {
            map: Arc::clone(map),
            at,
            len,
        },
        None => CodeBytes::Owned(bytemuck::cast_slice(bytes).to_vec()),
    };
    Ok(Some(Codes { dim, scale, q }))
}

#[cfg(test)]
mod tests {
    use super::super::exact::synthetic;
    use super::super::{build, HnswParams};
    use super::*;

    #[test]
    fn round_trips_in_memory_and_mapped() {
        let dim = 32;
        let v = synthetic(3000, dim, 17);
        let coded = build(&v, dim, &HnswParams::default());
        let flat = FlatGraph {
            codes: None,
            ..coded.clone()
        };
        // Read from a mapped file the codes stay in the map; the graph is
        // the same, and so is every answer.
        let dir = tempfile::tempdir().unwrap();
        for graph in [&flat, &coded] {
            let bytes = graph.to_bytes();
            assert_eq!(&FlatGraph::from_bytes(&bytes, 3000).unwrap(), graph);
            let path = dir.path().join("graph.flat");
            std::fs::write(&path, &bytes).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            let map = Arc::new(unsafe { Mmap::map(&file) }.unwrap());
            let mapped = FlatGraph::from_map(map, 3000).unwrap();
            assert_eq!(&mapped, graph);
            assert_eq!(
                mapped
                    .codes
                    .as_ref()
                    .map(|c| matches!(c.q, CodeBytes::Mapped { .. })),
                graph.codes.as_ref().map(|_| true)
            );
            for q in (0..3000).step_by(97) {
                let qv = &v[q * dim..(q + 1) * dim];
                assert_eq!(
                    mapped.search(&v, dim, qv, 10, 64, None),
                    graph.search(&v, dim, qv, 10, 64, None)
                );
            }
        }
        let bytes = coded.to_bytes();
        assert!(FlatGraph::from_bytes(&bytes, 2999).is_err());
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(FlatGraph::from_bytes(&bytes[..cut], 3000).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        assert!(FlatGraph::from_bytes(&flipped, 3000).is_err());
    }

    /// Another version, resealed so that only the version is wrong: refused,
    /// naming it (version 1 files, without codes, belonged to format version
    /// 1 libraries, which are no longer read).
    #[test]
    fn other_versions_are_refused() {
        let dim = 8;
        let v = synthetic(200, dim, 5);
        let good = build(&v, dim, &HnswParams::default()).to_bytes();
        for version in [1u32, 3] {
            let mut b = good.clone();
            b[8..12].copy_from_slice(&version.to_le_bytes());
            b.truncate(b.len() - 4);
            format::seal(&mut b);
            let e = FlatGraph::from_bytes(&b, 200).unwrap_err();
            assert!(e.contains(&format!("version {version}")), "{e}");
        }
    }

    /// A header forged to agree with a forged manifest (and resealed with
    /// its crc32) claiming more rows than u32 ids hold: an error, where
    /// `rows + 1` offsets used to overflow (a panic, or in a release build an
    /// empty offsets list indexed at 0).
    #[test]
    fn from_bytes_refuses_rows_past_u32() {
        for rows in [u64::MAX, u64::from(u32::MAX) + 1] {
            let mut b = format::begin(MAGIC, VERSION);
            b.extend_from_slice(&rows.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&[0u8; 16]);
            format::seal(&mut b);
            let e = FlatGraph::from_bytes(&b, rows as usize).unwrap_err();
            assert!(e.contains("u32"), "{e}");
        }
    }
}
