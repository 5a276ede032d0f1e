//! Hostile clients on one worker (issue #14, items 1, 3 and 4): floods of
//! frames that get no reply, unauthenticated connections declaring big
//! frames, pipelined expensive queries. Each test states the memory or
//! latency bound it checks; every loop is bounded in count and time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use missive_protocol::pb::{self, frame};
use missive_tests::ws::WsClient;
use missive_tests::*;

const MIB: u64 = 1024 * 1024;
/// RSS growth allowed during a flood: RocksDB memtables and cache for the
/// small storage settings below, thread stacks and allocator slack. The old
/// broker grew by gigabytes within seconds under these floods.
const RSS_GROWTH_BOUND: u64 = 96 * MIB;
/// RSS growth allowed during one query flood (default storage settings).
const QUERY_FLOOD_RSS_BOUND: u64 = 64 * MIB;
const SMALL_STORAGE: &str = "[storage]\nblock_cache_mb = 8\nwrite_buffer_mb = 4\n";

/// Encodes one frame with its length prefix.
fn wire(body: frame::Body) -> Vec<u8> {
    use prost::Message as _;
    let payload = frame_of(body).encode_to_vec();
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

/// Writes `chunk` over and over for at most `limit` (or until the broker
/// closes the connection), never reading. Returns the bytes written and how
/// long until the socket failed, if it did.
fn flood(mut s: TcpStream, chunk: &[u8], limit: Duration) -> (u64, Option<Duration>) {
    s.set_write_timeout(Some(Duration::from_millis(200))).expect("write timeout");
    let t0 = Instant::now();
    let mut written = 0u64;
    while t0.elapsed() < limit {
        match s.write(chunk) {
            Ok(n) => written += n as u64,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
            }
            Err(_) => return (written, Some(t0.elapsed())),
        }
    }
    (written, None)
}

/// Samples the broker's RSS every 100 ms while `f` runs; returns the peak.
fn peak_rss_during<T>(b: &BrokerProc, f: impl FnOnce() -> T + Send) -> (u64, T)
where
    T: Send,
{
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                peak = peak.max(b.rss_bytes());
                std::thread::sleep(Duration::from_millis(100));
            }
            peak.max(b.rss_bytes())
        });
        let out = f();
        done.store(true, std::sync::atomic::Ordering::Release);
        (sampler.join().expect("sampler"), out)
    })
}

#[test]
fn unanswered_frames_flood_keeps_memory_bounded_then_is_closed() {
    // First with the silent-frame budget out of the way: the read buffer
    // bound alone must keep memory flat (the old broker: +3.35 GB in 8 s).
    let config = format!("{SMALL_STORAGE}[limits]\nmax_silent_frames_per_sec = 100000000\n");
    let b = BrokerOpts::default().workers(1).durability("buffered").config(&config).spawn();
    let mut c = b.client("mallory", "phone");
    c.send_ok(&direct("mallory", "bob"), "warm", "warm");
    let before = b.rss_bytes();
    let ack = wire(frame::Body::PushAck(pb::PushAck::default()));
    let chunk: Vec<u8> = ack.iter().copied().cycle().take(ack.len() * 10_000).collect();
    let (peak, (written, _)) =
        peak_rss_during(&b, || flood(c.stream_clone(), &chunk, Duration::from_secs(6)));
    assert!(written > 0, "the flood wrote nothing");
    assert!(
        peak < before + RSS_GROWTH_BOUND,
        "RSS grew from {before} to {peak} bytes while {written} bytes of PushAck were flooded"
    );
    // The broker still serves others on the same (single) worker.
    let mut other = b.client("bob", "phone");
    other.ping(7);
    drop(b);

    // With the default budget (1000/s, burst 2000) the flood is closed with FLOODING and logged.
    let b = BrokerOpts::default().workers(1).durability("buffered").config(SMALL_STORAGE).spawn();
    let c = b.client("mallory", "phone");
    let (_, failed) = flood(c.stream_clone(), &chunk, Duration::from_secs(10));
    assert!(failed.is_some(), "a PushAck flood was not disconnected within 10 s");
    assert!(b.log_handle().wait_for("flooding", Duration::from_secs(5)), "the close is logged:\n{}", b.log());
    let mut other = b.client("bob", "phone");
    other.ping(8);

    // Under the budget nothing happens: 500 PushAcks, then the session still works.
    let mut polite = b.client("carol", "phone");
    for _ in 0..500 {
        polite.send_bytes(&ack);
    }
    polite.ping(9);
}

#[test]
fn websocket_pong_flood_is_closed_and_memory_bounded() {
    let b = BrokerOpts::default().workers(1).durability("buffered").config(SMALL_STORAGE).spawn();
    let ws = WsClient::login(b.listening.ws(), "mallory", "browser");
    let before = b.rss_bytes();
    // An empty masked Pong: FIN + opcode 0xA, MASK bit + length 0, mask key.
    let pong = [0x8Au8, 0x80, 0, 0, 0, 0];
    let chunk: Vec<u8> = pong.iter().copied().cycle().take(pong.len() * 10_000).collect();
    let (peak, (_, failed)) =
        peak_rss_during(&b, || flood(ws.stream_clone(), &chunk, Duration::from_secs(10)));
    assert!(failed.is_some(), "a WebSocket Pong flood was not disconnected within 10 s");
    assert!(peak < before + RSS_GROWTH_BOUND, "RSS grew from {before} to {peak} bytes during the Pong flood");
    assert!(b.log_handle().wait_for("flooding", Duration::from_secs(5)), "the close is logged:\n{}", b.log());
}

#[test]
fn connections_before_hello_hold_little_memory() {
    const CONNS: usize = 1000;
    let config = format!("{SMALL_STORAGE}[limits]\nhandshake_timeout_secs = 30\n");
    let b = BrokerOpts::default().workers(1).durability("buffered").config(&config).spawn();
    let before = b.rss_bytes();

    // A length prefix above the Hello limit (4 KiB) is refused at once.
    let mut big = RawClient::connect(b.addr);
    big.send_bytes(&(1024u32 * 1024).to_be_bytes());
    let close = big.expect_close_code(ErrorCode::FrameTooLarge);
    assert!(close.message.contains("4096"), "the close names the Hello limit: {close:?}");

    // Connections that declare a Hello-sized frame and send most of it hold it
    // (they may still complete), but only that much.
    let mut socks = Vec::with_capacity(CONNS);
    let mut partial = 4000u32.to_be_bytes().to_vec();
    partial.extend(std::iter::repeat_n(0x0Au8, 3900));
    for _ in 0..CONNS {
        let mut s = TcpStream::connect(b.addr).expect("connect");
        s.write_all(&partial).expect("write partial hello");
        socks.push(s);
    }
    // Let the worker read them all.
    let mut peak = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        peak = peak.max(b.rss_bytes());
        std::thread::sleep(Duration::from_millis(100));
    }
    // 1000 × (4 KiB frame + slack) is a few MiB; 1000 × 1 MiB was the old cost.
    assert!(
        peak < before + 64 * MIB,
        "RSS grew from {before} to {peak} with {CONNS} connections before Hello"
    );
    // The server still logs a legitimate client in.
    let mut ok = b.client("alice", "phone");
    ok.ping(1);
    // The held connections are all still open (nothing was refused wrongly).
    let mut one = [0u8; 1];
    socks[0].set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    assert!(
        matches!(socks[0].read(&mut one), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "a connection inside the Hello limit stays open until the handshake timeout"
    );
}

/// Pings `victim` every 2 ms while `flood` runs (at most `limit`); returns
/// the round-trip times, sorted.
fn ping_while(victim: &mut RawClient, limit: Duration, flood: impl FnOnce() + Send) -> Vec<Duration> {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            flood();
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        let t0 = Instant::now();
        let mut rtts = Vec::new();
        let mut nonce = 0;
        while !done.load(std::sync::atomic::Ordering::Acquire) && t0.elapsed() < limit {
            nonce += 1;
            let start = Instant::now();
            victim.ping(nonce);
            rtts.push(start.elapsed());
            std::thread::sleep(Duration::from_millis(2));
        }
        h.join().expect("flood thread");
        rtts.sort();
        rtts
    })
}

fn p99(rtts: &[Duration]) -> Duration {
    rtts[(rtts.len() * 99 / 100).min(rtts.len() - 1)]
}

/// Sends `count` copies of `req` pipelined without waiting, while a reader
/// thread drains the responses; returns how many were answered.
fn pipeline(c: &RawClient, req: &pb::Request, count: usize, limit: Duration) -> usize {
    let mut w = c.stream_clone();
    let mut r = c.stream_clone();
    r.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let body = wire(frame::Body::Request(req.clone()));
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            // Frames are only counted (length prefixes skipped over), so the
            // flooder's own CPU use stays small next to the broker's.
            let t0 = Instant::now();
            let mut got = 0;
            let mut chunk = vec![0u8; 256 * 1024];
            let mut header = Vec::with_capacity(4);
            let mut skip = 0usize;
            while got < count && t0.elapsed() < limit {
                let n = match r.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(_) => continue,
                };
                let mut data = &chunk[..n];
                while !data.is_empty() {
                    if skip > 0 {
                        let k = skip.min(data.len());
                        skip -= k;
                        data = &data[k..];
                        if skip == 0 {
                            got += 1;
                        }
                        continue;
                    }
                    let k = (4 - header.len()).min(data.len());
                    header.extend_from_slice(&data[..k]);
                    data = &data[k..];
                    if header.len() == 4 {
                        skip = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
                        header.clear();
                    }
                }
            }
            got
        });
        for _ in 0..count {
            if w.write_all(&body).is_err() {
                break;
            }
        }
        reader.join().expect("reader")
    })
}

fn request(op: pb::request::Op) -> pb::Request {
    pb::Request { id: 1, op: Some(op) }
}

#[test]
fn query_floods_do_not_stall_other_clients_on_the_worker() {
    // One worker: the flooder, the victim and every owner shard share it.
    let b = BrokerOpts::default()
        .workers(1)
        .durability("fsync")
        .config("[messages]\nmax_text_bytes = 65536\n")
        .spawn();
    let mut admin = b.admin();
    let mut mallory = b.client("mallory", "phone");
    let friends: Vec<String> = (0..2000).map(|i| format!("friend{i:04}")).collect();
    admin.import_users(&friends);
    // 2 000 friends make SearchFriends scan; 400 conversations make a sync page.
    let ops: Vec<pb::request::Op> = (0..2000)
        .map(|i| {
            pb::request::Op::ImportFriendship(pb::ImportFriendship {
                user_a: "mallory".into(),
                user_b: format!("friend{i:04}"),
            })
        })
        .collect();
    admin.call_all_ok(ops, 256);
    let sends: Vec<pb::request::Op> = (0..400)
        .map(|i| {
            pb::request::Op::Send(pb::SendMessage {
                conv_id: direct("mallory", &format!("friend{i:04}")),
                client_msg_id: format!("m{i}"),
                content: Some(text("hello")),
                flags: None,
                first_attempt: false,
            })
        })
        .collect();
    mallory.call_all_ok(sends, 256);
    // History pages of big messages (owner-shard reads).
    let conv = direct("mallory", "bob");
    mallory.send_many_padded(&conv, "big", 200, 64, 60_000);

    let mut victim = b.client("victim", "phone");
    victim.ping(0);
    let floods: [(&str, pb::request::Op, usize); 3] = [
        ("Sync", pb::request::Op::Sync(pb::SyncRequest { sync_token: String::new(), limit: 500 }), 10_000),
        (
            "SearchFriends",
            pb::request::Op::SearchFriends(pb::SearchFriends { query: "friend".into(), limit: 500 }),
            2_000,
        ),
        (
            "History",
            pb::request::Op::History(pb::HistoryRequest { conv_id: conv.clone(), before_seq: 0, limit: 500 }),
            5_000,
        ),
    ];
    for (name, op, count) in floods {
        let flooder = b.client("mallory", &format!("flood-{name}"));
        let req = request(op);
        let mut answered = 0;
        let before = b.rss_bytes();
        let (peak, rtts) = peak_rss_during(&b, || {
            ping_while(&mut victim, Duration::from_secs(60), || {
                answered = pipeline(&flooder, &req, count, Duration::from_secs(60));
            })
        });
        // Pages in flight are bounded by the flooder's reply reservations
        // (about 8 MiB) and the query pool's share; measured growth is under 10 MiB.
        assert!(
            peak < before + QUERY_FLOOD_RSS_BOUND,
            "{name} flood: RSS grew from {before} to {peak} bytes"
        );
        assert!(answered > 0, "{name}: the flood got no answers");
        assert!(rtts.len() >= 50, "{name}: only {} pings during the flood", rtts.len());
        let p = p99(&rtts);
        eprintln!(
            "{name} flood: {answered} answers, RSS +{} MiB, {} pings, p50 {:?}, p99 {p:?}, max {:?}",
            peak.saturating_sub(before) / MIB,
            rtts.len(),
            rtts[rtts.len() / 2],
            rtts[rtts.len() - 1]
        );
        assert!(p < Duration::from_millis(5), "{name} flood: other clients' ping p99 {p:?} (bound 5 ms)");
    }
}

#[test]
fn pipelined_history_pages_are_slowed_down_not_closed() {
    // 60 KB texts: above the default per-kind text limit ([MF-6]).
    let b =
        BrokerOpts::default().durability("buffered").config("[messages]\nmax_text_bytes = 65536\n").spawn();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "phone");
    alice.send_many_padded(&conv, "big", 100, 64, 60_000);
    // 200 pages of ~1 MiB each, pipelined, against the default 8 MiB write
    // queue: the broker must pace the client instead of closing it.
    let reader = b.client("alice", "tablet");
    let req =
        request(pb::request::Op::History(pb::HistoryRequest { conv_id: conv, before_seq: 0, limit: 500 }));
    let answered = pipeline(&reader, &req, 200, Duration::from_secs(120));
    assert_eq!(answered, 200, "every pipelined history page is answered");
    assert!(
        !b.log_handle().contains("slow consumer"),
        "the reader was closed as a slow consumer:\n{}",
        b.log()
    );
}

#[test]
fn requests_over_the_per_connection_rate_are_refused_and_the_connection_stays() {
    let b = BrokerOpts::default().config("[limits]\nmax_requests_per_sec = 50\n").spawn();
    let mut c = b.client("alice", "phone");
    // The bucket holds a burst of 100; 300 pipelined requests exceed it.
    let ids: Vec<u64> =
        (0..300).map(|_| c.send_request(pb::GetPresence { user_ids: vec!["bob".into()] })).collect();
    let mut limited = 0;
    for id in ids {
        match outcome(c.wait_response(id, Duration::from_secs(10))) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited.as_u32(), "{e:?}");
                assert!(e.retryable, "RATE_LIMITED is retryable");
                limited += 1;
            }
        }
    }
    assert!((150..=250).contains(&limited), "about 200 of 300 requests refused, got {limited}");
    // The connection stays, and after a pause requests pass again.
    std::thread::sleep(Duration::from_millis(500));
    c.get_presence(&["bob"]).expect("a request after the pause passes");
}
