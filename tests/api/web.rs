//! The web pages: CSRF checks on every form, 404 on site admin pages for
//! other users, and no secret in any page.

use reqwest::StatusCode;
use reqwest::redirect::Policy;

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app, unique_token};

/// A browser: a cookie jar, no automatic redirects.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .unwrap();
        Self { app, client }
    }

    /// A browser signed in as `username`.
    pub(crate) async fn signed_in(app: &'a TestApp, username: &str) -> Self {
        let browser = Self::new(app);
        browser.sign_in(username).await;
        browser
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self.client.get(self.app.url(path)).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// The CSRF token of the first form on a page.
    pub(crate) async fn csrf(&self, path: &str) -> String {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let start = body.find("name=\"csrf\" value=\"").expect("a form") + 19;
        body[start..].split('"').next().unwrap().to_owned()
    }

    pub(crate) async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let response = self
            .client
            .post(self.app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    pub(crate) async fn post_owned(
        &self,
        path: &str,
        fields: &[(String, String)],
    ) -> (StatusCode, String) {
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.post(path, &fields).await
    }

    /// A GraphQL request with this browser's session cookie.
    pub(crate) async fn graphql(
        &self,
        query: &str,
        variables: serde_json::Value,
    ) -> serde_json::Value {
        self.client
            .post(self.app.url("/.api/graphql"))
            .header("X-Requested-With", "batchcred")
            .json(&serde_json::json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) async fn sign_in(&self, username: &str) {
        let csrf = self.csrf("/sign-in").await;
        let (status, body) = self
            .post(
                "/sign-in",
                &[
                    ("csrf", &csrf),
                    ("username", username),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    }
}

const SETTINGS: &str = "/user/settings/batch-changes";

#[tokio::test]
async fn every_form_needs_the_csrf_token_of_its_session() {
    let app = spawn_app(Backend::Sqlite).await;
    app.init_site_admin("alice").await;
    let alice = Browser::new(&app);
    alice.sign_in("alice").await;

    // Signing in itself needs the token of the browser's pre-session cookie.
    let anonymous = Browser::new(&app);
    let (status, _) = anonymous
        .post("/sign-in", &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let github = app.codehosts.url("github");
    let add_host = |csrf: &'static str| {
        vec![
            ("csrf", csrf),
            ("kind", "GITHUB"),
            ("url", github.as_str()),
            ("git_url_type", "http"),
        ]
    };
    for csrf in ["", "wrong"] {
        let (status, _) = alice.post("/site-admin/code-hosts", &add_host(csrf)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = alice
        .post("/site-admin/code-hosts", &add_host("")[1..])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, page) = alice.get("/site-admin/code-hosts").await;
    assert!(!page.contains(&format!("{github}</td>")), "nothing added");

    // Another session's token is refused too.
    let other = Browser::new(&app);
    other.sign_in("alice").await;
    let foreign = other.csrf(SETTINGS).await;
    let mut fields = add_host("");
    fields[0].1 = &foreign;
    let (status, _) = alice.post("/site-admin/code-hosts", &fields).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let csrf = alice.csrf("/site-admin/code-hosts").await;
    fields[0].1 = &csrf;
    let (status, _) = alice.post("/site-admin/code-hosts", &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let token = unique_token("ghp_");
    let credential = |csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("kind".to_owned(), "GITHUB".to_owned()),
            ("url".to_owned(), github.clone()),
            ("token".to_owned(), token.clone()),
        ]
    };
    for bad in ["", "wrong", foreign.as_str()] {
        let (status, body) = alice
            .post_owned("/user/settings/batch-changes/credentials", &credential(bad))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(!body.contains(&token));
    }
    assert_eq!(app.count_credentials().await, 0);

    let (status, _) = alice
        .post_owned(
            "/user/settings/batch-changes/credentials",
            &credential(&csrf),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(app.count_credentials().await, 1);

    // Removing needs it as well.
    let (_, page) = alice.get(SETTINGS).await;
    let start = page.find("?remove=").expect("a remove link") + 8;
    let id = page[start..].split('"').next().unwrap().to_owned();
    let delete = format!("/user/settings/batch-changes/credentials/{id}/delete");
    let (status, _) = alice.post(&delete, &[("csrf", "wrong")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.count_credentials().await, 1);
    let (status, _) = alice.post(&delete, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(app.count_credentials().await, 0);

    // Sign-out without the token leaves the session alone.
    let (status, _) = alice.post("/sign-out", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(alice.get(SETTINGS).await.0, StatusCode::OK);
    let (status, _) = alice.post("/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(alice.get(SETTINGS).await.0, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn site_admin_pages_are_not_found_for_other_users() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.init_site_admin("alice").await;
    app.add_code_host(&admin, "GITHUB", "https://github.com", "HTTP")
        .await;
    app.create_user(&admin, "bob").await;
    let bob = Browser::new(&app);
    bob.sign_in("bob").await;
    for page in [
        "/site-admin/batch-changes",
        "/site-admin/code-hosts",
        "/site-admin/users",
    ] {
        let (status, body) = bob.get(page).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
        assert!(!body.contains("github.com"), "{page}");
    }
    let csrf = bob.csrf(SETTINGS).await;
    let (status, _) = bob
        .post(
            "/site-admin/batch-changes/credentials",
            &[
                ("csrf", &csrf),
                ("kind", "GITHUB"),
                ("url", "https://github.com"),
                ("token", "ghp_global"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = bob
        .post(
            "/site-admin/users",
            &[
                ("csrf", &csrf),
                ("username", "mallory"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.count_credentials().await, 0);

    // Anonymous visitors are sent to sign in.
    let (status, _) = Browser::new(&app).get("/site-admin/users").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn no_page_ever_shows_a_secret() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.init_site_admin("alice").await;
    let github = app.codehosts.url("github");
    let gitlab = app.codehosts.url("gitlab");
    app.add_code_host(&admin, "GITHUB", &github, "HTTP").await;
    app.add_code_host(&admin, "GITLAB", &gitlab, "SSH").await;
    app.create_user(&admin, "bob").await;
    let alice = Browser::new(&app);
    alice.sign_in("alice").await;
    let bob = Browser::new(&app);
    bob.sign_in("bob").await;

    let user_token = unique_token("glpat-");
    let global_token = unique_token("ghp_");
    let rejected_token = format!("{} tail", unique_token("ghp_"));
    let csrf = bob.csrf(SETTINGS).await;
    let add = |url: &str, kind: &'static str, token: &str| {
        vec![
            ("csrf".to_owned(), csrf.clone()),
            ("kind".to_owned(), kind.to_owned()),
            ("url".to_owned(), url.to_owned()),
            ("token".to_owned(), token.to_owned()),
        ]
    };
    let mut pages = Vec::new();
    let (status, body) = bob
        .post_owned(
            "/user/settings/batch-changes/credentials",
            &add(&github, "GITHUB", &rejected_token),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    pages.push(body);
    let (status, _) = bob
        .post_owned(
            "/user/settings/batch-changes/credentials",
            &add(&gitlab, "GITLAB", &user_token),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let admin_csrf = alice.csrf("/site-admin/batch-changes").await;
    let mut fields = add(&github, "GITHUB", &global_token);
    fields[0].1 = admin_csrf;
    let (status, _) = alice
        .post_owned("/site-admin/batch-changes/credentials", &fields)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let (_, settings) = bob.get(SETTINGS).await;
    assert!(settings.contains("A global token is configured"));
    let start = settings.find("?key=").expect("a key link") + 5;
    let id = settings[start..].split('"').next().unwrap().to_owned();
    for path in [
        SETTINGS.to_owned(),
        format!("{SETTINGS}?key={id}"),
        format!("{SETTINGS}?remove={id}"),
    ] {
        let (status, body) = bob.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        pages.push(body);
    }
    assert!(pages[2].contains("ssh-ed25519 "), "the public key is shown");
    for path in [
        "/site-admin/batch-changes",
        "/site-admin/code-hosts",
        "/site-admin/users",
        "/user/settings/batch-changes",
    ] {
        let (status, body) = alice.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        pages.push(body);
    }
    for page in &pages {
        for secret in [
            user_token.as_str(),
            global_token.as_str(),
            rejected_token.as_str(),
            PASSWORD,
            "PRIVATE KEY",
            "bcs_",
        ] {
            assert!(!page.contains(secret), "a page shows {secret:?}");
        }
    }
}
