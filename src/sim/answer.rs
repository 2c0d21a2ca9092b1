//! The answer webhook as Vonage calls it. Each request must connect within the
//! application's `connection_timeout` (1 s by default) and be answered within its
//! `socket_timeout` (5 s). A refused or reset connection, a timeout, or HTTP 429, 503 or
//! 504 is tried again: the answer URL twice, then the fallback answer URL twice, whose
//! requests add `reason` and `original_request`; then Vonage ends the call. Any other
//! status, or an answer that is not JSON, fails the call at once.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::{
    dial::Dial,
    dial::Method,
    findings::{Check, Finding},
};
use crate::error::{Error, Result};

pub use super::dial::{DEFAULT_ANSWER_TIMEOUT, DEFAULT_CONNECT_TIMEOUT};

/// Requests to each URL before Vonage moves on.
const TRIES_PER_URL: usize = 2;

/// The HTTP statuses Vonage tries again, as it tries an unreachable URL again.
const RETRIED_STATUSES: [u16; 3] = [429, 503, 504];

/// The largest answer read: an NCCO is a few kilobytes.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// One request to the answer webhook, or to its fallback.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The URL asked.
    pub url: String,
    /// Whether it was the fallback answer URL.
    pub fallback: bool,
    /// The HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why it did not answer, or why its answer was refused.
    pub error: Option<String>,
    /// How long it took.
    pub took: Duration,
}

impl Attempt {
    /// The attempt in a few words: `GET http://... 503 (12 ms)`.
    pub fn summary(&self, method: Method) -> String {
        let outcome = match (&self.status, &self.error) {
            (Some(code), None) => code.to_string(),
            (Some(code), Some(e)) => format!("{code}, {e}"),
            (None, Some(e)) => e.clone(),
            (None, None) => "no answer".into(),
        };
        format!(
            "{} {}{} {outcome} ({:.0} ms)",
            method.name(),
            self.url,
            if self.fallback { " (fallback)" } else { "" },
            self.took.as_secs_f64() * 1000.0
        )
    }
}

/// Findings of the answer webhook's attempts: a warning for each that failed before one
/// gave an NCCO.
pub(crate) fn attempt_findings(attempts: &[Attempt], method: Method) -> Vec<Finding> {
    let Some((_, failed)) = attempts.split_last() else {
        return Vec::new();
    };
    failed
        .iter()
        .map(|a| {
            Finding::warning(
                Check::AnswerWebhook,
                format!(
                    "{}: Vonage asked again, and a later request gave the NCCO",
                    a.summary(method)
                ),
            )
        })
        .collect()
}

/// What asking the answer webhook came to: every attempt, and the NCCO's body if one
/// attempt gave it.
#[derive(Debug)]
pub(crate) struct Asked {
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) body: Result<Vec<u8>>,
}

/// What one request came to.
enum Outcome {
    /// A usable answer: 200 with JSON.
    Answer(Vec<u8>),
    /// Unreachable, slow or busy: Vonage asks again. The reason a fallback request gives.
    Again(String),
    /// An answer Vonage does not retry: the call fails.
    Refused(Error),
}

/// Asks for the call's NCCO as Vonage does, with `params` (Vonage's request fields).
pub(crate) fn ask(dial: &Dial, agent: &ureq::Agent, params: &[(&str, String)]) -> Asked {
    let mut attempts = Vec::new();
    let urls = std::iter::repeat_n((&dial.answer_url, false), TRIES_PER_URL).chain(
        dial.fallback_answer_url
            .iter()
            .flat_map(|url| std::iter::repeat_n((url, true), TRIES_PER_URL)),
    );
    let mut last = String::new();
    // The first failure's reason goes with every fallback request, as Vonage sends it.
    let mut first_reason: Option<String> = None;
    for (url, fallback) in urls {
        let extra = match (&first_reason, fallback) {
            (Some(reason), true) => Some(fallback_fields(&dial.answer_url, reason)),
            _ => None,
        };
        let started = Instant::now();
        let (outcome, status) = once(dial, agent, url, params, extra);
        let mut attempt = Attempt {
            url: url.clone(),
            fallback,
            status,
            error: None,
            took: started.elapsed(),
        };
        match outcome {
            Outcome::Answer(body) => {
                attempts.push(attempt);
                return Asked {
                    attempts,
                    body: Ok(body),
                };
            }
            Outcome::Refused(e) => {
                attempt.error = Some(e.to_string());
                attempts.push(attempt);
                return Asked {
                    attempts,
                    body: Err(e),
                };
            }
            Outcome::Again(reason) => {
                // A busy status says it all; a transport failure after a status does not.
                let busy = status.is_some_and(|s| RETRIED_STATUSES.contains(&s));
                attempt.error = (!busy).then(|| reason.clone());
                attempts.push(attempt);
                first_reason.get_or_insert_with(|| reason.clone());
                last = reason;
            }
        }
    }
    let tried = if dial.fallback_answer_url.is_some() {
        "the answer URL twice and the fallback answer URL twice"
    } else {
        "the answer URL twice (no fallback answer URL is set: --fallback-answer-url)"
    };
    Asked {
        attempts,
        body: Err(Error::Http(format!(
            "answer webhook {}: no NCCO after asking {tried}; the last: {last}; Vonage ends the call",
            dial.answer_url
        ))),
    }
}

/// What a fallback request adds to the original: why the first request failed, and what
/// it was.
fn fallback_fields(original: &str, reason: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("reason", reason.into()),
        (
            "original_request",
            json!({"url": original, "type": "answer"}),
        ),
    ]
}

/// One request to `url`: the outcome and, when it answered, its status.
fn once(
    dial: &Dial,
    agent: &ureq::Agent,
    url: &str,
    params: &[(&str, String)],
    extra: Option<Vec<(&'static str, Value)>>,
) -> (Outcome, Option<u16>) {
    let mut fields: Map<String, Value> = params
        .iter()
        .map(|(k, v)| ((*k).into(), v.clone().into()))
        .collect();
    fields.extend(extra.into_iter().flatten().map(|(k, v)| (k.into(), v)));
    let response = dial.webhook(agent, dial.method, url, &fields, dial.answer_timeout);
    let mut response = match response {
        Ok(response) => response,
        Err(e) if is_unreachable(&e) => {
            return (
                Outcome::Again(describe(&e, dial.connect_timeout, dial.answer_timeout)),
                None,
            )
        }
        Err(e) => {
            let e = Error::Http(format!(
                "answer webhook {url}: {}",
                describe(&e, dial.connect_timeout, dial.answer_timeout)
            ));
            return (Outcome::Refused(e), None);
        }
    };
    let status = response.status().as_u16();
    let body = match response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
    {
        Ok(body) => body,
        Err(e) if is_unreachable(&e) => {
            return (
                Outcome::Again(describe(&e, dial.connect_timeout, dial.answer_timeout)),
                Some(status),
            )
        }
        Err(e) => {
            let e = Error::Http(format!("answer webhook {url} body: {e}"));
            return (Outcome::Refused(e), Some(status));
        }
    };
    (judge(url, status, &response, body), Some(status))
}

/// Whether an answer is an NCCO Vonage runs, one it asks for again, or one that fails
/// the call.
fn judge(
    url: &str,
    status: u16,
    response: &ureq::http::Response<ureq::Body>,
    body: Vec<u8>,
) -> Outcome {
    let excerpt = || crate::text::cut(&String::from_utf8_lossy(&body), 200).to_owned();
    if RETRIED_STATUSES.contains(&status) {
        return Outcome::Again(format!("answered {status}: {:?}", excerpt()));
    }
    if status != 200 {
        return Outcome::Refused(Error::Http(format!(
            "answer webhook {url} answered {status}: {:?}; Vonage tries again only on a timeout, \
             a refused connection, 429, 503 or 504, and ends the call",
            excerpt()
        )));
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Outcome::Refused(Error::Ncco(format!(
            "answered with Content-Type {content_type:?}, not application/json: Vonage fails the call"
        )));
    }
    Outcome::Answer(body)
}

/// Whether a request failed for want of a server (refused, reset, timed out, unresolved),
/// which Vonage tries again, rather than for something it was sent.
fn is_unreachable(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Timeout(_)
            | ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
    )
}

/// A request's failure in words, naming the timeout Vonage gave it.
pub(crate) fn describe(e: &ureq::Error, connect: Duration, whole: Duration) -> String {
    match e {
        ureq::Error::Timeout(ureq::Timeout::Connect) => format!(
            "could not connect within {:.2} s (connection_timeout)",
            connect.as_secs_f64()
        ),
        ureq::Error::Timeout(_) => format!(
            "no whole answer within {:.2} s (socket_timeout)",
            whole.as_secs_f64()
        ),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset => {
            "connection reset".into()
        }
        other => other.to_string(),
    }
}
