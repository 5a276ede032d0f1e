//! Message extensions (spec 18.5): a small key-value map per message, last
//! writer wins, each key stamped with the message's extension version.
//!
//! Invariants: the map never exceeds `messages.max_extension_keys` keys nor
//! the key / value sizes; `ext_version` grows by one per accepted write, and
//! a write with `if_version` happens only at exactly that version
//! (compare-and-set, for red-packet style state). Stored in the message's
//! extras record: O(1) writes per change whatever the conversation's size.

use std::collections::BTreeMap;

use missive_protocol::pb::{self, message_update, response};
use missive_protocol::{ConvId, ErrorCode, UserId};

use crate::config::MessagesConfig;
use crate::error::Reject;
use crate::services::checks;
use crate::services::{Services, Undo};
use crate::shard::{ShardOp, Turn};

use super::life;
use super::{Change, MessagesOp};

fn limit(message: String) -> Reject {
    Reject::new(ErrorCode::ExtensionLimit, message)
}

fn key_ok(k: &str, cfg: &MessagesConfig) -> Result<(), Reject> {
    if k.is_empty() || k.len() > cfg.max_extension_key_bytes as usize {
        return Err(limit(format!("extension keys must be 1..={} bytes", cfg.max_extension_key_bytes)));
    }
    if k.chars().any(char::is_control) {
        return Err(checks::invalid("extension keys must not contain control characters"));
    }
    Ok(())
}

/// The request's stateless checks (sizes, key count, set/remove overlap).
pub(crate) fn check_request(
    set: &BTreeMap<String, String>,
    remove: &[String],
    cfg: &MessagesConfig,
) -> Result<(), Reject> {
    if set.is_empty() && remove.is_empty() {
        return Err(checks::invalid("nothing to set or remove"));
    }
    let max = cfg.max_extension_keys as usize;
    if set.len() > max || remove.len() > max {
        return Err(limit(format!("at most {max} extension keys per message")));
    }
    for (k, v) in set {
        key_ok(k, cfg)?;
        if v.len() > cfg.max_extension_value_bytes as usize {
            return Err(limit(format!(
                "the value of {k:?} is {} bytes; at most {}",
                v.len(),
                cfg.max_extension_value_bytes
            )));
        }
    }
    for k in remove {
        key_ok(k, cfg)?;
        if set.contains_key(k) {
            return Err(checks::invalid(format!("{k:?} is both set and removed")));
        }
    }
    Ok(())
}

/// SetExtensions → [`MessagesOp::Change`].
pub(crate) fn check(
    user: &UserId,
    req: pb::SetExtensions,
    cfg: &MessagesConfig,
) -> Result<MessagesOp, Reject> {
    let conv = checks::conversation(user, &req.conv_id)?;
    if req.seq == 0 {
        return Err(life::not_found(0));
    }
    check_request(&req.set, &req.remove, cfg)?;
    Ok(MessagesOp::Change {
        conv,
        seq: req.seq,
        change: Change::Extensions { set: req.set, remove: req.remove, if_version: req.if_version },
        admin: false,
    })
}

/// Stages an extension write; answers the whole map and its version.
#[allow(clippy::too_many_arguments)]
pub(super) fn set(
    s: &mut Services,
    op: &ShardOp<MessagesOp>,
    conv: &ConvId,
    seq: u64,
    set: &BTreeMap<String, String>,
    remove: &[String],
    if_version: Option<u64>,
    admin: bool,
    t: &mut Turn<Undo>,
) -> Result<response::Result, Reject> {
    let conn = op.origin.conn();
    life::with_message(s, &op.user, admin, conv, seq, t, |s, n, t| {
        n.require_current()?;
        if n.gone() {
            return Err(Reject::new(ErrorCode::MessageRecalled, "the message was recalled or deleted"));
        }
        let mut x = life::extras_of(s, conv, seq)?;
        if let Some(v) = if_version
            && v != x.ext_version
        {
            return Err(Reject::new(
                ErrorCode::ExtensionConflict,
                format!("the extension version is {}, not {v}", x.ext_version),
            ));
        }
        x.ext_version += 1;
        let stamp = pb::ExtensionValue {
            value: String::new(),
            version: x.ext_version,
            by: n.user.to_string(),
            at_ms: t.now_ms,
        };
        for k in remove {
            x.extensions.remove(k);
        }
        for (k, v) in set {
            x.extensions.insert(k.clone(), pb::ExtensionValue { value: v.clone(), ..stamp.clone() });
        }
        let max = s.node.config.messages.max_extension_keys as usize;
        if x.extensions.len() > max {
            return Err(limit(format!(
                "the message would have {} extension keys; at most {max}",
                x.extensions.len()
            )));
        }
        x.update_seq = life::record(s, n, None, t)?;
        let update = life::update_of(
            n,
            message_update::Kind::Extensions,
            t.now_ms,
            x.update_seq,
            pb::Message { extensions: x.extensions.clone(), ..Default::default() },
        );
        let reply = response::Result::Extensions(pb::Extensions {
            conv_id: conv.to_string(),
            seq,
            extensions: x.extensions.clone(),
            version: x.ext_version,
            update_seq: x.update_seq,
        });
        life::put_extras(s, conv, seq, x, t);
        life::push_update(s, n, update, Some(conn), None, t)?;
        Ok(reply)
    })
}
