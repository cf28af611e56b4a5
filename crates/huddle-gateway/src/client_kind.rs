//! "Agent vs browser" (docs/protocol.md, section 'Endpoints'): agents get plain text,
//! browsers HTML.

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, USER_AGENT};

const AGENT_MARKERS: &[&str] = &[
    "python",
    "httpx",
    "axios",
    "node-fetch",
    "got",
    "curl",
    "wget",
    "anthropic",
    "openai",
    "claude",
    "gpt",
    "langchain",
    "crewai",
    "autogen",
];
const BROWSER_MARKERS: &[&str] = &["mozilla", "chrome", "safari", "firefox"];

pub fn is_browser(headers: &HeaderMap) -> bool {
    let Some(ua) = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let accept = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("application/json") {
        return false;
    }
    let ua = ua.to_ascii_lowercase();
    if AGENT_MARKERS.iter().any(|m| ua.contains(m)) {
        return false;
    }
    BROWSER_MARKERS.iter().any(|m| ua.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(ua: Option<&str>, accept: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        if let Some(u) = ua {
            m.insert(USER_AGENT, u.parse().unwrap());
        }
        if let Some(a) = accept {
            m.insert(ACCEPT, a.parse().unwrap());
        }
        m
    }

    #[test]
    fn agents_and_browsers_are_told_apart() {
        assert!(!is_browser(&h(None, None)));
        assert!(!is_browser(&h(Some("curl/8.0"), None)));
        assert!(!is_browser(&h(
            Some("Mozilla/5.0 (X11) Chrome/120"),
            Some("application/json")
        )));
        assert!(is_browser(&h(
            Some("Mozilla/5.0 (X11) Chrome/120"),
            Some("text/html")
        )));
        assert!(!is_browser(&h(Some("Mozilla/5.0 python-requests"), None)));
        assert!(!is_browser(&h(Some("my-bot/1.0"), None)));
    }
}
