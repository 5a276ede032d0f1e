//! `missivectl typing` and `missivectl translate` (spec 18.6, 18.10).
//!
//! Role: one typed request each on a plain connection; `typing` prints
//! `ok`, `translate` prints the translated text (or, with `--json`, the
//! whole `Translation`).
//!
//! Invariant: SDK errors are returned unchanged (exit status 2 on a server
//! code, see `main`).

use serde_json::json;

use crate::ConnArgs;
use crate::commands::connect;
use missive_sdk::pb;

/// `typing CONV [--stop]`.
pub(crate) fn typing(json: bool, c: &ConnArgs, conv: &str, stop: bool) -> anyhow::Result<()> {
    let conn = connect(c)?;
    conn.call(pb::Typing { conv_id: conv.to_owned(), typing: !stop })?;
    if json {
        println!("{}", json!({ "conv_id": conv, "typing": !stop }));
    } else {
        println!("ok");
    }
    conn.close();
    Ok(())
}

/// `translate CONV SEQ LANG`.
pub(crate) fn translate(
    json: bool,
    c: &ConnArgs,
    conv: &str,
    seq: u64,
    language: &str,
) -> anyhow::Result<()> {
    let conn = connect(c)?;
    let t =
        conn.call(pb::TranslateMessage { conv_id: conv.to_owned(), seq, language: language.to_owned() })?;
    if json {
        println!(
            "{}",
            json!({
                "conv_id": t.conv_id,
                "seq": t.seq,
                "language": t.language,
                "text": t.text,
                "cached": t.cached,
            })
        );
    } else {
        println!("{}", t.text);
    }
    conn.close();
    Ok(())
}
