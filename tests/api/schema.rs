//! The committed `schema.graphql` is the live schema.

#[test]
fn committed_schema_matches_the_live_one() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql is committed at the repository root");
    let live = batchcred::api::schema_sdl();
    assert!(
        committed == live,
        "schema.graphql is stale: run `cargo run -- schema > schema.graphql`"
    );
}

#[test]
fn schema_uses_sourcegraph_names() {
    let sdl = batchcred::api::schema_sdl();
    for expected in [
        "batchChangesCodeHosts(first: Int = 50, after: String): BatchChangesCodeHostConnection!",
        "createBatchChangesCredential(user: ID, username: String, externalServiceKind: ExternalServiceKind!, externalServiceURL: String!, credential: String!, repository: String): BatchChangesCredential!",
        "deleteBatchChangesCredential(batchChangesCredential: ID!): EmptyResponse!",
        "checkBatchChangesCredential(batchChangesCredential: ID!): EmptyResponse!",
        "type BatchChangesCredential implements Node",
        "isSiteCredential: Boolean!",
        "requiresSSH: Boolean!",
    ] {
        assert!(sdl.contains(expected), "missing {expected:?} in:\n{sdl}");
    }
}
