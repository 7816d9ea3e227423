//! Code host registration and the per-code-host credential views.

use chrono::Utc;

use super::credentials::CredentialView;
use super::{Error, Page, PageRequest, Result, Service, not_found, signed_in};
use crate::auth::Caller;
use crate::domain::{
    AuthStrategy, CodeHostConfig, CodeHostId, CodeHostKind, CodeHostUpdate, CodeHostUrl,
    CredentialOwner, GitUrlType, GlobalCredentialPolicy, PolicyMode, PolicyUsers, SshKeyAlgorithm,
    UserId, parse_repository_patterns,
};
use crate::store::CredentialRecord;

/// A request to register a code host.
#[derive(Debug, Clone)]
pub struct AddCodeHost {
    pub kind: CodeHostKind,
    pub url: String,
    pub git_url_type: GitUrlType,
    pub ssh_known_hosts: Option<String>,
    pub ssh_key_algorithm: SshKeyAlgorithm,
}

/// A code host with the credential that applies to the viewer.
#[derive(Debug, Clone)]
pub struct CodeHostView {
    pub code_host: CodeHostConfig,
    /// The token credential, or the GitHub App one where there is no token.
    pub credential: Option<CredentialView>,
    /// The GitHub App credential, where one is stored besides a token
    /// (shown as a second credential).
    pub github_app: Option<CredentialView>,
    /// Whether a webhook secret is set up for it.
    pub has_webhook: bool,
}

/// Of one owner's credentials for `host`: the one to show (a token before
/// an App), and the App when both are stored.
fn shown_credentials(
    records: &[CredentialRecord],
    host: CodeHostId,
) -> (Option<&CredentialRecord>, Option<&CredentialRecord>) {
    let mine = records.iter().filter(|c| c.code_host_id == host);
    let token = mine
        .clone()
        .find(|c| c.auth_strategy == AuthStrategy::PersonalAccessToken);
    let app = mine
        .clone()
        .find(|c| c.auth_strategy == AuthStrategy::GitHubApp);
    match token {
        Some(token) => (Some(token), app),
        None => (app, None),
    }
}

/// A global credential policy as a site admin gives it: users by name.
#[derive(Debug, Clone)]
pub struct PolicyRequest {
    pub mode: PolicyMode,
    /// Usernames; only with [`PolicyMode::Selected`], which needs one.
    pub usernames: Vec<String>,
    /// Glob patterns (`acme/*`); empty allows any repository.
    pub repositories: Vec<String>,
}

/// A global credential policy as shown to site admins: users by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyView {
    pub mode: PolicyMode,
    /// The selected users that still exist, by name.
    pub usernames: Vec<String>,
    pub repositories: Vec<String>,
}

impl PolicyView {
    /// One line for lists: "everyone, any repository",
    /// "alice, bob; repositories acme/*".
    pub fn summary(&self) -> String {
        let users = match self.mode {
            PolicyMode::Everyone => "everyone".to_owned(),
            PolicyMode::Nobody => return "nobody".to_owned(),
            PolicyMode::Selected if self.usernames.is_empty() => "no user".to_owned(),
            PolicyMode::Selected => self.usernames.join(", "),
        };
        if self.repositories.is_empty() {
            format!("{users}; any repository")
        } else {
            format!("{users}; repositories {}", self.repositories.join(", "))
        }
    }
}

/// What a user (not a site admin) may see of the global credential that
/// covers them: that it exists and, on SSH code hosts, its public key. The
/// service account's login, scopes, expiry, warnings and check errors are
/// the site admins' business.
fn site_credential_seen_by_user(
    record: &CredentialRecord,
    host: &CodeHostConfig,
) -> CredentialView {
    CredentialView {
        username: None,
        ssh_key_pending: false,
        code_host_user: None,
        scopes: None,
        expires_at: None,
        warnings: Vec::new(),
        last_checked_at: None,
        last_check_error: None,
        ..CredentialView::new(record, host)
    }
}

/// The longest `known_hosts` text accepted; a few keys fit easily.
const MAX_KNOWN_HOSTS_LEN: usize = 16 * 1024;

fn validate_known_hosts(known_hosts: Option<String>) -> Result<Option<String>> {
    let Some(text) = known_hosts
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    if text.len() > MAX_KNOWN_HOSTS_LEN {
        return Err(Error::InvalidInput(
            "SSH known hosts text is too long".into(),
        ));
    }
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        // host-pattern key-type base64-key [comment]
        let fields: Vec<&str> = line.split_whitespace().collect();
        let key = fields.get(1..3).map(|f| f.join(" "));
        let parses = key.is_some_and(|k| ssh_key::PublicKey::from_openssh(&k).is_ok());
        if !parses {
            return Err(Error::InvalidInput(
                "SSH known hosts must be known_hosts lines: <host> <key type> <base64 key>".into(),
            ));
        }
    }
    Ok(Some(text))
}

/// Refuses SSH for a kind git cannot reach that way.
fn check_git_url_type(kind: CodeHostKind, git_url_type: GitUrlType) -> Result<()> {
    if git_url_type == GitUrlType::Ssh && !kind.descriptor().supports_ssh {
        return Err(Error::InvalidInput(format!(
            "{} code hosts cannot be reached over SSH; use http",
            kind.display_name()
        )));
    }
    Ok(())
}

impl Service {
    /// Registers a code host (site admins).
    pub async fn add_code_host(
        &self,
        caller: &Caller,
        request: AddCodeHost,
    ) -> Result<CodeHostConfig> {
        caller.require_site_admin()?;
        let url = CodeHostUrl::parse(&request.url)?;
        crate::codehost::check_code_host_url(request.kind, &url).map_err(Error::InvalidInput)?;
        check_git_url_type(request.kind, request.git_url_type)?;
        let host = CodeHostConfig {
            id: CodeHostId::new(),
            kind: request.kind,
            url,
            git_url_type: request.git_url_type,
            ssh_known_hosts: validate_known_hosts(request.ssh_known_hosts)?,
            ssh_key_algorithm: request.ssh_key_algorithm,
            created_at: Utc::now(),
            global_credential_policy: GlobalCredentialPolicy::default(),
        };
        let audit = super::audit::by(caller, super::audit::event::CODE_HOST_ADDED)
            .code_host(host.id)
            .detail(serde_json::json!({
                "kind": host.kind.display_name(),
                "url": host.url.as_str(),
                "git_url_type": host.git_url_type.as_str(),
            }));
        self.store.insert_code_host(&audit, &host).await?;
        tracing::info!(kind = %host.kind, url = %host.url, "code host added");
        Ok(host)
    }

    /// Changes how git reaches a code host. Switching to SSH gives every
    /// existing credential on it a keypair, marked as not yet added.
    pub async fn update_code_host(
        &self,
        caller: &Caller,
        id: CodeHostId,
        mut update: CodeHostUpdate,
    ) -> Result<CodeHostConfig> {
        caller.require_site_admin()?;
        if let Some(git_url_type) = update.git_url_type {
            let kind = self
                .store
                .find_code_host(id)
                .await
                .map_err(not_found("code host"))?
                .kind;
            check_git_url_type(kind, git_url_type)?;
        }
        if let Some(known_hosts) = update.ssh_known_hosts.take() {
            update.ssh_known_hosts = Some(validate_known_hosts(known_hosts)?);
        }
        let audit = super::audit::by(caller, super::audit::event::CODE_HOST_EDITED)
            .code_host(id)
            .detail(serde_json::json!({
                "git_url_type": update.git_url_type.map(GitUrlType::as_str),
                "ssh_known_hosts_changed": update.ssh_known_hosts.is_some(),
                "ssh_key_algorithm": update.ssh_key_algorithm.map(|a| a.as_str()),
            }));
        let host = self
            .store
            .update_code_host(&audit, id, update)
            .await
            .map_err(not_found("code host"))?;
        if host.git_url_type == GitUrlType::Ssh {
            self.generate_missing_ssh_keys().await?;
        }
        tracing::info!(url = %host.url, git_url_type = host.git_url_type.as_str(), "code host updated");
        Ok(host)
    }

    /// Checks a policy and resolves its usernames (site admins). The
    /// result goes in [`CodeHostUpdate::global_credential_policy`], so a
    /// form changing the code host and its policy changes both or neither.
    pub async fn global_credential_policy_from(
        &self,
        caller: &Caller,
        request: PolicyRequest,
    ) -> Result<GlobalCredentialPolicy> {
        caller.require_site_admin()?;
        let repositories = parse_repository_patterns(&request.repositories)?;
        let users = match request.mode {
            PolicyMode::Everyone | PolicyMode::Nobody if !request.usernames.is_empty() => {
                return Err(Error::InvalidInput(format!(
                    "users are listed only when the global credential is for selected users, \
                     not {}",
                    request.mode.as_str()
                )));
            }
            PolicyMode::Everyone => PolicyUsers::Everyone,
            PolicyMode::Nobody => PolicyUsers::Nobody,
            PolicyMode::Selected => {
                if request.usernames.is_empty() {
                    return Err(Error::InvalidInput(
                        "name at least one user who may use the global credential \
                         (or choose nobody)"
                            .into(),
                    ));
                }
                let mut ids = Vec::with_capacity(request.usernames.len());
                for name in &request.usernames {
                    let user = self
                        .store
                        .find_user_by_username(name.trim())
                        .await
                        .map_err(|e| match e {
                            crate::store::Error::NotFound => {
                                Error::InvalidInput(format!("unknown user: {:?}", name.trim()))
                            }
                            other => other.into(),
                        })?;
                    if !ids.contains(&user.id) {
                        ids.push(user.id);
                    }
                }
                PolicyUsers::Selected(ids)
            }
        };
        Ok(GlobalCredentialPolicy {
            users,
            repositories,
        })
    }

    /// Sets who may publish with the code host's global credential, and to
    /// which repositories (site admins).
    pub async fn set_global_credential_policy(
        &self,
        caller: &Caller,
        id: CodeHostId,
        request: PolicyRequest,
    ) -> Result<CodeHostConfig> {
        let policy = self.global_credential_policy_from(caller, request).await?;
        let audit = super::audit::by(caller, super::audit::event::CODE_HOST_POLICY)
            .code_host(id)
            .detail(serde_json::json!({
                "users": policy.users.mode().as_str(),
                "user_ids": match &policy.users {
                    PolicyUsers::Selected(ids) => ids.iter().map(ToString::to_string).collect(),
                    PolicyUsers::Everyone | PolicyUsers::Nobody => Vec::new(),
                },
                "repositories": policy.repositories_text(","),
            }));
        let host = self
            .store
            .update_code_host(
                &audit,
                id,
                CodeHostUpdate {
                    global_credential_policy: Some(policy),
                    ..CodeHostUpdate::default()
                },
            )
            .await
            .map_err(not_found("code host"))?;
        tracing::info!(
            url = %host.url,
            users = host.global_credential_policy.users.mode().as_str(),
            repositories = %host.global_credential_policy.repositories_text(","),
            "global credential policy set"
        );
        Ok(host)
    }

    /// A code host's policy with user ids turned into names (site admins).
    /// Users deleted since they were selected are left out.
    pub async fn global_credential_policy(
        &self,
        caller: &Caller,
        host: &CodeHostConfig,
    ) -> Result<PolicyView> {
        caller.require_site_admin()?;
        let policy = &host.global_credential_policy;
        let mut usernames = Vec::new();
        if let PolicyUsers::Selected(ids) = &policy.users {
            for id in ids {
                match self.store.find_user(*id).await {
                    Ok(user) => usernames.push(user.username),
                    Err(crate::store::Error::NotFound) => {}
                    Err(other) => return Err(other.into()),
                }
            }
        }
        Ok(PolicyView {
            mode: policy.users.mode(),
            usernames,
            repositories: policy
                .repositories
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
        })
    }

    /// Removes a code host and every credential for it.
    pub async fn delete_code_host(&self, caller: &Caller, id: CodeHostId) -> Result<()> {
        caller.require_site_admin()?;
        let audit = super::audit::by(caller, super::audit::event::CODE_HOST_REMOVED).code_host(id);
        self.store
            .delete_code_host(&audit, id)
            .await
            .map_err(not_found("code host"))?;
        tracing::info!(code_host = %id, "code host deleted");
        Ok(())
    }

    /// The registered code hosts (site admins only: the list of what the
    /// instance talks to is not every user's business).
    pub async fn list_code_hosts(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Page<CodeHostConfig>> {
        caller.require_site_admin()?;
        self.code_host_page(page).await
    }

    /// Finds a code host by URL (site admins and the operator).
    pub async fn code_host_by_url(&self, caller: &Caller, url: &str) -> Result<CodeHostConfig> {
        caller.require_site_admin()?;
        self.configured_code_host(&CodeHostUrl::parse(url)?).await
    }

    /// The code host configured at `url`, or the error a caller asking to
    /// use an unconfigured one needs to see.
    pub(super) async fn configured_code_host(&self, url: &CodeHostUrl) -> Result<CodeHostConfig> {
        self.store
            .find_code_host_by_url(url)
            .await
            .map_err(|e| match e {
                crate::store::Error::NotFound => Error::NotFound(format!(
                    "unknown code host: no code host is configured at {url}"
                )),
                other => other.into(),
            })
    }

    async fn code_host_page(&self, page: &PageRequest) -> Result<Page<CodeHostConfig>> {
        let limit = page.limit()?;
        let rows = self.store.list_code_hosts(page.after_id()?, limit).await?;
        let total = self.store.count_code_hosts().await?;
        Ok(Page::from_rows(rows, limit, total, |h| h.id.to_string()))
    }

    /// Every code host with the user's credential for it, or the global
    /// one marked as such when the user has none and the site policy lets
    /// them use it. Only site admins see the global credential's details.
    pub async fn user_code_hosts(
        &self,
        caller: &Caller,
        user_id: UserId,
        page: &PageRequest,
    ) -> Result<Page<CodeHostView>> {
        signed_in(caller)?;
        caller.require_acting_for(user_id)?;
        let hosts = self.code_host_page(page).await?;
        let own = self
            .store
            .list_credentials_of(CredentialOwner::User(user_id))
            .await?;
        let site = self
            .store
            .list_credentials_of(CredentialOwner::Site)
            .await?;
        let full_details = caller.may_see_site_credential_details();
        let webhooks = self.store.code_hosts_with_webhooks().await?;
        Ok(hosts.map(|host| {
            let (own, own_app) = shown_credentials(&own, host.id);
            // A global credential the policy keeps from this user does not
            // cover them: they need their own token.
            let (site, _) = shown_credentials(&site, host.id);
            let site = site.filter(|_| host.global_credential_policy.allows_user(user_id));
            let github_app = own_app.map(|c| CredentialView::new(c, &host));
            let credential = match (own, site) {
                (Some(c), _) => Some(CredentialView::new(c, &host)),
                (None, Some(c)) if full_details => Some(CredentialView::new(c, &host)),
                (None, Some(c)) => Some(site_credential_seen_by_user(c, &host)),
                (None, None) => None,
            };
            CodeHostView {
                has_webhook: webhooks.contains(&host.id),
                code_host: host,
                credential,
                github_app,
            }
        }))
    }

    /// Every code host with its global credential (site admins).
    pub async fn site_code_hosts(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Page<CodeHostView>> {
        caller.require_site_admin()?;
        let hosts = self.code_host_page(page).await?;
        let site = self
            .store
            .list_credentials_of(CredentialOwner::Site)
            .await?;
        let webhooks = self.store.code_hosts_with_webhooks().await?;
        Ok(hosts.map(|host| {
            let (shown, app) = shown_credentials(&site, host.id);
            let credential = shown.map(|c| CredentialView::new(c, &host));
            let github_app = app.map(|c| CredentialView::new(c, &host));
            CodeHostView {
                has_webhook: webhooks.contains(&host.id),
                code_host: host,
                credential,
                github_app,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines_are_checked() {
        let good = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        assert_eq!(
            validate_known_hosts(Some(format!("  {good}\n")))
                .ok()
                .flatten()
                .as_deref(),
            Some(good)
        );
        assert_eq!(
            validate_known_hosts(Some("   ".into())).ok().flatten(),
            None
        );
        assert!(validate_known_hosts(Some("github.com ssh-ed25519 notbase64".into())).is_err());
        assert!(validate_known_hosts(Some("just-a-host".into())).is_err());
    }
}
