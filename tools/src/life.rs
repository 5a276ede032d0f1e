//! `missivectl recall | edit | delete | react`: the message lifecycle
//! (spec section 18) as one device, one request per run.
//!
//! Invariants: the conversation is named by its full id (`p:a:b`, `g:team`);
//! output is one line (or one JSON object with `--json`); server errors stay
//! `SdkError`s, so they print as `error: NAME (code): message` (status 2).

use missive_sdk::{Call, pb};
use serde_json::{Value, json};

use crate::ConnArgs;
use crate::commands::connect;
use crate::output;

fn emit(json: bool, v: Value, line: String) {
    if json {
        println!("{v}");
    } else {
        println!("{line}");
    }
}

fn call<C: Call>(c: &ConnArgs, req: C) -> anyhow::Result<C::Reply> {
    let conn = connect(c)?;
    let r = conn.call(req);
    conn.close();
    Ok(r?)
}

/// `recall CONV SEQ`.
pub(crate) fn recall(json: bool, c: &ConnArgs, conv: String, seq: u64) -> anyhow::Result<()> {
    let m = call(c, pb::RecallMessage { conv_id: conv.clone(), seq })?;
    let update_seq = m.update_seq;
    emit(
        json,
        json!({ "conv": conv, "seq": seq, "recalled": true, "update_seq": update_seq }),
        format!("recalled {conv} #{seq}"),
    );
    Ok(())
}

/// `edit CONV SEQ TEXT`.
pub(crate) fn edit(json: bool, c: &ConnArgs, conv: String, seq: u64, text: String) -> anyhow::Result<()> {
    let content =
        pb::Content { body: Some(pb::content::Body::Text(pb::Text { text })), ..Default::default() };
    let m = call(c, pb::EditMessage { conv_id: conv, seq, content: Some(content) })?;
    let mut v = output::message_json(&m);
    if let Some(o) = v.as_object_mut() {
        o.insert("edit_version".into(), json!(m.edit_version));
    }
    emit(json, v, format!("{} (edit {})", output::message_line(&m), m.edit_version));
    Ok(())
}

/// `delete CONV SEQ... [--everyone]`.
pub(crate) fn delete(
    json: bool,
    c: &ConnArgs,
    conv: String,
    seqs: Vec<u64>,
    everyone: bool,
) -> anyhow::Result<()> {
    call(c, pb::DeleteMessages { conv_id: conv.clone(), seqs: seqs.clone(), for_everyone: everyone })?;
    let whom = if everyone { "everyone" } else { "me" };
    let list = seqs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    emit(
        json,
        json!({ "conv": conv, "deleted": seqs, "for_everyone": everyone }),
        format!("deleted {conv} #{list} for {whom}"),
    );
    Ok(())
}

/// `react CONV SEQ KEY [--remove]`.
pub(crate) fn react(
    json: bool,
    c: &ConnArgs,
    conv: String,
    seq: u64,
    key: String,
    remove: bool,
) -> anyhow::Result<()> {
    let r = call(c, pb::React { conv_id: conv.clone(), seq, key, remove })?;
    let list: Vec<Value> = r
        .reactions
        .iter()
        .map(|s| json!({ "key": s.key, "count": s.count, "me": s.me, "users": s.users }))
        .collect();
    let line = r.reactions.iter().map(|s| format!("{} {}", s.key, s.count)).collect::<Vec<_>>().join("  ");
    emit(json, json!({ "conv": conv, "seq": seq, "reactions": list }), format!("{conv} #{seq}: {line}"));
    Ok(())
}
