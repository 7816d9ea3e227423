//! Sessions after sign-in: checking them on every request (absolute and
//! idle timeouts), ending them, and changing passwords, which ends them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::{Error, Result, Service, not_found};
use crate::auth::{Caller, hash_password};
use crate::crypto::sha256_hex;
use crate::domain::{Password, UserId};
use crate::store;

/// How often a session's `last_seen_at` is written at most, so browsing
/// does not turn every page view into a write. The idle timeout is
/// therefore exact to this much.
const LAST_SEEN_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// `now - duration`, or `None` when the duration is too long to matter.
fn before(now: DateTime<Utc>, duration: Duration) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
}

impl Service {
    /// Sessions last used before this are idle for too long.
    fn idle_cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.settings
            .session_idle_timeout
            .and_then(|timeout| before(now, timeout))
    }

    /// The caller a session cookie stands for. The database is asked on
    /// every request, so an ended session is refused at once on every
    /// replica. A session past its expiry or unused for longer than the
    /// idle timeout is deleted and reported as expired, so the browser can
    /// say "sign in again".
    pub async fn caller_for_session(&self, session: &str) -> Result<Caller> {
        let hash = sha256_hex(session);
        let found = self.store.find_session(&hash).await.map_err(|e| match e {
            store::Error::NotFound => {
                Error::Unauthenticated("your session is invalid; sign in again".into())
            }
            other => other.into(),
        })?;
        let now = Utc::now();
        let idle = self
            .idle_cutoff(now)
            .is_some_and(|cutoff| found.last_seen_at <= cutoff);
        if found.expires_at <= now || idle {
            self.store.delete_session(None, &hash).await?;
            return Err(Error::Unauthenticated(
                "your session has expired; sign in again".into(),
            ));
        }
        if now - found.last_seen_at >= LAST_SEEN_RESOLUTION {
            self.store.touch_session(&hash, now).await?;
        }
        Ok(Caller::User(found.user))
    }

    /// Ends every session of a user ("sign out everywhere"): themselves or
    /// a site admin. API access tokens are not affected.
    pub async fn end_sessions(&self, caller: &Caller, user_id: UserId) -> Result<u64> {
        caller.require_acting_for(user_id)?;
        let user = self
            .store
            .find_user(user_id)
            .await
            .map_err(not_found("user"))?;
        let audit = super::audit::by(caller, super::audit::event::SESSIONS_REVOKED).user(user.id);
        let ended = self.store.delete_user_sessions(&audit, user.id).await?;
        tracing::info!(user = %user.username, ended, "sessions ended");
        Ok(ended)
    }

    /// Changes the caller's own password after checking the current one,
    /// and ends their other sessions; `current_session` (the caller's
    /// cookie, if they use one) stays signed in. A wrong current password
    /// changes nothing.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current_session: Option<&str>,
        current: SecretString,
        new: SecretString,
    ) -> Result<()> {
        caller.require_signed_in()?;
        let user = caller.user().ok_or_else(|| {
            Error::InvalidInput("only a signed-in user has a password to change".into())
        })?;
        let new = Password::parse(new)?;
        // Checked like a sign-in (bounded, and counting towards the
        // account's back-off), so a stolen session cannot guess the
        // password faster than the sign-in page allows.
        let user_id = user.id;
        let checked = self
            .guarded_password_check(&user.username, current, None, |store| async move {
                let hash = store
                    .find_password_hash(user_id)
                    .await
                    .map_err(not_found("user"))?;
                Ok((Some(user.clone()), Some(hash)))
            })
            .await?;
        if checked.is_none() {
            return Err(Error::InvalidInput("the current password is wrong".into()));
        }
        let hash = hash_password(SecretString::from(new.expose()))
            .await
            .map_err(Error::Internal)?;
        let keep = current_session.map(sha256_hex);
        let audit = super::audit::by(caller, super::audit::event::USER_PASSWORD)
            .user(user.id)
            .detail(serde_json::json!({ "by": "self" }));
        self.store
            .set_password_and_end_sessions(&audit, user.id, &hash, keep.as_deref())
            .await
            .map_err(not_found("user"))?;
        tracing::info!(user = %user.username, "password changed; other sessions ended");
        Ok(())
    }

    /// Sets another user's password (site admins, the operator) and ends
    /// all their sessions.
    pub async fn set_user_password(
        &self,
        caller: &Caller,
        user_id: UserId,
        new: SecretString,
    ) -> Result<()> {
        caller.require_password_reset_for(user_id)?;
        let new = Password::parse(new)?;
        let user = self
            .store
            .find_user(user_id)
            .await
            .map_err(not_found("user"))?;
        let hash = hash_password(SecretString::from(new.expose()))
            .await
            .map_err(Error::Internal)?;
        let audit = super::audit::by(caller, super::audit::event::USER_PASSWORD)
            .user(user.id)
            .detail(serde_json::json!({ "by": "reset" }));
        self.store
            .set_password_and_end_sessions(&audit, user.id, &hash, None)
            .await
            .map_err(not_found("user"))?;
        tracing::info!(user = %user.username, by = ?caller.user().map(|u| &u.username), "password reset; sessions ended");
        Ok(())
    }

    /// Deletes sessions past their expiry or idle timeout; run
    /// periodically by the server.
    pub async fn purge_expired_sessions(&self) -> Result<u64> {
        let now = Utc::now();
        Ok(self
            .store
            .delete_expired_sessions(now, self.idle_cutoff(now))
            .await?)
    }
}
