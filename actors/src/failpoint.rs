//! Fail points: the named places where the test and chaos suites make tributary fail on
//! purpose, in one mechanism (in the spirit of quickwit's `fail_point!`). The one fault
//! that is a moment rather than a count, `process.test_faults.leave_group_after_ms`, is
//! the coordinator's timer.
//!
//! A point is a static that the code asks [`FailPoint::fires`] where a failure should be
//! possible; a point no one configured costs one atomic load. Two kinds of request set
//! points:
//! - configuration (`[ingest|publish|process.test_faults]`, installed by the subtree's
//!   supervisor spec): fire on every Nth hit, or once on the Nth, counted over the whole
//!   process and across actor restarts — so no counter travels through actor arguments;
//! - the admin API of `tributary run --test-faults`: the next message an actor kind
//!   handles panics ([`arm`], [`maybe_panic`]).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

const OFF: u8 = 0;
/// Fires on every hit whose count is a multiple of `n`.
const EVERY: u8 = 1;
/// Fires on the hit whose count is `n`, once.
const ONCE_AT: u8 = 2;
/// Fires on the next hit, once.
const NEXT: u8 = 3;

/// One named place where a failure can be injected.
#[derive(Debug)]
pub struct FailPoint {
    name: &'static str,
    mode: AtomicU8,
    n: AtomicU64,
    hits: AtomicU64,
}

impl FailPoint {
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            mode: AtomicU8::new(OFF),
            n: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn set(&self, mode: u8, n: u64) {
        self.mode.store(OFF, Ordering::SeqCst);
        self.hits.store(0, Ordering::SeqCst);
        self.n.store(n, Ordering::SeqCst);
        if n > 0 {
            self.mode.store(mode, Ordering::SeqCst);
        }
    }

    /// Fires on every `n`th hit from now on; 0 turns the point off.
    pub fn every(&self, n: u64) {
        self.set(EVERY, n);
    }

    /// Fires on the `n`th hit from now on, once; 0 turns the point off.
    pub fn once_at(&self, n: u64) {
        self.set(ONCE_AT, n);
    }

    /// Fires on the next hit, once.
    pub fn arm_next(&self) {
        self.set(NEXT, 1);
    }

    /// Counts a hit; when the point fires on it, the hit's number (counted since the
    /// point was set, over every caller: the error message names it).
    pub fn fires(&self) -> Option<u64> {
        match self.mode.load(Ordering::SeqCst) {
            OFF => None,
            NEXT => self
                .mode
                .compare_exchange(NEXT, OFF, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
                .then_some(1),
            mode => {
                let hit = self.hits.fetch_add(1, Ordering::SeqCst) + 1;
                let n = self.n.load(Ordering::SeqCst);
                let fired = match mode {
                    EVERY => hit.is_multiple_of(n),
                    _ => hit == n,
                };
                fired.then_some(hit)
            }
        }
    }
}

/// A fetch, after its page was fetched and before it goes to the stager.
pub static FETCHED: FailPoint = FailPoint::new("fetcher.before_staging");
/// A Kafka transaction, its records and checkpoint sent, before its commit.
pub static BEFORE_PUBLISH_COMMIT: FailPoint = FailPoint::new("producer.before_commit");
/// A Kafka transaction, right after its commit.
pub static AFTER_PUBLISH_COMMIT: FailPoint = FailPoint::new("producer.after_commit");
/// A batch, upserted into `created_users`, before its offset commit.
pub static BEFORE_OFFSET_COMMIT: FailPoint = FailPoint::new("writer.before_commit");

/// The actor kinds whose next message can be made to panic, each with its point.
static ACTOR_PANICS: [FailPoint; 10] = [
    FailPoint::new("scheduler"),
    FailPoint::new("fetcher"),
    FailPoint::new("stager"),
    FailPoint::new("producer"),
    FailPoint::new("consumer"),
    FailPoint::new("transformer"),
    FailPoint::new("writer"),
    FailPoint::new("monitor"),
    FailPoint::new("reconciler"),
    FailPoint::new("pruner"),
];

fn actor_panic(kind: &str) -> Option<&'static FailPoint> {
    ACTOR_PANICS.iter().find(|point| point.name == kind)
}

/// The actor kinds [`arm`] knows.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    ACTOR_PANICS.iter().map(FailPoint::name)
}

/// Arms a panic for the next message handled by an actor of `kind`; false for an
/// unknown kind.
pub fn arm(kind: &str) -> bool {
    actor_panic(kind).map(FailPoint::arm_next).is_some()
}

/// Panics if a panic is armed for `kind` (and disarms it). Called at the top of each
/// actor kind's message handler.
///
/// # Panics
/// When armed: that is its purpose. The supervisor catches it and restarts the actor.
pub fn maybe_panic(kind: &str) {
    if actor_panic(kind).and_then(FailPoint::fires).is_some() {
        panic!("injected panic in {kind} (chaos suite)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(point: &FailPoint, hits: u64) -> Vec<u64> {
        (1..=hits).filter_map(|_| point.fires()).collect()
    }

    #[test]
    fn a_point_fires_on_its_schedule_and_costs_nothing_off() {
        let point = FailPoint::new("test.every");
        assert!(fired(&point, 10).is_empty());
        assert_eq!(
            point.hits.load(Ordering::SeqCst),
            0,
            "an unset point counts nothing"
        );
        point.every(3);
        assert_eq!(fired(&point, 10), [3, 6, 9]);
        point.once_at(4);
        assert_eq!(fired(&point, 10), [4]);
        point.every(0);
        assert!(fired(&point, 10).is_empty());
        point.arm_next();
        assert_eq!(point.fires(), Some(1));
        assert_eq!(point.fires(), None);
    }

    #[test]
    fn an_armed_panic_fires_once() {
        assert!(!arm("nobody"));
        assert!(arm("stager"));
        assert!(std::panic::catch_unwind(|| maybe_panic("stager")).is_err());
        maybe_panic("stager"); // disarmed: no panic
        maybe_panic("writer");
        assert!(kinds().any(|k| k == "reconciler"));
    }
}
