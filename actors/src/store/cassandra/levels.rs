//! Replication and consistency levels: what `cassandra.replication`,
//! `cassandra.consistency` and `cassandra.serial_consistency` say, and how the driver and
//! CQL spell them.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A consistency level of `cassandra.consistency`, spelled as CQL spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Consistency {
    One,
    Two,
    Three,
    Quorum,
    All,
    #[default]
    LocalQuorum,
    EachQuorum,
    LocalOne,
}

impl Consistency {
    pub fn driver(self) -> scylla::statement::Consistency {
        use scylla::statement::Consistency as C;
        match self {
            Consistency::One => C::One,
            Consistency::Two => C::Two,
            Consistency::Three => C::Three,
            Consistency::Quorum => C::Quorum,
            Consistency::All => C::All,
            Consistency::LocalQuorum => C::LocalQuorum,
            Consistency::EachQuorum => C::EachQuorum,
            Consistency::LocalOne => C::LocalOne,
        }
    }

    /// Replicas that must answer when a keyspace keeps `replicas` copies (one data
    /// centre), or None where that depends on the data centres.
    pub(super) fn needs(self, replicas: u32) -> Option<u32> {
        match self {
            Consistency::One | Consistency::LocalOne => Some(1),
            Consistency::Two => Some(2),
            Consistency::Three => Some(3),
            Consistency::All => Some(replicas),
            Consistency::Quorum | Consistency::LocalQuorum => Some(replicas / 2 + 1),
            Consistency::EachQuorum => None,
        }
    }
}

/// The serial consistency of `cassandra.serial_consistency`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SerialConsistency {
    #[default]
    Serial,
    LocalSerial,
}

impl SerialConsistency {
    pub fn driver(self) -> scylla::statement::SerialConsistency {
        match self {
            SerialConsistency::Serial => scylla::statement::SerialConsistency::Serial,
            SerialConsistency::LocalSerial => scylla::statement::SerialConsistency::LocalSerial,
        }
    }

    /// The consistency of a read that must see every committed lightweight transaction
    /// (the fence's owner epoch, the committed offset).
    pub fn for_reads(self) -> scylla::statement::Consistency {
        match self {
            SerialConsistency::Serial => scylla::statement::Consistency::Serial,
            SerialConsistency::LocalSerial => scylla::statement::Consistency::LocalSerial,
        }
    }
}

/// Keyspace replication, as in CQL's `WITH replication = {...}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "class", deny_unknown_fields)]
pub enum Replication {
    /// One replication factor for the whole cluster (single data centre, tests).
    SimpleStrategy { replication_factor: u32 },
    /// A replication factor per data centre (production).
    NetworkTopologyStrategy { datacenters: BTreeMap<String, u32> },
}

impl Default for Replication {
    fn default() -> Self {
        Replication::SimpleStrategy {
            replication_factor: 1,
        }
    }
}

impl Replication {
    /// The CQL map literal, e.g. `{'class': 'SimpleStrategy', 'replication_factor': 1}`.
    pub fn to_cql(&self) -> String {
        match self {
            Replication::SimpleStrategy { replication_factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}")
            }
            Replication::NetworkTopologyStrategy { datacenters } => {
                let mut cql = String::from("{'class': 'NetworkTopologyStrategy'");
                for (dc, factor) in datacenters {
                    cql.push_str(&format!(", '{}': {factor}", dc.replace('\'', "''")));
                }
                cql.push('}');
                cql
            }
        }
    }

    /// The map as Cassandra reports it in `system_schema.keyspaces.replication`.
    pub fn as_reported(&self) -> BTreeMap<String, String> {
        match self {
            Replication::SimpleStrategy { replication_factor } => BTreeMap::from([
                (
                    "class".into(),
                    "org.apache.cassandra.locator.SimpleStrategy".into(),
                ),
                ("replication_factor".into(), replication_factor.to_string()),
            ]),
            Replication::NetworkTopologyStrategy { datacenters } => {
                let mut map: BTreeMap<String, String> = datacenters
                    .iter()
                    .map(|(dc, factor)| (dc.clone(), factor.to_string()))
                    .collect();
                map.insert(
                    "class".into(),
                    "org.apache.cassandra.locator.NetworkTopologyStrategy".into(),
                );
                map
            }
        }
    }
}
