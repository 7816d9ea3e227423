//! Row identifiers. UUIDv7 keeps them unguessable across users while still
//! sorting by creation time, which the keyset pagination relies on.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use super::InvalidInput;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| InvalidInput::new(concat!("malformed ", stringify!($name))))
            }
        }
    };
}

uuid_id!(
    /// Identifies a user account.
    UserId
);
uuid_id!(
    /// Identifies a configured code host.
    CodeHostId
);
uuid_id!(
    /// Identifies a stored credential (user or site).
    CredentialId
);

uuid_id!(
    /// Identifies a changeset (one branch of one repository).
    ChangesetId
);

uuid_id!(
    /// Identifies an API access token (not the token itself).
    AccessTokenId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_sort_by_creation() {
        let first = UserId::new();
        let second = UserId::new();
        assert_eq!(first.to_string().parse::<UserId>(), Ok(first));
        assert!(first.to_string() < second.to_string());
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }
}
