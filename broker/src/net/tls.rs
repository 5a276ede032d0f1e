//! TLS for the worker's listeners: the certificate shared by TCP-TLS, WSS and
//! QUIC ([`TlsCtx`], reloaded on SIGHUP), and [`Stream`], the socket a
//! connection reads and writes: plain TCP, or TCP carrying a non-blocking
//! `rustls::ServerConnection`.
//!
//! Role: `conn.rs` and `read.rs` see one `Read + Write` socket whatever the
//! transport. A TLS stream reads ciphertext (`read_tls`), decrypts it
//! (`process_new_packets`) and hands out plaintext (`reader`); it encrypts
//! what it is given (`writer`) and writes records (`write_tls`). The handshake
//! runs inside `read`: whatever the handshake has to send is written at once.
//!
//! Invariants:
//! - bounded memory: rustls buffers at most [`TLS_BUFFER_LIMIT`] of outgoing
//!   records (and of plaintext before the handshake ends), and at most one
//!   record of input (its own limits); plaintext is read out before more
//!   ciphertext is read;
//! - bounded CPU per turn: one `read` call consumes at most
//!   [`MAX_CIPHERTEXT_WITHOUT_DATA`] bytes that yield no application data
//!   (handshake, empty records) before failing the connection; a connection
//!   performs one handshake (rustls never renegotiates);
//! - `write` never reports bytes as written that rustls did not take, and
//!   [`Stream::wants_write`] says when encrypted bytes still wait for the
//!   socket, so the worker keeps flushing until they are out;
//! - the native listener requires ALPN `missive/1`; a client that offers
//!   another protocol gets the `no_application_protocol` alert, one that
//!   offers none gets `close_notify`, and both are dropped;
//! - a new certificate ([`TlsCtx::reload`]) applies to new connections only.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use parking_lot::RwLock;
use rustls::ServerConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tracing::debug;

use crate::config::Config;
use crate::error::BrokerError;

/// ALPN of Missive over TLS (TCP) and raw QUIC.
pub(crate) const ALPN: &[u8] = b"missive/1";
/// ALPN of HTTP/1.1, offered by the WSS listener.
const HTTP11_ALPN: &[u8] = b"http/1.1";
/// Outgoing TLS records (and plaintext queued before the handshake ends)
/// rustls buffers per connection. Memory: up to this much per TLS connection,
/// besides the write queue.
pub(crate) const TLS_BUFFER_LIMIT: usize = 64 * 1024;
/// Ciphertext one `read` may consume without producing application data.
const MAX_CIPHERTEXT_WITHOUT_DATA: usize = 256 * 1024;
/// Lifetime of the generated development certificate (WebTransport's
/// `serverCertificateHashes` accepts at most 14 days).
const DEV_CERT_DAYS: i64 = 13;

fn cfg_err(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Config(format!("tls: {what}: {e}"))
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// Hex SHA-256 of the leaf certificate (DER).
    pub(crate) sha256: String,
    /// Generated (development), not read from `web.tls_cert`.
    pub(crate) generated: bool,
}

impl Identity {
    /// Reads `web.tls_cert` / `web.tls_key`, or generates a development
    /// certificate for `localhost` and `127.0.0.1` when they are unset.
    pub(crate) fn load(config: &Config) -> Result<Self, BrokerError> {
        match (&config.web.tls_cert, &config.web.tls_key) {
            (Some(cert), Some(key)) => Self::from_files(cert, key),
            _ => Self::generate(),
        }
    }

    fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, BrokerError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| cfg_err("reading web.tls_cert", e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cfg_err("parsing web.tls_cert", e))?;
        let Some(leaf) = chain.first() else {
            return Err(cfg_err("web.tls_cert", "no certificate in the file"));
        };
        let sha256 = hex::encode(Sha256::digest(leaf.as_ref()));
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| cfg_err("reading web.tls_key", e))?;
        Ok(Self { chain, key, sha256, generated: false })
    }

    fn generate() -> Result<Self, BrokerError> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| cfg_err("certificate params", e))?;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(DEV_CERT_DAYS);
        let key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| cfg_err("key", e))?;
        let cert = params.self_signed(&key).map_err(|e| cfg_err("self-signed certificate", e))?;
        tracing::warn!(
            "tls: using a generated self-signed development certificate (valid {DEV_CERT_DAYS} days)"
        );
        let sha256 = hex::encode(Sha256::digest(cert.der().as_ref()));
        Ok(Self {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            sha256,
            generated: true,
        })
    }

    /// A rustls server configuration with this identity offering `alpn`.
    pub(crate) fn server_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Result<rustls::ServerConfig, BrokerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| cfg_err("tls versions", e))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| cfg_err("certificate", e))?;
        tls.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        // No 0-RTT: replayable early data would bypass the handshake rules.
        tls.max_early_data_size = 0;
        Ok(tls)
    }
}

/// The TLS configurations of the native (TCP-TLS) and web (WSS) listeners,
/// swapped as a whole on reload.
#[derive(Debug)]
struct Configs {
    native: Arc<rustls::ServerConfig>,
    web: Arc<rustls::ServerConfig>,
    sha256: String,
}

/// The certificate shared by the worker's TLS listeners (and reported for QUIC).
#[derive(Debug)]
pub(crate) struct TlsCtx {
    current: RwLock<Configs>,
    /// `web.tls_cert` / `web.tls_key`, re-read by [`TlsCtx::reload`]; `None`
    /// for a generated certificate (nothing to reload).
    files: Option<(PathBuf, PathBuf)>,
}

fn configs(id: &Identity) -> Result<Configs, BrokerError> {
    let versions = rustls::DEFAULT_VERSIONS;
    Ok(Configs {
        native: Arc::new(id.server_config(versions, &[ALPN])?),
        web: Arc::new(id.server_config(versions, &[HTTP11_ALPN])?),
        sha256: id.sha256.clone(),
    })
}

impl TlsCtx {
    pub(crate) fn new(config: &Config, id: &Identity) -> Result<Self, BrokerError> {
        let files = match (&config.web.tls_cert, &config.web.tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            _ => None,
        };
        Ok(Self { current: RwLock::new(configs(id)?), files })
    }

    /// Re-reads the certificate files; new connections use the new
    /// certificate, open ones keep theirs. `Ok(None)`: a generated
    /// certificate, nothing to reload. On an error the old one stays.
    pub(crate) fn reload(&self) -> Result<Option<Identity>, BrokerError> {
        let Some((cert, key)) = &self.files else { return Ok(None) };
        let id = Identity::from_files(cert, key)?;
        let next = configs(&id)?;
        *self.current.write() = next;
        Ok(Some(id))
    }

    /// Hex SHA-256 of the current leaf certificate.
    pub(crate) fn sha256(&self) -> String {
        self.current.read().sha256.clone()
    }

    /// Wraps an accepted socket in a server-side TLS session.
    pub(crate) fn accept(&self, sock: TcpStream, web: bool) -> io::Result<Stream> {
        let config = {
            let c = self.current.read();
            Arc::clone(if web { &c.web } else { &c.native })
        };
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(Stream::Tls(Box::new(TlsStream { sock, tls, require_alpn: !web, checked: false })))
    }
}

/// One accepted connection's socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// TCP carrying a server-side TLS session.
#[derive(Debug)]
pub(crate) struct TlsStream {
    sock: TcpStream,
    tls: ServerConnection,
    /// The native listener requires ALPN `missive/1` ([`ALPN`]).
    require_alpn: bool,
    /// The negotiated protocol was checked (once, after the handshake).
    checked: bool,
}

impl Stream {
    fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &mut t.sock,
        }
    }

    /// Output is not all on the wire yet: encrypted bytes wait for the
    /// socket, or the handshake is still running (what was written waits for
    /// it inside rustls, e.g. the Close of a refused connection).
    pub(crate) fn wants_write(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.tls.wants_write() || t.tls.is_handshaking(),
        }
    }

    /// Ends the connection: TLS sends `close_notify` (best effort), then the
    /// TCP socket is shut down.
    pub(crate) fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if let Stream::Tls(t) = self {
            t.tls.send_close_notify();
            let _ = t.flush_tls();
        }
        self.tcp_mut().shutdown(how)
    }
}

impl TlsStream {
    /// Writes pending TLS records; `WouldBlock` if some remain.
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// After the handshake: the native listener's clients must have agreed
    /// on `missive/1` (a client offering another protocol never gets here:
    /// rustls refuses it with `no_application_protocol`).
    fn check_alpn(&mut self) -> io::Result<()> {
        if self.checked || self.tls.is_handshaking() {
            return Ok(());
        }
        self.checked = true;
        if self.require_alpn && self.tls.alpn_protocol() != Some(ALPN) {
            debug!("tls: client offered no ALPN missive/1");
            self.tls.send_close_notify();
            let _ = self.flush_tls();
            return Err(io::Error::new(io::ErrorKind::InvalidData, "ALPN missive/1 required"));
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut consumed = 0;
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if consumed >= MAX_CIPHERTEXT_WITHOUT_DATA {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "tls: too much data without content"));
            }
            let n = match self.tls.read_tls(&mut self.sock) {
                Ok(0) => return Ok(0),
                Ok(n) => n,
                Err(e) => return Err(e),
            };
            consumed += n;
            let processed = self.tls.process_new_packets();
            // Handshake messages and alerts go out at once (a would-block
            // remainder is flushed with the connection's output).
            match self.flush_tls() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = processed {
                debug!(error = %e, "tls: refused");
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            self.check_alpn()?;
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // Older records first: never take more while the socket is full.
        self.flush_tls()?;
        let mut n = 0;
        for b in bufs {
            let w = self.tls.writer().write(b)?;
            n += w;
            if w < b.len() {
                break;
            }
        }
        match self.flush_tls() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            // Buffer full (before the handshake ended): wait.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write_vectored(bufs),
            Stream::Tls(t) => t.write_vectored(bufs),
        }
    }

    /// Writes the encrypted bytes still waiting (`WouldBlock` if some remain).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(t) => t.flush_tls(),
        }
    }
}

impl mio::event::Source for Stream {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.tcp_mut().register(registry, token, interests)
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        self.tcp_mut().reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.tcp_mut().deregister(registry)
    }
}
