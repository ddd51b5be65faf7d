//! The reference-manager and scholarly-dump readers (BibTeX, RIS, Zotero CSV,
//! OpenAlex works, Semantic Scholar papers + abstracts) on the fixtures in
//! `tests/fixtures/corpus/`, through the library API and through the real
//! binary (`papersim build`, then the library's stored papers).

mod common;

use std::path::{Path, PathBuf};

use papersim::corpus::{detect_format, open, read_all, CorpusError, Format, Paper, ReadOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/corpus")
        .join(name)
}

fn read(name: &str) -> (Vec<Paper>, papersim::corpus::ReadSummary) {
    let path = fixture(name);
    read_all(&path, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn paper<'a>(papers: &'a [Paper], id: &str) -> &'a Paper {
    papers
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no paper {id} among {:?}", ids(papers)))
}

fn ids(papers: &[Paper]) -> Vec<&str> {
    papers.iter().map(|p| p.id.as_str()).collect()
}

/// `(line, reason)` of each issue, for messages and checks.
fn issues(summary: &papersim::corpus::ReadSummary) -> Vec<(usize, String)> {
    summary
        .issues
        .iter()
        .map(|i| (i.line, i.reason.clone()))
        .collect()
}

#[test]
fn formats_are_detected() {
    for (name, format) in [
        ("library.bib", Format::Bibtex),
        ("library.ris", Format::Ris),
        ("zotero.csv", Format::Csv),
        ("openalex.jsonl", Format::OpenAlex),
        ("s2", Format::S2),
        ("s2/papers.jsonl", Format::S2),
    ] {
        assert_eq!(detect_format(&fixture(name)).unwrap(), format, "{name}");
    }
    // By content, whatever the name.
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [
        ("library.bib", Format::Bibtex),
        ("library.ris", Format::Ris),
    ] {
        let copy = dir.path().join(format!("{name}.export"));
        std::fs::copy(fixture(name), &copy).unwrap();
        assert_eq!(detect_format(&copy).unwrap(), format, "{name}");
    }
    for format in [Format::Bibtex, Format::Ris, Format::OpenAlex, Format::S2] {
        assert_eq!(format.name().parse::<Format>().unwrap(), format);
    }
}

#[test]
fn bibtex_fixture() {
    let (papers, summary) = read("library.bib");
    assert_eq!(
        ids(&papers),
        [
            "balazs2007diphoton",
            "vaswani2017attention",
            "titleonly2021"
        ],
        "{:?}",
        issues(&summary)
    );
    let p = paper(&papers, "balazs2007diphoton");
    assert_eq!(
        p.authors,
        [
            "Csaba Balázs",
            "Edmond L. Berger",
            "Pavel M. Nadolsky",
            "C.-P. Yuan"
        ]
    );
    assert_eq!(
        p.title,
        "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    );
    assert!(p
        .abstract_text
        .starts_with("A fully differential calculation"));
    assert!(p.abstract_text.ends_with("hadron colliders."));
    assert!(!p.abstract_text.contains('\n'));
    assert_eq!(p.date.as_deref(), Some("2007"));
    assert_eq!(p.doi.as_deref(), Some("10.1103/PhysRevD.76.013009"));
    assert_eq!(p.journal.as_deref(), Some("Physical Review D"));
    assert_eq!(p.eprint.as_deref(), Some("0704.0001"));
    assert_eq!(p.url.as_deref(), Some("https://arxiv.org/abs/0704.0001"));
    assert_eq!(p.categories, ["hep-ph", "hep-ex"]);

    let v = paper(&papers, "vaswani2017attention");
    assert_eq!(v.title, "Attention is All you Need");
    assert_eq!(
        v.authors,
        [
            "Ashish Vaswani",
            "Noam Shazeer",
            "J\u{f6}rg M\u{fc}ller",
            "Jos\u{e9} Gonz\u{e1}lez"
        ]
    );
    // @string abbreviation resolved; math kept between dollars.
    assert_eq!(
        v.booktitle.as_deref(),
        Some("Advances in Neural Information Processing Systems")
    );
    assert!(v.journal.is_none());
    assert!(
        v.abstract_text.contains("$\\alpha$-stable"),
        "{}",
        v.abstract_text
    );
    assert!(v
        .url
        .as_deref()
        .unwrap()
        .starts_with("https://proceedings.neurips.cc/"));

    let t = paper(&papers, "titleonly2021");
    assert_eq!(t.title, "A title-only entry in quotes");
    assert_eq!(t.abstract_text, "");
    assert_eq!(t.authors, ["World Health Organization"]);
    assert_eq!(t.date.as_deref(), Some("2021-03-04"));
    assert_eq!(t.url.as_deref(), Some("https://arxiv.org/abs/2103.01234"));

    // file:line of each bad entry: the unclosed one at its `@`, the entry
    // without text at its `@`, the undefined abbreviation at its field.
    let got = issues(&summary);
    let lines: Vec<usize> = got.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [31, 46, 53], "{got:?}");
    assert!(got[0].1.contains("not closed"), "{got:?}");
    assert!(
        got[1].1.contains("neither a title nor an abstract"),
        "{got:?}"
    );
    assert!(got[2].1.contains("undefinedjournal"), "{got:?}");
    let shown = summary.issues[2].to_string();
    assert!(
        shown.ends_with(&format!("library.bib:53: {}", got[2].1)),
        "{shown}"
    );
}

#[test]
fn ris_fixture() {
    let (papers, summary) = read("library.ris");
    assert_eq!(
        ids(&papers),
        ["devlin2019bert", "ris-2", "ris-5"],
        "{:?}",
        issues(&summary)
    );
    let b = &papers[0];
    assert_eq!(
        b.title,
        "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"
    );
    assert_eq!(
        b.authors,
        ["Jacob Devlin", "Ming-Wei Chang", "Kristina Toutanova"]
    );
    // A wrapped abstract line continues the field.
    assert!(b
        .abstract_text
        .ends_with("stands for Bidirectional Encoder Representations from Transformers."));
    assert_eq!(b.date.as_deref(), Some("2019-06-02"));
    assert_eq!(b.doi.as_deref(), Some("10.18653/v1/N19-1423"));
    assert_eq!(b.url.as_deref(), Some("https://aclanthology.org/N19-1423"));
    assert_eq!(b.journal.as_deref(), Some("Proceedings of NAACL-HLT"));
    assert_eq!(
        b.categories,
        ["Computation and Language", "Machine Learning"]
    );

    let a = &papers[1];
    assert_eq!(a.title, "Attention is All you Need");
    assert_eq!(a.authors, ["Ashish Vaswani", "Noam Shazeer"]);
    assert!(a.abstract_text.starts_with("The dominant sequence"));
    assert_eq!(a.date.as_deref(), Some("2017"));
    assert_eq!(
        a.booktitle.as_deref(),
        Some("Advances in Neural Information Processing Systems 30")
    );
    assert_eq!(
        papers[2].title,
        "Müller's über-long title: a record without ID or DOI"
    );

    let got = issues(&summary);
    let lines: Vec<usize> = got.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [27, 32], "{got:?}");
    assert!(
        got[0].1.contains("neither a title nor an abstract"),
        "{got:?}"
    );
    assert!(got[1].1.contains("not closed"), "{got:?}");
}

#[test]
fn zotero_csv_fixture() {
    let (papers, summary) = read("zotero.csv");
    assert_eq!(ids(&papers), ["7XK2ABCD", "9QWERTY1", "AB12CD34"]);
    let b = &papers[0];
    assert!(b
        .abstract_text
        .starts_with("We introduce a new language representation model"));
    assert_eq!(
        b.authors,
        [
            "Jacob Devlin",
            "Ming-Wei Chang",
            "Kenton Lee",
            "Kristina Toutanova"
        ]
    );
    assert_eq!(b.date.as_deref(), Some("2019-06"));
    assert_eq!(b.doi.as_deref(), Some("10.18653/v1/N19-1423"));
    assert_eq!(b.url.as_deref(), Some("https://aclanthology.org/N19-1423"));
    assert_eq!(b.journal.as_deref(), Some("Transactions of the ACL"));
    assert_eq!(b.categories, ["NLP", "transformers"]);
    let v = &papers[1];
    assert_eq!(v.date.as_deref(), Some("2017-12-04"));
    assert_eq!(
        v.booktitle.as_deref(),
        Some("Advances in Neural Information Processing Systems")
    );
    assert!(v.doi.is_none());
    let d = &papers[2];
    assert_eq!(d.authors, ["Csaba Balázs", "Edmond L. Berger"]);
    // "April 2007" is not a date papersim parses; the Publication Year is.
    assert_eq!(d.date.as_deref(), Some("2007"));
    assert_eq!(d.doi.as_deref(), Some("10.1103/PhysRevD.76.013009"));
    let got = issues(&summary);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 5);
}

#[test]
fn openalex_fixture() {
    let (papers, summary) = read("openalex.jsonl");
    assert_eq!(ids(&papers), ["W2963403868", "W2896457183", "W3043281744"]);
    let a = &papers[0];
    assert_eq!(a.title, "Attention Is All You Need");
    assert_eq!(
        a.abstract_text,
        "The dominant sequence transduction models are based on complex recurrent or \
         convolutional neural networks . We propose a new simple network architecture , \
         the Transformer , based solely on attention mechanisms ."
    );
    assert_eq!(a.authors, ["Ashish Vaswani", "Noam Shazeer"]);
    assert_eq!(a.date.as_deref(), Some("2017-06-12"));
    assert_eq!(a.doi.as_deref(), Some("10.48550/arxiv.1706.03762"));
    assert_eq!(
        a.categories,
        ["Natural Language Processing Techniques", "Topic Modeling"]
    );
    assert_eq!(a.url.as_deref(), Some("https://arxiv.org/abs/1706.03762"));
    assert!(a.journal.is_none() && a.booktitle.is_none());
    let b = &papers[1];
    assert!(
        b.title.starts_with("BERT: Pre-training"),
        "display_name stands in"
    );
    assert_eq!(b.date.as_deref(), Some("2019"));
    assert_eq!(b.categories, ["Computer science", "Language model"]);
    assert_eq!(
        b.booktitle.as_deref(),
        Some("Proceedings of the 2019 Conference of the North")
    );
    assert_eq!(papers[2].journal.as_deref(), Some("Nature"));
    assert_eq!(papers[2].abstract_text, "");
    let got = issues(&summary);
    let lines: Vec<usize> = got.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [3, 4, 5], "{got:?}");
    assert!(got[1].1.contains("not a whole number"), "{got:?}");
}

#[test]
fn s2_folder_joins_papers_and_abstracts() {
    let (papers, summary) = read("s2");
    assert_eq!(ids(&papers), ["13756489", "52967399", "999"]);
    let a = &papers[0];
    assert!(a
        .abstract_text
        .starts_with("The dominant sequence transduction"));
    assert_eq!(a.authors, ["Ashish Vaswani", "Noam M. Shazeer"]);
    assert_eq!(a.date.as_deref(), Some("2017-06-12"));
    assert_eq!(a.eprint.as_deref(), Some("1706.03762"));
    assert_eq!(a.categories, ["Computer Science"]);
    assert_eq!(
        a.booktitle.as_deref(),
        Some("Neural Information Processing Systems")
    );
    let b = &papers[1];
    assert!(b.abstract_text.starts_with("We introduce a new language"));
    assert_eq!(b.doi.as_deref(), Some("10.18653/v1/N19-1423"));
    assert_eq!(b.date.as_deref(), Some("2019"));
    assert_eq!(papers[2].abstract_text, "");
    // Issues name the file they are in.
    let shown: Vec<String> = summary.issues.iter().map(|i| i.to_string()).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(shown[0].contains("abstracts.jsonl:4: "), "{shown:?}");
    assert!(shown[1].contains("papers.jsonl:3: "), "{shown:?}");

    // The papers file alone: titles only where there is no inline abstract.
    let (alone, _) = read("s2/papers.jsonl");
    assert_eq!(ids(&alone), ["13756489", "52967399", "999"]);
    assert!(alone.iter().all(|p| p.abstract_text.is_empty()));
}

#[test]
fn strict_mode_stops_at_the_first_bad_record() {
    for (name, line) in [
        ("library.bib", 31),
        ("library.ris", 27),
        ("openalex.jsonl", 3),
        ("zotero.csv", 5),
    ] {
        let opts = ReadOptions {
            format: None,
            strict: true,
            ..ReadOptions::default()
        };
        let err = read_all(&fixture(name), &opts).unwrap_err();
        match err {
            CorpusError::BadRecord(issue) => assert_eq!(issue.line, line, "{name}: {issue}"),
            other => panic!("{name}: {other}"),
        }
    }
}

/// Every prefix of each fixture cut at every 7th byte goes through its
/// reader without a panic, leniently and strictly, with the promises the
/// fuzz targets check (counts add up, issues have a line, ids unique).
#[test]
fn truncated_fixtures_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [
        ("library.bib", Format::Bibtex),
        ("library.ris", Format::Ris),
        ("zotero.csv", Format::Csv),
        ("openalex.jsonl", Format::OpenAlex),
        ("s2/papers.jsonl", Format::S2),
        ("s2/abstracts.jsonl", Format::S2),
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let path = dir.path().join("cut");
        for cut in (0..=bytes.len()).step_by(7) {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            for strict in [false, true] {
                let opts = ReadOptions {
                    format: Some(format),
                    strict,
                    ..ReadOptions::default()
                };
                let Ok(mut reader) = open(&path, &opts) else {
                    continue;
                };
                let mut seen = std::collections::HashSet::new();
                for item in reader.by_ref() {
                    match item {
                        Ok(p) => {
                            assert!(seen.insert(p.id.clone()), "{name}[..{cut}]: dup {}", p.id);
                            assert!(!p.title.is_empty() || !p.abstract_text.is_empty());
                        }
                        Err(e) => assert!(strict, "{name}[..{cut}]: lenient error {e}"),
                    }
                }
                let summary = reader.into_summary();
                assert_eq!(summary.skipped, summary.issues.len());
                assert!(
                    summary.issues.iter().all(|i| i.line >= 1),
                    "{name}[..{cut}]"
                );
            }
        }
    }
    // The S2 folder with each file cut.
    for file in ["papers.jsonl", "abstracts.jsonl"] {
        let bytes = std::fs::read(fixture(&format!("s2/{file}"))).unwrap();
        for cut in (0..=bytes.len()).step_by(7) {
            let folder = tempfile::tempdir().unwrap();
            for other in ["papers.jsonl", "abstracts.jsonl"] {
                std::fs::copy(fixture(&format!("s2/{other}")), folder.path().join(other)).unwrap();
            }
            std::fs::write(folder.path().join(file), &bytes[..cut]).unwrap();
            let opts = ReadOptions {
                format: Some(Format::S2),
                strict: false,
                ..ReadOptions::default()
            };
            if let Ok(mut reader) = open(folder.path(), &opts) {
                for item in reader.by_ref() {
                    item.unwrap();
                }
            }
        }
    }
}

/// Each fixture through the real binary: `papersim build`, then the stored
/// papers carry ids, abstracts, authors, years and DOIs.
#[test]
fn fixtures_build_libraries_with_their_metadata() {
    let Some(model) = common::model_dir() else {
        return;
    };
    let model = model.display().to_string();
    let cases: [(&str, &str, &str, &str, Option<&str>); 5] = [
        (
            "zotero.csv",
            "7XK2ABCD",
            "Jacob Devlin",
            "2019",
            Some("10.18653/v1/N19-1423"),
        ),
        (
            "library.bib",
            "balazs2007diphoton",
            "Csaba Balázs",
            "2007",
            Some("10.1103/PhysRevD.76.013009"),
        ),
        (
            "library.ris",
            "devlin2019bert",
            "Jacob Devlin",
            "2019",
            Some("10.18653/v1/N19-1423"),
        ),
        (
            "openalex.jsonl",
            "W2963403868",
            "Ashish Vaswani",
            "2017",
            Some("10.48550/arxiv.1706.03762"),
        ),
        (
            "s2",
            "52967399",
            "Jacob Devlin",
            "2019",
            Some("10.18653/v1/N19-1423"),
        ),
    ];
    for (name, id, author, year, doi) in cases {
        let dir = tempfile::tempdir().unwrap();
        let library = dir.path().join("lib");
        let corpus = fixture(name).display().to_string();
        let out = common::ok(common::papersim(&[
            "build",
            "--corpus",
            &corpus,
            "--library",
            &library.display().to_string(),
            "--model",
            &model,
            "--json",
        ]));
        let report = common::json(&out);
        assert!(
            report["papers"].as_u64().unwrap_or(0) >= 3,
            "{name}: {report}"
        );
        let lib = papersim::store::Library::open(&library).unwrap();
        let row = lib.row_of(id).unwrap_or_else(|| panic!("{name}: no {id}"));
        let p = lib.paper(row).unwrap();
        assert!(!p.abstract_text.is_empty(), "{name}: {p:?}");
        assert!(p.authors.iter().any(|a| a == author), "{name}: {p:?}");
        assert!(
            p.date.as_deref().unwrap_or("").starts_with(year),
            "{name}: {p:?}"
        );
        assert_eq!(p.doi.as_deref(), doi, "{name}");
    }
}
