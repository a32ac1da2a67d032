//! The guard's scores and what they escalate to (docs/ARCHITECTURE.md,
//! "Abuse defence"): every refusal's weight, a `score` feed's and
//! credential stuffing's, added to the connection's, the user's and the
//! address's decaying scores, and the restriction, disconnect or ban a
//! threshold crossed calls for. The checks that refuse are `mod.rs`'s.

use super::{Ban, Guard, KeyState, Standing, Subject};
use crate::Timestamp;
use crate::addr::IpKey;
use crate::refusal::Kind;

/// What a refusal escalated to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing beyond the refusal.
    None,
    /// A score just reached `abuse.restrict_at`: rates are divided from now
    /// on, until it decays (reported once, when it happens).
    Restrict,
    /// Close the connection with 4008.
    Disconnect,
    /// Ban these subjects: close their live connections with 4003 and
    /// persist the bans.
    Ban(Vec<Ban>),
}

/// A [`Step`], and whether it is enforced or only reported (`dry_run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// What the guard decided.
    pub step: Step,
    /// `false` under `abuse.dry_run`: log and count it, do nothing.
    pub enforced: bool,
}

impl Escalation {
    /// Nothing.
    pub const NONE: Self = Self { step: Step::None, enforced: true };
}

/// The highest anomaly scores at one instant ([`Guard::leaders`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leaders {
    /// Addresses and their scores, highest first.
    pub ips: Vec<(IpKey, f64)>,
    /// Users and their scores, highest first.
    pub users: Vec<(String, f64)>,
}

impl Guard {
    /// Feeds a refusal of `kind` into the scores of the connection (if
    /// there is one yet), the user (if known) and the address, and says
    /// what it escalates to: a ban of the address (and, with
    /// `abuse.ban_users`, the user) at `abuse.ban_at`, else a disconnect at
    /// `abuse.disconnect_at` (which adds the weight of
    /// [`Kind::TooManyViolations`] to the user and the address), else a
    /// restriction at `abuse.restrict_at`.
    pub fn penalize(
        &self,
        standing: Option<&mut Standing>,
        ip: IpKey,
        user: Option<&str>,
        kind: Kind,
        now: Timestamp,
    ) -> Escalation {
        self.add_weight(standing, ip, user, kind, self.settings.weights.get(kind), now)
    }

    /// A `score` threat feed lists `ip` (docs/CONFIG.md, `[threat]`): adds
    /// `weight` to its score on its first request while it is tracked
    /// (never again until it goes idle and is forgotten), and says what
    /// that escalates to; `None` when the weight was added before (the
    /// feed's `hits` count additions, not requests).
    pub fn reputation(&self, ip: IpKey, weight: u32, now: Timestamp) -> Option<Escalation> {
        let (first, _) = self.ips.with(&ip, now, |k| self.idle(k, now), |k| !std::mem::replace(&mut k.reputed, true));
        first.then(|| self.add_weight(None, ip, None, Kind::Banned, weight, now))
    }

    /// Adds `weight` to `ip`'s score for what `kind` names (credential
    /// stuffing: a `login_failure` spread over many names) and says what
    /// that escalates to.
    pub fn add_score(&self, ip: IpKey, kind: Kind, weight: u32, now: Timestamp) -> Escalation {
        self.add_weight(None, ip, None, kind, weight, now)
    }

    fn add_weight(
        &self,
        standing: Option<&mut Standing>,
        ip: IpKey,
        user: Option<&str>,
        kind: Kind,
        weight: u32,
        now: Timestamp,
    ) -> Escalation {
        let s = &self.settings;
        let weight = f64::from(weight);
        if weight == 0.0 {
            return Escalation::NONE;
        }
        let hl = s.score_half_life;
        let add = |k: &mut KeyState| {
            let before = k.score.at(hl, now);
            (before, k.score.add(weight, hl, now))
        };
        let ((ip_before, ip_after), _) = self.ips.with(&ip, now, |k| self.idle(k, now), add);
        let (user_before, user_after) = match user {
            Some(user) => self.users.with(user, now, |k| self.idle(k, now), add).0,
            None => (0.0, 0.0),
        };
        let conn_before = standing.as_ref().map_or(0.0, |st| st.score.at(hl, now));
        let standing = standing.map(|st| st.score.add(weight, hl, now));
        // A disconnect is itself a violation of the user and the address,
        // so a client disconnected again and again ends up banned.
        let conn_after = standing.unwrap_or(0.0);
        let disconnect = standing.is_some() && conn_after.max(user_after) >= s.disconnect_at;
        let (mut ip_after, mut user_after) = (ip_after, user_after);
        if disconnect {
            let extra = f64::from(s.weights.get(Kind::TooManyViolations));
            ip_after = self.ips.with(&ip, now, |k| self.idle(k, now), |k| k.score.add(extra, hl, now)).0;
            if let Some(user) = user {
                user_after = self.users.with(user, now, |k| self.idle(k, now), |k| k.score.add(extra, hl, now)).0;
            }
        }
        let mut bans = Vec::new();
        if ip_after >= s.ban_at {
            bans.extend(self.ban(Subject::Ip(ip), kind, now));
            self.ips.with(&ip, now, |k| self.idle(k, now), |k| k.score.reset());
        }
        if let Some(user) = user.filter(|_| s.ban_users && user_after >= s.ban_at) {
            bans.extend(self.ban(Subject::User(user.into()), kind, now));
            self.users.with(user, now, |k| self.idle(k, now), |k| k.score.reset());
        }
        let step = if !bans.is_empty() {
            Step::Ban(bans)
        } else if disconnect {
            Step::Disconnect
        } else if [(ip_before, ip_after), (user_before, user_after), (conn_before, conn_after)]
            .iter()
            .any(|&(before, after)| before < s.restrict_at && after >= s.restrict_at)
        {
            Step::Restrict
        } else {
            Step::None
        };
        Escalation { step, enforced: !s.dry_run }
    }

    /// The `n` addresses and the `n` users with the highest anomaly scores
    /// at `now`, highest first (the dashboard's leaders; a read, for an
    /// operator, that locks one table shard at a time).
    pub fn leaders(&self, n: usize, now: Timestamp) -> Leaders {
        let half_life = self.settings.score_half_life;
        let score = |k: &KeyState| k.score.at(half_life, now);
        Leaders { ips: self.ips.top(n, score), users: self.users.top(n, score) }
    }

    /// The automatic ban of `subject`, `None` while one is in force.
    fn ban(&self, subject: Subject, kind: Kind, now: Timestamp) -> Option<Ban> {
        let reason = format!("score reached abuse.ban_at ({kind})");
        let terms = &self.settings.ban_terms;
        if self.settings.dry_run {
            self.bans.propose(subject, &reason, terms, now)
        } else {
            self.bans.escalate(subject, &reason, terms, now)
        }
    }
}
