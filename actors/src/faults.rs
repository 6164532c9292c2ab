//! Panics injected into actors on demand, for the chaos suite.
//!
//! Each actor kind calls [`maybe_panic`] at the top of its message handler: one atomic
//! load when nothing is armed. Arming is only possible when tributary was started with
//! `--test-faults` (the admin endpoint that arms exists only then), and each arming
//! fires once, in the next message that actor kind handles.

use std::sync::atomic::{AtomicBool, Ordering};

/// The actor kinds that can be made to panic.
pub const KINDS: &[&str] = &[
    "scheduler",
    "fetcher",
    "stager",
    "producer",
    "consumer",
    "transformer",
    "writer",
];

static ARMED: [AtomicBool; 7] = [const { AtomicBool::new(false) }; 7];

/// Arms a panic for the next message handled by an actor of `kind`; false for an
/// unknown kind.
pub fn arm(kind: &str) -> bool {
    match KINDS.iter().position(|k| *k == kind) {
        Some(index) => {
            ARMED[index].store(true, Ordering::SeqCst);
            true
        }
        None => false,
    }
}

/// Panics if a panic is armed for `kind` (and disarms it).
///
/// # Panics
/// When armed: that is its purpose. The supervisor catches it and restarts the actor.
pub fn maybe_panic(kind: &str) {
    if let Some(index) = KINDS.iter().position(|k| *k == kind)
        && ARMED[index].swap(false, Ordering::SeqCst)
    {
        panic!("injected panic in {kind} (chaos suite)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_panic_fires_once() {
        assert!(!arm("nobody"));
        assert!(arm("stager"));
        assert!(std::panic::catch_unwind(|| maybe_panic("stager")).is_err());
        maybe_panic("stager"); // disarmed: no panic
        maybe_panic("writer");
    }
}
