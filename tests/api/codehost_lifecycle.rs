//! Following a published pull request on each kind of code host, through
//! the code host clients against the emulator: reading its state, reviews
//! and checks, closing and reopening it, seeing it merged or deleted, and
//! deleting its branch.

use std::time::Duration;

use batchcred::codehost::{
    ApiClient, ChecksState, Client, CodeHostApi, Error, PullRequestDraft, PullRequestState,
    ReviewState,
};
use batchcred::domain::{CodeHostKind, CodeHostUrl};
use secrecy::SecretString;

use crate::support::codehost::{
    BITBUCKET_SCOPES, Behaviour, EmulatedChecks, EmulatedRepo, EmulatedReview, EmulatedToken,
    Emulator, GITHUB_SCOPES, GITLAB_SCOPES, PullState,
};

/// One code host served by the emulator, with a client for it.
struct Host {
    emulator: Emulator,
    client: Client,
    token: SecretString,
    /// The token as sent, to look for in error messages.
    token_text: &'static str,
    repository: &'static str,
}

async fn host(kind: CodeHostKind) -> Host {
    let (token_text, scopes, repository, prefix) = match kind {
        CodeHostKind::GitHub => ("ghp_lifecycle_s3cret", GITHUB_SCOPES, "acme/api", "github"),
        CodeHostKind::GitLab => (
            "glpat-lifecycle-s3cret",
            GITLAB_SCOPES,
            "acme/backend/api",
            "gitlab",
        ),
        _ => (
            "BBDC-lifecycle-s3cret",
            BITBUCKET_SCOPES,
            "ACME/api",
            "bitbucket",
        ),
    };
    let emulator = Emulator::start().await;
    emulator.add_token(token_text, EmulatedToken::new("alice", scopes));
    emulator.add_repository(
        repository,
        EmulatedRepo {
            http_clone_url: "http://git.invalid/acme/api.git".into(),
            ssh_clone_url: None,
        },
    );
    let api = ApiClient::new(Duration::from_secs(10)).unwrap();
    let url = CodeHostUrl::parse(&emulator.url(prefix)).unwrap();
    let client = Client::new(&api, kind, &url, None).unwrap();
    Host {
        emulator,
        client,
        token: SecretString::from(token_text),
        token_text,
        repository,
    }
}

fn draft(repository: &str, head: &str, draft: bool) -> PullRequestDraft {
    PullRequestDraft {
        repository: repository.to_owned(),
        base_branch: "main".into(),
        head_branch: head.to_owned(),
        title: "Update the API".into(),
        body: "Done by a batch change.".into(),
        draft,
        change_id: None,
    }
}

/// The whole life of one pull request on `kind`.
async fn follows_a_pull_request_through_its_life(kind: CodeHostKind) {
    let Host {
        emulator,
        client,
        token,
        token_text,
        repository,
    } = host(kind).await;
    let opened = client
        .publish_pull_request(&token, &draft(repository, "batch/update-api", false))
        .await
        .unwrap();
    let number = opened.number;

    let status = client
        .pull_request(&token, repository, number)
        .await
        .unwrap();
    assert_eq!(status.number, number);
    assert_eq!(status.url, opened.url);
    assert_eq!(status.state, PullRequestState::Open);
    assert_eq!(status.review, None, "{kind:?}: nobody was asked to review");
    assert_eq!(status.checks, None, "{kind:?}: no checks ran");
    assert_eq!(status.title, "Update the API");
    assert_eq!(status.head_branch, "batch/update-api");
    assert_eq!(status.base_branch, "main");

    // Reviews and checks as each code host reports them.
    let cases = [
        (
            EmulatedReview::Requested,
            EmulatedChecks::Running,
            ReviewState::Pending,
            ChecksState::Pending,
        ),
        (
            EmulatedReview::Approved,
            EmulatedChecks::Passed,
            ReviewState::Approved,
            ChecksState::Passed,
        ),
        (
            EmulatedReview::ChangesRequested,
            EmulatedChecks::Failed,
            ReviewState::ChangesRequested,
            ChecksState::Failed,
        ),
    ];
    for (review, checks, want_review, want_checks) in cases {
        emulator.set_pull_review(repository, number, Some(review));
        emulator.set_pull_checks(repository, number, Some(checks));
        let status = client
            .pull_request(&token, repository, number)
            .await
            .unwrap();
        assert_eq!(status.review, Some(want_review), "{kind:?} {review:?}");
        assert_eq!(status.checks, Some(want_checks), "{kind:?} {checks:?}");
    }

    // Closing twice closes once; reopening brings it back.
    let closed = client
        .close_pull_request(&token, repository, number)
        .await
        .unwrap();
    assert_eq!(closed.state, PullRequestState::Closed);
    assert_eq!(closed.review, Some(ReviewState::ChangesRequested));
    assert_eq!(emulator.pulls()[0].state, PullState::Closed);
    let again = client
        .close_pull_request(&token, repository, number)
        .await
        .unwrap();
    assert_eq!(again.state, PullRequestState::Closed);
    let reopened = client
        .reopen_pull_request(&token, repository, number)
        .await
        .unwrap();
    assert_eq!(reopened.state, PullRequestState::Open);
    assert_eq!(emulator.pulls()[0].state, PullState::Open);

    emulator.merge_pull(repository, number);
    let merged = client
        .pull_request(&token, repository, number)
        .await
        .unwrap();
    assert_eq!(merged.state, PullRequestState::Merged);

    // Deleting the branch twice is fine: the second time it is gone.
    for _ in 0..2 {
        client
            .delete_branch(&token, repository, "batch/update-api")
            .await
            .unwrap();
    }
    assert_eq!(
        emulator.deleted_branches(),
        [(repository.to_owned(), "batch/update-api".to_owned())]
    );

    emulator.delete_pull(repository, number);
    let gone = client
        .pull_request(&token, repository, number)
        .await
        .unwrap_err();
    assert!(
        matches!(&gone, Error::PullRequestNotFound { repository: r, number: n, .. }
            if r == repository && *n == number),
        "{gone:?}"
    );
    assert_eq!(gone.metric_label(), "pull_request_not_found");
    assert!(!gone.is_token_problem());
    let close_gone = client
        .close_pull_request(&token, repository, number)
        .await
        .unwrap_err();
    assert!(
        matches!(close_gone, Error::PullRequestNotFound { .. }),
        "{close_gone:?}"
    );
    for error in [gone, close_gone] {
        assert!(!error.to_string().contains(token_text), "{error}");
    }
}

#[tokio::test]
async fn github_pull_requests_are_followed_through_their_life() {
    follows_a_pull_request_through_its_life(CodeHostKind::GitHub).await;
}

#[tokio::test]
async fn gitlab_merge_requests_are_followed_through_their_life() {
    follows_a_pull_request_through_its_life(CodeHostKind::GitLab).await;
}

#[tokio::test]
async fn bitbucket_server_pull_requests_are_followed_through_their_life() {
    follows_a_pull_request_through_its_life(CodeHostKind::BitbucketServer).await;
}

#[tokio::test]
async fn drafts_read_as_drafts_on_every_code_host() {
    for kind in [
        CodeHostKind::GitHub,
        CodeHostKind::GitLab,
        CodeHostKind::BitbucketServer,
    ] {
        let host = host(kind).await;
        let opened = host
            .client
            .publish_pull_request(&host.token, &draft(host.repository, "batch/wip", true))
            .await
            .unwrap();
        let status = host
            .client
            .pull_request(&host.token, host.repository, opened.number)
            .await
            .unwrap();
        assert_eq!(status.state, PullRequestState::Draft, "{kind:?}");
        // A closed draft reads as closed, not as a draft.
        let closed = host
            .client
            .close_pull_request(&host.token, host.repository, opened.number)
            .await
            .unwrap();
        assert_eq!(closed.state, PullRequestState::Closed, "{kind:?}");
    }
}

#[tokio::test]
async fn refused_tokens_are_never_quoted_in_errors() {
    for kind in [
        CodeHostKind::GitHub,
        CodeHostKind::GitLab,
        CodeHostKind::BitbucketServer,
    ] {
        let host = host(kind).await;
        let opened = host
            .client
            .publish_pull_request(&host.token, &draft(host.repository, "batch/x", false))
            .await
            .unwrap();
        // The code host now quotes the token it refuses (GitHub does).
        host.emulator.set_behaviour(Behaviour::EchoTokens);
        host.emulator
            .update_token(host.token_text, |token| token.revoked = true);
        let errors = [
            host.client
                .pull_request(&host.token, host.repository, opened.number)
                .await
                .unwrap_err(),
            host.client
                .close_pull_request(&host.token, host.repository, opened.number)
                .await
                .unwrap_err(),
            host.client
                .reopen_pull_request(&host.token, host.repository, opened.number)
                .await
                .unwrap_err(),
            host.client
                .delete_branch(&host.token, host.repository, "batch/x")
                .await
                .unwrap_err(),
        ];
        for error in errors {
            assert!(
                matches!(error, Error::Rejected { .. }),
                "{kind:?}: {error:?}"
            );
            assert!(
                !error.to_string().contains(host.token_text),
                "{kind:?}: {error}"
            );
            if kind == CodeHostKind::GitHub {
                // It did quote it: the client took it out.
                assert!(error.to_string().contains("[REDACTED]"), "{error}");
            }
        }
        assert!(host.emulator.deleted_branches().is_empty());
    }
}
