//! Bans: who is banned until when, how a repeat ban grows, and the
//! in-memory list every handshake consults (docs/ARCHITECTURE.md, "Abuse
//! defence"). The durable copy lives behind [`crate::store::BanStore`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Timestamp;
use crate::addr::IpKey;

/// What a ban applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// An address (an IPv6 /64, see [`IpKey`]).
    Ip(IpKey),
    /// A user, by token `sub`.
    User(Box<str>),
}

impl fmt::Display for Subject {
    /// `ip:127.0.0.2`, `ip:::/64`, `user:alice`: the form the CLI and the
    /// store use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "ip:{ip}"),
            Self::User(user) => write!(f, "user:{user}"),
        }
    }
}

impl FromStr for Subject {
    type Err = SubjectError;

    /// `ip:ADDR`, `user:NAME`, or a bare address.
    fn from_str(s: &str) -> Result<Self, SubjectError> {
        if let Some(user) = s.strip_prefix("user:") {
            return crate::auth::check_sub(user).map(|()| Self::User(user.into())).map_err(|_| SubjectError);
        }
        s.strip_prefix("ip:").unwrap_or(s).parse().map(Self::Ip).map_err(|_| SubjectError)
    }
}

/// A ban subject that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a ban subject is ip:ADDRESS (or a bare address) or user:ID")]
pub struct SubjectError;

/// Who imposed a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanSource {
    /// The anomaly score reached `abuse.ban_at`.
    Auto,
    /// An operator (CLI, later the admin API).
    Operator,
}

impl BanSource {
    /// Stable name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Operator => "operator",
        }
    }

    /// The inverse of [`BanSource::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Auto, Self::Operator].into_iter().find(|s| s.as_str() == name)
    }
}

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// Who is banned.
    pub subject: Subject,
    /// When it started.
    pub since: Timestamp,
    /// When it ends; `None` is permanent.
    pub until: Option<Timestamp>,
    /// How many bans in a row this is (1 for the first); the next one lasts
    /// longer (see [`BanTerms`]).
    pub strikes: u32,
    /// Why, for operators: a violation kind or an operator's note. Never
    /// client text.
    pub reason: String,
    /// Who imposed it.
    pub source: BanSource,
}

impl Ban {
    /// Whether the ban is in force at `now`.
    pub fn active(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|until| now < until)
    }

    /// Whether a store that holds `old` for the subject takes `self` in
    /// its place: an operator decides, shorter or not; an automatic ban
    /// never shortens one still in force when it starts (another node's,
    /// or one `palisade ban` wrote, that its writer had not read yet).
    pub fn replaces(&self, old: &Ban) -> bool {
        if self.source == BanSource::Operator || !old.active(self.since) {
            return true;
        }
        match (old.until, self.until) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(old_end), Some(end)) => end > old_end,
        }
    }
}

/// How long automatic bans last: `first`, then ×`factor` for each repeat
/// within `memory` of the previous ban's end, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BanTerms {
    /// The first ban's length.
    pub first: Duration,
    /// Growth per repeat.
    pub factor: u32,
    /// Longest automatic ban.
    pub max: Duration,
    /// How long after a ban ends a new one still counts as a repeat.
    pub memory: Duration,
}

impl BanTerms {
    /// The length of ban number `strikes` (1-based).
    pub fn length(&self, strikes: u32) -> Duration {
        let growth = self.factor.checked_pow(strikes.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first.checked_mul(growth).unwrap_or(self.max).min(self.max)
    }

    /// Whether `ban` still counts for escalation (or is in force) at `now`.
    fn remembers(&self, ban: &Ban, now: Timestamp) -> bool {
        ban.until.is_none_or(|until| now < until.saturating_add(self.memory))
    }
}

/// Every ban in force or remembered, checked on every handshake.
///
/// A read lock on the handshake path; writes (a ban, a lift, a reload from
/// the store) are rare. Bans imposed here stay unsaved until the server
/// says the store has them, and a reload keeps unsaved bans and bans saved
/// after its read of the store began ([`BanList::mark`]), so a reload
/// racing the write never drops a ban that was just imposed.
///
/// It holds at most `max` subjects (`abuse.max_bans`): an attacker with
/// many addresses earns one automatic ban each, and must not grow the
/// list, or the store behind it, without end. Past the bound, an ended
/// ban kept for its strikes goes first, then the automatic ban that ends
/// soonest; an operator's ban in force is never evicted.
#[derive(Debug)]
pub struct BanList {
    bans: RwLock<HashMap<Subject, Entry>>,
    /// Counts [`BanList::saved`] calls: the order of saves and reads.
    saves: AtomicU64,
    max: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    ban: Ban,
    /// `None` until the store holds it; then the save's number.
    saved: Option<u64>,
}

/// Where a read of the store began, among the saves ([`BanList::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark(u64);

impl BanList {
    /// An empty list of at most `max` subjects.
    pub fn new(max: usize) -> Self {
        Self { bans: RwLock::default(), saves: AtomicU64::new(0), max }
    }

    /// The ban in force on `subject` at `now`, if any.
    pub fn active(&self, subject: &Subject, now: Timestamp) -> Option<Ban> {
        self.read().get(subject).map(|e| &e.ban).filter(|b| b.active(now)).cloned()
    }

    /// Bans `subject` automatically for the length its record calls for:
    /// a repeat within `policy.memory` is the next strike. `None` when a ban
    /// is in force already: it is left as it is (never shortened, never
    /// double-counted) and there is nothing new to record or save, so an
    /// attack that goes on while banned yields one ban, not one per score.
    pub fn escalate(&self, subject: Subject, reason: &str, policy: &BanTerms, now: Timestamp) -> Option<Ban> {
        let mut bans = self.write();
        let ban = next_ban(&bans, subject, reason, policy, now)?;
        bans.insert(ban.subject.clone(), Entry { ban: ban.clone(), saved: None });
        trim(&mut bans, self.max, now);
        Some(ban)
    }

    /// The ban [`BanList::escalate`] would impose, without imposing it
    /// (`abuse.dry_run`).
    pub fn propose(&self, subject: Subject, reason: &str, policy: &BanTerms, now: Timestamp) -> Option<Ban> {
        next_ban(&self.read(), subject, reason, policy, now)
    }

    /// Puts `ban` in place of whatever `ban.subject` had (an operator's
    /// ban), unsaved.
    pub fn insert(&self, ban: Ban) {
        let now = ban.since;
        let mut bans = self.write();
        bans.insert(ban.subject.clone(), Entry { ban, saved: None });
        trim(&mut bans, self.max, now);
    }

    /// The store now holds `ban`.
    pub fn saved(&self, ban: &Ban) {
        let mut bans = self.write();
        if let Some(e) = bans.get_mut(&ban.subject).filter(|e| e.ban == *ban) {
            e.saved = Some(self.saves.fetch_add(1, Ordering::AcqRel) + 1);
        }
    }

    /// Taken before reading the store for [`BanList::replace`]: a ban saved
    /// after it may be missing from what the read returns.
    pub fn mark(&self) -> ReadMark {
        ReadMark(self.saves.load(Ordering::Acquire))
    }

    /// Lifts the ban on `subject` and forgets its strikes.
    pub fn lift(&self, subject: &Subject) -> Option<Ban> {
        self.write().remove(subject).map(|e| e.ban)
    }

    /// Replaces the list with `bans` (the store's, read after `mark`),
    /// keeping the bans not saved yet and those saved since `mark`; returns
    /// the bans in force now that were not in force before, whose subjects'
    /// live connections must close.
    pub fn replace(&self, bans: Vec<Ban>, mark: ReadMark, now: Timestamp) -> Vec<Ban> {
        let mut current = self.write();
        let fresh: Vec<Ban> = bans
            .iter()
            .filter(|b| b.active(now) && !current.get(&b.subject).is_some_and(|old| old.ban.active(now)))
            .cloned()
            .collect();
        let mut next: HashMap<Subject, Entry> =
            bans.into_iter().map(|ban| (ban.subject.clone(), Entry { ban, saved: Some(0) })).collect();
        next.extend(current.drain().filter(|(_, e)| e.saved.is_none_or(|at| at > mark.0)));
        trim(&mut next, self.max, now);
        *current = next;
        fresh
    }

    /// Bans in force at `now`, by subject.
    pub fn list(&self, now: Timestamp) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self.read().values().map(|e| &e.ban).filter(|b| b.active(now)).cloned().collect();
        bans.sort_by(|a, b| a.subject.cmp(&b.subject));
        bans
    }

    /// Forgets bans that ended longer than `policy.memory` ago.
    pub fn sweep(&self, policy: &BanTerms, now: Timestamp) {
        self.write().retain(|_, e| policy.remembers(&e.ban, now));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Subject, Entry>> {
        // Every update is one insert or remove, so a panic elsewhere cannot
        // leave the map half-changed.
        self.bans.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Subject, Entry>> {
        self.bans.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Evicts until at most `max` subjects remain (see [`BanList`]); stops
/// when only operators' bans in force are left.
fn trim(bans: &mut HashMap<Subject, Entry>, max: usize, now: Timestamp) {
    while bans.len() > max {
        let victim = bans
            .iter()
            .filter(|(_, e)| e.ban.source == BanSource::Auto || !e.ban.active(now))
            .min_by_key(|(_, e)| (e.ban.active(now), e.ban.until))
            .map(|(subject, _)| subject.clone());
        let Some(victim) = victim else { return };
        bans.remove(&victim);
    }
}

fn next_ban(
    bans: &HashMap<Subject, Entry>,
    subject: Subject,
    reason: &str,
    policy: &BanTerms,
    now: Timestamp,
) -> Option<Ban> {
    let previous = bans.get(&subject).map(|e| &e.ban);
    if previous.is_some_and(|b| b.active(now)) {
        return None;
    }
    let strikes = previous.filter(|b| policy.remembers(b, now)).map_or(0, |b| b.strikes).saturating_add(1);
    Some(Ban {
        subject,
        since: now,
        until: Some(now.saturating_add(policy.length(strikes))),
        strikes,
        reason: reason.to_owned(),
        source: BanSource::Auto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_automatic_ban_never_shortens_one_in_force_and_an_operator_decides() {
        let subject: Subject = "ip:127.0.0.2".parse().unwrap();
        let ban = |source, since: u64, len: Option<u64>| Ban {
            subject: subject.clone(),
            since: Timestamp::from_secs(since),
            until: len.map(|l| Timestamp::from_secs(since + l)),
            strikes: 1,
            reason: String::new(),
            source,
        };
        let permanent = ban(BanSource::Operator, 100, None);
        assert!(!ban(BanSource::Auto, 160, Some(900)).replaces(&permanent));
        assert!(ban(BanSource::Operator, 160, Some(60)).replaces(&permanent), "an operator's ban replaces");
        let hour = ban(BanSource::Auto, 100, Some(3600));
        assert!(!ban(BanSource::Auto, 160, Some(60)).replaces(&hour), "shorter");
        assert!(ban(BanSource::Auto, 160, Some(3600)).replaces(&hour), "longer");
        assert!(ban(BanSource::Auto, 160, None).replaces(&hour), "permanent");
        assert!(ban(BanSource::Auto, 3700, Some(60)).replaces(&hour), "the old one had ended");
    }
    use crate::testkit::T0;

    const MIN: Duration = Duration::from_secs(60);

    fn policy() -> BanTerms {
        BanTerms { first: 15 * MIN, factor: 2, max: 24 * 60 * MIN, memory: 7 * 24 * 60 * MIN }
    }

    fn ip(s: &str) -> Subject {
        s.parse().unwrap()
    }

    #[test]
    fn a_ban_expires_on_time() {
        let list = BanList::new(100);
        let ban = list.escalate(ip("127.0.0.2"), "rate", &policy(), T0).unwrap();
        assert_eq!(ban.until, Some(T0.saturating_add(15 * MIN)));
        assert!(list.active(&ip("127.0.0.2"), T0.saturating_add(15 * MIN - Duration::from_millis(1))).is_some());
        assert!(list.active(&ip("127.0.0.2"), T0.saturating_add(15 * MIN)).is_none());
        assert!(list.active(&ip("127.0.0.3"), T0).is_none());
    }

    #[test]
    fn each_repeat_doubles_up_to_the_cap() {
        let list = BanList::new(100);
        let mut now = T0;
        let mut lengths = Vec::new();
        for _ in 0..10 {
            let ban = list.escalate(ip("127.0.0.2"), "rate", &policy(), now).unwrap();
            let until = ban.until.unwrap();
            lengths.push(now.until(until).as_secs() / 60);
            now = until.saturating_add(MIN);
        }
        assert_eq!(lengths, [15, 30, 60, 120, 240, 480, 960, 1440, 1440, 1440]);
    }

    #[test]
    fn a_ban_in_force_is_not_reissued_extended_or_forgotten() {
        let list = BanList::new(100);
        let first = list.escalate(ip("127.0.0.2"), "rate", &policy(), T0).unwrap();
        // Nothing new while it holds: no second record, no second save.
        assert_eq!(list.escalate(ip("127.0.0.2"), "again", &policy(), T0.saturating_add(MIN)), None);
        assert_eq!(list.propose(ip("127.0.0.2"), "again", &policy(), T0.saturating_add(MIN)), None);
        assert_eq!(list.active(&ip("127.0.0.2"), T0.saturating_add(MIN)), Some(first.clone()));
        // Long after the memory, a new ban is a first strike again.
        let later = first.until.unwrap().saturating_add(policy().memory).saturating_add(MIN);
        list.sweep(&policy(), later);
        assert_eq!(list.escalate(ip("127.0.0.2"), "rate", &policy(), later).unwrap().strikes, 1);
    }

    #[test]
    fn lifting_forgets_strikes_and_replace_reports_new_bans() {
        let list = BanList::new(100);
        list.escalate(ip("127.0.0.2"), "rate", &policy(), T0);
        assert!(list.lift(&ip("127.0.0.2")).is_some());
        assert!(list.active(&ip("127.0.0.2"), T0).is_none());
        assert_eq!(list.escalate(ip("127.0.0.2"), "rate", &policy(), T0).unwrap().strikes, 1);
        let permanent = Ban {
            subject: "user:mallory".parse().unwrap(),
            since: T0,
            until: None,
            strikes: 1,
            reason: "operator".into(),
            source: BanSource::Operator,
        };
        let fresh = list.replace(vec![list.active(&ip("127.0.0.2"), T0).unwrap(), permanent.clone()], list.mark(), T0);
        assert_eq!(fresh, std::slice::from_ref(&permanent), "the IP ban was in force already");
        assert!(list.active(&permanent.subject, T0.saturating_add(1000 * 24 * 60 * MIN)).is_some());
        assert_eq!(list.list(T0).len(), 2);
    }

    #[test]
    fn a_reload_keeps_a_ban_not_saved_yet() {
        let list = BanList::new(100);
        let ban = list.escalate(ip("127.0.0.2"), "rate", &policy(), T0).unwrap();
        // The store read raced the write: it does not have the ban yet.
        assert!(list.replace(Vec::new(), list.mark(), T0).is_empty());
        assert_eq!(list.active(&ip("127.0.0.2"), T0), Some(ban.clone()));
        // Once saved, the store is the truth: a lift there lifts it here.
        list.saved(&ban);
        list.replace(Vec::new(), list.mark(), T0);
        assert_eq!(list.active(&ip("127.0.0.2"), T0), None);
    }

    #[test]
    fn a_reload_keeps_a_ban_saved_after_its_read_began() {
        let list = BanList::new(100);
        let ban = list.escalate(ip("127.0.0.2"), "rate", &policy(), T0).unwrap();
        // The reload marks, then reads the store before the ban is in it;
        // the ban is saved before the reload applies what it read.
        let mark = list.mark();
        list.saved(&ban);
        list.replace(Vec::new(), mark, T0);
        assert_eq!(list.active(&ip("127.0.0.2"), T0), Some(ban), "not dropped by a stale read");
        // The next reload, marked after the save, has the store's word.
        list.replace(Vec::new(), list.mark(), T0);
        assert_eq!(list.active(&ip("127.0.0.2"), T0), None);
    }

    #[test]
    fn the_list_is_bounded_and_evicts_what_ends_soonest_never_an_operators_ban() {
        let list = BanList::new(3);
        let operator = Ban {
            subject: "user:mallory".parse().unwrap(),
            since: T0,
            until: Some(T0.saturating_add(60 * MIN)),
            strikes: 1,
            reason: "operator".into(),
            source: BanSource::Operator,
        };
        list.insert(operator.clone());
        // Ended, kept for its strikes: the first to go.
        let ended = list.escalate(ip("127.0.0.2"), "rate", &policy(), T0.saturating_sub(60 * MIN)).unwrap();
        let later = T0.saturating_add(MIN);
        list.escalate(ip("127.0.0.3"), "rate", &policy(), later);
        list.escalate(ip("127.0.0.4"), "rate", &policy(), T0.saturating_add(2 * MIN));
        assert_eq!(list.propose(ended.subject, "rate", &policy(), later).unwrap().strikes, 1, "forgotten");
        // Then the automatic ban ending soonest, never the operator's.
        list.escalate(ip("127.0.0.5"), "rate", &policy(), T0.saturating_add(3 * MIN));
        assert!(list.active(&ip("127.0.0.3"), later).is_none());
        assert!(list.active(&operator.subject, T0).is_some());
        assert_eq!(list.list(later).len(), 3);
        // A store read larger than the bound is cut the same way.
        let many: Vec<Ban> =
            (10..20).filter_map(|i| list.propose(ip(&format!("127.0.0.{i}")), "r", &policy(), T0)).collect();
        list.replace(many, list.mark(), T0);
        assert_eq!(list.list(T0).len(), 3);
    }

    #[test]
    fn subjects_round_trip_through_text() {
        for text in ["ip:127.0.0.2", "ip:::/64", "user:alice"] {
            assert_eq!(text.parse::<Subject>().unwrap().to_string(), text);
        }
        assert_eq!("127.0.0.2".parse::<Subject>().unwrap(), ip("ip:127.0.0.2"));
        for bad in ["user:", "user:a b", "ip:nope", "host:x"] {
            assert!(bad.parse::<Subject>().is_err(), "{bad}");
        }
    }
}
