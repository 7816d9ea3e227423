//! Handing the HTTPS token to git without it touching argv, the
//! environment or the disk.
//!
//! git asks a credential helper; ours is a shell one-liner that, for `get`,
//! prints what it reads from a named pipe (FIFO) in the push's private
//! directory. A task in this process writes `username=…\npassword=…` into the
//! pipe whenever a helper opens it. A FIFO never stores data on disk, and the
//! helper's command line only names the pipe.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{CWD, Mode, mkfifoat};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;

use super::PushError;
use super::command::shell_quote;

/// How often the writer checks whether a helper is waiting on the pipe.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The longest a helper waits for batchcred to answer on the pipe; while
/// batchcred runs it answers within [`POLL_INTERVAL`].
const READER_TIMEOUT: Duration = Duration::from_secs(30);

/// A pipe serving one credential for as long as it lives. Dropping it stops
/// the writer, so a git that never asked leaves nothing waiting.
pub(super) struct CredentialPipe {
    path: PathBuf,
    /// `scheme://host[:port]` of the remote: the only place git may send
    /// the token to, even if a redirect or a repository's `insteadOf`
    /// points it elsewhere.
    scope: String,
    writer: JoinHandle<()>,
}

impl CredentialPipe {
    /// Creates the pipe in `directory` (which must be private, 0700) and
    /// starts serving `username` and `token` on it, for `scope` only.
    pub fn serve(
        directory: &Path,
        scope: String,
        username: &str,
        token: &SecretString,
    ) -> Result<Self, PushError> {
        let path = directory.join("credential.fifo");
        mkfifoat(CWD, &path, Mode::RUSR | Mode::WUSR).map_err(|error| {
            PushError::Other(format!("could not create the credential pipe: {error}"))
        })?;
        let answer = SecretString::from(format!(
            "username={username}\npassword={}\n",
            token.expose_secret()
        ));
        let writer = tokio::spawn(write_forever(path.clone(), answer));
        Ok(Self {
            path,
            scope,
            writer,
        })
    }

    /// The configuration entry installing the helper for the remote's
    /// origin only (`credential.<scope>.helper`), and its value: a shell
    /// function git calls with the action as `$1`. It drains git's request
    /// and, for `get` only, answers with what the pipe yields; `store` and
    /// `erase` are ignored.
    pub fn helper(&self) -> (String, String) {
        let key = format!("credential.{}.helper", self.scope);
        (key, helper_script(&self.path, READER_TIMEOUT))
    }
}

/// The helper's shell function. Its reader gives up after `timeout`:
/// opening a FIFO blocks until a writer opens it, and should batchcred be
/// gone the reader would otherwise wait forever, and git with it. The
/// process group (see `group`) kills it sooner; this bound holds even if
/// that fails. `--foreground` keeps `timeout` in git's process group,
/// where the group kill reaches it.
fn helper_script(path: &Path, timeout: Duration) -> String {
    format!(
        "!f() {{ cat >/dev/null; if [ \"$1\" = get ]; then exec timeout --foreground {} cat {}; fi; }}; f",
        timeout.as_secs().max(1),
        shell_quote(&path.to_string_lossy())
    )
}

impl Drop for CredentialPipe {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

/// Answers every reader of the FIFO at `path` with `answer`, until aborted.
async fn write_forever(path: PathBuf, answer: SecretString) {
    loop {
        // Opening the write end without blocking fails until a reader (the
        // helper's `cat`) has the pipe open; poll rather than block a thread
        // that could then never be cancelled.
        match pipe::OpenOptions::new().open_sender(&path) {
            Ok(mut sender) => {
                // A reader that went away makes this fail; the next one
                // gets a fresh copy.
                let _ = sender.write_all(answer.expose_secret().as_bytes()).await;
                // Closing gives the reader its end of file.
                drop(sender);
                // Let this reader finish before offering the next copy.
                tokio::time::sleep(POLL_INTERVAL * 5).await;
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn helper_answers_get_from_the_pipe_and_ignores_other_actions() {
        let directory = tempfile::tempdir().unwrap();
        let pipe = CredentialPipe::serve(
            directory.path(),
            "https://github.com".to_owned(),
            "x-access-token",
            &SecretString::from("t0ken"),
        )
        .unwrap();
        // Run the helper as git would: the value minus `!`, plus the action.
        let (key, script) = pipe.helper();
        assert_eq!(key, "credential.https://github.com.helper");
        let run = |action: &str| {
            let child = tokio::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("{} {action}", &script[1..]))
                .stdin(std::process::Stdio::null())
                .output();
            async move { child.await.unwrap() }
        };
        let get = run("get").await;
        assert!(get.status.success());
        assert_eq!(get.stdout, b"username=x-access-token\npassword=t0ken\n");
        let erase = run("erase").await;
        assert!(erase.status.success());
        assert!(erase.stdout.is_empty());
        // A second request is answered too (fetch, then push).
        assert_eq!(
            run("get").await.stdout,
            b"username=x-access-token\npassword=t0ken\n"
        );
        // Nothing but the FIFO was created, and it holds no data.
        let metadata = std::fs::metadata(directory.path().join("credential.fifo")).unwrap();
        assert_eq!(metadata.len(), 0);
        drop(pipe);
    }

    #[tokio::test]
    async fn the_helper_gives_up_when_nobody_answers() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("credential.fifo");
        mkfifoat(CWD, &path, Mode::RUSR | Mode::WUSR).unwrap();
        // No writer, as when batchcred was killed: the reader must not wait
        // forever (this test would hang) and must print no credential.
        let script = helper_script(&path, Duration::from_secs(1));
        let get = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{} get", &script[1..]))
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(!get.status.success());
        assert!(get.stdout.is_empty());
    }
}
