//! Read-only group requests: GetGroups, ListGroupMembers, ListJoinedGroups,
//! ListGroupApplications.
//!
//! Role: served on the connection's worker from committed storage (like the
//! relation queries); permission (membership, manager role) is checked
//! against committed records.

use missive_protocol::pb::{self, response};
use missive_protocol::{ErrorCode, GroupId, UserId};
use missive_storage::{GroupRecord, Store};

use crate::error::Reject;
use crate::node::Node;
use crate::services::checks;

use super::check::group_id;
use super::views::{application_view, info_view, member_view};
use super::{denied, is_manager, not_member};

/// A read-only group request.
#[derive(Debug)]
pub(crate) enum Query {
    GetGroups(pb::GetGroups),
    ListGroupMembers(pb::ListGroupMembers),
    ListJoinedGroups(pb::ListJoinedGroups),
    ListGroupApplications(pb::ListGroupApplications),
}

fn live_group(store: &Store, g: &GroupId) -> Result<GroupRecord, Reject> {
    store
        .group(g)?
        .filter(|i| !i.dismissed)
        .ok_or_else(|| Reject::new(ErrorCode::GroupNotFound, format!("no group {g}")))
}

/// Serves a read-only group request on the connection's worker, from
/// committed storage (like the relation queries).
pub(crate) fn serve(node: &Node, user: &UserId, q: Query) -> Result<response::Result, Reject> {
    let store = &node.store;
    let r = &node.config.relations;
    let page = |limit: u32| checks::page(limit, r);
    let cut = |rows: Vec<GroupId>, limit: usize| checks::cut_page(rows, limit, |g| g.as_str());
    Ok(match q {
        Query::GetGroups(req) => {
            if req.group_ids.is_empty() || req.group_ids.len() > checks::MAX_BATCH_IDS {
                return Err(checks::invalid("group_ids: 1..=100 ids required"));
            }
            let mut groups = Vec::new();
            for g in req.group_ids {
                let g = group_id(&g)?;
                if let Some(i) = store.group(&g)? {
                    groups.push(info_view(&g, &i));
                }
            }
            response::Result::Groups(pb::Groups { groups })
        }
        Query::ListGroupMembers(req) => {
            let g = group_id(&req.group_id)?;
            checks::cursor(&req.cursor)?;
            let info = live_group(store, &g)?;
            if store.group_member(&g, user.as_str())?.is_none() {
                return Err(not_member(user));
            }
            let limit = page(req.limit);
            let (rows, next_cursor) =
                checks::cut_page(store.group_members(&g, &req.cursor, limit + 1)?, limit, |(u, _)| {
                    u.as_str()
                });
            let members = rows.iter().map(|(u, m)| member_view(&g, u, m)).collect();
            response::Result::GroupMembers(pb::GroupMembers {
                members,
                next_cursor,
                member_count: info.member_count,
            })
        }
        Query::ListJoinedGroups(req) => {
            if !req.cursor.is_empty() {
                group_id(&req.cursor)?;
            }
            let limit = page(req.limit);
            let (rows, next_cursor) = cut(store.joined_groups(user, &req.cursor, limit + 1)?, limit);
            let mut groups = Vec::with_capacity(rows.len());
            for g in rows {
                if let Some(i) = store.group(&g)? {
                    groups.push(info_view(&g, &i));
                }
            }
            let total = store.joined_count(user)? as u32;
            response::Result::JoinedGroups(pb::JoinedGroups { groups, next_cursor, total })
        }
        Query::ListGroupApplications(req) => {
            let limit = page(req.limit);
            let mut applications = Vec::new();
            let next_cursor;
            if req.outgoing {
                if !req.cursor.is_empty() {
                    group_id(&req.cursor)?;
                }
                let (rows, next) = cut(store.user_group_applications(user, &req.cursor, limit + 1)?, limit);
                next_cursor = next;
                for g in rows {
                    if let Some(a) = store.group_application(&g, user.as_str())? {
                        applications.push(application_view(&g, user.as_str(), &a));
                    }
                }
            } else {
                let g = group_id(&req.group_id)?;
                checks::cursor(&req.cursor)?;
                live_group(store, &g)?;
                let Some(m) = store.group_member(&g, user.as_str())? else { return Err(not_member(user)) };
                if !is_manager(&m) {
                    return Err(denied("list applications"));
                }
                let (rows, next) = checks::cut_page(
                    store.group_applications(&g, &req.cursor, limit + 1)?,
                    limit,
                    |(u, _)| u.as_str(),
                );
                next_cursor = next;
                applications = rows.iter().map(|(u, a)| application_view(&g, u, a)).collect();
            }
            response::Result::GroupApplications(pb::GroupApplications { applications, next_cursor })
        }
    })
}
