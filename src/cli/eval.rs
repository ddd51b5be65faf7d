//! `eval`: retrieval quality of a library on judged queries.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::{emit, emit_json, print_issues, with_pipeline_bar, ModelArgs};
use papersim::eval;
use papersim::pipeline;
use papersim::query::{Fusion, Mode, Needs, Session};
use papersim::report;
use papersim::store;

#[derive(Args)]
pub struct EvalArgs {
    /// Library to evaluate; with --beir and no library there yet, it is built
    /// from the BEIR corpus first (title + ". " + text).
    #[arg(long, value_name = "DIR", env = "PAPERSIM_LIBRARY")]
    library: PathBuf,
    /// A BEIR dataset folder: corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv.
    #[arg(long, value_name = "DIR")]
    beir: Option<PathBuf>,
    /// BEIR qrels split.
    #[arg(long, default_value = "test")]
    split: String,
    /// Paper-to-paper judgements: lines "query_paper_id candidate_id relevance".
    #[arg(long, value_name = "FILE")]
    paper_qrels: Option<PathBuf>,
    /// Modes to score, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "dense,keyword,hybrid,sentences"
    )]
    modes: Vec<Mode>,
    /// Keep documents whose id equals the query id (the BEIR toolkit drops them).
    #[arg(long)]
    keep_identical_ids: bool,
    /// With --paper-qrels, also score related-work lists judged by
    /// citations: each paper's abstract as the draft (and, in a second
    /// setting, its link of lowest id as a seed), recall@10/20/50 of its
    /// other links, for RRF of the positives and for their centroid.
    #[arg(long, requires = "paper_qrels")]
    related: bool,
    /// With --paper-qrels, the profile experiment: for each paper with at
    /// least 4 links, half of them (even positions by id) are a reading
    /// profile and the other half must be found among all other papers;
    /// recall@20 and nDCG@20 of `related` (profile as seeds) per mode and
    /// of `feed`'s ranker (docs/evaluation.md).
    #[arg(long, requires = "paper_qrels")]
    profiles: bool,
    /// Write a TREC run (qid Q0 docid rank score tag) of every mode to FILE.
    #[arg(long, value_name = "FILE")]
    run: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Print the result as JSON (an error too, on standard output).
    #[arg(long)]
    json: bool,
}

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        a.beir.is_some() || a.paper_qrels.is_some(),
        "give --beir DIR and/or --paper-qrels FILE"
    );
    if let Some(beir) = &a.beir {
        if !a.library.join(store::MANIFEST).exists() {
            let corpus = eval::beir_corpus(beir)?;
            eprintln!(
                "papersim: building {} from {}",
                a.library.display(),
                corpus.display()
            );
            let embedder = a.model.load()?;
            let opts = eval::beir_build_options();
            let report = with_pipeline_bar(|progress| {
                pipeline::build(&corpus, &a.library, &embedder, &opts, progress)
            })?;
            print_issues(&report.issues);
        }
    }
    // Only BEIR queries are embedded; paper queries use the stored vectors.
    let needs = Needs {
        model: a.beir.is_some() && a.modes.iter().any(|m| *m != Mode::Keyword),
        keyword: false,
    };
    let session = Session::open(&a.library, &a.model.session(), needs)?;
    let lib = session.library();
    let mut sets = Vec::new();
    if let Some(beir) = &a.beir {
        let set = eval::beir_set(
            lib,
            beir,
            &a.split,
            session.embedder(),
            !a.keep_identical_ids,
        )?;
        sets.push(set);
    }
    if let Some(path) = &a.paper_qrels {
        sets.push(eval::paper_set(lib, path)?);
    }
    let mut run_out = Vec::new();
    let run = a
        .run
        .as_ref()
        .map(|_| &mut run_out as &mut dyn std::io::Write);
    let results = eval::evaluate_sets(lib, &sets, &a.modes, run)?;
    let mut related = Vec::new();
    if let (true, Some(path)) = (a.related, &a.paper_qrels) {
        let qrels = eval::read_qrels(path)?;
        for seeds in [0, 1] {
            for fusion in [Fusion::Rrf, Fusion::Centroid] {
                // One positive: the centroid is the positive itself.
                if seeds == 0 && fusion == Fusion::Centroid {
                    continue;
                }
                for &mode in &a.modes {
                    related.push(eval::evaluate_related(lib, &qrels, mode, fusion, seeds)?);
                }
            }
        }
    }
    let mut profiles = Vec::new();
    if let (true, Some(path)) = (a.profiles, &a.paper_qrels) {
        let cases = eval::profile_cases(lib, &eval::read_qrels(path)?);
        let feed = eval::feed_profile_ranker(lib)?;
        profiles.push(eval::evaluate_profiles(
            lib,
            &cases,
            "feed (whitened centroid)",
            &feed,
        )?);
        for &mode in &a.modes {
            let rank = eval::related_profile_ranker(lib, mode);
            profiles.push(eval::evaluate_profiles(
                lib,
                &cases,
                &format!("related centroid ({mode})"),
                &rank,
            )?);
        }
    }
    if let Some(path) = &a.run {
        store::write_atomic(path, |w| w.write_all(&run_out))
            .with_context(|| format!("writing the run file {}", path.display()))?;
    }
    if a.json {
        let rows = results
            .iter()
            .map(|(set, r)| {
                let mut v = serde_json::to_value(r)?;
                v["set"] = set.clone().into();
                Ok(v)
            })
            .chain(related.iter().map(|r| {
                let mut v = serde_json::to_value(r)?;
                v["set"] = "related".into();
                Ok(v)
            }))
            .chain(profiles.iter().map(|r| {
                let mut v = serde_json::to_value(r)?;
                v["set"] = "profiles".into();
                Ok(v)
            }))
            .collect::<Result<Vec<serde_json::Value>>>()?;
        emit_json(&rows)?;
    } else {
        emit(&report::eval_table(&results))?;
        if !related.is_empty() {
            emit(&related_table(&related))?;
        }
        if !profiles.is_empty() {
            emit(&profile_table(&profiles))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The related-work settings as a table.
fn related_table(rows: &[eval::RelatedResult]) -> String {
    let mut out = String::from(
        "\nrelated-work lists (recall of the paper's other links)\n\
         method    mode      seeds  papers  recall@10  recall@20  recall@50\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{:<9} {:<9} {:>5} {:>7} {:>10.4} {:>10.4} {:>10.4}\n",
            r.method,
            r.mode.to_string(),
            r.seeds,
            r.queries,
            r.recall10,
            r.recall20,
            r.recall50
        ));
    }
    out
}

/// The profile experiment as a table.
fn profile_table(rows: &[eval::ProfileResult]) -> String {
    let mut out = String::from(
        "\nprofiles (half of a paper's links given, the other half to find)\n\
         ranker                                profiles  recall@20  ndcg@20  recall@20 even  odd\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{:<37} {:>8} {:>10.4} {:>8.4} {:>15.4} {:>6.4}\n",
            r.ranker, r.profiles, r.recall20, r.ndcg20, r.recall20_even, r.recall20_odd
        ));
    }
    out
}
