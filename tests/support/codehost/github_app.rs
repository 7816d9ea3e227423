//! GitHub Apps in the emulator: `/app` and `/app/installations` answer
//! only a JWT whose RS256 signature verifies with a registered App's public
//! key and whose claims GitHub would accept (`iss` the App id, issued in
//! the past, expiring at most ten minutes later, not expired);
//! `/app/installations/{id}/access_tokens` mints installation tokens that
//! then work as GitHub tokens (with an expiry); `/app-manifests/{code}/
//! conversions` turns a one-time code into a new App.

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::LineEnding;
use serde_json::{Value, json};

use super::{EmulatedToken, GITHUB_SCOPES, Shared, json_response};

/// An RSA keypair for a test App, PEM (PKCS#1, as GitHub hands them out).
#[derive(Clone)]
pub struct AppKey {
    pub private_pem: String,
    pub public_pem: String,
}

/// Generates an RSA-2048 key (cached: the first two calls make two
/// different keys, later ones reuse them, as key generation is slow).
pub fn test_key(index: usize) -> AppKey {
    static KEYS: OnceLock<Vec<AppKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        (0..3)
            .map(|_| {
                let mut rng = rand_core_os();
                let private = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa key");
                AppKey {
                    private_pem: private
                        .to_pkcs1_pem(LineEnding::LF)
                        .expect("pem")
                        .to_string(),
                    public_pem: private
                        .to_public_key()
                        .to_pkcs1_pem(LineEnding::LF)
                        .expect("public pem"),
                }
            })
            .collect()
    });
    keys[index % keys.len()].clone()
}

fn rand_core_os() -> rsa::rand_core::OsRng {
    rsa::rand_core::OsRng
}

/// One installation of an emulated App.
#[derive(Debug, Clone)]
pub struct EmulatedInstallation {
    pub id: u64,
    pub account: String,
    pub permissions: Vec<(String, String)>,
}

impl EmulatedInstallation {
    /// An installation with every permission batchcred asks for.
    pub fn new(id: u64, account: &str) -> Self {
        Self {
            id,
            account: account.to_owned(),
            permissions: [
                ("contents", "write"),
                ("pull_requests", "write"),
                ("metadata", "read"),
                ("workflows", "write"),
            ]
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect(),
        }
    }

    pub fn without(mut self, permission: &str) -> Self {
        self.permissions.retain(|(name, _)| name != permission);
        self
    }
}

/// An App registered with the emulator.
#[derive(Debug, Clone)]
pub struct EmulatedApp {
    pub id: u64,
    pub slug: String,
    pub name: String,
    pub public_pem: String,
    pub installations: Vec<EmulatedInstallation>,
    /// How long minted installation tokens live.
    pub token_lifetime: chrono::Duration,
}

impl EmulatedApp {
    pub fn new(id: u64, slug: &str, key: &AppKey) -> Self {
        Self {
            id,
            slug: slug.to_owned(),
            name: format!("{slug} app"),
            public_pem: key.public_pem.clone(),
            installations: vec![],
            token_lifetime: chrono::Duration::hours(1),
        }
    }

    pub fn installed(mut self, installation: EmulatedInstallation) -> Self {
        self.installations.push(installation);
        self
    }
}

/// An App the manifest flow will create when its code is converted.
#[derive(Debug, Clone)]
pub struct ManifestApp {
    pub app: EmulatedApp,
    pub private_pem: String,
}

/// A minted installation token, as the emulator handed it out.
#[derive(Debug, Clone)]
pub struct Mint {
    pub installation: u64,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// The GitHub App state of the emulator.
#[derive(Default)]
pub(super) struct AppState {
    apps: HashMap<u64, EmulatedApp>,
    manifest_codes: HashMap<String, ManifestApp>,
    pub(super) mints: Vec<Mint>,
    /// Tokens to hand out next, in order (else generated ones).
    next_tokens: VecDeque<String>,
    /// Why JWTs were refused, in order.
    pub(super) jwt_refusals: Vec<String>,
    counter: u64,
}

impl super::Emulator {
    pub fn add_app(&self, app: EmulatedApp) {
        self.lock().apps.apps.insert(app.id, app);
    }

    /// Changes a registered App (uninstall it somewhere, shorten tokens…).
    pub fn update_app(&self, id: u64, change: impl FnOnce(&mut EmulatedApp)) {
        change(self.lock().apps.apps.get_mut(&id).expect("known app"));
    }

    /// The next installation tokens minted will be these, in order.
    pub fn queue_installation_tokens(&self, tokens: &[&str]) {
        self.lock()
            .apps
            .next_tokens
            .extend(tokens.iter().map(|t| (*t).to_owned()));
    }

    /// Makes `code` convert (once) into `app`.
    pub fn add_manifest_code(&self, code: &str, app: ManifestApp) {
        self.lock().apps.manifest_codes.insert(code.to_owned(), app);
    }

    pub fn mints(&self) -> Vec<Mint> {
        self.lock().apps.mints.clone()
    }

    pub fn jwt_refusals(&self) -> Vec<String> {
        self.lock().apps.jwt_refusals.clone()
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
}

/// The App a JWT is from, once its signature and claims check out.
fn verify_jwt(state: &AppState, jwt: &str) -> Result<u64, String> {
    let mut last = "no App is registered".to_owned();
    for app in state.apps.values() {
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(app.public_pem.as_bytes())
            .map_err(|e| format!("bad public key: {e}"))?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "iss"]);
        validation.validate_exp = true;
        let data = match jsonwebtoken::decode::<Claims>(jwt, &key, &validation) {
            Ok(data) => data,
            Err(error) => {
                last = format!("signature or claims: {error}");
                continue;
            }
        };
        let claims = data.claims;
        let now = Utc::now().timestamp();
        if claims.iss != app.id.to_string() {
            // Two test Apps may share a key: the issuer decides.
            last = format!("iss {} is not App {}", claims.iss, app.id);
            continue;
        }
        if claims.iat > now {
            return Err("iat is in the future".into());
        }
        if claims.exp - claims.iat > 11 * 60 || claims.exp > now + 10 * 60 {
            return Err("exp is more than ten minutes away".into());
        }
        return Ok(app.id);
    }
    Err(last)
}

fn unauthorized(message: &str) -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
    )
}

fn installation_json(installation: &EmulatedInstallation) -> Value {
    let permissions: serde_json::Map<String, Value> = installation
        .permissions
        .iter()
        .map(|(name, level)| (name.clone(), Value::from(level.clone())))
        .collect();
    json!({
        "id": installation.id,
        "account": {"login": installation.account, "type": "Organization"},
        "permissions": permissions,
        "repository_selection": "all",
    })
}

/// Answers the App endpoints; `None` for other paths.
pub(super) fn handle(
    shared: &mut Shared,
    path: &str,
    method: &Method,
    token: &str,
) -> Option<Response> {
    if let Some(code) = path
        .strip_prefix("/app-manifests/")
        .and_then(|rest| rest.strip_suffix("/conversions"))
    {
        if method != Method::POST {
            return Some(json_response(
                StatusCode::NOT_FOUND,
                json!({"message": "Not Found"}),
            ));
        }
        let Some(created) = shared.apps.manifest_codes.remove(code) else {
            return Some(json_response(
                StatusCode::NOT_FOUND,
                json!({"message": "Not Found"}),
            ));
        };
        let app = created.app.clone();
        shared.apps.apps.insert(app.id, app.clone());
        return Some(json_response(
            StatusCode::CREATED,
            json!({
                "id": app.id, "slug": app.slug, "name": app.name,
                "client_id": format!("Iv1.{}", app.id),
                "client_secret": format!("client-secret-{}", app.id),
                "webhook_secret": format!("webhook-secret-{}", app.id),
                "pem": created.private_pem,
                "html_url": format!("https://github.example/apps/{}", app.slug),
                "owner": {"login": "acme"},
            }),
        ));
    }
    if path != "/app" && !path.starts_with("/app/") {
        return None;
    }
    let app_id = match verify_jwt(&shared.apps, token) {
        Ok(id) => id,
        Err(reason) => {
            shared.apps.jwt_refusals.push(reason);
            return Some(unauthorized("A JSON web token could not be decoded"));
        }
    };
    let app = shared.apps.apps.get(&app_id)?.clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match (method.as_str(), segments.as_slice()) {
        ("GET", ["app"]) => json_response(
            StatusCode::OK,
            json!({
                "id": app.id, "slug": app.slug, "name": app.name,
                "client_id": format!("Iv1.{}", app.id),
                "html_url": format!("https://github.example/apps/{}", app.slug),
                "owner": {"login": "acme"},
            }),
        ),
        ("GET", ["app", "installations"]) => json_response(
            StatusCode::OK,
            Value::Array(app.installations.iter().map(installation_json).collect()),
        ),
        ("POST", ["app", "installations", id, "access_tokens"]) => {
            let Some(installation) = app
                .installations
                .iter()
                .find(|i| id.parse::<u64>().ok() == Some(i.id))
            else {
                return Some(json_response(
                    StatusCode::NOT_FOUND,
                    json!({"message": "Not Found"}),
                ));
            };
            shared.apps.counter += 1;
            let minted = shared.apps.next_tokens.pop_front().unwrap_or_else(|| {
                format!("ghs_emulated{}x{}", installation.id, shared.apps.counter)
            });
            let expires_at = Utc::now() + app.token_lifetime;
            shared.tokens.insert(
                minted.clone(),
                EmulatedToken::new(&format!("{}[bot]", app.slug), GITHUB_SCOPES)
                    .expiring(expires_at),
            );
            shared.apps.mints.push(Mint {
                installation: installation.id,
                token: minted.clone(),
                expires_at,
            });
            let mut body = installation_json(installation);
            body["token"] = minted.into();
            body["expires_at"] = expires_at.to_rfc3339().into();
            json_response(StatusCode::CREATED, body)
        }
        _ => json_response(StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
    })
}
