//! The subcommands of `missivectl`.
//!
//! Role: each function runs one subcommand against the SDK and prints its
//! result (see `output` for the formats). One-shot commands send typed
//! requests (`Connection::call`) on a plain [`Connection`]; `tail` uses the
//! resilient [`Client`] so it survives reconnects and resumes from `--state`.
//!
//! Invariants: SDK errors are returned unchanged inside `anyhow::Error` so
//! `main` can map server codes to exit status 2; `tail --state` never records
//! a message as delivered that it did not print.

use std::collections::HashMap;
use std::io::Write;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use crossbeam_channel::RecvTimeoutError;
use missive_protocol::token::{self, Claims, Role};
use missive_protocol::{DeviceId, UserId};
use missive_sdk::tls::Trust;
use missive_sdk::{
    Client, ClientConfig, ClientEvent, ConnectOptions, Connection, Dial, LocalState, SdkError, direct_conv,
    pb, text_content,
};
use serde_json::json;

use crate::ConnArgs;
use crate::output;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub(crate) fn secs(v: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| anyhow!("{what} must be a non-negative number of seconds"))
}

fn options(c: &ConnArgs) -> anyhow::Result<ConnectOptions> {
    let addr = c.addr.as_deref().or(c.tls.as_deref()).unwrap_or("");
    let mut o = ConnectOptions::new(addr, &c.token, &c.device);
    o.platform =
        token::parse_platform(&c.platform).ok_or_else(|| anyhow!("unknown platform {:?}", c.platform))?;
    o.client_version = concat!("missivectl/", env!("CARGO_PKG_VERSION")).to_owned();
    let t = secs(c.request_timeout, "--request-timeout")?;
    o.request_timeout = t;
    o.connect_timeout = t;
    Ok(o)
}

/// The pinned certificate hash of `--cert-sha256`.
fn pin(c: &ConnArgs, flag: &str) -> anyhow::Result<Trust> {
    let hash = c.cert_sha256.clone().ok_or_else(|| anyhow!("{flag} needs --cert-sha256"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--cert-sha256 must be 64 hex digits");
    }
    Ok(Trust::Sha256(hash))
}

/// How to open connections: TCP to `--addr`, TLS to `--tls`, or raw QUIC to `--quic`.
fn dial(c: &ConnArgs) -> anyhow::Result<Dial> {
    if let Some(addr) = &c.tls {
        let trust = match &c.ca {
            Some(ca) => {
                let roots = missive_sdk::tls::roots_from_pem(ca)?;
                let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
                let server_name =
                    c.server_name.clone().unwrap_or_else(|| host.trim_matches(['[', ']']).to_owned());
                Trust::Roots { roots, server_name }
            }
            None => pin(c, "--tls").map_err(|e| anyhow!("{e} or --ca"))?,
        };
        return Ok(missive_sdk::tls::dialer(trust));
    }
    let Some(quic) = &c.quic else { return Ok(Dial::new(Connection::connect)) };
    let server = quic
        .to_socket_addrs()
        .map_err(|e| anyhow!("--quic {quic:?}: {e}"))?
        .next()
        .ok_or_else(|| anyhow!("--quic {quic:?} resolves to no address"))?;
    Ok(missive_sdk::quic::dialer(server, pin(c, "--quic")?))
}

pub(crate) fn connect(c: &ConnArgs) -> anyhow::Result<Connection> {
    Ok(dial(c)?.connect(&options(c)?)?)
}

fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

pub(crate) fn token(
    json: bool,
    secret: &str,
    user: &str,
    ttl: u64,
    role: &str,
    device: Option<&str>,
    platform: Option<&str>,
) -> anyhow::Result<()> {
    if secret.is_empty() {
        bail!("--secret must not be empty");
    }
    let now_ms = now_ms();
    let now = now_ms / 1000;
    let claims = Claims {
        user: UserId::new(user).with_context(|| format!("--user {user:?}"))?,
        expires_at: now.saturating_add(ttl),
        issued_at_ms: now_ms,
        role: if role == "admin" { Role::Admin } else { Role::User },
        device: device.map(|d| DeviceId::new(d).with_context(|| format!("--device {d:?}"))).transpose()?,
        platform: platform
            .map(|p| token::parse_platform(p).ok_or_else(|| anyhow!("unknown platform {p:?}")))
            .transpose()?,
    };
    let t = token::mint(secret.as_bytes(), &claims);
    if json {
        print_json(&json!({ "token": t, "user": user, "expires_at": claims.expires_at }));
    } else {
        println!("{t}");
    }
    Ok(())
}

pub(crate) fn ping(json: bool, c: &ConnArgs) -> anyhow::Result<()> {
    let conn = connect(c)?;
    let start = Instant::now();
    let pong = conn.ping()?;
    let rtt_us = start.elapsed().as_micros() as u64;
    let hello = conn.hello_ok();
    if json {
        print_json(&json!({
            "server_time_ms": pong.server_time_ms,
            "rtt_us": rtt_us,
            "user": hello.user_id,
            "session_id": hello.session_id,
        }));
    } else {
        println!(
            "server time {} ({}ms), rtt {}µs, user {}, session {}",
            output::rfc3339_ms(pong.server_time_ms),
            pong.server_time_ms,
            rtt_us,
            hello.user_id,
            hello.session_id
        );
    }
    conn.close();
    Ok(())
}

/// Send flags of `missivectl send` (spec 18.8).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct FlagArgs {
    /// Not stored: delivered to online devices only (the ack has seq 0).
    #[arg(long)]
    pub(crate) online_only: bool,
    /// Not kept for roaming or history once read.
    #[arg(long)]
    pub(crate) no_history: bool,
    /// Not counted as unread.
    #[arg(long)]
    pub(crate) no_unread: bool,
    /// No offline push notification.
    #[arg(long)]
    pub(crate) no_push: bool,
}

impl FlagArgs {
    fn to_pb(&self) -> Option<pb::MessageFlags> {
        let f = pb::MessageFlags {
            online_only: self.online_only,
            no_history: self.no_history,
            no_unread: self.no_unread,
            no_push: self.no_push,
        };
        (f != pb::MessageFlags::default()).then_some(f)
    }
}

pub(crate) fn send(json: bool, c: &ConnArgs, to: &str, text: &str, flags: &FlagArgs) -> anyhow::Result<()> {
    let opts = options(c)?;
    let dial = dial(c)?;
    let client_msg_id = missive_sdk::new_client_msg_id();
    // Resend the same client_msg_id on transient failures: stored exactly once.
    let mut attempt = 0u32;
    let ack = loop {
        let res = dial.connect(&opts).and_then(|conn| {
            conn.call(pb::SendMessage {
                conv_id: direct_conv(conn.user_id(), to),
                client_msg_id: client_msg_id.clone(),
                content: Some(text_content(text)),
                flags: flags.to_pb(),
                // [S-7]: the id is ours and new; resends clear the promise.
                first_attempt: attempt == 0,
            })
        });
        match res {
            Ok(ack) => break ack,
            Err(e) if e.is_retryable() && attempt < 4 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if json {
        print_json(&json!({
            "conv": ack.conv_id,
            "seq": ack.seq,
            "server_msg_id": ack.server_msg_id,
            "server_time_ms": ack.server_time_ms,
            "duplicate": ack.duplicate,
        }));
    } else {
        println!(
            "sent to {} seq {} server_msg_id {} at {}{}",
            ack.conv_id,
            ack.seq,
            ack.server_msg_id,
            output::rfc3339_ms(ack.server_time_ms),
            if ack.duplicate { " (duplicate)" } else { "" }
        );
    }
    Ok(())
}

/// `missivectl forward FROM SEQS TO [--merged --title T]`.
pub(crate) fn forward(
    json: bool,
    c: &ConnArgs,
    from: &str,
    seqs: &str,
    to: &str,
    merged: bool,
    title: &str,
) -> anyhow::Result<()> {
    let seqs: Vec<u64> = seqs
        .split(',')
        .map(|s| s.trim().parse::<u64>().map_err(|_| anyhow::anyhow!("SEQS: \"{s}\" is not a seq")))
        .collect::<anyhow::Result<_>>()?;
    let opts = options(c)?;
    let dial = dial(c)?;
    let req = pb::ForwardMessages {
        from_conv_id: from.to_owned(),
        seqs,
        to_conv_id: to.to_owned(),
        merged,
        title: title.to_owned(),
        client_msg_id: missive_sdk::new_client_msg_id(),
    };
    // The same client_msg_id on every attempt: each copy is stored once ([FW-7]).
    let mut attempt = 0u32;
    let r = loop {
        match dial.connect(&opts).and_then(|conn| conn.call(req.clone())) {
            Ok(r) => break r,
            Err(e) if e.is_retryable() && attempt < 4 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if json {
        let acks: Vec<_> = r
            .acks
            .iter()
            .map(|a| json!({"conv": a.conv_id, "seq": a.seq, "server_msg_id": a.server_msg_id, "duplicate": a.duplicate}))
            .collect();
        print_json(&json!({ "acks": acks }));
    } else {
        for a in &r.acks {
            println!(
                "forwarded to {} seq {}{}",
                a.conv_id,
                a.seq,
                if a.duplicate { " (duplicate)" } else { "" }
            );
        }
    }
    Ok(())
}

fn load_state(path: &Path) -> anyhow::Result<LocalState> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(LocalState::default()),
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("parsing state file {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LocalState::default()),
        Err(e) => Err(e).with_context(|| format!("reading state file {}", path.display())),
    }
}

fn save_state(path: &Path, state: &LocalState) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(state)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

pub(crate) fn tail(
    json: bool,
    c: &ConnArgs,
    count: Option<u64>,
    timeout: Option<f64>,
    state_path: Option<&Path>,
) -> anyhow::Result<()> {
    let deadline = match timeout {
        Some(t) => Some(Instant::now() + secs(t, "--timeout")?),
        None => None,
    };
    let state = match state_path {
        Some(p) => load_state(p)?,
        None => LocalState::default(),
    };
    let config = ClientConfig { dial: Some(dial(c)?), ..ClientConfig::default() };
    let client = Client::connect_with(options(c)?, state, config)?;
    let events = client.events();
    let mut printed = 0u64;
    let mut failure: Option<SdkError> = None;
    let stdout = std::io::stdout();
    while count.is_none_or(|n| printed < n) {
        let ev = match deadline {
            Some(d) => match events.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match events.recv() {
                Ok(ev) => ev,
                Err(_) => break,
            },
        };
        match ev {
            ClientEvent::Message(m) => {
                let mut out = stdout.lock();
                if json {
                    writeln!(out, "{}", output::message_json(&m))?;
                } else {
                    writeln!(out, "{}", output::message_line(&m))?;
                }
                out.flush()?;
                printed += 1;
            }
            ClientEvent::Disconnected { code, message } if !json => {
                eprintln!("disconnected ({}): {message}; reconnecting", missive_sdk::code_name(code));
            }
            ClientEvent::Kicked { code, message } | ClientEvent::Closed { code, message } => {
                failure = Some(SdkError::Closed { code, message });
                break;
            }
            _ => {}
        }
    }
    if let Some(p) = state_path {
        // The client's state already covers messages it queued but we did not
        // print: move each such conversation back before its first unprinted
        // message and sync from the start, so the next tail prints them.
        let mut state = client.local_state();
        let mut unprinted: HashMap<String, u64> = HashMap::new();
        while let Ok(ev) = events.try_recv() {
            if let ClientEvent::Message(m) = ev {
                let e = unprinted.entry(m.conv_id.clone()).or_insert(m.seq);
                *e = (*e).min(m.seq);
            }
        }
        for (conv, first) in &unprinted {
            if let Some(l) = state.max_seq.get_mut(conv)
                && *l >= *first
            {
                *l = first - 1;
                state.sync_token.clear();
            }
        }
        save_state(p, &state)?;
    }
    client.close();
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

pub(crate) fn history(json: bool, c: &ConnArgs, with: &str, limit: u32) -> anyhow::Result<()> {
    const PAGE_MAX: u32 = 500;
    let conn = connect(c)?;
    let conv = direct_conv(conn.user_id(), with);
    let mut pages = Vec::new();
    let mut got = 0u32;
    let mut before = 0u64;
    while got < limit {
        let req = pb::HistoryRequest {
            conv_id: conv.clone(),
            before_seq: before,
            limit: (limit - got).min(PAGE_MAX),
        };
        let page = conn.call(req)?;
        let Some(first) = page.messages.first().map(|m| m.seq) else { break };
        got += page.messages.len() as u32;
        let more = page.more;
        pages.push(page.messages);
        if !more {
            break;
        }
        before = first;
    }
    for m in pages.iter().rev().flatten() {
        if json {
            print_json(&output::message_json(m));
        } else {
            println!("{}", output::message_line(m));
        }
    }
    conn.close();
    Ok(())
}

pub(crate) fn read(json: bool, c: &ConnArgs, with: &str, seq: u64) -> anyhow::Result<()> {
    let conn = connect(c)?;
    let conv = direct_conv(conn.user_id(), with);
    let state = conn.call(pb::MarkRead { conv_id: conv, seq })?;
    if json {
        print_json(&output::state_json(&state));
    } else {
        println!("{}", output::state_line(&state));
    }
    conn.close();
    Ok(())
}
