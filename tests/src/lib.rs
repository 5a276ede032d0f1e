//! Black-box test harness for Missive: a real broker process on loopback and a
//! minimal synchronous protocol client.
//!
//! Role: the integration tests in `tests/tests/*.rs` start the real broker CLI
//! (the `missive-under-test` binary of this package, same code as `missive`)
//! on `127.0.0.1:0` with RocksDB in a temporary directory, and talk to it over
//! TCP with [`RawClient`], which only uses `missive_protocol` (codec, prost
//! types, tokens) — never the SDK and never the broker's internals. Storage is
//! never mocked.
//!
//! Pieces:
//! - [`BrokerProc`]: spawns the broker ([`broker_binary`]), waits (bounded) for its
//!   `missive listening tcp=ADDR` line on stdout, captures stderr (printed when a
//!   test panics), can `kill9` (SIGKILL), `terminate` (SIGTERM, asserts a clean
//!   exit) and `restart` on the same data directory. Dropping it kills the process.
//! - [`mint`] / [`mint_with`]: access tokens signed with the secret the broker uses.
//! - [`RawClient`]: one TCP connection; frames in and out, `hello`, requests with
//!   response matching by id (pushes that arrive meanwhile are kept in
//!   [`RawClient::pushes`]), pipelining, and helpers for every request kind.
//!
//! Invariants: every wait is bounded by a timeout ([`WAIT`] unless told) and
//! returns as soon as its condition holds; nothing here sleeps for a fixed time
//! to "let things settle"; no timing is asserted (performance is measured by
//! the bench crate).

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use missive_protocol::pb::{self, frame, request, response};
use missive_protocol::token::{self, Claims, Role};
use missive_protocol::{DeviceId, FrameCodec, UserId};

pub use missive_protocol::ErrorCode;
pub use missive_protocol::pb::Platform;

/// Token secret shared by the test broker and [`mint`].
pub const SECRET: &str = "missive-test-secret-0123456789abcdef";

/// Default bound for a wait on the broker (responses, pushes, closes). Generous
/// because tests run in parallel on small, loaded machines; waits return as
/// soon as their condition holds.
pub const WAIT: Duration = Duration::from_secs(20);

/// How long the broker may take to print its listening line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest frame the test client accepts from the server. Larger than the
/// broker's `max_frame_size` on purpose: message pages are built by the server
/// and only bounded by page size × content size.
const CLIENT_MAX_FRAME: u32 = 256 * 1024 * 1024;

/// Stderr bytes kept per broker process (older output is dropped beyond this).
const STDERR_CAP: usize = 16 * 1024 * 1024;

/// Current unix time in seconds.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Current unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Broker process
// ---------------------------------------------------------------------------

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
}

impl Default for BrokerOpts {
    fn default() -> Self {
        Self { workers: 2, durability: "fsync".to_owned(), config_toml: None }
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

    /// Starts a broker with these options on a fresh temporary directory.
    pub fn spawn(self) -> BrokerProc {
        BrokerProc::spawn_with(self)
    }
}

/// A running broker process (the `missive-under-test` binary).
pub struct BrokerProc {
    child: Child,
    /// The TCP address the broker listens on.
    pub addr: SocketAddr,
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
        let (child, addr) = Self::launch(root, &opts, &log);
        Self { child, addr, root: root.to_path_buf(), _tmp: None, opts, log, exited: None }
    }

    fn launch(root: &Path, opts: &BrokerOpts, log: &Arc<Mutex<Vec<u8>>>) -> (Child, SocketAddr) {
        let data = root.join("data");
        let mut cmd = Command::new(broker_binary());
        cmd.arg("--data")
            .arg(&data)
            .args(["--tcp", "127.0.0.1:0", "--secret", SECRET])
            .args(["--workers", &opts.workers.to_string()])
            .args(["--durability", &opts.durability]);
        if let Some(toml) = &opts.config_toml {
            let path = root.join("missive-test.toml");
            std::fs::write(&path, toml).expect("write config file");
            cmd.arg("--config").arg(&path);
        }
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
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let l3 = Arc::clone(log);
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
                push_log(&l3, format!("[stdout] {line}").as_bytes());
                if let Some(rest) = line.trim().strip_prefix("missive listening tcp=")
                    && let Ok(addr) = rest.trim().parse::<SocketAddr>()
                {
                    let _ = tx.send(addr);
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
        let (child, addr) = Self::launch(&self.root, &self.opts, &self.log);
        self.child = child;
        self.addr = addr;
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

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// A user token valid for one hour, signed with [`SECRET`].
pub fn mint(user: &str) -> String {
    mint_with(SECRET, user, 3600, None, None)
}

/// A token signed with `secret`, expiring `ttl_secs` from now (negative: already
/// expired), optionally restricted to a device and a platform.
pub fn mint_with(
    secret: &str,
    user: &str,
    ttl_secs: i64,
    device: Option<&str>,
    platform: Option<Platform>,
) -> String {
    let now = now_secs();
    let expires_at = now.saturating_add_signed(ttl_secs);
    let claims = Claims {
        user: UserId::new(user).expect("valid user id"),
        expires_at,
        issued_at: now.saturating_sub(120),
        role: Role::User,
        device: device.map(|d| DeviceId::new(d).expect("valid device id")),
        platform,
    };
    token::mint(secret.as_bytes(), &claims)
}

/// The direct conversation id between two users (order does not matter).
pub fn direct(a: &str, b: &str) -> String {
    assert_ne!(a, b, "a direct conversation needs two distinct users");
    if a < b { format!("p:{a}:{b}") } else { format!("p:{b}:{a}") }
}

/// A text content.
pub fn text(s: &str) -> pb::Content {
    pb::Content { body: Some(pb::content::Body::Text(pb::Text { text: s.to_owned() })), ..Default::default() }
}

/// The text of a message, "" if it is not a text message.
pub fn text_of(m: &pb::Message) -> &str {
    match m.content.as_ref().and_then(|c| c.body.as_ref()) {
        Some(pb::content::Body::Text(t)) => &t.text,
        _ => "",
    }
}

/// Wraps a frame body.
pub fn frame_of(body: frame::Body) -> pb::Frame {
    pb::Frame { body: Some(body) }
}

// ---------------------------------------------------------------------------
// Raw client
// ---------------------------------------------------------------------------

/// Outcome of one read attempt.
// Short-lived return value matched by value in tests; boxing would only hurt matching.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Recv {
    /// A complete frame.
    Frame(pb::Frame),
    /// Nothing complete arrived within the timeout; the connection is open.
    Timeout,
    /// The server closed the connection (EOF or reset) and no complete frame is buffered.
    Eof,
}

/// A minimal synchronous protocol client over one TCP connection.
pub struct RawClient {
    stream: TcpStream,
    codec: FrameCodec,
    rbuf: BytesMut,
    eof: bool,
    next_id: u64,
    /// Pushes received and not yet consumed, oldest first.
    pub pushes: VecDeque<pb::Push>,
    /// Responses received for other request ids than the one being waited for.
    responses: HashMap<u64, pb::Response>,
    /// Pongs received while waiting for something else.
    pongs: VecDeque<pb::Pong>,
    /// The Close frame, once one arrived.
    pub close: Option<pb::Close>,
    /// The HelloOk, once the handshake succeeded.
    pub hello_ok: Option<pb::HelloOk>,
    /// Payload length of the last frame received.
    pub last_frame_len: usize,
    /// Largest payload length received on this connection.
    pub max_frame_len: usize,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient")
            .field("local", &self.stream.local_addr().ok())
            .field("eof", &self.eof)
            .field("pushes", &self.pushes.len())
            .field("close", &self.close)
            .finish()
    }
}

/// A `Response` split into its outcome.
pub fn outcome(r: pb::Response) -> Result<response::Result, pb::Error> {
    match (r.error, r.result) {
        (Some(e), _) => Err(e),
        (None, Some(res)) => Ok(res),
        (None, None) => panic!("response {} has neither error nor result", r.id),
    }
}

impl RawClient {
    /// Opens a TCP connection (no Hello sent).
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect to broker");
        Self::from_stream(stream)
    }

    /// Opens a TCP connection whose receive buffer is `rcvbuf` bytes (set before
    /// connecting, so the TCP window stays small): used to play a slow consumer.
    pub fn connect_small_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> Self {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
                .expect("socket");
        sock.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        sock.connect_timeout(&addr.into(), Duration::from_secs(10)).expect("connect to broker");
        Self::from_stream(sock.into())
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            codec: FrameCodec::new(CLIENT_MAX_FRAME),
            rbuf: BytesMut::with_capacity(64 * 1024),
            eof: false,
            next_id: 1,
            pushes: VecDeque::new(),
            responses: HashMap::new(),
            pongs: VecDeque::new(),
            close: None,
            hello_ok: None,
            last_frame_len: 0,
            max_frame_len: 0,
        }
    }

    /// Connects and completes the handshake for `user` on `device` (Linux);
    /// panics if the server refuses.
    pub fn login(addr: SocketAddr, user: &str, device: &str) -> Self {
        let mut c = Self::connect(addr);
        if let Err(close) = c.hello(&mint(user), device, Platform::Linux) {
            panic!("hello as {user}/{device} refused: {close:?}");
        }
        c
    }

    /// The local socket address (for diagnostics).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    /// Writes raw bytes.
    pub fn try_send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes raw bytes; panics on an I/O error.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.try_send_bytes(bytes).expect("write to broker");
    }

    /// Encodes and writes one frame.
    pub fn try_send_frame(&mut self, f: &pb::Frame) -> io::Result<()> {
        let bytes = self.codec.encode_to_bytes(f).expect("encode frame");
        self.try_send_bytes(&bytes)
    }

    /// Encodes and writes one frame; panics on an I/O error.
    pub fn send_frame(&mut self, f: &pb::Frame) {
        self.try_send_frame(f).expect("write frame to broker");
    }

    /// Reads until one complete frame is buffered, the timeout passes or EOF.
    pub fn recv(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let prefix = (self.rbuf.len() >= 4)
                .then(|| u32::from_be_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]));
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(f)) => {
                    let len = prefix.unwrap_or(0) as usize;
                    self.last_frame_len = len;
                    self.max_frame_len = self.max_frame_len.max(len);
                    if let Some(frame::Body::Close(c)) = &f.body {
                        self.close = Some(c.clone());
                    }
                    return Recv::Frame(f);
                }
                Ok(None) => {}
                Err(e) => panic!("server sent an undecodable frame: {e}"),
            }
            if self.eof {
                return Recv::Eof;
            }
            let now = Instant::now();
            if now >= deadline {
                return Recv::Timeout;
            }
            let left = (deadline - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(left)).expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.rbuf.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.eof = true, // reset / aborted: the server is gone
            }
        }
    }

    /// The next frame, or `None` on timeout or EOF (see [`RawClient::is_eof`]).
    pub fn recv_frame(&mut self, timeout: Duration) -> Option<pb::Frame> {
        match self.recv(timeout) {
            Recv::Frame(f) => Some(f),
            Recv::Timeout | Recv::Eof => None,
        }
    }

    /// Bytes of an incomplete frame currently buffered (after EOF: the
    /// connection ended in the middle of a frame).
    pub fn partial_bytes(&self) -> usize {
        self.rbuf.len()
    }

    /// The bytes of an incomplete frame currently buffered.
    pub fn partial_data(&self) -> &[u8] {
        &self.rbuf
    }

    /// Whether the server closed the connection (all buffered frames may not be consumed yet).
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Sends Hello (versions 1..=1) and waits for HelloOk (`Ok`) or Close (`Err`).
    pub fn hello(&mut self, token: &str, device: &str, platform: Platform) -> Result<pb::HelloOk, pb::Close> {
        self.hello_frame(hello_msg(token, device, platform))
    }

    /// Sends the given Hello and waits for HelloOk (`Ok`) or Close (`Err`).
    pub fn hello_frame(&mut self, h: pb::Hello) -> Result<pb::HelloOk, pb::Close> {
        self.send_frame(&frame_of(frame::Body::Hello(h)));
        match self.recv(WAIT) {
            Recv::Frame(pb::Frame { body: Some(frame::Body::HelloOk(ok)) }) => {
                self.hello_ok = Some(ok.clone());
                Ok(ok)
            }
            Recv::Frame(pb::Frame { body: Some(frame::Body::Close(c)) }) => Err(c),
            other => panic!("expected HelloOk or Close after Hello, got {other:?}"),
        }
    }

    /// Allocates a request id.
    pub fn next_request_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a request without waiting; returns its id (pipelining).
    pub fn try_send_request(&mut self, op: request::Op) -> io::Result<u64> {
        let id = self.next_request_id();
        self.try_send_frame(&frame_of(frame::Body::Request(pb::Request { id, op: Some(op) })))?;
        Ok(id)
    }

    /// Sends a request without waiting; returns its id (pipelining).
    pub fn send_request(&mut self, op: request::Op) -> u64 {
        self.try_send_request(op).expect("write request")
    }

    /// Handles one non-response frame that arrived while waiting.
    fn stash(&mut self, f: pb::Frame) {
        match f.body {
            Some(frame::Body::Push(p)) => self.pushes.push_back(p),
            Some(frame::Body::Response(r)) => {
                let id = r.id;
                if self.responses.insert(id, r).is_some() {
                    panic!("two responses for request id {id}");
                }
            }
            Some(frame::Body::Pong(p)) => self.pongs.push_back(p),
            Some(frame::Body::Close(c)) => self.close = Some(c),
            other => panic!("unexpected frame from server: {other:?}"),
        }
    }

    /// Waits for the Response to request `id`, keeping pushes and other
    /// responses that arrive meanwhile. Panics on timeout, Close or EOF.
    pub fn wait_response(&mut self, id: u64, timeout: Duration) -> pb::Response {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.responses.remove(&id) {
                return r;
            }
            if let Some(c) = &self.close {
                panic!("connection closed by the server while waiting for response {id}: {c:?}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout => panic!("no response to request {id} within {timeout:?}"),
                Recv::Eof => panic!("connection closed (EOF) while waiting for response {id}"),
            }
        }
    }

    /// Waits for the response of any request, keeping pushes meanwhile. `None`
    /// on timeout or EOF.
    pub fn next_response(&mut self, timeout: Duration) -> Option<pb::Response> {
        if let Some(id) = self.responses.keys().next().copied() {
            return self.responses.remove(&id);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(pb::Frame { body: Some(frame::Body::Response(r)) }) => return Some(r),
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout | Recv::Eof => return None,
            }
        }
    }

    /// Sends a request and waits (bounded by [`WAIT`]) for its response.
    pub fn request(&mut self, op: request::Op) -> pb::Response {
        let id = self.send_request(op);
        let r = self.wait_response(id, WAIT);
        assert_eq!(r.id, id);
        r
    }

    /// The next push (already received ones first), or `None` after `timeout`.
    pub fn next_push(&mut self, timeout: Duration) -> Option<pb::push::Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.pushes.pop_front() {
                return Some(p.event.expect("push without event"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout | Recv::Eof => return None,
            }
        }
    }

    /// The next pushed message (other pushes before it are dropped), or `None`
    /// after `timeout`.
    pub fn next_message_push(&mut self, timeout: Duration) -> Option<pb::Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_push(left)? {
                pb::push::Event::Message(m) => return Some(m),
                _ => continue,
            }
        }
    }

    /// Waits for the first push matching `pred` (others are dropped); panics on timeout.
    pub fn expect_push<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&pb::push::Event) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_push(left) {
                Some(ev) => match pred(&ev) {
                    Some(t) => return t,
                    None => skipped.push(ev),
                },
                None => panic!("no push matching {what} within {timeout:?}; other pushes: {skipped:?}"),
            }
        }
    }

    /// Sends Ping{nonce} and waits for the matching Pong (pushes are kept).
    pub fn ping(&mut self, nonce: u64) -> pb::Pong {
        self.send_frame(&frame_of(frame::Body::Ping(pb::Ping { nonce })));
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.pongs.iter().position(|p| p.nonce == nonce) {
                return self.pongs.remove(pos).expect("pong at position");
            }
            if let Some(c) = &self.close {
                panic!("connection closed by the server while waiting for pong {nonce}: {c:?}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout => panic!("no pong for nonce {nonce} within {WAIT:?}"),
                Recv::Eof => panic!("connection closed (EOF) while waiting for pong {nonce}"),
            }
        }
    }

    /// Reads until the server closes the connection; returns the Close frame
    /// if one arrived (before or during this call). Panics if the connection
    /// is still open after `timeout`. Pushes read meanwhile are dropped.
    pub fn expect_closed(&mut self, timeout: Duration) -> Option<pb::Close> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(pb::Frame { body: Some(frame::Body::Close(c)) }) => self.close = Some(c),
                Recv::Frame(_) => {}
                Recv::Eof => return self.close.clone(),
                Recv::Timeout => {
                    panic!("connection still open after {timeout:?} (close frame so far: {:?})", self.close)
                }
            }
        }
    }

    /// Asserts the server sends Close{code} and then closes the connection.
    pub fn expect_close_code(&mut self, code: ErrorCode) -> pb::Close {
        match self.expect_closed(WAIT) {
            Some(c) => {
                assert_eq!(
                    c.code,
                    code.as_u32(),
                    "expected Close {code}, got Close {} {:?} ({:?})",
                    c.code,
                    c.message,
                    ErrorCode::from_u32(c.code)
                );
                c
            }
            None => panic!("connection closed without a Close frame; expected Close {code}"),
        }
    }

    // ---- typed helpers -------------------------------------------------

    /// SendMessage with any content.
    pub fn send_content(
        &mut self,
        conv: &str,
        client_msg_id: &str,
        content: pb::Content,
    ) -> Result<pb::SendAck, pb::Error> {
        let op = request::Op::Send(pb::SendMessage {
            conv_id: conv.to_owned(),
            client_msg_id: client_msg_id.to_owned(),
            content: Some(content),
        });
        match outcome(self.request(op))? {
            response::Result::SendAck(a) => Ok(a),
            other => panic!("SendMessage answered with {other:?}"),
        }
    }

    /// SendMessage with a text.
    pub fn send_text(
        &mut self,
        conv: &str,
        client_msg_id: &str,
        body: &str,
    ) -> Result<pb::SendAck, pb::Error> {
        self.send_content(conv, client_msg_id, text(body))
    }

    /// Sends a text and expects a fresh (non-duplicate) ack.
    pub fn send_ok(&mut self, conv: &str, client_msg_id: &str, body: &str) -> pb::SendAck {
        let ack = self
            .send_text(conv, client_msg_id, body)
            .unwrap_or_else(|e| panic!("send {client_msg_id} to {conv} failed: {e:?}"));
        assert!(!ack.duplicate, "fresh send {client_msg_id} acked as duplicate: {ack:?}");
        assert_eq!(ack.conv_id, conv);
        ack
    }

    /// Sends many texts pipelined (up to `window` in flight); returns the acks
    /// in request order. Texts are `"{prefix}{i}"`, client_msg_ids `"{prefix}{i}"`.
    pub fn send_many(&mut self, conv: &str, prefix: &str, count: usize, window: usize) -> Vec<pb::SendAck> {
        self.send_many_padded(conv, prefix, count, window, 0)
    }

    /// Like [`RawClient::send_many`], with each text padded with `'.'` to at
    /// least `min_len` bytes (it still starts with its client_msg_id).
    pub fn send_many_padded(
        &mut self,
        conv: &str,
        prefix: &str,
        count: usize,
        window: usize,
        min_len: usize,
    ) -> Vec<pb::SendAck> {
        let mut ids = Vec::with_capacity(count);
        let mut acks: HashMap<u64, pb::SendAck> = HashMap::new();
        let mut next = 0;
        let mut in_flight = 0;
        while acks.len() < count {
            while next < count && in_flight < window {
                let cmid = format!("{prefix}{next}");
                let mut body = cmid.clone();
                while body.len() < min_len {
                    body.push('.');
                }
                let id = self.send_request(request::Op::Send(pb::SendMessage {
                    conv_id: conv.to_owned(),
                    client_msg_id: cmid,
                    content: Some(text(&body)),
                }));
                ids.push(id);
                next += 1;
                in_flight += 1;
            }
            let r = self.next_response(WAIT).expect("a response to a pipelined send");
            let id = r.id;
            match outcome(r) {
                Ok(response::Result::SendAck(a)) => {
                    acks.insert(id, a);
                }
                other => panic!("pipelined send (request {id}) failed: {other:?}"),
            }
            in_flight -= 1;
        }
        ids.iter().map(|id| acks.remove(id).expect("ack for every request")).collect()
    }

    /// SyncRequest.
    pub fn sync(&mut self, token: &str, limit: u32) -> Result<pb::SyncResult, pb::Error> {
        let op = request::Op::Sync(pb::SyncRequest { sync_token: token.to_owned(), limit });
        match outcome(self.request(op))? {
            response::Result::Sync(s) => Ok(s),
            other => panic!("SyncRequest answered with {other:?}"),
        }
    }

    /// Syncs from `token` until `more` is false (bounded number of pages).
    /// Returns every conversation state in order, the last settings seen and the final token.
    pub fn sync_all(&mut self, token: &str) -> SyncAll {
        let mut out =
            SyncAll { conversations: Vec::new(), settings: None, token: token.to_owned(), pages: 0 };
        for _ in 0..10_000 {
            let page =
                self.sync(&out.token, 0).unwrap_or_else(|e| panic!("sync from {:?}: {e:?}", out.token));
            out.pages += 1;
            out.conversations.extend(page.conversations);
            if page.settings.is_some() {
                out.settings = page.settings;
            }
            out.token = page.sync_token;
            if !page.more {
                return out;
            }
        }
        panic!("sync did not finish within 10000 pages");
    }

    /// PullRequest.
    pub fn pull(&mut self, conv: &str, from: u64, to: u64, limit: u32) -> Result<pb::Messages, pb::Error> {
        let op = request::Op::Pull(pb::PullRequest {
            conv_id: conv.to_owned(),
            from_seq: from,
            to_seq: to,
            limit,
        });
        match outcome(self.request(op))? {
            response::Result::Messages(m) => Ok(m),
            other => panic!("PullRequest answered with {other:?}"),
        }
    }

    /// Pulls every readable message of `conv` from `from` on, in pages, following `more`.
    pub fn pull_all_from(&mut self, conv: &str, from: u64) -> Vec<pb::Message> {
        let mut out: Vec<pb::Message> = Vec::new();
        let mut next = from;
        for _ in 0..100_000 {
            let page =
                self.pull(conv, next, 0, 500).unwrap_or_else(|e| panic!("pull {conv} from {next}: {e:?}"));
            let more = page.more;
            if let Some(last) = page.messages.last() {
                next = last.seq + 1;
            }
            let empty = page.messages.is_empty();
            out.extend(page.messages);
            if !more {
                return out;
            }
            assert!(!empty, "pull page with more=true but no messages");
        }
        panic!("pull did not finish");
    }

    /// Pulls every readable message of `conv`.
    pub fn pull_all(&mut self, conv: &str) -> Vec<pb::Message> {
        self.pull_all_from(conv, 1)
    }

    /// HistoryRequest.
    pub fn history(&mut self, conv: &str, before: u64, limit: u32) -> Result<pb::Messages, pb::Error> {
        let op =
            request::Op::History(pb::HistoryRequest { conv_id: conv.to_owned(), before_seq: before, limit });
        match outcome(self.request(op))? {
            response::Result::Messages(m) => Ok(m),
            other => panic!("HistoryRequest answered with {other:?}"),
        }
    }

    fn conv_result(&mut self, op: request::Op) -> Result<pb::ConversationState, pb::Error> {
        match outcome(self.request(op))? {
            response::Result::Conversation(c) => Ok(c),
            other => panic!("expected a ConversationState result, got {other:?}"),
        }
    }

    /// MarkRead.
    pub fn mark_read(&mut self, conv: &str, seq: u64) -> Result<pb::ConversationState, pb::Error> {
        self.conv_result(request::Op::MarkRead(pb::MarkRead { conv_id: conv.to_owned(), seq }))
    }

    /// UpdateConversation (unset fields unchanged).
    pub fn update(
        &mut self,
        conv: &str,
        pinned: Option<bool>,
        muted: Option<bool>,
        hidden: Option<bool>,
    ) -> Result<pb::ConversationState, pb::Error> {
        self.conv_result(request::Op::UpdateConversation(pb::UpdateConversation {
            conv_id: conv.to_owned(),
            pinned,
            muted,
            hidden,
        }))
    }

    /// ClearHistory.
    pub fn clear(&mut self, conv: &str, up_to: u64) -> Result<pb::ConversationState, pb::Error> {
        self.conv_result(request::Op::ClearHistory(pb::ClearHistory {
            conv_id: conv.to_owned(),
            up_to_seq: up_to,
        }))
    }

    /// SetGlobalDnd.
    pub fn set_global_dnd(&mut self, enabled: bool) -> Result<(), pb::Error> {
        match outcome(self.request(request::Op::SetGlobalDnd(pb::SetGlobalDnd { enabled })))? {
            response::Result::Ok(_) => Ok(()),
            other => panic!("SetGlobalDnd answered with {other:?}"),
        }
    }
}

/// Everything a paged sync returned.
#[derive(Debug, Clone)]
pub struct SyncAll {
    /// Conversation states in the order returned (a conversation may repeat
    /// only if it changed again during paging).
    pub conversations: Vec<pb::ConversationState>,
    /// The last settings returned, if any.
    pub settings: Option<pb::UserSettings>,
    /// The final sync token.
    pub token: String,
    /// Number of pages fetched.
    pub pages: usize,
}

impl SyncAll {
    /// The state of `conv`, if returned.
    pub fn conv(&self, conv: &str) -> Option<&pb::ConversationState> {
        self.conversations.iter().rev().find(|c| c.conv_id == conv)
    }
}

/// Asserts an error response has `code` (and the retryable flag of that code).
pub fn assert_error<T: std::fmt::Debug>(res: Result<T, pb::Error>, code: ErrorCode, what: &str) -> pb::Error {
    match res {
        Ok(v) => panic!("{what}: expected error {code}, got success {v:?}"),
        Err(e) => {
            assert_eq!(
                e.code,
                code.as_u32(),
                "{what}: expected error {code}, got {} ({:?}) {:?}",
                e.code,
                ErrorCode::from_u32(e.code),
                e.message
            );
            assert_eq!(e.retryable, code.retryable(), "{what}: retryable flag of {code}");
            e
        }
    }
}

/// Asserts `msgs` have seqs exactly `first..=last`, ascending, no gap or duplicate.
pub fn assert_dense(msgs: &[pb::Message], first: u64, last: u64, what: &str) {
    let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
    let expected: Vec<u64> = (first..=last).collect();
    if seqs != expected {
        let shown: Vec<u64> = seqs.iter().copied().take(50).collect();
        panic!(
            "{what}: expected seqs {first}..={last} ({} messages), got {} messages: {shown:?}...",
            expected.len(),
            seqs.len()
        );
    }
}

/// The Hello the harness sends: versions 1..=1, the given token, device and platform.
pub fn hello_msg(token: &str, device: &str, platform: Platform) -> pb::Hello {
    pb::Hello {
        min_version: 1,
        max_version: 1,
        token: token.to_owned(),
        device_id: device.to_owned(),
        platform: platform as i32,
        client_version: "missive-tests/0.1".to_owned(),
    }
}
