//! Incremental updates: new rows appended, old rows marked dead, and
//! `compact` to drop the dead ones.
//!
//! An update writes generation `gen+1` like a full commit does, and is atomic
//! the same way (new names, synced, then the manifest). What it saves is the
//! work: the graph of the open library gets only the new rows inserted, the
//! keyword index gets only the new documents (its old segments are hard
//! links), and a removal writes nothing but the manifest, whose other entries
//! keep naming the files of earlier generations.

use std::fs::{self, File};
use std::io;

use super::files::{self, failpoint, io_err};
use super::papers;
use super::{
    changed, clear_generation, keyword_entries, read_manifest, remove_stale, write_flat,
    write_manifest, CommitSpec, Contents, Library, Manifest, StoreError, FORMAT_VERSION, MANIFEST,
};
use crate::corpus::Paper;
use crate::index::{self, KeywordIndex};

impl Library {
    /// Commits this library plus `added` as new rows (numbered from
    /// [`Library::len`]), with `dead` rows (old or new) marked dead. Fails,
    /// changing nothing, if another process committed since this one opened
    /// the library.
    pub fn update(
        &self,
        added: Contents,
        dead: &[usize],
        progress: &dyn Fn(&str),
    ) -> Result<Manifest, StoreError> {
        let dir = self.dir();
        added.check(self.manifest.dim)?;
        let total = self.len() + added.papers.len();
        if let Some(&bad) = dead.iter().find(|&&r| r >= total) {
            return Err(StoreError::Invalid(format!(
                "row {bad} to remove is past the {total} rows"
            )));
        }
        let _lock = files::lock(dir)?;
        let on_disk = read_manifest(dir)?;
        if on_disk.generation != self.manifest.generation {
            return Err(changed(
                dir,
                Some(self.manifest.generation),
                Some(on_disk.generation),
            ));
        }
        let generation = self.manifest.generation + 1;
        clear_generation(dir, generation);
        match self.write_update(generation, added, dead, progress) {
            Ok(manifest) => {
                failpoint("after-manifest");
                remove_stale(dir, &manifest, Some(&self.manifest));
                Ok(manifest)
            }
            Err(e) => {
                clear_generation(dir, generation);
                let _ = fs::remove_file(files::tmp_name(&dir.join(MANIFEST)));
                Err(e)
            }
        }
    }

    fn write_update(
        &self,
        generation: u64,
        added: Contents,
        dead: &[usize],
        progress: &dyn Fn(&str),
    ) -> Result<Manifest, StoreError> {
        let dir = self.dir();
        let m = &self.manifest;
        let mut files = m.files.clone();
        let (mut params, mut format_version) = (m.index, m.format_version);
        if !added.papers.is_empty() {
            params = index::own_graph(params);
            format_version = FORMAT_VERSION;
            progress("writing papers");
            let old = dir.join(&m.files.papers.name);
            let facts: Vec<papers::Facts> = (0..self.len())
                .map(|r| self.papers().facts(r))
                .chain(added.papers.iter().map(papers::Facts::of))
                .collect();
            // The old lines are copied byte for byte; the recorder notes
            // where they are again (a library from before rows files has none).
            let (papers, rows) = papers::write(dir, generation, &facts, |w| {
                io::copy(&mut File::open(&old)?, w)?;
                papers::write_lines(w, added.papers)
            })?;
            files.papers = papers;
            files.rows = Some(rows);
            failpoint("after-papers");
            progress("writing vectors");
            files.vectors = files::write_vectors(
                &dir.join(format!("vectors.{generation}.f32")),
                &[self.vectors().as_slice(), added.vectors],
                m.dim,
            )?;
            failpoint("after-vectors");

            progress("adding to the HNSW graph");
            let graph = index::extend(
                &*self.graph()?,
                self.vectors().as_slice(),
                added.vectors,
                m.dim,
                &params,
            );
            files.flat = Some(write_flat(dir, generation, &graph)?);
            // A format version 1 library's hnsw_rs graph is not carried on:
            // the flat graph is now the graph.
            (files.graph, files.graph_data) = (None, None);
            failpoint("after-graph");

            progress("adding to the keyword index");
            files.keyword_dir = format!("keyword.{generation}");
            let kdir = dir.join(&files.keyword_dir);
            fs::create_dir_all(&kdir).map_err(io_err(&kdir))?;
            KeywordIndex::extend(
                &dir.join(&m.files.keyword_dir),
                &kdir,
                self.len(),
                added.texts,
            )?;
            files.keyword = keyword_entries(&kdir)?;
            files::sync_dir(dir)?;
        }
        let mut all_dead: Vec<usize> = m.dead.iter().chain(dead).copied().collect();
        all_dead.sort_unstable();
        all_dead.dedup();
        write_manifest(
            dir,
            Manifest {
                generation,
                papers: self.len() + added.papers.len(),
                updated: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                files,
                index: params,
                format_version,
                dead: all_dead,
                checksum: 0,
                ..m.clone()
            },
        )
    }

    /// Rebuilds the library from its live rows alone (stored vectors, no
    /// embedding): a fresh graph and keyword index without the dead.
    pub fn compact(&self, progress: &dyn Fn(&str)) -> Result<Manifest, StoreError> {
        let m = &self.manifest;
        let rows: Vec<usize> = (0..self.len()).filter(|&r| self.is_live(r)).collect();
        let papers = rows
            .iter()
            .map(|&r| self.paper(r).map(|p| p.into_owned()))
            .collect::<Result<Vec<Paper>, _>>()?;
        let texts: Vec<String> = papers.iter().map(|p| m.text_template.render(p)).collect();
        let mut vectors = Vec::with_capacity(rows.len() * m.dim);
        for &r in &rows {
            vectors.extend_from_slice(self.vectors().row(r));
        }
        let spec = CommitSpec {
            model: &m.model,
            text_template: &m.text_template,
            index: m.index,
        };
        let contents = Contents {
            papers: &papers,
            texts: &texts,
            vectors: &vectors,
        };
        Library::commit_over(self.dir(), contents, &spec, Some(m.generation), progress)
    }
}
