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

use super::commit::{self, changed, keyword_entries, write_graph, write_manifest};
use super::fsio::{self, failpoint, io_err};
use super::manifest::read_manifest;
use super::sentences::write_sentences;
use super::{papers, vectors, CommitSpec, Contents, Library, Manifest, StoreError};
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
        let m = self.manifest();
        added.check(m.dim)?;
        let total = self.len() + added.papers.len();
        if let Some(&bad) = dead.iter().find(|&&r| r >= total) {
            return Err(StoreError::Invalid(format!(
                "row {bad} to remove is past the {total} rows"
            )));
        }
        // Sentence vectors cover every row or none: rows added without them
        // to a library that has them would be rows `similar` cannot align.
        if self.has_sentences() && !added.papers.is_empty() && added.sentences.is_none() {
            return Err(StoreError::Invalid(format!(
                "{}: this library stores sentence vectors and the {} papers to add have none \
                 (shards embed papers, not sentences); add them with papersim add, which \
                 embeds their sentences, or merge into a library built with --no-sentences",
                dir.display(),
                added.papers.len()
            )));
        }
        let _lock = fsio::lock(dir)?;
        let on_disk = read_manifest(dir)?;
        if on_disk.generation != m.generation {
            return Err(changed(dir, Some(m.generation), Some(on_disk.generation)));
        }
        let generation = m.generation + 1;
        commit::finish(dir, generation, Some(m), || {
            self.write_update(generation, added, dead, progress)
        })
    }

    fn write_update(
        &self,
        generation: u64,
        added: Contents,
        dead: &[usize],
        progress: &dyn Fn(&str),
    ) -> Result<Manifest, StoreError> {
        let dir = self.dir();
        let m = self.manifest();
        let mut files = m.files.clone();
        if !added.papers.is_empty() {
            progress("writing papers");
            let old = dir.join(&m.files.papers.name);
            let facts: Vec<papers::Facts> = (0..self.len())
                .map(|r| self.papers().facts(r))
                .chain(added.papers.iter().map(papers::Facts::of))
                .collect();
            // The old lines are copied byte for byte; the recorder notes
            // where they are again.
            let (papers, rows) = papers::write(dir, generation, &facts, |w| {
                io::copy(&mut File::open(&old)?, w)?;
                papers::write_lines(w, added.papers)
            })?;
            files.papers = papers;
            files.rows = rows;
            failpoint("after-papers");
            progress("writing vectors");
            files.vectors = vectors::write_vectors(
                &dir.join(format!("vectors.{generation}.f32")),
                &[self.vectors().as_slice(), added.vectors],
                m.dim,
            )?;
            failpoint("after-vectors");
            // A library without sentence vectors stays without: added ones
            // are dropped rather than covering only some rows.
            if let (Some(old), Some(new)) = (self.sentences()?, added.sentences) {
                progress("writing sentence vectors");
                files.sentences = Some(write_sentences(
                    &dir.join(format!("sentences.{generation}.i8")),
                    &[old, new],
                    m.dim,
                )?);
                failpoint("after-sentences");
            }

            progress("adding to the HNSW graph");
            let graph = index::extend(
                self.graph(),
                self.vectors().as_slice(),
                added.vectors,
                m.dim,
                &m.index,
            );
            files.flat = write_graph(dir, generation, &graph)?;
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
            fsio::sync_dir(dir)?;
        }
        let mut all_dead: Vec<usize> = m.dead.iter().chain(dead).copied().collect();
        all_dead.sort_unstable();
        all_dead.dedup();
        write_manifest(
            dir,
            Manifest {
                generation,
                papers: self.len() + added.papers.len(),
                updated: commit::now(),
                files,
                dead: all_dead,
                checksum: 0,
                ..m.clone()
            },
        )
    }

    /// Rebuilds the library from its live rows alone (stored vectors, no
    /// embedding): a fresh graph and keyword index without the dead.
    pub fn compact(&self, progress: &dyn Fn(&str)) -> Result<Manifest, StoreError> {
        let m = self.manifest();
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
        let sentences = match self.sentences()? {
            Some(all) => {
                let mut kept = all.empty_like();
                for &r in &rows {
                    kept.push_from(all, r);
                }
                Some(kept)
            }
            None => None,
        };
        let spec = CommitSpec {
            model: &m.model,
            text_template: &m.text_template,
            index: m.index,
        };
        let contents = Contents {
            papers: &papers,
            texts: &texts,
            vectors: &vectors,
            sentences: sentences.as_ref(),
        };
        Library::commit_over(self.dir(), contents, &spec, Some(m.generation), progress)
    }
}
