//! The fault catalogue: one named scenario per fault.

use crate::backend::{Role, Service};
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
    /// The embedded source stops answering (its port closed), then comes back on the
    /// same address.
    SourceOutage,
    /// Cluster: SIGKILL the broker that holds `Role` now (asked of the cluster), hold,
    /// start it again.
    KillBroker(Role),
    /// Cluster: stop (SIGTERM) and start every node of a store in turn, the cluster
    /// whole again before the next node.
    RollingRestart(Store),
    /// Cluster: node 3 (its broker and its Cassandra node) cut off from the rest, then
    /// healed. With `minority`, a second tributary runs on node 3's side.
    Partition { minority: bool },
    /// Containers: a service's container off the compose network, held, then back at
    /// its address.
    Disconnect(Service),
    /// Containers: tributary's container paused (the cgroup freezer), held, unpaused.
    PauseTributary,
    /// Containers: tributary's container off the compose network, held, then back.
    DisconnectTributary,
    /// Containers: `docker compose up` of the whole file, tributary's own service
    /// included, with a bounded workload; then `verify`. No fault: the proof that the
    /// compose file itself moves users exactly once.
    ComposeUp,
}

/// A replicated store of the cluster stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Kafka,
    Cassandra,
}

impl Store {
    /// Node `n` of this store.
    pub fn node(self, n: u8) -> Service {
        match self {
            Store::Kafka => Service::KafkaNode(n),
            Store::Cassandra => Service::CassandraNode(n),
        }
    }
}

impl Fault {
    /// Faults of the stores and the source that tributary must ride out on its own:
    /// every one comes with long holds too, and the tributary process must survive it.
    fn outlived(self) -> bool {
        matches!(
            self,
            Fault::Kill(
                Service::Kafka
                    | Service::Cassandra
                    | Service::Postgres
                    | Service::KafkaNode(_)
                    | Service::CassandraNode(_)
            ) | Fault::Pause(_)
                | Fault::Disconnect(_)
                | Fault::PauseTributary
                | Fault::DisconnectTributary
                | Fault::Link(..)
                | Fault::SourceOutage
                | Fault::KillBroker(_)
                | Fault::RollingRestart(_)
                | Fault::Partition { .. }
        )
    }
}

/// How long a fault holds before the heal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// 2–5 s, drawn from the seed.
    Seeded,
    /// Exactly this long: past the client timeouts (30 s) or the supervision windows
    /// (3 minutes).
    Fixed(u64),
}

/// A network link between tributary and a store, routed through Toxiproxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Postgres,
    Kafka,
    Cassandra,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub fault: Fault,
    pub hold: Hold,
    /// Part of `make chaos-ci`.
    pub ci: bool,
}

impl Scenario {
    /// The tributary process must live through it (no process restart).
    pub fn outlived(&self) -> bool {
        self.fault.outlived()
    }

    /// A long-hold variant.
    pub fn long(&self) -> bool {
        matches!(self.hold, Hold::Fixed(_))
    }
}

struct Base {
    name: &'static str,
    fault: Fault,
    ci: bool,
}

const fn s(name: &'static str, fault: Fault, ci: bool) -> Base {
    Base { name, fault, ci }
}

/// The long holds every outlived fault also runs with: past every client timeout
/// (consumer session, transaction, request: 30 s) and past the supervision windows
/// (3 minutes).
pub const LONG_HOLDS: [(&str, u64); 2] = [("30s", 30_000), ("3m", 180_000)];

/// Long-hold variants that `make chaos-ci` runs.
const CI_LONG: &[&str] = &[
    "pause-kafka-30s",
    "kill-kafka-30s",
    "pause-cassandra-30s",
    "source-outage-60s",
];

/// Every scenario: the short catalogue (seeded 2–5 s holds), then each outlived fault
/// with the [`LONG_HOLDS`] (and the source with a 60 s outage). `make chaos-ci` runs
/// those marked `ci` (every fault kind at least once, and the long holds of
/// [`CI_LONG`]); `make chaos` runs all of them.
pub fn catalogue() -> Vec<Scenario> {
    let mut all: Vec<Scenario> = BASE
        .iter()
        .map(|b| Scenario {
            name: b.name.to_owned(),
            fault: b.fault,
            hold: Hold::Seeded,
            ci: b.ci,
        })
        .collect();
    let mut long = Vec::new();
    for base in BASE.iter().filter(|b| b.fault.outlived()) {
        let mut holds: Vec<(&str, u64)> = LONG_HOLDS.to_vec();
        if base.fault == Fault::SourceOutage {
            holds.insert(1, ("60s", 60_000));
        }
        for (suffix, ms) in holds {
            let name = format!("{}-{suffix}", base.name);
            long.push(Scenario {
                ci: CI_LONG.contains(&name.as_str()),
                name,
                fault: base.fault,
                hold: Hold::Fixed(ms),
            });
        }
    }
    all.extend(long);
    all
}

const BASE: &[Base] = &[
    s("kill-tributary", Fault::KillTributary, true),
    s("kill-tributary-5x", Fault::RepeatedKills(5), true),
    s("kill-kafka", Fault::Kill(Service::Kafka), true),
    s("kill-cassandra", Fault::Kill(Service::Cassandra), true),
    s("kill-postgres", Fault::Kill(Service::Postgres), true),
    s("kill-jaeger", Fault::Kill(Service::Jaeger), false),
    s("pause-kafka", Fault::Pause(Service::Kafka), true),
    s("pause-cassandra", Fault::Pause(Service::Cassandra), true),
    s("pause-postgres", Fault::Pause(Service::Postgres), false),
    s("source-outage", Fault::SourceOutage, false),
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

/// The cluster suite (`--suite cluster`, `make chaos-cluster`), against the cluster
/// stack: every fault of a replicated cluster once. Holds are fixed and longer than a
/// broker's session (9 s): long enough that the cluster fences the node and elects new
/// leaders, so the suite measures a failover, not a pause the clients sit out.
pub fn cluster_catalogue() -> Vec<Scenario> {
    const FAILOVER: u64 = 20_000;
    const PAST_SESSION: u64 = 15_000;
    const PARTITION: u64 = 30_000;
    [
        (
            "kill-raw-partition-leader",
            Fault::KillBroker(Role::RawLeader),
            FAILOVER,
        ),
        (
            "kill-transaction-coordinator",
            Fault::KillBroker(Role::TransactionCoordinator),
            FAILOVER,
        ),
        (
            "kill-active-controller",
            Fault::KillBroker(Role::Controller),
            FAILOVER,
        ),
        (
            "pause-broker-past-session",
            Fault::Pause(Service::KafkaNode(2)),
            PAST_SESSION,
        ),
        (
            "rolling-restart-kafka",
            Fault::RollingRestart(Store::Kafka),
            0,
        ),
        (
            "kill-cassandra-node",
            Fault::Kill(Service::CassandraNode(2)),
            FAILOVER,
        ),
        (
            "pause-cassandra-node",
            Fault::Pause(Service::CassandraNode(2)),
            PAST_SESSION,
        ),
        (
            "rolling-restart-cassandra",
            Fault::RollingRestart(Store::Cassandra),
            0,
        ),
        (
            "partition-node-3",
            Fault::Partition { minority: false },
            PARTITION,
        ),
        (
            "partition-node-3-with-a-minority-instance",
            Fault::Partition { minority: true },
            PARTITION,
        ),
    ]
    .into_iter()
    .map(|(name, fault, ms)| Scenario {
        name: name.to_owned(),
        fault,
        hold: Hold::Fixed(ms),
        ci: true,
    })
    .collect()
}

/// The container suite (`--suite containers`, `make chaos-containers`), against the
/// container stack through the compose backend: `docker compose up` of the whole file,
/// then for each store's container and tributary's own a SIGKILL and restart, a pause
/// and a network partition (the container off the compose network), held 2–5 s
/// (seeded) as in the short catalogue.
pub fn containers_catalogue() -> Vec<Scenario> {
    let mut all = vec![Scenario {
        name: "compose-up".into(),
        fault: Fault::ComposeUp,
        hold: Hold::Fixed(0),
        ci: true,
    }];
    let stores = [
        ("kafka", Service::Kafka),
        ("cassandra", Service::Cassandra),
        ("postgres", Service::Postgres),
    ];
    for (verb, of_store, of_tributary) in [
        (
            "kill",
            Fault::Kill as fn(Service) -> Fault,
            Fault::KillTributary,
        ),
        ("pause", Fault::Pause, Fault::PauseTributary),
        ("disconnect", Fault::Disconnect, Fault::DisconnectTributary),
    ] {
        for (name, service) in stores {
            all.push(Scenario {
                name: format!("{verb}-{name}-container"),
                fault: of_store(service),
                hold: Hold::Seeded,
                ci: true,
            });
        }
        all.push(Scenario {
            name: format!("{verb}-tributary-container"),
            fault: of_tributary,
            hold: Hold::Seeded,
            ci: true,
        });
    }
    all
}

pub fn by_name(name: &str) -> Option<Scenario> {
    catalogue()
        .into_iter()
        .chain(cluster_catalogue())
        .chain(containers_catalogue())
        .find(|s| s.name == name)
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
    pub fn new(seed: u64, scenario: &str, hold: Hold) -> Schedule {
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
        let at_fraction = 0.2 + 0.4 * next();
        let seeded_hold = 2_000 + (3_000.0 * next()) as u64;
        Schedule {
            at_fraction,
            hold_ms: match hold {
                Hold::Seeded => seeded_hold,
                Hold::Fixed(ms) => ms,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_replay_by_seed() {
        let seeded = Hold::Seeded;
        assert_eq!(
            Schedule::new(1, "kill-kafka", seeded),
            Schedule::new(1, "kill-kafka", seeded)
        );
        assert_ne!(
            Schedule::new(1, "kill-kafka", seeded),
            Schedule::new(2, "kill-kafka", seeded)
        );
        let s = Schedule::new(7, "pause-cassandra", seeded);
        assert!((0.2..0.6).contains(&s.at_fraction) && (2_000..5_000).contains(&s.hold_ms));
        assert_eq!(
            Schedule::new(7, "pause-kafka-3m", Hold::Fixed(180_000)).hold_ms,
            180_000
        );
    }

    #[test]
    fn every_store_and_source_fault_has_long_holds_and_ci_runs_the_required_ones() {
        // Kill and pause of the three stores, the four toxics on the three links, the
        // source outage: 19 faults, each held 30 s and 3 minutes, and the source 60 s.
        let long: Vec<Scenario> = catalogue().into_iter().filter(Scenario::long).collect();
        assert_eq!(long.len(), 19 * 2 + 1);
        for (name, fault, ms) in [
            ("kill-kafka-3m", Fault::Kill(Service::Kafka), 180_000),
            (
                "pause-postgres-30s",
                Fault::Pause(Service::Postgres),
                30_000,
            ),
            (
                "cassandra-timeout-3m",
                Fault::Link(Link::Cassandra, Toxic::Timeout),
                180_000,
            ),
            (
                "kafka-bandwidth-30s",
                Fault::Link(Link::Kafka, Toxic::Bandwidth),
                30_000,
            ),
            ("source-outage-60s", Fault::SourceOutage, 60_000),
        ] {
            let found = by_name(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(
                (found.fault, found.hold),
                (fault, Hold::Fixed(ms)),
                "{name}"
            );
        }
        assert!(
            by_name("kill-tributary-30s").is_none(),
            "tributary's own faults stay short"
        );
        let ci_long: Vec<String> = long
            .iter()
            .filter(|s| s.ci)
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(
            ci_long,
            [
                "kill-kafka-30s",
                "pause-kafka-30s",
                "pause-cassandra-30s",
                "source-outage-60s"
            ]
        );
        let all = catalogue();
        let names: std::collections::HashSet<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), all.len(), "unique names");
    }

    #[test]
    fn the_cluster_suite_covers_every_cluster_fault_once() {
        let cluster = cluster_catalogue();
        let faults: Vec<Fault> = cluster.iter().map(|s| s.fault).collect();
        for role in [
            Role::RawLeader,
            Role::TransactionCoordinator,
            Role::Controller,
        ] {
            assert!(faults.contains(&Fault::KillBroker(role)), "{role:?}");
        }
        for store in [Store::Kafka, Store::Cassandra] {
            assert!(faults.contains(&Fault::RollingRestart(store)), "{store:?}");
        }
        assert!(faults.contains(&Fault::Kill(Service::CassandraNode(2))));
        assert!(faults.contains(&Fault::Pause(Service::CassandraNode(2))));
        assert!(faults.contains(&Fault::Pause(Service::KafkaNode(2))));
        assert!(faults.contains(&Fault::Partition { minority: false }));
        assert!(faults.contains(&Fault::Partition { minority: true }));
        assert!(cluster.iter().all(Scenario::outlived));
        let single = catalogue();
        let names: std::collections::HashSet<&str> = cluster
            .iter()
            .chain(&single)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names.len(), cluster.len() + single.len(), "unique names");
    }

    #[test]
    fn the_ci_suite_covers_every_fault_kind() {
        let ci: Vec<Fault> = catalogue()
            .iter()
            .filter(|s| s.ci)
            .map(|s| s.fault)
            .collect();
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

    #[test]
    fn the_container_suite_kills_pauses_and_cuts_off_every_store_and_tributary() {
        let suite = containers_catalogue();
        let faults: Vec<Fault> = suite.iter().map(|s| s.fault).collect();
        assert_eq!(faults[0], Fault::ComposeUp, "compose up first");
        for service in [Service::Kafka, Service::Cassandra, Service::Postgres] {
            for fault in [
                Fault::Kill(service),
                Fault::Pause(service),
                Fault::Disconnect(service),
            ] {
                assert!(faults.contains(&fault), "{fault:?}");
            }
        }
        for fault in [
            Fault::KillTributary,
            Fault::PauseTributary,
            Fault::DisconnectTributary,
        ] {
            assert!(faults.contains(&fault), "{fault:?}");
        }
        assert_eq!(suite.len(), 13);
        assert!(suite.iter().all(|s| s.ci));
        // Names of their own: `--scenarios` finds each in exactly one catalogue.
        for scenario in &suite {
            assert!(
                !catalogue()
                    .iter()
                    .chain(&cluster_catalogue())
                    .any(|other| other.name == scenario.name),
                "{}",
                scenario.name
            );
        }
    }
}
