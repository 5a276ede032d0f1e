//! Cross-worker hand-off: a bounded crossbeam channel drained in batches by
//! another thread, as the broker's workers do (the mio waker is omitted: the
//! receiver spins on `try_recv`, which measures the channel itself).

use std::thread;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_channel::bounded;

const N: u64 = 10_000;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("handoff");
    g.throughput(Throughput::Elements(N));
    g.bench_function("bounded_65536_batch_drain", |b| {
        let frame = Bytes::from_static(&[0u8; 96]);
        b.iter(|| {
            let (tx, rx) = bounded::<(u64, Bytes)>(65_536);
            let consumer = thread::spawn(move || {
                let mut got = 0u64;
                while got < N {
                    // Drain in bounded batches like the worker loop.
                    for _ in 0..4096 {
                        match rx.try_recv() {
                            Ok(_) => got += 1,
                            Err(_) => break,
                        }
                    }
                    std::hint::spin_loop();
                }
                got
            });
            for i in 0..N {
                tx.send((i, frame.clone())).expect("send");
            }
            assert_eq!(consumer.join().expect("join"), N);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
