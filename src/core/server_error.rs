//! Classifying error replies by their prefix, in one place.
//!
//! Redis error replies start with an upper-case code (`WRONGTYPE`, `MOVED`, `NOPERM`, ...) or
//! with `ERR` followed by free text. The code decides the status a caller sees and whether the
//! cluster layer has something to do (MOVED, ASK, TRYAGAIN).

use super::status::Status;

/// What an error reply means to brisk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerErrorKind {
    /// `MOVED <slot> <host:port>`: the slot lives elsewhere now.
    Moved {
        slot: u16,
        address: String,
    },
    /// `ASK <slot> <host:port>`: this one command goes elsewhere (slot migrating).
    Ask {
        slot: u16,
        address: String,
    },
    TryAgain,
    ClusterDown,
    Loading,
    ReadOnly,
    /// NOAUTH, WRONGPASS, NOPERM and the older AUTH complaints.
    Auth,
    /// EXECABORT: a transaction was discarded because a queued command was rejected.
    ExecAbort,
    /// `ERR unknown command 'HELLO'` and NOPROTO: the server cannot speak RESP3.
    NoHello,
    Other,
}

/// Error codes Redis and Valkey send, the only words [`error_code`] ever reports: a script or
/// module can put any word first in an error (`redis.error_reply(ARGV[1])`), and telemetry must
/// never carry an argument.
const KNOWN_CODES: &[&str] = &[
    "ASK",
    "BUSY",
    "BUSYGROUP",
    "BUSYKEY",
    "CLUSTERDOWN",
    "CROSSSLOT",
    "ERR",
    "EXECABORT",
    "LOADING",
    "MASTERDOWN",
    "MISCONF",
    "MOVED",
    "NOAUTH",
    "NOGROUP",
    "NOPERM",
    "NOPROTO",
    "NOREPLICAS",
    "NOSCRIPT",
    "NOTBUSY",
    "OOM",
    "READONLY",
    "REDIRECT",
    "TRYAGAIN",
    "UNBLOCKED",
    "UNKILLABLE",
    "WRONGPASS",
    "WRONGTYPE",
];

/// The code at the start of an error reply (`"WRONGTYPE"`), used as `error.type`; `"ERR"` for
/// anything that is not a known code.
pub fn error_code(text: &[u8]) -> &'static str {
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    let word = &text[..end];
    KNOWN_CODES
        .iter()
        .find(|code| code.as_bytes() == word)
        .copied()
        .unwrap_or("ERR")
}

pub fn classify(text: &[u8]) -> ServerErrorKind {
    let code = error_code(text);
    match code {
        "MOVED" | "ASK" => match parse_redirect(text) {
            Some((slot, address)) if code == "MOVED" => ServerErrorKind::Moved { slot, address },
            Some((slot, address)) => ServerErrorKind::Ask { slot, address },
            None => ServerErrorKind::Other,
        },
        "TRYAGAIN" => ServerErrorKind::TryAgain,
        "CLUSTERDOWN" => ServerErrorKind::ClusterDown,
        "LOADING" => ServerErrorKind::Loading,
        "READONLY" => ServerErrorKind::ReadOnly,
        "NOAUTH" | "WRONGPASS" | "NOPERM" => ServerErrorKind::Auth,
        "EXECABORT" => ServerErrorKind::ExecAbort,
        "NOPROTO" => ServerErrorKind::NoHello,
        "ERR" => classify_err_text(text),
        _ => ServerErrorKind::Other,
    }
}

/// `ERR` replies whose meaning is only in the text (older servers, missing commands).
fn classify_err_text(text: &[u8]) -> ServerErrorKind {
    let lower = text.to_ascii_lowercase();
    let has = |needle: &str| lower.windows(needle.len()).any(|w| w == needle.as_bytes());
    if has("unknown command") && has("hello") {
        ServerErrorKind::NoHello
    } else if has("invalid password")
        || has("without any password configured")
        || has("but no password is set")
        || has("invalid username-password pair")
    {
        ServerErrorKind::Auth
    } else {
        ServerErrorKind::Other
    }
}

/// Whether an error reply proves that the command was refused before it ran, so that nothing of
/// it was applied (and a write may be sent again even under retry_writes SAFE).
///
/// Checked against the server's source (Valkey 8.0.1, the same in Redis 7.0): `processCommand`
/// rejects with these codes before calling the command, and the cluster redirection
/// (`getNodeByQuery`) discards a transaction before answering. A script, though, answers with
/// the code of the command inside it that failed, possibly after its own writes: only the
/// codes a script cannot meet once it has run ([`Refusal::Always`]) prove anything for EVAL,
/// EVALSHA and FCALL; READONLY, MISCONF, NOREPLICAS and OOM can come from a `redis.call` after a
/// PUBLISH or a write (OOM: a write before the failing one), so they only count for other
/// commands. A script that forges an error reply (`redis.error_reply("LOADING")`) after writing
/// defeats any client; brisk assumes scripts do not. Module commands are treated as plain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The command may have run (or partly run).
    No,
    /// Refused before it ran, for any command.
    Always,
    /// Refused before it ran, unless the command is a script.
    UnlessScript,
}

/// The [`Refusal`] an error reply's code proves.
pub fn refusal(text: &[u8]) -> Refusal {
    match error_code(text) {
        "LOADING" | "MASTERDOWN" | "MOVED" | "ASK" | "CROSSSLOT" | "TRYAGAIN" | "CLUSTERDOWN"
        | "REDIRECT" | "BUSY" | "NOAUTH" | "NOPERM" | "NOSCRIPT" | "EXECABORT" => Refusal::Always,
        "READONLY" | "MISCONF" | "NOREPLICAS" | "OOM" | "UNBLOCKED" => Refusal::UnlessScript,
        _ => Refusal::No,
    }
}

fn parse_redirect(text: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(text).ok()?;
    let mut words = text.split_ascii_whitespace().skip(1);
    let slot = words.next()?.parse().ok()?;
    let address = words.next()?.to_owned();
    Some((slot, address))
}

impl ServerErrorKind {
    /// The status a caller sees for an error reply of this kind.
    pub fn status(&self) -> Status {
        match self {
            ServerErrorKind::Auth => Status::Auth,
            ServerErrorKind::Loading => Status::BusyLoading,
            ServerErrorKind::ClusterDown | ServerErrorKind::TryAgain => Status::ClusterDown,
            ServerErrorKind::ReadOnly => Status::ReadOnly,
            ServerErrorKind::Moved { .. }
            | ServerErrorKind::Ask { .. }
            | ServerErrorKind::ExecAbort
            | ServerErrorKind::NoHello
            | ServerErrorKind::Other => Status::Server,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(text: &str) -> Status {
        classify(text.as_bytes()).status()
    }

    #[test]
    fn prefixes_map_to_statuses() {
        assert_eq!(
            status_of("WRONGPASS invalid username-password pair or user is disabled."),
            Status::Auth
        );
        assert_eq!(status_of("NOAUTH Authentication required."), Status::Auth);
        assert_eq!(
            status_of("NOPERM User limited has no permissions to run the 'set' command"),
            Status::Auth
        );
        assert_eq!(
            status_of("LOADING Redis is loading the dataset in memory"),
            Status::BusyLoading
        );
        assert_eq!(
            status_of("CLUSTERDOWN The cluster is down"),
            Status::ClusterDown
        );
        assert_eq!(
            status_of("TRYAGAIN Multiple keys request during rehashing of slot"),
            Status::ClusterDown
        );
        assert_eq!(
            status_of("READONLY You can't write against a read only replica."),
            Status::ReadOnly
        );
        assert_eq!(
            status_of("WRONGTYPE Operation against a key holding the wrong kind of value"),
            Status::Server
        );
        assert_eq!(status_of("ERR unknown command 'FOO'"), Status::Server);
        assert_eq!(status_of("ERR invalid password"), Status::Auth);
        assert_eq!(
            status_of(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
            ),
            Status::Auth
        );
        assert_eq!(status_of(""), Status::Server);
    }

    #[test]
    fn redirects_carry_slot_and_address() {
        assert_eq!(
            classify(b"MOVED 3999 127.0.0.1:6381"),
            ServerErrorKind::Moved {
                slot: 3999,
                address: "127.0.0.1:6381".into()
            }
        );
        assert_eq!(
            classify(b"ASK 12 [::1]:7000"),
            ServerErrorKind::Ask {
                slot: 12,
                address: "[::1]:7000".into()
            }
        );
        assert_eq!(classify(b"MOVED nonsense"), ServerErrorKind::Other);
    }

    #[test]
    fn hello_unsupported_is_recognised() {
        assert_eq!(
            classify(b"ERR unknown command 'HELLO', with args beginning with: '3' "),
            ServerErrorKind::NoHello
        );
        assert_eq!(
            classify(b"ERR unknown command `HELLO`, with args beginning with: "),
            ServerErrorKind::NoHello
        );
        assert_eq!(
            classify(b"NOPROTO unsupported protocol version"),
            ServerErrorKind::NoHello
        );
    }

    #[test]
    fn refusals_are_told_apart_from_errors_raised_while_running() {
        assert_eq!(refusal(b"LOADING Redis is loading"), Refusal::Always);
        assert_eq!(refusal(b"MOVED 1 127.0.0.1:7000"), Refusal::Always);
        assert_eq!(
            refusal(b"BUSY Redis is busy running a script"),
            Refusal::Always
        );
        assert_eq!(refusal(b"READONLY You can't write"), Refusal::UnlessScript);
        assert_eq!(refusal(b"OOM command not allowed"), Refusal::UnlessScript);
        assert_eq!(refusal(b"WRONGTYPE Operation"), Refusal::No);
        assert_eq!(refusal(b"ERR unknown command"), Refusal::No);
        assert_eq!(refusal(b"loading lowercase"), Refusal::No);
    }

    #[test]
    fn error_codes() {
        assert_eq!(error_code(b"WRONGTYPE Operation"), "WRONGTYPE");
        assert_eq!(error_code(b"ERR x"), "ERR");
        assert_eq!(error_code(b"lowercase thing"), "ERR");
        assert_eq!(error_code(b"NOPERM"), "NOPERM");
        assert_eq!(
            error_code(b"TOPSECRET42 boom"),
            "ERR",
            "unknown words never leak"
        );
        assert!(
            KNOWN_CODES.windows(2).all(|w| w[0] < w[1]),
            "keep the list sorted"
        );
    }
}
