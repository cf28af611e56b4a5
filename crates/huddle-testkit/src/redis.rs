//! [`KitRedis`]: the `redis-server` of one [`crate::TestCluster`], a child process on a
//! free loopback port with nothing persisted (`--save '' --appendonly no`), so a
//! restart comes back empty, as a Redis that lost its memory would.
//!
//! When no `redis-server` is on the `PATH` it panics saying how to get one
//! (`make test-deps`): a cluster test fails rather than skips.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// A throwaway Redis; killed on drop.
pub struct KitRedis {
    port: u16,
    child: Mutex<Option<Child>>,
}

impl KitRedis {
    /// A new, empty server on a free port; returns once it answers `PING`.
    pub fn start() -> KitRedis {
        let port = crate::free_port();
        let redis = KitRedis {
            port,
            child: Mutex::new(None),
        };
        redis.spawn();
        redis
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `kill -9` the server (nodes see their Redis gone).
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts an empty one on the same port.
    pub fn restart_empty(&self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&self) {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): the cluster tests need it; run \
                     `make test-deps` (installs the Debian package `redis-server`)"
                )
            });
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        for _ in 0..200 {
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server on port {port} did not answer PING within 5 s");
    }
}

impl Drop for KitRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One inline `PING` over a plain socket: `+PONG` back.
fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
