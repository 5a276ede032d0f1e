//! Presence (spec 12.4): online state with platforms, custom status text,
//! persistent bounded subscriptions and presence pushes.

use missive_protocol::pb::push;
use missive_tests::*;

fn is_presence_of(user: &str) -> impl FnMut(&push::Event) -> bool + '_ {
    move |ev| matches!(ev, push::Event::Presence(p) if p.user_id == user)
}

#[test]
fn get_presence_reports_online_state_and_platforms() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    must(admin.import_user("carol", None), "import carol");
    let alice_phone = b.client_on("alice", "phone", Platform::Ios);
    let _alice_desk = b.client_on("alice", "desk", Platform::Linux);
    let alice_phone2 = b.client_on("alice", "phone2", Platform::Ios);
    let mut bob = b.client_on("bob", "phone", Platform::Android);

    let got = must(bob.get_presence(&["carol", "alice", "ghost", "bob"]), "get presence");
    let users: Vec<&str> = got.iter().map(|p| p.user_id.as_str()).collect();
    assert_eq!(users, ["carol", "alice", "ghost", "bob"], "one per id, in request order");
    let alice = presence_of(&got, "alice");
    assert!(alice.online, "{alice:?}");
    assert_eq!(platforms_of(alice), vec![Platform::Ios, Platform::Linux], "ascending, each once");
    assert!(alice.changed_ms > 0, "{alice:?}");
    let carol = presence_of(&got, "carol");
    assert!(!carol.online && carol.platforms.is_empty(), "registered, offline: {carol:?}");
    let ghost = presence_of(&got, "ghost");
    assert!(!ghost.online && ghost.platforms.is_empty(), "unregistered users are offline: {ghost:?}");
    let me = presence_of(&got, "bob");
    assert!(me.online, "{me:?}");
    assert_eq!(platforms_of(me), vec![Platform::Android]);

    // Admin sessions publish no presence.
    let p = must(bob.get_presence(&[ADMIN_USER]), "admin presence");
    assert!(!p[0].online, "admin sessions publish no presence: {p:?}");

    assert_batch_bounds("GetPresence", 100, |ids| bob.get_presence(ids).map(|v| v.len()));

    // Going offline: platforms stay while another session of the platform is up.
    drop(alice_phone);
    drop(alice_phone2);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let p = must(bob.get_presence(&["alice"]), "presence");
        if platforms_of(&p[0]) == vec![Platform::Linux] {
            assert!(p[0].online);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "presence after both iOS sessions ended: {p:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn subscribe_gets_current_state_then_pushes_on_every_change() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    must(admin.import_user("alice", None), "import alice");
    let mut bob = b.client_on("bob", "phone", Platform::Android);
    let mut bob_desk = b.client_on("bob", "desk", Platform::Mac);

    let now = must(bob.subscribe_presence(&["alice"]), "subscribe");
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].user_id, "alice");
    assert!(!now[0].online, "alice is offline: {now:?}");

    // Login.
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    let p = bob.expect_presence_push("alice", |p| p.online);
    assert_eq!(platforms_of(&p), vec![Platform::Ios], "{p:?}");
    assert!(p.changed_ms > 0);
    // Every online device of the subscriber gets it.
    let p = bob_desk.expect_presence_push("alice", |p| p.online);
    assert_eq!(platforms_of(&p), vec![Platform::Ios], "{p:?}");

    // A second platform; the user's own other device hears about itself too.
    let mut web = b.client_on("alice", "browser", Platform::Web);
    let p = bob.expect_presence_push("alice", |p| p.platforms.len() == 2);
    assert_eq!(platforms_of(&p), vec![Platform::Ios, Platform::Web]);
    let own = phone.expect_presence_push("alice", |p| p.platforms.len() == 2);
    assert_eq!(platforms_of(&own), vec![Platform::Ios, Platform::Web]);

    // Custom status.
    must(web.set_presence_status("in a meeting"), "set status");
    let p = bob.expect_presence_push("alice", |p| !p.status_text.is_empty());
    assert_eq!(p.status_text, "in a meeting");
    assert!(p.online);
    let own = phone.expect_presence_push("alice", |p| !p.status_text.is_empty());
    assert_eq!(own.status_text, "in a meeting");
    let got = must(bob.get_presence(&["alice"]), "get presence");
    assert_eq!(got[0].status_text, "in a meeting");
    assert_error(
        web.set_presence_status(&"s".repeat(257)),
        ErrorCode::InvalidArgument,
        "status over 256 bytes",
    );
    must(web.set_presence_status(""), "clear status");
    let p = bob.expect_presence_push("alice", |p| p.status_text.is_empty());
    assert!(p.online, "{p:?}");

    // Logouts.
    drop(web);
    let p = bob.expect_presence_push("alice", |p| p.platforms.len() == 1);
    assert_eq!(platforms_of(&p), vec![Platform::Ios]);
    assert!(p.online);
    drop(phone);
    let p = bob.expect_presence_push("alice", |p| !p.online);
    assert!(p.platforms.is_empty(), "{p:?}");
    let p = bob_desk.expect_presence_push("alice", |p| !p.online);
    assert!(p.platforms.is_empty(), "{p:?}");

    // Subscribing again is not an error; list shows it once.
    must(bob.subscribe_presence(&["alice"]), "subscribe again");
    let list = must(bob.list_presence_subscriptions(), "list");
    let users: Vec<&str> = list.iter().map(|p| p.user_id.as_str()).collect();
    assert_eq!(users, ["alice"]);
}

#[test]
fn unsubscribe_stops_pushes() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    for u in ["alice", "carol", "dave"] {
        must(admin.import_user(u, None), "import");
    }
    let mut bob = b.client("bob", "phone");
    let got = must(bob.subscribe_presence(&["dave", "alice", "carol"]), "subscribe");
    let users: Vec<&str> = got.iter().map(|p| p.user_id.as_str()).collect();
    assert_eq!(users, ["dave", "alice", "carol"], "current state of each, in request order");
    let list = must(bob.list_presence_subscriptions(), "list");
    let users: Vec<&str> = list.iter().map(|p| p.user_id.as_str()).collect();
    assert_eq!(users, ["alice", "carol", "dave"], "ascending by user id");

    must(bob.unsubscribe_presence(&["alice", "dave"]), "unsubscribe");
    must(bob.unsubscribe_presence(&["alice"]), "unsubscribing a user not subscribed is fine");
    let list = must(bob.list_presence_subscriptions(), "list");
    let users: Vec<&str> = list.iter().map(|p| p.user_id.as_str()).collect();
    assert_eq!(users, ["carol"]);

    let _alice = b.client("alice", "phone");
    // Barrier: carol's login comes after alice's; bob gets carol's push and
    // must have got nothing about alice meanwhile.
    let _carol = b.client("carol", "phone");
    bob.expect_presence_push("carol", |p| p.online);
    bob.assert_no_push("presence of an unsubscribed user", QUIET, is_presence_of("alice"));
}

#[test]
fn subscription_list_is_bounded_and_refuses_self() {
    let b = BrokerOpts::default().config("[relations]\nmax_subscriptions = 3\n").spawn();
    let mut admin = b.admin();
    for u in ["u1", "u2", "u3", "u4", "u5"] {
        must(admin.import_user(u, None), "import");
    }
    let mut bob = b.client("bob", "phone");
    must(bob.subscribe_presence(&["u1", "u2"]), "two");
    assert_error(bob.subscribe_presence(&["u3", "u4"]), ErrorCode::SubscriptionLimit, "would be four");
    let list = must(bob.list_presence_subscriptions(), "list");
    let users: Vec<&str> = list.iter().map(|p| p.user_id.as_str()).collect();
    assert_eq!(users, ["u1", "u2"], "a refused request changes nothing");

    must(bob.subscribe_presence(&["u1", "u3"]), "u1 again and u3: three in total");
    must(bob.subscribe_presence(&["u2"]), "again at the limit: not an error");
    assert_error(bob.subscribe_presence(&["u5"]), ErrorCode::SubscriptionLimit, "a fourth");
    must(bob.unsubscribe_presence(&["u1"]), "unsubscribe one");
    must(bob.subscribe_presence(&["u5"]), "room again");
    let list = must(bob.list_presence_subscriptions(), "list");
    let users: Vec<&str> = list.iter().map(|p| p.user_id.as_str()).collect();
    assert_eq!(users, ["u2", "u3", "u5"]);

    assert_error(bob.subscribe_presence(&["bob"]), ErrorCode::SelfTarget, "self");
    assert_error(bob.subscribe_presence(&[]), ErrorCode::InvalidArgument, "no ids");
    assert_error(bob.subscribe_presence(&["not valid"]), ErrorCode::InvalidArgument, "invalid id");
}

#[test]
fn subscriptions_and_status_survive_a_restart() {
    let mut b = BrokerProc::start();
    let mut admin = b.admin();
    must(admin.import_user("carol", None), "import carol");
    drop(admin);
    {
        let mut alice = b.client("alice", "phone");
        must(alice.set_presence_status("on holiday"), "status");
    }
    {
        let mut bob = b.client("bob", "phone");
        must(bob.subscribe_presence(&["carol", "alice"]), "subscribe");
    }
    b.restart();

    let mut bob = b.client("bob", "phone");
    let list = must(bob.list_presence_subscriptions(), "list after restart");
    let users: Vec<&str> = list.iter().map(|p| p.user_id.as_str()).collect();
    assert_eq!(users, ["alice", "carol"]);
    assert_eq!(presence_of(&list, "alice").status_text, "on holiday", "status text is persistent");
    assert!(!presence_of(&list, "alice").online);

    // Pushes flow without subscribing again.
    let _alice = b.client_on("alice", "phone", Platform::Web);
    let p = bob.expect_presence_push("alice", |p| p.online);
    assert_eq!(platforms_of(&p), vec![Platform::Web]);
    assert_eq!(p.status_text, "on holiday");
}

#[test]
fn presence_pushes_are_not_in_the_sync_feed() {
    // [PS-4]: best effort. A subscriber that was offline learns the state by reading it.
    let b = BrokerProc::start();
    let mut bob = b.client("bob", "phone");
    must(bob.subscribe_presence(&["alice"]), "subscribe");
    let token = bob.sync_full("").token;
    drop(bob);
    let alice = b.client_on("alice", "phone", Platform::Mac);
    let mut bob = b.client("bob", "phone");
    let later = bob.sync_full(&token);
    assert!(later.relations.is_empty() && later.profiles.is_empty(), "{later:?}");
    let list = must(bob.list_presence_subscriptions(), "list");
    assert!(presence_of(&list, "alice").online, "{list:?}");
    assert_eq!(platforms_of(presence_of(&list, "alice")), vec![Platform::Mac]);
    drop(alice);
}
