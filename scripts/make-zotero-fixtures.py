#!/usr/bin/env python3
"""Builds the Zotero test databases under tests/fixtures/zotero/ from the
table layouts of Zotero's published schema (resource/schema/userdata.sql and
system.sql of zotero/zotero): one as Zotero 4 wrote it (userdata schema 77:
names in `creatorData`, `libraries.libraryType`, no feeds or annotations) and
one as Zotero 5-7 write it (names in `creators`, `libraries.type`, feed
libraries, `itemAnnotations`, `deletedCollections`). Field and item type ids
differ between the two on purpose: papersim must look fields up by name.

    python3 scripts/make-zotero-fixtures.py

Standard library only. The items are invented; no Zotero database was copied.
"""
import os
import sqlite3
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "zotero")

# (key, type, fields, creators [(first, last, mode, type)], collections, state)
# state: "" | "trash" | "feed"
ITEMS = [
    ("AAAA1111", "journalArticle", {
        "title": "Dense passage retrieval for open-domain question answering",
        "abstractNote": "Open-domain question answering relies on efficient passage retrieval. "
                        "We show that retrieval can be implemented using dense representations alone.",
        "date": "2020-00-00 2020", "DOI": "10.18653/v1/2020.emnlp-main.550",
        "publicationTitle": "Proceedings of EMNLP",
    }, [("Vladimir", "Karpukhin", 0, "author"), ("Barlas", "Oguz", 0, "author"),
        ("Some", "Editor", 0, "editor")], ["Retrieval"], ""),
    ("BBBB2222", "preprint", {
        "title": "ColBERT: efficient and effective passage search via contextualized late interaction",
        "abstractNote": "Recent progress in natural language understanding is driving fast-paced "
                        "advances in information retrieval. We present a late interaction architecture.",
        "date": "2020-04-00 April 2020", "url": "https://arxiv.org/abs/2004.12832v2",
        "extra": "arXiv: 2004.12832",
    }, [("Omar", "Khattab", 0, "author"), ("Matei", "Zaharia", 0, "author")], ["Dense"], ""),
    ("CCCC3333", "conferencePaper", {
        "title": "Attention is all you need",
        "abstractNote": "The dominant sequence transduction models are based on complex recurrent "
                        "or convolutional neural networks. We propose the Transformer.",
        "date": "2017-12-04 4 Dec 2017", "proceedingsTitle": "NeurIPS",
        "extra": "DOI: 10.5555/3295222.3295349",
    }, [("Ashish", "Vaswani", 0, "author"), ("Google Brain", "", 1, "author")], ["Models"], ""),
    ("DDDD4444", "journalArticle", {
        "title": "Learning to rank with click data",
        "abstractNote": "Click logs are a cheap source of relevance feedback for ranking models.",
        "date": "2011-00-00 2011",
    }, [("Ann", "Author", 0, "author")], [], ""),
    ("EEEE5555", "journalArticle", {
        "title": "A trashed paper about graph neural networks",
        "abstractNote": "This item is in the trash and must not be read.",
    }, [], ["Retrieval"], "trash"),
    ("FFFF6666", "attachment", {"title": "Full Text PDF"}, [], ["Retrieval"], ""),
    ("GGGG7777", "note", {}, [], [], ""),
    ("HHHH8888", "journalArticle", {
        "title": "A feed item about protein folding",
        "abstractNote": "Feed items live in a feed library and are not the user's papers.",
    }, [], [], "feed"),
]

# Collections: name -> parent name. "Dense" sits under "Retrieval".
COLLECTIONS = [("Retrieval", None), ("Dense", "Retrieval"), ("Models", None), ("Old trash", None)]

FIELD_NAMES = ["title", "abstractNote", "date", "DOI", "url", "extra", "publicationTitle",
               "proceedingsTitle", "archiveID"]
TYPE_NAMES = ["note", "journalArticle", "conferencePaper", "preprint", "attachment", "annotation"]
CREATOR_TYPES = ["author", "editor", "contributor"]

SYSTEM = """
CREATE TABLE itemTypes (itemTypeID INTEGER PRIMARY KEY, typeName TEXT, templateItemTypeID INT, display INT DEFAULT 1);
CREATE TABLE fields (fieldID INTEGER PRIMARY KEY, fieldName TEXT, fieldFormatID INT);
CREATE TABLE creatorTypes (creatorTypeID INTEGER PRIMARY KEY, creatorType TEXT);
CREATE TABLE version (schema TEXT PRIMARY KEY, version INT NOT NULL);
CREATE TABLE itemDataValues (valueID INTEGER PRIMARY KEY, value UNIQUE);
CREATE TABLE itemData (itemID INT, fieldID INT, valueID, PRIMARY KEY (itemID, fieldID));
CREATE TABLE itemNotes (itemID INTEGER PRIMARY KEY, parentItemID INT, note TEXT, title TEXT);
CREATE TABLE itemAttachments (itemID INTEGER PRIMARY KEY, parentItemID INT, linkMode INT, contentType TEXT, charsetID INT, path TEXT);
CREATE TABLE itemCreators (itemID INT, creatorID INT, creatorTypeID INT DEFAULT 1, orderIndex INT DEFAULT 0, PRIMARY KEY (itemID, creatorID, creatorTypeID, orderIndex));
CREATE TABLE collections (collectionID INTEGER PRIMARY KEY, collectionName TEXT NOT NULL, parentCollectionID INT DEFAULT NULL, clientDateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, libraryID INT, key TEXT NOT NULL);
CREATE TABLE collectionItems (collectionID INT, itemID INT, orderIndex INT DEFAULT 0, PRIMARY KEY (collectionID, itemID));
CREATE TABLE deletedItems (itemID INTEGER PRIMARY KEY, dateDeleted DEFAULT CURRENT_TIMESTAMP NOT NULL);
"""

V4 = """
CREATE TABLE items (itemID INTEGER PRIMARY KEY, itemTypeID INT NOT NULL, dateAdded TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, dateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, clientDateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, libraryID INT, key TEXT NOT NULL, UNIQUE (libraryID, key));
CREATE TABLE creators (creatorID INTEGER PRIMARY KEY, creatorDataID INT NOT NULL, dateAdded TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, dateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, clientDateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, libraryID INT, key TEXT NOT NULL);
CREATE TABLE creatorData (creatorDataID INTEGER PRIMARY KEY, firstName TEXT, lastName TEXT, shortName TEXT, fieldMode INT, birthYear INT);
CREATE TABLE libraries (libraryID INTEGER PRIMARY KEY, libraryType TEXT NOT NULL);
"""

V5 = """
CREATE TABLE items (itemID INTEGER PRIMARY KEY, itemTypeID INT NOT NULL, dateAdded TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, dateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, clientDateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, libraryID INT NOT NULL, key TEXT NOT NULL, version INT NOT NULL DEFAULT 0, synced INT NOT NULL DEFAULT 0, UNIQUE (libraryID, key));
CREATE TABLE creators (creatorID INTEGER PRIMARY KEY, firstName TEXT, lastName TEXT, fieldMode INT, UNIQUE (lastName, firstName, fieldMode));
CREATE TABLE libraries (libraryID INTEGER PRIMARY KEY, type TEXT NOT NULL, editable INT NOT NULL, filesEditable INT NOT NULL, version INT NOT NULL DEFAULT 0, storageVersion INT NOT NULL DEFAULT 0, lastSync INT NOT NULL DEFAULT 0, archived INT NOT NULL DEFAULT 0);
CREATE TABLE feeds (libraryID INTEGER PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL UNIQUE, lastUpdate TIMESTAMP, lastCheck TIMESTAMP, lastCheckError TEXT, cleanupReadAfter INT, cleanupUnreadAfter INT, refreshInterval INT);
CREATE TABLE feedItems (itemID INTEGER PRIMARY KEY, guid TEXT NOT NULL UNIQUE, readTime TIMESTAMP, translatedTime TIMESTAMP);
CREATE TABLE itemAnnotations (itemID INTEGER PRIMARY KEY, parentItemID INT NOT NULL, type INTEGER NOT NULL, authorName TEXT, text TEXT, comment TEXT, color TEXT, pageLabel TEXT, sortIndex TEXT NOT NULL, position TEXT NOT NULL, isExternal INT NOT NULL);
CREATE TABLE deletedCollections (collectionID INTEGER PRIMARY KEY, dateDeleted DEFAULT CURRENT_TIMESTAMP NOT NULL);
"""


def build(path, version):
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.executescript(SYSTEM + (V4 if version == 4 else V5))
    # Different ids per version: offsets and reversed orders.
    off = 0 if version == 4 else 100
    fields = {n: off + (i if version == 4 else len(FIELD_NAMES) - i) for i, n in enumerate(FIELD_NAMES, 1)}
    types = {n: off + i for i, n in enumerate(TYPE_NAMES if version == 4 else TYPE_NAMES[::-1], 1)}
    ctypes = {n: i for i, n in enumerate(CREATOR_TYPES, 1)}
    db.executemany("INSERT INTO fields VALUES (?, ?, NULL)", [(i, n) for n, i in fields.items()])
    db.executemany("INSERT INTO itemTypes VALUES (?, ?, NULL, 1)", [(i, n) for n, i in types.items()])
    db.executemany("INSERT INTO creatorTypes VALUES (?, ?)", [(i, n) for n, i in ctypes.items()])
    db.execute("INSERT INTO version VALUES ('userdata', ?)", (77 if version == 4 else 121,))
    if version == 4:
        db.execute("INSERT INTO libraries VALUES (0, 'user')")
        user, feed = 0, None
    else:
        db.execute("INSERT INTO libraries VALUES (1, 'user', 1, 1, 0, 0, 0, 0)")
        db.execute("INSERT INTO libraries VALUES (2, 'feed', 0, 0, 0, 0, 0, 0)")
        db.execute("INSERT INTO feeds (libraryID, name, url) VALUES (2, 'bioRxiv', 'https://example.org/rss')")
        user, feed = 1, 2
    coll_ids = {}
    for i, (name, parent) in enumerate(COLLECTIONS, 1):
        coll_ids[name] = i
        db.execute("INSERT INTO collections (collectionID, collectionName, parentCollectionID, libraryID, key) "
                   "VALUES (?, ?, ?, ?, ?)", (i, name, coll_ids.get(parent), user, f"COLL{i:04d}"))
    if version != 4:
        db.execute("INSERT INTO deletedCollections (collectionID) VALUES (?)", (coll_ids["Old trash"],))
    values = {}
    creator_id = 0
    for n, (key, kind, data, creators, colls, state) in enumerate(ITEMS, 1):
        item = n * 3  # gaps, as real databases have
        if state == "feed" and feed is None:
            continue
        lib = feed if state == "feed" else user
        db.execute("INSERT INTO items (itemID, itemTypeID, libraryID, key) VALUES (?, ?, ?, ?)",
                   (item, types[kind], lib, key))
        for field, value in data.items():
            if value not in values:
                values[value] = len(values) + 1
                db.execute("INSERT INTO itemDataValues VALUES (?, ?)", (values[value], value))
            db.execute("INSERT INTO itemData VALUES (?, ?, ?)", (item, fields[field], values[value]))
        for order, (first, last, mode, ctype) in enumerate(creators):
            creator_id += 1
            if version == 4:
                db.execute("INSERT INTO creatorData VALUES (?, ?, ?, '', ?, NULL)",
                           (creator_id, first if mode == 0 else "", last if mode == 0 else first, mode))
                db.execute("INSERT INTO creators (creatorID, creatorDataID, libraryID, key) VALUES (?, ?, ?, ?)",
                           (creator_id, creator_id, user, f"CR{creator_id:06d}"))
            else:
                db.execute("INSERT INTO creators VALUES (?, ?, ?, ?)",
                           (creator_id, first if mode == 0 else "", last if mode == 0 else first, mode))
            db.execute("INSERT INTO itemCreators VALUES (?, ?, ?, ?)", (item, creator_id, ctypes[ctype], order))
        for c in colls:
            db.execute("INSERT INTO collectionItems VALUES (?, ?, 0)", (coll_ids[c], item))
        if state == "trash":
            db.execute("INSERT INTO deletedItems (itemID) VALUES (?)", (item,))
        if kind == "attachment":
            db.execute("INSERT INTO itemAttachments (itemID, parentItemID, linkMode) VALUES (?, 3, 0)", (item,))
        if kind == "note":
            db.execute("INSERT INTO itemNotes (itemID, parentItemID, note) VALUES (?, 3, '<p>note</p>')", (item,))
        if state == "feed":
            db.execute("INSERT INTO feedItems (itemID, guid) VALUES (?, 'guid-1')", (item,))
    db.commit()
    db.close()


def main():
    os.makedirs(os.path.join(OUT, "zotero4"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "zotero7"), exist_ok=True)
    build(os.path.join(OUT, "zotero4", "zotero.sqlite"), 4)
    build(os.path.join(OUT, "zotero7", "zotero.sqlite"), 7)
    print(f"wrote {OUT}/zotero4/zotero.sqlite and {OUT}/zotero7/zotero.sqlite", file=sys.stderr)


if __name__ == "__main__":
    main()
