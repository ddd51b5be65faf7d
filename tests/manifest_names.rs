//! A manifest may name files inside its own library folder only: a file name
//! with a path in it (`../x`, `/etc/passwd`) or a keyword_dir of `..` is
//! refused with an error naming manifest.json, before anything is opened.
//!
//! Each damaged manifest here carries a correct checksum (recomputed as
//! `read_manifest` does: crc32 of the manifest serialised with checksum 0),
//! so the refusal comes from the plain-name rule and not from the checksum.

mod common;

use std::path::Path;

use common::{ok, papersim, stderr};
use papersim::store::{self, Manifest, MANIFEST};

fn read(lib: &Path) -> Manifest {
    serde_json::from_str(&std::fs::read_to_string(lib.join(MANIFEST)).unwrap()).unwrap()
}

/// Writes `m` as the library's manifest with the checksum `read_manifest`
/// expects (or, `reseal` false, with whatever checksum `m` has).
fn write(lib: &Path, mut m: Manifest, reseal: bool) {
    if reseal {
        m.checksum = 0;
        m.checksum = crc32fast::hash(&serde_json::to_vec(&m).unwrap());
    }
    std::fs::write(lib.join(MANIFEST), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// What `papersim similar` and `papersim verify` say about the library
/// (both must fail).
fn cli_errors(lib: &Path, id: &str) -> [String; 2] {
    let dir = lib.to_str().unwrap();
    [
        papersim(&["similar", "--library", dir, id, "-k", "3"]),
        papersim(&["verify", "--library", dir]),
    ]
    .map(|o| {
        assert!(
            !o.status.success(),
            "accepted a library whose manifest names a file outside it"
        );
        stderr(&o) + &String::from_utf8_lossy(&o.stdout)
    })
}

#[test]
fn manifest_names_outside_the_library_are_refused_naming_manifest_json() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    // A six-paper library from the bundled HF Daily Papers sample.
    common::build_ok(&common::hf_daily(), &lib, &["--limit", "6"]);
    let original = read(&lib);
    // A file the bad names could reach, so a missing check would not merely
    // fail to find it.
    std::fs::write(tmp.path().join("x"), b"outside").unwrap();

    // Control: the manifest as the test rewrites and reseals it opens, so the
    // refusals below come from the names alone.
    let copy = tmp.path().join("control");
    common::copy_dir(&lib, &copy);
    write(&copy, original.clone(), true);
    store::read_manifest(&copy).expect("a resealed, unchanged manifest reads");
    let id = store::Library::open(&copy)
        .unwrap()
        .papers()
        .id(0)
        .unwrap()
        .to_string();
    ok(papersim(&[
        "similar",
        "--library",
        copy.to_str().unwrap(),
        &id,
        "-k",
        "3",
    ]));
    ok(papersim(&["verify", "--library", copy.to_str().unwrap()]));

    type Edit = fn(&mut Manifest);
    let cases: [(&str, Edit, &str); 8] = [
        (
            "vectors ../x",
            |m| m.files.vectors.name = "../x".into(),
            "file name",
        ),
        (
            "vectors /etc/passwd",
            |m| m.files.vectors.name = "/etc/passwd".into(),
            "file name",
        ),
        (
            "papers sub/dir",
            |m| m.files.papers.name = "sub/papers.jsonl".into(),
            "file name",
        ),
        ("flat ..", |m| m.files.flat.name = "..".into(), "file name"),
        (
            "rows empty",
            |m| m.files.rows.name = String::new(),
            "file name",
        ),
        (
            "papers backslash",
            |m| m.files.papers.name = "..\\x".into(),
            "file name",
        ),
        (
            "keyword_dir ..",
            |m| m.files.keyword_dir = "..".into(),
            "is not a plain name",
        ),
        (
            "keyword entry ../x",
            |m| m.files.keyword[0].name = "../x".into(),
            "file name",
        ),
    ];
    for (what, edit, expect) in cases {
        let copy = tmp.path().join("damaged");
        let _ = std::fs::remove_dir_all(&copy);
        common::copy_dir(&lib, &copy);
        let mut m = original.clone();
        edit(&mut m);
        write(&copy, m.clone(), true);

        // In process: the exact error.
        let e = store::read_manifest(&copy).expect_err(what).to_string();
        assert!(e.contains(MANIFEST), "{what}: {e}");
        assert!(e.contains("is not a plain name"), "{what}: {e}");
        assert!(e.contains(expect), "{what}: {e}");
        assert!(
            !e.contains("checksum"),
            "{what}: the checksum fired first: {e}"
        );
        let e = store::Library::open(&copy).err().expect(what).to_string();
        assert!(e.contains("is not a plain name"), "{what}: {e}");

        // Through the binary: an error naming manifest.json, no panic.
        for err in cli_errors(&copy, &id) {
            assert!(err.contains(MANIFEST), "{what}: {err}");
            assert!(err.contains("is not a plain name"), "{what}: {err}");
            assert!(!err.contains("panicked"), "{what}: {err}");
        }

        // The same edit without resealing is caught by the checksum: the
        // reseal above is what lets the name rule be reached.
        write(&copy, m, false);
        let e = store::read_manifest(&copy).expect_err(what).to_string();
        assert!(e.contains("checksum"), "{what} unsealed: {e}");
    }
}
