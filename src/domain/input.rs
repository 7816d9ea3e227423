//! User-supplied strings: usernames, passwords and code host tokens.

use secrecy::{ExposeSecret, SecretString};

use super::InvalidInput;

/// A login name: 1–64 characters of letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit, so it is safe in URLs and log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let valid_chars = raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        let starts_well = raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if raw.is_empty() || raw.len() > 64 || !valid_chars || !starts_well {
            return Err(InvalidInput::new(
                "username must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An account password, held as a secret from the moment it is parsed.
#[derive(Debug)]
pub struct Password(SecretString);

impl Password {
    pub const MIN_LEN: usize = 8;
    /// Argon2 cost is independent of length, but a cap keeps requests small.
    pub const MAX_LEN: usize = 256;

    pub fn parse(raw: SecretString) -> Result<Self, InvalidInput> {
        let len = raw.expose_secret().chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(InvalidInput::new(format!(
                "password must be {}-{} characters long",
                Self::MIN_LEN,
                Self::MAX_LEN
            )));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A code host access token (personal access token, HTTP access token).
///
/// Surrounding whitespace is dropped because tokens are pasted; anything
/// else that cannot appear in an HTTP header is refused. Error messages
/// describe the problem without echoing the token.
pub struct Token(SecretString);

impl Token {
    /// Longer than any real code host token (GitHub fine-grained tokens are
    /// ~93 characters), short enough to keep junk out of the store.
    pub const MAX_LEN: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InvalidInput::new("the token is empty"));
        }
        if trimmed.len() > Self::MAX_LEN {
            return Err(InvalidInput::new(format!(
                "the token is longer than {} characters; paste only the token",
                Self::MAX_LEN
            )));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidInput::new(
                "the token contains whitespace or control characters; paste only the token",
            ));
        }
        if !trimmed.is_ascii() {
            return Err(InvalidInput::new("the token contains non-ASCII characters"));
        }
        Ok(Self(SecretString::from(trimmed.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_restricted_to_a_safe_alphabet() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("a.b_c-1").is_ok());
        for bad in ["", "-alice", "al ice", "al/ice", "ä", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tokens_are_trimmed_and_checked_without_echoing_them() {
        assert_eq!(
            Token::parse("  ghp_abc\n").map(|t| t.expose().to_owned()),
            Ok("ghp_abc".into())
        );
        let err = Token::parse("ghp secret")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            err.contains("whitespace") && !err.contains("secret"),
            "{err}"
        );
        assert!(Token::parse("   ").is_err());
        assert!(Token::parse(&"x".repeat(Token::MAX_LEN + 1)).is_err());
        assert!(Token::parse("tok\u{0}en").is_err());
        assert_eq!(
            format!("{:?}", Token::parse("ghp_abc")),
            "Ok(Token([REDACTED]))"
        );
    }

    #[test]
    fn passwords_have_length_bounds() {
        assert!(Password::parse(SecretString::from("short")).is_err());
        assert!(Password::parse(SecretString::from("long enough")).is_ok());
    }
}
