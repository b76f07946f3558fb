//! The client: a thread-safe handle that routes each command to a pooled connection.
//!
//! A command flows: [`Client::command`] checks that it can run on a borrowed connection,
//! [`Shared::route`] picks the pool of the node that owns it (standalone: the one server),
//! the pool lends a connection, the blocking driver writes the request and reads the reply on
//! the calling thread, and the connection goes back to the pool (or is closed if it broke).

use crate::config::Config;
use crate::core::commands::{ConnectionUse, connection_use};
use crate::core::{Error, Result};
use crate::net::ConnectSettings;
use crate::pipeline::Pipeline;
use crate::pool::Pool;
use crate::resp::{Args, Reply};
use crate::session::Session;
use std::sync::Arc;

/// State shared by a client and the pipelines and sessions made from it.
pub(crate) struct Shared {
    pool: Pool,
}

impl Shared {
    /// The pool of the node that owns this command. Standalone has one node; cluster and
    /// Sentinel routing plug in here.
    pub(crate) fn route(&self, _args: Option<&Args<'_>>) -> &Pool {
        &self.pool
    }
}

pub struct Client {
    shared: Arc<Shared>,
}

/// Rejects empty commands and commands that cannot run on a borrowed connection.
pub(crate) fn check_args(args: &Args<'_>, allow_connection_state: bool) -> Result<()> {
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

impl Client {
    /// Builds a client from `config` (copied). Connections are opened when first needed.
    pub fn new(config: &Config) -> Result<Client> {
        config.validate()?;
        let settings = ConnectSettings::new(config, config.endpoint.clone())?;
        let pool = Pool::new(settings, config.pool.size as usize, config.pool_max_wait());
        Ok(Client {
            shared: Arc::new(Shared { pool }),
        })
    }

    /// Runs one command on a pooled connection and returns its reply. An error reply is
    /// `Err` with the server's text and the mapped status.
    pub fn command(&self, args: &Args<'_>) -> Result<Reply> {
        check_args(args, false)?;
        let pool = self.shared.route(Some(args));
        let mut conn = pool.get()?;
        let result = conn.command(args);
        pool.put(conn);
        result
    }

    pub fn ping(&self) -> Result<()> {
        let args: [&[u8]; 1] = [b"PING"];
        self.command(&Args::from_slices(&args)).map(drop)
    }

    pub fn pipeline(&self) -> Pipeline {
        Pipeline::new(self.shared.clone(), false)
    }

    pub fn transaction(&self) -> Pipeline {
        Pipeline::new(self.shared.clone(), true)
    }

    pub fn session(&self) -> Result<Session> {
        Session::new(self.shared.clone())
    }

    /// Closes every idle connection; borrowed ones close when returned. Later commands, and
    /// those of pipelines and sessions made from this client, fail with CLOSED.
    pub fn close(&self) {
        self.shared.pool.close();
    }

    pub fn open_connections(&self) -> usize {
        self.shared.pool.open_connections()
    }

    pub fn idle_connections(&self) -> usize {
        self.shared.pool.idle_connections()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}
