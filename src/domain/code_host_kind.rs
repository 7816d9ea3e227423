//! The kinds of code host and everything batchcred knows about each one,
//! in one [`KindDescriptor`] per kind: what people call it, what its tokens
//! must be allowed to do, where they are made, whether a username goes
//! with them and which one git sends. The pages, the API, the CLI and the
//! checks all read these; the code host's API client lives in
//! `codehost/<kind>.rs`. Adding a kind means one descriptor here and one
//! client module there; the tests below fail if a kind lacks any part.

use std::fmt;
use std::str::FromStr;

use super::{CodeHostUrl, InvalidInput};

/// The kinds of code host. Names match Sourcegraph's `ExternalServiceKind`
/// so its clients can send them unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeHostKind {
    GitHub,
    GitLab,
    BitbucketServer,
    BitbucketCloud,
    AzureDevOps,
    Gerrit,
}

/// Everything batchcred knows about one kind of code host, apart from its
/// API client.
#[derive(Debug)]
pub struct KindDescriptor {
    pub kind: CodeHostKind,
    /// The stable name used in the database, the CLI and the API: the
    /// `ExternalServiceKind` value.
    pub name: &'static str,
    /// A name for people: "GitHub", "Bitbucket Server".
    pub display_name: &'static str,
    /// The short label drawn in the kind's icon.
    pub icon: &'static str,
    /// What the code host calls the secret a user pastes, as a form label.
    pub token_name: &'static str,
    /// What the token (or its account) must be allowed to do, as the code
    /// host names it.
    pub scopes: &'static [RequiredScope],
    /// Where users create tokens.
    pub token_page: TokenPage,
    pub username: UsernameRule,
    /// The username git sends with the token over HTTPS.
    pub git_username: GitUsername,
    /// Whether git may reach it over SSH, with a generated key.
    pub supports_ssh: bool,
    /// Whether it shows commits signed with an SSH key as verified, so a
    /// credential may carry a signing key (git's `gpg.format=ssh`).
    pub supports_ssh_signing: bool,
    /// Where its users upload a signing public key, for pages and the CLI;
    /// `None` where SSH signing is not supported.
    pub ssh_signing_key_help: Option<&'static str>,
    /// How its repositories are named, for messages: `owner/name`; a
    /// form without `/` (Gerrit's `project`) means no owner is needed.
    pub repository_form: &'static str,
    /// What a changeset becomes there.
    pub changeset: ChangesetForm,
}

/// What a changeset becomes on a code host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangesetForm {
    /// A head branch and a pull (merge) request from it.
    PullRequest,
    /// A change for review: one commit uploaded to `refs/for/<base>` with a
    /// `Change-Id` trailer batchcred keeps, so that publishing again adds a
    /// patch set (Gerrit). Its commit message is its only description.
    ReviewChange,
}

/// One permission a token needs, with what batchcred uses it for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredScope {
    pub name: &'static str,
    pub description: &'static str,
}

/// Where a kind's users create tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPage {
    /// A path on the code host itself.
    OnCodeHost(&'static str),
    /// A page elsewhere (Atlassian accounts for Bitbucket Cloud).
    At(&'static str),
}

/// Whether a credential of this kind carries a username beside the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameRule {
    /// The token alone identifies its account.
    NotNeeded,
    /// The code host authenticates the pair; `label` is the form's label.
    Required { label: &'static str },
}

/// The username git sends with a token over HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitUsername {
    /// Always this name (the code host ignores it or requires it).
    Fixed(&'static str),
    /// The account the check found the token belongs to (Bitbucket Server
    /// checks the token against the named user).
    CodeHostAccount,
    /// The username stored with the credential.
    CredentialUsername,
    /// Bitbucket Cloud: an API token (stored with the Atlassian email)
    /// pushes as `x-bitbucket-api-token-auth`, since git refuses the email;
    /// an app password pushes as the Bitbucket username stored with it.
    BitbucketCloud,
}

const GITHUB: KindDescriptor = KindDescriptor {
    kind: CodeHostKind::GitHub,
    name: "GITHUB",
    display_name: "GitHub",
    icon: "GH",
    token_name: "Personal access token",
    scopes: &[
        RequiredScope {
            name: "repo",
            description: "push branches and open pull requests",
        },
        RequiredScope {
            name: "read:org",
            description: "see the organisations a repository belongs to",
        },
        RequiredScope {
            name: "user:email",
            description: "read the account's email address",
        },
        RequiredScope {
            name: "read:discussion",
            description: "read team discussions on pull requests",
        },
    ],
    token_page: TokenPage::OnCodeHost("/settings/tokens"),
    username: UsernameRule::NotNeeded,
    // Ignored for personal access tokens; the required form for App tokens.
    git_username: GitUsername::Fixed("x-access-token"),
    supports_ssh: true,
    supports_ssh_signing: true,
    ssh_signing_key_help: Some(
        "GitHub → Settings → SSH and GPG keys → New SSH key → Key type: Signing key",
    ),
    repository_form: "owner/name",
    changeset: ChangesetForm::PullRequest,
};

const GITLAB: KindDescriptor = KindDescriptor {
    kind: CodeHostKind::GitLab,
    name: "GITLAB",
    display_name: "GitLab",
    icon: "GL",
    token_name: "Personal access token",
    scopes: &[
        RequiredScope {
            name: "api",
            description: "open and update merge requests",
        },
        RequiredScope {
            name: "read_repository",
            description: "fetch the base branch",
        },
        RequiredScope {
            name: "write_repository",
            description: "push branches",
        },
    ],
    token_page: TokenPage::OnCodeHost("/-/user_settings/personal_access_tokens"),
    username: UsernameRule::NotNeeded,
    // Any non-empty name works with a personal access token.
    git_username: GitUsername::Fixed("oauth2"),
    supports_ssh: true,
    supports_ssh_signing: true,
    ssh_signing_key_help: Some("GitLab → Preferences → SSH Keys → Usage type: Signing"),
    repository_form: "group/project",
    changeset: ChangesetForm::PullRequest,
};

/// Bitbucket Server has no scopes: a token carries project and repository
/// permissions, reported under these names.
pub const BITBUCKET_PROJECT_WRITE: &str = "PROJECT_WRITE";
pub const BITBUCKET_REPO_WRITE: &str = "REPO_WRITE";

const BITBUCKET_SERVER: KindDescriptor = KindDescriptor {
    kind: CodeHostKind::BitbucketServer,
    name: "BITBUCKETSERVER",
    display_name: "Bitbucket Server",
    icon: "BS",
    token_name: "HTTP access token",
    scopes: &[
        RequiredScope {
            name: BITBUCKET_PROJECT_WRITE,
            description: "write on projects",
        },
        RequiredScope {
            name: BITBUCKET_REPO_WRITE,
            description: "write on repositories: push branches and open pull requests",
        },
    ],
    token_page: TokenPage::OnCodeHost("/plugins/servlet/access-tokens/manage"),
    username: UsernameRule::NotNeeded,
    git_username: GitUsername::CodeHostAccount,
    supports_ssh: true,
    supports_ssh_signing: false,
    ssh_signing_key_help: None,
    repository_form: "PROJECT/repo",
    changeset: ChangesetForm::PullRequest,
};

const BITBUCKET_CLOUD: KindDescriptor = KindDescriptor {
    kind: CodeHostKind::BitbucketCloud,
    name: "BITBUCKETCLOUD",
    display_name: "Bitbucket Cloud",
    icon: "BC",
    token_name: "API token or app password",
    scopes: &[
        RequiredScope {
            name: "read:user:bitbucket",
            description: "see who the token belongs to (app passwords: Account read)",
        },
        RequiredScope {
            name: "read:repository:bitbucket",
            description: "fetch the base branch (app passwords: Repositories read)",
        },
        RequiredScope {
            name: "write:repository:bitbucket",
            description: "push branches (app passwords: Repositories write)",
        },
        RequiredScope {
            name: "read:pullrequest:bitbucket",
            description: "find open pull requests (app passwords: Pull requests read)",
        },
        RequiredScope {
            name: "write:pullrequest:bitbucket",
            description: "open and update pull requests (app passwords: Pull requests write)",
        },
    ],
    token_page: TokenPage::At("https://id.atlassian.com/manage-profile/security/api-tokens"),
    username: UsernameRule::Required {
        label: "Atlassian account email (API token) or Bitbucket username (app password)",
    },
    git_username: GitUsername::BitbucketCloud,
    supports_ssh: true,
    supports_ssh_signing: false,
    ssh_signing_key_help: None,
    repository_form: "workspace/slug",
    changeset: ChangesetForm::PullRequest,
};

const AZURE_DEVOPS: KindDescriptor = KindDescriptor {
    kind: CodeHostKind::AzureDevOps,
    name: "AZUREDEVOPS",
    display_name: "Azure DevOps",
    icon: "AZ",
    token_name: "Personal access token",
    scopes: &[
        RequiredScope {
            name: "vso.code_write",
            description: "Code (read and write): push branches and open pull requests",
        },
        RequiredScope {
            name: "vso.profile",
            description: "User profile (read): see who the token belongs to",
        },
    ],
    token_page: TokenPage::OnCodeHost("/_usersSettings/tokens"),
    username: UsernameRule::Required {
        label: "Username on Azure DevOps",
    },
    git_username: GitUsername::CredentialUsername,
    supports_ssh: true,
    supports_ssh_signing: false,
    ssh_signing_key_help: None,
    repository_form: "project/repo",
    changeset: ChangesetForm::PullRequest,
};

const GERRIT: KindDescriptor = KindDescriptor {
    kind: CodeHostKind::Gerrit,
    name: "GERRIT",
    display_name: "Gerrit",
    icon: "GR",
    token_name: "HTTP password",
    // Gerrit has no token scopes: the HTTP password acts as its account,
    // which needs these access rights on the projects changed.
    scopes: &[
        RequiredScope {
            name: "Read",
            description: "read access to the project's branches",
        },
        RequiredScope {
            name: "Push to refs/for/*",
            description: "upload changes for review",
        },
        RequiredScope {
            name: "Abandon",
            description: "abandon and restore the changes batchcred uploaded",
        },
    ],
    token_page: TokenPage::OnCodeHost("/settings/#HTTPCredentials"),
    username: UsernameRule::Required {
        label: "Username on Gerrit",
    },
    git_username: GitUsername::CredentialUsername,
    supports_ssh: true,
    supports_ssh_signing: false,
    ssh_signing_key_help: None,
    repository_form: "project",
    changeset: ChangesetForm::ReviewChange,
};

impl CodeHostKind {
    /// Every kind, in display order.
    pub const ALL: [CodeHostKind; 6] = [
        Self::GitHub,
        Self::GitLab,
        Self::BitbucketServer,
        Self::BitbucketCloud,
        Self::AzureDevOps,
        Self::Gerrit,
    ];

    /// Everything batchcred knows about this kind.
    pub fn descriptor(self) -> &'static KindDescriptor {
        match self {
            Self::GitHub => &GITHUB,
            Self::GitLab => &GITLAB,
            Self::BitbucketServer => &BITBUCKET_SERVER,
            Self::BitbucketCloud => &BITBUCKET_CLOUD,
            Self::AzureDevOps => &AZURE_DEVOPS,
            Self::Gerrit => &GERRIT,
        }
    }

    /// The stable name used in the database, the CLI and the API.
    pub fn as_str(self) -> &'static str {
        self.descriptor().name
    }

    /// A name for people: "GitHub", "Bitbucket Server".
    pub fn display_name(self) -> &'static str {
        self.descriptor().display_name
    }

    /// Whether a credential needs a username beside the token.
    pub fn requires_username(self) -> bool {
        matches!(self.descriptor().username, UsernameRule::Required { .. })
    }

    /// The names of the scopes a token must carry.
    pub fn required_scopes(self) -> impl Iterator<Item = &'static str> {
        self.descriptor().scopes.iter().map(|scope| scope.name)
    }
}

impl KindDescriptor {
    /// The page where users of the code host at `url` create tokens.
    pub fn token_page_url(&self, url: &CodeHostUrl) -> String {
        match self.token_page {
            TokenPage::OnCodeHost(path) => format!("{url}{path}"),
            TokenPage::At(page) => page.to_owned(),
        }
    }

    /// Whether a repository name starts with its owner (`owner/name`);
    /// Gerrit projects may be a single name.
    pub fn repository_has_owner(&self) -> bool {
        self.repository_form.contains('/')
    }

    /// The username git sends with the token over HTTPS, given the
    /// username stored with the credential and the account the check found.
    pub fn git_https_username(
        &self,
        credential_username: Option<&str>,
        code_host_account: Option<&str>,
    ) -> String {
        match self.git_username {
            GitUsername::Fixed(name) => name.to_owned(),
            GitUsername::CodeHostAccount => code_host_account.unwrap_or("x-token-auth").to_owned(),
            GitUsername::CredentialUsername => credential_username
                .or(code_host_account)
                .unwrap_or("batchcred")
                .to_owned(),
            GitUsername::BitbucketCloud => match credential_username {
                Some(name) if !name.contains('@') => name.to_owned(),
                _ => "x-bitbucket-api-token-auth".to_owned(),
            },
        }
    }
}

impl fmt::Display for CodeHostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for CodeHostKind {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase().replace(['_', '-', ' '], "");
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == upper)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                InvalidInput::new(format!(
                    "unknown code host kind {s:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_complete_descriptor() {
        let url = CodeHostUrl::parse("https://code.example.com/prefix").ok();
        let url = url.as_ref().expect("valid URL");
        for kind in CodeHostKind::ALL {
            let d = kind.descriptor();
            assert_eq!(d.kind, kind, "{kind:?} answers another kind's descriptor");
            assert_eq!(d.name, format!("{kind:?}").to_ascii_uppercase());
            assert!(!d.display_name.is_empty() && !d.token_name.is_empty());
            assert_eq!(d.icon.len(), 2, "{kind:?} icon");
            assert!(!d.scopes.is_empty(), "{kind:?} lists no scopes");
            for scope in d.scopes {
                assert!(!scope.name.is_empty() && !scope.description.is_empty());
            }
            let page = d.token_page_url(url);
            assert!(page.starts_with("https://"), "{kind:?} token page {page}");
            assert!(!d.git_https_username(None, None).is_empty());
            assert!(!d.repository_form.is_empty(), "{kind:?} repository form");
            assert_eq!(kind.as_str().parse::<CodeHostKind>(), Ok(kind));
            // Only GitHub and GitLab show SSH-signed commits as verified.
            assert_eq!(
                d.supports_ssh_signing,
                matches!(kind, CodeHostKind::GitHub | CodeHostKind::GitLab),
                "{kind:?} SSH signing"
            );
            assert_eq!(
                d.supports_ssh_signing,
                d.ssh_signing_key_help.is_some(),
                "{kind:?} says where signing keys go exactly when it supports them"
            );
        }
    }

    #[test]
    fn kinds_parse_leniently_and_print_canonically() {
        assert_eq!("github".parse(), Ok(CodeHostKind::GitHub));
        assert_eq!(
            "bitbucket_server".parse(),
            Ok(CodeHostKind::BitbucketServer)
        );
        assert_eq!("azure-devops".parse(), Ok(CodeHostKind::AzureDevOps));
        let unknown = "svn".parse::<CodeHostKind>().err().map(|e| e.0);
        assert!(unknown.is_some_and(|m| m.contains("GERRIT")));
        assert!(CodeHostKind::BitbucketCloud.requires_username());
        assert!(CodeHostKind::Gerrit.requires_username());
        assert!(!CodeHostKind::BitbucketServer.requires_username());
    }

    #[test]
    fn git_usernames_follow_each_hosts_rule() {
        let git =
            |kind: CodeHostKind, user, account| kind.descriptor().git_https_username(user, account);
        assert_eq!(git(CodeHostKind::GitHub, None, Some("a")), "x-access-token");
        assert_eq!(git(CodeHostKind::GitLab, None, Some("a")), "oauth2");
        assert_eq!(git(CodeHostKind::BitbucketServer, None, Some("al")), "al");
        assert_eq!(
            git(CodeHostKind::BitbucketCloud, Some("al@example.com"), None),
            "x-bitbucket-api-token-auth"
        );
        assert_eq!(git(CodeHostKind::BitbucketCloud, Some("al"), None), "al");
        assert_eq!(git(CodeHostKind::Gerrit, Some("al"), Some("Al")), "al");
        assert_eq!(
            CodeHostKind::AzureDevOps
                .descriptor()
                .token_page_url(&CodeHostUrl::parse("https://dev.azure.com/acme").expect("url")),
            "https://dev.azure.com/acme/_usersSettings/tokens"
        );
    }
}
