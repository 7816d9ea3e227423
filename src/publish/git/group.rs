//! Every process a push starts dies with batchcred, however batchcred ends.
//!
//! A `batchcred publish` killed with SIGKILL once left `git push`, its
//! `git-remote-http` and the credential helper's reader blocked on the
//! credential pipe for good. The parent-death signal
//! (`prctl(PR_SET_PDEATHSIG)`, or `setpriv --pdeathsig`) does not fix that:
//! it has to be set between fork and exec (`pre_exec`, unsafe code, which
//! this crate forbids); Linux sends it when the *thread* that forked exits,
//! and tokio retires idle threads, which would kill healthy commands; and
//! it reaches only the direct child, not git's own children, which are the
//! ones that hung.
//!
//! So each command runs in a process group of its own, led by a guardian:
//! a `/bin/sh` that only waits to read from a pipe whose write end nothing
//! but batchcred holds (std opens pipes close-on-exec, so no child inherits
//! it). Whatever ends batchcred (return, panic, SIGKILL, the OOM killer),
//! the kernel closes that end; the guardian reads end of file and kills its
//! whole group: itself, the command and every descendant, since children
//! stay in their parent's group (git, its helpers and ssh never leave it).
//! Dropping or closing a [`ProcessGroup`] closes the pipe the same way, so
//! nothing a command started outlives the command either. The guardian
//! lives as long as the group has members and its id is the group's, so
//! that id cannot meanwhile be handed to an unrelated group.

use std::io;
use std::process::Stdio;

use tokio::process::{Child, ChildStdin, Command};

/// Shell builtins only, so the guardian is one process: wait for end of
/// file on stdin (nothing is ever written), then kill the process group.
const GUARDIAN_SCRIPT: &str = "read -r _; kill -s KILL 0";

/// A process group that is killed, members and all, when batchcred drops
/// it or dies.
pub(super) struct ProcessGroup {
    guardian: Child,
    /// The write end of the guardian's stdin: closing it fires the guardian.
    lifeline: Option<ChildStdin>,
    /// The guardian's process id, which is the group's id.
    id: i32,
}

impl ProcessGroup {
    /// Starts the guardian of a new, empty group.
    pub fn start() -> io::Result<Self> {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(GUARDIAN_SCRIPT)
            .arg("batchcred-process-group")
            .env_clear()
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut guardian = command.spawn()?;
        let id = guardian
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| io::Error::other("the process group guardian exited at once"))?;
        let lifeline = guardian.stdin.take();
        Ok(Self {
            guardian,
            lifeline,
            id,
        })
    }

    /// Spawns `command` as a member of this group.
    pub fn spawn(&self, command: &mut Command) -> io::Result<Child> {
        command.process_group(self.id).spawn()
    }

    /// Kills every process still in the group and waits for the guardian,
    /// so that nothing is left running, nor unreaped, when it returns.
    pub async fn close(mut self) {
        drop(self.lifeline.take());
        // Only fails if the guardian was already reaped.
        let _ = self.guardian.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether a process with this id exists and has not exited.
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let state = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .next()?
                    .to_owned();
                Some(state != "Z" && state != "X")
            })
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn closing_the_group_kills_the_grandchildren_too() {
        let group = ProcessGroup::start().unwrap();
        // A child that starts a grandchild and reports its id, then waits
        // on it: the shape of git running a credential helper.
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg("sleep 300 & echo $!; wait")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = group.spawn(&mut command).unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") {
            use tokio::io::AsyncReadExt;
            assert_eq!(stdout.read(&mut byte).await.unwrap(), 1);
            line.push(byte[0]);
        }
        let grandchild: u32 = String::from_utf8(line).unwrap().trim().parse().unwrap();
        assert!(running(grandchild));

        group.close().await;
        // The child was killed too: its wait ends.
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(!status.success());
        // The grandchild is not ours to reap; it must be gone or a zombie
        // waiting for init.
        let mut polls = 0;
        while running(grandchild) && polls < 600 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            polls += 1;
        }
        assert!(!running(grandchild), "the grandchild survived its group");
    }
}
