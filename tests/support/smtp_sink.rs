//! A minimal SMTP server on loopback that keeps every message it is
//! given: just enough of RFC 5321 (EHLO/HELO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT) for lettre, without TLS or AUTH.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as received.
#[derive(Debug, Clone, Default)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, as sent (dot-stuffing undone).
    pub data: String,
}

#[derive(Clone)]
pub struct SmtpSink {
    pub address: SocketAddr,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    arrived: Arc<tokio::sync::Notify>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn({
            let mails = mails.clone();
            let arrived = arrived.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let mails = mails.clone();
                    let arrived = arrived.clone();
                    tokio::spawn(async move {
                        let _ = session(stream, &mails, &arrived).await;
                    });
                }
            }
        });
        Self {
            address,
            mails,
            arrived,
            task: Arc::new(task),
        }
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> url::Url {
        format!("smtp://{}", self.address).parse().expect("url")
    }

    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.mails.lock().expect("lock").clone()
    }

    /// Waits until at least `count` messages arrived (a generous bound,
    /// so a broken sender fails the test rather than hanging it).
    pub async fn wait_for(&self, count: usize) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let arrived = self.arrived.notified();
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                "only {} of {count} messages arrived",
                mails.len()
            );
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

async fn session(
    stream: TcpStream,
    mails: &Mutex<Vec<ReceivedMail>>,
    arrived: &tokio::sync::Notify,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut mail = ReceivedMail::default();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250 8BITMIME\r\n",
            "HELO" | "NOOP" => b"250 OK\r\n",
            "RSET" => {
                mail = ReceivedMail::default();
                b"250 OK\r\n"
            }
            "MAIL" => {
                mail.from = angle_address(&command);
                b"250 OK\r\n"
            }
            "RCPT" => {
                mail.to.push(angle_address(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with .\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                mail.data = data;
                mails.lock().expect("lock").push(std::mem::take(&mut mail));
                arrived.notify_waiters();
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address between `<` and `>` in `MAIL FROM:<a@b>` or `RCPT TO:<a@b>`.
fn angle_address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}
