//! A throwaway PostgreSQL for tests (feature `testing`).
//!
//! [`TestPostgres::start`] uses the server at `HUDDLE_TEST_POSTGRES_URL` when that is
//! set (it must allow `CREATE DATABASE`), and otherwise starts one of its own: `initdb`
//! and `pg_ctl` from `/usr/lib/postgresql/<version>/bin` in a temporary directory, on a
//! free loopback port, stopped (and its directory removed) when the value is dropped.
//! As root (PostgreSQL refuses to run as root) it runs them as the `postgres` user.
//!
//! When neither is possible it panics saying how to get a server (`make test-deps`):
//! a test that needs PostgreSQL fails rather than skips.
//!
//! Each [`TestPostgres::database`] is a new, empty database, so tests sharing one
//! server do not see each other's rooms.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable naming an existing server to use instead of starting one.
pub const URL_VAR: &str = "HUDDLE_TEST_POSTGRES_URL";

/// A PostgreSQL server for one test (or several).
pub struct TestPostgres {
    /// Base URL without a database (`postgres://user@host:port`).
    base: String,
    /// Our own server, when we started one.
    server: Option<Server>,
}

struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let stop = as_user(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        );
        if let Err(e) = stop {
            eprintln!("test PostgreSQL did not stop: {e}");
        }
    }
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

impl TestPostgres {
    /// A server: `HUDDLE_TEST_POSTGRES_URL`, or a new one (see the module doc).
    pub fn start() -> Self {
        if let Ok(url) = std::env::var(URL_VAR) {
            let base = url
                .rsplit_once('/')
                .filter(|(scheme, _)| !scheme.ends_with('/'))
                .map_or(url.clone(), |(base, _)| base.to_string());
            return Self { base, server: None };
        }
        Self::start_own()
    }

    /// A new server of our own, even when `HUDDLE_TEST_POSTGRES_URL` is set: for tests
    /// that stop and restart it.
    pub fn start_own() -> Self {
        let Some(bin) = find_bin() else {
            panic!(
                "these tests need PostgreSQL and none was found: run `make test-deps` \
                 (installs the Debian package `postgresql`, giving \
                 /usr/lib/postgresql/*/bin/initdb), or set {URL_VAR} to a server's URL \
                 (e.g. postgres://huddle@127.0.0.1:5432/postgres) where the user may \
                 CREATE DATABASE"
            )
        };
        let mut last = String::new();
        for _ in 0..3 {
            match start_server(&bin) {
                Ok(started) => return started,
                Err(e) => last = e,
            }
        }
        panic!(
            "could not start a test PostgreSQL from {}: {last}",
            bin.display()
        )
    }

    /// The URL of a new, empty database on this server (created now).
    pub fn database(&self) -> String {
        let name = format!(
            "huddle_test_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let postgres = format!("{}/postgres?sslmode=disable", self.base);
        self.psql_on(&postgres, &format!("CREATE DATABASE {name}"));
        format!("{}/{name}?sslmode=disable", self.base)
    }

    /// Runs `sql` with `psql` on the database at `url`; panics if it fails.
    pub fn psql_on(&self, url: &str, sql: &str) {
        let out = Command::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))
            .and_then(check);
        if let Err(e) = out {
            panic!("psql failed on {sql:?}: {e}");
        }
    }

    /// Stops the server now (immediate shutdown, like a crash), when we started it.
    /// For tests of what a node does while its database is away.
    pub fn stop(&self) {
        if let Some(s) = &self.server {
            let data = s.dir.path().join("data");
            let args = ["-D", path_str(&data), "-m", "immediate", "-w", "stop"];
            as_user(s.as_postgres, &s.bin.join("pg_ctl"), &args).expect("stop PostgreSQL");
        }
    }

    /// Starts again a server stopped by [`TestPostgres::stop`], on the same port.
    pub fn restart(&self) {
        if let Some(s) = &self.server {
            let port = self
                .base
                .rsplit(':')
                .next()
                .expect("the base URL ends with the port");
            pg_ctl_start(s, port).expect("restart PostgreSQL");
        }
    }

    /// Stops our server and removes its directory once this process has exited, for a
    /// server kept in a `static` (whose value is never dropped): a detached watcher
    /// process polls the test process and then runs the same immediate stop as `Drop`.
    pub fn stop_when_process_exits(&self) {
        let Some(s) = &self.server else { return };
        let dir = path_str(s.dir.path());
        let pg_ctl = s.bin.join("pg_ctl");
        let runuser = if s.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {runuser}'{pg_ctl}' -D '{dir}/data' -m immediate -w stop >/dev/null 2>&1; \
             rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
        );
        // Detached (`&`): the shell we wait for returns at once, the watcher lives on.
        let detached = format!("({script}) </dev/null >/dev/null 2>&1 &");
        let out = Command::new("sh")
            .args(["-c", &detached])
            .output()
            .map_err(|e| format!("cannot run sh: {e}"))
            .and_then(check);
        if let Err(e) = out {
            panic!("could not start the watcher that stops the test PostgreSQL: {e}");
        }
    }

    /// Drops the database at `url` (made by [`TestPostgres::database`]), closing its
    /// connections first; panics if it fails.
    pub fn drop_database(&self, url: &str) {
        let name = url
            .rsplit_once('/')
            .and_then(|(_, rest)| rest.split('?').next())
            .expect("a database URL ends with /NAME");
        let postgres = format!("{}/postgres?sslmode=disable", self.base);
        self.psql_on(&postgres, &format!("DROP DATABASE {name} WITH (FORCE)"));
    }

    /// Whether this server is ours (so [`TestPostgres::stop`] can stop it).
    pub fn is_own(&self) -> bool {
        self.server.is_some()
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn find_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn check(out: Output) -> Result<Output, String> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs `program args`, as the `postgres` user when `as_postgres`.
fn as_user(as_postgres: bool, program: &Path, args: &[&str]) -> Result<Output, String> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    check(out)
}

/// A port of 127.0.0.1 that was free a moment ago, for a server that is given its number
/// before it starts (a test's PostgreSQL or Redis, a node's `--node-listen`).
///
/// It is picked below the kernel's ephemeral range: a port that `bind(0)` handed out and
/// the test released can be taken, before the server binds it, by any connection this
/// machine opens (their local ports come from that range), and a busy test suite opens
/// many. A port below it can only be taken by another explicit bind. Ports are tried from
/// an offset of this process's id on, each once per process. Falls back to `bind(0)` when
/// the range leaves no room below it.
pub fn free_port() -> Result<u16, String> {
    use std::sync::atomic::AtomicU32;
    const LOWEST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let below = ephemeral_low().unwrap_or(32_768);
    if below > LOWEST + 1_000 {
        let span = below - LOWEST;
        let start = std::process::id().wrapping_mul(7_919) % span;
        for _ in 0..1_000 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = (LOWEST + (start + n) % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// The first port of the kernel's ephemeral range (`ip_local_port_range`), on Linux.
fn ephemeral_low() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn start_server(bin: &Path) -> Result<TestPostgres, String> {
    let as_postgres = is_root();
    let dir = tempfile::Builder::new()
        .prefix("huddle-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    if as_postgres {
        let out = Command::new("chown")
            .args(["postgres:postgres", path_str(dir.path())])
            .output()
            .map_err(|e| format!("cannot run chown: {e}"))?;
        check(out)?;
    }
    let data = dir.path().join("data");
    as_user(
        as_postgres,
        &bin.join("initdb"),
        &[
            "-D",
            path_str(&data),
            "-A",
            "trust",
            "-U",
            "huddle",
            "--no-sync",
        ],
    )?;
    let server = Server {
        bin: bin.to_path_buf(),
        dir,
        as_postgres,
    };
    let port = free_port()?.to_string();
    pg_ctl_start(&server, &port)?;
    Ok(TestPostgres {
        base: format!("postgres://huddle@127.0.0.1:{port}"),
        server: Some(server),
    })
}

fn pg_ctl_start(s: &Server, port: &str) -> Result<(), String> {
    let dir = path_str(s.dir.path());
    let options = format!(
        "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c max_connections=300"
    );
    let data = format!("{dir}/data");
    let log = format!("{dir}/log");
    let args = ["-D", &data, "-o", &options, "-l", &log, "-w", "start"];
    as_user(s.as_postgres, &s.bin.join("pg_ctl"), &args).map_err(|e| {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        format!("{e}\n{log}")
    })?;
    Ok(())
}
