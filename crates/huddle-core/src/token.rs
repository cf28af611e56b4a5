//! Agent tokens.
//!
//! A token is `<room id, 32 hex>.<secret, base64url>`: the room part lets any node route a
//! request to the room's owner without a lookup; the secret carries 256 random bits. Only
//! the SHA-256 digest of the whole token is stored, so a leaked database holds no token.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ids::RoomId;

/// A token as the client sent it. Never logged (its `Debug` is masked).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentToken(String);

impl AgentToken {
    /// Builds a token from a room id and the random secret (already encoded by the caller,
    /// which owns the randomness).
    pub fn mint(room: RoomId, secret_b64url: &str) -> Self {
        Self(format!("{}.{}", room.0.simple(), secret_b64url))
    }

    pub fn from_wire(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The room this token claims to belong to; `None` when it is not one of ours.
    /// The claim is only routing: the room still checks the digest.
    pub fn room_id(&self) -> Option<RoomId> {
        let (room, secret) = self.0.split_once('.')?;
        if room.len() != 32 || secret.is_empty() {
            return None;
        }
        Uuid::try_parse(room).ok().map(RoomId)
    }

    pub fn digest(&self) -> TokenDigest {
        TokenDigest(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgentToken(***)")
    }
}

/// SHA-256 of a token: what rooms and stores keep.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenDigest(pub [u8; 32]);

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_routes_to_its_room() {
        let room = RoomId::new_random();
        let t = AgentToken::mint(room, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ");
        assert_eq!(t.room_id(), Some(room));
        assert_eq!(AgentToken::from_wire("garbage").room_id(), None);
        assert_eq!(AgentToken::from_wire("x.y").room_id(), None);
    }

    #[test]
    fn digest_differs_per_token_and_debug_is_masked() {
        let room = RoomId::new_random();
        let a = AgentToken::mint(room, "a");
        let b = AgentToken::mint(room, "b");
        assert_ne!(a.digest(), b.digest());
        assert!(!format!("{a:?}").contains(&room.0.simple().to_string()));
    }
}
