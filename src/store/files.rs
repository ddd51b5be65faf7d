//! File-level durability: write to a temporary name, fsync, rename, fsync the
//! folder. And the vectors file format.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::StoreError;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Test hook: when `PAPERSIM_FAILPOINT` names this point, the process aborts
/// here, as a crash or `kill -9` would. Crash tests use it to stop a commit at
/// each step deterministically.
pub(crate) fn failpoint(name: &str) {
    if std::env::var("PAPERSIM_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("papersim: failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Takes the library's writer lock (`dir/lock`, an advisory `flock`): two
/// commands updating one library at once would each build on the same
/// generation and the second would silently drop the first's changes. Readers
/// never lock. Released when the returned file is dropped, or the process dies.
pub(crate) fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("lock");
    let f = File::create(&path).map_err(io_err(&path))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => {
            eprintln!(
                "papersim: {}: another papersim is updating this library; waiting",
                dir.display()
            );
            f.lock().map_err(io_err(&path))?;
            Ok(f)
        }
        Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// Makes a rename or creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// What the manifest records about each file it points to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub crc32: u32,
    /// For a sealed file (one ending in a crc32 of everything before it: the
    /// vectors, flat graph and rows files), that footer. The whole file's
    /// crc32 above is then always [`CRC_RESIDUE`], which tells only that the
    /// file is intact, not that it is the file this manifest wrote; the
    /// footer tells that too, read in 4 bytes. Libraries from before it have
    /// none (and keep their manifest checksum: it is not serialised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<u32>,
}

/// The crc32 of any message followed by its own crc32 (little-endian): the
/// whole-file checksum of every sealed file.
pub(crate) const CRC_RESIDUE: u32 = 0x2144_df1c;

/// Writes `path` through `fill`: into `path.tmp`, fsynced, then renamed. A
/// crash leaves at most a stray `.tmp`, never a half-written `path`.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<FileEntry, StoreError> {
    let tmp = tmp_name(path);
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        bytes: 0,
    };
    fill(&mut w).map_err(io_err(&tmp))?;
    let CrcWriter { inner, crc, bytes } = w;
    let file = inner
        .into_inner()
        .map_err(|e| io_err(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(FileEntry {
        name: file_name(path),
        bytes,
        crc32: crc.finalize(),
        seal: None,
    })
}

/// [`write_atomic`] for a file that `fill` seals (ends with the crc32 of
/// everything before it); the entry records that seal.
pub(crate) fn write_sealed(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<FileEntry, StoreError> {
    let mut entry = write_atomic(path, fill)?;
    if entry.crc32 != CRC_RESIDUE {
        // A writer's bug, never user data: refuse to commit an unsealed file.
        return Err(StoreError::Invalid(format!(
            "{}: written without its crc32 footer",
            path.display()
        )));
    }
    entry.seal = Some(footer(path)?);
    Ok(entry)
}

/// The last 4 bytes of `path`, little-endian: a sealed file's seal.
fn footer(path: &Path) -> Result<u32, StoreError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut b = [0u8; 4];
    f.seek(SeekFrom::End(-4))
        .and_then(|_| f.read_exact(&mut b))
        .map_err(io_err(path))?;
    Ok(u32::from_le_bytes(b))
}

pub(crate) fn tmp_name(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Describes an existing file (one tantivy wrote) after fsyncing it.
pub(crate) fn entry_of(path: &Path) -> Result<FileEntry, StoreError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    let (bytes, crc32) = crc_of(&mut f).map_err(io_err(path))?;
    Ok(FileEntry {
        name: file_name(path),
        bytes,
        crc32,
        seal: None,
    })
}

fn crc_of(r: &mut impl Read) -> io::Result<(u64, u32)> {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok((n, h.finalize()));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// Checks that `path` has the size `entry` records and, if sealed, its
/// seal: cheap (no pass over the file), and catches a truncated, overwritten
/// or swapped file before anything maps it.
pub(crate) fn check_quick(path: &Path, entry: &FileEntry) -> Result<(), StoreError> {
    let bytes = fs::metadata(path).map_err(io_err(path))?.len();
    if bytes != entry.bytes {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{bytes} bytes, the manifest says {}", entry.bytes),
        });
    }
    check_seal(path, entry)
}

fn check_seal(path: &Path, entry: &FileEntry) -> Result<(), StoreError> {
    let Some(seal) = entry.seal else {
        return Ok(());
    };
    let found = footer(path)?;
    if found != seal {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "sealed with {found:08x}, the manifest says {seal:08x}: \
                 not the file this library wrote"
            ),
        });
    }
    Ok(())
}

/// Checks that `path` has the size and checksum `entry` records.
pub(crate) fn check(path: &Path, entry: &FileEntry) -> Result<(), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = File::open(path).map_err(io_err(path))?;
    let (bytes, crc) = crc_of(&mut f).map_err(io_err(path))?;
    if bytes != entry.bytes {
        return Err(corrupt(format!(
            "{bytes} bytes, the manifest says {}",
            entry.bytes
        )));
    }
    if crc != entry.crc32 {
        return Err(corrupt(format!(
            "checksum {crc:08x}, the manifest says {:08x}",
            entry.crc32
        )));
    }
    check_seal(path, entry)
}

/// [`check`] for a sealed file that its parser reads whole and whose seal it
/// checks anyway (the flat graph, the rows file): its crc32 is always
/// [`CRC_RESIDUE`], so the pass over the file that [`check`] would make is
/// skipped and the recorded checksum only compared with it. Size and seal
/// are [`check_quick`]'s.
pub(crate) fn check_sealed(path: &Path, entry: &FileEntry) -> Result<(), StoreError> {
    if entry.crc32 != CRC_RESIDUE {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "the manifest's checksum {:08x} is not a sealed file's ({CRC_RESIDUE:08x})",
                entry.crc32
            ),
        });
    }
    Ok(())
}

// ---- vectors file -------------------------------------------------------------
//
// Layout (little-endian): magic "PSIMVEC\0" | format version u32 | dim u32 |
// rows u64 | 8 reserved bytes | rows*dim f32 | crc32 u32 of everything before.
// The 32-byte header keeps the f32 data 4-aligned in an mmap.

const VEC_MAGIC: &[u8; 8] = b"PSIMVEC\0";
const VEC_VERSION: u32 = 1;
const VEC_HEADER: usize = 32;

/// Writes the rows of `parts`, one after the other, as one vectors file.
pub(crate) fn write_vectors(
    path: &Path,
    parts: &[&[f32]],
    dim: usize,
) -> Result<FileEntry, StoreError> {
    let rows = parts.iter().map(|p| p.len()).sum::<usize>() / dim.max(1);
    write_sealed(path, |w| {
        let mut header = Vec::with_capacity(VEC_HEADER);
        header.extend_from_slice(VEC_MAGIC);
        header.extend_from_slice(&VEC_VERSION.to_le_bytes());
        header.extend_from_slice(&(dim as u32).to_le_bytes());
        header.extend_from_slice(&(rows as u64).to_le_bytes());
        header.extend_from_slice(&[0u8; 8]);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        w.write_all(&header)?;
        for chunk in parts.iter().flat_map(|p| p.chunks(1 << 16)) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            crc.update(&bytes);
            w.write_all(&bytes)?;
        }
        w.write_all(&crc.finalize().to_le_bytes())
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
    /// manifest's, and that the size matches the shape exactly.
    pub(crate) fn open(path: &Path, dim: usize, rows: usize) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(io_err(path))?;
        // SAFETY: the library's files are never modified in place (every
        // commit writes new files), so the mapping cannot change under us.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
        if map.len() < VEC_HEADER + 4 || &map[..8] != VEC_MAGIC {
            return Err(corrupt("not a papersim vectors file (bad magic)".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([map[o], map[o + 1], map[o + 2], map[o + 3]]);
        let version = u32_at(8);
        if version != VEC_VERSION {
            return Err(corrupt(format!(
                "vectors format version {version}, this papersim reads {VEC_VERSION}"
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
            .and_then(|n| n.checked_add(VEC_HEADER + 4));
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

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// All vectors, `rows * dim`.
    pub fn as_slice(&self) -> &[f32] {
        let data = &self.map[VEC_HEADER..VEC_HEADER + self.rows * self.dim * 4];
        // `open` checked the length; the mmap is page-aligned and the header
        // is 32 bytes, so this cast cannot fail.
        bytemuck::try_cast_slice(data).unwrap_or(&[])
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.as_slice()[i * self.dim..(i + 1) * self.dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        b.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        b
    }

    /// Every sealed file hashes to the same crc32, which is what lets
    /// `check_sealed` skip the pass; any other recorded checksum is refused.
    #[test]
    fn sealed_files_all_hash_to_the_residue() {
        for body in [&b""[..], b"x", b"PSIMGRAF and some body bytes"] {
            let b = sealed(body);
            let whole = crc32fast::hash(&b);
            assert_eq!(whole, CRC_RESIDUE);
            let entry = FileEntry {
                name: "f".into(),
                bytes: b.len() as u64,
                crc32: whole,
                seal: None,
            };
            let path = Path::new("f");
            check_sealed(path, &entry).unwrap();
            let other = FileEntry {
                crc32: whole ^ 1,
                ..entry
            };
            assert!(check_sealed(path, &other).is_err());
        }
    }

    /// Two intact sealed files of one size pass every whole-file checksum
    /// alike; the recorded seal tells them apart, in the quick check at open
    /// and in the full one.
    #[test]
    fn the_seal_tells_this_file_from_another_intact_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let ea = write_sealed(&a, |w| w.write_all(&sealed(b"first body"))).unwrap();
        let eb = write_sealed(&b, |w| w.write_all(&sealed(b"other body"))).unwrap();
        assert_eq!((ea.bytes, ea.crc32), (eb.bytes, eb.crc32));
        assert_eq!(ea.seal, Some(crc32fast::hash(b"first body")));
        check_quick(&a, &ea).unwrap();
        check(&a, &ea).unwrap();

        fs::copy(&b, &a).unwrap();
        for err in [check_quick(&a, &ea), check(&a, &ea)] {
            let msg = err.unwrap_err().to_string();
            assert!(msg.contains("not the file this library wrote"), "{msg}");
        }
        // A library from before seals records none: only the size is quick.
        check_quick(&a, &FileEntry { seal: None, ..ea }).unwrap();
    }

    #[test]
    fn an_unsealed_file_is_refused_at_write() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_sealed(&dir.path().join("f"), |w| w.write_all(b"no footer"));
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("without its crc32 footer"));
    }
}
