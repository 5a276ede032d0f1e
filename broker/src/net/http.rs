//! The HTTP side of the web listener: request-head parsing, routing, and the
//! static files of the chat page, all served from memory by the mio workers.
//!
//! Routes (spec/PROTOCOL.md section 2.2): `GET /ws` upgrades to WebSocket;
//! `GET /api/info` describes the server to the page; `GET /api/dev-token`
//! mints a development token (only in dev mode, 404 otherwise); `GET /echo`
//! is a plain WebSocket echo endpoint for conformance testing (only with
//! `web.ws_echo`); `/admin/...` goes to the admin API ([`super::admin`], only
//! with `admin.token`); every other `GET`/`HEAD` serves a file of `web.static_dir`.
//!
//! Invariants:
//! - workers never touch the disk for HTTP: [`Site::load`] reads the static
//!   directory once at start, bounded by [`MAX_SITE_BYTES`] and
//!   [`MAX_SITE_FILES`];
//! - a request head is at most [`MAX_HEAD`] bytes; anything larger, malformed,
//!   or with a body is refused; every plain HTTP response closes the
//!   connection (no keep-alive), so one connection carries one request;
//! - paths are looked up in the in-memory map only, so `..` cannot escape.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use missive_protocol::token::{self, Claims, Role};
use missive_protocol::{DeviceId, UserId};

use crate::error::BrokerError;

/// Largest accepted request head (request line and headers).
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Total bytes of static files kept in memory.
pub(crate) const MAX_SITE_BYTES: u64 = 64 * 1024 * 1024;
/// Number of static files kept in memory.
pub(crate) const MAX_SITE_FILES: usize = 4096;
/// Lifetime of a development token.
const DEV_TOKEN_SECS: u64 = 24 * 3600;

/// Static files, by URL path (`/index.html`), with their content types.
#[derive(Debug, Default)]
pub(crate) struct Site {
    files: HashMap<String, (&'static str, Bytes)>,
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

impl Site {
    /// Reads every file under `dir` (recursively) into memory.
    pub(crate) fn load(dir: &Path) -> Result<Self, BrokerError> {
        let mut site = Site::default();
        let mut total = 0u64;
        let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
        let err =
            |p: &Path, e: std::io::Error| BrokerError::Config(format!("static_dir {}: {e}", p.display()));
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).map_err(|e| err(&d, e))? {
                let entry = entry.map_err(|e| err(&d, e))?;
                let path = entry.path();
                let ft = entry.file_type().map_err(|e| err(&path, e))?;
                if ft.is_dir() {
                    stack.push(path);
                    continue;
                }
                if !ft.is_file() {
                    continue;
                }
                let data = std::fs::read(&path).map_err(|e| err(&path, e))?;
                total += data.len() as u64;
                if total > MAX_SITE_BYTES || site.files.len() >= MAX_SITE_FILES {
                    return Err(BrokerError::Config(format!(
                        "static_dir {} holds more than {MAX_SITE_FILES} files or {MAX_SITE_BYTES} bytes",
                        dir.display()
                    )));
                }
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let url: Vec<String> =
                    rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                site.files.insert(format!("/{}", url.join("/")), (content_type(&path), Bytes::from(data)));
            }
        }
        Ok(site)
    }

    fn get(&self, path: &str) -> Option<&(&'static str, Bytes)> {
        let path = if path.ends_with('/') { format!("{path}index.html") } else { path.to_owned() };
        self.files.get(&path)
    }
}

/// What the web endpoints need besides the files.
#[derive(Debug, Default)]
pub(crate) struct WebCtx {
    pub(crate) site: Site,
    /// Dev mode: `/api/dev-token` mints tokens.
    pub(crate) dev_mode: bool,
    /// `/echo` is served (conformance testing only).
    pub(crate) ws_echo: bool,
    /// Token secret (for dev tokens).
    pub(crate) secret: String,
    /// Where pages find WebTransport (`/api/info`), when QUIC runs.
    pub(crate) webtransport: Option<WebTransportInfo>,
    /// `web.allowed_origins`, lowercased: a WebSocket upgrade whose `Origin`
    /// is not listed gets 403 (empty: any origin).
    pub(crate) allowed_origins: Vec<String>,
    /// The admin API (`admin.token` set), else `/admin/` is 404.
    pub(crate) admin: Option<super::admin::AdminCtx>,
}

/// Whether a browser page from `origin` may open a session: any origin when
/// `allowed` (lowercased) is empty; else a request without `Origin` (not a
/// browser: the header protects against other sites' pages, a non-browser
/// client could send any value) or with a listed one (compared without case).
pub(crate) fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        _ if allowed.is_empty() => true,
        None => true,
        Some(o) => allowed.iter().any(|a| a.eq_ignore_ascii_case(o.trim())),
    }
}

/// What `/api/info` says about WebTransport.
#[derive(Debug, Clone)]
pub(crate) struct WebTransportInfo {
    /// The configured public URL (`web.webtransport_url`), used as is.
    pub(crate) url: Option<String>,
    /// The QUIC listener's address; a wildcard IP means "the page's host".
    pub(crate) addr: SocketAddr,
    /// SHA-256 (hex) of a generated development certificate, for
    /// `serverCertificateHashes`; `None` for a configured certificate.
    pub(crate) cert_hash: Option<String>,
}

impl WebTransportInfo {
    /// The session URL for a page loaded from `host` (the request's `Host`).
    fn url_for(&self, host: Option<&str>) -> String {
        if let Some(u) = &self.url {
            return u.clone();
        }
        let ip = self.addr.ip();
        let name = match host.map(host_name).filter(|h| !h.is_empty()) {
            Some(h) if ip.is_unspecified() => h.to_owned(),
            _ if ip.is_ipv6() => format!("[{ip}]"),
            _ => ip.to_string(),
        };
        format!("https://{name}:{}{}", self.addr.port(), super::quic::WT_PATH)
    }
}

/// The host part of a `Host` header value (`name`, `name:port`, `[v6]:port`),
/// or `""` when it contains anything a URL host may not.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`: hex digits, colons and dots inside the brackets.
        let Some(end) = rest.find(']') else { return "" };
        let ok = rest[..end].bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        return if ok && end > 0 { &host[..end + 2] } else { "" };
    }
    let name = host.split_once(':').map_or(host, |(n, _)| n);
    let ok = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok { name } else { "" }
}

/// A parsed request head.
#[derive(Debug)]
struct Head {
    method: String,
    path: String,
    query: String,
    upgrade_ws: bool,
    ws_key: Option<String>,
    ws_version: Option<String>,
    host: Option<String>,
    origin: Option<String>,
    authorization: Option<String>,
}

/// The outcome of a request head.
#[derive(Debug)]
pub(crate) enum Route {
    /// Need more bytes.
    Incomplete,
    /// Switch to WebSocket: write `response` (101), then frames. `echo`: the echo endpoint.
    Upgrade { response: Bytes, echo: bool },
    /// Write this response and close.
    Respond(Bytes),
}

fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, u16> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(431),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    if used > MAX_HEAD {
        return Err(431);
    }
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut head = Head {
        method: req.method.unwrap_or("").to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        upgrade_ws: false,
        ws_key: None,
        ws_version: None,
        host: None,
        origin: None,
        authorization: None,
    };
    let mut conn_upgrade = false;
    let mut upgrade = false;
    for h in req.headers.iter() {
        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") && v != "0"
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            return Err(400);
        } else if name.eq_ignore_ascii_case("connection") {
            conn_upgrade |= v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= v.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            head.ws_key = Some(v.to_owned());
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            head.ws_version = Some(v.to_owned());
        } else if name.eq_ignore_ascii_case("host") {
            head.host = Some(v.to_owned());
        } else if name.eq_ignore_ascii_case("origin") {
            head.origin = Some(v.to_owned());
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(v.to_owned());
        }
    }
    head.upgrade_ws = conn_upgrade && upgrade;
    Ok(Some((head, used)))
}

pub(super) fn response(status: u16, ctype: &str, extra: &str, body: &[u8], head_only: bool) -> Bytes {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Error",
    };
    let mut b = BytesMut::with_capacity(256 + body.len());
    b.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
             Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        )
        .as_bytes(),
    );
    if !head_only {
        b.extend_from_slice(body);
    }
    b.freeze()
}

/// A plain error response (used for a malformed head too).
pub(crate) fn error_response(status: u16) -> Bytes {
    response(status, "text/plain; charset=utf-8", "", format!("{status}\n").as_bytes(), false)
}

fn json_escape(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

pub(super) fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

impl WebCtx {
    /// Routes the request head at the front of `buf`; on `Upgrade`/`Respond`
    /// the head's bytes have been consumed. `Err(status)`: refuse and close.
    pub(crate) fn route(&self, buf: &mut BytesMut, now_ms: u64) -> Route {
        let now_secs = now_ms / 1000;
        let (head, used) = match parse(buf) {
            Ok(None) => return Route::Incomplete,
            Ok(Some(h)) => h,
            Err(status) => return Route::Respond(error_response(status)),
        };
        let _ = buf.split_to(used);
        if head.path.starts_with("/admin/") {
            return Route::Respond(match &self.admin {
                Some(admin) => admin.handle(
                    &head.method,
                    &head.path,
                    &head.query,
                    head.authorization.as_deref(),
                    now_secs.saturating_mul(1000),
                ),
                None => response(404, "text/plain", "", b"404\n", false),
            });
        }
        let get = head.method == "GET";
        if !get && head.method != "HEAD" {
            return Route::Respond(response(405, "text/plain", "Allow: GET, HEAD\r\n", b"405\n", false));
        }
        let ws_path = head.path == "/ws" || (self.ws_echo && head.path == "/echo");
        if ws_path && get {
            if !head.upgrade_ws {
                return Route::Respond(response(
                    426,
                    "text/plain",
                    "Upgrade: websocket\r\n",
                    b"426\n",
                    false,
                ));
            }
            if head.ws_version.as_deref() != Some("13") {
                return Route::Respond(response(
                    426,
                    "text/plain",
                    "Sec-WebSocket-Version: 13\r\n",
                    b"426\n",
                    false,
                ));
            }
            let Some(key) = head.ws_key.as_deref().filter(|k| !k.is_empty()) else {
                return Route::Respond(error_response(400));
            };
            if !origin_allowed(&self.allowed_origins, head.origin.as_deref()) {
                tracing::debug!(origin = ?head.origin, "websocket: origin refused");
                return Route::Respond(error_response(403));
            }
            let accept = super::ws::accept_key(key);
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            return Route::Upgrade { response: Bytes::from(resp), echo: head.path == "/echo" };
        }
        let head_only = !get;
        match head.path.as_str() {
            "/api/info" => {
                let (wt, hash) = match &self.webtransport {
                    Some(info) => (
                        json_escape(&info.url_for(head.host.as_deref())),
                        info.cert_hash.as_deref().map_or_else(|| "null".to_owned(), json_escape),
                    ),
                    None => ("null".to_owned(), "null".to_owned()),
                };
                let body = format!(
                    "{{\"dev\":{},\"ws\":\"/ws\",\"webtransport\":{wt},\"certHash\":{hash}}}",
                    self.dev_mode
                );
                Route::Respond(response(200, "application/json", "", body.as_bytes(), head_only))
            }
            "/api/dev-token" if self.dev_mode => {
                let user = query_param(&head.query, "user").unwrap_or("");
                let device = query_param(&head.query, "device").filter(|d| !d.is_empty());
                let (Ok(user), Ok(device)) = (UserId::new(user), device.map(DeviceId::new).transpose())
                else {
                    return Route::Respond(error_response(400));
                };
                let claims = Claims {
                    user,
                    expires_at: now_secs + DEV_TOKEN_SECS,
                    // Issued now, to the millisecond: a token fetched right
                    // after RevokeTokens works ([A-5]).
                    issued_at_ms: now_ms,
                    role: Role::User,
                    device,
                    platform: None,
                };
                let tok = token::mint(self.secret.as_bytes(), &claims);
                let body = format!("{{\"token\":{},\"expiresAt\":{}}}", json_escape(&tok), claims.expires_at);
                Route::Respond(response(200, "application/json", "", body.as_bytes(), head_only))
            }
            path => match self.site.get(path) {
                Some((ctype, body)) => Route::Respond(response(200, ctype, "", body, head_only)),
                None => Route::Respond(response(404, "text/plain", "", b"404\n", head_only)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dev: bool) -> WebCtx {
        let mut site = Site::default();
        site.files
            .insert("/index.html".into(), ("text/html; charset=utf-8", Bytes::from_static(b"<p>hi</p>")));
        WebCtx { site, dev_mode: dev, secret: "0123456789abcdef".into(), ..WebCtx::default() }
    }

    fn route(c: &WebCtx, req: &str) -> Route {
        c.route(&mut BytesMut::from(req.as_bytes()), 1_000_000_123)
    }

    fn body(r: Route) -> String {
        match r {
            Route::Respond(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    #[test]
    fn upgrade_and_files() {
        let c = ctx(false);
        let up = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        match route(&c, up) {
            Route::Upgrade { response, echo } => {
                assert!(!echo);
                assert!(String::from_utf8_lossy(&response).contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
            }
            other => panic!("{other:?}"),
        }
        assert!(body(route(&c, "GET / HTTP/1.1\r\n\r\n")).ends_with("<p>hi</p>"));
        assert!(body(route(&c, "GET /../etc/passwd HTTP/1.1\r\n\r\n")).starts_with("HTTP/1.1 404"));
        assert!(body(route(&c, "GET /ws HTTP/1.1\r\n\r\n")).starts_with("HTTP/1.1 426"));
        assert!(body(route(&c, "GET /echo HTTP/1.1\r\n\r\n")).starts_with("HTTP/1.1 404"));
        assert!(body(route(&c, "POST / HTTP/1.1\r\n\r\n")).starts_with("HTTP/1.1 405"));
        assert!(matches!(route(&c, "GET / HTTP/1.1\r\nHost"), Route::Incomplete));
        let huge = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(body(route(&c, &huge)).starts_with("HTTP/1.1 431"));
    }

    #[test]
    fn dev_tokens_only_in_dev_mode() {
        let req = "GET /api/dev-token?user=alice HTTP/1.1\r\n\r\n";
        assert!(body(route(&ctx(false), req)).starts_with("HTTP/1.1 404"));
        let ok = body(route(&ctx(true), req));
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        let json = &ok[ok.find("\r\n\r\n").map_or(0, |i| i + 4)..];
        let v: serde_json::Value = serde_json::from_str(json).expect("json");
        let tok = v["token"].as_str().expect("token");
        let claims = token::verify(b"0123456789abcdef", tok, 1_000_000).expect("valid token");
        assert_eq!(claims.user.as_str(), "alice");
        assert_eq!(claims.issued_at_ms, 1_000_000_123, "issued now, to the millisecond ([A-5])");
        let bad = "GET /api/dev-token?user= HTTP/1.1\r\n\r\n";
        assert!(body(route(&ctx(true), bad)).starts_with("HTTP/1.1 400"));
        assert!(body(route(&ctx(true), "GET /api/info HTTP/1.1\r\n\r\n")).contains("\"dev\":true"));
    }

    fn info(c: &WebCtx, host: &str) -> serde_json::Value {
        let r = body(route(c, &format!("GET /api/info HTTP/1.1\r\nHost: {host}\r\n\r\n")));
        serde_json::from_str(&r[r.find("\r\n\r\n").map_or(0, |i| i + 4)..]).expect("json")
    }

    #[test]
    fn origin_allow_list() {
        let list = vec!["https://chat.example.com".to_owned()];
        assert!(origin_allowed(&[], Some("https://evil.example")), "empty list: any origin");
        assert!(origin_allowed(&list, Some("https://Chat.Example.com")));
        assert!(!origin_allowed(&list, Some("https://evil.example")));
        assert!(!origin_allowed(&list, Some("https://chat.example.com:8443")));
        assert!(origin_allowed(&list, None), "no Origin: not a browser");
        let mut c = ctx(false);
        c.allowed_origins = list;
        let up = |origin: &str| {
            format!(
                "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
            )
        };
        assert!(body_of(route(&c, &up("Origin: https://evil.example\r\n"))).starts_with("HTTP/1.1 403"));
        assert!(matches!(route(&c, &up("Origin: https://chat.example.com\r\n")), Route::Upgrade { .. }));
    }

    fn body_of(r: Route) -> String {
        match r {
            Route::Respond(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    #[test]
    fn info_reports_webtransport() {
        let mut c = ctx(true);
        assert_eq!(info(&c, "x")["webtransport"], serde_json::Value::Null);
        let wt = |ip: &str| WebTransportInfo {
            url: None,
            addr: format!("{ip}:4433").parse().expect("addr"),
            cert_hash: Some("ab12".into()),
        };
        c.webtransport = Some(wt("0.0.0.0"));
        let v = info(&c, "chat.example:8080");
        assert_eq!(v["webtransport"], "https://chat.example:4433/wt");
        assert_eq!(v["certHash"], "ab12");
        assert_eq!(info(&c, "[::1]:80")["webtransport"], "https://[::1]:4433/wt");
        // A host with characters a URL may not carry falls back to the bound IP.
        assert_eq!(info(&c, "a/b\"<x>")["webtransport"], "https://0.0.0.0:4433/wt");
        assert_eq!(info(&c, "[::1/x]:80")["webtransport"], "https://0.0.0.0:4433/wt");
        c.webtransport = Some(wt("127.0.0.1"));
        assert_eq!(info(&c, "localhost:80")["webtransport"], "https://127.0.0.1:4433/wt");
        c.webtransport = Some(WebTransportInfo {
            url: Some("https://h.example/wt".into()),
            cert_hash: None,
            ..wt("[::]")
        });
        let v = info(&c, "x");
        assert_eq!(v["webtransport"], "https://h.example/wt");
        assert_eq!(v["certHash"], serde_json::Value::Null);
    }
}
