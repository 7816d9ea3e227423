//! GitHub App credentials: the authentication strategy of a credential,
//! and what is known (publicly) about its App and installations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a credential authenticates to its code host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthStrategy {
    /// A token the user pasted (every kind of code host).
    #[default]
    PersonalAccessToken,
    /// A GitHub App: installation tokens minted per use from its key.
    GitHubApp,
}

impl AuthStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PersonalAccessToken => "personal_access_token",
            Self::GitHubApp => "github_app",
        }
    }

    pub fn from_stored(value: &str) -> Option<Self> {
        match value {
            "personal_access_token" => Some(Self::PersonalAccessToken),
            "github_app" => Some(Self::GitHubApp),
            _ => None,
        }
    }
}

/// One installation of an App the credential uses: the user or
/// organisation (namespace) it covers and what the App may do there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitHubAppInstallation {
    pub id: u64,
    pub account: String,
    #[serde(default)]
    pub permissions: BTreeMap<String, String>,
}

/// The public facts of a GitHub App credential (its private key and
/// secrets live only in the sealed secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitHubAppInfo {
    pub app_id: u64,
    pub slug: Option<String>,
    pub name: String,
    pub client_id: Option<String>,
    pub html_url: Option<String>,
    /// Created through the manifest flow (so it holds client and webhook
    /// secrets too).
    #[serde(default)]
    pub from_manifest: bool,
    pub installations: Vec<GitHubAppInstallation>,
}

impl GitHubAppInfo {
    /// The installation covering `repository`'s owner (`acme` for
    /// `acme/app`), compared as GitHub does, without case.
    pub fn installation_for(&self, repository: &str) -> Option<&GitHubAppInstallation> {
        let owner = repository.split('/').next()?;
        self.installations
            .iter()
            .find(|i| i.account.eq_ignore_ascii_case(owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installations_are_found_by_namespace_without_case() {
        let app = GitHubAppInfo {
            app_id: 1,
            slug: None,
            name: "a".into(),
            client_id: None,
            html_url: None,
            from_manifest: false,
            installations: vec![GitHubAppInstallation {
                id: 7,
                account: "Acme".into(),
                permissions: BTreeMap::new(),
            }],
        };
        assert_eq!(app.installation_for("acme/app").map(|i| i.id), Some(7));
        assert!(app.installation_for("other/app").is_none());
        assert_eq!(
            AuthStrategy::from_stored("github_app"),
            Some(AuthStrategy::GitHubApp)
        );
    }
}
