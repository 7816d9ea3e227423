//! Where a published pull request stands on its code host: open, merged
//! or closed, what its reviewers said and how its checks went. Every kind
//! of code host reports these differently; the modules per kind translate
//! into these types, which have stable lowercase names for storage.

use std::fmt;
use std::str::FromStr;

use crate::domain::InvalidInput;

/// Implements `as_str`, `Display` and `FromStr` for a fieldless enum from
/// one table of stable names, so the two directions cannot drift apart.
macro_rules! stable_names {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable lowercase name, as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(InvalidInput::new(format!(
                        concat!("unknown ", stringify!($name), " {:?}; expected one of {}"),
                        s,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

/// The state of the pull request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullRequestState {
    Open,
    /// Open, but marked as not ready for review.
    Draft,
    Merged,
    /// Closed without merging (Bitbucket: declined).
    Closed,
}

stable_names!(PullRequestState {
    Open => "open",
    Draft => "draft",
    Merged => "merged",
    Closed => "closed",
});

/// What the reviewers said, taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewState {
    Approved,
    /// At least one reviewer asked for changes (this wins over approvals).
    ChangesRequested,
    /// Reviewers are asked or have commented, without a verdict yet.
    Pending,
}

stable_names!(ReviewState {
    Approved => "approved",
    ChangesRequested => "changes_requested",
    Pending => "pending",
});

/// How the checks (CI) on the head commit went, taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksState {
    Passed,
    /// At least one check failed (this wins over running ones).
    Failed,
    Pending,
}

stable_names!(ChecksState {
    Passed => "passed",
    Failed => "failed",
    Pending => "pending",
});

impl ChecksState {
    /// Several checks taken together: any failure fails, else anything
    /// unfinished is pending, else they passed. `None` for no checks.
    pub fn combine(states: impl IntoIterator<Item = ChecksState>) -> Option<ChecksState> {
        states.into_iter().fold(None, |combined, state| {
            Some(match (combined, state) {
                (Some(Self::Failed), _) | (_, Self::Failed) => Self::Failed,
                (Some(Self::Pending), _) | (_, Self::Pending) => Self::Pending,
                _ => Self::Passed,
            })
        })
    }
}

/// A pull request as it stands on the code host now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestStatus {
    /// GitHub's number, GitLab's `iid`, Bitbucket Server's id.
    pub number: u64,
    pub url: String,
    pub state: PullRequestState,
    /// `None` when no review was asked for or given.
    pub review: Option<ReviewState>,
    /// `None` when the head commit has no checks.
    pub checks: Option<ChecksState>,
    pub title: String,
    pub head_branch: String,
    pub base_branch: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in PullRequestState::ALL {
            assert_eq!(
                state.as_str().parse::<PullRequestState>().ok(),
                Some(*state)
            );
        }
        for review in ReviewState::ALL {
            assert_eq!(review.as_str().parse::<ReviewState>().ok(), Some(*review));
        }
        for checks in ChecksState::ALL {
            assert_eq!(checks.as_str().parse::<ChecksState>().ok(), Some(*checks));
        }
        assert_eq!(ReviewState::ChangesRequested.as_str(), "changes_requested");
        assert_eq!(PullRequestState::Draft.to_string(), "draft");
    }

    #[test]
    fn unknown_names_are_refused_with_the_choices() {
        let error = "OPEN".parse::<PullRequestState>().err().map(|e| e.0);
        assert_eq!(
            error.as_deref(),
            Some(r#"unknown PullRequestState "OPEN"; expected one of open, draft, merged, closed"#)
        );
    }

    #[test]
    fn a_failure_outweighs_running_and_passed_checks() {
        use ChecksState::*;
        assert_eq!(ChecksState::combine([]), None);
        assert_eq!(ChecksState::combine([Passed, Passed]), Some(Passed));
        assert_eq!(ChecksState::combine([Passed, Pending]), Some(Pending));
        assert_eq!(
            ChecksState::combine([Pending, Failed, Passed]),
            Some(Failed)
        );
        assert_eq!(ChecksState::combine([Failed, Pending]), Some(Failed));
    }
}
