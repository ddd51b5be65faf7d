//! The arXiv listing reader (Atom, OAI-PMH, RSS) on arbitrary bytes: a
//! listing is parsed whole, so any damage must be an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use papersim::corpus::Format;

#[path = "corpus_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::write_input("corpus", data);
    common::check_corpus(&path, Some(Format::Listing));
});
