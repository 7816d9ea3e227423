//! What identifies a code host: its normalised URL and how git talks to
//! it. Its kind, and everything known about each kind, is in
//! [`super::code_host_kind`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use url::Url;

use super::{CodeHostId, CodeHostKind, GlobalCredentialPolicy, InvalidInput};

/// A code host a site admin registered, with how git reaches it and who may
/// use its global credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeHostConfig {
    pub id: CodeHostId,
    pub kind: CodeHostKind,
    pub url: CodeHostUrl,
    pub git_url_type: GitUrlType,
    /// `known_hosts` lines pinning the host's SSH key, for SSH pushes.
    pub ssh_known_hosts: Option<String>,
    pub ssh_key_algorithm: SshKeyAlgorithm,
    pub created_at: DateTime<Utc>,
    /// Who may publish with its global credential, and where.
    pub global_credential_policy: GlobalCredentialPolicy,
}

/// Changes to a code host; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct CodeHostUpdate {
    pub git_url_type: Option<GitUrlType>,
    /// `Some(None)` clears the recorded host key.
    pub ssh_known_hosts: Option<Option<String>>,
    pub ssh_key_algorithm: Option<SshKeyAlgorithm>,
    pub global_credential_policy: Option<GlobalCredentialPolicy>,
}

/// How git reaches the code host's repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitUrlType {
    Http,
    Ssh,
}

impl GitUrlType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Ssh => "ssh",
        }
    }
}

impl FromStr for GitUrlType {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "http" | "https" => Ok(Self::Http),
            "ssh" => Ok(Self::Ssh),
            _ => Err(InvalidInput::new(format!(
                "unknown git URL type {s:?}; expected http or ssh"
            ))),
        }
    }
}

/// The algorithm of the keypair generated for credentials on SSH code
/// hosts. Ed25519 is the default: every supported code host accepts it and
/// it is generated in microseconds. RSA is kept for older servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshKeyAlgorithm {
    Ed25519,
    Rsa4096,
}

impl SshKeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Rsa4096 => "rsa-4096",
        }
    }
}

impl FromStr for SshKeyAlgorithm {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "ed25519" => Ok(Self::Ed25519),
            "rsa-4096" | "rsa4096" | "rsa" => Ok(Self::Rsa4096),
            _ => Err(InvalidInput::new(format!(
                "unknown SSH key algorithm {s:?}; expected ed25519 or rsa-4096"
            ))),
        }
    }
}

/// A code host's base URL in canonical form: lower-case scheme and host,
/// no default port, no trailing slash, no query, fragment or credentials.
/// `https://github.com` and `https://GitHub.com/` are the same host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeHostUrl(String);

impl CodeHostUrl {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let url = Url::parse(raw.trim())
            .map_err(|e| InvalidInput::new(format!("invalid code host URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidInput::new(
                "code host URL must start with http:// or https://",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidInput::new(
                "code host URL must not contain a username or password",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(InvalidInput::new(
                "code host URL must not contain a query or fragment",
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| InvalidInput::new("code host URL has no host"))?;
        let mut canonical = format!("{}://{}", url.scheme(), host);
        // `Url::port` is already `None` for the scheme's default port.
        if let Some(port) = url.port() {
            canonical.push_str(&format!(":{port}"));
        }
        canonical.push_str(url.path().trim_end_matches('/'));
        Ok(Self(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host (and port), for messages such as "could not reach …".
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or(self.0.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }
}

impl fmt::Display for CodeHostUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_so_equivalent_spellings_match() {
        let canonical = |s: &str| CodeHostUrl::parse(s).map(|u| u.as_str().to_owned());
        assert_eq!(
            canonical("https://github.com"),
            Ok("https://github.com".into())
        );
        assert_eq!(
            canonical("https://GitHub.com/"),
            Ok("https://github.com".into())
        );
        assert_eq!(
            canonical("https://github.com:443/"),
            Ok("https://github.com".into())
        );
        assert_eq!(
            canonical("http://git.example.com:8080/gitlab/"),
            Ok("http://git.example.com:8080/gitlab".into())
        );
        assert_eq!(
            canonical(" https://ghe.example.com//api// "),
            Ok("https://ghe.example.com//api".into())
        );
    }

    #[test]
    fn urls_with_secrets_or_odd_schemes_are_refused() {
        for bad in [
            "github.com",
            "ftp://github.com",
            "https://user:pass@github.com",
            "https://github.com/?x=1",
            "https://github.com/#frag",
        ] {
            assert!(CodeHostUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn host_is_extracted_for_messages() {
        let url = CodeHostUrl::parse("https://git.example.com:8443/prefix").ok();
        assert_eq!(
            url.as_ref().map(CodeHostUrl::host),
            Some("git.example.com:8443")
        );
    }
}
