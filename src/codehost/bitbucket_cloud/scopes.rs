//! Bitbucket Cloud scope names. The descriptor lists the API token names
//! (`read:repository:bitbucket`…); app passwords and OAuth consumers carry
//! the older names (`repository:write`…), some of which imply others. Both
//! are read here in the descriptor's terms.

pub const READ_USER: &str = "read:user:bitbucket";
pub const READ_REPOSITORY: &str = "read:repository:bitbucket";
pub const WRITE_REPOSITORY: &str = "write:repository:bitbucket";
pub const READ_PULL_REQUESTS: &str = "read:pullrequest:bitbucket";
pub const WRITE_PULL_REQUESTS: &str = "write:pullrequest:bitbucket";

/// The required scopes one granted scope stands for. API token scopes
/// imply nothing (`write:repository:bitbucket` does not grant read); the
/// app password and OAuth scopes imply as Bitbucket documents:
/// `repository:write` grants `repository`, `pullrequest` grants
/// `repository`, `pullrequest:write` grants `pullrequest` and
/// `repository:write`.
pub fn grants(scope: &str) -> &'static [&'static str] {
    match scope {
        READ_USER | "account" | "account:write" => &[READ_USER],
        READ_REPOSITORY | "repository" => &[READ_REPOSITORY],
        WRITE_REPOSITORY => &[WRITE_REPOSITORY],
        "repository:write" => &[READ_REPOSITORY, WRITE_REPOSITORY],
        READ_PULL_REQUESTS => &[READ_PULL_REQUESTS],
        WRITE_PULL_REQUESTS => &[WRITE_PULL_REQUESTS],
        "pullrequest" => &[READ_PULL_REQUESTS, READ_REPOSITORY],
        "pullrequest:write" => &[
            READ_PULL_REQUESTS,
            WRITE_PULL_REQUESTS,
            READ_REPOSITORY,
            WRITE_REPOSITORY,
        ],
        _ => &[],
    }
}

/// A scope Bitbucket says a request needed, in the descriptor's terms
/// where it has one (`pullrequest:write` → `write:pullrequest:bitbucket`),
/// else as Bitbucket named it.
pub fn required_name(scope: &str) -> String {
    let name = match scope {
        "account" => READ_USER,
        "repository" => READ_REPOSITORY,
        "repository:write" => WRITE_REPOSITORY,
        "pullrequest" => READ_PULL_REQUESTS,
        "pullrequest:write" => WRITE_PULL_REQUESTS,
        other => other,
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CodeHostKind;

    /// What the shared check finds missing from `granted`.
    fn missing(granted: &[String]) -> Vec<String> {
        crate::codehost::scopes::missing(CodeHostKind::BitbucketCloud, granted)
    }

    fn granted(scopes: &[&str]) -> Vec<String> {
        scopes.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_descriptor_lists_exactly_these_scopes() {
        let required: Vec<&str> = CodeHostKind::BitbucketCloud.required_scopes().collect();
        assert_eq!(
            required,
            [
                READ_USER,
                READ_REPOSITORY,
                WRITE_REPOSITORY,
                READ_PULL_REQUESTS,
                WRITE_PULL_REQUESTS
            ]
        );
    }

    #[test]
    fn api_token_scopes_imply_nothing() {
        let all = granted(&[
            READ_USER,
            READ_REPOSITORY,
            WRITE_REPOSITORY,
            READ_PULL_REQUESTS,
            WRITE_PULL_REQUESTS,
        ]);
        assert!(missing(&all).is_empty());
        // Write does not grant read on Bitbucket Cloud API tokens.
        let write_only = granted(&[READ_USER, WRITE_REPOSITORY, WRITE_PULL_REQUESTS]);
        assert_eq!(missing(&write_only), [READ_REPOSITORY, READ_PULL_REQUESTS]);
    }

    #[test]
    fn app_password_scopes_cover_with_their_implications() {
        assert!(missing(&granted(&["account", "pullrequest:write"])).is_empty());
        assert_eq!(
            missing(&granted(&["account", "repository:write", "pullrequest"])),
            [WRITE_PULL_REQUESTS]
        );
        assert_eq!(
            missing(&granted(&["repository", "pullrequest"])),
            [READ_USER, WRITE_REPOSITORY, WRITE_PULL_REQUESTS]
        );
    }

    #[test]
    fn headers_and_bitbucket_names_are_read() {
        assert_eq!(
            crate::codehost::scopes::parse_header("account, repository:write,pullrequest:write"),
            ["account", "repository:write", "pullrequest:write"]
        );
        assert_eq!(required_name("pullrequest"), READ_PULL_REQUESTS);
        assert_eq!(required_name("pullrequest:write"), WRITE_PULL_REQUESTS);
        assert_eq!(required_name(WRITE_REPOSITORY), WRITE_REPOSITORY);
        assert_eq!(required_name("webhook"), "webhook");
    }
}
