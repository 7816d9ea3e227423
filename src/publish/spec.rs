//! What to publish: one changeset, or a file listing many.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One changeset: a branch on a repository and the pull request for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChangesetSpec {
    /// The code host's URL, as configured (`https://github.com`).
    pub code_host: String,
    /// `owner/name`, `group/project` or `PROJECT/repo`.
    pub repository: String,
    pub base_branch: String,
    pub head_branch: String,
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub draft: bool,
    pub change: ChangeSpec,
}

/// The change a changeset carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ChangeSpec {
    /// A commit in a local git repository (CLI only: the server does not
    /// read its own disk on behalf of API callers).
    Commit { repo: PathBuf, rev: String },
    /// A unified diff applied on top of the base branch.
    Diff {
        patch: String,
        /// Defaults to the title.
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        author_name: Option<String>,
        #[serde(default)]
        author_email: Option<String>,
    },
}

/// A file listing changesets: `{"changesets": [ … ]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub changesets: Vec<ChangesetSpec>,
}

/// A spec file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid changeset list: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl SpecFile {
    /// Reads a spec file; relative repository paths are taken relative to
    /// the file's directory.
    pub fn read(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut file: Self = serde_json::from_str(&text).map_err(|source| SpecError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for changeset in &mut file.changesets {
            if let ChangeSpec::Commit { repo, .. } = &mut changeset.change
                && repo.is_relative()
            {
                *repo = base.join(&*repo);
            }
        }
        Ok(file)
    }
}

impl ChangesetSpec {
    /// Identifies the spec's content, with a commit given as its resolved
    /// id, so an identical spec already published need not be redone.
    pub fn fingerprint(&self, resolved_commit: Option<&str>) -> String {
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(self).unwrap_or_default());
        if let Some(commit) = resolved_commit {
            hasher.update(b"\0commit:");
            hasher.update(commit.as_bytes());
        }
        hex(&hasher.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ChangesetSpec {
        ChangesetSpec {
            code_host: "https://github.com".into(),
            repository: "acme/api".into(),
            base_branch: "main".into(),
            head_branch: "batch/fix".into(),
            title: "Fix".into(),
            body: String::new(),
            draft: false,
            change: ChangeSpec::Commit {
                repo: "repo".into(),
                rev: "HEAD".into(),
            },
        }
    }

    #[test]
    fn spec_files_parse_and_resolve_relative_repositories() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("spec.json");
        std::fs::write(
            &path,
            r#"{"changesets": [
                {"code_host": "https://github.com", "repository": "acme/api", "base_branch": "main",
                 "head_branch": "batch/a", "title": "A", "change": {"commit": {"repo": "work", "rev": "HEAD"}}},
                {"code_host": "https://gitlab.com", "repository": "g/p", "base_branch": "main",
                 "head_branch": "batch/b", "title": "B", "draft": true,
                 "change": {"diff": {"patch": "--- a/x\n+++ b/x\n"}}}
            ]}"#,
        )?;
        let file = SpecFile::read(&path)?;
        assert_eq!(file.changesets.len(), 2);
        assert_eq!(
            file.changesets[0].change,
            ChangeSpec::Commit {
                repo: dir.path().join("work"),
                rev: "HEAD".into()
            }
        );
        assert!(file.changesets[1].draft);
        Ok(())
    }

    #[test]
    fn unknown_fields_are_refused_with_the_file_named() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("spec.json");
        std::fs::write(&path, r#"{"changesets": [], "extra": 1}"#)?;
        let error = SpecFile::read(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("spec.json is not a valid changeset list"),
            "{error}"
        );
        Ok(())
    }

    #[test]
    fn fingerprints_change_with_content_and_commit() {
        let a = spec();
        let mut b = spec();
        b.title = "Other".into();
        assert_ne!(a.fingerprint(None), b.fingerprint(None));
        assert_ne!(a.fingerprint(Some("abc")), a.fingerprint(Some("def")));
        assert_eq!(a.fingerprint(Some("abc")), spec().fingerprint(Some("abc")));
    }
}
