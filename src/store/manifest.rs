//! `manifest.json`, the commit point of a library: what it records about
//! the library and each of its files, and how it is read and validated.
//!
//! Its own checksum is a crc32 of its re-serialisation (see
//! [`Manifest::checksum`]), so every type here must serialise back to the
//! bytes it was read from: optional fields are left out when empty, never
//! written as null.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::corpus::TextTemplate;
use crate::embed::ModelInfo;
use crate::index::HnswParams;

/// The manifest's file name inside the library directory.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's `format` field: what marks a directory as a papersim
/// library.
pub const FORMAT_NAME: &str = "papersim-library";
/// Bumped whenever a reader of the previous version could misread the files.
/// Version 2: papersim's own graph (`graph.<gen>.flat`) is the graph.
/// Version 1 (an hnsw_rs graph dump) was never released, and is not read.
pub const FORMAT_VERSION: u32 = 2;

/// What the manifest records about each file it points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The file's name, relative to the library folder (to
    /// [`ManifestFiles::keyword_dir`] for the keyword index's files).
    pub name: String,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The crc32 of the whole file.
    pub crc32: u32,
    /// For a sealed file (see [`crate::format`]: the vectors, graph and rows
    /// files), its footer. The whole file's crc32 above is then always
    /// [`crate::format::CRC_RESIDUE`], which tells only that the file is
    /// intact, not that it is the file this manifest wrote; the footer tells
    /// that too, read in 4 bytes. None for the other files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<u32>,
}

/// Files of one generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFiles {
    /// The papers as JSON lines (`papers.<gen>.jsonl`), line i for row i.
    pub papers: FileEntry,
    /// The f32 vectors (`vectors.<gen>.f32`), a sealed file.
    pub vectors: FileEntry,
    /// The keyword index folder, relative to the library folder.
    pub keyword_dir: String,
    /// Every file in the keyword index folder.
    pub keyword: Vec<FileEntry>,
    /// The graph (`index::FlatGraph`), what queries search.
    pub flat: FileEntry,
    /// Where each paper's line lies (`store::papers`).
    pub rows: FileEntry,
    /// One 8-bit vector per sentence of each paper (`sentences.<gen>.i8`,
    /// a sealed file); none in a library built with `--no-sentences`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentences: Option<FileEntry>,
}

impl ManifestFiles {
    /// Every file in the library folder itself.
    pub(super) fn top_level(&self) -> impl Iterator<Item = &FileEntry> {
        [&self.papers, &self.vectors, &self.flat, &self.rows]
            .into_iter()
            .chain(self.sentences.as_ref())
    }

    /// Every file, with its path relative to the library folder.
    pub(super) fn all(&self) -> Vec<(String, &FileEntry)> {
        let mut v: Vec<(String, &FileEntry)> =
            self.top_level().map(|e| (e.name.clone(), e)).collect();
        v.extend(
            self.keyword
                .iter()
                .map(|e| (format!("{}/{}", self.keyword_dir, e.name), e)),
        );
        v
    }
}

/// What `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// The library format version, [`FORMAT_VERSION`] for libraries this
    /// papersim writes; others are refused.
    pub format_version: u32,
    /// Commits so far, starting at 1; the files of this generation carry it
    /// in their names.
    pub generation: u64,
    /// The model that embedded the vectors: queries must use the same one.
    pub model: ModelInfo,
    /// How each paper was rendered into the text that was embedded.
    pub text_template: TextTemplate,
    /// Rows in the files, dead ones included.
    pub papers: usize,
    /// Floats per vector.
    pub dim: usize,
    /// The graph's construction and search parameters.
    pub index: HnswParams,
    /// When the library was first built, RFC 3339.
    pub created: String,
    /// When this generation was committed, RFC 3339.
    pub updated: String,
    /// This generation's files, with their sizes and checksums.
    pub files: ManifestFiles,
    /// Rows removed or replaced since the last full build (`remove`, `add`),
    /// ascending. Their papers and vectors stay in the files, so row numbers
    /// never shift; every query leaves them out, and `compact` drops them.
    /// Omitted when empty, so a library without updates keeps its checksum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead: Vec<usize>,
    /// crc32 of this manifest serialised with `checksum` = 0: catches a
    /// damaged manifest that is still valid JSON.
    #[serde(default)]
    pub checksum: u32,
}

impl Manifest {
    pub(super) fn compute_checksum(&self) -> u32 {
        let mut m = self.clone();
        m.checksum = 0;
        crc32fast::hash(&serde_json::to_vec(&m).unwrap_or_default())
    }
}

/// Reads and validates `dir/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, StoreError> {
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotALibrary {
                path: dir.to_path_buf(),
            })
        }
        Err(source) => return Err(StoreError::Io { path, source }),
    };
    let bad = |reason: String| StoreError::BadManifest {
        path: path.clone(),
        reason,
    };
    // Check the format and version before the full shape, so that a newer
    // library says "newer" instead of "missing field".
    let head: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("line {}: {e}", e.line())))?;
    if head.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
        return Err(bad(format!(
            "not a {FORMAT_NAME} manifest (field \"format\")"
        )));
    }
    match head.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(1) => {
            return Err(bad(
                "library format version 1 is no longer read; rebuild it with papersim build".into(),
            ))
        }
        Some(v) => {
            return Err(bad(format!(
                "library format version {v}; this papersim reads version {FORMAT_VERSION} \
                 (rebuild the library, or use a matching papersim)"
            )))
        }
        None => {
            return Err(bad(
                "field \"format_version\" is missing or not a number".into()
            ))
        }
    }
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| bad(format!("line {}: {e}", e.line())))?;
    if m.checksum != m.compute_checksum() {
        return Err(bad(format!(
            "checksum {:08x} does not match its contents ({:08x}): the manifest is damaged; \
             rebuild the library",
            m.checksum,
            m.compute_checksum()
        )));
    }
    // A manifest names files inside its own folder only: a name with a path
    // in it (`../x`, `/dev/zero`) could make opening read anything.
    let plain = |n: &str| !n.is_empty() && n != "." && n != ".." && !n.contains(['/', '\\', '\0']);
    let names = m.files.all();
    if let Some((rel, _)) = names
        .iter()
        .find(|(rel, e)| !plain(&e.name) || rel.contains(".."))
    {
        return Err(bad(format!(
            "file name {rel:?} is not a plain name inside the library"
        )));
    }
    if !plain(&m.files.keyword_dir) {
        return Err(bad(format!(
            "keyword_dir {:?} is not a plain name inside the library",
            m.files.keyword_dir
        )));
    }
    if m.dim != m.model.dim {
        return Err(bad(format!(
            "dim {} disagrees with model.dim {}",
            m.dim, m.model.dim
        )));
    }
    Ok(m)
}

/// The live-row map of the manifest's dead list, which must be ascending rows
/// of the library.
pub(super) fn live_rows(dir: &Path, m: &Manifest) -> Result<Vec<bool>, StoreError> {
    let mut live = vec![true; m.papers];
    let mut last = None;
    for &row in &m.dead {
        if row >= m.papers || last.is_some_and(|l| l >= row) {
            return Err(StoreError::BadManifest {
                path: dir.join(MANIFEST),
                reason: format!(
                    "field \"dead\": row {row} is out of order or past the {} rows",
                    m.papers
                ),
            });
        }
        live[row] = false;
        last = Some(row);
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A format version 1 library (never released) is refused by name, with
    /// what to do, before its fields are read.
    #[test]
    fn format_version_1_is_no_longer_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(MANIFEST),
            r#"{"format": "papersim-library", "format_version": 1, "generation": 1}"#,
        )
        .unwrap();
        let e = read_manifest(dir.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: library format version 1 is no longer read; rebuild it with papersim build",
                dir.path().join(MANIFEST).display()
            )
        );
    }
}
