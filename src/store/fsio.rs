//! File-system plumbing: atomic writes (a temporary name, fsync, rename,
//! fsync of the folder), the writer lock, checking a file against its
//! manifest entry, crash-test failpoints, and the I/O error of a path.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::manifest::FileEntry;
use super::StoreError;
use crate::format::CRC_RESIDUE;

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
pub(super) fn lock(dir: &Path) -> Result<File, StoreError> {
    lock_folder(dir, "updating this library")
}

/// Takes the writer lock of folder `dir` (its file `lock`), waiting, with a
/// word on standard error, while another papersim holds it (`doing` says
/// what that one is doing). Released when the returned file is dropped, or
/// the process dies.
pub fn lock_folder(dir: &Path, doing: &str) -> Result<File, StoreError> {
    let path = dir.join("lock");
    let f = File::create(&path).map_err(io_err(&path))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => {
            eprintln!(
                "papersim: {}: another papersim is {doing}; waiting",
                dir.display()
            );
            f.lock().map_err(io_err(&path))?;
            Ok(f)
        }
        Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// Makes a rename or creation in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes `path` through `fill` so that a crash leaves either the old file
/// or the whole new one, never a half-written one: into a temporary file
/// beside it (see `tmp_name`), fsynced, renamed over `path`, and the
/// folder fsynced so that the rename itself is durable. Returns what a
/// manifest would record about the file.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<FileEntry, StoreError> {
    let entry = write_file(path, fill)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    sync_dir(dir)?;
    Ok(entry)
}

/// [`write_atomic`] without the folder's fsync: a commit writes every file
/// of a generation this way and syncs the folder once, before the manifest.
pub(super) fn write_file(
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
    let written = fill(&mut w).map_err(io_err(&tmp)).and_then(|()| {
        let CrcWriter { inner, crc, bytes } = w;
        let file = inner
            .into_inner()
            .map_err(|e| io_err(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err(&tmp))?;
        Ok((crc, bytes))
    });
    let (crc, bytes) = match written {
        Ok(w) => w,
        Err(e) => {
            // Best effort: a leftover temp file is harmless (commits clear
            // them), but needs not be left.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(FileEntry {
        name: file_name(path),
        bytes,
        crc32: crc.finalize(),
        seal: None,
    })
}

/// [`write_file`] for a file that `fill` seals (ends with the crc32 of
/// everything before it); the entry records that seal.
pub(super) fn write_sealed(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<FileEntry, StoreError> {
    let mut entry = write_file(path, fill)?;
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

/// The temporary name `path` is written under: its whole file name with
/// `.tmp` appended (`a.json.tmp`, `a.jsonl.tmp`), so that two files never
/// share one, as they would if only the extension were replaced.
pub(super) fn tmp_name(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

pub(super) fn file_name(path: &Path) -> String {
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
pub(super) fn entry_of(path: &Path) -> Result<FileEntry, StoreError> {
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
pub(super) fn check_quick(path: &Path, entry: &FileEntry) -> Result<(), StoreError> {
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
pub(super) fn check(path: &Path, entry: &FileEntry) -> Result<(), StoreError> {
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
/// checks anyway (the graph, the rows file): its crc32 is always
/// [`CRC_RESIDUE`], so the pass over the file that [`check`] would make is
/// skipped and the recorded checksum only compared with it. Size and seal
/// are [`check_quick`]'s.
pub(super) fn check_sealed(path: &Path, entry: &FileEntry) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        crate::format::seal(&mut b);
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
        // An unsealed file's entry records no seal: only the size is quick.
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

    /// `a.json` and `a.jsonl` written side by side do not share a temporary
    /// file; a failed write leaves the old file and no temporary one.
    #[test]
    fn atomic_writes_keep_names_apart_and_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.json"), dir.path().join("a.jsonl"));
        assert_ne!(tmp_name(&a), tmp_name(&b));
        write_atomic(&a, |w| w.write_all(b"one")).unwrap();
        write_atomic(&b, |w| w.write_all(b"two")).unwrap();
        let e = write_atomic(&a, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(e.is_err());
        assert_eq!(fs::read(&a).unwrap(), b"one");
        assert_eq!(fs::read(&b).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
