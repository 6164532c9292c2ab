//! What a partition's writer counts and commits with each batch, apart from its I/O:
//! the absolute count per aggregate bucket, the digest of each recent run, and which
//! runs were written least recently (dropped first once more than `keep` are held, so
//! the digests stay bounded over months).
//!
//! Pure, so a batch can be folded into a copy: the writer commits the copy's changes
//! ([`super::progress`]) and keeps the copy only if the commit applied; a failed or
//! fenced commit leaves the tally as committed.

use super::progress::Changes;
use crate::model::CreatedUser;
use crate::model::digest::Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A partition's counts as committed in `partition_state`.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Absolute counts per bucket (e.g. `country:France`).
    pub aggregates: BTreeMap<String, i64>,
    /// The digest of each recent run's users written from this partition (the
    /// reconciler's Cassandra side of a run).
    pub runs: BTreeMap<i64, Digest>,
    /// The last offset this incarnation wrote for each run; runs loaded at claim and not
    /// written since count as the oldest.
    last_written: HashMap<i64, i64>,
}

/// A batch folded into a tally: the new tally and what changed, for the commit.
#[derive(Debug)]
pub struct Folded {
    pub tally: Tally,
    touched: BTreeSet<String>,
    runs_touched: BTreeSet<i64>,
    runs_dropped: Vec<i64>,
}

impl Folded {
    /// The rows the commit writes: every touched bucket, the touched runs' digests, and
    /// the dropped runs' deletions.
    pub fn changes(&self) -> Changes<'_> {
        Changes {
            aggregates: &self.tally.aggregates,
            touched: &self.touched,
            runs: &self.tally.runs,
            runs_touched: &self.runs_touched,
            runs_dropped: &self.runs_dropped,
        }
    }
}

impl Tally {
    /// The tally a writer loads at claim.
    pub fn loaded(aggregates: BTreeMap<String, i64>, runs: BTreeMap<i64, Digest>) -> Tally {
        Tally {
            aggregates,
            runs,
            last_written: HashMap::new(),
        }
    }

    /// `self` with `users` (a batch ending at `last_offset`) counted, keeping the
    /// digests of at most `keep` runs: those written least recently go first (not the
    /// lowest ids: a run retried late is as new as the newest).
    pub fn fold(&self, users: &[CreatedUser], last_offset: i64, keep: usize) -> Folded {
        let mut tally = self.clone();
        let mut touched = BTreeSet::new();
        let mut runs_touched = BTreeSet::new();
        for user in users {
            for bucket in user.buckets() {
                *tally.aggregates.entry(bucket.clone()).or_insert(0) += 1;
                touched.insert(bucket);
            }
            if let Some(run) = user.provenance.run_id {
                tally.runs.entry(run).or_default().add(user.id);
                runs_touched.insert(run);
            }
        }
        for run in &runs_touched {
            tally.last_written.insert(*run, last_offset);
        }
        let mut runs_dropped = Vec::new();
        while tally.runs.len() > keep {
            let Some(run) = tally
                .runs
                .keys()
                .min_by_key(|run| (tally.last_written.get(*run).copied().unwrap_or(-1), **run))
                .copied()
            else {
                break;
            };
            tally.runs.remove(&run);
            tally.last_written.remove(&run);
            runs_touched.remove(&run);
            runs_dropped.push(run);
        }
        Folded {
            tally,
            touched,
            runs_touched,
            runs_dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const COUNTRIES: [&str; 3] = ["France", "Norway", "Brazil"];
    const GENDERS: [&str; 2] = ["female", "male"];

    /// A user drawn from a small set of countries, genders and runs (so that buckets and
    /// runs repeat), with a unique id.
    fn user(n: u128, country: usize, gender: usize, run: Option<i64>) -> CreatedUser {
        let id = uuid::Uuid::from_u128(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
        CreatedUser::for_test(id, COUNTRIES[country], GENDERS[gender], 0, run)
    }

    /// Users and a split of them into consecutive batches.
    fn users_in_batches() -> impl Strategy<Value = (Vec<CreatedUser>, Vec<usize>)> {
        let one = (
            0..COUNTRIES.len(),
            0..GENDERS.len(),
            proptest::option::of(0i64..12),
        );
        (
            proptest::collection::vec(one, 0..300),
            proptest::collection::vec(1usize..60, 1..20),
        )
            .prop_map(|(drawn, sizes)| {
                let users = drawn
                    .into_iter()
                    .enumerate()
                    .map(|(n, (c, g, run))| user(n as u128, c, g, run))
                    .collect();
                (users, sizes)
            })
    }

    /// Folds `users` batch by batch from `tally` (sizes repeat until every user is in
    /// one), keeping each fold as the commit would; each batch, its last offset and its
    /// fold go to `each`.
    fn fold_all(
        mut tally: Tally,
        users: &[CreatedUser],
        sizes: &[usize],
        keep: usize,
        mut each: impl FnMut(&[CreatedUser], i64, &Folded) -> Result<(), TestCaseError>,
    ) -> Result<Tally, TestCaseError> {
        let mut at = 0;
        for size in sizes.iter().cycle() {
            if at >= users.len() {
                break;
            }
            let batch = &users[at..(at + size).min(users.len())];
            at += batch.len();
            let last_offset = at as i64 - 1;
            let folded = tally.fold(batch, last_offset, keep);
            each(batch, last_offset, &folded)?;
            tally = folded.tally;
        }
        Ok(tally)
    }

    /// A writer's tally as loaded at claim: digests of some of the runs the batches
    /// also write (and of others).
    fn loaded() -> impl Strategy<Value = Tally> {
        proptest::collection::btree_set(0i64..16, 0..8).prop_map(|runs| {
            let runs = runs
                .into_iter()
                .map(|run| (run, Digest { count: 1, xor: run }))
                .collect();
            Tally::loaded(BTreeMap::new(), runs)
        })
    }

    proptest! {
        /// However the records are cut into batches, the aggregates are the counts of
        /// the whole, and each kept run's digest is that of all its users.
        #[test]
        fn batches_add_up_to_the_whole((users, sizes) in users_in_batches()) {
            let tally = fold_all(Tally::default(), &users, &sizes, usize::MAX, |_, _, _| Ok(()))?;
            let mut expected: BTreeMap<String, i64> = BTreeMap::new();
            for user in &users {
                for bucket in user.buckets() {
                    *expected.entry(bucket).or_insert(0) += 1;
                }
            }
            prop_assert_eq!(&tally.aggregates, &expected);
            let mut runs: BTreeMap<i64, Digest> = BTreeMap::new();
            for user in &users {
                if let Some(run) = user.provenance.run_id {
                    runs.entry(run).or_default().add(user.id);
                }
            }
            prop_assert_eq!(&tally.runs, &runs);
            let gendered: i64 = tally
                .aggregates
                .iter()
                .filter(|(bucket, _)| bucket.starts_with("gender:"))
                .map(|(_, n)| n)
                .sum();
            prop_assert_eq!(gendered, users.len() as i64);
        }

        /// The digests stay bounded by `keep`, and the ones dropped are those written
        /// least recently (loaded at claim and not written since counts as least; ties
        /// go by run id): every dropped run was written no later than every kept one.
        /// A dropped run goes to the commit as a deletion, never as a write.
        #[test]
        fn the_least_recently_written_digests_are_dropped(
            start in loaded(),
            (users, sizes) in users_in_batches(),
            keep in 1usize..6,
        ) {
            let mut last: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
            fold_all(start, &users, &sizes, keep, |batch, last_offset, folded| {
                for run in batch.iter().filter_map(|u| u.provenance.run_id) {
                    last.insert(run, last_offset);
                }
                let age = |run: i64| (last.get(&run).copied().unwrap_or(-1), run);
                prop_assert!(folded.tally.runs.len() <= keep);
                for dropped in &folded.runs_dropped {
                    prop_assert!(!folded.runs_touched.contains(dropped));
                    prop_assert!(!folded.tally.runs.contains_key(dropped));
                    for kept in folded.tally.runs.keys() {
                        prop_assert!(age(*dropped) < age(*kept), "{} dropped, {} kept", dropped, kept);
                    }
                }
                for run in &folded.runs_touched {
                    prop_assert!(folded.tally.runs.contains_key(run));
                }
                Ok(())
            })?;
        }
    }

    #[test]
    fn a_fold_leaves_the_tally_it_started_from_alone() {
        let tally = Tally::default();
        let folded = tally.fold(&[user(1, 0, 0, Some(3))], 0, 4);
        assert!(tally.aggregates.is_empty() && tally.runs.is_empty());
        assert_eq!(folded.tally.aggregates["country:France"], 1);
        assert_eq!(folded.tally.runs[&3].count, 1);
    }
}
