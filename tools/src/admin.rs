//! `missivectl backup`: the admin HTTP API of a running broker
//! (`POST /admin/v1/backup`, spec/openapi.yaml) over plain HTTP/1.1.
//!
//! Invariants: one request per connection (the broker closes after each
//! response); the whole exchange is bounded by the timeout; a refusal prints
//! the broker's `error.code` and message and exits with status 2.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

/// Largest response read, bytes.
const MAX_RESPONSE: u64 = 1 << 20;

/// An error the broker answered (non-2xx): exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{code} (HTTP {status}): {message}")]
pub(crate) struct AdminRefused {
    status: u16,
    code: String,
    message: String,
}

impl AdminRefused {
    pub(crate) fn new(status: u16, code: String, message: String) -> Self {
        Self { status, code, message }
    }
}

/// Asks the broker at `http` (HOST:PORT of its `ws` listener) for a backup.
pub(crate) fn backup(
    json: bool,
    http: &str,
    token: &str,
    name: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let addr = http
        .to_socket_addrs()
        .with_context(|| format!("--http {http}"))?
        .next()
        .with_context(|| format!("--http {http}: no address"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let query = name.map(|n| format!("?name={n}")).unwrap_or_default();
    write!(
        s,
        "POST /admin/v1/backup{query} HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.take(MAX_RESPONSE).read_to_end(&mut raw).context("reading the response")?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { bail!("malformed HTTP response: {text:?}") };
    let status: u16 =
        head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).context("no HTTP status")?;
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    if !(200..300).contains(&status) {
        let field = |k: &str| v["error"][k].as_str().unwrap_or("").to_owned();
        let (code, message) = match field("code") {
            c if c.is_empty() => (format!("http_{status}"), body.trim().to_owned()),
            c => (c, field("message")),
        };
        return Err(AdminRefused { status, code, message }.into());
    }
    if json {
        println!("{v}");
    } else {
        println!(
            "backup {} written to {}",
            v["name"].as_str().unwrap_or("?"),
            v["path"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
