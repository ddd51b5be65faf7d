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
//!   sentences.<gen>.i8       one 8-bit vector per sentence of each paper (optional)
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
mod sentences;
mod update;
mod vectors;
mod verify;

use std::path::PathBuf;

use crate::index::IndexError;

pub use cache::{sentence_count_hash, sentence_hash, text_hash, EmbedCache, TextHash, CACHE_FILE};
pub use commit::{CommitSpec, Contents};
pub use export::{export, npy_header, write_npy, ExportReport};
pub(crate) use fsio::failpoint;
pub use fsio::{lock_folder, write_atomic};
pub use library::Library;
pub use manifest::{
    read_manifest, FileEntry, Manifest, ManifestFiles, FORMAT_NAME, FORMAT_VERSION, MANIFEST,
};
pub use papers::Papers;
pub use sentences::{quantize, SentenceVectors};
pub use vectors::Vectors;
pub use verify::{repair, verify, Check, VerifyReport};

/// Why a library could not be read, written or checked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory being read, written, renamed or removed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory has no `manifest.json`: it is not a library (yet).
    #[error("{}: no papersim library here (no {MANIFEST}); create one with `papersim build --corpus FILE --library {}`", path.display(), path.display())]
    NotALibrary {
        /// The directory that was expected to hold a library.
        path: PathBuf,
    },
    /// `manifest.json` is not valid JSON, is of another format or a newer
    /// format version, or its fields are inconsistent (e.g. an unordered
    /// dead list).
    #[error("{}: {reason}", path.display())]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A library file does not match its manifest entry (size or crc32),
    /// fails its seal, or does not parse: the library is damaged.
    #[error("{}: corrupt: {reason}; rebuild the library", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of the papers file does not parse as a paper.
    #[error("{}:{line}: {reason}", path.display())]
    BadPaper {
        /// The papers file.
        path: PathBuf,
        /// 1-based line number (vector row + 1).
        line: usize,
        /// The JSON error.
        reason: String,
    },
    /// A commit or lookup was refused before anything was written: the
    /// contents are inconsistent (counts, a non-unit vector), a row is out of
    /// range, or the library changed since it was opened.
    #[error("refusing to commit: {0}")]
    Invalid(String),
    /// The keyword index could not be built, extended or opened.
    #[error(transparent)]
    Index(#[from] IndexError),
}
