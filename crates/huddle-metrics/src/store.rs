//! The store writer: `huddle_store_batch_size` (operations per commit) and
//! `huddle_store_commit_duration_seconds`. Group commit makes both worth watching: a
//! growing batch with a growing commit time is a disk that cannot keep up.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::Histogram;

pub(crate) const BATCH_SIZE: &str = "huddle_store_batch_size";

struct Handles {
    batch: Histogram,
    commit: Histogram,
}

fn handles() -> &'static Handles {
    static H: OnceLock<Handles> = OnceLock::new();
    H.get_or_init(|| {
        crate::handle();
        Handles {
            batch: metrics::histogram!(BATCH_SIZE),
            commit: metrics::histogram!("huddle_store_commit_duration_seconds"),
        }
    })
}

/// One commit of `operations` writes that took `elapsed`.
pub fn commit(operations: usize, elapsed: Duration) {
    let h = handles();
    h.batch.record(operations as f64);
    h.commit.record(elapsed.as_secs_f64());
}
