//! Counts GraphQL operations by name. The name is the one executed (from
//! the document when the request does not say), so a client sending
//! `query CurrentUser { … }` without `operationName` is still counted as
//! `CurrentUser`; unnamed operations count as `anonymous`.

use std::sync::Arc;

use async_graphql::Response;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};

use crate::telemetry::metrics;

pub(super) struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetrics)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationMetrics {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(ctx, operation_name).await;
        metrics::graphql_operation(operation_name, response.errors.is_empty());
        response
    }
}
