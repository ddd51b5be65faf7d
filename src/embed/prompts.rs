//! A model's prompts: strings prepended to a text before tokenization, as
//! sentence-transformers reads them from `config_sentence_transformers.json`
//! (`prompts`, `default_prompt_name`) and applies them in `encode_query`,
//! `encode_document` and `encode`.
//!
//! Which prompt a text gets follows sentence-transformers (checked against
//! its 6.3 source, and by `tests/models.rs` against its vectors):
//!
//! - a query ([`Role::Query`], `encode_query`): the `query` prompt, else none.
//!   `default_prompt_name` does not apply: sentence-transformers always has a
//!   `query` key (empty unless configured), which stops the fallback;
//! - a document ([`Role::Document`], `encode_document`): the first of
//!   `document`, `passage`, `corpus` the model has, else none;
//! - any other text ([`Role::Plain`], `encode`): the `default_prompt_name`'s
//!   prompt, else none.
//!
//! One deliberate difference: sentence-transformers 6.3 also always holds an
//! empty `document` key, so its `encode_document` never reaches `passage`
//! (an e5 model's documents get no prompt there, despite its docstring).
//! papersim follows the documented order, so e5's documents get `passage: `.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::read_json;
use super::EmbedError;

/// What a text is embedded as, which picks its prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A search query (`search`, `/search`, eval's queries, a related-work draft).
    Query,
    /// A document stored in a library (`build`, `add`, shards).
    Document,
    /// A text with no role (`embed`, the TEI and OpenAI embedding endpoints).
    Plain,
}

/// Prompt names a document takes, in sentence-transformers' order.
const DOCUMENT_NAMES: [&str; 3] = ["document", "passage", "corpus"];

/// One named prompt. Recorded in a library's manifest (`model.document_prompt`)
/// so that later additions are embedded the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// Its key in the model's `prompts`.
    pub name: String,
    /// The text prepended to every input.
    pub text: String,
}

impl Prompt {
    /// `text` with the prompt in front, as sentence-transformers builds it.
    pub fn apply(&self, text: &str) -> String {
        format!("{}{text}", self.text)
    }
}

/// The prompts a model's `config_sentence_transformers.json` defines.
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    /// The file they were read from (for error messages), when there is one.
    pub path: Option<PathBuf>,
    /// Name → text.
    pub prompts: BTreeMap<String, String>,
    /// `default_prompt_name`, checked to name one of `prompts`.
    pub default_name: Option<String>,
}

impl Prompts {
    /// Reads `dir/config_sentence_transformers.json` (no file: no prompts).
    /// A `default_prompt_name` that names no prompt is refused, as
    /// sentence-transformers refuses it at load.
    pub fn read(dir: &Path) -> Result<Self, EmbedError> {
        let path = dir.join("config_sentence_transformers.json");
        if !path.is_file() {
            return Ok(Prompts::default());
        }
        // Read as a value so a wrong type is reported by its field's path.
        let c: serde_json::Value = read_json(&path)?;
        let bad = |field: &str, reason: &str| EmbedError::BadModelFile {
            path: path.clone(),
            reason: format!("{field}: {reason}"),
        };
        let mut prompts = BTreeMap::new();
        match c.get("prompts") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(m)) => {
                for (k, v) in m {
                    // A null prompt is an empty one in sentence-transformers.
                    let text = match v {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => s.clone(),
                        _ => return Err(bad(&format!("prompts.{k}"), "expected a string")),
                    };
                    prompts.insert(k.clone(), text);
                }
            }
            Some(_) => return Err(bad("prompts", "expected an object of name: text")),
        }
        let default_name = match c.get("default_prompt_name") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("default_prompt_name", "expected a string or null")),
        };
        let p = Prompts {
            path: Some(path.clone()),
            prompts,
            default_name,
        };
        if let Some(d) = &p.default_name {
            if !p.prompts.contains_key(d) {
                return Err(EmbedError::BadModelFile {
                    path,
                    reason: format!(
                        "default_prompt_name: {d:?} is not one of the prompts ({})",
                        p.names_list()
                    ),
                });
            }
        }
        Ok(p)
    }

    /// The prompt names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.prompts.keys().map(String::as_str).collect()
    }

    fn names_list(&self) -> String {
        if self.prompts.is_empty() {
            "the model has no prompts".to_string()
        } else {
            self.names().join(", ")
        }
    }

    /// The prompt called `name`; an unknown name is an error listing the
    /// model's prompt names.
    pub fn named(&self, name: &str) -> Result<Prompt, EmbedError> {
        match self.prompts.get(name) {
            Some(text) => Ok(Prompt {
                name: name.to_string(),
                text: text.clone(),
            }),
            None => Err(EmbedError::UnknownPrompt {
                name: name.to_string(),
                available: self.names_list(),
            }),
        }
    }

    /// The prompt a text of `role` gets by default (see the module
    /// documentation); None when it gets none. An empty prompt is none.
    pub fn for_role(&self, role: Role) -> Option<Prompt> {
        let name = match role {
            Role::Query => self.prompts.contains_key("query").then_some("query"),
            Role::Document => DOCUMENT_NAMES
                .into_iter()
                .find(|n| self.prompts.contains_key(*n)),
            Role::Plain => self.default_name.as_deref(),
        }?;
        self.named(name).ok().filter(|p| !p.text.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(json: &str) -> Result<Prompts, EmbedError> {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("config_sentence_transformers.json"), json).unwrap();
        Prompts::read(tmp.path())
    }

    #[test]
    fn roles_pick_prompts_as_sentence_transformers_does() {
        let e5 = prompts(r#"{"prompts": {"query": "query: ", "passage": "passage: "}}"#).unwrap();
        assert_eq!(e5.for_role(Role::Query).unwrap().text, "query: ");
        assert_eq!(e5.for_role(Role::Document).unwrap().name, "passage");
        assert_eq!(e5.for_role(Role::Plain), None);

        // default_prompt_name reaches only role-less texts.
        let d = prompts(
            r#"{"prompts": {"classification": "classify: ", "document": ""}, "default_prompt_name": "classification"}"#,
        )
        .unwrap();
        assert_eq!(d.for_role(Role::Query), None);
        assert_eq!(d.for_role(Role::Document), None, "an empty prompt is none");
        assert_eq!(d.for_role(Role::Plain).unwrap().text, "classify: ");
    }

    #[test]
    fn unknown_names_and_bad_defaults_are_named() {
        let e5 = prompts(r#"{"prompts": {"query": "query: ", "passage": "passage: "}}"#).unwrap();
        let err = e5.named("doc").unwrap_err().to_string();
        assert!(
            err.contains("\"doc\"") && err.contains("passage, query"),
            "{err}"
        );

        let err = prompts(r#"{"prompts": {"query": "q: "}, "default_prompt_name": "x"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config_sentence_transformers.json: default_prompt_name: \"x\""),
            "{err}"
        );
        let err = prompts(r#"{"prompts": {"query": 3}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config_sentence_transformers.json: prompts.query: expected a string"),
            "{err}"
        );
    }

    #[test]
    fn no_file_means_no_prompts() {
        let tmp = tempfile::tempdir().unwrap();
        let p = Prompts::read(tmp.path()).unwrap();
        assert_eq!(p.for_role(Role::Document), None);
        let err = p.named("query").unwrap_err().to_string();
        assert!(err.contains("has no prompts"), "{err}");
    }
}
