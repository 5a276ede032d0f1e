//! The admin REST API's group endpoints (spec/openapi.yaml tag `groups`,
//! spec/PROTOCOL.md [GR-30]): the app server manages any group with the
//! owner's rights and adds members without consent; members see every
//! change over their sockets (tips, pushes, member lists).
//!
//! | file | what it covers |
//! |---|---|
//! | `manage` | auth on every endpoint; create, info, update, dismiss with bad input of every field |
//! | `members` | add (no consent, closed and approval groups), remove, roles, mute, mute-all, transfer |
//! | `lists` | paged members, a user's groups, every group |

mod lists;
mod manage;
mod members;

use missive_protocol::pb::{self, request::Op, response};
use missive_tests::api::Api;
use missive_tests::*;
use serde_json::{Value, json};

/// The broker's `api.system_user`: the operator named in admin tips.
pub(crate) const SYSTEM: &str = "system";

/// A broker and an admin REST client.
pub(crate) fn start() -> (BrokerProc, Api) {
    let b = BrokerProc::start();
    let api = Api::new(b.listening.api());
    (b, api)
}

/// Registers `users` without connecting them.
pub(crate) fn import(b: &BrokerProc, users: &[&str]) {
    let list: Vec<String> = users.iter().map(|u| (*u).to_owned()).collect();
    b.admin().import_users(&list);
}

/// Creates group `g` owned by `owner` with `members`; returns the group.
pub(crate) fn create(api: &Api, g: &str, owner: &str, members: &[&str], extra: Value) -> Value {
    let mut body = json!({ "group_id": g, "owner_id": owner, "member_ids": members });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    api.post("/v1/groups", &body).ok()
}

/// The kind and params of a tip message.
pub(crate) fn tip(m: &pb::Message) -> Option<(&str, &std::collections::BTreeMap<String, String>)> {
    match m.content.as_ref().and_then(|c| c.body.as_ref()) {
        Some(pb::content::Body::Tip(t)) => Some((t.kind.as_str(), &t.params)),
        _ => None,
    }
}

/// Waits for the pushed tip `kind` of group `g`; returns the message.
#[track_caller]
pub(crate) fn expect_tip(c: &mut RawClient, g: &str, kind: &str) -> pb::Message {
    let conv = gconv(g);
    c.wait_push(kind, WAIT, |ev| match ev {
        pb::push::Event::Message(m) if m.conv_id == conv && tip(m).is_some_and(|(k, _)| k == kind) => {
            Some(m.clone())
        }
        _ => None,
    })
}

/// `user`'s view of the members of `g` over the socket (ListGroupMembers).
pub(crate) fn members_seen_by(c: &mut RawClient, g: &str) -> Result<Vec<pb::GroupMember>, pb::Error> {
    c.call(Op::ListGroupMembers(pb::ListGroupMembers {
        group_id: g.to_owned(),
        cursor: String::new(),
        limit: 0,
    }))
    .map(|r| match r {
        response::Result::GroupMembers(m) => m.members,
        other => panic!("ListGroupMembers: {other:?}"),
    })
}

/// The role of `user` in `list`.
pub(crate) fn role_in(list: &[pb::GroupMember], user: &str) -> Option<pb::GroupRole> {
    list.iter().find(|m| m.user_id == user).and_then(|m| pb::GroupRole::try_from(m.role).ok())
}

/// The error code of `code` as JSON compares it.
pub(crate) fn code(c: ErrorCode) -> u32 {
    c.as_u32()
}
