//! `Authorization: Bearer <agentToken>`: how SSE and gRPC clients present a token outside
//! the URL and the request body (a URL ends up in access logs, proxies and browser history).

/// The token of an `Authorization` value with the `Bearer` scheme (any case); `None` for
/// another scheme or an empty token.
pub fn token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_non_empty_bearer_credential_is_a_token() {
        assert_eq!(token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(token("bearer   x.y "), Some("x.y"));
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(token(""), None);
    }
}
