//! API access tokens: minted for yourself, listed and revoked by their
//! owner (or a site admin), refused once expired or revoked.

use std::time::Duration;

use chrono::Utc;

use super::{Error, Page, PageRequest, Result, Service, not_found};
use crate::auth::{Caller, Denied};
use crate::crypto::{RandomToken, sha256_hex};
use crate::domain::{AccessTokenId, AccessTokenInfo, UserId};
use crate::store::{self, NewAccessToken};

/// An API access token, returned once at creation.
pub struct CreatedAccessToken {
    pub record: AccessTokenInfo,
    pub token: RandomToken,
}

const ACCESS_TOKEN_PREFIX: &str = "bcp_";
/// How much of a token is kept in clear to recognise it: the kind prefix
/// and 8 random characters (48 of its 256 bits, leaving 208 unknown).
const RECOGNISABLE_CHARS: usize = ACCESS_TOKEN_PREFIX.len() + 8;
/// The longest expiry a token may be given.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3650 * 24 * 3600);
const MAX_NOTE_CHARS: usize = 200;
const TOKEN_NOT_FOUND: &str = "access token not found";

/// Answers a token the caller may not see exactly like a missing one.
fn hide(denied: Denied) -> Error {
    match denied {
        Denied::Hidden => Error::NotFound(TOKEN_NOT_FOUND.into()),
        other => other.into(),
    }
}

impl Service {
    /// The caller an API access token stands for. Revoked and expired
    /// tokens are refused; the database is asked on every request, so a
    /// revocation holds at once on every replica.
    pub async fn caller_for_access_token(&self, token: &str) -> Result<Caller> {
        self.store
            .find_user_by_access_token(&sha256_hex(token), Utc::now())
            .await
            .map(Caller::User)
            .map_err(|e| match e {
                store::Error::NotFound => {
                    Error::Unauthenticated("invalid, expired or revoked access token".into())
                }
                other => other.into(),
            })
    }

    /// Creates an API access token for the caller's own account (the
    /// operator: for any user), valid for `lifetime` or until revoked.
    /// The token is returned once and stored only as a hash.
    pub async fn create_access_token(
        &self,
        caller: &Caller,
        user_id: UserId,
        note: &str,
        lifetime: Option<Duration>,
    ) -> Result<CreatedAccessToken> {
        caller.require_minting_token_for(user_id)?;
        let user = self
            .store
            .find_user(user_id)
            .await
            .map_err(not_found("user"))?;
        let note = note.trim();
        if note.chars().count() > MAX_NOTE_CHARS {
            return Err(Error::InvalidInput(format!(
                "note must be at most {MAX_NOTE_CHARS} characters"
            )));
        }
        let now = Utc::now();
        let expires_at = match lifetime {
            None => None,
            Some(lifetime) if lifetime.is_zero() || lifetime > MAX_TOKEN_LIFETIME => {
                return Err(Error::InvalidInput(format!(
                    "an access token's lifetime must be between 1 second and {} days",
                    MAX_TOKEN_LIFETIME.as_secs() / 86_400
                )));
            }
            Some(lifetime) => Some(
                chrono::Duration::from_std(lifetime)
                    .ok()
                    .and_then(|lifetime| now.checked_add_signed(lifetime))
                    .ok_or_else(|| Error::InvalidInput("expiry out of range".into()))?,
            ),
        };
        let token = RandomToken::generate(ACCESS_TOKEN_PREFIX)?;
        let prefix: String = token.expose().chars().take(RECOGNISABLE_CHARS).collect();
        let record = AccessTokenInfo {
            id: AccessTokenId::new(),
            user_id: user.id,
            prefix: Some(prefix),
            note: note.to_owned(),
            created_at: now,
            last_used_at: None,
            expires_at,
        };
        let audit = super::audit::by(caller, super::audit::event::ACCESS_TOKEN_CREATED)
            .user(user.id)
            .detail(serde_json::json!({
                "token_id": record.id.to_string(),
                "prefix": record.prefix,
                "note": record.note,
                "expires_at": expires_at.map(|at| at.to_rfc3339()),
            }));
        self.store
            .insert_access_token(
                &audit,
                NewAccessToken {
                    id: record.id,
                    user_id: record.user_id,
                    token_hash: &token.hash(),
                    prefix: record.prefix.as_deref().unwrap_or_default(),
                    note: &record.note,
                    created_at: now,
                    expires_at,
                },
            )
            .await?;
        tracing::info!(user = %user.username, token_id = %record.id, "access token created");
        Ok(CreatedAccessToken { record, token })
    }

    /// A user's tokens, to themselves or a site admin; never the tokens
    /// themselves. Expired tokens are listed (marked by `expires_at`) until
    /// revoked.
    pub async fn list_access_tokens(
        &self,
        caller: &Caller,
        user_id: UserId,
        page: &PageRequest,
    ) -> Result<Page<AccessTokenInfo>> {
        caller.require_acting_for(user_id)?;
        let limit = page.limit()?;
        let rows = self
            .store
            .list_access_tokens(user_id, page.after_id()?, limit)
            .await?;
        let total = self.store.count_access_tokens(user_id).await?;
        Ok(Page::from_rows(rows, limit, total, |t| t.id.to_string()))
    }

    /// One token, to its owner or a site admin; others get "not found".
    pub async fn access_token(
        &self,
        caller: &Caller,
        id: AccessTokenId,
    ) -> Result<AccessTokenInfo> {
        caller.require_signed_in()?;
        let token = self
            .store
            .find_access_token(id)
            .await
            .map_err(not_found("access token"))?;
        caller.require_acting_for(token.user_id).map_err(hide)?;
        Ok(token)
    }

    /// Revokes a token (its owner, or a site admin): deleted, so the next
    /// request with it fails on every replica.
    pub async fn delete_access_token(&self, caller: &Caller, id: AccessTokenId) -> Result<()> {
        let token = self.access_token(caller, id).await?;
        let audit = super::audit::by(caller, super::audit::event::ACCESS_TOKEN_REVOKED)
            .user(token.user_id)
            .detail(serde_json::json!({
                "token_id": token.id.to_string(),
                "prefix": token.prefix,
            }));
        self.store
            .delete_access_token(&audit, token.id)
            .await
            .map_err(not_found("access token"))?;
        tracing::info!(token_id = %token.id, "access token revoked");
        Ok(())
    }
}
