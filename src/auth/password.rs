//! Password hashing with Argon2id (the crate's defaults: 19 MiB, 2 passes).
//! Both are CPU-heavy: hashing runs on the blocking pool, checks on the
//! sign-in guard's own threads.

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

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

/// Argon2's working memory (19 MiB with our parameters), kept by a
/// password check thread and reused for every check it runs: allocating
/// it per check left each freed block with the allocator (measured: RSS
/// grew by 19 MiB per check, to hundreds of MB).
#[derive(Default)]
pub struct CheckMemory(Vec<Block>);

/// The most working memory a stored hash may ask for (64 MiB); ours ask
/// for 19 MiB, so a larger one is not ours and is refused.
const MAX_CHECK_BLOCKS: usize = 64 * 1024;

/// Checks a password against a stored hash, or against a dummy hash when
/// `stored` is `None`, so both cases take the same time. Returns whether it
/// matched. CPU-heavy and blocking: sign-in runs it on the guard's own
/// threads, each with its `memory`.
pub fn password_matches(
    password: &SecretString,
    stored: Option<&str>,
    memory: &mut CheckMemory,
) -> bool {
    let hash = stored.unwrap_or(DUMMY_HASH);
    let matched = PasswordHash::new(hash)
        .ok()
        .and_then(|parsed| check_with_memory(password, &parsed, memory))
        .unwrap_or(false);
    matched && stored.is_some()
}

/// What `Argon2::verify_password` does, in memory the caller keeps.
fn check_with_memory(
    password: &SecretString,
    parsed: &PasswordHash,
    memory: &mut CheckMemory,
) -> Option<bool> {
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Some(false);
    };
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(parsed).ok()?;
    let blocks = params.block_count();
    if blocks > MAX_CHECK_BLOCKS {
        return None;
    }
    memory.0.resize(blocks, Block::default());
    let mut computed = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(
            password.expose_secret().as_bytes(),
            salt.as_ref(),
            &mut computed,
            memory.0.as_mut_slice(),
        )
        .ok()?;
    Some(bool::from(expected.as_bytes().ct_eq(&computed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() -> Result<(), String> {
        let hash = hash_password(SecretString::from("correct horse")).await?;
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        let mut memory = CheckMemory::default();
        let right = SecretString::from("correct horse");
        assert!(password_matches(&right, Some(&hash), &mut memory));
        let wrong = SecretString::from("wrong horse");
        assert!(!password_matches(&wrong, Some(&hash), &mut memory));
        // Reused memory gives the same answers.
        assert!(password_matches(&right, Some(&hash), &mut memory));
        // The crate's own check agrees (our hash is standard PHC).
        let parsed = PasswordHash::new(&hash).map_err(|e| e.to_string())?;
        assert!(
            argon2::password_hash::PasswordVerifier::verify_password(
                &Argon2::default(),
                b"correct horse",
                &parsed
            )
            .is_ok()
        );
        Ok(())
    }

    #[test]
    fn unknown_users_never_verify_but_take_the_same_path() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        let mut memory = CheckMemory::default();
        assert!(!password_matches(
            &SecretString::from("anything"),
            None,
            &mut memory
        ));
        // The dummy hash is really checked, not skipped.
        assert_eq!(memory.0.len(), 19456);
    }
}
