//! The GraphQL API at `POST /.api/graphql`.
//!
//! Names and shapes follow Sourcegraph's batch-changes credential schema
//! (`batchChangesCodeHosts`, `BatchChangesCredential`,
//! `createBatchChangesCredential`, …) so its web client's queries work
//! unchanged. Resolvers only translate: every decision is made by the
//! [`Service`] for the request's [`Caller`].

mod audit;
mod changesets;
mod commit_signing;
mod error;
mod github_app;
mod ids;
mod mutation;
mod operation_metrics;
mod publish;
mod query;
mod ssh_signing;
mod types;
mod webhooks;

use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::{EmptySubscription, Schema};

use crate::service::Caller;
use crate::service::Service;

pub use mutation::MutationRoot;
pub use query::QueryRoot;

/// The executable schema.
pub type BatchcredSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Builds the schema around a service. Depth and complexity limits keep a
/// single query from doing unbounded work.
pub fn build_schema(service: Service) -> BatchcredSchema {
    Schema::build(QueryRoot, MutationRoot::default(), EmptySubscription)
        .data(service)
        .limit_depth(16)
        .limit_complexity(2_000)
        .extension(operation_metrics::OperationMetrics)
        .finish()
}

/// Prepares a request for execution on behalf of `caller`, with its own
/// allowance of credential checks.
pub fn prepare_request(request: async_graphql::Request, caller: Caller) -> async_graphql::Request {
    request
        .data(caller)
        .data(CheckAllowance::new(MAX_CHECKS_PER_REQUEST))
}

/// How many credentials one request may check. Each check calls a code
/// host, and the fields of a query resolve in parallel, so without a limit
/// one request could alias `checkBatchChangesCredential` hundreds of times.
pub const MAX_CHECKS_PER_REQUEST: usize = 5;

/// The credential checks a request has left.
struct CheckAllowance(AtomicUsize);

impl CheckAllowance {
    fn new(checks: usize) -> Self {
        Self(AtomicUsize::new(checks))
    }

    /// Takes one check from the allowance; false when none is left.
    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

/// The schema in SDL, as `batchcred schema` prints and `schema.graphql`
/// holds.
pub fn schema_sdl() -> String {
    Schema::build(QueryRoot, MutationRoot::default(), EmptySubscription)
        .finish()
        .sdl()
}

/// The request's session cookie, if it signed in with one (see
/// `updatePassword`, which keeps that session).
pub struct CurrentSession(pub Option<secrecy::SecretString>);

fn context_parts<'a>(
    ctx: &'a async_graphql::Context<'_>,
) -> async_graphql::Result<(&'a Service, &'a Caller)> {
    Ok((ctx.data::<Service>()?, ctx.data::<Caller>()?))
}

#[cfg(test)]
mod tests {
    use super::CheckAllowance;

    #[test]
    fn the_check_allowance_runs_out_and_stays_out() {
        let allowance = CheckAllowance::new(2);
        assert!(allowance.take());
        assert!(allowance.take());
        assert!(!allowance.take());
        assert!(!allowance.take());
    }
}
