//! The command-line interface against a local store.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::secrets::ServerProcess;
use crate::support::codehost::Emulator;

/// Runs `batchcred` on the store in `data_dir`.
pub fn batchcred(data_dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let data_dir = data_dir.to_str().expect("a UTF-8 temporary path");
    let mut args = args.to_vec();
    args.extend(["--data-dir", data_dir]);
    bare_batchcred(&args, stdin)
}

pub fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// Multi-threaded: the CLI runs as a blocking child process while the code
// host emulator answers it from another worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_from_the_readme_works() {
    let codehosts = Emulator::accepting_any_token().await;
    let (github, gitlab) = (codehosts.url("github"), codehosts.url("gitlab"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = ok(&batchcred(
        &data,
        &["users", "create", "--admin", "alice"],
        "long password\n",
    ));
    assert!(out.contains("created user alice (site admin)"), "{out}");
    ok(&batchcred(
        &data,
        &["users", "create", "bob"],
        "long password\n",
    ));
    ok(&batchcred(
        &data,
        &[
            "codehosts",
            "add",
            "--kind",
            "GITHUB",
            "--url",
            &format!("{github}/"),
        ],
        "",
    ));
    ok(&batchcred(
        &data,
        &[
            "codehosts",
            "add",
            "--kind",
            "gitlab",
            "--url",
            &gitlab,
            "--git-url-type",
            "ssh",
        ],
        "",
    ));
    let listed = ok(&batchcred(&data, &["codehosts", "list"], ""));
    assert!(
        listed.contains(&github) && listed.contains(&gitlab),
        "{listed}"
    );

    let out = ok(&batchcred(
        &data,
        &[
            "credentials",
            "add",
            "--user",
            "bob",
            "--kind",
            "GITHUB",
            "--url",
            &github,
        ],
        "ghp_clitoken\n",
    ));
    assert!(
        out.contains(&format!("added credential for {github}")),
        "{out}"
    );
    let out = ok(&batchcred(
        &data,
        &[
            "credentials",
            "add",
            "--global",
            "--kind",
            "GITLAB",
            "--url",
            &gitlab,
        ],
        "glpat-clitoken\n",
    ));
    assert!(out.contains("ssh-ed25519 AAAA"), "SSH key not shown: {out}");
    let listed = ok(&batchcred(
        &data,
        &["credentials", "list", "--user", "bob"],
        "",
    ));
    assert!(
        listed.contains(&github) && !listed.contains("ghp_clitoken"),
        "{listed}"
    );

    let users = ok(&batchcred(&data, &["users", "list"], ""));
    assert!(
        users.contains("alice") && users.contains("site admin") && users.contains("bob"),
        "{users}"
    );
    let token = ok(&batchcred(
        &data,
        &["tokens", "create", "--user", "bob"],
        "",
    ));
    assert!(token.trim().starts_with("bcp_"), "{token}");

    ok(&batchcred(
        &data,
        &["credentials", "remove", "--user", "bob", "--url", &github],
        "",
    ));
    let listed = ok(&batchcred(
        &data,
        &["credentials", "list", "--user", "bob"],
        "",
    ));
    assert!(!listed.contains(&github), "{listed}");
    ok(&batchcred(&data, &["codehosts", "remove", &gitlab], ""));
    let listed = ok(&batchcred(&data, &["credentials", "list", "--global"], ""));
    assert_eq!(listed.lines().count(), 1, "{listed}");
}

#[test]
fn errors_are_one_line_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&batchcred(
        &data,
        &["users", "create", "alice"],
        "long password\n",
    ));
    for (args, stdin, expected) in [
        (
            vec!["users", "create", "alice"],
            "long password\n",
            "already exists",
        ),
        (
            vec!["users", "create", "bad name"],
            "long password\n",
            "username must be",
        ),
        (
            vec![
                "credentials",
                "add",
                "--user",
                "nobody",
                "--kind",
                "GITHUB",
                "--url",
                "https://github.com",
            ],
            "t\n",
            "not found",
        ),
        (
            vec![
                "credentials",
                "add",
                "--user",
                "alice",
                "--kind",
                "GITHUB",
                "--url",
                "https://nowhere.example.com",
            ],
            "t\n",
            "unknown code host",
        ),
        (
            vec![
                "codehosts",
                "add",
                "--kind",
                "SVN",
                "--url",
                "https://svn.example.com",
            ],
            "",
            "unknown code host kind",
        ),
    ] {
        let output = batchcred(&data, &args, stdin);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        if !args.contains(&"SVN") {
            assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
            assert!(lines[0].starts_with("error: "), "{stderr}");
        }
    }
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["users", "create", "--help"],
        vec!["tokens", "create", "--help"],
        vec!["codehosts", "add", "--help"],
        vec!["credentials", "add", "--help"],
        vec!["keys", "rotate", "--help"],
        vec!["schema", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_batchcred"))
            .args(&args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
}

/// `keys rotate` while the server runs: the server keeps reading every
/// credential, and all of them end up under the new primary key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_is_online_and_complete() {
    let codehosts = Emulator::accepting_any_token().await;
    let (github, gitlab) = (codehosts.url("github"), codehosts.url("gitlab"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&batchcred(
        &data,
        &["users", "create", "alice"],
        "long password\n",
    ));
    ok(&batchcred(
        &data,
        &["codehosts", "add", "--kind", "GITHUB", "--url", &github],
        "",
    ));
    ok(&batchcred(
        &data,
        &[
            "codehosts",
            "add",
            "--kind",
            "GITLAB",
            "--url",
            &gitlab,
            "--git-url-type",
            "ssh",
        ],
        "",
    ));
    ok(&batchcred(
        &data,
        &[
            "credentials",
            "add",
            "--user",
            "alice",
            "--kind",
            "GITHUB",
            "--url",
            &github,
        ],
        "ghp_a\n",
    ));
    ok(&batchcred(
        &data,
        &[
            "credentials",
            "add",
            "--global",
            "--kind",
            "GITLAB",
            "--url",
            &gitlab,
        ],
        "glpat_b\n",
    ));
    let before = ok(&batchcred(&data, &["keys", "status"], ""));

    let server = ServerProcess::start(&data, "info");
    let token = ok(&batchcred(
        &data,
        &["tokens", "create", "--user", "alice"],
        "",
    ))
    .trim()
    .to_owned();
    let rotated = ok(&batchcred(&data, &["keys", "rotate"], ""));
    assert!(
        rotated.contains("re-encrypted 2 credential(s)"),
        "{rotated}"
    );
    let after = ok(&batchcred(&data, &["keys", "status"], ""));
    let primary = after
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("primary key: ")
        .to_owned();
    assert_ne!(
        before.lines().next(),
        after.lines().next(),
        "primary key unchanged"
    );
    assert!(
        after.contains(&format!("{primary}: 2 credential(s)")),
        "{after}"
    );

    // The running server learns the new key and still opens every secret.
    let client = reqwest::Client::new();
    let hosts: serde_json::Value = client
        .post(server.url("/.api/graphql"))
        .header("Authorization", format!("token {token}"))
        .json(&serde_json::json!({ "query": "{ currentUser { batchChangesCodeHosts { nodes { credential { id } } } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = hosts["data"]["currentUser"]["batchChangesCodeHosts"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{hosts}"))
        .iter()
        .map(|n| n["credential"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let check: serde_json::Value = client
        .post(server.url("/.api/graphql"))
        .header("Authorization", format!("token {token}"))
        .json(&serde_json::json!({
            "query": "query($id: ID!) { checkBatchChangesCredential(batchChangesCredential: $id) { alwaysNil } }",
            "variables": { "id": ids[0] },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(check.get("errors").is_none(), "{check}");
    drop(server);

    // Re-running finds nothing left to do.
    let again = ok(&batchcred(&data, &["keys", "reencrypt"], ""));
    assert!(again.contains("re-encrypted 0 credential(s)"), "{again}");
}

/// Runs `batchcred` with only the arguments given: no `--data-dir`, and no
/// `BATCHCRED_*` setting inherited from the environment.
pub fn bare_batchcred(args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_batchcred"));
    for (name, _) in std::env::vars() {
        if name.starts_with("BATCHCRED_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.args(args);
    run_to_end(command, stdin)
}

/// Runs a prepared `batchcred` command with `stdin` as its input, to its end.
pub fn run_to_end(mut command: Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run batchcred");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait")
}

// Multi-threaded: the emulator answers the blocking CLI child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_file_sets_what_flags_do_not() {
    let codehosts = Emulator::accepting_any_token().await;
    let gitlab = codehosts.url("gitlab");
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file");
    let config = dir.path().join("batchcred.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nexternal_url = \"https://batchcred.example.com\"\n",
            from_file.display().to_string()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    ok(&bare_batchcred(
        &["--config", config, "users", "create", "--admin", "alice"],
        "long password\n",
    ));
    assert!(from_file.join("keyring").exists(), "data dir from the file");
    let listed = ok(&bare_batchcred(&["--config", config, "users", "list"], ""));
    assert!(listed.contains("alice"), "{listed}");

    // The file's external URL names the instance in generated keys.
    ok(&bare_batchcred(
        &[
            "--config",
            config,
            "codehosts",
            "add",
            "--kind",
            "GITLAB",
            "--url",
            &gitlab,
            "--git-url-type",
            "ssh",
        ],
        "",
    ));
    let added = ok(&bare_batchcred(
        &[
            "--config",
            config,
            "credentials",
            "add",
            "--global",
            "--kind",
            "GITLAB",
            "--url",
            &gitlab,
        ],
        "glpat-configtest\n",
    ));
    assert!(
        added.contains(" batchcred@batchcred.example.com"),
        "{added}"
    );

    // A flag wins over the file.
    let elsewhere = dir.path().join("from-flag");
    let listed = ok(&bare_batchcred(
        &[
            "--config",
            config,
            "--data-dir",
            elsewhere.to_str().unwrap(),
            "users",
            "list",
        ],
        "",
    ));
    assert!(!listed.contains("alice"), "{listed}");
    assert!(elsewhere.join("keyring").exists());
}

#[test]
fn a_bad_configuration_file_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("batchcred.toml");
    std::fs::write(&config, "data_dir = \"x\"\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let config = config.to_str().unwrap();
    for args in [
        vec!["--config", config, "users", "list"],
        vec!["--config", config, "serve"],
        vec!["--config", "/nonexistent/batchcred.toml", "users", "list"],
    ] {
        let output = bare_batchcred(&args, "");
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("batchcred.toml"), "{stderr}");
    }
    let stderr =
        String::from_utf8_lossy(&bare_batchcred(&["--config", config, "users", "list"], "").stderr)
            .into_owned();
    assert!(stderr.contains("unknown field `lisen`"), "{stderr}");
    assert!(!dir.path().join("x").exists(), "nothing was created");
}

#[test]
fn a_bad_rollout_window_stops_serve_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("batchcred.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\n\n\
             [[rollout_windows]]\nrate = \"unlimited\"\n\n\
             [[rollout_windows]]\nrate = \"10/fortnight\"\ndays = [\"sat\", \"sun\"]\n"
        ),
    )
    .unwrap();
    let output = bare_batchcred(&["--config", config.to_str().unwrap(), "serve"], "");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "rollout_windows[1].rate: \"10/fortnight\" is not a rate \
             (use unlimited, 0, or N/second|minute|hour)"
        ),
        "{stderr}"
    );
    assert!(!data.exists(), "serve started before refusing the setting");
}

/// `changesets list` and `retry`, and `codehosts webhook`: the secret is
/// printed once and re-sealed by `keys rotate`, so the old key retires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changesets_and_webhooks_from_the_cli() {
    let emulator = crate::support::codehost::Emulator::accepting_any_token().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let github = emulator.url("github");
    ok(&batchcred(
        data,
        &["users", "create", "--admin", "alice"],
        "correct horse battery\n",
    ));
    ok(&batchcred(
        data,
        &["codehosts", "add", "--kind", "GITHUB", "--url", &github],
        "",
    ));

    let listed = ok(&batchcred(data, &["changesets", "list"], ""));
    assert!(listed.contains("0 of 0 shown"), "{listed}");
    let bad = batchcred(data, &["changesets", "list", "--status", "sideways"], "");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown changeset status"));
    let bad = batchcred(data, &["changesets", "retry", "not-an-id"], "");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a changeset id"));

    let out = ok(&batchcred(
        data,
        &["codehosts", "webhook", "--url", &github],
        "",
    ));
    assert!(out.contains("/.api/webhooks/"), "{out}");
    let secret = out
        .lines()
        .find_map(|line| line.rsplit_once(": ").map(|(_, s)| s.trim().to_owned()))
        .unwrap();
    assert!(secret.len() >= 32, "{out}");
    // Rotating re-seals it under the new key, so the old one can go.
    let status = ok(&batchcred(data, &["keys", "status"], ""));
    let old_key = status
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("primary key: ")
        .to_owned();
    let moved = ok(&batchcred(data, &["keys", "rotate"], ""));
    assert!(moved.contains("1 webhook secret(s)"), "{moved}");
    ok(&batchcred(data, &["keys", "retire", &old_key], ""));
    let removed = ok(&batchcred(
        data,
        &["codehosts", "webhook", "--url", &github, "--remove"],
        "",
    ));
    assert!(removed.contains("refused from now on"), "{removed}");
    for output in [&out, &moved, &removed] {
        assert_eq!(output.matches(&secret).count(), usize::from(output == &out));
    }
}
