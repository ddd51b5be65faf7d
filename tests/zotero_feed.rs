//! Zotero libraries read in place (two schema versions, a locked database,
//! `add` after a change, collections) and `papersim feed` on recorded arXiv
//! listings (every dialect, every output format, a listing cut short, an
//! OAI-PMH error, OAI-PMH paging over HTTP), through the real binary.

#![cfg(feature = "zotero")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use common::{build_json, json, ok, papersim, s, stderr};
use rusqlite::Connection;
use serde_json::Value;

fn fixture(version: &str) -> PathBuf {
    common::root().join("tests/fixtures/zotero").join(version)
}

/// A private copy of a fixture's data folder (tests change or lock it).
fn copy_of(version: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("Zotero");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(
        fixture(version).join("zotero.sqlite"),
        folder.join("zotero.sqlite"),
    )
    .unwrap();
    (dir, folder)
}

fn stored_papers(lib: &Path) -> Vec<Value> {
    let path = std::fs::read_dir(lib)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .max()
        .unwrap();
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The Zotero 7 fixture built once for the feed tests.
fn zotero_library() -> Option<&'static Path> {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    common::library_once(&LIB, &fixture("zotero7"), &[])
}

fn listing(name: &str) -> Option<PathBuf> {
    common::shared(&format!("data/arxiv-listings/{name}"))
}

#[test]
fn both_schema_versions_read_the_same_papers() {
    if common::model_dir().is_none() {
        return;
    }
    let mut seen = Vec::new();
    for version in ["zotero4", "zotero7"] {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        let summary = build_json(&fixture(version), &lib, &[]);
        assert_eq!(summary["format"], "zotero", "{version}");
        let papers = stored_papers(&lib);
        let ids: Vec<&str> = papers.iter().filter_map(|p| p["id"].as_str()).collect();
        // Trashed item, attachment, note and feed item are left out.
        assert_eq!(
            ids,
            ["AAAA1111", "BBBB2222", "CCCC3333", "DDDD4444"],
            "{version}"
        );
        let dpr = &papers[0];
        assert_eq!(
            dpr["authors"],
            serde_json::json!(["Vladimir Karpukhin", "Barlas Oguz"])
        );
        assert_eq!(dpr["date"], "2020");
        assert_eq!(dpr["doi"], "10.18653/v1/2020.emnlp-main.550");
        let colbert = &papers[1];
        assert_eq!(colbert["eprint"], "2004.12832");
        assert_eq!(colbert["date"], "2020-04");
        assert_eq!(
            colbert["collections"],
            serde_json::json!(["Dense", "Retrieval"])
        );
        let transformer = &papers[2];
        assert_eq!(transformer["doi"], "10.5555/3295222.3295349");
        assert_eq!(transformer["authors"][1], "Google Brain");
        seen.push(papers);
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn builds_while_another_connection_holds_zoteros_lock() {
    if common::model_dir().is_none() {
        return;
    }
    let (dir, folder) = copy_of("zotero7");
    let db = folder.join("zotero.sqlite");
    // What Zotero does while it runs: an exclusive lock, held.
    let holder = Connection::open(&db).unwrap();
    holder
        .execute_batch(
            "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; UPDATE items SET synced = 1;",
        )
        .unwrap();
    let other =
        Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let plain = other.query_row("SELECT count(*) FROM items", [], |r| r.get::<_, i64>(0));
    assert!(plain.is_err(), "the lock should stop an ordinary reader");
    let before = std::fs::read(&db).unwrap();
    let lib = dir.path().join("lib");
    let summary = build_json(&db, &lib, &[]);
    assert_eq!(summary["papers"], 4);
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "zotero.sqlite was written to"
    );
    holder.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn changes_still_in_the_write_ahead_log_are_read_from_a_copy() {
    if common::model_dir().is_none() {
        return;
    }
    let (dir, folder) = copy_of("zotero7");
    let db = folder.join("zotero.sqlite");
    // A writer in WAL mode that has not checkpointed: the new item is only
    // in zotero.sqlite-wal, which an immutable open would not see.
    let writer = Connection::open(&db).unwrap();
    writer
        .execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             INSERT INTO items (itemID, itemTypeID, libraryID, key)
               VALUES (500, (SELECT itemTypeID FROM itemTypes WHERE typeName = 'journalArticle'), 1, 'WALL0001');
             INSERT INTO itemDataValues VALUES (901, 'A paper that is only in the log');
             INSERT INTO itemDataValues VALUES (902, 'Its abstract is not in the main file yet.');
             INSERT INTO itemData VALUES (500, (SELECT fieldID FROM fields WHERE fieldName = 'title'), 901);
             INSERT INTO itemData VALUES (500, (SELECT fieldID FROM fields WHERE fieldName = 'abstractNote'), 902);",
        )
        .unwrap();
    let wal = folder.join("zotero.sqlite-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    let (main_before, wal_before) = (std::fs::read(&db).unwrap(), std::fs::read(&wal).unwrap());
    let lib = dir.path().join("lib");
    assert_eq!(build_json(&folder, &lib, &[])["papers"], 5);
    assert!(stored_papers(&lib).iter().any(|p| p["id"] == "WALL0001"));
    assert_eq!(std::fs::read(&db).unwrap(), main_before);
    assert_eq!(std::fs::read(&wal).unwrap(), wal_before);
    drop(writer);
}

#[test]
fn add_embeds_only_what_changed_and_reports_removed_items() {
    if common::model_dir().is_none() {
        return;
    }
    let (dir, folder) = copy_of("zotero7");
    let lib = dir.path().join("lib");
    build_json(&folder, &lib, &[]);
    {
        let db = Connection::open(folder.join("zotero.sqlite")).unwrap();
        db.execute_batch(
            "INSERT INTO itemDataValues VALUES (900, 'An abstract edited in Zotero about late interaction.');
             UPDATE itemData SET valueID = 900 WHERE itemID = 6
               AND fieldID = (SELECT fieldID FROM fields WHERE fieldName = 'abstractNote');
             INSERT INTO deletedItems (itemID) VALUES (12);",
        )
        .unwrap();
    }
    let report = json(&ok(papersim(&[
        "add",
        "--corpus",
        s(&folder),
        "--library",
        s(&lib),
        "--json",
    ])));
    assert_eq!(report["replaced"], 1, "{report}");
    assert_eq!(report["new"], 0);
    assert_eq!(report["unchanged"], 2);
    assert_eq!(
        report["embed"]["docs"], 1,
        "only the edited item is embedded: {report}"
    );
    assert_eq!(report["absent"], serde_json::json!(["DDDD4444"]));
}

#[test]
fn collections_take_their_sub_collections() {
    if common::model_dir().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    build_json(&fixture("zotero7"), &lib, &["--collection", "Retrieval"]);
    let ids: Vec<String> = stored_papers(&lib)
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["AAAA1111", "BBBB2222"]);
    let o = common::build(
        &fixture("zotero7"),
        &dir.path().join("x"),
        &["--collection", "Nope"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("Dense, Models, Retrieval"),
        "{}",
        stderr(&o)
    );
}

fn feed_json(lib: &Path, listing: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "feed",
        "--library",
        s(lib),
        "--listing",
        listing,
        "--json",
        "-k",
        "30",
    ];
    args.extend_from_slice(extra);
    json(&ok(papersim(&args)))
}

fn hit_ids(feed: &Value) -> Vec<String> {
    feed["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["paper"]["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_listing_dialect_ranks_the_same_thirty_papers() {
    let Some(lib) = zotero_library() else { return };
    let mut rankings = Vec::new();
    for name in [
        "api-atom.xml",
        "oai-arxivraw.xml",
        "oai-arxiv.xml",
        "rss.xml",
    ] {
        let Some(path) = listing(name) else { return };
        let feed = feed_json(lib, s(&path), &[]);
        assert_eq!(feed["ranked"], 30, "{name}");
        assert_eq!(feed["profile"], 4);
        let first = &feed["hits"][0];
        assert!(first["because"]["id"].is_string(), "{name}: {first}");
        assert!(first["because"]["sentence"].is_string(), "{name}: {first}");
        rankings.push((name, hit_ids(&feed)));
    }
    // The same papers and texts (abstracts as arXiv serves them): the same order.
    for (name, ids) in &rankings[1..] {
        assert_eq!(
            ids, &rankings[0].1,
            "{name} ranks differently from the Atom feed"
        );
    }
}

#[test]
fn every_output_format_and_profile_choice() {
    let Some(lib) = zotero_library() else { return };
    let Some(path) = listing("api-atom.xml") else {
        return;
    };
    for (format, marker) in [
        ("table", "because of:"),
        ("markdown", "1. **["),
        ("html", "<!DOCTYPE html>"),
        ("json", "\"hits\""),
    ] {
        let o = ok(papersim(&[
            "feed",
            "--library",
            s(lib),
            "--listing",
            s(&path),
            "--format",
            format,
            "-k",
            "5",
        ]));
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(out.contains(marker), "{format}:\n{out}");
    }
    let by_collection = feed_json(lib, s(&path), &["--collection", "Dense"]);
    assert_eq!(by_collection["profile"], 1);
    assert_eq!(by_collection["hits"][0]["because"]["id"], "BBBB2222");
    let by_seed = feed_json(lib, s(&path), &["--seed", "CCCC3333"]);
    assert_eq!(by_seed["profile"], 1);
    // Every paper of the Atom feed was published on 2026-06-30.
    let o = papersim(&[
        "feed",
        "--library",
        s(lib),
        "--listing",
        s(&path),
        "--since",
        "2026-07-01",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "nothing newer: exit 1");
    assert_eq!(json(&o)["older"], 30);
}

#[test]
fn a_listing_cut_short_or_an_oai_error_prints_nothing() {
    let Some(lib) = zotero_library() else { return };
    for (name, expected) in [
        ("api-atom-truncated.xml", "cut short"),
        ("oai-error.xml", "badResumptionToken"),
    ] {
        let Some(path) = listing(name) else { return };
        let o = papersim(&["feed", "--library", s(lib), "--listing", s(&path)]);
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(o.stdout.is_empty(), "{name}: partial output");
        let err = stderr(&o);
        assert!(err.contains(expected), "{name}: {err}");
        assert!(
            err.contains(&format!("{}", path.display())),
            "{name}: {err}"
        );
    }
}

/// Serves `pages` in turn over HTTP on a local port, recording each
/// request line; returns the base URL and the log.
fn serve(pages: Vec<Vec<u8>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/oai", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&log);
    std::thread::spawn(move || {
        for (stream, body) in listener.incoming().zip(pages) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            seen.lock().unwrap().push(line.trim().to_string());
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header.trim().is_empty() {
                    break;
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        }
    });
    (url, log)
}

fn curl_present() -> bool {
    let found = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        eprintln!("SKIPPED: no curl on this machine (feed downloads listings with it)");
    }
    found
}

#[test]
fn oai_pages_are_followed_and_a_failing_page_leaves_no_output() {
    let Some(lib) = zotero_library() else { return };
    let (Some(first), Some(last), Some(error)) = (
        listing("oai-arxivraw.xml"),
        listing("oai-arxiv.xml"),
        listing("oai-error.xml"),
    ) else {
        return;
    };
    if !curl_present() {
        return;
    }
    let read = |p: &PathBuf| std::fs::read(p).unwrap();
    // Two pages: the first carries a resumption token, the last an empty one.
    let (url, log) = serve(vec![read(&first), read(&last)]);
    let start = format!("{url}?verb=ListRecords&metadataPrefix=arXivRaw&set=cs");
    let o = ok(papersim(&[
        "feed",
        "--library",
        s(lib),
        "--listing",
        &start,
        "--json",
    ]));
    let feed = json(&o);
    // Both pages hold the same 30 papers: the second page's are duplicates.
    assert_eq!(feed["ranked"], 30);
    assert!(stderr(&o).contains("duplicate id"), "{}", stderr(&o));
    let requests = log.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[1]
            .contains("resumptionToken=verb%253DListRecords%2526metadataPrefix%253DarXivRaw"),
        "{requests:?}"
    );
    // The second page is an OAI-PMH error: nothing printed, exit 2.
    let (url, _) = serve(vec![read(&first), read(&error)]);
    let o = papersim(&[
        "feed",
        "--library",
        s(lib),
        "--listing",
        &format!("{url}?verb=ListRecords"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("badResumptionToken"), "{}", stderr(&o));
}
