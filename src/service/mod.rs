//! The operations batchcred offers, each taking the [`Caller`] it acts for.
//! GraphQL resolvers, HTTP handlers and the CLI all go through here, so
//! authorization, validation and encryption happen the same way for all.

mod access_tokens;
mod accounts;
pub(crate) mod audit;
mod changeset_jobs;
mod changeset_lifecycle;
mod changeset_list;
mod changesets;
mod checks;
mod code_hosts;
mod commit_signing;
mod credentials;
mod expiry_warnings;
mod github_app;
mod github_app_manifest;
mod keys;
mod page;
mod publish;
mod resolution;
mod sessions;
mod sign_in_backoff;
mod sign_in_guard;
mod webhooks;

pub use access_tokens::CreatedAccessToken;
pub use accounts::SessionToken;
pub use audit::{AuditQuery, AuditVerification, KeyringChange, event as audit_event};
pub use changeset_jobs::QueueSettings;
pub use changeset_list::{ChangesetQuery, ChangesetStatus, ChangesetView};
pub use checks::RecheckReport;
pub use code_hosts::{AddCodeHost, CodeHostView, PolicyRequest, PolicyView};
pub use credentials::{CreateCredential, CredentialSecret, CredentialView};
pub use expiry_warnings::{CredentialNotice, NotifySettings, WarningReport};
pub use github_app::CreateGitHubAppCredential;
pub use github_app_manifest::{CALLBACK_PATH as GITHUB_APP_CALLBACK_PATH, ManifestStart};
pub use keys::{KeyStatus, KeyUse, ReencryptReport};
pub use page::{Page, PageRequest};
pub use publish::{
    ChangesetReport, MAX_PUBLISH_CONCURRENCY, OnReport, PublishResult, PublishSettings,
    PublishedChangeset,
};
pub use resolution::{CredentialSource, ResolvedCredential};
pub use sign_in_backoff::{BackoffPolicy, retry_after_secs};
pub use sign_in_guard::{SignInLimits, default_max_concurrent};
pub use store::PoolStats;
pub use webhooks::{WebhookReceipt, WebhookSetup};

// What callers hand the service, named here so that the API, the pages and
// the CLI need nothing but the service and the domain.
pub use crate::auth::Caller;
pub use crate::codehost::{CheckOptions, DEFAULT_TIMEOUT as DEFAULT_CODE_HOST_TIMEOUT};
pub use crate::crypto::{KeyId, KeySource, Keyring, RandomToken};
pub use crate::notify::{EmailSettings, WebhookSettings};
pub use crate::publish::{Backoff, ChangeSpec, ChangesetSpec, SpecFile};

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Denied;
use crate::codehost::{self, ApiClient};
use crate::crypto::{self, Encryptor};
use crate::domain::InvalidInput;
use crate::store::{self, Store};

/// Everything a caller can be told went wrong. The messages are shown to
/// callers as they are, so none may contain a secret; `Internal` carries
/// detail for the log only.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Conflict(String),
    /// The code host could not be asked (unreachable, failing, rate
    /// limiting): nothing is known to be wrong with the caller's input.
    #[error("{0}")]
    CodeHostUnavailable(String),
    /// Publishing a changeset failed at the code host (push refused,
    /// pull request refused).
    #[error("{0}")]
    PublishFailed(String),
    /// A credential's stored owner, code host or ciphertext is not what it
    /// was sealed with: the row was changed outside batchcred. Its secret
    /// is not used.
    #[error(
        "credential record does not match its seal: it was changed outside batchcred \
         (owner, code host or secret); remove it and add the token again"
    )]
    SealMismatch,
    /// Too many failed sign-ins: the caller must wait before trying again.
    #[error("{message}")]
    Throttled {
        message: String,
        retry_after: Duration,
    },
    /// The server is at its bound of work of this kind; try again shortly.
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after: Duration,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// How long the caller should wait before trying again, when the
    /// error is about load rather than about the request.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } | Self::Overloaded { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<Denied> for Error {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthenticated => Self::Unauthenticated(denied.to_string()),
            Denied::NotSiteAdmin => Self::Forbidden(denied.to_string()),
            Denied::Hidden => Self::NotFound(denied.to_string()),
            Denied::OnlyForYourself(_) => Self::Forbidden(denied.to_string()),
        }
    }
}

impl From<InvalidInput> for Error {
    fn from(invalid: InvalidInput) -> Self {
        Self::InvalidInput(invalid.0)
    }
}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::NotFound => Self::NotFound("not found".into()),
            store::Error::Conflict(message) => Self::Conflict(message.into()),
            store::Error::Corrupt(_) | store::Error::Database(_) | store::Error::Migrate(_) => {
                Self::Internal(error.to_string())
            }
        }
    }
}

impl From<codehost::Error> for Error {
    fn from(error: codehost::Error) -> Self {
        if error.is_token_problem() {
            Self::InvalidInput(error.to_string())
        } else if matches!(error, codehost::Error::RepositoryNotFound { .. }) {
            // Not the code host failing: trying again later gets the same.
            Self::NotFound(error.to_string())
        } else if matches!(error, codehost::Error::NotPossible { .. }) {
            // Neither would trying again.
            Self::Conflict(error.to_string())
        } else {
            Self::CodeHostUnavailable(error.to_string())
        }
    }
}

impl From<crypto::Error> for Error {
    fn from(error: crypto::Error) -> Self {
        Self::Internal(error.to_string())
    }
}

/// Settings the service needs beyond the store and keys.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Comment put on generated SSH public keys, e.g. `batchcred@host`.
    pub instance_name: String,
    pub session_ttl: Duration,
    /// Sessions unused for this long are refused; `None` turns it off.
    pub session_idle_timeout: Option<Duration>,
    /// How long one call to a code host may take.
    pub code_host_timeout: Duration,
    pub publish: PublishSettings,
    pub sign_in: SignInLimits,
    /// Expiry warnings: the period, the round interval, where they go.
    pub notify: NotifySettings,
}

/// The service: cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Service {
    store: Store,
    encryptor: Arc<Encryptor>,
    settings: Arc<ServiceSettings>,
    code_hosts: ApiClient,
    /// Spaces out pull requests per code host, shared by all publishes.
    pacer: crate::publish::Pacer,
    /// Bounds the token checks in flight across the whole server (on add,
    /// on request, in the background), whoever asks.
    token_checks: Arc<tokio::sync::Semaphore>,
    /// Bounds git work on the whole server and per user, shared by all
    /// publishes.
    git_jobs: crate::publish::GitJobs,
    /// Wakes this process's idle job workers when it queues a job.
    job_signal: Arc<tokio::sync::Notify>,
    /// Bounds password checks and throttles sign-in per client address.
    sign_in_guard: Arc<sign_in_guard::SignInGuard>,
    /// The webhook sender and mailer expiry warnings go out through.
    notifiers: Arc<expiry_warnings::Notifiers>,
    /// GitHub App installation tokens, cached in memory until shortly
    /// before they expire; never stored.
    installation_tokens: Arc<github_app::InstallationTokens>,
    /// GitHub App manifest flows started and not yet finished.
    manifest_states: Arc<github_app_manifest::ManifestStates>,
}

/// Token checks one server runs against code hosts at once; more wait.
const MAX_CONCURRENT_TOKEN_CHECKS: usize = 8;

impl Service {
    pub fn new(store: Store, encryptor: Arc<Encryptor>, settings: ServiceSettings) -> Result<Self> {
        let code_hosts = ApiClient::new(settings.code_host_timeout)
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        let sign_in_guard = Arc::new(sign_in_guard::SignInGuard::new(settings.sign_in));
        let notifiers = Arc::new(expiry_warnings::Notifiers::new(&settings.notify)?);
        Ok(Self {
            store,
            encryptor,
            code_hosts,
            pacer: crate::publish::Pacer::default(),
            token_checks: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_TOKEN_CHECKS)),
            installation_tokens: Arc::default(),
            manifest_states: Arc::default(),
            git_jobs: crate::publish::GitJobs::new(
                settings.publish.max_git_jobs,
                settings.publish.max_git_jobs_per_user,
            ),
            settings: Arc::new(settings),
            sign_in_guard,
            notifiers,
            job_signal: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The store itself, for tests that set up states no call can make.
    #[cfg(feature = "test-support")]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether the database answers (for health checks).
    pub async fn healthy(&self) -> bool {
        self.store.ping().await.is_ok()
    }

    /// The database pool's state, for `/metrics`.
    pub fn database_pool(&self) -> PoolStats {
        self.store.pool_stats()
    }
}

/// Maps a store "not found" to a message naming what was missing.
fn not_found(what: &str) -> impl FnOnce(store::Error) -> Error + '_ {
    move |error| match error {
        store::Error::NotFound => Error::NotFound(format!("{what} not found")),
        other => other.into(),
    }
}

/// Requires the caller to be signed in; used by read paths that are open to
/// every user.
fn signed_in(caller: &Caller) -> Result<()> {
    caller.require_signed_in().map_err(Error::from)
}
