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

pub mod ws;
pub mod wt;

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
use missive_protocol::{Call, DeviceId, FrameCodec, UserId};

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

/// The addresses of a broker's `missive listening tcp=ADDR [ws=ADDR] [quic=ADDR] ...` line.
#[derive(Debug, Clone)]
pub struct Listening {
    /// The TCP listener.
    pub tcp: SocketAddr,
    /// The WebSocket/HTTP listener, if any.
    pub ws: Option<SocketAddr>,
    /// The QUIC listener, if any.
    pub quic: Option<SocketAddr>,
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
        Some(Self { tcp: addr("tcp")?, ws: addr("ws"), quic: addr("quic"), fields })
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
        let mut cmd = Command::new(broker_binary());
        cmd.arg("--data")
            .arg(&data)
            .args(["--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--secret", SECRET])
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
    pub fn try_send_request<C: Call>(&mut self, req: C) -> io::Result<u64> {
        let id = self.next_request_id();
        self.try_send_frame(&missive_protocol::request_frame(id, req))?;
        Ok(id)
    }

    /// Sends a request without waiting; returns its id (pipelining).
    pub fn send_request<C: Call>(&mut self, req: C) -> u64 {
        self.try_send_request(req).expect("write request")
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
    pub fn request<C: Call>(&mut self, req: C) -> pb::Response {
        let id = self.send_request(req);
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
        self.call(pb::SendMessage {
            conv_id: conv.to_owned(),
            client_msg_id: client_msg_id.to_owned(),
            content: Some(content),
        })
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
                let id = self.send_request(pb::SendMessage {
                    conv_id: conv.to_owned(),
                    client_msg_id: cmid,
                    content: Some(text(&body)),
                });
                ids.push(id);
                next += 1;
                in_flight += 1;
            }
            let r = self.next_response(WAIT).expect("a response to a pipelined send");
            let id = r.id;
            match outcome(r).map(pb::SendMessage::reply) {
                Ok(Ok(a)) => {
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
        self.call(pb::SyncRequest { sync_token: token.to_owned(), limit })
    }

    /// Syncs from `token` until `more` is false (bounded number of pages).
    /// Returns every conversation state in order, the last settings seen and the final token.
    pub fn sync_all(&mut self, token: &str) -> SyncAll {
        let f = self.sync_full(token);
        SyncAll { conversations: f.conversations, settings: f.settings, token: f.token, pages: f.pages }
    }

    /// PullRequest.
    pub fn pull(&mut self, conv: &str, from: u64, to: u64, limit: u32) -> Result<pb::Messages, pb::Error> {
        self.call(pb::PullRequest { conv_id: conv.to_owned(), from_seq: from, to_seq: to, limit })
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
        self.call(pb::HistoryRequest { conv_id: conv.to_owned(), before_seq: before, limit })
    }

    /// MarkRead.
    pub fn mark_read(&mut self, conv: &str, seq: u64) -> Result<pb::ConversationState, pb::Error> {
        self.call(pb::MarkRead { conv_id: conv.to_owned(), seq })
    }

    /// UpdateConversation (unset fields unchanged).
    pub fn update(
        &mut self,
        conv: &str,
        pinned: Option<bool>,
        muted: Option<bool>,
        hidden: Option<bool>,
    ) -> Result<pb::ConversationState, pb::Error> {
        self.call(pb::UpdateConversation { conv_id: conv.to_owned(), pinned, muted, hidden })
    }

    /// ClearHistory.
    pub fn clear(&mut self, conv: &str, up_to: u64) -> Result<pb::ConversationState, pb::Error> {
        self.call(pb::ClearHistory { conv_id: conv.to_owned(), up_to_seq: up_to })
    }

    /// SetGlobalDnd.
    pub fn set_global_dnd(&mut self, enabled: bool) -> Result<(), pb::Error> {
        self.call(pb::SetGlobalDnd { enabled })
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

// ===========================================================================
// Users, devices and relations (issue #5; spec sections 12 and 13)
// ---------------------------------------------------------------------------
// Tokens with a role or a chosen `iat`, logins on a given platform, an admin
// session, typed helpers for every request of sections 12 and 13, waits for a
// specific push that keep the other pushes queued, kick checks, and a full
// sync that also collects `SyncResult.relations` / `.profiles`.
// ===========================================================================

use std::collections::BTreeMap;

/// The user id of [`BrokerProc::admin`] sessions.
pub const ADMIN_USER: &str = "ops-admin";

/// How long a negative check ("no such push arrives") listens. Only used
/// where no positive barrier can prove absence.
pub const QUIET: Duration = Duration::from_millis(1500);

/// A token for `user` with the given role and `iat`, expiring one hour from
/// now, optionally restricted to a device and a platform.
pub fn mint_claims(
    user: &str,
    role: Role,
    issued_at: u64,
    device: Option<&str>,
    platform: Option<Platform>,
) -> String {
    let claims = Claims {
        user: UserId::new(user).expect("valid user id"),
        expires_at: now_secs() + 3600,
        issued_at,
        role,
        device: device.map(|d| DeviceId::new(d).expect("valid device id")),
        platform,
    };
    token::mint(SECRET.as_bytes(), &claims)
}

/// An admin-role token for `user` (issued two minutes ago, like [`mint`]).
pub fn mint_admin(user: &str) -> String {
    mint_claims(user, Role::Admin, now_secs().saturating_sub(120), None, None)
}

/// A user-role token for `user` whose `iat` is exactly `issued_at`.
pub fn mint_issued_at(user: &str, issued_at: u64) -> String {
    mint_claims(user, Role::User, issued_at, None, None)
}

/// A string map (profile / friend `ex`) from pairs.
pub fn ex_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Unwraps a typed result, panicking with `what` and the error.
pub fn must<T>(res: Result<T, pb::Error>, what: &str) -> T {
    res.unwrap_or_else(|e| {
        panic!("{what} failed: {} ({:?}) {:?}", e.code, ErrorCode::from_u32(e.code), e.message)
    })
}

/// The platforms of a presence as enum values.
pub fn platforms_of(p: &pb::Presence) -> Vec<Platform> {
    p.platforms.iter().map(|&v| Platform::try_from(v).unwrap_or(Platform::Unspecified)).collect()
}

/// `Presence` of `user` in `list`; panics if absent.
pub fn presence_of<'a>(list: &'a [pb::Presence], user: &str) -> &'a pb::Presence {
    list.iter().find(|p| p.user_id == user).unwrap_or_else(|| panic!("no presence of {user} in {list:?}"))
}

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

/// Everything a paged sync returned, relations and profiles included.
#[derive(Debug, Clone, Default)]
pub struct SyncFull {
    /// Conversation states, in the order returned.
    pub conversations: Vec<pb::ConversationState>,
    /// Relations, in the order returned.
    pub relations: Vec<pb::Relation>,
    /// Profiles, in the order returned.
    pub profiles: Vec<pb::Profile>,
    /// The last settings returned, if any.
    pub settings: Option<pb::UserSettings>,
    /// The final sync token.
    pub token: String,
    /// Number of pages fetched.
    pub pages: usize,
}

impl SyncFull {
    /// The last relation returned for `user`.
    pub fn relation(&self, user: &str) -> Option<&pb::Relation> {
        self.relations.iter().rev().find(|r| r.user_id == user)
    }

    /// The last profile returned for `user`.
    pub fn profile(&self, user: &str) -> Option<&pb::Profile> {
        self.profiles.iter().rev().find(|p| p.user_id == user)
    }
}

impl RawClient {
    /// ImportUser (admin).
    pub fn import_user(
        &mut self,
        user: &str,
        profile: Option<pb::ProfilePatch>,
    ) -> Result<pb::Profile, pb::Error> {
        self.call(pb::ImportUser { user_id: user.to_owned(), profile })
    }

    /// SetAccountDisabled (admin).
    pub fn set_account_disabled(
        &mut self,
        user: &str,
        disabled: bool,
        reason: &str,
    ) -> Result<(), pb::Error> {
        self.call(pb::SetAccountDisabled { user_id: user.to_owned(), disabled, reason: reason.to_owned() })
    }

    /// RevokeTokens (admin).
    pub fn revoke_tokens(&mut self, user: &str) -> Result<(), pb::Error> {
        self.call(pb::RevokeTokens { user_id: user.to_owned() })
    }

    /// AccountsExist.
    pub fn accounts_exist(&mut self, users: &[&str]) -> Result<Vec<pb::AccountStatus>, pb::Error> {
        self.call(pb::AccountsExist { user_ids: strings(users) }).map(|v| v.accounts)
    }

    /// SetProfile.
    pub fn set_profile(&mut self, patch: pb::ProfilePatch) -> Result<pb::Profile, pb::Error> {
        self.call(pb::SetProfile { patch: Some(patch) })
    }

    /// GetProfiles.
    pub fn get_profiles(&mut self, users: &[&str]) -> Result<Vec<pb::Profile>, pb::Error> {
        self.call(pb::GetProfiles { user_ids: strings(users) }).map(|v| v.profiles)
    }

    /// GetPresence.
    pub fn get_presence(&mut self, users: &[&str]) -> Result<Vec<pb::Presence>, pb::Error> {
        self.call(pb::GetPresence { user_ids: strings(users) }).map(|v| v.presences)
    }

    /// SubscribePresence.
    pub fn subscribe_presence(&mut self, users: &[&str]) -> Result<Vec<pb::Presence>, pb::Error> {
        self.call(pb::SubscribePresence { user_ids: strings(users) }).map(|v| v.presences)
    }

    /// UnsubscribePresence.
    pub fn unsubscribe_presence(&mut self, users: &[&str]) -> Result<(), pb::Error> {
        self.call(pb::UnsubscribePresence { user_ids: strings(users) })
    }

    /// ListPresenceSubscriptions.
    pub fn list_presence_subscriptions(&mut self) -> Result<Vec<pb::Presence>, pb::Error> {
        self.call(pb::ListPresenceSubscriptions {}).map(|v| v.presences)
    }

    /// SetPresenceStatus.
    pub fn set_presence_status(&mut self, text: &str) -> Result<(), pb::Error> {
        self.call(pb::SetPresenceStatus { text: text.to_owned() })
    }

    /// AddFriend.
    pub fn add_friend(
        &mut self,
        user: &str,
        message: &str,
        remark: &str,
        ex: BTreeMap<String, String>,
    ) -> Result<pb::AddFriendResult, pb::Error> {
        self.call(pb::AddFriend {
            user_id: user.to_owned(),
            message: message.to_owned(),
            remark: remark.to_owned(),
            ex,
        })
    }

    /// AddFriend with only a request message.
    pub fn add_friend_msg(&mut self, user: &str, message: &str) -> Result<pb::AddFriendResult, pb::Error> {
        self.add_friend(user, message, "", BTreeMap::new())
    }

    /// RespondFriendRequest.
    pub fn respond_friend(
        &mut self,
        user: &str,
        accept: bool,
        remark: &str,
        ex: BTreeMap<String, String>,
    ) -> Result<pb::Relation, pb::Error> {
        self.call(pb::RespondFriendRequest {
            user_id: user.to_owned(),
            accept,
            remark: remark.to_owned(),
            ex,
        })
    }

    /// DeleteFriend.
    pub fn delete_friend(&mut self, user: &str, both_sides: bool) -> Result<pb::Relation, pb::Error> {
        self.call(pb::DeleteFriend { user_id: user.to_owned(), both_sides })
    }

    /// UpdateFriend.
    pub fn update_friend(
        &mut self,
        user: &str,
        remark: Option<&str>,
        ex: BTreeMap<String, String>,
    ) -> Result<pb::Relation, pb::Error> {
        self.call(pb::UpdateFriend { user_id: user.to_owned(), remark: remark.map(str::to_owned), ex })
    }

    /// ListFriends (one page).
    pub fn list_friends(
        &mut self,
        cursor: &str,
        limit: u32,
        with_profiles: bool,
    ) -> Result<pb::FriendList, pb::Error> {
        self.call(pb::ListFriends { cursor: cursor.to_owned(), limit, with_profiles })
    }

    /// Every friend's user id, following `next_cursor` (bounded number of pages).
    pub fn friend_ids(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..1000 {
            let page = must(self.list_friends(&cursor, 0, false), "ListFriends");
            out.extend(page.friends.into_iter().map(|r| r.user_id));
            if page.next_cursor.is_empty() {
                return out;
            }
            cursor = page.next_cursor;
        }
        panic!("ListFriends paging did not end");
    }

    /// ListFriendRequests (one page).
    pub fn list_friend_requests(
        &mut self,
        outgoing: bool,
        cursor: &str,
        limit: u32,
    ) -> Result<pb::FriendRequestList, pb::Error> {
        self.call(pb::ListFriendRequests { outgoing, cursor: cursor.to_owned(), limit })
    }

    /// CheckRelations.
    pub fn check_relations(&mut self, users: &[&str]) -> Result<Vec<pb::Relation>, pb::Error> {
        self.call(pb::CheckRelations { user_ids: strings(users) }).map(|v| v.relations)
    }

    /// The caller's relation with one user (CheckRelations of one id).
    pub fn relation(&mut self, user: &str) -> pb::Relation {
        let mut all = must(self.check_relations(&[user]), "CheckRelations");
        assert_eq!(all.len(), 1, "CheckRelations of one id: {all:?}");
        all.remove(0)
    }

    /// SearchFriends.
    pub fn search_friends(&mut self, query: &str, limit: u32) -> Result<pb::FriendList, pb::Error> {
        self.call(pb::SearchFriends { query: query.to_owned(), limit })
    }

    /// ImportFriendship (admin).
    pub fn import_friendship(&mut self, a: &str, b: &str) -> Result<(), pb::Error> {
        self.call(pb::ImportFriendship { user_a: a.to_owned(), user_b: b.to_owned() })
    }

    /// AddToBlacklist.
    pub fn block(&mut self, user: &str) -> Result<pb::Relation, pb::Error> {
        self.call(pb::AddToBlacklist { user_id: user.to_owned() })
    }

    /// RemoveFromBlacklist.
    pub fn unblock(&mut self, user: &str) -> Result<pb::Relation, pb::Error> {
        self.call(pb::RemoveFromBlacklist { user_id: user.to_owned() })
    }

    /// ListBlacklist (one page).
    pub fn list_blacklist(&mut self, cursor: &str, limit: u32) -> Result<pb::Blacklist, pb::Error> {
        self.call(pb::ListBlacklist { cursor: cursor.to_owned(), limit })
    }

    /// Syncs from `token` until `more` is false, collecting relations and
    /// profiles too (bounded number of pages).
    pub fn sync_full(&mut self, token: &str) -> SyncFull {
        let mut out = SyncFull { token: token.to_owned(), ..SyncFull::default() };
        for _ in 0..10_000 {
            let page =
                self.sync(&out.token, 0).unwrap_or_else(|e| panic!("sync from {:?}: {e:?}", out.token));
            out.pages += 1;
            out.conversations.extend(page.conversations);
            out.relations.extend(page.relations);
            out.profiles.extend(page.profiles);
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

    // ---- pushes of sections 12 and 13 -----------------------------------

    /// Like [`RawClient::wait_push`], but `None` after `timeout`.
    pub fn try_wait_push<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&pb::push::Event) -> Option<T>,
    ) -> Option<T> {
        let found = self
            .pushes
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.event.as_ref().and_then(&mut pick).map(|t| (i, t)));
        if let Some((i, t)) = found {
            self.pushes.remove(i);
            return Some(t);
        }
        let deadline = Instant::now() + timeout;
        let mut fresh = Vec::new();
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(pb::Frame { body: Some(frame::Body::Push(p)) }) => {
                    if let Some(t) = p.event.as_ref().and_then(&mut pick) {
                        break Some(t);
                    }
                    fresh.push(p);
                }
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout | Recv::Eof => break None,
            }
        };
        self.pushes.extend(fresh);
        result
    }

    /// Waits for the first push for which `pick` returns `Some` and removes
    /// it; every other push stays queued in order. Panics after `timeout`.
    pub fn wait_push<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        pick: impl FnMut(&pb::push::Event) -> Option<T>,
    ) -> T {
        match self.try_wait_push(timeout, pick) {
            Some(t) => t,
            None => panic!(
                "no push matching {what} within {timeout:?} (close: {:?}); queued pushes: {:?}",
                self.close, self.pushes
            ),
        }
    }

    /// Listens for `window` and panics if a push for which `bad` returns
    /// true is queued or arrives; other pushes stay queued.
    pub fn assert_no_push(
        &mut self,
        what: &str,
        window: Duration,
        mut bad: impl FnMut(&pb::push::Event) -> bool,
    ) {
        if let Some(p) = self.pushes.iter().find(|p| p.event.as_ref().is_some_and(&mut bad)) {
            panic!("unexpected push ({what}): {p:?}");
        }
        let deadline = Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.recv(left) {
                Recv::Frame(pb::Frame { body: Some(frame::Body::Push(p)) }) => {
                    if p.event.as_ref().is_some_and(&mut bad) {
                        panic!("unexpected push ({what}): {p:?}");
                    }
                    self.pushes.push_back(p);
                }
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout | Recv::Eof => return,
            }
        }
    }

    /// Drops every queued push.
    pub fn clear_pushes(&mut self) {
        self.pushes.clear();
    }

    /// The next `Push{relation}` about `user` (others stay queued).
    pub fn expect_relation_push(&mut self, user: &str) -> pb::Relation {
        self.wait_push(&format!("relation with {user}"), WAIT, |ev| match ev {
            pb::push::Event::Relation(r) if r.user_id == user => Some(r.clone()),
            _ => None,
        })
    }

    /// The next `Push{profile}` of `user` (others stay queued).
    pub fn expect_profile_push(&mut self, user: &str) -> pb::Profile {
        self.wait_push(&format!("profile of {user}"), WAIT, |ev| match ev {
            pb::push::Event::Profile(p) if p.user_id == user => Some(p.clone()),
            _ => None,
        })
    }

    /// The next push that `extract` maps to a value for which `pred` holds;
    /// earlier values that do not match are dropped (a state may pass through
    /// intermediate values), other pushes stay queued. Panics after [`WAIT`].
    fn expect_push_where<T: std::fmt::Debug>(
        &mut self,
        what: &str,
        extract: impl Fn(&pb::push::Event) -> Option<T>,
        mut pred: impl FnMut(&T) -> bool,
    ) -> T {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_wait_push(left, &extract) {
                Some(v) if pred(&v) => return v,
                Some(v) => seen.push(v),
                None => panic!(
                    "no matching push of {what} within {WAIT:?}; non-matching ones: {seen:?}; close: {:?}",
                    self.close
                ),
            }
        }
    }

    /// The next `Push{presence}` of `user` for which `pred` holds (see
    /// `expect_push_where`: non-matching presence pushes of `user` are dropped).
    pub fn expect_presence_push(
        &mut self,
        user: &str,
        pred: impl FnMut(&pb::Presence) -> bool,
    ) -> pb::Presence {
        let extract = |ev: &pb::push::Event| match ev {
            pb::push::Event::Presence(p) if p.user_id == user => Some(p.clone()),
            _ => None,
        };
        self.expect_push_where(&format!("presence of {user}"), extract, pred)
    }

    /// The next `Push{relation}` about `user` for which `pred` holds
    /// (non-matching relation pushes about `user` are dropped).
    pub fn expect_relation_push_where(
        &mut self,
        user: &str,
        pred: impl FnMut(&pb::Relation) -> bool,
    ) -> pb::Relation {
        let extract = |ev: &pb::push::Event| match ev {
            pb::push::Event::Relation(r) if r.user_id == user => Some(r.clone()),
            _ => None,
        };
        self.expect_push_where(&format!("relation with {user}"), extract, pred)
    }

    /// Reads until the server closes the connection and asserts it sent
    /// `Push{kicked}` and then `Close{code}`; returns the `Kicked`. Pushes
    /// other than `kicked` are dropped.
    pub fn expect_kicked(&mut self, code: ErrorCode) -> pb::Kicked {
        let mut kicked = self.pushes.iter().find_map(|p| match &p.event {
            Some(pb::push::Event::Kicked(k)) => Some(k.clone()),
            _ => None,
        });
        let mut kicked_before_close = kicked.is_some() || self.close.is_none();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(pb::Frame { body: Some(frame::Body::Push(p)) }) => {
                    if let Some(pb::push::Event::Kicked(k)) = p.event {
                        kicked_before_close = self.close.is_none();
                        kicked = Some(k);
                    }
                }
                Recv::Frame(pb::Frame { body: Some(frame::Body::Close(c)) }) => self.close = Some(c),
                Recv::Frame(_) => {}
                Recv::Eof => break,
                Recv::Timeout => panic!(
                    "connection still open {WAIT:?} after expecting a kick (close so far: {:?}, kicked: {kicked:?})",
                    self.close
                ),
            }
        }
        // Already at EOF: this only checks the recorded Close.
        self.expect_close_code(code);
        let k = kicked.unwrap_or_else(|| panic!("Close {code} without a Push{{kicked}} before it"));
        assert!(kicked_before_close, "Push{{kicked}} must come before the Close: {k:?}");
        k
    }

    /// Whether the connection is still up: a Ping gets its Pong before a
    /// Close or EOF (queued pushes are kept).
    pub fn is_alive(&mut self) -> bool {
        if self.close.is_some() || self.eof {
            return false;
        }
        let nonce = 0x5EED_0000_0000 + self.next_request_id();
        if self.try_send_frame(&frame_of(frame::Body::Ping(pb::Ping { nonce }))).is_err() {
            return false;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.pongs.iter().position(|p| p.nonce == nonce) {
                self.pongs.remove(pos);
                return self.close.is_none();
            }
            if self.close.is_some() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Recv::Frame(f) => self.stash(f),
                Recv::Timeout => panic!("no pong and no close within {WAIT:?}"),
                Recv::Eof => return false,
            }
        }
    }
}

/// Checks the id-batch bounds shared by the batch requests (1..=100 valid
/// ids, else 3000): `call` sends the request for the ids and returns the
/// number of items in its result, which for 100 unregistered ids `u0..u99`
/// must be `items_for_100`.
pub fn assert_batch_bounds(
    what: &str,
    items_for_100: usize,
    mut call: impl FnMut(&[&str]) -> Result<usize, pb::Error>,
) {
    let ids: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_error(call(&[]), ErrorCode::InvalidArgument, &format!("{what}: no ids"));
    assert_error(call(&ids), ErrorCode::InvalidArgument, &format!("{what}: 101 ids"));
    assert_eq!(must(call(&ids[..100]), &format!("{what}: 100 ids")), items_for_100, "{what}: 100 ids");
    assert_error(call(&["ok", "not valid"]), ErrorCode::InvalidArgument, &format!("{what}: invalid id"));
}

fn strings(users: &[&str]) -> Vec<String> {
    users.iter().map(|u| (*u).to_owned()).collect()
}

// ---------------------------------------------------------------------------
// Groups (shared helpers of tests/tests/groups*.rs)
// ---------------------------------------------------------------------------

/// The conversation id of a group.
pub fn gconv(group: &str) -> String {
    format!("g:{group}")
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

impl RawClient {
    /// Connects as an admin session.
    pub fn login_admin(addr: SocketAddr, user: &str) -> Self {
        let mut c = Self::connect(addr);
        if let Err(close) = c.hello(&mint_admin(user), "admin-dev", Platform::Linux) {
            panic!("admin hello refused: {close:?}");
        }
        c
    }

    /// Any request, split into its typed reply or error; panics on a result
    /// of another kind ([`Call::reply`]). A raw `request::Op` gets the raw result.
    pub fn call<C: Call>(&mut self, req: C) -> Result<C::Reply, pb::Error> {
        let result = outcome(self.request(req))?;
        Ok(C::reply(result).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Sends every op pipelined (up to `window` in flight); panics on any error.
    pub fn call_all_ok(&mut self, ops: Vec<request::Op>, window: usize) {
        let mut pending = 0;
        let mut ops = ops.into_iter();
        loop {
            while pending < window {
                let Some(op) = ops.next() else { break };
                self.send_request(op);
                pending += 1;
            }
            if pending == 0 {
                return;
            }
            let r = self.next_response(WAIT).expect("a response to a pipelined request");
            if let Err(e) = outcome(r) {
                panic!("pipelined request failed: {e:?}");
            }
            pending -= 1;
        }
    }

    /// Imports (registers) users as an admin, pipelined.
    pub fn import_users(&mut self, users: &[String]) {
        let ops =
            users.iter().map(|u| pb::ImportUser { user_id: u.clone(), profile: None }.into_op()).collect();
        self.call_all_ok(ops, 256);
    }

    /// CreateGroup; returns the group's info.
    pub fn create_group(
        &mut self,
        group: &str,
        ty: pb::GroupType,
        members: &[&str],
        patch: Option<pb::GroupPatch>,
    ) -> Result<pb::GroupInfo, pb::Error> {
        self.call(pb::CreateGroup {
            group_id: group.to_owned(),
            r#type: ty as i32,
            info: patch,
            member_ids: members.iter().map(|s| (*s).to_owned()).collect(),
            max_members: 0,
        })
    }

    /// Waits for the pushed message of `conv` with `seq` (other pushes are dropped).
    pub fn expect_message(&mut self, conv: &str, seq: u64) -> pb::Message {
        self.expect_push(&format!("message {conv}#{seq}"), WAIT, |e| match e {
            pb::push::Event::Message(m) if m.conv_id == conv && m.seq == seq => Some(m.clone()),
            _ => None,
        })
    }
}
