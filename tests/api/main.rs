//! Integration tests: each starts the real server on a random loopback
//! port, against SQLite or its own PostgreSQL database.

// This whole crate is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod audit;
mod authorization;
mod azure_devops;
mod bitbucket_cloud;
mod changeset_lifecycle;
mod changeset_queue;
mod changesets_page;
mod child_processes;
mod cli;
mod codehost_lifecycle;
mod commit_signing;
mod credentials;
mod drain;
mod expiry_warnings;
mod gerrit;
mod git_push;
mod github_app;
mod github_signed_commits;
mod global_policy;
mod helpers;
mod layers;
mod limits;
mod observability;
mod publish;
mod publish_cli;
mod publish_guard;
mod reference_client;
mod resolution;
mod rollout;
mod schema;
mod seal_binding;
mod secrets;
mod signin_limits;
#[path = "../support/mod.rs"]
mod support;
mod tokens_sessions;
mod validation;
mod web;
