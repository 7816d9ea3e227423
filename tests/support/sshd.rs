//! A real OpenSSH server for one test: its own host key, the test's
//! authorized keys, listening on a free loopback port. Git over SSH runs
//! `git-receive-pack` through it against bare repositories on disk.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; killed when dropped.
pub struct Sshd {
    pub port: u16,
    /// The user tests log in as: the one running them.
    pub user: String,
    host_public_key: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts sshd accepting the given `authorized_keys` lines.
    pub fn start(authorized_keys: &[&str]) -> Self {
        ensure_privilege_separation_directory();
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_ed25519");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f"])
            .arg(&host_key));
        let host_public_key = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        let host_public_key = host_public_key
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        std::fs::write(
            dir.path().join("authorized_keys"),
            authorized_keys.join("\n") + "\n",
        )
        .unwrap();
        let user = String::from_utf8(run(Command::new("id").arg("-un")))
            .unwrap()
            .trim()
            .to_owned();

        // The port is free when probed; another process may take it before
        // sshd binds, so retry a few times.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = dir.path().join("sshd_config");
            std::fs::write(&config, sshd_config(dir.path(), port, &host_key)).unwrap();
            let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
            // sshd re-executes itself, so it must be started by absolute path.
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd (install openssh-server)");
            if wait_until_listening(port, &mut child) {
                return Self {
                    port,
                    user,
                    host_public_key,
                    child,
                    dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start: {}", self_log(dir.path()));
    }

    /// The `known_hosts` line for this server's real host key.
    pub fn known_hosts(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_public_key)
    }

    /// The SSH URL of a bare repository on this machine.
    pub fn url(&self, bare_repo: &Path) -> String {
        assert!(bare_repo.is_absolute());
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            bare_repo.display()
        )
    }

    /// What sshd logged so far, for failing assertions.
    pub fn log(&self) -> String {
        self_log(self.dir.path())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn self_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
}

fn sshd_config(dir: &Path, port: u16, host_key: &Path) -> String {
    let dir = dir.display();
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         PidFile {dir}/sshd.pid\n\
         StrictModes no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         UsePAM no\n\
         UseDNS no\n\
         PrintMotd no\n\
         LogLevel VERBOSE\n",
        host_key = host_key.display(),
    )
}

/// sshd started as root refuses to run without its privilege separation
/// directory, which minimal containers lack.
fn ensure_privilege_separation_directory() {
    let is_root = String::from_utf8(run(Command::new("id").arg("-u")))
        .unwrap()
        .trim()
        == "0";
    if is_root && !Path::new("/run/sshd").exists() {
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
}

fn wait_until_listening(port: u16, child: &mut Child) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn run(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
