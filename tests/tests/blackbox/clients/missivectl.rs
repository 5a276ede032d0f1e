//! `missivectl` as a black box: the real binary (built by `missive-tools`)
//! against a real broker. Checks the stable `--json` output, the exit status
//! of server-reported errors, and the effects of each subcommand as seen by a
//! raw protocol client.
//!
//! The binary is looked up next to the broker binary (same `target/release`);
//! `cargo test --release --workspace` builds it, a single-package test run
//! does not (then build it with `cargo build --release -p missive-tools`).
//! `$MISSIVECTL` overrides the path.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use missive_protocol::token::{self, Role};
use missive_tests::*;
use serde_json::Value;

/// Bound on one missivectl run (its own `--timeout`s are far below this).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn missivectl() -> PathBuf {
    if let Some(p) = std::env::var_os("MISSIVECTL") {
        return PathBuf::from(p);
    }
    let broker = broker_binary();
    let dir = broker.parent().expect("broker binary directory");
    let bin = dir.join(format!("missivectl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "missivectl not found at {}: run cargo build --release -p missive-tools (or set MISSIVECTL)",
        bin.display()
    );
    bin
}

/// The outcome of one missivectl run.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_ok(&self, what: &str) -> &Self {
        assert!(self.status.success(), "{what}: missivectl failed with {:?}: {self:#?}", self.status);
        self
    }

    /// stdout as JSON objects, one per non-empty line.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line {l:?} is not JSON ({e}); run: {self:#?}"))
            })
            .collect()
    }

    /// The only JSON line of stdout.
    fn json(&self) -> Value {
        let mut lines = self.json_lines();
        assert_eq!(lines.len(), 1, "expected one JSON line: {self:#?}");
        lines.remove(0)
    }
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Starts missivectl with `args`, stdout and stderr piped; no MISSIVE_*
/// variables leak in from the environment.
fn spawn(args: &[&str]) -> Child {
    Command::new(missivectl())
        .args(args)
        .env_remove("MISSIVE_ADDR")
        .env_remove("MISSIVE_TOKEN")
        .env_remove("MISSIVE_SECRET")
        .env_remove("MISSIVE_QUIC")
        .env_remove("MISSIVE_CERT_SHA256")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn missivectl")
}

/// Runs missivectl with `args` (bounded by [`RUN_TIMEOUT`]).
fn run(args: &[&str]) -> Run {
    let mut child = spawn(args);
    let out = reader(child.stdout.take().expect("stdout piped"));
    let err = reader(child.stderr.take().expect("stderr piped"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait().expect("try_wait missivectl") {
            Some(s) => break Some(s),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    match status {
        Some(status) => Run { status, stdout, stderr },
        None => panic!(
            "missivectl {args:?} still running after {RUN_TIMEOUT:?}; stdout:\n{stdout}\nstderr:\n{stderr}"
        ),
    }
}

/// Runs `missivectl <cmd> --json --addr .. --token .. --device <device> <extra..>`.
fn run_as(b: &BrokerProc, token: &str, device: &str, cmd: &str, extra: &[&str]) -> Run {
    let addr = b.addr.to_string();
    let mut args = vec![cmd, "--json", "--addr", &addr, "--token", token, "--device", device];
    args.extend_from_slice(extra);
    run(&args)
}

fn u64_field(v: &Value, field: &str) -> u64 {
    v.get(field).and_then(Value::as_u64).unwrap_or_else(|| panic!("no integer field {field:?} in {v}"))
}

fn str_field<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or_else(|| panic!("no string field {field:?} in {v}"))
}

#[test]
fn token_output_verifies() {
    let plain = run(&["token", "--secret", SECRET, "--user", "alice"]);
    plain.assert_ok("token");
    let t = plain.stdout.trim();
    assert_eq!(plain.stdout.lines().count(), 1, "one token line: {plain:#?}");
    let claims = token::verify(SECRET.as_bytes(), t, now_secs()).expect("minted token verifies");
    assert_eq!(claims.user.as_str(), "alice");
    assert_eq!(claims.role, Role::User);
    assert!(claims.device.is_none() && claims.platform.is_none(), "unrestricted token: {claims:?}");
    assert!(claims.expires_at > now_secs(), "default ttl is in the future: {claims:?}");
    assert!(
        token::verify(b"some-other-secret-0123456789abcdef", t, now_secs()).is_err(),
        "the token must not verify with another secret"
    );

    let j = run(&[
        "token",
        "--json",
        "--secret",
        SECRET,
        "--user",
        "bob",
        "--ttl",
        "600",
        "--role",
        "admin",
        "--device",
        "phone",
        "--platform",
        "ios",
    ]);
    j.assert_ok("token --json");
    let v = j.json();
    assert_eq!(str_field(&v, "user"), "bob");
    let claims =
        token::verify(SECRET.as_bytes(), str_field(&v, "token"), now_secs()).expect("json token verifies");
    assert_eq!(claims.user.as_str(), "bob");
    assert_eq!(claims.role, Role::Admin);
    assert_eq!(claims.device.as_ref().map(|d| d.as_str()), Some("phone"));
    assert_eq!(claims.platform, Some(Platform::Ios));
    assert_eq!(claims.expires_at, u64_field(&v, "expires_at"));
    assert_eq!(claims.expires_at - claims.issued_at_ms / 1000, 600, "{claims:?}");
}

#[test]
fn ping_json_with_a_minted_token() {
    let b = BrokerProc::start();
    let minted = run(&["token", "--secret", SECRET, "--user", "alice"]);
    minted.assert_ok("token");
    let r = run_as(&b, minted.stdout.trim(), "cli", "ping", &[]);
    r.assert_ok("ping");
    let v = r.json();
    assert!(u64_field(&v, "server_time_ms") > 0, "{v}");
    assert_eq!(str_field(&v, "user"), "alice");
    assert!(v.get("rtt_us").and_then(Value::as_u64).is_some(), "{v}");
    assert!(v.get("session_id").is_some(), "{v}");
}

#[test]
fn ping_over_raw_quic_and_its_bad_input() {
    let b = BrokerOpts::default().config("quic = \"127.0.0.1:0\"\n").spawn();
    let quic = b.listening.quic.expect("quic=").to_string();
    let hash = b.listening.fields.get("cert_sha256").expect("cert_sha256=").clone();
    let tok = mint("alice");
    let ping = |extra: &[&str]| {
        let mut args = vec!["--json", "ping", "--token", tok.as_str()];
        args.extend_from_slice(extra);
        run(&args)
    };
    let r = ping(&["--quic", &quic, "--cert-sha256", &hash]);
    r.assert_ok("ping over QUIC");
    assert_eq!(str_field(&r.json(), "user"), "alice");
    // --quic needs the pin, and excludes --addr (usage errors: status 2).
    let r = ping(&["--quic", &quic]);
    assert_eq!(r.status.code(), Some(2), "{r:#?}");
    let tcp = b.listening.tcp.to_string();
    let r = ping(&["--quic", &quic, "--cert-sha256", &hash, "--addr", &tcp]);
    assert_eq!(r.status.code(), Some(2), "{r:#?}");
    // A malformed pin and a wrong one fail before any session (status 1).
    let r = ping(&["--quic", &quic, "--cert-sha256", "xyz"]);
    assert_eq!(r.status.code(), Some(1), "{r:#?}");
    assert!(r.stderr.contains("64 hex digits"), "stderr: {:?}", r.stderr);
    let wrong = "00".repeat(32);
    let r = ping(&["--quic", &quic, "--cert-sha256", &wrong]);
    assert_eq!(r.status.code(), Some(1), "{r:#?}");
    assert!(r.stdout.trim().is_empty(), "nothing on stdout: {r:#?}");
}

#[test]
fn ping_over_tls_with_a_pin_or_a_ca_file() {
    let dir = tempfile::tempdir().expect("cert dir");
    let cert = tls::write_cert(dir.path());
    let toml = format!("tcp_tls = \"127.0.0.1:0\"\n[web]\n{}", cert.web_toml());
    let b = BrokerOpts::default().config(&toml).spawn();
    let tls = b.listening.fields.get("tcp_tls").expect("tcp_tls=").clone();
    let tok = mint("alice");
    let ping = |extra: &[&str]| {
        let mut args = vec!["--json", "ping", "--token", tok.as_str(), "--tls", tls.as_str()];
        args.extend_from_slice(extra);
        run(&args)
    };
    let r = ping(&["--cert-sha256", &cert.sha256]);
    r.assert_ok("ping over TLS with a pin");
    assert_eq!(str_field(&r.json(), "user"), "alice");
    let ca = cert.cert.to_string_lossy().into_owned();
    let r = ping(&["--ca", &ca, "--server-name", "localhost"]);
    r.assert_ok("ping over TLS with a CA file");
    // A certificate for another name is refused (status 1); no way to trust it is a usage error.
    let r = ping(&["--ca", &ca, "--server-name", "chat.example.com"]);
    assert_eq!(r.status.code(), Some(1), "{r:#?}");
    let r = ping(&[]);
    assert_eq!(r.status.code(), Some(2), "{r:#?}");
}

#[test]
fn forged_token_exits_with_status_2() {
    let b = BrokerProc::start();
    let forged = mint_with("not-the-broker-secret-0123456789abcdef", "alice", 3600, None, None);
    let r = run_as(&b, &forged, "cli", "ping", &[]);
    assert_eq!(r.status.code(), Some(2), "{r:#?}");
    assert!(r.stderr.contains("TOKEN_INVALID (2000)"), "stderr: {:?}", r.stderr);
    assert!(r.stdout.trim().is_empty(), "nothing on stdout: {r:#?}");
}

#[test]
fn send_tail_history_read_round_trip() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let alice = mint("alice");
    let bob = mint("bob");

    for (seq, text) in [(1, "hello bob"), (2, "second message")] {
        let r = run_as(&b, &alice, "cli", "send", &["--to", "bob", text]);
        r.assert_ok("send");
        let v = r.json();
        assert_eq!(u64_field(&v, "seq"), seq, "{v}");
        assert_eq!(str_field(&v, "conv"), conv);
        assert_eq!(v.get("duplicate").and_then(Value::as_bool), Some(false), "{v}");
        assert!(u64_field(&v, "server_msg_id") > 0, "{v}");
    }

    // Bob's tail prints both pending messages, then exits at --count.
    let r = run_as(&b, &bob, "cli", "tail", &["--count", "2", "--timeout", "10"]);
    r.assert_ok("tail");
    let lines = r.json_lines();
    let got: Vec<(u64, &str, &str, &str)> = lines
        .iter()
        .map(|v| (u64_field(v, "seq"), str_field(v, "text"), str_field(v, "from"), str_field(v, "conv")))
        .collect();
    assert_eq!(
        got,
        vec![(1, "hello bob", "alice", conv.as_str()), (2, "second message", "alice", conv.as_str())],
        "tail output: {r:#?}"
    );

    // History as alice: oldest first.
    let r = run_as(&b, &alice, "cli", "history", &["--with", "bob"]);
    r.assert_ok("history");
    let got: Vec<(u64, String)> =
        r.json_lines().iter().map(|v| (u64_field(v, "seq"), str_field(v, "text").to_owned())).collect();
    assert_eq!(got, vec![(1, "hello bob".to_owned()), (2, "second message".to_owned())], "{r:#?}");

    // Bob reads up to 2: alice's view shows the peer's read position.
    let r = run_as(&b, &bob, "cli", "read", &["--with", "alice", "--seq", "2"]);
    r.assert_ok("read");
    let v = r.json();
    assert_eq!(str_field(&v, "conv"), conv);
    assert_eq!(
        (u64_field(&v, "read_seq"), u64_field(&v, "unread"), u64_field(&v, "max_seq")),
        (2, 0, 2),
        "{v}"
    );

    let mut raw = b.client("alice", "phone");
    let synced = raw.sync_all("");
    let s = synced.conv(&conv).unwrap_or_else(|| panic!("alice's sync lacks {conv}: {synced:?}"));
    assert_eq!(s.peer_read_seq, 2, "{s:?}");
    assert_eq!(s.max_seq, 2, "{s:?}");

    // Each send was stored exactly once.
    let all = raw.pull_all(&conv);
    assert_dense(&all, 1, 2, "alice's pull");
}

#[test]
fn tail_with_state_resumes_after_the_last_printed_message() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    for i in 1..=3u64 {
        assert_eq!(alice.send_ok(&conv, &format!("m-{i}"), &format!("text {i}")).seq, i);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("tail-state.json");
    let state_arg = state.to_str().expect("utf-8 temp path");
    let bob = mint("bob");

    let r = run_as(&b, &bob, "cli", "tail", &["--count", "1", "--timeout", "10", "--state", state_arg]);
    r.assert_ok("first tail");
    let seqs: Vec<u64> = r.json_lines().iter().map(|v| u64_field(v, "seq")).collect();
    assert_eq!(seqs, vec![1], "{r:#?}");
    assert!(state.exists(), "tail --state wrote {}", state.display());

    // The next tail prints what the first did not, and nothing twice.
    let r = run_as(&b, &bob, "cli", "tail", &["--count", "2", "--timeout", "10", "--state", state_arg]);
    r.assert_ok("second tail");
    let got: Vec<(u64, String)> =
        r.json_lines().iter().map(|v| (u64_field(v, "seq"), str_field(v, "text").to_owned())).collect();
    assert_eq!(got, vec![(2, "text 2".to_owned()), (3, "text 3".to_owned())], "{r:#?}");
}

// ------------------------------------------------------------------------
// user, friend, black, presence (issue #5)
// ------------------------------------------------------------------------

/// Runs `missivectl <path..> --json --addr .. --token .. --device <device> <extra..>`.
fn run_sub(b: &BrokerProc, token: &str, device: &str, path: &[&str], extra: &[&str]) -> Run {
    let addr = b.addr.to_string();
    let mut args: Vec<&str> = path.to_vec();
    args.extend_from_slice(&["--json", "--addr", &addr, "--token", token, "--device", device]);
    args.extend_from_slice(extra);
    run(&args)
}

/// Asserts the run failed with a server error: exit status 2 and
/// `error: NAME (code)` on stderr.
fn assert_server_error(r: &Run, code: ErrorCode) {
    assert_eq!(r.status.code(), Some(2), "{r:#?}");
    let needle = format!("{} ({})", code.name(), code.as_u32());
    assert!(r.stderr.contains(&needle), "stderr lacks {needle:?}: {:?}", r.stderr);
    assert!(r.stdout.trim().is_empty(), "nothing on stdout: {r:#?}");
}

fn bool_field(v: &Value, field: &str) -> bool {
    v.get(field).and_then(Value::as_bool).unwrap_or_else(|| panic!("no bool field {field:?} in {v}"))
}

fn admin_token() -> String {
    let r = run(&["token", "--secret", SECRET, "--user", "ops", "--role", "admin"]);
    r.assert_ok("admin token");
    r.stdout.trim().to_owned()
}

#[test]
fn user_commands_import_exists_profiles_disable_revoke() {
    let b = BrokerOpts::default().config("[accounts]\nauto_register = false\n").spawn();
    let admin = admin_token();

    let r = run_sub(
        &b,
        &admin,
        "ops",
        &["user", "import"],
        &[
            "alice",
            "--nickname",
            "Alice",
            "--gender",
            "female",
            "--ex",
            "city=Paris",
            "--verification",
            "allow_anyone",
        ],
    );
    r.assert_ok("user import");
    let v = r.json();
    assert_eq!(
        (str_field(&v, "user"), str_field(&v, "nickname"), str_field(&v, "gender")),
        ("alice", "Alice", "female"),
        "{v}"
    );
    assert_eq!(str_field(&v, "friend_verification"), "allow_anyone");
    assert_eq!(v["ex"]["city"], "Paris", "{v}");
    run_sub(&b, &admin, "ops", &["user", "import"], &["bob"]).assert_ok("import bob");
    assert_server_error(
        &run_sub(&b, &admin, "ops", &["user", "import"], &["alice"]),
        ErrorCode::AccountExists,
    );

    let r = run_sub(&b, &admin, "ops", &["user", "exists"], &["alice", "ghost"]);
    r.assert_ok("user exists");
    let got: Vec<(String, bool, bool)> = r
        .json_lines()
        .iter()
        .map(|v| (str_field(v, "user").to_owned(), bool_field(v, "exists"), bool_field(v, "disabled")))
        .collect();
    assert_eq!(got, vec![("alice".to_owned(), true, false), ("ghost".to_owned(), false, false)]);

    // Admin-only for users.
    let alice = mint("alice");
    assert_server_error(
        &run_sub(&b, &alice, "cli", &["user", "import"], &["carol"]),
        ErrorCode::PermissionDenied,
    );
    assert_server_error(
        &run_sub(&b, &alice, "cli", &["user", "disable"], &["bob"]),
        ErrorCode::PermissionDenied,
    );

    // Profiles.
    let r = run_sub(&b, &alice, "cli", &["user", "profile", "set"], &["--signature", "hi", "--ex", "city="]);
    r.assert_ok("profile set");
    let v = r.json();
    assert_eq!((str_field(&v, "nickname"), str_field(&v, "signature")), ("Alice", "hi"), "{v}");
    assert_eq!(v["ex"], serde_json::json!({}), "an empty value removes the key: {v}");
    assert!(u64_field(&v, "updated_ms") > 0);
    let r = run_sub(&b, &alice, "cli", &["user", "profile", "get"], &["bob", "ghost", "alice"]);
    r.assert_ok("profile get");
    let users: Vec<String> = r.json_lines().iter().map(|v| str_field(v, "user").to_owned()).collect();
    assert_eq!(users, ["bob", "alice"], "unregistered users are left out");
    let r = run_sub(&b, &alice, "cli", &["user", "profile", "set"], &["--birthday", "2001-02-29"]);
    assert_server_error(&r, ErrorCode::InvalidArgument);
    let r = run_sub(&b, &alice, "cli", &["user", "whoami"], &[]);
    r.assert_ok("whoami");
    let v = r.json();
    assert_eq!(str_field(&v, "user"), "alice");
    assert_eq!(v["profile"]["nickname"], "Alice", "{v}");

    // Disable: a live session is kicked, logins refused; enable again.
    let mut live = b.client_on("alice", "phone", Platform::Ios);
    let r = run_sub(&b, &admin, "ops", &["user", "disable"], &["alice", "--reason", "spam"]);
    r.assert_ok("disable");
    assert!(bool_field(&r.json(), "disabled"));
    let k = live.expect_kicked(ErrorCode::AccountDisabled);
    assert_eq!(k.message, "spam");
    assert_server_error(&run_as(&b, &alice, "cli", "ping", &[]), ErrorCode::AccountDisabled);
    let r = run_sub(&b, &admin, "ops", &["user", "enable"], &["alice"]);
    r.assert_ok("enable");
    assert!(!bool_field(&r.json(), "disabled"));
    run_as(&b, &alice, "cli", "ping", &[]).assert_ok("ping after enable");

    // Revoke: tokens issued up to now are refused.
    run_sub(&b, &admin, "ops", &["user", "revoke"], &["alice"]).assert_ok("revoke");
    assert_server_error(&run_as(&b, &alice, "cli", "ping", &[]), ErrorCode::TokenRevoked);
    let fresh = mint_issued_at("alice", now_secs() + 1);
    run_as(&b, &fresh, "cli", "ping", &[]).assert_ok("ping with a token minted after the revocation");
    assert_server_error(
        &run_sub(&b, &admin, "ops", &["user", "revoke"], &["ghost"]),
        ErrorCode::UserNotFound,
    );
}

#[test]
fn friend_commands_request_accept_list_check_search_remark_delete_import() {
    let b = BrokerProc::start();
    let _reg: Vec<RawClient> = ["alice", "bob", "carol"].iter().map(|u| b.client(u, "phone")).collect();
    let (alice, bob, carol) = (mint("alice"), mint("bob"), mint("carol"));

    let r = run_sub(&b, &alice, "cli", &["friend", "add"], &["bob", "--message", "hi bob", "--remark", "B"]);
    r.assert_ok("friend add");
    let v = r.json();
    assert_eq!(str_field(&v, "status"), "requested", "{v}");
    assert_eq!(v["relation"]["user"], "bob");
    assert_eq!(v["relation"]["outgoing"]["state"], "pending", "{v}");
    assert_eq!(v["relation"]["outgoing"]["message"], "hi bob", "{v}");

    let r = run_sub(&b, &bob, "cli", &["friend", "requests"], &[]);
    r.assert_ok("requests");
    let v = r.json();
    assert_eq!(
        (str_field(&v, "from"), str_field(&v, "to"), str_field(&v, "state")),
        ("alice", "bob", "pending")
    );
    let r = run_sub(&b, &alice, "cli", &["friend", "requests"], &["--outgoing"]);
    r.assert_ok("requests --outgoing");
    assert_eq!(str_field(&r.json(), "to"), "bob");

    let r = run_sub(&b, &bob, "cli", &["friend", "accept"], &["alice", "--remark", "Ally"]);
    r.assert_ok("accept");
    let v = r.json();
    assert!(bool_field(&v, "is_friend") && bool_field(&v, "peer_has_me"), "{v}");
    assert_eq!(str_field(&v, "remark"), "Ally");
    assert_server_error(
        &run_sub(&b, &bob, "cli", &["friend", "accept"], &["alice"]),
        ErrorCode::NoPendingRequest,
    );

    let r = run_sub(&b, &alice, "cli", &["friend", "list"], &["--profiles"]);
    r.assert_ok("list");
    let v = r.json();
    assert_eq!((str_field(&v, "user"), str_field(&v, "remark")), ("bob", "B"), "{v}");
    assert_eq!(v["profile"]["user"], "bob", "{v}");

    let r = run_sub(&b, &alice, "cli", &["friend", "check"], &["carol", "bob"]);
    r.assert_ok("check");
    let got: Vec<(String, bool)> = r
        .json_lines()
        .iter()
        .map(|v| (str_field(v, "user").to_owned(), bool_field(v, "is_friend")))
        .collect();
    assert_eq!(got, vec![("carol".to_owned(), false), ("bob".to_owned(), true)]);

    let r = run_sub(&b, &alice, "cli", &["friend", "search"], &["BO"]);
    r.assert_ok("search");
    assert_eq!(str_field(&r.json(), "user"), "bob");
    let r = run_sub(&b, &alice, "cli", &["friend", "search"], &["zzz"]);
    r.assert_ok("search nothing");
    assert!(r.stdout.trim().is_empty(), "{r:#?}");

    let r = run_sub(&b, &alice, "cli", &["friend", "remark"], &["bob", "--remark", "Bobby", "--ex", "k=v"]);
    r.assert_ok("remark");
    let v = r.json();
    assert_eq!(str_field(&v, "remark"), "Bobby");
    assert_eq!(v["ex"]["k"], "v", "{v}");

    // Reject.
    run_sub(&b, &carol, "cli", &["friend", "add"], &["alice", "--message", "hello"]).assert_ok("carol adds");
    let r = run_sub(&b, &alice, "cli", &["friend", "reject"], &["carol"]);
    r.assert_ok("reject");
    let v = r.json();
    assert_eq!(v["incoming"]["state"], "rejected", "{v}");
    assert!(!bool_field(&v, "is_friend"));

    // Delete both ways, then again: NOT_FRIENDS.
    let r = run_sub(&b, &alice, "cli", &["friend", "delete"], &["bob", "--both"]);
    r.assert_ok("delete");
    let v = r.json();
    assert!(!bool_field(&v, "is_friend") && !bool_field(&v, "peer_has_me"), "{v}");
    assert_server_error(&run_sub(&b, &alice, "cli", &["friend", "delete"], &["bob"]), ErrorCode::NotFriends);
    let r = run_sub(&b, &alice, "cli", &["friend", "list"], &[]);
    r.assert_ok("empty list");
    assert!(r.stdout.trim().is_empty(), "{r:#?}");

    // Admin import.
    assert_server_error(
        &run_sub(&b, &alice, "cli", &["friend", "import"], &["alice", "bob"]),
        ErrorCode::PermissionDenied,
    );
    let r = run_sub(&b, &admin_token(), "ops", &["friend", "import"], &["alice", "bob"]);
    r.assert_ok("import");
    assert!(bool_field(&r.json(), "friends"));
    let mut raw = b.client("alice", "laptop");
    let rel = raw.relation("bob");
    assert!(rel.is_friend && rel.peer_has_me, "{rel:?}");
}

#[test]
fn black_commands_add_list_remove() {
    let b = BrokerProc::start();
    let mut bob = b.client("bob", "phone");
    let _alice = b.client("alice", "phone");
    let alice = mint("alice");

    let r = run_sub(&b, &alice, "cli", &["black", "add"], &["bob"]);
    r.assert_ok("black add");
    let v = r.json();
    assert_eq!(str_field(&v, "user"), "bob");
    assert!(bool_field(&v, "blocked"));
    assert!(u64_field(&v, "blocked_since_ms") > 0);
    assert_error(
        bob.send_text(&direct("alice", "bob"), "b1", "hi"),
        ErrorCode::BlockedByUser,
        "blocked send",
    );

    run_sub(&b, &alice, "cli", &["black", "add"], &["zed"]).assert_ok("block an unregistered user");
    let r = run_sub(&b, &alice, "cli", &["black", "list"], &[]);
    r.assert_ok("black list");
    let users: Vec<String> = r.json_lines().iter().map(|v| str_field(v, "user").to_owned()).collect();
    assert_eq!(users, ["bob", "zed"]);
    assert!(r.json_lines().iter().all(|v| u64_field(v, "since_ms") > 0), "{r:#?}");

    let r = run_sub(&b, &alice, "cli", &["black", "remove"], &["bob"]);
    r.assert_ok("black remove");
    assert!(!bool_field(&r.json(), "blocked"));
    bob.send_ok(&direct("alice", "bob"), "b2", "hi again");
    let r = run_sub(&b, &alice, "cli", &["black", "list"], &[]);
    r.assert_ok("black list");
    let users: Vec<String> = r.json_lines().iter().map(|v| str_field(v, "user").to_owned()).collect();
    assert_eq!(users, ["zed"]);
    assert_server_error(&run_sub(&b, &alice, "cli", &["black", "add"], &["alice"]), ErrorCode::SelfTarget);
}

/// A missivectl process whose stdout is read line by line while it runs.
struct Streaming {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: JoinHandle<String>,
}

impl Streaming {
    fn spawn(args: &[&str]) -> Self {
        let mut child = spawn(args);
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = reader(child.stderr.take().expect("stderr piped"));
        Self { child, lines, stderr }
    }

    /// The next stdout line as JSON (bounded wait).
    fn next_json(&mut self) -> Value {
        match self.lines.recv_timeout(WAIT) {
            Ok(l) => serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")),
            Err(e) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("no stdout line within {WAIT:?} ({e})");
            }
        }
    }

    /// Waits (bounded) for the process to exit; its status and stderr.
    fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(s) => break s,
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("missivectl still running after {RUN_TIMEOUT:?}");
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        (status, self.stderr.join().expect("stderr reader"))
    }
}

#[test]
fn presence_commands_get_subscribe_watch_list_unsubscribe_status() {
    let b = BrokerProc::start();
    let mut alice_phone = b.client_on("alice", "phone", Platform::Ios);
    let _bob = b.client("bob", "phone");
    let (alice, bob) = (mint("alice"), mint("bob"));

    let r = run_sub(&b, &bob, "cli", &["presence", "status"], &["in a meeting"]);
    r.assert_ok("status");
    assert_eq!(str_field(&r.json(), "status_text"), "in a meeting");
    assert_server_error(
        &run_sub(&b, &bob, "cli", &["presence", "status"], &["s".repeat(257).as_str()]),
        ErrorCode::InvalidArgument,
    );

    let r = run_sub(&b, &alice, "cli", &["presence", "get"], &["bob", "ghost"]);
    r.assert_ok("get");
    let lines = r.json_lines();
    assert_eq!(lines.len(), 2, "{r:#?}");
    assert_eq!(str_field(&lines[0], "user"), "bob");
    assert!(bool_field(&lines[0], "online"));
    assert!(lines[0]["platforms"].as_array().is_some_and(|p| p.contains(&Value::from("linux"))), "{r:#?}");
    assert_eq!(str_field(&lines[0], "status_text"), "in a meeting");
    assert_eq!((str_field(&lines[1], "user"), bool_field(&lines[1], "online")), ("ghost", false));

    // Subscribe and watch: the current state first, then alice's web login.
    let addr = b.addr.to_string();
    let mut watch = Streaming::spawn(&[
        "presence",
        "subscribe",
        "--json",
        "--addr",
        &addr,
        "--token",
        &bob,
        "--device",
        "watcher",
        "alice",
        "--watch",
        "--count",
        "1",
        "--timeout",
        "30",
    ]);
    let now = watch.next_json();
    assert_eq!(str_field(&now, "user"), "alice");
    assert_eq!(now["platforms"], serde_json::json!(["ios"]), "{now}");
    let _web = b.client_on("alice", "browser", Platform::Web);
    let pushed = watch.next_json();
    assert_eq!(str_field(&pushed, "user"), "alice");
    assert_eq!(pushed["platforms"], serde_json::json!(["ios", "web"]), "{pushed}");
    let (status, stderr) = watch.finish();
    assert!(status.success(), "watch exits 0 after --count: {status:?} {stderr}");

    // The subscription persists; unsubscribe removes it.
    let r = run_sub(&b, &bob, "cli", &["presence", "list"], &[]);
    r.assert_ok("list");
    assert_eq!(str_field(&r.json(), "user"), "alice");
    let r = run_sub(&b, &bob, "cli", &["presence", "unsubscribe"], &["alice"]);
    r.assert_ok("unsubscribe");
    assert_eq!(r.json()["unsubscribed"], serde_json::json!(["alice"]));
    let r = run_sub(&b, &bob, "cli", &["presence", "list"], &[]);
    r.assert_ok("list after unsubscribe");
    assert!(r.stdout.trim().is_empty(), "{r:#?}");
    assert_server_error(
        &run_sub(&b, &bob, "cli", &["presence", "subscribe"], &["bob"]),
        ErrorCode::SelfTarget,
    );

    // Plain subscribe (no --watch) prints the state and exits.
    let r = run_sub(&b, &bob, "cli", &["presence", "subscribe"], &["alice"]);
    r.assert_ok("subscribe");
    assert!(bool_field(&r.json(), "online"));
    assert!(alice_phone.is_alive());
}

/// `missivectl recall | edit | delete | react` (spec section 18): each does
/// what it says, prints one JSON line, and a server refusal exits 2.
#[test]
fn lifecycle_commands() {
    let b = BrokerOpts::default().config("[messages]\nedit_direct = true\n").spawn();
    let conv = direct("alice", "bob");
    let mut bob = b.client("bob", "phone");
    let mut alice = b.client("alice", "phone");
    let acks = alice.send_many(&conv, "m", 3, 3);
    let tok = mint("alice");
    let s = |q: u64| q.to_string();
    let v = run_as(&b, &tok, "cli", "edit", &[&conv, &s(acks[0].seq), "fixed"]).assert_ok("edit").json();
    assert_eq!((str_field(&v, "text"), u64_field(&v, "edit_version")), ("fixed", 1));
    let v = run_as(&b, &tok, "cli", "react", &[&conv, &s(acks[0].seq), "+1"]).assert_ok("react").json();
    assert_eq!(v["reactions"][0]["count"].as_u64(), Some(1));
    let v = run_as(&b, &tok, "cli", "recall", &[&conv, &s(acks[1].seq)]).assert_ok("recall").json();
    assert_eq!(v["recalled"].as_bool(), Some(true));
    run_as(&b, &tok, "cli", "delete", &[&conv, &s(acks[2].seq)]).assert_ok("delete for me");
    let mine = alice.pull_all(&conv);
    assert!(mine.iter().any(|m| m.seq == acks[1].seq && m.recalled.is_some()));
    assert!(mine.iter().any(|m| m.seq == acks[2].seq && m.deleted));
    assert!(bob.pull_all(&conv).iter().any(|m| m.seq == acks[2].seq && !m.deleted), "only for alice");
    // Refusals: 4202 on a recalled message, 2003 for everyone in a 1:1 conversation.
    let r = run_as(&b, &tok, "cli", "recall", &[&conv, &s(acks[1].seq)]);
    assert_eq!(r.status.code(), Some(2), "{r:#?}");
    assert!(r.stderr.contains("MESSAGE_RECALLED"), "{r:#?}");
    let r = run_as(&b, &tok, "cli", "delete", &[&conv, "1", "--everyone"]);
    assert_eq!(r.status.code(), Some(2), "{r:#?}");
    assert!(r.stderr.contains("PERMISSION_DENIED"), "{r:#?}");
}

#[test]
fn send_flags_and_forward() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let alice = mint("alice");
    let mut bob_phone = b.client("bob", "phone");
    let r = run_as(&b, &alice, "cli", "send", &["--to", "bob", "--online-only", "live"]);
    r.assert_ok("send --online-only");
    assert_eq!(u64_field(&r.json(), "seq"), 0, "never stored");
    assert_eq!(text_of(&bob_phone.expect_message(&conv, 0)), "live");
    for (i, flag) in ["--no-history", "--no-unread", "--no-push"].into_iter().enumerate() {
        let r = run_as(&b, &alice, "cli", "send", &["--to", "bob", flag, "kept"]);
        r.assert_ok(flag);
        assert_eq!(u64_field(&r.json(), "seq"), i as u64 + 1);
    }
    let pulled = bob_phone.pull_all(&conv);
    let got: Vec<_> = pulled.iter().map(|m| m.flags.unwrap_or_default()).collect();
    assert!(got[0].no_history && got[1].no_unread && got[2].no_push, "{got:?}");

    // Forward one by one, then merged.
    let to = direct("alice", "carol");
    let r = run_as(&b, &alice, "cli", "forward", &[&conv, "2,3", &to]);
    r.assert_ok("forward");
    let acks = r.json()["acks"].as_array().cloned().unwrap_or_default();
    assert_eq!(acks.iter().map(|a| u64_field(a, "seq")).collect::<Vec<_>>(), vec![1, 2], "{acks:?}");
    // Seq 1 is alice's own no_history message: read by her, so not forwardable ([FW-4]).
    let r = run_as(&b, &alice, "cli", "forward", &[&conv, "1", &to]);
    assert_server_error(&r, ErrorCode::MessageNotFound);
    let r = run_as(&b, &alice, "cli", "forward", &[&conv, "2,3", &to, "--merged", "--title", "chat"]);
    r.assert_ok("forward --merged");
    assert_eq!(u64_field(&r.json()["acks"][0], "seq"), 3);
    let mut carol = b.client("carol", "phone");
    let m = carol.pull_all(&to);
    assert!(
        matches!(m[2].content.as_ref().and_then(|c| c.body.as_ref()), Some(missive_protocol::pb::content::Body::Merged(mg)) if mg.title == "chat" && mg.items.len() == 2)
    );
    // Bad input: a seq that is not a number (local), an unknown seq (server).
    let r = run_as(&b, &alice, "cli", "forward", &[&conv, "1,x", &to]);
    assert!(!r.status.success(), "{r:#?}");
    let r = run_as(&b, &alice, "cli", "forward", &[&conv, "99", &to]);
    assert_server_error(&r, ErrorCode::MessageNotFound);
}
