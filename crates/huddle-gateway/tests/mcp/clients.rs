//! The official clients against a real node: the TypeScript SDK
//! (`StreamableHTTPClientTransport`) and the Python SDK, sessions and the sessionless
//! 2026-07-28 revision. The scenarios live in `tests/mcp/` at the repository root; the
//! pinned clients are installed by `make test-deps`, never by these tests. A missing
//! client, `node` or `python3` fails them (`run.sh` says what to run): never a skip.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::Node;

fn run_sh() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp/run.sh")
}

async fn scenario(client: &str) {
    let node = Node::start().await;
    let run = tokio::process::Command::new("bash")
        .arg(run_sh())
        .arg(client)
        .arg(node.url())
        .kill_on_drop(true)
        .output();
    // A bound, not a measure: a scenario takes seconds.
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .unwrap_or_else(|_| panic!("the {client} scenario timed out"))
        .expect("bash tests/mcp/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{client} scenario failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let summary = stdout.lines().last().unwrap_or_default().replace(' ', "");
    assert!(summary.contains("\"ok\":true"), "{client}: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client() {
    scenario("ts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client() {
    scenario("py").await;
}
