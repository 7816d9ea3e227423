//! How the server runs: where it listens, how users reach it, sessions,
//! and the service's own settings.

use std::net::SocketAddr;
use std::time::Duration;

/// HTTP server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where `/metrics` is served; `None` (the default) serves it nowhere.
    /// Never the public listener.
    pub metrics_listen: Option<SocketAddr>,
    /// How users reach this instance; names it in SSH key comments and
    /// decides whether cookies are marked `Secure`.
    pub external_url: url::Url,
    pub session_ttl: Duration,
    /// Sessions unused for this long are refused; `None` turns it off.
    pub session_idle_timeout: Option<Duration>,
    /// How long one call to a code host may take.
    pub code_host_timeout: Duration,
    /// How often stored credentials are checked again against their code
    /// hosts; `None` turns the background check off.
    pub recheck_interval: Option<Duration>,
    /// Audit entries older than this are removed; `None` keeps them all.
    pub audit_retention: Option<Duration>,
    pub publish: crate::service::PublishSettings,
    /// Sign-in throttling and the bound on concurrent password checks.
    pub sign_in: crate::service::SignInLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Expiry warnings: the period, how often they are sent, and where.
    pub notify: crate::service::NotifySettings,
}

impl ServerConfig {
    /// The comment put on generated SSH public keys.
    pub fn instance_name(&self) -> String {
        instance_name(&self.external_url)
    }

    pub fn secure_cookies(&self) -> bool {
        self.external_url.scheme() == "https"
    }
}

/// `batchcred@host[:port]`, naming the instance that made a key.
pub fn instance_name(external_url: &url::Url) -> String {
    let host = external_url.host_str().unwrap_or("localhost");
    match external_url.port() {
        Some(port) => format!("batchcred@{host}:{port}"),
        None => format!("batchcred@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_name_includes_non_default_port() -> Result<(), url::ParseError> {
        assert_eq!(
            instance_name(&"https://sg.example.com/".parse()?),
            "batchcred@sg.example.com"
        );
        assert_eq!(
            instance_name(&"http://127.0.0.1:3080".parse()?),
            "batchcred@127.0.0.1:3080"
        );
        Ok(())
    }
}
