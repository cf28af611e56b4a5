//! `/readyz`: the node takes traffic only while every readiness check passes and it is
//! not draining. The node registers its checks (the store is writable; cluster mode adds
//! its own, such as being registered in the placement store); `/healthz` stays "alive".

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

/// One check: `Ok`, or why the node is not ready.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// How long one check may take before it counts as failed: a store that blocks is not
/// ready, and a probe must answer within the orchestrator's timeout.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The node's readiness checks, run in order on every `/readyz`.
#[derive(Clone, Default)]
pub struct Readiness {
    /// Shared: the node's state, this included, is cloned for every request.
    checks: Arc<Vec<(&'static str, Check)>>,
    /// Cancelled when the node begins to shut down (before it stops serving).
    draining: CancellationToken,
}

impl Readiness {
    /// Adds the check called `name` (named in the answer when it fails).
    pub fn with(mut self, name: &'static str, check: Check) -> Self {
        Arc::make_mut(&mut self.checks).push((name, check));
        self
    }

    /// Not ready once `draining` is cancelled.
    pub fn draining_on(mut self, draining: CancellationToken) -> Self {
        self.draining = draining;
        self
    }

    /// Resolves when the node begins to shut down (never for a default `Readiness`).
    pub async fn drained(&self) {
        self.draining.cancelled().await;
    }

    /// `Ok`, or `draining`, or the first failing check's `name: reason`.
    pub async fn check(&self) -> Result<(), String> {
        if self.draining.is_cancelled() {
            return Err("draining".into());
        }
        for (name, check) in self.checks.iter() {
            match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Err(format!("{name}: {why}")),
                Err(_) => {
                    return Err(format!(
                        "{name}: no answer within {} s",
                        CHECK_TIMEOUT.as_secs()
                    ));
                }
            }
        }
        Ok(())
    }
}
