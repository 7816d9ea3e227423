//! GitHub Apps: the JWT an App signs with its private key, the App's own
//! endpoints (`/app`, `/app/installations`), installation tokens, and the
//! manifest conversion that creates an App.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::GitHub;
use crate::codehost::Error;
use crate::codehost::http;

/// The permissions batchcred needs from an App, with the access level each
/// must have at least. `workflows` is optional (a warning when missing).
pub const REQUIRED_PERMISSIONS: [(&str, &str); 3] = [
    ("contents", "write"),
    ("pull_requests", "write"),
    ("metadata", "read"),
];
pub const OPTIONAL_PERMISSIONS: [(&str, &str); 1] = [("workflows", "write")];

/// What `GET /app` answers.
#[derive(Debug, Clone, Deserialize)]
pub struct AppInfo {
    pub id: u64,
    #[serde(default)]
    pub slug: Option<String>,
    pub name: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
}

/// One installation of the App, from `GET /app/installations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    pub id: u64,
    /// The user or organisation (namespace) it covers.
    pub account: String,
    /// Permission name → `read` / `write` / `admin`.
    #[serde(default)]
    pub permissions: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct InstallationJson {
    id: u64,
    account: Option<Account>,
    #[serde(default)]
    permissions: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Account {
    login: String,
}

/// A minted installation token and when it stops working.
pub struct InstallationToken {
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct TokenJson {
    token: String,
    expires_at: DateTime<Utc>,
}

/// What `POST /app-manifests/{code}/conversions` answers.
#[derive(Deserialize)]
pub struct ManifestConversion {
    pub id: u64,
    #[serde(default)]
    pub slug: Option<String>,
    pub name: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    pub client_secret: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
    pub pem: SecretString,
}

#[derive(Serialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
}

/// Signs the App's JWT (RS256): issued a minute ago against clock drift,
/// valid for nine minutes (GitHub allows ten), issued by the App id.
pub fn sign_jwt(
    target: &str,
    app_id: u64,
    private_key_pem: &SecretString,
) -> Result<SecretString, Error> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.expose_secret().as_bytes())
        .map_err(|_| Error::Rejected {
        target: target.to_owned(),
        detail: "the GitHub App private key is not an RSA key in PEM form".into(),
    })?;
    let now = Utc::now().timestamp();
    let claims = Claims {
        iat: now - 60,
        exp: now + 9 * 60,
        iss: app_id.to_string(),
    };
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, &claims, &key)
        .map(SecretString::from)
        .map_err(|_| Error::Rejected {
            target: target.to_owned(),
            detail: "the GitHub App private key could not sign a JWT".into(),
        })
}

/// The permissions batchcred needs that `granted` lacks, as
/// `name: level` (required ones), and the optional ones it lacks.
pub fn missing_permissions(
    granted: &std::collections::BTreeMap<String, String>,
) -> (Vec<String>, Vec<String>) {
    let rank = |level: &str| match level {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    };
    let lacks = |(name, level): &(&str, &str)| {
        granted
            .get(*name)
            .is_none_or(|have| rank(have) < rank(level))
    };
    let list = |items: &[(&str, &str)]| {
        items
            .iter()
            .filter(|item| lacks(item))
            .map(|(name, level)| format!("{name}: {level}"))
            .collect::<Vec<_>>()
    };
    (list(&REQUIRED_PERMISSIONS), list(&OPTIONAL_PERMISSIONS))
}

impl GitHub {
    /// Signs a JWT for the App `app_id` with its private key.
    pub fn sign_app_jwt(
        &self,
        app_id: u64,
        private_key_pem: &SecretString,
    ) -> Result<SecretString, Error> {
        sign_jwt(&self.target, app_id, private_key_pem)
    }

    /// `GET /app` with the JWT: the key works and belongs to this App.
    pub async fn app(&self, jwt: &SecretString) -> Result<AppInfo, Error> {
        let response = self
            .api
            .send(
                self.call("app"),
                self.request(Method::GET, "/app", jwt),
                jwt,
            )
            .await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, "/app", response, jwt).await);
        }
        http::read_json(&self.target, "/app", response).await
    }

    /// `GET /app/installations`: where the App is installed.
    pub async fn app_installations(&self, jwt: &SecretString) -> Result<Vec<Installation>, Error> {
        let endpoint = "/app/installations";
        let request = self
            .request(Method::GET, endpoint, jwt)
            .query(&[("per_page", "100")]);
        let response = self
            .api
            .send(self.call("app_installations"), request, jwt)
            .await?;
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, endpoint, response, jwt).await);
        }
        let list: Vec<InstallationJson> = http::read_json(&self.target, endpoint, response).await?;
        Ok(list
            .into_iter()
            .map(|i| Installation {
                id: i.id,
                account: i.account.map(|a| a.login).unwrap_or_default(),
                permissions: i.permissions,
            })
            .collect())
    }

    /// `POST /app/installations/{id}/access_tokens`: a token acting as the
    /// App on that installation, for about an hour.
    pub async fn mint_installation_token(
        &self,
        jwt: &SecretString,
        installation_id: u64,
    ) -> Result<InstallationToken, Error> {
        let endpoint = format!("/app/installations/{installation_id}/access_tokens");
        let response = self
            .api
            .send(
                self.call("installation_token"),
                self.request(Method::POST, &endpoint, jwt),
                jwt,
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::Rejected {
                target: self.target.clone(),
                detail: format!(
                    "the GitHub App has no installation {installation_id} (uninstalled?)"
                ),
            });
        }
        if !response.status().is_success() {
            return Err(http::unexpected(&self.target, &endpoint, response, jwt).await);
        }
        let json: TokenJson = http::read_json(&self.target, &endpoint, response).await?;
        Ok(InstallationToken {
            token: SecretString::from(json.token),
            expires_at: json.expires_at,
        })
    }

    /// `POST /app-manifests/{code}/conversions` (unauthenticated): the App
    /// the manifest flow created, with its private key and secrets.
    pub async fn convert_manifest(&self, code: &str) -> Result<ManifestConversion, Error> {
        if code.is_empty()
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::Rejected {
                target: self.target.clone(),
                detail: "the manifest code is malformed".into(),
            });
        }
        let endpoint = format!("/app-manifests/{code}/conversions");
        let none = SecretString::from(String::new());
        let request = self
            .api
            .http()
            .request(Method::POST, format!("{}{endpoint}", self.base))
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        let response = self
            .api
            .send(self.call("manifest_conversion"), request, &none)
            .await?;
        if !response.status().is_success() {
            return Err(http::unexpected(
                &self.target,
                "/app-manifests/{code}/conversions",
                response,
                &none,
            )
            .await);
        }
        http::read_json(&self.target, "/app-manifests/{code}/conversions", response).await
    }

    /// Where the manifest form is posted: the user's or an organisation's
    /// new-App page on the web host.
    pub fn manifest_form_url(&self, organization: Option<&str>) -> String {
        match organization {
            Some(org) => format!("{}/organizations/{org}/settings/apps/new", self.web_base()),
            None => format!("{}/settings/apps/new", self.web_base()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_below_the_needed_level_are_named() {
        let granted = [
            ("contents", "read"),
            ("metadata", "read"),
            ("pull_requests", "admin"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        let (missing, optional) = missing_permissions(&granted);
        assert_eq!(missing, ["contents: write"]);
        assert_eq!(optional, ["workflows: write"]);
    }
}
