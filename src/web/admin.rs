//! Site admin pages: code hosts and users. The service refuses callers who
//! are not site admins; the pages then answer 404.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::auth_pages::NoFields;
use super::csrf::CsrfForm;
use super::form_outcome::{fixable, unprocessable};
use super::session::WebCaller;
use super::{Chrome, WebError};
use crate::domain::{
    CodeHostConfig, CodeHostId, CodeHostKind, CodeHostUpdate, GitUrlType, PolicyMode,
    SshKeyAlgorithm, UserAccount, UserId,
};
use crate::http::AppState;
use crate::service::{AddCodeHost, Error, PageRequest, PolicyRequest, PolicyView};

const CODE_HOSTS: &str = "/site-admin/code-hosts";
const USERS: &str = "/site-admin/users";

/// Lists are not paginated: instances have few code hosts and users.
fn everything() -> PageRequest {
    PageRequest {
        first: Some(PageRequest::MAX_FIRST),
        after: None,
    }
}

/// `/site-admin` opens its first section.
pub(super) async fn root() -> Redirect {
    Redirect::to("/site-admin/batch-changes")
}

/// The add-code-host form, echoed back when it has an error.
#[derive(Deserialize, Default)]
pub(super) struct AddCodeHostForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    git_url_type: String,
    #[serde(default)]
    ssh_known_hosts: String,
    #[serde(default)]
    ssh_key_algorithm: String,
}

/// A kind offered in the form.
struct KindOption {
    value: &'static str,
    name: &'static str,
}

#[derive(Template)]
#[template(path = "code_hosts.html")]
struct CodeHostsPage {
    chrome: Chrome,
    hosts: Vec<CodeHostConfig>,
    /// Each host's global credential policy, in the order of `hosts`.
    policies: Vec<PolicyView>,
    kinds: Vec<KindOption>,
    form: AddCodeHostForm,
    error: Option<String>,
    remove: Option<CodeHostConfig>,
    edit: Option<EditDialog>,
}

/// The dialog that changes how git reaches a code host.
struct EditDialog {
    host: CodeHostConfig,
    form: EditCodeHostForm,
    error: Option<String>,
}

/// The edit-code-host form, echoed back when it has an error.
#[derive(Deserialize, Default)]
pub(super) struct EditCodeHostForm {
    #[serde(default)]
    git_url_type: String,
    #[serde(default)]
    ssh_known_hosts: String,
    #[serde(default)]
    ssh_key_algorithm: String,
    /// Who may use the global credential: everyone, nobody or selected.
    #[serde(default)]
    policy_users: String,
    /// The selected usernames, separated by commas or lines.
    #[serde(default)]
    policy_usernames: String,
    /// Repository patterns, one per line (or separated by commas).
    #[serde(default)]
    policy_repositories: String,
}

/// The non-empty entries of a list typed as lines or comma-separated.
/// Spaces inside an entry are kept, so the service can refuse them.
fn list_entries(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

impl EditCodeHostForm {
    fn of(host: &CodeHostConfig, policy: Option<&PolicyView>) -> Self {
        Self {
            git_url_type: host.git_url_type.as_str().to_owned(),
            ssh_known_hosts: host.ssh_known_hosts.clone().unwrap_or_default(),
            ssh_key_algorithm: host.ssh_key_algorithm.as_str().to_owned(),
            policy_users: policy
                .map_or(PolicyMode::Everyone, |p| p.mode)
                .as_str()
                .to_owned(),
            policy_usernames: policy.map(|p| p.usernames.join(", ")).unwrap_or_default(),
            policy_repositories: policy
                .map(|p| p.repositories.join("\n"))
                .unwrap_or_default(),
        }
    }

    /// The update and, when the form carries the policy fields, the policy.
    fn parse(&self) -> Result<(CodeHostUpdate, Option<PolicyRequest>), Error> {
        let known_hosts = self.ssh_known_hosts.trim();
        let update = CodeHostUpdate {
            git_url_type: Some(self.git_url_type.parse()?),
            ssh_known_hosts: Some((!known_hosts.is_empty()).then(|| known_hosts.to_owned())),
            ssh_key_algorithm: Some(self.ssh_key_algorithm.parse()?),
            ..CodeHostUpdate::default()
        };
        if self.policy_users.is_empty() {
            return Ok((update, None));
        }
        let mode: PolicyMode = self.policy_users.parse()?;
        // The usernames box keeps its text when another choice is made;
        // only "selected" reads it.
        let usernames = match mode {
            PolicyMode::Selected => list_entries(&self.policy_usernames),
            PolicyMode::Everyone | PolicyMode::Nobody => Vec::new(),
        };
        let policy = PolicyRequest {
            mode,
            usernames,
            repositories: list_entries(&self.policy_repositories),
        };
        Ok((update, Some(policy)))
    }
}

impl CodeHostsPage {
    fn icon(&self, kind: &CodeHostKind) -> &'static str {
        kind.descriptor().icon
    }

    /// The one-line policy of the host at `index` in `hosts`.
    fn policy_summary(&self, index: &usize) -> String {
        self.policies
            .get(*index)
            .map(PolicyView::summary)
            .unwrap_or_default()
    }
}

/// Which dialog the page opens.
#[derive(Deserialize, Default)]
pub(super) struct DialogQuery {
    remove: Option<String>,
    edit: Option<String>,
}

async fn code_hosts(
    state: &AppState,
    caller: &WebCaller,
    form: AddCodeHostForm,
    error: Option<String>,
    dialogs: DialogQuery,
) -> Result<CodeHostsPage, WebError> {
    let hosts = state
        .service
        .list_code_hosts(&caller.caller, &everything())
        .await?
        .items;
    let mut policies = Vec::with_capacity(hosts.len());
    for host in &hosts {
        policies.push(
            state
                .service
                .global_credential_policy(&caller.caller, host)
                .await?,
        );
    }
    let find = |id: String| hosts.iter().position(|h| h.id.to_string() == id);
    let remove = dialogs
        .remove
        .and_then(find)
        .and_then(|i| hosts.get(i).cloned());
    let edit = dialogs.edit.and_then(find).and_then(|i| {
        let host = hosts.get(i)?.clone();
        Some(EditDialog {
            form: EditCodeHostForm::of(&host, policies.get(i)),
            host,
            error: None,
        })
    });
    Ok(CodeHostsPage {
        chrome: Chrome::new(caller, "admin-code-hosts"),
        hosts,
        policies,
        kinds: CodeHostKind::ALL
            .into_iter()
            .map(|k| KindOption {
                value: k.as_str(),
                name: k.display_name(),
            })
            .collect(),
        form,
        error,
        remove,
        edit,
    })
}

pub(super) async fn code_hosts_page(
    State(state): State<AppState>,
    caller: WebCaller,
    Query(dialogs): Query<DialogQuery>,
) -> Result<Response, WebError> {
    let page = code_hosts(&state, &caller, AddCodeHostForm::default(), None, dialogs).await?;
    super::render(&page)
}

fn parse_add(form: &AddCodeHostForm) -> Result<AddCodeHost, Error> {
    let algorithm = if form.ssh_key_algorithm.trim().is_empty() {
        SshKeyAlgorithm::Ed25519
    } else {
        form.ssh_key_algorithm.parse()?
    };
    Ok(AddCodeHost {
        kind: form.kind.parse()?,
        url: form.url.clone(),
        git_url_type: form.git_url_type.parse::<GitUrlType>()?,
        ssh_known_hosts: Some(form.ssh_known_hosts.clone()),
        ssh_key_algorithm: algorithm,
    })
}

pub(super) async fn add_code_host(
    State(state): State<AppState>,
    caller: WebCaller,
    CsrfForm(form): CsrfForm<AddCodeHostForm>,
) -> Result<Response, WebError> {
    let result = match parse_add(&form) {
        Ok(request) => state.service.add_code_host(&caller.caller, request).await,
        Err(error) => Err(error),
    };
    let message = match result {
        Ok(_) => return Ok(Redirect::to(CODE_HOSTS).into_response()),
        Err(error) => fixable(error)?,
    };
    let page = code_hosts(&state, &caller, form, Some(message), DialogQuery::default()).await?;
    unprocessable(&page)
}

/// Checks the whole edit form, then applies it in one update.
async fn apply_edit(
    state: &AppState,
    caller: &WebCaller,
    id: CodeHostId,
    form: &EditCodeHostForm,
) -> Result<CodeHostConfig, Error> {
    let (mut update, policy) = form.parse()?;
    if let Some(policy) = policy {
        update.global_credential_policy = Some(
            state
                .service
                .global_credential_policy_from(&caller.caller, policy)
                .await?,
        );
    }
    state
        .service
        .update_code_host(&caller.caller, id, update)
        .await
}

/// Changes the git URL type, key algorithm, host key and global credential
/// policy, all or none of them. Switching to SSH gives existing credentials
/// a keypair (see the service).
pub(super) async fn update_code_host(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<EditCodeHostForm>,
) -> Result<Response, WebError> {
    let id: CodeHostId = id.parse().map_err(Error::from)?;
    let result = apply_edit(&state, &caller, id, &form).await;
    let message = match result {
        Ok(_) => return Ok(Redirect::to(CODE_HOSTS).into_response()),
        Err(error) => fixable(error)?,
    };
    let dialogs = DialogQuery {
        edit: Some(id.to_string()),
        ..DialogQuery::default()
    };
    let mut page = code_hosts(&state, &caller, AddCodeHostForm::default(), None, dialogs).await?;
    if let Some(edit) = &mut page.edit {
        edit.form = form;
        edit.error = Some(message);
    }
    unprocessable(&page)
}

pub(super) async fn delete_code_host(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id: CodeHostId = id.parse().map_err(Error::from)?;
    state.service.delete_code_host(&caller.caller, id).await?;
    Ok(Redirect::to(CODE_HOSTS).into_response())
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserAccount>,
    username: String,
    error: Option<String>,
    /// What the last action did, from `?done=`.
    notice: Option<&'static str>,
    reset: Option<ResetDialog>,
    /// The revoke-sessions confirmation.
    revoke: Option<UserAccount>,
}

impl UsersPage {
    /// Whether a row is the signed-in admin's own (who changes their
    /// password and sessions under Settings → Security instead).
    fn is_me(&self, user: &UserAccount) -> bool {
        self.chrome.user.as_ref().is_some_and(|me| me.id == user.id)
    }
}

/// The dialog that sets a user's password, with its error.
struct ResetDialog {
    user: UserAccount,
    error: Option<String>,
}

/// Which dialog or notice the users page shows.
#[derive(Deserialize, Default)]
pub(super) struct UserDialogs {
    reset: Option<String>,
    revoke: Option<String>,
    done: Option<String>,
}

/// The reset-password form.
#[derive(Deserialize)]
pub(super) struct ResetPasswordForm {
    #[serde(default)]
    new_password: String,
}

/// The create-user form.
#[derive(Deserialize)]
pub(super) struct CreateUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// A checkbox: present ("on") when ticked.
    site_admin: Option<String>,
}

async fn users(
    state: &AppState,
    caller: &WebCaller,
    username: String,
    error: Option<String>,
    dialogs: UserDialogs,
) -> Result<UsersPage, WebError> {
    let users = state
        .service
        .list_users(&caller.caller, &everything())
        .await?
        .items;
    let find = |id: String| users.iter().find(|u| u.id.to_string() == id).cloned();
    let reset = dialogs
        .reset
        .and_then(find)
        .map(|user| ResetDialog { user, error: None });
    let revoke = dialogs.revoke.and_then(find);
    let notice = match dialogs.done.as_deref() {
        Some("password") => Some("The password was reset and the user's sessions were ended."),
        Some("sessions") => Some("The user's sessions were ended."),
        _ => None,
    };
    Ok(UsersPage {
        chrome: Chrome::new(caller, "admin-users"),
        users,
        username,
        error,
        notice,
        reset,
        revoke,
    })
}

pub(super) async fn users_page(
    State(state): State<AppState>,
    caller: WebCaller,
    Query(dialogs): Query<UserDialogs>,
) -> Result<Response, WebError> {
    super::render(&users(&state, &caller, String::new(), None, dialogs).await?)
}

/// Sets a user's password and ends their sessions.
pub(super) async fn reset_password(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ResetPasswordForm>,
) -> Result<Response, WebError> {
    let id: UserId = id.parse().map_err(Error::from)?;
    let password = SecretString::from(form.new_password);
    let message = match state
        .service
        .set_user_password(&caller.caller, id, password)
        .await
    {
        Ok(()) => return Ok(Redirect::to(&format!("{USERS}?done=password")).into_response()),
        Err(error) => fixable(error)?,
    };
    let dialogs = UserDialogs {
        reset: Some(id.to_string()),
        ..UserDialogs::default()
    };
    let mut page = users(&state, &caller, String::new(), None, dialogs).await?;
    if let Some(reset) = &mut page.reset {
        reset.error = Some(message);
    }
    unprocessable(&page)
}

/// Ends every session of a user (signs them out everywhere). The service
/// allows this to site admins, and to users for themselves only.
pub(super) async fn revoke_sessions(
    State(state): State<AppState>,
    caller: WebCaller,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, WebError> {
    let id: UserId = id.parse().map_err(Error::from)?;
    state.service.end_sessions(&caller.caller, id).await?;
    Ok(Redirect::to(&format!("{USERS}?done=sessions")).into_response())
}

pub(super) async fn create_user(
    State(state): State<AppState>,
    caller: WebCaller,
    CsrfForm(form): CsrfForm<CreateUserForm>,
) -> Result<Response, WebError> {
    let password = SecretString::from(form.password);
    let result = state
        .service
        .create_user(
            &caller.caller,
            &form.username,
            password,
            form.site_admin.is_some(),
        )
        .await;
    let message = match result {
        Ok(_) => return Ok(Redirect::to(USERS).into_response()),
        Err(error) => fixable(error)?,
    };
    let page = users(
        &state,
        &caller,
        form.username,
        Some(message),
        UserDialogs::default(),
    )
    .await?;
    unprocessable(&page)
}
