//! Checking an Azure DevOps personal access token: who it belongs to, and
//! what it may do as far as that can be found out without writing (see
//! the parent module's documentation).

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;

use super::{AzureDevOps, CONNECTION_DATA_VERSION};
use crate::codehost::http;
use crate::codehost::{CheckOptions, Error, TokenCheck};

/// `GET {url}/_apis/connectionData`: the part the check reads.
#[derive(Deserialize)]
struct ConnectionData {
    #[serde(rename = "authenticatedUser")]
    authenticated_user: Option<Identity>,
}

#[derive(Deserialize)]
struct Identity {
    id: Option<String>,
    #[serde(default)]
    descriptor: String,
    #[serde(rename = "providerDisplayName")]
    provider_display_name: Option<String>,
    #[serde(default)]
    properties: IdentityProperties,
}

#[derive(Deserialize, Default)]
struct IdentityProperties {
    #[serde(rename = "Account")]
    account: Option<PropertyValue>,
}

#[derive(Deserialize)]
struct PropertyValue {
    #[serde(rename = "$value")]
    value: Option<String>,
}

/// The scope names reported missing, with what they are called on the
/// token page.
const CODE_WRITE_MISSING: &str =
    "vso.code_write (Code: Read & write; this token cannot even read code)";
const PROFILE_UNREADABLE: &str = "this token cannot read the user profile (vso.profile, User \
     profile: Read) on Azure DevOps Services; it can still publish";

/// Why a check passes with a caveat: write access cannot be seen.
const WRITE_UNCHECKED: &str = "Azure DevOps does not report a token's scopes: batchcred \
     checked that this token can read code, but cannot check Code (Read & write) \
     (vso.code_write) without writing; a push it refuses will say so";

impl Identity {
    /// Whether Azure answered for nobody: public projects let anonymous
    /// visitors in, so a token it did not accept can still get a 200.
    fn is_anonymous(&self) -> bool {
        let id = self.id.as_deref().unwrap_or_default();
        id.is_empty()
            || id.chars().all(|c| c == '0' || c == '-')
            || self.descriptor.is_empty()
            || self.descriptor.starts_with("System:PublicAccess")
            || self.descriptor.contains("UnauthenticatedIdentity")
            || self.provider_display_name.as_deref() == Some("Anonymous")
    }

    /// The account's sign-in name (an email or `DOMAIN\user`), or its
    /// display name, or its id.
    fn name(self) -> String {
        self.properties
            .account
            .and_then(|a| a.value)
            .filter(|v| !v.is_empty())
            .or(self.provider_display_name.filter(|n| !n.is_empty()))
            .or(self.id)
            .unwrap_or_default()
    }
}

impl AzureDevOps {
    pub(super) async fn check(
        &self,
        token: &SecretString,
        options: &CheckOptions,
    ) -> Result<TokenCheck, Error> {
        let user = self.authenticated_user(token).await?;
        if !self.probe("list_repositories", token).await? {
            return Err(Error::MissingScopes {
                target: self.target.clone(),
                missing: vec![CODE_WRITE_MISSING.to_owned()],
            });
        }
        let mut warnings = vec![WRITE_UNCHECKED.to_owned()];
        // The profile names the account on Services, which connectionData
        // already did: a token scoped to one organisation, which the
        // profile service refuses, still publishes, so this only warns.
        if self.profile_url.is_some() && !self.probe("profile", token).await? {
            warnings.push(PROFILE_UNREADABLE.to_owned());
        }
        if let Some(repository) = &options.repository {
            self.check_repository(token, repository).await?;
        }
        Ok(TokenCheck {
            user,
            // Azure does not say.
            scopes: None,
            expires_at: None,
            warnings,
        })
    }

    /// Who the token belongs to, from `connectionData`.
    async fn authenticated_user(&self, token: &SecretString) -> Result<String, Error> {
        const PATH: &str = "/_apis/connectionData";
        let request = self.request_url(
            Method::GET,
            &format!("{}{PATH}", self.base),
            CONNECTION_DATA_VERSION,
            token,
        );
        let response = self.send("current_user", request, token).await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, PATH, response, token).await);
        }
        let is_html = http::header_str(response.headers(), "content-type")
            .is_some_and(|t| t.starts_with("text/html"));
        if is_html {
            return Err(self.rejected("it answered with a web page instead of the API"));
        }
        let data: ConnectionData = http::read_json(&self.target, PATH, response).await?;
        match data.authenticated_user {
            Some(identity) if !identity.is_anonymous() => Ok(identity.name()),
            _ => Err(self.rejected("it answered as for an anonymous visitor")),
        }
    }

    fn rejected(&self, detail: &str) -> Error {
        Error::Rejected {
            target: self.target.clone(),
            detail: detail.to_owned(),
        }
    }

    /// Whether the token may call `what`: `false` when Azure refuses it
    /// (401, 403 or a sign-in page) although the token itself works.
    async fn probe(&self, what: &'static str, token: &SecretString) -> Result<bool, Error> {
        let (url, path) = match (what, &self.profile_url) {
            ("profile", Some(profile)) => (profile.clone(), "/_apis/profile/profiles/me"),
            _ => (
                format!("{}/_apis/git/repositories", self.base),
                "/_apis/git/repositories",
            ),
        };
        let request = self.request_url(Method::GET, &url, super::API_VERSION, token);
        match self.send(what, request, token).await {
            Ok(response) if response.status().is_success() => Ok(true),
            Ok(response) => Err(http::unexpected(&self.target, path, response, token).await),
            Err(Error::Rejected { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// That the token's user can see `repository` (whether it may push
    /// there cannot be found out without pushing).
    async fn check_repository(&self, token: &SecretString, repository: &str) -> Result<(), Error> {
        let no_access = |detail: &str| Error::NoRepositoryAccess {
            target: self.target.clone(),
            repository: repository.to_owned(),
            detail: detail.to_owned(),
        };
        if super::split_repository(repository).is_none() {
            return Err(no_access("expected project/repository"));
        }
        match self
            .fetch_repository("check_push_access", token, repository)
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::RepositoryNotFound { .. }) => Err(no_access(
                "Azure DevOps answers 404: no such repository, or the token's user cannot see it",
            )),
            Err(Error::Rejected { detail, .. }) => Err(no_access(&format!(
                "Azure DevOps refused reading it: {detail}"
            ))),
            Err(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(json: serde_json::Value) -> Identity {
        serde_json::from_value(json).expect("identity")
    }

    #[test]
    fn the_account_name_is_preferred_to_the_display_name() {
        let signed_in = identity(serde_json::json!({
            "id": "6c3f0e35-0c9b-4b8e-9b1a-3d8d1b7f0a11",
            "descriptor": "Microsoft.IdentityModel.Claims.ClaimsIdentity;tenant\\alice@example.com",
            "providerDisplayName": "Alice Example",
            "properties": {"Account": {"$type": "System.String", "$value": "alice@example.com"}},
        }));
        assert!(!signed_in.is_anonymous());
        assert_eq!(signed_in.name(), "alice@example.com");
        let no_account = identity(serde_json::json!({
            "id": "6c3f0e35-0c9b-4b8e-9b1a-3d8d1b7f0a11",
            "descriptor": "Microsoft.TeamFoundation.Identity;S-1-5-21",
            "providerDisplayName": "CORP\\alice",
        }));
        assert_eq!(no_account.name(), "CORP\\alice");
    }

    /// A Services organisation on loopback whose profile service refuses
    /// the token: the check passes, warning about vso.profile.
    #[tokio::test]
    async fn services_tokens_without_profile_access_are_warned_about_vso_profile() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/acme/_apis/connectionData",
                get(|| async {
                    axum::Json(serde_json::json!({"authenticatedUser": {
                        "id": "6c3f0e35-0c9b-4b8e-9b1a-3d8d1b7f0a11",
                        "descriptor": "Microsoft.IdentityModel.Claims.ClaimsIdentity;al",
                        "providerDisplayName": "Al"}}))
                }),
            )
            .route(
                "/acme/_apis/git/repositories",
                get(|| async { axum::Json(serde_json::json!({"count": 0, "value": []})) }),
            )
            .route(
                "/profile",
                get(|| async { axum::http::StatusCode::UNAUTHORIZED }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let api =
            crate::codehost::ApiClient::new(std::time::Duration::from_secs(5)).expect("client");
        let url =
            crate::domain::CodeHostUrl::parse(&format!("http://{address}/acme")).expect("url");
        let mut client = AzureDevOps::new(api, &url, Some("al"), "Azure DevOps test".into());
        client.profile_url = Some(format!("http://{address}/profile"));
        let token = SecretString::from("pat");
        let check = client
            .check(&token, &CheckOptions::default())
            .await
            .expect("accepted");
        assert_eq!(check.user, "Al");
        assert!(check.warnings.iter().any(|w| w == PROFILE_UNREADABLE));
        // On Server there is no profile service to ask.
        client.profile_url = None;
        let check = client
            .check(&token, &CheckOptions::default())
            .await
            .expect("accepted");
        assert_eq!(check.user, "Al");
        assert_eq!(check.scopes, None);
        assert!(!check.warnings.iter().any(|w| w == PROFILE_UNREADABLE));
        server.abort();
    }

    #[test]
    fn anonymous_answers_are_recognised() {
        for anonymous in [
            serde_json::json!({"id": "aa3d1f7e-0000-0000-0000-000000000000",
                               "descriptor": "System:PublicAccess;aa3d1f7e-0000-0000-0000-000000000000",
                               "providerDisplayName": "Anonymous"}),
            serde_json::json!({"id": "00000000-0000-0000-0000-000000000000",
                               "descriptor": "Microsoft.TeamFoundation.Identity;x"}),
            serde_json::json!({"providerDisplayName": "someone"}),
        ] {
            assert!(identity(anonymous.clone()).is_anonymous(), "{anonymous}");
        }
    }
}
