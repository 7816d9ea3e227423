//! An audit log entry as read back, with its place in the hash chain.

use chrono::{DateTime, Utc};

/// One entry of the audit log. `detail` is the JSON text exactly as it was
/// hashed; `prev_hash` and `hash` chain it to the entry before.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub actor_name: Option<String>,
    pub event: String,
    pub outcome: String,
    pub user_id: Option<String>,
    pub code_host_id: Option<String>,
    pub credential_id: Option<String>,
    pub changeset_id: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}
