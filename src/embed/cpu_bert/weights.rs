//! model.safetensors for [`super::CpuBert`], memory-mapped: each dense
//! layer is read once, from the page cache straight into its packed layout,
//! and the word-embedding table is not copied at all. Going through candle
//! (file → Tensors → `Vec<f32>` → packed tiles) made three copies of the
//! 90 MB: ~120 ms of CPU per load, mostly page faults and zeroing, and
//! 230 MB of memory, against ~28 ms and 55 MB (plus the pages of the file
//! that were read) this way.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::super::EmbedError;
use super::{Dense, DenseSpec};

/// model.safetensors, mapped read-only.
pub(super) struct WeightsFile {
    map: Arc<Mmap>,
    path: PathBuf,
}

impl WeightsFile {
    pub fn open(path: &Path) -> Result<Self, EmbedError> {
        let io = |source| EmbedError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: a read-only private mapping; its bytes are only ever read
        // as plain data (every length and offset is checked against the
        // mapping first). What memmap cannot rule out is another process
        // truncating or rewriting the file in place while it is mapped
        // (SIGBUS or changing weights). Model files are replaced whole (a
        // download renames into place, which leaves this inode mapped), and
        // candle's own mmap loader makes the same assumption.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Ok(WeightsFile {
            map: Arc::new(map),
            path: path.to_path_buf(),
        })
    }

    /// The tensors, under the first of `prefixes` that has the word
    /// embeddings (none found: no prefix, and lookups name what is missing).
    pub fn tensors(&self, prefixes: &[String]) -> Result<Weights<'_>, EmbedError> {
        let st = SafeTensors::deserialize(&self.map).map_err(|e| EmbedError::BadModelFile {
            path: self.path.clone(),
            reason: format!("not a valid safetensors file: {e}"),
        })?;
        let prefix = prefixes
            .iter()
            .find(|p| {
                st.tensor(&format!("{p}embeddings.word_embeddings.weight"))
                    .is_ok()
            })
            .cloned()
            .unwrap_or_default();
        Ok(Weights {
            st,
            map: &self.map,
            prefix,
            path: &self.path,
        })
    }
}

/// The f32 values of a table the encoder reads row by row: the word
/// embeddings, of which a query touches a few dozen rows out of 30522 (47 MB
/// for MiniLM). Left in the mapping when the file's bytes are usable as f32
/// in place, so those rows are all that is ever paged in.
pub(super) enum Table {
    /// `len` floats from byte `start` of the mapping, checked 4-byte aligned
    /// on a little-endian host when made.
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
    Owned(Vec<f32>),
}

impl Table {
    pub fn as_slice(&self) -> &[f32] {
        match self {
            // Cannot panic: alignment and length were checked on this very
            // range when the table was made, and a mapping never moves.
            Table::Mapped { map, start, len } => bytemuck::cast_slice(&map[*start..][..4 * len]),
            Table::Owned(v) => v,
        }
    }
}

/// The tensors of a mapped file, by name, under the prefix the model uses.
pub(super) struct Weights<'a> {
    st: SafeTensors<'a>,
    map: &'a Arc<Mmap>,
    prefix: String,
    path: &'a Path,
}

/// The first `N` bytes of `b` (a `chunks_exact(N)` chunk) as an array.
fn le<const N: usize>(b: &[u8]) -> [u8; N] {
    std::array::from_fn(|i| b[i])
}

impl<'a> Weights<'a> {
    fn bad(&self, reason: String) -> EmbedError {
        EmbedError::BadModelFile {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    fn has(&self, name: &str) -> bool {
        self.st.tensor(&format!("{}{name}", self.prefix)).is_ok()
    }

    /// The tensor `name` as f32, checked to have `shape`: borrowed from the
    /// mapping when it holds f32 at a 4-byte-aligned offset (and this host
    /// is little-endian, as the format is), else converted into a Vec.
    /// safetensors does not align tensor data: a header of odd length leaves
    /// every tensor unaligned, which must still load.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Cow<'a, [f32]>, EmbedError> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .st
            .tensor(&full)
            .map_err(|_| self.bad(format!("no tensor {full}")))?;
        if t.shape() != shape {
            return Err(self.bad(format!(
                "tensor {full} has shape {:?}, expected {shape:?}",
                t.shape()
            )));
        }
        // Lengths match the shape and dtype: SafeTensors::deserialize checked.
        let data = t.data();
        Ok(match t.dtype() {
            Dtype::F32 => match bytemuck::try_cast_slice::<u8, f32>(data) {
                Ok(v) if cfg!(target_endian = "little") => Cow::Borrowed(v),
                _ => Cow::Owned(
                    data.chunks_exact(4)
                        .map(|b| f32::from_le_bytes(le(b)))
                        .collect(),
                ),
            },
            Dtype::F16 => Cow::Owned(
                data.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes(le(b)).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => Cow::Owned(
                data.chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes(le(b)).to_f32())
                    .collect(),
            ),
            Dtype::F64 => Cow::Owned(
                data.chunks_exact(8)
                    .map(|b| f64::from_le_bytes(le(b)) as f32)
                    .collect(),
            ),
            other => {
                return Err(self.bad(format!(
                    "tensor {full} has dtype {other:?}; expected F32 (or F16, BF16, F64)"
                )))
            }
        })
    }

    /// Like [`Self::get`], kept in the mapping when possible (see [`Table`]).
    pub fn table(&self, name: &str, shape: &[usize]) -> Result<Table, EmbedError> {
        Ok(match self.get(name, shape)? {
            Cow::Borrowed(v) => Table::Mapped {
                map: Arc::clone(self.map),
                start: v.as_ptr() as usize - self.map.as_ptr() as usize,
                len: v.len(),
            },
            Cow::Owned(v) => Table::Owned(v),
        })
    }

    /// LayerNorm weight and bias (`gamma`/`beta` in older checkpoints).
    pub fn layer_norm(&self, name: &str, n: usize) -> Result<(Vec<f32>, Vec<f32>), EmbedError> {
        let w = if self.has(&format!("{name}.gamma")) {
            "gamma"
        } else {
            "weight"
        };
        let b = if self.has(&format!("{name}.beta")) {
            "beta"
        } else {
            "bias"
        };
        Ok((
            self.get(&format!("{name}.{w}"), &[n])?.into_owned(),
            self.get(&format!("{name}.{b}"), &[n])?.into_owned(),
        ))
    }

    /// A PyTorch `Linear` ([out, in] weight), packed at `precision`.
    pub fn linear(
        &self,
        name: &str,
        inp: usize,
        out: usize,
        spec: DenseSpec,
    ) -> Result<Dense, EmbedError> {
        let w = self.get(&format!("{name}.weight"), &[out, inp])?;
        let b = self.get(&format!("{name}.bias"), &[out])?;
        Ok(Dense::new(
            spec,
            out,
            inp,
            |r| &w[r * inp..][..inp],
            b.into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A safetensors file of `(name, dtype, shape, bytes)`, its header
    /// padded with `pad` spaces (an odd pad misaligns every tensor).
    fn write(path: &Path, tensors: &[(&str, &str, Vec<usize>, Vec<u8>)], pad: usize) {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            header.insert(
                name.to_string(),
                serde_json::json!({
                    "dtype": dtype,
                    "shape": shape,
                    "data_offsets": [data.len(), data.len() + bytes.len()],
                }),
            );
            data.extend_from_slice(bytes);
        }
        let mut h = serde_json::to_string(&header).unwrap();
        h.push_str(&" ".repeat(pad));
        let mut file = (h.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(h.as_bytes());
        file.extend_from_slice(&data);
        std::fs::write(path, file).unwrap();
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn tensors_read_in_place_or_converted_with_the_same_values() {
        let tmp = tempfile::tempdir().unwrap();
        let vals: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let f16: Vec<u8> = vals
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        let bf16: Vec<u8> = vals
            .iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
            .collect();
        let f64: Vec<u8> = vals
            .iter()
            .flat_map(|&x| (x as f64).to_le_bytes())
            .collect();
        let tensors = [
            ("bert.a", "F32", vec![3, 4], f32_bytes(&vals)),
            ("bert.h", "F16", vec![3, 4], f16),
            ("bert.b", "BF16", vec![3, 4], bf16),
            ("bert.d", "F64", vec![3, 4], f64),
            ("bert.i", "I64", vec![1], vec![0; 8]),
            (
                "bert.embeddings.word_embeddings.weight",
                "F32",
                vec![2, 2],
                f32_bytes(&[1.0, 2.0, 3.0, 4.0]),
            ),
        ];
        // Which pads leave the data aligned depends on the header's length:
        // try all four.
        let mut seen = HashMap::new();
        for pad in 0..4 {
            let path = tmp.path().join(format!("m{pad}.safetensors"));
            write(&path, &tensors, pad);
            let file = WeightsFile::open(&path).unwrap();
            let w = file.tensors(&[String::new(), "bert.".into()]).unwrap();
            for name in ["a", "h", "b", "d"] {
                let got = w.get(name, &[3, 4]).unwrap();
                assert_eq!(&*got, &vals[..], "{name} pad {pad}");
            }
            let a = w.get("a", &[3, 4]).unwrap();
            *seen.entry(matches!(a, Cow::Borrowed(_))).or_insert(0) += 1;
            let table = w
                .table("embeddings.word_embeddings.weight", &[2, 2])
                .unwrap();
            assert_eq!(table.as_slice(), &[1.0, 2.0, 3.0, 4.0]);

            let err = |name, shape: &[usize]| match w.get(name, shape) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{name} loaded"),
            };
            let e = err("a", &[4, 3]);
            assert!(e.contains("bert.a") && e.contains("[3, 4]"), "{e}");
            assert!(e.contains(&path.display().to_string()), "{e}");
            let e = err("i", &[1]);
            assert!(e.contains("bert.i") && e.contains("I64"), "{e}");
            let e = err("nope", &[1]);
            assert!(e.contains("no tensor bert.nope"), "{e}");
        }
        // Both the in-place and the copying path were taken.
        assert_eq!(seen.len(), 2, "{seen:?}");
    }

    #[test]
    fn damaged_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("model.safetensors");
        write(&path, &[("x", "F32", vec![2], f32_bytes(&[1.0, 2.0]))], 0);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        let file = WeightsFile::open(&path).unwrap();
        let err = file.tensors(&[]).err().unwrap().to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("safetensors file"),
            "{err}"
        );

        let err = WeightsFile::open(&tmp.path().join("absent.safetensors"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("absent.safetensors"), "{err}");
    }
}
