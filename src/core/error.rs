//! The error every fallible brisk operation returns: a [`Status`], a message for humans, and
//! the facts the retry logic needs.

use super::server_error::{self, Refusal, ServerErrorKind};
use super::status::Status;
use crate::resp::ProtocolError;

///
/// Boxed: every `Result` on the hot paths carries one, and a pointer-sized error keeps those
/// results small (an error is rare; the allocation is paid only then).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", .0.message)]
pub struct Error(Box<Inner>);

#[derive(Clone, Debug)]
struct Inner {
    status: Status,
    message: String,
    /// Whether any byte of the request was written: if so the server may have applied it, and a
    /// write must not be replayed in SAFE mode.
    sent: bool,
    /// For error replies: what the reply means (redirects, LOADING, ...).
    server_kind: Option<ServerErrorKind>,
    /// For error replies: whether the reply proves the command was refused before it ran.
    refusal: Refusal,
}

impl Error {
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        debug_assert!(status != Status::Ok, "an error with status OK");
        Error(Box::new(Inner {
            status,
            message: message.into(),
            sent: false,
            server_kind: None,
            refusal: Refusal::No,
        }))
    }

    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::new(Status::InvalidArgument, message)
    }

    /// An error reply from the server; the message is the server's own text.
    pub fn from_reply(text: &[u8]) -> Error {
        let kind = server_error::classify(text);
        Error(Box::new(Inner {
            status: kind.status(),
            message: String::from_utf8_lossy(text).into_owned(),
            sent: true,
            server_kind: Some(kind),
            refusal: server_error::refusal(text),
        }))
    }

    pub fn status(&self) -> Status {
        self.0.status
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Whether any byte of the request was written.
    pub fn is_sent(&self) -> bool {
        self.0.sent
    }

    /// Whether the command may have been applied: its request was written and the answer does
    /// not prove a refusal (LOADING, MOVED, ...: see [`server_error::refusal`]). `script`: the
    /// command was EVAL, EVALSHA or FCALL, for which fewer answers prove anything.
    pub fn may_have_been_applied(&self, script: bool) -> bool {
        self.0.sent
            && match self.0.refusal {
                Refusal::No => true,
                Refusal::Always => false,
                Refusal::UnlessScript => script,
            }
    }

    pub fn server_kind(&self) -> Option<&ServerErrorKind> {
        self.0.server_kind.as_ref()
    }

    /// `error.type` for telemetry: the server's error code, or the status name.
    pub fn error_type(&self) -> &str {
        match self.0.server_kind {
            Some(_) => server_error::error_code(self.0.message.as_bytes()),
            None => self.0.status.name(),
        }
    }

    /// Records whether the request had been (partly) written when this error happened.
    pub fn sent(mut self, sent: bool) -> Error {
        self.0.sent = sent;
        self
    }

    /// Prepends context ("connecting to 127.0.0.1:6379: ...").
    pub fn context(mut self, context: impl std::fmt::Display) -> Error {
        self.0.message = format!("{context}: {}", self.0.message);
        self
    }

    /// Appends detail ("... (after 3 attempts)").
    pub fn detail(mut self, detail: impl std::fmt::Display) -> Error {
        self.0.message = format!("{} ({detail})", self.0.message);
        self
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Error {
        Error::new(Status::Protocol, e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_keep_the_server_text() {
        let e =
            Error::from_reply(b"WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(e.status(), Status::Server);
        assert_eq!(e.error_type(), "WRONGTYPE");
        assert!(e.message().starts_with("WRONGTYPE Operation"));
        assert!(e.is_sent());
        assert!(e.may_have_been_applied(false));
        let refused = Error::from_reply(b"LOADING Redis is loading the dataset in memory");
        assert!(refused.is_sent() && !refused.may_have_been_applied(true));
        let read_only = Error::from_reply(b"READONLY You can't write against a read only replica.");
        assert!(!read_only.may_have_been_applied(false));
        assert!(
            read_only.may_have_been_applied(true),
            "a script may have written first"
        );
        assert!(
            Error::new(Status::Timeout, "x")
                .sent(true)
                .may_have_been_applied(false)
        );
    }

    #[test]
    fn other_errors_use_the_status_name_as_type() {
        let e = Error::new(Status::Timeout, "read timed out");
        assert_eq!(e.error_type(), "BRISK_ERR_TIMEOUT");
        assert_eq!(e.context("GET").message(), "GET: read timed out");
    }
}
