//! `dedup`: idempotency keys of sends. Key
//! `conv 00 sender 00 device 00 client_msg_id`, value [`DedupRecord`].
//!
//! Invariants:
//! - Written in the same batch as the message it acknowledges, so a stored
//!   message always has its dedup record and a retry finds it.
//! - Read by point lookups only (most of them miss: the engine keeps a
//!   whole-key filter for that).

use missive_protocol::ConvId;

use crate::Result;
use crate::batch::Batch;
use crate::engine::Cf;
use crate::keys;
use crate::records::DedupRecord;
use crate::store::Store;

/// Appends the key `conv 00 sender 00 device 00 client_msg_id`.
fn key(out: &mut Vec<u8>, conv: &ConvId, sender: &str, device: &str, client_msg_id: &str) {
    keys::part(out, conv.as_str().as_bytes());
    keys::part(out, sender.as_bytes());
    keys::part(out, device.as_bytes());
    out.extend_from_slice(client_msg_id.as_bytes());
}

impl Store {
    /// The ack recorded for an idempotency key, if that send was stored.
    pub fn dedup(
        &self,
        conv: &ConvId,
        sender: &str,
        device: &str,
        client_msg_id: &str,
    ) -> Result<Option<DedupRecord>> {
        self.get_decoded(Cf::Dedup, &keys::owned(|k| key(k, conv, sender, device, client_msg_id)))
    }
}

impl Batch {
    /// Records the ack of an idempotency key.
    pub fn put_dedup(
        &mut self,
        conv: &ConvId,
        sender: &str,
        device: &str,
        client_msg_id: &str,
        rec: &DedupRecord,
    ) {
        self.put_record(Cf::Dedup, |k| key(k, conv, sender, device, client_msg_id), rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, StoreOptions};

    #[test]
    fn components_are_separated() {
        let c = ConvId::parse("p:a:b").expect("valid");
        let k = |s, d, m| keys::owned(|k| key(k, &c, s, d, m));
        assert_ne!(k("a", "bc", "d"), k("ab", "c", "d"));
        assert_eq!(k("a", "d1", "m-1"), b"p:a:b\0a\0d1\0m-1");
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let s =
            Store::open(dir.path(), &StoreOptions { durability: Durability::Buffered, ..Default::default() })
                .expect("open");
        let c = ConvId::parse("p:a:b").expect("valid");
        let rec = DedupRecord { seq: 5, server_msg_id: 77, server_time_ms: 1 };
        let mut b = s.batch();
        b.put_dedup(&c, "a", "d1", "m-1", &rec);
        s.write(b).expect("write");
        assert_eq!(s.dedup(&c, "a", "d1", "m-1").expect("get"), Some(rec));
        assert_eq!(s.dedup(&c, "a", "d2", "m-1").expect("get"), None);
    }
}
