//! How a code host's commits get signed, in Sourcegraph's shape: its web
//! client asks every code host for `commitSigningConfiguration { ... on
//! GitHubApp { … } }`, so the union and the `GitHubApp` type must exist for
//! that client's queries to validate. batchcred has no GitHub App commit
//! signing yet, so the configuration is always null; the `GitHubApp` of a
//! GitHub App credential shows on `BatchChangesCredential.gitHubApp`.

use async_graphql::{ID, SimpleObject, Union};
use chrono::{DateTime, Utc};

/// What signs the commits batchcred creates on a code host.
#[derive(Union)]
pub enum CommitSigningConfiguration {
    GitHubApp(GitHubApp),
}

/// A GitHub App registered with the instance (field names as Sourcegraph's).
#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct GitHubApp {
    pub id: ID,
    #[graphql(name = "appID")]
    pub app_id: i32,
    pub name: String,
    pub slug: String,
    #[graphql(name = "baseURL")]
    pub base_url: String,
    #[graphql(name = "appURL")]
    pub app_url: String,
    #[graphql(name = "clientID")]
    pub client_id: String,
    pub logo: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Where the App is installed and what it may do there (the ones a
    /// credential uses).
    pub installations: Vec<super::github_app::GitHubAppInstallation>,
}
