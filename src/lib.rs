//! batchcred: the credentials service behind batch changes.
//!
//! Users (and, for everyone, site admins) store code host credentials —
//! personal access tokens and generated SSH keys — which are encrypted at
//! rest and used to publish changesets on their behalf.
//!
//! Layers, outermost first: [`http`] (routes, sessions) and [`api`]
//! (GraphQL) and [`web`] (pages) call the [`service`], which decides authorization through
//! [`auth`] and persists through [`store`], with secrets sealed by
//! [`crypto`]. [`domain`] holds the validated input types.

pub mod api;
pub mod app;
pub mod auth;
pub mod codehost;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod notify;
pub mod publish;
pub mod service;
// Only the service reaches the store: everything else goes through it,
// and it decides authorization. The tests may look inside.
#[cfg(feature = "test-support")]
pub mod store;
#[cfg(not(feature = "test-support"))]
pub(crate) mod store;
pub mod telemetry;
pub mod web;
