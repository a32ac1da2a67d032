//! Geo rules at work (docs/OPERATIONS.md, "Geo rules"): the operator's
//! MaxMind-format country database, read whole into memory and swapped
//! for a new copy when the file changes; a failed read keeps the copy in
//! force. A config reload swaps the rules in, or opens another file. What
//! a country means is `palisade_core::threat::geo`'s.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};
use maxminddb::{Reader, geoip2};
use palisade_core::refusal::Refusal;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::config::GeoSettings;

/// The file's size and modification time when last read.
type Stamp = (u64, Option<SystemTime>);

#[derive(Debug)]
pub(super) struct GeoDb {
    /// Its `database` never changes: another file is another `GeoDb`.
    settings: ArcSwap<GeoSettings>,
    reader: ArcSwapOption<Reader<Vec<u8>>>,
    stamp: Mutex<Option<Stamp>>,
    last_error: Mutex<Option<String>>,
    refused: AtomicU64,
}

impl GeoDb {
    /// Reads the database now (a failure is logged; until a read
    /// succeeds, every address counts as unknown, or, on a reload that
    /// names another file, `previous`'s copy stays in force).
    pub(super) fn open(settings: &GeoSettings, previous: Option<&Self>) -> Self {
        let db = Self {
            settings: ArcSwap::from_pointee(settings.clone()),
            reader: ArcSwapOption::new(previous.and_then(|p| p.reader.load_full())),
            stamp: Mutex::new(None),
            last_error: Mutex::new(None),
            refused: AtomicU64::new(0),
        };
        db.reload();
        db
    }

    pub(super) fn refresh(&self) -> std::time::Duration {
        self.settings.load().refresh
    }

    /// Whether it reads `path`.
    pub(super) fn reads(&self, path: &std::path::Path) -> bool {
        self.settings.load().database == path
    }

    /// New rules and refresh for the same file (a config reload).
    pub(super) fn retune(&self, settings: &GeoSettings) {
        self.settings.store(Arc::new(settings.clone()));
    }

    /// Reads the file again if its size or modification time changed.
    pub(super) fn reload(&self) {
        let settings = self.settings.load();
        let path = &settings.database;
        let stamp = std::fs::metadata(path).map(|m| (m.len(), m.modified().ok()));
        let Ok(mut last) = self.stamp.lock() else { return };
        let result = match stamp {
            Ok(stamp) if *last == Some(stamp) => return,
            Ok(stamp) => Reader::open_readfile(path).map(|r| (r, stamp)).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok((reader, stamp)) => {
                info!(database = %path.display(), kind = %reader.metadata().database_type, "geo database loaded");
                self.reader.store(Some(Arc::new(reader)));
                *last = Some(stamp);
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
            }
            Err(error) => {
                warn!(database = %path.display(), %error, "geo database not loaded; the copy in force stays");
                metrics::counter!("palisade_geo_load_failures_total").increment(1);
                if let Ok(mut e) = self.last_error.lock() {
                    *e = Some(error);
                }
            }
        }
    }

    /// The ISO code of `addr`'s country, if the database places it.
    pub(super) fn country(&self, addr: IpAddr) -> Option<String> {
        let reader = self.reader.load();
        let found = reader.as_ref()?.lookup(addr).ok()?;
        let record: geoip2::Country<'_> = found.decode().ok()??;
        record.country.iso_code.or(record.registered_country.iso_code).map(str::to_owned)
    }

    /// The refusal of an address in `country` (looked up with
    /// [`GeoDb::country`]), if the rules refuse it.
    pub(super) fn judge(&self, country: Option<&str>) -> Option<Refusal> {
        let refusal = self.settings.load().rules.judge(country)?;
        self.refused.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("palisade_geo_refused_total").increment(1);
        Some(refusal)
    }

    pub(super) fn detail(&self) -> Value {
        let settings = self.settings.load();
        let rules = &settings.rules;
        json!({
            "database": settings.database.display().to_string(),
            "loaded": self.reader.load().is_some(),
            "last_error": self.last_error.lock().ok().and_then(|e| e.clone()),
            "allow_countries": rules.allow,
            "deny_countries": rules.deny,
            "unknown": match rules.unknown {
                palisade_core::threat::geo::Unknown::Allow => "allow",
                palisade_core::threat::geo::Unknown::Deny => "deny",
            },
            "refused": self.refused.load(Ordering::Relaxed),
        })
    }
}
