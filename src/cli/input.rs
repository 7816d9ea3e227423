//! Reading secrets: hidden prompt on a terminal, one line from stdin
//! otherwise (for scripts). Secrets are never taken from arguments, which
//! other users can see in the process list.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use secrecy::SecretString;

/// Reads a secret, asking with `prompt` on a terminal; with `confirm`, the
/// terminal user types it twice.
pub fn read_secret(prompt: &str, confirm: bool) -> Result<SecretString> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password(prompt).context("reading from the terminal")?;
        if confirm {
            let second =
                rpassword::prompt_password("Again: ").context("reading from the terminal")?;
            if first != second {
                bail!("the two entries differ");
            }
        }
        return Ok(SecretString::from(first));
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading from standard input")?;
    let value = line.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        bail!("nothing was given on standard input");
    }
    Ok(SecretString::from(value))
}
