//! Benchmarks behind `papersim bench`: embedding throughput ([`embed`](mod@embed)) and
//! the graph's build time, memory, recall and queries/s ([`index`]),
//! optionally against hnsw_rs's graph (feature `hnsw-rs`).

pub mod embed;
#[cfg(feature = "hnsw-rs")]
mod hnsw_rs;
pub mod index;

pub use self::embed::{abstracts, cpu_threads, default_corpus, embed, markdown, svg, EmbedBench};
