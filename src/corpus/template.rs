//! Turning a paper into the text that is embedded.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{CorpusError, Paper};

const DEFAULT_TEMPLATE: &str = "{title}. {abstract}";

/// How a paper becomes the text that is embedded. Default: `{title}. {abstract}`.
///
/// Placeholders: `{title}`, `{abstract}`, `{authors}` (joined with `, `) and
/// `{categories}` (joined with spaces). A template must use `{title}` or
/// `{abstract}`; unknown placeholders and unmatched braces are rejected when
/// the template is parsed, so [`render`](Self::render) cannot fail.
///
/// Rendering rule: title and abstract are trimmed; if the abstract is empty
/// the text is the title alone, if the title is empty the text is the abstract
/// alone (so no dangling `". "` and no template decoration around nothing);
/// otherwise the template is rendered. Placeholders are substituted in one
/// pass, so a title that itself contains `{abstract}` stays literal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TextTemplate(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Title,
    Abstract,
    Authors,
    Categories,
}

enum Piece<'a> {
    Literal(&'a str),
    Field(Field),
}

fn parse(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("unmatched `}`".to_string());
        }
        if open > 0 {
            pieces.push(Piece::Literal(&rest[..open]));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("unclosed `{`")?;
        let field = match &after[..close] {
            "title" => Field::Title,
            "abstract" => Field::Abstract,
            "authors" => Field::Authors,
            "categories" => Field::Categories,
            other => {
                return Err(format!(
                    "unknown placeholder `{{{other}}}`; expected {{title}}, {{abstract}}, {{authors}} or {{categories}}"
                ))
            }
        };
        pieces.push(Piece::Field(field));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest));
    }
    let has_text = pieces
        .iter()
        .any(|p| matches!(p, Piece::Field(Field::Title | Field::Abstract)));
    if !has_text {
        return Err("the template uses neither {title} nor {abstract}".to_string());
    }
    Ok(pieces)
}

impl TextTemplate {
    /// The template as written, e.g. `{title}. {abstract}`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text to embed for `paper`; see the type's documentation for the rule.
    pub fn render(&self, paper: &Paper) -> String {
        self.render_at(paper).0
    }

    /// [`render`](Self::render), with the byte offsets in the text where the
    /// (trimmed) title and abstract were written, each where it first
    /// appears; `None` for a field the text leaves out.
    pub(super) fn render_at(&self, paper: &Paper) -> (String, Option<usize>, Option<usize>) {
        let title = paper.title.trim();
        let abstract_text = paper.abstract_text.trim();
        if abstract_text.is_empty() {
            return (title.to_string(), Some(0), None);
        }
        if title.is_empty() {
            return (abstract_text.to_string(), None, Some(0));
        }
        // Construction validated the template; the fallback only keeps this total.
        let Ok(pieces) = parse(&self.0) else {
            let text = format!("{title}. {abstract_text}");
            return (text, Some(0), Some(title.len() + 2));
        };
        let mut out = String::with_capacity(self.0.len() + title.len() + abstract_text.len());
        let (mut title_at, mut abstract_at) = (None, None);
        for piece in pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Field(Field::Title) => {
                    title_at.get_or_insert(out.len());
                    out.push_str(title)
                }
                Piece::Field(Field::Abstract) => {
                    abstract_at.get_or_insert(out.len());
                    out.push_str(abstract_text)
                }
                Piece::Field(Field::Authors) => out.push_str(&paper.authors.join(", ")),
                Piece::Field(Field::Categories) => out.push_str(&paper.categories.join(" ")),
            }
        }
        (out, title_at, abstract_at)
    }
}

impl Default for TextTemplate {
    fn default() -> Self {
        TextTemplate(DEFAULT_TEMPLATE.to_string())
    }
}

impl FromStr for TextTemplate {
    type Err = CorpusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match parse(s) {
            Ok(_) => Ok(TextTemplate(s.to_string())),
            Err(reason) => Err(CorpusError::BadTemplate {
                template: s.to_string(),
                reason,
            }),
        }
    }
}

impl TryFrom<String> for TextTemplate {
    type Error = CorpusError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TextTemplate> for String {
    fn from(t: TextTemplate) -> String {
        t.0
    }
}

impl fmt::Display for TextTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper(title: &str, abstract_text: &str) -> Paper {
        Paper {
            id: "p".into(),
            title: title.into(),
            abstract_text: abstract_text.into(),
            authors: vec!["Ann Lee".into(), "Bo Chen".into()],
            categories: vec!["cs.CL".into(), "cs.LG".into()],
            date: None,
            url: None,
            ..Default::default()
        }
    }

    #[test]
    fn default_template() {
        let t = TextTemplate::default();
        assert_eq!(t.as_str(), "{title}. {abstract}");
        assert_eq!(t.render(&paper(" Title ", " Body.\n")), "Title. Body.");
    }

    #[test]
    fn empty_parts_leave_no_dangling_separator() {
        let t = TextTemplate::default();
        assert_eq!(t.render(&paper("Title", "  ")), "Title");
        assert_eq!(t.render(&paper("", "Body.")), "Body.");
        assert_eq!(t.render(&paper("", "")), "");
    }

    #[test]
    fn all_placeholders() {
        let t: TextTemplate = "{title} [{categories}] by {authors}: {abstract}"
            .parse()
            .unwrap();
        assert_eq!(
            t.render(&paper("T", "A")),
            "T [cs.CL cs.LG] by Ann Lee, Bo Chen: A"
        );
    }

    #[test]
    fn substitution_is_single_pass() {
        let t = TextTemplate::default();
        assert_eq!(t.render(&paper("On {abstract}", "x")), "On {abstract}. x");
    }

    #[test]
    fn bad_templates_are_rejected() {
        for bad in [
            "{title} {year}",
            "{authors}",
            "plain",
            "{title",
            "title}",
            "{title} {}",
        ] {
            let err = bad.parse::<TextTemplate>().unwrap_err();
            assert!(
                matches!(err, CorpusError::BadTemplate { .. }),
                "{bad}: {err}"
            );
        }
        assert!("{abstract}".parse::<TextTemplate>().is_ok());
    }

    #[test]
    fn serde_validates() {
        let t: TextTemplate = serde_json::from_str("\"{abstract} ({title})\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"{abstract} ({title})\""
        );
        assert!(serde_json::from_str::<TextTemplate>("\"{nope}\"").is_err());
    }
}
