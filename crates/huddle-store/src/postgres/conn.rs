//! Connections: the URL and its `sslmode`, TLS through rustls, the pools, and what a
//! failure of the server means to a caller.
//!
//! `sslmode=disable` never uses TLS; `prefer` (libpq's default) uses it when the server
//! offers it; `require` insists on it. When TLS is used the server's certificate is
//! verified against the platform's roots (stricter than libpq's `require`, which
//! encrypts without checking who answers).
//!
//! A lost server is not fatal: a query on a dead connection fails with
//! [`StoreError::Backend`] naming PostgreSQL, the pool drops that connection when it is
//! handed back, and the next request opens a new one — the node reconnects by itself
//! once the server is back.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Hook, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;

/// How long opening a connection may take before the request fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a writer lane's transaction may wait between two of its statements before
/// the server ends the session (`idle_in_transaction_session_timeout`). A lane never
/// waits longer than a round trip; a node that stops in the middle of a commit
/// (`SIGSTOP`, a frozen VM) would otherwise keep its room rows locked until it runs
/// again, and each room's next owner (with every room on its writer lane) would wait
/// behind them. Shorter than the default lease, so a room taken over is writable by the
/// time the lease let it be taken.
pub(super) const LANE_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(5);

/// The same for the read pool's transactions. A room creation hashes its password before
/// it locks the name, but under the lock it still checks the password against rooms of
/// the name created meanwhile (a hashing thread, then up to `max_rooms_per_name`
/// verifications; seconds at worst under load), so this limit is longer. It bounds how
/// long a stopped node keeps a name locked, and with it every creation of that name on
/// every node.
pub(super) const POOL_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(30);

/// A PostgreSQL failure as a store error, with the server's own message when it sent
/// one (`tokio_postgres::Error`'s `Display` alone says only "db error").
pub(super) fn backend(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        return StoreError::Backend(format!(
            "PostgreSQL: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        ));
    }
    if e.is_closed() {
        return StoreError::Backend("PostgreSQL is unavailable: the connection was lost".into());
    }
    match std::error::Error::source(&e) {
        Some(cause) => StoreError::Backend(format!("PostgreSQL: {e}: {cause}")),
        None => StoreError::Backend(format!("PostgreSQL: {e}")),
    }
}

pub(super) fn unavailable(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => match backend(e) {
            StoreError::Backend(m) => StoreError::Backend(format!("{m} (cannot connect)")),
            other => other,
        },
        PoolError::Timeout(t) => {
            StoreError::Backend(format!("PostgreSQL is unavailable: timed out ({t:?})"))
        }
        e @ (PoolError::Closed | PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_)) => {
            StoreError::Backend(format!("PostgreSQL pool: {e}"))
        }
    }
}

/// Parses `url` (`postgres://user:pass@host:port/db?sslmode=...`). The error never
/// repeats the URL: it may hold a password.
pub(super) fn config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("huddle");
    }
    Ok(config)
}

fn tls() -> Result<MakeRustlsConnect, StoreError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map_err(|e| StoreError::Backend(format!("TLS setup for PostgreSQL: {e}")))?
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A pool of at most `size` connections to `config`, whose transactions the server ends
/// after `idle_limit` without a statement.
pub(super) fn pool(
    config: &tokio_postgres::Config,
    size: usize,
    idle_limit: Duration,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config.clone(),
        tls()?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(CONNECT_TIMEOUT * 2))
        .post_create(Hook::async_fn(move |client, _| {
            Box::pin(async move {
                // Our statements are prepared once per connection and run with new values
                // each time; by default PostgreSQL plans each of the first runs anew and
                // may go on doing so (a custom plan per run: a tenth of the server's time
                // per append here). Their plans do not depend on the values (lookups by
                // key, arrays unnested), so one generic plan serves every run. A server
                // older than PostgreSQL 12 lacks the setting and keeps its default.
                if let Err(e) = client
                    .batch_execute("SET plan_cache_mode = force_generic_plan")
                    .await
                {
                    tracing::debug!(error = %e, "PostgreSQL: plan_cache_mode not set");
                }
                let set = format!(
                    "SET idle_in_transaction_session_timeout = {}",
                    idle_limit.as_millis()
                );
                if let Err(e) = client.batch_execute(&set).await {
                    tracing::warn!(error = %e, "PostgreSQL: idle_in_transaction_session_timeout not set");
                }
                Ok(())
            })
        }))
        .build()
        .map_err(|e| StoreError::Backend(format!("PostgreSQL pool: {e}")))
}

/// The read pool: `size` connections, and a bound on the requests running or waiting
/// for one; past it a request is refused at once with [`StoreError::Busy`].
pub(super) struct Bounded {
    pool: Pool,
    admitted: Arc<Semaphore>,
    limit: usize,
}

/// A pooled connection and the place it holds among the admitted requests.
pub(super) struct Lease {
    pub(super) conn: Object,
    _admitted: OwnedSemaphorePermit,
}

impl Bounded {
    pub(super) fn new(pool: Pool, queue: usize) -> Self {
        let limit = pool.status().max_size.saturating_add(queue);
        Self {
            pool,
            admitted: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
            limit,
        }
    }

    pub(super) async fn get(&self) -> Result<Lease, StoreError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| StoreError::Busy(self.limit))?;
        let conn = self.pool.get().await.map_err(unavailable)?;
        Ok(Lease {
            conn,
            _admitted: admitted,
        })
    }
}
