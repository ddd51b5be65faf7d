//! Vectors of parts of a text (its sentences) from the text's own forward
//! pass: the final hidden states of the tokens that fall inside each part,
//! pooled. A sentence then costs no forward pass of its own, and its vector
//! is read in the context of the whole text.

use std::ops::Range;
use std::time::Instant;

use serde::Serialize;

use tokenizers::Encoding;

use super::{normalize, EmbedError, EmbedStats, Embedder, Pooling, Role};

/// How the sentences of a text get their vectors; a library records its
/// own, so that sentences added later are made the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SentenceMethod {
    /// Each sentence embedded on its own, as a text of its own: one forward
    /// pass per sentence besides the text's (`build --sentences separate`,
    /// and every library built before the contextual method).
    Separate,
    /// Pooled from the text's own forward pass ([`pool_spans`]), then made
    /// [`relative_to`] the text's vector. The sentences past the token
    /// window at the end of the text are left out, as the model read no
    /// further for the text's vector either; a sentence the text does not
    /// hold (a template without the abstract) is embedded on its own and
    /// made relative the same way. The sentence of a one-sentence text is
    /// the text: its vector is the text's. The default.
    #[default]
    Contextual,
}

impl std::fmt::Display for SentenceMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SentenceMethod::Separate => "separate",
            SentenceMethod::Contextual => "contextual",
        })
    }
}

/// Which contextual sentences [`Embedder::embed_with_sentences`] gives a
/// vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentenceReach {
    /// Those the model read for the text: the sentences at the end past
    /// its token window are left out (what a library stores; embedding them
    /// would cost a second pass, and the text's vector leaves them out too).
    Window,
    /// All of them: those past the window are embedded alone (a draft, one
    /// text whose every sentence should count).
    All,
}

/// Share of its text's vector taken out of a sentence's vector by
/// [`relative_to`]. Chosen on CiteSeer's even query papers and confirmed on
/// the odd ones (docs/evaluation.md).
pub const TEXT_SHARE: f32 = 0.7;

/// Makes `sentence` (a unit vector) relative to `text`, the vector of the
/// text it comes from: `sentence − TEXT_SHARE · text`, L2-normalised.
/// Read in context, every sentence of a text shares the text's direction,
/// so two papers' sentences would match about as their papers do; what is
/// left says what sets each sentence apart, which is what sentence
/// alignment needs. A one-sentence text's sentence is the text itself and
/// stays its vector. A result of zero length leaves `sentence` as it was.
pub fn relative_to(sentence: &mut [f32], text: &[f32]) {
    let mut v: Vec<f32> = sentence
        .iter()
        .zip(text)
        .map(|(s, t)| s - TEXT_SHARE * t)
        .collect();
    if normalize(&mut v) {
        sentence.copy_from_slice(&v);
    }
}

/// One text's sentences, for [`Embedder::embed_with_sentences`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TextSentences<'a> {
    /// Each sentence's own text (what is embedded when the text's pass
    /// cannot give it).
    pub sentences: &'a [String],
    /// Each sentence's byte range in the text, or `None` where it is not
    /// in it (then it is embedded on its own); as long as `sentences`.
    pub spans: &'a [Option<Range<usize>>],
}

/// What [`Embedder::embed_with_sentences`] gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentenceEmbedding {
    /// `texts.len() * dim` floats, as [`Embedder::embed_as`] gives them.
    pub vectors: Vec<f32>,
    /// Per text, its sentences' vectors in order, `k · dim` floats: all of
    /// them, or contextual ones up to [`SentenceReach::Window`] the first
    /// `k`, those the model read (at least one).
    pub sentences: Vec<Vec<f32>>,
    /// Throughput of the texts' forward passes.
    pub stats: EmbedStats,
    /// Sentences embedded on their own.
    pub alone: usize,
    /// Seconds spent embedding those.
    pub alone_seconds: f64,
}

/// What [`Embedder::embed_with_spans`] gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanEmbedding {
    /// `texts.len() * dim` floats: each text's vector, as
    /// [`Embedder::embed_as`] gives it.
    pub vectors: Vec<f32>,
    /// Per text, per span asked for: its vector (`dim` floats, unit length
    /// unless the model gave a zero or non-finite one), or `None` where the
    /// text's pass cannot give it ([`pool_spans`]): embed that part alone.
    pub spans: Vec<Vec<Option<Vec<f32>>>>,
    /// Throughput of the texts' forward passes.
    pub stats: EmbedStats,
}

impl Embedder {
    /// Embeds `texts` in `role` (its prompt in front, as
    /// [`embed_as`](Self::embed_as)) and, from the same forward pass, a
    /// vector for each of `spans[i]`, byte ranges of `texts[i]` (as given,
    /// without the prompt): the model's pooling over the final hidden states
    /// of the span's tokens, then its Dense layers and L2 normalisation, as
    /// for a whole text. A text with no entry in `spans` gets no span vectors.
    pub fn embed_with_spans(
        &self,
        role: Role,
        texts: &[&str],
        spans: &[Vec<Range<usize>>],
        progress: &dyn Fn(usize),
    ) -> Result<SpanEmbedding, EmbedError> {
        let shift = self.prompt(role).map_or(0, |p| p.text.len());
        let prompted = self.prompted(role, texts);
        let refs: Vec<&str> = prompted.iter().map(String::as_str).collect();
        let (dim, width) = (self.info.dim, self.backend.dim());
        let mut vectors = vec![0f32; texts.len() * dim];
        let mut out = vec![Vec::new(); texts.len()];
        let stats = self.run_batches(&refs, progress, &mut |rows, encodings, tb, hidden| {
            let pooled = self.pool_texts(tb, hidden);
            for (k, (&row, enc)) in rows.iter().zip(encodings).enumerate() {
                vectors[row * dim..(row + 1) * dim]
                    .copy_from_slice(&pooled[k * dim..(k + 1) * dim]);
                let Some(wanted) = spans.get(row).filter(|s| !s.is_empty()) else {
                    continue;
                };
                let shifted: Vec<Range<usize>> = wanted
                    .iter()
                    .map(|r| r.start + shift..r.end + shift)
                    .collect();
                let states = &hidden[k * tb.seq * width..(k + 1) * tb.seq * width];
                out[row] = pool_spans(
                    states,
                    width,
                    &token_ranges(enc),
                    &shifted,
                    self.info.pooling,
                )
                .into_iter()
                .map(|v| v.map(|v| self.finish(v)))
                .collect();
            }
            Ok(())
        })?;
        Ok(SpanEmbedding {
            vectors,
            spans: out,
            stats,
        })
    }
}

impl Embedder {
    /// Embeds `texts` in `role` and the `sentences` of each (`sentences[i]`
    /// for `texts[i]`; a text without an entry has none) by `method`:
    /// contextual, from each text's own forward pass (as far as `reach`
    /// says), or each sentence on its own. Sentences embedded on their own
    /// get `role`'s prompt too.
    pub fn embed_with_sentences(
        &self,
        role: Role,
        method: SentenceMethod,
        reach: SentenceReach,
        texts: &[&str],
        sentences: &[TextSentences],
        progress: &dyn Fn(usize),
    ) -> Result<SentenceEmbedding, EmbedError> {
        let dim = self.info.dim;
        let spans: Vec<Vec<Range<usize>>> = match method {
            SentenceMethod::Contextual => sentences
                .iter()
                .map(|s| s.spans.iter().flatten().cloned().collect())
                .collect(),
            SentenceMethod::Separate => Vec::new(),
        };
        let pass = self.embed_with_spans(role, texts, &spans, progress)?;
        // A text of one sentence is that sentence: its vector is the text's.
        let whole = |i: usize| {
            method == SentenceMethod::Contextual
                && sentences.get(i).is_some_and(|s| s.sentences.len() == 1)
        };
        // Each sentence's vector from its text's pass, where it gave one.
        let mut rows: Vec<Vec<Option<Vec<f32>>>> = (0..texts.len())
            .map(|i| {
                let Some(s) = sentences.get(i) else {
                    return Vec::new();
                };
                if whole(i) {
                    return vec![Some(pass.vectors[i * dim..(i + 1) * dim].to_vec())];
                }
                let mut pooled = pass.spans.get(i).into_iter().flatten().cloned();
                let mut row: Vec<Option<Vec<f32>>> = s
                    .sentences
                    .iter()
                    .enumerate()
                    .map(|(j, _)| match (method, s.spans.get(j)) {
                        (SentenceMethod::Contextual, Some(Some(_))) => pooled.next().flatten(),
                        _ => None,
                    })
                    .collect();
                if method == SentenceMethod::Contextual && reach == SentenceReach::Window {
                    let cut: Vec<bool> = (0..row.len())
                        .map(|j| matches!(s.spans.get(j), Some(Some(_))) && row[j].is_none())
                        .collect();
                    row.truncate(kept_sentences(&cut));
                }
                row
            })
            .collect();
        // The rest on their own, in one call (length-sorted batches).
        let start = Instant::now();
        let missing: Vec<(usize, usize)> = rows
            .iter()
            .enumerate()
            .flat_map(|(i, row)| {
                row.iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_none())
                    .map(move |(j, _)| (i, j))
            })
            .collect();
        let alone: Vec<&str> = missing
            .iter()
            .map(|&(i, j)| sentences[i].sentences[j].as_str())
            .collect();
        if !alone.is_empty() {
            let (vectors, _) = self.embed_as(role, &alone, &|_| {})?;
            for (&(i, j), v) in missing.iter().zip(vectors.chunks_exact(dim)) {
                rows[i][j] = Some(v.to_vec());
            }
        }
        let alone_seconds = start.elapsed().as_secs_f64();
        let sentences = rows
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                let text = &pass.vectors[i * dim..(i + 1) * dim];
                row.into_iter()
                    .flat_map(|v| {
                        // Every gap was filled above; zeros would score 0.
                        let mut v = v.unwrap_or_else(|| vec![0.0; dim]);
                        if method == SentenceMethod::Contextual && !whole(i) {
                            relative_to(&mut v, text);
                        }
                        v
                    })
                    .collect()
            })
            .collect();
        Ok(SentenceEmbedding {
            vectors: pass.vectors,
            sentences,
            stats: pass.stats,
            alone: missing.len(),
            alone_seconds,
        })
    }
}

/// How many of a text's sentences a contextual embedding keeps, given
/// which ones its pass cut (`cut[j]`: in the text, past the token window):
/// all but the cut ones at the end, which the model did not read for the
/// text either, and at least the first. A cut sentence before one the pass
/// gave (a template that puts the title last) is kept and embedded alone.
fn kept_sentences(cut: &[bool]) -> usize {
    let read = cut.iter().rposition(|&c| !c).map_or(0, |j| j + 1);
    read.max(cut.len().min(1))
}

/// Each token's byte range in the text it was encoded from; `None` for
/// special tokens (and any token that covers no text).
fn token_ranges(enc: &Encoding) -> Vec<Option<Range<usize>>> {
    enc.get_offsets()
        .iter()
        .zip(enc.get_special_tokens_mask())
        .map(|(&(start, end), &special)| (special == 0 && end > start).then_some(start..end))
        .collect()
}

/// Pools, for each of `spans` (byte ranges of the embedded text), the hidden
/// states of the tokens that overlap it: `hidden` is one text's
/// `[seq, dim]` hidden states (row-major, `seq >= tokens.len()`), and
/// `tokens[t]` token `t`'s byte range in the text (`None` for special
/// tokens such as `[CLS]` and `[SEP]`, which belong to no span).
///
/// Returns one vector per span, not normalised, or `None` where the text's
/// pass cannot give it: a span that reaches past the last token the model
/// saw (the text was truncated inside or before it), a span no token
/// overlaps, or a pooling that has no meaning over a part of a text (CLS,
/// last token). The caller embeds those on their own.
pub fn pool_spans(
    hidden: &[f32],
    dim: usize,
    tokens: &[Option<Range<usize>>],
    spans: &[Range<usize>],
    pooling: Pooling,
) -> Vec<Option<Vec<f32>>> {
    let covered = tokens.iter().flatten().map(|t| t.end).max().unwrap_or(0);
    spans
        .iter()
        .map(|span| {
            if span.end > covered || !matches!(pooling, Pooling::Mean | Pooling::Max) {
                return None;
            }
            let inside = tokens.iter().enumerate().filter_map(|(t, r)| {
                r.as_ref()
                    .filter(|r| r.start < span.end && r.end > span.start)
                    .and_then(|_| hidden.get(t * dim..(t + 1) * dim))
            });
            pool(inside, dim, pooling)
        })
        .collect()
}

/// Mean or max of `rows` (each `dim` floats); `None` when there are none.
fn pool<'a>(
    rows: impl Iterator<Item = &'a [f32]>,
    dim: usize,
    pooling: Pooling,
) -> Option<Vec<f32>> {
    let mut out = vec![
        match pooling {
            Pooling::Max => f32::NEG_INFINITY,
            _ => 0.0,
        };
        dim
    ];
    let mut n = 0usize;
    for row in rows {
        n += 1;
        for (acc, x) in out.iter_mut().zip(row) {
            match pooling {
                Pooling::Max => *acc = acc.max(*x),
                _ => *acc += x,
            }
        }
    }
    if n == 0 {
        return None;
    }
    if pooling == Pooling::Mean {
        let n = n as f32;
        out.iter_mut().for_each(|x| *x /= n);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // "ab cd." as [CLS] ab cd . [SEP], dim 2.
    const HIDDEN: [f32; 10] = [9., 9., 1., 0., 3., 2., 5., 4., 9., 9.];

    fn tokens() -> Vec<Option<Range<usize>>> {
        vec![None, Some(0..2), Some(3..5), Some(5..6), None]
    }

    #[test]
    fn the_cut_sentences_at_the_end_are_left_out_and_the_first_kept() {
        assert_eq!(kept_sentences(&[]), 0);
        assert_eq!(kept_sentences(&[false, false]), 2);
        assert_eq!(kept_sentences(&[false, false, true, true]), 2);
        // A cut title before sentences the pass read stays (embedded alone).
        assert_eq!(kept_sentences(&[true, false, true]), 2);
        assert_eq!(kept_sentences(&[true, true]), 1);
    }

    #[test]
    fn relative_to_takes_the_text_out_and_keeps_a_one_sentence_text() {
        let text = [1.0, 0.0];
        let mut s = [0.6, 0.8];
        relative_to(&mut s, &text);
        let (x, y) = (0.6 - TEXT_SHARE, 0.8);
        let n = (x * x + y * y).sqrt();
        assert!(
            (s[0] - x / n).abs() < 1e-6 && (s[1] - y / n).abs() < 1e-6,
            "{s:?}"
        );
        let mut same = text;
        relative_to(&mut same, &text);
        assert_eq!(same, text);
    }

    #[test]
    fn mean_pools_the_tokens_inside_each_span_and_leaves_special_tokens_out() {
        let v = pool_spans(&HIDDEN, 2, &tokens(), &[0..2, 3..6, 0..6], Pooling::Mean);
        assert_eq!(v[0], Some(vec![1., 0.]));
        assert_eq!(v[1], Some(vec![4., 3.]));
        assert_eq!(v[2], Some(vec![3., 2.]));
    }

    #[test]
    fn a_token_partly_inside_a_span_counts_and_max_pools_too() {
        // 1..4 overlaps "ab" and "cd".
        let both = 1..4;
        let v = pool_spans(
            &HIDDEN,
            2,
            &tokens(),
            std::slice::from_ref(&both),
            Pooling::Max,
        );
        assert_eq!(v[0], Some(vec![3., 2.]));
    }

    #[test]
    fn spans_past_the_window_or_without_tokens_or_poolings_without_parts_give_none() {
        // Truncated after "cd": the "." and anything after it was not seen.
        let cut = &tokens()[..3];
        let v = pool_spans(&HIDDEN, 2, cut, &[0..2, 3..6, 7..9], Pooling::Mean);
        assert_eq!(v, vec![Some(vec![1., 0.]), None, None]);
        // A span between tokens (the space) has none.
        let one = |span: Range<usize>, hidden: &[f32], pooling| {
            pool_spans(hidden, 2, &tokens(), std::slice::from_ref(&span), pooling)
        };
        assert_eq!(one(2..3, &HIDDEN, Pooling::Mean), vec![None]);
        for p in [Pooling::Cls, Pooling::LastToken] {
            assert_eq!(one(0..2, &HIDDEN, p), vec![None]);
        }
        // Hidden states shorter than the tokens claim: no panic, no vector.
        assert_eq!(one(3..5, &HIDDEN[..4], Pooling::Mean), vec![None]);
    }
}
