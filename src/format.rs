//! papersim's sealed binary files: the vectors, the graph and the rows file.
//!
//! Each is an 8-byte magic, a u32 format version, its fields
//! (little-endian), and a u32 crc32 of everything before it as a footer (the
//! seal). A reader checks the magic and the seal before it parses a field,
//! and every field read is bounds-checked, so a damaged or foreign file is an
//! error, never a panic or a wrong answer. One helper for all of them, so
//! that every file is sealed and checked the same way.

use std::io::{self, Write};

/// The crc32 of any message followed by its own crc32 (little-endian): the
/// whole-file checksum of every sealed file.
pub const CRC_RESIDUE: u32 = 0x2144_df1c;

/// The start of a sealed file built in memory: its magic and version.
pub fn begin(magic: &[u8; 8], version: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(magic);
    b.extend_from_slice(&version.to_le_bytes());
    b
}

/// Appends the seal: the crc32 of everything in `b`.
pub fn seal(b: &mut Vec<u8>) {
    let crc = crc32fast::hash(b);
    b.extend_from_slice(&crc.to_le_bytes());
}

/// Writes a sealed file as a stream, for files too large to build in memory
/// first (the vectors): what passes through is hashed, and
/// [`SealedWriter::finish`] appends the seal.
pub struct SealedWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> SealedWriter<W> {
    /// Starts the file with its magic and version.
    pub fn new(inner: W, magic: &[u8; 8], version: u32) -> io::Result<Self> {
        let mut w = SealedWriter {
            inner,
            crc: crc32fast::Hasher::new(),
        };
        w.write_all(&begin(magic, version))?;
        Ok(w)
    }

    /// Writes the seal and hands back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let crc = self.crc.clone().finalize();
        self.inner.write_all(&crc.to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a sealed file field by field; every read is bounds-checked.
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Checks `b`'s magic, at least `min_len` bytes, and its seal; reads from
    /// after the magic (the version comes first) up to the seal. `what`
    /// names the kind of file in the error.
    pub fn sealed(
        b: &'a [u8],
        magic: &[u8; 8],
        min_len: usize,
        what: &str,
    ) -> Result<Self, String> {
        if b.len() < min_len.max(12) || &b[..8] != magic {
            return Err(format!("not a papersim {what} file (bad magic)"));
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err("checksum mismatch: the file is damaged".into());
        }
        Ok(Reader { b: body, at: 8 })
    }

    /// Where the next read starts, from the start of the file.
    pub fn at(&self) -> usize {
        self.at
    }

    /// Bytes not read yet.
    pub fn left(&self) -> usize {
        self.b.len() - self.at
    }

    /// The next `n` bytes, borrowed from the file; `Err("truncated")` when
    /// fewer than `n` are left before the seal.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .at
            .checked_add(n)
            .and_then(|end| self.b.get(self.at..end))
            .ok_or("truncated")?;
        self.at += n;
        Ok(s)
    }

    /// The next 4 bytes as a little-endian u32; errors when truncated.
    pub fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// The next 8 bytes as a little-endian u64; errors when truncated.
    pub fn u64(&mut self) -> Result<u64, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    /// `n` u32s; `n` comes from the file, so its size is checked before
    /// anything is allocated.
    pub fn u32s(&mut self, n: usize) -> Result<Vec<u32>, String> {
        let bytes = n.checked_mul(4).ok_or("too large")?;
        Ok(self
            .take(bytes)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"PSIMTEST";

    #[test]
    fn sealed_in_memory_and_streamed_are_the_same_bytes() {
        let mut a = begin(MAGIC, 3);
        a.extend_from_slice(&7u64.to_le_bytes());
        seal(&mut a);
        let mut w = SealedWriter::new(Vec::new(), MAGIC, 3).unwrap();
        w.write_all(&7u64.to_le_bytes()).unwrap();
        assert_eq!(w.finish().unwrap(), a);
        // Every sealed file hashes to the residue.
        assert_eq!(crc32fast::hash(&a), CRC_RESIDUE);

        let mut r = Reader::sealed(&a, MAGIC, 12, "test").unwrap();
        assert_eq!((r.u32(), r.u64()), (Ok(3), Ok(7)));
        assert_eq!(r.left(), 0);
        assert!(r.u32().is_err(), "reads stop at the seal");
    }

    #[test]
    fn damage_and_foreign_files_are_refused() {
        let mut a = begin(MAGIC, 1);
        a.extend_from_slice(b"some body");
        seal(&mut a);
        let e = Reader::sealed(&a, b"PSIMELSE", 12, "other").err().unwrap();
        assert!(e.contains("not a papersim other file"), "{e}");
        let mut flipped = a.clone();
        flipped[14] ^= 1;
        let e = Reader::sealed(&flipped, MAGIC, 12, "test").err().unwrap();
        assert!(e.contains("checksum"), "{e}");
        assert!(Reader::sealed(&a[..a.len() - 1], MAGIC, 12, "test").is_err());
        assert!(Reader::sealed(&a[..5], MAGIC, 12, "test").is_err());
        let mut r = Reader::sealed(&a, MAGIC, 12, "test").unwrap();
        assert!(r.u32s(usize::MAX).is_err());
        assert!(r.take(usize::MAX).is_err());
    }
}
