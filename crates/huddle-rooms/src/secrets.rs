//! Secrets: agent tokens (random, digested with SHA-256 in core) and room passwords
//! (argon2id, salted, verified in constant time). Hashing is slow on purpose and blocks:
//! callers run it through the node's password gate (`crate::passwords`), which bounds
//! how many hashes run at once and keeps them off the async workers and the room actors.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use huddle_core::{AgentToken, RoomError, RoomId};
use rand::RngCore;

/// A new token for `room`: the room id plus 256 random bits.
pub fn mint_token(room: RoomId) -> AgentToken {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    AgentToken::mint(room, &URL_SAFE_NO_PAD.encode(secret))
}

/// A salted argon2id PHC string for `password` (blocking, tens of milliseconds).
pub fn hash_password(password: &str) -> Result<String, RoomError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| RoomError::Unavailable(format!("password hashing failed: {e}")))
}

/// Constant-time check of `password` against a stored argon2 PHC string (blocking).
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip_and_salted() {
        let a = hash_password("pw").unwrap();
        let b = hash_password("pw").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("pw", &a));
        assert!(!verify_password("pW", &a));
    }

    #[test]
    fn tokens_route_and_are_unique() {
        let room = RoomId::new_random();
        let a = mint_token(room);
        assert_eq!(a.room_id(), Some(room));
        assert_ne!(a, mint_token(room));
        assert!(a.as_str().len() >= 32 + 1 + 43);
    }
}
