//! Who is calling, and what they may do. Every authorization decision in
//! the service is one of the methods on [`Caller`], so the rules live in
//! one place and the API layers never decide on their own.

mod password;

pub use password::{CheckMemory, hash_password, password_matches};

use crate::domain::{CredentialOwner, UserAccount, UserId};

/// The principal behind a request or command.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No valid session or token.
    Anonymous,
    /// A signed-in user (session cookie or access token).
    User(UserAccount),
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
    /// Allowed only on the caller's own account, even for site admins.
    #[error("{0}")]
    OnlyForYourself(&'static str),
}

impl Caller {
    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&UserAccount> {
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

    /// Whether the global credential's details (the service account's
    /// login, scopes, expiry, check errors) may be shown: site admins and
    /// the operator. Others only learn that it exists.
    pub fn may_see_site_credential_details(&self) -> bool {
        self.require_site_admin().is_ok()
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

    /// Minting an API access token: only for yourself. A site admin who
    /// could mint tokens for others could act as them unseen (their
    /// credentials, their pull requests); only the local operator, who
    /// holds the database already, may mint for any user.
    pub fn require_minting_token_for(&self, user_id: UserId) -> Result<(), Denied> {
        match self {
            Self::Anonymous => Err(Denied::Unauthenticated),
            Self::User(user) if user.id == user_id => Ok(()),
            Self::User(user) if user.site_admin => Err(Denied::OnlyForYourself(
                "access tokens can only be created for your own account",
            )),
            Self::User(_) => Err(Denied::Hidden),
            Self::Operator => Ok(()),
        }
    }

    /// Publishing on a user's account, with their personal credential:
    /// only that user themselves (their session or access token), or the
    /// local operator, who holds the database and keyring anyway. Unlike
    /// [`Caller::require_acting_for`], site admins are not let through:
    /// pull requests would appear under the user's own code host identity
    /// without them having asked for it.
    pub fn require_publishing_as(&self, user_id: UserId) -> Result<(), Denied> {
        match self {
            Self::Anonymous => Err(Denied::Unauthenticated),
            Self::User(user) if user.id == user_id => Ok(()),
            Self::User(user) if user.site_admin => Err(Denied::OnlyForYourself(
                "site admins publish only as themselves: publishing for another user \
                 takes that user's own session or access token",
            )),
            Self::User(_) => Err(Denied::Hidden),
            Self::Operator => Ok(()),
        }
    }

    /// Setting another user's password without knowing the old one: site
    /// admins (for others; their own goes through the current password)
    /// and the operator.
    pub fn require_password_reset_for(&self, user_id: UserId) -> Result<(), Denied> {
        self.require_site_admin()?;
        match self {
            Self::User(user) if user.id == user_id => Err(Denied::OnlyForYourself(
                "change your own password with your current one",
            )),
            _ => Ok(()),
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
        let record = UserAccount {
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
    fn tokens_are_minted_only_for_yourself_except_by_the_operator() {
        let (alice_id, alice) = user(false);
        let (bob_id, _) = user(false);
        let (admin_id, admin) = user(true);
        assert_eq!(alice.require_minting_token_for(alice_id), Ok(()));
        assert_eq!(admin.require_minting_token_for(admin_id), Ok(()));
        assert!(matches!(
            admin.require_minting_token_for(bob_id),
            Err(Denied::OnlyForYourself(_))
        ));
        assert_eq!(alice.require_minting_token_for(bob_id), Err(Denied::Hidden));
        assert_eq!(
            Caller::Anonymous.require_minting_token_for(bob_id),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(Caller::Operator.require_minting_token_for(bob_id), Ok(()));
    }

    #[test]
    fn passwords_are_reset_by_admins_for_others_only() {
        let (alice_id, alice) = user(false);
        let (admin_id, admin) = user(true);
        assert_eq!(admin.require_password_reset_for(alice_id), Ok(()));
        assert!(matches!(
            admin.require_password_reset_for(admin_id),
            Err(Denied::OnlyForYourself(_))
        ));
        assert_eq!(
            alice.require_password_reset_for(admin_id),
            Err(Denied::NotSiteAdmin)
        );
        assert_eq!(
            Caller::Operator.require_password_reset_for(alice_id),
            Ok(())
        );
    }

    #[test]
    fn only_users_themselves_and_the_operator_publish_as_a_user() {
        let (alice_id, alice) = user(false);
        let (bob_id, _) = user(false);
        let (admin_id, admin) = user(true);
        assert_eq!(alice.require_publishing_as(alice_id), Ok(()));
        assert_eq!(alice.require_publishing_as(bob_id), Err(Denied::Hidden));
        assert_eq!(admin.require_publishing_as(admin_id), Ok(()));
        assert!(matches!(
            admin.require_publishing_as(bob_id),
            Err(Denied::OnlyForYourself(_))
        ));
        assert_eq!(Caller::Operator.require_publishing_as(bob_id), Ok(()));
        assert_eq!(
            Caller::Anonymous.require_publishing_as(bob_id),
            Err(Denied::Unauthenticated)
        );
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
        assert!(!alice.may_see_site_credential_details());
        assert!(admin.may_see_site_credential_details());
        assert!(Caller::Operator.may_see_site_credential_details());
        assert_eq!(
            Caller::Anonymous.require_signed_in(),
            Err(Denied::Unauthenticated)
        );
    }
}
