//! Sentences of a paper: what sentence-level matching and explanations
//! compare. One splitter for both, so that a stored sentence vector and the
//! sentence text shown next to it are always the same sentence.

use std::ops::Range;

use super::{Paper, TextTemplate};

/// Sentences stored per paper (its title counts as one): bounds the size of
/// a library's sentence vectors for the rare abstract that runs long.
pub const MAX_PAPER_SENTENCES: usize = 32;

/// Splits prose into sentences at `.`, `!` or `?` followed by a space and an
/// upper-case letter or digit, keeping common abbreviations ("e.g.", "et
/// al.", "Fig.") and decimals inside their sentence. Each sentence's words
/// are joined by single spaces.
pub fn split_sentences(text: &str) -> Vec<String> {
    sentence_ranges(text)
        .into_iter()
        .map(|r| text[r].split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Where each sentence of [`split_sentences`] lies in `text`: the byte range
/// from its first word's first byte to its last word's last.
pub fn sentence_ranges(text: &str) -> Vec<Range<usize>> {
    const ABBREVIATIONS: [&str; 10] = [
        "e.g.", "i.e.", "al.", "fig.", "eq.", "vs.", "cf.", "sec.", "approx.", "etc.",
    ];
    // Each word with its byte offset (split_whitespace yields subslices).
    let words: Vec<(usize, &str)> = text
        .split_whitespace()
        .map(|w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
        .collect();
    let mut out = Vec::new();
    let mut start = None;
    for (i, &(at, w)) in words.iter().enumerate() {
        let first = *start.get_or_insert(at);
        let ends = w.ends_with(['.', '!', '?'])
            && !ABBREVIATIONS.contains(&w.to_lowercase().as_str())
            && words
                .get(i + 1)
                .and_then(|(_, n)| n.chars().next())
                .is_none_or(|c| c.is_uppercase() || c.is_ascii_digit());
        if ends || i + 1 == words.len() {
            out.push(first..at + w.len());
            start = None;
        }
    }
    out
}

/// The sentences of a paper, in order: its title, then the sentences of its
/// abstract, empty ones left out, at most [`MAX_PAPER_SENTENCES`].
pub fn paper_sentences(p: &Paper) -> Vec<String> {
    sentence_parts(p).into_iter().map(|(_, s, _)| s).collect()
}

/// A paper's text as a template renders it, with its sentences
/// ([`paper_sentences`]) and where each lies in that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedSentences {
    /// The text [`TextTemplate::render`] gives for the paper.
    pub text: String,
    /// [`paper_sentences`] of the paper.
    pub sentences: Vec<String>,
    /// Each sentence's byte range in `text`; `None` where the template
    /// leaves the sentence's field (title or abstract) out.
    pub spans: Vec<Option<Range<usize>>>,
}

/// [`paper_sentences`] of `p`, located in the text `template` renders for
/// it: the title where the template put it, the abstract's sentences inside
/// the abstract.
pub fn locate_sentences(template: &TextTemplate, p: &Paper) -> LocatedSentences {
    let (text, title_at, abstract_at) = template.render_at(p);
    let (sentences, spans) = sentence_parts(p)
        .into_iter()
        .map(|(field, s, r)| {
            let at = match field {
                Field::Title => title_at,
                Field::Abstract => abstract_at,
            };
            (s, at.map(|at| at + r.start..at + r.end))
        })
        .unzip();
    LocatedSentences {
        text,
        sentences,
        spans,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Title,
    Abstract,
}

/// The sentences of `p` with the field each comes from and its byte range
/// in that field trimmed (as a template renders it).
fn sentence_parts(p: &Paper) -> Vec<(Field, String, Range<usize>)> {
    let title = p.title.trim();
    let abstract_text = p.abstract_text.trim();
    std::iter::once((Field::Title, title.to_string(), 0..title.len()))
        .chain(sentence_ranges(abstract_text).into_iter().map(|r| {
            let s = abstract_text[r.clone()]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            (Field::Abstract, s, r)
        }))
        .filter(|(_, s, _)| !s.trim().is_empty())
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

    #[test]
    fn located_sentences_point_at_themselves_in_the_rendered_text() {
        let p = Paper {
            id: "a".into(),
            title: " A  title ".into(),
            abstract_text: "  First  one,\ne.g. this.  Second one! ".into(),
            ..Paper::default()
        };
        let l = locate_sentences(&TextTemplate::default(), &p);
        assert_eq!(l.text, "A  title. First  one,\ne.g. this.  Second one!");
        assert_eq!(l.sentences, paper_sentences(&p));
        assert_eq!(
            l.sentences,
            vec!["A  title", "First one, e.g. this.", "Second one!"]
        );
        let at: Vec<&str> = l
            .spans
            .iter()
            .map(|r| &l.text[r.clone().unwrap()])
            .collect();
        assert_eq!(
            at,
            vec!["A  title", "First  one,\ne.g. this.", "Second one!"]
        );

        // The abstract first, the title once, inside other fields.
        let t: TextTemplate = "{categories}: {abstract} ({title}) {title}"
            .parse()
            .unwrap();
        let p = Paper {
            categories: vec!["cs.CL".into()],
            ..p
        };
        let l = locate_sentences(&t, &p);
        let at: Vec<&str> = l
            .spans
            .iter()
            .map(|r| &l.text[r.clone().unwrap()])
            .collect();
        assert_eq!(
            at,
            vec!["A  title", "First  one,\ne.g. this.", "Second one!"]
        );
        assert!(l.spans[0].as_ref().unwrap().start > l.spans[2].as_ref().unwrap().end);

        // A field the template leaves out is nowhere in the text.
        let l = locate_sentences(&"{title}".parse().unwrap(), &p);
        assert_eq!(l.spans, vec![Some(0..8), None, None]);
        assert_eq!(l.sentences.len(), 3);
    }

    #[test]
    fn sentence_ranges_cover_the_split_sentences() {
        let text = " One. Two  words?\tThree";
        let r = sentence_ranges(text);
        assert_eq!(
            r.iter().map(|r| &text[r.clone()]).collect::<Vec<_>>(),
            vec!["One.", "Two  words?", "Three"]
        );
        assert_eq!(split_sentences(text), vec!["One.", "Two words?", "Three"]);
    }
}
