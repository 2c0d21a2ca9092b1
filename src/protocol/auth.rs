//! Who gets in. Vonage signs its webhooks (and, with `"authorization": {"type": "vonage"}`,
//! its socket handshakes) with an HS256 JWT under the account's signature secret; and each
//! NCCO hands Vonage a token bound to the call's uuid, which the socket handshake must bring
//! back, so a stranger who finds the socket cannot stream into it.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::protocol::call_id::CallId;

type HmacSha256 = Hmac<Sha256>;

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the secret's bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    /// A fresh random 256-bit secret (from the operating system's generator).
    pub fn random() -> Secret {
        let mut bytes = vec![0u8; 32];
        // The same generator the uuids of calls come from; without it nothing here works.
        getrandom::fill(&mut bytes).expect("the operating system's random generator answers");
        Secret(bytes)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length.
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer ...` header.
    Missing,
    /// The token is not a well-formed JWT.
    Malformed(&'static str),
    /// The token is signed with another algorithm than HS256 (`none` included).
    Algorithm(String),
    /// The signature does not match the secret.
    Signature,
    /// `iat` is missing or outside the tolerance.
    Stale(String),
    /// `payload_hash` does not match the body.
    PayloadHash,
    /// A socket token that is not the one issued for the call.
    Token,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => f.write_str("no Authorization: Bearer token"),
            AuthError::Malformed(what) => write!(f, "malformed token: {what}"),
            AuthError::Algorithm(alg) => {
                write!(f, "token algorithm {alg:?} refused; only HS256 is accepted")
            }
            AuthError::Signature => {
                f.write_str("token signature does not match the signature secret")
            }
            AuthError::Stale(why) => write!(f, "token {why}"),
            AuthError::PayloadHash => f.write_str("payload_hash does not match the request body"),
            AuthError::Token => f.write_str("socket token is not the one issued for this call"),
        }
    }
}

impl std::error::Error for AuthError {}

/// The token of an `Authorization` header value, if it is `Bearer <token>`.
fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

fn decode_json(part: &str, what: &'static str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::Malformed(what)),
    }
}

/// Verifies a Vonage-signed request: `Authorization: Bearer <JWT>`, HS256 under `secret`,
/// `iat` within `tolerance` of now, and, when the token has `payload_hash` and a `body` is
/// given, the body's SHA-256. Returns the token's claims.
pub fn verify_signed(
    authorization: Option<&str>,
    secret: &Secret,
    tolerance: Duration,
    body: Option<&[u8]>,
) -> Result<Map<String, Value>, AuthError> {
    let token = bearer(authorization)?;
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("not three dot-separated parts"));
    };
    let header_json = decode_json(header, "header is not base64url JSON")?;
    match header_json.get("alg").and_then(Value::as_str) {
        Some("HS256") => {}
        Some(other) => return Err(AuthError::Algorithm(other.to_owned())),
        None => return Err(AuthError::Malformed("header has no alg")),
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("signature is not base64url"))?;
    let mut mac = secret.mac();
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| AuthError::Signature)?;

    let claims = decode_json(payload, "payload is not base64url JSON")?;
    let iat = claims
        .get("iat")
        .and_then(Value::as_f64)
        .ok_or_else(|| AuthError::Stale("has no iat".into()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let skew = (now - iat).abs();
    if !skew.is_finite() || skew > tolerance.as_secs_f64() {
        return Err(AuthError::Stale(format!(
            "issued {skew:.0} s from now; tolerance is {} s",
            tolerance.as_secs()
        )));
    }
    if let (Some(expected), Some(body)) = (claims.get("payload_hash"), body) {
        let expected = expected.as_str().ok_or(AuthError::PayloadHash)?;
        let actual = hex(&Sha256::digest(body));
        if !expected.eq_ignore_ascii_case(&actual) {
            return Err(AuthError::PayloadHash);
        }
    }
    Ok(claims)
}

/// Signs `claims` as Vonage does (HS256), for the simulator and tests.
pub fn sign(claims: &Value, secret: &Secret) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = secret.mac();
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

/// The claims Vonage puts in a webhook's token, with `payload_hash` for a body.
pub fn vonage_claims(body: Option<&[u8]>) -> Value {
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = serde_json::json!({
        "iat": iat,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iss": "Vonage",
        "api_key": "simulator",
    });
    if let Some(body) = body {
        claims["payload_hash"] = hex(&Sha256::digest(body)).into();
    }
    claims
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The per-call socket token: an HMAC of the call's uuid under the server's key, so any
/// instance sharing the key can check it and no one without the key can make one.
pub fn socket_token(key: &Secret, id: &CallId) -> String {
    let mut mac = key.mac();
    mac.update(id.as_str().as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Checks a handshake's `Authorization` header against the call's token, in constant time.
pub fn verify_socket_token(
    authorization: Option<&str>,
    key: &Secret,
    id: &CallId,
) -> Result<(), AuthError> {
    let presented = URL_SAFE_NO_PAD
        .decode(bearer(authorization)?)
        .map_err(|_| AuthError::Token)?;
    let mut mac = key.mac();
    mac.update(id.as_str().as_bytes());
    mac.verify_slice(&presented).map_err(|_| AuthError::Token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANCE: Duration = Duration::from_secs(300);

    fn secret() -> Secret {
        Secret::new("shhh")
    }

    fn bearer_of(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn random_secrets_are_256_bits_and_distinct() {
        let (a, b) = (Secret::random(), Secret::random());
        assert_eq!((a.0.len(), b.0.len()), (32, 32));
        assert_ne!(a, b);
    }

    #[test]
    fn a_signed_request_verifies() {
        let body = br#"{"status":"answered"}"#;
        let token = sign(&vonage_claims(Some(body)), &secret());
        let claims =
            verify_signed(Some(&bearer_of(&token)), &secret(), TOLERANCE, Some(body)).unwrap();
        assert_eq!(claims["iss"], "Vonage");
    }

    #[test]
    fn another_secret_is_refused() {
        let token = sign(&vonage_claims(None), &Secret::new("other"));
        let err = verify_signed(Some(&bearer_of(&token)), &secret(), TOLERANCE, None).unwrap_err();
        assert_eq!(err, AuthError::Signature);
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(vonage_claims(None).to_string());
        let token = format!("{header}.{payload}.");
        let err = verify_signed(Some(&bearer_of(&token)), &secret(), TOLERANCE, None).unwrap_err();
        assert_eq!(err, AuthError::Algorithm("none".into()));
    }

    #[test]
    fn a_stale_token_is_refused() {
        let mut claims = vonage_claims(None);
        claims["iat"] = 1_000_000.into();
        let token = sign(&claims, &secret());
        let err = verify_signed(Some(&bearer_of(&token)), &secret(), TOLERANCE, None).unwrap_err();
        assert!(matches!(err, AuthError::Stale(_)), "{err}");
    }

    #[test]
    fn a_changed_body_is_refused() {
        let token = sign(&vonage_claims(Some(b"{}")), &secret());
        let err = verify_signed(
            Some(&bearer_of(&token)),
            &secret(),
            TOLERANCE,
            Some(b"{\"x\":1}"),
        )
        .unwrap_err();
        assert_eq!(err, AuthError::PayloadHash);
    }

    #[test]
    fn missing_and_malformed_tokens_are_refused() {
        assert_eq!(
            verify_signed(None, &secret(), TOLERANCE, None),
            Err(AuthError::Missing)
        );
        assert_eq!(
            verify_signed(Some("Basic abc"), &secret(), TOLERANCE, None),
            Err(AuthError::Missing)
        );
        assert!(matches!(
            verify_signed(Some("Bearer a.b"), &secret(), TOLERANCE, None),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn socket_tokens_are_bound_to_their_call() {
        let key = Secret::random();
        let (a, b) = (
            CallId::parse("call-a").unwrap(),
            CallId::parse("call-b").unwrap(),
        );
        let token = bearer_of(&socket_token(&key, &a));
        assert_eq!(verify_socket_token(Some(&token), &key, &a), Ok(()));
        assert_eq!(
            verify_socket_token(Some(&token), &key, &b),
            Err(AuthError::Token)
        );
        assert_eq!(
            verify_socket_token(Some(&token), &Secret::random(), &a),
            Err(AuthError::Token)
        );
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(..)");
    }

    #[test]
    fn arbitrary_tokens_never_panic() {
        let alphabet = b"ab.=-_ {}\"eyJhbGciOiJIUzI1NiJ9Bearer ";
        for token in crate::soup::strings(5, 20_000, 200, alphabet) {
            let header = format!("Bearer {token}");
            let _ = verify_signed(Some(&header), &secret(), TOLERANCE, Some(token.as_bytes()));
            let _ = verify_socket_token(Some(&header), &secret(), &CallId::parse("x").unwrap());
        }
    }
}
