//! Batch Changes → Changesets: a user's changesets (site admins may show
//! everyone's), with status, review and CI state, pull request, credential
//! used, last error and attempts; filters by status and code host; paging;
//! and the actions retry, close (optionally deleting the branch), reopen
//! and sync. Plain forms and links: JavaScript only refreshes the table
//! while jobs run.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::form_outcome::{fixable_at_code_host, unprocessable};
use super::session::WebCaller;
use super::{Chrome, WebError};
use crate::domain::ChangesetId;
use crate::http::AppState;
use crate::service::{ChangesetQuery, ChangesetStatus, ChangesetView, Error, PageRequest};

pub(super) const PATH: &str = "/batch-changes/changesets";

/// Rows per page.
const PER_PAGE: i32 = 50;

/// The page's query string: filters and the page cursor.
#[derive(Deserialize, Default, Clone)]
pub(super) struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    code_host: String,
    /// `all` for everyone's (site admins).
    #[serde(default)]
    owner: String,
    after: Option<String>,
}

impl Filters {
    /// The query string for these filters, with another cursor.
    fn query_string(&self, after: Option<&str>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("status", self.status.as_str()),
            ("code_host", self.code_host.as_str()),
            ("owner", self.owner.as_str()),
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

    fn everyone(&self) -> bool {
        self.owner == "all"
    }
}

/// One changeset in the table.
struct Row {
    id: String,
    repository: String,
    head_branch: String,
    title: String,
    status: &'static str,
    code_host: String,
    review: String,
    checks: String,
    pull_request_url: Option<String>,
    pull_request_number: Option<i64>,
    credential: &'static str,
    error: Option<String>,
    attempts: i64,
    can_retry: bool,
    can_close: bool,
    can_delete_branch: bool,
    can_reopen: bool,
    can_sync: bool,
    /// Someone else's (shown to site admins): no owner-only actions.
    owned: bool,
}

impl Row {
    fn of(view: &ChangesetView, viewer: crate::domain::UserId) -> Self {
        let record = &view.record;
        let status = view.status;
        let has_pr = record.pr_number.is_some();
        let owned = record.user_id == viewer;
        let open = has_pr && matches!(status, ChangesetStatus::Open | ChangesetStatus::Draft);
        let busy = matches!(
            status,
            ChangesetStatus::Queued | ChangesetStatus::Processing | ChangesetStatus::Retrying
        );
        Self {
            id: record.id.to_string(),
            repository: record.repository.clone(),
            head_branch: record.head_branch.clone(),
            title: record.title.clone(),
            status: status.as_str(),
            code_host: view.code_host_url.clone(),
            review: record
                .review_state
                .clone()
                .unwrap_or_default()
                .replace('_', " "),
            checks: record.checks_state.clone().unwrap_or_default(),
            pull_request_url: record.pr_url.clone(),
            pull_request_number: record.pr_number,
            credential: match record.credential_source.as_deref() {
                Some("user") => "own",
                Some("site") => "global",
                _ => "",
            },
            error: record.error.clone(),
            attempts: record.job_attempts,
            can_retry: owned && status == ChangesetStatus::Failed,
            can_close: owned && open && !busy,
            can_delete_branch: !record.imported && record.pushed_commit.is_some(),
            can_reopen: owned && has_pr && status == ChangesetStatus::Closed,
            can_sync: has_pr && !busy,
            owned,
        }
    }
}

/// A choice in a filter's select.
struct Choice {
    value: String,
    label: String,
}

#[derive(Template)]
#[template(path = "changesets.html")]
struct ChangesetsPage {
    chrome: Chrome,
    rows: Vec<Row>,
    total: i64,
    filters: Filters,
    statuses: Vec<Choice>,
    code_hosts: Vec<Choice>,
    next_page: Option<String>,
    /// This page's own URL, where actions return.
    here: String,
    /// Whether a job is waiting or running: the script refreshes.
    live: bool,
    error: Option<String>,
    import: ImportForm,
}

pub(super) async fn show(
    State(state): State<AppState>,
    caller: WebCaller,
    Query(filters): Query<Filters>,
) -> Result<Response, WebError> {
    super::render(&page(&state, &caller, filters).await?)
}

async fn page(
    state: &AppState,
    caller: &WebCaller,
    filters: Filters,
) -> Result<ChangesetsPage, WebError> {
    let user = caller.user()?.clone();
    let status = match filters.status.as_str() {
        "" => None,
        raw => Some(raw.parse::<ChangesetStatus>()?),
    };
    let query = ChangesetQuery {
        user: if filters.everyone() {
            None
        } else {
            Some(user.id)
        },
        code_host: Some(filters.code_host.clone()).filter(|c| !c.is_empty()),
        status,
    };
    let page = state
        .service
        .list_changesets(
            &caller.caller,
            &query,
            &PageRequest {
                first: Some(PER_PAGE),
                after: filters.after.clone(),
            },
        )
        .await?;
    let rows: Vec<Row> = page.items.iter().map(|v| Row::of(v, user.id)).collect();
    let hosts = state
        .service
        .user_code_hosts(
            &caller.caller,
            user.id,
            &PageRequest {
                first: Some(PageRequest::MAX_FIRST),
                after: None,
            },
        )
        .await?;
    Ok(ChangesetsPage {
        chrome: Chrome::new(caller, "changesets"),
        live: rows
            .iter()
            .any(|r| matches!(r.status, "queued" | "processing" | "retrying")),
        rows,
        total: page.total_count,
        next_page: page.has_next_page.then(|| {
            format!(
                "{PATH}?{}",
                filters.query_string(page.end_cursor.as_deref())
            )
        }),
        here: format!("{PATH}?{}", filters.query_string(filters.after.as_deref())),
        statuses: ChangesetStatus::ALL
            .into_iter()
            .map(|s| Choice {
                value: s.as_str().to_owned(),
                label: s.as_str().to_owned(),
            })
            .collect(),
        code_hosts: hosts
            .items
            .into_iter()
            .map(|h| Choice {
                value: h.code_host.url.to_string(),
                label: format!("{} {}", h.code_host.kind.display_name(), h.code_host.url),
            })
            .collect(),
        filters,
        error: None,
        import: ImportForm::default(),
    })
}

/// The import form, echoed back when it has an error.
#[derive(Deserialize, Default)]
pub(super) struct ImportForm {
    #[serde(default)]
    code_host: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    number: String,
}

/// Starts tracking a pull request opened outside batchcred.
pub(super) async fn import(
    State(state): State<AppState>,
    caller: WebCaller,
    CsrfForm(form): CsrfForm<ImportForm>,
) -> Result<Response, WebError> {
    let user = caller.user()?.id;
    let result = match form.number.trim().parse::<u64>() {
        Ok(number) => {
            state
                .service
                .import_changeset(
                    &caller.caller,
                    user,
                    &form.code_host,
                    form.repository.trim(),
                    number,
                )
                .await
        }
        Err(_) => Err(Error::InvalidInput(
            "give the pull request's number, such as 42".into(),
        )),
    };
    match result {
        Ok(_) => Ok(Redirect::to(PATH).into_response()),
        Err(error) => {
            let message = fixable_at_code_host(error)?;
            let mut page = page(&state, &caller, Filters::default()).await?;
            page.error = Some(message);
            page.import = form;
            unprocessable(&page)
        }
    }
}

/// What an action form sends: where to return to, and for closing
/// whether to delete the branch.
#[derive(Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    back: String,
    #[serde(default)]
    delete_branch: Option<String>,
}

impl ActionForm {
    /// Back to the listing the form was on (never anywhere else, and
    /// nothing that could not be a header value).
    fn back(&self) -> Redirect {
        let on_this_page = self.back.starts_with(&format!("{PATH}?")) || self.back == PATH;
        if on_this_page && self.back.chars().all(|c| c.is_ascii_graphic()) {
            Redirect::to(&self.back)
        } else {
            Redirect::to(PATH)
        }
    }
}

/// Retry, close, reopen or sync one changeset, then back to the list.
pub(super) async fn act(
    State(state): State<AppState>,
    caller: WebCaller,
    Path((id, action)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<ActionForm>,
) -> Result<Response, WebError> {
    let id: ChangesetId = id.parse().map_err(Error::from)?;
    let service = &state.service;
    let caller_ref = &caller.caller;
    match action.as_str() {
        "retry" => service.retry_changeset(caller_ref, id).await?,
        "close" => {
            let delete_branch = form.delete_branch.is_some();
            service
                .close_changeset(caller_ref, id, delete_branch)
                .await?
        }
        "reopen" => service.reopen_changeset(caller_ref, id).await?,
        "sync" => service.sync_changeset(caller_ref, id).await?,
        _ => return Err(Error::NotFound(format!("no action {action:?}")).into()),
    };
    Ok(form.back().into_response())
}
