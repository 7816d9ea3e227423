//! The operations batchcred offers, each taking the [`Caller`] it acts for.
//! GraphQL resolvers, HTTP handlers and the CLI all go through here, so
//! authorization, validation and encryption happen the same way for all.

mod accounts;
mod code_hosts;
mod credentials;
mod keys;
mod page;

pub use accounts::{CreatedAccessToken, SessionToken};
pub use code_hosts::{AddCodeHost, CodeHostView};
pub use credentials::{CreateCredential, CredentialView};
pub use keys::{KeyStatus, ReencryptReport};
pub use page::{Page, PageRequest};

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Caller, Denied};
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
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<Denied> for Error {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthenticated => Self::Unauthenticated(denied.to_string()),
            Denied::NotSiteAdmin => Self::Forbidden(denied.to_string()),
            Denied::Hidden => Self::NotFound(denied.to_string()),
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
}

/// The service: cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Service {
    store: Store,
    encryptor: Arc<Encryptor>,
    settings: Arc<ServiceSettings>,
}

impl Service {
    pub fn new(store: Store, encryptor: Arc<Encryptor>, settings: ServiceSettings) -> Self {
        Self {
            store,
            encryptor,
            settings: Arc::new(settings),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether the database answers (for health checks).
    pub async fn healthy(&self) -> bool {
        self.store.ping().await.is_ok()
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
