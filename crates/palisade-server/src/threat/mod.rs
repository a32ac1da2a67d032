//! Threat feeds at work (docs/OPERATIONS.md, "Threat feeds"): the lists in
//! force, checked at the handshake and on `/auth/*` right after the ban
//! check, and kept fresh in the background. What a listing means is
//! `palisade_core::threat`'s; this service performs it through the guard
//! and [`Enforcement`], and fetches and re-reads the feeds (`refresh.rs`).
//! A config reload swaps in new feeds and geo rules (`reload.rs`).

mod geo;
mod refresh;
mod reload;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use palisade_core::Timestamp;
use palisade_core::addr::IpKey;
use palisade_core::guard::{Guard, Ticket, Verdict};
use palisade_core::refusal::Kind;
use palisade_core::refusal::Refusal;
use palisade_core::threat::geo::Locale;
use palisade_core::threat::stuffing::{Failing, Fingerprint, PasswordKey, Spraying, Stuffing};
use palisade_core::threat::{self, Action, FeedList, Threats};
use serde_json::{Value, json};
use tracing::warn;

use crate::alerts::Alerts;
use crate::config::{FeedSettings, FeedSource, ThreatSettings};
use crate::enforce::{Enforcement, Knock};

pub(crate) use refresh::run;

/// Addresses a password-spray alert names (the rest are counted).
const ALERT_ADDRESSES: usize = 5;

/// What one feed's last loads left, for `/readyz`, `/api/threat` and the
/// log.
#[derive(Debug, Default, Clone)]
struct FeedState {
    entries: usize,
    malformed: usize,
    dropped: usize,
    /// When the list in force was loaded (Unix ms).
    loaded_at: Option<u64>,
    /// The last load's error, cleared by the next good one.
    last_error: Option<String>,
    failures: u64,
}

#[derive(Debug, Default)]
struct FeedStatus {
    state: std::sync::Mutex<FeedState>,
    hits: AtomicU64,
}

/// The `[threat]` settings in force and what each feed's loads left (in
/// the same order), swapped whole by a reload; a feed a reload keeps
/// (same name and source) keeps its status.
#[derive(Debug)]
struct FeedSet {
    settings: ThreatSettings,
    status: Vec<Arc<FeedStatus>>,
}

impl FeedSet {
    fn new(settings: &ThreatSettings) -> Self {
        Self { settings: settings.clone(), status: settings.feeds.iter().map(|_| Arc::default()).collect() }
    }

    fn feed(&self, i: usize) -> Option<(&FeedSettings, &FeedStatus)> {
        Some((self.settings.feeds.get(i)?, self.status.get(i)?))
    }
}

/// Both credential stuffing trackers, replaced by a reload that changes
/// their settings.
#[derive(Debug)]
struct Trackers {
    /// Failed login names per address.
    stuffing: Stuffing,
    /// Failed login addresses per wrong password.
    spraying: Spraying,
}

impl Trackers {
    fn new(settings: &ThreatSettings) -> Self {
        Self { stuffing: Stuffing::new(settings.stuffing), spraying: Spraying::new(settings.spray) }
    }
}

/// Who asks, and what a check needs to judge and score them.
#[derive(Clone, Copy)]
pub(crate) struct Asking<'a> {
    pub(crate) guard: &'a Guard,
    pub(crate) enforce: &'a Enforcement,
    pub(crate) knock: Knock,
    /// The client's address (a trusted proxy's word for it): feeds list
    /// single IPv6 addresses too, finer than the guard's /64 key.
    pub(crate) client: IpAddr,
    pub(crate) now: Timestamp,
}

/// The feeds in force and what their loads left.
#[derive(Debug)]
pub(crate) struct ThreatFeeds {
    /// Swapped whole on every good load: a lookup never waits for one.
    threats: ArcSwap<Threats>,
    /// The settings in force and the feeds' status.
    set: ArcSwap<FeedSet>,
    /// `abuse.dry_run`: listings are reported, never refused.
    dry_run: bool,
    /// `[geo]`, when a database is set.
    geo: ArcSwapOption<geo::GeoDb>,
    /// `threat.stuffing_*`.
    trackers: ArcSwap<Trackers>,
    /// Keys the passwords' fingerprints; drawn at start, never stored.
    password_key: PasswordKey,
    /// A reload happened: [`run`] restarts the refresh tasks on the new
    /// feeds.
    reloaded: tokio::sync::Notify,
}

impl ThreatFeeds {
    pub(crate) fn new(settings: &ThreatSettings, dry_run: bool) -> Self {
        let feeds = settings
            .feeds
            .iter()
            .map(|f| FeedList { name: f.name.clone(), action: f.action, weight: f.weight, table: Arc::default() })
            .collect();
        let threats = Threats { feeds, allow: Arc::new(settings.allow.clone()) };
        Self {
            threats: ArcSwap::from_pointee(threats),
            set: ArcSwap::from_pointee(FeedSet::new(settings)),
            dry_run,
            geo: ArcSwapOption::new(settings.geo.as_ref().map(|g| Arc::new(geo::GeoDb::open(g, None)))),
            trackers: ArcSwap::from_pointee(Trackers::new(settings)),
            password_key: PasswordKey::random(&mut rand::rng()),
            reloaded: tokio::sync::Notify::new(),
        }
    }

    /// The guard's handshake check, then the feeds' (docs/ARCHITECTURE.md,
    /// "Handshake"): a listed address is refused like a banned one, and its
    /// ticket handed back. The client's [`Locale`] comes back too, looked
    /// up once here for the room rules' countries.
    pub(crate) fn connect(&self, ask: Asking<'_>) -> (Verdict, Option<Ticket>, Locale) {
        let (verdict, ticket) = ask.guard.connect(ask.knock.ip, ask.now);
        match (self.after_ban(verdict, &ask), ticket) {
            ((Verdict::Refuse(r), locale), Some(ticket)) => {
                ask.guard.release(ticket);
                (Verdict::Refuse(r), None, locale)
            }
            ((verdict, locale), ticket) => (verdict, ticket, locale),
        }
    }

    /// The guard's `/auth/*` check, then the feeds'.
    pub(crate) fn request(&self, ask: Asking<'_>) -> Verdict {
        self.after_ban(ask.guard.request(ask.knock.ip, ask.now), &ask).0
    }

    fn after_ban(&self, verdict: Verdict, ask: &Asking<'_>) -> (Verdict, Locale) {
        if matches!(verdict, Verdict::Refuse(_)) {
            return (verdict, Locale::Exempt);
        }
        let (refusal, locale) = self.screen(ask);
        let Some(refusal) = refusal else {
            return (verdict, locale);
        };
        let verdict = match verdict {
            Verdict::Pass if self.dry_run => Verdict::WouldRefuse(refusal),
            Verdict::Pass => Verdict::Refuse(refusal),
            other => other,
        };
        (verdict, locale)
    }

    /// What the allow list, the geo rules and the feeds say of the client:
    /// a refusal, or a `score` listing's weight added (and escalated) on its
    /// first request; and where the client is, for the room rules.
    fn screen(&self, ask: &Asking<'_>) -> (Option<Refusal>, Locale) {
        let Asking { guard, enforce, knock, client, now } = *ask;
        let ip = knock.ip;
        let threats = self.threats.load();
        let geo = self.geo.load();
        if threats.is_empty() && geo.is_none() {
            return (None, Locale::Exempt);
        }
        let verdict = threats.judge(client);
        if matches!(verdict, threat::Verdict::Allowed(_)) {
            return (None, Locale::Exempt);
        }
        let locale = match &*geo {
            Some(geo) => {
                let country = geo.country(client);
                let locale = Locale::of(country.as_deref());
                if let Some(refusal) = geo.judge(country.as_deref()) {
                    return (Some(refusal), locale);
                }
                locale
            }
            None => Locale::Exempt,
        };
        // A hit is what the listing did: a refusal (or, under dry run, a
        // would-be refusal), or a weight added; not every request.
        match &verdict {
            threat::Verdict::Deny { feed, .. } => self.hit(feed),
            threat::Verdict::Score { weight, feeds } => {
                if let Some(escalation) = guard.reputation(ip, *weight, now) {
                    feeds.iter().for_each(|f| self.hit(f));
                    enforce.escalate(escalation, ip, None);
                }
            }
            threat::Verdict::Clear | threat::Verdict::Allowed(_) => {}
        }
        (verdict.refusal(), locale)
    }

    /// What a failed login's password is kept as: its keyed fingerprint,
    /// taken before the password is hashed and dropped.
    pub(crate) fn fingerprint(&self, password: &str) -> Fingerprint {
        self.password_key.fingerprint(password)
    }

    /// A failed login for `name` with the password of `fingerprint`: when
    /// the address has now failed for `threat.stuffing_names` distinct
    /// names, or the password has failed from `threat.stuffing_addresses`
    /// distinct addresses, the addresses involved get
    /// `threat.stuffing_weight` (a `threat.allow` address counts and is
    /// named, but is not scored), an alert is raised and a metric counted.
    pub(crate) fn login_failed(&self, ask: Asking<'_>, alerts: &Alerts, name: &str, password: Fingerprint) {
        let Asking { guard, enforce, knock, client, now } = ask;
        let weight = self.set.load().settings.stuffing_weight;
        let trackers = self.trackers.load();
        let from = Failing { ip: knock.ip, allowed: self.threats.load().allows(client) };
        // No connection of theirs is at hand: a ban closes them all anyway.
        let score = |ip: IpKey| {
            let _ = enforce.escalate(guard.add_score(ip, Kind::LoginFailure, weight, now), ip, None);
        };
        if let Some(stuffed) = trackers.stuffing.failed(from, name, now) {
            let names = stuffed.names;
            metrics::counter!("palisade_credential_stuffing_total", "pattern" => "names").increment(1);
            let allowed = stuffed.score.is_none();
            warn!(ip = %knock.ip, names, allowed, "credential stuffing: failed logins for many names from one address");
            let exempt = if allowed { " (threat.allow: not scored)" } else { "" };
            let summary = format!("credential stuffing from {}: failed logins for {names} names{exempt}", knock.ip);
            alerts.raise(now, "credential_stuffing", "warning", summary);
            stuffed.score.into_iter().for_each(score);
        }
        let Some(sprayed) = trackers.spraying.failed(from, password, now) else { return };
        if let Some(raised) = &sprayed.raised {
            metrics::counter!("palisade_credential_stuffing_total", "pattern" => "password").increment(1);
            let addresses = raised.addresses;
            // Allowed addresses first: the operator's own, worth a look.
            let allowed = raised.allowed.iter().map(|ip| format!("{ip} (threat.allow, not scored)"));
            let scored = sprayed.score.iter().map(ToString::to_string);
            let shown = allowed.chain(scored).take(ALERT_ADDRESSES).collect::<Vec<_>>().join(", ");
            let more = if addresses > ALERT_ADDRESSES { ", …" } else { "" };
            // The addresses, never the password or its fingerprint.
            warn!(addresses, first = %shown, "credential stuffing: one password failing from many addresses");
            let summary =
                format!("credential stuffing: one password failed from {addresses} addresses ({shown}{more})");
            alerts.raise(now, "credential_stuffing", "warning", summary);
        }
        sprayed.score.into_iter().for_each(score);
    }

    fn hit(&self, feed: &str) {
        let set = self.set.load();
        if let Some(status) = set.settings.feeds.iter().position(|f| f.name == feed).and_then(|i| set.status.get(i)) {
            status.hits.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("palisade_threat_feed_hits_total", "feed" => feed.to_owned()).increment(1);
        }
    }

    /// Every feed: its settings and what its loads left (`/api/threat`,
    /// and `/readyz` detail). A URL is shown as its scheme and host only: a
    /// feed URL may carry a key.
    pub(crate) fn detail(&self) -> Value {
        let set = self.set.load();
        let feeds: Vec<Value> = set
            .settings
            .feeds
            .iter()
            .zip(&set.status)
            .map(|(f, s)| {
                let state = s.state.lock().map(|g| g.clone()).unwrap_or_default();
                json!({
                    "name": f.name,
                    "source": source_label(&f.source),
                    "action": match f.action { Action::Deny => "deny", Action::Score => "score" },
                    "weight": f.weight,
                    "refresh_secs": f.refresh.as_secs_f64(),
                    "entries": state.entries,
                    "malformed": state.malformed,
                    "dropped": state.dropped,
                    "loaded_at": state.loaded_at,
                    "last_error": state.last_error,
                    "failures": state.failures,
                    "hits": s.hits.load(Ordering::Relaxed),
                })
            })
            .collect();
        let allow: Vec<String> = set.settings.allow_listed.iter().map(ToString::to_string).collect();
        let geo = self.geo.load().as_deref().map(geo::GeoDb::detail);
        json!({ "feeds": feeds, "allow": allow, "dry_run": self.dry_run, "geo": geo })
    }

    /// Loads every feed once, now (`palisade threat check`).
    pub(crate) async fn load_all(&self) {
        let clock = crate::clock::Clock::start();
        let set = self.set.load_full();
        for i in 0..set.settings.feeds.len() {
            refresh::load(self, &set, i, &mut None, clock).await;
        }
    }

    /// The lists in force.
    pub(crate) fn threats(&self) -> Arc<Threats> {
        self.threats.load_full()
    }

    /// Each feed's last load error, if its last load failed.
    pub(crate) fn errors(&self) -> Vec<Option<String>> {
        self.set.load().status.iter().map(|s| s.state.lock().ok().and_then(|g| g.last_error.clone())).collect()
    }

    /// Whether any feed is configured (else `/readyz` says nothing of them).
    pub(crate) fn configured(&self) -> bool {
        !self.set.load().settings.feeds.is_empty() || self.geo.load().is_some()
    }

    /// The country of `addr` and the geo rules' refusal, when `[geo]` is
    /// on (`palisade threat check`).
    pub(crate) fn geo_of(&self, addr: IpAddr) -> Option<(Option<String>, Option<Refusal>)> {
        let geo = self.geo.load_full()?;
        let country = geo.country(addr);
        let refusal = geo.judge(country.as_deref());
        Some((country, refusal))
    }
}

fn source_label(source: &FeedSource) -> String {
    match source {
        FeedSource::File(path) => path.display().to_string(),
        FeedSource::Url(url) => {
            let after = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            let host = after.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            format!("{scheme}://{host}/…")
        }
    }
}
