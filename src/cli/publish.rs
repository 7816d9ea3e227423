//! `batchcred publish SPEC`: publishes every changeset a spec file lists,
//! with a progress bar on a terminal and a summary table at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use batchcred::publish::SpecFile;
use batchcred::service::{ChangesetReport, OnReport, Service};
use indicatif::{ProgressBar, ProgressStyle};

use super::OPERATOR;

#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// A JSON file: {"changesets": [{"code_host", "repository", "base_branch",
    /// "head_branch", "title", "body", "draft", "change": {"commit": {"repo",
    /// "rev"}} or {"diff": {"patch"}}}, …]}. See the README.
    spec: PathBuf,
    /// The user on whose behalf to publish (their credential, else the
    /// global one).
    #[arg(long)]
    user: String,
    /// How many changesets to publish at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
}

pub async fn run(service: &Service, args: PublishArgs) -> Result<()> {
    batchcred::app::sweep_leftover_work_dirs();
    let spec = SpecFile::read(&args.spec)?;
    let user = service.user_by_username(&OPERATOR, &args.user).await?;
    let total = spec.changesets.len();
    // Draws only on a terminal; piped output gets just the summary.
    let progress = ProgressBar::new(total as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}")
            .context("progress bar template")?,
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let bar = progress.clone();
    let on_report: OnReport = Arc::new(move |report: &ChangesetReport| {
        bar.inc(1);
        bar.set_message(format!("{}:{}", report.repository, report.head_branch));
    });
    let reports = service
        .publish_changesets(
            &OPERATOR,
            user.id,
            spec.changesets,
            usize::from(args.concurrency),
            Some(on_report),
        )
        .await?;
    progress.finish_and_clear();
    print_summary(&reports);
    let failed = reports.iter().filter(|r| r.outcome.is_err()).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {total} changesets failed; run the same command again to retry them"
        );
    }
    Ok(())
}

fn print_summary(reports: &[ChangesetReport]) {
    let width = reports
        .iter()
        .map(|r| r.repository.len() + r.head_branch.len() + 1)
        .max()
        .unwrap_or(0)
        .max("CHANGESET".len());
    println!("{:<width$}  {:<9}  DETAIL", "CHANGESET", "RESULT");
    for report in reports {
        let changeset = format!("{}:{}", report.repository, report.head_branch);
        match &report.outcome {
            Ok(published) => {
                let detail = match (&published.pull_request_url, &published.credential_source) {
                    (Some(url), Some(source)) => format!("{url} ({source} credential)"),
                    (Some(url), None) => url.clone(),
                    _ => String::new(),
                };
                println!(
                    "{changeset:<width$}  {:<9}  {detail}",
                    published.result.as_str()
                );
            }
            Err(error) => println!("{changeset:<width$}  {:<9}  {error}", "failed"),
        }
    }
    let count = |wanted: &str| {
        reports
            .iter()
            .filter(|r| match &r.outcome {
                Ok(p) => p.result.as_str() == wanted,
                Err(_) => wanted == "failed",
            })
            .count()
    };
    println!(
        "{} opened, {} updated, {} unchanged, {} failed",
        count("opened"),
        count("updated"),
        count("unchanged"),
        count("failed")
    );
}
