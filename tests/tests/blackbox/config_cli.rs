//! The broker's command line as an operator meets it (docs/CONFIG.md): a bad flag or
//! configuration value is ONE line on stderr naming the key, the rule and the fix, with
//! exit status 2, even under `RUST_BACKTRACE=1`; `--check-config FILE` validates a file
//! and prints the effective configuration. Spec [T-4]: the secret is at least 16 bytes.

use std::path::Path;
use std::process::{Command, Output};

use missive_tests::*;

/// Runs the broker binary with `args` (and RUST_BACKTRACE=1, as on the CI machines).
fn run(args: &[&str], secret_env: Option<&str>) -> Output {
    let mut cmd = Command::new(broker_binary());
    cmd.args(args).env("RUST_BACKTRACE", "1").env_remove("MISSIVE_SECRET");
    if let Some(s) = secret_env {
        cmd.env("MISSIVE_SECRET", s);
    }
    cmd.output().expect("run the broker binary")
}

/// Asserts exit status 2 and exactly one stderr line containing every needle.
fn assert_user_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit status; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, no stack trace, got:\n{stderr}");
    for n in needles.iter().chain(&["fix:"]) {
        assert!(lines[0].contains(n), "{n:?} missing from {:?}", lines[0]);
    }
    assert!(!stderr.contains("backtrace") && !stderr.contains("panicked"), "{stderr}");
    lines[0].to_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

#[test]
fn short_secret_is_one_line_naming_the_key_and_exit_2() {
    // [T-4]: a 15-byte secret refuses to start; the secret itself is never printed.
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data").display().to_string();
    let out = run(&["--data", &data, "--tcp", "127.0.0.1:0", "--secret", "fifteen-bytes!!"], None);
    let line = assert_user_error(&out, &["secret", "at least 16 bytes"]);
    assert!(!line.contains("fifteen-bytes!!"), "{line}");
    // The same through MISSIVE_SECRET and with no secret at all.
    assert_user_error(&run(&["--data", &data, "--tcp", "127.0.0.1:0"], Some("short")), &["secret"]);
    assert_user_error(&run(&["--data", &data, "--tcp", "127.0.0.1:0"], None), &["secret"]);
}

#[test]
fn bad_flags_and_files_are_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ok_secret = Some(SECRET);
    assert_user_error(&run(&["--no-such-flag"], ok_secret), &["--no-such-flag", "missive --help"]);
    assert_user_error(&run(&["--tcp", "not-an-address"], ok_secret), &["--tcp", "not-an-address"]);
    assert_user_error(&run(&["--durability", "sometimes"], ok_secret), &["--durability", "sometimes"]);
    let missing = tmp.path().join("absent.toml").display().to_string();
    assert_user_error(&run(&["--config", &missing], ok_secret), &["absent.toml", "cannot be read"]);
    let typo = write(tmp.path(), "typo.toml", "[limits]\nmax_frame = 1\n");
    assert_user_error(
        &run(&["--config", &typo], ok_secret),
        &["limits.max_frame", "line 2", "unknown field"],
    );
    let syntax = write(tmp.path(), "syntax.toml", "[limits\n");
    assert_user_error(&run(&["--config", &syntax], ok_secret), &["syntax.toml", "line 1"]);
    // Each documented cross-constraint names its key (docs/CONFIG.md "Cross-constraints").
    for (toml, key) in [
        ("[limits]\nmax_frame_size = 65536\nmax_content_bytes = 65000\n", "limits.max_content_bytes"),
        ("[limits]\nwrite_queue_bytes = 1000\n", "limits.write_queue_bytes"),
        (
            "[limits]\nmax_frame_size = 65536\nmax_content_bytes = 1024\n[relations]\nmax_ex_bytes = 60000\n",
            "relations.max_ex_bytes",
        ),
        ("[limits]\nping_interval_secs = 90\n", "limits.ping_interval_secs"),
    ] {
        let f = write(tmp.path(), "bad.toml", toml);
        assert_user_error(&run(&["--config", &f], ok_secret), &[key]);
        assert_user_error(&run(&["--check-config", &f], ok_secret), &[key]);
    }
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let tmp = tempfile::tempdir().expect("tmp");
    let f = write(
        tmp.path(),
        "missive.toml",
        "workers = 3\n[limits]\nmax_frame_size = 2097152\n[accounts]\nlogin_policy = \"single\"\n",
    );
    let data = tmp.path().join("data");
    let data_arg = data.display().to_string();
    let out = run(&["--check-config", &f, "--tcp", "127.0.0.1:7999", "--data", &data_arg], Some(SECRET));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "workers = 3",
        "tcp = \"127.0.0.1:7999\"",  // flags apply
        "max_frame_size = 2097152",  // the file applies
        "max_content_bytes = 65536", // defaults fill the rest
        "login_policy = \"single\"",
        "[groups]",
        "# unset (off): admin.token, quic, storage.backup_dir, ",
        ", ws, wss\n",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing from:\n{stdout}");
    }
    assert!(!stdout.contains(SECRET), "the secret is redacted:\n{stdout}");
    assert!(!data.exists(), "--check-config creates nothing");
    // The repository's sample configuration is valid.
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../missive.toml");
    let out = run(&["--check-config", sample], Some(SECRET));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
