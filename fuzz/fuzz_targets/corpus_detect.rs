//! Format detection (by name and by content) followed by reading whatever was
//! detected, and the `embed` command's `{"id", "text"}` reader. The first byte
//! picks the file name, so extension-based and content-based detection are
//! both exercised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use papersim::corpus;

#[path = "corpus_common.rs"]
mod common;

const NAMES: [&str; 8] = [
    "corpus",
    "corpus.jsonl",
    "corpus.json.gz",
    "corpus.csv",
    "corpus.TSV.gz",
    "corpus.txt",
    "corpus.md",
    "corpus.gz",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let path = common::write_input(NAMES[usize::from(pick) % NAMES.len()], body);
    match corpus::detect_format(&path) {
        Ok(format) => common::check_corpus(&path, Some(format)),
        Err(e) => assert!(e.to_string().contains("corpus")),
    }
    // Detection inside open must agree with detect_format.
    common::check_corpus(&path, None);

    match corpus::read_text_records(&path, false) {
        Ok((records, issues)) => {
            let mut ids = std::collections::HashSet::new();
            for r in &records {
                assert!(!r.id.trim().is_empty() && !r.text.trim().is_empty());
                assert!(ids.insert(r.id.as_str()), "duplicate id {:?}", r.id);
            }
            for issue in &issues {
                assert!(issue.line >= 1);
            }
            match corpus::read_text_records(&path, true) {
                Ok((strict, none)) => {
                    assert!(issues.is_empty() && none.is_empty() && strict == records)
                }
                Err(corpus::CorpusError::BadRecord(first)) => {
                    assert_eq!(Some(&first), issues.first())
                }
                Err(e) => panic!("strict text records: {e}"),
            }
        }
        Err(e) => panic!("lenient text records on a readable file: {e}"),
    }
});
