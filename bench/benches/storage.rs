//! Storage micro-benchmarks: batched appends to a conversation log (the group
//! commit of one loop turn), a turn of whole 1:1 sends (message, dedup, both
//! users' `uconv` records with their feed moves, version mark: ~8 mutations,
//! each send inside a save point) and range scans (pull / history pages).

use std::fmt::Write as _;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use missive_protocol::{ConvId, Seq, UserId};
use missive_storage::{DedupRecord, Durability, Store, StoreOptions, UserConvRecord};

fn open(durability: Durability) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &StoreOptions { durability, ..Default::default() }).expect("open");
    (dir, store)
}

fn append(c: &mut Criterion) {
    let payload = vec![0x42u8; 120];
    let conv = ConvId::parse("p:alice:bob").expect("conv");
    let mut g = c.benchmark_group("storage_append");
    for (name, durability) in [("buffered", Durability::Buffered), ("fsync", Durability::Fsync)] {
        for batch in [1usize, 64, 512] {
            let (_dir, store) = open(durability);
            let mut seq = 0u64;
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(format!("{name}/batch{batch}"), |b| {
                b.iter(|| {
                    let mut w = store.batch();
                    for _ in 0..batch {
                        seq += 1;
                        w.put_message(&conv, Seq(seq), &payload);
                    }
                    store.write(w).expect("write");
                })
            });
        }
    }
    g.finish();
}

/// One turn of `sends` 1:1 messages as the shard stages them: every send in a
/// save point; `write` = also write the batch (buffered WAL).
fn sends(c: &mut Criterion) {
    let payload = vec![0x42u8; 120];
    let (alice, bob) = (UserId::new("alice").expect("user"), UserId::new("bob").expect("user"));
    let conv = ConvId::direct(&alice, &bob).expect("conv");
    let (_dir, store) = open(Durability::Buffered);
    let mut g = c.benchmark_group("storage_send");
    let mut seq = 0u64;
    let mut cmid = String::new();
    for (name, write) in [("stage", false), ("stage_write", true)] {
        let sends = 64u64;
        g.throughput(Throughput::Elements(sends));
        g.bench_function(format!("{name}/turn{sends}"), |b| {
            b.iter(|| {
                let mut w = store.batch();
                for _ in 0..sends {
                    let sp = w.save_point();
                    seq += 1;
                    let version = seq * 2;
                    w.put_message(&conv, Seq(seq), &payload);
                    let ack =
                        DedupRecord { seq, server_msg_id: seq << 20, server_time_ms: seq, stored_ms: 0 };
                    cmid.clear();
                    write!(cmid, "m{seq}").expect("fmt");
                    w.put_dedup(&conv, "alice", "phone", &cmid, &ack);
                    let mine =
                        UserConvRecord { read_seq: seq, feed_version: version - 1, ..Default::default() };
                    w.put_user_conv(&alice, &conv, version.saturating_sub(3), &mine);
                    let theirs = UserConvRecord { feed_version: version, ..Default::default() };
                    w.put_user_conv(&bob, &conv, version.saturating_sub(2), &theirs);
                    w.put_version_mark(0, version);
                    if seq.is_multiple_of(1024) {
                        // A refused op now and then: its staging is rolled back.
                        w.rollback_to(sp);
                    }
                }
                if write {
                    store.write(w).expect("write");
                } else {
                    std::hint::black_box(w);
                }
            })
        });
    }
    g.finish();
}

fn scan(c: &mut Criterion) {
    let (_dir, store) = open(Durability::Buffered);
    let conv = ConvId::parse("p:alice:bob").expect("conv");
    let payload = vec![0x42u8; 120];
    let mut w = store.batch();
    for seq in 1..=20_000u64 {
        w.put_message(&conv, Seq(seq), &payload);
    }
    store.write(w).expect("write");
    store.flush().expect("flush");
    let mut g = c.benchmark_group("storage_scan");
    g.throughput(Throughput::Elements(100));
    g.bench_function("pull_page_100", |b| {
        b.iter_batched(
            || 1 + (rand_seq() % 19_800),
            |from| store.messages(&conv, Seq(from), Seq(from + 99), 100, usize::MAX).expect("scan"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("history_page_100", |b| {
        b.iter_batched(
            || 200 + (rand_seq() % 19_800),
            |before| store.messages_before(&conv, Seq(before), Seq(1), 100, usize::MAX).expect("scan"),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("max_seq_recovery", |b| b.iter(|| store.max_seq(&conv).expect("max")));
    g.finish();
}

fn rand_seq() -> u64 {
    use std::cell::Cell;
    thread_local!(static X: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) });
    X.with(|x| {
        let mut v = x.get();
        v ^= v << 13;
        v ^= v >> 7;
        v ^= v << 17;
        x.set(v);
        v
    })
}

criterion_group!(benches, append, sends, scan);
criterion_main!(benches);
