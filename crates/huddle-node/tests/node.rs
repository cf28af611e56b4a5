//! `Node::start` as a library caller sees it: bound addresses, a shutdown future that
//! stops the node and `wait` that returns after, and the typed errors for a port in use
//! and a store that cannot be opened.

use std::net::SocketAddr;
use std::time::Duration;

use huddle_node::{Addrs, Listeners, Node, NodeConfig, NodeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A bound on waiting, not a measure: a stopping node takes well under a second.
const BOUND: Duration = Duration::from_secs(30);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The status code of `GET path` over a fresh connection (an error when there is no
/// answer within [`BOUND`]).
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(BOUND, exchange).await??;
    let text = String::from_utf8_lossy(&answer);
    Ok(text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}")))
}

#[tokio::test]
async fn a_node_serves_every_listener_until_its_shutdown_future_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let listeners = Listeners::bind(&Addrs {
        http: loopback(),
        grpc: Some(loopback()),
        mcp: Some(loopback()),
        metrics: None,
        node: None,
    })
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = Node::start(NodeConfig::new(dir.path()), listeners, async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    let addrs = *node.addrs();
    let (grpc, mcp) = (addrs.grpc.unwrap(), addrs.mcp.unwrap());
    assert!(
        addrs.http.port() != 0 && grpc.port() != 0 && mcp.port() != 0,
        "{addrs:?}"
    );

    assert_eq!(get(addrs.http, "/healthz").await.unwrap(), 200);
    // The MCP-only and gRPC-only listeners serve nothing else.
    assert_eq!(get(mcp, "/healthz").await.unwrap(), 404);
    assert_eq!(get(grpc, "/healthz").await.unwrap(), 404);

    stop.send(()).unwrap();
    tokio::time::timeout(BOUND, node.wait())
        .await
        .expect("the node stops within its grace")
        .expect("a clean stop");
    for addr in [addrs.http, grpc, mcp] {
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts after wait()"
        );
    }
}

#[tokio::test]
async fn a_port_in_use_is_a_bind_error_naming_the_listener() {
    let taken = TcpListener::bind(loopback()).await.unwrap();
    let addr = taken.local_addr().unwrap();
    let e = Listeners::bind(&Addrs {
        http: loopback(),
        grpc: None,
        mcp: Some(addr),
        metrics: None,
        node: None,
    })
    .await
    .unwrap_err();
    assert!(
        matches!(e, NodeError::Bind { listener: "--mcp-listen", addr: a, .. } if a == addr),
        "{e:?}"
    );
    assert_eq!(e.to_string(), format!("binding --mcp-listen {addr}"));
    assert!(std::error::Error::source(&e).is_some(), "{e:?}");
}

#[tokio::test]
async fn a_store_that_cannot_be_opened_is_an_open_store_error() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the data dir should be.
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let listeners = Listeners::loopback().await.unwrap();
    let Err(e) = Node::start(
        NodeConfig::new(&not_a_dir),
        listeners,
        std::future::pending(),
    )
    .await
    else {
        panic!("a node started on a file as its data dir");
    };
    assert!(
        matches!(&e, NodeError::OpenStore { dir, .. } if *dir == not_a_dir),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&not_a_dir.display().to_string()),
        "{e}"
    );
}

#[tokio::test]
async fn wait_returns_only_after_the_request_in_flight_was_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = Node::start(
        NodeConfig::new(dir.path()),
        Listeners::loopback().await.unwrap(),
        async {
            let _ = stopped.await;
        },
    )
    .await
    .unwrap();
    let addr = node.addrs().http;

    // A request whose body is still on its way when the shutdown begins.
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":{"role":"user","parts":[{"text":"help"}],"metadata":{"action":"help"}}}}"#;
    let (first, rest) = body.split_at(20);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /a2a HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    stop.send(()).unwrap();
    let waiting = tokio::spawn(node.wait());
    // Give a node that would not wait every chance to say it stopped.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "wait() returned while a request was in flight"
    );

    tcp.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(BOUND, tcp.read_to_end(&mut answer))
        .await
        .expect("the answer within the bound")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""id":7"#), "{answer}");
    tokio::time::timeout(BOUND, waiting)
        .await
        .expect("the node stops once the request is answered")
        .unwrap()
        .expect("a clean stop");
}
