//! BibTeX entries that BibTeX, biber and LaTeX accept.
//!
//! # Entry types
//!
//! A hit with a journal is an `@article` (`journal`), else one with
//! proceedings is an `@inproceedings` (`booktitle`), else an `@misc`. Every
//! type gets `doi` and `url` when known, and `eprint` / `archivePrefix` /
//! `primaryClass` when the paper has an arXiv id (its `id` or its `eprint`).
//! An old-style id with a subject class, `math.CO/0406001`, is written the
//! way arXiv writes it: `eprint = {math/0406001}`, `primaryClass = {math.CO}`.
//!
//! # Keys
//!
//! `lastnameYEARword`: the first author's last name, the year and the first
//! title word of four letters or more, folded to `[a-z0-9]` (LaTeX accents
//! and Latin letters with diacritics lose them, `ß` becomes `ss`, `\L`
//! becomes `l`; other characters are dropped), `anon` and `paper` when
//! nothing is left. Keys repeated within one list get `a`, `b`, … `z`,
//! `aa`, `ab`, … appended, so the same list always gets the same keys.
//!
//! # Text fields
//!
//! Titles, authors and venues come either as plain text or already holding
//! LaTeX (arXiv titles are full of `$\alpha$`, `{GPU}` and `Bal\'azs`; a
//! `.bib` corpus is LaTeX throughout). [`latex_text`] keeps what is LaTeX
//! and escapes what is plain text:
//!
//! - `\` followed by letters (`\alpha`, `\L`), by punctuation (`\'`, `\"`,
//!   `\&`, `\%`, `\_`, `\$`, `\{`, `\ `) is a LaTeX command and is kept;
//!   a `\` at the end, or before a digit or non-ASCII character, is
//!   `\textbackslash{}`.
//! - `$…$` (and `$$…$$`) is math and is kept whole when the opening `$` is
//!   followed by a non-space, the next `$` (where LaTeX ends math) is
//!   preceded by a non-space and not followed by a digit (pandoc's rule:
//!   `$5 and $10` is money, not math), and the braces inside pair up.
//!   Any other `$` is `\$`.
//! - Braces are kept when they pair up: bare with bare, escaped with
//!   escaped, inside the same math or both outside math. BibTeX counts
//!   every brace, escaped or not, and one unpaired brace breaks the rest of
//!   the file, so an unpaired `{` or `\{` becomes `\textbraceleft{}`, and
//!   `}` likewise.
//! - `&`, `%` and `#` are escaped everywhere, math included (there they
//!   would be an alignment tab, a comment and a macro parameter).
//! - Outside math, `_` is `\_` and `^` is `\textasciicircum{}`; `~` between
//!   two non-spaces is LaTeX's tie (`D.~E. Knuth`) and is kept, any other
//!   `~` is `\textasciitilde{}`.
//! - Control characters become spaces. Everything else, non-ASCII included,
//!   is kept as UTF-8: biber, bibtex8, bibtexu and LaTeX (UTF-8 input is its
//!   default since 2018) read it, and classic BibTeX passes it through.
//!
//! Authors are joined with ` and `; a name that itself holds the word `and`
//! ("Barnes and Noble") is braced so that BibTeX keeps it one name. The
//! title is braced once more as a whole, so that styles keep its case.
//! DOIs, URLs and eprints are verbatim fields: braces, backslashes and
//! spaces are dropped from them, nothing else changes.

use std::collections::HashSet;
use std::fmt::Write;

use super::year;
use crate::corpus::is_arxiv_id;
use crate::query::Hit;

/// BibTeX entries for `hits`, in order (see the module documentation).
pub fn bibtex(hits: &[Hit]) -> String {
    let mut used: HashSet<String> = HashSet::new();
    let mut out = String::new();
    for h in hits {
        let key = unique_key(&bib_key(h), &mut used);
        let mut fields: Vec<(&str, String)> =
            vec![("title", format!("{{{}}}", latex_text(&h.title)))];
        let names: Vec<String> = h
            .authors
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(author)
            .collect();
        if !names.is_empty() {
            fields.push(("author", names.join(" and ")));
        }
        let y = year(&h.date);
        if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()) {
            fields.push(("year", y.to_string()));
        }
        let nonempty = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let kind = if let Some(j) = nonempty(&h.journal) {
            fields.push(("journal", latex_text(&j)));
            "article"
        } else if let Some(b) = nonempty(&h.booktitle) {
            fields.push(("booktitle", latex_text(&b)));
            "inproceedings"
        } else {
            "misc"
        };
        if let Some(doi) = nonempty(&h.doi).map(|d| verbatim(strip_doi_prefix(&d))) {
            if !doi.is_empty() {
                fields.push(("doi", doi));
            }
        }
        if let Some(u) = nonempty(&h.url).map(|u| verbatim(&u)) {
            if !u.is_empty() {
                fields.push(("url", u));
            }
        }
        let arxiv = nonempty(&h.eprint)
            .filter(|e| is_arxiv_id(e))
            .or_else(|| is_arxiv_id(&h.id).then(|| h.id.clone()));
        if let Some(id) = arxiv {
            let (eprint, class) = split_old_style(&id);
            let class = class.or_else(|| {
                h.categories.first().map(|c| {
                    c.chars()
                        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                        .collect()
                })
            });
            fields.push(("eprint", verbatim(&eprint)));
            fields.push(("archivePrefix", "arXiv".into()));
            if let Some(c) = class.filter(|c| !c.is_empty()) {
                fields.push(("primaryClass", c));
            }
        }
        let _ = writeln!(out, "@{kind}{{{key},");
        for (name, value) in &fields {
            let _ = writeln!(out, "  {name} = {{{value}}},");
        }
        let _ = writeln!(out, "}}\n");
    }
    out
}

/// `base`, or `base` with the first suffix (`a` … `z`, `aa`, `ab`, …) that
/// is not in `used`; the key returned is added to `used`.
fn unique_key(base: &str, used: &mut HashSet<String>) -> String {
    let mut key = base.to_string();
    let mut n = 0usize;
    while used.contains(&key) {
        n += 1;
        key = format!("{base}{}", letters(n));
    }
    used.insert(key.clone());
    key
}

/// 1 → `a`, 26 → `z`, 27 → `aa`, 28 → `ab`, … (bijective base 26).
fn letters(mut n: usize) -> String {
    let mut s = Vec::new();
    while n > 0 {
        n -= 1;
        s.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

fn bib_key(h: &Hit) -> String {
    let last = h
        .authors
        .first()
        .map(|a| last_name(a))
        .map(|n| fold_to_key(&n))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "anon".into());
    let word = h
        .title
        .split_whitespace()
        .map(fold_to_key)
        .find(|w| w.chars().filter(char::is_ascii_alphabetic).count() > 3)
        .unwrap_or_else(|| "paper".into());
    let y = year(&h.date);
    let y = if y.bytes().all(|b| b.is_ascii_digit()) {
        y
    } else {
        ""
    };
    format!("{last}{y}{word}")
}

/// The last name of `First Last` or of BibTeX's `Last, First`.
fn last_name(name: &str) -> String {
    match name.split_once(',') {
        Some((last, _)) => last.to_string(),
        None => name.split_whitespace().last().unwrap_or("").to_string(),
    }
}

/// Lowercase `[a-z0-9]` for a key: LaTeX commands that stand for letters
/// become them (`\L` → `l`, `\ss` → `ss`), other commands, accents, braces
/// and math shifts go, Latin letters lose their diacritics, the rest is dropped.
pub(crate) fn fold_to_key(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let mut word = String::new();
            while let Some(&n) = chars.peek().filter(|n| n.is_ascii_alphabetic()) {
                word.push(n);
                chars.next();
            }
            if word.is_empty() {
                chars.next(); // a control symbol: \' \" \& ...
            }
            out.push_str(match word.as_str() {
                "ss" => "ss",
                "o" | "O" | "oe" | "OE" => &word,
                "ae" | "AE" | "aa" | "AA" | "l" | "L" | "i" | "j" => &word,
                _ => "",
            });
            continue;
        }
        fold_char(c, &mut out);
    }
    out.to_ascii_lowercase()
}

/// Latin-1 Supplement and Latin Extended-A letters without their
/// diacritics, from U+00C0; `.` where there is no single ASCII letter.
const LATIN_FOLD: &[u8; 192] = b"aaaaaa.ceeeeiiiidnooooo.ouuuuy..aaaaaa.ceeeeiiiidnooooo.ouuuuy.yaaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiii..jjkkkllllllllllnnnnnnnnnoooooo..rrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";

fn fold_char(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    match c {
        'Æ' | 'æ' => out.push_str("ae"),
        'Þ' | 'þ' => out.push_str("th"),
        'ß' => out.push_str("ss"),
        'Ĳ' | 'ĳ' => out.push_str("ij"),
        'Œ' | 'œ' => out.push_str("oe"),
        _ => {
            let i = (c as u32).wrapping_sub(0xC0) as usize;
            if let Some(&b) = LATIN_FOLD.get(i).filter(|&&b| b != b'.') {
                out.push(b as char);
            }
        }
    }
}

/// An author name as a BibTeX name: its text made LaTeX, and braced when
/// the word `and` in it would split it in two.
fn author(name: &str) -> String {
    let text = latex_text(name);
    if text
        .split_whitespace()
        .any(|w| w.eq_ignore_ascii_case("and"))
    {
        format!("{{{text}}}")
    } else {
        text
    }
}

/// `https://doi.org/10.1/x`, `doi:10.1/x` → `10.1/x`.
fn strip_doi_prefix(doi: &str) -> &str {
    let lower = doi.to_ascii_lowercase();
    for prefix in [
        "https://doi.org/",
        "http://doi.org/",
        "https://dx.doi.org/",
        "http://dx.doi.org/",
        "doi:",
    ] {
        if lower.starts_with(prefix) {
            return doi[prefix.len()..].trim_start();
        }
    }
    doi
}

/// A verbatim field's value (DOI, URL, eprint): without the braces and
/// backslashes that would unbalance or escape the entry, and without spaces.
fn verbatim(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '{' | '}' | '\\') && !c.is_whitespace() && !c.is_control())
        .collect()
}

/// `math.CO/0406001v2` → (`math/0406001v2`, `math.CO`); any other id as it is.
fn split_old_style(id: &str) -> (String, Option<String>) {
    match id.split_once('/') {
        Some((archive, number)) => match archive.split_once('.') {
            Some((name, _)) => (format!("{name}/{number}"), Some(archive.to_string())),
            None => (id.to_string(), None),
        },
        None => (id.to_string(), None),
    }
}

/// Makes `s` a LaTeX text field value: keeps its LaTeX, escapes its plain
/// text, balances its braces (the rules are in the module documentation).
pub fn latex_text(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let math = math_spans(&chars);
    let unpaired = unpaired_braces(&chars, &math);
    let in_math = |i: usize| math.iter().any(|&(a, b)| a <= i && i <= b);
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let m = in_math(i);
        match c {
            '\\' => match chars.get(i + 1) {
                None => out.push_str(r"\textbackslash{}"),
                Some(&n) if n.is_ascii_alphabetic() => {
                    out.push('\\');
                    i += 1;
                    while let Some(&l) = chars.get(i).filter(|l| l.is_ascii_alphabetic()) {
                        out.push(l);
                        i += 1;
                    }
                    continue;
                }
                Some(&n @ ('{' | '}')) => {
                    if unpaired.contains(&(i + 1)) {
                        out.push_str(brace_word(n));
                    } else {
                        out.push('\\');
                        out.push(n);
                    }
                    i += 2;
                    continue;
                }
                Some(&n) if n.is_ascii_punctuation() || n == ' ' => {
                    out.push('\\');
                    out.push(n);
                    i += 2;
                    continue;
                }
                Some(_) => out.push_str(r"\textbackslash{}"),
            },
            '{' | '}' if unpaired.contains(&i) => out.push_str(brace_word(c)),
            '&' | '%' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '$' if !m => out.push_str(r"\$"),
            '_' if !m => out.push_str(r"\_"),
            '^' if !m => out.push_str(r"\textasciicircum{}"),
            '~' if !m => {
                let tie = i > 0
                    && !chars[i - 1].is_whitespace()
                    && chars.get(i + 1).is_some_and(|n| !n.is_whitespace());
                out.push_str(if tie { "~" } else { r"\textasciitilde{}" });
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// An unpaired brace as text (math spans never hold one: see [`math_spans`]).
fn brace_word(brace: char) -> &'static str {
    if brace == '{' {
        r"\textbraceleft{}"
    } else {
        r"\textbraceright{}"
    }
}

/// Indices of the braces that have no partner. A brace pairs only with
/// one of its own kind (escaped `\{` with `\}`, bare `{` with `}`) in the
/// same place (outside math, or inside the same math span): LaTeX sees
/// those as pairs, and BibTeX, which counts every brace alike, then sees
/// balanced braces too.
fn unpaired_braces(chars: &[char], spans: &[(usize, usize)]) -> HashSet<usize> {
    let escaped = escaped_chars(chars);
    let place = |i: usize| spans.iter().position(|&(a, b)| a <= i && i <= b);
    let mut open: Vec<(usize, bool, Option<usize>)> = Vec::new();
    let mut unpaired = HashSet::new();
    for (i, &c) in chars.iter().enumerate() {
        let kind = (escaped[i], place(i));
        match c {
            '{' => open.push((i, kind.0, kind.1)),
            '}' => match open.iter().rposition(|&(_, e, p)| (e, p) == kind) {
                Some(j) => {
                    open.remove(j);
                }
                None => {
                    unpaired.insert(i);
                }
            },
            _ => {}
        }
    }
    unpaired.extend(open.into_iter().map(|(i, _, _)| i));
    unpaired
}

/// Which characters a backslash escapes (`\{`: the brace; `\\{`: not).
fn escaped_chars(chars: &[char]) -> Vec<bool> {
    let mut escaped = vec![false; chars.len()];
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            escaped[i + 1] = true;
            i += 2;
        } else {
            i += 1;
        }
    }
    escaped
}

/// Inclusive index ranges of `$…$` and `$$…$$` math (pandoc's rule: see
/// the module documentation) whose braces pair up inside them. Escaped
/// `\$` neither opens nor closes.
fn math_spans(chars: &[char]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '$' => {
                let fence = if chars.get(i + 1) == Some(&'$') { 2 } else { 1 };
                let start = i + fence;
                match close_math(chars, start, fence) {
                    Some(end) => {
                        spans.push((i, end + fence - 1));
                        i = end + fence;
                    }
                    None => i += fence,
                }
            }
            _ => i += 1,
        }
    }
    spans
}

/// Where the math opened before `start` closes: at the next `$`, if that
/// is a closing one and the braces between pair up.
fn close_math(chars: &[char], start: usize, fence: usize) -> Option<usize> {
    if chars.get(start).is_none_or(|c| c.is_whitespace()) {
        return None;
    }
    let mut j = start;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            '$' => {
                let closes = (fence == 1 || chars.get(j + 1) == Some(&'$'))
                    && j > start
                    && !chars[j - 1].is_whitespace()
                    && !chars.get(j + fence).is_some_and(|c| c.is_ascii_digit());
                // LaTeX ends math at the first `$`, so one that cannot
                // close means there was no math.
                let inner = &chars[start..j];
                return (closes && unpaired_braces(inner, &[]).is_empty()).then_some(j);
            }
            _ => j += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use biblatex::{Bibliography, ChunksExt};

    fn hit(id: &str, title: &str, authors: &[&str], date: &str) -> Hit {
        Hit {
            rank: 1,
            id: id.into(),
            title: title.into(),
            score: 0.5,
            fused: None,
            bm25: None,
            authors: authors.iter().map(|a| a.to_string()).collect(),
            categories: vec!["cs.LG".into()],
            date: Some(date.into()),
            url: None,
            doi: None,
            journal: None,
            booktitle: None,
            eprint: None,
            why: None,
        }
    }

    /// What a field reads as once a real parser has resolved its LaTeX.
    fn field(entry: &biblatex::Entry, name: &str) -> Option<String> {
        entry.get(name).map(|c| c.format_verbatim())
    }

    /// Each fixture: the hit, then the title and authors as biblatex reads
    /// them back from the entry.
    fn fixtures() -> Vec<(Hit, &'static str, Vec<&'static str>)> {
        let mut doi = hit(
            "smith2020",
            "Fast & Sparse: 100% of #1 at a_b ~10x cheaper",
            &["Ada Lovelace", "Alan Turing"],
            "2020-05-01",
        );
        doi.doi = Some("https://doi.org/10.1145/3394486.3403_001".into());
        doi.journal = Some("Journal of Machine Learning Research".into());
        doi.eprint = Some("2005.00001".into());
        let mut conf = hit(
            "math.CO/0406001",
            "Attention for {GPU}s with $\\alpha$-entmax",
            &["Bal\\'azs K\\'egl", "Zoë Ñúñez-Łukasz"],
            "2004-06-01",
        );
        conf.booktitle = Some("Proceedings of ACL & EMNLP".into());
        vec![
            (
                doi,
                "Fast & Sparse: 100% of #1 at a_b ~10x cheaper",
                vec!["Ada Lovelace", "Alan Turing"],
            ),
            (
                conf,
                "Attention for GPUs with $\\alpha$-entmax",
                vec!["Balázs Kégl", "Zoë Ñúñez-Łukasz"],
            ),
            (
                hit(
                    "1812.06145v2",
                    "Unbalanced } braces { and \\{ and $5 or $10",
                    &["J\\\"{o}rg M\\\"uller", "李 小龍", "Barnes and Noble"],
                    "2018-12-14",
                ),
                "Unbalanced } braces { and { and $5 or $10",
                vec!["Jörg Müller", "李 小龍", "Barnes and Noble"],
            ),
        ]
    }

    #[test]
    fn entries_round_trip_through_a_real_parser() {
        let fixtures = fixtures();
        let hits: Vec<Hit> = fixtures.iter().map(|f| f.0.clone()).collect();
        let text = bibtex(&hits);
        let bib = Bibliography::parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(bib.len(), hits.len(), "{text}");
        for ((h, title, authors), entry) in fixtures.iter().zip(bib.iter()) {
            assert!(
                entry
                    .key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{}",
                entry.key
            );
            assert_eq!(field(entry, "title").as_deref(), Some(*title), "{text}");
            let people = entry.author().unwrap_or_else(|e| panic!("{e:?}\n{text}"));
            let names: Vec<String> = people
                .iter()
                .map(|p| {
                    [&p.given_name, &p.prefix, &p.name]
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            assert_eq!(names, *authors, "{text}");
            assert_eq!(
                field(entry, "year").as_deref(),
                Some(&h.date.as_deref().unwrap()[..4])
            );
        }
        let first = &bib.iter().next().unwrap();
        assert_eq!(first.entry_type.to_string(), "article");
        assert_eq!(
            field(first, "doi").as_deref(),
            Some("10.1145/3394486.3403_001")
        );
        assert_eq!(field(first, "eprint").as_deref(), Some("2005.00001"));
        assert_eq!(
            field(first, "journal").as_deref(),
            Some("Journal of Machine Learning Research")
        );
        let second = &bib.iter().nth(1).unwrap();
        assert_eq!(second.entry_type.to_string(), "inproceedings");
        assert_eq!(field(second, "eprint").as_deref(), Some("math/0406001"));
        assert_eq!(field(second, "primaryclass").as_deref(), Some("math.CO"));
        assert_eq!(
            field(second, "booktitle").as_deref(),
            Some("Proceedings of ACL & EMNLP")
        );
        let third = &bib.iter().nth(2).unwrap();
        assert_eq!(third.entry_type.to_string(), "misc");
        assert_eq!(field(third, "eprint").as_deref(), Some("1812.06145v2"));
    }

    #[test]
    fn latex_is_kept_and_plain_text_escaped() {
        assert_eq!(latex_text(r"Bal\'azs"), r"Bal\'azs");
        assert_eq!(latex_text(r#"J\"{o}rg"#), r#"J\"{o}rg"#);
        assert_eq!(latex_text("{GPU} $\\alpha_1^2$"), "{GPU} $\\alpha_1^2$");
        assert_eq!(
            latex_text("a_b ^c & 5% #1"),
            r"a\_b \textasciicircum{}c \& 5\% \#1"
        );
        assert_eq!(latex_text(r"\& \% already"), r"\& \% already");
        assert_eq!(latex_text("$5 and $10"), r"\$5 and \$10");
        assert_eq!(
            latex_text("D.~E. Knuth, ~10x"),
            r"D.~E. Knuth, \textasciitilde{}10x"
        );
        assert_eq!(
            latex_text("a } b {"),
            r"a \textbraceright{} b \textbraceleft{}"
        );
        assert_eq!(latex_text(r"x \{ y"), r"x \textbraceleft{} y");
        assert_eq!(latex_text("ends in \\"), r"ends in \textbackslash{}");
        assert_eq!(latex_text("Zoë 李"), "Zoë 李");
        assert_eq!(latex_text("$$x$$ and $y$"), "$$x$$ and $y$");
    }

    #[test]
    fn keys_are_ascii_and_unique_past_z() {
        let h = hit(
            "x",
            "On Gödel Numbering",
            &["Łukasz Kaiser-Müller"],
            "2020-01-01",
        );
        let text = bibtex(&vec![h; 30]);
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("@misc{"))
            .map(|l| l.trim_end_matches(','))
            .collect();
        assert_eq!(keys.len(), 30);
        assert_eq!(keys[0], "kaisermuller2020godel");
        assert_eq!(keys[1], "kaisermuller2020godela");
        assert_eq!(keys[26], "kaisermuller2020godelz");
        assert_eq!(keys[27], "kaisermuller2020godelaa");
        assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 30);
        for k in keys {
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{k}"
            );
        }
        assert_eq!(
            fold_to_key(r"{\L}ukasz Bal\'azs Stra\ss e"),
            "lukaszbalazsstrasse"
        );
        assert_eq!(letters(1), "a");
        assert_eq!(letters(26), "z");
        assert_eq!(letters(27), "aa");
        assert_eq!(letters(52), "az");
        assert_eq!(letters(53), "ba");
    }

    #[test]
    fn old_style_ids_are_eprints() {
        let text = bibtex(&[hit("math.CO/0406001", "Some Title", &[], "2004-06-01")]);
        assert!(text.contains("eprint = {math/0406001}"), "{text}");
        assert!(text.contains("primaryClass = {math.CO}"), "{text}");
        let text = bibtex(&[hit("cs/0112017", "Some Title", &[], "2001-12-01")]);
        assert!(text.contains("eprint = {cs/0112017}"), "{text}");
        assert!(text.contains("primaryClass = {cs.LG}"), "{text}");
    }

    proptest::proptest! {
        /// Whatever the text, the entry parses and its braces balance.
        #[test]
        fn any_text_makes_a_parsable_entry(
            title in "[a-zA-Z \\{}$&%#_^~'\"é李0-9]{0,40}",
            author in "[a-zA-Z \\{}$&%#_^~'\"é李]{0,20}",
        ) {
            let text = bibtex(&[hit("2101.00001", &title, &[&author], "2021-01-01")]);
            let mut depth = 0i32;
            for c in text.chars() {
                depth += match c { '{' => 1, '}' => -1, _ => 0 };
                proptest::prop_assert!(depth >= 0, "{}", text);
            }
            proptest::prop_assert_eq!(depth, 0, "{}", text);
            let bib = Bibliography::parse(&text);
            proptest::prop_assert!(bib.is_ok(), "{:?}\n{}", bib.err(), text);
            proptest::prop_assert_eq!(bib.map(|b| b.len()).unwrap_or(0), 1);
        }
    }
}
