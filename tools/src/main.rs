//! `missivectl`: command-line tool for Missive operators and developers.
//!
//! Role: mint access tokens, and talk to a running server as one device
//! (ping, send, tail, history, read, typing, translate; recall, edit, delete, react; accounts and profiles with `user`,
//! friends with `friend`, the blacklist with `black`, presence with
//! `presence`) through the Rust SDK; ask a running broker for a backup
//! (`backup`, over its admin HTTP API).
//!
//! Invariants:
//! - `--json` (any position) switches stdout to one JSON object per line with
//!   stable field names; otherwise output is human-readable;
//! - errors go to stderr; errors reported by the server (a `Close` or an error
//!   `Response`) print `error: NAME (code): message` and exit with status 2,
//!   other failures exit with status 1 (usage errors: clap's status 2);
//! - the default device id is `missivectl`, the platform linux;
//! - every command that talks to a server does so over TCP (`--addr`), TLS
//!   (`--tls` with `--cert-sha256` or `--ca`) or raw QUIC (`--quic` with
//!   `--cert-sha256`), with the same behaviour.

mod admin;
mod api;
mod commands;
mod groups;
mod life;
mod output;
mod signals;
mod social;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use missive_sdk::{SdkError, code_name};

/// Missive command-line tool.
#[derive(Debug, Parser)]
#[command(name = "missivectl", version, about)]
struct Cli {
    /// Print JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// How to reach the server as one device.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnArgs {
    /// Server TCP address, HOST:PORT.
    #[arg(long, env = "MISSIVE_ADDR", required_unless_present_any = ["quic", "tls"])]
    pub(crate) addr: Option<String>,
    /// Connect over raw QUIC to this UDP address, HOST:PORT, instead of TCP.
    #[arg(long, env = "MISSIVE_QUIC", requires = "cert_sha256", conflicts_with_all = ["addr", "tls"])]
    pub(crate) quic: Option<String>,
    /// Connect over TLS (ALPN missive/1) to the broker's `tcp_tls` listener,
    /// HOST:PORT, instead of TCP; the certificate is checked with
    /// --cert-sha256 or --ca.
    #[arg(long, env = "MISSIVE_TLS", conflicts_with = "addr", requires = "trust")]
    pub(crate) tls: Option<String>,
    /// With --quic or --tls: the server certificate's SHA-256 (hex), as the broker prints it.
    #[arg(long, env = "MISSIVE_CERT_SHA256", conflicts_with = "ca", group = "trust")]
    pub(crate) cert_sha256: Option<String>,
    /// With --tls: CA certificates (PEM) to verify the server's certificate
    /// against, for the host name of --tls (or --server-name).
    #[arg(long, env = "MISSIVE_CA", requires = "tls", group = "trust")]
    pub(crate) ca: Option<PathBuf>,
    /// With --ca: the name the server's certificate must carry (default: the host of --tls).
    #[arg(long, requires = "ca")]
    pub(crate) server_name: Option<String>,
    /// Access token (see `missivectl token`).
    #[arg(long, env = "MISSIVE_TOKEN", hide_env_values = true)]
    pub(crate) token: String,
    /// Device id announced in the handshake.
    #[arg(long, default_value = "missivectl")]
    pub(crate) device: String,
    /// Platform announced in the handshake (ios, android, web, windows, mac, linux, ipad).
    #[arg(long, default_value = "linux")]
    pub(crate) platform: String,
    /// Request and connect timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) request_timeout: f64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint an access token (HS256 JWT) with the server's secret.
    Token {
        /// The server's token secret.
        #[arg(long, env = "MISSIVE_SECRET", hide_env_values = true)]
        secret: String,
        /// User id (the token's `sub`).
        #[arg(long)]
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
        /// Role: user or admin.
        #[arg(long, default_value = "user", value_parser = ["user", "admin"])]
        role: String,
        /// Restrict the token to this device id.
        #[arg(long)]
        device: Option<String>,
        /// Restrict the token to this platform.
        #[arg(long)]
        platform: Option<String>,
    },
    /// Handshake and ping: prints the server time and the round-trip time.
    Ping {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Send a text message to a user; prints the acknowledgement.
    Send {
        #[command(flatten)]
        conn: ConnArgs,
        /// Recipient user id.
        #[arg(long)]
        to: String,
        /// Message text.
        text: String,
        #[command(flatten)]
        flags: commands::FlagArgs,
    },
    /// Forward messages of one conversation into another (spec 18.9); prints the acks.
    Forward {
        #[command(flatten)]
        conn: ConnArgs,
        /// Source conversation id (p:a:b or g:group).
        from: String,
        /// Seqs to forward, comma separated (one by one: up to 100; merged: up to 10).
        seqs: String,
        /// Destination conversation id.
        to: String,
        /// One "chat history" bubble instead of one message per seq.
        #[arg(long)]
        merged: bool,
        /// The merged bubble's title.
        #[arg(long, default_value = "")]
        title: String,
    },
    /// Sync, print pending messages, then new ones as they arrive.
    Tail {
        #[command(flatten)]
        conn: ConnArgs,
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Exit after this many seconds (status 0).
        #[arg(long)]
        timeout: Option<f64>,
        /// Load and save the sync state (JSON) here, so the next tail resumes.
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Print the latest messages exchanged with a user, oldest first.
    History {
        #[command(flatten)]
        conn: ConnArgs,
        /// The other user.
        #[arg(long = "with")]
        with: String,
        /// Number of messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Mark the conversation with a user read up to a seq; prints the new state.
    Read {
        #[command(flatten)]
        conn: ConnArgs,
        /// The other user.
        #[arg(long = "with")]
        with: String,
        /// Read up to this seq (0 = the latest).
        #[arg(long, default_value_t = 0)]
        seq: u64,
    },
    /// Tell a conversation's other participants you are typing (or, with
    /// --stop, that you stopped); never stored.
    Typing {
        #[command(flatten)]
        conn: ConnArgs,
        /// Conversation id (`p:alice:bob`, `g:team`).
        conv: String,
        /// Stopped typing.
        #[arg(long)]
        stop: bool,
    },
    /// Translate a text message through the server's translation provider;
    /// prints the translated text.
    Translate {
        #[command(flatten)]
        conn: ConnArgs,
        /// Conversation id (`p:alice:bob`, `g:team`).
        conv: String,
        /// The message's seq.
        seq: u64,
        /// Target language tag, e.g. `en`, `zh-Hans`.
        language: String,
    },
    /// Recall a message (conversation id, e.g. p:alice:bob or g:team; its seq).
    Recall {
        #[command(flatten)]
        conn: ConnArgs,
        conv: String,
        seq: u64,
    },
    /// Replace the text of one's own text message (when the server allows editing).
    Edit {
        #[command(flatten)]
        conn: ConnArgs,
        conv: String,
        seq: u64,
        text: String,
    },
    /// Delete messages for oneself, or with --everyone (group owner / admin) for everyone.
    Delete {
        #[command(flatten)]
        conn: ConnArgs,
        conv: String,
        #[arg(required = true, num_args = 1..=100)]
        seqs: Vec<u64>,
        /// Delete for every participant.
        #[arg(long)]
        everyone: bool,
    },
    /// Add (or with --remove, remove) one's reaction KEY on a message; prints its reactions.
    React {
        #[command(flatten)]
        conn: ConnArgs,
        conv: String,
        seq: u64,
        key: String,
        /// Remove the reaction instead.
        #[arg(long)]
        remove: bool,
    },
    /// Accounts (import, exists, disable, enable, revoke: admin token) and profiles.
    User {
        #[command(subcommand)]
        cmd: social::UserCmd,
    },
    /// Friends: add, accept, reject, delete, list, requests, check, search, remark, import.
    Friend {
        #[command(subcommand)]
        cmd: social::FriendCmd,
    },
    /// Blacklist: add, remove, list.
    Black {
        #[command(subcommand)]
        cmd: social::BlackCmd,
    },
    /// Presence: get, subscribe (--watch), unsubscribe, list, status.
    Presence {
        #[command(subcommand)]
        cmd: social::PresenceCmd,
    },
    /// Ask a running broker for an online backup (a RocksDB checkpoint under its
    /// `storage.backup_dir`) through `POST /admin/v1/backup`; restore with `missive restore`.
    Backup {
        /// The broker's HTTP (`ws`) listener, HOST:PORT.
        #[arg(long, env = "MISSIVE_HTTP")]
        http: String,
        /// The broker's `admin.token`.
        #[arg(long, env = "MISSIVE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        /// Backup name (A-Z a-z 0-9 . _ -, at most 64 bytes); default `backup-<unix ms>`.
        #[arg(long)]
        name: Option<String>,
        /// Timeout in seconds.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// The admin REST API (`[api] listen`): `call METHOD PATH [--data JSON]` for any
    /// endpoint, and shortcuts (health, stats, audit, openapi).
    Admin {
        #[command(flatten)]
        api: api::ApiArgs,
        #[command(subcommand)]
        cmd: api::AdminCmd,
    },
    /// Groups: create, info, join, approve, decline, invite, kick, quit, dismiss, transfer, admin,
    /// mute, mute-all, members, joined, send.
    Group {
        #[command(subcommand)]
        cmd: groups::GroupCmd,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Token { secret, user, ttl, role, device, platform } => {
            commands::token(json, &secret, &user, ttl, &role, device.as_deref(), platform.as_deref())
        }
        Command::Ping { conn } => commands::ping(json, &conn),
        Command::Send { conn, to, text, flags } => commands::send(json, &conn, &to, &text, &flags),
        Command::Forward { conn, from, seqs, to, merged, title } => {
            commands::forward(json, &conn, &from, &seqs, &to, merged, &title)
        }
        Command::Tail { conn, count, timeout, state } => {
            commands::tail(json, &conn, count, timeout, state.as_deref())
        }
        Command::History { conn, with, limit } => commands::history(json, &conn, &with, limit),
        Command::Read { conn, with, seq } => commands::read(json, &conn, &with, seq),
        Command::Typing { conn, conv, stop } => signals::typing(json, &conn, &conv, stop),
        Command::Translate { conn, conv, seq, language } => {
            signals::translate(json, &conn, &conv, seq, &language)
        }
        Command::Recall { conn, conv, seq } => life::recall(json, &conn, conv, seq),
        Command::Edit { conn, conv, seq, text } => life::edit(json, &conn, conv, seq, text),
        Command::Delete { conn, conv, seqs, everyone } => life::delete(json, &conn, conv, seqs, everyone),
        Command::React { conn, conv, seq, key, remove } => life::react(json, &conn, conv, seq, key, remove),
        Command::User { cmd } => social::user(json, cmd),
        Command::Friend { cmd } => social::friend(json, cmd),
        Command::Black { cmd } => social::black(json, cmd),
        Command::Presence { cmd } => social::presence(json, cmd),
        Command::Group { cmd } => groups::group(json, cmd),
        Command::Admin { api, cmd } => api::admin(json, &api, cmd),
        Command::Backup { http, admin_token, name, timeout } => {
            admin::backup(json, &http, &admin_token, name.as_deref(), commands::secs(timeout, "--timeout")?)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<admin::AdminRefused>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => match e.downcast_ref::<SdkError>() {
            Some(SdkError::Closed { code, message } | SdkError::Server { code, message, .. })
                if *code != 0 =>
            {
                eprintln!("error: {}: {message}", code_name(*code));
                ExitCode::from(2)
            }
            _ => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
