//! What brisk needs to know about a command: how it may use a pooled connection, whether it
//! blocks on the server and for how long, and whether it only reads (which decides retries).

use super::error::{Error, Result};
use crate::resp::Args;

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

/// Rejects empty commands and commands that cannot run on a borrowed connection (with
/// `allow_connection_state`, a session's, those that change the connection's state pass).
pub fn check_args(args: &Args<'_>, allow_connection_state: bool) -> Result<()> {
    if args.is_empty() {
        return Err(Error::invalid_argument(
            "argc: a command needs at least its name",
        ));
    }
    let name = args.name();
    let subcommand = (args.len() > 1).then(|| args.get(1));
    let shown = || String::from_utf8_lossy(name).to_ascii_uppercase();
    match connection_use(name, subcommand) {
        ConnectionUse::Plain => Ok(()),
        ConnectionUse::ConnectionState if allow_connection_state => Ok(()),
        ConnectionUse::ConnectionState => Err(Error::invalid_argument(format!(
            "{} changes the state of the connection it runs on, which a pooled command must not do: \
             use a session (brisk_session_new), a transaction (brisk_transaction_new) or the config",
            shown()
        ))),
        ConnectionUse::Streaming => Err(Error::invalid_argument(format!(
            "{} turns the connection into a message stream; it cannot be sent as a command",
            shown()
        ))),
    }
}

/// True for the commands that run a script (EVAL, EVALSHA, FCALL and their read-only forms):
/// a script answers with the error of the command inside it that failed, possibly after writing.
pub fn is_script(name: &[u8]) -> bool {
    (4..=10).contains(&name.len())
        && [
            "EVAL",
            "EVALSHA",
            "EVAL_RO",
            "EVALSHA_RO",
            "FCALL",
            "FCALL_RO",
        ]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c.as_bytes()))
}

/// True for EXEC, whose nil reply means a WATCHed key changed.
pub fn is_exec(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"EXEC")
}

/// How long a blocking command may wait on the server before it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocking {
    /// A timeout of 0: it waits until data arrives.
    Forever,
    /// It answers (nil) after at most this many milliseconds.
    Millis(u64),
}

/// Parses a timeout argument in seconds (possibly fractional, as BLPOP takes it).
fn seconds(arg: &[u8]) -> Option<Blocking> {
    let secs: f64 = std::str::from_utf8(arg).ok()?.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(match (secs * 1000.0).ceil() as u64 {
        0 => Blocking::Forever,
        ms => Blocking::Millis(ms),
    })
}

/// Parses a timeout argument in milliseconds (XREAD BLOCK, WAIT).
fn millis(arg: &[u8]) -> Option<Blocking> {
    let ms: u64 = std::str::from_utf8(arg).ok()?.parse().ok()?;
    Some(if ms == 0 {
        Blocking::Forever
    } else {
        Blocking::Millis(ms)
    })
}

/// For a command that blocks on the server (BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BZPOPMIN/MAX,
/// BLMPOP, BZMPOP, XREAD/XREADGROUP with BLOCK, WAIT, WAITAOF), how long it may block. The
/// read timeout is extended by this so the command is not cut short, and such a command is never
/// replayed once sent. `None` for every other command (and for malformed timeouts, which the
/// server will reject anyway).
pub fn blocking_timeout(args: &Args<'_>) -> Option<Blocking> {
    let name = args.name();
    if !(4..=10).contains(&name.len()) {
        return None;
    }
    let n = args.len();
    let last = || (n >= 2).then(|| args.get(n - 1));
    let is = |candidate: &str| name.eq_ignore_ascii_case(candidate.as_bytes());
    if [
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BLMOVE",
        "BZPOPMIN",
        "BZPOPMAX",
    ]
    .iter()
    .any(|c| is(c))
    {
        return last().and_then(seconds);
    }
    if is("BLMPOP") || is("BZMPOP") {
        return (n >= 2).then(|| args.get(1)).and_then(seconds);
    }
    if is("WAIT") || is("WAITAOF") {
        return last().and_then(millis);
    }
    if is("XREAD") || is("XREADGROUP") {
        let block =
            (1..n.saturating_sub(1)).find(|&i| args.get(i).eq_ignore_ascii_case(b"BLOCK"))?;
        return millis(args.get(block + 1));
    }
    None
}

/// Commands that only read, for when the server's own `COMMAND` table is not available. A
/// command missing here is treated as a write, which only ever means it is not replayed.
const BUILTIN_READ_ONLY: &[&str] = &[
    "bitcount",
    "bitfield_ro",
    "bitpos",
    "dbsize",
    "dump",
    "echo",
    "eval_ro",
    "evalsha_ro",
    "exists",
    "expiretime",
    "fcall_ro",
    "geodist",
    "geohash",
    "geopos",
    "georadius_ro",
    "georadiusbymember_ro",
    "geosearch",
    "get",
    "getbit",
    "getrange",
    "hexists",
    "hget",
    "hgetall",
    "hkeys",
    "hlen",
    "hmget",
    "hrandfield",
    "hscan",
    "hstrlen",
    "hvals",
    "keys",
    "lastsave",
    "lcs",
    "lindex",
    "llen",
    "lolwut",
    "lpos",
    "lrange",
    "mget",
    "pexpiretime",
    "pfcount",
    "ping",
    "pttl",
    "randomkey",
    "scan",
    "scard",
    "sdiff",
    "sinter",
    "sintercard",
    "sismember",
    "smembers",
    "smismember",
    "sort_ro",
    "srandmember",
    "sscan",
    "strlen",
    "substr",
    "sunion",
    "time",
    "touch",
    "ttl",
    "type",
    "xinfo",
    "xlen",
    "xpending",
    "xrange",
    "xread",
    "xrevrange",
    "zcard",
    "zcount",
    "zdiff",
    "zinter",
    "zintercard",
    "zlexcount",
    "zmscore",
    "zrandmember",
    "zrange",
    "zrangebylex",
    "zrangebyscore",
    "zrank",
    "zrevrange",
    "zrevrangebylex",
    "zrevrangebyscore",
    "zrevrank",
    "zscan",
    "zscore",
    "zunion",
];

/// Whether the built-in table knows `name` as read-only.
pub fn builtin_read_only(name: &[u8]) -> bool {
    let mut buffer = [0u8; 24];
    let Some(lower) = buffer.get_mut(..name.len()) else {
        return false;
    };
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    BUILTIN_READ_ONLY
        .binary_search_by(|c| c.as_bytes().cmp(lower))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocking(words: &[&str]) -> Option<Blocking> {
        let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        blocking_timeout(&Args::from_slices(&args))
    }

    #[test]
    fn blocking_timeouts_are_found_where_each_command_keeps_them() {
        assert_eq!(
            blocking(&["BLPOP", "a", "b", "2"]),
            Some(Blocking::Millis(2000))
        );
        assert_eq!(
            blocking(&["brpop", "a", "0.25"]),
            Some(Blocking::Millis(250))
        );
        assert_eq!(blocking(&["BLPOP", "a", "0"]), Some(Blocking::Forever));
        assert_eq!(
            blocking(&["BLMOVE", "s", "d", "LEFT", "RIGHT", "1.5"]),
            Some(Blocking::Millis(1500))
        );
        assert_eq!(
            blocking(&["BLMPOP", "3", "1", "k", "LEFT"]),
            Some(Blocking::Millis(3000))
        );
        assert_eq!(
            blocking(&["BZMPOP", "0", "1", "k", "MIN"]),
            Some(Blocking::Forever)
        );
        assert_eq!(
            blocking(&["XREAD", "COUNT", "2", "BLOCK", "500", "STREAMS", "s", "$"]),
            Some(Blocking::Millis(500))
        );
        assert_eq!(
            blocking(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">"
            ]),
            Some(Blocking::Forever)
        );
        assert_eq!(blocking(&["XREAD", "STREAMS", "s", "$"]), None);
        assert_eq!(blocking(&["WAIT", "1", "100"]), Some(Blocking::Millis(100)));
        assert_eq!(
            blocking(&["WAITAOF", "1", "0", "0"]),
            Some(Blocking::Forever)
        );
        assert_eq!(blocking(&["GET", "k"]), None);
        assert_eq!(blocking(&["BLPOP", "k", "soon"]), None);
        assert_eq!(blocking(&["BLPOP"]), None);
    }

    #[test]
    fn builtin_read_only_table_is_sorted_and_case_insensitive() {
        assert!(
            BUILTIN_READ_ONLY.windows(2).all(|w| w[0] < w[1]),
            "table must stay sorted"
        );
        assert!(builtin_read_only(b"GET"));
        assert!(builtin_read_only(b"zRangeByScore"));
        assert!(!builtin_read_only(b"INCR"));
        assert!(!builtin_read_only(b"SET"));
        assert!(!builtin_read_only(b"a-name-longer-than-the-buffer-allows"));
    }

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
