//! The crate's one error type.

use std::{fmt, io, net::SocketAddr};

/// Everything that can go wrong in vonage-echo, with the context a reader needs to act on it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A setting has a value the server cannot run with.
    Config {
        /// The setting's flag name, e.g. `--rate`.
        setting: &'static str,
        /// Why the value was refused.
        reason: String,
    },
    /// A listener could not be bound.
    Bind {
        /// Which listener: `"webhooks"` or `"socket"`.
        listener: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// An I/O operation failed; `context` says which.
    Io {
        /// What was being done.
        context: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The answer webhook's NCCO is not one Vonage would accept (simulator).
    Ncco(String),
    /// An HTTP exchange with the application failed (simulator).
    Http(String),
    /// The WebSocket failed (simulator).
    WebSocket(tungstenite::Error),
    /// A WAV file could not be read or written.
    Wav {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Load reports that cannot be merged: one is unreadable, or they are of different
    /// loads, or two are of the same shard (simulator).
    Merge(String),
}

impl Error {
    /// An I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The flag that sets a listener's address: `--http-addr` for `"webhooks"`,
    /// `--ws-addr` for `"socket"`.
    pub fn listener_flag(listener: &str) -> &'static str {
        match listener {
            "webhooks" => "--http-addr",
            _ => "--ws-addr",
        }
    }

    /// A refused setting.
    pub(crate) fn config(setting: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            setting,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { setting, reason } => write!(f, "invalid {setting}: {reason}"),
            Error::Bind {
                listener,
                addr,
                source,
            } => write!(
                f,
                "cannot bind the {listener} listener ({}) to {addr}: {source}",
                Error::listener_flag(listener)
            ),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Ncco(reason) => write!(f, "invalid NCCO: {reason}"),
            Error::Http(reason) => write!(f, "HTTP: {reason}"),
            Error::WebSocket(e) => write!(f, "WebSocket: {e}"),
            Error::Wav { path, reason } => write!(f, "WAV file {path}: {reason}"),
            Error::Merge(reason) => write!(f, "cannot merge: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Io { source, .. } => Some(source),
            Error::WebSocket(e) => Some(e),
            _ => None,
        }
    }
}

impl From<tungstenite::Error> for Error {
    fn from(e: tungstenite::Error) -> Self {
        Error::WebSocket(e)
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether an I/O error is a timeout running out (`WouldBlock` on Unix for a socket's read
/// or write timeout, `TimedOut` elsewhere), not a failure.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
