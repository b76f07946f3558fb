//! How to open a connection to one server, derived once from the config: the endpoint,
//! timeouts, keepalive, TLS, the handshake parameters, decoder limits, and where push frames go.

use super::push::PushRouter;
use super::tls;
use crate::config::{self, Config, Endpoint, Keepalive};
use crate::core::Result;
use crate::core::handshake;
use crate::resp::Limits;
use rustls::pki_types::ServerName;
use std::ffi::CString;
use std::sync::Arc;
use std::time::Duration;

/// Everything needed to open a connection, derived once from a [`Config`].
pub struct ConnectSettings {
    pub endpoint: Endpoint,
    /// `host:port` or the socket path, for messages and events.
    pub address: Arc<str>,
    /// The same as a C string, for events.
    pub address_c: CString,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    pub keepalive: Option<Keepalive>,
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    pub handshake: handshake::Params,
    pub limits: Limits,
    /// Where push frames go (the client's router); none: they are dropped.
    pub pushes: Option<Arc<PushRouter>>,
}

impl ConnectSettings {
    pub fn new(cfg: &Config, endpoint: Endpoint) -> Result<ConnectSettings> {
        let tls = match cfg.tls.enabled {
            true => Some(tls::client_config(&cfg.tls)?),
            false => None,
        };
        ConnectSettings::with_tls(cfg, endpoint, tls)
    }

    /// The same settings for another node of the same deployment (a cluster node learnt from
    /// the topology): the TLS configuration, whose certificates were read from disk once, is
    /// shared rather than built again.
    pub fn for_endpoint(&self, cfg: &Config, endpoint: Endpoint) -> Result<ConnectSettings> {
        let tls = self.tls.as_ref().map(|(config, _)| config.clone());
        let mut settings = ConnectSettings::with_tls(cfg, endpoint, tls)?;
        settings.pushes = self.pushes.clone();
        Ok(settings)
    }

    fn with_tls(
        cfg: &Config,
        endpoint: Endpoint,
        tls_config: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<ConnectSettings> {
        let tls = match tls_config {
            Some(config) => {
                let host = match &endpoint {
                    Endpoint::Tcp { host, .. } => host.as_str(),
                    Endpoint::Unix(_) => "localhost",
                };
                Some((config, tls::server_name(&cfg.tls, host)?))
            }
            None => None,
        };
        let address = endpoint.address();
        Ok(ConnectSettings {
            // A path with a NUL byte cannot be opened anyway; the event shows it truncated.
            address_c: CString::new(address.replace('\0', "")).unwrap_or_default(),
            address: address.into(),
            endpoint,
            connect_timeout: config::limit(cfg.connect_timeout_ms),
            read_timeout: config::limit(cfg.read_timeout_ms),
            write_timeout: config::limit(cfg.write_timeout_ms),
            keepalive: cfg.keepalive,
            tls,
            handshake: handshake::Params {
                username: cfg.username.clone(),
                password: cfg.password.as_ref().map(|p| p.expose().to_owned()),
                client_name: cfg.client_name.clone(),
                db: cfg.db,
                protocol: cfg.protocol,
                readonly: false,
            },
            limits: Limits {
                // 0: no limit.
                max_reply_bytes: match cfg.max_reply_bytes {
                    0 => usize::MAX,
                    n => n,
                },
                ..Limits::default()
            },
            pushes: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: host.into(),
            port,
        }
    }

    /// A cluster node's settings share the seed's TLS configuration (no certificate read per
    /// node) but name their own server and address.
    #[test]
    fn settings_for_another_node_share_the_tls_configuration() {
        let mut cfg = Config::default();
        cfg.tls.enabled = true;
        cfg.tls.insecure_skip_verify = true;
        let seed = ConnectSettings::new(&cfg, tcp("seed.example", 7000)).unwrap();
        let node = seed.for_endpoint(&cfg, tcp("node2.example", 7001)).unwrap();
        let (seed_tls, seed_name) = seed.tls.as_ref().unwrap();
        let (node_tls, node_name) = node.tls.as_ref().unwrap();
        assert!(Arc::ptr_eq(seed_tls, node_tls));
        assert_eq!(seed_name.to_str(), "seed.example");
        assert_eq!(node_name.to_str(), "node2.example");
        assert_eq!(&*node.address, "node2.example:7001");

        cfg.tls.enabled = false;
        let plain = ConnectSettings::new(&cfg, tcp("seed.example", 7000)).unwrap();
        assert!(plain.for_endpoint(&cfg, tcp("n", 1)).unwrap().tls.is_none());
    }
}
