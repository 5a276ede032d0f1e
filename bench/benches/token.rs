//! Token verification cost (once per handshake).

use criterion::{Criterion, criterion_group, criterion_main};
use missive_protocol::UserId;
use missive_protocol::token::{Claims, Role, mint, verify};

fn bench(c: &mut Criterion) {
    let claims = Claims {
        user: UserId::new("alice").expect("user"),
        expires_at: u64::MAX / 2,
        issued_at_ms: 1_000,
        role: Role::User,
        device: None,
        platform: None,
    };
    let secret = b"0123456789abcdef0123456789abcdef";
    let token = mint(secret, &claims);
    c.bench_function("token_verify", |b| b.iter(|| verify(secret, &token, 1_000).expect("valid")));
    c.bench_function("token_mint", |b| b.iter(|| mint(secret, &claims)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
