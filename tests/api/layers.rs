//! Which layer may use which. The compiler already keeps the store out of
//! reach of everything but the service (it is `pub(crate)`, and the CLI is
//! another crate); this reads the sources for the rest, so that a page or
//! a resolver calling past the service fails the build's tests.

use std::path::{Path, PathBuf};

/// Each folder (or file) of `src/`, with the top-level modules it may
/// name. Its own module is always allowed.
const ALLOWED: &[(&str, &[&str])] = &[
    // The GraphQL API and the pages talk to the service only; metrics per
    // operation and the HTTP plumbing pages are served through are the
    // exceptions.
    ("api", &["service", "domain", "telemetry"]),
    ("web", &["service", "domain", "http"]),
    // The CLI is the binary's front door: it starts the app from its
    // configuration, and otherwise talks to the service.
    (
        "cli",
        &["service", "domain", "app", "config", "telemetry", "api"],
    ),
    // Code host clients know nothing of storage or of the service.
    ("codehost", &["domain", "telemetry"]),
    ("store", &["domain", "crypto"]),
    ("config", &["domain", "store"]),
    ("domain", &[]),
    // The API routes do not know the pages (the app composes both).
    (
        "http",
        &["service", "domain", "api", "auth", "crypto", "telemetry"],
    ),
];

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found
}

/// The top-level modules a source file names through `crate::` (or
/// `batchcred::` in the binary), outside comments.
fn named_modules(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        for prefix in ["crate::", "batchcred::"] {
            let mut rest = code;
            while let Some(at) = rest.find(prefix) {
                let after = &rest[at + prefix.len()..];
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.push(name);
                }
                rest = after;
            }
        }
    }
    names
}

#[test]
fn each_layer_names_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (layer, allowed) in ALLOWED {
        let folder = src.join(layer);
        let mut files = if folder.is_dir() {
            sources(&folder)
        } else {
            Vec::new()
        };
        let file = src.join(format!("{layer}.rs"));
        if file.is_file() {
            files.push(file);
        }
        assert!(!files.is_empty(), "no sources for layer {layer}");
        for path in files {
            let source = std::fs::read_to_string(&path).expect("read source");
            for name in named_modules(&source) {
                if name != *layer && !allowed.contains(&name.as_str()) {
                    violations.push(format!("{} uses {name}", path.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_scanner_sees_paths_and_skips_comments() {
    let names = named_modules(
        "use crate::store::Store; // crate::web\nlet x = batchcred::service::Caller::x();",
    );
    assert_eq!(names, ["store", "service"]);
}
