//! Client-side caching as data: which commands may be cached and which ones change what is
//! cached, the key an entry is found by, the commands that set up tracking on the server, and
//! what an invalidation message says and what a node's `HELLO` says about its role. The store
//! and the connections live in `src/cache/`.
//!
//! A command may be cached when it is a deterministic read of named keys: the server's table
//! says `readonly`, not `write`, not `blocking`, and not `random` / `nondeterministic_output`,
//! it has at least one key, and it is not on the deny-list below (commands whose answer changes
//! with time or with state the server does not track per key). The server only tracks the keys
//! of `readonly` commands, so nothing else could ever be invalidated.
//!
//! A command changes what is cached when it has the `write` flag (or, without the server's
//! table, is not known to only read), or runs a script: its keys' entries go, or every entry
//! when its keys cannot be named (FLUSHALL, SWAPDB, FUNCTION LOAD...). Some writes have keys
//! only the server can name (a script's undeclared keys, SORT's STORE key): after one, hits
//! wait for the server (see [`Access::WritesMore`]).

use super::command_table::{self, CommandTable, Positions};
use super::commands::{builtin_read_only, is_script};
use super::hash::{fold_multiply, mix_bytes};
use crate::resp::{Args, Node, ReplyKind};

/// What a command does to the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// A deterministic read of these keys (argument positions): may be answered from the cache
    /// and its reply kept.
    Cacheable(Positions),
    /// Changes these keys (argument positions): their entries go before the reply is handed
    /// back.
    Writes(Positions),
    /// Changes keys that cannot be named (FLUSHALL, SWAPDB, a write the table has no keys for):
    /// every entry goes.
    WritesUnknown,
    /// Changes these keys (argument positions) and maybe others that only the server can name:
    /// a script (EVAL, EVALSHA, FCALL; standalone lets one write keys it does not declare), a
    /// write whose key specs the server marks unknown or incomplete (SORT ... STORE, MIGRATE).
    /// The named keys' entries go, and hits wait for the server's word that its invalidations
    /// have all arrived.
    WritesMore(Positions),
    /// Neither: PING, INFO, and reads that are not cached (RANDOMKEY, TTL, SCAN...).
    Neither,
}

/// Reads the cache never holds, although the server calls them read-only: their answer
/// changes with time or with state that no key tracks (lower case, sorted).
const DENIED: &[&str] = &[
    "dbsize",
    "debug",
    "eval_ro",
    "evalsha_ro",
    "fcall_ro",
    "hrandfield",
    "hscan",
    "keys",
    "lastsave",
    "lolwut",
    "memory",
    "object",
    "pttl",
    "randomkey",
    "scan",
    "srandmember",
    "sscan",
    "time",
    "touch",
    "ttl",
    "xinfo",
    "xpending",
    "xread",
    "zrandmember",
    "zscan",
];

/// Commands that neither write nor are cached, for when there is no server table (anything
/// else that is not known to read counts as a write).
const HARMLESS: &[&str] = &[
    "acl",
    "auth",
    "client",
    "cluster",
    "command",
    "config",
    "echo",
    "hello",
    "info",
    "latency",
    "ping",
    "publish",
    "readonly",
    "readwrite",
    "select",
    "slowlog",
    "spublish",
    "wait",
    "waitaof",
];

fn lower<'b>(name: &[u8], buffer: &'b mut [u8; 24]) -> Option<&'b [u8]> {
    let lower = buffer.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    Some(lower)
}

/// Whether `name` is in `list` (sorted, lower case), whatever its case.
fn listed(list: &[&str], name: &[u8]) -> bool {
    let mut buffer = [0u8; 24];
    lower(name, &mut buffer).is_some_and(|l| list.binary_search_by(|c| c.as_bytes().cmp(l)).is_ok())
}

/// `SORT_RO ... BY pattern` or `GET pattern` reads keys it does not name (so the server does
/// not track them).
fn reads_unnamed_keys(args: &Args<'_>) -> bool {
    args.name().eq_ignore_ascii_case(b"SORT_RO")
        && args
            .iter()
            .skip(2)
            .any(|a| a.eq_ignore_ascii_case(b"BY") || a.eq_ignore_ascii_case(b"GET"))
}

/// What `args` does to the cache, by the server's table when there is one.
pub fn access(table: Option<&CommandTable>, args: &Args<'_>) -> Access {
    let name = args.name();
    // With the server's table: its facts and key positions in one lookup.
    let mut known_keys: Option<Option<Positions>> = None;
    let found = table.and_then(|t| t.facts_and_keys(args));
    let (read_only, write, nondeterministic, blocking, unnamed_keys) = match found {
        Some((f, keys)) => {
            known_keys = Some(keys);
            (
                f.read_only,
                f.write,
                f.nondeterministic,
                f.blocking,
                f.unnamed_keys,
            )
        }
        // Not in the server's own table: the server refuses it, so it changes nothing.
        None if table.is_some() => return Access::Neither,
        // The deny-list is all reads, whatever the built-in list knows of them.
        None if listed(DENIED, name) => return Access::Neither,
        None => {
            let read = builtin_read_only(name);
            let write = !read && !listed(HARMLESS, name);
            // Without the server's key specs: SORT's STORE key may be anywhere.
            let unnamed = write && name.eq_ignore_ascii_case(b"SORT");
            (read, write, false, false, unnamed)
        }
    };
    if read_only && !write {
        // SORT_RO's only unknown key spec is for BY/GET patterns, checked below.
        let keys_named = !unnamed_keys || name.eq_ignore_ascii_case(b"SORT_RO");
        let cacheable = keys_named
            && !nondeterministic
            && !blocking
            && !listed(DENIED, name)
            && !reads_unnamed_keys(args)
            && crate::core::commands::blocking_timeout(args).is_none();
        if !cacheable {
            return Access::Neither;
        }
        let keys = keys_of(known_keys, table, args);
        return match keys.is_empty() {
            true => Access::Neither,
            false => Access::Cacheable(keys),
        };
    }
    if is_script(name) || (write && unnamed_keys) {
        return Access::WritesMore(keys_of(known_keys, table, args));
    }
    if write {
        let keys = keys_of(known_keys, table, args);
        return match keys.is_empty() {
            true => Access::WritesUnknown,
            false => Access::Writes(keys),
        };
    }
    Access::Neither
}

/// The key positions found with the facts, else as [`command_table::key_positions`] finds
/// them (the built-in fallback).
fn keys_of(
    known: Option<Option<Positions>>,
    table: Option<&CommandTable>,
    args: &Args<'_>,
) -> Positions {
    match known {
        Some(Some(keys)) => keys,
        _ => command_table::key_positions(table, args).into(),
    }
}

/// Whether a command run in a session changes what the server tracks for its connection
/// (RESET, CLIENT TRACKING, HELLO with a protocol, AUTH, SELECT, QUIT): whatever was cached
/// through that connection can no longer be trusted.
pub fn changes_tracking(args: &Args<'_>) -> bool {
    let name = args.name();
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    (is(b"CLIENT") && args.len() > 1 && args.get(1).eq_ignore_ascii_case(b"TRACKING"))
        || (is(b"HELLO") && args.len() > 1)
        || [&b"RESET"[..], b"AUTH", b"SELECT", b"QUIT"]
            .iter()
            .any(|n| is(n))
}

/// The 64-bit hash of a command (its name and every argument, binary-exact) from `seed` (the
/// cache's own, random: applications choose keys): where its entry is found. Equal hashes are
/// compared byte for byte ([`same_command`]); different commands that collide are simply
/// not both cached, so the hash must spread similar commands (`GET key:000001`, `GET
/// key:000002`, ...) over all 64 bits: each 8-byte word goes through a folded multiply.
#[inline]
pub fn command_hash(args: &Args<'_>, seed: u64) -> u64 {
    const LENGTH: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = seed ^ args.len() as u64;
    for arg in args.iter() {
        h = mix_bytes(fold_multiply(h ^ arg.len() as u64, LENGTH), arg);
    }
    fold_multiply(h, LENGTH)
}

/// The command as an entry keeps it, to be compared with later commands: each argument as a
/// 4-byte little-endian length and its bytes.
pub fn command_bytes(args: &Args<'_>) -> Box<[u8]> {
    let size: usize = args.iter().map(|a| 4 + a.len()).sum();
    let mut out = Vec::with_capacity(size);
    for arg in args.iter() {
        out.extend_from_slice(&(arg.len() as u32).to_le_bytes());
        out.extend_from_slice(arg);
    }
    out.into_boxed_slice()
}

/// Whether `stored` ([`command_bytes`]) is the command `args`.
#[inline]
pub fn same_command(stored: &[u8], args: &Args<'_>) -> bool {
    let mut rest = stored;
    for arg in args.iter() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len != arg.len() || tail.get(..len) != Some(arg) {
            return false;
        }
        rest = &tail[len..];
    }
    rest.is_empty()
}

/// How the client asks the server to track what it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The server remembers the keys each connection reads and invalidates them.
    #[default]
    Default,
    /// The server invalidates every key under the prefixes, read or not (`BCAST`).
    Broadcast,
    /// Only reads preceded by `CLIENT CACHING YES` are tracked (`OPTIN`).
    OptIn,
}

/// `CLIENT TRACKING ON REDIRECT id [OPTIN]`: a data connection's reads are tracked, their
/// invalidations sent to connection `redirect` (DEFAULT and OPTIN modes).
pub fn tracking_on(redirect: u64, mode: Mode) -> Vec<Vec<u8>> {
    let mut command = vec![
        b"CLIENT".to_vec(),
        b"TRACKING".to_vec(),
        b"ON".to_vec(),
        b"REDIRECT".to_vec(),
        redirect.to_string().into_bytes(),
    ];
    if mode == Mode::OptIn {
        command.push(b"OPTIN".to_vec());
    }
    command
}

/// `CLIENT TRACKING ON [REDIRECT id] BCAST [PREFIX p]...`: the invalidation connection itself
/// asks for every change under the prefixes (all keys without any). RESP2 redirects to itself
/// (its invalidations then come as `__redis__:invalidate` messages).
pub fn broadcast_on(redirect: Option<u64>, prefixes: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut command = vec![b"CLIENT".to_vec(), b"TRACKING".to_vec(), b"ON".to_vec()];
    if let Some(id) = redirect {
        command.extend([b"REDIRECT".to_vec(), id.to_string().into_bytes()]);
    }
    command.push(b"BCAST".to_vec());
    for prefix in prefixes {
        command.extend([b"PREFIX".to_vec(), prefix.clone()]);
    }
    command
}

/// Sent right before each cached read in OPTIN mode.
pub const CACHING_YES: &[u8] = b"*3\r\n$6\r\nCLIENT\r\n$7\r\nCACHING\r\n$3\r\nYES\r\n";

/// The channel a RESP2 invalidation connection subscribes to.
pub const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

/// Whether every key of a read lies under one of `prefixes` (BROADCAST and OPTIN modes cache
/// only such reads; no prefixes means every key).
pub fn under_prefixes(prefixes: &[Vec<u8>], args: &Args<'_>, keys: &[usize]) -> bool {
    prefixes.is_empty()
        || keys.iter().all(|&i| {
            let key = args.get(i);
            prefixes.iter().any(|p| key.starts_with(p))
        })
}

/// What an invalidation message says.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalidation<'a> {
    /// These keys changed.
    Keys(Vec<&'a [u8]>),
    /// Everything changed (FLUSHALL, FLUSHDB: a null invalidation).
    All,
}

fn invalidation_payload(payload: &Node) -> Option<Invalidation<'_>> {
    match payload.kind() {
        ReplyKind::Nil => Some(Invalidation::All),
        ReplyKind::Array | ReplyKind::Set => Some(Invalidation::Keys(
            payload
                .children()
                .iter()
                .filter_map(Node::as_bytes)
                .collect(),
        )),
        _ => payload.as_bytes().map(|k| Invalidation::Keys(vec![k])),
    }
}

/// A RESP3 `invalidate` push: `>2 invalidate [keys...]` or `>2 invalidate _`.
pub fn parse_push(frame: &Node) -> Option<Invalidation<'_>> {
    match frame.children() {
        [kind, payload] if kind.as_bytes()?.eq_ignore_ascii_case(b"invalidate") => {
            invalidation_payload(payload)
        }
        _ => None,
    }
}

/// A RESP2 `message __redis__:invalidate [keys...]` (or a null payload); `None` for any other
/// reply (a subscription confirmation, a PING's answer).
pub fn parse_message(reply: &Node) -> Option<Invalidation<'_>> {
    match reply.children() {
        [kind, channel, payload]
            if kind.as_bytes()?.eq_ignore_ascii_case(b"message")
                && channel.as_bytes()? == INVALIDATE_CHANNEL =>
        {
            invalidation_payload(payload)
        }
        _ => None,
    }
}

/// What a node says it is: a primary, or a replica of another node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

/// The invalidation connection's lease probe over RESP3: `HELLO 3` (the protocol it already
/// speaks) answers in order like a PING, and its `role` says whether the node is still a
/// primary. Any user may send it (the server never checks HELLO against ACLs), unlike `ROLE`.
pub const LEASE_PROBE: [&[u8]; 2] = [b"HELLO", b"3"];

/// The role in a `HELLO` reply (a RESP3 map, or RESP2's flat array of names and values):
/// `master` (or `primary`) or `replica` (or `slave`); `None` for a reply without one (a
/// sentinel's, a proxy's, an error).
pub fn hello_role(reply: &Node) -> Option<Role> {
    let fields = reply.children();
    let named = matches!(reply.kind(), ReplyKind::Map | ReplyKind::Array);
    if !named || !fields.len().is_multiple_of(2) {
        return None;
    }
    let value = fields
        .chunks_exact(2)
        .find(|pair| pair[0].as_bytes() == Some(b"role"))?[1]
        .as_bytes()?;
    match value.to_ascii_lowercase().as_slice() {
        b"master" | b"primary" => Some(Role::Primary),
        b"replica" | b"slave" => Some(Role::Replica),
        _ => None,
    }
}

/// Whether an error reply to `CLIENT TRACKING ... REDIRECT id` says the target connection is
/// gone (rather than that the server cannot track at all).
pub fn redirect_target_gone(error: &[u8]) -> bool {
    let text = String::from_utf8_lossy(error).to_ascii_lowercase();
    text.contains("redirect") && text.contains("not exist")
}

#[cfg(test)]
mod tests;
