//! The gRPC API through clients that are not ours: the real `huddle serve` binary, driven
//! by `tests/grpc/test_grpc.py` (Python `grpcio` with stubs generated from `proto/` at
//! test time, `grpcio-health-checking`, and grpcurl through reflection).
//!
//! Each test starts its own node with `--grpc-listen` and runs one class of the Python
//! suite against it. A missing client is a failure, never a skip: install them with
//! `python3 -m pip install -r tests/grpc/requirements.txt` (`make test-deps`).
//!
//! `HUDDLE_TEST_PYTHON` names the interpreter (default `python3`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fresh debug node on a busy 2-core machine may take a while to print its lines.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const HTTP_LINE: &str = "huddle listening on http://";
const GRPC_LINE: &str = "huddle grpc listening on http://";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> String {
    std::env::var("HUDDLE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails (never skips) when a client the suite needs is not installed: Python with
/// grpcio, grpcio-tools and grpcio-health-checking, and grpcurl.
fn require_clients() {
    let install =
        "install the gRPC test clients: python3 -m pip install -r tests/grpc/requirements.txt";
    let check = Command::new(python())
        .arg(suite())
        .arg("--check-clients")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {install}", python()));
    assert!(
        check.status.success(),
        "the gRPC test clients are missing ({}{}); {install}",
        String::from_utf8_lossy(&check.stdout).trim(),
        String::from_utf8_lossy(&check.stderr).trim()
    );
}

fn suite() -> PathBuf {
    repo_root().join("tests/grpc/test_grpc.py")
}

/// A running `huddle serve` with gRPC also on its own port; killed on drop.
struct Node {
    child: Child,
    /// `127.0.0.1:<port>` of the main port (HTTP + gRPC).
    main: String,
    /// `127.0.0.1:<port>` of `--grpc-listen`.
    grpc_only: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_huddle"));
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path());
        // The environment must not override our flags (the suite checks that push
        // endpoints on loopback are refused, so no --allow-private-endpoints either).
        for (key, _) in std::env::vars() {
            if key.starts_with("HUDDLE_") || key == "PORT" {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn huddle serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<(bool, String)>();
        drain(child.stdout.take().expect("stdout"), log.clone(), Some(tx));
        drain(child.stderr.take().expect("stderr"), log.clone(), None);

        let (mut main, mut grpc_only) = (None, None);
        let deadline = std::time::Instant::now() + STARTUP_TIMEOUT;
        while main.is_none() || grpc_only.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, addr)) => grpc_only = Some(addr),
                Ok((false, addr)) => main = Some(addr),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "huddle serve did not print both listening lines within {STARTUP_TIMEOUT:?}; output:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            }
        }
        Node {
            child,
            main: main.unwrap(),
            grpc_only: grpc_only.unwrap(),
            log,
            _dir: dir,
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let start = log.len().saturating_sub(200);
        log[start..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keeps a pipe drained into `log`; reports the listening addresses on `tx`
/// (`true` for the gRPC-only line).
fn drain(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<(bool, String)>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &tx {
                if let Some(addr) = line.strip_prefix(GRPC_LINE) {
                    let _ = tx.send((true, addr.trim().to_string()));
                } else if let Some(addr) = line.strip_prefix(HTTP_LINE) {
                    let _ = tx.send((false, addr.trim().to_string()));
                }
            }
            log.lock().unwrap().push(line);
        }
    });
}

/// Runs one class of `tests/grpc/test_grpc.py` against a fresh node; fails with the
/// suite's output and the server's log unless every test in it passed.
fn run_suite(class: &str) {
    require_clients();
    let node = Node::start();
    let out = Command::new(python())
        .arg(suite())
        .arg(class)
        .env("HUDDLE_GRPC_TARGET", &node.main)
        .env("HUDDLE_GRPC_ONLY_TARGET", &node.grpc_only)
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .expect("run tests/grpc/test_grpc.py");
    let report = String::from_utf8_lossy(&out.stderr);
    println!("{}{report}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "tests/grpc/test_grpc.py {class} failed ({}):\n{report}\n--- server log ---\n{}",
        out.status,
        node.log_tail()
    );
    assert!(
        report.contains("\nOK"),
        "the suite did not report OK:\n{report}"
    );
}

#[test]
fn python_grpcio_room_lifecycle_rpcs_and_their_error_codes() {
    run_suite("RoomLifecycle");
}

#[test]
fn python_grpcio_messaging_rpcs_and_their_error_codes() {
    run_suite("Messaging");
}

#[test]
fn python_grpcio_moderation_rpcs_and_their_error_codes() {
    run_suite("Moderation");
}

#[test]
fn python_grpcio_subscribe_replays_resumes_and_keeps_dms_private() {
    run_suite("Streaming");
}

#[test]
fn python_grpcio_health_serving_and_reflection_v1() {
    run_suite("Health");
}

#[test]
fn grpcurl_through_reflection_v1alpha() {
    run_suite("Grpcurl");
}

/// HTTP keeps working next to gRPC on the main port: unknown paths are still HTTP 404s,
/// not gRPC answers, and the gRPC-only port serves no HTTP routes.
#[test]
fn http_and_grpc_share_the_main_port() {
    let node = Node::start();
    let get = |addr: &str, path: &str| -> u16 {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        use std::io::Write;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut head = String::new();
        BufReader::new(s).read_line(&mut head).unwrap();
        head.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {head:?}"))
    };
    assert_eq!(get(&node.main, "/healthz"), 200);
    assert_eq!(get(&node.main, "/no/such/path"), 404);
    assert_eq!(get(&node.grpc_only, "/healthz"), 404);
}
