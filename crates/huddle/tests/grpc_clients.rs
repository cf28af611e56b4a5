//! The gRPC API through clients that are not ours: the real `huddle serve` binary, driven
//! by `tests/grpc/test_grpc.py` (Python `grpcio` with stubs generated from `proto/` at
//! test time, `grpcio-health-checking`, and grpcurl through reflection).
//!
//! Each test starts its own node with `--grpc-listen` and runs one class of the Python
//! suite against it. A missing client is a failure, never a skip: install them with
//! `python3 -m pip install -r tests/grpc/requirements.txt` (`make test-deps`).
//!
//! `HUDDLE_TEST_PYTHON` names the interpreter (default `python3`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use huddle_testkit::Server;

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
    server: Server,
    /// `127.0.0.1:<port>` of the main port (HTTP + gRPC).
    main: String,
    /// `127.0.0.1:<port>` of `--grpc-listen`.
    grpc_only: String,
}

impl Node {
    async fn start() -> Node {
        // No --allow-private-endpoints: the suite checks that push endpoints on loopback
        // are refused.
        let server = Server::builder()
            .strict()
            .args(&["--grpc-listen", "127.0.0.1:0"])
            .start()
            .await;
        // Printed before the main port's line, which the server waited for.
        let grpc_only = server
            .printed(GRPC_LINE)
            .expect("the gRPC-only port's listening line");
        let main = server.base.trim_start_matches("http://").to_string();
        Node {
            server,
            main,
            grpc_only,
        }
    }

    fn log_tail(&self) -> String {
        self.server.log_tail()
    }
}

/// Runs one class of `tests/grpc/test_grpc.py` against a fresh node; fails with the
/// suite's output and the server's log unless every test in it passed.
async fn run_suite(class: &str) {
    require_clients();
    let node = Node::start().await;
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

#[tokio::test]
async fn python_grpcio_room_lifecycle_rpcs_and_their_error_codes() {
    run_suite("RoomLifecycle").await;
}

#[tokio::test]
async fn python_grpcio_messaging_rpcs_and_their_error_codes() {
    run_suite("Messaging").await;
}

#[tokio::test]
async fn python_grpcio_moderation_rpcs_and_their_error_codes() {
    run_suite("Moderation").await;
}

#[tokio::test]
async fn python_grpcio_subscribe_replays_resumes_and_keeps_dms_private() {
    run_suite("Streaming").await;
}

#[tokio::test]
async fn python_grpcio_health_serving_and_reflection_v1() {
    run_suite("Health").await;
}

#[tokio::test]
async fn grpcurl_through_reflection_v1alpha() {
    run_suite("Grpcurl").await;
}

/// HTTP keeps working next to gRPC on the main port: unknown paths are still HTTP 404s,
/// not gRPC answers, and the gRPC-only port serves no HTTP routes.
#[tokio::test]
async fn http_and_grpc_share_the_main_port() {
    let node = Node::start().await;
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
