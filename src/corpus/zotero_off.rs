//! `--format zotero` in a build without the `zotero` feature: the format is
//! still recognised, so that the user is told how to get it.

use std::path::Path;

use super::{CorpusError, Event};

/// Whether `path` is a Zotero data folder (holds `zotero.sqlite`).
pub(crate) fn is_data_folder(path: &Path) -> bool {
    path.is_dir() && path.join("zotero.sqlite").is_file()
}

/// Always an error naming the missing feature.
pub(crate) fn read(path: &Path, _collections: &[String]) -> Result<Vec<Event>, CorpusError> {
    Err(CorpusError::Zotero {
        path: path.to_path_buf(),
        reason: "this papersim was built without the `zotero` feature (on by default); \
                 rebuild with it, or export the library from Zotero as CSV"
            .into(),
    })
}
