//! Field clean-up shared by the formats.

use chrono::{DateTime, NaiveDate};

use super::MAX_ABSTRACT_CHARS;

/// Collapses runs of whitespace (newlines included) to one space and trims:
/// arXiv metadata hard-wraps titles and abstracts at ~80 columns.
pub(crate) fn normalize_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

pub(crate) fn clean_abstract(s: &str) -> String {
    let mut out = normalize_whitespace(s);
    // Byte length bounds char count from above, so short abstracts skip the scan.
    if out.len() > MAX_ABSTRACT_CHARS {
        if let Some((cut, _)) = out.char_indices().nth(MAX_ABSTRACT_CHARS) {
            out.truncate(cut);
        }
    }
    out
}

/// A paper needs some text to embed.
pub(crate) fn ensure_text(title: &str, abstract_text: &str) -> Result<(), String> {
    if title.is_empty() && abstract_text.is_empty() {
        Err("record has neither a title nor an abstract".to_string())
    } else {
        Ok(())
    }
}

/// Splits a one-string author list as in the Kaggle arXiv snapshot:
/// `"A, B and C"`, also with an Oxford comma (`"A, B, and C"`).
pub(crate) fn split_author_string(s: &str) -> Vec<String> {
    normalize_whitespace(s)
        .split(", ")
        .flat_map(|part| part.split(" and "))
        .map(|name| {
            let name = name.trim();
            name.strip_prefix("and ").unwrap_or(name).trim()
        })
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// `Last, First` (Zotero, Mendeley, RIS) becomes `First Last`; a name with
/// no comma or more than one is kept as it is, whitespace-normalised.
pub(crate) fn last_first_to_first_last(name: &str) -> String {
    let name = normalize_whitespace(name);
    match name.split_once(',') {
        Some((last, first)) if !first.contains(',') => {
            let (last, first) = (last.trim(), first.trim());
            match (first.is_empty(), last.is_empty()) {
                (true, _) => last.to_string(),
                (false, true) => first.to_string(),
                (false, false) => format!("{first} {last}"),
            }
        }
        _ => name,
    }
}

/// A DOI without its resolver or `doi:` prefix (`https://doi.org/10.1/x` →
/// `10.1/x`); `None` when blank.
pub(crate) fn normalize_doi(raw: &str) -> Option<String> {
    let mut s = raw.trim();
    for prefix in [
        "https://doi.org/",
        "http://doi.org/",
        "https://dx.doi.org/",
        "http://dx.doi.org/",
        "doi.org/",
        "doi:",
    ] {
        if s.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        {
            s = s[prefix.len()..].trim();
            break;
        }
    }
    (!s.is_empty()).then(|| s.to_string())
}

/// Trimmed, whitespace-normalised, `None` when blank.
pub(crate) fn non_empty(s: &str) -> Option<String> {
    let s = normalize_whitespace(s);
    (!s.is_empty()).then_some(s)
}

/// Categories as one string: whitespace (arXiv), `;` or `,` separated.
pub(crate) fn split_categories(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The first candidate that parses as a full date (`YYYY-MM-DD`), else the
/// first that starts with a year (`2019`, `2019-06`), else the first
/// non-blank one as given: a Zotero `Date` of `June 2019` loses to its
/// `Publication Year` of `2019`.
pub(crate) fn best_date<'a>(candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut with_year = None;
    let mut fallback = None;
    for raw in candidates {
        let raw = raw.trim();
        if let Some(date) = parse_date(raw) {
            return Some(date.format("%Y-%m-%d").to_string());
        }
        let starts_with_year = raw.len() >= 4 && raw.bytes().take(4).all(|b| b.is_ascii_digit());
        if starts_with_year && with_year.is_none() {
            with_year = Some(raw.to_string());
        }
        if fallback.is_none() {
            fallback = normalize_date(raw);
        }
    }
    with_year.or(fallback)
}

/// `YYYY-MM-DD` when `raw` parses as a date in a common notation, else the raw
/// text (trimmed), so a bare year or an odd notation is kept rather than lost.
pub(crate) fn normalize_date(raw: &str) -> Option<String> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    Some(match parse_date(s) {
        Some(date) => date.format("%Y-%m-%d").to_string(),
        None => s.to_string(),
    })
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    const FORMATS: [&str; 6] = [
        "%Y-%m-%d",
        "%Y/%m/%d",
        "%d %b %Y",
        "%d %B %Y",
        "%b %d, %Y",
        "%B %d, %Y",
    ];
    if let Some(date) = FORMATS
        .iter()
        .find_map(|fmt| NaiveDate::parse_from_str(s, fmt).ok())
    {
        return Some(date);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.date_naive());
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.date_naive());
    }
    // Timestamps with a date in front ("2008-11-13 12:00:00", "...T12:00").
    match (s.get(..10), s.as_bytes().get(10)) {
        (Some(day), Some(b'T' | b' ')) => NaiveDate::parse_from_str(day, "%Y-%m-%d").ok(),
        _ => None,
    }
}

/// Whether `id` is an arXiv identifier: new style `2101.00001(v2)` or old
/// style `hep-th/9901001(v1)`, `math.CO/0406001`.
pub(crate) fn is_arxiv_id(id: &str) -> bool {
    let base = strip_version(id);
    if let Some((archive, number)) = base.split_once('/') {
        let (name, class) = match archive.split_once('.') {
            Some((name, class)) => (name, Some(class)),
            None => (archive, None),
        };
        let name_ok = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        let class_ok =
            class.is_none_or(|c| c.len() == 2 && c.chars().all(|c| c.is_ascii_alphabetic()));
        return name_ok && class_ok && number.len() == 7 && all_digits(number);
    }
    match base.split_once('.') {
        Some((yymm, number)) => {
            yymm.len() == 4
                && all_digits(yymm)
                && (4..=5).contains(&number.len())
                && all_digits(number)
        }
        None => false,
    }
}

/// The month an arXiv id was first submitted in, `YYYY-MM`: new-style ids
/// start with it (`1812.06145` → `2018-12`), old-style ones have it after the
/// archive (`hep-th/9901001` → `1999-01`; arXiv began in 1991).
pub(crate) fn arxiv_id_month(id: &str) -> Option<String> {
    if !is_arxiv_id(id) {
        return None;
    }
    let yymm = match id.split_once('/') {
        Some((_, number)) => number.get(..4)?,
        None => id.get(..4)?,
    };
    let (yy, mm) = (yymm.get(..2)?.parse::<u32>().ok()?, yymm.get(2..)?);
    if !(1..=12).contains(&mm.parse::<u32>().ok()?) {
        return None;
    }
    let century = if yy >= 91 { 1900 } else { 2000 };
    Some(format!("{}-{mm}", century + yy))
}

/// An arXiv id without its version suffix (`2101.00001v2` → `2101.00001`).
pub(crate) fn strip_version(id: &str) -> &str {
    match id.rsplit_once('v') {
        Some((base, version)) if !version.is_empty() && all_digits(version) => base,
        _ => id,
    }
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn arxiv_abs_url(id: &str) -> Option<String> {
    is_arxiv_id(id).then(|| format!("https://arxiv.org/abs/{id}"))
}

/// Longest slug kept before a `-2`, `-3` suffix for duplicates.
pub(crate) const MAX_SLUG_CHARS: usize = 80;

/// Lowercase ASCII alphanumerics; every other run becomes one `-`.
pub(crate) fn slugify(title: &str) -> String {
    let mut slug = String::new();
    let mut gap = false;
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !slug.is_empty() {
                slug.push('-');
            }
            gap = false;
            slug.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    // ASCII only, so any byte index is a char boundary.
    slug.truncate(MAX_SLUG_CHARS);
    while slug.ends_with('-') {
        slug.pop();
    }
    slug
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_collapsed() {
        assert_eq!(normalize_whitespace("  a\n  b\t\tc \r\n"), "a b c");
        assert_eq!(normalize_whitespace(" \n "), "");
    }

    #[test]
    fn long_abstracts_are_cut_at_a_char_boundary() {
        let long = "é".repeat(MAX_ABSTRACT_CHARS + 10);
        let cut = clean_abstract(&long);
        assert_eq!(cut.chars().count(), MAX_ABSTRACT_CHARS);
        assert_eq!(clean_abstract("short"), "short");
    }

    #[test]
    fn kaggle_authors_are_split() {
        assert_eq!(
            split_author_string("C. Bal\\'azs, E. L. Berger, P. M. Nadolsky and C.-P. Yuan"),
            [
                "C. Bal\\'azs",
                "E. L. Berger",
                "P. M. Nadolsky",
                "C.-P. Yuan"
            ]
        );
        assert_eq!(split_author_string("A, B, and C"), ["A", "B", "C"]);
        assert_eq!(
            split_author_string("Ann Anderson and\n  Bo Band"),
            ["Ann Anderson", "Bo Band"]
        );
        assert_eq!(split_author_string("Solo Author"), ["Solo Author"]);
        assert!(split_author_string("  ").is_empty());
    }

    #[test]
    fn zotero_names_and_dois() {
        assert_eq!(last_first_to_first_last(" Lovelace,  Ada "), "Ada Lovelace");
        assert_eq!(last_first_to_first_last("Plato"), "Plato");
        assert_eq!(last_first_to_first_last("Doe, Jr., John"), "Doe, Jr., John");
        assert_eq!(last_first_to_first_last("Curie,"), "Curie");
        assert_eq!(
            normalize_doi("https://doi.org/10.1000/XYZ.1").as_deref(),
            Some("10.1000/XYZ.1")
        );
        assert_eq!(normalize_doi("DOI: 10.1/a").as_deref(), Some("10.1/a"));
        assert_eq!(normalize_doi("10.1/a").as_deref(), Some("10.1/a"));
        assert_eq!(normalize_doi("  "), None);
    }

    #[test]
    fn categories_are_split() {
        assert_eq!(split_categories("cs.CL cs.LG"), ["cs.CL", "cs.LG"]);
        assert_eq!(
            split_categories("cs.CV;cs.AI, stat.ML"),
            ["cs.CV", "cs.AI", "stat.ML"]
        );
    }

    #[test]
    fn dates_are_normalised_when_parseable() {
        assert_eq!(normalize_date("2008-11-13").as_deref(), Some("2008-11-13"));
        assert_eq!(normalize_date("2008/1/3").as_deref(), Some("2008-01-03"));
        assert_eq!(
            normalize_date("2019-05-01T12:00:00Z").as_deref(),
            Some("2019-05-01")
        );
        assert_eq!(
            normalize_date("2019-05-01 12:00:00").as_deref(),
            Some("2019-05-01")
        );
        assert_eq!(
            normalize_date("Mon, 2 Apr 2007 19:18:42 GMT").as_deref(),
            Some("2007-04-02")
        );
        assert_eq!(
            normalize_date("Feb 11, 2020").as_deref(),
            Some("2020-02-11")
        );
        assert_eq!(normalize_date("2020").as_deref(), Some("2020"));
        assert_eq!(normalize_date(" "), None);
    }

    #[test]
    fn arxiv_ids_are_recognised() {
        for id in [
            "1812.06145",
            "2101.00001v2",
            "0704.0001",
            "hep-th/9901001",
            "math.CO/0406001v1",
        ] {
            assert!(is_arxiv_id(id), "{id}");
        }
        for id in ["4983", "12345.678", "abc", "hep-th/99", "W2017v", "doc-1"] {
            assert!(!is_arxiv_id(id), "{id}");
        }
        assert_eq!(
            arxiv_abs_url("math/0406001").as_deref(),
            Some("https://arxiv.org/abs/math/0406001")
        );
    }

    #[test]
    fn arxiv_id_months() {
        assert_eq!(arxiv_id_month("1812.06145").as_deref(), Some("2018-12"));
        assert_eq!(arxiv_id_month("0704.0001v2").as_deref(), Some("2007-04"));
        assert_eq!(arxiv_id_month("hep-th/9901001").as_deref(), Some("1999-01"));
        assert_eq!(
            arxiv_id_month("math.CO/0406001").as_deref(),
            Some("2004-06")
        );
        assert_eq!(arxiv_id_month("1899.00001"), None);
        assert_eq!(arxiv_id_month("W123"), None);
    }

    #[test]
    fn slugs() {
        assert_eq!(
            slugify("HarmoniCa: Harmonizing Training and Inference"),
            "harmonica-harmonizing-training-and-inference"
        );
        assert_eq!(slugify("  --Zero-Shot (TSAD)!  "), "zero-shot-tsad");
        assert_eq!(slugify("Café über α-β"), "caf-ber");
        assert_eq!(slugify("日本語"), "");
        let long = slugify(&"word ".repeat(40));
        assert!(
            long.len() <= MAX_SLUG_CHARS && !long.ends_with('-'),
            "{long}"
        );
    }
}
