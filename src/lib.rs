//! papersim: semantic similarity for scientific papers on local embeddings.
//!
//! The data flows through one module per stage:
//! [`corpus`] (read papers) → [`embed`] (text → unit vectors) →
//! [`store`] (a library on disk) → [`index`] (nearest neighbours) →
//! [`query`] (search, similar, related) → [`report`] (tables, markdown,
//! BibTeX, CSV). [`eval`] scores retrieval quality. [`pipeline`] strings the first stages
//! together for `papersim build`;
//! [`shard`] splits a build over a cluster's array tasks and merges the shards.
//! [`serve`] answers the same queries over HTTP. [`bench`](mod@bench) measures embedding
//! and the graph. [`format`](mod@format) is the sealed binary file shared by the store's
//! and the index's files.
//! The command-line binary (`src/main.rs`) is only flags and glue.

#![warn(missing_docs)]

pub mod bench;
pub mod corpus;
pub mod embed;
pub mod eval;
pub mod format;
pub mod index;
pub mod pipeline;
pub mod query;
pub mod report;
#[cfg(feature = "serve")]
pub mod serve;
pub mod shard;
pub mod store;
pub mod threads;
