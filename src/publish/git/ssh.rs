//! Pushing over SSH with a key that never touches the disk: a private
//! `ssh-agent` per push holds it, and ssh trusts only the host key recorded
//! for the code host.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio::process::Child;

use super::PushError;
use super::command::{hardened_command, run_captured, shell_quote};
use super::group::ProcessGroup;

/// How long ssh-agent may take to create its socket.
const AGENT_START_TIMEOUT: Duration = Duration::from_secs(10);

/// The recorded known_hosts entries, or `None` when there are none (only
/// blank lines and comments), in which case pushing must not start.
pub(super) fn recorded_host_keys(known_hosts: &str) -> Option<String> {
    let lines: Vec<&str> = known_hosts
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n") + "\n")
}

/// A running private agent holding one key, listening on a socket in a
/// private (0700) directory. Killed on drop; call [`KeyAgent::stop`] to
/// also wait for it to exit.
pub(super) struct KeyAgent {
    agent: Child,
    /// The agent's process group, killed when batchcred drops it or dies.
    group: ProcessGroup,
    socket: PathBuf,
}

impl KeyAgent {
    /// Starts an agent listening in `directory` (private, 0700) and loads
    /// `private_key` into it through stdin: the key is never in a file, an
    /// argument or an environment variable.
    pub async fn start(directory: &Path, private_key: &SecretString) -> Result<Self, PushError> {
        let socket = directory.join("agent.sock");
        let mut command = hardened_command("ssh-agent", directory);
        command
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let could_not_run =
            |error: std::io::Error| PushError::Other(format!("could not run ssh-agent: {error}"));
        // The agent dies with batchcred too (see `group`).
        let group = ProcessGroup::start().map_err(could_not_run)?;
        let agent = group.spawn(&mut command).map_err(could_not_run)?;
        let mut this = Self {
            agent,
            group,
            socket,
        };
        let ready = match this.wait_for_socket().await {
            Ok(()) => this.add_key(directory, private_key).await,
            Err(error) => Err(error),
        };
        match ready {
            Ok(()) => Ok(this),
            Err(error) => {
                // Reap the agent now rather than leave it to the runtime.
                this.stop().await;
                Err(error)
            }
        }
    }

    /// The agent's socket, for `SSH_AUTH_SOCK` or `IdentityAgent`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn wait_for_socket(&mut self) -> Result<(), PushError> {
        let started = Instant::now();
        while !self.socket.exists() {
            if let Ok(Some(status)) = self.agent.try_wait() {
                return Err(PushError::Other(format!(
                    "ssh-agent exited at start ({status})"
                )));
            }
            if started.elapsed() > AGENT_START_TIMEOUT {
                return Err(PushError::Other("ssh-agent did not start".to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    async fn add_key(&self, directory: &Path, private_key: &SecretString) -> Result<(), PushError> {
        let mut command = hardened_command("ssh-add", directory);
        command
            .arg("-q")
            .arg("-")
            .env("SSH_AUTH_SOCK", &self.socket);
        let key = private_key.expose_secret();
        // ssh-add rejects a key without its final newline.
        let input = if key.ends_with('\n') {
            zeroize::Zeroizing::new(key.as_bytes().to_vec())
        } else {
            zeroize::Zeroizing::new(format!("{key}\n").into_bytes())
        };
        let finished = run_captured(command, Some(&input)).await?;
        if finished.success {
            Ok(())
        } else {
            Err(PushError::InvalidRequest(format!(
                "the SSH private key could not be loaded: {}",
                finished.stderr.trim()
            )))
        }
    }

    /// Kills the agent and waits for it, so no process outlives the push.
    pub async fn stop(mut self) {
        let _ = self.agent.kill().await;
        self.group.close().await;
    }
}

/// A private agent holding the push key, and the files ssh needs: the
/// public key (so ssh offers only that key) and the recorded host keys.
pub(super) struct SshAgent {
    agent: KeyAgent,
    public_key_file: PathBuf,
    known_hosts_file: PathBuf,
}

impl SshAgent {
    /// Starts an agent listening in `directory` (private, 0700), loads
    /// `private_key` into it through stdin, and writes the public key and
    /// the recorded host keys next to it.
    pub async fn start(
        directory: &Path,
        private_key: &SecretString,
        public_key: &str,
        known_hosts: &str,
    ) -> Result<Self, PushError> {
        let known_hosts = recorded_host_keys(known_hosts).ok_or(PushError::MissingKnownHosts)?;
        let write = |name: &str, contents: &str| {
            let path = directory.join(name);
            std::fs::write(&path, contents)
                .map(|()| path)
                .map_err(|error| PushError::Other(format!("could not write {name}: {error}")))
        };
        // ssh picks the agent's key matching this public key.
        let public_key_file = write("identity.pub", &format!("{}\n", public_key.trim()))?;
        let known_hosts_file = write("known_hosts", &known_hosts)?;
        let agent = KeyAgent::start(directory, private_key).await?;
        Ok(Self {
            agent,
            public_key_file,
            known_hosts_file,
        })
    }

    /// The `GIT_SSH_COMMAND` using only this agent's key and the recorded
    /// host keys, ignoring every user and system ssh configuration.
    pub fn ssh_command(&self) -> String {
        let path = |path: &Path| shell_quote(&path.to_string_lossy());
        format!(
            "ssh -F /dev/null -o IdentitiesOnly=yes -o IdentityFile={} -o IdentityAgent={} \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} \
             -o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no -o BatchMode=yes \
             -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4",
            path(&self.public_key_file),
            path(self.agent.socket()),
            path(&self.known_hosts_file),
        )
    }

    /// Kills the agent and waits for it, so no process outlives the push.
    pub async fn stop(self) {
        self.agent.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_without_entries_are_refused() {
        assert_eq!(recorded_host_keys(""), None);
        assert_eq!(recorded_host_keys("  \n# comment\n"), None);
        assert_eq!(
            recorded_host_keys("# github\ngithub.com ssh-ed25519 AAAA\n\n").as_deref(),
            Some("github.com ssh-ed25519 AAAA\n")
        );
    }
}
