//! Accounts as the service hands them out: users, their API access tokens,
//! and whose a credential is. Never a password, a token or a hash.

use chrono::{DateTime, Utc};

use super::{AccessTokenId, UserId};

/// A user (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccount {
    pub id: UserId,
    pub username: String,
    pub site_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// An API access token as its owner sees it (never the token or its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenInfo {
    pub id: AccessTokenId,
    pub user_id: UserId,
    /// `None` for tokens created before prefixes were recorded.
    pub prefix: Option<String>,
    pub note: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl AccessTokenInfo {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Whose credential it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialOwner {
    User(UserId),
    /// The global service account, used for users who have none.
    Site,
}

impl CredentialOwner {
    /// The owning user's id as text; `None` for the global credential.
    pub fn user_id(self) -> Option<String> {
        match self {
            Self::User(id) => Some(id.to_string()),
            Self::Site => None,
        }
    }
}
