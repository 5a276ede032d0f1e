//! `fanout`: one group conversation with N online members; one member sends,
//! every other member's connection must receive each message.
//!
//! Not runnable yet: protocol v1 core serves direct conversations only (a
//! send to `g:…` is answered `3006 UNSUPPORTED_CONVERSATION`) and has no
//! request to create a group or add members. Until then the scenario reports
//! itself skipped (exit code 2) with [`UNSUPPORTED`], before touching any
//! broker, and `make bench` records that line.
//!
//! To enable it when groups land: create the group (N members) through the
//! new request, log the members in with `session::login_all`, and drive one
//! sender with the closed-loop window of `pairs` while the N - 1 receivers
//! feed one shared `Ledger` conversation each (a `Ledger` tracks one receiver
//! per conversation, so give each receiver its own index for the same group).
//! Report `deliveries_per_s`, `deliver_p99_us` and `lost` as named below.
//!
//! Invariant: the metric names are already reserved (null while skipped), so
//! result files keep one schema.

use serde_json::Value;

use super::cli::FanoutArgs;
use super::report::Report;

/// Why the scenario cannot run yet.
pub(crate) const UNSUPPORTED: &str = "fanout needs group conversations, which the protocol does not have yet \
     (v1 core serves p: conversations only; g: is answered 3006 UNSUPPORTED_CONVERSATION). \
     It will be enabled when groups land.";

/// The (skipped) report.
pub(crate) fn run(a: &FanoutArgs) -> Report {
    let mut r = Report::new("fanout");
    r.param("members", a.members).param("secs", a.secs);
    for k in ["deliveries_per_s", "deliver_p99_us", "lost"] {
        r.metric(k, Value::Null);
    }
    r.skip(UNSUPPORTED);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::report::Status;

    #[test]
    fn fanout_is_skipped_not_passed() {
        let r = run(&FanoutArgs { members: 10, secs: 1.0 });
        assert_eq!(r.status(), Status::Skipped);
    }
}
