//! Connection URLs:
//!
//! ```text
//! redis://[user[:password]@]host[:port][/db][?option=value&...]
//! rediss://...                       (TLS)
//! redis+cluster://[user[:password]@]host:port,host:port[/db][?...]
//! unix://[user[:password]@]/path/to/socket[?db=N&...]
//! ```
//!
//! User, password, path and option values are percent-decoded; hosts may be bracketed IPv6
//! literals. Every error names the part of the URL at fault and never repeats the password.

use super::{Config, Endpoint, Mode};
use crate::core::{Error, Result};
use percent_encoding::percent_decode_str;
use std::path::PathBuf;

const DEFAULT_PORT: u16 = 6379;

/// Applies `url` to `cfg`: the address, TLS from the scheme, and whatever else the URL carries.
/// On error `cfg` is unchanged.
pub fn apply(cfg: &mut Config, url: &str) -> Result<()> {
    let mut next = cfg.clone();
    parse_into(&mut next, url)?;
    *cfg = next;
    Ok(())
}

fn bad(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::invalid_argument(format!("url: {what}: {detail}"))
}

/// Where `part`, a slice of `url`, starts in it.
fn offset_in(url: &str, part: &str) -> usize {
    part.as_ptr() as usize - url.as_ptr() as usize
}

/// Keeps `e` if the text it quotes (`part` of `url`) cannot be the password, else replaces it.
///
/// Text before the last '@' may be (part of) the password even when the parser took it for a
/// host, port, db or option: a password with an unencoded '/' or '?' ends the authority early
/// (`redis://u:se/cret@h` reads as host "u", port "se"). So an error about such text says
/// which part is wrong without quoting it.
fn redact(e: Error, url: &str, part: &str, what: &str) -> Error {
    let userinfo_end = url.rfind('@').map_or(0, |at| at + 1);
    if offset_in(url, part) >= userinfo_end {
        return e;
    }
    bad(
        what,
        "malformed (not quoted, as it may hold part of the password; \
         percent-encode '@', '/', '?' and '#' in credentials)",
    )
}

fn decode(part: &str, what: &str) -> Result<String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| bad(what, "not valid UTF-8 after percent-decoding"))
}

fn parse_into(cfg: &mut Config, url: &str) -> Result<()> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        bad(
            "scheme",
            "expected redis://, rediss://, redis+cluster:// or unix://",
        )
    })?;
    let (tls, mode) = match scheme.to_ascii_lowercase().as_str() {
        "redis" => (false, None),
        "rediss" => (true, None),
        "redis+cluster" => (false, Some(Mode::Cluster)),
        "rediss+cluster" => (true, Some(Mode::Cluster)),
        "unix" => (false, None),
        // Quoted only when it looks like a scheme: without a "://" where it belongs, the text
        // before a later one can hold the password ("user:secret@host://...").
        _ if scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            return Err(bad("scheme", format!("unknown scheme {scheme:?}")));
        }
        _ => return Err(bad("scheme", "unknown scheme")),
    };
    let unix = scheme.eq_ignore_ascii_case("unix");

    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    if before_query.contains('#') || query.is_some_and(|q| q.contains('#')) {
        return Err(bad(
            "fragment",
            "'#' is not allowed; percent-encode it as %23",
        ));
    }
    // The authority ends at the first '/'; within it the userinfo ends at the last '@' (a
    // password should percent-encode '@', but a literal one is accepted).
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let authority_and_user = &before_query[..authority_end];
    let path = &before_query[authority_end..];
    let (userinfo, authority) = match authority_and_user.rfind('@') {
        Some(at) => (
            Some(&authority_and_user[..at]),
            &authority_and_user[at + 1..],
        ),
        None => (None, authority_and_user),
    };

    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        let user = decode(user, "username")?;
        cfg.username = (!user.is_empty()).then_some(user);
        if let Some(p) = password {
            // `user:@host` means no password, as in redis-py.
            let p = decode(p, "password")?;
            cfg.password = (!p.is_empty()).then(|| p.into());
        }
    }

    let mut path_db = None;
    if unix {
        if !authority.is_empty() {
            return Err(bad(
                "host",
                "unix:// URLs take no host; write unix:///path/to/socket",
            ));
        }
        let path = decode(path, "path")?;
        if path.is_empty() || path == "/" {
            return Err(bad("path", "missing socket path"));
        }
        cfg.endpoint = Endpoint::Unix(PathBuf::from(path));
        cfg.mode = Mode::Standalone;
        cfg.nodes.clear();
    } else {
        let mut nodes = Vec::new();
        for host_port in authority.split(',') {
            nodes.push(parse_host_port(host_port).map_err(|e| redact(e, url, host_port, "host"))?);
        }
        match (mode, nodes.len()) {
            (None, 1) => {
                let (host, port) = nodes.pop().expect("one node");
                cfg.endpoint = Endpoint::Tcp { host, port };
                // The scheme names the topology: a plain URL undoes an earlier cluster one.
                cfg.mode = Mode::Standalone;
                cfg.nodes.clear();
            }
            (None, _) => {
                return Err(bad("host", "several hosts need redis+cluster://"));
            }
            (Some(mode), _) => {
                cfg.mode = mode;
                cfg.nodes = nodes;
            }
        }
        let db_text = path.trim_start_matches('/');
        if !db_text.is_empty() {
            path_db = Some(
                parse_number::<u32>(db_text, "db").map_err(|e| redact(e, url, db_text, "db"))?,
            );
        }
    }
    cfg.tls.enabled = tls;
    if let Some(db) = path_db {
        cfg.db = db;
    }

    let Some(query) = query else {
        return Ok(());
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        apply_pair(cfg, pair, path_db.is_some()).map_err(|e| redact(e, url, pair, "option"))?;
    }
    Ok(())
}

fn apply_pair(cfg: &mut Config, pair: &str, path_has_db: bool) -> Result<()> {
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| bad("option", format!("{:?} has no value", pair)))?;
    let key = decode(key, "option name")?;
    let value = decode(value, &key)?;
    apply_option(cfg, &key, &value, path_has_db)
}

fn parse_host_port(text: &str) -> Result<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("host", "unclosed '[' in IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("host", "unexpected text after IPv6 address"))?,
            ),
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("host", format!("{host:?} is not an IPv6 address")));
        }
        (host.to_owned(), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (decode(h, "host")?, Some(p)),
            None => (decode(text, "host")?, None),
        }
    };
    if host.contains(':') && !text.starts_with('[') {
        return Err(bad(
            "host",
            "IPv6 addresses must be in brackets: [::1]:6379",
        ));
    }
    let host = if host.is_empty() {
        "localhost".to_owned()
    } else {
        host
    };
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => match parse_number::<u16>(p, "port")? {
            0 => return Err(bad("port", "0 is not a valid port")),
            p => p,
        },
    };
    Ok((host, port))
}

fn parse_number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(what, format!("{text:?} is not a number")));
    }
    text.parse()
        .map_err(|_| bad(what, format!("{text:?} is out of range")))
}

fn parse_bool(text: &str, what: &str) -> Result<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(what, format!("{text:?} is not a boolean"))),
    }
}

fn apply_option(cfg: &mut Config, key: &str, value: &str, path_has_db: bool) -> Result<()> {
    let ms = |what: &str| parse_number::<u32>(value, what);
    match key {
        "connect_timeout" => cfg.set_connect_timeout_ms(ms(key)?),
        "read_timeout" => cfg.set_read_timeout_ms(ms(key)?),
        "write_timeout" => cfg.set_write_timeout_ms(ms(key)?),
        "command_deadline" => cfg.command_deadline_ms = ms(key)?,
        "max_reply_bytes" => cfg.max_reply_bytes = parse_number(value, key)?,
        "pool_size" => cfg.set_pool_size(ms(key)?)?,
        "pool_min_idle" => cfg.pool.min_idle = ms(key)?,
        "pool_max_wait" => cfg.pool.max_wait_ms = Some(ms(key)?),
        "pool_idle_timeout" => cfg.pool.idle_timeout_ms = ms(key)?,
        "pool_max_lifetime" => cfg.pool.max_lifetime_ms = ms(key)?,
        "health_check_interval" => cfg.health_check_interval_ms = ms(key)?,
        "client_name" => cfg.set_client_name(value)?,
        "protocol" => cfg.set_protocol(parse_number(value, key)?)?,
        "max_retries" => cfg.retry.max_retries = Some(ms(key)?),
        "db" => {
            let db = parse_number(value, key)?;
            if path_has_db && db != cfg.db {
                return Err(bad("db", "given both in the path and as an option"));
            }
            cfg.db = db;
        }
        "tls_insecure_skip_verify" => cfg.tls.insecure_skip_verify = parse_bool(value, key)?,
        "tls_server_name" => cfg.tls.server_name = Some(value.to_owned()),
        "client_cache" => cfg.cache.max_entries = ms(key)?,
        "client_cache_ttl" => cfg.cache.ttl_ms = ms(key)?,
        "client_cache_max_bytes" => cfg.cache.max_bytes = parse_number(value, key)?,
        "client_cache_mode" => {
            cfg.cache.mode = match value.to_ascii_lowercase().as_str() {
                "default" => super::CacheMode::Default,
                "broadcast" | "bcast" => super::CacheMode::Broadcast,
                "optin" => super::CacheMode::OptIn,
                _ => {
                    return Err(bad(
                        key,
                        format!("{value:?} is not default, broadcast or optin"),
                    ));
                }
            }
        }
        "client_cache_prefix" => cfg.add_client_cache_prefix(value.as_bytes())?,
        _ => return Err(bad("option", format!("unknown option {key:?}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
