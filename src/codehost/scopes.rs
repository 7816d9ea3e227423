//! The scopes batch changes needs on each kind of code host, and GitHub's
//! rule that a parent scope grants its children.

use crate::domain::CodeHostKind;

/// Bitbucket Server has no scopes; the two permissions it needs are
/// reported under these names.
pub const BITBUCKET_PROJECT_WRITE: &str = "PROJECT_WRITE";
pub const BITBUCKET_REPO_WRITE: &str = "REPO_WRITE";

/// What a token must carry to publish changesets.
pub fn required(kind: CodeHostKind) -> &'static [&'static str] {
    match kind {
        CodeHostKind::GitHub => &["repo", "read:org", "user:email", "read:discussion"],
        CodeHostKind::GitLab => &["api", "read_repository", "write_repository"],
        CodeHostKind::BitbucketServer => &[BITBUCKET_PROJECT_WRITE, BITBUCKET_REPO_WRITE],
        CodeHostKind::BitbucketCloud | CodeHostKind::AzureDevOps | CodeHostKind::Gerrit => &[],
    }
}

/// The same requirements, worded for people (the web UI's hint list).
pub fn described(kind: CodeHostKind) -> Vec<&'static str> {
    match kind {
        CodeHostKind::BitbucketServer => vec!["write on projects", "write on repositories"],
        other => required(other).to_vec(),
    }
}

/// GitHub scopes granted by each parent scope (GitHub lists only the
/// parent in `X-OAuth-Scopes`).
fn github_children(scope: &str) -> &'static [&'static str] {
    match scope {
        "repo" => &[
            "repo:status",
            "repo_deployment",
            "public_repo",
            "repo:invite",
            "security_events",
        ],
        "admin:org" => &["write:org", "read:org", "manage_runners:org"],
        "write:org" => &["read:org"],
        "user" => &["read:user", "user:email", "user:follow"],
        "write:discussion" => &["read:discussion"],
        "admin:repo_hook" => &["write:repo_hook", "read:repo_hook"],
        "write:repo_hook" => &["read:repo_hook"],
        "admin:public_key" => &["write:public_key", "read:public_key"],
        "write:public_key" => &["read:public_key"],
        "write:packages" => &["read:packages"],
        _ => &[],
    }
}

/// Whether `granted` covers `scope`, directly or through a parent.
pub fn covers(kind: CodeHostKind, granted: &[String], scope: &str) -> bool {
    granted.iter().any(|g| {
        g == scope
            || (kind == CodeHostKind::GitHub
                && (github_children(g).contains(&scope)
                    || github_children(g)
                        .iter()
                        .any(|child| github_children(child).contains(&scope))))
    })
}

/// The required scopes `granted` does not cover, in the order required.
pub fn missing(kind: CodeHostKind, granted: &[String]) -> Vec<String> {
    required(kind)
        .iter()
        .filter(|scope| !covers(kind, granted, scope))
        .map(|scope| (*scope).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(scopes: &[&str]) -> Vec<String> {
        scopes.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_complete_github_token_misses_nothing() {
        let scopes = granted(&["repo", "read:org", "user:email", "read:discussion"]);
        assert!(missing(CodeHostKind::GitHub, &scopes).is_empty());
    }

    #[test]
    fn github_parent_scopes_cover_their_children() {
        let scopes = granted(&["repo", "admin:org", "user", "write:discussion"]);
        assert!(missing(CodeHostKind::GitHub, &scopes).is_empty());
        let scopes = granted(&["repo", "write:org", "user", "write:discussion"]);
        assert!(missing(CodeHostKind::GitHub, &scopes).is_empty());
    }

    #[test]
    fn missing_scopes_are_listed_in_order() {
        let scopes = granted(&["public_repo", "user:email"]);
        assert_eq!(
            missing(CodeHostKind::GitHub, &scopes),
            ["repo", "read:org", "read:discussion"]
        );
        assert_eq!(
            missing(CodeHostKind::GitLab, &granted(&["api"])),
            ["read_repository", "write_repository"]
        );
    }

    #[test]
    fn gitlab_scopes_imply_nothing() {
        // `api` does not stand in for the repository scopes on GitLab.
        assert!(!covers(
            CodeHostKind::GitLab,
            &granted(&["api"]),
            "write_repository"
        ));
    }
}
