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

/// Runs missivectl with `args` (bounded by [`RUN_TIMEOUT`]); no MISSIVE_*
/// variables leak in from the environment.
fn run(args: &[&str]) -> Run {
    let mut child: Child = Command::new(missivectl())
        .args(args)
        .env_remove("MISSIVE_ADDR")
        .env_remove("MISSIVE_TOKEN")
        .env_remove("MISSIVE_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn missivectl");
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
    assert_eq!(claims.expires_at - claims.issued_at, 600, "{claims:?}");
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
