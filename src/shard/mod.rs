//! Builds beyond one machine: a corpus embedded as N independent shards (one
//! Slurm array task each), then merged into one library without embedding
//! anything again.
//!
//! A paper belongs to shard [`shard_of`]`(id, N)`: a stable hash of its id
//! alone, so a shard holds the same papers whatever the corpus file's order
//! and whichever other shards ran, failed or were resubmitted.
//!
//! ```text
//! SHARD_DIR/
//!   shard.json      the commit point: K, N, model, template, corpus sha256,
//!                   counts, and the size and crc32 of the two files below
//!   papers.bin      sealed: u64 rows | rows x u64 position in the corpus | JSON lines
//!   vectors.bin     sealed: u32 dim | u64 rows | rows x dim f32
//!   embed-cache.bin the checkpoint of an unfinished shard (see store's cache)
//! ```
//!
//! Both data files are written atomically and `shard.json` last, so a folder
//! with a `shard.json` whose files match it is a finished shard, and any other
//! state is an unfinished one that a rerun resumes from its checkpoint.
//! [`merge`] checks every shard (same model, precision, template, corpus and
//! N; shards `0..N` each present once; no id twice) before it commits one
//! library, its rows in corpus order, exactly as a single-process `build` of
//! the same corpus would.

mod build;
mod files;
mod manifest;
mod merge;

// The submodules share these imports (`use super::*`).
use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::corpus::{self, Issue, Paper, ReadOptions, TextTemplate};
use crate::embed::{is_unit, EmbedStats, Embedder, ModelInfo};
use crate::format::{self, SealedWriter};
use crate::index::HnswParams;
use crate::pipeline::{self, embed_resumable, PipelineError, Progress};
use crate::store::{
    read_manifest, write_atomic, CommitSpec, Contents, EmbedCache, FileEntry, Library, StoreError,
};

use files::*;
use manifest::same_model;

pub use build::{build, ShardOptions, ShardReport};
pub use manifest::{read_shard_manifest, CorpusSource, ShardFiles, ShardManifest};
pub use merge::{merge, MergeOptions, MergeReport};

/// The file that makes a folder a finished shard.
pub const SHARD_MANIFEST: &str = "shard.json";
/// `format` in `shard.json`.
pub const FORMAT_NAME: &str = "papersim-shard";
/// `format_version` in `shard.json`; bumped when an older reader could
/// misread the files.
pub const FORMAT_VERSION: u32 = 1;

const PAPERS_FILE: &str = "papers.bin";
const VECTORS_FILE: &str = "vectors.bin";
const PAPERS_MAGIC: &[u8; 8] = b"PSIMSHPA";
const VECTORS_MAGIC: &[u8; 8] = b"PSIMSHVE";
const FILE_VERSION: u32 = 1;

/// Everything that can stop a sharded build or a merge.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// `--shard` (or the Slurm variables) do not name a shard.
    #[error("{0}")]
    BadSpec(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The folder has no `shard.json`: its task never finished, or it is no shard.
    #[error("{}: not a finished shard (no {SHARD_MANIFEST}): its build task did not finish; rerun it (`papersim build --shard K/N --out {}` resumes) or leave the folder out", path.display(), path.display())]
    NotAShard {
        /// The folder.
        path: PathBuf,
    },
    /// A shard's manifest or files are damaged or do not match each other.
    #[error("{}: damaged shard: {reason}; rebuild it with `papersim build --shard K/N --out` on the same folder", path.display())]
    Damaged {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The output folder already holds another shard.
    #[error("{}: holds shard {found}, not {asked}; give each shard its own --out folder, or delete this one", path.display())]
    WrongShard {
        /// The folder.
        path: PathBuf,
        /// The shard it holds.
        found: ShardSpec,
        /// The shard asked for.
        asked: ShardSpec,
    },
    /// A shard was built from other inputs than the first one given.
    #[error("{}: foreign shard: {reason} than {}; merge only shards of one build", path.display(), first.display())]
    Foreign {
        /// The foreign shard.
        path: PathBuf,
        /// The first shard given, the reference.
        first: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Two folders hold the same shard.
    #[error("{} and {}: both hold shard {index}/{count}; give each shard once", first.display(), second.display())]
    DuplicateShard {
        /// K.
        index: usize,
        /// N.
        count: usize,
        /// The first folder.
        first: PathBuf,
        /// The second one.
        second: PathBuf,
    },
    /// Shards of `0..N` are missing.
    #[error("{}: shard {} of {count} missing (given {given}); build {} and merge all {count}", first.display(), list(missing), if missing.len() == 1 { "it" } else { "them" })]
    Missing {
        /// The missing shard numbers.
        missing: Vec<usize>,
        /// N.
        count: usize,
        /// How many shards were given.
        given: usize,
        /// The first shard given (the build they belong to).
        first: PathBuf,
    },
    /// One id is in two shards.
    #[error("{} and {}: paper {id:?} is in both; these shards are not of one corpus", first.display(), second.display())]
    DuplicateId {
        /// The paper id.
        id: String,
        /// The shard it was found in first.
        first: PathBuf,
        /// The other shard.
        second: PathBuf,
    },
    /// `merge` was given no shard.
    #[error("no shard folders given; nothing to merge")]
    NoShards,
    /// The library merged into was built with another model or template.
    #[error("{}: {reason}; merge into a new library folder instead", path.display())]
    LibraryMismatch {
        /// The library.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// Reading the corpus or embedding failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Opening or committing the library failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(v: &[usize]) -> String {
    v.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ShardError + '_ {
    move |source| ShardError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Shard K of N (`K/N`, K counted from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    /// K, in `0..count`.
    pub index: usize,
    /// N, at least 1.
    pub count: usize,
}

impl ShardSpec {
    /// A checked `K/N`.
    pub fn new(index: usize, count: usize) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::BadSpec(format!(
                "shard {index}/{count}: N must be at least 1"
            )));
        }
        if index >= count {
            return Err(ShardError::BadSpec(format!(
                "shard {index}/{count}: K counts from 0 and must be below N (0..{})",
                count - 1
            )));
        }
        Ok(ShardSpec { index, count })
    }

    /// The shard of a Slurm array task: `SLURM_ARRAY_TASK_ID` of
    /// `SLURM_ARRAY_TASK_COUNT`, or None when they are not set. The array
    /// must be `--array=0-(N-1)`; a resubmission of some tasks changes the
    /// count, so it must pass `--shard K/N` (the bundled sbatch script does).
    pub fn from_env() -> Result<Option<Self>, ShardError> {
        Self::from_vars(
            std::env::var("SLURM_ARRAY_TASK_ID").ok().as_deref(),
            std::env::var("SLURM_ARRAY_TASK_COUNT").ok().as_deref(),
        )
    }

    fn from_vars(id: Option<&str>, count: Option<&str>) -> Result<Option<Self>, ShardError> {
        let (Some(id), Some(count)) = (id, count) else {
            return Ok(None);
        };
        let parse = |name: &str, v: &str| {
            v.trim().parse::<usize>().map_err(|_| {
                ShardError::BadSpec(format!("{name}={v:?}: not a number; pass --shard K/N"))
            })
        };
        let (k, n) = (
            parse("SLURM_ARRAY_TASK_ID", id)?,
            parse("SLURM_ARRAY_TASK_COUNT", count)?,
        );
        Self::new(k, n).map(Some).map_err(|_| {
            ShardError::BadSpec(format!(
                "SLURM_ARRAY_TASK_ID={k} is not below SLURM_ARRAY_TASK_COUNT={n}: submit the \
                 array as --array=0-{} or pass --shard K/N (needed when resubmitting some tasks)",
                n.saturating_sub(1)
            ))
        })
    }

    /// Whether the paper with this id belongs to this shard.
    pub fn holds(&self, id: &str) -> bool {
        shard_of(id, self.count) == self.index
    }
}

impl FromStr for ShardSpec {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Self, ShardError> {
        let bad = || ShardError::BadSpec(format!("--shard {s:?}: expected K/N, e.g. 0/8"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        ShardSpec::new(k, n)
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard of `count` that holds the paper `id`: the first 8 bytes of the
/// sha256 of the id (little-endian) modulo `count`. Stable across machines,
/// versions and corpus orders; roughly even for any ids.
pub fn shard_of(id: &str, count: usize) -> usize {
    let d = Sha256::digest(id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(b) % count.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_parse_and_check() {
        assert_eq!(
            "2/4".parse::<ShardSpec>().unwrap(),
            ShardSpec { index: 2, count: 4 }
        );
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
        assert_eq!(ShardSpec::from_vars(None, Some("4")).unwrap(), None);
        assert_eq!(
            ShardSpec::from_vars(Some("3"), Some("4")).unwrap(),
            Some(ShardSpec { index: 3, count: 4 })
        );
        let e = ShardSpec::from_vars(Some("4"), Some("4")).unwrap_err();
        assert!(e.to_string().contains("--array=0-3"), "{e}");
    }

    #[test]
    fn the_shard_of_an_id_is_stable_and_roughly_even() {
        // Pinned: a change here would scatter every existing shard.
        assert_eq!(shard_of("1812.06145", 4), shard_of("1812.06145", 4));
        let ids: Vec<String> = (0..4000).map(|i| format!("2401.{i:05}")).collect();
        let mut counts = [0usize; 4];
        for id in &ids {
            counts[shard_of(id, 4)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
        assert!(ids.iter().all(|id| shard_of(id, 1) == 0));
    }

    #[test]
    fn shard_files_round_trip_and_damage_is_named() {
        let p = Paper {
            id: "a".into(),
            title: "T".into(),
            abstract_text: "A".into(),
            authors: vec![],
            categories: vec![],
            date: None,
            url: None,
            ..Paper::default()
        };
        let mut b = Vec::new();
        write_papers(&mut b, &[(7, p.clone())]).unwrap();
        assert_eq!(parse_papers(&b).unwrap(), (vec![7], vec![p]));
        let mut v = Vec::new();
        write_vectors(&mut v, &[0.6, 0.8], 2).unwrap();
        assert_eq!(parse_vectors(&v, 2).unwrap(), vec![0.6, 0.8]);
        assert!(parse_vectors(&v, 3).is_err());
        let mut flipped = v.clone();
        flipped[20] ^= 1;
        assert!(parse_vectors(&flipped, 2).unwrap_err().contains("checksum"));
        assert!(
            parse_papers(&v).is_err(),
            "a vectors file is not a papers file"
        );
    }
}
