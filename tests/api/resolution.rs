//! Which credential publishes for a user: their own, else the global one,
//! else a clear error. Exercised through the service the server runs.

use batchcred::auth::Caller;
use batchcred::domain::CodeHostUrl;
use batchcred::service::{CreateCredential, CredentialSource};
use secrecy::ExposeSecret;

use crate::both_backends;
use crate::helpers::{Backend, spawn_app};

both_backends!(own_credential_then_global_then_a_clear_error);

async fn own_credential_then_global_then_a_clear_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.init_site_admin("admin").await;
    app.create_user(&admin, "alice").await;
    app.create_user(&admin, "bob").await;
    let url = app.codehosts.url("github");
    app.add_code_host(&admin, "GITHUB", &url, "HTTP").await;
    let host = CodeHostUrl::parse(&url).unwrap();
    let service = &app.service;
    let operator = Caller::Operator;
    let alice = service.user_by_username(&operator, "alice").await.unwrap();
    let bob = service.user_by_username(&operator, "bob").await.unwrap();
    let as_alice = Caller::User(alice.clone());

    // Neither: the error says what to do.
    let error = service
        .resolve_credential(&as_alice, alice.id, &host, "acme/api")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "no credential for GitHub {url}: add a token in Settings → Batch Changes, \
             or ask a site admin to add a global one"
        )
    );

    let create = |user, token: &str| CreateCredential {
        user,
        kind: batchcred::domain::CodeHostKind::GitHub,
        url: url.clone(),
        username: None,
        token: token.into(),
        repository: None,
    };
    let global = service
        .create_credential(&operator, create(None, "ghp_global"))
        .await
        .unwrap();

    // Only the global one: it is used, and says so.
    let resolved = service
        .resolve_credential(&as_alice, alice.id, &host, "acme/api")
        .await
        .unwrap();
    assert_eq!(resolved.source, CredentialSource::Site);
    assert_eq!(resolved.credential_id, global.id);
    assert_eq!(resolved.secret.token.expose_secret(), "ghp_global");

    // Her own takes precedence; Bob still gets the global one.
    let own = service
        .create_credential(&as_alice, create(Some(alice.id), "ghp_alice"))
        .await
        .unwrap();
    let resolved = service
        .resolve_credential(&as_alice, alice.id, &host, "acme/api")
        .await
        .unwrap();
    assert_eq!(resolved.source, CredentialSource::User);
    assert_eq!(resolved.credential_id, own.id);
    assert_eq!(resolved.secret.token.expose_secret(), "ghp_alice");
    let for_bob = service
        .resolve_credential(&operator, bob.id, &host, "acme/api")
        .await
        .unwrap();
    assert_eq!(for_bob.source, CredentialSource::Site);
    // The secret never shows in debug output.
    assert!(!format!("{resolved:?}").contains("ghp_alice"));

    // Alice may not resolve Bob's credentials; the answer hides him.
    let error = service
        .resolve_credential(&as_alice, bob.id, &host, "acme/api")
        .await
        .unwrap_err();
    assert!(
        matches!(error, batchcred::service::Error::NotFound(_)),
        "{error}"
    );

    // Unknown code host.
    let elsewhere = CodeHostUrl::parse("https://nowhere.example.com").unwrap();
    let error = service
        .resolve_credential(&as_alice, alice.id, &elsewhere, "acme/api")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no code host is configured at https://nowhere.example.com")
    );
}
