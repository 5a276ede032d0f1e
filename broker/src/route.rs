//! THE route table: one exhaustive match from a request to where it runs.
//!
//! Role: for every request kind of the protocol, the stateless checks of its
//! service (ids parse, texts and lists are bounded, the admin role where
//! required) and its destination:
//! - [`Route::Owner`]: an op for the owner shard of its [`OwnerKey`]
//!   (`node::owner`), staged transactionally there;
//! - [`Route::Local`]: a read-only query served by the query pool
//!   (`net::query`, off the I/O loops) from committed storage;
//! - [`Route::Sync`]: read by the query pool; the page then goes to the
//!   user's owner shard, which records its token and answers;
//! - [`Route::Translate`]: looked up by the query pool; a cache miss goes
//!   to the translation provider (webhook runtime), whose text the
//!   conversation's owner shard caches before answering.
//!
//! Invariants: the match has no wildcard arm, so a request kind added to
//! `spec/proto` without a route here does not compile; permission checks that
//! need no stored state (admin role) happen before anything is routed; every
//! check that needs state happens on the owner, at the moment of the write.

use missive_protocol::pb::{self, request::Op};
use missive_protocol::{ConvKind, ErrorCode, UserId};

use crate::error::Reject;
use crate::node::{Node, OwnerKey};
use crate::services::accounts::{self, AccountsOp};
use crate::services::conversations::ConversationsOp;
use crate::services::relations::{self, PairOp, RelationsOp};
use crate::services::signals::SignalsOp;
use crate::services::{LocalQuery, ServiceOp, checks, groups, messages, presence, translate};

/// Who is asking (from the session).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    pub(crate) user: &'a UserId,
    pub(crate) admin: bool,
    /// When the caller's client session began; `None` for the admin API and
    /// internal re-routing (forward), whose sends never skip dedup ([S-7]).
    pub(crate) since: Option<std::time::Instant>,
}

/// Where a checked request goes.
// Transient: built and moved once per request; boxing the op would add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Route {
    /// To the owner shard (index) with this op.
    Owner(usize, ServiceOp),
    /// Served by the query pool.
    Local(LocalQuery),
    /// Sync, read by the query pool, answered by the user's owner shard.
    Sync(pb::SyncRequest),
    /// TranslateMessage (spec 18.10).
    Translate(translate::Lookup),
    /// ForwardMessages: the source is read by the query pool, the copies are
    /// stored and answered by the destination's owner (`session::forward`).
    Forward(Box<messages::forward::ForwardReq>),
}

fn admin_only(c: Caller<'_>) -> Result<(), Reject> {
    if c.admin { Ok(()) } else { Err(Reject::new(ErrorCode::PermissionDenied, "admin token required")) }
}

fn not_self(user: &UserId, other: &UserId) -> Result<(), Reject> {
    if user == other {
        return Err(Reject::new(ErrorCode::SelfTarget, "name another user, not yourself"));
    }
    Ok(())
}

/// Checks `op` and picks where it runs.
pub(crate) fn route(node: &Node, c: Caller<'_>, mut op: Op) -> Result<Route, Reject> {
    let user = c.user;
    // Global mutes and the word lists (spec section 16), before the request's own checks.
    crate::filter::screen::screen(node, user, &mut op)?;
    let rel = &node.config.relations;
    let owner = |key: OwnerKey<'_>| node.owner(key);
    let to_conv = |o: ConversationsOp| Route::Owner(owner(o.owner(user)), ServiceOp::Conversations(o));
    let to_msgs =
        |o: messages::MessagesOp| Route::Owner(owner(OwnerKey::Conv(o.conv())), ServiceOp::Messages(o));
    let to_accounts = |o: AccountsOp| Route::Owner(owner(o.owner(user)), ServiceOp::Accounts(o));
    let to_presence = |o: presence::PresenceOp| Route::Owner(owner(o.owner(user)), ServiceOp::Presence(o));
    let to_pair = |me: UserId, peer: UserId, op: PairOp| -> Result<Route, Reject> {
        let o = RelationsOp::new(me, peer, op)?;
        Ok(Route::Owner(owner(o.owner()), ServiceOp::Relations(o)))
    };
    let to_groups = |o: groups::GroupsOp| Route::Owner(owner(o.owner()), ServiceOp::Groups(o));
    let peer_of = |s: String| -> Result<UserId, Reject> {
        let peer = checks::user_id(s, "user_id")?;
        not_self(user, &peer)?;
        Ok(peer)
    };
    Ok(match op {
        // --- messages and conversations (spec section 8) ---
        Op::Send(m) => to_msgs(messages::check::send(&node.config, user, c.since, m)?),
        Op::Pull(req) => to_msgs(messages::check::pull(user, req)?),
        Op::History(req) => to_msgs(messages::check::history(user, req)?),
        Op::Sync(req) => Route::Sync(req),
        Op::MarkRead(req) => to_conv(ConversationsOp::MarkRead {
            conv: checks::conversation(user, &req.conv_id)?,
            seq: req.seq,
        }),
        Op::UpdateConversation(req) => {
            if req.pinned.is_none() && req.muted.is_none() && req.hidden.is_none() {
                return Err(Reject::new(ErrorCode::InvalidArgument, "nothing to update"));
            }
            to_conv(ConversationsOp::Update { conv: checks::conversation(user, &req.conv_id)?, req })
        }
        Op::ClearHistory(req) => to_conv(ConversationsOp::Clear {
            conv: checks::conversation(user, &req.conv_id)?,
            up_to: req.up_to_seq,
        }),
        Op::SetGlobalDnd(req) => to_conv(ConversationsOp::GlobalDnd { enabled: req.enabled }),

        // --- accounts and profiles (section 12) ---
        Op::ImportUser(req) => {
            admin_only(c)?;
            let target = checks::user_id(req.user_id, "user_id")?;
            let patch = req.profile.unwrap_or_default();
            checks::profile_patch(&patch, rel)?;
            to_accounts(AccountsOp::ImportUser { target, patch })
        }
        Op::SetAccountDisabled(req) => {
            admin_only(c)?;
            let target = checks::user_id(req.user_id, "user_id")?;
            checks::text(&req.reason, rel.max_text_bytes, "reason")?;
            to_accounts(AccountsOp::SetDisabled { target, disabled: req.disabled, reason: req.reason })
        }
        Op::RevokeTokens(req) => {
            admin_only(c)?;
            to_accounts(AccountsOp::RevokeTokens { target: checks::user_id(req.user_id, "user_id")? })
        }
        Op::AccountsExist(req) => Route::Local(LocalQuery::Accounts(accounts::Query::Exist(req))),
        Op::SetProfile(req) => {
            let patch = req.patch.unwrap_or_default();
            checks::profile_patch(&patch, rel)?;
            to_accounts(AccountsOp::SetProfile { patch })
        }
        Op::GetProfiles(req) => Route::Local(LocalQuery::Accounts(accounts::Query::Profiles(req))),

        // --- presence (section 12) ---
        Op::GetPresence(req) => Route::Local(LocalQuery::Presence(presence::Query::Get(req))),
        Op::SubscribePresence(req) => {
            let targets = checks::user_ids(req.user_ids, "user_ids")?;
            for t in &targets {
                not_self(user, t)?;
            }
            to_presence(presence::PresenceOp::Subscribe { targets })
        }
        Op::UnsubscribePresence(req) => to_presence(presence::PresenceOp::Unsubscribe {
            targets: checks::user_ids(req.user_ids, "user_ids")?,
        }),
        Op::ListPresenceSubscriptions(req) => {
            Route::Local(LocalQuery::Presence(presence::Query::Subscriptions(req)))
        }
        Op::SetPresenceStatus(req) => {
            checks::text(&req.text, rel.max_text_bytes, "text")?;
            to_presence(presence::PresenceOp::SetStatus { text: req.text })
        }

        // --- friends and blacklist (section 13) ---
        Op::AddFriend(req) => {
            let peer = peer_of(req.user_id)?;
            checks::text(&req.message, rel.max_text_bytes, "message")?;
            checks::text(&req.remark, rel.max_name_bytes, "remark")?;
            let ex = checks::ex_map(req.ex, rel)?;
            to_pair(user.clone(), peer, PairOp::Add { message: req.message, remark: req.remark, ex })?
        }
        Op::RespondFriendRequest(req) => {
            let peer = peer_of(req.user_id)?;
            checks::text(&req.remark, rel.max_name_bytes, "remark")?;
            let ex = checks::ex_map(req.ex, rel)?;
            to_pair(user.clone(), peer, PairOp::Respond { accept: req.accept, remark: req.remark, ex })?
        }
        Op::DeleteFriend(req) => {
            to_pair(user.clone(), peer_of(req.user_id)?, PairOp::Delete { both: req.both_sides })?
        }
        Op::UpdateFriend(req) => {
            let peer = peer_of(req.user_id)?;
            if let Some(remark) = &req.remark {
                checks::text(remark, rel.max_name_bytes, "remark")?;
            }
            if req.remark.is_none() && req.ex.is_empty() {
                return Err(checks::invalid("nothing to update"));
            }
            let ex = checks::ex_map(req.ex, rel)?;
            to_pair(user.clone(), peer, PairOp::Update { remark: req.remark, ex })?
        }
        Op::ListFriends(req) => Route::Local(LocalQuery::Relations(relations::Query::ListFriends(req))),
        Op::ListFriendRequests(req) => {
            Route::Local(LocalQuery::Relations(relations::Query::ListFriendRequests(req)))
        }
        Op::CheckRelations(req) => Route::Local(LocalQuery::Relations(relations::Query::CheckRelations(req))),
        Op::SearchFriends(req) => Route::Local(LocalQuery::Relations(relations::Query::SearchFriends(req))),
        Op::ImportFriendship(req) => {
            admin_only(c)?;
            let a = checks::user_id(req.user_a, "user_a")?;
            let b = checks::user_id(req.user_b, "user_b")?;
            if a == b {
                return Err(Reject::new(ErrorCode::SelfTarget, "user_a and user_b must differ"));
            }
            to_pair(a, b, PairOp::Import)?
        }
        Op::AddToBlacklist(req) => to_pair(user.clone(), peer_of(req.user_id)?, PairOp::Block)?,
        Op::RemoveFromBlacklist(req) => to_pair(user.clone(), peer_of(req.user_id)?, PairOp::Unblock)?,
        Op::ListBlacklist(req) => Route::Local(LocalQuery::Relations(relations::Query::ListBlacklist(req))),

        // --- groups (section 14) ---
        Op::CreateGroup(req) => to_groups(groups::check::create(req, rel)?),
        Op::GetGroups(req) => Route::Local(LocalQuery::Groups(groups::Query::GetGroups(req))),
        Op::UpdateGroup(req) => to_groups(groups::check::update(req, rel)?),
        Op::DismissGroup(req) => to_groups(groups::check::dismiss(req)?),
        Op::JoinGroup(req) => to_groups(groups::check::join(req, rel)?),
        Op::RespondGroupApplication(req) => to_groups(groups::check::respond(req)?),
        Op::ListGroupApplications(req) => {
            Route::Local(LocalQuery::Groups(groups::Query::ListGroupApplications(req)))
        }
        Op::InviteToGroup(req) => to_groups(groups::check::invite(req)?),
        Op::KickFromGroup(req) => to_groups(groups::check::kick(req)?),
        Op::QuitGroup(req) => to_groups(groups::check::quit(req)?),
        Op::TransferGroup(req) => to_groups(groups::check::transfer(req)?),
        Op::SetGroupRole(req) => to_groups(groups::check::set_role(req)?),
        Op::SetGroupNickname(req) => to_groups(groups::check::set_nickname(req, user, rel)?),
        Op::MuteGroupMember(req) => to_groups(groups::check::mute(req)?),
        Op::MuteGroupAll(req) => to_groups(groups::check::mute_all(req)?),
        Op::SetGroupNotify(req) => to_groups(groups::check::set_notify(req)?),
        Op::ListGroupMembers(req) => Route::Local(LocalQuery::Groups(groups::Query::ListGroupMembers(req))),
        Op::ListJoinedGroups(req) => Route::Local(LocalQuery::Groups(groups::Query::ListJoinedGroups(req))),
        Op::GetGroupReceipt(req) => to_groups(groups::check::receipt(req)?),

        // --- message lifecycle (section 18) ---
        Op::Recall(req) => to_msgs(messages::recall::check_recall(user, req)?),
        Op::Edit(req) => {
            to_msgs(messages::recall::check_edit(user, req, node.config.limits.max_content_bytes)?)
        }
        Op::DeleteMessages(req) => to_msgs(messages::delete::check(user, req)?),
        Op::ClearAllMessages(_) => to_conv(ConversationsOp::ClearAll { next: None }),
        Op::React(req) => to_msgs(messages::reactions::check(user, req)?),
        Op::GetReactions(req) => {
            let conv = checks::conversation(user, &req.conv_id)?;
            messages::updates::check_seqs(&req.seqs)?;
            to_msgs(messages::MessagesOp::LifeRead {
                conv,
                read: messages::LifeRead::Reactions { seqs: req.seqs },
            })
        }
        Op::ListReactionUsers(req) => {
            let conv = checks::conversation(user, &req.conv_id)?;
            messages::reactions::check_key(&req.key)?;
            if req.seq == 0 {
                return Err(messages::life::not_found(0));
            }
            if req.cursor.len() > 64 {
                return Err(checks::invalid("cursor is not one this server returned"));
            }
            let limit = messages::updates::page(req.limit, rel.page_default, rel.page_max);
            to_msgs(messages::MessagesOp::LifeRead {
                conv,
                read: messages::LifeRead::ReactionUsers {
                    seq: req.seq,
                    key: req.key,
                    after: req.cursor,
                    limit,
                },
            })
        }
        Op::SetExtensions(req) => to_msgs(messages::extensions::check(user, req, &node.config.messages)?),
        Op::PullUpdates(req) => {
            let conv = checks::conversation(user, &req.conv_id)?;
            let l = &node.config.limits;
            let limit = messages::updates::page(req.limit, l.pull_page_default, l.pull_page_max);
            to_msgs(messages::MessagesOp::LifeRead {
                conv,
                read: messages::LifeRead::Updates { after: req.after_update_seq, limit },
            })
        }
        Op::Typing(req) => {
            let conv = checks::conversation(user, &req.conv_id)?;
            if conv.kind() == ConvKind::Broadcast {
                return Err(Reject::new(ErrorCode::UnsupportedConversation, "nobody types in a broadcast"));
            }
            let o = SignalsOp::Typing { conv, typing: req.typing };
            Route::Owner(owner(o.owner()), ServiceOp::Signals(o))
        }
        Op::Forward(req) => Route::Forward(Box::new(messages::forward::check(user, req)?)),
        Op::Translate(req) => Route::Translate(translate::check(node, user, req)?),
    })
}
