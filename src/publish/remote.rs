//! Where a push may go. The clone URL comes from the code host's own API,
//! so a misconfigured or hostile answer could otherwise send the token (or
//! the SSH key's signature) to another machine, or over plain http: the
//! URL must name the configured code host's host, and an https code host
//! must be pushed to over https.

use url::Url;

use crate::domain::CodeHostUrl;

/// Checks `clone_url` against the configured code host: same host
/// (case-insensitive; the port may differ, as with SSH on 7999), and for an
/// HTTP(S) URL no downgrade from https to http. SSH URLs may be
/// `ssh://[user@]host[:port]/path` or scp-like `[user@]host:path`. The
/// error says what is wrong without echoing the whole URL.
pub fn check_clone_url(code_host: &CodeHostUrl, clone_url: &str) -> Result<(), String> {
    let configured = Url::parse(code_host.as_str())
        .map_err(|error| format!("the code host URL is invalid: {error}"))?;
    let expected_host = configured.host_str().unwrap_or_default();
    let (scheme, host) = scheme_and_host(clone_url)?;
    match scheme.as_str() {
        "https" | "ssh" => {}
        "http" if configured.scheme() == "http" => {}
        "http" => {
            return Err(format!(
                "the clone URL uses plain http while the code host is {}; refusing to send a credential unencrypted",
                code_host
            ));
        }
        other => return Err(format!("the clone URL's scheme {other:?} is not allowed")),
    }
    let ssh_companion =
        scheme == "ssh" && ssh_host_of(expected_host) == Some(host.to_ascii_lowercase().as_str());
    if !host.eq_ignore_ascii_case(expected_host) && !ssh_companion {
        return Err(format!(
            "the clone URL points at {host:?}, not at the code host {expected_host:?}; refusing to send a credential there"
        ));
    }
    Ok(())
}

/// The host a code host serves git over SSH from, where it is not the
/// code host's own: Azure DevOps Services (`git@ssh.dev.azure.com:v3/…`,
/// legacy `…@vs-ssh.visualstudio.com:v3/…`).
fn ssh_host_of(code_host: &str) -> Option<&'static str> {
    let code_host = code_host.to_ascii_lowercase();
    if code_host == "dev.azure.com" {
        Some("ssh.dev.azure.com")
    } else if code_host.ends_with(".visualstudio.com") {
        Some("vs-ssh.visualstudio.com")
    } else {
        None
    }
}

/// The scheme (`ssh` for scp-like addresses) and host of a git remote URL.
fn scheme_and_host(clone_url: &str) -> Result<(String, String), String> {
    if clone_url.contains("://") {
        let url = Url::parse(clone_url)
            .map_err(|error| format!("the clone URL is malformed: {error}"))?;
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or("the clone URL has no host")?;
        return Ok((url.scheme().to_owned(), host.to_owned()));
    }
    // scp-like `[user@]host:path`: git reads it so only when a ':' comes
    // before any '/' (otherwise it is a local path).
    let (authority, _) = scp_split(clone_url).ok_or("the clone URL is not a network URL")?;
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() {
        return Err("the clone URL has no host".to_owned());
    }
    Ok(("ssh".to_owned(), host.to_owned()))
}

/// Splits `[user@]host:path` (the host possibly a bracketed IPv6 address,
/// kept in brackets as [`Url::host_str`] gives it) at the ':' that ends the
/// host. `transport::address` (a git remote helper) is not one.
fn scp_split(address: &str) -> Option<(&str, &str)> {
    let search_from = address.find('[').map_or(0, |open| {
        address[open..]
            .find(']')
            .map_or(address.len(), |close| open + close)
    });
    let colon = search_from + address.get(search_from..)?.find(':')?;
    let (authority, path) = (&address[..colon], &address[colon + 1..]);
    if authority.contains('/') || path.starts_with(':') {
        return None;
    }
    Some((authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code_host: &str, clone_url: &str) -> Result<(), String> {
        check_clone_url(&CodeHostUrl::parse(code_host).unwrap(), clone_url)
    }

    #[test]
    fn clone_urls_on_the_code_host_are_accepted() {
        for (host, url) in [
            ("https://github.com", "https://github.com/acme/api.git"),
            ("https://github.com", "git@github.com:acme/api.git"),
            ("https://github.com", "ssh://git@GitHub.com/acme/api.git"),
            (
                "https://bitbucket.example.com",
                "ssh://git@bitbucket.example.com:7999/acme/api.git",
            ),
            (
                "https://bitbucket.example.com",
                "https://bitbucket.example.com/scm/acme/api.git",
            ),
            (
                "http://127.0.0.1:8080/github",
                "http://127.0.0.1:9000/a.git",
            ),
            ("http://git.internal", "https://git.internal/a.git"),
            (
                "https://dev.azure.com/acme",
                "git@ssh.dev.azure.com:v3/acme/Web/api",
            ),
            (
                "https://acme.visualstudio.com",
                "acme@vs-ssh.visualstudio.com:v3/acme/Web/api",
            ),
        ] {
            assert_eq!(check(host, url), Ok(()), "{host} {url}");
        }
    }

    #[test]
    fn other_hosts_downgrades_and_local_paths_are_refused() {
        let refused = |host: &str, url: &str, needle: &str| {
            let error = check(host, url).expect_err(url);
            assert!(error.contains(needle), "{url}: {error}");
        };
        refused(
            "https://github.com",
            "https://evil.example/acme/api.git",
            "evil.example",
        );
        refused(
            "https://github.com",
            "https://github.com.evil.example/a.git",
            "not at the code host",
        );
        refused(
            "https://github.com",
            "git@evil.example:acme/api.git",
            "evil.example",
        );
        refused(
            "https://github.com",
            "ssh://git@evil.example:22/a.git",
            "evil.example",
        );
        refused(
            "https://github.com",
            "http://github.com/acme/api.git",
            "plain http",
        );
        refused("https://github.com", "file:///srv/git/a.git", "no host");
        refused("https://github.com", "file://github.com/a.git", "scheme");
        refused("https://github.com", "/srv/git/a.git", "not a network URL");
        refused("https://github.com", "./x:y", "not a network URL");
        refused("https://github.com", "ext::sh -c id", "not a network URL");
        // Azure's SSH host is accepted for SSH only.
        refused(
            "https://dev.azure.com/acme",
            "https://ssh.dev.azure.com/acme/api",
            "not at the code host",
        );
    }

    #[test]
    fn bracketed_ipv6_hosts_are_read_whole() {
        assert_eq!(
            scp_split("git@[::1]:a/b.git"),
            Some(("git@[::1]", "a/b.git"))
        );
        assert_eq!(check("http://[::1]:3000", "git@[::1]:a/b.git"), Ok(()));
        assert!(check("http://[::1]:3000", "git@[::2]:a/b.git").is_err());
    }
}
