//! TLS helpers for the black-box tests: test certificates (rcgen) written as
//! PEM files the broker reads (`web.tls_cert`, `web.tls_key`), and client TLS
//! streams (rustls) that pin the broker's certificate by its SHA-256.
//!
//! Invariants: the handshake in [`tls_connect`] is bounded by [`crate::WAIT`]
//! (socket timeouts); nothing here trusts a certificate other than the pinned one.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConnection, StreamOwned};
use sha2::{Digest, Sha256};

use crate::WAIT;

/// A certificate and key written as PEM files.
#[derive(Debug, Clone)]
pub struct TestCert {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Hex SHA-256 of the certificate (DER), as the broker prints it.
    pub sha256: String,
}

/// Generates a self-signed certificate for `localhost` / `127.0.0.1` and
/// writes it to `dir/cert.pem` and `dir/key.pem` (replacing what is there).
pub fn write_cert(dir: &Path) -> TestCert {
    let key = rcgen::KeyPair::generate().expect("key pair");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("certificate params");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    // Written beside and renamed, so a reload never reads half a file.
    std::fs::write(dir.join("cert.pem.tmp"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem.tmp"), key.serialize_pem()).expect("write key");
    std::fs::rename(dir.join("key.pem.tmp"), &key_path).expect("rename key");
    std::fs::rename(dir.join("cert.pem.tmp"), &cert_path).expect("rename cert");
    TestCert { cert: cert_path, key: key_path, sha256: hex::encode(Sha256::digest(cert.der().as_ref())) }
}

impl TestCert {
    /// The `[web]` keys naming these files (TOML).
    pub fn web_toml(&self) -> String {
        format!("tls_cert = {:?}\ntls_key = {:?}\n", self.cert, self.key)
    }
}

/// A rustls client configuration pinning `sha256` and offering `alpn`.
pub fn client_config(sha256: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let (mut cfg, _) = missive_sdk::tls::client_config(&missive_sdk::tls::Trust::Sha256(sha256.to_owned()))
        .expect("client config");
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    cfg
}

/// A TLS client stream to `addr` after a completed handshake (pinning
/// `sha256`, offering `alpn`); the handshake's error otherwise.
pub fn tls_connect(
    addr: SocketAddr,
    sha256: &str,
    alpn: &[&[u8]],
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let mut sock = TcpStream::connect_timeout(&addr, WAIT)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(WAIT))?;
    sock.set_write_timeout(Some(WAIT))?;
    let name = "localhost".try_into().map_err(io::Error::other)?;
    let mut conn =
        ClientConnection::new(Arc::new(client_config(sha256, alpn)), name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    Ok(StreamOwned::new(conn, sock))
}
