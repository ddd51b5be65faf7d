//! Integration tests for `papersim::corpus` on the fixtures in
//! `tests/fixtures/corpus/` (see the README there for what each line holds)
//! and, when present, the real data in `../shared/data/`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use papersim::corpus::{
    detect_format, open, read_all, read_text_records, CorpusError, Format, Issue, Paper,
    ReadOptions, ReadSummary, TextTemplate, MAX_LINE_BYTES,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/corpus")
        .join(name)
}

/// A file under `../shared/data/`, or `None` (with the reason printed) when the
/// shared data is not there. On CI (`CI=true`) missing data is a failure, so
/// these tests cannot silently stop testing anything.
fn shared_data(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name);
    if path.exists() {
        return Some(path);
    }
    let reason = format!("{} is missing", path.display());
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason} (required when CI=true)");
    }
    eprintln!("skipping: {reason}");
    None
}

fn read(path: &Path) -> (Vec<Paper>, ReadSummary) {
    match read_all(path, &ReadOptions::default()) {
        Ok(result) => result,
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

fn ids(papers: &[Paper]) -> Vec<&str> {
    papers.iter().map(|p| p.id.as_str()).collect()
}

fn lines(issues: &[Issue]) -> Vec<usize> {
    issues.iter().map(|i| i.line).collect()
}

fn reason_at(summary: &ReadSummary, line: usize) -> &str {
    match summary.issues.iter().find(|i| i.line == line) {
        Some(issue) => &issue.reason,
        None => panic!("no issue on line {line}: {:?}", summary.issues),
    }
}

fn strict(format: Option<Format>) -> ReadOptions {
    ReadOptions {
        format,
        strict: true,
        ..ReadOptions::default()
    }
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    path
}

const ARXIV_IDS: [&str; 5] = [
    "1812.06145",
    "1904.11093",
    "0704.0001",
    "math/0406001",
    "2001.00005",
];
const ARXIV_BAD_LINES: [usize; 8] = [3, 5, 6, 7, 9, 10, 11, 12];

fn check_arxiv_fixture(path: &Path) {
    let (papers, summary) = read(path);
    assert_eq!(ids(&papers), ARXIV_IDS);
    assert_eq!(summary.format, Format::Arxiv);
    assert_eq!(summary.read, 5);
    assert_eq!(summary.skipped, 8);
    assert_eq!(lines(&summary.issues), ARXIV_BAD_LINES);
    assert!(reason_at(&summary, 3).starts_with("invalid JSON: EOF while parsing"));
    assert!(reason_at(&summary, 5).starts_with("invalid UTF-8"));
    assert_eq!(
        reason_at(&summary, 6),
        "duplicate id `1812.06145` (first seen on line 1)"
    );
    assert_eq!(
        reason_at(&summary, 7),
        "record has neither a title nor an abstract"
    );
    assert_eq!(
        reason_at(&summary, 9),
        "field `authors` must be a list of strings or a string, found a number"
    );
    assert_eq!(
        reason_at(&summary, 10),
        "expected a JSON object, found an array"
    );
    assert_eq!(reason_at(&summary, 11), "missing `id`");
    assert_eq!(
        reason_at(&summary, 12),
        "`id` must be a string, found a number"
    );
    for issue in &summary.issues {
        assert_eq!(issue.path, path);
    }
    assert_eq!(
        summary.issues[0].to_string(),
        format!("{}:3: {}", path.display(), summary.issues[0].reason)
    );

    let first = &papers[0];
    assert_eq!(
        first.title,
        "Improving the Performance of Unimodal Dynamic Hand-Gesture Recognition with Multimodal Training"
    );
    assert_eq!(
        first.authors,
        [
            "Mahdi Abavisani",
            "Hamid Reza Vaezi Joze",
            "Vishal M. Patel"
        ]
    );
    assert_eq!(first.categories[..2], ["cs.CV", "cs.AI"]);
    // first_listed says 2025-10-13 (a re-listing); the id says December 2018.
    assert_eq!(first.date.as_deref(), Some("2018-12"));
    assert_eq!(
        first.url.as_deref(),
        Some("https://arxiv.org/abs/1812.06145")
    );
    assert_eq!(
        papers[1].title,
        "Deep Sparse Representation-based Classification"
    );

    let kaggle = &papers[2];
    assert_eq!(
        kaggle.title,
        "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    );
    assert!(kaggle.abstract_text.starts_with(
        "A fully differential calculation in perturbative quantum chromodynamics is presented"
    ));
    assert!(kaggle.abstract_text.ends_with("hadron colliders."));
    assert_eq!(
        kaggle.authors,
        [
            "C. Bal\\'azs",
            "E. L. Berger",
            "P. M. Nadolsky",
            "C.-P. Yuan"
        ]
    );
    assert_eq!(kaggle.categories, ["hep-ph", "hep-ex"]);
    // versions[0].created, not update_date (2008-11-13, the last revision).
    assert_eq!(kaggle.date.as_deref(), Some("2007-04-02"));
    assert_eq!(
        kaggle.url.as_deref(),
        Some("https://arxiv.org/abs/0704.0001")
    );

    assert_eq!(papers[3].date.as_deref(), Some("2004-06-01"));
    assert_eq!(
        papers[3].url.as_deref(),
        Some("https://arxiv.org/abs/math/0406001")
    );
    assert_eq!(papers[4].title, "Title only paper");
    assert_eq!(papers[4].abstract_text, "");
    assert!(papers[4].authors.is_empty());
    // No date field: the id's month stands in.
    assert_eq!(papers[4].date.as_deref(), Some("2020-01"));
}

#[test]
fn arxiv_fixture() {
    check_arxiv_fixture(&fixture("arxiv.jsonl"));
}

#[test]
fn gzipped_arxiv_fixture_reads_the_same() {
    check_arxiv_fixture(&fixture("arxiv.jsonl.gz"));
}

#[test]
fn gzip_is_detected_by_magic_bytes_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(fixture("arxiv.jsonl.gz")).unwrap();
    check_arxiv_fixture(&write(&dir, "renamed.jsonl", &bytes));
}

#[test]
fn strict_mode_fails_on_the_first_bad_line() {
    let mut reader = open(&fixture("arxiv.jsonl"), &strict(None)).unwrap();
    let good: Vec<String> = reader.by_ref().take(2).map(|r| r.unwrap().id).collect();
    assert_eq!(good, ["1812.06145", "1904.11093"]);
    match reader.next() {
        Some(Err(CorpusError::BadRecord(issue))) => {
            assert_eq!(issue.line, 3);
            assert!(issue.reason.starts_with("invalid JSON"), "{issue}");
        }
        other => panic!("expected a bad record, got {other:?}"),
    }
    assert!(reader.next().is_none(), "iteration ends after the error");
    assert_eq!(reader.summary().read, 2);

    let err = read_all(&fixture("arxiv.jsonl"), &strict(None)).unwrap_err();
    assert!(matches!(&err, CorpusError::BadRecord(issue) if issue.line == 3));
    assert!(
        err.to_string().contains("arxiv.jsonl:3: invalid JSON"),
        "{err}"
    );
}

#[test]
fn truncated_gzip_keeps_good_records_and_reports_the_line() {
    let path = fixture("arxiv-truncated.jsonl.gz");
    let (papers, summary) = read(&path);
    assert_eq!(ids(&papers), ["1812.06145", "1904.11093"]);
    assert_eq!(summary.skipped, 1);
    assert_eq!(lines(&summary.issues), [3]);
    assert!(
        summary.issues[0]
            .reason
            .contains("gzip stream is corrupt or truncated"),
        "{}",
        summary.issues[0]
    );

    let mut reader = open(&path, &strict(Some(Format::Arxiv))).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().id, "1812.06145");
    assert_eq!(reader.next().unwrap().unwrap().id, "1904.11093");
    assert!(matches!(
        reader.next(),
        Some(Err(CorpusError::BadRecord(Issue { line: 3, .. })))
    ));
    assert!(reader.next().is_none());
}

#[test]
fn garbage_after_gzip_magic_is_an_issue_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0x1f, 0x8b, 0x08, 0x00];
    bytes.extend(std::iter::repeat_n(0xff, 64));
    let path = write(&dir, "junk.jsonl", &bytes);
    let opts = ReadOptions {
        format: Some(Format::Arxiv),
        strict: false,
        ..ReadOptions::default()
    };
    let (papers, summary) = read_all(&path, &opts).unwrap();
    assert!(papers.is_empty());
    assert_eq!(lines(&summary.issues), [1]);
}

#[test]
fn oversized_lines_are_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = br#"{"id": "a", "title": "First"}"#.to_vec();
    bytes.extend_from_slice(b"\n{\"id\": \"big\", \"abstract\": \"");
    bytes.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
    bytes.extend_from_slice(b"\"}\n{\"id\": \"b\", \"title\": \"After\"}\n");
    let path = write(&dir, "big.jsonl", &bytes);
    let (papers, summary) = read(&path);
    assert_eq!(ids(&papers), ["a", "b"]);
    assert_eq!(lines(&summary.issues), [2]);
    assert!(summary.issues[0]
        .reason
        .contains("longer than 1048576 bytes"));
}

#[test]
fn long_abstracts_are_truncated_silently() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!(
        "{{\"id\": \"long\", \"title\": \"T\", \"abstract\": \"{}\"}}\n",
        "ab ".repeat(50_000)
    );
    let path = write(&dir, "long.jsonl", line.as_bytes());
    let (papers, summary) = read(&path);
    assert_eq!(papers[0].abstract_text.chars().count(), 100_000);
    assert!(summary.issues.is_empty());
}

#[test]
fn beir_fixture() {
    let path = fixture("beir.jsonl");
    let (papers, summary) = read(&path);
    assert_eq!(summary.format, Format::Beir);
    assert_eq!(ids(&papers), ["4983", "5836"]);
    assert_eq!(
        papers[0].title,
        "Microstructural development of human newborn cerebral white matter assessed in vivo by diffusion tensor magnetic resonance imaging."
    );
    assert!(papers[0]
        .abstract_text
        .starts_with("Alterations of the architecture"));
    assert_eq!(papers[0].url, None, "BEIR ids are not arXiv ids");
    assert_eq!(papers[1].title, "");
    assert_eq!(
        papers[1].abstract_text,
        "A paper with no title keeps its text."
    );
    assert_eq!(papers[1].url.as_deref(), Some("https://example.org/5836"));
    assert_eq!(summary.skipped, 3);
    assert_eq!(lines(&summary.issues), [3, 4, 5]);
    assert_eq!(
        reason_at(&summary, 3),
        "`_id` must be a string, found a number"
    );
    assert_eq!(
        reason_at(&summary, 4),
        "field `metadata` must be an object, found a string"
    );
    assert_eq!(
        reason_at(&summary, 5),
        "duplicate id `4983` (first seen on line 1)"
    );
}

#[test]
fn csv_fixture() {
    let path = fixture("papers.csv");
    let (papers, summary) = read(&path);
    assert_eq!(summary.format, Format::Csv);
    assert_eq!(ids(&papers), ["2101.00001", "2101.00002", "doc-5"]);

    let first = &papers[0];
    assert_eq!(first.title, "Quoted, with comma");
    assert_eq!(first.abstract_text, "Line one line two, with \"quotes\"");
    assert_eq!(first.authors, ["Ann Lee", "Bo Chen"]);
    assert_eq!(first.categories, ["cs.CL", "cs.LG"]);
    assert_eq!(first.date.as_deref(), Some("2021-01-01"));
    assert_eq!(
        first.url.as_deref(),
        Some("https://arxiv.org/abs/2101.00001")
    );

    assert_eq!(papers[1].authors, ["A", "B", "C"]);
    assert_eq!(papers[1].categories, ["cs.CV", "cs.AI"]);
    assert_eq!(papers[1].date.as_deref(), Some("2021-01-02"));

    assert_eq!(papers[2].abstract_text, "Last abstract, with a comma");
    assert_eq!(papers[2].date.as_deref(), Some("2021"));
    assert!(papers[2].authors.is_empty() && papers[2].categories.is_empty());
    assert_eq!(papers[2].url, None);

    assert_eq!(summary.skipped, 2);
    assert_eq!(lines(&summary.issues), [5, 6]);
    assert_eq!(
        reason_at(&summary, 5),
        "expected 6 fields (as in the header), found 3"
    );
    assert_eq!(
        reason_at(&summary, 6),
        "stray quote: text after the closing quote of a field"
    );

    let err = read_all(&path, &strict(None)).unwrap_err();
    assert!(matches!(err, CorpusError::BadRecord(Issue { line: 5, .. })));
}

#[test]
fn tsv_fixture_without_id_column() {
    let (papers, summary) = read(&fixture("papers.tsv"));
    assert_eq!(summary.format, Format::Tsv);
    assert_eq!(ids(&papers), ["row-1", "row-2", "row-4"]);
    assert_eq!(
        papers[0].abstract_text,
        "An abstract, with commas, is fine in TSV."
    );
    assert_eq!(papers[0].authors, ["Ann Lee", "Bo Chen"]);
    assert_eq!(papers[0].date.as_deref(), Some("2020"));
    assert_eq!(papers[1].abstract_text, "A quoted abstract with a tab");
    assert_eq!(papers[2].title, "Third TSV paper");
    assert_eq!(papers[2].abstract_text, "");
    assert_eq!(papers[2].authors, ["Solo"]);
    assert_eq!(papers[2].date, None);
    assert_eq!(lines(&summary.issues), [4]);
    assert_eq!(
        summary.issues[0].reason,
        "expected 4 fields (as in the header), found 5"
    );
}

#[test]
fn csv_edge_cases() {
    let dir = tempfile::tempdir().unwrap();

    let crlf = write(
        &dir,
        "crlf.csv",
        b"\xef\xbb\xbfID,Summary\r\n1,\"two\r\nlines\"\r\n2,plain\r\n",
    );
    let (papers, summary) = read(&crlf);
    assert_eq!(ids(&papers), ["1", "2"]);
    assert_eq!(papers[0].abstract_text, "two lines");
    assert_eq!(papers[1].abstract_text, "plain");
    assert!(summary.issues.is_empty(), "{:?}", summary.issues);

    let unterminated = write(&dir, "open.csv", b"id,title\n1,ok\n2,\"open\n3,lost\n");
    let (papers, summary) = read(&unterminated);
    assert_eq!(ids(&papers), ["1"]);
    assert_eq!(lines(&summary.issues), [3]);
    assert!(summary.issues[0]
        .reason
        .starts_with("unterminated quoted field"));

    let utf8 = write(&dir, "latin1.csv", b"id,title\n1,Caf\xe9\n2,Fine\n");
    let (papers, summary) = read(&utf8);
    assert_eq!(ids(&papers), ["2"]);
    assert_eq!(summary.issues[0].reason, "invalid UTF-8 in column `title`");

    let no_text = write(&dir, "nocols.csv", b"id,authors\n1,A\n");
    match open(&no_text, &ReadOptions::default()) {
        Err(CorpusError::BadHeader { reason, .. }) => {
            assert!(reason.contains("no title or abstract column"), "{reason}")
        }
        Err(e) => panic!("expected BadHeader, got {e}"),
        Ok(_) => panic!("expected BadHeader, got a reader"),
    }

    let empty = write(&dir, "empty.csv", b"");
    let (papers, summary) = read(&empty);
    assert!(papers.is_empty() && summary.issues.is_empty());
}

#[test]
fn hf_daily_fixture() {
    let (papers, summary) = read(&fixture("hf-daily.txt"));
    assert_eq!(summary.format, Format::HfDaily);
    assert!(summary.issues.is_empty(), "{:?}", summary.issues);
    assert_eq!(
        ids(&papers),
        [
            "objective-mismatch-in-model-based-reinforcement-learning",
            "the-alignment-ceiling-objective-mismatch-in-reinforcement-learning-from-human-fe",
            "towards-foundation-models-for-zero-shot-time-series-anomaly-detection-leveraging",
        ]
    );
    assert_eq!(
        papers[1].title,
        "The Alignment Ceiling: Objective Mismatch in Reinforcement Learning from Human Feedback"
    );
    assert!(papers[0]
        .abstract_text
        .starts_with("Model-based reinforcement learning (MBRL) has been shown"));
    assert!(papers[0].abstract_text.ends_with("addressing this issue."));
    let dates: Vec<Option<&str>> = papers.iter().map(|p| p.date.as_deref()).collect();
    assert_eq!(dates, [Some("2020-02-11"), Some("2023-10-31"), None]);
    assert!(papers
        .iter()
        .all(|p| p.url.is_none() && p.authors.is_empty()));
}

#[test]
fn hf_daily_edge_cases() {
    let (papers, summary) = read(&fixture("hf-daily-edge.txt"));
    assert_eq!(
        ids(&papers),
        ["same-title", "same-title-2", "no-date-line-paper"]
    );
    assert_eq!(papers[0].title, "Same Title");
    assert_eq!(
        papers[0].abstract_text,
        "First abstract line continues here."
    );
    assert_eq!(papers[0].date.as_deref(), Some("2021-03-04"));
    assert_eq!(papers[1].abstract_text, "Second abstract.");
    assert_eq!(papers[1].date, None);
    assert_eq!(papers[2].date, None);
    assert_eq!(lines(&summary.issues), [22, 31]);
    assert_eq!(
        summary.issues[0].reason,
        "no title or abstract before this `• N authors` line"
    );
    assert!(summary.issues[1]
        .reason
        .starts_with("text after the last paper"));
    assert_eq!(summary.skipped, 2);
}

#[test]
fn hf_daily_bad_utf8_points_at_the_paper_start() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"Good Paper\n\nFine abstract.\n\n  \xe2\x80\xa2 2 authors\n\xc2\xb7\nMar 4, 2021\n\nBad Paper\n\nCaf\xe9 abstract.\n\n  \xe2\x80\xa2 1 author\n\xc2\xb7\nMar 5, 2021\n";
    let path = write(&dir, "copy.txt", text);
    let (papers, summary) = read(&path);
    assert_eq!(ids(&papers), ["good-paper"]);
    assert_eq!(lines(&summary.issues), [9]);
    assert!(summary.issues[0]
        .reason
        .starts_with("line 11: invalid UTF-8"));
}

#[test]
fn detects_each_fixture_format() {
    for (name, format) in [
        ("arxiv.jsonl", Format::Arxiv),
        ("arxiv.jsonl.gz", Format::Arxiv),
        ("arxiv-truncated.jsonl.gz", Format::Arxiv),
        ("beir.jsonl", Format::Beir),
        ("papers.csv", Format::Csv),
        ("papers.tsv", Format::Tsv),
        ("hf-daily.txt", Format::HfDaily),
        ("hf-daily-edge.txt", Format::HfDaily),
    ] {
        assert_eq!(detect_format(&fixture(name)).unwrap(), format, "{name}");
    }
}

#[test]
fn detects_formats_from_content_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let hf = fs::read(fixture("hf-daily.txt")).unwrap();
    let cases: [(&str, &[u8], Format); 6] = [
        ("copy", &hf, Format::HfDaily),
        ("papers.CSV.gz", b"", Format::Csv),
        ("papers.tab", b"", Format::Tsv),
        ("notes.md", b"", Format::HfDaily),
        (
            "x.ndjson",
            b"\n\n{\"_id\": \"1\", \"text\": \"t\"}\n",
            Format::Beir,
        ),
        (
            "x.json",
            b"{\"id\": \"1\", \"abstract\": \"a\"}\n",
            Format::Arxiv,
        ),
    ];
    for (name, bytes, format) in cases {
        let path = write(&dir, name, bytes);
        assert_eq!(detect_format(&path).unwrap(), format, "{name}");
    }

    for (name, bytes) in [
        ("other.jsonl", &b"{\"doc\": 1}\n"[..]),
        ("plain.dat", b"just some text\n"),
        ("empty.jsonl", b""),
    ] {
        let path = write(&dir, name, bytes);
        match detect_format(&path) {
            Err(err @ CorpusError::UnknownFormat { .. }) => {
                let msg = err.to_string();
                assert!(msg.contains(name), "{msg}");
                assert!(
                    msg.contains("--format") && msg.contains("arxiv, beir, csv, tsv, hf-daily"),
                    "{msg}"
                );
            }
            other => panic!("{name}: expected UnknownFormat, got {other:?}"),
        }
    }

    let missing = dir.path().join("missing.jsonl");
    assert!(matches!(
        detect_format(&missing),
        Err(CorpusError::Io { .. })
    ));
}

#[test]
fn format_names_round_trip() {
    for format in Format::ALL {
        assert_eq!(format.to_string().parse::<Format>().unwrap(), format);
    }
    assert_eq!("hf-daily".parse::<Format>().unwrap(), Format::HfDaily);
    let err = "pdf".parse::<Format>().unwrap_err();
    assert!(err.to_string().contains("hf-daily"), "{err}");
}

#[test]
fn template_renders_fixture_papers() {
    let (papers, _) = read(&fixture("papers.csv"));
    let text = TextTemplate::default().render(&papers[0]);
    assert_eq!(
        text,
        "Quoted, with comma. Line one line two, with \"quotes\""
    );
    let (papers, _) = read(&fixture("papers.tsv"));
    assert_eq!(
        TextTemplate::default().render(&papers[2]),
        "Third TSV paper"
    );
}

#[test]
fn paper_serde_shape() {
    let (papers, _) = read(&fixture("papers.csv"));
    let json = serde_json::to_value(&papers[2]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "id": "doc-5",
            "title": "Last",
            "abstract": "Last abstract, with a comma",
            "authors": [],
            "categories": [],
            "date": "2021",
        })
    );
    let back: Paper =
        serde_json::from_str(r#"{"id": "x", "title": "T", "abstract": "A"}"#).unwrap();
    assert!(back.authors.is_empty() && back.date.is_none());
}

#[test]
fn text_records() {
    let dir = tempfile::tempdir().unwrap();
    let body = concat!(
        "{\"id\": \"a\", \"text\": \"Alpha text.\"}\n",
        "{\"id\": \"b\"}\n",
        "\n",
        "{\"id\": \"a\", \"text\": \"again\"}\n",
        "{\"id\": \"c\", \"text\": \"  \"}\n",
        "not json\n",
        "{\"id\": \"d\", \"text\": 5}\n",
        "{\"id\": \"e\", \"text\": \"Echo.\"}\n",
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let plain = write(&dir, "texts.jsonl", body.as_bytes());
    let zipped = write(&dir, "texts.jsonl.gz", &gz.finish().unwrap());
    for path in [plain, zipped] {
        let (records, issues) = read_text_records(&path, false).unwrap();
        let got: Vec<(&str, &str)> = records
            .iter()
            .map(|r| (r.id.as_str(), r.text.as_str()))
            .collect();
        assert_eq!(got, [("a", "Alpha text."), ("e", "Echo.")]);
        assert_eq!(lines(&issues), [2, 4, 5, 6, 7]);
        assert_eq!(issues[0].reason, "missing `text`");
        assert_eq!(issues[1].reason, "duplicate id `a` (first seen on line 1)");
        assert_eq!(issues[2].reason, "empty `text`");
        assert!(issues[3].reason.starts_with("invalid JSON"));
        assert_eq!(
            issues[4].reason,
            "field `text` must be a string, found a number"
        );

        match read_text_records(&path, true) {
            Err(CorpusError::BadRecord(issue)) => assert_eq!(issue.line, 2),
            other => panic!("expected BadRecord, got {other:?}"),
        }
    }
}

#[test]
fn real_hf_daily_page() {
    let Some(path) = shared_data("hf-daily-papers.txt") else {
        return;
    };
    let (papers, summary) = read(&path);
    assert!(summary.issues.is_empty(), "{:?}", summary.issues);
    assert_eq!(papers.len(), 61);
    assert_eq!(summary.read, 61);
    assert_eq!(
        papers[0].title,
        "Objective Mismatch in Model-based Reinforcement Learning"
    );
    let vagram = papers
        .iter()
        .find(|p| p.title == "Value Gradient weighted Model-Based Reinforcement Learning");
    match vagram {
        Some(p) => assert_eq!(p.date.as_deref(), Some("2022-04-04")),
        None => panic!("VaGraM paper missing"),
    }
    assert!(papers.iter().all(|p| !p.abstract_text.is_empty()));
}

#[test]
fn real_arxiv_dump_streams() {
    let Some(path) = shared_data("arxiv-cs.jsonl.gz") else {
        return;
    };
    let mut reader = open(&path, &ReadOptions::default()).unwrap();
    let mut n = 0;
    for paper in reader.by_ref().take(2000) {
        let paper = paper.unwrap();
        assert!(!paper.id.is_empty() && !paper.title.is_empty());
        n += 1;
    }
    assert_eq!(n, 2000);
    let summary = reader.summary();
    assert_eq!(summary.format, Format::Arxiv);
    assert!(summary.issues.is_empty(), "{:?}", summary.issues);
}

// ---- input limits (README: lines over 1 MiB are bad records, abstracts are
// cut at 100,000 characters) ----------------------------------------------------

/// The message a bad record gives, as `papersim build` prints it.
fn issue_text(summary: &ReadSummary, line: usize) -> String {
    match summary.issues.iter().find(|i| i.line == line) {
        Some(issue) => issue.to_string(),
        None => panic!("no issue on line {line}: {:?}", summary.issues),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn a_two_megabyte_abstract_line_is_a_bad_record_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let abstract_text = "word ".repeat(2 << 20 >> 2); // 2.5 MB
    for (format, name, template) in [
        (
            Format::Arxiv,
            "big.jsonl",
            r#"{"id": "ID", "title": "T", "abstract": "ABSTRACT"}"#,
        ),
        (
            Format::Beir,
            "big-beir.jsonl",
            r#"{"_id": "ID", "title": "T", "text": "ABSTRACT"}"#,
        ),
        (Format::Csv, "big.csv", "ID,T,\"ABSTRACT\""),
        (Format::Tsv, "big.tsv", "ID\tT\tABSTRACT"),
    ] {
        let row = |id: &str, text: &str| template.replace("ID", id).replace("ABSTRACT", text);
        let mut body = String::new();
        if matches!(format, Format::Csv | Format::Tsv) {
            let sep = if format == Format::Csv { "," } else { "\t" };
            body.push_str(&["id", "title", "abstract"].join(sep));
            body.push('\n');
        }
        body.push_str(&row("small", "fits"));
        body.push('\n');
        body.push_str(&row("huge", &abstract_text));
        body.push('\n');
        body.push_str(&row("after", "also fits"));
        body.push('\n');
        let path = write(&dir, name, body.as_bytes());
        let first_data_line = if matches!(format, Format::Csv | Format::Tsv) {
            2
        } else {
            1
        };
        let opts = ReadOptions {
            format: Some(format),
            strict: false,
            ..ReadOptions::default()
        };
        let (papers, summary) = read_all(&path, &opts).unwrap();
        assert_eq!(ids(&papers), ["small", "after"], "{format}");
        assert_eq!(lines(&summary.issues), [first_data_line + 1], "{format}");
        assert_eq!(
            issue_text(&summary, first_data_line + 1),
            format!(
                "{}:{}: record is longer than 1048576 bytes (MAX_LINE_BYTES); skipped",
                path.display(),
                first_data_line + 1
            )
        );
        // --strict stops there with the same file:line.
        match read_all(&path, &strict(Some(format))) {
            Err(e) => assert!(
                e.to_string()
                    .contains(&format!("{}:{}:", path.display(), first_data_line + 1)),
                "{e}"
            ),
            Ok(_) => panic!("{format}: strict read accepted a 2 MB line"),
        }
    }
}

#[test]
fn a_fifty_megabyte_line_without_newline_is_one_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let blob = vec![b'x'; 50 << 20];
    for (format, name, head) in [
        (
            Format::Arxiv,
            "blob.jsonl",
            &b"{\"id\": \"a\", \"abstract\": \""[..],
        ),
        (
            Format::Beir,
            "blob-beir.jsonl",
            b"{\"_id\": \"a\", \"text\": \"",
        ),
        (Format::Csv, "blob.csv", b"id,title\n1,ok\n2,"),
        (Format::Tsv, "blob.tsv", b"id\ttitle\n1\tok\n2\t"),
        (Format::HfDaily, "blob.txt", b""),
    ] {
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(&blob);
        let line = match format {
            Format::Csv | Format::Tsv => 3,
            _ => 1,
        };
        for gz in [false, true] {
            // Gzip too: 50 MB of one line in a 50 KB file must not be a memory bomb.
            let (name, bytes) = if gz {
                (format!("{name}.gz"), gzip(&bytes))
            } else {
                (name.to_string(), bytes.clone())
            };
            let path = write(&dir, &name, &bytes);
            let opts = ReadOptions {
                format: Some(format),
                strict: false,
                ..ReadOptions::default()
            };
            let (papers, summary) = read_all(&path, &opts).unwrap();
            let expected: &[&str] = match format {
                Format::Csv | Format::Tsv => &["1"],
                _ => &[],
            };
            assert_eq!(ids(&papers), expected, "{name}");
            assert_eq!(lines(&summary.issues), [line], "{name}");
            let text = issue_text(&summary, line);
            assert!(
                text.starts_with(&format!("{}:{line}: ", path.display()))
                    && text.contains("longer than 1048576 bytes"),
                "{name}: {text}"
            );
        }
    }
}

#[test]
fn an_unclosed_quote_spanning_the_file_is_one_bad_record_at_its_start() {
    let dir = tempfile::tempdir().unwrap();
    for (rows, reason) in [
        // Under the cap: the scanner reaches the end of the file in the quote.
        (1_000, "unterminated quoted field (reached end of file)"),
        // Over the cap: the record stops being buffered at 1 MiB.
        (
            100_000,
            "record is longer than 1048576 bytes (MAX_LINE_BYTES); skipped",
        ),
    ] {
        let mut body = String::from("id,title,abstract\n1,First,fine\n2,Second,\"never closed\n");
        for i in 0..rows {
            body.push_str(&format!("{i},row {i},abstract of row {i}\n"));
        }
        let path = write(&dir, "open-quote.csv", body.as_bytes());
        let (papers, summary) = read(&path);
        assert_eq!(ids(&papers), ["1"]);
        assert_eq!(
            issue_text(&summary, 3),
            format!("{}:3: {reason}", path.display())
        );
        assert_eq!(summary.skipped, 1);
    }
}

#[test]
fn long_abstracts_are_cut_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    // 600,000 characters: under the 1 MiB line cap, over the abstract cap.
    let long = "ab ".repeat(200_000);
    let cases = [
        (
            "long.csv",
            format!("id,title,abstract\n1,T,{long}\n"),
            Format::Csv,
        ),
        (
            "long.tsv",
            format!("id\ttitle\tabstract\n1\tT\t{long}\n"),
            Format::Tsv,
        ),
        (
            "long-beir.jsonl",
            format!("{{\"_id\": \"1\", \"title\": \"T\", \"text\": \"{long}\"}}\n"),
            Format::Beir,
        ),
        (
            "long.txt",
            format!("Title\n\n{long}\n\n  • 2 authors\n·\nMar 4, 2021\n"),
            Format::HfDaily,
        ),
    ];
    for (name, body, format) in cases {
        let path = write(&dir, name, body.as_bytes());
        let (papers, summary) = read(&path);
        assert_eq!(summary.format, format);
        assert!(summary.issues.is_empty(), "{name}: {:?}", summary.issues);
        assert_eq!(papers.len(), 1, "{name}");
        assert_eq!(papers[0].abstract_text.chars().count(), 100_000, "{name}");
    }
}

#[test]
fn hf_daily_text_without_markers_is_not_buffered_whole() {
    let dir = tempfile::tempdir().unwrap();
    // 3 MB of short lines and no `• N authors` line between two papers, as
    // when a log or a book is read as an hf-daily copy: a bad record at the
    // line where the text starts, naming the line where it passed the cap,
    // and the reader goes on with the next paper.
    let mut body = String::from("First\n\nFine abstract.\n\n  • 2 authors\n·\nMar 4, 2021\n\n");
    body.push_str("Runaway\n\n");
    for i in 0..150_000 {
        body.push_str(&format!("line {i} of a long text\n"));
    }
    body.push_str("\n  • 1 author\n·\nMar 5, 2021\n\nLast\n\nIts abstract.\n\n  • 3 authors\n");
    let path = write(&dir, "runaway.txt", body.as_bytes());
    let (papers, summary) = read(&path);
    assert_eq!(ids(&papers), ["first", "last"]);
    assert_eq!(lines(&summary.issues), [9]);
    let text = issue_text(&summary, 9);
    assert!(
        text.starts_with(&format!("{}:9: line ", path.display()))
            && text.contains("passes 1048576 bytes (MAX_LINE_BYTES)"),
        "{text}"
    );

    // The same text with no paper at all after it.
    let tail: String = (0..150_000).map(|i| format!("line {i}\n")).collect();
    let path = write(&dir, "log.txt", tail.as_bytes());
    let (papers, summary) = read(&path);
    assert!(papers.is_empty());
    assert_eq!(lines(&summary.issues), [1]);
    assert!(issue_text(&summary, 1).contains("passes 1048576 bytes"));
}
