//! `shard.json`: what a finished shard holds and how it was made, and the
//! checks that tie the shards of one build together.

use super::*;

/// Which corpus a shard was cut from, and how it was read: every shard of
/// one build records the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusSource {
    /// The corpus file as given to the build.
    pub path: String,
    /// Hex sha256 of the file's bytes (compressed, if it is).
    pub sha256: String,
    /// The format it was read as.
    pub format: String,
    /// `--limit`: only the first this many good papers were sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Good papers read (after `limit`), in all shards together.
    pub papers: usize,
    /// Bad records the reader skipped, in all shards together.
    pub bad_records: usize,
}

/// The two data files of a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFiles {
    /// `papers.bin`.
    pub papers: FileEntry,
    /// `vectors.bin`.
    pub vectors: FileEntry,
}

/// `shard.json`: what a finished shard holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// K and N.
    pub shard: ShardSpec,
    /// The model that embedded the papers (id, weights sha256, dim, precision).
    pub model: ModelInfo,
    /// How a paper became the embedded text.
    pub text_template: TextTemplate,
    /// The corpus the shard was cut from.
    pub corpus: CorpusSource,
    /// Papers (and vectors) in this shard.
    pub papers: usize,
    /// Papers of this shard left out: the model gave a zero or NaN vector.
    pub degenerate: usize,
    /// The files, with size and crc32.
    pub files: ShardFiles,
    /// When it was finished, RFC 3339.
    pub created: String,
}

impl ShardManifest {
    /// Why `other` cannot be merged with this shard, if it cannot.
    pub(super) fn differs(&self, other: &ShardManifest) -> Option<String> {
        let (a, b) = (self, other);
        if a.shard.count != b.shard.count {
            return Some(format!(
                "it is one of {} shards, not {}",
                b.shard.count, a.shard.count
            ));
        }
        if a.model.weights_sha256 != b.model.weights_sha256 || a.model.dim != b.model.dim {
            return Some(format!(
                "it was embedded by model {} (weights sha256 {}), not {} ({})",
                b.model.id, b.model.weights_sha256, a.model.id, a.model.weights_sha256
            ));
        }
        if !same_model(&a.model, &b.model) {
            return Some(format!(
                "it was embedded at precision {:?} ({:?} pooling, {} tokens), not {:?} ({:?}, {})",
                b.model.precision,
                b.model.pooling,
                b.model.max_seq_length,
                a.model.precision,
                a.model.pooling,
                a.model.max_seq_length
            ));
        }
        if a.text_template != b.text_template {
            return Some(format!(
                "its text template is {:?}, not {:?}",
                b.text_template.as_str(),
                a.text_template.as_str()
            ));
        }
        let (ca, cb) = (&a.corpus, &b.corpus);
        if ca.sha256 != cb.sha256 || ca.limit != cb.limit || ca.format != cb.format {
            return Some(format!(
                "it was cut from another corpus ({} sha256 {}, limit {:?}, format {})",
                cb.path, cb.sha256, cb.limit, cb.format
            ));
        }
        None
    }
}

/// One model at one precision with one document prompt: everything but how
/// the user named it.
pub(super) fn same_model(a: &ModelInfo, b: &ModelInfo) -> bool {
    a.weights_sha256 == b.weights_sha256
        && a.dim == b.dim
        && a.precision == b.precision
        && a.pooling == b.pooling
        && a.max_seq_length == b.max_seq_length
        && a.document_prompt == b.document_prompt
}

/// Reads and checks `dir/shard.json` (format and version; not the files).
pub fn read_shard_manifest(dir: &Path) -> Result<ShardManifest, ShardError> {
    let path = dir.join(SHARD_MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ShardError::NotAShard {
                path: dir.to_path_buf(),
            })
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let damaged = |reason: String| ShardError::Damaged {
        path: path.clone(),
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| damaged(format!("not JSON: {e}")))?;
    if v["format"] != FORMAT_NAME {
        return Err(damaged(format!(
            "format is {}, not {FORMAT_NAME:?}",
            v["format"]
        )));
    }
    if v["format_version"] != FORMAT_VERSION {
        return Err(damaged(format!(
            "format version {} (this papersim reads {FORMAT_VERSION}); rebuild the shard with this papersim",
            v["format_version"]
        )));
    }
    serde_json::from_value(v).map_err(|e| damaged(e.to_string()))
}
