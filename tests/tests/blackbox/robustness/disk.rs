//! Disk faults (issue 14, item 8): a full data disk, a corrupted table file,
//! and an online backup with its restore.
//!
//! - ENOSPC: the data directory is a small tmpfs (skipped, with a message, if
//!   this process cannot mount one). Filling it makes sends fail with the
//!   retryable `5001 STORAGE` ("storage full"); after space returns, sends
//!   succeed again without a restart, and after a SIGKILL every acked
//!   message is there, dense, exactly once.
//! - Corruption: a flipped byte in a table file stops the broker at open
//!   (exit 1, one clear line), `missive verify` reports it, `missive repair`
//!   brings the directory back to one that opens and serves.
//! - Backup: `missivectl backup` (POST /admin/v1/backup) during traffic, bad
//!   requests refused with clear errors, `missive restore` into a new
//!   directory, and a broker on it serves exactly the backed-up messages.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use missive_protocol::pb;
use missive_tests::*;

const CONV: &str = "p:alice:bob";
/// Admin token of the backup test's broker.
const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// Bound on one maintenance command or failing start.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A tmpfs mounted for one test, unmounted when dropped (also on panic).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "48m") on `dir`; `None` if impossible.
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs on {} ({}): run the tests as root with CAP_SYS_ADMIN",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount(8): {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a child not yet reaped): detach it now, freed when unused.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes zeros to `path` until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    let mut n = 0u64;
    // Bounded: a tmpfs of a few MiB fills in well under this many chunks.
    for _ in 0..100_000 {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filler stopped by {e}");
                break;
            }
        }
    }
    let _ = f.sync_all();
    n
}

/// Checks that `conv` holds exactly seqs 1..=max, each acked id once with its seq.
fn assert_acked_present(c: &mut RawClient, acked: &HashMap<String, u64>) {
    let msgs = c.pull_all(CONV);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.seq, i as u64 + 1, "seqs are dense");
    }
    let by_id: HashMap<&str, u64> = msgs.iter().map(|m| (m.client_msg_id.as_str(), m.seq)).collect();
    assert_eq!(by_id.len(), msgs.len(), "every client_msg_id stored once");
    for (id, seq) in acked {
        assert_eq!(by_id.get(id.as_str()), Some(seq), "acked message {id} lost or moved");
    }
}

#[test]
fn a_full_disk_refuses_sends_retryably_and_recovers_without_a_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let data = root.join("data");
    let Some(_mount) = Tmpfs::mount(&data, "48m") else { return };
    // Small memtables: the store flushes (and meets the full disk) early.
    let opts = BrokerOpts::default().config("[storage]\nwrite_buffer_mb = 1\nblock_cache_mb = 8\n");
    let mut b = BrokerProc::spawn_in(root, opts);
    let mut c = b.client("alice", "phone");
    let mut acked: HashMap<String, u64> = HashMap::new();
    let body = "x".repeat(1000);
    for i in 0..20 {
        let id = format!("pre-{i}");
        acked.insert(id.clone(), c.send_ok(CONV, &id, &body).seq);
    }
    let filler = data.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0, "the filler wrote something");

    // Send until refused (bounded: the WAL and memtables hold a few MiB at most).
    let mut refused: Option<(String, pb::Error)> = None;
    for i in 0..20_000 {
        let id = format!("full-{i}");
        match c.send_text(CONV, &id, &body) {
            Ok(a) => {
                assert!(!a.duplicate);
                acked.insert(id, a.seq);
            }
            Err(e) => {
                refused = Some((id, e));
                break;
            }
        }
    }
    let (refused_id, err) = refused.expect("a send was refused once the disk was full");
    assert_eq!(err.code, ErrorCode::Storage as u32, "{err:?}");
    assert!(err.retryable, "STORAGE is retryable: {err:?}");
    assert!(err.message.contains("storage full"), "the message says why: {err:?}");
    // The log is read from the broker's stderr by another thread: give it a moment.
    assert!(
        b.log_handle().wait_for("No space left on device", Duration::from_secs(5)),
        "the broker logs the cause:\n{}",
        b.log()
    );
    // Reads keep working while writes are refused.
    assert_acked_present(&mut c, &acked);

    // Space returns: the same retry succeeds without a restart, as a fresh send.
    std::fs::remove_file(&filler).expect("remove filler");
    let deadline = Instant::now() + Duration::from_secs(90);
    let ack = loop {
        match c.send_text(CONV, &refused_id, &body) {
            Ok(a) => break a,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.code, ErrorCode::Storage as u32, "{e:?}");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => {
                let rocks = std::fs::read_to_string(data.join("LOG")).unwrap_or_default();
                let why: Vec<&str> = rocks
                    .lines()
                    .filter(|l| {
                        ["rror", "ecover", "esume", "space", "SstFileManager"].iter().any(|k| l.contains(k))
                    })
                    .collect();
                let lines: Vec<&str> = rocks.lines().collect();
                let why = [&why[..], &lines[lines.len().saturating_sub(40)..]].concat();
                panic!(
                    "sends did not recover within 90 s after space returned: {e:?}\nRocksDB LOG:\n{}",
                    why.join("\n")
                )
            }
        }
    };
    assert!(!ack.duplicate, "the refused send had stored nothing: {ack:?}");
    acked.insert(refused_id, ack.seq);
    for i in 0..20 {
        let id = format!("post-{i}");
        acked.insert(id.clone(), c.send_ok(CONV, &id, &body).seq);
    }
    drop(c);

    // Nothing acked is lost, even after a crash.
    b.kill9();
    b.restart();
    let mut c = b.client("alice", "phone");
    assert_acked_present(&mut c, &acked);
    drop(c);
    b.terminate();
}

/// Runs the broker binary with `args` to completion (bounded); (status, stdout, stderr).
fn run_missive(args: &[&str], dir: &Path) -> (ExitStatus, String, String) {
    let out_path = dir.join("run.out");
    let err_path = dir.join("run.err");
    let mut child = Command::new(broker_binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn missive");
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("missive {args:?} did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status, read(&out_path), read(&err_path))
}

/// The largest `.sst` file under `data`, its partition directories included.
fn largest_table(data: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let parts = std::fs::read_dir(data)
        .expect("read data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")));
    let files = std::iter::once(data.to_path_buf())
        .chain(parts)
        .flat_map(|d| std::fs::read_dir(d).expect("read partition dir").map(|e| e.expect("entry").path()))
        .collect::<Vec<_>>();
    for p in files {
        if p.extension().is_some_and(|x| x == "sst") {
            let len = std::fs::metadata(&p).expect("stat").len();
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, p));
            }
        }
    }
    best.expect("a table file after a clean stop").1
}

#[test]
fn a_flipped_byte_in_a_table_stops_the_broker_and_verify_and_repair_handle_it() {
    let mut b = BrokerOpts::default().spawn();
    let mut c = b.client("alice", "phone");
    for i in 0..200 {
        c.send_ok(CONV, &format!("m-{i}"), &format!("message number {i} {}", "y".repeat(200)));
    }
    drop(c);
    b.terminate(); // a clean stop flushes the memtables into table files
    let root = b.root().to_path_buf();
    let data = root.join("data");
    let data_arg = data.to_str().expect("utf-8 path");

    let (st, out, err) = run_missive(&["verify", "--data", data_arg], &root);
    assert!(st.success(), "a sound store verifies: {out}{err}");
    assert!(out.contains("msg: 200 entries"), "{out}");

    // Flip one byte inside the first data block of the largest table.
    let sst = largest_table(&data);
    let mut bytes = std::fs::read(&sst).expect("read sst");
    assert!(bytes.len() > 1024, "{} is {} bytes", sst.display(), bytes.len());
    bytes[100] ^= 0x5a;
    std::fs::write(&sst, &bytes).expect("write sst");

    let (st, out, err) = run_missive(
        &["--data", data_arg, "--tcp", "127.0.0.1:0", "--secret", SECRET, "--workers", "1"],
        &root,
    );
    assert_eq!(st.code(), Some(1), "a damaged store stops the broker: {out}{err}");
    assert!(!out.contains("missive listening"), "it never listened: {out}");
    let line = err.lines().find(|l| l.starts_with("missive: failed:")).unwrap_or_default();
    assert!(line.contains("is damaged") && line.contains("Corruption"), "one clear line: {err}");
    assert!(line.contains("missive verify") && line.contains("missive repair"), "names the tools: {err}");
    assert!(!err.contains("panicked"), "{err}");

    let (st, out, err) = run_missive(&["verify", "--data", data_arg], &root);
    assert_eq!(st.code(), Some(1), "verify fails on the damage: {out}{err}");
    assert!(err.contains("DAMAGED") && err.contains("Corruption"), "{err}");

    let (st, out, err) = run_missive(&["repair", "--data", data_arg], &root);
    assert!(st.success(), "repair: {out}{err}");
    assert!(out.contains("repair") && out.contains("ok"), "{out}");
    let (st, out, err) = run_missive(&["verify", "--data", data_arg], &root);
    assert!(st.success(), "verify after repair: {out}{err}");

    // The repaired directory opens and serves.
    b.restart();
    let mut c = b.client("alice", "phone");
    let msgs = c.pull_all(CONV);
    let next = c.send_ok(CONV, "after-repair", "hello").seq;
    assert!(next > msgs.last().map_or(0, |m| m.seq), "a send after repair gets a new seq");
    drop(c);
    b.terminate();
}

/// One plain HTTP request to `addr`; (status, body).
fn http(addr: SocketAddr, method: &str, target: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect http");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "{method} {target} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole response");
    let status = head.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("status");
    (status, body.to_owned())
}

fn missivectl() -> PathBuf {
    let bin = broker_binary().with_file_name(format!("missivectl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "missivectl not found at {}: cargo build --release --workspace --bins",
        bin.display()
    );
    bin
}

#[test]
fn an_online_backup_restores_into_a_working_broker() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let backups = root.join("backups");
    let config = format!(
        "[storage]\nbackup_dir = {:?}\n\n[admin]\ntoken = {ADMIN_TOKEN:?}\n",
        backups.to_str().expect("utf-8 path")
    );
    let mut b = BrokerProc::spawn_in(root, BrokerOpts::default().config(&config));
    let web = b.listening.ws();
    let mut c = b.client("alice", "phone");
    let mut before = HashMap::new();
    for i in 0..30 {
        let id = format!("before-{i}");
        before.insert(id.clone(), c.send_ok(CONV, &id, "kept").seq);
    }

    // Bad requests: clear errors, nothing written.
    let (st, body) = http(web, "POST", "/admin/v1/backup?name=x", None);
    assert_eq!(st, 401, "{body}");
    assert!(body.contains("\"unauthorized\""), "{body}");
    let (st, body) = http(web, "POST", "/admin/v1/backup?name=x", Some("wrong-token-wrong-token"));
    assert_eq!(st, 401, "{body}");
    for bad in ["..", ".hidden", "a%2Fb", "a/b", &"n".repeat(65)] {
        let (st, body) = http(web, "POST", &format!("/admin/v1/backup?name={bad}"), Some(ADMIN_TOKEN));
        assert_eq!(st, 400, "name {bad:?}: {body}");
        assert!(body.contains("\"bad_name\""), "{body}");
    }
    let (st, body) = http(web, "GET", "/admin/v1/backup", Some(ADMIN_TOKEN));
    assert_eq!(st, 405, "{body}");
    let (st, _) = http(web, "POST", "/admin/v1/nothing", Some(ADMIN_TOKEN));
    assert_eq!(st, 404);
    assert!(
        !backups.exists() || std::fs::read_dir(&backups).expect("ls").next().is_none(),
        "nothing written"
    );

    // missivectl backup, then the same name again.
    let ctl = |name: &str| {
        Command::new(missivectl())
            .args([
                "--json",
                "backup",
                "--http",
                &web.to_string(),
                "--admin-token",
                ADMIN_TOKEN,
                "--name",
                name,
            ])
            .output()
            .expect("run missivectl")
    };
    let out = ctl("nightly-1");
    assert!(out.status.success(), "missivectl backup: {}", String::from_utf8_lossy(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json line");
    assert_eq!(reply["name"], "nightly-1");
    let backup = backups.join("nightly-1");
    assert_eq!(reply["path"], backup.to_str().expect("utf-8"));
    assert!(backup.join("CURRENT").is_file(), "a checkpoint was written");
    let again = ctl("nightly-1");
    assert_eq!(again.status.code(), Some(2), "an existing name is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"), "{again:?}");

    // Traffic after the backup is not in it.
    for i in 0..10 {
        c.send_ok(CONV, &format!("after-{i}"), "not in the backup");
    }
    drop(c);
    b.terminate();

    let restored = tempfile::tempdir().expect("tmp");
    let new_data = restored.path().join("data");
    let (st, out, err) = run_missive(
        &["restore", "--from", backup.to_str().expect("utf-8"), "--data", new_data.to_str().expect("utf-8")],
        restored.path(),
    );
    assert!(st.success(), "restore: {out}{err}");
    let (st, _, err) = run_missive(
        &["restore", "--from", backup.to_str().expect("utf-8"), "--data", new_data.to_str().expect("utf-8")],
        restored.path(),
    );
    assert_eq!(st.code(), Some(2), "never restores over a non-empty directory: {err}");
    assert!(err.contains("not empty"), "{err}");

    let b2 = BrokerProc::spawn_in(restored.path(), BrokerOpts::default());
    let mut c = b2.client("alice", "phone");
    let msgs = c.pull_all(CONV);
    assert_eq!(msgs.len(), before.len(), "exactly the backed-up messages");
    assert_acked_present(&mut c, &before);
    // The restored broker works: the next send continues the log, and a
    // retry of a backed-up send is still deduplicated.
    assert_eq!(c.send_ok(CONV, "after-restore", "hello").seq, before.len() as u64 + 1);
    let dup = c.send_text(CONV, "before-0", "kept").expect("retry");
    assert!(dup.duplicate && dup.seq == before["before-0"], "{dup:?}");
}

/// A new data directory gets one storage partition (RocksDB instance, own
/// WAL) per worker, recorded in `PARTITIONS`; later starts keep that count:
/// a worker count that is not a multiple of it is refused with one line
/// naming both, a multiple serves every message written before.
#[test]
fn a_data_directory_keeps_its_partitions_across_worker_counts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let data = root.join("data");
    let convs =
        ["p:alice:bob", "p:alice:carol", "p:alice:dave", "p:alice:erin", "p:alice:frank", "p:alice:gina"];
    let mut acked: HashMap<(usize, String), u64> = HashMap::new();
    {
        let mut b = BrokerProc::spawn_in(root, BrokerOpts::default()); // 2 workers
        let mut c = b.client("alice", "phone");
        for (k, conv) in convs.iter().enumerate() {
            for i in 0..5 {
                let id = format!("m{k}-{i}");
                acked.insert((k, id.clone()), c.send_ok(conv, &id, "kept").seq);
            }
        }
        b.terminate();
    }
    assert_eq!(std::fs::read_to_string(data.join("PARTITIONS")).expect("PARTITIONS"), "2\n");
    assert!(data.join("part-1").join("CURRENT").is_file(), "partition 1 is its own RocksDB directory");

    let (st, _, err) = run_missive(
        &[
            "--data",
            data.to_str().expect("utf-8"),
            "--workers",
            "3",
            "--tcp",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--secret",
            SECRET,
        ],
        root,
    );
    assert_eq!(st.code(), Some(2), "workers = 3 on a 2-partition directory is refused: {err}");
    assert!(err.contains("2 storage partitions") && err.contains("multiple of 2"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let b = BrokerProc::spawn_in(root, BrokerOpts::default().workers(4));
    let mut c = b.client("alice", "laptop");
    for (k, conv) in convs.iter().enumerate() {
        let msgs = c.pull_all(conv);
        assert_eq!(msgs.len(), 5, "{conv}: every message after the restart with 4 workers");
        for m in &msgs {
            assert_eq!(acked.get(&(k, m.client_msg_id.clone())), Some(&m.seq), "{conv}: {m:?}");
        }
        assert_eq!(c.send_ok(conv, &format!("after-{k}"), "next").seq, 6, "{conv}: the log continues");
    }
}
