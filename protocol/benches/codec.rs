//! Criterion benchmark of frame encode/decode (a text message push).

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use missive_protocol::FrameCodec;
use missive_protocol::pb::{self, content, frame, push};

fn sample() -> pb::Frame {
    let msg = pb::Message {
        conv_id: "p:alice:bob".into(),
        seq: 123_456,
        server_msg_id: 0x0123_4567_89ab_cdef,
        client_msg_id: "c-000123".into(),
        sender: "alice".into(),
        sender_device: "phone".into(),
        server_time_ms: 1_790_000_000_000,
        content: Some(pb::Content {
            body: Some(content::Body::Text(pb::Text {
                text: "hello there, this is a typical chat line".into(),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    pb::Frame { body: Some(frame::Body::Push(pb::Push { event: Some(push::Event::Message(msg)) })) }
}

fn bench(c: &mut Criterion) {
    let codec = FrameCodec::default();
    let frame = sample();
    let encoded = codec.encode_to_bytes(&frame).expect("encode");
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(encoded.len() as u64));
    let mut buf = BytesMut::with_capacity(4096);
    g.bench_function("encode_push", |b| {
        b.iter(|| {
            buf.clear();
            codec.encode(&frame, &mut buf).expect("encode");
        })
    });
    g.bench_function("decode_push", |b| {
        b.iter(|| {
            let mut src = BytesMut::from(&encoded[..]);
            codec.decode(&mut src).expect("decode").expect("complete")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
