//! The `user`, `friend`, `black` and `presence` subcommand groups of
//! `missivectl` (spec sections 12 and 13).
//!
//! Role: parse the group's arguments, send one typed protocol request per
//! call ([`Connection::call`]) over a plain [`Connection`] (lists follow
//! `next_cursor` to the end), and print
//! each result item as one line (`--json`: one object per line, see `output`).
//! `presence subscribe --watch` keeps the connection and prints presence
//! pushes until `--count`, `--timeout` or the server closes.
//!
//! Invariants: server errors are returned as the SDK's [`SdkError`] so `main`
//! prints `error: NAME (code): message` and exits 2; admin-only requests are
//! sent as is (the server answers `PERMISSION_DENIED` for a user token).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use crossbeam_channel::RecvTimeoutError;
use missive_sdk::pb;
use missive_sdk::{Call, Connection, Event, SdkError};
use serde_json::json;

use crate::commands::{connect, secs};
use crate::{ConnArgs, output};

/// Items per page when a list is followed to its end.
const PAGE: u32 = 500;

/// Changes to a profile (`ProfilePatch`); unset flags leave a field unchanged.
#[derive(Debug, Clone, Args)]
pub(crate) struct ProfileArgs {
    /// Nickname.
    #[arg(long)]
    nickname: Option<String>,
    /// Avatar URL.
    #[arg(long)]
    avatar: Option<String>,
    /// Gender: unspecified, male, female, other.
    #[arg(long, value_parser = ["unspecified", "male", "female", "other"])]
    gender: Option<String>,
    /// Birthday, YYYY-MM-DD ("" clears it).
    #[arg(long)]
    birthday: Option<String>,
    /// Signature.
    #[arg(long)]
    signature: Option<String>,
    /// Custom field KEY=VALUE (repeatable; an empty VALUE removes the key).
    #[arg(long = "ex", value_name = "KEY=VALUE")]
    ex: Vec<String>,
    /// Who may add this user as a friend: need_approval, allow_anyone, deny_all.
    #[arg(long, value_parser = ["need_approval", "allow_anyone", "deny_all"])]
    verification: Option<String>,
}

/// `missivectl user …`: accounts (admin) and profiles.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCmd {
    /// Register an account with an optional first profile (admin token).
    Import {
        #[command(flatten)]
        conn: ConnArgs,
        /// The user id to register.
        user: String,
        #[command(flatten)]
        profile: ProfileArgs,
    },
    /// Whether accounts exist (and are disabled).
    Exists {
        #[command(flatten)]
        conn: ConnArgs,
        /// User ids (1 to 100).
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Disable an account: its sessions are kicked, logins refused (admin token).
    Disable {
        #[command(flatten)]
        conn: ConnArgs,
        /// The user id.
        user: String,
        /// Reason shown to the kicked devices.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Enable a disabled account again (admin token).
    Enable {
        #[command(flatten)]
        conn: ConnArgs,
        /// The user id.
        user: String,
    },
    /// Revoke every token of a user issued up to now (admin token).
    Revoke {
        #[command(flatten)]
        conn: ConnArgs,
        /// The user id.
        user: String,
    },
    /// Read or change profiles.
    Profile {
        #[command(subcommand)]
        cmd: ProfileCmd,
    },
    /// The authenticated user and their profile.
    Whoami {
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// `missivectl user profile …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCmd {
    /// Print the profiles of users (unregistered users are left out).
    Get {
        #[command(flatten)]
        conn: ConnArgs,
        /// User ids (1 to 100).
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Change the own profile; prints the new one.
    Set {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        profile: ProfileArgs,
    },
}

/// `missivectl friend …`.
#[derive(Debug, Subcommand)]
pub(crate) enum FriendCmd {
    /// Add a friend (or leave a request, depending on their setting).
    Add {
        #[command(flatten)]
        conn: ConnArgs,
        /// The user to add.
        user: String,
        /// Request message.
        #[arg(long, default_value = "")]
        message: String,
        /// Your alias for them.
        #[arg(long, default_value = "")]
        remark: String,
        /// Custom field KEY=VALUE (repeatable).
        #[arg(long = "ex", value_name = "KEY=VALUE")]
        ex: Vec<String>,
    },
    /// Accept the pending request from a user.
    Accept {
        #[command(flatten)]
        conn: ConnArgs,
        /// The requesting user.
        user: String,
        /// Your alias for them.
        #[arg(long, default_value = "")]
        remark: String,
        /// Custom field KEY=VALUE (repeatable).
        #[arg(long = "ex", value_name = "KEY=VALUE")]
        ex: Vec<String>,
    },
    /// Reject the pending request from a user.
    Reject {
        #[command(flatten)]
        conn: ConnArgs,
        /// The requesting user.
        user: String,
    },
    /// Remove a friend from your list (and you from theirs with --both).
    Delete {
        #[command(flatten)]
        conn: ConnArgs,
        /// The friend.
        user: String,
        /// Also remove yourself from their list.
        #[arg(long)]
        both: bool,
    },
    /// List every friend, in user-id order.
    List {
        #[command(flatten)]
        conn: ConnArgs,
        /// Include each friend's profile.
        #[arg(long)]
        profiles: bool,
    },
    /// List every received (or, with --outgoing, sent) friend request.
    Requests {
        #[command(flatten)]
        conn: ConnArgs,
        /// Sent requests instead of received ones.
        #[arg(long)]
        outgoing: bool,
    },
    /// Your relation with users (friendship both ways, block, requests).
    Check {
        #[command(flatten)]
        conn: ConnArgs,
        /// User ids (1 to 100).
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Friends whose id, nickname or remark contains QUERY (case-insensitive).
    Search {
        #[command(flatten)]
        conn: ConnArgs,
        /// The text to look for.
        query: String,
        /// At most this many (0 = server default).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Change your alias and custom fields for a friend.
    Remark {
        #[command(flatten)]
        conn: ConnArgs,
        /// The friend.
        user: String,
        /// New alias ("" clears it; unchanged if absent).
        #[arg(long)]
        remark: Option<String>,
        /// Custom field KEY=VALUE (repeatable; an empty VALUE removes the key).
        #[arg(long = "ex", value_name = "KEY=VALUE")]
        ex: Vec<String>,
    },
    /// Make two users friends both ways (admin token).
    Import {
        #[command(flatten)]
        conn: ConnArgs,
        /// One user.
        user_a: String,
        /// The other user.
        user_b: String,
    },
}

/// `missivectl black …`.
#[derive(Debug, Subcommand)]
pub(crate) enum BlackCmd {
    /// Blacklist a user: their messages and friend requests are refused.
    Add {
        #[command(flatten)]
        conn: ConnArgs,
        /// The user to block.
        user: String,
    },
    /// Remove a user from the blacklist.
    Remove {
        #[command(flatten)]
        conn: ConnArgs,
        /// The user to unblock.
        user: String,
    },
    /// List the blacklist, in user-id order.
    List {
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// `missivectl presence …`.
#[derive(Debug, Subcommand)]
pub(crate) enum PresenceCmd {
    /// Online state and platforms of users.
    Get {
        #[command(flatten)]
        conn: ConnArgs,
        /// User ids (1 to 100).
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Subscribe to users' presence; prints their state, then changes with --watch.
    Subscribe {
        #[command(flatten)]
        conn: ConnArgs,
        /// User ids (1 to 100).
        #[arg(required = true)]
        users: Vec<String>,
        /// Keep running and print presence changes as they are pushed.
        #[arg(long)]
        watch: bool,
        /// With --watch: exit after this many changes.
        #[arg(long)]
        count: Option<u64>,
        /// With --watch: exit after this many seconds (status 0).
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Stop presence pushes for users.
    Unsubscribe {
        #[command(flatten)]
        conn: ConnArgs,
        /// User ids (1 to 100).
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// The presence of every user you subscribe to.
    List {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Set your custom status text ("" clears it).
    Status {
        #[command(flatten)]
        conn: ConnArgs,
        /// The status text.
        text: String,
    },
}

// ---------------------------------------------------------------- helpers

/// Parses repeated `KEY=VALUE` arguments.
fn ex_pairs(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("--ex {kv:?}: expected KEY=VALUE"))
        })
        .collect()
}

fn patch(p: &ProfileArgs) -> anyhow::Result<pb::ProfilePatch> {
    let gender = p.gender.as_deref().map(|g| match g {
        "male" => pb::Gender::Male,
        "female" => pb::Gender::Female,
        "other" => pb::Gender::Other,
        _ => pb::Gender::Unspecified,
    });
    let verification = p.verification.as_deref().map(|v| match v {
        "allow_anyone" => pb::FriendVerification::AllowAnyone,
        "deny_all" => pb::FriendVerification::DenyAll,
        _ => pb::FriendVerification::NeedApproval,
    });
    Ok(pb::ProfilePatch {
        nickname: p.nickname.clone(),
        avatar_url: p.avatar.clone(),
        gender: gender.map(|g| g as i32),
        birthday: p.birthday.clone(),
        signature: p.signature.clone(),
        ex: ex_pairs(&p.ex)?,
        friend_verification: verification.map(|v| v as i32),
    })
}

fn emit(json: bool, v: serde_json::Value, line: String) {
    if json {
        println!("{v}");
    } else {
        println!("{line}");
    }
}

fn emit_profile(json: bool, p: &pb::Profile) {
    emit(json, output::profile_json(p), output::profile_line(p));
}

fn emit_relation(json: bool, r: &pb::Relation) {
    emit(json, output::relation_json(r), output::relation_line(r));
}

fn emit_presence(json: bool, p: &pb::Presence) {
    emit(json, output::presence_json(p), output::presence_line(p));
}

fn emit_done(json: bool, v: serde_json::Value, line: String) -> anyhow::Result<()> {
    emit(json, v, line);
    Ok(())
}

/// Connects, runs `f` on the connection, and closes it.
fn with_conn<T>(c: &ConnArgs, f: impl FnOnce(&Connection) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let conn = connect(c)?;
    let out = f(&conn);
    conn.close();
    out
}

/// One request answered with a relation, on its own connection: prints the relation.
fn relation_request(json: bool, c: &ConnArgs, req: impl Call<Reply = pb::Relation>) -> anyhow::Result<()> {
    with_conn(c, |conn| {
        emit_relation(json, &conn.call(req)?);
        Ok(())
    })
}

// ---------------------------------------------------------------- user

pub(crate) fn user(json: bool, cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Import { conn: c, user, profile } => with_conn(&c, |conn| {
            let p = conn.call(pb::ImportUser { user_id: user, profile: Some(patch(&profile)?) })?;
            emit_profile(json, &p);
            Ok(())
        }),
        UserCmd::Exists { conn: c, users } => with_conn(&c, |conn| {
            let res = conn.call(pb::AccountsExist { user_ids: users })?;
            for a in &res.accounts {
                emit(
                    json,
                    json!({ "user": a.user_id, "exists": a.exists, "disabled": a.disabled }),
                    format!(
                        "{}: {}",
                        a.user_id,
                        match (a.exists, a.disabled) {
                            (false, _) => "not registered",
                            (true, true) => "disabled",
                            (true, false) => "registered",
                        }
                    ),
                );
            }
            Ok(())
        }),
        UserCmd::Disable { conn: c, user, reason } => set_disabled(json, &c, user, true, reason),
        UserCmd::Enable { conn: c, user } => set_disabled(json, &c, user, false, String::new()),
        UserCmd::Revoke { conn: c, user } => with_conn(&c, |conn| {
            conn.call(pb::RevokeTokens { user_id: user.clone() })?;
            emit_done(
                json,
                json!({ "user": user, "revoked": true }),
                format!("revoked every token of {user} issued up to now"),
            )
        }),
        UserCmd::Profile { cmd: ProfileCmd::Get { conn: c, users } } => with_conn(&c, |conn| {
            let res = conn.call(pb::GetProfiles { user_ids: users })?;
            res.profiles.iter().for_each(|p| emit_profile(json, p));
            Ok(())
        }),
        UserCmd::Profile { cmd: ProfileCmd::Set { conn: c, profile } } => with_conn(&c, |conn| {
            let p = conn.call(pb::SetProfile { patch: Some(patch(&profile)?) })?;
            emit_profile(json, &p);
            Ok(())
        }),
        UserCmd::Whoami { conn: c } => with_conn(&c, |conn| {
            let me = conn.user_id().to_owned();
            let res = conn.call(pb::GetProfiles { user_ids: vec![me.clone()] })?;
            let profile = res.profiles.into_iter().find(|p| p.user_id == me).unwrap_or_default();
            let session = conn.hello_ok().session_id.clone();
            emit_done(
                json,
                json!({ "user": me, "session_id": session, "profile": output::profile_json(&profile) }),
                format!("{me} (session {session}): {}", output::profile_line(&profile)),
            )
        }),
    }
}

fn set_disabled(
    json: bool,
    c: &ConnArgs,
    user: String,
    disabled: bool,
    reason: String,
) -> anyhow::Result<()> {
    with_conn(c, |conn| {
        let req = pb::SetAccountDisabled { user_id: user.clone(), disabled, reason };
        conn.call(req)?;
        emit_done(
            json,
            json!({ "user": user, "disabled": disabled }),
            format!("{user} {}", if disabled { "disabled" } else { "enabled" }),
        )
    })
}

// ---------------------------------------------------------------- friend

pub(crate) fn friend(json: bool, cmd: FriendCmd) -> anyhow::Result<()> {
    match cmd {
        FriendCmd::Add { conn: c, user, message, remark, ex } => with_conn(&c, |conn| {
            let res = conn.call(pb::AddFriend { user_id: user, message, remark, ex: ex_pairs(&ex)? })?;
            let status = output::add_status_name(res.status);
            let rel = res.relation.unwrap_or_default();
            emit_done(
                json,
                json!({ "status": status, "relation": output::relation_json(&rel) }),
                format!("{status}: {}", output::relation_line(&rel)),
            )
        }),
        FriendCmd::Accept { conn: c, user, remark, ex } => {
            let req = pb::RespondFriendRequest { user_id: user, accept: true, remark, ex: ex_pairs(&ex)? };
            relation_request(json, &c, req)
        }
        FriendCmd::Reject { conn: c, user } => {
            let req = pb::RespondFriendRequest { user_id: user, accept: false, ..Default::default() };
            relation_request(json, &c, req)
        }
        FriendCmd::Delete { conn: c, user, both } => {
            relation_request(json, &c, pb::DeleteFriend { user_id: user, both_sides: both })
        }
        FriendCmd::Remark { conn: c, user, remark, ex } => {
            let req = pb::UpdateFriend { user_id: user, remark, ex: ex_pairs(&ex)? };
            relation_request(json, &c, req)
        }
        FriendCmd::List { conn: c, profiles } => with_conn(&c, |conn| {
            let mut cursor = String::new();
            loop {
                let req = pb::ListFriends { cursor: cursor.clone(), limit: PAGE, with_profiles: profiles };
                let page = conn.call(req)?;
                print_friends(json, &page, profiles);
                if page.next_cursor.is_empty() || page.friends.is_empty() {
                    break;
                }
                cursor = page.next_cursor;
            }
            Ok(())
        }),
        FriendCmd::Search { conn: c, query, limit } => with_conn(&c, |conn| {
            let page = conn.call(pb::SearchFriends { query, limit })?;
            print_friends(json, &page, true);
            Ok(())
        }),
        FriendCmd::Requests { conn: c, outgoing } => with_conn(&c, |conn| {
            let mut cursor = String::new();
            loop {
                let req = pb::ListFriendRequests { outgoing, cursor: cursor.clone(), limit: PAGE };
                let page = conn.call(req)?;
                for r in &page.requests {
                    emit(json, output::request_json(r), output::request_line(r));
                }
                if page.next_cursor.is_empty() || page.requests.is_empty() {
                    break;
                }
                cursor = page.next_cursor;
            }
            Ok(())
        }),
        FriendCmd::Check { conn: c, users } => with_conn(&c, |conn| {
            let res = conn.call(pb::CheckRelations { user_ids: users })?;
            res.relations.iter().for_each(|r| emit_relation(json, r));
            Ok(())
        }),
        FriendCmd::Import { conn: c, user_a, user_b } => with_conn(&c, |conn| {
            let req = pb::ImportFriendship { user_a: user_a.clone(), user_b: user_b.clone() };
            conn.call(req)?;
            emit_done(
                json,
                json!({ "user_a": user_a, "user_b": user_b, "friends": true }),
                format!("{user_a} and {user_b} are friends both ways"),
            )
        }),
    }
}

/// One line per friend; with `profiles`, each carries the friend's profile.
fn print_friends(json: bool, page: &pb::FriendList, profiles: bool) {
    for r in &page.friends {
        let profile = page.profiles.iter().find(|p| p.user_id == r.user_id);
        let mut v = output::relation_json(r);
        let mut line = output::relation_line(r);
        if profiles {
            v["profile"] = profile.map_or(serde_json::Value::Null, output::profile_json);
            if let Some(p) = profile {
                line.push_str(&format!(" — {}", output::profile_line(p)));
            }
        }
        emit(json, v, line);
    }
}

// ---------------------------------------------------------------- black

pub(crate) fn black(json: bool, cmd: BlackCmd) -> anyhow::Result<()> {
    match cmd {
        BlackCmd::Add { conn: c, user } => relation_request(json, &c, pb::AddToBlacklist { user_id: user }),
        BlackCmd::Remove { conn: c, user } => {
            relation_request(json, &c, pb::RemoveFromBlacklist { user_id: user })
        }
        BlackCmd::List { conn: c } => with_conn(&c, |conn| {
            let mut cursor = String::new();
            loop {
                let page = conn.call(pb::ListBlacklist { cursor: cursor.clone(), limit: PAGE })?;
                for u in &page.users {
                    emit(
                        json,
                        json!({ "user": u.user_id, "since_ms": u.since_ms }),
                        format!("{} (since {})", u.user_id, output::rfc3339_ms(u.since_ms)),
                    );
                }
                if page.next_cursor.is_empty() || page.users.is_empty() {
                    break;
                }
                cursor = page.next_cursor;
            }
            Ok(())
        }),
    }
}

// ---------------------------------------------------------------- presence

pub(crate) fn presence(json: bool, cmd: PresenceCmd) -> anyhow::Result<()> {
    match cmd {
        PresenceCmd::Get { conn: c, users } => with_conn(&c, |conn| {
            let res = conn.call(pb::GetPresence { user_ids: users })?;
            res.presences.iter().for_each(|p| emit_presence(json, p));
            Ok(())
        }),
        PresenceCmd::List { conn: c } => with_conn(&c, |conn| {
            let res = conn.call(pb::ListPresenceSubscriptions {})?;
            res.presences.iter().for_each(|p| emit_presence(json, p));
            Ok(())
        }),
        PresenceCmd::Unsubscribe { conn: c, users } => with_conn(&c, |conn| {
            conn.call(pb::UnsubscribePresence { user_ids: users.clone() })?;
            emit_done(
                json,
                json!({ "unsubscribed": users }),
                format!("unsubscribed from {}", users.join(", ")),
            )
        }),
        PresenceCmd::Status { conn: c, text } => with_conn(&c, |conn| {
            conn.call(pb::SetPresenceStatus { text: text.clone() })?;
            let line = if text.is_empty() { "status cleared".to_owned() } else { format!("status: {text}") };
            emit_done(json, json!({ "status_text": text }), line)
        }),
        PresenceCmd::Subscribe { conn: c, users, watch, count, timeout } => {
            if !watch && (count.is_some() || timeout.is_some()) {
                bail!("--count and --timeout go with --watch");
            }
            let deadline = timeout.map(|t| secs(t, "--timeout")).transpose()?.map(|d| Instant::now() + d);
            with_conn(&c, |conn| {
                let res = conn.call(pb::SubscribePresence { user_ids: users })?;
                res.presences.iter().for_each(|p| emit_presence(json, p));
                if watch {
                    watch_presence(json, conn, count, deadline)?;
                }
                Ok(())
            })
        }
    }
}

/// Prints presence pushes until `count` of them, the deadline, or the end of
/// the connection (an error unless the server closed without a code).
fn watch_presence(
    json: bool,
    conn: &Connection,
    count: Option<u64>,
    deadline: Option<Instant>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        let ev = match deadline {
            Some(d) => match conn.events().recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
            },
            None => match conn.events().recv() {
                Ok(ev) => ev,
                Err(_) => return Ok(()),
            },
        };
        match ev {
            Event::Presence(p) => {
                emit_presence(json, &p);
                std::io::stdout().flush()?;
                printed += 1;
            }
            Event::Closed { code, message } => return Err(SdkError::Closed { code, message }.into()),
            _ => {}
        }
    }
    Ok(())
}
