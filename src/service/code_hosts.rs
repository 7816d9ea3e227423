//! Code host registration and the per-code-host credential views.

use chrono::Utc;

use super::credentials::CredentialView;
use super::{Error, Page, PageRequest, Result, Service, not_found, signed_in};
use crate::auth::Caller;
use crate::domain::{CodeHostId, CodeHostKind, CodeHostUrl, GitUrlType, SshKeyAlgorithm, UserId};
use crate::store::{CodeHostRecord, CodeHostUpdate, CredentialOwner};

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
    pub code_host: CodeHostRecord,
    pub credential: Option<CredentialView>,
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

impl Service {
    /// Registers a code host (site admins).
    pub async fn add_code_host(
        &self,
        caller: &Caller,
        request: AddCodeHost,
    ) -> Result<CodeHostRecord> {
        caller.require_site_admin()?;
        if !request.kind.is_supported() {
            return Err(Error::InvalidInput(format!(
                "{} code hosts are not supported yet",
                request.kind.display_name()
            )));
        }
        let host = CodeHostRecord {
            id: CodeHostId::new(),
            kind: request.kind,
            url: CodeHostUrl::parse(&request.url)?,
            git_url_type: request.git_url_type,
            ssh_known_hosts: validate_known_hosts(request.ssh_known_hosts)?,
            ssh_key_algorithm: request.ssh_key_algorithm,
            created_at: Utc::now(),
        };
        self.store.insert_code_host(&host).await?;
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
    ) -> Result<CodeHostRecord> {
        caller.require_site_admin()?;
        if let Some(known_hosts) = update.ssh_known_hosts.take() {
            update.ssh_known_hosts = Some(validate_known_hosts(known_hosts)?);
        }
        let host = self
            .store
            .update_code_host(id, update)
            .await
            .map_err(not_found("code host"))?;
        if host.git_url_type == GitUrlType::Ssh {
            self.generate_missing_ssh_keys().await?;
        }
        tracing::info!(url = %host.url, git_url_type = host.git_url_type.as_str(), "code host updated");
        Ok(host)
    }

    /// Removes a code host and every credential for it.
    pub async fn delete_code_host(&self, caller: &Caller, id: CodeHostId) -> Result<()> {
        caller.require_site_admin()?;
        self.store
            .delete_code_host(id)
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
    ) -> Result<Page<CodeHostRecord>> {
        caller.require_site_admin()?;
        self.code_host_page(page).await
    }

    /// Finds a code host by URL (site admins and the operator).
    pub async fn code_host_by_url(&self, caller: &Caller, url: &str) -> Result<CodeHostRecord> {
        caller.require_site_admin()?;
        let url = CodeHostUrl::parse(url)?;
        self.store
            .find_code_host_by_url(&url)
            .await
            .map_err(not_found(&format!("code host {url}")))
    }

    async fn code_host_page(&self, page: &PageRequest) -> Result<Page<CodeHostRecord>> {
        let limit = page.limit()?;
        let rows = self.store.list_code_hosts(page.after_id()?, limit).await?;
        let total = self.store.count_code_hosts().await?;
        Ok(Page::from_rows(rows, limit, total, |h| h.id.to_string()))
    }

    /// Every code host with the user's credential for it, or the global
    /// one marked as such when the user has none.
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
        Ok(hosts.map(|host| {
            let credential = own
                .iter()
                .find(|c| c.code_host_id == host.id)
                .or_else(|| site.iter().find(|c| c.code_host_id == host.id))
                .map(|c| CredentialView::new(c, &host));
            CodeHostView {
                code_host: host,
                credential,
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
        Ok(hosts.map(|host| {
            let credential = site
                .iter()
                .find(|c| c.code_host_id == host.id)
                .map(|c| CredentialView::new(c, &host));
            CodeHostView {
                code_host: host,
                credential,
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
