//! [`LinkProxy`]: a TCP link that a test can cut. It listens on a free loopback port and
//! forwards every connection to a target; [`LinkProxy::cut`] drops every open connection
//! and closes each new one at once (a partition both ways), [`LinkProxy::heal`] lets
//! connections through again.
//!
//! Put in front of a node's internal listener and given to the other nodes as that
//! node's advertised address, it splits the node from its peers while clients still
//! reach its public port.
//!
//! It runs on a thread and runtime of its own, so a test blocked in a synchronous call
//! (stopping PostgreSQL, waiting for a process) does not stall the traffic it carries.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How a link is, as its forwarding tasks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Cut,
    /// The proxy is dropped: every task ends.
    Gone,
}

/// A cuttable TCP forwarder on `127.0.0.1:<free port>`; stops when dropped.
pub struct LinkProxy {
    addr: SocketAddr,
    target: SocketAddr,
    state: watch::Sender<State>,
}

impl LinkProxy {
    /// A link to `target`, open.
    pub fn start(target: SocketAddr) -> LinkProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a link proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("the proxy's address");
        let (state, watch) = watch::channel(State::Open);
        std::thread::Builder::new()
            .name(format!("link-proxy-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the link proxy's runtime");
                runtime.block_on(serve(listener, target, watch));
            })
            .expect("spawn the link proxy's thread");
        LinkProxy {
            addr,
            target,
            state,
        }
    }

    /// Where clients of the link connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the link leads.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Drops every connection through the link and closes each new one at once.
    pub fn cut(&self) {
        self.state.send_replace(State::Cut);
    }

    /// Lets new connections through again.
    pub fn heal(&self) {
        self.state.send_replace(State::Open);
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        *self.state.borrow() == State::Cut
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.state.send_replace(State::Gone);
    }
}

async fn serve(
    listener: std::net::TcpListener,
    target: SocketAddr,
    mut state: watch::Receiver<State>,
) {
    let listener = TcpListener::from_std(listener).expect("a tokio listener");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            changed = state.changed() => match changed {
                Ok(()) if *state.borrow() != State::Gone => continue,
                // Dropped: stop listening (the runtime's end drops every connection).
                _ => return,
            },
        };
        let Ok((client, _)) = accepted else {
            // Out of descriptors or the like: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        match *state.borrow() {
            State::Open => {}
            // Closed at once: the peer sees the connection end, as through a cut cable
            // whose far end resets.
            State::Cut => continue,
            State::Gone => return,
        }
        tokio::spawn(forward(client, target, state.clone()));
    }
}

/// Copies both ways until either side closes or the link is cut.
async fn forward(mut client: TcpStream, target: SocketAddr, mut state: watch::Receiver<State>) {
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let cut = async {
        let _ = state.wait_for(|s| *s != State::Open).await;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        () = cut => {}
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};

    use super::*;

    /// A blocking echo server on a free port: each connection gets its bytes back.
    fn echo_server() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Whether `hello` comes back through `s`.
    fn echoes(s: &mut TcpStream) -> bool {
        if s.write_all(b"hello").is_err() {
            return false;
        }
        let mut got = [0u8; 5];
        s.read_exact(&mut got).is_ok() && &got == b"hello"
    }

    #[test]
    fn a_cut_link_drops_open_connections_and_refuses_new_ones_until_healed() {
        let proxy = LinkProxy::start(echo_server());
        let mut open = connect(proxy.addr());
        assert!(echoes(&mut open), "an open link forwards");

        proxy.cut();
        assert!(proxy.is_cut());
        // The open connection ends (EOF or reset) rather than staying silent until the
        // read times out.
        let mut rest = Vec::new();
        match open.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "a cut link delivered {rest:?}"),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ),
                "an open connection outlived the cut: {e}"
            ),
        }
        let mut fresh = connect(proxy.addr());
        assert!(!echoes(&mut fresh), "a cut link forwarded a new connection");

        proxy.heal();
        let mut healed = connect(proxy.addr());
        assert!(echoes(&mut healed), "a healed link forwards again");
        healed.shutdown(Shutdown::Both).unwrap();
    }
}
