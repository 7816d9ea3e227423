//! Site admin → Audit log: the entries, newest first, 50 a page, filtered
//! by user, event, code host and time.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::session::WebCaller;
use super::{Chrome, WebError};
use crate::domain::AuditRecord;
use crate::http::AppState;
use crate::service::{AuditQuery, Error, PageRequest, audit_event};

pub(super) const PATH: &str = "/site-admin/audit-log";

const PER_PAGE: i32 = 50;

/// The page's query string.
#[derive(Deserialize, Default)]
pub(super) struct Filters {
    /// A username.
    #[serde(default)]
    user: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    code_host: String,
    /// `YYYY-MM-DD`, UTC.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    after: Option<String>,
}

impl Filters {
    fn query_string(&self, after: Option<&str>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("user", &self.user),
            ("event", &self.event),
            ("code_host", &self.code_host),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if let Some(after) = after {
            query.append_pair("after", after);
        }
        query.finish()
    }
}

fn day(raw: &str, name: &str) -> Result<Option<DateTime<Utc>>, Error> {
    if raw.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| Some(time.and_utc()))
        .ok_or_else(|| Error::InvalidInput(format!("{name}: {raw:?} is not a date (YYYY-MM-DD)")))
}

#[derive(Template)]
#[template(path = "audit_log.html")]
struct AuditLogPage {
    chrome: Chrome,
    entries: Vec<AuditRecord>,
    total: i64,
    filters: Filters,
    events: Vec<&'static str>,
    next_page: Option<String>,
}

pub(super) async fn show(
    State(state): State<AppState>,
    caller: WebCaller,
    Query(filters): Query<Filters>,
) -> Result<Response, WebError> {
    caller.caller.require_site_admin().map_err(Error::from)?;
    let user = match filters.user.trim() {
        "" => None,
        name => Some(
            state
                .service
                .user_by_username(&caller.caller, name)
                .await?
                .id,
        ),
    };
    let query = AuditQuery {
        user,
        event: Some(filters.event.clone()).filter(|e| !e.is_empty()),
        code_host: Some(filters.code_host.clone()).filter(|c| !c.is_empty()),
        since: day(&filters.since, "since")?,
        until: day(&filters.until, "until")?,
    };
    let page = state
        .service
        .audit_log(
            &caller.caller,
            &query,
            &PageRequest {
                first: Some(PER_PAGE),
                after: filters.after.clone(),
            },
        )
        .await?;
    let view = AuditLogPage {
        chrome: Chrome::new(&caller, "admin-audit-log"),
        next_page: page.has_next_page.then(|| {
            format!(
                "{PATH}?{}",
                filters.query_string(page.end_cursor.as_deref())
            )
        }),
        entries: page.items,
        total: page.total_count,
        filters,
        events: audit_event::ALL.to_vec(),
    };
    super::render(&view)
}
