//! The sensitive-word filter (`missive_broker::filter`): cost per message of
//! `Compiled::check` with 10 000 words (half ASCII, half Chinese) on a
//! 100-byte mixed ASCII/Chinese message — no match (the common case) and
//! one `replace` match (fold, match, map back and mask).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use missive_broker::filter::{Action, Compiled, WordList};

/// Deterministic pseudo-random numbers (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn words(n: usize) -> Vec<String> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let w: String = if out.len() % 2 == 0 {
            let len = 5 + (r.next() % 5) as usize;
            (0..len).map(|_| char::from(b'a' + (r.next() % 26) as u8)).collect()
        } else {
            let len = 2 + (r.next() % 2) as usize;
            (0..len).filter_map(|_| char::from_u32(0x4E00 + (r.next() % 20_000) as u32)).collect()
        };
        out.push(w);
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut list = words(10_000);
    list.push("forbidden".to_owned());
    let compiled = Compiled::new(vec![WordList {
        name: "bench".into(),
        action: Action::Replace,
        mask: "*".into(),
        words: list,
    }])
    .expect("compile");
    let clean = "Hello 大家好, the meeting about the 项目 moved to 10am; bring the notes and 咖啡 ok, thanks";
    let hit = "Hello 大家好, the meeting about the 项目 moved to 10am; forbidden the notes 咖啡 ok, thanks";
    assert!((95..=105).contains(&clean.len()), "{}", clean.len());
    assert_eq!(clean.len(), hit.len());
    assert!(compiled.check(clean).is_clean(), "the clean message matches a random word");
    assert!(compiled.check(hit).replaced.is_some());

    let mut g = c.benchmark_group("filter_10k_words_100_bytes");
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_no_match", |b| b.iter(|| compiled.check(std::hint::black_box(clean))));
    g.bench_function("check_one_replace", |b| b.iter(|| compiled.check(std::hint::black_box(hit))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
