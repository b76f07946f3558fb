//! Following the sentinels' announcements: a subscription on one sentinel at a time, kept by a
//! task on the runtime, that asks for a resolution when the master of our name moved
//! (`+switch-master`) and, when reads go to replicas, when one of its replicas changed (found,
//! down, back, reconfigured, reporting another role).
//!
//! An announcement is a hint, never the truth: it only makes the topology resolve the master
//! again (sentinels in order, then ROLE; the replicas as the sentinel lists them). The subscription speaks RESP2 on a connection of its
//! own (messages are then ordinary replies), is PINGed when quiet so that a sentinel that went
//! away unannounced is noticed, and moves to the next sentinel when its sentinel fails. After a
//! new subscription the master is resolved again, since announcements made while nobody
//! listened are lost. The task ends when the client closes or is dropped.

use super::Sentinel;
use crate::core::Result;
use crate::core::cluster::NodeAddress;
use crate::core::sentinel::{
    REPLICA_EVENTS, SWITCH_MASTER, is_replica_event, parse_message, parse_switch_master,
};
use crate::core::{Error, Status};
use crate::net::ConnectSettings;
use crate::net::async_connect::{self, AsyncConnection, write_all};
use crate::net::errors::closed_by_peer;
use crate::resp::Args;
use std::sync::Weak;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::Instant;

/// A quiet subscription is PINGed this often.
const PING_EVERY: Duration = Duration::from_secs(2);
/// A PING not answered within this long (or the sentinel timeout, if longer) ends the
/// subscription.
const PONG_WITHIN: Duration = Duration::from_secs(2);
/// The pause before subscribing again after a failure (on the next sentinel).
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Starts the task following announcements for `sentinel` until `closed` is set or the
/// topology is dropped.
pub(super) fn start(sentinel: Weak<Sentinel>, closed: watch::Receiver<bool>) {
    crate::runtime::spawn(follow(sentinel, closed));
}

async fn follow(sentinel: Weak<Sentinel>, mut closed: watch::Receiver<bool>) {
    // Which sentinel of the list to subscribe on next (the front one first).
    let mut index = 0;
    let mut subscribed_before = false;
    loop {
        // Only held while preparing: the task must not keep a dropped client's topology alive.
        let Some((address, settings, name, pong_within, replicas)) =
            sentinel.upgrade().and_then(|s| {
                if s.is_closed() {
                    return None;
                }
                let list = s.sentinel_list();
                let address = list[index % list.len()].address.clone();
                let settings = subscription_settings(&s, &address).ok()?;
                let pong_within = s.timeout.unwrap_or_default().max(PONG_WITHIN);
                let replicas = s.read_from != crate::config::ReadFrom::Primary;
                Some((
                    address,
                    settings,
                    s.master_name.clone(),
                    pong_within,
                    replicas,
                ))
            })
        else {
            return;
        };
        let subscription = async {
            let mut connection = subscribe(&settings, replicas).await?;
            if std::mem::replace(&mut subscribed_before, true)
                && let Some(s) = sentinel.upgrade()
            {
                s.queue_resolution();
            }
            listen(
                &mut connection,
                &address,
                &settings,
                &name,
                pong_within,
                &sentinel,
            )
            .await
        };
        tokio::select! {
            _ = subscription => {}
            _ = closed.wait_for(|closed| *closed) => return,
        }
        // The subscription failed or ended: the next sentinel, after a pause.
        index += 1;
        tokio::select! {
            _ = tokio::time::sleep(RETRY_AFTER) => {}
            _ = closed.wait_for(|closed| *closed) => return,
        }
    }
}

/// The sentinel's connection settings, speaking RESP2 (so that messages are replies) and
/// handing nothing to the client's push router.
fn subscription_settings(sentinel: &Sentinel, address: &NodeAddress) -> Result<ConnectSettings> {
    let mut settings = sentinel.sentinel_settings(address)?;
    settings.handshake.protocol = 2;
    settings.pushes = None;
    Ok(settings)
}

/// Connects and subscribes to `+switch-master` (and, for `replicas`, to the replica events).
async fn subscribe(settings: &ConnectSettings, replicas: bool) -> Result<AsyncConnection> {
    let mut connection = async_connect::connect(settings).await?;
    let mut subscribe: Vec<&[u8]> = vec![b"SUBSCRIBE", SWITCH_MASTER];
    if replicas {
        subscribe.extend(REPLICA_EVENTS);
    }
    connection.proto.queue(&Args::from_slices(&subscribe));
    write_all(
        &mut connection.stream,
        &mut connection.proto,
        &settings.address,
    )
    .await?;
    Ok(connection)
}

/// Reads announcements until the connection fails (or a PING goes unanswered); each about
/// `name` is handed to the topology.
async fn listen(
    connection: &mut AsyncConnection,
    from: &NodeAddress,
    settings: &ConnectSettings,
    name: &str,
    pong_within: Duration,
    sentinel: &Weak<Sentinel>,
) -> Result<()> {
    let address = &settings.address;
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let mut last_heard = Instant::now();
    let mut ping_sent: Option<Instant> = None;
    loop {
        while let Some(reply) = connection.proto.next_reply()? {
            last_heard = Instant::now();
            ping_sent = None;
            let Some((channel, payload)) = parse_message(reply.node()) else {
                // The subscription's confirmation, or a PING's answer.
                continue;
            };
            let Some(s) = sentinel.upgrade() else {
                return Ok(());
            };
            if channel == SWITCH_MASTER {
                if let Some(to) = parse_switch_master(payload, name) {
                    s.hint(from, &to);
                }
            } else if is_replica_event(payload, name) {
                s.queue_resolution();
            }
        }
        tokio::select! {
            read = connection.stream.read_buf(connection.proto.input_buffer()) => match read {
                Ok(0) => return Err(closed_by_peer(address)),
                Ok(_) => {}
                Err(e) => return Err(crate::net::errors::io_error(&e, "read from", address)),
            },
            _ = ticker.tick() => {
                if let Some(sent) = ping_sent {
                    if sent.elapsed() >= pong_within {
                        return Err(Error::new(
                            Status::Timeout,
                            format!("{address} did not answer a PING on the +switch-master subscription"),
                        ));
                    }
                } else if last_heard.elapsed() >= PING_EVERY {
                    let ping: [&[u8]; 1] = [b"PING"];
                    connection.proto.queue(&Args::from_slices(&ping));
                    write_all(&mut connection.stream, &mut connection.proto, address).await?;
                    ping_sent = Some(Instant::now());
                }
            }
        }
    }
}
