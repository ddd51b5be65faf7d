//! Why a paper was recommended: the sentence of the draft (or seed, or
//! query) it matches best, the sentence of the paper that matches it, and
//! the distinctive words they share.

use serde::Serialize;

use super::QueryError;
use crate::embed::Embedder;
use crate::index::dot;
use crate::store::Library;

/// The explanation attached to one hit: the closest pair of sentences
/// between what was asked and the paper, and the words they have in common.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Why {
    /// What the matched sentence comes from: "draft", "query" or "seed ID".
    pub source: String,
    /// The sentence of that source closest to the paper.
    pub source_sentence: String,
    /// The sentence of the paper (its title counts as one) closest to
    /// `source_sentence`.
    pub paper_sentence: String,
    /// Cosine similarity of the two sentences.
    pub similarity: f32,
    /// Up to 5 distinctive words the sources and the paper share, rarest in
    /// the library first, spelt as in the paper.
    pub shared_terms: Vec<String>,
}

/// Sentences per text that take part: bounds the embedding work of an
/// explanation (a 30-result list embeds at most 30 * 24 short sentences).
const MAX_SENTENCES: usize = 24;
const SHARED_TERMS: usize = 5;

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

/// A labelled text the results are explained against.
pub(crate) struct Source {
    pub label: String,
    pub text: String,
}

/// Fills `why` of each hit: embeds the sources' and the hits' sentences in
/// one batch and picks the closest pair per hit.
pub(crate) fn explain(
    lib: &Library,
    embedder: &Embedder,
    sources: &[Source],
    hits: &mut [super::Hit],
) -> Result<(), QueryError> {
    let mut texts: Vec<String> = Vec::new();
    let mut src_sent: Vec<(usize, usize)> = Vec::new(); // (source, index into texts)
    for (s, src) in sources.iter().enumerate() {
        for sent in split_sentences(&src.text).into_iter().take(MAX_SENTENCES) {
            src_sent.push((s, texts.len()));
            texts.push(sent);
        }
    }
    let mut hit_sent: Vec<Vec<usize>> = Vec::with_capacity(hits.len());
    for h in hits.iter() {
        let Some(row) = lib.row_of(&h.id) else {
            hit_sent.push(Vec::new());
            continue;
        };
        let p = lib.paper(row)?;
        let mut mine = Vec::new();
        let sentences = std::iter::once(p.title.clone())
            .chain(split_sentences(&p.abstract_text))
            .filter(|s| !s.trim().is_empty())
            .take(MAX_SENTENCES);
        for sent in sentences {
            mine.push(texts.len());
            texts.push(sent);
        }
        hit_sent.push(mine);
    }
    if src_sent.is_empty() {
        return Ok(());
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (vectors, _) = embedder.embed(&refs, &|_| {})?;
    let dim = embedder.info().dim;
    let v = |i: usize| &vectors[i * dim..(i + 1) * dim];
    let all_sources: String = sources
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for (h, mine) in hits.iter_mut().zip(&hit_sent) {
        let best = src_sent
            .iter()
            .flat_map(|&(s, a)| mine.iter().map(move |&b| (s, a, b)))
            .map(|(s, a, b)| (dot(v(a), v(b)), s, a, b))
            .max_by(|x, y| x.0.total_cmp(&y.0));
        let Some((sim, s, a, b)) = best else {
            continue;
        };
        let paper_text = match lib.row_of(&h.id) {
            Some(r) => super::paper_text(lib, r)?,
            None => String::new(),
        };
        h.why = Some(Why {
            source: sources[s].label.clone(),
            source_sentence: texts[a].clone(),
            paper_sentence: texts[b].clone(),
            similarity: sim,
            shared_terms: lib
                .keyword()?
                .shared_terms(&all_sources, &paper_text, SHARED_TERMS),
        });
    }
    Ok(())
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
}
