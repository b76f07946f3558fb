//! The read side of the hooks the drivers call: a lookup (a hit, or what a miss needs), the
//! plan for a command the cache could not answer, and running a read that missed so that its
//! reply may be kept: on a blocking connection ([`Cache::fetch`], which sets the connection up
//! to track first when it is not yet) or on the multiplexed one ([`Cache::before_async_send`],
//! [`Cache::after_async_reply`]).

use super::Cache;
use super::store::{Lookup, Token, Via};
use super::writes::Write;
use crate::core::cache::{
    Access, CACHING_YES, Mode, access, command_hash, redirect_target_gone, tracking_on,
    under_prefixes,
};
use crate::core::command_table::{CommandTable, Positions};
use crate::core::{Error, Result};
use crate::net::Connection;
use crate::resp::{Args, Reply, ReplyKind, all_encoded, encode_command, encode_owned};
use crate::telemetry::stats::Stat;
use bytes::BytesMut;

/// A command the cache could not answer, for [`Cache::plan`].
pub(crate) struct Missed {
    hash: u64,
}

/// What the cache does for a command it could not answer.
pub(crate) enum Plan {
    /// A read that missed: run it through [`Cache::fetch`] (or the async hooks) so its reply
    /// may be kept.
    Read(Read),
    /// A write: run it, then [`Cache::written`].
    Write(Write),
    /// Nothing to do with the cache.
    Uncached,
}

/// A cacheable read that missed.
pub(crate) struct Read {
    hash: u64,
    keys: Positions,
    /// The async path's token, taken right before each send.
    token: Option<Token>,
}

impl Cache {
    /// The cached reply of `args`, if it may be served now (counted as a hit); otherwise what
    /// [`Cache::plan`] needs.
    #[inline]
    pub fn lookup(&self, args: &Args<'_>) -> std::result::Result<Reply, Missed> {
        if args.is_empty() {
            return Err(Missed { hash: 0 });
        }
        let hash = command_hash(args, self.seed);
        match self.store.hit(hash, args) {
            Lookup::Hit(reply) => {
                self.observer.stats.bump(Stat::CacheHits);
                Ok(reply)
            }
            Lookup::Miss => Err(Missed { hash }),
            Lookup::Unconfirmed => {
                // The invalidation thread has not had a PING answered lately (it sleeps when
                // nobody hits, or the machine is overloaded): ask it to, and read this one from
                // the server.
                self.listeners.wake();
                Err(Missed { hash })
            }
        }
    }

    /// What to do with a command the cache could not answer (after [`Cache::lookup`]).
    #[inline]
    pub fn plan(&self, table: Option<&CommandTable>, args: &Args<'_>, missed: Missed) -> Plan {
        self.plan_miss(table, args, missed.hash)
    }

    #[inline(never)]
    fn plan_miss(&self, table: Option<&CommandTable>, args: &Args<'_>, hash: u64) -> Plan {
        match access(table, args) {
            Access::Cacheable(keys) if under_prefixes(&self.prefixes, args, &keys) => {
                self.observer.stats.bump(Stat::CacheMisses);
                Plan::Read(Read {
                    hash,
                    keys,
                    token: None,
                })
            }
            Access::Writes(keys) => Plan::Write(Write::Keys(keys)),
            Access::WritesUnknown => Plan::Write(Write::Everything),
            Access::WritesMore(keys) => Plan::Write(Write::KeysAndMore(keys)),
            Access::Cacheable(_) | Access::Neither => Plan::Uncached,
        }
    }

    /// Runs a read that missed on `conn` (the blocking driver's, on the node its keys put it):
    /// a token is taken before the request is sent, the connection is set up to track first if
    /// it is not yet (pipelined: one round trip), and the reply is kept unless something
    /// dropped the token meanwhile.
    pub fn fetch(&self, conn: &mut Connection, args: &Args<'_>, read: &Read) -> Result<Reply> {
        let via = match (self.mode, conn.push_origin()) {
            (Mode::Broadcast, _) => Via::Listener,
            (_, Some(origin)) => Via::Conn(origin.connection),
            (_, None) => return conn.command(args),
        };
        let Some(this) = self.this.upgrade() else {
            return conn.command(args);
        };
        let token = this
            .store
            .begin(conn.address(), read.hash, args, &read.keys, via);
        let Some(token) = token else {
            return conn.command(args);
        };
        let optin = self.mode == Mode::OptIn;
        let setup = token.setup;
        if setup.is_none() && !optin {
            let reply = conn.command(args)?;
            self.store.fill(token, args, &reply, false);
            return Ok(reply);
        }
        let mut encoded = BytesMut::new();
        if let Some(id) = setup {
            encode_owned(&mut encoded, &tracking_on(id, self.mode));
        }
        if optin {
            encoded.extend_from_slice(CACHING_YES);
        }
        encode_command(&mut encoded, args);
        let ahead = usize::from(setup.is_some()) + usize::from(optin);
        let mut replies = conn.pipeline(&encoded, ahead + 1)?;
        let reply = replies.pop().expect("as many replies as commands");
        if reply.kind() == ReplyKind::Error {
            return Err(Error::from_reply(reply.as_bytes().unwrap_or_default()));
        }
        match replies.iter().find(|r| r.kind() == ReplyKind::Error) {
            None => {
                let node = token.node();
                if self.store.fill(token, args, &reply, setup.is_some()) {
                    // What the server tracks for it ends when the server closes it: the
                    // invalidation thread watches for that.
                    if let Via::Conn(connection) = via {
                        self.listeners.watch(node, connection, conn.raw_fd());
                    }
                }
            }
            Some(refusal) => {
                // Answered, not kept. A redirect target the server no longer knows is an
                // invalidation connection lost without our hearing it yet.
                if redirect_target_gone(refusal.as_bytes().unwrap_or_default()) {
                    self.in_doubt(token.node());
                }
            }
        }
        Ok(reply)
    }

    /// Before an async read is sent on the node at `address`: takes its token and returns what
    /// goes ahead of it on the multiplexed connection (tracking re-asserted, as the cache
    /// cannot know what that shared connection has set; OPTIN's `CLIENT CACHING YES`) and how
    /// many replies that adds.
    pub fn before_async_send(
        &self,
        read: &mut Read,
        encoded: &[u8],
        address: &str,
    ) -> Option<(Vec<u8>, u8)> {
        read.token = None;
        let this = self.this.upgrade()?;
        let via = match self.mode {
            Mode::Broadcast => Via::Listener,
            _ => Via::Mux,
        };
        let mut token = None;
        all_encoded(encoded, |args| {
            token = this.store.begin(address, read.hash, args, &read.keys, via);
            false
        });
        let token = token?;
        let mut ahead = BytesMut::new();
        let mut count = 0;
        if self.mode != Mode::Broadcast {
            encode_owned(&mut ahead, &tracking_on(token.redirect, self.mode));
            count += 1;
        }
        if self.mode == Mode::OptIn {
            ahead.extend_from_slice(CACHING_YES);
            count += 1;
        }
        read.token = Some(token);
        Some((ahead.to_vec(), count))
    }

    /// An async read's reply arrived: kept if its token still holds.
    pub fn after_async_reply(&self, read: &mut Read, encoded: &[u8], reply: &Reply) {
        let mut token = read.token.take();
        all_encoded(encoded, |args| {
            if let Some(token) = token.take() {
                self.store.fill(token, args, reply, false);
            }
            false
        });
    }
}
