//! `missivectl group ...`: group management and group messages (spec section 14).
//!
//! Role: one subcommand per group request; each opens one connection, sends
//! one request (member lists and joined groups page until complete), prints
//! the result (one line, or one JSON object with `--json`) and closes.
//! Invariant: errors from the server exit non-zero with their code name.

use clap::Subcommand;
use missive_sdk::pb::{self, request::Op, response};
use serde_json::json;

use crate::ConnArgs;
use crate::commands::connect;

/// Page size for listings.
const PAGE: u32 = 500;

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCmd {
    /// Create a group owned by the caller.
    Create {
        #[command(flatten)]
        conn: ConnArgs,
        /// Group id ("" = server-chosen).
        id: String,
        /// work or public.
        #[arg(long, default_value = "work")]
        r#type: String,
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
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Join (or apply to) a group.
    Join {
        #[command(flatten)]
        conn: ConnArgs,
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Approve (or with --reject, reject) a join application.
    Approve {
        #[command(flatten)]
        conn: ConnArgs,
        id: String,
        user: String,
        #[arg(long)]
        reject: bool,
    },
    /// Invite users.
    Invite {
        #[command(flatten)]
        conn: ConnArgs,
        id: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove members.
    Kick {
        #[command(flatten)]
        conn: ConnArgs,
        id: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Leave a group.
    Quit {
        #[command(flatten)]
        conn: ConnArgs,
        id: String,
    },
    /// Dismiss a group (owner).
    Dismiss {
        #[command(flatten)]
        conn: ConnArgs,
        id: String,
    },
    /// Transfer ownership (optionally leaving at once).
    Transfer {
        #[command(flatten)]
        conn: ConnArgs,
        id: String,
        to: String,
        #[arg(long)]
        quit: bool,
    },
    /// Make a member an admin (or with --unset, an ordinary member).
    Admin {
        #[command(flatten)]
        conn: ConnArgs,
        id: String,
        user: String,
        #[arg(long)]
        unset: bool,
    },
    /// Mute a member for SECS seconds (0 unmutes).
    Mute {
        #[command(flatten)]
        conn: ConnArgs,
        id: String,
        user: String,
        secs: u64,
    },
    /// Mute (or with --off, unmute) the whole group.
    MuteAll {
        #[command(flatten)]
        conn: ConnArgs,
        id: String,
        #[arg(long)]
        off: bool,
    },
    /// List members (all pages).
    Members {
        #[command(flatten)]
        conn: ConnArgs,
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
        id: String,
        text: String,
    },
}

fn group_type(s: &str) -> anyhow::Result<pb::GroupType> {
    match s {
        "work" => Ok(pb::GroupType::Work),
        "public" => Ok(pb::GroupType::Public),
        other => anyhow::bail!("--type: work or public, not {other:?}"),
    }
}

fn print(json: bool, what: &str, r: &response::Result) {
    let text = format!("{r:?}");
    if json {
        println!("{}", json!({ "request": what, "result": text }));
    } else {
        println!("{what}: {text}");
    }
}

fn one(json: bool, c: &ConnArgs, what: &str, op: Op) -> anyhow::Result<()> {
    let conn = connect(c)?;
    let r = conn.request(op);
    conn.close();
    print(json, what, &r?);
    Ok(())
}

fn member_line(json: bool, m: &pb::GroupMember) {
    let role = pb::GroupRole::try_from(m.role).map(|r| r.as_str_name()).unwrap_or("?");
    if json {
        println!(
            "{}",
            json!({ "user": m.user_id, "role": role, "nickname": m.nickname, "join_seq": m.join_seq })
        );
    } else {
        println!("{} {role} {}", m.user_id, m.nickname);
    }
}

pub(crate) fn group(json: bool, cmd: GroupCmd) -> anyhow::Result<()> {
    let ids = |v: Vec<String>| v;
    match cmd {
        GroupCmd::Create { conn, id, r#type, name, members } => {
            let op = Op::CreateGroup(pb::CreateGroup {
                group_id: id,
                r#type: group_type(&r#type)? as i32,
                info: Some(pb::GroupPatch { name, ..Default::default() }),
                member_ids: members,
                max_members: 0,
            });
            one(json, &conn, "CreateGroup", op)
        }
        GroupCmd::Info { conn, ids: g } => {
            one(json, &conn, "GetGroups", Op::GetGroups(pb::GetGroups { group_ids: g }))
        }
        GroupCmd::Join { conn, id, reason } => {
            one(json, &conn, "JoinGroup", Op::JoinGroup(pb::JoinGroup { group_id: id, reason }))
        }
        GroupCmd::Approve { conn, id, user, reject } => one(
            json,
            &conn,
            "RespondGroupApplication",
            Op::RespondGroupApplication(pb::RespondGroupApplication {
                group_id: id,
                user_id: user,
                accept: !reject,
            }),
        ),
        GroupCmd::Invite { conn, id, users } => one(
            json,
            &conn,
            "InviteToGroup",
            Op::InviteToGroup(pb::InviteToGroup { group_id: id, user_ids: ids(users) }),
        ),
        GroupCmd::Kick { conn, id, users } => one(
            json,
            &conn,
            "KickFromGroup",
            Op::KickFromGroup(pb::KickFromGroup { group_id: id, user_ids: users }),
        ),
        GroupCmd::Quit { conn, id } => {
            one(json, &conn, "QuitGroup", Op::QuitGroup(pb::QuitGroup { group_id: id }))
        }
        GroupCmd::Dismiss { conn, id } => {
            one(json, &conn, "DismissGroup", Op::DismissGroup(pb::DismissGroup { group_id: id }))
        }
        GroupCmd::Transfer { conn, id, to, quit } => one(
            json,
            &conn,
            "TransferGroup",
            Op::TransferGroup(pb::TransferGroup { group_id: id, new_owner: to, quit }),
        ),
        GroupCmd::Admin { conn, id, user, unset } => {
            let role = if unset { pb::GroupRole::Member } else { pb::GroupRole::Admin };
            let op = Op::SetGroupRole(pb::SetGroupRole { group_id: id, user_id: user, role: role as i32 });
            one(json, &conn, "SetGroupRole", op)
        }
        GroupCmd::Mute { conn, id, user, secs } => one(
            json,
            &conn,
            "MuteGroupMember",
            Op::MuteGroupMember(pb::MuteGroupMember { group_id: id, user_id: user, duration_secs: secs }),
        ),
        GroupCmd::MuteAll { conn, id, off } => {
            one(json, &conn, "MuteGroupAll", Op::MuteGroupAll(pb::MuteGroupAll { group_id: id, muted: !off }))
        }
        GroupCmd::Members { conn: c, id } => {
            let conn = connect(&c)?;
            let mut cursor = String::new();
            let out = loop {
                let op =
                    Op::ListGroupMembers(pb::ListGroupMembers { group_id: id.clone(), cursor, limit: PAGE });
                let page = match conn.request(op) {
                    Ok(response::Result::GroupMembers(p)) => p,
                    Ok(other) => break Err(anyhow::anyhow!("ListGroupMembers: unexpected {other:?}")),
                    Err(e) => break Err(e.into()),
                };
                page.members.iter().for_each(|m| member_line(json, m));
                if page.next_cursor.is_empty() || page.members.is_empty() {
                    break Ok(());
                }
                cursor = page.next_cursor;
            };
            conn.close();
            out
        }
        GroupCmd::Joined { conn: c } => {
            let conn = connect(&c)?;
            let mut cursor = String::new();
            let out = loop {
                let op = Op::ListJoinedGroups(pb::ListJoinedGroups { cursor, limit: PAGE });
                let page = match conn.request(op) {
                    Ok(response::Result::JoinedGroups(p)) => p,
                    Ok(other) => break Err(anyhow::anyhow!("ListJoinedGroups: unexpected {other:?}")),
                    Err(e) => break Err(e.into()),
                };
                for g in &page.groups {
                    if json {
                        println!(
                            "{}",
                            json!({ "group": g.group_id, "name": g.name, "members": g.member_count, "total": page.total })
                        );
                    } else {
                        println!("{} {:?} ({} members)", g.group_id, g.name, g.member_count);
                    }
                }
                if page.next_cursor.is_empty() || page.groups.is_empty() {
                    break Ok(());
                }
                cursor = page.next_cursor;
            };
            conn.close();
            out
        }
        GroupCmd::Send { conn, id, text } => {
            let op = Op::Send(pb::SendMessage {
                conv_id: format!("g:{id}"),
                client_msg_id: format!("ctl-{:x}", rand_id()),
                content: Some(pb::Content {
                    body: Some(pb::content::Body::Text(pb::Text { text })),
                    ..Default::default()
                }),
            });
            one(json, &conn, "SendMessage", op)
        }
    }
}

/// A client_msg_id suffix from the clock (unique enough per invocation).
fn rand_id() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}
