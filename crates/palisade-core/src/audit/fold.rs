//! Repeats of one refusal from one subject, folded into one record per
//! interval (DESIGN §6): a banned address knocking 100,000 times writes the
//! first knock and then one record with the count, not 100,000 rows that
//! fill the disk and crowd out what operators need.

use std::collections::HashMap;
use std::time::Duration;

use super::{Entry, Kind};
use crate::Timestamp;

/// What one refusal, its kind and its subject (address, user) is folded by.
type Key = (Kind, Option<String>, Option<String>);

/// The refusals of the current interval, by kind and subject: the first of
/// each is recorded, the repeats only counted until the interval ends.
#[derive(Debug)]
pub struct Fold {
    interval: Duration,
    max_subjects: usize,
    /// When the current interval began (its first refusal), if any.
    started: Option<Timestamp>,
    /// Repeats absorbed in the current interval, by key.
    repeats: HashMap<Key, u64>,
}

/// What [`Fold::admit`] lets through, in order: the summaries of the
/// interval that ended, then the entry itself unless it was a repeat.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    /// One record per subject that repeated itself in the ended interval.
    pub summaries: Vec<Entry>,
    /// The entry, if it is to be recorded.
    pub entry: Option<Entry>,
}

impl Fold {
    /// Folds repeats per `interval`, tracking at most `max_subjects` keys
    /// at once; past that bound entries are let through unfolded (the
    /// writer's queue bounds them, and a gap record counts what it drops),
    /// so the memory a distributed flood can take stays bounded.
    pub fn new(interval: Duration, max_subjects: usize) -> Self {
        Self { interval, max_subjects, started: None, repeats: HashMap::new() }
    }

    /// Whether `entry` is recorded at `now`. Only refusals fold: every
    /// other kind (bans, operator actions, …) is always let through, and so
    /// is everything when the interval is zero (folding off).
    pub fn admit(&mut self, entry: Entry, now: Timestamp) -> Admitted {
        let summaries = self.flush(now);
        if !matches!(entry.kind, Kind::Refused(_)) || self.interval.is_zero() {
            return Admitted { summaries, entry: Some(entry) };
        }
        let key = (entry.kind, entry.ip.clone(), entry.user.clone());
        if let Some(repeats) = self.repeats.get_mut(&key) {
            *repeats += 1;
            return Admitted { summaries, entry: None };
        }
        if self.repeats.len() < self.max_subjects {
            self.started.get_or_insert(now);
            self.repeats.insert(key, 0);
        }
        Admitted { summaries, entry: Some(entry) }
    }

    /// When the current interval has ended by `now`: one summary per key
    /// that repeated itself, and a fresh interval.
    pub fn flush(&mut self, now: Timestamp) -> Vec<Entry> {
        if self.started.is_none_or(|started| now < started.saturating_add(self.interval)) {
            return Vec::new();
        }
        self.started = None;
        let secs = self.interval.as_secs_f64();
        let mut summaries: Vec<Entry> = self
            .repeats
            .drain()
            .filter(|(_, repeats)| *repeats > 0)
            .map(|((kind, ip, user), repeats)| {
                let detail = format!(
                    "repeated {repeats} more times within {secs}s of the first (folded by audit.aggregate_interval)"
                );
                Entry { ip, user, ..Entry::new(now, kind, &detail) }
            })
            .collect();
        // A stable order, so the chain reads the same however the map hashed.
        summaries.sort_by(|a, b| (a.kind, &a.ip, &a.user).cmp(&(b.kind, &b.ip, &b.user)));
        summaries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal;
    use crate::testkit::T0;

    fn at(ms: u64) -> Timestamp {
        T0.saturating_add(Duration::from_millis(ms))
    }

    fn banned(ip: &str, ms: u64) -> Entry {
        Entry::new(at(ms), Kind::Refused(refusal::Kind::Banned), "banned").ip(ip)
    }

    fn admit(fold: &mut Fold, entry: Entry) -> Vec<Entry> {
        let now = entry.ts;
        let admitted = fold.admit(entry, now);
        admitted.summaries.into_iter().chain(admitted.entry).collect()
    }

    #[test]
    fn a_flood_from_one_subject_is_one_record_and_one_count_per_interval() {
        let mut fold = Fold::new(Duration::from_secs(10), 100);
        let mut written = Vec::new();
        // 100,000 refusals over 25 s: intervals start at 0, 10 s and 20 s.
        for i in 0..100_000 {
            written.extend(admit(&mut fold, banned("127.0.0.2", i / 4)));
        }
        written.extend(fold.flush(at(40_000)));
        let details: Vec<_> = written.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(written.len(), 6, "{details:?}");
        let counted: u64 = written
            .iter()
            .filter_map(|e| e.detail.strip_prefix("repeated ")?.split(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(counted + 3, 100_000, "every refusal is a record or counted in one");
        assert!(written.iter().all(|e| e.ip.as_deref() == Some("127.0.0.2")));
    }

    #[test]
    fn subjects_and_kinds_fold_apart_and_other_kinds_never_fold() {
        let mut fold = Fold::new(Duration::from_secs(10), 100);
        assert_eq!(admit(&mut fold, banned("127.0.0.2", 0)).len(), 1);
        assert_eq!(admit(&mut fold, banned("127.0.0.3", 1)).len(), 1, "another address");
        let other_kind = Entry::new(at(2), Kind::Refused(refusal::Kind::Origin), "origin").ip("127.0.0.2");
        assert_eq!(admit(&mut fold, other_kind).len(), 1, "another kind");
        assert!(admit(&mut fold, banned("127.0.0.2", 3)).is_empty(), "a repeat");
        for _ in 0..3 {
            let ban = Entry::new(at(4), Kind::Ban, "operator ban").ip("127.0.0.2");
            assert_eq!(admit(&mut fold, ban).len(), 1, "operators' records never fold");
        }
        // Nothing repeated but one key: one summary, when the interval ends.
        assert!(fold.flush(at(9_999)).is_empty());
        let summaries = fold.flush(at(10_000));
        assert_eq!(summaries.len(), 1);
        assert!(summaries[0].detail.starts_with("repeated 1 more times"), "{}", summaries[0].detail);
        assert_eq!(admit(&mut fold, banned("127.0.0.2", 10_001)).len(), 1, "a new interval records again");
    }

    #[test]
    fn a_zero_interval_folds_nothing() {
        let mut fold = Fold::new(Duration::ZERO, 100);
        for _ in 0..3 {
            assert_eq!(admit(&mut fold, banned("127.0.0.2", 0)).len(), 1);
        }
        assert!(fold.flush(at(1)).is_empty());
    }

    #[test]
    fn past_its_bound_it_lets_entries_through_instead_of_growing() {
        let mut fold = Fold::new(Duration::from_secs(10), 2);
        for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
            assert_eq!(admit(&mut fold, banned(ip, 0)).len(), 1);
        }
        assert!(admit(&mut fold, banned("127.0.0.2", 1)).is_empty());
        assert_eq!(admit(&mut fold, banned("127.0.0.4", 1)).len(), 1, "not tracked: let through");
        assert_eq!(fold.repeats.len(), 2);
    }
}
