//! Who is calling, and what they may do. Every authorization decision in
//! the service is one of the methods on [`Caller`], so the rules live in
//! one place and the API layers never decide on their own.

mod password;

pub use password::{CheckMemory, hash_password, password_matches};

use crate::domain::UserId;
use crate::store::{CredentialOwner, UserRecord};

/// The principal behind a request or command.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No valid session or token.
    Anonymous,
    /// A signed-in user (session cookie or access token).
    User(UserRecord),
    /// The local operator running the CLI against the store directly: they
    /// hold the database and the keyring already, so they may do anything.
    Operator,
}

/// Why the caller may not do what they asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("sign in first")]
    Unauthenticated,
    #[error("must be site admin")]
    NotSiteAdmin,
    /// The thing exists but belongs to someone else: answered exactly like
    /// a thing that does not exist, so ids cannot be probed.
    #[error("not found")]
    Hidden,
}

impl Caller {
    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&UserRecord> {
        match self {
            Self::User(user) => Some(user),
            Self::Anonymous | Self::Operator => None,
        }
    }

    /// Anything beyond the first-run page needs a signed-in caller.
    pub fn require_signed_in(&self) -> Result<(), Denied> {
        match self {
            Self::Anonymous => Err(Denied::Unauthenticated),
            Self::User(_) | Self::Operator => Ok(()),
        }
    }

    /// Site-wide operations: code hosts, users, global credentials.
    pub fn require_site_admin(&self) -> Result<(), Denied> {
        match self {
            Self::Anonymous => Err(Denied::Unauthenticated),
            Self::User(user) if user.site_admin => Ok(()),
            Self::User(_) => Err(Denied::NotSiteAdmin),
            Self::Operator => Ok(()),
        }
    }

    /// Things only whoever runs the CLI on the server may do (such as making
    /// the service read a repository on the server's disk).
    pub fn require_operator(&self) -> Result<(), Denied> {
        match self {
            Self::Anonymous => Err(Denied::Unauthenticated),
            Self::User(_) => Err(Denied::NotSiteAdmin),
            Self::Operator => Ok(()),
        }
    }

    /// Acting on a user's account or credentials: themselves, or a site
    /// admin on their behalf. Others see the user as not existing.
    pub fn require_acting_for(&self, user_id: UserId) -> Result<(), Denied> {
        match self {
            Self::Anonymous => Err(Denied::Unauthenticated),
            Self::User(user) if user.id == user_id || user.site_admin => Ok(()),
            Self::User(_) => Err(Denied::Hidden),
            Self::Operator => Ok(()),
        }
    }

    /// Reading or changing a credential: the owner's rights for user
    /// credentials, site admin for global ones.
    pub fn require_credential_access(&self, owner: CredentialOwner) -> Result<(), Denied> {
        match owner {
            CredentialOwner::User(user_id) => self.require_acting_for(user_id),
            CredentialOwner::Site => match self.require_site_admin() {
                Err(Denied::NotSiteAdmin) => Err(Denied::Hidden),
                other => other,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn user(site_admin: bool) -> (UserId, Caller) {
        let id = UserId::new();
        let record = UserRecord {
            id,
            username: "u".into(),
            site_admin,
            created_at: Utc::now(),
        };
        (id, Caller::User(record))
    }

    #[test]
    fn users_act_only_for_themselves_and_admins_for_anyone() {
        let (alice_id, alice) = user(false);
        let (bob_id, _) = user(false);
        let (_, admin) = user(true);
        assert_eq!(alice.require_acting_for(alice_id), Ok(()));
        assert_eq!(alice.require_acting_for(bob_id), Err(Denied::Hidden));
        assert_eq!(admin.require_acting_for(bob_id), Ok(()));
        assert_eq!(
            Caller::Anonymous.require_acting_for(bob_id),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(Caller::Operator.require_acting_for(bob_id), Ok(()));
    }

    #[test]
    fn site_credentials_are_hidden_from_non_admins() {
        let (_, alice) = user(false);
        let (_, admin) = user(true);
        assert_eq!(
            alice.require_credential_access(CredentialOwner::Site),
            Err(Denied::Hidden)
        );
        assert_eq!(
            admin.require_credential_access(CredentialOwner::Site),
            Ok(())
        );
        assert_eq!(alice.require_site_admin(), Err(Denied::NotSiteAdmin));
        assert_eq!(
            Caller::Anonymous.require_signed_in(),
            Err(Denied::Unauthenticated)
        );
    }
}
