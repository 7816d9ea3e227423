//! Setting up code host webhooks (site admins).

use async_graphql::{Context, Object, SimpleObject};
use secrecy::ExposeSecret;

use super::context_parts;
use super::error::IntoGraphql;
use super::types::EmptyResponse;

/// A webhook secret just set up: shown once, never again.
#[derive(SimpleObject)]
pub struct CodeHostWebhook {
    /// The path on this server to configure on the code host
    /// (`/.api/webhooks/…`).
    path: String,
    /// GitHub and Bitbucket Server sign events with it; GitLab sends it
    /// as its secret token.
    secret: String,
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Sets up (or replaces) the webhook secret of the code host at
    /// `codeHostURL` (site admins). Pull request events it sends then make
    /// batchcred sync the changeset at once.
    async fn set_up_code_host_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "codeHostURL")] code_host_url: String,
    ) -> async_graphql::Result<CodeHostWebhook> {
        let (service, caller) = context_parts(ctx)?;
        let setup = service.set_up_webhook(caller, &code_host_url).await.gql()?;
        Ok(CodeHostWebhook {
            path: setup.path,
            secret: setup.secret.expose_secret().to_owned(),
        })
    }

    /// Removes the webhook secret of the code host at `codeHostURL` (site
    /// admins): its webhooks are refused from then on.
    async fn remove_code_host_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "codeHostURL")] code_host_url: String,
    ) -> async_graphql::Result<EmptyResponse> {
        let (service, caller) = context_parts(ctx)?;
        service.remove_webhook(caller, &code_host_url).await.gql()?;
        Ok(EmptyResponse::default())
    }
}
