//! The node's password gate: every room password check (join, info, create) runs here,
//! never in a room actor, so a flood of wrong passwords costs the node a bounded amount
//! of work and never holds up the members of the room it targets.
//!
//! - **Hashing.** At most `hash_threads` argon2 runs at once, on the blocking pool (each
//!   holds a core and ~19 MiB for tens of milliseconds), and at most `hash_queue` more
//!   wait for one; beyond that a check is refused at once with `Server busy: too many
//!   password checks waiting (limit N)`. The permits live inside the blocking task, so
//!   a client that hangs up mid-check does not free a thread that is still hashing.
//! - **Throttle.** Failed attempts are rate-limited per client address (an IPv6 client
//!   by its /64, which one host usually holds whole) and per room: token buckets holding
//!   N and refilled at N per minute. An attempt takes a token from its address and from
//!   every room it tries before hashing, and gives them back when the password matched,
//!   so only failures count. An empty bucket refuses before any hashing, naming the
//!   limit and when to retry. A client that hangs up keeps its tokens spent: a check
//!   that started may still be hashing.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use huddle_core::{AttemptScope, PasswordProof, RoomError, RoomId};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::PasswordsConfig;
use crate::secrets;

/// Keys one throttle tracks at most. Buckets that have refilled carry no information and
/// are dropped first; past that, new keys go untracked (the room throttle and the
/// hashing limit still hold) rather than growing memory for an attacker with many
/// addresses.
const MAX_TRACKED: usize = 65_536;

pub struct PasswordGate {
    config: PasswordsConfig,
    /// Checks admitted: hashing or waiting for a thread (`hash_threads + hash_queue`).
    admitted: Arc<Semaphore>,
    /// Checks hashing (`hash_threads`).
    hashing: Arc<Semaphore>,
    by_address: Throttle<IpAddr>,
    by_room: Throttle<RoomId>,
    /// A longer password cannot be any room's (create refuses it): no need to hash it.
    max_password_bytes: usize,
}

impl PasswordGate {
    pub fn new(config: PasswordsConfig, max_password_bytes: usize) -> Self {
        let threads = config.hash_threads.max(1);
        Self {
            admitted: Arc::new(Semaphore::new(threads + config.hash_queue)),
            hashing: Arc::new(Semaphore::new(threads)),
            by_address: Throttle::new(AttemptScope::Address, config.attempts_per_address),
            by_room: Throttle::new(AttemptScope::Room, config.attempts_per_room),
            max_password_bytes,
            config,
        }
    }

    /// Which of `rooms` (protected rooms: id and password hash) `password` opens, with
    /// the proof to hand that room; `None` when it opens none (a failed attempt, counted
    /// against `client` and every room in `rooms`).
    pub async fn open(
        &self,
        client: Option<IpAddr>,
        password: &str,
        rooms: &[(RoomId, String)],
    ) -> Result<Option<(RoomId, PasswordProof)>, RoomError> {
        let now = Instant::now();
        let client = client.map(address_key);
        let ids: Vec<RoomId> = rooms.iter().map(|(id, _)| *id).collect();
        if let Some(ip) = client {
            self.by_address.take(&[ip], now)?;
        }
        if let Err(e) = self.by_room.take(&ids, now) {
            self.refund(client, &[], now);
            return Err(e);
        }
        let found = if password.len() > self.max_password_bytes {
            None
        } else {
            let password = password.to_string();
            let rooms = rooms.to_vec();
            let checked = self
                .run(move || {
                    rooms
                        .into_iter()
                        .find(|(_, hash)| secrets::verify_password(&password, hash))
                })
                .await;
            match checked {
                Ok(found) => found,
                Err(e) => {
                    // Refused before hashing (busy): the attempt did not happen.
                    self.refund(client, &ids, Instant::now());
                    return Err(e);
                }
            }
        };
        if found.is_some() {
            self.refund(client, &ids, Instant::now());
        }
        Ok(found.map(|(id, hash)| (id, PasswordProof::verified(&hash))))
    }

    /// Whether `password` matches any of `hashes` (`room.create`'s uniqueness rule). Not
    /// throttled: there are at most `max_rooms_per_name` hashes, and a miss creates a
    /// room, which fills the name.
    pub async fn matches_any(
        &self,
        password: &str,
        hashes: Vec<String>,
    ) -> Result<bool, RoomError> {
        if password.len() > self.max_password_bytes || hashes.is_empty() {
            return Ok(false);
        }
        let password = password.to_string();
        self.run(move || {
            hashes
                .iter()
                .any(|hash| secrets::verify_password(&password, hash))
        })
        .await
    }

    /// A new room's password hash.
    pub async fn hash(&self, password: &str) -> Result<String, RoomError> {
        let password = password.to_string();
        self.run(move || secrets::hash_password(&password)).await?
    }

    /// Runs `work` on the blocking pool once a hashing thread is free, or refuses at once
    /// when the queue for one is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RoomError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| RoomError::PasswordChecksBusy(self.config.hash_queue))?;
        let hashing = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RoomError::Unavailable("password checks are shut down".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, hashing);
            work()
        })
        .await
        .map_err(|e| RoomError::Unavailable(format!("password check failed: {e}")))
    }

    fn refund(&self, client: Option<IpAddr>, rooms: &[RoomId], now: Instant) {
        if let Some(ip) = client {
            self.by_address.refund(&[ip], now);
        }
        self.by_room.refund(rooms, now);
    }
}

/// The throttle key of a client address: IPv4 as is (also when mapped into IPv6), IPv6
/// by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(segments))
            }
        },
    }
}

/// Token buckets of failed attempts, one per key.
struct Throttle<K> {
    scope: AttemptScope,
    /// Bucket size and refill per minute; 0: no limit.
    per_minute: u32,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Copy> Throttle<K> {
    fn new(scope: AttemptScope, per_minute: u32) -> Self {
        Self {
            scope,
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn capacity(&self) -> f64 {
        f64::from(self.per_minute)
    }

    /// Tokens refilled per second.
    fn rate(&self) -> f64 {
        self.capacity() / 60.0
    }

    /// `bucket` brought up to `now`.
    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed * self.rate()).min(self.capacity()),
            at: now,
        }
    }

    /// Takes one token from each key's bucket, or none when any of them is empty.
    fn take(&self, keys: &[K], now: Instant) -> Result<(), RoomError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("throttle poisoned");
        let full = Bucket {
            tokens: self.capacity(),
            at: now,
        };
        let mut short = 0.0_f64;
        for key in keys {
            let bucket = buckets.get(key).map_or(full, |b| self.refilled(*b, now));
            if bucket.tokens < 1.0 {
                short = short.max(1.0 - bucket.tokens);
            }
        }
        if short > 0.0 {
            return Err(RoomError::PasswordAttempts {
                scope: self.scope,
                limit: self.per_minute,
                retry_after_secs: (short / self.rate()).ceil().max(1.0) as u64,
            });
        }
        for key in keys {
            let bucket = buckets.get(key).map_or(full, |b| self.refilled(*b, now));
            if !buckets.contains_key(key) && !self.make_room(&mut buckets, now) {
                continue;
            }
            buckets.insert(
                *key,
                Bucket {
                    tokens: bucket.tokens - 1.0,
                    at: now,
                },
            );
        }
        Ok(())
    }

    /// Gives back the tokens [`Throttle::take`] took (the password matched).
    fn refund(&self, keys: &[K], now: Instant) {
        if self.per_minute == 0 {
            return;
        }
        let mut buckets = self.buckets.lock().expect("throttle poisoned");
        for key in keys {
            if let Some(bucket) = buckets.get(key).copied() {
                let mut bucket = self.refilled(bucket, now);
                bucket.tokens = (bucket.tokens + 1.0).min(self.capacity());
                buckets.insert(*key, bucket);
            }
        }
    }

    /// Whether one more key may be tracked, after dropping refilled buckets if needed.
    fn make_room(&self, buckets: &mut HashMap<K, Bucket>, now: Instant) -> bool {
        if buckets.len() < MAX_TRACKED {
            return true;
        }
        let capacity = self.capacity();
        buckets.retain(|_, b| self.refilled(*b, now).tokens < capacity);
        buckets.len() < MAX_TRACKED
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(threads: usize, queue: usize, per_address: u32, per_room: u32) -> PasswordsConfig {
        PasswordsConfig {
            hash_threads: threads,
            hash_queue: queue,
            attempts_per_address: per_address,
            attempts_per_room: per_room,
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_bucket_holds_the_limit_and_refills_at_it() {
        let t = Throttle::new(AttemptScope::Address, 3);
        let now = Instant::now();
        for _ in 0..3 {
            t.take(&[1], now).unwrap();
        }
        let err = t.take(&[1], now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Too many failed password attempts from your address: the limit is 3 per minute; retry in 20 s"
        );
        assert_eq!(err.retry_after_secs(), Some(20));
        // Another key has its own bucket.
        t.take(&[2], now).unwrap();
        // One token comes back every 20 s.
        t.take(&[1], now + Duration::from_secs(20)).unwrap();
        assert!(t.take(&[1], now + Duration::from_secs(21)).is_err());
        // A refund gives one back.
        t.refund(&[1], now + Duration::from_secs(21));
        t.take(&[1], now + Duration::from_secs(21)).unwrap();
    }

    #[test]
    fn several_keys_are_taken_all_or_none() {
        let t = Throttle::new(AttemptScope::Room, 1);
        let now = Instant::now();
        t.take(&[1], now).unwrap();
        let err = t.take(&[2, 1], now).unwrap_err();
        assert!(err.to_string().contains("on this room"), "{err}");
        // Key 2 was not charged by the refused attempt.
        t.take(&[2], now).unwrap();
    }

    #[test]
    fn zero_means_no_limit() {
        let t = Throttle::new(AttemptScope::Room, 0);
        let now = Instant::now();
        for _ in 0..1000 {
            t.take(&[1], now).unwrap();
        }
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a = address_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = address_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = address_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            address_key("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn only_failures_count_against_the_address() {
        let gate = PasswordGate::new(config(1, 8, 2, 0), 1024);
        let hash = secrets::hash_password("right").unwrap();
        let room = RoomId::new_random();
        let rooms = [(room, hash)];
        for _ in 0..5 {
            let opened = gate.open(ip("192.0.2.1"), "right", &rooms).await.unwrap();
            assert_eq!(opened.map(|(id, _)| id), Some(room));
        }
        for _ in 0..2 {
            assert!(
                gate.open(ip("192.0.2.1"), "wrong", &rooms)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        let err = gate
            .open(ip("192.0.2.1"), "right", &rooms)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RoomError::PasswordAttempts {
                    scope: AttemptScope::Address,
                    limit: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        // Another address is not affected.
        assert!(
            gate.open(ip("192.0.2.2"), "right", &rooms)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_full_hashing_queue_refuses_at_once_naming_it() {
        let gate = PasswordGate::new(config(1, 0, 0, 0), 1024);
        // Hold the only place, as a check in progress would.
        let _busy = gate.admitted.clone().try_acquire_owned().unwrap();
        let rooms = [(RoomId::new_random(), secrets::hash_password("x").unwrap())];
        let err = gate.open(ip("192.0.2.1"), "x", &rooms).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Server busy: too many password checks waiting (limit 0); retry shortly"
        );
        assert!(matches!(
            gate.matches_any("x", vec![rooms[0].1.clone()]).await,
            Err(RoomError::PasswordChecksBusy(0))
        ));
    }

    #[tokio::test]
    async fn a_busy_refusal_costs_no_attempt() {
        let gate = PasswordGate::new(config(1, 0, 1, 1), 1024);
        let rooms = [(RoomId::new_random(), secrets::hash_password("x").unwrap())];
        let busy = gate.admitted.clone().try_acquire_owned().unwrap();
        for _ in 0..3 {
            assert!(matches!(
                gate.open(ip("192.0.2.1"), "wrong", &rooms).await,
                Err(RoomError::PasswordChecksBusy(0))
            ));
        }
        drop(busy);
        assert!(
            gate.open(ip("192.0.2.1"), "wrong", &rooms)
                .await
                .unwrap()
                .is_none()
        );
    }
}
