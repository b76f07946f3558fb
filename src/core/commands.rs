//! What brisk needs to know about a command from its name alone.

/// How a command may be used, given that `brisk_command` borrows a pooled connection for one
/// request and gives it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionUse {
    /// An ordinary request/reply command.
    Plain,
    /// Changes the state of the connection it runs on (MULTI, WATCH, SELECT, AUTH, ...): on a
    /// pooled connection that state would leak to whoever borrows it next, so it needs a
    /// session (or a transaction, or the config). In a session the connection is reset or closed
    /// when the session ends.
    ConnectionState,
    /// Turns the connection into a stream (SUBSCRIBE, MONITOR, CLIENT REPLY): not for
    /// request/reply use at all.
    Streaming,
}

/// Classifies a command by its name (and subcommand, for CLIENT).
pub fn connection_use(name: &[u8], subcommand: Option<&[u8]>) -> ConnectionUse {
    // Most commands are short ordinary names; the length check keeps the common path cheap.
    if name.len() > 12 || name.len() < 4 {
        return ConnectionUse::Plain;
    }
    let is = |candidate: &str| name.eq_ignore_ascii_case(candidate.as_bytes());
    if [
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "UNSUBSCRIBE",
        "PUNSUBSCRIBE",
        "SUNSUBSCRIBE",
        "MONITOR",
    ]
    .iter()
    .any(|c| is(c))
    {
        return ConnectionUse::Streaming;
    }
    if is("CLIENT") {
        return match subcommand {
            Some(s) if s.eq_ignore_ascii_case(b"REPLY") => ConnectionUse::Streaming,
            Some(s)
                if s.eq_ignore_ascii_case(b"SETNAME")
                    || s.eq_ignore_ascii_case(b"TRACKING")
                    || s.eq_ignore_ascii_case(b"NO-EVICT")
                    || s.eq_ignore_ascii_case(b"NO-TOUCH")
                    || s.eq_ignore_ascii_case(b"SETINFO") =>
            {
                ConnectionUse::ConnectionState
            }
            _ => ConnectionUse::Plain,
        };
    }
    if is("HELLO") && subcommand.is_none() {
        // Plain HELLO only reports the server's details.
        return ConnectionUse::Plain;
    }
    if [
        "MULTI",
        "EXEC",
        "DISCARD",
        "WATCH",
        "UNWATCH",
        "SELECT",
        "AUTH",
        "HELLO",
        "RESET",
        "QUIT",
        "READONLY",
        "READWRITE",
        "ASKING",
    ]
    .iter()
    .any(|c| is(c))
    {
        return ConnectionUse::ConnectionState;
    }
    ConnectionUse::Plain
}

/// True for EXEC, whose nil reply means a WATCHed key changed.
pub fn is_exec(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"EXEC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names_case_insensitively() {
        assert_eq!(connection_use(b"get", None), ConnectionUse::Plain);
        assert_eq!(connection_use(b"SET", None), ConnectionUse::Plain);
        assert_eq!(
            connection_use(b"multi", None),
            ConnectionUse::ConnectionState
        );
        assert_eq!(
            connection_use(b"Select", None),
            ConnectionUse::ConnectionState
        );
        assert_eq!(connection_use(b"SUBSCRIBE", None), ConnectionUse::Streaming);
        assert_eq!(connection_use(b"monitor", None), ConnectionUse::Streaming);
        assert_eq!(
            connection_use(b"CLIENT", Some(b"reply")),
            ConnectionUse::Streaming
        );
        assert_eq!(
            connection_use(b"CLIENT", Some(b"SETNAME")),
            ConnectionUse::ConnectionState
        );
        assert_eq!(
            connection_use(b"CLIENT", Some(b"LIST")),
            ConnectionUse::Plain
        );
        assert_eq!(connection_use(b"CLIENT", None), ConnectionUse::Plain);
        assert_eq!(connection_use(b"SUBSCRIBERS", None), ConnectionUse::Plain);
        assert_eq!(connection_use(b"HELLO", None), ConnectionUse::Plain);
        assert_eq!(
            connection_use(b"HELLO", Some(b"2")),
            ConnectionUse::ConnectionState
        );
    }
}
