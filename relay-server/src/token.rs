//! Capability tokens: HMAC-SHA256 signed, scoped to one room, read or write,
//! expiring.
//!
//! Format: `v1.<payload>.<mac>`, where `payload` is base64url (no padding) of
//! the JSON object `{"room": "...", "rights": "read"|"write", "exp": unix_secs}`
//! and `mac` is base64url (no padding) of HMAC-SHA256 over the ASCII text
//! `v1.<payload>`. The MAC covers the text as sent, so the payload is only
//! decoded after it has been authenticated: untrusted JSON is never parsed.
//!
//! The token is signed, not encrypted: its holder can read the room and the
//! expiry, which is fine because they are the holder's own capabilities.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are refused before any decoding, so a hostile
/// query string cannot make the server decode or hash megabytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Shortest secret accepted, in bytes: HMAC-SHA256's full strength needs
/// a key of at least its 32-byte output, and a short human-chosen secret
/// can be guessed offline from any one token.
pub const MIN_SECRET_LEN: usize = 32;

/// The version prefix; a future format gets a new prefix instead of being
/// misread as this one.
const VERSION: &str = "v1";

/// What a token lets its holder do in its room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rights {
    /// Sync down only; writes are rejected.
    Read,
    /// Sync down and write.
    Write,
}

impl Rights {
    /// True if the holder may change the document.
    pub fn can_write(self) -> bool {
        matches!(self, Rights::Write)
    }

    /// The wire and command-line spelling: `"read"` or `"write"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rights::Read => "read",
            Rights::Write => "write",
        }
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Rights {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Rights::Read),
            "write" => Ok(Rights::Write),
            other => Err(format!(
                "unknown rights {other:?}: expected \"read\" or \"write\""
            )),
        }
    }
}

/// Why a token (or the secret) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// No token was presented (for the HTTP layer; `verify` never returns it).
    Missing,
    /// The token is not of the expected shape; the reason says which part.
    Malformed(&'static str),
    /// The MAC does not match: forged, altered, or signed with another secret.
    BadSignature,
    /// The token was valid until `exp` (unix seconds).
    Expired {
        /// The expiry written in the token.
        exp: u64,
    },
    /// The token is genuine but for a different room.
    WrongRoom,
    /// The secret file could not be used (a server configuration error).
    Secret(String),
}

impl TokenError {
    /// The HTTP status to refuse an upgrade with: 401 when the client did not
    /// prove anything (missing, malformed, forged, expired), 403 when it
    /// proved rights that do not cover this room, 500 for a bad secret.
    pub fn http_status(&self) -> u16 {
        match self {
            TokenError::Missing
            | TokenError::Malformed(_)
            | TokenError::BadSignature
            | TokenError::Expired { .. } => 401,
            TokenError::WrongRoom => 403,
            TokenError::Secret(_) => 500,
        }
    }

    /// The `reason` label for `neuroplex_rejected_total`.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            TokenError::Missing => "token_missing",
            TokenError::Malformed(_) | TokenError::BadSignature => "token_invalid",
            TokenError::Expired { .. } => "token_expired",
            TokenError::WrongRoom => "token_room",
            TokenError::Secret(_) => "token_secret",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Missing => {
                f.write_str("a token is required (?token= or Authorization: Bearer)")
            }
            TokenError::Malformed(why) => write!(f, "malformed token: {why}"),
            TokenError::BadSignature => f.write_str("token signature is invalid"),
            TokenError::Expired { exp } => write!(f, "token expired at unix time {exp}"),
            TokenError::WrongRoom => f.write_str("token is not valid for this room"),
            TokenError::Secret(why) => write!(f, "token secret: {why}"),
        }
    }
}

impl std::error::Error for TokenError {}

/// The server's signing secret, kept as a pre-keyed HMAC state (cloned per
/// use, so the key schedule runs once).
#[derive(Clone)]
pub struct Secret(HmacSha256);

impl Secret {
    /// The secret from a secret file's contents: trailing spaces, tabs, `\r`
    /// and `\n` are trimmed (so `echo secret > file` and an editor's final
    /// newline do not change the key); leading bytes are kept as they are.
    /// An empty secret is refused, since it would let anyone mint tokens,
    /// and so is one shorter than [`MIN_SECRET_LEN`].
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Secret, TokenError> {
        let end = bytes
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .map_or(0, |i| i + 1);
        let key = &bytes[..end];
        if key.is_empty() {
            return Err(TokenError::Secret("the secret is empty".into()));
        }
        if key.len() < MIN_SECRET_LEN {
            return Err(TokenError::Secret(format!(
                "the secret is {} bytes long; at least {MIN_SECRET_LEN} are required \
                 (make one with `head -c 32 /dev/urandom | base64 > FILE`)",
                key.len()
            )));
        }
        // HMAC accepts keys of any length (long ones are hashed first).
        let mac = <HmacSha256 as KeyInit>::new_from_slice(key)
            .map_err(|_| TokenError::Secret("the secret cannot be used as an HMAC key".into()))?;
        Ok(Secret(mac))
    }

    /// Reads and trims the secret file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Secret, TokenError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| TokenError::Secret(format!("cannot read {}: {e}", path.display())))?;
        Secret::from_file_bytes(&bytes).map_err(|e| match e {
            TokenError::Secret(why) => TokenError::Secret(format!("{}: {why}", path.display())),
            other => other,
        })
    }

    fn mac(&self, signed: &[u8]) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(signed);
        mac
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, even in debug logs.
        f.write_str("Secret(..)")
    }
}

/// A token for `room` with `rights`, valid until `expires_at_unix` (unix
/// seconds, exclusive).
pub fn issue(secret: &Secret, room: &str, rights: Rights, expires_at_unix: u64) -> String {
    let payload = serde_json::json!({
        "room": room,
        "rights": rights.as_str(),
        "exp": expires_at_unix,
    });
    sign_payload(secret, payload.to_string().as_bytes())
}

/// Signs raw payload bytes; split out so tests can sign payloads that
/// `issue` would never produce.
fn sign_payload(secret: &Secret, payload: &[u8]) -> String {
    let mut token = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(payload));
    let tag = secret.mac(token.as_bytes()).finalize().into_bytes();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(tag));
    token
}

/// What a verified token grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Read or write.
    pub rights: Rights,
    /// When the token stops being valid (unix seconds, exclusive): the
    /// relay closes a connection opened with it then.
    pub expires_at: u64,
}

/// The token of an `Authorization` header value: the scheme `Bearer` is
/// matched case-insensitively (RFC 9110 §11.1), the token is what follows
/// it and its spaces.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Checks `token` for `room` at time `now_unix` and returns what it grants.
///
/// Checks run in this order: size and shape, MAC (constant time), payload,
/// expiry, room. Expiry comes before room so a stale token for another room
/// is answered 401 (get a new token), not 403.
pub fn verify(
    secret: &Secret,
    token: &str,
    room: &str,
    now_unix: u64,
) -> Result<Grant, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Malformed("empty"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let (signed, mac_b64) = token
        .rsplit_once('.')
        .ok_or(TokenError::Malformed("expected three dot-separated parts"))?;
    let (version, payload_b64) = signed
        .split_once('.')
        .ok_or(TokenError::Malformed("expected three dot-separated parts"))?;
    if payload_b64.contains('.') {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    }
    if version != VERSION {
        return Err(TokenError::Malformed("unsupported version"));
    }
    let tag = URL_SAFE_NO_PAD
        .decode(mac_b64)
        .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    secret
        .mac(signed.as_bytes())
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;

    // Authenticated from here on: a failure below means we signed something
    // odd (or an older/newer issuer did), not that the client forged it.
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let value: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|_| TokenError::Malformed("payload is not JSON"))?;
    let token_room = value
        .get("room")
        .and_then(|v| v.as_str())
        .ok_or(TokenError::Malformed("payload has no room"))?;
    let rights = value
        .get("rights")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<Rights>().ok())
        .ok_or(TokenError::Malformed("payload has no valid rights"))?;
    let exp = value
        .get("exp")
        .and_then(|v| v.as_u64())
        .ok_or(TokenError::Malformed("payload has no valid exp"))?;

    if now_unix >= exp {
        return Err(TokenError::Expired { exp });
    }
    if token_room != room {
        return Err(TokenError::WrongRoom);
    }
    Ok(Grant {
        rights,
        expires_at: exp,
    })
}

/// Parses a time-to-live: plain seconds (`"3600"`) or a number with one of
/// the suffixes `s`, `m`, `h`, `d` (`"90s"`, `"15m"`, `"1h"`, `"7d"`).
/// Zero is refused: it would mint a token that is already expired.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1),
        Some(b'm') => (&s[..s.len() - 1], 60),
        Some(b'h') => (&s[..s.len() - 1], 3600),
        Some(b'd') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    // Digits only: u64::from_str would also accept a leading '+'.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid ttl {s:?}: expected seconds or a number with s, m, h or d (e.g. 90s, 15m, 1h, 7d)"
        ));
    }
    let secs = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("invalid ttl {s:?}: too large"))?;
    if secs == 0 {
        return Err(format!("invalid ttl {s:?}: must be positive"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    /// The rights of a verified token (its expiry aside).
    fn granted(r: Result<Grant, TokenError>) -> Result<Rights, TokenError> {
        r.map(|g| g.rights)
    }

    fn secret() -> Secret {
        Secret::from_file_bytes(b"correct horse battery staple, stapled").unwrap()
    }

    /// Replaces the byte at `i` with a different base64url character.
    fn flip(token: &str, i: usize) -> String {
        let mut bytes = token.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn round_trip_read_and_write() {
        let s = secret();
        for rights in [Rights::Read, Rights::Write] {
            let t = issue(&s, "room-1", rights, NOW + 60);
            assert!(t.starts_with("v1."));
            assert_eq!(t.split('.').count(), 3);
            assert_eq!(granted(verify(&s, &t, "room-1", NOW)), Ok(rights));
        }
    }

    #[test]
    fn room_names_with_odd_characters_round_trip() {
        let s = secret();
        let room = "a/b \"c\" ünï.cödé";
        let t = issue(&s, room, Rights::Write, NOW + 1);
        assert_eq!(granted(verify(&s, &t, room, NOW)), Ok(Rights::Write));
    }

    #[test]
    fn forged_payload_is_bad_signature() {
        let s = secret();
        let t = issue(&s, "r", Rights::Read, NOW + 60);
        // Byte 5 lies inside the payload part ("v1." is 3 bytes).
        assert_eq!(
            verify(&s, &flip(&t, 5), "r", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn upgraded_rights_are_bad_signature() {
        let s = secret();
        let t = issue(&s, "r", Rights::Read, NOW + 60);
        let mac = t.rsplit_once('.').unwrap().1;
        let payload = URL_SAFE_NO_PAD.encode(br#"{"room":"r","rights":"write","exp":9999999999}"#);
        let forged = format!("v1.{payload}.{mac}");
        assert_eq!(verify(&s, &forged, "r", NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn forged_mac_is_bad_signature() {
        let s = secret();
        let t = issue(&s, "r", Rights::Write, NOW + 60);
        let last = t.len() - 2; // not the final char, whose low bits may be ignored
        assert_eq!(
            verify(&s, &flip(&t, last), "r", NOW),
            Err(TokenError::BadSignature)
        );
        // A truncated MAC must not verify either.
        let (signed, mac) = t.rsplit_once('.').unwrap();
        let short = format!("{signed}.{}", &mac[..8]);
        assert_eq!(verify(&s, &short, "r", NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn other_secret_is_bad_signature() {
        let t = issue(&secret(), "r", Rights::Write, NOW + 60);
        let other = Secret::from_file_bytes(b"another secret, just as long as one").unwrap();
        assert_eq!(verify(&other, &t, "r", NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn expired_at_and_after_exp() {
        let s = secret();
        let t = issue(&s, "r", Rights::Write, NOW);
        assert_eq!(
            verify(&s, &t, "r", NOW),
            Err(TokenError::Expired { exp: NOW })
        );
        assert_eq!(
            verify(&s, &t, "r", NOW + 1000),
            Err(TokenError::Expired { exp: NOW })
        );
        assert_eq!(granted(verify(&s, &t, "r", NOW - 1)), Ok(Rights::Write));
    }

    #[test]
    fn other_room_is_wrong_room() {
        let s = secret();
        let t = issue(&s, "a", Rights::Write, NOW + 60);
        assert_eq!(verify(&s, &t, "b", NOW), Err(TokenError::WrongRoom));
        assert_eq!(verify(&s, &t, "", NOW), Err(TokenError::WrongRoom));
        // Expiry is reported before the room.
        assert!(matches!(
            verify(&s, &t, "b", NOW + 60),
            Err(TokenError::Expired { .. })
        ));
    }

    #[test]
    fn malformed_tokens() {
        let s = secret();
        let good = issue(&s, "r", Rights::Read, NOW + 60);
        let (signed, mac) = good.rsplit_once('.').unwrap();
        let (_, payload) = signed.split_once('.').unwrap();
        let cases = [
            String::new(),
            "v1".to_string(),
            "v1.".to_string(),
            format!("v1.{payload}"),
            format!("{payload}.{mac}"),
            format!("v2.{payload}.{mac}"),
            format!("v1.{payload}.{mac}.x"),
            format!("v1.{payload}.!!notbase64!!"),
            format!("v1.{payload}.{mac}="),
            "x".repeat(MAX_TOKEN_LEN + 1),
            format!("v1.{payload}.{}", "A".repeat(MAX_TOKEN_LEN)),
        ];
        for case in &cases {
            let r = verify(&s, case, "r", NOW);
            assert!(
                matches!(r, Err(TokenError::Malformed(_))),
                "{case:.40?}: {r:?}"
            );
        }
    }

    #[test]
    fn signed_but_bad_payloads_are_malformed() {
        let s = secret();
        let bad_payloads: [&[u8]; 8] = [
            b"not json",
            b"",
            b"[1,2]",
            br#"{"rights":"read","exp":1}"#,
            br#"{"room":"r","exp":99999999999}"#,
            br#"{"room":"r","rights":"admin","exp":99999999999}"#,
            br#"{"room":"r","rights":"read","exp":-1}"#,
            br#"{"room":"r","rights":"read","exp":"soon"}"#,
        ];
        for p in bad_payloads {
            let t = sign_payload(&s, p);
            let r = verify(&s, &t, "r", NOW);
            assert!(matches!(r, Err(TokenError::Malformed(_))), "{p:?}: {r:?}");
        }
        // Signed text that is not base64url: the MAC passes, decoding fails.
        let mut t = format!("{VERSION}.@@@");
        let tag = s.mac(t.as_bytes()).finalize().into_bytes();
        t = format!("{t}.{}", URL_SAFE_NO_PAD.encode(tag));
        assert_eq!(
            verify(&s, &t, "r", NOW),
            Err(TokenError::Malformed("payload is not base64url"))
        );
    }

    #[test]
    fn http_statuses_and_reasons() {
        assert_eq!(TokenError::Missing.http_status(), 401);
        assert_eq!(TokenError::Malformed("x").http_status(), 401);
        assert_eq!(TokenError::BadSignature.http_status(), 401);
        assert_eq!(TokenError::Expired { exp: 0 }.http_status(), 401);
        assert_eq!(TokenError::WrongRoom.http_status(), 403);
        assert_eq!(TokenError::Missing.metric_reason(), "token_missing");
        assert_eq!(TokenError::BadSignature.metric_reason(), "token_invalid");
        assert_eq!(
            TokenError::Expired { exp: 0 }.metric_reason(),
            "token_expired"
        );
        assert_eq!(TokenError::WrongRoom.metric_reason(), "token_room");
        assert!(
            TokenError::Expired { exp: 5 }
                .to_string()
                .contains("expired")
        );
        assert!(TokenError::BadSignature.to_string().contains("signature"));
    }

    #[test]
    fn secret_trailing_whitespace_is_trimmed() {
        let plain = Secret::from_file_bytes(b"s3cret-that-is-long-enough-for-hmac").unwrap();
        let t = issue(&plain, "r", Rights::Write, NOW + 60);
        for file in [
            &b"s3cret-that-is-long-enough-for-hmac\n"[..],
            b"s3cret-that-is-long-enough-for-hmac\r\n",
            b"s3cret-that-is-long-enough-for-hmac \t\r\n\n",
        ] {
            let s = Secret::from_file_bytes(file).unwrap();
            assert_eq!(granted(verify(&s, &t, "r", NOW)), Ok(Rights::Write));
        }
        // Leading whitespace is part of the key.
        let leading = Secret::from_file_bytes(b" s3cret-that-is-long-enough-for-hmac").unwrap();
        assert_eq!(
            verify(&leading, &t, "r", NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn short_secrets_are_refused_naming_the_length() {
        let err = Secret::from_file_bytes(&[b'x'; MIN_SECRET_LEN - 1]).unwrap_err();
        assert!(err.to_string().contains("31 bytes"), "{err}");
        // Trailing whitespace does not count.
        let mut padded = vec![b'x'; MIN_SECRET_LEN - 1];
        padded.extend_from_slice(b"  \n");
        assert!(Secret::from_file_bytes(&padded).is_err());
        assert!(Secret::from_file_bytes(&[b'x'; MIN_SECRET_LEN]).is_ok());
    }

    #[test]
    fn verify_returns_the_expiry() {
        let t = issue(&secret(), "r", Rights::Read, NOW + 7);
        assert_eq!(
            verify(&secret(), &t, "r", NOW),
            Ok(Grant {
                rights: Rights::Read,
                expires_at: NOW + 7
            })
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for h in ["Bearer abc", "bearer abc", "BEARER abc", "  BeArEr   abc  "] {
            assert_eq!(bearer(h), Some("abc"), "{h:?}");
        }
        for h in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "", "abc"] {
            assert_eq!(bearer(h), None, "{h:?}");
        }
    }

    #[test]
    fn empty_secret_is_refused() {
        for file in [&b""[..], b"\n", b" \t\r\n"] {
            assert!(matches!(
                Secret::from_file_bytes(file),
                Err(TokenError::Secret(_))
            ));
        }
    }

    #[test]
    fn load_reports_the_path() {
        let dir = std::env::temp_dir().join(format!("neuroplex-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("no-such-secret");
        let err = Secret::load(&missing).unwrap_err();
        assert!(err.to_string().contains("no-such-secret"), "{err}");

        let file = dir.join("secret");
        std::fs::write(&file, b"s3cret-that-is-long-enough-for-hmac\n").unwrap();
        let s = Secret::load(&file).unwrap();
        let t = issue(
            &Secret::from_file_bytes(b"s3cret-that-is-long-enough-for-hmac").unwrap(),
            "r",
            Rights::Read,
            NOW + 1,
        );
        assert_eq!(granted(verify(&s, &t, "r", NOW)), Ok(Rights::Read));
        assert_eq!(format!("{s:?}"), "Secret(..)");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rights_parse_and_display() {
        assert_eq!("read".parse::<Rights>(), Ok(Rights::Read));
        assert_eq!("write".parse::<Rights>(), Ok(Rights::Write));
        assert!("Write".parse::<Rights>().is_err());
        assert!("".parse::<Rights>().is_err());
        assert_eq!(Rights::Read.to_string(), "read");
        assert_eq!(Rights::Write.to_string(), "write");
        assert!(Rights::Write.can_write());
        assert!(!Rights::Read.can_write());
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_ttl("3600"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "h",
            "0",
            "0s",
            "-5",
            "+5",
            "1.5h",
            "1w",
            "1 h",
            "5hh",
            "99999999999999999999",
            "999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }
}
