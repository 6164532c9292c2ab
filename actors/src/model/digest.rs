//! A run's digest: how many users and an order-independent hash of their ids.
//!
//! Recorded at staging (`runs.staged_users`, `runs.digest_xor`, by the PostgreSQL
//! function `seal_run`) and computed again from Kafka and Cassandra by `tributary
//! verify` and the reconciler: equal digests mean the run arrived whole, so checking a
//! month of data needs one digest per run, not every id in memory.

use serde::{Deserialize, Serialize};

/// Count and XOR of [`fold`] over a set of user ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub count: u64,
    pub xor: i64,
}

/// A user id folded to 64 bits: its two halves XORed; PostgreSQL's `uuid_fold64`.
pub fn fold(id: uuid::Uuid) -> i64 {
    let (high, low) = id.as_u64_pair();
    (high ^ low) as i64
}

impl Digest {
    pub fn add(&mut self, id: uuid::Uuid) {
        self.count += 1;
        self.xor ^= fold(id);
    }

    /// The digest of `self`'s ids without those of `other` (a subset of them).
    pub fn without(self, other: Digest) -> Digest {
        Digest {
            count: self.count.saturating_sub(other.count),
            xor: self.xor ^ other.xor,
        }
    }

    /// Adds another digest's ids.
    pub fn merge(&mut self, other: Digest) {
        self.count += other.count;
        self.xor ^= other.xor;
    }
}

/// Where a partition's writer commits a run's digest in `partition_state`: two buckets,
/// `run:<id>:users` and `run:<id>:xor`, the id in 20 digits so that buckets sort by run
/// (the deleted oldest ones, the table's only tombstones, together). They sort after
/// every aggregate bucket
/// (`country:…`, `gender:…`), so aggregates are read as the range below
/// [`RUN_BUCKETS`].
pub const RUN_BUCKETS: &str = "run:";

/// The two buckets of run `run`'s digest: (users, xor).
pub fn run_buckets(run: i64) -> (String, String) {
    (format!("run:{run:020}:users"), format!("run:{run:020}:xor"))
}

/// Which part of which run's digest a bucket holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunBucket {
    Users(i64),
    Xor(i64),
}

impl RunBucket {
    pub fn parse(bucket: &str) -> Option<RunBucket> {
        let rest = bucket.strip_prefix(RUN_BUCKETS)?;
        let (run, part) = rest.split_once(':')?;
        let run = run.parse().ok()?;
        match part {
            "users" => Some(RunBucket::Users(run)),
            "xor" => Some(RunBucket::Xor(run)),
            _ => None,
        }
    }

    /// Sets this part of `digests`' entry for the run to `value`.
    pub fn apply(self, value: i64, digests: &mut std::collections::BTreeMap<i64, Digest>) {
        match self {
            RunBucket::Users(run) => digests.entry(run).or_default().count = value.unsigned_abs(),
            RunBucket::Xor(run) => digests.entry(run).or_default().xor = value,
        }
    }
}

impl FromIterator<uuid::Uuid> for Digest {
    fn from_iter<I: IntoIterator<Item = uuid::Uuid>>(ids: I) -> Self {
        let mut digest = Digest::default();
        for id in ids {
            digest.add(id);
        }
        digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_buckets_parse_back() {
        let (users, xor) = run_buckets(42);
        let mut digests = std::collections::BTreeMap::new();
        RunBucket::parse(&users).unwrap().apply(7, &mut digests);
        RunBucket::parse(&xor).unwrap().apply(-3, &mut digests);
        assert_eq!(digests[&42], Digest { count: 7, xor: -3 });
        assert_eq!(RunBucket::parse("country:France"), None);
        assert_eq!(RunBucket::parse("run:x:users"), None);
        // Aggregates sort before every run bucket.
        assert!("gender:male" < RUN_BUCKETS && "country:Ukraine" < RUN_BUCKETS);
    }

    #[test]
    fn order_does_not_matter_and_a_missing_id_shows() {
        let ids: Vec<uuid::Uuid> = (0..100).map(|_| uuid::Uuid::new_v4()).collect();
        let forward: Digest = ids.iter().copied().collect();
        let backward: Digest = ids.iter().rev().copied().collect();
        assert_eq!(forward, backward);
        let short: Digest = ids[1..].iter().copied().collect();
        assert_ne!(forward, short);
        assert_eq!(forward.without(Digest::from_iter([ids[0]])), short);
        let mut merged = short;
        merged.merge(Digest::from_iter([ids[0]]));
        assert_eq!(merged, forward);
    }

    #[test]
    fn the_fold_is_postgresqls() {
        // uuid_fold64('7a0eed16-9430-4d68-901f-c0d4c1c3bf00') in PostgreSQL:
        // x'7a0eed1694304d68' # x'901fc0d4c1c3bf00' as bigint.
        let id: uuid::Uuid = "7a0eed16-9430-4d68-901f-c0d4c1c3bf00".parse().unwrap();
        assert_eq!(
            fold(id),
            (0x7a0e_ed16_9430_4d68_u64 ^ 0x901f_c0d4_c1c3_bf00_u64) as i64
        );
    }
}
