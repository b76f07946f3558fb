//! TLS with rustls: the client configuration is built once per client from [`TlsSettings`]
//! and shared by all its connections.

use crate::config::TlsSettings;
use crate::core::{Error, Result, Status};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

fn tls_error(message: impl Into<String>) -> Error {
    Error::new(Status::Tls, message)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| tls_error(format!("{what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_error(format!(
            "{what} {}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// The rustls client configuration for `settings`.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        match &settings.ca_file {
            Some(path) => {
                for cert in load_certs(path, "CA file")? {
                    roots
                        .add(cert)
                        .map_err(|e| tls_error(format!("CA file {}: {e}", path.display())))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    return Err(tls_error(
                        "no CA certificates: the system store is empty; set a CA file",
                    ));
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match &settings.client_cert {
        Some((cert_path, key_path)) => {
            let chain = load_certs(cert_path, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|e| tls_error(format!("client key {}: {e}", key_path.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_error(format!("client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name the server certificate is checked against: the configured one, else the host.
pub fn server_name(settings: &TlsSettings, host: &str) -> Result<ServerName<'static>> {
    let name = settings.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_owned())
        .map_err(|_| Error::invalid_argument(format!("TLS server name {name:?} is not valid")))
}

/// `tls_insecure_skip_verify`: accepts any certificate (development only). Signatures are still
/// checked so the handshake itself stays well-formed.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
