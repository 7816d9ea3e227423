//! Who may publish with a code host's global (site) credential, and to
//! which repositories. Site admins set it per code host; it is checked
//! before the service account's token is used for anything, so a user
//! who may not use it learns nothing from the code host through it.

use std::fmt;
use std::str::FromStr;

use glob::{MatchOptions, Pattern};

use super::{InvalidInput, UserId};

/// Which users may fall back to the global credential.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PolicyUsers {
    /// Anyone without a token of their own (the reference product's
    /// behaviour).
    #[default]
    Everyone,
    Nobody,
    /// Only these users.
    Selected(Vec<UserId>),
}

impl PolicyUsers {
    /// The stable name stored in the database and used by the CLI and API.
    pub fn mode(&self) -> PolicyMode {
        match self {
            Self::Everyone => PolicyMode::Everyone,
            Self::Nobody => PolicyMode::Nobody,
            Self::Selected(_) => PolicyMode::Selected,
        }
    }
}

/// [`PolicyUsers`] without its list, as chosen in a form or an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMode {
    Everyone,
    Nobody,
    Selected,
}

impl PolicyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Nobody => "nobody",
            Self::Selected => "selected",
        }
    }
}

impl FromStr for PolicyMode {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "everyone" => Ok(Self::Everyone),
            "nobody" => Ok(Self::Nobody),
            "selected" => Ok(Self::Selected),
            _ => Err(InvalidInput::new(
                "who may use the global credential must be everyone, nobody or selected",
            )),
        }
    }
}

/// The longest repository pattern accepted.
const MAX_PATTERN_LEN: usize = 256;

/// A glob over repository names (`owner/name`, `group/sub/project`,
/// `PROJECT/repo`): `*` and `?` stay within one path segment, `**` spans
/// segments, `[abc]` is a class. Matching ignores case, as code hosts do
/// for repository names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPattern(Pattern);

impl RepositoryPattern {
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        if text.is_empty() {
            return Err(InvalidInput::new("a repository pattern may not be empty"));
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(InvalidInput::new(format!(
                "repository pattern {text:.40?}… is longer than {MAX_PATTERN_LEN} characters"
            )));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidInput::new(format!(
                "repository pattern {text:?} may not contain spaces or control characters"
            )));
        }
        let pattern = Pattern::new(text).map_err(|e| {
            InvalidInput::new(format!(
                "repository pattern {text:?} is not a valid glob: {}",
                e.msg
            ))
        })?;
        Ok(Self(pattern))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn matches(&self, repository: &str) -> bool {
        const OPTIONS: MatchOptions = MatchOptions {
            case_sensitive: false,
            // `acme/*` must not match `acme/sub/secret`.
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.0.matches_with(repository, OPTIONS)
    }
}

impl fmt::Display for RepositoryPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy of one code host's global credential. The default lets
/// everyone use it for any repository.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalCredentialPolicy {
    pub users: PolicyUsers,
    /// Empty: any repository.
    pub repositories: Vec<RepositoryPattern>,
}

/// Why the policy refuses a use of the global credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyRefusal {
    /// The user is not among those allowed.
    User,
    /// The repository matches none of the patterns.
    Repository,
}

impl GlobalCredentialPolicy {
    /// The most patterns one code host's policy may have.
    pub const MAX_PATTERNS: usize = 100;

    /// Whether `user` may publish to `repository` with the global
    /// credential; the user is checked first.
    pub fn check(&self, user: UserId, repository: &str) -> Result<(), PolicyRefusal> {
        if !self.allows_user(user) {
            return Err(PolicyRefusal::User);
        }
        if self.repositories.is_empty() || self.repositories.iter().any(|p| p.matches(repository)) {
            Ok(())
        } else {
            Err(PolicyRefusal::Repository)
        }
    }

    /// Whether the user rule alone lets `user` use the credential (for
    /// showing it as available before any repository is named).
    pub fn allows_user(&self, user: UserId) -> bool {
        match &self.users {
            PolicyUsers::Everyone => true,
            PolicyUsers::Nobody => false,
            PolicyUsers::Selected(ids) => ids.contains(&user),
        }
    }

    /// The rule a refusal names, e.g. "only selected users" or
    /// "repositories acme/*, tools/*".
    pub fn describe(&self, refusal: PolicyRefusal) -> String {
        match refusal {
            PolicyRefusal::User => match self.users {
                PolicyUsers::Nobody => "nobody".to_owned(),
                PolicyUsers::Everyone | PolicyUsers::Selected(_) => {
                    "only selected users".to_owned()
                }
            },
            PolicyRefusal::Repository => format!("repositories {}", self.repositories_text(", ")),
        }
    }

    /// The patterns joined by `separator`.
    pub fn repositories_text(&self, separator: &str) -> String {
        self.repositories
            .iter()
            .map(RepositoryPattern::as_str)
            .collect::<Vec<_>>()
            .join(separator)
    }
}

/// Parses a list of patterns: any bad one refuses the whole list;
/// duplicates are dropped.
pub fn parse_repository_patterns<S: AsRef<str>>(
    texts: &[S],
) -> Result<Vec<RepositoryPattern>, InvalidInput> {
    if texts.len() > GlobalCredentialPolicy::MAX_PATTERNS {
        return Err(InvalidInput::new(format!(
            "at most {} repository patterns",
            GlobalCredentialPolicy::MAX_PATTERNS
        )));
    }
    let mut patterns: Vec<RepositoryPattern> = Vec::with_capacity(texts.len());
    for text in texts {
        let pattern = RepositoryPattern::parse(text.as_ref())?;
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> RepositoryPattern {
        RepositoryPattern::parse(text).unwrap()
    }

    #[test]
    fn star_stays_within_one_segment() {
        let acme = pattern("acme/*");
        assert!(acme.matches("acme/api"));
        assert!(acme.matches("ACME/Api"), "case is ignored");
        assert!(!acme.matches("acme/sub/secret"));
        assert!(!acme.matches("other/api"));
        assert!(!acme.matches("acme-labs/api"));
        assert!(!pattern("*").matches("acme/api"));
        assert!(pattern("acme/**").matches("acme/sub/project"));
        assert!(pattern("*/docs").matches("acme/docs"));
        assert!(pattern("acme/api-?").matches("acme/api-2"));
        assert!(pattern("acme/[ab]pi").matches("acme/api"));
        assert!(pattern("acme/api").matches("acme/api"));
        assert!(!pattern("acme/api").matches("acme/api2"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for (text, reason) in [
            ("", "may not be empty"),
            (" acme/*", "spaces"),
            ("acme/ *", "spaces"),
            ("acme/\t", "spaces"),
            ("acme/\u{7}", "control"),
            ("acme/[", "not a valid glob"),
            ("acme/***", "not a valid glob"),
        ] {
            let error = RepositoryPattern::parse(text).unwrap_err();
            assert!(error.0.contains(reason), "{text:?}: {error}");
        }
        assert!(RepositoryPattern::parse(&"a".repeat(300)).is_err());
        assert!(parse_repository_patterns(&vec!["a/*"; 101]).is_err());
        assert_eq!(
            parse_repository_patterns(&["a/*", "a/*", "b/*"])
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn users_then_repositories_decide() {
        let alice = UserId::new();
        let bob = UserId::new();
        assert_eq!(
            GlobalCredentialPolicy::default().check(bob, "any/thing"),
            Ok(())
        );
        let nobody = GlobalCredentialPolicy {
            users: PolicyUsers::Nobody,
            repositories: vec![],
        };
        assert_eq!(nobody.check(alice, "acme/x"), Err(PolicyRefusal::User));
        assert_eq!(nobody.describe(PolicyRefusal::User), "nobody");
        let selected = GlobalCredentialPolicy {
            users: PolicyUsers::Selected(vec![alice]),
            repositories: vec![pattern("acme/*"), pattern("tools/*")],
        };
        assert_eq!(selected.check(alice, "acme/x"), Ok(()));
        assert_eq!(selected.check(bob, "acme/x"), Err(PolicyRefusal::User));
        assert!(selected.allows_user(alice));
        assert!(!selected.allows_user(bob));
        assert_eq!(
            selected.check(alice, "other/x"),
            Err(PolicyRefusal::Repository)
        );
        assert_eq!(
            selected.describe(PolicyRefusal::Repository),
            "repositories acme/*, tools/*"
        );
        assert_eq!(
            selected.describe(PolicyRefusal::User),
            "only selected users"
        );
    }
}
