//! Multi-device login policies (spec 12.3): which existing sessions a new
//! login ends.
//!
//! Role: a pure decision over the user's current sessions, so it is unit
//! tested without sockets. Admin sessions are never passed in (exempt).

use missive_protocol::DeviceId;
use missive_protocol::pb;

use crate::config::LoginPolicy;
use crate::node::directory::Presence;

/// Platform classes of the `per_class` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Mobile,
    Pad,
    Desktop,
    Web,
}

fn class(p: pb::Platform) -> Class {
    match p {
        pb::Platform::Ios | pb::Platform::Android => Class::Mobile,
        pb::Platform::Ipad => Class::Pad,
        pb::Platform::Web => Class::Web,
        pb::Platform::Windows | pb::Platform::Mac | pb::Platform::Linux | pb::Platform::Unspecified => {
            Class::Desktop
        }
    }
}

/// The multi-device settings a login is decided with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolicyParams {
    pub(crate) policy: LoginPolicy,
    pub(crate) web_max: usize,
    pub(crate) max_sessions: usize,
}

/// Which existing sessions (indexes into `existing`, any order) a new login
/// of `device` on `platform` ends, and why (spec 12.3).
pub(crate) fn policy_kicks(
    params: PolicyParams,
    existing: &[Presence],
    device: &DeviceId,
    platform: pb::Platform,
) -> Vec<(usize, pb::KickReason)> {
    let mut order: Vec<usize> = (0..existing.len()).collect();
    order.sort_by_key(|&i| existing[i].since_ms);
    let mut kicks = Vec::new();
    let mut kept = Vec::new();
    for &i in &order {
        let s = &existing[i];
        if &s.device == device {
            kicks.push((i, pb::KickReason::SameDevice));
            continue;
        }
        let conflict = match params.policy {
            LoginPolicy::Single => true,
            LoginPolicy::PerClass => class(s.platform) == class(platform) && class(platform) != Class::Web,
            LoginPolicy::PcWebExclusive => {
                let pc = |c: Class| matches!(c, Class::Desktop | Class::Web);
                pc(class(s.platform)) == pc(class(platform))
            }
            LoginPolicy::Multi => false,
        };
        if conflict {
            kicks.push((i, pb::KickReason::LoginElsewhere));
        } else {
            kept.push(i);
        }
    }
    // Web under per_class: keep the newest web_max - 1 existing web sessions.
    if params.policy == LoginPolicy::PerClass && class(platform) == Class::Web {
        let webs: Vec<usize> =
            kept.iter().copied().filter(|&i| class(existing[i].platform) == Class::Web).collect();
        let excess = (webs.len() + 1).saturating_sub(params.web_max);
        for &i in webs.iter().take(excess) {
            kicks.push((i, pb::KickReason::LoginElsewhere));
            kept.retain(|&k| k != i);
        }
    }
    let excess = (kept.len() + 1).saturating_sub(params.max_sessions);
    for &i in kept.iter().take(excess) {
        kicks.push((i, pb::KickReason::LoginElsewhere));
    }
    kicks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::directory::ConnRef;

    fn session(id: u64, device: &str, platform: pb::Platform) -> Presence {
        Presence {
            conn: ConnRef { worker: 0, id },
            device: DeviceId::new(device).expect("valid"),
            platform,
            since_ms: id,
            admin: false,
        }
    }

    fn kicked(policy: LoginPolicy, existing: &[Presence], device: &str, platform: pb::Platform) -> Vec<u64> {
        let params = PolicyParams { policy, web_max: 2, max_sessions: 5 };
        let mut ids: Vec<u64> =
            policy_kicks(params, existing, &DeviceId::new(device).expect("valid"), platform)
                .into_iter()
                .map(|(i, _)| existing[i].conn.id)
                .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn policies_pick_the_documented_sessions() {
        use pb::Platform::*;
        let s = [session(1, "a", Ios), session(2, "b", Windows), session(3, "c", Web), session(4, "d", Ipad)];
        assert_eq!(kicked(LoginPolicy::Multi, &s, "e", Android), Vec::<u64>::new());
        assert_eq!(kicked(LoginPolicy::Single, &s, "e", Android), vec![1, 2, 3, 4]);
        assert_eq!(kicked(LoginPolicy::PerClass, &s, "e", Android), vec![1]);
        assert_eq!(kicked(LoginPolicy::PerClass, &s, "e", Mac), vec![2]);
        assert_eq!(kicked(LoginPolicy::PerClass, &s, "e", Ipad), vec![4]);
        assert_eq!(kicked(LoginPolicy::PerClass, &s, "e", Web), Vec::<u64>::new());
        assert_eq!(kicked(LoginPolicy::PcWebExclusive, &s, "e", Linux), vec![2, 3]);
        assert_eq!(kicked(LoginPolicy::PcWebExclusive, &s, "e", Android), vec![1, 4]);
        // Same device always; web beyond web_max (2) kicks the oldest web session.
        assert_eq!(kicked(LoginPolicy::Multi, &s, "c", Web), vec![3]);
        let webs = [session(1, "a", Web), session(2, "b", Web)];
        assert_eq!(kicked(LoginPolicy::PerClass, &webs, "c", Web), vec![1]);
        // max_sessions (5) kicks the oldest beyond.
        let many: Vec<Presence> = (1..=5).map(|i| session(i, &format!("d{i}"), Linux)).collect();
        assert_eq!(kicked(LoginPolicy::Multi, &many, "x", Linux), vec![1]);
    }
}
