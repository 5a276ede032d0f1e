//! Storage micro-benchmarks: batched appends to a conversation log (the group
//! commit of one loop turn) and range scans (pull / history pages).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use missive_protocol::{ConvId, Seq};
use missive_storage::{Durability, Store, StoreOptions};

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
            |from| store.messages(&conv, Seq(from), Seq(from + 99), 100).expect("scan"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("history_page_100", |b| {
        b.iter_batched(
            || 200 + (rand_seq() % 19_800),
            |before| store.messages_before(&conv, Seq(before), Seq(1), 100).expect("scan"),
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

criterion_group!(benches, append, scan);
criterion_main!(benches);
