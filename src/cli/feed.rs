//! `feed`: today's new papers ranked against a library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::{emit, progress_bar, spinner, ModelArgs};
use papersim::corpus::{self, Format, ReadOptions};
use papersim::query::{self, FeedRequest, Needs, Session};
use papersim::report::{self, FeedFormat};

#[derive(Args)]
#[command(after_help = "Examples:
  papersim build --corpus ~/Zotero --library ~/papersim-zotero
  papersim feed --library ~/papersim-zotero \\
      --listing 'https://export.arxiv.org/api/query?search_query=cat:cs.CL&sortBy=submittedDate&max_results=200'
  papersim feed --library ~/papersim-zotero --collection 'Retrieval' \\
      --listing 'https://oaipmh.arxiv.org/oai?verb=ListRecords&metadataPrefix=arXivRaw&set=cs&from=2026-07-01' \\
      --format html > today.html
  papersim feed --library lib --seed 2101.00001 --listing rss.xml -k 5")]
pub struct FeedArgs {
    /// The library whose papers are the profile (all of them, unless
    /// --collection or --seed narrows it).
    #[arg(long, value_name = "DIR", env = "PAPERSIM_LIBRARY")]
    library: PathBuf,
    /// The new papers: a file or an http(s) URL of an arXiv listing (the
    /// arXiv API's Atom feed, an OAI-PMH ListRecords answer in arXivRaw or
    /// arXiv metadata, every resumption page fetched, or the RSS feed), or a
    /// file in any corpus format `build` reads.
    #[arg(long, value_name = "FILE|URL")]
    listing: String,
    /// The listing file's format, when detection guesses wrong.
    #[arg(long = "listing-format", value_name = "FORMAT")]
    listing_format: Option<Format>,
    /// Profile: the library's papers filed in this Zotero collection or its
    /// sub-collections (repeatable; the library built from Zotero).
    #[arg(long, value_name = "NAME")]
    collection: Vec<String>,
    /// Profile: this library paper (repeatable; with --collection, both).
    #[arg(long, value_name = "ID")]
    seed: Vec<String>,
    /// Papers shown.
    #[arg(short, long, default_value_t = 20)]
    k: usize,
    /// Only listing papers dated on or after YYYY[-MM[-DD]] (undated ones are kept).
    #[arg(long, value_name = "DATE", value_parser = query::parse_date_bound)]
    since: Option<String>,
    /// Output: table, markdown, html (a page to e-mail) or json.
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    format: FeedFormat,
    /// Same as --format json.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn feed(a: FeedArgs) -> Result<ExitCode> {
    // The whole listing is read (every page fetched) before anything is
    // ranked or printed: a failure leaves no partial output.
    let (papers, issues) = if corpus::is_url(&a.listing) {
        let bar = spinner(&format!("fetching {}", a.listing));
        let listing = corpus::fetch_listing(&a.listing)?;
        bar.finish_and_clear();
        let mut reader = corpus::listing_reader(listing, Path::new(&a.listing), false);
        let papers = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
        (papers, reader.into_summary().issues)
    } else {
        let opts = ReadOptions {
            format: a.listing_format,
            ..ReadOptions::default()
        };
        let (papers, summary) = corpus::read_all(Path::new(&a.listing), &opts)?;
        (papers, summary.issues)
    };
    super::print_issues(&issues);
    let session = Session::open(
        &a.library,
        &a.model.session(),
        Needs {
            model: true,
            keyword: false,
        },
    )?;
    let embedder = session
        .embedder()
        .ok_or_else(|| anyhow::anyhow!("feed needs the library's model to embed the listing"))?;
    let req = FeedRequest {
        seeds: a.seed,
        collections: a.collection,
        since: a.since,
        k: a.k,
    };
    let bar = progress_bar(papers.len() as u64);
    bar.set_message("embedding");
    let feed = query::feed(session.library(), embedder, papers, &req, &|n| {
        bar.inc(n as u64)
    })?;
    bar.finish_and_clear();
    let format = if a.json { FeedFormat::Json } else { a.format };
    emit(&report::render_feed(format, &feed))?;
    Ok(if feed.hits.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
