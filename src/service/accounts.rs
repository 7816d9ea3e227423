//! Users and signing in.

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;

use super::sign_in_backoff::{Failures, retry_after_secs};
use super::sign_in_guard::account_key;
use super::{Error, Page, PageRequest, Result, Service, not_found};
use crate::auth::{Caller, hash_password, password_matches};
use crate::crypto::{RandomToken, sha256_hex};
use crate::domain::{Password, UserAccount, UserId, Username};
use crate::store::NewUser;

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
    ) -> Result<UserAccount> {
        let already =
            || Error::Forbidden("this instance is already initialised; sign in instead".into());
        // Checked first only to spare a password hash; the store decides.
        if self.store.site_initialized().await? {
            return Err(already());
        }
        self.insert_first_user(&Caller::Anonymous, username, password)
            .await?
            .ok_or_else(already)
    }

    /// Creates a user (site admins and the operator). The first user of an
    /// instance is made site admin whatever `site_admin` says; before it
    /// exists anyone may create it, but only it: a caller who is not a
    /// site admin and loses the race to the first account is refused
    /// (security finding #7), decided atomically in the store.
    #[tracing::instrument(skip(self, password), fields(caller = ?caller.user().map(|u| &u.username)))]
    pub async fn create_user(
        &self,
        caller: &Caller,
        username: &str,
        password: SecretString,
        site_admin: bool,
    ) -> Result<UserAccount> {
        match caller.require_site_admin() {
            Ok(()) => {
                self.insert_user(caller, username, password, site_admin)
                    .await
            }
            Err(denied) => {
                if self.store.site_initialized().await? {
                    return Err(denied.into());
                }
                self.insert_first_user(caller, username, password)
                    .await?
                    .ok_or_else(|| Error::from(denied))
            }
        }
    }

    /// Inserts the instance's first user (a site admin), or `None` if
    /// another account was first.
    async fn insert_first_user(
        &self,
        caller: &Caller,
        username: &str,
        password: SecretString,
    ) -> Result<Option<UserAccount>> {
        let new_user = self.new_user(username, password, true).await?;
        let audit = user_created(caller, &new_user);
        let user = self.store.insert_first_user(&audit, new_user).await?;
        if let Some(user) = &user {
            tracing::info!(user = %user.username, "first user created, site admin");
        }
        Ok(user)
    }

    async fn insert_user(
        &self,
        caller: &Caller,
        username: &str,
        password: SecretString,
        site_admin: bool,
    ) -> Result<UserAccount> {
        let new_user = self.new_user(username, password, site_admin).await?;
        let audit = user_created(caller, &new_user);
        let user = self.store.insert_user(&audit, new_user).await?;
        tracing::info!(user = %user.username, site_admin = user.site_admin, "user created");
        Ok(user)
    }

    /// Validates the input and hashes the password.
    async fn new_user(
        &self,
        username: &str,
        password: SecretString,
        site_admin: bool,
    ) -> Result<NewUser> {
        let username = Username::parse(username)?;
        let password = Password::parse(password)?;
        let password_hash = hash_password(SecretString::from(password.expose()))
            .await
            .map_err(Error::Internal)?;
        Ok(NewUser {
            id: UserId::new(),
            username: username.as_str().to_owned(),
            password_hash,
            site_admin,
            created_at: Utc::now(),
        })
    }

    /// A user, to themselves or a site admin.
    pub async fn user(&self, caller: &Caller, id: UserId) -> Result<UserAccount> {
        caller.require_acting_for(id)?;
        self.store.find_user(id).await.map_err(not_found("user"))
    }

    /// Looks a user up by name (site admins and the operator).
    pub async fn user_by_username(&self, caller: &Caller, username: &str) -> Result<UserAccount> {
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
    ) -> Result<Page<UserAccount>> {
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
        let audit = super::audit::by(caller, super::audit::event::USER_DELETED).user(id);
        self.store
            .delete_user(&audit, id)
            .await
            .map_err(not_found("user"))
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
        let audit = super::audit::by(caller, super::audit::event::USER_SITE_ADMIN)
            .user(id)
            .detail(serde_json::json!({ "site_admin": site_admin }));
        self.store
            .set_site_admin(&audit, id, site_admin)
            .await
            .map_err(not_found("user"))
    }

    /// Checks a username and password from a client address and opens a
    /// session. Unknown users and wrong passwords get the same answer in
    /// the same time, and count the same towards the back-off. An account
    /// or address in its back-off is refused before any password check
    /// (so a right password is refused too); with every check slot busy
    /// the attempt is refused at once rather than queued.
    pub async fn sign_in(
        &self,
        username: &str,
        password: SecretString,
        client: IpAddr,
    ) -> Result<(SessionToken, UserAccount)> {
        let found = self
            .guarded_password_check(username, password, Some(client), |store| async move {
                match store.find_user_with_password_hash(username).await {
                    Ok((user, hash)) => Ok((Some(user), Some(hash))),
                    Err(crate::store::Error::NotFound) => Ok((None, None)),
                    Err(other) => Err(other.into()),
                }
            })
            .await?;
        let Some(user) = found else {
            // Tied to the account when one has that name; a name that is
            // none is not recorded (people type passwords into it).
            let audit = super::audit::by(&Caller::Anonymous, super::audit::event::SIGN_IN).failed();
            let audit = match self.store.find_user_by_username(username).await {
                Ok(account) => audit.user(account.id).detail(serde_json::json!({
                    "username": account.username,
                    "client": client.to_string(),
                })),
                Err(_) => audit.detail(serde_json::json!({
                    "unknown_account": true,
                    "client": client.to_string(),
                })),
            };
            self.store.record_audit(&audit).await?;
            return Err(Error::Unauthenticated(BAD_CREDENTIALS.into()));
        };
        let token = RandomToken::generate(SESSION_PREFIX)?;
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.settings.session_ttl)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let audit = super::audit::by(&Caller::User(user.clone()), super::audit::event::SIGN_IN)
            .user(user.id)
            .detail(serde_json::json!({ "client": client.to_string() }));
        self.store
            .insert_session(&audit, &token.hash(), user.id, now, now + ttl)
            .await?;
        tracing::info!(user = %user.username, "signed in");
        Ok((SessionToken(token), user))
    }

    /// Checks `password` for the account `username` under the sign-in
    /// protections: refused while the account (or `client` address) is in
    /// its back-off, refused at once when every check slot is busy, and a
    /// mismatch counts towards the back-off. `lookup` finds the user and
    /// stored hash once a slot is held. Returns the user on a match.
    pub(super) async fn guarded_password_check<'a, F, Fut>(
        &'a self,
        username: &str,
        password: SecretString,
        client: Option<IpAddr>,
        lookup: F,
    ) -> Result<Option<UserAccount>>
    where
        F: FnOnce(&'a crate::store::Store) -> Fut,
        Fut: std::future::Future<Output = Result<(Option<UserAccount>, Option<String>)>>,
    {
        let guard = &self.sign_in_guard;
        let limits = *guard.limits();
        let account = account_key(username);
        let now = Utc::now();
        let mut wait = client.and_then(|client| guard.address_retry_after(client, now));
        // An address already waiting costs no database read.
        let mut seen = None;
        if wait.is_none()
            && let Some(account) = &account
        {
            seen = self.store.sign_in_failures(account).await?;
            if let Some(failures) = seen {
                let failures = Failures {
                    count: u32::try_from(failures.count).unwrap_or(u32::MAX),
                    last: failures.last_failure_at,
                };
                wait = wait.max(limits.account.retry_after(&failures, now));
            }
        }
        if let Some(wait) = wait {
            return Err(Error::Throttled {
                message: format!(
                    "too many failed password attempts; try again in {} seconds",
                    retry_after_secs(wait)
                ),
                retry_after: wait,
            });
        }
        let Some(slot) = guard.try_check_slot() else {
            return Err(Error::Overloaded {
                message: "too many password checks in progress, retry shortly".into(),
                retry_after: Duration::from_secs(1),
            });
        };
        // The attempt counts as a failure before the password is checked
        // (a match clears it), and only if no other attempt on the account
        // was counted since its failures were read: concurrent guesses
        // cannot share one allowance of the back-off.
        if let Some(account) = &account {
            let claimed = self
                .store
                .claim_sign_in_attempt(account, seen, now, limits.account.forget_before(now))
                .await?;
            if !claimed {
                return Err(Error::Throttled {
                    message: "another password attempt for this account is in progress; \
                              try again in 1 seconds"
                        .into(),
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        let (user, hash) = lookup(&self.store).await?;
        let matched = guard
            .run_check(slot, move |memory| {
                password_matches(&password, hash.as_deref(), memory)
            })
            .await
            .ok_or_else(|| Error::Internal("the password check did not run".into()))?;
        let Some(user) = user.filter(|_| matched) else {
            let now = Utc::now();
            if let Some(client) = client {
                guard.record_address_failure(client, now);
            }
            return Ok(None);
        };
        if let Some(account) = &account {
            self.store.clear_sign_in_failures(account).await?;
        }
        Ok(Some(user))
    }

    pub async fn sign_out(&self, session: &str) -> Result<()> {
        let hash = sha256_hex(session);
        let audit = match self.store.find_session(&hash).await {
            Ok(found) => Some(
                super::audit::by(
                    &Caller::User(found.user.clone()),
                    super::audit::event::SIGN_OUT,
                )
                .user(found.user.id),
            ),
            Err(crate::store::Error::NotFound) => None,
            Err(other) => return Err(other.into()),
        };
        Ok(self.store.delete_session(audit.as_ref(), &hash).await?)
    }

    /// Forgets the failed sign-ins counted for `username`, ending its
    /// back-off at once: for a site admin (or the operator) when someone
    /// keeps guessing to lock an account out.
    pub async fn forget_sign_in_failures(&self, caller: &Caller, username: &str) -> Result<()> {
        caller.require_site_admin()?;
        if let Some(account) = account_key(username) {
            self.store.clear_sign_in_failures(&account).await?;
        }
        tracing::info!(user = %username, "failed sign-ins forgotten");
        Ok(())
    }

    /// Deletes failed sign-in counts old enough to be forgotten; run
    /// periodically by the server, so names tried once do not pile up.
    pub async fn purge_forgotten_sign_in_failures(&self) -> Result<u64> {
        let before = self
            .sign_in_guard
            .limits()
            .account
            .forget_before(Utc::now());
        Ok(self.store.delete_sign_in_failures_before(before).await?)
    }
}

/// The entry for a new account (whether it became a site admin is added
/// by the store, which decides it for the first account).
fn user_created(caller: &Caller, user: &crate::store::NewUser) -> crate::store::AuditEntry {
    super::audit::by(caller, super::audit::event::USER_CREATED)
        .user(user.id)
        .detail(serde_json::json!({ "username": user.username }))
}
