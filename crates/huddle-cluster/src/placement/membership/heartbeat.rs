//! The renewal loop and what it maintains: the lease deadline, the published view, and
//! one warning per Redis outage (not one per failed attempt).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::roster::{self, Mode, Roster};
use super::{ADDR_KEY, MAX_NODES, NODES_KEY, PlacementError, Stage};
use crate::placement::{Peer, View};

/// What the membership and its heartbeat task share.
pub(super) struct Shared {
    /// This node as peers see it.
    pub me: Peer,
    /// `addr|version`, as registered.
    entry: String,
    /// The Redis address for errors and logs (no password).
    url: String,
    /// A multiplexed connection that reconnects by itself (after a Redis restart too).
    conn: ConnectionManager,
    script: redis::Script,
    pub ttl: Duration,
    /// The [`Stage`] this node is at.
    pub stage: AtomicU8,
    /// The current view, published only when it changes.
    pub view: watch::Sender<Arc<View>>,
    /// Until when this node's lease surely holds (see [`lease_margin`]). A std mutex:
    /// held for a copy, never across an await.
    lease: Mutex<Option<Instant>>,
    /// What was last logged about Redis's health, so a state is logged once.
    health: Mutex<Health>,
    /// One forced read at a time; when it ends, the callers that waited behind it take
    /// its result instead of reading again (a burst of `NotOwner` answers costs Redis one
    /// read, not one per call).
    refreshing: tokio::sync::Mutex<()>,
    /// When the last forced read ended.
    refreshed: Mutex<Option<Instant>>,
    /// When the published view last changed.
    pub changed_at: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Health {
    /// Renewals (or reads) are failing.
    outage: bool,
    /// The last refusal logged about the member list: (live members, malformed).
    complaint: Option<(u64, usize)>,
}

/// How much earlier than `send time + TTL` this node stops trusting its lease:
/// max(TTL/10, 500 ms), at most half the TTL.
///
/// Redis stamps the expiry when the script runs, after this node sent the renewal, so
/// by Redis's clock the lease lasts at least `send time + TTL`. The margin covers what
/// that does not: the two clocks running at slightly different rates over a TTL, and
/// the time between a room checking the deadline and its answer leaving the node.
/// 500 ms dwarfs both on any sane machine; a tenth scales it for long TTLs.
pub(super) fn lease_margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(500)).min(ttl / 2)
}

impl Shared {
    pub fn new(me: Peer, url: String, conn: ConnectionManager, ttl: Duration) -> Self {
        Self {
            entry: roster::entry(&me.addr, me.version),
            me,
            url,
            conn,
            script: roster::script(),
            ttl,
            stage: AtomicU8::new(Stage::Idle as u8),
            view: watch::channel(Arc::new(View::default())).0,
            lease: Mutex::new(None),
            health: Mutex::new(Health::default()),
            refreshing: tokio::sync::Mutex::new(()),
            refreshed: Mutex::new(None),
            changed_at: Mutex::new(None),
        }
    }

    /// One renewal: on success the lease deadline moves to its send time + TTL − margin,
    /// the node counts as registered and the answered members become the view. On
    /// failure nothing changes (the view is kept, the deadline passes by itself).
    pub async fn renew(&self) -> Result<(), PlacementError> {
        let sent = Instant::now();
        let roster = self.exchange(Mode::Renew).await?;
        // A deregistration that raced this renewal wins: no lease, no self in the view.
        let registered = self
            .stage
            .compare_exchange(
                Stage::Joining as u8,
                Stage::Registered as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map_or_else(|now| now == Stage::Registered as u8, |_| true);
        if registered {
            *lock(&self.lease) = Some(sent + self.ttl - lease_margin(self.ttl));
        }
        self.publish(roster);
        Ok(())
    }

    /// One read of the members now; a failure is logged like a failed renewal and
    /// keeps the view.
    pub async fn refresh(&self) {
        let asked = Instant::now();
        let _one_at_a_time = self.refreshing.lock().await;
        if lock(&self.refreshed).is_some_and(|ended| ended >= asked) {
            return;
        }
        if let Ok(roster) = self.exchange(Mode::Read).await {
            self.publish(roster);
        }
        *lock(&self.refreshed) = Some(Instant::now());
    }

    /// Removes this node from Redis.
    pub async fn leave(&self) -> Result<(), PlacementError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zrem(NODES_KEY, self.me.id.as_str())
            .hdel(ADDR_KEY, self.me.id.as_str());
        let call = pipe.query_async::<()>(&mut conn);
        self.timed(call).await
    }

    pub fn lease_deadline(&self) -> Option<Instant> {
        *lock(&self.lease)
    }

    /// Ends the lease now (a leaving node no longer owns anything for sure).
    pub fn end_lease(&self) {
        let mut lease = lock(&self.lease);
        if lease.is_some() {
            *lease = Some(Instant::now());
        }
    }

    pub fn publish_without_me(&self) {
        let view = self.view.borrow().clone();
        let others = view.nodes().iter().filter(|p| p.id != self.me.id).cloned();
        self.set_view(View::new(others.collect()));
    }

    /// One script call, bounded by a third of the TTL, its failure logged once per
    /// outage.
    async fn exchange(&self, mode: Mode) -> Result<Roster, PlacementError> {
        let mut conn = self.conn.clone();
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let call = roster::invocation(&self.script, mode, &self.me.id, &self.entry, ttl_ms);
        let answer = self
            .timed(call.invoke_async::<redis::Value>(&mut conn))
            .await
            .and_then(|value| {
                roster::decode(value).map_err(|what| PlacementError::Garbled {
                    url: self.url.clone(),
                    what,
                })
            });
        let renewal = matches!(mode, Mode::Renew);
        match &answer {
            Ok(_) => {
                self.healthy();
                if renewal {
                    huddle_metrics::cluster::lease_renewed();
                }
            }
            Err(e) => {
                self.failing(e);
                if renewal {
                    huddle_metrics::cluster::lease_renewal_failed();
                }
            }
        }
        answer
    }

    async fn timed<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, PlacementError> {
        let timeout = self.ttl / 3;
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(PlacementError::Redis {
                url: self.url.clone(),
                source,
            }),
            Err(_) => Err(PlacementError::Timeout {
                url: self.url.clone(),
                timeout,
            }),
        }
    }

    /// The roster as a view: this node in it exactly while it is registered (with its
    /// own entry, whatever Redis held), at most [`MAX_NODES`] nodes.
    fn publish(&self, roster: Roster) {
        self.complain(&roster);
        let registered = Stage::load(&self.stage) == Stage::Registered;
        let mut nodes: Vec<Peer> = roster
            .peers
            .into_iter()
            .filter(|p| p.id != self.me.id)
            .collect();
        if registered {
            nodes.truncate(MAX_NODES - 1);
            nodes.push(self.me.clone());
        }
        nodes.truncate(MAX_NODES);
        self.set_view(View::new(nodes));
    }

    fn set_view(&self, view: View) {
        self.view.send_if_modified(|current| {
            let changed = **current != view;
            if changed {
                tracing::info!(
                    nodes = view.nodes().len(),
                    "cluster view changed: {}",
                    names(&view)
                );
                *current = Arc::new(view);
                *lock(&self.changed_at) = Some(Instant::now());
            }
            changed
        });
    }

    /// Logs a refused member list once per distinct refusal.
    fn complain(&self, roster: &Roster) {
        let now =
            (roster.over_cap() || roster.malformed > 0).then_some((roster.live, roster.malformed));
        let mut health = lock(&self.health);
        if health.complaint == now {
            return;
        }
        health.complaint = now;
        if roster.over_cap() {
            tracing::warn!(
                live = roster.live,
                "Too many cluster nodes in Redis: the limit is {MAX_NODES}; the view keeps \
                 {MAX_NODES} of {} and ignores the rest",
                roster.live
            );
        }
        if roster.malformed > 0 {
            tracing::warn!(
                malformed = roster.malformed,
                "ignored {} malformed cluster members in Redis (no address, or an id or \
                 address that is too long or not `addr|version`)",
                roster.malformed
            );
        }
    }

    fn healthy(&self) {
        let mut health = lock(&self.health);
        if health.outage {
            health.outage = false;
            tracing::info!(redis = %self.url, "cluster membership: Redis answers again");
        }
    }

    fn failing(&self, error: &PlacementError) {
        let mut health = lock(&self.health);
        if !health.outage {
            health.outage = true;
            tracing::warn!(
                redis = %self.url,
                "cluster membership: {error}; keeping the last view until Redis answers \
                 (logged once per outage)"
            );
        }
    }
}

/// Starts renewing every third of the TTL (the first renewal was `register`'s).
pub(super) fn spawn(shared: Arc<Shared>) -> JoinHandle<()> {
    let period = shared.ttl / 3;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A failure is logged by `exchange`; the loop goes on until stopped.
            let _ = shared.renew().await;
        }
    })
}

fn names(view: &View) -> String {
    let names: Vec<_> = view
        .nodes()
        .iter()
        .map(|p| p.id.as_str())
        .take(16)
        .collect();
    let more = view.nodes().len().saturating_sub(names.len());
    if more > 0 {
        format!("{} and {more} more", names.join(", "))
    } else {
        names.join(", ")
    }
}

/// Locks a std mutex, recovering from poisoning (the data is plain values).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_margin_is_a_tenth_of_the_ttl_at_least_half_a_second_at_most_half() {
        let ms = |n| Duration::from_millis(n);
        assert_eq!(lease_margin(ms(1_000)), ms(500));
        assert_eq!(lease_margin(ms(3_000)), ms(500));
        assert_eq!(lease_margin(ms(10_000)), ms(1_000));
        assert_eq!(lease_margin(ms(60_000)), ms(6_000));
        assert_eq!(lease_margin(ms(800)), ms(400));
    }
}
