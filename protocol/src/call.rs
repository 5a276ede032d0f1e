//! The typed request → reply vocabulary every client shares.
//!
//! Role: [`Call`] ties each request message of `spec/proto` to its
//! `Request.op` case and to the `Response.result` case that answers it, so a
//! client writes `conn.call(pb::MarkRead { .. })` and gets a
//! `pb::ConversationState` back instead of building an op and matching the
//! result by hand. The Rust SDK, the black-box test harness, `missivectl` and
//! `loadgen` all go through it; [`request_frame`] builds a whole request frame
//! for clients that write frames themselves.
//!
//! Invariants:
//! - every `request::Op` case has exactly one `Call` impl: the table below
//!   generates the impls and the exhaustive [`request_name`] match (no wildcard
//!   arm), so a request added to the proto without a row is a compile error;
//! - [`Call::Reply`] is the message of the answering result case, and `()` for
//!   requests answered with `Ok`; the one exception is [`pb::InviteToGroup`],
//!   answered with `ok` or `group` ([`Invited`]);
//! - a result of another kind is an [`UnexpectedReply`] naming the request,
//!   the kind it expects and the kind it got; nothing here panics;
//! - [`request::Op`] itself is a `Call` whose reply is the raw
//!   `response::Result` (for code that sends arbitrary ops, e.g. bad-input tests).
//!
//! No I/O: sending, waiting, ids and error responses belong to the clients.

use crate::pb::{self, frame, request, response};

/// A request message with a known reply.
pub trait Call: Sized {
    /// What a successful answer carries.
    type Reply;
    /// The request's proto message name, e.g. `"MarkRead"` (for errors and logs).
    const NAME: &'static str;
    /// The `Request.op` case carrying this request.
    fn into_op(self) -> request::Op;
    /// Extracts the reply from a successful `Response.result`; another result
    /// kind is an [`UnexpectedReply`].
    fn reply(result: response::Result) -> Result<Self::Reply, UnexpectedReply>;
}

/// A success `Response` whose result kind does not answer the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{request} was answered with a `{got}` result, expected `{expected}`")]
pub struct UnexpectedReply {
    /// The request's proto message name ([`Call::NAME`]).
    pub request: &'static str,
    /// The result kind(s) the request expects (proto field names).
    pub expected: &'static str,
    /// The result kind received ([`result_name`]).
    pub got: &'static str,
}

/// The `Request{id, op}` carrying `req`.
pub fn request<C: Call>(id: u64, req: C) -> pb::Request {
    pb::Request { id, op: Some(req.into_op()) }
}

/// The whole `Frame{request}` carrying `req` with request id `id`, ready for
/// [`FrameCodec::encode`](crate::FrameCodec::encode) into a (reused) buffer.
pub fn request_frame<C: Call>(id: u64, req: C) -> pb::Frame {
    pb::Frame { body: Some(frame::Body::Request(request(id, req))) }
}

/// The answer to [`pb::InviteToGroup`] ([GR-10]).
#[derive(Debug, Clone, PartialEq)]
pub enum Invited {
    /// `ok`: the users joined at once.
    Joined,
    /// `group`: the group asks for the invitees' consent; each got a pending
    /// invitation, accepted with `JoinGroup` and accepted or declined with
    /// `RespondGroupApplication` naming the invitee ([GR-9a]). Carries the
    /// group's info.
    Pending(Box<pb::GroupInfo>),
}

impl Call for pb::InviteToGroup {
    type Reply = Invited;
    const NAME: &'static str = "InviteToGroup";
    fn into_op(self) -> request::Op {
        request::Op::InviteToGroup(self)
    }
    fn reply(result: response::Result) -> Result<Invited, UnexpectedReply> {
        match result {
            response::Result::Ok(_) => Ok(Invited::Joined),
            response::Result::Group(g) => Ok(Invited::Pending(Box::new(g))),
            other => Err(UnexpectedReply {
                request: Self::NAME,
                expected: "ok or group",
                got: result_name(&other),
            }),
        }
    }
}

/// Any op, answered with the raw result (no kind check).
impl Call for request::Op {
    type Reply = response::Result;
    const NAME: &'static str = "Request";
    fn into_op(self) -> request::Op {
        self
    }
    fn reply(result: response::Result) -> Result<response::Result, UnexpectedReply> {
        Ok(result)
    }
}

/// The reply type of a table row: the result's message, or `()` for `Ok`.
macro_rules! reply_type {
    () => {
        ()
    };
    ($t:ty) => {
        $t
    };
}

/// The successful reply of a table row, from the matched result's message.
macro_rules! ok_reply {
    ($v:ident) => {{
        let pb::Ok {} = $v;
        Ok(())
    }};
    ($v:ident $t:ty) => {
        Ok($v)
    };
}

/// One row per request: `Request message => Op case, Result case(Reply)`;
/// rows without `(Reply)` are answered with `Ok` and reply `()`. `manual`
/// (first) lists the requests whose impl is written by hand above.
macro_rules! calls {
    (
        manual { $( $mreq:ident => $mop:ident ; )* }
        $( $req:ident => $op:ident, $res:ident $( ( $reply:ty ) )? ; )*
    ) => {
        $(
            impl Call for pb::$req {
                type Reply = reply_type!($($reply)?);
                const NAME: &'static str = stringify!($req);
                fn into_op(self) -> request::Op {
                    request::Op::$op(self)
                }
                fn reply(result: response::Result) -> Result<Self::Reply, UnexpectedReply> {
                    match result {
                        response::Result::$res(v) => ok_reply!(v $($reply)?),
                        other => Err(UnexpectedReply {
                            request: Self::NAME,
                            expected: result_name(&response::Result::$res(Default::default())),
                            got: result_name(&other),
                        }),
                    }
                }
            }
        )*

        /// The request message name of an op ([`Call::NAME`] of its message).
        /// Exhaustive: a new `request::Op` case without a [`Call`] row does not compile.
        pub fn request_name(op: &request::Op) -> &'static str {
            match op {
                $( request::Op::$op(_) => <pb::$req as Call>::NAME, )*
                $( request::Op::$mop(_) => <pb::$mreq as Call>::NAME, )*
            }
        }

        /// A default instance of every request kind, as ops (for tests).
        #[cfg(test)]
        fn every_request_kind() -> Vec<request::Op> {
            vec![
                $( pb::$req::default().into_op(), )*
                $( pb::$mreq::default().into_op(), )*
            ]
        }
    };
}

calls! {
    manual {
        InviteToGroup => InviteToGroup;
    }
    // Messaging (spec section 8).
    SendMessage => Send, SendAck(pb::SendAck);
    SyncRequest => Sync, Sync(pb::SyncResult);
    PullRequest => Pull, Messages(pb::Messages);
    HistoryRequest => History, Messages(pb::Messages);
    MarkRead => MarkRead, Conversation(pb::ConversationState);
    UpdateConversation => UpdateConversation, Conversation(pb::ConversationState);
    ClearHistory => ClearHistory, Conversation(pb::ConversationState);
    SetGlobalDnd => SetGlobalDnd, Ok;
    // Accounts, profiles, presence (section 12).
    ImportUser => ImportUser, Profile(pb::Profile);
    SetAccountDisabled => SetAccountDisabled, Ok;
    RevokeTokens => RevokeTokens, Ok;
    AccountsExist => AccountsExist, Accounts(pb::AccountsExistResult);
    SetProfile => SetProfile, Profile(pb::Profile);
    GetProfiles => GetProfiles, Profiles(pb::Profiles);
    GetPresence => GetPresence, Presence(pb::PresenceList);
    SubscribePresence => SubscribePresence, Presence(pb::PresenceList);
    UnsubscribePresence => UnsubscribePresence, Ok;
    ListPresenceSubscriptions => ListPresenceSubscriptions, Presence(pb::PresenceList);
    SetPresenceStatus => SetPresenceStatus, Ok;
    // Friends and blacklist (section 13).
    AddFriend => AddFriend, AddFriend(pb::AddFriendResult);
    RespondFriendRequest => RespondFriendRequest, Relation(pb::Relation);
    DeleteFriend => DeleteFriend, Relation(pb::Relation);
    UpdateFriend => UpdateFriend, Relation(pb::Relation);
    ListFriends => ListFriends, Friends(pb::FriendList);
    ListFriendRequests => ListFriendRequests, FriendRequests(pb::FriendRequestList);
    CheckRelations => CheckRelations, Relations(pb::Relations);
    SearchFriends => SearchFriends, Friends(pb::FriendList);
    ImportFriendship => ImportFriendship, Ok;
    AddToBlacklist => AddToBlacklist, Relation(pb::Relation);
    RemoveFromBlacklist => RemoveFromBlacklist, Relation(pb::Relation);
    ListBlacklist => ListBlacklist, Blacklist(pb::Blacklist);
    // Groups (section 14).
    CreateGroup => CreateGroup, Group(pb::GroupInfo);
    GetGroups => GetGroups, Groups(pb::Groups);
    UpdateGroup => UpdateGroup, Group(pb::GroupInfo);
    DismissGroup => DismissGroup, Ok;
    JoinGroup => JoinGroup, JoinGroup(pb::JoinGroupResult);
    RespondGroupApplication => RespondGroupApplication, Ok;
    ListGroupApplications => ListGroupApplications, GroupApplications(pb::GroupApplications);
    KickFromGroup => KickFromGroup, Ok;
    QuitGroup => QuitGroup, Ok;
    TransferGroup => TransferGroup, Group(pb::GroupInfo);
    SetGroupRole => SetGroupRole, GroupMember(pb::GroupMember);
    SetGroupNickname => SetGroupNickname, GroupMember(pb::GroupMember);
    MuteGroupMember => MuteGroupMember, GroupMember(pb::GroupMember);
    MuteGroupAll => MuteGroupAll, Group(pb::GroupInfo);
    SetGroupNotify => SetGroupNotify, Conversation(pb::ConversationState);
    ListGroupMembers => ListGroupMembers, GroupMembers(pb::GroupMembers);
    ListJoinedGroups => ListJoinedGroups, JoinedGroups(pb::JoinedGroups);
    GetGroupReceipt => GetGroupReceipt, GroupReceipt(pb::GroupReceipt);
    // Message lifecycle (section 18).
    RecallMessage => Recall, Message(pb::Message);
    EditMessage => Edit, Message(pb::Message);
    DeleteMessages => DeleteMessages, Ok;
    ClearAllMessages => ClearAllMessages, Ok;
    React => React, Reactions(pb::Reactions);
    GetReactions => GetReactions, ReactionsList(pb::ReactionsList);
    ListReactionUsers => ListReactionUsers, ReactionUsers(pb::ReactionUsers);
    SetExtensions => SetExtensions, Extensions(pb::Extensions);
    PullUpdates => PullUpdates, Updates(pb::MessageUpdates);
    Typing => Typing, Ok;
    ForwardMessages => Forward, Forward(pb::ForwardResult);
    TranslateMessage => Translate, Translation(pb::Translation);
}

/// The proto field name of a result case, e.g. `"send_ack"`.
pub fn result_name(r: &response::Result) -> &'static str {
    use response::Result as R;
    match r {
        R::Ok(_) => "ok",
        R::SendAck(_) => "send_ack",
        R::Sync(_) => "sync",
        R::Messages(_) => "messages",
        R::Conversation(_) => "conversation",
        R::Accounts(_) => "accounts",
        R::Profile(_) => "profile",
        R::Profiles(_) => "profiles",
        R::Presence(_) => "presence",
        R::AddFriend(_) => "add_friend",
        R::Relation(_) => "relation",
        R::Friends(_) => "friends",
        R::FriendRequests(_) => "friend_requests",
        R::Relations(_) => "relations",
        R::Blacklist(_) => "blacklist",
        R::Group(_) => "group",
        R::Groups(_) => "groups",
        R::GroupMembers(_) => "group_members",
        R::JoinGroup(_) => "join_group",
        R::GroupApplications(_) => "group_applications",
        R::JoinedGroups(_) => "joined_groups",
        R::GroupReceipt(_) => "group_receipt",
        R::GroupMember(_) => "group_member",
        R::Message(_) => "message",
        R::Reactions(_) => "reactions",
        R::ReactionsList(_) => "reactions_list",
        R::ReactionUsers(_) => "reaction_users",
        R::Extensions(_) => "extensions",
        R::Updates(_) => "updates",
        R::Forward(_) => "forward",
        R::Translation(_) => "translation",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use bytes::BytesMut;

    use super::*;
    use crate::FrameCodec;
    use request::Op;

    /// Checks that `req` becomes an op named `C::NAME` that survives a
    /// request frame through the codec; returns the name.
    fn check<C: Call + Clone>(req: C) -> &'static str {
        let op = req.clone().into_op();
        assert_eq!(request_name(&op), C::NAME);
        let codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(&request_frame(42, req), &mut buf).expect("encode");
        let decoded = codec.decode(&mut buf).expect("decode").and_then(|f| f.body);
        assert_eq!(decoded, Some(frame::Body::Request(pb::Request { id: 42, op: Some(op) })));
        C::NAME
    }

    /// Maps every op case to its request message through its `Call` impl.
    /// Exhaustive without a wildcard: a case without a `Call` impl fails to compile.
    fn name_via_call(op: Op) -> &'static str {
        match op {
            Op::Send(r) => check(r),
            Op::Sync(r) => check(r),
            Op::Pull(r) => check(r),
            Op::History(r) => check(r),
            Op::MarkRead(r) => check(r),
            Op::UpdateConversation(r) => check(r),
            Op::ClearHistory(r) => check(r),
            Op::SetGlobalDnd(r) => check(r),
            Op::ImportUser(r) => check(r),
            Op::SetAccountDisabled(r) => check(r),
            Op::RevokeTokens(r) => check(r),
            Op::AccountsExist(r) => check(r),
            Op::SetProfile(r) => check(r),
            Op::GetProfiles(r) => check(r),
            Op::GetPresence(r) => check(r),
            Op::SubscribePresence(r) => check(r),
            Op::UnsubscribePresence(r) => check(r),
            Op::ListPresenceSubscriptions(r) => check(r),
            Op::SetPresenceStatus(r) => check(r),
            Op::AddFriend(r) => check(r),
            Op::RespondFriendRequest(r) => check(r),
            Op::DeleteFriend(r) => check(r),
            Op::UpdateFriend(r) => check(r),
            Op::ListFriends(r) => check(r),
            Op::ListFriendRequests(r) => check(r),
            Op::CheckRelations(r) => check(r),
            Op::SearchFriends(r) => check(r),
            Op::ImportFriendship(r) => check(r),
            Op::AddToBlacklist(r) => check(r),
            Op::RemoveFromBlacklist(r) => check(r),
            Op::ListBlacklist(r) => check(r),
            Op::CreateGroup(r) => check(r),
            Op::GetGroups(r) => check(r),
            Op::UpdateGroup(r) => check(r),
            Op::DismissGroup(r) => check(r),
            Op::JoinGroup(r) => check(r),
            Op::RespondGroupApplication(r) => check(r),
            Op::ListGroupApplications(r) => check(r),
            Op::InviteToGroup(r) => check(r),
            Op::KickFromGroup(r) => check(r),
            Op::QuitGroup(r) => check(r),
            Op::TransferGroup(r) => check(r),
            Op::SetGroupRole(r) => check(r),
            Op::SetGroupNickname(r) => check(r),
            Op::MuteGroupMember(r) => check(r),
            Op::MuteGroupAll(r) => check(r),
            Op::SetGroupNotify(r) => check(r),
            Op::ListGroupMembers(r) => check(r),
            Op::ListJoinedGroups(r) => check(r),
            Op::GetGroupReceipt(r) => check(r),
            Op::Recall(r) => check(r),
            Op::Edit(r) => check(r),
            Op::DeleteMessages(r) => check(r),
            Op::ClearAllMessages(r) => check(r),
            Op::React(r) => check(r),
            Op::GetReactions(r) => check(r),
            Op::ListReactionUsers(r) => check(r),
            Op::SetExtensions(r) => check(r),
            Op::PullUpdates(r) => check(r),
            Op::Typing(r) => check(r),
            Op::Forward(r) => check(r),
            Op::Translate(r) => check(r),
        }
    }

    #[test]
    fn every_request_kind_has_one_call() {
        let all = every_request_kind();
        let names: BTreeSet<&str> = all.into_iter().map(name_via_call).collect();
        // 62 distinct request kinds: one row each, no row twice.
        assert_eq!(names.len(), every_request_kind().len());
        assert_eq!(names.len(), 62);
        assert!(names.contains("SendMessage") && names.contains("InviteToGroup"));
    }

    #[test]
    fn requests_round_trip_through_the_frame_codec() {
        let codec = FrameCodec::default();
        let mark = pb::MarkRead { conv_id: "p:alice:bob".into(), seq: 3 };
        let mut buf = BytesMut::new();
        codec.encode(&request_frame(7, mark.clone()), &mut buf).expect("encode");
        codec.encode(&request_frame(8, pb::SetGlobalDnd { enabled: true }), &mut buf).expect("encode");
        let Some(frame::Body::Request(r)) = codec.decode(&mut buf).expect("decode").and_then(|f| f.body)
        else {
            panic!("not a request")
        };
        assert_eq!((r.id, r.op), (7, Some(Op::MarkRead(mark))));
        let Some(frame::Body::Request(r)) = codec.decode(&mut buf).expect("decode").and_then(|f| f.body)
        else {
            panic!("not a request")
        };
        assert_eq!(r.op.as_ref().map(request_name), Some("SetGlobalDnd"));
    }

    #[test]
    fn replies_are_typed() {
        let state = pb::ConversationState { conv_id: "p:a:b".into(), read_seq: 3, ..Default::default() };
        let got = pb::MarkRead::reply(response::Result::Conversation(state.clone()));
        assert_eq!(got, Ok(state));
        assert_eq!(pb::SetGlobalDnd::reply(response::Result::Ok(pb::Ok {})), Ok(()));
        let ack = pb::SendAck { seq: 9, ..Default::default() };
        assert_eq!(pb::SendMessage::reply(response::Result::SendAck(ack.clone())), Ok(ack));
        let g = pb::GroupInfo { group_id: "g1".into(), ..Default::default() };
        assert_eq!(pb::InviteToGroup::reply(response::Result::Ok(pb::Ok {})), Ok(Invited::Joined));
        assert_eq!(
            pb::InviteToGroup::reply(response::Result::Group(g.clone())),
            Ok(Invited::Pending(Box::new(g.clone())))
        );
        // A raw op takes any result as is.
        assert_eq!(<Op as Call>::reply(response::Result::Group(g.clone())), Ok(response::Result::Group(g)));
    }

    #[test]
    fn a_wrong_result_kind_names_both_kinds() {
        let err = pb::HistoryRequest::reply(response::Result::Ok(pb::Ok {})).expect_err("wrong kind");
        assert_eq!(err, UnexpectedReply { request: "HistoryRequest", expected: "messages", got: "ok" });
        assert_eq!(err.to_string(), "HistoryRequest was answered with a `ok` result, expected `messages`");
        let err = pb::SetGlobalDnd::reply(response::Result::SendAck(pb::SendAck::default()))
            .expect_err("wrong kind");
        assert_eq!((err.expected, err.got), ("ok", "send_ack"));
        let err = pb::InviteToGroup::reply(response::Result::Relation(pb::Relation::default()))
            .expect_err("wrong kind");
        assert_eq!((err.request, err.expected, err.got), ("InviteToGroup", "ok or group", "relation"));
    }
}
