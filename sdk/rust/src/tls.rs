//! TLS transport (feature `tls`): the same length-prefixed frames as TCP
//! (spec/PROTOCOL.md 2.3) inside TLS 1.2/1.3 (rustls, ring) with ALPN
//! `missive/1`, to the broker's `tcp_tls` listener.
//!
//! Role: [`connect`] opens the TCP connection and completes the TLS handshake
//! synchronously (so a refused certificate or protocol is reported there), then
//! hands the session to the ordinary [`Connection`] through a private loopback
//! socket served by two background threads (`missive-tls-up`,
//! `missive-tls-down`), so every SDK feature (requests, pushes, the resilient
//! `Client`) works unchanged. [`Trust`] says how the server's certificate is
//! checked (also used by the QUIC transport).
//!
//! Invariants: the loopback listener accepts exactly one connection, only
//! within [`LOCAL_ACCEPT_TIMEOUT`], and then closes; no lock is held during
//! blocking I/O on the network socket except the writer's own; the end of
//! either side is passed on (`close_notify` and TCP shutdown), so the
//! `Connection` sees the server's `Close` and then the end of the stream.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::client::Dial;
use crate::conn::{ConnectOptions, Connection};
use crate::error::SdkError;

/// ALPN of Missive over TLS and raw QUIC.
pub const ALPN: &[u8] = b"missive/1";

/// How long the private loopback listener waits for the `Connection`.
const LOCAL_ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the server's certificate is trusted.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The leaf certificate's SHA-256 (hex), as the broker prints it
    /// (`cert_sha256=`), like WebTransport's `serverCertificateHashes`.
    Sha256(String),
    /// Ordinary verification against these root certificates (DER), for `server_name`.
    Roots { roots: Vec<CertificateDer<'static>>, server_name: String },
}

/// Accepts exactly the server certificate whose SHA-256 is pinned.
#[derive(Debug)]
pub(crate) struct PinVerifier {
    sha256: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinVerifier {
    pub(crate) fn new(sha256: Vec<u8>, provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        Self { sha256, provider }
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Sha256::digest(end_entity.as_ref()).as_slice() == self.sha256.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("server certificate does not match the pinned SHA-256".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Reads root certificates (a CA bundle, PEM) for [`Trust::Roots`].
pub fn roots_from_pem(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, SdkError> {
    use rustls::pki_types::pem::PemObject;
    let roots = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err("reading the CA file", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err("parsing the CA file", e))?;
    if roots.is_empty() {
        return Err(tls_err("CA file", "no certificate in it"));
    }
    Ok(roots)
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> SdkError {
    SdkError::Protocol(format!("tls: {what}: {e}"))
}

/// The rustls client configuration for `trust` (TLS 1.2 and 1.3, ALPN
/// `missive/1`) and the server name to connect with.
pub fn client_config(trust: &Trust) -> Result<(rustls::ClientConfig, String), SdkError> {
    rustls_config(trust, rustls::DEFAULT_VERSIONS)
}

/// The rustls client configuration for `trust` with these protocol
/// `versions` (QUIC: TLS 1.3 only), ALPN `missive/1`, and the server name.
pub(crate) fn rustls_config(
    trust: &Trust,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<(rustls::ClientConfig, String), SdkError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| tls_err("versions", e))?;
    let (mut tls, name) = match trust {
        Trust::Sha256(hex_hash) => {
            let sha256 = hex::decode(hex_hash).map_err(|e| tls_err("certificate hash", e))?;
            let v = Arc::new(PinVerifier::new(sha256, provider));
            (
                builder.dangerous().with_custom_certificate_verifier(v).with_no_client_auth(),
                "localhost".to_owned(),
            )
        }
        Trust::Roots { roots, server_name } => {
            let mut store = rustls::RootCertStore::empty();
            for r in roots {
                store.add(r.clone()).map_err(|e| tls_err("root certificate", e))?;
            }
            (builder.with_root_certificates(store).with_no_client_auth(), server_name.clone())
        }
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok((tls, name))
}

/// Connects to the broker's TLS listener at `opts.addr`, checks its
/// certificate with `trust`, and performs the protocol handshake of `opts`.
pub fn connect(opts: &ConnectOptions, trust: &Trust) -> Result<Connection, SdkError> {
    let (config, name) = client_config(trust)?;
    let server_name = ServerName::try_from(name).map_err(|e| tls_err("server name", e))?;
    let mut tls = ClientConnection::new(Arc::new(config), server_name).map_err(|e| tls_err("session", e))?;
    // Drained after every write, so no limit is needed on the outgoing buffer.
    tls.set_buffer_limit(None);
    let addr = opts
        .addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| SdkError::Protocol(format!("{:?} resolves to no address", opts.addr)))?;
    let mut sock = TcpStream::connect_timeout(&addr, opts.connect_timeout)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(opts.connect_timeout))?;
    sock.set_write_timeout(Some(opts.connect_timeout))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut sock).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => SdkError::Timeout,
            _ => tls_err("handshake", e),
        })?;
    }
    if tls.alpn_protocol() != Some(ALPN) {
        return Err(tls_err("handshake", "the server did not agree on ALPN missive/1"));
    }
    sock.set_read_timeout(None)?;
    sock.set_write_timeout(None)?;
    let local = TcpListener::bind(("127.0.0.1", 0))?;
    let local_addr = local.local_addr()?;
    let reader = sock.try_clone()?;
    let tls = Arc::new(Mutex::new(tls));
    let writer = Arc::new(Mutex::new(sock));
    std::thread::Builder::new().name("missive-tls-up".into()).spawn(move || {
        let Some(app) = accept_one(&local) else {
            let _ = writer.lock().shutdown(Shutdown::Both);
            return;
        };
        let Ok(app_down) = app.try_clone() else { return };
        let (t2, w2) = (Arc::clone(&tls), Arc::clone(&writer));
        let down = std::thread::Builder::new()
            .name("missive-tls-down".into())
            .spawn(move || down(reader, app_down, &t2, &w2));
        up(app, &tls, &writer);
        if let Ok(d) = down {
            let _ = d.join();
        }
    })?;
    let mut o = opts.clone();
    o.addr = local_addr.to_string();
    Connection::connect(&o)
}

/// A [`Dial`] that opens every connection of a [`crate::Client`] over TLS
/// (see [`connect`]; `ConnectOptions::addr` is the TLS listener).
pub fn dialer(trust: Trust) -> Dial {
    Dial::new(move |opts| connect(opts, &trust))
}

/// The `Connection`'s end of the private loopback pair.
fn accept_one(local: &TcpListener) -> Option<TcpStream> {
    local.set_nonblocking(true).ok()?;
    let deadline = Instant::now() + LOCAL_ACCEPT_TIMEOUT;
    while Instant::now() < deadline {
        match local.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok()?;
                let _ = s.set_nodelay(true);
                return Some(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return None,
        }
    }
    None
}

/// Encrypted bytes rustls has ready, taken out under its lock.
fn pending(tls: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while tls.wants_write() {
        if tls.write_tls(&mut out).is_err() {
            break;
        }
    }
    out
}

/// Application → server: encrypt and send; the application's end of stream
/// sends `close_notify` and shuts the socket down for writing.
fn up(mut app: TcpStream, tls: &Mutex<ClientConnection>, writer: &Mutex<TcpStream>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match app.read(&mut buf) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let out = {
            let mut t = tls.lock();
            if n == 0 {
                t.send_close_notify();
            } else if t.writer().write_all(&buf[..n]).is_err() {
                break;
            }
            pending(&mut t)
        };
        let mut w = writer.lock();
        if w.write_all(&out).is_err() || n == 0 {
            let _ = w.shutdown(Shutdown::Write);
            break;
        }
    }
}

/// Server → application: read, decrypt and pass on; the server's end (or a
/// TLS error) shuts the application's socket down for writing.
fn down(mut sock: TcpStream, mut app: TcpStream, tls: &Mutex<ClientConnection>, writer: &Mutex<TcpStream>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut plain = Vec::new();
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rd = &buf[..n];
        let mut closed = false;
        let out = {
            let mut t = tls.lock();
            while !rd.is_empty() {
                if t.read_tls(&mut rd).is_err() || t.process_new_packets().is_err() {
                    closed = true;
                    break;
                }
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match t.reader().read(&mut chunk) {
                        Ok(0) => {
                            closed = true;
                            break;
                        }
                        Ok(k) => plain.extend_from_slice(&chunk[..k]),
                        Err(_) => break,
                    }
                }
            }
            pending(&mut t)
        };
        if !out.is_empty() && writer.lock().write_all(&out).is_err() {
            break;
        }
        if !plain.is_empty() && app.write_all(&plain).is_err() {
            break;
        }
        plain.clear();
        if closed {
            break;
        }
    }
    let _ = app.shutdown(Shutdown::Write);
}
