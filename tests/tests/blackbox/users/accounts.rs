//! Accounts (spec 12.1): admin import, existence checks, auto-registration,
//! disabling (live sessions kicked, logins refused until re-enabled), token
//! revocation by `iat`, and admin-only requests.

use missive_protocol::pb;
use missive_tests::ws::http_get;
use missive_tests::*;

const NO_AUTO_REGISTER: &str = "[accounts]\nauto_register = false\n";

fn patch_nickname(n: &str) -> pb::ProfilePatch {
    pb::ProfilePatch { nickname: Some(n.to_owned()), ..Default::default() }
}

fn status(list: &[pb::AccountStatus]) -> Vec<(&str, bool, bool)> {
    list.iter().map(|a| (a.user_id.as_str(), a.exists, a.disabled)).collect()
}

#[test]
fn import_user_registers_once_and_accounts_exist_reports_it() {
    let b = BrokerOpts::default().config(NO_AUTO_REGISTER).spawn();
    let mut admin = b.admin();

    let p = must(admin.import_user("alice", Some(patch_nickname("Alice"))), "import alice");
    assert_eq!(p.user_id, "alice");
    assert_eq!(p.nickname, "Alice");
    let p = must(admin.import_user("bob", None), "import bob without a profile");
    assert_eq!(p.user_id, "bob");
    assert_eq!(p.nickname, "");

    // Registered once: a second import is ACCOUNT_EXISTS and keeps the profile.
    assert_error(
        admin.import_user("alice", Some(patch_nickname("Other"))),
        ErrorCode::AccountExists,
        "second import",
    );
    // Invalid id; invalid profile patch (nothing registered).
    assert_error(admin.import_user("bad id!", None), ErrorCode::InvalidArgument, "invalid user id");
    assert_error(
        admin.import_user("carol", Some(patch_nickname(&"n".repeat(65)))),
        ErrorCode::InvalidArgument,
        "nickname over 64 bytes",
    );

    let got = must(admin.accounts_exist(&["carol", "alice", "ghost", "bob"]), "accounts_exist");
    assert_eq!(
        status(&got),
        vec![("carol", false, false), ("alice", true, false), ("ghost", false, false), ("bob", true, false)],
        "one status per id, in request order; a refused import registers nothing"
    );

    // Imported users log in although auto-registration is off; others are refused.
    let mut alice = b.client_on("alice", "phone", Platform::Ios);
    b.assert_login_refused(&mint("ghost"), "phone", Platform::Ios, ErrorCode::AccountNotFound);

    // Any user may ask; the profile given at import is kept.
    let got = must(alice.accounts_exist(&["bob", "ghost"]), "accounts_exist as a user");
    assert_eq!(status(&got), vec![("bob", true, false), ("ghost", false, false)]);
    let profiles = must(alice.get_profiles(&["alice"]), "get own profile");
    assert_eq!(profiles.len(), 1, "{profiles:?}");
    assert_eq!(profiles[0].nickname, "Alice", "a refused second import must not change the profile");

    assert_batch_bounds("AccountsExist", 100, |ids| alice.accounts_exist(ids).map(|v| v.len()));
}

#[test]
fn auto_register_on_registers_at_first_login() {
    let b = BrokerProc::start();
    let mut admin = b.admin();
    let got = must(admin.accounts_exist(&["carol"]), "before login");
    assert_eq!(status(&got), vec![("carol", false, false)]);

    let mut carol = b.client_on("carol", "phone", Platform::Android);
    let got = must(admin.accounts_exist(&["carol"]), "after login");
    assert_eq!(status(&got), vec![("carol", true, false)]);

    // Registered without a stored profile: an empty one.
    let profiles = must(carol.get_profiles(&["carol"]), "get own profile");
    assert_eq!(profiles.len(), 1, "{profiles:?}");
    assert_eq!(profiles[0].user_id, "carol");
    assert_eq!(profiles[0].nickname, "");
    assert_eq!(profiles[0].updated_ms, 0, "never set: {:?}", profiles[0]);

    assert_error(
        admin.import_user("carol", None),
        ErrorCode::AccountExists,
        "import after auto-registration",
    );
}

#[test]
fn auto_register_off_refuses_unknown_users_with_2006() {
    let b = BrokerOpts::default().config(NO_AUTO_REGISTER).spawn();
    b.assert_login_refused(&mint("dave"), "phone", Platform::Ios, ErrorCode::AccountNotFound);
    // Admin sessions are exempt from the account checks.
    let mut admin = b.admin();
    let got = must(admin.accounts_exist(&["dave"]), "refused login registers nothing");
    assert_eq!(status(&got), vec![("dave", false, false)]);
    must(admin.import_user("dave", None), "import dave");
    let mut dave = b.client_on("dave", "phone", Platform::Ios);
    assert!(dave.is_alive());
}

#[test]
fn admin_only_requests_are_denied_to_users() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let _bob = b.client("bob", "phone");

    assert_error(alice.import_user("zed", None), ErrorCode::PermissionDenied, "ImportUser as a user");
    assert_error(
        alice.set_account_disabled("bob", true, "x"),
        ErrorCode::PermissionDenied,
        "disable as a user",
    );
    assert_error(alice.revoke_tokens("bob"), ErrorCode::PermissionDenied, "revoke as a user");
    assert_error(
        alice.import_friendship("alice", "bob"),
        ErrorCode::PermissionDenied,
        "ImportFriendship as a user",
    );
    // Not closing, nothing changed.
    assert!(alice.is_alive(), "2003 does not close");
    let got = must(alice.accounts_exist(&["zed", "bob"]), "accounts_exist");
    assert_eq!(status(&got), vec![("zed", false, false), ("bob", true, false)]);
    let rel = alice.relation("bob");
    assert!(!rel.is_friend && !rel.peer_has_me, "a denied import changes nothing: {rel:?}");
    let mut bob2 = b.client("bob", "laptop");
    assert!(bob2.is_alive(), "bob was neither disabled nor revoked");
}

#[test]
fn disable_kicks_every_session_and_refuses_logins_until_enabled() {
    let mut b = BrokerProc::start();
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    let mut laptop = b.client_on("alice", "laptop", Platform::Mac);
    let mut bob = b.client_on("bob", "phone", Platform::Android);
    let mut admin = b.admin();
    must(bob.subscribe_presence(&["alice"]), "bob watches alice");

    assert_error(admin.set_account_disabled("ghost", true, ""), ErrorCode::UserNotFound, "unregistered user");
    assert_error(
        admin.set_account_disabled("alice", true, &"r".repeat(257)),
        ErrorCode::InvalidArgument,
        "reason over 256 bytes",
    );
    assert!(phone.is_alive(), "a refused disable changes nothing");

    must(admin.set_account_disabled("alice", true, "spam reports"), "disable alice");
    for (who, c) in [("phone", &mut phone), ("laptop", &mut laptop)] {
        let k = c.expect_kicked(ErrorCode::AccountDisabled);
        assert_eq!(k.reason, pb::KickReason::AccountDisabled as i32, "{who}: {k:?}");
        assert_eq!(k.message, "spam reports", "{who}: the admin's reason is shown");
    }
    assert!(bob.is_alive(), "other users are not affected");
    let p = bob.expect_presence_push("alice", |p| !p.online);
    assert!(p.platforms.is_empty(), "a disabled user's kicked sessions go offline: {p:?}");

    b.assert_login_refused(&mint("alice"), "phone", Platform::Ios, ErrorCode::AccountDisabled);
    b.assert_login_refused(&mint("alice"), "new-device", Platform::Web, ErrorCode::AccountDisabled);
    let got = must(bob.accounts_exist(&["alice"]), "status");
    assert_eq!(status(&got), vec![("alice", true, true)]);

    // Idempotent.
    must(admin.set_account_disabled("alice", true, "again"), "disable twice");

    // Persistent across a restart.
    b.restart();
    b.assert_login_refused(&mint("alice"), "phone", Platform::Ios, ErrorCode::AccountDisabled);
    let mut admin = b.admin();
    let got = must(admin.accounts_exist(&["alice"]), "status after restart");
    assert_eq!(status(&got), vec![("alice", true, true)]);

    must(admin.set_account_disabled("alice", false, ""), "enable alice");
    let got = must(admin.accounts_exist(&["alice"]), "status after enable");
    assert_eq!(status(&got), vec![("alice", true, false)]);
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    assert!(phone.is_alive());
    must(admin.set_account_disabled("alice", false, ""), "enable twice");
    assert!(phone.is_alive(), "enabling again does not kick");
}

#[test]
fn revoke_tokens_refuses_tokens_issued_up_to_now() {
    let mut b = BrokerProc::start();
    let mut phone = b.client_on("alice", "phone", Platform::Ios);
    let mut web = b.client_on("alice", "browser", Platform::Web);
    let mut bob = b.client("bob", "phone");
    let mut admin = b.admin();

    assert_error(admin.revoke_tokens("ghost"), ErrorCode::UserNotFound, "unregistered user");
    assert_error(admin.revoke_tokens("not valid"), ErrorCode::InvalidArgument, "invalid id");

    let before = now_secs();
    must(admin.revoke_tokens("alice"), "revoke alice");
    let after = now_secs();
    for (who, c) in [("phone", &mut phone), ("browser", &mut web)] {
        let k = c.expect_kicked(ErrorCode::TokenRevoked);
        assert_eq!(k.reason, pb::KickReason::TokensRevoked as i32, "{who}: {k:?}");
    }
    assert!(bob.is_alive(), "other users keep their sessions");

    // Old tokens (iat two minutes ago) and a token of the revocation second are refused.
    b.assert_login_refused(&mint("alice"), "phone", Platform::Ios, ErrorCode::TokenRevoked);
    b.assert_login_refused(&mint_issued_at("alice", before), "phone", Platform::Ios, ErrorCode::TokenRevoked);
    // A token from a later second works at once.
    let (mut c, res) = b.try_login(&mint_issued_at("alice", after + 1), "phone", Platform::Ios);
    res.unwrap_or_else(|c| panic!("token with iat after the revocation refused: {c:?}"));
    assert!(c.is_alive());
    drop(c);
    // The usual flow: wait for the next second, mint with iat = now.
    while now_secs() <= after {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let fresh = mint_issued_at("alice", now_secs());
    let (mut c, res) = b.try_login(&fresh, "phone", Platform::Ios);
    res.unwrap_or_else(|c| panic!("freshly minted token refused: {c:?}"));
    assert!(c.is_alive());
    drop(c);

    // Persistent across a restart.
    b.restart();
    b.assert_login_refused(&mint("alice"), "phone", Platform::Ios, ErrorCode::TokenRevoked);
    b.assert_login_refused(&mint_issued_at("alice", before), "phone", Platform::Ios, ErrorCode::TokenRevoked);
    let (mut c, res) = b.try_login(&fresh, "laptop", Platform::Linux);
    res.unwrap_or_else(|c| panic!("fresh token refused after restart: {c:?}"));
    assert!(c.is_alive());
}

#[test]
fn disabled_check_comes_before_the_revocation_check() {
    // [A-2]: 8 registered, 9 not disabled, 10 not revoked.
    let b = BrokerOpts::default().config(NO_AUTO_REGISTER).spawn();
    let mut admin = b.admin();
    must(admin.import_user("alice", None), "import");
    must(admin.revoke_tokens("alice"), "revoke");
    must(admin.set_account_disabled("alice", true, ""), "disable");
    b.assert_login_refused(&mint("alice"), "phone", Platform::Ios, ErrorCode::AccountDisabled);
    b.assert_login_refused(&mint("nobody"), "phone", Platform::Ios, ErrorCode::AccountNotFound);
}

/// Issue 14: a dev token fetched right after RevokeTokens logs in ([A-5],
/// [W-9]): it is minted now, with a millisecond `iat`, and the revocation
/// instant is kept to the millisecond. A dev token fetched before the
/// revocation is refused.
#[test]
fn dev_token_fetched_right_after_revoke_tokens_logs_in() {
    let b = BrokerOpts::default().config("[web]\ndev_mode = true\n").spawn();
    let ws = b.listening.ws();
    let dev_token = || {
        let (status, _, body) = http_get(ws, "/api/dev-token?user=alice");
        assert_eq!(status, 200, "dev token");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        v["token"].as_str().expect("token").to_owned()
    };
    let old = dev_token();
    let (mut phone, res) = b.try_login(&old, "phone", Platform::Ios);
    res.unwrap_or_else(|c| panic!("dev token refused before any revocation: {c:?}"));
    let mut admin = b.admin();

    let before = now_secs();
    must(admin.revoke_tokens("alice"), "revoke alice");
    phone.expect_kicked(ErrorCode::TokenRevoked);
    // The revocation instant R is at most the millisecond the ack was read;
    // a token minted in a later millisecond is after R. (One millisecond, not
    // the one second an integer `iat` needs.)
    let acked = now_ms();
    for _ in 0..1_000_000 {
        if now_ms() > acked {
            break;
        }
        std::hint::spin_loop();
    }
    let fresh = dev_token();
    let (mut c, res) = b.try_login(&fresh, "phone", Platform::Ios);
    res.unwrap_or_else(|c| panic!("dev token fetched right after the revocation refused: {c:?}"));
    assert!(c.is_alive());
    b.assert_login_refused(&old, "laptop", Platform::Mac, ErrorCode::TokenRevoked);
    // An integer `iat` of the revocation's second stays refused.
    b.assert_login_refused(
        &mint_issued_at("alice", before),
        "laptop",
        Platform::Mac,
        ErrorCode::TokenRevoked,
    );
}
