//! Nearest-neighbour search over unit vectors: an HNSW graph that papersim
//! builds ([`build`], [`extend`]) straight into flat arrays ([`FlatGraph`]),
//! searched over 8-bit codes and re-scored in f32; exact search
//! ([`exact_search`]), both the ground truth for recall and the answer for
//! small libraries; and the BM25 keyword index ([`KeywordIndex`]).
//!
//! This module reads and writes only what it is given: which files a
//! library keeps, and when, is `store`'s business.

mod build;
mod codes;
mod distance;
mod exact;
mod graph;
mod graph_file;
mod keyword;
mod params;
mod whiten;

use std::path::PathBuf;

pub use build::{build, extend};
pub use distance::{dot, dot_i8};
pub use exact::{exact_search, recall, synthetic, Neighbor};
pub use graph::FlatGraph;
pub use keyword::{KeywordIndex, PAPER_QUERY_TERMS};
pub use params::{HnswParams, DEFAULT_SEED};
pub use whiten::{Projected, Space, Whitening, FIT_SAMPLE, PAPER_POWER, SENTENCE_POWER};

/// Why an index operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// tantivy or the filesystem failed while building, extending, opening
    /// or searching a [`KeywordIndex`].
    #[error("{}: keyword index: {reason}", path.display())]
    Keyword {
        /// The keyword index's directory, or the file being linked or copied
        /// into it (`keyword index` for a failed search).
        path: PathBuf,
        /// tantivy's or the OS's message.
        reason: String,
    },
}
