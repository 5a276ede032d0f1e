//! Measures the storage side of a durable message (issue #17, README
//! "Performance"), outside the broker:
//!
//! - `synced_writes latency [DIR]`: p50/p90/p99/max of one synced (`fsync`
//!   durability) single-entry `Store::write`, 3 000 writes per thread: one
//!   thread; two threads on one store (the broker's two shards share one WAL);
//!   two threads on two stores (one WAL each).
//! - `synced_writes turns [DIR]`: a loop of 64-send turns through
//!   `Store::write` with buffered durability, to profile under `perf record`
//!   (what share of a write is copying the batch vs RocksDB's own work).
//!
//! Invariant: everything lives under DIR (default `/tmp/missive-synced-writes`),
//! which is removed first.

use std::path::{Path, PathBuf};
use std::time::Instant;

use missive_protocol::{ConvId, Seq, UserId};
use missive_storage::{Durability, Store, StoreOptions, UserConvRecord};

fn open(dir: &Path, durability: Durability) -> Store {
    let _ = std::fs::remove_dir_all(dir);
    Store::open(dir, &StoreOptions { durability, ..Default::default() }).expect("open store")
}

/// `threads` writers, each on `stores[i % stores.len()]`; prints the latency percentiles.
fn run(label: &str, stores: &[Store], threads: usize) {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = stores[t % stores.len()].clone();
            std::thread::spawn(move || {
                let conv = ConvId::parse(&format!("p:a{t}:b{t}")).expect("conv id");
                let payload = [0x42u8; 200];
                (1..=3000u64)
                    .map(|i| {
                        let mut w = store.batch();
                        w.put_message(&conv, Seq(i), &payload);
                        let s = Instant::now();
                        store.write(w).expect("write");
                        s.elapsed().as_micros() as u64
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().expect("writer thread")).collect();
    let secs = t0.elapsed().as_secs_f64();
    all.sort_unstable();
    let p = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    println!(
        "{label}: {:.0} writes/s, p50 {} us, p90 {} us, p99 {} us, max {} us",
        all.len() as f64 / secs,
        p(0.5),
        p(0.9),
        p(0.99),
        all[all.len() - 1]
    );
}

fn latency(dir: &Path) {
    let a = open(&dir.join("a"), Durability::Fsync);
    run("1 thread, 1 store", std::slice::from_ref(&a), 1);
    run("2 threads, 1 store", std::slice::from_ref(&a), 2);
    drop(a);
    let two = [open(&dir.join("a"), Durability::Fsync), open(&dir.join("b"), Durability::Fsync)];
    run("2 threads, 2 stores", &two, 2);
}

fn turns(dir: &Path) {
    let store = open(&dir.join("turns"), Durability::Buffered);
    let (a, b) = (UserId::new("alice").expect("user"), UserId::new("bob").expect("user"));
    let conv = ConvId::direct(&a, &b).expect("conv id");
    let other = ConvId::parse("p:x:y").expect("conv id");
    let payload = [0x42u8; 150];
    let (mut seq, turns) = (0u64, 20_000);
    let t0 = Instant::now();
    for _ in 0..turns {
        let mut w = store.batch();
        for _ in 0..64 {
            seq += 1;
            w.put_message(&conv, Seq(seq), &payload);
            w.put_message(&other, Seq(seq), &payload[..60]);
        }
        w.put_user_conv(&a, &conv, 0, &UserConvRecord::default());
        w.put_user_conv(&b, &conv, 0, &UserConvRecord::default());
        store.write(w).expect("write");
    }
    println!("{:.3} us per send", t0.elapsed().as_secs_f64() / f64::from(turns * 64) * 1e6);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let dir = args.next().map_or_else(|| PathBuf::from("/tmp/missive-synced-writes"), PathBuf::from);
    let _ = std::fs::remove_dir_all(&dir);
    match mode.as_str() {
        "latency" => latency(&dir),
        "turns" => turns(&dir),
        _ => {
            eprintln!("usage: synced_writes latency|turns [DIR]");
            std::process::exit(2);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
