//! Service errors as GraphQL errors, each with an `extensions.code`.

use async_graphql::ErrorExtensions;

use crate::service::Error;

/// Converts a service error. Every variant is mapped explicitly so a new
/// one forces a decision here. Internal errors are logged with detail and
/// answered with a generic message.
pub(super) fn to_graphql(error: Error) -> async_graphql::Error {
    let (code, message) = match error {
        Error::Unauthenticated(message) => ("UNAUTHENTICATED", message),
        Error::Forbidden(message) => ("FORBIDDEN", message),
        Error::NotFound(message) => ("NOT_FOUND", message),
        Error::InvalidInput(message) => ("BAD_USER_INPUT", message),
        Error::Conflict(message) => ("CONFLICT", message),
        Error::CodeHostUnavailable(message) => ("CODE_HOST_UNAVAILABLE", message),
        Error::PublishFailed(message) => ("PUBLISH_FAILED", message),
        Error::SealMismatch => ("CREDENTIAL_SEAL_MISMATCH", Error::SealMismatch.to_string()),
        Error::Throttled { message, .. } => ("RATE_LIMITED", message),
        Error::Overloaded { message, .. } => ("OVERLOADED", message),
        Error::Internal(detail) => {
            tracing::error!(error = %detail, "internal error in GraphQL request");
            ("INTERNAL_SERVER_ERROR", "internal server error".to_owned())
        }
    };
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// Shorthand for resolvers: `service.call().await.map_err(gql)?`.
pub(super) trait IntoGraphql<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> IntoGraphql<T> for Result<T, Error> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(to_graphql)
    }
}
