//! HTTP refusals: the one JSON error body every refusal carries, and the whole response a
//! listener writes itself when it turns a connection away before any HTTP library has it
//! (the gate's limits, and the socket listener's 503 and 400).

/// The body of every refusal and error answer: `{"error": reason}`.
pub(crate) fn error_body(reason: &str) -> String {
    serde_json::json!({ "error": reason }).to_string()
}

/// A complete HTTP response refusing a request, with the reason as JSON, closing the
/// connection.
pub(crate) fn refusal(status: u16, reason: &str) -> Vec<u8> {
    let body = error_body(reason);
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason_phrase(status),
        body.len()
    )
    .into_bytes()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_a_complete_response_with_a_json_reason() {
        let text = String::from_utf8(refusal(431, "too big")).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"error\":\"too big\"}"));
        assert!(text.contains("Content-Length: 19\r\n"));
    }
}
