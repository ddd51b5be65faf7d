//! The embedding checkpoint that makes `build` and `add` resumable.
//!
//! Embedding is the long part of a build (an hour for 75k abstracts on two
//! cores), and the library itself is only replaced at the end. So vectors are
//! appended here as they are computed, chunk by chunk, each chunk fsynced; a
//! rerun after Ctrl-C, a kill or a crash finds the texts it already embedded
//! by their hash and embeds only the rest. A successful commit deletes it.
//!
//! ```text
//! LIBRARY/embed-cache.bin
//!   header:  b"PSIMCACH" | u32 version | u32 dim | 64 bytes: the model's weights sha256 (hex)
//!   records: 16 bytes text hash | dim × f32 | u32 crc32 of the two
//! ```
//!
//! A build with sentence vectors appends, per paper, its text's vector and
//! one per sentence it keeps (keyed by [`sentence_hash`], with how many it
//! keeps under [`sentence_count_hash`]; or by the sentence's own
//! [`text_hash`] for a library whose sentences are embedded alone) in the
//! same chunk, so a paper found whole in the checkpoint needs no forward
//! pass at all.
//!
//! Records are appended, so a crash can only tear the last one: reading stops
//! at the first record whose crc fails, and the next writer truncates there.
//! A cache made with another model or dimension is discarded, never mixed in.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::fsio::io_err;
use super::StoreError;

/// The checkpoint's file name inside the library directory.
pub const CACHE_FILE: &str = "embed-cache.bin";
const MAGIC: &[u8; 8] = b"PSIMCACH";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 8 + 4 + 4 + 64;

/// What identifies a vector: the first 16 bytes of the sha256 of exactly
/// what the model reads (the rendered template, or a sentence), or of a
/// sentence read in its paper ([`sentence_hash`]).
pub type TextHash = [u8; 16];

/// The [`TextHash`] of `text`, which must be exactly what the model embeds.
pub fn text_hash(text: &str) -> TextHash {
    let digest = Sha256::digest(text.as_bytes());
    let mut h = [0u8; 16];
    h.copy_from_slice(&digest[..16]);
    h
}

/// What identifies the contextual vector of `sentence`, read in its
/// paper's `text` at byte range `span` (`None`: not in the text): a hash of
/// all three, kept apart from every [`text_hash`] by a prefix no embedded
/// text starts with.
pub fn sentence_hash(
    text: &str,
    sentence: &str,
    span: Option<&std::ops::Range<usize>>,
) -> TextHash {
    let (start, end) = span.map_or((u64::MAX, u64::MAX), |r| (r.start as u64, r.end as u64));
    let digest = Sha256::new()
        .chain_update(b"\0papersim sentence in context\0")
        .chain_update(start.to_le_bytes())
        .chain_update(end.to_le_bytes())
        .chain_update((text.len() as u64).to_le_bytes())
        .chain_update(text.as_bytes())
        .chain_update(sentence.as_bytes())
        .finalize();
    let mut h = [0u8; 16];
    h.copy_from_slice(&digest[..16]);
    h
}

/// What identifies the record of how many of the sentences of the paper
/// whose text is `text` have contextual vectors (its first element; the
/// rest are left out as past the model's window).
pub fn sentence_count_hash(text: &str) -> TextHash {
    let digest = Sha256::new()
        .chain_update(b"\0papersim sentences kept\0")
        .chain_update(text.as_bytes())
        .finalize();
    let mut h = [0u8; 16];
    h.copy_from_slice(&digest[..16]);
    h
}

/// An open checkpoint: the vectors found in it, and the file to append to.
pub struct EmbedCache {
    path: PathBuf,
    file: File,
    dim: usize,
    found: HashMap<TextHash, Vec<f32>>,
}

impl EmbedCache {
    /// Opens (or starts) the checkpoint in `library` for a model.
    pub fn open(library: &Path, dim: usize, weights_sha256: &str) -> Result<Self, StoreError> {
        fs::create_dir_all(library).map_err(io_err(library))?;
        let path = library.join(CACHE_FILE);
        let header = header(dim, weights_sha256);
        let (found, valid_len) = match read(&path, &header, dim) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (HashMap::new(), 0),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if valid_len == 0 {
            // New, foreign (other model) or damaged from the start: begin again.
            file.set_len(0).map_err(io_err(&path))?;
            file.write_all(&header).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
        } else {
            // Cut a torn last record so the next append starts on a boundary.
            file.set_len(valid_len).map_err(io_err(&path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
        Ok(EmbedCache {
            path,
            file,
            dim,
            found,
        })
    }

    /// The vectors a previous run left, by text hash.
    pub fn found(&self) -> &HashMap<TextHash, Vec<f32>> {
        &self.found
    }

    /// Appends one chunk of (hash, vector) pairs and makes it durable.
    pub fn append(&mut self, hashes: &[TextHash], vectors: &[f32]) -> Result<(), StoreError> {
        debug_assert_eq!(vectors.len(), hashes.len() * self.dim);
        let mut buf = Vec::with_capacity(hashes.len() * (16 + 4 * self.dim + 4));
        for (h, v) in hashes.iter().zip(vectors.chunks_exact(self.dim)) {
            let start = buf.len();
            buf.extend_from_slice(h);
            buf.extend_from_slice(bytemuck::cast_slice(v));
            let crc = crc32fast::hash(&buf[start..]);
            buf.extend_from_slice(&crc.to_le_bytes());
        }
        self.file.write_all(&buf).map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))
    }

    /// Deletes the checkpoint: the commit it fed is durable.
    pub fn remove(self) -> Result<(), StoreError> {
        drop(self.file);
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&self.path)(e)),
            _ => Ok(()),
        }
    }
}

fn header(dim: usize, weights_sha256: &str) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_BYTES);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&(dim as u32).to_le_bytes());
    let mut sha = [b' '; 64];
    let n = weights_sha256.len().min(64);
    sha[..n].copy_from_slice(&weights_sha256.as_bytes()[..n]);
    h.extend_from_slice(&sha);
    h
}

/// The good records of `path` and the length they span; length 0 when the
/// header does not match (another model: its vectors must not be reused).
fn read(path: &Path, header: &[u8], dim: usize) -> io::Result<(HashMap<TextHash, Vec<f32>>, u64)> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut head = vec![0u8; header.len()];
    if r.read_exact(&mut head).is_err() || head != header {
        return Ok((HashMap::new(), 0));
    }
    let mut found = HashMap::new();
    let mut len = header.len() as u64;
    let mut rec = vec![0u8; 16 + 4 * dim + 4];
    while r.read_exact(&mut rec).is_ok() {
        let (body, crc) = rec.split_at(rec.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            break;
        }
        let mut h = [0u8; 16];
        h.copy_from_slice(&body[..16]);
        let v: Vec<f32> = body[16..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        found.insert(h, v);
        len += rec.len() as u64;
    }
    Ok((found, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_after_a_torn_record_and_forgets_another_model() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (text_hash("a"), text_hash("b"));
        {
            let mut c = EmbedCache::open(dir.path(), 2, "sha-1").unwrap();
            assert!(c.found().is_empty());
            c.append(&[a, b], &[1.0, 0.0, 0.0, 1.0]).unwrap();
        }
        // A crash mid-append: half of a third record.
        let path = dir.path().join(CACHE_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[7u8; 20]).unwrap();
        drop(f);

        let mut c = EmbedCache::open(dir.path(), 2, "sha-1").unwrap();
        assert_eq!(c.found().len(), 2);
        assert_eq!(c.found()[&b], vec![0.0, 1.0]);
        let c2 = text_hash("c");
        c.append(&[c2], &[0.6, 0.8]).unwrap();
        drop(c);
        let c = EmbedCache::open(dir.path(), 2, "sha-1").unwrap();
        assert_eq!(c.found().len(), 3, "the torn tail was cut before appending");
        drop(c);

        let c = EmbedCache::open(dir.path(), 2, "sha-2").unwrap();
        assert!(
            c.found().is_empty(),
            "vectors of another model are not reused"
        );
        c.remove().unwrap();
        assert!(!path.exists());
    }
}
