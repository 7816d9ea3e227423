//! Users and signing in.

use chrono::Utc;
use secrecy::SecretString;

use super::{Error, Page, PageRequest, Result, Service, not_found};
use crate::auth::{Caller, hash_password, verify_password};
use crate::crypto::{RandomToken, sha256_hex};
use crate::domain::{Password, UserId, Username};
use crate::store::{NewUser, UserRecord};

/// A new session's cookie value; shown to the browser once.
pub struct SessionToken(pub RandomToken);

const SESSION_PREFIX: &str = "bcs_";
const BAD_CREDENTIALS: &str = "wrong username or password";

impl Service {
    /// Whether the first account has been created yet.
    pub async fn site_initialized(&self) -> Result<bool> {
        Ok(self.store.site_initialized().await?)
    }

    /// Creates the first account, a site admin, on an empty instance.
    /// Anyone may call it, exactly once.
    pub async fn initialize_site(
        &self,
        username: &str,
        password: SecretString,
    ) -> Result<UserRecord> {
        if self.store.site_initialized().await? {
            return Err(Error::Forbidden(
                "this instance is already initialised; sign in instead".into(),
            ));
        }
        // Asked as a regular user: the store makes the first user admin, so
        // a non-admin result means another first account won a race.
        let user = self.insert_user(username, password, false).await?;
        if !user.site_admin {
            // Lost a race with another first account: undo, keep one admin.
            self.store.delete_user(user.id).await?;
            return Err(Error::Forbidden(
                "this instance is already initialised; sign in instead".into(),
            ));
        }
        Ok(user)
    }

    /// Creates a user (site admins and the operator). The first user of an
    /// instance is made site admin whatever `site_admin` says.
    #[tracing::instrument(skip(self, password), fields(caller = ?caller.user().map(|u| &u.username)))]
    pub async fn create_user(
        &self,
        caller: &Caller,
        username: &str,
        password: SecretString,
        site_admin: bool,
    ) -> Result<UserRecord> {
        if self.store.site_initialized().await? {
            caller.require_site_admin()?;
        }
        self.insert_user(username, password, site_admin).await
    }

    async fn insert_user(
        &self,
        username: &str,
        password: SecretString,
        site_admin: bool,
    ) -> Result<UserRecord> {
        let username = Username::parse(username)?;
        let password = Password::parse(password)?;
        let password_hash = hash_password(SecretString::from(password.expose()))
            .await
            .map_err(Error::Internal)?;
        let user = self
            .store
            .insert_user(NewUser {
                id: UserId::new(),
                username: username.as_str().to_owned(),
                password_hash,
                site_admin,
                created_at: Utc::now(),
            })
            .await?;
        tracing::info!(user = %user.username, site_admin = user.site_admin, "user created");
        Ok(user)
    }

    /// A user, to themselves or a site admin.
    pub async fn user(&self, caller: &Caller, id: UserId) -> Result<UserRecord> {
        caller.require_acting_for(id)?;
        self.store.find_user(id).await.map_err(not_found("user"))
    }

    /// Looks a user up by name (site admins and the operator).
    pub async fn user_by_username(&self, caller: &Caller, username: &str) -> Result<UserRecord> {
        caller.require_site_admin()?;
        self.store
            .find_user_by_username(username)
            .await
            .map_err(not_found(&format!("user {username:?}")))
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> Result<Page<UserRecord>> {
        caller.require_site_admin()?;
        let limit = page.limit()?;
        let rows = self.store.list_users(page.after_id()?, limit).await?;
        let total = self.store.count_users().await?;
        Ok(Page::from_rows(rows, limit, total, |u| u.id.to_string()))
    }

    pub async fn delete_user(&self, caller: &Caller, id: UserId) -> Result<()> {
        caller.require_site_admin()?;
        if caller.user().is_some_and(|me| me.id == id) {
            return Err(Error::InvalidInput(
                "you cannot delete your own account".into(),
            ));
        }
        self.store.delete_user(id).await.map_err(not_found("user"))
    }

    pub async fn set_site_admin(
        &self,
        caller: &Caller,
        id: UserId,
        site_admin: bool,
    ) -> Result<()> {
        caller.require_site_admin()?;
        if caller.user().is_some_and(|me| me.id == id) {
            return Err(Error::InvalidInput(
                "you cannot change your own site admin status".into(),
            ));
        }
        self.store
            .set_site_admin(id, site_admin)
            .await
            .map_err(not_found("user"))
    }

    /// Checks a username and password and opens a session. Unknown users
    /// and wrong passwords get the same answer in the same time.
    pub async fn sign_in(
        &self,
        username: &str,
        password: SecretString,
    ) -> Result<(SessionToken, UserRecord)> {
        let found = self.store.find_user_with_password_hash(username).await;
        let (user, hash) = match found {
            Ok((user, hash)) => (Some(user), Some(hash)),
            Err(crate::store::Error::NotFound) => (None, None),
            Err(other) => return Err(other.into()),
        };
        let matched = verify_password(password, hash).await;
        let Some(user) = user.filter(|_| matched) else {
            return Err(Error::Unauthenticated(BAD_CREDENTIALS.into()));
        };
        let token = RandomToken::generate(SESSION_PREFIX)?;
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.settings.session_ttl)
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .insert_session(&token.hash(), user.id, now, now + ttl)
            .await?;
        tracing::info!(user = %user.username, "signed in");
        Ok((SessionToken(token), user))
    }

    pub async fn sign_out(&self, session: &str) -> Result<()> {
        Ok(self.store.delete_session(&sha256_hex(session)).await?)
    }
}
