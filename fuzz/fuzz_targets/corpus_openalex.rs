//! The openalex corpus reader on arbitrary bytes (gzip included: the reader
//! sniffs the magic bytes whatever the format).
#![no_main]

use libfuzzer_sys::fuzz_target;
use papersim::corpus::Format;

#[path = "corpus_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::write_input("corpus", data);
    common::check_corpus(&path, Some(Format::OpenAlex));
});
