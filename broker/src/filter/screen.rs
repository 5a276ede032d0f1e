//! Route-time moderation: global mutes and the word lists applied to every
//! user-set text of a request (spec [SW-3]..[SW-8]).
//!
//! Role: [`screen`] runs in `route::route` before the request's own checks,
//! so it covers TCP, WebSocket, QUIC and REST alike. A `block` match refuses
//! the request with 3008 CONTENT_BLOCKED naming the list (never the word); a
//! `replace` match rewrites the text in the request, so the masked text is
//! what is checked, stored and delivered; a `flag` match changes nothing.
//! A send by a globally muted user is refused with 2008 USER_MUTED.
//!
//! Invariants: with no list and no mute this costs two atomic loads; the
//! request's size checks run after the masking, so a mask longer than the
//! word can never store an over-long text.

use missive_protocol::pb::{self, request::Op};
use missive_protocol::{ErrorCode, UserId};

use super::engine::Compiled;
use crate::error::Reject;
use crate::node::Node;

/// Applies the mutes and the word lists to `op` (see the module doc).
pub(crate) fn screen(node: &Node, user: &UserId, op: &mut Op) -> Result<(), Reject> {
    if matches!(op, Op::Send(_) | Op::Edit(_) | Op::Forward(_)) {
        let now = crate::node::clock::now_ms();
        if let Some(until) = node.mutes.until(user.as_str(), now) {
            return Err(Reject::new(
                ErrorCode::UserMuted,
                format!("muted by a moderator until {}", rfc3339(until)),
            ));
        }
    }
    let Some(words) = node.words.snapshot() else { return Ok(()) };
    texts(op, &mut |s| apply(&words, s))
}

/// Checks one text; masks it in place for `replace` matches.
fn apply(words: &Compiled, s: &mut String) -> Result<(), Reject> {
    let v = words.check(s);
    if let Some((list, _)) = v.blocked {
        return Err(Reject::new(
            ErrorCode::ContentBlocked,
            format!("the text matches the blocked word list \"{list}\""),
        ));
    }
    if let Some(r) = v.replaced {
        *s = r;
    }
    Ok(())
}

type Visit<'a> = dyn FnMut(&mut String) -> Result<(), Reject> + 'a;

/// Calls `f` on every user-set text of `op` (spec [SW-3]).
fn texts(op: &mut Op, f: &mut Visit<'_>) -> Result<(), Reject> {
    match op {
        Op::Send(m) => {
            if let Some(c) = m.content.as_mut() {
                content(c, f, 0)?;
            }
        }
        Op::Edit(req) => {
            if let Some(c) = req.content.as_mut() {
                content(c, f, 0)?;
            }
        }
        Op::SetProfile(req) => {
            if let Some(p) = req.patch.as_mut() {
                profile(p, f)?;
            }
        }
        Op::ImportUser(req) => {
            if let Some(p) = req.profile.as_mut() {
                profile(p, f)?;
            }
        }
        Op::SetPresenceStatus(req) => f(&mut req.text)?,
        Op::AddFriend(req) => {
            f(&mut req.message)?;
            f(&mut req.remark)?;
        }
        Op::RespondFriendRequest(req) => f(&mut req.remark)?,
        Op::UpdateFriend(req) => {
            if let Some(r) = req.remark.as_mut() {
                f(r)?;
            }
        }
        Op::CreateGroup(req) => {
            if let Some(p) = req.info.as_mut() {
                group(p, f)?;
            }
        }
        Op::UpdateGroup(req) => {
            if let Some(p) = req.patch.as_mut() {
                group(p, f)?;
            }
        }
        Op::SetGroupNickname(req) => f(&mut req.nickname)?,
        // The copies' contents are screened as sends by `session::forward`.
        Op::Forward(req) => f(&mut req.title)?,
        Op::JoinGroup(req) => f(&mut req.reason)?,
        _ => {}
    }
    Ok(())
}

fn opt(s: &mut Option<String>, f: &mut Visit<'_>) -> Result<(), Reject> {
    match s {
        Some(s) => f(s),
        None => Ok(()),
    }
}

fn profile(p: &mut pb::ProfilePatch, f: &mut Visit<'_>) -> Result<(), Reject> {
    opt(&mut p.nickname, f)?;
    opt(&mut p.signature, f)
}

fn group(p: &mut pb::GroupPatch, f: &mut Visit<'_>) -> Result<(), Reject> {
    opt(&mut p.name, f)?;
    opt(&mut p.notice, f)?;
    opt(&mut p.introduction, f)
}

/// The texts of message content: text, file name, location title and
/// address, merged title and items, system notice, quote preview. Depth is
/// bounded here too (the depth check runs later).
fn content(c: &mut pb::Content, f: &mut Visit<'_>, depth: usize) -> Result<(), Reject> {
    use pb::content::Body;
    if depth > crate::services::messages::check::MAX_MERGED_DEPTH {
        return Ok(());
    }
    match c.body.as_mut() {
        Some(Body::Text(t)) => f(&mut t.text)?,
        Some(Body::File(x)) => f(&mut x.name)?,
        Some(Body::Location(l)) => {
            f(&mut l.title)?;
            f(&mut l.address)?;
        }
        Some(Body::Merged(m)) => {
            f(&mut m.title)?;
            for item in &mut m.items {
                if let Some(ic) = item.content.as_mut() {
                    content(ic, f, depth + 1)?;
                }
            }
        }
        Some(Body::System(s)) => {
            f(&mut s.title)?;
            f(&mut s.text)?;
        }
        _ => {}
    }
    if let Some(q) = c.quote.as_mut() {
        f(&mut q.preview)?;
    }
    Ok(())
}

/// `ms` as an RFC 3339 UTC time, second precision (falls back to the number).
/// Every screened text of a message's content ([SW-3]): the texts `flag`
/// lists are matched against for `message.flagged` events.
pub(crate) fn content_texts(c: &pb::Content) -> Vec<String> {
    let mut c = c.clone();
    let mut out = Vec::new();
    let mut collect = |s: &mut String| -> Result<(), Reject> {
        out.push(s.clone());
        Ok(())
    };
    let _ = content(&mut c, &mut collect, 0);
    out
}

pub(crate) fn rfc3339(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{ms} ms since 1970"),
    }
}
