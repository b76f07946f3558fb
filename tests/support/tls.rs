//! Test certificates, made at test time with the `openssl` CLI (ECDSA P-256: fast to generate).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The PEM files of one TLS test setup, all inside the server's directory.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA that signed the server and client certificates.
    pub ca_cert: PathBuf,
    /// Server certificate: SAN `IP:127.0.0.1`, `DNS:localhost`.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client certificate for mutual TLS, signed by the same CA.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here: verifying the server against it must fail.
    pub other_ca_cert: PathBuf,
}

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
";

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (is it installed?)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ],
    );
}

fn self_signed_ca(dir: &Path, name: &str, cn: &str) {
    let key_file = format!("{name}.key");
    key(dir, &key_file);
    let subject = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-config",
            "openssl.cnf",
            "-extensions",
            "ca_ext",
            "-key",
            &key_file,
            "-subj",
            &subject,
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

fn signed_by_ca(dir: &Path, name: &str, cn: &str, extensions: &str) {
    let key_file = format!("{name}.key");
    let csr = format!("{name}.csr");
    key(dir, &key_file);
    let subject = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-config",
            "openssl.cnf",
            "-key",
            &key_file,
            "-subj",
            &subject,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            extensions,
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// Writes a CA, a server and a client certificate signed by it, and an unrelated CA into `dir`.
pub fn generate(dir: &Path) -> TlsFiles {
    std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).expect("write openssl.cnf");
    self_signed_ca(dir, "ca", "brisk test CA");
    signed_by_ca(dir, "server", "localhost", "server_ext");
    signed_by_ca(dir, "client", "brisk test client", "client_ext");
    self_signed_ca(dir, "other-ca", "brisk unrelated CA");
    TlsFiles {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
        other_ca_cert: dir.join("other-ca.crt"),
    }
}
