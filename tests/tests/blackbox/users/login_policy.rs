//! Multi-device login policies (spec 12.3): which sessions a new login ends,
//! with which `Push{kicked}` reason (naming the new login) and `Close 2005`.

use std::time::{Duration, Instant};

use missive_protocol::pb::{self, KickReason};
use missive_tests::*;

fn policy(name: &str) -> String {
    format!("[accounts]\nlogin_policy = \"{name}\"\n")
}

/// Asserts `c` was kicked with `reason` by the login of `by_device` on `by_platform`.
fn assert_kicked(c: &mut RawClient, who: &str, reason: KickReason, by_device: &str, by_platform: Platform) {
    let k = c.expect_kicked(ErrorCode::Kicked);
    assert_eq!(
        (k.reason, k.by_device.as_str(), k.by_platform),
        (reason as i32, by_device, by_platform as i32),
        "{who}: kicked with the wrong reason or login: {k:?}"
    );
}

/// Logs alice in on `device` / `platform` and asserts that this login ended
/// `old` (`who`) with LOGIN_ELSEWHERE.
fn login_kicking(
    b: &BrokerProc,
    old: &mut RawClient,
    who: &str,
    device: &str,
    platform: Platform,
) -> RawClient {
    let new = b.client_on("alice", device, platform);
    assert_kicked(old, who, KickReason::LoginElsewhere, device, platform);
    new
}

fn assert_all_alive(list: &mut [(&str, &mut RawClient)]) {
    for (who, c) in list.iter_mut() {
        assert!(c.is_alive(), "{who} must still be online (close: {:?})", c.close);
    }
}

#[test]
fn single_keeps_one_session_in_total() {
    let b = BrokerOpts::default().config(&policy("single")).spawn();
    let mut bob = b.client_on("bob", "phone", Platform::Ios);
    let mut phone = b.client_on("alice", "phone", Platform::Ios);

    let mut browser = login_kicking(&b, &mut phone, "alice/phone", "browser", Platform::Web);

    let mut desk = login_kicking(&b, &mut browser, "alice/browser", "desk", Platform::Linux);

    let mut tab = login_kicking(&b, &mut desk, "alice/desk", "tab", Platform::Ipad);

    assert_all_alive(&mut [("alice/tab", &mut tab), ("bob/phone", &mut bob)]);
    let p = must(bob.get_presence(&["alice"]), "presence");
    assert_eq!(platforms_of(&p[0]), vec![Platform::Ipad], "only the last login is online: {p:?}");
}

#[test]
fn same_device_relogin_is_kicked_with_same_device_under_every_policy() {
    for name in ["single", "per_class", "pc_web_exclusive", "multi"] {
        let b = BrokerOpts::default().config(&policy(name)).spawn();
        let mut old = b.client_on("alice", "phone", Platform::Android);
        let mut other = b.client_on("alice", "desk", Platform::Windows);
        if name == "single" {
            assert_kicked(
                &mut old,
                "single: alice/phone",
                KickReason::LoginElsewhere,
                "desk",
                Platform::Windows,
            );
            old = b.client_on("alice", "phone", Platform::Android);
            assert_kicked(
                &mut other,
                "single: alice/desk",
                KickReason::LoginElsewhere,
                "phone",
                Platform::Android,
            );
        }
        let mut new = b.client_on("alice", "phone", Platform::Android);
        assert_kicked(
            &mut old,
            &format!("{name}: old alice/phone"),
            KickReason::SameDevice,
            "phone",
            Platform::Android,
        );
        assert!(new.is_alive(), "{name}: the new session of the same device stays");
        if name != "single" {
            assert!(other.is_alive(), "{name}: a same-device login ends only that device's session");
        }
    }
}

#[test]
fn per_class_keeps_one_session_per_class_and_several_web() {
    let b = BrokerOpts::default().config(&policy("per_class")).spawn();
    let mut iphone = b.client_on("alice", "iphone", Platform::Ios);
    let mut droid = b.client_on("alice", "droid", Platform::Android);
    // ios and android are one class (mobile).
    assert_kicked(&mut iphone, "alice/iphone", KickReason::LoginElsewhere, "droid", Platform::Android);

    // ipad is its own class; desktop and web are others.
    let mut tab = b.client_on("alice", "tab", Platform::Ipad);
    let mut pc = b.client_on("alice", "pc", Platform::Windows);
    let mut web1 = b.client_on("alice", "web1", Platform::Web);
    let mut web2 = b.client_on("alice", "web2", Platform::Web);
    assert_all_alive(&mut [
        ("droid", &mut droid),
        ("tab", &mut tab),
        ("pc", &mut pc),
        ("web1", &mut web1),
        ("web2", &mut web2),
    ]);

    // windows, mac, linux are one class (desktop).
    let mut mac = login_kicking(&b, &mut pc, "alice/pc", "mac", Platform::Mac);
    let mut linux = login_kicking(&b, &mut mac, "alice/mac", "linux", Platform::Linux);

    let mut tab2 = login_kicking(&b, &mut tab, "alice/tab", "tab2", Platform::Ipad);
    let mut iphone2 = login_kicking(&b, &mut droid, "alice/droid", "iphone2", Platform::Ios);

    assert_all_alive(&mut [
        ("iphone2", &mut iphone2),
        ("tab2", &mut tab2),
        ("linux", &mut linux),
        ("web1", &mut web1),
        ("web2", &mut web2),
    ]);
    let mut bob = b.client("bob", "phone");
    let p = must(bob.get_presence(&["alice"]), "presence");
    assert_eq!(
        platforms_of(&p[0]),
        vec![Platform::Ios, Platform::Web, Platform::Linux, Platform::Ipad],
        "ascending, each once: {p:?}"
    );
}

#[test]
fn per_class_web_sessions_beyond_web_max_sessions_end_oldest_first() {
    let cfg = "[accounts]\nlogin_policy = \"per_class\"\nweb_max_sessions = 2\n";
    let b = BrokerOpts::default().config(cfg).spawn();
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    let mut w1 = b.client_on("alice", "w1", Platform::Web);
    let mut w2 = b.client_on("alice", "w2", Platform::Web);
    assert_all_alive(&mut [("w1", &mut w1), ("w2", &mut w2)]);
    let mut w3 = login_kicking(&b, &mut w1, "alice/w1 (oldest web)", "w3", Platform::Web);
    let mut w4 = login_kicking(&b, &mut w2, "alice/w2 (oldest web)", "w4", Platform::Web);
    assert_all_alive(&mut [("w3", &mut w3), ("w4", &mut w4), ("phone", &mut phone)]);
}

#[test]
fn pc_web_exclusive_desktop_and_web_kick_each_other_mobiles_kick_each_other() {
    let b = BrokerOpts::default().config(&policy("pc_web_exclusive")).spawn();
    let mut pc = b.client_on("alice", "pc", Platform::Windows);
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    assert_all_alive(&mut [("pc", &mut pc), ("phone", &mut phone)]);

    let mut browser = login_kicking(&b, &mut pc, "alice/pc", "browser", Platform::Web);
    let mut droid = login_kicking(&b, &mut phone, "alice/phone", "droid", Platform::Android);
    let mut tab = login_kicking(&b, &mut droid, "alice/droid", "tab", Platform::Ipad);
    let mut mac = login_kicking(&b, &mut browser, "alice/browser", "mac", Platform::Mac);
    let mut browser2 = login_kicking(&b, &mut mac, "alice/mac", "browser2", Platform::Web);
    // Two web sessions kick each other too.
    let mut browser3 = login_kicking(&b, &mut browser2, "alice/browser2", "browser3", Platform::Web);
    let mut phone2 = login_kicking(&b, &mut tab, "alice/tab", "phone2", Platform::Ios);

    assert_all_alive(&mut [("browser3", &mut browser3), ("phone2", &mut phone2)]);
}

#[test]
fn multi_keeps_every_platform_online() {
    let b = BrokerOpts::default().config(&policy("multi")).spawn();
    let all = [
        ("ios", Platform::Ios),
        ("android", Platform::Android),
        ("web", Platform::Web),
        ("windows", Platform::Windows),
        ("mac", Platform::Mac),
        ("linux", Platform::Linux),
        ("ipad", Platform::Ipad),
        ("ios2", Platform::Ios),
        ("web2", Platform::Web),
    ];
    let mut clients: Vec<(&str, RawClient)> =
        all.iter().map(|(d, p)| (*d, b.client_on("alice", d, *p))).collect();
    for (d, c) in clients.iter_mut() {
        assert!(c.is_alive(), "multi: alice/{d} must stay online");
    }
    let mut bob = b.client("bob", "phone");
    let p = must(bob.get_presence(&["alice"]), "presence");
    assert_eq!(
        platforms_of(&p[0]),
        vec![
            Platform::Ios,
            Platform::Android,
            Platform::Web,
            Platform::Windows,
            Platform::Mac,
            Platform::Linux,
            Platform::Ipad
        ],
        "{p:?}"
    );
}

#[test]
fn the_default_policy_is_multi() {
    let b = BrokerProc::start();
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    let mut droid = b.client_on("alice", "droid", Platform::Android);
    let mut web = b.client_on("alice", "web", Platform::Web);
    let mut pc = b.client_on("alice", "pc", Platform::Windows);
    assert_all_alive(&mut [("phone", &mut phone), ("droid", &mut droid), ("web", &mut web), ("pc", &mut pc)]);
}

#[test]
fn max_sessions_per_user_ends_the_oldest() {
    let cfg = "[accounts]\nlogin_policy = \"multi\"\nmax_sessions_per_user = 3\n";
    let b = BrokerOpts::default().config(cfg).spawn();
    let mut d1 = b.client_on("alice", "d1", Platform::Ios);
    let mut d2 = b.client_on("alice", "d2", Platform::Web);
    let mut d3 = b.client_on("alice", "d3", Platform::Linux);
    assert_all_alive(&mut [("d1", &mut d1), ("d2", &mut d2), ("d3", &mut d3)]);
    let mut d4 = login_kicking(&b, &mut d1, "alice/d1 (oldest)", "d4", Platform::Mac);
    let mut d5 = login_kicking(&b, &mut d2, "alice/d2 (oldest)", "d5", Platform::Android);
    assert_all_alive(&mut [("d3", &mut d3), ("d4", &mut d4), ("d5", &mut d5)]);
    // Another user has their own budget.
    let mut bob = b.client_on("bob", "d1", Platform::Ios);
    assert_all_alive(&mut [("bob/d1", &mut bob), ("d3", &mut d3)]);
}

#[test]
fn racing_logins_under_single_leave_exactly_one_session() {
    const N: usize = 6;
    let b = BrokerOpts::default().config(&policy("single")).spawn();
    let addr = b.addr;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(N));
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = RawClient::connect(addr);
                barrier.wait();
                let res = c.hello(&mint("alice"), &format!("dev{i}"), Platform::Linux);
                (c, res)
            })
        })
        .collect();
    let mut clients: Vec<RawClient> = Vec::new();
    for t in threads {
        let (c, res) = t.join().expect("login thread");
        match res {
            Ok(_) => clients.push(c),
            Err(close) => panic!("a login was refused instead of kicking: {close:?}"),
        }
    }
    // Every session but one is kicked (bounded wait), with a kick push.
    let deadline = Instant::now() + WAIT;
    let mut closed = vec![false; N];
    while closed.iter().filter(|c| **c).count() < N - 1 && Instant::now() < deadline {
        for (i, c) in clients.iter_mut().enumerate() {
            if !closed[i] && matches!(c.recv(Duration::from_millis(20)), Recv::Eof) {
                closed[i] = true;
            }
        }
    }
    assert_eq!(closed.iter().filter(|c| **c).count(), N - 1, "exactly one session must survive: {closed:?}");
    for (i, c) in clients.iter_mut().enumerate() {
        if closed[i] {
            let close = c.close.clone().unwrap_or_else(|| panic!("dev{i} closed without Close"));
            assert_eq!(close.code, ErrorCode::Kicked.as_u32(), "dev{i}: {close:?}");
        } else {
            assert!(c.is_alive(), "the surviving session dev{i} answers");
        }
    }
    let mut bob = b.client("bob", "phone");
    let p = must(bob.get_presence(&["alice"]), "presence");
    assert_eq!(platforms_of(&p[0]), vec![Platform::Linux], "{p:?}");
}

#[test]
fn admin_sessions_are_exempt_from_the_login_policy() {
    let b = BrokerOpts::default().config(&policy("single")).spawn();
    let mut a1 = b.admin();
    let (mut a2, res) = b.try_login(&mint_admin(ADMIN_USER), "admin-2", Platform::Web);
    res.unwrap_or_else(|c| panic!("second admin session refused: {c:?}"));
    assert_all_alive(&mut [("admin-console", &mut a1), ("admin-2", &mut a2)]);
}

#[test]
fn kicked_push_names_the_new_login_and_precedes_close() {
    // Also checks the kicked client can read nothing after the Close.
    let b = BrokerOpts::default().config(&policy("single")).spawn();
    let mut old = b.client_on("alice", "phone", Platform::Ios);
    let _new = b.client_on("alice", "tablet", Platform::Ipad);
    let k: pb::Kicked = old.expect_kicked(ErrorCode::Kicked);
    assert_eq!(k.by_device, "tablet");
    assert_eq!(k.by_platform, Platform::Ipad as i32);
    assert!(old.is_eof(), "the server closed the TCP connection after Close");
}
