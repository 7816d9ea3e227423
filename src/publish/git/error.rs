//! What a failed push reports: git's own words, with secrets removed, sorted
//! into the few cases a user can act on differently.

/// Why a push failed. Each variant carries git's redacted message lines so
/// the user sees what the code host said, not just an exit status.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    /// The code host refused the token or SSH key.
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),
    /// The SSH server's host key differs from the recorded one.
    #[error("the code host's SSH host key does not match the recorded one: {0}")]
    HostKeyMismatch(String),
    /// Pushing over SSH needs a pinned host key, and none is recorded.
    #[error(
        "no SSH host key (known_hosts line) is recorded for this code host; record it before pushing over SSH"
    )]
    MissingKnownHosts,
    /// The code host received the push but refused it (protected branch,
    /// pre-receive hook, non-fast-forward…).
    #[error("the code host rejected the push: {0}")]
    Rejected(String),
    /// The head branch is not where batchcred expected it (someone else
    /// created or moved it): git's `--force-with-lease` refused to
    /// overwrite it.
    #[error("the branch is not where batchcred left it: {0}")]
    BranchMoved(String),
    /// The code host could not be reached at all.
    #[error("the code host is unreachable: {0}")]
    Unreachable(String),
    /// The changeset's diff does not apply to the base branch.
    #[error("the patch does not apply to the base branch: {0}")]
    PatchDoesNotApply(String),
    /// The request itself is unusable (bad branch name, URL with a password…).
    #[error("invalid push request: {0}")]
    InvalidRequest(String),
    /// The commit could not be signed with the credential's signing key.
    #[error("the commit could not be signed with the credential's SSH signing key: {0}")]
    Signing(String),
    /// Anything else, including failures to run git or ssh-agent locally.
    #[error("git failed: {0}")]
    Other(String),
}

impl PushError {
    /// Sorts a failed network git command (fetch or push) by its redacted output.
    pub(super) fn classify(message: String) -> Self {
        let lower = message.to_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|needle| lower.contains(needle));
        // Host key problems first: ssh's warning also mentions other things.
        if has(&[
            "host key verification failed",
            "remote host identification has changed",
            "no matching host key",
        ]) {
            Self::HostKeyMismatch(message)
        } else if has(&[
            "authentication failed",
            "permission denied (publickey",
            "could not read username",
            "could not read password",
            "unable to get password",
            "unable to get username",
            "terminal prompts disabled",
            "returned error: 401",
            "returned error: 403",
            "http basic: access denied",
            "invalid username or password",
        ]) || (lower.contains("permission to") && lower.contains("denied"))
        {
            Self::AuthenticationFailed(message)
        } else if has(&["(stale info)"]) {
            Self::BranchMoved(message)
        } else if has(&["[remote rejected]", "[rejected]", "hook declined"]) {
            Self::Rejected(message)
        } else if has(&[
            "could not resolve host",
            "could not resolve hostname",
            "connection refused",
            "connection timed out",
            "operation timed out",
            "network is unreachable",
            "no route to host",
            "failed to connect",
            "couldn't connect",
            "connection reset",
            "connection closed by remote host",
        ]) {
            Self::Unreachable(message)
        } else {
            Self::Other(message)
        }
    }

    /// The redacted detail, without the variant's explanation (empty for
    /// [`PushError::MissingKnownHosts`]).
    pub fn message(&self) -> &str {
        match self {
            Self::AuthenticationFailed(message)
            | Self::HostKeyMismatch(message)
            | Self::Rejected(message)
            | Self::BranchMoved(message)
            | Self::Unreachable(message)
            | Self::PatchDoesNotApply(message)
            | Self::InvalidRequest(message)
            | Self::Signing(message)
            | Self::Other(message) => message,
            Self::MissingKnownHosts => "",
        }
    }
}

/// Placeholder for anything removed from git's output.
const REDACTED: &str = "[REDACTED]";

/// Longest message kept; hooks can print pages.
const MAX_MESSAGE_CHARS: usize = 2000;

/// Turns git's stderr into one line: secrets and URL credentials removed,
/// progress noise and hints dropped, lines joined with "; ".
pub(super) fn summarize(output: &str, secrets: &[&str]) -> String {
    let mut text = output.replace('\r', "\n");
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        text = text.replace(secret, REDACTED);
    }
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !is_noise(line))
        .map(redact_url_userinfo)
        .collect();
    let mut line = if lines.is_empty() {
        "git printed no error message".to_owned()
    } else {
        lines.join("; ")
    };
    if line.chars().count() > MAX_MESSAGE_CHARS {
        line = line.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    line
}

/// Lines that say nothing about the failure.
fn is_noise(line: &str) -> bool {
    let remote_body = line.strip_prefix("remote:").map(str::trim);
    line.is_empty()
        || remote_body == Some("")
        || line.starts_with("hint:")
        || line.starts_with("@@@")
        || [
            "Counting objects",
            "Compressing objects",
            "Writing objects",
            "Enumerating objects",
            "Total ",
        ]
        .iter()
        .any(|progress| {
            line.starts_with(progress) || remote_body.is_some_and(|body| body.starts_with(progress))
        })
}

/// Replaces the `user:password@` part of every URL in `line`. Only an SSH
/// URL's bare user name (`ssh://git@…`) is kept: it is not secret and helps
/// diagnosis, while an HTTP user name may itself be a token.
pub(super) fn redact_url_userinfo(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(scheme_end) = rest.find("://") {
        let (before, after) = rest.split_at(scheme_end + 3);
        out.push_str(before);
        let is_ssh = before.ends_with("ssh://");
        // The authority ends at the first '/', whitespace or quote.
        let authority_len = after
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(after.len());
        let authority = &after[..authority_len];
        match authority.rfind('@') {
            Some(at) if !is_ssh || authority[..at].contains(':') => {
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[authority_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted_and_user_names_kept() {
        assert_eq!(
            redact_url_userinfo(
                "fatal: unable to access 'https://bob:s3cret@example.com/r.git/': x"
            ),
            "fatal: unable to access 'https://[REDACTED]@example.com/r.git/': x"
        );
        assert_eq!(
            redact_url_userinfo("To ssh://git@example.com:22/r.git and http://a:b@c"),
            "To ssh://git@example.com:22/r.git and http://[REDACTED]@c"
        );
        assert_eq!(
            redact_url_userinfo("https://ghp_abc@github.com/o/r ssh://u:p@h/r"),
            "https://[REDACTED]@github.com/o/r ssh://[REDACTED]@h/r"
        );
        assert_eq!(redact_url_userinfo("no url here"), "no url here");
    }

    #[test]
    fn summary_removes_secrets_noise_and_joins_lines() {
        let stderr = "remote: \nremote: Pushing to protected branch ghp_tok3n is not allowed\r\n\
                      hint: try again\nWriting objects: 100% (3/3)\n\
                      To https://x-access-token:ghp_tok3n@github.com/o/r.git\n \
                      ! [remote rejected] head -> head (pre-receive hook declined)\n";
        let summary = summarize(stderr, &["ghp_tok3n"]);
        assert!(!summary.contains("ghp_tok3n"), "{summary}");
        assert_eq!(
            summary,
            "remote: Pushing to protected branch [REDACTED] is not allowed; \
             To https://[REDACTED]@github.com/o/r.git; \
             ! [remote rejected] head -> head (pre-receive hook declined)"
        );
        assert_eq!(summarize("\n\n", &[]), "git printed no error message");
    }

    #[test]
    fn long_output_is_truncated() {
        let summary = summarize(&"x".repeat(5000), &[]);
        assert_eq!(summary.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn failures_are_classified_by_git_output() {
        let cases = [
            (
                "fatal: Authentication failed for 'https://h/r.git/'",
                "auth",
            ),
            (
                "git@h: Permission denied (publickey).; fatal: Could not read from remote repository.",
                "auth",
            ),
            (
                "fatal: could not read Username for 'https://h': terminal prompts disabled",
                "auth",
            ),
            (
                "remote: Permission to o/r.git denied to bob.; fatal: unable to access",
                "auth",
            ),
            ("The requested URL returned error: 403", "auth"),
            ("fatal: unable to get password from user", "auth"),
            (
                "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!; Host key verification failed.",
                "hostkey",
            ),
            (
                "! [remote rejected] b -> b (pre-receive hook declined)",
                "rejected",
            ),
            ("! [rejected] b -> b (non-fast-forward)", "rejected"),
            ("! [rejected]        b -> b (stale info)", "moved"),
            (
                "fatal: unable to access 'https://nope/': Could not resolve host: nope",
                "unreachable",
            ),
            (
                "ssh: connect to host h port 22: Connection refused",
                "unreachable",
            ),
            (
                "Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server",
                "unreachable",
            ),
            ("fatal: repository 'https://h/r.git/' not found", "other"),
        ];
        for (message, expected) in cases {
            let kind = match PushError::classify(message.to_owned()) {
                PushError::AuthenticationFailed(_) => "auth",
                PushError::HostKeyMismatch(_) => "hostkey",
                PushError::Rejected(_) => "rejected",
                PushError::BranchMoved(_) => "moved",
                PushError::Unreachable(_) => "unreachable",
                PushError::Other(_) => "other",
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(kind, expected, "{message}");
        }
    }

    #[test]
    fn display_is_one_line_with_the_detail() {
        let error = PushError::Rejected("! [remote rejected] b -> b (protected branch)".to_owned());
        assert_eq!(
            error.to_string(),
            "the code host rejected the push: ! [remote rejected] b -> b (protected branch)"
        );
        assert_eq!(
            error.message(),
            "! [remote rejected] b -> b (protected branch)"
        );
        assert!(!PushError::MissingKnownHosts.to_string().contains('\n'));
    }
}
