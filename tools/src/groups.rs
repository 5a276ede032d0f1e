//! `missivectl group ...`: group management and group messages (spec section 14).
//!
//! Role: one subcommand per group request; each opens one connection, sends
//! one typed request (`Connection::call`; member lists and joined groups page
//! until complete), prints
//! the result and closes. Output as the other subcommands (see `output`):
//! human-readable lines, or with `--json` one object per line with stable
//! field names and enums as lowercase names (`work`, `invite_only`, `admin`).
//!
//! Invariant: server errors are returned as the SDK's `SdkError`, so `main`
//! prints `error: NAME (code): message` and exits 2.

use clap::Subcommand;
use missive_sdk::pb;
use missive_sdk::{Call, Invited};
use serde_json::{Value, json};

use crate::commands::connect;
use crate::{ConnArgs, output};

/// Page size for listings.
const PAGE: u32 = 500;

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCmd {
    /// Create a group owned by the caller.
    Create {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id ("" = the server picks one).
        id: String,
        /// Group type: work or public.
        #[arg(long, default_value = "work", value_parser = ["work", "public"])]
        r#type: String,
        /// Group name.
        #[arg(long)]
        name: Option<String>,
        /// Initial members (repeatable).
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Public info of groups.
    Info {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group ids (1 to 100).
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Join (or apply to) a group.
    Join {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
        /// Application reason (at most 256 bytes).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Approve (or with --reject, reject) a join application.
    Approve {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
        /// The applicant.
        user: String,
        /// Reject instead of approving.
        #[arg(long)]
        reject: bool,
    },
    /// Decline the caller's pending invitation to a group (accept one with `join`).
    Decline {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
    },
    /// Invite users.
    Invite {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
        /// User ids (1 to 100).
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove members.
    Kick {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
        /// User ids (1 to 100).
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Leave a group.
    Quit {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
    },
    /// Dismiss a group (owner).
    Dismiss {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
    },
    /// Transfer ownership (optionally leaving at once).
    Transfer {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
        /// The new owner (a member).
        to: String,
        /// Leave the group at the same time.
        #[arg(long)]
        quit: bool,
    },
    /// Make a member an admin (or with --unset, an ordinary member).
    Admin {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
        /// The member.
        user: String,
        /// Make them an ordinary member again.
        #[arg(long)]
        unset: bool,
    },
    /// Mute a member for SECS seconds (0 unmutes).
    Mute {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
        /// The member.
        user: String,
        /// Seconds (0 unmutes).
        secs: u64,
    },
    /// Mute (or with --off, unmute) the whole group.
    MuteAll {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
        /// Unmute instead.
        #[arg(long)]
        off: bool,
    },
    /// List members (all pages).
    Members {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
    },
    /// List the caller's groups (all pages) and their count.
    Joined {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Send a text to a group.
    Send {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id.
        id: String,
        /// Message text.
        text: String,
    },
}

fn group_type(s: &str) -> pb::GroupType {
    if s == "public" { pb::GroupType::Public } else { pb::GroupType::Work }
}

/// Prints one result: `v` with `--json`, else `line`.
fn emit(json: bool, v: Value, line: String) -> anyhow::Result<()> {
    if json {
        println!("{v}");
    } else {
        println!("{line}");
    }
    Ok(())
}

fn emit_group(json: bool, g: &pb::GroupInfo) -> anyhow::Result<()> {
    emit(json, output::group_json(g), output::group_line(g))
}

fn emit_member(json: bool, m: &pb::GroupMember) -> anyhow::Result<()> {
    emit(json, output::member_json(m), output::member_line(m))
}

/// Connects, sends one typed request, closes; server errors stay `SdkError`s.
fn call<C: Call>(c: &ConnArgs, req: C) -> anyhow::Result<C::Reply> {
    let conn = connect(c)?;
    let r = conn.call(req);
    conn.close();
    Ok(r?)
}

/// A request answered with `group`: prints the group.
fn group_reply(json: bool, c: &ConnArgs, req: impl Call<Reply = pb::GroupInfo>) -> anyhow::Result<()> {
    emit_group(json, &call(c, req)?)
}

/// A request answered with `group_member`: prints the member.
fn member_reply(json: bool, c: &ConnArgs, req: impl Call<Reply = pb::GroupMember>) -> anyhow::Result<()> {
    emit_member(json, &call(c, req)?)
}

/// A request answered with `ok`: prints `v` / `line`.
fn ok_reply(
    json: bool,
    c: &ConnArgs,
    req: impl Call<Reply = ()>,
    v: Value,
    line: String,
) -> anyhow::Result<()> {
    call(c, req)?;
    emit(json, v, line)
}

/// Follows a paged listing to its end on one connection: `req` builds the
/// request for a cursor, `page` handles one reply and returns the next cursor
/// ("" = done).
fn paged<C: Call>(
    c: &ConnArgs,
    req: impl Fn(String) -> C,
    mut page: impl FnMut(C::Reply) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let conn = connect(c)?;
    let mut cursor = String::new();
    let out = loop {
        match conn.call(req(cursor)).map_err(anyhow::Error::from).and_then(&mut page) {
            Ok(next) if next.is_empty() => break Ok(()),
            Ok(next) => cursor = next,
            Err(e) => break Err(e),
        }
    };
    conn.close();
    out
}

pub(crate) fn group(json: bool, cmd: GroupCmd) -> anyhow::Result<()> {
    match cmd {
        GroupCmd::Create { conn, id, r#type, name, members } => {
            let req = pb::CreateGroup {
                group_id: id,
                r#type: group_type(&r#type) as i32,
                info: Some(pb::GroupPatch { name, ..Default::default() }),
                member_ids: members,
                max_members: 0,
            };
            group_reply(json, &conn, req)
        }
        GroupCmd::Info { conn, ids } => {
            let gs = call(&conn, pb::GetGroups { group_ids: ids })?;
            gs.groups.iter().try_for_each(|g| emit_group(json, g))
        }
        GroupCmd::Join { conn, id, reason } => {
            let j = call(&conn, pb::JoinGroup { group_id: id.clone(), reason })?;
            let status = output::join_status_name(j.status);
            let line = match &j.group {
                Some(g) => format!("{status}: {}", output::group_line(g)),
                None => format!("{status}: {id}"),
            };
            let info = j.group.as_ref().map_or(Value::Null, output::group_json);
            emit(json, json!({ "group": id, "status": status, "info": info }), line)
        }
        GroupCmd::Approve { conn, id, user, reject } => {
            let req =
                pb::RespondGroupApplication { group_id: id.clone(), user_id: user.clone(), accept: !reject };
            let verb = if reject { "rejected" } else { "approved" };
            let line = format!("{verb} the application of {user} to {id}");
            let v = json!({ "group": id, "user": user, "accepted": !reject });
            ok_reply(json, &conn, req, v, line)
        }
        GroupCmd::Decline { conn, id } => {
            // [GR-9a]: RespondGroupApplication naming the caller answers their invitation.
            let c = connect(&conn)?;
            let me = c.user_id().to_owned();
            let r = c.call(pb::RespondGroupApplication { group_id: id.clone(), user_id: me, accept: false });
            c.close();
            r?;
            emit(json, json!({ "group": id, "declined": true }), format!("declined the invitation to {id}"))
        }
        GroupCmd::Invite { conn, id, users } => {
            let req = pb::InviteToGroup { group_id: id.clone(), user_ids: users.clone() };
            // `ok`: they joined; `group`: invitations wait for their JoinGroup.
            let pending = matches!(call(&conn, req)?, Invited::Pending(_));
            let wait = if pending { " (waiting for their consent)" } else { "" };
            let line = format!("invited {} to {id}{wait}", users.join(", "));
            emit(json, json!({ "group": id, "invited": users, "pending": pending }), line)
        }
        GroupCmd::Kick { conn, id, users } => {
            let line = format!("removed {} from {id}", users.join(", "));
            let v = json!({ "group": id, "kicked": users });
            ok_reply(json, &conn, pb::KickFromGroup { group_id: id, user_ids: users }, v, line)
        }
        GroupCmd::Quit { conn, id } => {
            let (v, line) = (json!({ "group": id, "quit": true }), format!("left {id}"));
            ok_reply(json, &conn, pb::QuitGroup { group_id: id }, v, line)
        }
        GroupCmd::Dismiss { conn, id } => {
            let (v, line) = (json!({ "group": id, "dismissed": true }), format!("dismissed {id}"));
            ok_reply(json, &conn, pb::DismissGroup { group_id: id }, v, line)
        }
        GroupCmd::Transfer { conn, id, to, quit } => {
            group_reply(json, &conn, pb::TransferGroup { group_id: id, new_owner: to, quit })
        }
        GroupCmd::Admin { conn, id, user, unset } => {
            let role = if unset { pb::GroupRole::Member } else { pb::GroupRole::Admin };
            member_reply(json, &conn, pb::SetGroupRole { group_id: id, user_id: user, role: role as i32 })
        }
        GroupCmd::Mute { conn, id, user, secs } => {
            let req = pb::MuteGroupMember { group_id: id, user_id: user, duration_secs: secs };
            member_reply(json, &conn, req)
        }
        GroupCmd::MuteAll { conn, id, off } => {
            group_reply(json, &conn, pb::MuteGroupAll { group_id: id, muted: !off })
        }
        GroupCmd::Members { conn, id } => paged(
            &conn,
            |cursor| pb::ListGroupMembers { group_id: id.clone(), cursor, limit: PAGE },
            |p| {
                p.members.iter().try_for_each(|m| emit_member(json, m))?;
                Ok(if p.members.is_empty() { String::new() } else { p.next_cursor })
            },
        ),
        GroupCmd::Joined { conn } => {
            let mut total = 0;
            paged(
                &conn,
                |cursor| pb::ListJoinedGroups { cursor, limit: PAGE },
                |p| {
                    total = p.total;
                    for g in &p.groups {
                        let mut v = output::group_json(g);
                        v["total"] = json!(p.total);
                        emit(json, v, output::group_line(g))?;
                    }
                    Ok(if p.groups.is_empty() { String::new() } else { p.next_cursor })
                },
            )?;
            if !json {
                println!("{total} groups");
            }
            Ok(())
        }
        GroupCmd::Send { conn, id, text } => {
            let ack = call(
                &conn,
                pb::SendMessage {
                    conv_id: format!("g:{id}"),
                    client_msg_id: missive_sdk::new_client_msg_id(),
                    content: Some(missive_sdk::text_content(&text)),
                    flags: None,
                    // A new id, sent once ([S-7]).
                    first_attempt: true,
                },
            )?;
            emit(json, output::ack_json(&ack), output::ack_line(&ack))
        }
    }
}
