//! Commit signing with SSH keys (GitHub and GitLab show such commits as
//! verified): which key a credential signs with and where it came from.

/// The public half of a credential's commit-signing key and where it came
/// from. The private half is inside the credential's sealed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// `ssh-ed25519 AAAA… comment`, as the code host wants it pasted.
    pub public_key: String,
    pub source: SigningKeySource,
}

/// Where a credential's signing key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningKeySource {
    /// An Ed25519 keypair generated for signing alone.
    Generated,
    /// The credential's SSH (push) key, which also signs.
    SshKey,
}

impl SigningKeySource {
    /// The stable name stored in the database and shown by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generated => "generated",
            Self::SshKey => "ssh_key",
        }
    }

    /// The source named by [`Self::as_str`]; `None` for anything else.
    pub fn from_stored(name: &str) -> Option<Self> {
        [Self::Generated, Self::SshKey]
            .into_iter()
            .find(|source| source.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_through_their_stored_names() {
        for source in [SigningKeySource::Generated, SigningKeySource::SshKey] {
            assert_eq!(SigningKeySource::from_stored(source.as_str()), Some(source));
        }
        assert_eq!(SigningKeySource::from_stored("gpg"), None);
    }
}
