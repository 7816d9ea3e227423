//! `batchcred publish SPEC`: queues every changeset a spec file lists and
//! follows the jobs from the database, working on them meanwhile (as any
//! running server does), with a progress bar on a terminal and a summary
//! table at the end. Ctrl-C leaves the jobs queued: the next run or any
//! server finishes them. `--local` publishes in this process instead,
//! without the queue (for commits in a repository on this machine).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use batchcred::app::spawn_workers;
use batchcred::domain::{ChangesetId, ChangesetRecord, Decision, JobState, UserId};
use batchcred::service::SpecFile;
use batchcred::service::{ChangesetReport, OnReport, PublishResult, PublishedChangeset, Service};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

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
    /// How many changesets to work on at once in this process.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Publish in this process, without the queue: needed for commit
    /// changes (they read a repository on this machine's disk).
    #[arg(long)]
    local: bool,
}

/// How often the progress of queued jobs is read from the database.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

pub async fn run(service: &Service, args: PublishArgs) -> Result<()> {
    batchcred::app::sweep_leftover_work_dirs();
    let spec = SpecFile::read(&args.spec)?;
    let user = service.user_by_username(&OPERATOR, &args.user).await?;
    let total = spec.changesets.len();
    let progress = progress_bar(total)?;
    let reports = if args.local {
        publish_here(service, &args, user.id, spec, &progress).await?
    } else {
        publish_queued(service, &args, user.id, spec, &progress).await?
    };
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

/// Draws only on a terminal; piped output gets just the summary.
fn progress_bar(total: usize) -> Result<ProgressBar> {
    let progress = ProgressBar::new(total as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}")
            .context("progress bar template")?,
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    Ok(progress)
}

/// Queues the changesets, works on the queue with `--concurrency`
/// workers, and follows these changesets until each has ended.
async fn publish_queued(
    service: &Service,
    args: &PublishArgs,
    user: UserId,
    spec: SpecFile,
    progress: &ProgressBar,
) -> Result<Vec<ChangesetReport>> {
    let mut reports = service
        .enqueue_changesets(&OPERATOR, user, spec.changesets)
        .await?;
    let (stop_workers, stop) = watch::channel(false);
    let mut workers = spawn_workers(service, usize::from(args.concurrency), stop);
    let followed = tokio::select! {
        followed = follow(service, &mut reports, progress) => followed,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!(
            "interrupted: the changesets not yet published stay queued; run the same \
             command again, or any running server finishes them"
        )),
    };
    // Jobs still running are handed back to the queue at once.
    let _ = stop_workers.send(true);
    while workers.join_next().await.is_some() {}
    followed?;
    Ok(reports)
}

/// Reads the queued changesets' progress until none is waiting or
/// running, turning each report into the job's outcome.
async fn follow(
    service: &Service,
    reports: &mut [ChangesetReport],
    progress: &ProgressBar,
) -> Result<()> {
    let queued: Vec<ChangesetId> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            Ok(p) if p.result == PublishResult::Queued => Some(p.id),
            _ => None,
        })
        .collect();
    progress.inc((reports.len() - queued.len()) as u64);
    loop {
        let current = service.changesets_by_ids(&OPERATOR, &queued).await?;
        let done = current
            .iter()
            .filter(|c| matches!(c.job_state, JobState::Completed | JobState::Failed))
            .count();
        progress.set_position((reports.len() - queued.len() + done) as u64);
        if let Decision::Closed { opens_at } = service.rollout_decision() {
            progress.set_message(match opens_at {
                Some(at) => format!("outside the rollout windows; publishing resumes at {at}"),
                None => "the rollout windows never open: nothing is published".to_owned(),
            });
        }
        if done == queued.len() {
            for report in reports.iter_mut() {
                let Ok(published) = &report.outcome else {
                    continue;
                };
                if let Some(changeset) = current.iter().find(|c| c.id == published.id) {
                    let had_pull_request = published.pull_request_number.is_some();
                    report.outcome = job_result(changeset, had_pull_request);
                }
            }
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_INTERVAL).await;
    }
}

/// What an ended job means for its changeset's line in the summary: its
/// pull request was opened, or updated when it had one when queued.
fn job_result(
    changeset: &ChangesetRecord,
    had_pull_request: bool,
) -> batchcred::service::Result<PublishedChangeset> {
    if changeset.job_state == JobState::Failed {
        return Err(batchcred::service::Error::PublishFailed(
            changeset.error.clone().unwrap_or_else(|| "failed".into()),
        ));
    }
    Ok(PublishedChangeset {
        id: changeset.id,
        result: if had_pull_request {
            PublishResult::Updated
        } else {
            PublishResult::Opened
        },
        commit: changeset.pushed_commit.clone(),
        pull_request_number: changeset.pr_number,
        pull_request_url: changeset.pr_url.clone(),
        credential_source: changeset.credential_source.clone(),
    })
}

/// Publishes in this process, `--concurrency` at a time.
async fn publish_here(
    service: &Service,
    args: &PublishArgs,
    user: UserId,
    spec: SpecFile,
    progress: &ProgressBar,
) -> Result<Vec<ChangesetReport>> {
    let bar = progress.clone();
    let on_report: OnReport = Arc::new(move |report: &ChangesetReport| {
        bar.inc(1);
        bar.set_message(format!("{}:{}", report.repository, report.head_branch));
    });
    Ok(service
        .publish_changesets(
            &OPERATOR,
            user,
            spec.changesets,
            usize::from(args.concurrency),
            Some(on_report),
        )
        .await?)
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
