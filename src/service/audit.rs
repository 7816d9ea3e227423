//! The audit log as the service writes and reads it: who did what, named
//! from the caller; reading is for site admins (everything) and users
//! (what is about them or by them); `verify` walks the hash chain.

use super::{Error, Page, PageRequest, Result, Service};
use crate::auth::Caller;
use crate::domain::{AuditRecord, CodeHostConfig, CodeHostUrl, CredentialOwner, UserId};
use crate::store::{AuditEntry, AuditFilter};

/// The events recorded, as `event` names them.
pub mod event {
    pub const CREDENTIAL_CREATED: &str = "credential.created";
    pub const CREDENTIAL_DELETED: &str = "credential.deleted";
    pub const CREDENTIAL_CHECKED: &str = "credential.checked";
    pub const CREDENTIAL_USED: &str = "credential.used";
    pub const CREDENTIAL_SIGNING_ENABLED: &str = "credential.signing_enabled";
    pub const CREDENTIAL_SIGNING_DISABLED: &str = "credential.signing_disabled";
    pub const SIGN_IN: &str = "sign_in";
    pub const SIGN_OUT: &str = "sign_out";
    pub const SESSIONS_REVOKED: &str = "sessions.revoked";
    pub const ACCESS_TOKEN_CREATED: &str = "access_token.created";
    pub const ACCESS_TOKEN_REVOKED: &str = "access_token.revoked";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_DELETED: &str = "user.deleted";
    pub const USER_SITE_ADMIN: &str = "user.site_admin_changed";
    pub const USER_PASSWORD: &str = "user.password_changed";
    pub const CODE_HOST_ADDED: &str = "code_host.added";
    pub const CODE_HOST_EDITED: &str = "code_host.edited";
    pub const CODE_HOST_REMOVED: &str = "code_host.removed";
    pub const CODE_HOST_POLICY: &str = "code_host.policy_changed";
    pub const CODE_HOST_WEBHOOK_SET_UP: &str = "code_host.webhook_set_up";
    pub const CODE_HOST_WEBHOOK_REMOVED: &str = "code_host.webhook_removed";
    pub const CHANGESET_HANDED_OVER: &str = "changeset.handed_over";
    pub const KEYRING_ROTATED: &str = "keyring.rotated";
    pub const KEYRING_KEY_RETIRED: &str = "keyring.key_retired";

    /// Every event, for filters.
    pub const ALL: [&str; 24] = [
        CREDENTIAL_CREATED,
        CREDENTIAL_DELETED,
        CREDENTIAL_CHECKED,
        CREDENTIAL_USED,
        CREDENTIAL_SIGNING_ENABLED,
        CREDENTIAL_SIGNING_DISABLED,
        SIGN_IN,
        SIGN_OUT,
        SESSIONS_REVOKED,
        ACCESS_TOKEN_CREATED,
        ACCESS_TOKEN_REVOKED,
        USER_CREATED,
        USER_DELETED,
        USER_SITE_ADMIN,
        USER_PASSWORD,
        CODE_HOST_ADDED,
        CODE_HOST_EDITED,
        CODE_HOST_REMOVED,
        CODE_HOST_POLICY,
        CODE_HOST_WEBHOOK_SET_UP,
        CODE_HOST_WEBHOOK_REMOVED,
        CHANGESET_HANDED_OVER,
        KEYRING_ROTATED,
        KEYRING_KEY_RETIRED,
    ];
}

/// An entry for `event` done by `caller`.
pub(crate) fn by(caller: &Caller, event: &'static str) -> AuditEntry {
    let (actor, name) = match caller {
        Caller::User(user) => (format!("user:{}", user.id), Some(user.username.clone())),
        Caller::Operator => ("operator".to_owned(), None),
        Caller::Anonymous => ("anonymous".to_owned(), None),
    };
    AuditEntry::new(actor, name, event)
}

/// An entry for `event` done by batchcred itself (background work).
pub(crate) fn by_system(event: &'static str) -> AuditEntry {
    AuditEntry::new("system".to_owned(), None, event)
}

/// An entry for `event` about a credential: its owner, code host and
/// whose it is (user or site).
pub(crate) fn about_credential(
    entry: AuditEntry,
    credential: &crate::store::CredentialRecord,
    host: &CodeHostConfig,
) -> AuditEntry {
    let entry = entry
        .credential(credential.id)
        .code_host(host.id)
        .detail(serde_json::json!({
            "owner": match credential.owner {
                CredentialOwner::User(_) => "user",
                CredentialOwner::Site => "site",
            },
            "code_host": host.url.as_str(),
            "kind": host.kind.display_name(),
        }));
    match credential.owner {
        CredentialOwner::User(user) => entry.user(user),
        CredentialOwner::Site => entry,
    }
}

/// A change of the keyring, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringChange {
    /// A new primary key (the id is the new key's).
    Rotated,
    Retired,
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// About this user or done by them (users may only ask for
    /// themselves).
    pub user: Option<UserId>,
    /// One event name, such as `credential.created`.
    pub event: Option<String>,
    /// The code host's URL.
    pub code_host: Option<String>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    /// Entries whose link was checked.
    pub checked: i64,
    /// The first broken link: the entry's sequence number and what is
    /// wrong there.
    pub broken: Option<(i64, String)>,
}

/// Entries read per round trip while verifying.
const VERIFY_BATCH: i64 = 1000;

impl Service {
    /// A page of audit entries, newest first: every entry for site admins
    /// (and the operator), the entries about or by themselves for a user.
    pub async fn audit_log(
        &self,
        caller: &Caller,
        query: &AuditQuery,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>> {
        caller.require_signed_in()?;
        let code_host_id = match &query.code_host {
            Some(url) => Some(
                self.configured_code_host(&CodeHostUrl::parse(url)?)
                    .await?
                    .id
                    .to_string(),
            ),
            None => None,
        };
        let mut filter = AuditFilter {
            user_id: query.user.map(|id| id.to_string()),
            event: query.event.clone(),
            code_host_id,
            since: query.since,
            until: query.until,
        };
        if caller.require_site_admin().is_err() {
            let own = caller.user().map(|u| u.id.to_string());
            match &filter.user_id {
                Some(asked) if Some(asked) != own.as_ref() => {
                    return Err(Error::Forbidden(
                        "only site admins see other users' audit entries".into(),
                    ));
                }
                _ => filter.user_id = own,
            }
        }
        let limit = page.limit()?;
        let before = page.after_id::<i64>()?;
        let rows = self.store.list_audit(&filter, before, limit).await?;
        let total = self.store.count_audit(&filter).await?;
        Ok(Page::from_rows(rows, limit, total, |r| r.seq.to_string()))
    }

    /// Walks the whole chain from where it starts (after retention) to its
    /// head, and names the first entry that was deleted, edited or
    /// re-linked. Site admins and the operator.
    pub async fn verify_audit_log(&self, caller: &Caller) -> Result<AuditVerification> {
        caller.require_site_admin()?;
        let head = self.store.audit_head().await?;
        let (mut expected_seq, mut prev) = (head.pruned_seq + 1, head.pruned_hash.clone());
        let mut checked = 0;
        loop {
            let batch = self
                .store
                .audit_after(expected_seq - 1, VERIFY_BATCH)
                .await?;
            if batch.is_empty() {
                break;
            }
            for entry in batch {
                let broken = if entry.seq != expected_seq {
                    Some(format!(
                        "entry {expected_seq} is missing (deleted); the next one is {}",
                        entry.seq
                    ))
                } else if entry.prev_hash != prev {
                    Some(format!(
                        "entry {} does not follow entry {} (the one before was edited or replaced)",
                        entry.seq,
                        entry.seq - 1
                    ))
                } else if entry.expected_hash() != entry.hash {
                    Some(format!("entry {} was edited", entry.seq))
                } else {
                    None
                };
                if let Some(why) = broken {
                    return Ok(AuditVerification {
                        checked,
                        broken: Some((entry.seq.min(expected_seq), why)),
                    });
                }
                checked += 1;
                expected_seq += 1;
                prev = entry.hash;
            }
        }
        let last = expected_seq - 1;
        let broken = if head.seq != last {
            Some((
                last + 1,
                format!(
                    "entries {} to {} are missing (deleted from the end)",
                    last + 1,
                    head.seq
                ),
            ))
        } else if head.hash != prev {
            Some((last, format!("entry {last} was edited")))
        } else {
            None
        };
        Ok(AuditVerification { checked, broken })
    }

    /// Records a keyring change (the keyring is a file, not a row, so the
    /// entry is written on its own). Site admins and the operator.
    pub async fn record_keyring_change(
        &self,
        caller: &Caller,
        change: KeyringChange,
        key: &crate::crypto::KeyId,
    ) -> Result<()> {
        caller.require_site_admin()?;
        let event = match change {
            KeyringChange::Rotated => event::KEYRING_ROTATED,
            KeyringChange::Retired => event::KEYRING_KEY_RETIRED,
        };
        let entry = by(caller, event).detail(serde_json::json!({ "key_id": key.as_str() }));
        Ok(self.store.record_audit(&entry).await?)
    }

    /// Removes audit entries older than the retention period, if one is
    /// set (the chain then starts after them, and still verifies).
    pub async fn prune_audit_log(
        &self,
        caller: &Caller,
        older_than: std::time::Duration,
    ) -> Result<u64> {
        caller.require_operator()?;
        let before = chrono::Duration::from_std(older_than)
            .ok()
            .and_then(|age| chrono::Utc::now().checked_sub_signed(age));
        match before {
            Some(before) => Ok(self.store.prune_audit(before).await?),
            // Longer ago than time goes back: nothing is that old.
            None => Ok(0),
        }
    }
}
