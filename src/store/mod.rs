//! A library on disk: papers, their vectors and the HNSW graph, tied together
//! by a manifest.
//!
//! ```text
//! LIBRARY/
//!   manifest.json            the commit point (JSON, format_version, checksums of the rest)
//!   papers.<gen>.jsonl       one paper per line; line i describes vector row i
//!   papers.<gen>.rows        where each line lies, its crc32, and each row's id
//!   vectors.<gen>.f32        magic + version + shape header, f32 rows, crc32 footer
//!   graph.<gen>.flat         the HNSW graph as flat arrays, with 8-bit codes of the rows
//!   keyword.<gen>/           tantivy BM25 index of the same texts (its `row` field is the vector row)
//! ```
//!
//! [`manifest`](Manifest) describes the files, [`Library`] opens them,
//! `commit` writes a new generation (the commit protocol), `update` adds and
//! removes rows, `verify` checks and repairs. `fsio` is the file-system
//! plumbing under all of them, including [`write_atomic`].

mod cache;
mod commit;
mod export;
mod fsio;
mod library;
mod manifest;
mod papers;
mod update;
mod vectors;
mod verify;

use std::path::PathBuf;

use crate::index::IndexError;

pub use cache::{text_hash, EmbedCache, TextHash, CACHE_FILE};
pub use commit::{CommitSpec, Contents};
pub use export::{export, npy_header, write_npy, ExportReport};
pub(crate) use fsio::failpoint;
pub use fsio::write_atomic;
pub use library::Library;
pub use manifest::{
    read_manifest, FileEntry, Manifest, ManifestFiles, FORMAT_NAME, FORMAT_VERSION, MANIFEST,
};
pub use papers::Papers;
pub use vectors::Vectors;
pub use verify::{repair, verify, Check, VerifyReport};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no papersim library here (no {MANIFEST}); create one with `papersim build --corpus FILE --library {}`", path.display(), path.display())]
    NotALibrary { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    BadManifest { path: PathBuf, reason: String },
    #[error("{}: corrupt: {reason}; rebuild the library", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}:{line}: {reason}", path.display())]
    BadPaper {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("refusing to commit: {0}")]
    Invalid(String),
    #[error(transparent)]
    Index(#[from] IndexError),
}
