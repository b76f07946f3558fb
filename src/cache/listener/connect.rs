//! Opening one invalidation connection, on a thread of its own (connecting blocks): the node's
//! usual connection (RESP3 whenever the server speaks it), `CLIENT ID`, the `CLIENT TRACKING
//! OFF` probe a server without tracking refuses, the first lease probe (RESP3: the node's
//! role), BROADCAST's tracking on the connection itself, RESP2's subscription to the
//! invalidation channel.

use super::Attempt;
use crate::core::cache::{INVALIDATE_CHANNEL, LEASE_PROBE, Mode, broadcast_on, hello_role};
use crate::core::{Error, Status};
use crate::net::{ConnectSettings, Connection};
use crate::resp::{Args, Reply, ReplyKind, encode_owned};
use bytes::BytesMut;

/// Opens and sets up one invalidation connection (on a thread of its own: it blocks).
pub(super) fn connect(settings: &ConnectSettings, mode: Mode, prefixes: &[Vec<u8>]) -> Attempt {
    let mut conn = match Connection::connect(settings) {
        Ok(conn) => conn,
        Err(e) => return Attempt::Lost(e),
    };
    let resp3 = conn.is_resp3();
    // CLIENT ID, and the probe a server without tracking refuses.
    let mut encoded = BytesMut::new();
    encode_owned(&mut encoded, &[b"CLIENT".to_vec(), b"ID".to_vec()]);
    encode_owned(
        &mut encoded,
        &[b"CLIENT".to_vec(), b"TRACKING".to_vec(), b"OFF".to_vec()],
    );
    if resp3 {
        encode_owned(&mut encoded, &LEASE_PROBE.map(<[u8]>::to_vec));
    }
    let replies = match conn.pipeline(&encoded, 2 + usize::from(resp3)) {
        Ok(replies) => replies,
        Err(e) => return Attempt::Lost(e),
    };
    let Some(client_id) = replies[0]
        .as_integer()
        .and_then(|id| u64::try_from(id).ok())
    else {
        return Attempt::Unsupported(refused("CLIENT ID", &replies[0]));
    };
    if replies[1].kind() == ReplyKind::Error {
        return Attempt::Unsupported(refused("CLIENT TRACKING", &replies[1]));
    }
    let role = replies.get(2).and_then(|r| hello_role(r));
    let mut setup: Vec<Vec<Vec<u8>>> = Vec::new();
    if mode == Mode::Broadcast {
        setup.push(broadcast_on((!resp3).then_some(client_id), prefixes));
    }
    if !resp3 {
        setup.push(vec![b"SUBSCRIBE".to_vec(), INVALIDATE_CHANNEL.to_vec()]);
    }
    for command in &setup {
        let words: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
        match conn.command(&Args::from_slices(&words)) {
            Ok(_) => {}
            Err(e) if e.server_kind().is_some() => {
                return Attempt::Unsupported(e.context(
                    "client-side caching: the server refused to set up the invalidation \
                     connection",
                ));
            }
            Err(e) => return Attempt::Lost(e),
        }
    }
    match conn.listen_only() {
        Ok(()) => Attempt::Up(conn, client_id, role),
        Err(e) => Attempt::Lost(e),
    }
}

/// The server's refusal of a setup command, with its status (SERVER for an unknown command,
/// AUTH for NOPERM...).
fn refused(what: &str, reply: &Reply) -> Error {
    let error = match reply.kind() {
        ReplyKind::Error => Error::from_reply(reply.as_bytes().unwrap_or_default()),
        _ => Error::new(Status::Protocol, format!("unexpected reply {reply:?}")),
    };
    error.context(format!(
        "client-side caching needs CLIENT TRACKING (Redis 6+ or Valkey); the server refused \
         {what}"
    ))
}
