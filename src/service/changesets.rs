//! Who a changeset belongs to. Its first publisher owns it; only a site
//! admin (or the operator) hands it to someone else, and the hand-over is
//! recorded with the changeset.

use chrono::Utc;

use super::{Error, Result, Service};
use crate::auth::Caller;
use crate::domain::{ChangesetRecord, CodeHostUrl, UserId};

impl Service {
    /// Gives the changeset for `head_branch` of `repository` on the code
    /// host at `code_host` to user `to`, who can then publish it (and its
    /// previous owner no longer can). Site admins only.
    pub async fn hand_over_changeset(
        &self,
        caller: &Caller,
        code_host: &str,
        repository: &str,
        head_branch: &str,
        to: UserId,
    ) -> Result<ChangesetRecord> {
        caller.require_site_admin()?;
        let url = CodeHostUrl::parse(code_host)?;
        let host = self.configured_code_host(&url).await?;
        let changeset = self
            .store
            .find_changeset(host.id, repository, head_branch)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no changeset is recorded for {repository}:{head_branch} on {url}"
                ))
            })?;
        let new_owner = self
            .store
            .find_user(to)
            .await
            .map_err(super::not_found("user"))?;
        if changeset.user_id == to {
            return Err(Error::InvalidInput(format!(
                "{repository}:{head_branch} already belongs to {}",
                new_owner.username
            )));
        }
        let by = caller.user().map(|admin| admin.id);
        let audit = super::audit::by(caller, super::audit::event::CHANGESET_HANDED_OVER)
            .user(to)
            .code_host(host.id)
            .changeset(changeset.id)
            .detail(serde_json::json!({
                "repository": changeset.repository,
                "head_branch": changeset.head_branch,
                "from": changeset.user_id.to_string(),
                "to": to.to_string(),
            }));
        let handed = self
            .store
            .hand_over_changeset(&audit, changeset.id, to, by, Utc::now())
            .await?;
        tracing::info!(
            changeset = %handed.id,
            from = %changeset.user_id,
            to = %to,
            by = by.map_or_else(|| "operator".to_owned(), |id| id.to_string()),
            "changeset handed over"
        );
        Ok(handed)
    }
}
