//! The emulated Azure DevOps repository API: the repository itself, its
//! pull requests (search, create, update, statuses) and its refs; and
//! the test helpers that vote, post statuses, complete and delete pull
//! requests behind batchcred's back.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{AzureEmulator, AzureRepo, Shared, azure_error, json_response, rate_limited};

/// Azure's limit on a pull request description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 4000;

/// Where a request is: the repository, and how the emulator was reached.
pub(super) struct Context<'a> {
    pub repo: &'a AzureRepo,
    /// The PAT the request carried.
    pub token: String,
    pub host: String,
    pub collection: String,
}

impl Context<'_> {
    fn repository(&self) -> String {
        format!("{}/{}", self.repo.project, self.repo.name)
    }
}

/// A pull request opened through the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzurePull {
    pub id: u64,
    /// `project/repository`.
    pub repository: String,
    /// Branch names, without `refs/heads/`.
    pub source: String,
    pub target: String,
    pub title: String,
    pub description: String,
    pub is_draft: bool,
    /// `active`, `abandoned` or `completed`.
    pub status: String,
    pub votes: Vec<i32>,
    pub statuses: Vec<AzureStatus>,
    pub opened_with: String,
    /// The body of every PATCH, in order.
    pub patches: Vec<Value>,
}

/// A status posted on a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureStatus {
    pub id: u64,
    pub name: String,
    /// `succeeded`, `failed`, `error`, `pending`, `notSet`…
    pub state: String,
}

fn heads(reference: &str) -> String {
    format!("refs/heads/{reference}")
}

fn pull_json(context: &Context<'_>, pull: &AzurePull) -> Value {
    json!({
        "pullRequestId": pull.id,
        "codeReviewId": pull.id,
        "status": pull.status,
        "isDraft": pull.is_draft,
        "title": pull.title,
        "description": pull.description,
        "sourceRefName": heads(&pull.source),
        "targetRefName": heads(&pull.target),
        "mergeStatus": "succeeded",
        "createdBy": {"displayName": "batchcred"},
        "reviewers": pull.votes.iter().map(|vote| json!({"vote": vote, "displayName": "Reviewer", "isRequired": false})).collect::<Vec<_>>(),
        "repository": super::repository_json(context.repo, &context.host, &context.collection),
        "url": format!("http://{}/{}/_apis/git/pullRequests/{}", context.host, context.collection, pull.id),
    })
}

fn pull_not_found(id: &str) -> Response {
    azure_error(
        StatusCode::NOT_FOUND,
        &format!("TF401180: The requested pull request {id} was not found."),
        "GitPullRequestNotFoundException",
    )
}

fn bad_request(message: &str) -> Response {
    azure_error(
        StatusCode::BAD_REQUEST,
        message,
        "InvalidArgumentValueException",
    )
}

fn exists() -> Response {
    azure_error(
        StatusCode::CONFLICT,
        "TF401179: An active pull request for the source and target branch already exists.",
        "GitPullRequestExistsException",
    )
}

fn param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn branch(value: &Value, field: &str) -> Option<String> {
    value
        .get(field)?
        .as_str()?
        .strip_prefix("refs/heads/")
        .map(str::to_owned)
}

/// Whether the branch exists, where the repository's bare copy says.
fn branch_exists(repo: &AzureRepo, name: &str) -> bool {
    repo.bare.as_ref().is_none_or(|bare| {
        super::bare_branches(bare)
            .iter()
            .any(|(reference, _)| *reference == heads(name))
    })
}

pub(super) fn repository_api(
    shared: &mut Shared,
    context: &Context<'_>,
    method: &Method,
    rest: &[&str],
    query: &str,
    body: &Value,
) -> Response {
    let repository = context.repository();
    match (method.as_str(), rest) {
        ("GET", []) => json_response(
            StatusCode::OK,
            super::repository_json(context.repo, &context.host, &context.collection),
        ),
        ("GET", ["pullrequests"]) => {
            if std::mem::take(&mut shared.hide_next_search) {
                return json_response(StatusCode::OK, json!({"count": 0, "value": []}));
            }
            let source = param(query, "searchCriteria.sourceRefName");
            let target = param(query, "searchCriteria.targetRefName");
            let status = param(query, "searchCriteria.status").unwrap_or_else(|| "active".into());
            let found: Vec<Value> = shared
                .pulls
                .iter()
                .filter(|p| p.repository == repository)
                .filter(|p| status == "all" || p.status == status)
                .filter(|p| source.as_ref().is_none_or(|s| *s == heads(&p.source)))
                .filter(|p| target.as_ref().is_none_or(|t| *t == heads(&p.target)))
                .map(|p| pull_json(context, p))
                .collect();
            json_response(
                StatusCode::OK,
                json!({"count": found.len(), "value": found}),
            )
        }
        ("POST", ["pullrequests"]) => create(shared, context, body),
        ("GET", ["pullrequests", id]) => {
            match shared
                .pulls
                .iter()
                .find(|p| p.repository == repository && p.id.to_string() == *id)
            {
                Some(pull) => json_response(StatusCode::OK, pull_json(context, pull)),
                None => pull_not_found(id),
            }
        }
        ("PATCH", ["pullrequests", id]) => update(shared, context, id, body),
        ("GET", ["pullrequests", id, "statuses"]) => {
            let Some(pull) = shared
                .pulls
                .iter()
                .find(|p| p.repository == repository && p.id.to_string() == *id)
            else {
                return pull_not_found(id);
            };
            let value: Vec<Value> = pull
                .statuses
                .iter()
                .map(|s| json!({"id": s.id, "state": s.state, "description": format!("{} is {}", s.name, s.state),
                               "context": {"name": s.name, "genre": "continuous-integration"},
                               "iterationId": 1, "creationDate": "2026-01-01T00:00:00Z"}))
                .collect();
            json_response(
                StatusCode::OK,
                json!({"count": value.len(), "value": value}),
            )
        }
        ("GET", ["refs"]) => {
            let filter = param(query, "filter").unwrap_or_default();
            let value: Vec<Value> = context
                .repo
                .bare
                .as_ref()
                .map(super::bare_branches)
                .unwrap_or_default()
                .into_iter()
                .filter(|(name, _)| name.starts_with(&format!("refs/{filter}")))
                .map(|(name, sha)| json!({"name": name, "objectId": sha}))
                .collect();
            json_response(
                StatusCode::OK,
                json!({"count": value.len(), "value": value}),
            )
        }
        ("POST", ["refs"]) => update_refs(shared, context, body),
        _ => azure_error(
            StatusCode::NOT_FOUND,
            "The resource cannot be found.",
            "ResourceNotFoundException",
        ),
    }
}

fn create(shared: &mut Shared, context: &Context<'_>, body: &Value) -> Response {
    shared.create_attempts.push(std::time::Instant::now());
    if shared.rate_limited_creates > 0 {
        shared.rate_limited_creates -= 1;
        return rate_limited(shared.rate_limit_wait);
    }
    let (Some(source), Some(target)) =
        (branch(body, "sourceRefName"), branch(body, "targetRefName"))
    else {
        return bad_request("sourceRefName and targetRefName must be refs/heads/… names");
    };
    let description = body["description"].as_str().unwrap_or_default().to_owned();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return bad_request("The description may be at most 4000 characters long.");
    }
    if !branch_exists(context.repo, &source) {
        return bad_request(&format!(
            "TF401398: The pull request cannot be activated because the source and/or the target branch no longer exists, or the requested refs are not branches ({source})."
        ));
    }
    let repository = context.repository();
    if shared.pulls.iter().any(|p| {
        p.repository == repository
            && p.source == source
            && p.target == target
            && p.status == "active"
    }) {
        return exists();
    }
    shared.last_pull_id += 1;
    let pull = AzurePull {
        id: shared.last_pull_id,
        repository,
        source,
        target,
        title: body["title"].as_str().unwrap_or_default().to_owned(),
        description,
        is_draft: body["isDraft"].as_bool().unwrap_or(false),
        status: "active".into(),
        votes: vec![],
        statuses: vec![],
        opened_with: context.token.clone(),
        patches: vec![],
    };
    let answer = pull_json(context, &pull);
    shared.pulls.push(pull);
    json_response(StatusCode::CREATED, answer)
}

fn update(shared: &mut Shared, context: &Context<'_>, id: &str, body: &Value) -> Response {
    let repository = context.repository();
    let Some(at) = shared
        .pulls
        .iter()
        .position(|p| p.repository == repository && p.id.to_string() == id)
    else {
        return pull_not_found(id);
    };
    let Some(fields) = body.as_object() else {
        return bad_request("The body must be a JSON object.");
    };
    let current = shared.pulls[at].clone();
    if current.status == "completed" {
        return bad_request("TF401181: The pull request cannot be edited due to its state.");
    }
    if fields.contains_key("targetRefName") && fields.len() > 1 {
        return bad_request("The target branch of a pull request can only be changed on its own.");
    }
    let mut pull = current;
    pull.patches.push(body.clone());
    if let Some(target) = branch(body, "targetRefName") {
        pull.target = target;
    }
    if let Some(title) = body["title"].as_str() {
        pull.title = title.to_owned();
    }
    if let Some(description) = body["description"].as_str() {
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return bad_request("The description may be at most 4000 characters long.");
        }
        pull.description = description.to_owned();
    }
    if let Some(is_draft) = body["isDraft"].as_bool() {
        pull.is_draft = is_draft;
    }
    match body["status"].as_str() {
        None => {}
        Some("abandoned") => pull.status = "abandoned".into(),
        Some("active") => {
            if !branch_exists(context.repo, &pull.source) {
                return bad_request(&format!(
                    "TF401398: The pull request cannot be activated because the source and/or the target branch no longer exists, or the requested refs are not branches ({}).",
                    pull.source
                ));
            }
            let duplicate = shared.pulls.iter().any(|p| {
                p.id != pull.id
                    && p.repository == pull.repository
                    && p.source == pull.source
                    && p.target == pull.target
                    && p.status == "active"
            });
            if duplicate {
                return exists();
            }
            pull.status = "active".into();
        }
        Some(other) => return bad_request(&format!("Unknown status {other}.")),
    }
    let answer = pull_json(context, &pull);
    shared.pulls[at] = pull;
    json_response(StatusCode::OK, answer)
}

/// `POST …/refs`: only deletions (a zero new object id) are emulated.
fn update_refs(shared: &mut Shared, context: &Context<'_>, body: &Value) -> Response {
    let Some(updates) = body.as_array() else {
        return bad_request("The body must be a list of ref updates.");
    };
    let mut results = vec![];
    for update in updates {
        let name = update["name"].as_str().unwrap_or_default();
        let old = update["oldObjectId"].as_str().unwrap_or_default();
        let new = update["newObjectId"].as_str().unwrap_or_default();
        let deleted = new.chars().all(|c| c == '0')
            && context
                .repo
                .bare
                .as_ref()
                .is_some_and(|bare| super::bare_delete(bare, name, old));
        if deleted {
            let branch = name.trim_start_matches("refs/heads/").to_owned();
            shared.deleted_branches.push((context.repository(), branch));
        }
        results.push(json!({
            "name": name, "oldObjectId": old, "newObjectId": new,
            "success": deleted,
            "updateStatus": if deleted { "succeeded" } else { "staleOldObjectId" },
            "isLocked": false,
        }));
    }
    json_response(
        StatusCode::OK,
        json!({"count": results.len(), "value": results}),
    )
}

impl AzureEmulator {
    pub fn pulls(&self) -> Vec<AzurePull> {
        self.lock().pulls.clone()
    }

    fn change_pull(&self, id: u64, change: impl FnOnce(&mut AzurePull)) {
        let mut shared = self.lock();
        let pull = shared
            .pulls
            .iter_mut()
            .find(|p| p.id == id)
            .expect("known pull request");
        change(pull);
    }

    /// Sets the reviewers' votes (10, 5, 0, -5, -10).
    pub fn set_votes(&self, id: u64, votes: &[i32]) {
        self.change_pull(id, |pull| pull.votes = votes.to_vec());
    }

    /// Posts a status on the pull request, newer than any before.
    pub fn post_status(&self, id: u64, name: &str, state: &str) {
        let status_id = {
            let mut shared = self.lock();
            shared.last_status_id += 1;
            shared.last_status_id
        };
        self.change_pull(id, |pull| {
            pull.statuses.push(AzureStatus {
                id: status_id,
                name: name.to_owned(),
                state: state.to_owned(),
            });
        });
    }

    /// Completes (merges) the pull request, as someone on Azure would.
    pub fn complete_pull(&self, id: u64) {
        self.change_pull(id, |pull| pull.status = "completed".into());
    }

    /// Deletes the pull request, as deleting its repository would.
    pub fn delete_pull(&self, id: u64) {
        self.lock().pulls.retain(|p| p.id != id);
    }
}
