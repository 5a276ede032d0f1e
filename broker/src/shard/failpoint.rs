//! Failpoints: named places where a test can make staging fail.
//!
//! Role: the engine's promise is that an op failing at ANY point of its
//! staging leaves no trace. Unit tests prove it by arming a failpoint placed
//! after partial staging (a put, a cache change, an effect, a reservation)
//! and checking that nothing of the op commits.
//!
//! Invariants: in non-test builds [`check`] is an inlined `Ok(())`; armed
//! failpoints are per thread, and a shard runs on one thread, so parallel
//! tests never see each other's failpoints.

use crate::error::Reject;

#[cfg(test)]
thread_local! {
    static ARMED: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Fails with STORAGE if a test armed `name` on this thread.
#[inline]
pub(crate) fn check(name: &'static str) -> Result<(), Reject> {
    #[cfg(test)]
    if ARMED.with(|a| a.borrow().contains(&name)) {
        return Err(Reject::new(missive_protocol::ErrorCode::Storage, format!("failpoint {name}")));
    }
    let _ = name;
    Ok(())
}

/// Arms `name` on this thread until [`disarm_all`].
#[cfg(test)]
pub(crate) fn arm(name: &'static str) {
    ARMED.with(|a| a.borrow_mut().push(name));
}

/// Disarms every failpoint of this thread.
#[cfg(test)]
pub(crate) fn disarm_all() {
    ARMED.with(|a| a.borrow_mut().clear());
}
