//! A shard's two sealed data files (papers with their corpus positions, and
//! vectors), read back and checked against `shard.json`; the folder's lock.

use super::*;

/// A finished shard, read and checked: its manifest, and its rows with
/// their positions in the corpus.
pub(super) struct Loaded {
    pub(super) positions: Vec<u64>,
    pub(super) papers: Vec<Paper>,
    pub(super) vectors: Vec<f32>,
}

/// Reads a shard's files, checking each against the manifest (size, crc32)
/// and its own seal, and their row counts against each other.
pub(super) fn load(dir: &Path, m: &ShardManifest) -> Result<Loaded, ShardError> {
    let papers_bytes = read_checked(dir, &m.files.papers)?;
    let vectors_bytes = read_checked(dir, &m.files.vectors)?;
    let ppath = dir.join(&m.files.papers.name);
    let vpath = dir.join(&m.files.vectors.name);
    let (positions, papers) =
        parse_papers(&papers_bytes).map_err(|reason| ShardError::Damaged {
            path: ppath.clone(),
            reason,
        })?;
    let vectors =
        parse_vectors(&vectors_bytes, m.model.dim).map_err(|reason| ShardError::Damaged {
            path: vpath.clone(),
            reason,
        })?;
    if papers.len() != m.papers || vectors.len() != m.papers * m.model.dim {
        return Err(ShardError::Damaged {
            path: dir.join(SHARD_MANIFEST),
            reason: format!(
                "{} papers and {} vectors, the manifest says {}",
                papers.len(),
                vectors.len() / m.model.dim.max(1),
                m.papers
            ),
        });
    }
    if let Some(p) = papers.iter().find(|p| !m.shard.holds(&p.id)) {
        return Err(ShardError::Damaged {
            path: ppath,
            reason: format!("paper {:?} does not belong to shard {}", p.id, m.shard),
        });
    }
    Ok(Loaded {
        positions,
        papers,
        vectors,
    })
}

pub(super) fn read_checked(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>, ShardError> {
    let path = dir.join(&entry.name);
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ShardError::Damaged {
                    path: path.clone(),
                    reason: "missing".into(),
                }
            } else {
                io_err(&path)(e)
            }
        })?;
    let damaged = |reason: String| ShardError::Damaged {
        path: path.clone(),
        reason,
    };
    if bytes.len() as u64 != entry.bytes {
        return Err(damaged(format!(
            "{} bytes, {SHARD_MANIFEST} says {}",
            bytes.len(),
            entry.bytes
        )));
    }
    let crc = crc32fast::hash(&bytes);
    if crc != entry.crc32 {
        return Err(damaged(format!(
            "checksum {crc:08x}, {SHARD_MANIFEST} says {:08x}",
            entry.crc32
        )));
    }
    Ok(bytes)
}

pub(super) fn write_papers(w: &mut dyn Write, rows: &[(u64, Paper)]) -> io::Result<()> {
    let mut w = SealedWriter::new(w, PAPERS_MAGIC, FILE_VERSION)?;
    w.write_all(&(rows.len() as u64).to_le_bytes())?;
    for (pos, _) in rows {
        w.write_all(&pos.to_le_bytes())?;
    }
    for (_, p) in rows {
        serde_json::to_writer(&mut w, p)?;
        w.write_all(b"\n")?;
    }
    w.finish().map(drop)
}

pub(super) fn parse_papers(b: &[u8]) -> Result<(Vec<u64>, Vec<Paper>), String> {
    let mut r = format::Reader::sealed(b, PAPERS_MAGIC, 24, "shard papers")?;
    let version = r.u32()?;
    if version != FILE_VERSION {
        return Err(format!("version {version}, expected {FILE_VERSION}"));
    }
    let rows = usize::try_from(r.u64()?).map_err(|_| "too many rows")?;
    let bytes = rows.checked_mul(8).ok_or("too many rows")?;
    let positions: Vec<u64> = r
        .take(bytes)?
        .chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_le_bytes(a)
        })
        .collect();
    let text = std::str::from_utf8(r.take(r.left())?).map_err(|e| e.to_string())?;
    let papers = text
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("paper {}: {e}", i + 1)))
        .collect::<Result<Vec<Paper>, String>>()?;
    if papers.len() != rows {
        return Err(format!("{} papers, the header says {rows}", papers.len()));
    }
    Ok((positions, papers))
}

pub(super) fn write_vectors(w: &mut dyn Write, vectors: &[f32], dim: usize) -> io::Result<()> {
    let mut w = SealedWriter::new(w, VECTORS_MAGIC, FILE_VERSION)?;
    w.write_all(&(dim as u32).to_le_bytes())?;
    w.write_all(&((vectors.len() / dim.max(1)) as u64).to_le_bytes())?;
    for chunk in vectors.chunks(1 << 16) {
        w.write_all(bytemuck::cast_slice(chunk))?;
    }
    w.finish().map(drop)
}

pub(super) fn parse_vectors(b: &[u8], dim: usize) -> Result<Vec<f32>, String> {
    let mut r = format::Reader::sealed(b, VECTORS_MAGIC, 28, "shard vectors")?;
    let version = r.u32()?;
    if version != FILE_VERSION {
        return Err(format!("version {version}, expected {FILE_VERSION}"));
    }
    let d = r.u32()? as usize;
    if d != dim {
        return Err(format!("dimension {d}, the manifest says {dim}"));
    }
    let rows = usize::try_from(r.u64()?).map_err(|_| "too many rows")?;
    let bytes = rows
        .checked_mul(dim)
        .and_then(|n| n.checked_mul(4))
        .ok_or("too many rows")?;
    let body = r.take(bytes)?;
    if r.left() != 0 {
        return Err(format!("{} bytes after the last row", r.left()));
    }
    Ok(body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The hex sha256 of a file's bytes.
pub(super) fn file_sha256(path: &Path) -> Result<String, ShardError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// One writer per shard folder: a task resubmitted while the first is still
/// running waits instead of writing the same files.
pub(super) fn lock(dir: &Path) -> Result<File, ShardError> {
    Ok(crate::store::lock_folder(dir, "building this shard")?)
}

pub(super) fn remove_manifest(dir: &Path) -> Result<(), ShardError> {
    let path = dir.join(SHARD_MANIFEST);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
        _ => File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir)),
    }
}
