//! The broker under test as a child process.
//!
//! Role: [`BrokerProc`] spawns the `missive-under-test` binary
//! ([`broker_binary`]) on `127.0.0.1:0` (TCP and WebSocket) with its data in a
//! fresh temporary directory, waits (bounded by [`STARTUP_TIMEOUT`]) for its
//! `missive listening tcp=ADDR ...` line ([`Listening`]), captures its stdout
//! and stderr (printed when a test panics), and can `kill9` (SIGKILL),
//! `terminate` (SIGTERM, asserts a clean exit) and `restart` on the same data
//! directory. It also opens sessions on the broker (`client`, `client_on`,
//! `admin`, `try_login`).
//!
//! Invariants: dropping a [`BrokerProc`] kills its process; signals only go to
//! our own child; every wait (startup, exit) is bounded; each broker owns its
//! temp dir and ports, so any number of brokers run side by side in one test
//! process.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use missive_protocol::pb;

use crate::{ErrorCode, Platform, RawClient, SECRET, WAIT, mint, mint_admin};

/// How long the broker may take to print its listening line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Stderr bytes kept per broker process (older output is dropped beyond this).
const STDERR_CAP: usize = 16 * 1024 * 1024;

/// Path of the `missive-under-test` binary: `$MISSIVE_UNDER_TEST` if set,
/// else next to the running test executable's `deps/` directory (where cargo
/// puts this package's binaries; `CARGO_BIN_EXE_*` only exists while compiling
/// the integration tests themselves, not this library).
pub fn broker_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MISSIVE_UNDER_TEST")
        .or_else(|| std::env::var_os("CARGO_BIN_EXE_missive-under-test"))
    {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current test executable");
    let mut dir = exe.parent().expect("executable directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("missive-under-test{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "broker binary not found at {} (set MISSIVE_UNDER_TEST)", bin.display());
    bin
}

/// How to start a broker.
#[derive(Debug, Clone)]
pub struct BrokerOpts {
    /// `--workers`.
    pub workers: usize,
    /// `--durability`: "fsync" or "buffered".
    pub durability: String,
    /// Extra TOML written to `missive-test.toml` in the data dir's parent and
    /// passed with `--config` (e.g. `"[limits]\nhandshake_timeout_secs = 1\n"`).
    pub config_toml: Option<String>,
    /// Run the broker inside this network namespace (`ip netns exec NS`), see [`crate::netns`].
    pub netns: Option<String>,
    /// The host the TCP and WebSocket listeners bind (port 0).
    pub host: String,
}

impl Default for BrokerOpts {
    fn default() -> Self {
        Self {
            workers: 2,
            durability: "fsync".to_owned(),
            config_toml: None,
            netns: None,
            host: "127.0.0.1".to_owned(),
        }
    }
}

impl BrokerOpts {
    /// Sets the worker count.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Sets the durability mode ("fsync" or "buffered").
    pub fn durability(mut self, d: &str) -> Self {
        self.durability = d.to_owned();
        self
    }

    /// Passes a configuration file with this TOML content.
    pub fn config(mut self, toml: &str) -> Self {
        self.config_toml = Some(toml.to_owned());
        self
    }

    /// Runs the broker inside network namespace `ns`, listening on `host`.
    pub fn in_netns(mut self, ns: &str, host: &str) -> Self {
        self.netns = Some(ns.to_owned());
        self.host = host.to_owned();
        self
    }

    /// Starts a broker with these options on a fresh temporary directory.
    pub fn spawn(self) -> BrokerProc {
        BrokerProc::spawn_with(self)
    }
}

/// The limits every test broker gets unless its test sets them: the
/// production defaults of the per-device send rate (5/s) and the handshake
/// rate per address (100/s) would throttle tests that send and connect fast
/// over loopback. Tests of those limits set them in their own config.
const TEST_LIMITS: [(&str, i64); 2] =
    [("max_sends_per_sec", 1_000_000), ("max_handshakes_per_ip_per_sec", 0)];

/// The config file of a test broker: the test's TOML with [`TEST_LIMITS`]
/// added where it does not set them (text that does not parse is kept as is,
/// for tests of bad configuration).
fn test_config(toml_text: Option<&str>) -> String {
    let text = toml_text.unwrap_or("");
    let Ok(mut table) = text.parse::<toml::Table>() else { return text.to_owned() };
    let limits = table.entry("limits").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(limits) = limits.as_table_mut() {
        for (k, v) in TEST_LIMITS {
            limits.entry(k).or_insert(toml::Value::Integer(v));
        }
    }
    table.to_string()
}

/// The addresses of a broker's `missive listening tcp=ADDR [ws=ADDR] [quic=ADDR] ...` line.
#[derive(Debug, Clone)]
pub struct Listening {
    /// The TCP listener.
    pub tcp: SocketAddr,
    /// The WebSocket/HTTP listener, if any.
    pub ws: Option<SocketAddr>,
    /// The QUIC listener, if any.
    pub quic: Option<SocketAddr>,
    /// The admin REST API listener, if any.
    pub api: Option<SocketAddr>,
    /// Every `key=value` of the line (e.g. `cert_sha256`).
    pub fields: HashMap<String, String>,
}

impl Listening {
    /// Parses the line; `None` if it is not the listening line or has no valid `tcp=`.
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix("missive listening ")?;
        let fields: HashMap<String, String> = rest
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let addr = |k: &str| fields.get(k).and_then(|v| v.parse::<SocketAddr>().ok());
        Some(Self { tcp: addr("tcp")?, ws: addr("ws"), quic: addr("quic"), api: addr("api"), fields })
    }

    /// The admin REST API address; panics if the broker has none.
    pub fn api(&self) -> SocketAddr {
        self.api.expect("broker printed no api= address")
    }

    /// The WebSocket address; panics if the broker has none.
    pub fn ws(&self) -> SocketAddr {
        self.ws.expect("broker printed no ws= address")
    }
}

/// A running broker process (the `missive-under-test` binary).
pub struct BrokerProc {
    child: Child,
    /// The TCP address the broker listens on.
    pub addr: SocketAddr,
    /// Every address the broker printed (`tcp`, `ws`, `quic`, ...).
    pub listening: Listening,
    root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    opts: BrokerOpts,
    log: Arc<Mutex<Vec<u8>>>,
    exited: Option<ExitStatus>,
}

impl std::fmt::Debug for BrokerProc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerProc")
            .field("pid", &self.child.id())
            .field("addr", &self.addr)
            .field("root", &self.root)
            .finish()
    }
}

fn push_log(log: &Mutex<Vec<u8>>, line: &[u8]) {
    if let Ok(mut g) = log.lock()
        && g.len() + line.len() <= STDERR_CAP
    {
        g.extend_from_slice(line);
    }
}

impl BrokerProc {
    /// Starts a broker with default options (2 workers, fsync) on a fresh temp dir.
    pub fn start() -> Self {
        BrokerOpts::default().spawn()
    }

    /// Starts a broker with `opts` on a fresh temp dir.
    pub fn spawn_with(opts: BrokerOpts) -> Self {
        let tmp = tempfile::Builder::new().prefix("missive-it-").tempdir().expect("create temp dir");
        let root = tmp.path().to_path_buf();
        let mut b = Self::spawn_in(&root, opts);
        b._tmp = Some(tmp);
        b
    }

    /// Starts a broker whose data lives under `root` (`root/data`); the
    /// directory is not deleted afterwards.
    pub fn spawn_in(root: &Path, opts: BrokerOpts) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (child, listening) = Self::launch(root, &opts, &log);
        let addr = listening.tcp;
        Self { child, addr, listening, root: root.to_path_buf(), _tmp: None, opts, log, exited: None }
    }

    fn launch(root: &Path, opts: &BrokerOpts, log: &Arc<Mutex<Vec<u8>>>) -> (Child, Listening) {
        let data = root.join("data");
        // `ip netns exec` execs the broker in place: the child's pid is the broker's.
        let mut cmd = match &opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(broker_binary());
                c
            }
            None => Command::new(broker_binary()),
        };
        let any_port = format!("{}:0", opts.host);
        cmd.arg("--data")
            .arg(&data)
            .args(["--tcp", &any_port, "--ws", &any_port, "--api", &any_port, "--secret", SECRET])
            .args(["--workers", &opts.workers.to_string()])
            .args(["--durability", &opts.durability]);
        let path = root.join("missive-test.toml");
        std::fs::write(&path, test_config(opts.config_toml.as_deref())).expect("write config file");
        cmd.arg("--config").arg(&path);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn missive-under-test");
        push_log(
            log,
            format!("==== broker pid {} started on {} ====\n", child.id(), data.display()).as_bytes(),
        );
        let stderr = child.stderr.take().expect("stderr piped");
        let l2 = Arc::clone(log);
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = Vec::new();
            while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                push_log(&l2, &line);
                line.clear();
            }
        });
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel::<Listening>();
        let l3 = Arc::clone(log);
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
                push_log(&l3, format!("[stdout] {line}").as_bytes());
                if let Some(l) = Listening::parse(&line) {
                    let _ = tx.send(l);
                }
                line.clear();
            }
        });
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(addr) => (child, addr),
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                // Failure path only: let the stderr thread collect the last lines.
                std::thread::sleep(Duration::from_millis(300));
                let text = log.lock().map(|g| String::from_utf8_lossy(&g).into_owned()).unwrap_or_default();
                panic!(
                    "broker did not print its listening line ({e}); exit status {status:?}; output:\n{text}"
                );
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding `data/` (and the config file, if any).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A shareable view of the broker's output, for other threads.
    pub fn log_handle(&self) -> LogHandle {
        LogHandle(Arc::clone(&self.log))
    }

    /// Everything the broker wrote on stderr (and stdout) so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|g| String::from_utf8_lossy(&g).into_owned()).unwrap_or_default()
    }

    /// Resident memory of the broker process, bytes (from /proc/PID/status VmRSS).
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
        let kb: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value in kB");
        kb * 1024
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) only sends a signal to our own child process; it
        // touches no memory of this process.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed: {}", io::Error::last_os_error());
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait().expect("try_wait") {
                Some(s) => {
                    self.exited = Some(s);
                    return s;
                }
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("broker did not exit within {timeout:?}; log:\n{}", self.log());
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Sends SIGHUP (the broker reloads its TLS certificate).
    pub fn hup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Kills the broker with SIGKILL (a crash) and waits for it to be gone.
    pub fn kill9(&mut self) {
        if self.exited.is_none() {
            self.signal(libc::SIGKILL);
        }
        let status = self.wait_exit(Duration::from_secs(30));
        assert!(!status.success(), "a SIGKILLed broker cannot exit successfully: {status:?}");
    }

    /// Stops the broker with SIGTERM, waits (bounded) and asserts it exited 0.
    pub fn terminate(&mut self) {
        assert!(self.exited.is_none(), "broker already exited: {:?}", self.exited);
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(60));
        assert!(status.success(), "broker exited with {status:?} after SIGTERM; log:\n{}", self.log());
    }

    /// Starts the broker again on the same data directory and options (the
    /// previous process is killed first if it is still running). The address
    /// changes (port 0).
    pub fn restart(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let (child, listening) = Self::launch(&self.root, &self.opts, &self.log);
        self.child = child;
        self.addr = listening.tcp;
        self.listening = listening;
        self.exited = None;
    }

    /// A connected, authenticated client for `user` on `device` (platform Linux).
    pub fn client(&self, user: &str, device: &str) -> RawClient {
        RawClient::login(self.addr, user, device)
    }

    /// A fresh TCP connection with no Hello sent yet.
    pub fn connect(&self) -> RawClient {
        RawClient::connect(self.addr)
    }
}

/// The captured output of a broker, shareable across threads.
#[derive(Debug, Clone)]
pub struct LogHandle(Arc<Mutex<Vec<u8>>>);

impl LogHandle {
    /// Whether the output so far contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        let Ok(g) = self.0.lock() else { return false };
        let n = needle.as_bytes();
        !n.is_empty() && g.windows(n.len()).any(|w| w == n)
    }

    /// Whether `needle` shows up within `timeout`: the broker's output is read
    /// by another thread, so a line the broker just wrote may not be here yet.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail = if log.len() > 64 * 1024 {
                let mut cut = log.len() - 64 * 1024;
                while !log.is_char_boundary(cut) {
                    cut += 1;
                }
                &log[cut..]
            } else {
                &log[..]
            };
            eprintln!(
                "---- broker {} log (tail) ----\n{tail}\n---- end broker log ----",
                self.root.display()
            );
        }
    }
}

/// The user id of [`BrokerProc::admin`] sessions.
pub const ADMIN_USER: &str = "ops-admin";

impl BrokerProc {
    /// A connection that sent Hello with `token` on `device` / `platform`,
    /// and the handshake outcome.
    pub fn try_login(
        &self,
        token: &str,
        device: &str,
        platform: Platform,
    ) -> (RawClient, Result<pb::HelloOk, pb::Close>) {
        let mut c = self.connect();
        let res = c.hello(token, device, platform);
        (c, res)
    }

    /// A client logged in as `user` on `device` with `platform`; panics if refused.
    pub fn client_on(&self, user: &str, device: &str, platform: Platform) -> RawClient {
        let (c, res) = self.try_login(&mint(user), device, platform);
        if let Err(close) = res {
            panic!("hello as {user}/{device} on {platform:?} refused: {close:?}");
        }
        c
    }

    /// An admin session ([`ADMIN_USER`], device `admin-console`, Linux).
    pub fn admin(&self) -> RawClient {
        let (c, res) = self.try_login(&mint_admin(ADMIN_USER), "admin-console", Platform::Linux);
        if let Err(close) = res {
            panic!("admin hello refused: {close:?}");
        }
        c
    }

    /// Asserts a login of `token` on `device` / `platform` is refused with Close{code}.
    pub fn assert_login_refused(&self, token: &str, device: &str, platform: Platform, code: ErrorCode) {
        let (mut c, res) = self.try_login(token, device, platform);
        match res {
            Ok(ok) => panic!("login on {device} accepted, expected Close {code}: {ok:?}"),
            Err(close) => assert_eq!(
                close.code,
                code.as_u32(),
                "login on {device}: expected Close {code}, got {} ({:?}) {:?}",
                close.code,
                ErrorCode::from_u32(close.code),
                close.message
            ),
        }
        c.expect_closed(WAIT);
    }
}

/// The total size in bytes of the files under `dir` (recursively).
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
