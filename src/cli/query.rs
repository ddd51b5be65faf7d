//! Asking a library: `search`, `similar`, `related`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::{emit, found, ModelArgs};
use papersim::query::{self, Filter, Hit, Mode, Needs, Options, RelatedRequest, Session, Strategy};
use papersim::report::{self, Format as OutFormat};

/// Flags every query command shares: which library, how many, how ranked,
/// which papers, and how printed.
#[derive(Args)]
pub struct QueryArgs {
    /// Library directory.
    #[arg(long, value_name = "DIR", env = "PAPERSIM_LIBRARY")]
    library: PathBuf,
    /// Number of results.
    #[arg(short, long, default_value_t = 10)]
    k: usize,
    /// Ranking: dense (embeddings), keyword (BM25) or hybrid (both, fused by
    /// reciprocal rank). Default: hybrid, the best both on SciFact (search)
    /// and on CiteSeer's citation links (similar, related); see
    /// docs/evaluation.md.
    #[arg(long)]
    mode: Option<Mode>,
    /// Only papers dated on or after YYYY[-MM[-DD]].
    #[arg(long, value_name = "DATE", value_parser = query::parse_date_bound)]
    since: Option<String>,
    /// Only papers dated on or before YYYY[-MM[-DD]].
    #[arg(long, value_name = "DATE", value_parser = query::parse_date_bound)]
    until: Option<String>,
    /// Only papers in this category (repeatable; "cs" matches "cs.CL").
    #[arg(long = "category", value_name = "CAT")]
    categories: Vec<String>,
    /// Scan every vector (exact). Default: exact up to 10,000 papers or under
    /// a selective filter, HNSW otherwise.
    #[arg(long, conflicts_with = "ann")]
    exact: bool,
    /// Always use the HNSW graph for the dense ranking.
    #[arg(long)]
    ann: bool,
    /// Output: table, markdown, bibtex, json or csv.
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    format: OutFormat,
    /// Same as --format json: one object {"query", "results": [...]}.
    #[arg(long)]
    json: bool,
}

impl QueryArgs {
    /// The options, with `default_mode` when no --mode was given.
    fn options(&self, default_mode: Mode) -> Options {
        Options {
            k: self.k,
            mode: self.mode.unwrap_or(default_mode),
            strategy: match (self.exact, self.ann) {
                (true, _) => Strategy::Exact,
                (_, true) => Strategy::Ann,
                _ => Strategy::Auto,
            },
            filter: Filter {
                since: self.since.clone(),
                until: self.until.clone(),
                categories: self.categories.clone(),
            },
        }
    }

    fn format(&self) -> OutFormat {
        if self.json {
            OutFormat::Json
        } else {
            self.format
        }
    }

    /// Prints `hits` in the chosen format; exit 1 when there are none.
    fn print(&self, query: serde_json::Value, hits: &[Hit]) -> Result<ExitCode> {
        let format = self.format();
        if hits.is_empty() && format == OutFormat::Table {
            eprintln!("papersim: no results");
        } else {
            emit(&report::render(format, &query, hits, terminal_width()))?;
        }
        Ok(found(!hits.is_empty()))
    }
}

/// Table width: $COLUMNS when the shell exports it, else 100.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

#[derive(Args)]
pub struct SearchArgs {
    /// The query: a sentence, a title, or a whole abstract.
    query: String,
    #[command(flatten)]
    q: QueryArgs,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn search(a: SearchArgs) -> Result<ExitCode> {
    let opts = a.q.options(query::DEFAULT_MODE);
    let needs = Needs {
        model: opts.mode != Mode::Keyword,
        keyword: opts.mode != Mode::Dense,
    };
    let session = Session::open(&a.q.library, &a.model.session(), needs)?;
    let hits = query::search(session.library(), session.embedder(), &a.query, &opts)?;
    a.q.print(serde_json::json!(a.query), &hits)
}

#[derive(Args)]
pub struct SimilarArgs {
    /// Id of a paper in the library.
    paper_id: String,
    #[command(flatten)]
    q: QueryArgs,
}

pub fn similar(a: SimilarArgs) -> Result<ExitCode> {
    let session = Session::open(&a.q.library, &Default::default(), Needs::default())?;
    let lib = session.library();
    let hits = query::similar(lib, &a.paper_id, &a.q.options(query::PAPER_DEFAULT_MODE))?;
    if a.q.format() == OutFormat::Table {
        if let Some(p) = lib.row_of(&a.paper_id).and_then(|r| lib.paper(r).ok()) {
            emit(&format!("Papers like {}: {}\n\n", p.id, p.title))?;
        }
    }
    a.q.print(serde_json::json!(a.paper_id), &hits)
}

#[derive(Args)]
pub struct RelatedArgs {
    /// A draft abstract or paragraph: a file, or - for standard input.
    #[arg(long = "abstract", value_name = "FILE")]
    draft: Option<PathBuf>,
    /// A paper of the library to find neighbours of (repeatable).
    #[arg(long = "seed", value_name = "ID")]
    seeds: Vec<String>,
    /// A paper of the library the list should stay away from (repeatable).
    #[arg(long = "negative", value_name = "ID")]
    negatives: Vec<String>,
    /// A query sentence.
    #[arg(long, value_name = "TEXT")]
    query: Option<String>,
    /// A paper never to list (repeatable; seeds and negatives never are).
    #[arg(long, value_name = "ID")]
    exclude: Vec<String>,
    /// Diversity λ in [0, 1] (maximal marginal relevance); 0 = pure relevance.
    #[arg(long, default_value_t = 0.0, value_name = "λ")]
    diversity: f32,
    /// Skip the per-result explanations (faster).
    #[arg(long)]
    no_why: bool,
    #[command(flatten)]
    q: QueryArgs,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn related(a: RelatedArgs) -> Result<ExitCode> {
    let draft = match &a.draft {
        None => None,
        Some(p) if p.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("reading the draft from standard input")?;
            Some(s)
        }
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?),
    };
    let opts = a.q.options(query::PAPER_DEFAULT_MODE);
    // The model embeds the draft or query text (dense and hybrid) and the
    // sentences that explain each result.
    let has_text = draft.is_some() || a.query.is_some();
    let needs = Needs {
        model: (opts.mode != Mode::Keyword && has_text) || !a.no_why,
        keyword: false,
    };
    let session = Session::open(&a.q.library, &a.model.session(), needs)?;
    let req = RelatedRequest {
        draft,
        seeds: a.seeds,
        negatives: a.negatives,
        query: a.query,
        exclude: a.exclude,
        diversity: a.diversity,
        explain: !a.no_why,
    };
    let hits = query::related(session.library(), session.embedder(), &req, &opts)?;
    let query = serde_json::json!({
        "abstract": req.draft,
        "seeds": req.seeds,
        "negatives": req.negatives,
        "query": req.query,
        "diversity": req.diversity,
        "mode": opts.mode,
    });
    a.q.print(query, &hits)
}
