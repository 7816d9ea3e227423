//! `batchcred audit list|verify`: reading and checking the audit log.

use anyhow::{Context, Result, bail};
use batchcred::service::{AuditQuery, PageRequest, Service};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;

use super::OPERATOR;
use batchcred::domain::AuditRecord;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List entries, newest first.
    List {
        /// Only those about this user or done by them (a username).
        #[arg(long)]
        user: Option<String>,
        /// Only this event, such as `credential.created` or `sign_in`.
        #[arg(long)]
        event: Option<String>,
        /// Only those about this code host (its URL).
        #[arg(long)]
        code_host: Option<String>,
        /// From this time on (RFC 3339, or a date: YYYY-MM-DD, UTC).
        #[arg(long, value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
        /// Before this time (RFC 3339, or a date: YYYY-MM-DD, UTC).
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=1000))]
        limit: i32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain from its start to its end; names the first
    /// entry that was deleted or edited, and exits non-zero if one was.
    Verify,
}

/// A time given on the command line: RFC 3339, or a date (midnight UTC).
fn parse_time(raw: &str) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
        return Ok(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
        .ok_or_else(|| format!("{raw:?} is not a time (use 2026-11-25 or 2026-11-25T08:00:00Z)"))
}

pub async fn run(service: &Service, command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::List {
            user,
            event,
            code_host,
            since,
            until,
            limit,
            json,
        } => {
            let user = match user {
                Some(name) => Some(service.user_by_username(&OPERATOR, &name).await?.id),
                None => None,
            };
            let query = AuditQuery {
                user,
                event,
                code_host,
                since,
                until,
            };
            let page = PageRequest {
                first: Some(limit),
                after: None,
            };
            let page = service.audit_log(&OPERATOR, &query, &page).await?;
            if json {
                for entry in &page.items {
                    println!("{}", as_json(entry)?);
                }
            } else {
                println!(
                    "{:<8} {:<25} {:<28} {:<8} {:<20} DETAIL",
                    "SEQ", "AT", "EVENT", "OUTCOME", "ACTOR"
                );
                for entry in &page.items {
                    println!(
                        "{:<8} {:<25} {:<28} {:<8} {:<20} {}",
                        entry.seq,
                        entry.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        entry.event,
                        entry.outcome,
                        entry.actor_name.as_deref().unwrap_or(&entry.actor),
                        entry.detail
                    );
                }
                println!("{} of {} shown", page.items.len(), page.total_count);
            }
            Ok(())
        }
        AuditCommand::Verify => {
            let report = service.verify_audit_log(&OPERATOR).await?;
            match report.broken {
                None => {
                    println!(
                        "the audit log is intact: {} entries checked",
                        report.checked
                    );
                    Ok(())
                }
                Some((seq, why)) => {
                    bail!(
                        "the audit log is broken at entry {seq}: {why} ({} entries before it are intact)",
                        report.checked
                    )
                }
            }
        }
    }
}

fn as_json(entry: &AuditRecord) -> Result<String> {
    let detail: serde_json::Value =
        serde_json::from_str(&entry.detail).context("an entry's detail is not JSON")?;
    Ok(serde_json::json!({
        "seq": entry.seq,
        "at": entry.at.to_rfc3339(),
        "actor": entry.actor,
        "actor_name": entry.actor_name,
        "event": entry.event,
        "outcome": entry.outcome,
        "user_id": entry.user_id,
        "code_host_id": entry.code_host_id,
        "credential_id": entry.credential_id,
        "changeset_id": entry.changeset_id,
        "detail": detail,
        "hash": entry.hash,
    })
    .to_string())
}
