//! Opaque Relay-style global IDs, encoded like Sourcegraph's:
//! base64 of `<Type>:<JSON value>`, e.g. `BatchChangesCredential:"user:<uuid>"`.

use async_graphql::ID;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::domain::{
    AccessTokenId, ChangesetId, CodeHostId, CredentialId, CredentialOwner, UserId,
};
use crate::service::Error;

const USER: &str = "User";
const CREDENTIAL: &str = "BatchChangesCredential";
const CODE_HOST: &str = "CodeHost";
const ACCESS_TOKEN: &str = "AccessToken";
const CHANGESET: &str = "Changeset";

fn marshal(kind: &str, spec: &str) -> ID {
    let json = serde_json::Value::String(spec.to_owned()).to_string();
    ID(STANDARD.encode(format!("{kind}:{json}")))
}

/// The type name and the value inside a global ID.
fn unmarshal(id: &ID) -> Result<(String, String), Error> {
    let invalid = || Error::InvalidInput(format!("invalid ID {:?}", id.as_str()));
    let bytes = STANDARD.decode(id.as_str()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (kind, json) = text.split_once(':').ok_or_else(invalid)?;
    let spec: String = serde_json::from_str(json).map_err(|_| invalid())?;
    Ok((kind.to_owned(), spec))
}

fn expect_kind(id: &ID, expected: &str) -> Result<String, Error> {
    let (kind, spec) = unmarshal(id)?;
    if kind != expected {
        return Err(Error::InvalidInput(format!(
            "ID {:?} is a {kind}, not a {expected}",
            id.as_str()
        )));
    }
    Ok(spec)
}

pub(super) fn user_id(id: UserId) -> ID {
    marshal(USER, &id.to_string())
}

pub(super) fn parse_user_id(id: &ID) -> Result<UserId, Error> {
    Ok(expect_kind(id, USER)?.parse()?)
}

pub(super) fn credential_id(id: CredentialId, owner: CredentialOwner) -> ID {
    let scope = match owner {
        CredentialOwner::User(_) => "user",
        CredentialOwner::Site => "site",
    };
    marshal(CREDENTIAL, &format!("{scope}:{id}"))
}

pub(super) fn parse_credential_id(id: &ID) -> Result<CredentialId, Error> {
    let spec = expect_kind(id, CREDENTIAL)?;
    let (_, raw) = spec
        .split_once(':')
        .filter(|(scope, _)| matches!(*scope, "user" | "site"))
        .ok_or_else(|| Error::InvalidInput(format!("invalid ID {:?}", id.as_str())))?;
    Ok(raw.parse()?)
}

pub(super) fn code_host_id(id: CodeHostId) -> ID {
    marshal(CODE_HOST, &id.to_string())
}

pub(super) fn changeset_id(id: ChangesetId) -> ID {
    marshal(CHANGESET, &id.to_string())
}

pub(super) fn parse_changeset_id(id: &ID) -> Result<ChangesetId, Error> {
    Ok(expect_kind(id, CHANGESET)?.parse()?)
}

pub(super) fn parse_code_host_id(id: &ID) -> Result<CodeHostId, Error> {
    Ok(expect_kind(id, CODE_HOST)?.parse()?)
}

pub(super) fn access_token_id(id: AccessTokenId) -> ID {
    marshal(ACCESS_TOKEN, &id.to_string())
}

pub(super) fn parse_access_token_id(id: &ID) -> Result<AccessTokenId, Error> {
    Ok(expect_kind(id, ACCESS_TOKEN)?.parse()?)
}

/// What a `node(id:)` lookup refers to.
pub(super) enum NodeRef {
    User(UserId),
    Credential(CredentialId),
    AccessToken(AccessTokenId),
}

pub(super) fn parse_node_id(id: &ID) -> Result<NodeRef, Error> {
    let (kind, _) = unmarshal(id)?;
    match kind.as_str() {
        USER => Ok(NodeRef::User(parse_user_id(id)?)),
        CREDENTIAL => Ok(NodeRef::Credential(parse_credential_id(id)?)),
        ACCESS_TOKEN => Ok(NodeRef::AccessToken(parse_access_token_id(id)?)),
        _ => Err(Error::NotFound(format!("no node of type {kind}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_typed() -> Result<(), Error> {
        let user = UserId::new();
        assert_eq!(parse_user_id(&user_id(user))?, user);
        let credential = CredentialId::new();
        let encoded = credential_id(credential, CredentialOwner::Site);
        let decoded = String::from_utf8(STANDARD.decode(encoded.as_str()).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(
            decoded,
            format!("BatchChangesCredential:\"site:{credential}\"")
        );
        assert_eq!(parse_credential_id(&encoded)?, credential);
        assert!(parse_user_id(&encoded).is_err());
        assert!(parse_user_id(&ID("garbage".into())).is_err());
        assert!(parse_credential_id(&marshal(CREDENTIAL, "other:x")).is_err());
        let token = AccessTokenId::new();
        assert_eq!(parse_access_token_id(&access_token_id(token))?, token);
        assert!(parse_access_token_id(&user_id(user)).is_err());
        Ok(())
    }
}
