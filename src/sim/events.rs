//! Call events as Vonage posts them: each leg of a call (the caller's, and the socket's that
//! `connect` opens) has its own uuid and its own event URL, and every event carries the
//! leg's common fields, a timestamp in milliseconds, and what its status adds (Vonage's
//! webhook reference). A call's events are posted beside it, never in its way: a webhook
//! that fails or is slow is a warning, and never ends a call.

use std::{
    sync::mpsc,
    thread,
    time::{Duration, Instant, SystemTime},
};

use serde_json::{Map, Value};

use super::{dial::Dial, dial::Method};
use crate::protocol::call_id::CallId;

pub use super::dial::EVENT_TIMEOUT;

/// The largest answer read from an event webhook (a synchronous one may answer an NCCO).
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// The most characters of a failing webhook's answer kept for its warning.
const ANSWER_EXCERPT: usize = 120;

/// Which leg of the call an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegKind {
    /// The caller's leg, inbound to the application.
    Call,
    /// The socket's leg, outbound from Vonage to the NCCO's `uri`.
    Socket,
}

impl LegKind {
    /// The name the report gives the leg.
    pub fn name(self) -> &'static str {
        match self {
            LegKind::Call => "call",
            LegKind::Socket => "socket",
        }
    }
}

/// Where one leg's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTarget {
    /// The event webhook.
    pub url: String,
    /// GET puts the fields in the query string; POST (the default) sends them as JSON.
    pub method: Method,
}

/// One leg of a call: what every one of its events carries, and when it started and
/// answered (for `start_time`, `end_time` and `duration`).
#[derive(Debug, Clone)]
pub(crate) struct Leg {
    pub(crate) kind: LegKind,
    pub(crate) uuid: CallId,
    pub(crate) conversation: String,
    pub(crate) from: String,
    pub(crate) to: String,
    /// The NCCO endpoint's headers on a socket leg; `{}` on the caller's.
    pub(crate) headers: Map<String, Value>,
    /// Where its events go; `None` when events are not posted.
    pub(crate) target: Option<EventTarget>,
    pub(crate) answered: Option<SystemTime>,
}

impl Leg {
    /// The caller's leg of a new call.
    pub(crate) fn call(dial: &Dial, uuid: CallId, target: Option<EventTarget>) -> Leg {
        Leg {
            kind: LegKind::Call,
            uuid,
            conversation: format!("CON-{}", uuid::Uuid::new_v4()),
            from: dial.from.clone(),
            to: dial.to.clone(),
            headers: Map::new(),
            target,
            answered: None,
        }
    }

    /// The socket leg a `connect` opens in this call, to `uri`.
    pub(crate) fn socket(
        &self,
        uri: &str,
        from: Option<&str>,
        headers: Map<String, Value>,
        target: Option<EventTarget>,
    ) -> Leg {
        Leg {
            kind: LegKind::Socket,
            uuid: CallId::random(),
            conversation: self.conversation.clone(),
            from: from.unwrap_or(&self.to).to_owned(),
            to: uri.to_owned(),
            headers,
            target,
            answered: None,
        }
    }

    /// Marks the leg answered now.
    pub(crate) fn answer(&mut self) {
        self.answered = Some(SystemTime::now());
    }

    /// The leg's `status` event, with what that status adds: `answered` its start time,
    /// rate and network; `completed` its times, duration, price and who hung up; a failure
    /// its `detail`.
    pub(crate) fn event(&self, status: Status) -> Event {
        let now = SystemTime::now();
        let mut body = self.common(status.name(), now);
        let answered = self.answered.map(timestamp);
        match status {
            Status::Answered => {
                body.insert("start_time".into(), timestamp(now).into());
                body.insert("rate".into(), RATE.into());
                body.insert("network".into(), "".into());
            }
            Status::Completed(by) => {
                let seconds = self
                    .answered
                    .and_then(|a| now.duration_since(a).ok())
                    .map_or(0, |d| d.as_secs());
                // A leg that never answered has no start time: the field is left out.
                if let Some(answered) = answered {
                    body.insert("start_time".into(), answered.into());
                }
                body.insert("end_time".into(), timestamp(now).into());
                body.insert("duration".into(), seconds.to_string().into());
                body.insert("rate".into(), RATE.into());
                body.insert("price".into(), RATE.into());
                body.insert("network".into(), "".into());
                body.insert("disconnected_by".into(), by.name().into());
            }
            Status::Failed(detail) | Status::Unanswered(detail) => {
                body.insert("detail".into(), detail.into());
            }
            Status::Started | Status::Ringing | Status::Disconnected => {}
        }
        Event {
            leg: self.kind,
            status: status.name(),
            body,
            at: Instant::now(),
        }
    }

    /// The event for an NCCO Vonage cannot run, and why.
    pub(crate) fn ncco_error(&self, why: &str) -> Event {
        self.error(&format!("Syntax error in NCCO: {why}"))
    }

    /// The event Vonage posts for an NCCO it cannot run: a `reason`, with the
    /// conversation and a timestamp, and no status.
    pub(crate) fn error(&self, reason: &str) -> Event {
        let mut body = Map::new();
        body.insert("reason".into(), reason.into());
        body.insert("conversation_uuid".into(), self.conversation.clone().into());
        body.insert("timestamp".into(), timestamp(SystemTime::now()).into());
        Event {
            leg: self.kind,
            status: "error",
            body,
            at: Instant::now(),
        }
    }

    /// What every event of the leg carries.
    fn common(&self, status: &str, now: SystemTime) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("from".into(), self.from.clone().into());
        body.insert("to".into(), self.to.clone().into());
        body.insert("uuid".into(), self.uuid.as_str().into());
        body.insert("conversation_uuid".into(), self.conversation.clone().into());
        body.insert("status".into(), status.into());
        let direction = match self.kind {
            LegKind::Call => "inbound",
            LegKind::Socket => "outbound",
        };
        body.insert("direction".into(), direction.into());
        body.insert("timestamp".into(), timestamp(now).into());
        body.insert("headers".into(), Value::Object(self.headers.clone()));
        body
    }
}

/// The per-minute rate and the price, as strings in Vonage's format: the emulator bills
/// nobody, so both are zero, but an application that parses the fields gets them.
const RATE: &str = "0.00000000";

/// Who ended a leg, as `completed`'s `disconnected_by` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HungUp {
    /// The caller hung up.
    User,
    /// Vonage ended it: the NCCO ran out, a `limit` passed, or the leg ended.
    Platform,
}

impl HungUp {
    fn name(self) -> &'static str {
        match self {
            HungUp::User => "user",
            HungUp::Platform => "platform",
        }
    }
}

/// The statuses the emulator posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Started,
    Ringing,
    Answered,
    /// The application closed the socket (a socket leg only).
    Disconnected,
    Completed(HungUp),
    /// The leg could not be set up, and why (`detail`).
    Failed(&'static str),
    /// The socket did not open within the `connect` action's timeout.
    Unanswered(&'static str),
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Started => "started",
            Status::Ringing => "ringing",
            Status::Answered => "answered",
            Status::Disconnected => "disconnected",
            Status::Completed(_) => "completed",
            Status::Failed(_) => "failed",
            Status::Unanswered(_) => "unanswered",
        }
    }
}

/// One event, ready to post.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) leg: LegKind,
    /// Its status, or `error` for an NCCO Vonage cannot run.
    pub(crate) status: &'static str,
    pub(crate) body: Map<String, Value>,
    /// When it happened.
    pub(crate) at: Instant,
}

/// How one event's delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event's status (`error` for an NCCO that could not run).
    pub status: String,
    /// Which leg it was about.
    pub leg: LegKind,
    /// Where it went, and how.
    pub target: EventTarget,
    /// The webhook's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// Why it did not answer.
    pub error: Option<String>,
    /// The start of the webhook's answer when it was not 2xx.
    pub answer: Option<String>,
    /// When the event happened, which orders the report's deliveries.
    pub(crate) at: Instant,
}

impl Delivery {
    /// Whether the webhook took it: 2xx, answered whole in time.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.http_status.is_some_and(|s| (200..300).contains(&s))
    }

    /// What went wrong, as a sentence, when something did.
    pub fn failure(&self) -> Option<String> {
        if self.ok() {
            return None;
        }
        let what = format!(
            "{} {} of the {} leg",
            self.target.method.name(),
            self.target.url,
            self.leg.name()
        );
        Some(match (&self.http_status, &self.error) {
            (Some(code), Some(e)) => format!(
                "{what} answered {code} to {:?} but not whole: {e}; Vonage goes on with the call",
                self.status
            ),
            (Some(code), None) => format!(
                "{what} answered {code} to {:?}: {:?}; Vonage goes on with the call",
                self.status,
                self.answer.as_deref().unwrap_or("")
            ),
            (None, Some(e)) => format!(
                "{what} did not take {:?}: {e}; Vonage goes on with the call",
                self.status
            ),
            (None, None) => format!("{what} did not take {:?}", self.status),
        })
    }
}

/// Posts `event` to `target` as Vonage does and says how it went; the answer's body comes
/// back too (a synchronous `disconnected` may answer with an NCCO).
pub(crate) fn post(
    agent: &ureq::Agent,
    dial: &Dial,
    target: &EventTarget,
    event: &Event,
) -> (Delivery, Option<Vec<u8>>) {
    let mut delivery = Delivery {
        status: event.status.to_owned(),
        leg: event.leg,
        target: target.clone(),
        http_status: None,
        error: None,
        answer: None,
        at: event.at,
    };
    let response = dial.webhook(
        agent,
        target.method,
        &target.url,
        &event.body,
        dial.event_timeout,
    );
    match response {
        Ok(mut response) => {
            let code = response.status().as_u16();
            delivery.http_status = Some(code);
            let body = match response
                .body_mut()
                .with_config()
                .limit(MAX_ANSWER_BYTES)
                .read_to_vec()
            {
                Ok(body) => Some(body),
                Err(e) => {
                    let (connect, whole) = (dial.connect_timeout, dial.event_timeout);
                    delivery.error = Some(super::answer::describe(&e, connect, whole));
                    None
                }
            };
            if !delivery.ok() {
                let text = body.as_deref().map(String::from_utf8_lossy);
                delivery.answer = text.map(|t| crate::text::cut(&t, ANSWER_EXCERPT).to_owned());
            }
            (delivery, body)
        }
        Err(e) => {
            delivery.error = Some(super::answer::describe(
                &e,
                dial.connect_timeout,
                dial.event_timeout,
            ));
            (delivery, None)
        }
    }
}

/// Posts one call's events beside it, in order, on a thread of its own, so the call never
/// waits on its event webhook; [`Poster::finish`] gives back how each delivery went.
pub(crate) struct Poster {
    queue: Option<mpsc::Sender<(EventTarget, Event)>>,
    delivered: mpsc::Receiver<Delivery>,
    /// Each event queued, as it would read had it not been delivered.
    queued: std::cell::RefCell<Vec<Delivery>>,
    /// How long a delivery may take: the wait for the last ones is bounded by it.
    timeout: Duration,
}

impl Poster {
    /// A poster for one call.
    pub(crate) fn start(agent: ureq::Agent, dial: Dial) -> Poster {
        let (queue, events) = mpsc::channel::<(EventTarget, Event)>();
        let (done, delivered) = mpsc::channel();
        let timeout = dial.connect_timeout + dial.event_timeout;
        let spawned = thread::Builder::new()
            .name("call-events".into())
            .spawn(move || {
                for (target, event) in events {
                    let _ = done.send(post(&agent, &dial, &target, &event).0);
                }
            });
        Poster {
            // Without its thread nothing is posted, and every event says so.
            queue: spawned.is_ok().then_some(queue),
            delivered,
            queued: Default::default(),
            timeout,
        }
    }

    /// Queues `leg`'s `event`, when the leg's events are posted at all.
    pub(crate) fn send(&self, leg: &Leg, event: Event) {
        let Some(target) = leg.target.clone() else {
            return;
        };
        self.queued.borrow_mut().push(Delivery {
            status: event.status.to_owned(),
            leg: event.leg,
            target: target.clone(),
            http_status: None,
            error: Some("not taken before the call's report was written".into()),
            answer: None,
            at: event.at,
        });
        if let Some(queue) = &self.queue {
            let _ = queue.send((target, event));
        }
    }

    /// How each delivery went, in the order the events happened. A webhook that takes its
    /// whole timeout for every event delays the report by one timeout, not one for each:
    /// what it has not taken by then is reported as such, and is still posted.
    pub(crate) fn finish(mut self) -> Vec<Delivery> {
        self.queue.take();
        let mut deliveries = self.queued.take();
        let deadline = Instant::now() + self.timeout;
        for slot in deliveries.iter_mut() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.delivered.recv_timeout(left) {
                Ok(delivery) => *slot = delivery,
                Err(_) => break,
            }
        }
        deliveries.sort_by_key(|d| d.at);
        deliveries
    }
}

/// A time as Vonage writes it in events: UTC, milliseconds, `Z`
/// (`2020-01-01T12:00:00.000Z`).
pub(crate) fn timestamp(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg() -> Leg {
        let dial = Dial::new("http://127.0.0.1:1/webhooks/answer");
        Leg::call(&dial, CallId::random(), None)
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_577_880_000_123);
        assert_eq!(timestamp(at), "2020-01-01T12:00:00.123Z");
    }

    #[test]
    fn every_event_carries_the_common_fields() {
        let event = leg().event(Status::Started);
        for field in [
            "from",
            "to",
            "uuid",
            "conversation_uuid",
            "status",
            "direction",
            "timestamp",
            "headers",
        ] {
            assert!(event.body.contains_key(field), "{field}: {:?}", event.body);
        }
        assert_eq!(event.body["direction"], "inbound");
        assert_eq!(event.body["headers"], Value::Object(Map::new()));
    }

    #[test]
    fn answered_adds_its_start_time_rate_and_network() {
        let event = leg().event(Status::Answered);
        for field in ["start_time", "rate", "network"] {
            assert!(event.body.contains_key(field), "{field}");
        }
    }

    #[test]
    fn completed_adds_times_duration_price_and_who_hung_up() {
        let mut leg = leg();
        leg.answer();
        let event = leg.event(Status::Completed(HungUp::User));
        for field in [
            "start_time",
            "end_time",
            "duration",
            "rate",
            "price",
            "network",
        ] {
            assert!(event.body.contains_key(field), "{field}");
        }
        assert_eq!(event.body["disconnected_by"], "user");
        assert_eq!(event.body["duration"], "0", "a string, as Vonage types it");
    }

    #[test]
    fn a_socket_leg_is_outbound_to_its_uri_with_the_ncco_headers() {
        let mut headers = Map::new();
        headers.insert("caller".into(), "x".into());
        let call = leg();
        let socket = call.socket("wss://app/socket", None, headers.clone(), None);
        let event = socket.event(Status::Failed("unavailable"));
        assert_eq!(event.body["direction"], "outbound");
        assert_eq!(event.body["to"], "wss://app/socket");
        assert_eq!(event.body["headers"], Value::Object(headers));
        assert_eq!(event.body["conversation_uuid"], call.conversation.as_str());
        assert_ne!(event.body["uuid"], call.uuid.as_str());
        assert_eq!(event.body["detail"], "unavailable");
    }

    #[test]
    fn an_ncco_error_carries_its_reason_and_no_status() {
        let event = leg().error("Syntax error in NCCO.");
        assert_eq!(event.body["reason"], "Syntax error in NCCO.");
        assert!(!event.body.contains_key("status"));
    }
}
