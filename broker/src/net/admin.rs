//! The admin HTTP API on the web listener: `/admin/v1/...`, for operators.
//!
//! Today one endpoint, `POST /admin/v1/backup?name=NAME`: a RocksDB checkpoint
//! of the running store written to `storage.backup_dir/NAME` (docs/admin-backup-openapi.yaml).
//! Issue #15 grows this into the full admin REST API: add an arm to
//! [`AdminCtx::handle`]'s path match (or a file per resource beside this one).
//!
//! Invariants:
//! - off unless `admin.token` is set: every `/admin/` path is then 404;
//! - every request is authenticated first (`Authorization: Bearer TOKEN`,
//!   compared in constant time), before its path or method is looked at;
//! - a backup is written only under `storage.backup_dir`, at a validated name
//!   (`[A-Za-z0-9._-]`, 1..=64 bytes, not starting with `.`), never over an
//!   existing entry;
//! - every answer is JSON: `{"name", "path"}` on success, `{"error": {"code",
//!   "message"}}` otherwise, and closes the connection like every plain
//!   HTTP response of the listener.
//!
//! Cost: the checkpoint runs on the worker that read the request (a memtable
//! flush and one hard link per table file: milliseconds to about a second),
//! so that worker's connections wait for it. Backups are rare operator
//! actions; #15 may move them to a thread of their own.

use std::path::PathBuf;

use bytes::Bytes;
use missive_storage::Store;

use super::http::{query_param, response};

/// Longest backup name, bytes.
pub(crate) const MAX_BACKUP_NAME: usize = 64;

/// What the admin endpoints need.
#[derive(Debug)]
pub(crate) struct AdminCtx {
    /// The bearer token (`admin.token`).
    token: String,
    /// Where checkpoints go (`storage.backup_dir`); `None` = backups off.
    backup_dir: Option<PathBuf>,
    store: Store,
}

/// A refusal: HTTP status, stable error code, message.
struct Refusal(u16, &'static str, String);

impl AdminCtx {
    pub(crate) fn new(token: String, backup_dir: Option<PathBuf>, store: Store) -> Self {
        Self { token, backup_dir, store }
    }

    /// Answers one admin request (the head's method, path, query and
    /// `Authorization` value) with a whole HTTP response.
    pub(crate) fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        authorization: Option<&str>,
        now_ms: u64,
    ) -> Bytes {
        let result = self.authorize(authorization).and_then(|()| match path {
            "/admin/v1/backup" if method == "POST" => self.backup(query, now_ms),
            "/admin/v1/backup" => Err(Refusal(405, "method_not_allowed", "use POST".into())),
            _ => Err(Refusal(404, "not_found", format!("no admin endpoint {path}"))),
        });
        match result {
            Ok((status, body)) => response(status, "application/json", "", body.as_bytes(), false),
            Err(Refusal(status, code, message)) => {
                let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
                let extra = match status {
                    401 => "WWW-Authenticate: Bearer\r\n",
                    405 => "Allow: POST\r\n",
                    _ => "",
                };
                response(status, "application/json", extra, body.as_bytes(), false)
            }
        }
    }

    fn authorize(&self, authorization: Option<&str>) -> Result<(), Refusal> {
        let Some(given) = authorization.and_then(|v| v.strip_prefix("Bearer ")).map(str::trim) else {
            return Err(Refusal(401, "unauthorized", "send Authorization: Bearer <admin.token>".into()));
        };
        if !constant_time_eq(given.as_bytes(), self.token.as_bytes()) {
            return Err(Refusal(401, "unauthorized", "wrong admin token".into()));
        }
        Ok(())
    }

    /// `POST /admin/v1/backup?name=NAME`: checkpoint into `backup_dir/NAME`.
    fn backup(&self, query: &str, now_ms: u64) -> Result<(u16, String), Refusal> {
        let Some(dir) = &self.backup_dir else {
            return Err(Refusal(
                503,
                "backups_off",
                "storage.backup_dir is not set; set it and restart the broker".into(),
            ));
        };
        let name = match query_param(query, "name") {
            Some(n) => n.to_owned(),
            None => format!("backup-{now_ms}"),
        };
        if !valid_name(&name) {
            return Err(Refusal(
                400,
                "bad_name",
                format!(
                    "backup name must be 1..={MAX_BACKUP_NAME} bytes of A-Z a-z 0-9 . _ - and not start with '.'"
                ),
            ));
        }
        let target = dir.join(&name);
        if target.exists() || dir.join(format!("{name}.tmp")).exists() {
            return Err(Refusal(409, "exists", format!("backup {name} already exists; choose another name")));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            Refusal(500, "failed", format!("cannot create storage.backup_dir {}: {e}", dir.display()))
        })?;
        match self.store.checkpoint(&target) {
            Ok(()) => {
                tracing::info!(name = %name, path = %target.display(), "backup written");
                let body = serde_json::json!({ "name": name, "path": target.display().to_string() });
                Ok((201, body.to_string()))
            }
            Err(e) if e.is_no_space() => {
                tracing::error!(error = %e, name = %name, "backup failed: no space");
                Err(Refusal(507, "no_space", format!("no space left for the backup: {e}")))
            }
            Err(e) => {
                tracing::error!(error = %e, name = %name, "backup failed");
                Err(Refusal(500, "failed", format!("backup failed: {e}")))
            }
        }
    }
}

/// A backup name: safe as one path component on every platform.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=MAX_BACKUP_NAME).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "nightly-2026.11.29", "A_b-1", &"x".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a b", "a%2fb", &"x".repeat(65), "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
