//! `loadgen --transport quic` end to end: a short `pairs` run against a
//! spawned broker with a QUIC listener, through loadgen's loopback relay,
//! must finish `ok` with every message acked and delivered exactly once.
//!
//! Needs the broker binary `missive` next to `loadgen` (`cargo build --release
//! -p missive-broker --bin missive`, same target directory; `make test` builds
//! every binary first), or its path in `MISSIVE_BIN`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on the whole run (2 s of sending, login and drain included).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn broker_bin(loadgen: &std::path::Path) -> PathBuf {
    if let Some(p) = std::env::var_os("MISSIVE_BIN") {
        return PathBuf::from(p);
    }
    let dir = loadgen.parent().expect("loadgen directory");
    let bin = dir.join(format!("missive{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "broker binary not found at {}: run cargo build --release -p missive-broker --bin missive \
         (same CARGO_TARGET_DIR) or set MISSIVE_BIN",
        bin.display()
    );
    bin
}

#[test]
fn pairs_over_quic_lose_and_duplicate_nothing() {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let broker = broker_bin(&loadgen);
    let mut child = Command::new(&loadgen)
        .args(["pairs", "--pairs", "4", "--window", "8", "--secs", "1.5", "--drain-secs", "10"])
        .args(["--transport", "quic", "--spawn", "--durability", "buffered", "--json", "--broker-bin"])
        .arg(&broker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen");
    let deadline = Instant::now() + RUN_TIMEOUT;
    while child.try_wait().expect("try_wait loadgen").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen still running after {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("loadgen output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen failed ({:?}):\n{stdout}\n{stderr}", out.status);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    let field = |k: &str| report.get(k).cloned().unwrap_or_default();
    assert_eq!(field("status"), "ok", "{report}");
    assert_eq!(field("transport"), "quic", "{report}");
    assert_eq!(field("quic_sessions"), 8, "one QUIC session per connection: {report}");
    for zero in ["lost", "duplicates", "order_violations", "errors", "unexpected"] {
        assert_eq!(field(zero), 0, "{zero}: {report}");
    }
    let sent = field("sent").as_u64().expect("sent");
    assert!(sent > 0, "{report}");
    assert_eq!(field("acked"), sent, "{report}");
    assert_eq!(field("delivered"), sent, "{report}");
}

#[test]
fn quic_setup_errors_are_clear() {
    let loadgen = env!("CARGO_BIN_EXE_loadgen");
    let cases: [(&[&str], &str); 3] = [
        (&["idle", "--transport", "quic", "--spawn"], "not idle"),
        (&["pairs", "--transport", "quic", "--addr", "127.0.0.1:9", "--secret", "s"], "--quic-addr"),
        (&["pairs", "--transport", "quic", "--quic-addr", "127.0.0.1:9", "--secret", "s"], "--cert-sha256"),
    ];
    for (args, needle) in cases {
        let out = Command::new(loadgen).args(args).stdin(Stdio::null()).output().expect("run loadgen");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?} should mention {needle}: {stderr}");
    }
}
