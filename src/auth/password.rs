//! Password hashing with Argon2id (the crate's defaults: 19 MiB, 2 passes).
//! Both functions are CPU-heavy and run on the blocking pool.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};

/// A valid hash of a password nobody knows, verified against when a
/// username does not exist so the response time does not reveal that.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$\
    gZiV/M1gPc22ElAH/Jh1Hw$CWOrkoo7oJBQ/iyh7uJ0LO2aLEfrHwTWllSAxT0zRno";

/// Hashes a password into a PHC string with a random salt.
pub async fn hash_password(password: SecretString) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| format!("password hashing failed: {e}"))
    })
    .await
    .map_err(|e| format!("password hashing task failed: {e}"))?
}

/// Checks a password against a stored hash, or against a dummy hash when
/// `stored` is `None`, so both cases take the same time. Returns whether it
/// matched. `slot` (a permit bounding concurrent checks) is held by the
/// hashing thread until the hash is done: dropping the request's future
/// must not free the slot while Argon2 still holds its memory.
pub async fn verify_password<S: Send + 'static>(
    password: SecretString,
    stored: Option<String>,
    slot: S,
) -> bool {
    let known_user = stored.is_some();
    let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
    let matched = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false);
    matched && known_user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() -> Result<(), String> {
        let hash = hash_password(SecretString::from("correct horse")).await?;
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(SecretString::from("correct horse"), Some(hash.clone()), ()).await);
        assert!(!verify_password(SecretString::from("wrong horse"), Some(hash), ()).await);
        Ok(())
    }

    #[tokio::test]
    async fn unknown_users_never_verify_but_take_the_same_path() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify_password(SecretString::from("anything"), None, ()).await);
    }
}
