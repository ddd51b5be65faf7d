//! HNSW construction and search parameters, as a library's manifest records
//! them.

use serde::{Deserialize, Serialize};

/// The seed of new graphs' levels unless another is given.
pub const DEFAULT_SEED: u64 = 0x5eed_0f9a_9e45_1200;

/// HNSW construction and search parameters; recorded in the library manifest
/// (field `index`), so their serialised form is part of the library format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node per layer.
    pub m: usize,
    /// Candidates kept while finding each new row's links: higher builds a
    /// better graph (higher recall) more slowly.
    pub ef_construction: usize,
    /// Default search breadth (raised to k when k is larger).
    pub ef_search: usize,
    /// Draws each row's level (see `build`), so that a graph can be grown
    /// with the levels its first rows were given.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            seed: DEFAULT_SEED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest checksum is computed over its re-serialisation: the
    /// params must come back as the very bytes they were read from.
    #[test]
    fn params_serialise_as_manifests_record_them() {
        let json = r#"{"m":16,"ef_construction":200,"ef_search":64,"seed":6840140565800358400}"#;
        let p: HnswParams = serde_json::from_str(json).unwrap();
        assert_eq!(p, HnswParams::default());
        assert_eq!(serde_json::to_string(&p).unwrap(), json);
        // Format version 1 params had no seed: not read as format 2.
        assert!(serde_json::from_str::<HnswParams>(
            r#"{"m":16,"ef_construction":200,"ef_search":64}"#
        )
        .is_err());
    }
}
