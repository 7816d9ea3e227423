//! The GraphQL API at `POST /.api/graphql`.
//!
//! Names and shapes follow Sourcegraph's batch-changes credential schema
//! (`batchChangesCodeHosts`, `BatchChangesCredential`,
//! `createBatchChangesCredential`, …) so its web client's queries work
//! unchanged. Resolvers only translate: every decision is made by the
//! [`Service`] for the request's [`Caller`].

mod error;
mod ids;
mod mutation;
mod publish;
mod query;
mod types;

use async_graphql::{EmptySubscription, Schema};

use crate::auth::Caller;
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
        .finish()
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
