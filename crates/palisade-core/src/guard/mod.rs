//! The abuse guard: rate limits, connection caps, anomaly scores and bans
//! (docs/ARCHITECTURE.md, "Abuse defence").
//!
//! Every decision takes `now` and returns what to do; the server performs
//! it. The guard keeps, per address and per user, a [`Gcra`] per rate, a
//! decaying [`Score`] and an open-connection count in one entry of a
//! bounded [`table`](table::Table); per connection, a [`Standing`] the
//! session owns. Refusals feed the scores through [`Guard::penalize`],
//! whatever check produced them, weighted by their [`Kind`].

mod ban;
mod escalate;
mod score;
mod settings;
mod spam;
mod table;
mod waiting;

use std::time::Duration;

pub use ban::{Ban, BanList, BanSource, BanTerms, ReadMark, Subject, SubjectError};
pub use escalate::{Escalation, Leaders, Step};
pub use score::Score;
pub use settings::{GuardSettings, Weights};
pub use spam::SpamRules;
pub use waiting::{Evicted, Full, RequestKind, Seat, WaitList};

// Rates are a leaf of their own (the policy's per-event rates use them
// too); re-exported because the guard's settings are written in them.
pub use crate::rate::{Gcra, Rate};

use crate::Timestamp;
use crate::addr::IpKey;
use crate::refusal::{Kind, Refusal};
use table::{Place, Table};

/// `Retry-After` for a full cap: it frees up when a connection closes,
/// which cannot be predicted, so a short fixed hint keeps clients from
/// hammering.
const CAP_RETRY: Duration = Duration::from_secs(5);

/// A check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Pass,
    /// Refuse with this.
    Refuse(Refusal),
    /// `abuse.dry_run`: this would have been refused; log and count it, and
    /// go on.
    WouldRefuse(Refusal),
}

impl Verdict {
    /// A refusal, or a report of one under `dry_run`.
    fn refuse(refusal: Refusal, dry_run: bool) -> Self {
        if dry_run { Self::WouldRefuse(refusal) } else { Self::Refuse(refusal) }
    }
}

/// One connection's standing with the guard: its own limiters and score.
/// Owned by the connection's session.
#[derive(Debug, Clone)]
pub struct Standing {
    ip: IpKey,
    messages: Gcra,
    control: Gcra,
    score: Score,
    /// Whether the last message check found a score past `restrict_at`.
    restricted: bool,
}

impl Standing {
    /// A fresh connection from `ip`.
    pub fn new(ip: IpKey) -> Self {
        Self { ip, messages: Gcra::default(), control: Gcra::default(), score: Score::default(), restricted: false }
    }

    /// The address the connection counts under.
    pub fn ip(&self) -> IpKey {
        self.ip
    }

    /// Whether its rates are divided (`abuse.restrict_at`), as of its
    /// last message.
    pub fn is_restricted(&self) -> bool {
        self.restricted
    }
}

/// Proof that a connection is counted against its address's cap (from
/// [`Guard::connect`]) and then its user's (from [`Guard::admit`]); hand it
/// back to [`Guard::release`] when the connection ends, or its handshake
/// fails.
#[derive(Debug)]
#[must_use = "a ticket not released keeps its connection counted"]
pub struct Ticket {
    ip: IpKey,
    ip_place: Place,
    user: Option<(String, Place)>,
}

/// A socket of an address counted as waiting for its answer; hand it back
/// to [`Guard::answered`].
#[derive(Debug)]
#[must_use = "a pending socket not handed back keeps its address counted"]
pub struct Pending {
    ip: IpKey,
    place: Place,
}

/// Per-address and per-user state.
#[derive(Debug, Default)]
struct KeyState {
    messages: Gcra,
    connects: Gcra,
    /// HTTP requests other than handshakes (addresses only).
    requests: Gcra,
    score: Score,
    open: u32,
    /// Sockets accepted and not yet answered (addresses only).
    pending: u32,
    /// Per-event limiters (users only), one per declared event with a
    /// `rate` the user has sent: bounded by the policy.
    events: Vec<(Box<str>, Gcra)>,
    /// A `score` threat feed's weight was added (addresses only).
    reputed: bool,
}

/// The guard of one server.
#[derive(Debug)]
pub struct Guard {
    settings: GuardSettings,
    ips: Table<IpKey, KeyState>,
    users: Table<String, KeyState>,
    bans: BanList,
}

impl Guard {
    /// A guard with no state yet.
    pub fn new(settings: GuardSettings) -> Self {
        let max = settings.max_tracked_keys;
        Self { ips: Table::new(max), users: Table::new(max), bans: BanList::new(settings.max_bans), settings }
    }

    /// The settings in force.
    pub fn settings(&self) -> &GuardSettings {
        &self.settings
    }

    /// The bans in force and remembered.
    pub fn bans(&self) -> &BanList {
        &self.bans
    }

    /// A socket was accepted from `ip`, before any byte of its request: may
    /// it wait for its request to be answered? At most
    /// `abuse.max_pending_per_ip` sockets of one address wait at once, so one
    /// client cannot fill `limits.max_pending_handshakes` for everyone. A
    /// `Some` must go back to [`Guard::answered`] when the wait ends.
    pub fn accept(&self, ip: IpKey, now: Timestamp) -> (Verdict, Option<Pending>) {
        let s = &self.settings;
        let (refusal, place) = self.ips.with(
            &ip,
            now,
            |k| self.idle(k, now),
            |k| {
                let refusal = (k.pending >= s.max_pending_per_ip)
                    .then(|| Refusal::new(Kind::TooManyConnections, "address at abuse.max_pending_per_ip"));
                if refusal.is_none() || s.dry_run {
                    k.pending = k.pending.saturating_add(1);
                }
                refusal
            },
        );
        let pending = Pending { ip, place };
        match refusal {
            None => (Verdict::Pass, Some(pending)),
            Some(r) if s.dry_run => (Verdict::WouldRefuse(r), Some(pending)),
            Some(r) => (Verdict::Refuse(r), None),
        }
    }

    /// The socket of `pending` was answered, or went away.
    // By value on purpose: the token is used up, so it cannot be handed back
    // twice (it is not `Clone`).
    #[allow(clippy::needless_pass_by_value)]
    pub fn answered(&self, pending: Pending) {
        let Pending { ip, place } = pending;
        self.ips.with_existing(&ip, place, |k| k.pending = k.pending.saturating_sub(1));
    }

    /// Handshake, first: is the address banned, is it reconnecting faster
    /// than `abuse.connect_rate`, and does it hold
    /// `abuse.max_connections_per_ip` connections already? Unless refused,
    /// the connection is counted against the address (check and count are
    /// one step, so concurrent handshakes cannot overshoot the cap).
    pub fn connect(&self, ip: IpKey, now: Timestamp) -> (Verdict, Option<Ticket>) {
        let s = &self.settings;
        let banned = self.bans.active(&Subject::Ip(ip), now).map(|_| Refusal::new(Kind::Banned, "address banned"));
        if let Some(refusal) = banned.clone().filter(|_| !s.dry_run) {
            return (Verdict::Refuse(refusal), None);
        }
        let rate = self.rate(s.connect_rate, self.ip_restricted(ip, now));
        let (refusal, ip_place) = self.ips.with(
            &ip,
            now,
            |k| self.idle(k, now),
            |k| {
                let refusal = match k.connects.check(rate, now) {
                    Err(wait) => Some(
                        Refusal::new(Kind::RapidReconnect, "connection attempts over abuse.connect_rate")
                            .retry_after(wait),
                    ),
                    Ok(()) if k.open >= s.max_connections_per_ip => Some(
                        Refusal::new(Kind::TooManyConnections, "address at abuse.max_connections_per_ip")
                            .retry_after(CAP_RETRY),
                    ),
                    Ok(()) => None,
                };
                if refusal.is_none() || s.dry_run {
                    k.open = k.open.saturating_add(1);
                }
                refusal
            },
        );
        let ticket = Ticket { ip, ip_place, user: None };
        match banned.or(refusal) {
            None => (Verdict::Pass, Some(ticket)),
            Some(r) if s.dry_run => (Verdict::WouldRefuse(r), Some(ticket)),
            Some(r) => (Verdict::Refuse(r), None),
        }
    }

    /// A plain HTTP request (`/auth/*`): is the address banned, and is it
    /// over `abuse.request_rate`? Every endpoint behind this reads the
    /// store or hashes a password, so one client's loop must not take the
    /// blocking threads and the database from everyone else.
    pub fn request(&self, ip: IpKey, now: Timestamp) -> Verdict {
        let s = &self.settings;
        let banned = self.bans.active(&Subject::Ip(ip), now).map(|_| Refusal::new(Kind::Banned, "address banned"));
        if let Some(refusal) = banned.clone().filter(|_| !s.dry_run) {
            return Verdict::Refuse(refusal);
        }
        let rate = self.rate(s.request_rate, self.ip_restricted(ip, now));
        let (over, _) = self.ips.with(
            &ip,
            now,
            |k| self.idle(k, now),
            |k| {
                k.requests
                    .check(rate, now)
                    .err()
                    .map(|wait| Refusal::new(Kind::RateExcess, "requests over abuse.request_rate").retry_after(wait))
            },
        );
        match banned.or(over) {
            None => Verdict::Pass,
            Some(r) if s.dry_run => Verdict::WouldRefuse(r),
            Some(r) => Verdict::Refuse(r),
        }
    }

    /// Handshake, after the token: is the user banned, and does it hold
    /// `abuse.max_connections_per_user` connections already? Unless
    /// refused, the connection is counted against the user in `ticket`.
    pub fn admit(&self, ticket: &mut Ticket, user: &str, now: Timestamp) -> Verdict {
        let s = &self.settings;
        let banned =
            self.bans.active(&Subject::User(user.into()), now).map(|_| Refusal::new(Kind::Banned, "user banned"));
        if let Some(refusal) = banned.clone().filter(|_| !s.dry_run) {
            return Verdict::Refuse(refusal);
        }
        let (refusal, place) = self.users.with(
            user,
            now,
            |k| self.idle(k, now),
            |k| {
                let refusal = (k.open >= s.max_connections_per_user).then(|| {
                    Refusal::new(Kind::TooManyConnections, "user at abuse.max_connections_per_user")
                        .retry_after(CAP_RETRY)
                });
                if refusal.is_none() || s.dry_run {
                    k.open = k.open.saturating_add(1);
                }
                refusal
            },
        );
        match banned.or(refusal) {
            Some(r) if !s.dry_run => Verdict::Refuse(r),
            refusal => {
                ticket.user = Some((user.to_owned(), place));
                refusal.map_or(Verdict::Pass, Verdict::WouldRefuse)
            }
        }
    }

    /// The connection of `ticket` ended (or its handshake failed).
    pub fn release(&self, ticket: Ticket) {
        let Ticket { ip, ip_place, user } = ticket;
        let close = |k: &mut KeyState| k.open = k.open.saturating_sub(1);
        self.ips.with_existing(&ip, ip_place, close);
        if let Some((user, place)) = user {
            self.users.with_existing(user.as_str(), place, close);
        }
    }

    /// Pipeline step 2: the message rates of the connection, its user and
    /// its address. They are divided while any of the three scores is past
    /// `abuse.restrict_at` (as read at the previous message, so one lookup
    /// per key serves both). A refused message counts against none of the
    /// rates.
    pub fn message(&self, standing: &mut Standing, user: &str, now: Timestamp) -> Verdict {
        let s = &self.settings;
        let hl = s.score_half_life;
        let ip = standing.ip;
        let restricted = standing.restricted;
        let (conn_rate, user_rate, ip_rate) = (
            self.rate(s.connection_rate, restricted),
            self.rate(s.user_rate, restricted),
            self.rate(s.ip_rate, restricted),
        );
        let mut conn = standing.messages;
        let conn_wait = conn.check(conn_rate, now).err();
        let probe = |rate| move |k: &mut KeyState| (k.score.at(hl, now), peek_check(&k.messages, rate, now));
        let ((user_score, user_wait), _) = self.users.with(user, now, |k| self.idle(k, now), probe(user_rate));
        let ((ip_score, ip_wait), _) = self.ips.with(&ip, now, |k| self.idle(k, now), probe(ip_rate));
        standing.restricted = standing.score.at(hl, now).max(user_score).max(ip_score) >= s.restrict_at;
        if let Some(wait) = conn_wait.or(user_wait).or(ip_wait) {
            let refusal = Refusal::new(Kind::RateExcess, "message rate exceeded").retry_after(wait);
            return Verdict::refuse(refusal, s.dry_run);
        }
        // Counted only once all three allowed it.
        standing.messages = conn;
        // A concurrent message may have taken the last token meanwhile; one
        // message over is not worth a second refusal path.
        let count = |rate| {
            move |k: &mut KeyState| {
                let _ = k.messages.check(rate, now);
            }
        };
        self.users.with(user, now, |k| self.idle(k, now), count(user_rate));
        self.ips.with(&ip, now, |k| self.idle(k, now), count(ip_rate));
        Verdict::Pass
    }

    /// Pipeline step 8: the event's own `rate`, per user across their
    /// connections (divided while the sender is `restricted`, as its
    /// standing was at the last step 2).
    pub fn event(&self, restricted: bool, user: &str, event: &str, rate: Rate, now: Timestamp) -> Verdict {
        let rate = self.rate(rate, restricted);
        let (checked, _) = self.users.with(
            user,
            now,
            |k| self.idle(k, now),
            |k| match k.events.iter_mut().find(|(name, _)| **name == *event) {
                Some((_, gcra)) => gcra.check(rate, now),
                None => {
                    let mut gcra = Gcra::default();
                    let checked = gcra.check(rate, now);
                    k.events.push((event.into(), gcra));
                    checked
                }
            },
        );
        match checked {
            Ok(()) => Verdict::Pass,
            Err(wait) => Verdict::refuse(
                Refusal::new(Kind::RateExcess, "event rate exceeded").retry_after(wait),
                self.settings.dry_run,
            ),
        }
    }

    /// A `recover` request: `abuse.recover_rate` per user, counted like an
    /// event's own rate under a name no declared event can have.
    pub fn recover(&self, standing: &Standing, user: &str, now: Timestamp) -> Verdict {
        self.event(standing.restricted, user, "$recover", self.settings.recover_rate, now)
    }

    /// A ping or pong from the client: `abuse.control_rate` per connection.
    pub fn control(&self, standing: &mut Standing, now: Timestamp) -> Verdict {
        let rate = self.rate(self.settings.control_rate, standing.restricted);
        match standing.control.check(rate, now) {
            Ok(()) => Verdict::Pass,
            Err(wait) => Verdict::refuse(
                Refusal::new(Kind::RateExcess, "control frame rate exceeded").retry_after(wait),
                self.settings.dry_run,
            ),
        }
    }

    /// The spam heuristics on the JSON text of an event's `data`.
    pub fn spam(&self, data: &str) -> Verdict {
        match self.settings.spam.check(data) {
            Ok(()) => Verdict::Pass,
            Err(refusal) => Verdict::refuse(refusal, self.settings.dry_run),
        }
    }

    /// Forgets idle keys and long-ended bans; call now and then.
    pub fn sweep(&self, now: Timestamp) {
        self.ips.sweep(|k| self.idle(k, now));
        self.users.sweep(|k| self.idle(k, now));
        self.bans.sweep(&self.settings.ban_terms, now);
    }

    /// Addresses and users tracked now (for the memory bound's tests and
    /// metrics).
    pub fn tracked(&self) -> (usize, usize) {
        (self.ips.len(), self.users.len())
    }

    fn ip_restricted(&self, ip: IpKey, now: Timestamp) -> bool {
        self.ips.peek(&ip, |k| k.score.at(self.settings.score_half_life, now)).unwrap_or(0.0)
            >= self.settings.restrict_at
    }

    fn rate(&self, rate: Rate, restricted: bool) -> Rate {
        if restricted { rate.divided(self.settings.restrict_divisor) } else { rate }
    }

    /// A key whose limiters are full again, whose score has decayed and
    /// which holds no connection: forgetting it changes no decision.
    fn idle(&self, k: &KeyState, now: Timestamp) -> bool {
        k.open == 0
            && k.pending == 0
            && k.messages.idle(now)
            && k.connects.idle(now)
            && k.requests.idle(now)
            && k.score.negligible(self.settings.score_half_life, now)
            && k.events.iter().all(|(_, g)| g.idle(now))
    }
}

/// Whether `gcra` would allow one event now, without counting it.
fn peek_check(gcra: &Gcra, rate: Rate, now: Timestamp) -> Option<Duration> {
    let mut probe = *gcra;
    probe.check(rate, now).err()
}

#[cfg(test)]
mod tests;
