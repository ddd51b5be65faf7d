//! A Zotero library read in place from its `zotero.sqlite`.
//!
//! Zotero keeps its database open with an exclusive lock while it runs, so
//! an ordinary read-only open fails with "database is locked". The file is
//! opened with SQLite's `immutable=1` (no locks taken, nothing written, not
//! even a journal); when that fails, or when a write-ahead log beside the
//! file holds changes an immutable open would not see, the database (and its
//! log) is copied to a temporary folder and the copy is read.
//!
//! Fields are looked up by name (`fields.fieldName`), never by id: ids
//! differ between Zotero versions. Both creator layouts are read: Zotero 4's
//! `creators` → `creatorData`, and Zotero 5's names in `creators`.
//! Attachments, notes, annotations, items in the trash and feed libraries'
//! items are left out. Each paper's id is its Zotero item key (prefixed by
//! the library id outside the user's own library), stable across edits, so
//! `add` sees an edited item as changed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::fields::{
    arxiv_abs_url, clean_abstract, ensure_text, is_arxiv_id, normalize_doi, normalize_whitespace,
    strip_version,
};
use super::{CorpusError, Event, Paper};

/// The database file's name in a Zotero data folder.
pub const DATABASE: &str = "zotero.sqlite";

/// Item types that are not papers.
const NOT_PAPERS: [&str; 3] = ["attachment", "note", "annotation"];

/// The database inside a data folder, or the path itself.
pub(crate) fn database_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(DATABASE)
    } else {
        path.to_path_buf()
    }
}

/// Whether `path` is a Zotero data folder (holds `zotero.sqlite`).
pub(crate) fn is_data_folder(path: &Path) -> bool {
    path.is_dir() && path.join(DATABASE).is_file()
}

fn failed(path: &Path, reason: impl std::fmt::Display) -> CorpusError {
    CorpusError::Zotero {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A `file:` URI for `path` with SQLite's reserved characters escaped.
fn file_uri(path: &Path, query: &str) -> String {
    let mut uri = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        match b {
            b'%' | b'?' | b'#' => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(b as char),
        }
    }
    uri.push('?');
    uri.push_str(query);
    uri
}

/// A temporary copy of the database (and its write-ahead log), removed on drop.
struct TempCopy {
    dir: PathBuf,
}

impl TempCopy {
    fn new(db: &Path) -> std::io::Result<(TempCopy, PathBuf)> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("papersim-zotero-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let copy = TempCopy { dir };
        let target = copy.dir.join(DATABASE);
        std::fs::copy(db, &target)?;
        let wal = wal_path(db);
        if wal.is_file() {
            std::fs::copy(&wal, wal_path(&target))?;
        }
        Ok((copy, target))
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        // Best effort: a leftover folder in the temp dir harms nothing.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Reads every paper of the Zotero database at `path` (a `zotero.sqlite`
/// or the folder holding it); with `collections`, only the papers filed
/// in one of them or in their sub-collections.
pub(crate) fn read(path: &Path, collections: &[String]) -> Result<Vec<Event>, CorpusError> {
    let db = database_path(path);
    if !db.is_file() {
        return Err(CorpusError::Io {
            path: db,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no zotero.sqlite here (Zotero's data folder is ~/Zotero by default)",
            ),
        });
    }
    // An immutable open does not see a write-ahead log's changes.
    let wal_has_changes = std::fs::metadata(wal_path(&db)).is_ok_and(|m| m.len() > 0);
    if !wal_has_changes {
        let immutable = Connection::open_with_flags(
            file_uri(&db, "immutable=1"),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        );
        if let Ok(conn) = immutable {
            if let Ok(events) = read_items(&conn, collections) {
                return Ok(events);
            }
        }
    }
    let (_copy, target) =
        TempCopy::new(&db).map_err(|e| failed(&db, format!("cannot copy it to read: {e}")))?;
    // Read-write on the private copy, so that SQLite can replay its log.
    let conn = Connection::open(&target).map_err(|e| failed(&db, e))?;
    read_items(&conn, collections)
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One Zotero item on its way to a paper.
#[derive(Default)]
struct Item {
    id: String,
    fields: HashMap<String, String>,
    creators: Vec<(String, bool)>,
    collections: Vec<i64>,
}

fn read_items(conn: &Connection, wanted: &[String]) -> Result<Vec<Event>, CorpusError> {
    let path = conn.path().map(PathBuf::from).unwrap_or_default();
    read_items_sql(conn, wanted).map_err(|e| match e {
        ReadError::Sql(e) => failed(&path, format!("not a Zotero database I can read: {e}")),
        ReadError::Corpus(e) => e,
    })
}

enum ReadError {
    Sql(rusqlite::Error),
    Corpus(CorpusError),
}

impl From<rusqlite::Error> for ReadError {
    fn from(e: rusqlite::Error) -> Self {
        ReadError::Sql(e)
    }
}

fn read_items_sql(conn: &Connection, wanted: &[String]) -> Result<Vec<Event>, ReadError> {
    // Feed libraries (Zotero 5's `libraries.type`; Zotero 4 had none).
    let library_type = if has_column(conn, "libraries", "type")? {
        "type"
    } else {
        "libraryType"
    };
    let mut libraries: HashMap<i64, String> = HashMap::new();
    {
        let mut stmt = conn.prepare(&format!("SELECT libraryID, {library_type} FROM libraries"))?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (id, kind) = row?;
            libraries.insert(id, kind);
        }
    }
    let mut excluded: HashSet<i64> = HashSet::new();
    for table in [
        "deletedItems",
        "itemAttachments",
        "itemNotes",
        "itemAnnotations",
        "feedItems",
    ] {
        if table_exists(conn, table)? {
            let mut stmt = conn.prepare(&format!("SELECT itemID FROM {table}"))?;
            for id in stmt.query_map([], |r| r.get::<_, i64>(0))? {
                excluded.insert(id?);
            }
        }
    }

    let mut items: Vec<(i64, Item)> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT i.itemID, i.key, i.libraryID, t.typeName FROM items i \
             JOIN itemTypes t ON t.itemTypeID = i.itemTypeID ORDER BY i.itemID",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        // The user's own library: the lowest id of type `user`.
        let user = libraries
            .iter()
            .filter(|(_, k)| k.as_str() == "user")
            .map(|(&id, _)| id)
            .min();
        for row in rows {
            let (item, key, library, type_name) = row?;
            let library_kind = library.and_then(|l| libraries.get(&l)).map(String::as_str);
            if excluded.contains(&item)
                || NOT_PAPERS.contains(&type_name.as_str())
                || library_kind == Some("feed")
            {
                continue;
            }
            let id = match library {
                Some(l) if Some(l) != user && library.is_some() && user.is_some() => {
                    format!("{l}/{key}")
                }
                _ => key,
            };
            index.insert(item, items.len());
            items.push((
                item,
                Item {
                    id,
                    ..Item::default()
                },
            ));
        }
    }

    {
        let mut stmt = conn.prepare(
            "SELECT d.itemID, f.fieldName, v.value FROM itemData d \
             JOIN fields f ON f.fieldID = d.fieldID \
             JOIN itemDataValues v ON v.valueID = d.valueID",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, rusqlite::types::Value>(2)?,
            ))
        })?;
        for row in rows {
            let (item, field, value) = row?;
            let Some(&i) = index.get(&item) else { continue };
            let value = match value {
                rusqlite::types::Value::Text(s) => s,
                rusqlite::types::Value::Integer(n) => n.to_string(),
                rusqlite::types::Value::Real(x) => x.to_string(),
                _ => continue,
            };
            items[i].1.fields.insert(field, value);
        }
    }

    {
        // Zotero 4 kept names in `creatorData`; Zotero 5 in `creators`.
        let names = if table_exists(conn, "creatorData")? {
            "JOIN creators c ON c.creatorID = ic.creatorID \
             JOIN creatorData n ON n.creatorDataID = c.creatorDataID"
        } else {
            "JOIN creators n ON n.creatorID = ic.creatorID"
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT ic.itemID, n.firstName, n.lastName, n.fieldMode, ct.creatorType \
             FROM itemCreators ic {names} \
             LEFT JOIN creatorTypes ct ON ct.creatorTypeID = ic.creatorTypeID \
             ORDER BY ic.itemID, ic.orderIndex"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        for row in rows {
            let (item, first, last, mode, kind) = row?;
            let Some(&i) = index.get(&item) else { continue };
            let (first, last) = (first.unwrap_or_default(), last.unwrap_or_default());
            // fieldMode 1: a one-field name (an organisation) in lastName.
            let name = if mode == Some(1) || first.trim().is_empty() {
                normalize_whitespace(&last)
            } else {
                normalize_whitespace(&format!("{first} {last}"))
            };
            if !name.is_empty() {
                let author = kind.as_deref().is_none_or(|k| k == "author");
                items[i].1.creators.push((name, author));
            }
        }
    }

    // Collections: names, parents, and each item's.
    let mut names: HashMap<i64, (String, Option<i64>)> = HashMap::new();
    {
        let mut trashed: HashSet<i64> = HashSet::new();
        if table_exists(conn, "deletedCollections")? {
            let mut stmt = conn.prepare("SELECT collectionID FROM deletedCollections")?;
            for id in stmt.query_map([], |r| r.get::<_, i64>(0))? {
                trashed.insert(id?);
            }
        }
        let mut stmt = conn
            .prepare("SELECT collectionID, collectionName, parentCollectionID FROM collections")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        for row in rows {
            let (id, name, parent) = row?;
            if !trashed.contains(&id) {
                names.insert(id, (name, parent));
            }
        }
        let mut stmt = conn.prepare("SELECT collectionID, itemID FROM collectionItems")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (collection, item) = row?;
            if let (Some(&i), true) = (index.get(&item), names.contains_key(&collection)) {
                items[i].1.collections.push(collection);
            }
        }
    }
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|w| !names.values().any(|(n, _)| n == *w))
        .collect();
    if !unknown.is_empty() {
        let mut known: Vec<&str> = names.values().map(|(n, _)| n.as_str()).collect();
        known.sort_unstable();
        known.dedup();
        return Err(ReadError::Corpus(CorpusError::UnknownCollection {
            name: unknown[0].clone(),
            known: known.join(", "),
        }));
    }

    let mut events = Vec::with_capacity(items.len());
    for (item, it) in items {
        let filed = filed_in(&it.collections, &names);
        if !wanted.is_empty() && !filed.iter().any(|c| wanted.contains(c)) {
            continue;
        }
        // The item id stands in for a line number in messages.
        let line = usize::try_from(item).unwrap_or(0);
        let paper = paper(it, filed);
        events.push(match ensure_text(&paper.title, &paper.abstract_text) {
            Ok(()) => Event::Paper { paper, line },
            Err(reason) => Event::Bad {
                line,
                reason: format!("item {}: {reason}", paper.id),
            },
        });
    }
    Ok(events)
}

/// The names of `collections` and of every collection above them, each once.
fn filed_in(collections: &[i64], names: &HashMap<i64, (String, Option<i64>)>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for &c in collections {
        let mut at = Some(c);
        // A cycle in a damaged database must not loop forever.
        let mut steps = 0;
        while let (Some(id), true) = (at, steps < 64) {
            let Some((name, parent)) = names.get(&id) else {
                break;
            };
            if !out.contains(name) {
                out.push(name.clone());
            }
            at = *parent;
            steps += 1;
        }
    }
    out
}

/// Zotero's SQL date (`"1987-00-00 1987"`: year-month-day with 00 for
/// unknown parts, then the date as the user typed it) as `YYYY[-MM[-DD]]`.
fn zotero_date(raw: &str) -> Option<String> {
    let sql = raw.split_whitespace().next()?;
    let mut parts = sql.split('-');
    let (y, m, d) = (parts.next()?, parts.next(), parts.next());
    if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) || y == "0000" {
        return super::fields::normalize_date(raw);
    }
    Some(match (m.filter(|m| *m != "00"), d.filter(|d| *d != "00")) {
        (Some(m), Some(d)) => format!("{y}-{m}-{d}"),
        (Some(m), None) => format!("{y}-{m}"),
        _ => y.to_string(),
    })
}

/// `Key: value` lines of Zotero's `extra` field (case-insensitive key).
fn extra_value<'a>(extra: &'a str, key: &str) -> Option<&'a str> {
    extra.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// The arXiv id of an item: `archiveID` (`arXiv:2101.00001`), `extra`'s
/// `arXiv:` line, an arxiv.org URL, or arXiv's DOI (`10.48550/arXiv.…`).
fn arxiv_of(fields: &HashMap<String, String>, doi: Option<&str>) -> Option<String> {
    let field = |k: &str| fields.get(k).map(String::as_str);
    let candidates = [
        field("archiveID").and_then(|a| a.trim().strip_prefix("arXiv:")),
        field("extra").and_then(|e| extra_value(e, "arXiv")),
        field("url").and_then(|u| u.split_once("arxiv.org/abs/").map(|(_, id)| id)),
        doi.and_then(|d| {
            d.strip_prefix("10.48550/arXiv.")
                .or_else(|| d.strip_prefix("10.48550/ARXIV."))
        }),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|id| strip_version(id.trim().trim_end_matches('/')).to_string())
        .find(|id| is_arxiv_id(id))
}

fn paper(it: Item, collections: Vec<String>) -> Paper {
    let f = &it.fields;
    let get = |k: &str| {
        f.get(k)
            .map(|v| normalize_whitespace(v))
            .filter(|v| !v.is_empty())
    };
    let doi = f.get("DOI").and_then(|d| normalize_doi(d)).or_else(|| {
        f.get("extra")
            .and_then(|e| extra_value(e, "DOI"))
            .and_then(normalize_doi)
    });
    let eprint = arxiv_of(f, doi.as_deref());
    let any_author = it.creators.iter().any(|(_, a)| *a);
    let authors = it
        .creators
        .into_iter()
        .filter(|(_, a)| *a || !any_author)
        .map(|(n, _)| n)
        .collect();
    let url = get("url").or_else(|| eprint.as_deref().and_then(arxiv_abs_url));
    Paper {
        id: it.id,
        title: get("title").unwrap_or_default(),
        abstract_text: clean_abstract(f.get("abstractNote").map_or("", String::as_str)),
        authors,
        categories: Vec::new(),
        date: f.get("date").and_then(|d| zotero_date(d)),
        url,
        doi,
        journal: get("publicationTitle"),
        booktitle: get("proceedingsTitle").or_else(|| get("bookTitle")),
        eprint,
        collections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zotero_dates() {
        assert_eq!(zotero_date("1987-00-00 1987").as_deref(), Some("1987"));
        assert_eq!(
            zotero_date("2019-06-00 June 2019").as_deref(),
            Some("2019-06")
        );
        assert_eq!(
            zotero_date("2021-03-04 4/3/2021").as_deref(),
            Some("2021-03-04")
        );
    }

    #[test]
    fn arxiv_ids_from_every_place() {
        let fields = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(
            arxiv_of(&fields("archiveID", "arXiv:2101.00001"), None).as_deref(),
            Some("2101.00001")
        );
        assert_eq!(
            arxiv_of(&fields("extra", "tex.x: y\narXiv: 2101.00002v3"), None).as_deref(),
            Some("2101.00002")
        );
        assert_eq!(
            arxiv_of(&fields("url", "http://arxiv.org/abs/2101.00003v1"), None).as_deref(),
            Some("2101.00003")
        );
        assert_eq!(
            arxiv_of(&HashMap::new(), Some("10.48550/arXiv.2101.00004")).as_deref(),
            Some("2101.00004")
        );
    }

    #[test]
    fn uri_escapes_reserved_characters() {
        assert_eq!(
            file_uri(Path::new("/a b/50%?#/zotero.sqlite"), "immutable=1"),
            "file:/a b/50%25%3F%23/zotero.sqlite?immutable=1"
        );
    }
}
