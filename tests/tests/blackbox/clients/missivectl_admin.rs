//! `missivectl admin …` as a black box: the real binary against a real
//! broker's REST API (`[api] listen` on port 0). Checks the JSON output of
//! the shortcuts and of `call`, the effect of a write (seen by a socket
//! client and in the audit log), and exit status 2 with the broker's code
//! for a refusal.

use std::path::PathBuf;
use std::process::Command;

use missive_tests::*;
use serde_json::Value;

fn missivectl() -> PathBuf {
    if let Some(p) = std::env::var_os("MISSIVECTL") {
        return PathBuf::from(p);
    }
    let broker = broker_binary();
    let bin = broker.parent().expect("broker binary directory").join("missivectl");
    assert!(bin.exists(), "missivectl not found at {}: build the workspace", bin.display());
    bin
}

/// Runs `missivectl --json admin --api URL --secret SECRET ARGS…`: (status, stdout, stderr).
fn admin(b: &BrokerProc, args: &[&str]) -> (i32, String, String) {
    let url = format!("http://{}", b.listening.api());
    let out = Command::new(missivectl())
        .args(["--json", "admin", "--api", &url, "--secret", SECRET, "--timeout", "20"])
        .args(args)
        .env_remove("MISSIVE_API_KEY")
        .output()
        .expect("run missivectl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn admin_subcommands_reach_the_rest_api() {
    let b = BrokerProc::start();
    let (st, out, err) = admin(&b, &["health"]);
    assert_eq!(st, 0, "{err}");
    let v = json(&out);
    assert_eq!(v["healthz"]["status"], "ok");
    assert_eq!(v["readyz"]["status"], "ready");

    let (st, out, err) =
        admin(&b, &["call", "POST", "/v1/users/import", "--data", r#"{"users":[{"user_id":"carol"}]}"#]);
    assert_eq!(st, 0, "{err}");
    assert!(out.contains("carol"), "{out}");
    // The imported account exists for a socket client too.
    let mut c = RawClient::login(b.addr, "carol", "phone");
    assert!(c.is_alive());

    let (st, out, err) = admin(&b, &["audit", "--limit", "5"]);
    assert_eq!(st, 0, "{err}");
    let v = json(&out);
    let what: Vec<&str> =
        v["items"].as_array().expect("items").iter().filter_map(|r| r["what"].as_str()).collect();
    assert!(what.iter().any(|w| w.starts_with("POST /v1/users/import")), "{v}");

    let (st, out, err) = admin(&b, &["stats"]);
    assert_eq!(st, 0, "{err}");
    assert!(json(&out).is_object());

    let (st, out, _) = admin(&b, &["openapi"]);
    assert_eq!(st, 0);
    assert!(json(&out)["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));

    // A refusal: exit 2 and the broker's numeric code.
    let (st, _, err) = admin(&b, &["call", "POST", "/v1/messages", "--data", r#"{"from":"carol"}"#]);
    assert_eq!(st, 2, "{err}");
    assert!(err.contains("3000"), "names the code: {err}");
    let (st, _, err) = admin(&b, &["call", "POST", "/v1/users/import", "--data", "{not json"]);
    assert_eq!(st, 1, "bad --data is a local error: {err}");
}
