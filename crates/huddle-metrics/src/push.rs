//! A2A push notifications: `huddle_push_deliveries_total` (accepted by the endpoint),
//! `huddle_push_retries_total` (a failed attempt tried again) and
//! `huddle_push_give_ups_total` (a message not delivered after its attempts).

use std::sync::OnceLock;

use metrics::Counter;

struct Handles {
    delivered: Counter,
    retried: Counter,
    given_up: Counter,
}

fn handles() -> &'static Handles {
    static H: OnceLock<Handles> = OnceLock::new();
    H.get_or_init(|| {
        crate::handle();
        Handles {
            delivered: metrics::counter!("huddle_push_deliveries_total"),
            retried: metrics::counter!("huddle_push_retries_total"),
            given_up: metrics::counter!("huddle_push_give_ups_total"),
        }
    })
}

pub fn delivered() {
    handles().delivered.increment(1);
}

pub fn retried() {
    handles().retried.increment(1);
}

pub fn given_up() {
    handles().given_up.increment(1);
}
