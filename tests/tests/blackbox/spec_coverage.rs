//! spec/PROTOCOL.md documents every error code and every frame, request,
//! response, push and content kind of the schema (spec/proto is the source of
//! the kind lists, so a kind added to the schema without documentation fails).

use std::path::PathBuf;

use missive_tests::ErrorCode;

fn spec_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("spec")
}

fn protocol_md() -> String {
    let path = spec_dir().join("PROTOCOL.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn proto_sources() -> String {
    let mut all = String::new();
    for f in [
        "frame.proto",
        "message.proto",
        "conversation.proto",
        "platform.proto",
        "user.proto",
        "group.proto",
        "lifecycle.proto",
    ] {
        let path = spec_dir().join("proto").join(f);
        all.push_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())),
        );
        all.push('\n');
    }
    all
}

/// Strips `//` comments.
fn strip_comments(src: &str) -> String {
    src.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The cases `(type, field)` of `oneof {oneof}` inside `message {message}`.
fn oneof_cases(proto: &str, message: &str, oneof: &str) -> Vec<(String, String)> {
    let src = strip_comments(proto);
    let head = format!("message {message} {{");
    let start = src.find(&head).unwrap_or_else(|| panic!("message {message} not found in spec/proto"));
    let body = &src[start + head.len()..];
    let oneof_head = format!("oneof {oneof} {{");
    let o = body.find(&oneof_head).unwrap_or_else(|| panic!("oneof {message}.{oneof} not found"));
    let rest = &body[o + oneof_head.len()..];
    let end = rest.find('}').unwrap_or_else(|| panic!("unterminated oneof {message}.{oneof}"));
    let mut cases = Vec::new();
    for stmt in rest[..end].split(';') {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        // `Type name = N`
        if let [ty, name, "=", _num] = words.as_slice() {
            cases.push(((*ty).to_owned(), (*name).to_owned()));
        }
    }
    assert!(!cases.is_empty(), "no cases parsed for {message}.{oneof}");
    cases
}

#[test]
fn every_error_code_is_documented_with_its_number() {
    let doc = protocol_md();
    let mut missing = Vec::new();
    for &code in ErrorCode::ALL {
        let num = code.as_u32().to_string();
        let documented = doc.lines().any(|line| {
            line.contains(code.name())
                && line.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').any(|word| word == num)
        });
        if !documented {
            missing.push(format!("{} {}", code.as_u32(), code.name()));
        }
    }
    assert!(
        missing.is_empty(),
        "spec/PROTOCOL.md lacks a line naming these codes with their number: {missing:?}"
    );
}

#[test]
fn every_frame_kind_request_op_result_and_push_is_documented() {
    let doc = protocol_md();
    let proto = proto_sources();
    let mut missing = Vec::new();
    // (message, oneof, also require the field name)
    for (message, oneof, field_too) in [
        ("Frame", "body", false),
        ("Request", "op", true),
        ("Response", "result", true),
        ("Push", "event", true),
        ("Content", "body", false),
    ] {
        for (ty, field) in oneof_cases(&proto, message, oneof) {
            if !doc.contains(&format!("`{ty}`")) && !doc.contains(&format!("`{ty}{{")) {
                missing.push(format!("{message}.{oneof}: type `{ty}`"));
            }
            if field_too && !doc.contains(&format!("`{field}`")) {
                missing.push(format!("{message}.{oneof}: case `{field}`"));
            }
        }
    }
    assert!(missing.is_empty(), "spec/PROTOCOL.md does not mention: {missing:?}");
}

#[test]
fn proto_parser_sees_the_schema() {
    // Guards the two tests above against a parser that silently finds nothing.
    let proto = proto_sources();
    let ops: Vec<String> = oneof_cases(&proto, "Request", "op").into_iter().map(|(_, f)| f).collect();
    assert!(ops.contains(&"send".to_owned()) && ops.contains(&"set_global_dnd".to_owned()), "{ops:?}");
    let kinds = oneof_cases(&proto, "Frame", "body");
    assert!(kinds.len() >= 9, "{kinds:?}");
    assert!(kinds.iter().any(|(t, f)| t == "HelloOk" && f == "hello_ok"), "{kinds:?}");
}
