//! At the process open-file limit the broker refuses new connections clearly:
//! a client waiting in the listen backlog gets `Close{1010 TOO_MANY_CONNECTIONS}`
//! instead of hanging, the log names the limit, and existing sessions keep working.

use std::process::Command;
use std::time::{Duration, Instant};

use missive_protocol::pb::{Platform, frame};
use missive_tests::*;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn connections_beyond_the_fd_limit_get_too_many_connections() {
    let b = BrokerProc::start();
    let mut alice = b.client("alice", "phone");
    let pid = b.pid();
    // Leave room for exactly a few more descriptors.
    let limit = open_fds(pid) + 4;
    let status = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit failed: {status:?}");

    let mut logged_in = Vec::new();
    let mut refused = 0;
    for i in 0..12 {
        let mut c = b.connect();
        let token = mint("bob");
        match c.hello(&token, &format!("d{i}"), Platform::Linux) {
            Ok(_) => logged_in.push(c),
            Err(close) => {
                assert_eq!(close.code, ErrorCode::TooManyConnections.as_u32(), "{close:?}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "some connections must be refused at a limit of {limit} fds");
    assert!(logged_in.len() < 12);
    let log_deadline = Instant::now() + Duration::from_secs(5);
    while !b.log().contains("open-file limit reached") {
        assert!(Instant::now() < log_deadline, "the broker must log the limit: {}", b.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The existing session still works.
    let id = alice.next_request_id();
    alice.send_frame(&frame_of(frame::Body::Ping(missive_protocol::pb::Ping { nonce: id })));
    let got = alice.recv_frame(Duration::from_secs(5));
    assert!(matches!(got.and_then(|f| f.body), Some(frame::Body::Pong(_))), "alice still served");
}
