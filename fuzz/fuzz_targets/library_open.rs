//! Opening (and verifying) a library whose files were replaced by arbitrary
//! bytes.
//!
//! A small valid library is committed once per process (six tiny papers with
//! fake unit vectors: no model needed). Each input then replaces one of its
//! files, `Library::open` and `store::verify` run on it, and the original
//! files are put back.
//!
//! Input layout: byte 0 picks the file (`FILES`), byte 1 is flags, the rest
//! is the new content. Flag bit 0 ("consistent") also rewrites the manifest's
//! size and crc32 for that file and the manifest's own checksum, so that the
//! parsers behind the checksums (manifest fields, papers, vectors) see the
//! bytes instead of the crc32 check stopping them; for a replaced manifest it
//! recomputes the checksum when the bytes parse as a manifest. Without the
//! flag the input exercises the integrity checks themselves.
//!
//! The HNSW graph files and the keyword index are only fuzzed without the
//! flag. Behind a matching crc32 they go straight to hnsw_rs and tantivy,
//! third-party parsers that assert, and hnsw_rs allocates whatever length a
//! dump claims (`vec![0; len]`); papersim's defence against damaged index
//! files is the checksum, which this target does exercise. (A graph file
//! forged to match its checksum is out of scope: see the README's note.)
#![no_main]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use papersim::corpus::{Paper, TextTemplate};
use papersim::embed::{ModelInfo, Pooling};
use papersim::index::HnswParams;
use papersim::store::{self, CommitSpec, Contents, Library, Manifest, MANIFEST};

const DIM: usize = 8;

#[derive(Clone, Copy, Debug)]
enum Which {
    Manifest,
    Papers,
    Vectors,
    Graph,
    GraphData,
    KeywordMeta,
}

const FILES: [Which; 6] = [
    Which::Manifest,
    Which::Papers,
    Which::Vectors,
    Which::Graph,
    Which::GraphData,
    Which::KeywordMeta,
];

struct Fixture {
    _dir: tempfile::TempDir,
    lib: PathBuf,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
}

impl Fixture {
    fn rel(&self, which: Which) -> String {
        let f = &self.manifest.files;
        match which {
            Which::Manifest => MANIFEST.to_string(),
            Which::Papers => f.papers.name.clone(),
            Which::Vectors => f.vectors.name.clone(),
            Which::Graph => f.graph.name.clone(),
            Which::GraphData => f.graph_data.name.clone(),
            Which::KeywordMeta => format!("{}/meta.json", f.keyword_dir),
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
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let base = Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::Builder::new()
                .prefix("papersim-fuzz-lib")
                .tempdir_in(base)
        } else {
            tempfile::Builder::new()
                .prefix("papersim-fuzz-lib")
                .tempdir()
        }
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
        };
        let spec = CommitSpec {
            model: &model,
            text_template: &template,
            index: HnswParams::default(),
        };
        let contents = Contents {
            papers: &papers,
            texts: &texts,
            vectors: &vectors,
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
        for flags in [0u8, 1] {
            let mut seed = vec![i as u8, flags];
            seed.extend_from_slice(&bytes);
            let name = format!("{which:?}-{flags}").to_lowercase();
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

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn run(fx: &Fixture, which: Which, consistent: bool, content: &[u8]) {
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
            // See the module comment: index files only behind a real checksum.
            Which::Graph | Which::GraphData | Which::KeywordMeta => None,
        };
        match (which, entry) {
            (Which::Manifest, _) => {
                if let Ok(parsed) = serde_json::from_slice::<Manifest>(content) {
                    write_manifest(lib, &parsed);
                }
            }
            (_, Some(entry)) => {
                entry.bytes = content.len() as u64;
                entry.crc32 = crc32fast::hash(content);
                write_manifest(lib, &m);
            }
            (_, None) => {}
        }
    }

    let opened = Library::open(lib);
    let verified = store::verify(lib);
    match (&opened, &verified) {
        (Ok(library), Ok(report)) => {
            // Whatever opened must be usable and agree with its manifest.
            assert_eq!(library.len(), library.manifest().papers);
            assert_eq!(library.vectors().rows(), library.len());
            if let Some(p) = library.papers().first() {
                assert!(library.row_of(&p.id).is_some());
                // The graph still holds the original vectors, so it is
                // searched with a clean unit query (as `search` gives it);
                // the exact scan with a stored row, as `similar` does.
                let mut unit = vec![0f32; DIM];
                unit[0] = 1.0;
                let _ = library.index().search(&unit, 3, None);
                let row = library.vectors().row(0).to_vec();
                let _ = papersim::index::exact_search(
                    library.vectors().as_slice(),
                    library.vectors().dim(),
                    &row,
                    3,
                    &|_| true,
                );
            }
            assert_eq!(report.papers, library.len());
        }
        (Err(e), Ok(report)) => {
            // verify must not pass a library that does not open.
            assert!(!report.ok, "open failed ({e}) but verify passed");
            assert!(!e.to_string().is_empty());
        }
        (Ok(_), Err(e)) => panic!("open succeeded but verify failed: {e}"),
        (Err(_), Err(_)) => {}
    }
    if !consistent && !matches!(which, Which::Manifest) && content != original.as_slice() {
        // Damage behind an intact manifest is always caught, and named.
        let e = match opened {
            Ok(_) => panic!("replaced {rel} went unnoticed"),
            Err(e) => e.to_string(),
        };
        let name = Path::new(&rel)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        assert!(e.contains(name), "error does not name {rel}: {e}");
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
    let consistent = flags & 1 == 1;
    // hnsw_rs panics on malformed dumps and HnswIndex::load catches that
    // with catch_unwind; libfuzzer-sys's hook would abort on the caught panic
    // too. So this target swaps in a hook that only records the message, and
    // aborts itself when a panic escapes papersim, which is the real bug.
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
        }))
    });
    let outcome = std::panic::catch_unwind(|| run(fx, which, consistent, content));
    if outcome.is_err() {
        let msg = PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
        eprintln!("panic escaped papersim ({which:?}, consistent={consistent}): {msg}");
        std::process::abort();
    }
});
