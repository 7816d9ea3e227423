//! The one place git (and the SSH helpers) are spawned: a clean, fixed
//! environment so nothing from the service's user, the machine's git
//! configuration or the repository's hooks changes what a push does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::PushError;
use super::group::ProcessGroup;

/// Upper bound for any single git command; a stalled code host must not
/// hold a publishing job forever.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// Variables inherited from the service's environment: how to find programs
/// and how to reach the network (proxies, private CAs). Everything else is
/// dropped.
const INHERITED_VARIABLES: &[&str] = &[
    "PATH",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "http_proxy",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Configuration every git command gets, passed as `GIT_CONFIG_*`
/// variables (command-line scope, so it overrides a repository's own).
const BASE_CONFIG: &[(&str, &str)] = &[
    // An empty value clears the helper list, dropping any helper that
    // system or repository configuration installed.
    ("credential.helper", ""),
    ("credential.interactive", "false"),
    ("core.askPass", ""),
    // A local repository's hooks are not ours to run.
    ("core.hooksPath", "/dev/null"),
    // Only network transports: no `file://`, `ext::` or other helpers.
    ("protocol.allow", "never"),
    ("protocol.https.allow", "always"),
    ("protocol.http.allow", "always"),
    ("protocol.ssh.allow", "always"),
    // Give up on a code host that stops sending (bytes/s for seconds).
    ("http.lowSpeedLimit", "1000"),
    ("http.lowSpeedTime", "60"),
    // Push exactly the one ref asked for.
    ("push.recurseSubmodules", "no"),
    ("submodule.recurse", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("init.defaultBranch", "main"),
    ("advice.detachedHead", "false"),
];

/// What a finished command printed.
pub(super) struct Finished {
    pub success: bool,
    pub stdout: String,
    /// `stdout` as git wrote it: file contents and `-z` path lists are
    /// bytes, which the lossy `stdout` would change.
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

/// A git invocation with the hardened environment.
pub(super) struct GitCommand {
    home: PathBuf,
    args: Vec<OsString>,
    directory: Option<PathBuf>,
    config: Vec<(String, String)>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
}

impl GitCommand {
    /// A git command whose `HOME` is `home` (the push's private directory).
    pub fn new(home: &Path) -> Self {
        Self {
            home: home.to_owned(),
            args: Vec::new(),
            directory: None,
            config: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs inside `directory` (`git -C`).
    pub fn in_directory(mut self, directory: &Path) -> Self {
        self.directory = Some(directory.to_owned());
        self
    }

    /// Adds a configuration entry after the base ones.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets an environment variable. Never use this for a secret: child
    /// environments are readable in `/proc`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Feeds `input` to the command's standard input.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Runs git to completion, capturing its output.
    pub async fn run(self) -> Result<Finished, PushError> {
        let mut command = hardened_command("git", &self.home);
        if let Some(directory) = &self.directory {
            command.arg("-C").arg(directory);
        }
        command.args(&self.args);
        let config = BASE_CONFIG
            .iter()
            .map(|(key, value)| (*key, *value))
            .chain(self.config.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut count = 0;
        for (index, (key, value)) in config.enumerate() {
            command
                .env(format!("GIT_CONFIG_KEY_{index}"), key)
                .env(format!("GIT_CONFIG_VALUE_{index}"), value);
            count = index + 1;
        }
        command
            .env("GIT_CONFIG_COUNT", count.to_string())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0");
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        run_captured(command, self.stdin.as_deref()).await
    }
}

/// A command for `program` with an empty environment apart from the
/// inherited allowlist, a private `HOME`, the C locale, and every password
/// prompt disabled.
pub(super) fn hardened_command(program: &str, home: &Path) -> Command {
    let mut command = Command::new(program);
    command.env_clear();
    for name in INHERITED_VARIABLES {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("LC_ALL", "C")
        .env("LANG", "C")
        // Empty values disable prompting programs rather than falling back
        // to defaults.
        .env("GIT_ASKPASS", "")
        .env("SSH_ASKPASS", "")
        .env("SSH_ASKPASS_REQUIRE", "never")
        .kill_on_drop(true);
    command
}

/// Runs `command` with `stdin` as input, capturing stdout and stderr, and
/// kills it if it outlives [`COMMAND_TIMEOUT`]. It runs in a process group
/// of its own, killed when it ends, so no process it started survives it.
pub(super) async fn run_captured(
    mut command: Command,
    stdin: Option<&[u8]>,
) -> Result<Finished, PushError> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let could_not_run =
        |error: std::io::Error| PushError::Other(format!("could not run {program}: {error}"));
    // Whatever the command starts (git-remote-http, credential helpers,
    // ssh) dies with it, and with batchcred: see `group`.
    let group = ProcessGroup::start().map_err(could_not_run)?;
    let mut child = group.spawn(&mut command).map_err(could_not_run)?;
    let input = child.stdin.take();
    let feed = async move {
        if let (Some(mut pipe), Some(bytes)) = (input, stdin) {
            // A command that exits without reading its input is not an
            // error here; its exit status tells.
            let _ = pipe.write_all(bytes).await;
            let _ = pipe.shutdown().await;
        }
    };
    let run = async {
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        output
    };
    let output = tokio::time::timeout(COMMAND_TIMEOUT, run).await;
    // Timed out or not, nothing the command started may go on running.
    group.close().await;
    let output = output
        .map_err(|_| {
            PushError::Unreachable(format!(
                "{program} did not finish within {} seconds",
                COMMAND_TIMEOUT.as_secs()
            ))
        })?
        .map_err(could_not_run)?;
    Ok(Finished {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stdout_bytes: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Quotes `text` for `/bin/sh`, for the command strings git hands to the
/// shell (`GIT_SSH_COMMAND`, `!` credential helpers).
pub(super) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[tokio::test]
    async fn git_sees_only_the_hardened_environment() {
        let home = tempfile::tempdir().unwrap();
        let finished = GitCommand::new(home.path())
            .in_directory(home.path())
            .args(["config", "--show-scope", "--list"])
            .run()
            .await
            .unwrap();
        assert!(finished.success, "{}", finished.stderr);
        // Only our command-line entries: no system, global or user config.
        for line in finished.stdout.lines() {
            assert!(line.starts_with("command\t"), "{line}");
        }
        assert!(finished.stdout.contains("credential.helper="));
    }
}
