//! MCP from a test: one tool call in a fresh session, over a given HTTP client (whose
//! connection's source address a test may choose).

use serde_json::{Value, json};

use crate::A2a;

impl A2a {
    /// One MCP tool call from `http`: initialize a session, then `tools/call`; the text.
    pub async fn mcp_tool(&self, http: &reqwest::Client, tool: &str, args: Value) -> String {
        let url = self.url("/mcp");
        let post = |session: Option<String>, body: Value| {
            let mut req = http
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-06-18");
            if let Some(id) = session {
                req = req.header("mcp-session-id", id);
            }
            async move { req.json(&body).send().await.expect("POST /mcp") }
        };
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "blackbox", "version": "1"}}});
        let resp = post(None, init).await;
        let session = resp
            .headers()
            .get("mcp-session-id")
            .expect("Mcp-Session-Id")
            .to_str()
            .unwrap()
            .to_string();
        let _ = resp.text().await;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let _ = post(Some(session.clone()), note).await.text().await;
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
        let raw = post(Some(session), call).await.text().await.unwrap();
        // JSON, or SSE whose data lines carry the JSON-RPC messages.
        let messages: Vec<Value> = match serde_json::from_str::<Value>(&raw) {
            Ok(v) => vec![v],
            Err(_) => raw
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str(d.trim()).ok())
                .collect(),
        };
        let answer = messages
            .iter()
            .find(|m| m["id"] == 2)
            .unwrap_or_else(|| panic!("no tools/call answer in {raw}"));
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no tool text in {answer}"))
            .to_string()
    }
}
