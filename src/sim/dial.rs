//! Where and how Vonage places a call ([`Dial`]): what Vonage knows from the application's
//! settings, its timeouts, and the one HTTP client every webhook request goes through. The
//! steps of call setup that use it are the next floor up, in `setup`.

use std::{path::PathBuf, time::Duration};

use serde_json::{Map, Value};
use tungstenite::http;

use super::{
    tls,
    urls::{Origin, Rewrite, Urls},
};
use crate::{
    error::{Error, Result},
    protocol::auth::{self, Secret},
};

/// How long Vonage waits for the answer webhook's connection, by default (the
/// application's `connection_timeout`; 300 to 1,000 ms).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long Vonage waits for the answer webhook's whole answer, by default (the
/// application's `socket_timeout`; 1 to 5 s).
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long Vonage waits for the event webhook (the application's `socket_timeout` for
/// events, by default).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How fast Vonage speaks a `talk`, by default, in characters a second: about 160 words a
/// minute of English, the pace of its text-to-speech voices. The emulator cannot hear its
/// own speech, so it estimates a talk's time from its text.
pub const DEFAULT_TALK_RATE: f64 = 15.0;

/// How long a caller listens to an NCCO's talks and waits, between socket legs, before it
/// hangs up, by default: a minute, longer than any greeting, short of hold music.
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);

/// How a webhook is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Parameters in the query string (Vonage's default for the answer webhook).
    #[default]
    Get,
    /// Parameters as a JSON body (an application's `answer_method: POST`; events' default).
    Post,
}

impl Method {
    /// `GET` or `POST`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// How the answer webhook is requested (the name it has always had).
pub type AnswerMethod = Method;

/// Where and how to place a call: what Vonage knows from the application's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Dial {
    /// The answer webhook, e.g. `http://127.0.0.1:3000/webhooks/answer`.
    pub answer_url: String,
    /// Asked twice when the answer URL could not answer twice (default: none).
    pub fallback_answer_url: Option<String>,
    /// GET (default) or POST, for the answer and fallback answer URLs.
    pub method: Method,
    /// Where the call's events are posted; `None` derives `/webhooks/events` on the answer
    /// URL's host.
    pub event_url: Option<String>,
    /// Whether events are posted at all (default: true).
    pub post_events: bool,
    /// Where the NCCO's URLs are really reached: `--ws-url` and `--rewrite` (default: as
    /// written).
    pub urls: Urls,
    /// The caller's number.
    pub from: String,
    /// The number called.
    pub to: String,
    /// How long Vonage waits to connect to a webhook (default: 1 s).
    pub connect_timeout: Duration,
    /// How long Vonage waits for the answer webhook's whole answer (default: 5 s).
    pub answer_timeout: Duration,
    /// How long Vonage waits for the event webhook (default: 10 s).
    pub event_timeout: Duration,
    /// How fast a `talk` is spoken, in characters a second; 0 speaks it in no time
    /// (default: [`DEFAULT_TALK_RATE`]).
    pub talk_rate: f64,
    /// How long the caller listens to the NCCO's talks and waits, between socket legs,
    /// before it hangs up (default: [`DEFAULT_PATIENCE`]).
    pub patience: Duration,
    /// Vonage's signature secret: with it, every webhook request and a `vonage`-authorized
    /// handshake carry a signed JWT, as Vonage sends them (default: none).
    pub signature_secret: Option<Secret>,
    /// PEM certificates to trust for `https://` and `wss://` instead of the web's roots
    /// (a test or private CA; default: none).
    pub ca_file: Option<PathBuf>,
}

impl Dial {
    /// A call to `answer_url` with Vonage's defaults.
    pub fn new(answer_url: impl Into<String>) -> Dial {
        Dial {
            answer_url: answer_url.into(),
            fallback_answer_url: None,
            method: Method::Get,
            event_url: None,
            post_events: true,
            urls: Urls::default(),
            from: "447700900000".into(),
            to: "447700900001".into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
            event_timeout: EVENT_TIMEOUT,
            talk_rate: DEFAULT_TALK_RATE,
            patience: DEFAULT_PATIENCE,
            signature_secret: None,
            ca_file: None,
        }
    }

    setters! {
        /// Sets [`Dial::signature_secret`].
        signature_secret: Option<Secret>,
        /// Sets [`Dial::connect_timeout`].
        connect_timeout: Duration,
        /// Sets [`Dial::answer_timeout`].
        answer_timeout: Duration,
        /// Sets [`Dial::event_timeout`].
        event_timeout: Duration,
        /// Sets [`Dial::fallback_answer_url`].
        fallback_answer_url: Option<String>,
        /// Sets [`Dial::method`].
        method: Method,
        /// Sets [`Dial::event_url`].
        event_url: Option<String>,
        /// Sets [`Dial::post_events`].
        post_events: bool,
        /// Sets [`Dial::patience`].
        patience: Duration,
        /// Sets [`Dial::talk_rate`].
        talk_rate: f64,
        /// Sets [`Dial::ca_file`].
        ca_file: Option<PathBuf>,
    }

    /// The `Authorization` header Vonage would send with `body`, when it signs.
    pub(crate) fn signed(&self, body: Option<&[u8]>) -> Option<String> {
        let secret = self.signature_secret.as_ref()?;
        Some(format!(
            "Bearer {}",
            auth::sign(&auth::vonage_claims(body), secret)
        ))
    }

    /// Sets where every socket is opened, its path and query kept from the NCCO
    /// ([`Urls::socket`]).
    pub fn ws_url(mut self, origin: Option<Origin>) -> Self {
        self.urls.socket = origin;
        self
    }

    /// Sets the public origins whose URLs go to local ones ([`Urls::rewrites`]).
    pub fn rewrites(mut self, rewrites: Vec<Rewrite>) -> Self {
        self.urls.rewrites = rewrites;
        self
    }

    /// The certificates of `ca_file`, PEM.
    pub(crate) fn ca_pem(&self) -> Result<Option<Vec<u8>>> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        std::fs::read(path)
            .map(Some)
            .map_err(|e| Error::io(format!("reading --ca-file {}", path.display()), e))
    }

    /// Requests a webhook as Vonage does: GET with `fields` in the query string (strings
    /// as they are, anything else as JSON), or POST with them as a JSON body; signed when
    /// Vonage signs; connected within `connect_timeout` and answered within `whole`.
    pub(crate) fn webhook(
        &self,
        agent: &ureq::Agent,
        method: Method,
        url: &str,
        fields: &Map<String, Value>,
        whole: Duration,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        match method {
            Method::Get => {
                let pairs = fields.iter().map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.as_str(), v)
                });
                let mut request = agent.get(url).query_pairs(pairs);
                if let Some(signed) = self.signed(None) {
                    request = request.header("Authorization", signed);
                }
                let request = request.config().timeout_connect(Some(self.connect_timeout));
                request.timeout_global(Some(whole)).build().call()
            }
            Method::Post => {
                let body = Value::Object(fields.clone()).to_string();
                let mut request = agent.post(url).header("Content-Type", "application/json");
                if let Some(signed) = self.signed(Some(body.as_bytes())) {
                    request = request.header("Authorization", signed);
                }
                let request = request.config().timeout_connect(Some(self.connect_timeout));
                request.timeout_global(Some(whole)).build().send(body)
            }
        }
    }

    /// The HTTP client; each request sets the timeouts Vonage gives its webhook.
    pub(crate) fn agent(&self) -> Result<ureq::Agent> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        match self.ca_pem()? {
            Some(pem) => Ok(tls::agent(config, tls::client_config(Some(&pem))?)),
            None => Ok(config.new_agent()),
        }
    }

    /// How `wss://` sockets are verified: the CA file's certificates, else the web's roots.
    pub(crate) fn tls_connector(&self) -> Result<tungstenite::Connector> {
        let pem = self.ca_pem()?;
        Ok(tungstenite::Connector::Rustls(tls::client_config(
            pem.as_deref(),
        )?))
    }

    /// `/webhooks/events` beside the answer URL.
    pub(crate) fn default_event_url(&self) -> Result<String> {
        let uri: http::Uri = self
            .answer_url
            .parse()
            .map_err(|e| Error::Http(format!("answer URL {:?}: {e}", self.answer_url)))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                Ok(format!("{scheme}://{authority}/webhooks/events"))
            }
            _ => Err(Error::Http(format!(
                "answer URL {:?} is not absolute",
                self.answer_url
            ))),
        }
    }
}
