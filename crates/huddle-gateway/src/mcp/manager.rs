//! rmcp's session manager, kept in step with our session table, and the session cap.
//!
//! rmcp's [`LocalSessionManager`] holds one worker task per session; [`Sessions`] holds
//! what a session remembers. [`Manager`] wraps the former so that the two always hold
//! the same sessions, whatever ends one:
//! - a session enters our table when rmcp creates it (not once its `initialize` is
//!   answered: a client that goes away mid-handshake leaves a session that expires like
//!   any other, instead of an rmcp worker nobody sweeps);
//! - every close goes through [`Manager::close_session`], which drops our side too: our
//!   DELETE and idle expiry, and rmcp closing a session whose worker ended (a failed
//!   handshake, the transport closed).
//!
//! Creating a session takes a place under the cap ([`Sessions::reserve`]). When the table
//! is full, an idle session without a GET stream gives its place up (evicted: ours is
//! ended by the table, rmcp's here); with none that can, creation fails and [`refused`]
//! tells the HTTP layer, which answers 503.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker, create_local_session,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};

use super::session::Sessions;

/// Why rmcp's session operations fail.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("{}", too_many_sessions(*.0))]
    Full(usize),
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

/// The refusal names the limit.
pub fn too_many_sessions(limit: usize) -> String {
    format!("Too many MCP sessions: the limit is {limit}")
}

tokio::task_local! {
    /// Set when a session creation inside [`refused`] hit the cap.
    static REFUSED: Cell<bool>;
}

/// Runs `f` (a request handed to rmcp) and says whether it tried to create a session
/// beyond the cap.
pub async fn refused<F: Future>(f: F) -> (F::Output, bool) {
    REFUSED
        .scope(Cell::new(false), async move {
            let out = f.await;
            (out, REFUSED.with(Cell::get))
        })
        .await
}

/// [`LocalSessionManager`] with our [`Sessions`] kept in step (see the module docs).
pub struct Manager {
    local: LocalSessionManager,
    sessions: Arc<Sessions>,
    /// In cluster mode, this node's id: the ids of the sessions made here name it.
    node: Option<String>,
}

impl Manager {
    /// `node`: this node's id in cluster mode (`None`: rmcp's own session ids).
    pub fn new(local: LocalSessionManager, sessions: Arc<Sessions>, node: Option<String>) -> Self {
        Self {
            local,
            sessions,
            node,
        }
    }

    /// rmcp's session, under an id that names `node` (rmcp's `create_session` with our
    /// id: the same worker, registered the same way).
    async fn create_named(&self, node: &str) -> (SessionId, WorkerTransport<LocalSessionWorker>) {
        let id: SessionId = super::cluster::session_id(node).into();
        let (handle, worker) = create_local_session(id.clone(), self.local.session_config.clone());
        self.local.sessions.write().await.insert(id.clone(), handle);
        (id, WorkerTransport::spawn(worker))
    }
}

// Through a generic function, the streams carry the trait's bounds (`Sync` included).
async fn stream<M: SessionManager>(
    manager: &M,
    id: &SessionId,
    message: ClientJsonRpcMessage,
) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, M::Error> {
    manager.create_stream(id, message).await
}

async fn standalone<M: SessionManager>(
    manager: &M,
    id: &SessionId,
) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, M::Error> {
    manager.create_standalone_stream(id).await
}

async fn resumed<M: SessionManager>(
    manager: &M,
    id: &SessionId,
    last_event_id: String,
) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, M::Error> {
    manager.resume(id, last_event_id).await
}

impl SessionManager for Manager {
    type Error = ManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let Some(place) = self.sessions.reserve() else {
            let _ = REFUSED.try_with(|r| r.set(true));
            return Err(ManagerError::Full(self.sessions.max()));
        };
        if let Some(evicted) = place.evicted() {
            tracing::debug!(session = %evicted, "MCP session evicted for a new one (the table is full)");
            if let Err(e) = self.local.close_session(&evicted.into()).await {
                tracing::debug!(session = %evicted, error = %e, "closing rmcp session");
            }
        }
        let (id, transport) = match &self.node {
            Some(node) => self.create_named(node).await,
            None => self.local.create_session().await?,
        };
        // No await since rmcp registered it: ours is registered with it.
        place.fill(&id);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.local.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.local.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.sessions.remove(id);
        Ok(self.local.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(stream(&self.local, id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.local.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(standalone(&self.local, id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(resumed(&self.local, id, last_event_id).await?)
    }

    // `restore_session` keeps its default (not supported): no session store is
    // configured, and a restored session would bypass the cap.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn our_table_follows_rmcp_and_the_cap_holds() {
        let sessions = Arc::new(Sessions::new(2, 10));
        let manager = Manager::new(LocalSessionManager::default(), sessions.clone(), None);
        let (a, _a) = manager.create_session().await.unwrap();
        let (b, _b) = manager.create_session().await.unwrap();
        // Registered as soon as rmcp has it, before any handshake.
        assert!(sessions.get(&a).is_some() && sessions.get(&b).is_some());
        // Both listening on GET streams: neither gives way.
        let _streams = [&a, &b].map(|id| sessions.get(id).unwrap().open_live());
        let (third, refused_) = refused(manager.create_session()).await;
        assert!(refused_);
        assert_eq!(
            third.err().map(|e| e.to_string()).as_deref(),
            Some("Too many MCP sessions: the limit is 2")
        );
        let (_, outside) = refused(manager.has_session(&a)).await;
        assert!(!outside);
        // rmcp closes a session whose worker ended (the transport closed, a failed
        // handshake) through the manager: ours ends with it, and its place is free.
        manager.close_session(&b).await.unwrap();
        assert!(sessions.get(&b).is_none());
        assert!(!manager.has_session(&b).await.unwrap());
        let (c, _c) = manager.create_session().await.unwrap();
        assert_eq!(sessions.len(), 2);
        // And what ends on our side (DELETE, expiry) closes rmcp's.
        manager.close_session(&c).await.unwrap();
        assert!(!manager.has_session(&c).await.unwrap());
        assert_eq!(sessions.len(), 1);
    }

    #[tokio::test]
    async fn in_cluster_mode_session_ids_name_the_node() {
        let sessions = Arc::new(Sessions::new(2, 10));
        let named = Manager::new(
            LocalSessionManager::default(),
            sessions.clone(),
            Some("huddle-2".into()),
        );
        let (id, _t) = named.create_session().await.unwrap();
        assert_eq!(super::super::cluster::home_of(&id), Some("huddle-2"));
        // Registered on both sides, as rmcp's own ids are.
        assert!(sessions.get(&id).is_some());
        assert!(named.has_session(&id).await.unwrap());
        named.close_session(&id).await.unwrap();
        assert!(!named.has_session(&id).await.unwrap() && sessions.get(&id).is_none());
        // Outside cluster mode, rmcp's ids (no node in them).
        let plain = Manager::new(LocalSessionManager::default(), sessions, None);
        let (id, _t) = plain.create_session().await.unwrap();
        assert_eq!(super::super::cluster::home_of(&id), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_an_idle_session_on_both_sides() {
        let sessions = Arc::new(Sessions::new(2, 10));
        let manager = Manager::new(LocalSessionManager::default(), sessions.clone(), None);
        let (idle, _idle) = manager.create_session().await.unwrap();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let (busy, _busy) = manager.create_session().await.unwrap();
        let (fresh, refused_) = refused(manager.create_session()).await;
        assert!(!refused_, "an idle session gives way instead of a refusal");
        let (fresh, _fresh) = fresh.unwrap();
        // The longest idle went, from our table and from rmcp's.
        assert!(sessions.get(&idle).is_none());
        assert!(!manager.has_session(&idle).await.unwrap());
        for id in [&busy, &fresh] {
            assert!(sessions.get(id).is_some());
            assert!(manager.has_session(id).await.unwrap());
        }
        assert_eq!(sessions.len(), 2);
    }
}
