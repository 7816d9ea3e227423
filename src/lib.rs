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
pub mod store;
pub mod telemetry;
pub mod web;
