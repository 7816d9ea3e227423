//! Pushing a changeset's commit to a code host as a branch (or, for Gerrit,
//! as a change for review: see [`review`]), over HTTPS with a token or over
//! SSH with a key, without the secret ever appearing in a
//! command line, an environment, a file or a log.
//!
//! With a signing key (GitHub, GitLab), the commit batchcred creates is
//! signed with git's SSH signing (see [`signing`]). For GitHub to sign it
//! instead (a GitHub App), [`file_changes`] turns the committed change into
//! the whole files GitHub's API takes.
//!
//! Every push gets a private (0700) work directory, removed afterwards
//! together with every process the push started, whether the push worked
//! or not, and even if batchcred is killed (see [`group`] and [`workdir`]).

mod command;
mod credential;
mod error;
mod file_changes;
mod group;
mod review;
mod signing;
mod ssh;
mod workdir;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use secrecy::{ExposeSecret, SecretString};

use command::GitCommand;
use credential::CredentialPipe;
pub use error::PushError;
pub use file_changes::{
    DEFAULT_FILE_CHANGE_LIMITS, FileChangeLimits, FileChangesError, NotExpressible, file_changes,
};
pub use review::{ChangeId, PushTarget};
pub use signing::CommitSigning;
use signing::Signer;
use ssh::SshAgent;
use workdir::WorkDir;
pub use workdir::{Swept, WORK_DIR_PREFIX, sweep_work_dirs};

/// The credential a push authenticates with.
#[derive(Debug)]
pub enum GitAuth {
    /// HTTPS: username form chosen by the caller per code host (GitHub:
    /// "x-access-token"; GitLab: "oauth2"; Bitbucket Server: the user's
    /// name), token as password.
    Https {
        username: String,
        token: SecretString,
    },
    /// SSH: OpenSSH-format private key (as stored by batchcred, see
    /// [`crate::crypto::generate_ssh_keypair`]), its public key, and the code
    /// host's recorded known_hosts line(s), the only host keys trusted.
    Ssh {
        private_key: SecretString,
        public_key: String,
        known_hosts: String,
    },
}

/// What to push.
#[derive(Debug)]
pub enum Change {
    /// A commit that exists in a local repository.
    Commit { repo: PathBuf, rev: String },
    /// A unified diff applied on top of the base branch, committed with
    /// this message and author.
    Diff {
        patch: String,
        message: String,
        author_name: String,
        author_email: String,
    },
}

/// One branch to publish.
#[derive(Debug)]
pub struct PushRequest {
    /// `https://…`, `http://…`, `ssh://…` or `user@host:path`; never with a
    /// password in it.
    pub remote_url: String,
    /// The branch a [`Change::Diff`] applies to.
    pub base_branch: String,
    /// The branch created or updated.
    pub head_branch: String,
    /// Where the head branch must be on the code host for the push to
    /// replace it: the commit batchcred last pushed there, or `None` when
    /// batchcred never pushed it, so it must not exist yet. Anything else
    /// (someone else moved or created the branch) fails the push with
    /// [`PushError::BranchMoved`] and leaves the branch alone.
    pub expected_head: Option<String>,
    /// A commit an earlier, interrupted push of the same changeset was
    /// about to push (see [`RecordCommit`]): finding the branch there means
    /// batchcred put it there, so it may be replaced too.
    pub interrupted_head: Option<String>,
    pub change: Change,
    /// The head branch, or a change for review on the base branch.
    pub target: PushTarget,
    /// The SSH key the commit batchcred creates is signed with; `None`
    /// leaves commits unsigned (and a local commit as it is).
    pub signing: Option<CommitSigning>,
}

/// Called with the commit about to be pushed, before the push starts, so
/// the caller can record it durably: should the process stop right after
/// the push, the next attempt passes it as
/// [`PushRequest::interrupted_head`]. An error stops the push.
pub type RecordCommit<'a> = Box<
    dyn FnOnce(String) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> + Send + 'a,
>;

/// The outcome of a successful push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The commit the head branch now points to.
    pub commit: String,
}

/// Where pushes keep their work directories.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Parent of each push's private work directory; the system temporary
    /// directory by default, which [`sweep_work_dirs`] cleans at start-up.
    pub scratch_root: PathBuf,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            scratch_root: std::env::temp_dir(),
        }
    }
}

/// Pushes `req.change` to `req.head_branch`, replacing what the branch
/// held only if that is `req.expected_head` (git's `--force-with-lease`),
/// so that publishing again updates it but a branch someone else created
/// or moved is never overwritten. The commit is handed to `record` before
/// it is pushed.
pub async fn push_recording(
    req: &PushRequest,
    auth: &GitAuth,
    record: RecordCommit<'_>,
) -> Result<Pushed, PushError> {
    push_inner(req, auth, &PushOptions::default(), Some(record)).await
}

/// [`push_recording`] with explicit options and nothing to record.
#[tracing::instrument(skip_all, fields(head = %req.head_branch))]
pub async fn push_with(
    req: &PushRequest,
    auth: &GitAuth,
    options: &PushOptions,
) -> Result<Pushed, PushError> {
    push_inner(req, auth, options, None).await
}

async fn push_inner(
    req: &PushRequest,
    auth: &GitAuth,
    options: &PushOptions,
    record: Option<RecordCommit<'_>>,
) -> Result<Pushed, PushError> {
    validate(req, auth)?;
    let scratch = private_scratch(options)?;
    let transport = Transport::start(auth, scratch.path(), &req.remote_url).await?;
    let signer = match &req.signing {
        Some(signing) => match Signer::start(scratch.path(), signing).await {
            Ok(signer) => Some(signer),
            Err(error) => {
                transport.stop().await;
                return Err(error);
            }
        },
        None => None,
    };
    let result = Session {
        home: scratch.path(),
        transport: &transport,
        signer: signer.as_ref(),
        secrets: secrets(auth),
    }
    .push(req, record)
    .await;
    if let Some(signer) = signer {
        signer.stop().await;
    }
    transport.stop().await;
    // Explicit close so a failure to clean up is at least logged.
    if let Err(error) = scratch.close() {
        tracing::warn!(%error, "could not remove a push's work directory");
    }
    match &result {
        Ok(pushed) => tracing::info!(commit = %pushed.commit, "pushed"),
        Err(error) => tracing::info!(%error, "push failed"),
    }
    result
}

/// The full commit id `rev` names in the local repository `repo`, read by
/// git with the same cleared environment as a push (nothing of the
/// service's environment, such as the keyring variable, reaches it).
pub async fn resolve_commit(repo: &Path, rev: &str) -> Result<String, PushError> {
    if rev.is_empty() || rev.starts_with('-') {
        return Err(PushError::InvalidRequest(format!(
            "{rev:?} is not a revision"
        )));
    }
    let home = private_scratch(&PushOptions::default())?;
    let finished = GitCommand::new(home.path())
        .in_directory(repo)
        .args(["rev-parse", "--verify", "--end-of-options"])
        .arg(format!("{rev}^{{commit}}"))
        .run()
        .await;
    if let Err(error) = home.close() {
        tracing::warn!(%error, "could not remove a work directory");
    }
    let finished = finished?;
    if !finished.success {
        return Err(PushError::InvalidRequest(format!(
            "{rev:?} is not a commit in {}: {}",
            repo.display(),
            error::summarize(&finished.stderr, &[])
        )));
    }
    Ok(finished.stdout.trim().to_owned())
}

/// A private (0700), locked work directory under `options.scratch_root`.
fn private_scratch(options: &PushOptions) -> Result<WorkDir, PushError> {
    WorkDir::create(&options.scratch_root)
        .map_err(|error| PushError::Other(format!("could not create a work directory: {error}")))
}

/// Strings to remove from any message git prints.
fn secrets(auth: &GitAuth) -> Vec<&str> {
    match auth {
        GitAuth::Https { token, .. } => vec![token.expose_secret()],
        GitAuth::Ssh { .. } => Vec::new(),
    }
}

/// Rejects requests that would be unsafe or that git would misread, before
/// anything is created or any connection made.
fn validate(req: &PushRequest, auth: &GitAuth) -> Result<(), PushError> {
    let invalid = |message: String| Err(PushError::InvalidRequest(message));
    for (what, name) in [("base", &req.base_branch), ("head", &req.head_branch)] {
        if !is_valid_branch_name(name) {
            return invalid(format!(
                "{what} branch name {name:?} is not a valid branch name"
            ));
        }
    }
    let url = &req.remote_url;
    if url.starts_with('-') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("the remote URL is malformed".to_owned());
    }
    let scheme = if url.contains("://") {
        let parsed = url::Url::parse(url).map_err(|error| {
            PushError::InvalidRequest(format!("the remote URL is malformed: {error}"))
        })?;
        // A user name is fine for SSH (`git@`); in an HTTP URL it could be a
        // token (GitHub accepts them there), and the URL is in git's argv.
        let is_http = matches!(parsed.scheme(), "http" | "https");
        if parsed.password().is_some() || (is_http && !parsed.username().is_empty()) {
            return invalid(
                "the remote URL must not contain credentials; the credential is passed separately"
                    .to_owned(),
            );
        }
        parsed.scheme().to_owned()
    } else {
        // scp-like `git@host:path`.
        "ssh".to_owned()
    };
    match (auth, scheme.as_str()) {
        (GitAuth::Https { username, token }, "https" | "http") => {
            let unsafe_text = |text: &str| text.contains(['\n', '\r', '\0']);
            if username.is_empty() || unsafe_text(username) || unsafe_text(token.expose_secret()) {
                return invalid(
                    "the username or token contains line breaks or is empty".to_owned(),
                );
            }
        }
        (GitAuth::Ssh { known_hosts, .. }, "ssh") => {
            if ssh::recorded_host_keys(known_hosts).is_none() {
                return Err(PushError::MissingKnownHosts);
            }
        }
        (GitAuth::Https { .. }, _) => {
            return invalid(format!(
                "a token credential cannot push to a {scheme} URL; use an https URL"
            ));
        }
        (GitAuth::Ssh { .. }, _) => {
            return invalid(format!(
                "an SSH key cannot push to a {scheme} URL; use an ssh URL"
            ));
        }
    }
    if let PushTarget::Review { topic, .. } = &req.target
        && !review::is_valid_topic(topic)
    {
        return invalid(format!(
            "{topic:?} cannot be a review topic: Gerrit reads ',' and '%' in push options"
        ));
    }
    if let Change::Commit { rev, .. } = &req.change
        && (rev.is_empty() || rev.starts_with('-'))
    {
        return invalid(format!("{rev:?} is not a revision"));
    }
    for expected in [&req.expected_head, &req.interrupted_head]
        .into_iter()
        .flatten()
    {
        if !is_object_id(expected) {
            return invalid(format!("{expected:?} is not a commit id"));
        }
    }
    Ok(())
}

/// A full SHA-1 or SHA-256 commit id, as git prints them.
fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The subset of git's ref name rules (`git check-ref-format --branch`)
/// that matters for a refspec: nothing that git or a shell could read as an
/// option, a pattern or a second ref.
fn is_valid_branch_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && name != "@"
        && !name.contains("/.")
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
}

/// `scheme://host[:port]` of an HTTP(S) remote URL, which git matches
/// against `credential.<url>.*` configuration.
fn credential_scope(remote_url: &str) -> Result<String, PushError> {
    let url = url::Url::parse(remote_url).map_err(|error| {
        PushError::InvalidRequest(format!("the remote URL is malformed: {error}"))
    })?;
    let host = url
        .host_str()
        .ok_or_else(|| PushError::InvalidRequest("the remote URL has no host".to_owned()))?;
    Ok(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// How git reaches the code host for this push.
enum Transport {
    Https(CredentialPipe),
    // Boxed: the agent's process handle is much larger than the pipe.
    Ssh(Box<SshAgent>),
}

impl Transport {
    async fn start(auth: &GitAuth, directory: &Path, remote_url: &str) -> Result<Self, PushError> {
        match auth {
            GitAuth::Https { username, token } => {
                CredentialPipe::serve(directory, credential_scope(remote_url)?, username, token)
                    .map(Self::Https)
            }
            GitAuth::Ssh {
                private_key,
                public_key,
                known_hosts,
            } => SshAgent::start(directory, private_key, public_key, known_hosts)
                .await
                .map(|agent| Self::Ssh(Box::new(agent))),
        }
    }

    /// Points a network command at this transport's credential.
    fn configure(&self, command: GitCommand) -> GitCommand {
        match self {
            Self::Https(pipe) => {
                let (key, value) = pipe.helper();
                command.config(&key, &value)
            }
            Self::Ssh(agent) => command
                .env("GIT_SSH_COMMAND", &agent.ssh_command())
                .env("GIT_SSH_VARIANT", "ssh"),
        }
    }

    async fn stop(self) {
        match self {
            Self::Https(pipe) => drop(pipe),
            Self::Ssh(agent) => agent.stop().await,
        }
    }
}

/// The steps of one push, sharing its scratch directory and transport.
struct Session<'a> {
    home: &'a Path,
    transport: &'a Transport,
    /// Signs the commits this push writes, when the credential has a key.
    signer: Option<&'a Signer>,
    secrets: Vec<&'a str>,
}

impl Session<'_> {
    async fn push(
        &self,
        req: &PushRequest,
        record: Option<RecordCommit<'_>>,
    ) -> Result<Pushed, PushError> {
        let (repo, commit) = match &req.change {
            Change::Commit { repo, rev } => (repo.clone(), self.resolve(repo, rev).await?),
            Change::Diff {
                patch,
                message,
                author_name,
                author_email,
            } => {
                let work = self.home.join("work");
                let author = (author_name.as_str(), author_email.as_str());
                let commit = self.commit_diff(&work, req, patch, message, author).await?;
                (work, commit)
            }
        };
        let (repo, commit) = match (&req.target, &req.change) {
            // A local commit is signed by writing a signed copy of it in
            // the scratch directory; the user's repository is only read.
            (PushTarget::Branch, Change::Commit { .. }) if self.signer.is_some() => {
                self.signed_copy(&repo, &commit).await?
            }
            (PushTarget::Branch, _) => (repo, commit),
            (PushTarget::Review { change_id, .. }, _) => {
                self.review_commit(&repo, &commit, change_id).await?
            }
        };
        if let Some(record) = record {
            record(commit.clone()).await.map_err(|reason| {
                PushError::Other(format!(
                    "could not record the commit before pushing: {reason}"
                ))
            })?;
        }
        if let PushTarget::Review {
            topic,
            work_in_progress,
            ..
        } = &req.target
        {
            let options = (topic.as_str(), *work_in_progress);
            self.push_for_review(&repo, &req.remote_url, &req.base_branch, options, &commit)
                .await?;
            return Ok(Pushed { commit });
        }
        let expected = req.expected_head.as_deref();
        match self.push_with_lease(&repo, req, &commit, expected).await {
            Err(PushError::BranchMoved(message)) => {
                // Not where batchcred last recorded it. Still batchcred's
                // own if it is gone (merged and deleted, say: creating it
                // again overwrites nothing), already at this very commit,
                // or at the commit an interrupted attempt was pushing.
                let remote = self.remote_head(req).await?;
                let ours = match remote.as_deref() {
                    None => expected.is_some(),
                    Some(head) => head == commit || Some(head) == req.interrupted_head.as_deref(),
                };
                if !ours {
                    return Err(PushError::BranchMoved(message));
                }
                if remote.as_deref() != Some(commit.as_str()) {
                    self.push_with_lease(&repo, req, &commit, remote.as_deref())
                        .await?;
                }
            }
            other => other?,
        }
        Ok(Pushed { commit })
    }

    /// Pushes `commit` to the head branch only if the branch is at
    /// `expected` (`None`: does not exist). No `+` on the refspec: the
    /// lease alone allows replacing the branch.
    async fn push_with_lease(
        &self,
        repo: &Path,
        req: &PushRequest,
        commit: &str,
        expected: Option<&str>,
    ) -> Result<(), PushError> {
        let branch = format!("refs/heads/{}", req.head_branch);
        let lease = format!("--force-with-lease={branch}:{}", expected.unwrap_or(""));
        let push = GitCommand::new(self.home)
            .in_directory(repo)
            .args(["push", "--no-verify"])
            .arg(lease)
            .arg("--")
            .arg(&req.remote_url)
            .arg(format!("{commit}:{branch}"));
        self.network(push).await
    }

    /// The commit the head branch is at on the code host; `None` when it
    /// does not exist.
    async fn remote_head(&self, req: &PushRequest) -> Result<Option<String>, PushError> {
        let list = GitCommand::new(self.home)
            .args(["ls-remote", "--heads", "--"])
            .arg(&req.remote_url)
            .arg(format!("refs/heads/{}", req.head_branch));
        let finished = self.transport.configure(list).run().await?;
        if !finished.success {
            return Err(PushError::classify(error::summarize(
                &finished.stderr,
                &self.secrets,
            )));
        }
        Ok(finished.stdout.split_whitespace().next().map(str::to_owned))
    }

    /// The full commit id `rev` names in `repo`.
    async fn resolve(&self, repo: &Path, rev: &str) -> Result<String, PushError> {
        let finished = self
            .local(
                GitCommand::new(self.home)
                    .in_directory(repo)
                    .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
                    .arg(format!("{rev}^{{commit}}")),
            )
            .await
            .map_err(|_| {
                PushError::InvalidRequest(format!("{rev:?} is not a commit in {}", repo.display()))
            })?;
        Ok(finished.trim().to_owned())
    }

    /// Fetches the tip of the base branch into a fresh repository at
    /// `work`, applies `patch` and commits it; returns the commit id.
    async fn commit_diff(
        &self,
        work: &Path,
        req: &PushRequest,
        patch: &str,
        message: &str,
        (author_name, author_email): (&str, &str),
    ) -> Result<String, PushError> {
        self.local(
            GitCommand::new(self.home)
                .args(["init", "--quiet"])
                .arg(work),
        )
        .await?;
        let git = || GitCommand::new(self.home).in_directory(work);
        // Only the base branch's tip: no history, no tags.
        self.network(
            git()
                .args(["fetch", "--quiet", "--no-tags", "--depth=1", "--"])
                .arg(&req.remote_url)
                .arg(format!("refs/heads/{}", req.base_branch)),
        )
        .await?;
        self.local(git().args(["checkout", "--quiet", "--detach", "FETCH_HEAD"]))
            .await?;
        let applied = git()
            .args(["apply", "--index", "--whitespace=nowarn", "-"])
            .stdin(patch)
            .run()
            .await?;
        if !applied.success {
            return Err(PushError::PatchDoesNotApply(error::summarize(
                &applied.stderr,
                &self.secrets,
            )));
        }
        let commit = git()
            .args(["commit", "--quiet", "--no-verify", "--file=-"])
            .env("GIT_AUTHOR_NAME", author_name)
            .env("GIT_AUTHOR_EMAIL", author_email)
            .env("GIT_COMMITTER_NAME", author_name)
            .env("GIT_COMMITTER_EMAIL", author_email)
            .stdin(message);
        self.write_commit(commit).await?;
        let head = self.local(git().args(["rev-parse", "HEAD"])).await?;
        Ok(head.trim().to_owned())
    }

    /// Runs a command that writes a commit (`commit`, `commit-tree`),
    /// signed when this push has a signing key (a failure then is a
    /// signing failure: the same command succeeds unsigned); returns its
    /// stdout.
    async fn write_commit(&self, command: GitCommand) -> Result<String, PushError> {
        let Some(signer) = self.signer else {
            return self.local(command).await;
        };
        let finished = signer.configure(command).run().await?;
        if finished.success {
            Ok(finished.stdout)
        } else {
            Err(PushError::Signing(error::summarize(
                &finished.stderr,
                &self.secrets,
            )))
        }
    }

    /// Runs a command that needs no credential; returns its stdout.
    async fn local(&self, command: GitCommand) -> Result<String, PushError> {
        let finished = command.run().await?;
        if finished.success {
            Ok(finished.stdout)
        } else {
            Err(PushError::Other(error::summarize(
                &finished.stderr,
                &self.secrets,
            )))
        }
    }

    /// Runs a command that talks to the code host, classifying failures.
    async fn network(&self, command: GitCommand) -> Result<(), PushError> {
        let finished = self.transport.configure(command).run().await?;
        if finished.success {
            Ok(())
        } else {
            Err(PushError::classify(error::summarize(
                &finished.stderr,
                &self.secrets,
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn https() -> GitAuth {
        GitAuth::Https {
            username: "x-access-token".to_owned(),
            token: SecretString::from("tok"),
        }
    }

    fn request(url: &str, head: &str) -> PushRequest {
        PushRequest {
            remote_url: url.to_owned(),
            base_branch: "main".to_owned(),
            head_branch: head.to_owned(),
            expected_head: None,
            interrupted_head: None,
            change: Change::Commit {
                repo: PathBuf::from("."),
                rev: "HEAD".to_owned(),
            },
            target: PushTarget::Branch,
            signing: None,
        }
    }

    #[test]
    fn credentials_are_scoped_to_the_remote_origin() {
        assert_eq!(
            credential_scope("https://github.com/o/r.git").unwrap(),
            "https://github.com"
        );
        assert_eq!(
            credential_scope("http://127.0.0.1:8080/r.git").unwrap(),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn branch_names_that_could_be_misread_are_refused() {
        for good in ["main", "batch/fix-1", "release-2.0", "a_b"] {
            assert!(is_valid_branch_name(good), "{good}");
        }
        for bad in [
            "", "-f", "a:b", "a b", "a..b", "a~1", "x^", "*", "a.lock", "a/", "/a", "a//b", "@",
            "a@{1}", "a\\b", ".hidden", "a/.b",
        ] {
            assert!(!is_valid_branch_name(bad), "{bad}");
        }
    }

    #[test]
    fn requests_are_validated_before_any_work() {
        let ok = validate(&request("https://github.com/o/r.git", "b"), &https());
        assert_eq!(ok, Ok(()));
        for with_credentials in [
            "https://u:p@github.com/o/r.git",
            "https://ghp_x@github.com/o/r",
        ] {
            let refused = validate(&request(with_credentials, "b"), &https());
            assert!(
                matches!(refused, Err(PushError::InvalidRequest(m)) if m.contains("credentials")),
                "{with_credentials}"
            );
        }
        assert!(matches!(
            validate(&request("git@github.com:o/r.git", "b"), &https()),
            Err(PushError::InvalidRequest(_))
        ));
        assert!(matches!(
            validate(&request("file:///tmp/r.git", "b"), &https()),
            Err(PushError::InvalidRequest(_))
        ));
        assert!(matches!(
            validate(&request("https://github.com/o/r.git", "a:b"), &https()),
            Err(PushError::InvalidRequest(_))
        ));
        let mut leased = request("https://github.com/o/r.git", "b");
        leased.expected_head = Some("a".repeat(40));
        assert_eq!(validate(&leased, &https()), Ok(()));
        leased.expected_head = Some("HEAD:refs/heads/main".to_owned());
        assert!(matches!(
            validate(&leased, &https()),
            Err(PushError::InvalidRequest(_))
        ));
        let ssh = GitAuth::Ssh {
            private_key: SecretString::from("k"),
            public_key: "ssh-ed25519 AAAA".to_owned(),
            known_hosts: "# nothing recorded\n".to_owned(),
        };
        assert_eq!(
            validate(&request("ssh://git@github.com/o/r.git", "b"), &ssh),
            Err(PushError::MissingKnownHosts)
        );
    }
}
