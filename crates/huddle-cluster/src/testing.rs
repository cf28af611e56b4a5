//! Test helpers (feature `testing`): a throwaway Redis ([`TestRedis`]) and a placement
//! whose view the test sets ([`FixedPlacement`]).
//!
//! [`TestRedis::start`] uses the server at `HUDDLE_TEST_REDIS_URL` when that is set, and
//! otherwise starts one of its own ([`TestRedis::start_own`]): `redis-server` on a free
//! loopback port, without persistence, daemonized with a pid file in a temporary
//! directory. Our server is killed when the value is dropped, and also when the test
//! process exits without dropping it (a detached watcher polls the test process), so a
//! panicking or killed test leaves no server behind.
//!
//! When `redis-server` is missing it panics saying how to get it (`make test-deps`): a
//! test that needs Redis fails rather than skips.
//!
//! A shared server (`HUDDLE_TEST_REDIS_URL`) is shared by every test using it, and the
//! membership keys are fixed: tests that run clusters side by side, or that kill or
//! restart Redis, use [`TestRedis::start_own`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The environment variable naming an existing server to use instead of starting one.
pub const URL_VAR: &str = "HUDDLE_TEST_REDIS_URL";

/// The pid file of our server, in its directory.
const PIDFILE: &str = "redis.pid";

/// A Redis server for one test (or several).
pub struct TestRedis {
    url: String,
    /// Our own server, when we started one.
    server: Option<Server>,
}

struct Server {
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn pidfile(&self) -> PathBuf {
        self.dir.path().join(PIDFILE)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = kill(&self.pidfile()) {
            eprintln!("test Redis did not stop: {e}");
        }
    }
}

impl TestRedis {
    /// A server: `HUDDLE_TEST_REDIS_URL`, or a new one (see the module doc).
    pub fn start() -> Self {
        match std::env::var(URL_VAR) {
            Ok(url) => Self { url, server: None },
            Err(_) => Self::start_own(),
        }
    }

    /// A new server of our own, even when `HUDDLE_TEST_REDIS_URL` is set: for tests
    /// that kill or restart it, or need it to themselves.
    pub fn start_own() -> Self {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!(
                "these tests need Redis and `redis-server` was not found: run `make \
                 test-deps` (installs the Debian package `redis-server`), or set {URL_VAR} \
                 to a server's URL (e.g. redis://127.0.0.1:6379)"
            );
        }
        let mut last = String::new();
        for _ in 0..3 {
            match start_server() {
                Ok(started) => return started,
                Err(e) => last = e,
            }
        }
        panic!("could not start a test redis-server: {last}")
    }

    /// `redis://127.0.0.1:PORT` (or `HUDDLE_TEST_REDIS_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills our server (SIGKILL: like a crash, nothing saved).
    pub fn kill(&self) {
        kill(&self.own("kill").pidfile()).expect("kill the test Redis");
    }

    /// Stops our server (a clean `SHUTDOWN NOSAVE`).
    pub fn stop(&self) {
        let port = self.own("stop").port.to_string();
        // The connection closes as the server exits: the answer is an error, ignored.
        let _ = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port, "shutdown", "nosave"])
            .output();
        let deadline = Instant::now() + Duration::from_secs(10);
        while answers(&port) {
            assert!(Instant::now() < deadline, "the test Redis did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts our server again on the same port, EMPTY (what a Redis without
    /// persistence is after a restart). Kills it first if it still runs.
    pub fn restart(&self) {
        let server = self.own("restart");
        let _ = kill(&server.pidfile());
        run_server(server.dir.path(), server.port).expect("restart the test Redis");
    }

    fn own(&self, what: &str) -> &Server {
        self.server.as_ref().unwrap_or_else(|| {
            panic!("TestRedis::{what} needs a server of our own: use TestRedis::start_own")
        })
    }
}

fn start_server() -> Result<TestRedis, String> {
    let dir = tempfile::Builder::new()
        .prefix("huddle-redis-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let port = huddle_store::testing::free_port()?;
    let server = Server { port, dir };
    run_server(server.dir.path(), port)?;
    watch_process(server.dir.path())?;
    Ok(TestRedis {
        url: format!("redis://127.0.0.1:{port}"),
        server: Some(server),
    })
}

/// Starts `redis-server` daemonized in `dir` and waits until it answers.
fn run_server(dir: &Path, port: u16) -> Result<(), String> {
    let dir_s = dir.to_str().ok_or("temporary paths are UTF-8")?;
    let pidfile = format!("{dir_s}/{PIDFILE}");
    let port_s = port.to_string();
    let args = [
        "--port",
        &port_s,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "yes",
        "--pidfile",
        &pidfile,
        "--dir",
        dir_s,
        "--logfile",
        "redis.log",
    ];
    run("redis-server", &args)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers(&port_s) {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
            return Err(format!("redis-server on port {port} did not answer: {log}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether a Redis answers PING on `port`.
fn answers(port: &str) -> bool {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", port, "ping"])
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
}

/// SIGKILL to the pid in `pidfile` (absent file: nothing runs), then waits for the pid
/// to be gone so the port is free again.
fn kill(pidfile: &Path) -> Result<(), String> {
    let Ok(pid) = std::fs::read_to_string(pidfile) else {
        return Ok(());
    };
    let pid = pid.trim();
    let killed = run("kill", &["-9", pid]);
    std::fs::remove_file(pidfile).map_err(|e| e.to_string())?;
    killed?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        if Instant::now() > deadline {
            return Err(format!("redis-server {pid} survived SIGKILL"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Whether process `pid` still runs (a zombie left for a parent that never reaps it
/// does not: it holds no port).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) state …`: the state follows the last `)`.
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        !state.is_some_and(|s| s.starts_with('Z'))
    })
}

/// A detached watcher that kills the server whose pid file is in `dir` and removes its
/// directory once this process has exited (for a server kept in a `static`, or a test
/// process that was killed).
fn watch_process(dir: &Path) -> Result<(), String> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         [ -f '{f}' ] && kill -9 \"$(cat '{f}')\" 2>/dev/null; rm -rf '{dir}'",
        pid = std::process::id(),
        f = dir.join(PIDFILE).display(),
        dir = dir.display(),
    );
    let detached = format!("({script}) </dev/null >/dev/null 2>&1 &");
    run("sh", &["-c", &detached])
}

/// Runs `program args` to its end; `Err` says what failed, with what it printed.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "{program} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// A placement whose view the test sets (shared by the nodes it stands for), whose lease
/// always holds and which is always registered: for in-process tests of the router and
/// the feeds, where membership is not what is tested (the membership tests run on a
/// real Redis).
pub struct FixedPlacement {
    me: crate::placement::NodeId,
    views: std::sync::Arc<tokio::sync::watch::Sender<std::sync::Arc<crate::placement::View>>>,
}

impl FixedPlacement {
    /// Node `me`, seeing whatever `views` holds (send a new view to change it).
    pub fn new(
        me: &str,
        views: std::sync::Arc<tokio::sync::watch::Sender<std::sync::Arc<crate::placement::View>>>,
    ) -> Self {
        Self {
            me: crate::placement::NodeId::new(me),
            views,
        }
    }
}

#[async_trait::async_trait]
impl crate::placement::Placement for FixedPlacement {
    fn me(&self) -> &crate::placement::NodeId {
        &self.me
    }

    fn view(&self) -> std::sync::Arc<crate::placement::View> {
        self.views.borrow().clone()
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<std::sync::Arc<crate::placement::View>> {
        self.views.subscribe()
    }

    fn lease_deadline(&self) -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(3600))
    }

    fn registered(&self) -> bool {
        true
    }

    async fn refresh(&self) {}
}
