//! Cluster mode: `huddle_forwarded_calls_total{outcome}` (room operations sent to their
//! owner on another node: `ok`, `not_owner` — re-resolved and retried —, `failed`),
//! `huddle_lease_renewals_total` and `huddle_lease_renewal_failures_total` (this node's
//! lease in Redis renewed, or a renewal that failed: past the lease deadline, failures
//! in a row mean other nodes may take this node's rooms),
//! `huddle_rooms_taken_over_total` (rooms this node activated under a new epoch) and
//! `huddle_rooms_handed_over_total` (rooms this node released because another node
//! owns them now), and the gauge `huddle_cluster_nodes` (the live nodes in this node's
//! view: every node of a healthy cluster shows the same number). Upstream feeds have
//! their own gauge ([`crate::upstream`]).

use std::sync::OnceLock;

use metrics::{Counter, Gauge};

/// How a forwarded call ended, from the forwarding node's side.
#[derive(Clone, Copy, Debug)]
pub enum Forwarded {
    Ok,
    NotOwner,
    Failed,
}

struct Handles {
    forwarded: [Counter; 3],
    renewed: Counter,
    lost: Counter,
    taken: Counter,
    handed: Counter,
    nodes: Gauge,
}

fn handles() -> &'static Handles {
    static H: OnceLock<Handles> = OnceLock::new();
    H.get_or_init(|| {
        crate::handle();
        let forwarded = |outcome: &'static str| {
            metrics::counter!("huddle_forwarded_calls_total", "outcome" => outcome)
        };
        Handles {
            forwarded: [
                forwarded("ok"),
                forwarded("not_owner"),
                forwarded("failed"),
            ],
            renewed: metrics::counter!("huddle_lease_renewals_total"),
            lost: metrics::counter!("huddle_lease_renewal_failures_total"),
            taken: metrics::counter!("huddle_rooms_taken_over_total"),
            handed: metrics::counter!("huddle_rooms_handed_over_total"),
            nodes: metrics::gauge!("huddle_cluster_nodes"),
        }
    })
}

pub fn forwarded(outcome: Forwarded) {
    handles().forwarded[outcome as usize].increment(1);
}

pub fn lease_renewed() {
    handles().renewed.increment(1);
}

pub fn lease_renewal_failed() {
    handles().lost.increment(1);
}

pub fn room_taken_over() {
    handles().taken.increment(1);
}

pub fn rooms_handed_over(n: u64) {
    handles().handed.increment(n);
}

/// The live nodes in this node's view, as it changes.
pub fn view_size(nodes: usize) {
    handles().nodes.set(nodes as f64);
}
