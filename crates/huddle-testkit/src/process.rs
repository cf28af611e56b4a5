//! The real `huddle` binary as a child process: [`Server`] runs `huddle serve` on
//! 127.0.0.1:0 in its own data dir and waits for its readiness line; [`huddle_command`]
//! is any other `huddle ...` run with the caller's `HUDDLE_*` environment removed.
//!
//! The store is the embedded one, or a PostgreSQL database when `HUDDLE_TEST_STORE=postgres`
//! (see `store`). With `HUDDLE_TEST_STORE=cluster` a [`Server`] is node 0 of a 3-node
//! [`crate::TestCluster`] whose client spreads its requests over every node.
//!
//! The binary is found next to the test executable (`target/<profile>/huddle`, which
//! cargo builds for the integration tests of the `huddle` crate), or at `HUDDLE_TEST_BIN`.

use std::any::Any;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::a2a::A2a;
use crate::store::{self, TestStore};

/// How long a fresh node may take to print its listening line (debug build, busy machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of server output kept for the failure report.
const LOG_LINES: usize = 300;

const LISTENING_PREFIX: &str = "huddle listening on ";

/// The `huddle` binary the tests run.
pub fn huddle_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("HUDDLE_TEST_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/huddle
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("huddle{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no huddle binary at {} (run the tests of the huddle crate, which build it, or set HUDDLE_TEST_BIN)",
        bin.display()
    );
    bin
}

/// `huddle ARGS` without the caller's `HUDDLE_*`, `PORT` and `XDG_CONFIG_HOME`: the
/// environment must not override what a test asks for.
pub fn huddle_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(huddle_bin());
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("HUDDLE_") || key == "PORT" || key == "XDG_CONFIG_HOME" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A running `huddle serve`, killed on drop. Derefs to its [`A2a`] client.
pub struct Server {
    /// A mutex so `kill9` works while requests borrow the server.
    child: Mutex<Option<Child>>,
    client: A2a,
    pub data_dir: PathBuf,
    /// Kept alive as long as the server when the server made its own dir.
    _tempdir: Option<tempfile::TempDir>,
    /// A PostgreSQL database that dies with this server (its dir was the server's own).
    own_database: Option<PathBuf>,
    log: Arc<Mutex<VecDeque<String>>>,
    /// What must live as long as this server: the rest of its cluster.
    companions: Option<Box<dyn Any + Send + Sync>>,
}

impl Deref for Server {
    type Target = A2a;

    fn deref(&self) -> &A2a {
        &self.client
    }
}

/// How to start a [`Server`]; [`Server::builder`].
#[derive(Default)]
pub struct ServerBuilder {
    dir: Option<PathBuf>,
    strict: bool,
    sqlite_only: bool,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ServerBuilder {
    /// On a data dir the caller owns (for restarts); default: a fresh temporary one.
    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Without `--allow-private-endpoints` (by default the tests' push endpoints on
    /// 127.0.0.1 are allowed).
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// On the embedded store whatever `HUDDLE_TEST_STORE` says: for tests of what the
    /// SQLite store does in the data dir (its files, `store copy` from it).
    pub fn sqlite_only(mut self) -> Self {
        self.sqlite_only = true;
        self
    }

    /// Extra `huddle serve` flags.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Extra environment variables.
    pub fn env(mut self, env: &[(&str, &str)]) -> Self {
        self.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    pub(crate) fn strict_if(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    pub(crate) fn owned_args(mut self, args: impl IntoIterator<Item = String>) -> Self {
        self.args.extend(args);
        self
    }

    pub(crate) fn owned_env(mut self, env: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(env);
        self
    }

    pub async fn start(self) -> Server {
        // A test naming its store itself keeps it.
        let names_store = self.args.iter().any(|a| a == "--store")
            || self.env.iter().any(|(k, _)| k == "HUDDLE_STORE");
        if !self.sqlite_only && !names_store && TestStore::from_env() == TestStore::Cluster {
            // Boxed: a cluster's nodes start through this same function.
            return Box::pin(self.start_cluster()).await;
        }
        let (tempdir, dir) = match self.dir {
            Some(dir) => (None, dir),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                let path = t.path().to_path_buf();
                (Some(t), path)
            }
        };
        let mut cmd = huddle_command(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
        cmd.arg(&dir);
        if !self.strict {
            cmd.arg("--allow-private-endpoints");
        }
        let on_postgres =
            !self.sqlite_only && !names_store && TestStore::from_env() == TestStore::Postgres;
        if on_postgres {
            cmd.args(["--store", &store::postgres_url_for(&dir)]);
        }
        cmd.args(&self.args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let own_database = (on_postgres && tempdir.is_some()).then(|| dir.clone());
        let mut server = Server::spawn(cmd, dir, tempdir).await;
        server.own_database = own_database;
        server
    }

    /// `HUDDLE_TEST_STORE=cluster`: three nodes with these flags, node 0 standing for them.
    async fn start_cluster(self) -> Server {
        assert!(
            self.dir.is_none(),
            "a node restarted on its own data dir is single-node by nature: \
             skip this test in the cluster pass"
        );
        crate::TestCluster::builder()
            .nodes(3)
            .strict(self.strict)
            .args(&self.args)
            .env(&self.env)
            .start()
            .await
            .into_server()
    }
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A node in a fresh data dir, private push endpoints allowed (the tests' endpoints
    /// live on 127.0.0.1).
    pub async fn start() -> Server {
        Self::builder().start().await
    }

    /// A node in a fresh data dir *without* `--allow-private-endpoints`.
    pub async fn start_strict() -> Server {
        Self::builder().strict().start().await
    }

    /// A node on a data dir the caller owns (for restarts).
    pub async fn start_in(dir: &Path) -> Server {
        Self::builder().dir(dir).start().await
    }

    /// A node on a data dir the caller owns, with extra `huddle serve` flags.
    pub async fn start_in_with(dir: &Path, extra: &[&str]) -> Server {
        Self::builder().dir(dir).args(extra).start().await
    }

    /// A node in a fresh data dir with extra `huddle serve` flags.
    pub async fn start_with(extra: &[&str]) -> Server {
        Self::builder().args(extra).start().await
    }

    /// A node in a fresh data dir with extra flags and environment variables.
    pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::builder().args(extra).env(env).start().await
    }

    async fn spawn(mut cmd: Command, dir: PathBuf, tempdir: Option<tempfile::TempDir>) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn huddle serve");

        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        // Plain threads: they outlive any test runtime and keep both pipes drained.
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                drain_lines(stdout, &log, |line| {
                    if let Some(rest) = line.strip_prefix(LISTENING_PREFIX)
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(rest.trim().to_string());
                    }
                });
            });
        }
        {
            let log = log.clone();
            std::thread::spawn(move || drain_lines(stderr, &log, |_| {}));
        }

        let mut server = Server {
            child: Mutex::new(Some(child)),
            client: A2a::new(""),
            data_dir: dir,
            _tempdir: tempdir,
            own_database: None,
            log,
            companions: None,
        };
        match tokio::time::timeout(STARTUP_TIMEOUT, rx).await {
            Ok(Ok(base)) => {
                assert!(
                    base.starts_with("http://127.0.0.1:"),
                    "listening line names an unexpected address: {base}"
                );
                server.client = A2a::new(&base);
                server
            }
            Ok(Err(_)) => {
                // stdout closed without the line: the process died.
                std::thread::sleep(Duration::from_millis(200));
                let status = server
                    .child
                    .lock()
                    .unwrap()
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                panic!(
                    "huddle serve exited before printing `{LISTENING_PREFIX}...` (status {status:?}); output:\n{}",
                    server.log_tail()
                );
            }
            Err(_) => panic!(
                "huddle serve did not print `{LISTENING_PREFIX}...` within {STARTUP_TIMEOUT:?}; output:\n{}",
                server.log_tail()
            ),
        }
    }

    /// `kill -9` the node (SIGKILL) and reap it.
    pub fn kill9(&self) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = child {
            child.kill().expect("SIGKILL huddle");
            let _ = child.wait();
        }
    }

    /// Is the process still running?
    pub fn is_running(&self) -> bool {
        match self.child.lock().unwrap().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .map(Child::id)
            .expect("the node is running")
    }

    /// The node's resident memory in kB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kb(&self) -> u64 {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"))
    }

    /// `kill -TERM` the node (what an orchestrator sends to stop it).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// `kill -<name>` the node (`TERM`, `STOP`, `CONT`, ...).
    pub fn signal(&self, name: &str) {
        let pid = self.pid();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid}: {status}");
    }

    /// Sends this server's requests through `client` instead (a cluster's spread).
    pub(crate) fn set_client(&mut self, client: A2a) {
        self.client = client;
    }

    /// Keeps `what` alive as long as this server (the rest of its cluster).
    pub(crate) fn keep_alive(&mut self, what: Box<dyn Any + Send + Sync>) {
        self.companions = Some(what);
    }

    /// Waits up to `within` for the process to exit and reaps it; `None`: still running.
    pub async fn wait_exit(&self, within: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            {
                let mut child = self.child.lock().unwrap();
                let exited = match child.as_mut() {
                    Some(c) => c.try_wait().expect("wait for huddle"),
                    None => panic!("the node was already reaped"),
                };
                if exited.is_some() {
                    child.take();
                    return exited;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The rest of the first output line that starts with `prefix`.
    pub fn printed(&self, prefix: &str) -> Option<String> {
        let log = self.log.lock().unwrap();
        log.iter().find_map(|line| {
            line.strip_prefix(prefix)
                .map(|rest| rest.trim().to_string())
        })
    }

    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- huddle server output ({}) ----\n{}\n---- end of server output ----",
                self.base,
                self.log_tail()
            );
        }
        self.kill9();
        // Not while panicking: a failing drop would abort the test process; the
        // server's watcher removes everything at exit anyway.
        if let Some(dir) = self.own_database.take()
            && !std::thread::panicking()
        {
            store::forget(&dir);
        }
    }
}

fn drain_lines(pipe: impl Read, log: &Arc<Mutex<VecDeque<String>>>, mut on_line: impl FnMut(&str)) {
    let reader = BufReader::new(pipe);
    for line in reader.lines() {
        let Ok(line) = line else { break };
        on_line(&line);
        let mut log = log.lock().unwrap();
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line);
    }
}
