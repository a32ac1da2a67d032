//! A config reload of `[threat]` and `[geo]` (SIGHUP, `POST /api/reload`):
//! the new settings were checked whole by the caller; this swaps them in.
//! A feed the reload keeps (same name and source) keeps its list and
//! status, so a reload opens no gap; a new or moved feed starts empty and
//! is loaded right away, as every feed is when the refresh tasks start
//! again.

use std::sync::Arc;

use palisade_core::threat::{FeedList, Threats};
use tracing::info;

use super::{FeedSet, ThreatFeeds, Trackers, geo::GeoDb};
use crate::config::ThreatSettings;

impl ThreatFeeds {
    /// Swaps in `settings` (blocking: a new geo database is read here).
    pub(crate) fn reload(&self, settings: &ThreatSettings) {
        let old = self.set.load_full();
        let kept = |name: &str| {
            let new = settings.feeds.iter().find(|f| f.name == name)?;
            old.settings.feeds.iter().position(|f| f.name == name && f.source == new.source)
        };
        let status = settings
            .feeds
            .iter()
            .map(|f| kept(&f.name).and_then(|i| old.status.get(i)).map_or_else(Arc::default, Arc::clone));
        let set = Arc::new(FeedSet { settings: settings.clone(), status: status.collect() });
        // The set first: a load of the old set finishing now installs
        // nothing (`refresh::install`).
        self.set.store(Arc::clone(&set));
        self.threats.rcu(|t| {
            let feeds = settings
                .feeds
                .iter()
                .map(|f| {
                    let table = kept(&f.name)
                        .and_then(|_| t.feeds.iter().find(|old| old.name == f.name))
                        .map(|old| Arc::clone(&old.table))
                        .unwrap_or_default();
                    FeedList { name: f.name.clone(), action: f.action, weight: f.weight, table }
                })
                .collect();
            Threats { feeds, allow: Arc::new(settings.allow.clone()) }
        });
        let geo = self.geo.load_full();
        match (&settings.geo, geo) {
            (None, _) => self.geo.store(None),
            (Some(new), Some(db)) if db.reads(&new.database) => db.retune(new),
            (Some(new), previous) => self.geo.store(Some(Arc::new(GeoDb::open(new, previous.as_deref())))),
        }
        if settings.stuffing != old.settings.stuffing || settings.spray != old.settings.spray {
            self.trackers.store(Arc::new(Trackers::new(settings)));
        }
        info!(feeds = settings.feeds.len(), geo = settings.geo.is_some(), "threat feeds and geo rules reloaded");
        self.reloaded.notify_one();
    }
}
