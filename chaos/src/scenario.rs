//! The fault catalogue: one named scenario per fault.

use crate::backend::Service;
use crate::toxiproxy::Toxic;

/// One fault, injected once per scenario run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a stack service, hold, start it again.
    Kill(Service),
    /// SIGSTOP a stack service, hold, SIGCONT.
    Pause(Service),
    /// SIGKILL tributary, then start a new process.
    KillTributary,
    /// SIGKILL and restart tributary this many times in a row.
    RepeatedKills(u32),
    /// A Toxiproxy toxic on one of tributary's links, held, then removed.
    Link(Link, Toxic),
    /// A panic in the next message of this actor kind (admin endpoint, test flag).
    Panic(&'static str),
    /// Start a second instance (a rebalance begins) and SIGKILL it mid-rebalance.
    KillSecondInstanceDuringRebalance,
}

/// A network link between tributary and a store, routed through Toxiproxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Postgres,
    Kafka,
    Cassandra,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub fault: Fault,
    /// Part of `make chaos-ci`.
    pub ci: bool,
}

const fn s(name: &'static str, fault: Fault, ci: bool) -> Scenario {
    Scenario { name, fault, ci }
}

/// Every scenario. `make chaos-ci` runs those marked `ci` (every fault kind at least
/// once); `make chaos` runs all of them.
pub const CATALOGUE: &[Scenario] = &[
    s("kill-tributary", Fault::KillTributary, true),
    s("kill-tributary-5x", Fault::RepeatedKills(5), true),
    s("kill-kafka", Fault::Kill(Service::Kafka), true),
    s("kill-cassandra", Fault::Kill(Service::Cassandra), true),
    s("kill-postgres", Fault::Kill(Service::Postgres), true),
    s("kill-jaeger", Fault::Kill(Service::Jaeger), false),
    s("pause-kafka", Fault::Pause(Service::Kafka), true),
    s("pause-cassandra", Fault::Pause(Service::Cassandra), true),
    s(
        "postgres-latency",
        Fault::Link(Link::Postgres, Toxic::Latency),
        true,
    ),
    s(
        "postgres-reset-peer",
        Fault::Link(Link::Postgres, Toxic::ResetPeer),
        true,
    ),
    s(
        "postgres-timeout",
        Fault::Link(Link::Postgres, Toxic::Timeout),
        false,
    ),
    s(
        "postgres-bandwidth",
        Fault::Link(Link::Postgres, Toxic::Bandwidth),
        false,
    ),
    s(
        "kafka-latency",
        Fault::Link(Link::Kafka, Toxic::Latency),
        true,
    ),
    s(
        "kafka-reset-peer",
        Fault::Link(Link::Kafka, Toxic::ResetPeer),
        false,
    ),
    s(
        "kafka-timeout",
        Fault::Link(Link::Kafka, Toxic::Timeout),
        false,
    ),
    s(
        "kafka-bandwidth",
        Fault::Link(Link::Kafka, Toxic::Bandwidth),
        false,
    ),
    s(
        "cassandra-latency",
        Fault::Link(Link::Cassandra, Toxic::Latency),
        false,
    ),
    s(
        "cassandra-reset-peer",
        Fault::Link(Link::Cassandra, Toxic::ResetPeer),
        true,
    ),
    s(
        "cassandra-timeout",
        Fault::Link(Link::Cassandra, Toxic::Timeout),
        false,
    ),
    s(
        "cassandra-bandwidth",
        Fault::Link(Link::Cassandra, Toxic::Bandwidth),
        false,
    ),
    s("panic-scheduler", Fault::Panic("scheduler"), false),
    s("panic-fetcher", Fault::Panic("fetcher"), false),
    s("panic-stager", Fault::Panic("stager"), false),
    s("panic-producer", Fault::Panic("producer"), true),
    s("panic-consumer", Fault::Panic("consumer"), false),
    s("panic-transformer", Fault::Panic("transformer"), false),
    s("panic-writer", Fault::Panic("writer"), true),
    s(
        "kill-second-instance-mid-rebalance",
        Fault::KillSecondInstanceDuringRebalance,
        true,
    ),
];

pub fn by_name(name: &str) -> Option<Scenario> {
    CATALOGUE.iter().copied().find(|s| s.name == name)
}

/// Seeded choices of one run: when the fault fires and how long it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Fraction of the workload staged when the fault is injected.
    pub at_fraction: f64,
    /// How long the fault holds before the heal, in milliseconds.
    pub hold_ms: u64,
}

impl Schedule {
    /// The same seed and scenario always give the same schedule.
    pub fn new(seed: u64, scenario: &str) -> Schedule {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
        for b in scenario.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let mut next = || {
            h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = h;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1_u64 << 53) as f64
        };
        Schedule {
            at_fraction: 0.2 + 0.4 * next(),
            hold_ms: 2_000 + (3_000.0 * next()) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_replay_by_seed() {
        assert_eq!(
            Schedule::new(1, "kill-kafka"),
            Schedule::new(1, "kill-kafka")
        );
        assert_ne!(
            Schedule::new(1, "kill-kafka"),
            Schedule::new(2, "kill-kafka")
        );
        let s = Schedule::new(7, "pause-cassandra");
        assert!((0.2..0.6).contains(&s.at_fraction) && (2_000..5_000).contains(&s.hold_ms));
    }

    #[test]
    fn the_ci_suite_covers_every_fault_kind() {
        let ci: Vec<Fault> = CATALOGUE.iter().filter(|s| s.ci).map(|s| s.fault).collect();
        assert!(ci.len() >= 10);
        assert!(ci.iter().any(|f| matches!(f, Fault::Kill(_))));
        assert!(ci.iter().any(|f| matches!(f, Fault::Pause(_))));
        assert!(ci.iter().any(|f| matches!(f, Fault::KillTributary)));
        assert!(ci.iter().any(|f| matches!(f, Fault::RepeatedKills(_))));
        for link in [Link::Postgres, Link::Kafka, Link::Cassandra] {
            assert!(
                ci.iter()
                    .any(|f| matches!(f, Fault::Link(l, _) if *l == link)),
                "{link:?}"
            );
        }
        assert!(ci.iter().any(|f| matches!(f, Fault::Panic(_))));
        assert!(
            ci.iter()
                .any(|f| matches!(f, Fault::KillSecondInstanceDuringRebalance))
        );
    }
}
