//! Which web pages may open a WebSocket to the relay, by their `Origin`.
//!
//! Browsers let any page open a WebSocket to any address, the user's own
//! loopback relay included, and send the page's origin along; they do not
//! enforce anything themselves. Without a secret the relay has no other
//! way to tell the user's page from a hostile one, so it accepts only
//! requests without an `Origin` (native clients) or from a loopback page
//! (`http(s)://localhost`, `127.0.0.0/8`, `[::1]`, any port), plus the
//! `--allow-origin`s. This also defeats DNS rebinding, whose pages carry
//! the attacker's host name. With a secret, tokens decide: a hostile page
//! cannot present a token it was never given (tokens travel in the URL or a
//! header, never in cookies), so the origin is checked only if
//! `--allow-origin` is given, and then a browser's origin must be listed.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The origin rule of a relay.
#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    /// Tokens are required: the origin is not checked unless `allowed` is
    /// given.
    tokens: bool,
    /// `--allow-origin`s, normalised (lower case, no trailing `/`).
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// The policy for a relay with (`tokens`) or without a secret, with
    /// extra allowed origins (`scheme://host[:port]`).
    pub fn new(tokens: bool, allowed: &[String]) -> Result<Self, String> {
        let allowed = allowed
            .iter()
            .map(|o| {
                let n = normalise(o);
                let valid = n == "null"
                    || split(&n).is_some_and(|(_, host)| !host.is_empty() && !host.contains('/'));
                valid.then_some(n).ok_or_else(|| {
                    format!(
                        "--allow-origin {o:?}: expected scheme://host[:port], as a browser sends it"
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { tokens, allowed })
    }

    /// Whether a request with these headers may upgrade; if not, HTTP 403
    /// saying why.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Box<Response>> {
        let Some(value) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = value.to_str().map(normalise).unwrap_or_default();
        if self.allowed.contains(&origin) {
            return Ok(());
        }
        // Without tokens, loopback pages always; with tokens, any page
        // unless origins are listed.
        let open = if self.tokens {
            self.allowed.is_empty()
        } else {
            is_loopback(&origin)
        };
        if open {
            return Ok(());
        }
        let why = if self.tokens {
            "it is not one of the relay's --allow-origin values"
        } else {
            "without --secret-file only loopback pages and --allow-origin values may connect"
        };
        Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                format!("origin {:?} refused: {why}\n", value),
            )
                .into_response(),
        ))
    }
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `(scheme, host[:port])` of an http or https origin.
fn split(origin: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = origin.split_once("://")?;
    matches!(scheme, "http" | "https").then_some((scheme, rest))
}

/// Whether a (normalised) origin is a page on this machine.
fn is_loopback(origin: &str) -> bool {
    let Some((_, authority)) = split(origin) else {
        return false;
    };
    // `host[:port]`, the host in brackets if it is an IPv6 address.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some(parts) => parts,
            None => return false,
        },
        None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn without_a_secret_only_loopback_and_listed_origins() {
        let p = OriginPolicy::new(false, &["https://app.example.com/".into()]).unwrap();
        for ok in [
            None,
            Some("http://localhost:8787"),
            Some("http://LOCALHOST"),
            Some("https://127.0.0.1:1"),
            Some("http://127.1.2.3:80"),
            Some("http://[::1]:5173"),
            Some("https://app.example.com"),
        ] {
            assert!(p.check(&headers(ok)).is_ok(), "{ok:?}");
        }
        for bad in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "http://evil.example:8787",
            "file://",
            "null",
            "ws://localhost",
            "http://localhost:80x",
            "http://[::2]:1",
        ] {
            assert!(p.check(&headers(Some(bad))).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn with_a_secret_tokens_decide_unless_origins_are_listed() {
        let open = OriginPolicy::new(true, &[]).unwrap();
        assert!(open.check(&headers(Some("https://evil.example"))).is_ok());
        let listed = OriginPolicy::new(true, &["https://app.example.com".into()]).unwrap();
        assert!(
            listed
                .check(&headers(Some("https://app.example.com")))
                .is_ok()
        );
        assert!(listed.check(&headers(None)).is_ok());
        assert!(listed.check(&headers(Some("http://localhost:1"))).is_err());
    }

    #[test]
    fn malformed_allowed_origins_are_refused() {
        for bad in [
            "app.example.com",
            "https://",
            "https://a.example/path",
            "ftp://a",
        ] {
            assert!(OriginPolicy::new(false, &[bad.into()]).is_err(), "{bad}");
        }
        assert!(OriginPolicy::new(false, &["null".into()]).is_ok());
    }
}
