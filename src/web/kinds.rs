//! What the pages say about each kind of code host: the token scopes it
//! needs and where its users create tokens.

use crate::domain::{CodeHostKind, CodeHostUrl};

/// The permissions a token must have, as the code host names them.
pub(crate) fn required_scopes(kind: CodeHostKind) -> &'static [&'static str] {
    match kind {
        CodeHostKind::GitHub => &["repo", "read:org", "user:email", "read:discussion"],
        CodeHostKind::GitLab => &["api", "read_repository", "write_repository"],
        CodeHostKind::BitbucketServer => &["write on projects", "write on repositories"],
        CodeHostKind::BitbucketCloud => &["account:read", "repository:write", "pullrequest:write"],
        CodeHostKind::AzureDevOps => &["Code (read and write)", "User profile (read)"],
        CodeHostKind::Gerrit => &["HTTP password"],
    }
}

/// The code host's own page for creating tokens.
pub(crate) fn token_page(kind: CodeHostKind, url: &CodeHostUrl) -> String {
    let base = url.as_str();
    match kind {
        CodeHostKind::GitHub => format!("{base}/settings/tokens"),
        CodeHostKind::GitLab => format!("{base}/-/user_settings/personal_access_tokens"),
        CodeHostKind::BitbucketServer => format!("{base}/plugins/servlet/access-tokens/manage"),
        CodeHostKind::BitbucketCloud => format!("{base}/account/settings/app-passwords/"),
        CodeHostKind::AzureDevOps => format!("{base}/_usersSettings/tokens"),
        CodeHostKind::Gerrit => format!("{base}/settings/#HTTPCredentials"),
    }
}

/// The short label drawn in the kind's icon.
pub(crate) fn icon_letters(kind: CodeHostKind) -> &'static str {
    match kind {
        CodeHostKind::GitHub => "GH",
        CodeHostKind::GitLab => "GL",
        CodeHostKind::BitbucketServer => "BS",
        CodeHostKind::BitbucketCloud => "BC",
        CodeHostKind::AzureDevOps => "AZ",
        CodeHostKind::Gerrit => "GR",
    }
}
