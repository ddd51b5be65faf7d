//! Opening (and verifying) a library whose files were replaced by arbitrary
//! bytes, then doing what a query does with whatever opened.
//!
//! A small valid library is committed once per process (six tiny papers with
//! fake unit vectors: no model needed). Each input then replaces one of its
//! files, `Library::open` and `store::verify` run on it, and the original
//! files are put back. When the library opens, the target reads a few papers
//! (`Library::paper`, which checks each line's crc32 from the rows file),
//! looks up their ids (`row_of`), searches the graph (`graph().search`,
//! with and without a filter), runs the exact scan, and loads the lazily
//! loaded keyword index (`keyword()`, a `Result`) and searches it when it
//! loads. Whatever comes back must be in range; nothing may panic.
//!
//! Input layout: byte 0 picks the file (`FILES`: manifest, papers JSONL,
//! vectors, keyword meta.json, graph, rows file, sentence vectors), byte 1 is flags, the rest is the new content. Flag bit 0
//! ("consistent") also rewrites the manifest's size, crc32 and seal (a sealed
//! file's footer) for that file and the manifest's own checksum, so that the parsers behind the checksums
//! (manifest fields, papers, vectors, and papersim's own binary formats:
//! `FlatGraph::from_bytes` for `graph.N.flat`, the rows parser for
//! `papers.N.rows`) see the bytes instead of the crc32 check stopping them;
//! for a replaced manifest it recomputes the checksum when the bytes parse as
//! a manifest. Flag bit 1, with bit 0 on a replaced manifest, also puts the
//! fixture's own keyword file list in it: tantivy names its files at random
//! in each process, so a committed manifest seed could never name them, and
//! nothing but this bit lets a mutated manifest open.
//!
//! Without bit 0 the input exercises the integrity checks themselves:
//! `Library::open` checks every file's size, the seals and the crc32 of the
//! vectors, graph and rows file, so same-size damage to the papers file or
//! the keyword index opens, and must then be caught where it is read (a
//! damaged line is an error, never another paper; the keyword index fails
//! to load, naming the file) and by `verify`.
//!
//! The keyword index is only fuzzed without the flag: behind a matching
//! crc32 its files go straight to tantivy, a third-party parser that
//! asserts; papersim's defence against damaged index files is the checksum,
//! which this target does exercise.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use papersim::corpus::{Paper, TextTemplate};
use papersim::embed::{ModelInfo, Pooling, Precision, SentenceMethod};
use papersim::index::{HnswParams, Space};
use papersim::store::{self, CommitSpec, Contents, Library, Manifest, SentenceVectors, MANIFEST};

const DIM: usize = 8;

#[derive(Clone, Copy, Debug)]
enum Which {
    Manifest,
    Papers,
    Vectors,
    KeywordMeta,
    Flat,
    Rows,
    Sentences,
}

// Append only: byte 0 of the committed seeds indexes this list.
const FILES: [Which; 7] = [
    Which::Manifest,
    Which::Papers,
    Which::Vectors,
    Which::KeywordMeta,
    Which::Flat,
    Which::Rows,
    Which::Sentences,
];

struct Fixture {
    _dir: tempfile::TempDir,
    lib: PathBuf,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
}

impl Fixture {
    /// The file's path relative to the library.
    fn rel(&self, which: Which) -> String {
        let f = &self.manifest.files;
        match which {
            Which::Manifest => MANIFEST.to_string(),
            Which::Papers => f.papers.name.clone(),
            Which::Vectors => f.vectors.name.clone(),
            Which::KeywordMeta => format!("{}/meta.json", f.keyword_dir),
            Which::Flat => f.flat.name.clone(),
            Which::Rows => f.rows.name.clone(),
            Which::Sentences => f
                .sentences
                .as_ref()
                .map_or_else(String::new, |e| e.name.clone()),
        }
    }
}

fn paper(i: usize) -> Paper {
    Paper {
        id: format!("2101.0000{i}"),
        title: format!("Paper number {i} about graphs"),
        abstract_text: format!("We study problem {i} with method {}.", i * 7),
        authors: vec![format!("Author {i}"), "B. Coauthor".into()],
        categories: vec!["cs.LG".into()],
        date: Some(format!("2021-01-0{}", i + 1)),
        url: None,
        ..Default::default()
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // In memory where there is /dev/shm: every run reopens the library.
        // scripts/fuzz.sh names a folder it removes afterwards (the fuzzer
        // exits without dropping this static).
        let base = std::env::var_os("PAPERSIM_FUZZ_TMP")
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_dir())
            .or_else(|| Some(std::path::PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("papersim-fuzz-lib")
            .tempdir_in(base)
            .unwrap_or_else(|e| panic!("fuzz harness: no temporary folder: {e}"));
        let lib = dir.path().join("lib");
        let papers: Vec<Paper> = (0..6).map(paper).collect();
        let template = TextTemplate::default();
        let texts: Vec<String> = papers.iter().map(|p| template.render(p)).collect();
        // One-hot-ish unit vectors: distinct, exactly unit length.
        let mut vectors = vec![0f32; papers.len() * DIM];
        for (i, row) in vectors.chunks_exact_mut(DIM).enumerate() {
            row[i % DIM] = 0.6;
            row[(i + 1) % DIM] = 0.8;
        }
        let model = ModelInfo {
            id: "fuzz/fake-model".into(),
            weights_sha256: "0".repeat(64),
            dim: DIM,
            pooling: Pooling::Mean,
            max_seq_length: 256,
            precision: Precision::F32,
            document_prompt: None,
        };
        let spec = CommitSpec {
            model: &model,
            text_template: &template,
            index: HnswParams::default(),
        };
        // Each paper's vector as its one sentence: the sentence file is
        // one of the files the fuzzer damages.
        let mut sentences = SentenceVectors::new(DIM, SentenceMethod::Contextual);
        for row in vectors.chunks_exact(DIM) {
            sentences.push_row(row);
        }
        // With a re-ranking space, so that its whitenings and norms are
        // damaged too (fitted on more vectors than the 6 papers, which are
        // fewer than the dimensions).
        let mut fit = vec![0f32; 16 * DIM];
        for (i, row) in fit.chunks_exact_mut(DIM).enumerate() {
            row[i % DIM] = 0.6;
            row[(i + 3) % DIM] = 0.8;
        }
        let space = Space::fit(&fit, &fit, DIM)
            .unwrap_or_else(|| panic!("fuzz harness: no space fitted"));
        sentences.set_space(Some(std::sync::Arc::new(space)), &vectors);
        let contents = Contents {
            papers: &papers,
            texts: &texts,
            vectors: &vectors,
            sentences: Some(&sentences),
        };
        let manifest = Library::commit(&lib, contents, &spec, &|_| {})
            .unwrap_or_else(|e| panic!("fuzz harness: commit: {e}"));
        Library::open(&lib).unwrap_or_else(|e| panic!("fuzz harness: fresh library: {e}"));
        let manifest_bytes = std::fs::read(lib.join(MANIFEST))
            .unwrap_or_else(|e| panic!("fuzz harness: read manifest: {e}"));
        let fixture = Fixture {
            _dir: dir,
            lib,
            manifest,
            manifest_bytes,
        };
        if let Some(out) = std::env::var_os("PAPERSIM_FUZZ_WRITE_SEEDS") {
            write_seeds(&fixture, Path::new(&out));
        }
        fixture
    })
}

/// One seed per file and flag: the real file's bytes, so the fuzzer starts
/// from valid content. Run once with the variable set to refresh the seeds.
fn write_seeds(fx: &Fixture, out: &Path) {
    let _ = std::fs::create_dir_all(out);
    for (i, which) in FILES.iter().enumerate() {
        let Ok(bytes) = std::fs::read(fx.lib.join(fx.rel(*which))) else {
            continue;
        };
        let (name, flags): (_, &[u8]) = match which {
            Which::Manifest => ("manifest-rows".to_string(), &[0, 1, 3]),
            _ => (format!("{which:?}").to_lowercase(), &[0, 1]),
        };
        for &flags in flags {
            let mut seed = vec![i as u8, flags];
            seed.extend_from_slice(&bytes);
            let name = format!("{name}-{flags}");
            let _ = std::fs::write(out.join(name), seed);
        }
    }
}

/// What `Manifest::compute_checksum` computes (it is private): crc32 of the
/// manifest serialised with `checksum` = 0.
fn checksum(m: &Manifest) -> u32 {
    let mut m = m.clone();
    m.checksum = 0;
    crc32fast::hash(&serde_json::to_vec(&m).unwrap_or_default())
}

fn write_manifest(lib: &Path, m: &Manifest) {
    let mut m = m.clone();
    m.checksum = checksum(&m);
    let text = serde_json::to_vec_pretty(&m).unwrap_or_else(|e| panic!("serialise: {e}"));
    std::fs::write(lib.join(MANIFEST), text).unwrap_or_else(|e| panic!("write manifest: {e}"));
}

/// What a query does with an open library: papers by row, rows by id, the
/// graph and exact searches, the lazily loaded keyword index. `trusted`: only `which` was replaced, behind an intact manifest;
/// `damaged`: and its bytes differ, so reading it must fail, naming `name`.
fn query(library: &Library, which: Which, trusted: bool, damaged: bool, name: &str) {
    let n = library.len();
    let dim = library.vectors().dim();
    let live = |r: usize| library.is_live(r);
    for r in (0..n.min(8)).chain([n]) {
        match library.paper(r) {
            Ok(p) => {
                assert!(r < n, "row {r} of {n} gave a paper");
                if trusted {
                    // A line is checked against its crc32: never another paper.
                    assert_eq!(*p, paper(r), "row {r} read back wrong");
                }
            }
            Err(e) => {
                let e = e.to_string();
                assert!(!e.is_empty());
                if trusted && r < n {
                    assert!(
                        matches!(which, Which::Papers) && e.contains(name),
                        "row {r} of intact papers: {e}"
                    );
                }
            }
        }
        if let Some(id) = library.papers().id(r) {
            assert!(r < n, "row {r} of {n} has an id");
            if library.is_live(r) {
                let found = library
                    .row_of(id)
                    .unwrap_or_else(|| panic!("live row {r}'s id {id:?} not found"));
                assert!(found < n && library.is_live(found));
                assert_eq!(library.papers().id(found), Some(id));
            }
        }
    }
    let _ = library.row_of("no such id");

    // The sentence vectors load lazily: an error, or one range per row
    // inside the file.
    match library.sentences() {
        Ok(Some(s)) => {
            assert_eq!(s.rows(), n, "sentence rows");
            for r in 0..n {
                let range = s.range(r);
                assert!(range.start <= range.end && range.end <= s.len());
            }
        }
        Ok(None) => assert!(!library.has_sentences()),
        Err(e) => {
            let e = e.to_string();
            assert!(!e.is_empty());
            if trusted {
                assert!(matches!(which, Which::Sentences), "intact sentences: {e}");
            }
        }
    }

    // The vectors may be forged (consistent flag): searches must still only
    // return rows of the library. A clean unit query, as `search` gives one.
    let mut unit = vec![0f32; dim];
    if let Some(x) = unit.first_mut() {
        *x = 1.0;
    }
    let vectors = library.vectors().as_slice();
    let in_range = |hits: &[papersim::index::Neighbor], k: usize| {
        assert!(hits.len() <= k, "{} hits for k = {k}", hits.len());
        assert!(hits.iter().all(|h| h.row < n), "a hit past row {n}");
    };
    let graph = library.graph();
    assert_eq!(graph.rows(), n);
    in_range(&graph.search(vectors, dim, &unit, 3, 16, None), 3);
    let kept = graph.search(vectors, dim, &unit, 3, 16, Some(&live));
    in_range(&kept, 3);
    assert!(kept.iter().all(|h| library.is_live(h.row)));
    if n > 0 {
        // The exact scan with a stored row, as `similar` does.
        let row = library.vectors().row(0).to_vec();
        let hits = papersim::index::exact_search(vectors, dim, &row, 3, &|_| true);
        in_range(&hits, 3);
    }

    match library.keyword() {
        Ok(keyword) => {
            assert!(
                !(damaged && matches!(which, Which::KeywordMeta)),
                "replaced {name} loaded"
            );
            if let Ok(hits) = keyword.search("graphs method", 3, &live) {
                in_range(&hits, 3);
            }
        }
        Err(e) => {
            let e = e.to_string();
            assert!(!e.is_empty());
            if trusted {
                assert!(
                    matches!(which, Which::KeywordMeta) && e.contains(name),
                    "keyword index: {e}"
                );
            }
        }
    }
}

fn run(fx: &Fixture, which: Which, flags: u8, content: &[u8]) {
    let consistent = flags & 1 == 1;
    let lib = &fx.lib;
    let rel = fx.rel(which);
    let target = lib.join(&rel);
    let original = match which {
        Which::Manifest => fx.manifest_bytes.clone(),
        _ => std::fs::read(&target).unwrap_or_else(|e| panic!("read {rel}: {e}")),
    };
    std::fs::write(&target, content).unwrap_or_else(|e| panic!("write {rel}: {e}"));
    if consistent {
        let mut m = fx.manifest.clone();
        let entry = match which {
            Which::Manifest => None,
            Which::Papers => Some(&mut m.files.papers),
            Which::Vectors => Some(&mut m.files.vectors),
            Which::Flat => Some(&mut m.files.flat),
            Which::Rows => Some(&mut m.files.rows),
            Which::Sentences => m.files.sentences.as_mut(),
            // See the module comment: the keyword index only behind a real
            // checksum.
            Which::KeywordMeta => None,
        };
        match (which, entry) {
            (Which::Manifest, _) => {
                if let Ok(mut parsed) = serde_json::from_slice::<Manifest>(content) {
                    if flags & 2 == 2 {
                        parsed.files.keyword = fx.manifest.files.keyword.clone();
                    }
                    write_manifest(lib, &parsed);
                }
            }
            (_, Some(entry)) => {
                entry.bytes = content.len() as u64;
                entry.crc32 = crc32fast::hash(content);
                // A sealed file's footer is recorded too (`FileEntry::seal`).
                if let (Some(seal), Some(tail)) = (entry.seal.as_mut(), content.last_chunk()) {
                    *seal = u32::from_le_bytes(*tail);
                }
                write_manifest(lib, &m);
            }
            (_, None) => {}
        }
    }

    let opened = Library::open(lib);
    let verified = store::verify(lib);
    // The manifest and every file but `which` are as committed.
    let trusted = !consistent && !matches!(which, Which::Manifest);
    let damaged = trusted && content != original.as_slice();
    let name = Path::new(&rel)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    match (&opened, &verified) {
        (Ok(library), Ok(report)) => {
            // Whatever opened must be usable and agree with its manifest.
            assert_eq!(library.len(), library.manifest().papers);
            assert_eq!(library.papers().len(), library.len());
            assert_eq!(library.vectors().rows(), library.len());
            assert_eq!(report.papers, library.len());
            query(library, which, trusted, damaged, &name);
        }
        (Err(e), Ok(report)) => {
            // verify must not pass a library that does not open.
            assert!(!report.ok, "open failed ({e}) but verify passed");
            assert!(!e.to_string().is_empty());
        }
        (Ok(_), Err(e)) => panic!("open succeeded but verify failed: {e}"),
        (Err(_), Err(_)) => {}
    }
    if damaged {
        // Damage behind an intact manifest is always caught, and named: by
        // open for the files it checks whole (and for any change of size),
        // otherwise by verify (and by `query`, where the file is read).
        match &opened {
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains(&name), "error does not name {rel}: {e}");
            }
            Ok(_) => {
                assert!(
                    matches!(which, Which::Papers | Which::KeywordMeta),
                    "replaced {rel} went unnoticed by open"
                );
                let report = verified
                    .as_ref()
                    .unwrap_or_else(|e| panic!("verify failed on an intact manifest: {e}"));
                assert!(!report.ok, "verify passed with {rel} replaced");
                assert!(
                    report
                        .checks
                        .iter()
                        .any(|c| c.problem.is_some() && c.file.contains(&name)),
                    "verify does not name {rel}: {:?}",
                    report.checks
                );
            }
        }
    }

    std::fs::write(&target, &original).unwrap_or_else(|e| panic!("restore {rel}: {e}"));
    if consistent && !matches!(which, Which::Manifest) {
        std::fs::write(lib.join(MANIFEST), &fx.manifest_bytes)
            .unwrap_or_else(|e| panic!("restore manifest: {e}"));
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let [pick, flags, content @ ..] = data else {
        return;
    };
    let which = FILES[usize::from(*pick) % FILES.len()];
    // Any panic is a bug: libfuzzer-sys's hook aborts on it, with the message.
    run(fx, which, *flags, content);
});
