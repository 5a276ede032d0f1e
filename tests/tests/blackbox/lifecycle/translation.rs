//! Translation (spec 18.10, [TR-1]..[TR-9]) against a real HTTP provider on
//! loopback (`missive_tests::translate_provider`): cached per message and
//! language, failures not cached, bad input and permissions.

use std::time::Duration;

use missive_protocol::pb;
use missive_tests::hook_receiver::HookAnswer;
use missive_tests::translate_provider::TranslateProvider;
use missive_tests::*;
use serde_json::json;

fn broker_with(p: &TranslateProvider, extra: &str) -> BrokerProc {
    let timeout = if extra.contains("timeout_ms") { "" } else { "timeout_ms = 500\n" };
    let toml = format!("[translate]\nurl = \"{}\"\napi_key = \"k-123\"\n{timeout}{extra}", p.url());
    BrokerProc::spawn_with(BrokerOpts::default().config(&toml))
}

fn translate(c: &mut RawClient, conv: &str, seq: u64, lang: &str) -> Result<pb::Translation, pb::Error> {
    c.call(pb::TranslateMessage { conv_id: conv.to_owned(), seq, language: lang.to_owned() })
}

#[test]
fn translation_is_cached_per_message_and_language() {
    let p = TranslateProvider::start();
    let mut b = broker_with(&p, "");
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d");
    let mut bob = b.client("bob", "d");
    let seq = alice.send_ok(&conv, "m0", "bonjour").seq;
    let t = translate(&mut bob, &conv, seq, "en").expect("translate");
    assert_eq!(
        (t.conv_id.as_str(), t.seq, t.language.as_str(), t.text.as_str(), t.cached),
        (conv.as_str(), seq, "en", "[en] bonjour", false)
    );
    let calls = p.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].body,
        json!({"text": "bonjour", "target_language": "en", "conv_id": conv, "seq": seq})
    );
    assert_eq!(calls[0].headers.get("authorization").map(String::as_str), Some("Bearer k-123"));
    // Cache hit for anyone who may read it, also the sender; the provider is not called again.
    let again = translate(&mut alice, &conv, seq, "en").expect("again");
    assert_eq!((again.text.as_str(), again.cached), ("[en] bonjour", true));
    // Another language is another entry.
    let de = translate(&mut bob, &conv, seq, "zh-Hans").expect("zh");
    assert_eq!((de.text.as_str(), de.cached), ("[zh-Hans] bonjour", false));
    assert_eq!(p.calls().len(), 2);
    // Durable: after a restart the cache still answers.
    drop((alice, bob));
    b.restart();
    let mut bob = b.client("bob", "d");
    let t = translate(&mut bob, &conv, seq, "en").expect("after restart");
    assert!(t.cached);
    assert_eq!(p.calls().len(), 2, "the provider was called again after a restart");
}

#[test]
fn provider_failures_are_5005_and_not_cached() {
    let p = TranslateProvider::start();
    let b = broker_with(&p, "");
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d");
    let seq = alice.send_ok(&conv, "m0", "hola").seq;
    p.respond(|_| HookAnswer::status(500));
    assert_error(translate(&mut alice, &conv, seq, "en"), ErrorCode::TranslationFailed, "HTTP 500");
    p.respond(|_| HookAnswer::ok(json!({"no_text": 1})));
    assert_error(
        translate(&mut alice, &conv, seq, "en"),
        ErrorCode::TranslationFailed,
        "answer without text",
    );
    p.respond(|_| HookAnswer::ok(json!("just a string")));
    assert_error(translate(&mut alice, &conv, seq, "en"), ErrorCode::TranslationFailed, "not an object");
    p.respond(|_| HookAnswer::ok(json!({"text": "late"})).after(Duration::from_millis(1500)));
    assert_error(translate(&mut alice, &conv, seq, "en"), ErrorCode::TranslationFailed, "timeout");
    // Nothing was cached: the next call reaches the provider and succeeds.
    p.respond(|r| HookAnswer::ok(json!({ "text": TranslateProvider::fake(r) })));
    let before = p.wait_calls(4, WAIT).len();
    let t = translate(&mut alice, &conv, seq, "en").expect("recovered");
    assert_eq!((t.text.as_str(), t.cached), ("[en] hola", false));
    assert_eq!(p.calls().len(), before + 1);
    assert!(alice.is_alive());
}

#[test]
fn translation_bad_input_and_permissions() {
    let p = TranslateProvider::start();
    let b = broker_with(&p, "");
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d");
    let mut carol = b.client("carol", "d");
    let seq = alice.send_ok(&conv, "m0", "hi").seq;
    for bad in ["", "e n", "en_US", "aaaaaaaaaaaaaaaaa", "ü"] {
        assert_error(
            translate(&mut alice, &conv, seq, bad),
            ErrorCode::InvalidArgument,
            &format!("lang {bad:?}"),
        );
    }
    assert_error(translate(&mut alice, "p:alice", seq, "en"), ErrorCode::InvalidConvId, "bad conv id");
    assert_error(translate(&mut carol, &conv, seq, "en"), ErrorCode::NotParticipant, "outsider");
    for s in [0, seq + 1, 99] {
        assert_error(translate(&mut alice, &conv, s, "en"), ErrorCode::MessageNotFound, &format!("seq {s}"));
    }
    // Cleared history is not readable any more.
    alice.clear(&conv, seq).expect("clear");
    assert_error(translate(&mut alice, &conv, seq, "en"), ErrorCode::MessageNotFound, "cleared");
    // Only text.
    let custom = pb::Content {
        body: Some(pb::content::Body::Custom(pb::Custom { r#type: "poll".into(), data: b"{}".to_vec() })),
        ..Default::default()
    };
    let cseq = alice.send_content(&conv, "m1", custom).expect("custom").seq;
    assert_error(translate(&mut alice, &conv, cseq, "en"), ErrorCode::UnsupportedContent, "custom content");
    // Groups: a member may, an outsider may not.
    let mut owner = b.client("owner", "d");
    owner.create_group("g", pb::GroupType::Work, &["alice"], None).expect("create");
    let gseq = owner.send_ok(&gconv("g"), "g0", "salut").seq;
    let t = translate(&mut alice, &gconv("g"), gseq, "en").expect("member");
    assert_eq!(t.text, "[en] salut");
    assert_error(translate(&mut carol, &gconv("g"), gseq, "en"), ErrorCode::NotParticipant, "non-member");
    assert_eq!(p.calls().len(), 1, "refused requests reached the provider");
}

#[test]
fn no_provider_is_4208() {
    let b = BrokerProc::start();
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d");
    let seq = alice.send_ok(&conv, "m0", "hi").seq;
    assert_error(translate(&mut alice, &conv, seq, "en"), ErrorCode::TranslationDisabled, "no translate.url");
}

#[test]
fn concurrency_beyond_the_limit_is_overloaded() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let p = TranslateProvider::start();
    let b = broker_with(&p, "timeout_ms = 5000\nmax_concurrency = 1\n");
    let arrived = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let (a, r) = (Arc::clone(&arrived), Arc::clone(&release));
    // The provider holds each call until released (at most 4 s).
    p.respond(move |req| {
        a.fetch_add(1, Ordering::SeqCst);
        let until = std::time::Instant::now() + Duration::from_secs(4);
        while !r.load(Ordering::SeqCst) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        HookAnswer::ok(json!({ "text": TranslateProvider::fake(req) }))
    });
    let conv = direct("alice", "bob");
    let mut alice = b.client("alice", "d");
    let s1 = alice.send_ok(&conv, "m0", "a").seq;
    let s2 = alice.send_ok(&conv, "m1", "b").seq;
    let r1 =
        alice.send_request(pb::TranslateMessage { conv_id: conv.clone(), seq: s1, language: "en".into() });
    let deadline = std::time::Instant::now() + WAIT;
    while arrived.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "the first call never reached the provider");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut bob = b.client("bob", "d");
    assert_error(
        translate(&mut bob, &conv, s2, "en"),
        ErrorCode::Overloaded,
        "a second call while one is in flight",
    );
    release.store(true, Ordering::SeqCst);
    let first = outcome(alice.wait_response(r1, WAIT));
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(arrived.load(Ordering::SeqCst), 1);
}
