//! Whether granted scopes cover what batch changes needs (the list of what
//! each kind needs is in its descriptor, `CodeHostKind::descriptor`), with
//! GitHub's rule that a parent scope grants its children.

use crate::domain::CodeHostKind;

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

/// Whether `granted` covers `scope`, directly or through a parent
/// (GitHub), or under another name that implies it (Bitbucket Cloud's app
/// password and OAuth scopes).
pub fn covers(kind: CodeHostKind, granted: &[String], scope: &str) -> bool {
    granted.iter().any(|g| {
        g == scope
            || match kind {
                CodeHostKind::GitHub => {
                    github_children(g).contains(&scope)
                        || github_children(g)
                            .iter()
                            .any(|child| github_children(child).contains(&scope))
                }
                CodeHostKind::BitbucketCloud => super::bitbucket_cloud::grants(g).contains(&scope),
                _ => false,
            }
    })
}

/// The scopes an `X-OAuth-Scopes` header lists: comma- (or space-)
/// separated.
pub fn parse_header(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The required scopes `granted` does not cover, in the order required.
pub fn missing(kind: CodeHostKind, granted: &[String]) -> Vec<String> {
    kind.required_scopes()
        .filter(|scope| !covers(kind, granted, scope))
        .map(str::to_owned)
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
