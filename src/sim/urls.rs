//! Local URLs for an NCCO written for a public host. An application behind a tunnel names
//! the tunnel's host in every URL of its NCCO (the socket's `uri`, `connect`'s `eventUrl`);
//! to play its calls on one machine, each such URL is pointed at a local address and keeps
//! its path and query, where applications carry the call's id.
//!
//! Two ways: `--ws-url ws://127.0.0.1:8000` replaces the socket uri's scheme, host and port
//! whatever its host; `--rewrite https://abc.example=http://127.0.0.1:8000` rewrites every
//! URL on that public origin, sockets and webhooks alike (`wss://abc.example/media` becomes
//! `ws://127.0.0.1:8000/media`: the scheme keeps its kind, WebSocket or HTTP, and takes the
//! local side's security).

use std::fmt;

use tungstenite::http::Uri;

/// A scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    secure: bool,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (http, https, ws or wss); a path other than `/` is
    /// refused, since the path comes from the NCCO.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        if !matches!(path, "" | "/") {
            return Err(format!(
                "{text:?} has a path ({path}); give only the scheme, host and port: the path and \
                 query come from the NCCO"
            ));
        }
        let (secure, default_port) = match uri.scheme_str() {
            Some("http" | "ws") => (false, 80),
            Some("https" | "wss") => (true, 443),
            _ => return Err(format!("{text:?} is not http, https, ws or wss")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("{text:?} has no host"))?
            .to_ascii_lowercase();
        Ok(Origin {
            secure,
            host,
            port: uri.port_u16().unwrap_or(default_port),
        })
    }

    /// Whether `uri` is on this origin (a WebSocket and an HTTP URL of the same security,
    /// host and port are).
    fn holds(&self, uri: &Uri) -> bool {
        let Some((secure, default_port)) = security(uri) else {
            return false;
        };
        secure == self.secure
            && uri
                .host()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && uri.port_u16().unwrap_or(default_port) == self.port
    }

    /// `uri` moved to this origin, its kind (WebSocket or HTTP), path and query kept.
    fn carry(&self, uri: &Uri) -> String {
        let websocket = matches!(uri.scheme_str(), Some("ws" | "wss"));
        let scheme = match (websocket, self.secure) {
            (true, false) => "ws",
            (true, true) => "wss",
            (false, false) => "http",
            (false, true) => "https",
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let host = if self.host.contains(':') {
            format!("[{}]", self.host.trim_matches(['[', ']']))
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}{path}", self.port)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// Whether a URL is secure, and its scheme's default port; `None` for other schemes.
fn security(uri: &Uri) -> Option<(bool, u16)> {
    match uri.scheme_str() {
        Some("http" | "ws") => Some((false, 80)),
        Some("https" | "wss") => Some((true, 443)),
        _ => None,
    }
}

/// One public origin and the local one that stands for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The origin the NCCO names.
    pub public: Origin,
    /// Where the emulator goes instead.
    pub local: Origin,
}

impl std::str::FromStr for Rewrite {
    type Err = String;

    /// `PUBLIC=LOCAL`, e.g. `https://abc.example=http://127.0.0.1:8000`.
    fn from_str(text: &str) -> Result<Rewrite, String> {
        let (public, local) = text.split_once('=').ok_or_else(|| {
            format!("{text:?} is not PUBLIC=LOCAL (e.g. https://abc.example=http://127.0.0.1:8000)")
        })?;
        Ok(Rewrite {
            public: Origin::parse(public)?,
            local: Origin::parse(local)?,
        })
    }
}

/// Where every URL an NCCO names is really reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Urls {
    /// Every socket goes here, whatever its host (`--ws-url`).
    pub socket: Option<Origin>,
    /// URLs on these public origins go to their local ones (`--rewrite`), first match wins.
    pub rewrites: Vec<Rewrite>,
}

impl Urls {
    /// Where a socket `uri` from the NCCO is opened.
    pub fn socket(&self, uri: &str) -> String {
        match (&self.socket, uri.parse::<Uri>()) {
            (Some(origin), Ok(parsed)) => origin.carry(&parsed),
            _ => self.rewrite(uri),
        }
    }

    /// Where a URL from the NCCO is reached: rewritten when it is on a public origin given,
    /// else as it is.
    pub fn rewrite(&self, url: &str) -> String {
        let Ok(parsed) = url.parse::<Uri>() else {
            return url.to_owned();
        };
        self.rewrites
            .iter()
            .find(|r| r.public.holds(&parsed))
            .map_or_else(|| url.to_owned(), |r| r.local.carry(&parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(socket: Option<&str>, rewrites: &[&str]) -> Urls {
        Urls {
            socket: socket.map(|s| Origin::parse(s).unwrap()),
            rewrites: rewrites.iter().map(|r| r.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn ws_url_replaces_the_origin_and_keeps_the_path_and_query() {
        let urls = urls(Some("ws://127.0.0.1:8000"), &[]);
        assert_eq!(
            urls.socket("wss://abc.example/media?callUuid=X"),
            "ws://127.0.0.1:8000/media?callUuid=X"
        );
    }

    #[test]
    fn ws_url_with_a_path_is_refused() {
        let err = Origin::parse("ws://127.0.0.1:8000/socket").unwrap_err();
        assert!(err.contains("path"), "{err}");
    }

    #[test]
    fn a_rewrite_points_sockets_and_webhooks_of_a_public_host_at_a_local_one() {
        let urls = urls(None, &["https://abc.example=http://127.0.0.1:8000"]);
        assert_eq!(
            urls.socket("wss://abc.example/media?callUuid=X"),
            "ws://127.0.0.1:8000/media?callUuid=X"
        );
        assert_eq!(
            urls.rewrite("https://abc.example/webhooks/leg?x=1"),
            "http://127.0.0.1:8000/webhooks/leg?x=1"
        );
    }

    #[test]
    fn a_rewrite_leaves_other_hosts_and_ports_alone() {
        let urls = urls(None, &["https://abc.example=http://127.0.0.1:8000"]);
        for url in [
            "https://other.example/x",
            "https://abc.example:8443/x",
            "http://abc.example/x",
        ] {
            assert_eq!(urls.rewrite(url), url);
        }
    }

    #[test]
    fn a_rewrite_without_an_equals_sign_is_refused_with_an_example() {
        let err = "https://abc.example".parse::<Rewrite>().unwrap_err();
        assert!(err.contains("PUBLIC=LOCAL"), "{err}");
    }
}
