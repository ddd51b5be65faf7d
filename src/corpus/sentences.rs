//! Sentences of a paper: what sentence-level matching and explanations
//! compare. One splitter for both, so that a stored sentence vector and the
//! sentence text shown next to it are always the same sentence.

use super::Paper;

/// Sentences stored per paper (its title counts as one): bounds the size of
/// a library's sentence vectors for the rare abstract that runs long.
pub const MAX_PAPER_SENTENCES: usize = 32;

/// Splits prose into sentences at `.`, `!` or `?` followed by a space and an
/// upper-case letter or digit, keeping common abbreviations ("e.g.", "et
/// al.", "Fig.") and decimals inside their sentence.
pub fn split_sentences(text: &str) -> Vec<String> {
    const ABBREVIATIONS: [&str; 10] = [
        "e.g.", "i.e.", "al.", "fig.", "eq.", "vs.", "cf.", "sec.", "approx.", "etc.",
    ];
    let mut out = Vec::new();
    let mut current = String::new();
    let words: Vec<&str> = text.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(w);
        let ends = w.ends_with(['.', '!', '?'])
            && !ABBREVIATIONS.contains(&w.to_lowercase().as_str())
            && words
                .get(i + 1)
                .and_then(|n| n.chars().next())
                .is_none_or(|c| c.is_uppercase() || c.is_ascii_digit());
        if ends {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The sentences of a paper, in order: its title, then the sentences of its
/// abstract, empty ones left out, at most [`MAX_PAPER_SENTENCES`].
pub fn paper_sentences(p: &Paper) -> Vec<String> {
    std::iter::once(p.title.trim().to_string())
        .chain(split_sentences(&p.abstract_text))
        .filter(|s| !s.trim().is_empty())
        .take(MAX_PAPER_SENTENCES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_ends_not_abbreviations() {
        let s = split_sentences(
            "We study X, e.g. in vision. Results improve by 3.5 points! Is it new? \
             Yes, see Fig. 2 and Smith et al. for details. 42 runs confirm it.",
        );
        assert_eq!(
            s,
            vec![
                "We study X, e.g. in vision.",
                "Results improve by 3.5 points!",
                "Is it new?",
                "Yes, see Fig. 2 and Smith et al. for details.",
                "42 runs confirm it.",
            ]
        );
        assert!(split_sentences("").is_empty());
        assert_eq!(split_sentences("no end"), vec!["no end"]);
    }

    #[test]
    fn paper_sentences_start_with_the_title_and_skip_empty_ones() {
        let p = Paper {
            id: "a".into(),
            title: "A title".into(),
            abstract_text: "First one. Second one.".into(),
            ..Paper::default()
        };
        assert_eq!(
            paper_sentences(&p),
            vec!["A title", "First one.", "Second one."]
        );
        let untitled = Paper {
            title: "  ".into(),
            ..p
        };
        assert_eq!(paper_sentences(&untitled).len(), 2);
    }
}
