//! Fan-out routes: the connections a push to a list of users goes to, kept
//! per worker for the large lists the services reuse (a group's
//! `recipients()`), so a push to a 1 000-member group does not look up 1 000
//! users in the online directory for every message (issue #17, item 4).
//!
//! Role: `Worker::emit` asks [`Routes::route`] for an `Effect::Fanout`'s
//! users; lists shorter than [`MIN_USERS`] are looked up each time, as
//! before. A route is the users' online connections grouped by worker, each
//! group shared (`Arc`) by every push that uses the route, so a delivery costs
//! neither a directory lookup nor a copy of the connection list.
//!
//! Invariants:
//! - a route is used only while the directory's generation is the one read
//!   before its lookups started (`Directory::generation` moves after every
//!   session added or removed), so it targets exactly what fresh lookups
//!   would, up to a change still being applied at that instant (a session
//!   being added may miss the push and syncs, [PU-1], as with a lookup made a
//!   moment earlier; a removed one is skipped by its worker);
//! - the key is the users list's allocation, and the entry holds a clone of
//!   its `Arc`, so the address cannot be reused by another list while cached;
//! - bounded: at most [`MAX_ROUTES`] routes and [`MAX_ROUTE_IDS`] connection
//!   ids in all per worker, the oldest route dropped first; a route holds one
//!   entry per online session of its users (one route larger than the id
//!   bound alone is kept until the next one is built).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use missive_protocol::UserId;

use crate::node::directory::{ConnRef, Directory};

/// Lists of fewer users are looked up at every push (a 1:1 chat, a small
/// group: a handful of lookups cost less than keeping a route).
pub(super) const MIN_USERS: usize = 32;
/// Routes kept per worker.
pub(super) const MAX_ROUTES: usize = 1024;
/// Connection ids kept in all routes of a worker (8 bytes each: 2 MiB).
pub(super) const MAX_ROUTE_IDS: usize = 1 << 18;

/// The connections of a list's online sessions, grouped by worker.
#[derive(Debug)]
pub(super) struct Route {
    /// The list the route was built for (kept alive: it is the key).
    users: Arc<[UserId]>,
    generation: u64,
    /// (worker, connection ids on it), one group per worker with sessions.
    pub(super) groups: Vec<(usize, Arc<[u64]>)>,
}

/// One worker's routes.
#[derive(Debug, Default)]
pub(super) struct Routes {
    map: HashMap<usize, Route>,
    /// Keys in insertion order, for replacing the oldest.
    order: VecDeque<usize>,
    /// Connection ids held by all routes.
    ids: usize,
}

impl Route {
    fn ids(&self) -> usize {
        self.groups.iter().map(|(_, c)| c.len()).sum()
    }
}

/// The connections of the online sessions of `users`, except `exclude`.
pub(super) fn targets(dir: &Directory, users: &[UserId], exclude: Option<ConnRef>) -> Vec<ConnRef> {
    let mut targets = Vec::new();
    for u in users {
        dir.for_each_session(u, |p| {
            if Some(p.conn) != exclude {
                targets.push(p.conn);
            }
        });
    }
    targets
}

/// `targets` grouped by worker (workers ascending): (worker, connection ids).
pub(super) fn by_worker(mut targets: Vec<ConnRef>) -> Vec<(usize, Vec<u64>)> {
    targets.sort_unstable_by_key(|c| c.worker);
    targets
        .chunk_by(|a, b| a.worker == b.worker)
        .map(|g| (g[0].worker, g.iter().map(|c| c.id).collect()))
        .collect()
}

impl Routes {
    /// The route of `users` (at least [`MIN_USERS`] of them): the cached one
    /// while the directory is unchanged, else built now and cached.
    pub(super) fn route(&mut self, dir: &Directory, users: &Arc<[UserId]>) -> &Route {
        let key = Arc::as_ptr(users) as *const UserId as usize;
        let generation = dir.generation();
        let fresh =
            self.map.get(&key).is_some_and(|r| r.generation == generation && Arc::ptr_eq(&r.users, users));
        if !fresh {
            let groups = by_worker(targets(dir, users, None))
                .into_iter()
                .map(|(w, ids)| (w, Arc::from(ids)))
                .collect();
            let route = Route { users: Arc::clone(users), generation, groups };
            self.ids += route.ids();
            match self.map.insert(key, route) {
                Some(old) => self.ids -= old.ids(),
                None => self.order.push_back(key),
            }
            // Drop the oldest routes past the bounds (never the one just built).
            while self.order.len() > MAX_ROUTES || (self.ids > MAX_ROUTE_IDS && self.order.len() > 1) {
                let Some(old) = self.order.pop_front() else { break };
                if old == key {
                    self.order.push_back(old);
                    continue;
                }
                if let Some(r) = self.map.remove(&old) {
                    self.ids -= r.ids();
                }
            }
        }
        // Inserted above when it was not fresh.
        match self.map.get(&key) {
            Some(r) => r,
            None => unreachable!("the route was just inserted"),
        }
    }

    /// Routes held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::directory::Presence;
    use missive_protocol::DeviceId;
    use missive_protocol::pb::Platform;

    fn user(i: usize) -> UserId {
        UserId::new(format!("u{i}")).expect("user")
    }

    fn session(worker: usize, id: u64) -> Presence {
        Presence {
            conn: ConnRef { worker, id },
            device: DeviceId::new("d").expect("device"),
            platform: Platform::Ios,
            since_ms: 0,
            admin: false,
        }
    }

    fn ids(r: &Route) -> Vec<(usize, Vec<u64>)> {
        r.groups.iter().map(|(w, c)| (*w, c.to_vec())).collect()
    }

    #[test]
    fn a_route_is_reused_until_a_session_comes_or_goes() {
        let dir = Directory::new();
        let users: Arc<[UserId]> = (0..40).map(user).collect();
        dir.add(&users[0], session(1, 10));
        dir.add(&users[1], session(0, 11));
        let mut routes = Routes::default();
        assert_eq!(ids(routes.route(&dir, &users)), [(0, vec![11]), (1, vec![10])]);
        let built = routes.route(&dir, &users).groups[0].1.clone();
        assert!(
            Arc::ptr_eq(&built, &routes.route(&dir, &users).groups[0].1),
            "unchanged directory: same route"
        );

        // A new session of a member, then one of a stranger: both move the
        // generation, the route is rebuilt and stays exact.
        dir.add(&users[2], session(0, 12));
        assert_eq!(ids(routes.route(&dir, &users)), [(0, vec![11, 12]), (1, vec![10])]);
        dir.add(&user(99), session(0, 13));
        assert_eq!(ids(routes.route(&dir, &users)), [(0, vec![11, 12]), (1, vec![10])]);
        dir.remove(&users[0], ConnRef { worker: 1, id: 10 });
        assert_eq!(ids(routes.route(&dir, &users)), [(0, vec![11, 12])]);
        // Removing an absent session changes nothing.
        let g = dir.generation();
        assert!(dir.remove(&users[0], ConnRef { worker: 1, id: 10 }).is_none());
        assert_eq!(dir.generation(), g);

        // A different list with the same users is its own route.
        let copy: Arc<[UserId]> = users.iter().cloned().collect();
        assert_eq!(ids(routes.route(&dir, &copy)), [(0, vec![11, 12])]);
        assert_eq!(routes.len(), 2);
    }

    #[test]
    fn routes_are_bounded() {
        let dir = Directory::new();
        let mut routes = Routes::default();
        let lists: Vec<Arc<[UserId]>> =
            (0..MAX_ROUTES + 10).map(|i| (i..i + MIN_USERS).map(user).collect()).collect();
        for l in &lists {
            routes.route(&dir, l);
        }
        assert_eq!(routes.len(), MAX_ROUTES);
        assert_eq!(routes.order.len(), MAX_ROUTES);
    }

    #[test]
    fn routes_hold_a_bounded_number_of_connection_ids() {
        let dir = Directory::new();
        // 3 000 online members, each with one session.
        let members: Vec<UserId> = (0..3000).map(user).collect();
        for (i, u) in members.iter().enumerate() {
            dir.add(u, session(i % 2, i as u64));
        }
        let mut routes = Routes::default();
        let lists: Vec<Arc<[UserId]>> =
            (0..100).map(|k| members[k..k + 2900].iter().cloned().collect()).collect();
        for l in &lists {
            let r = routes.route(&dir, l);
            assert_eq!(r.ids(), 2900, "the route just built is complete");
        }
        assert!(routes.ids <= MAX_ROUTE_IDS, "{} ids held", routes.ids);
        assert_eq!(routes.ids, routes.map.values().map(Route::ids).sum::<usize>());
        assert_eq!(routes.len(), MAX_ROUTE_IDS / 2900);
    }

    #[test]
    fn a_lookup_leaves_out_the_excluded_connection() {
        let dir = Directory::new();
        let users: Vec<UserId> = (0..3).map(user).collect();
        dir.add(&users[0], session(0, 1));
        dir.add(&users[0], session(1, 2));
        dir.add(&users[2], session(1, 3));
        let t = targets(&dir, &users, Some(ConnRef { worker: 1, id: 2 }));
        assert_eq!(by_worker(t), [(0, vec![1]), (1, vec![3])]);
    }
}
