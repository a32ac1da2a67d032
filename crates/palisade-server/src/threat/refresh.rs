//! Keeping the feeds fresh: each is loaded at start and again every
//! `refresh` (a URL fetched with the server's one bounded client,
//! `jwks.rs`; a file re-read when its size or modification time changed).
//! A load that fails, or reads as no address at all, keeps the last good
//! list: logged, counted, and shown in `/readyz` detail. A config reload
//! ends the tasks and starts them again on the new feeds.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use palisade_core::auth::FetchRequest;
use palisade_core::threat::{Parsed, Threats, parse};
use tokio::io::AsyncReadExt as _;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{FeedSet, ThreatFeeds};
use crate::clock::Clock;
use crate::config::FeedSource;
use crate::jwks::FetchError;

/// A file's size and modification time, to skip re-reading it unchanged.
type Stamp = (u64, Option<SystemTime>);

/// Loads every feed now, then each again every `refresh`, until `stop`;
/// after a reload, the new feeds.
pub(crate) async fn run(feeds: Arc<ThreatFeeds>, clock: Clock, stop: CancellationToken) {
    loop {
        let generation = stop.child_token();
        let mut tasks = start(&feeds, clock, &generation);
        tokio::select! {
            () = stop.cancelled() => {}
            () = feeds.reloaded.notified() => {}
        }
        generation.cancel();
        while tasks.join_next().await.is_some() {}
        if stop.is_cancelled() {
            return;
        }
    }
}

/// The tasks of the feeds and geo database in force, until `stop`.
fn start(feeds: &Arc<ThreatFeeds>, clock: Clock, stop: &CancellationToken) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(geo) = feeds.geo.load_full() {
        let stop = stop.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(geo.refresh()) => {}
                    () = stop.cancelled() => break,
                }
                let geo = Arc::clone(&geo);
                // A database is megabytes: read off the workers.
                let _ = tokio::task::spawn_blocking(move || geo.reload()).await;
            }
        });
    }
    let set = feeds.set.load_full();
    for i in 0..set.settings.feeds.len() {
        let (feeds, set, stop) = (Arc::clone(feeds), Arc::clone(&set), stop.clone());
        tasks.spawn(async move {
            let mut stamp = None;
            let Some(every) = set.feed(i).map(|(f, _)| f.refresh) else { return };
            loop {
                tokio::select! {
                    () = load(&feeds, &set, i, &mut stamp, clock) => {}
                    () = stop.cancelled() => break,
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = stop.cancelled() => break,
                }
            }
        });
    }
    tasks
}

/// One load of feed `i`; on success its list is swapped in.
pub(super) async fn load(feeds: &ThreatFeeds, set: &Arc<FeedSet>, i: usize, stamp: &mut Option<Stamp>, clock: Clock) {
    let Some((feed, status)) = set.feed(i) else { return };
    let s = &set.settings;
    let body = match &feed.source {
        FeedSource::Url(url) => {
            let req = FetchRequest {
                issuer: feed.name.clone(),
                url: url.clone(),
                max_bytes: s.max_bytes,
                timeout: s.timeout,
            };
            crate::jwks::fetch(&req).await.map(Some).map_err(|e| describe(&e))
        }
        FeedSource::File(path) => read_changed(path, s.max_bytes, s.timeout, stamp).await,
    };
    let max_entries = s.max_entries;
    let parsed = match body {
        Ok(None) => return,
        Ok(Some(bytes)) => {
            // A million lines take a noticeable while: off the workers.
            let parsed = tokio::task::spawn_blocking(move || parse(&String::from_utf8_lossy(&bytes), max_entries))
                .await
                .map_err(|e| format!("parse task: {e}"));
            parsed.and_then(|p| {
                if p.table.is_empty() && p.malformed > 0 {
                    Err(format!("no line reads as an address ({} malformed)", p.malformed))
                } else {
                    Ok(p)
                }
            })
        }
        Err(e) => Err(e),
    };
    let name = feed.name.as_str();
    match parsed {
        Ok(parsed) => install(feeds, set, i, parsed, clock),
        Err(error) => {
            // The stamp is forgotten so a file fixed in place is read again.
            *stamp = None;
            warn!(feed = name, %error, "threat feed load failed; the last good list stays");
            metrics::counter!("palisade_threat_feed_failures_total", "feed" => name.to_owned()).increment(1);
            if let Ok(mut state) = status.state.lock() {
                state.failures += 1;
                state.last_error = Some(error);
            }
        }
    }
}

fn install(feeds: &ThreatFeeds, set: &Arc<FeedSet>, i: usize, parsed: Parsed, clock: Clock) {
    let Some((feed, status)) = set.feed(i) else { return };
    let name = feed.name.as_str();
    let Parsed { table, malformed, dropped } = parsed;
    let entries = table.len();
    let table = Arc::new(table);
    // Only into the feeds `set` is still in force for: a load that a
    // reload overtook would put back a list the new config no longer
    // reads (another source under the same name).
    let current = || Arc::ptr_eq(&feeds.set.load(), set);
    if !current() {
        return;
    }
    feeds.threats.rcu(|t| if current() { t.with_table(name, Arc::clone(&table)) } else { Threats::clone(t) });
    let now = clock.now().as_millis();
    if let Ok(mut state) = status.state.lock() {
        let failures = state.failures;
        *state = super::FeedState { entries, malformed, dropped, loaded_at: Some(now), last_error: None, failures };
    }
    #[allow(clippy::cast_precision_loss)] // Gauges are f64; counts stay far below 2^53.
    {
        metrics::gauge!("palisade_threat_feed_entries", "feed" => name.to_owned()).set(entries as f64);
        metrics::gauge!("palisade_threat_feed_loaded_seconds", "feed" => name.to_owned()).set(now as f64 / 1000.0);
    }
    info!(feed = name, entries, malformed, dropped, "threat feed loaded");
}

/// The file's bytes when it changed since `stamp` (`None` when not), read
/// within `timeout` and refused past `max_bytes`.
async fn read_changed(
    path: &Path,
    max_bytes: usize,
    timeout: Duration,
    stamp: &mut Option<Stamp>,
) -> Result<Option<Vec<u8>>, String> {
    let read = async {
        let file = tokio::fs::File::open(path).await.map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let meta = file.metadata().await.map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
        let now = (meta.len(), meta.modified().ok());
        if *stamp == Some(now) {
            return Ok(None);
        }
        if meta.len() > max_bytes as u64 {
            return Err(format!("file over threat.max_bytes ({max_bytes})"));
        }
        let mut bytes = Vec::new();
        // One byte past the cap tells a file that grew since the stat.
        file.take(max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if bytes.len() > max_bytes {
            return Err(format!("file over threat.max_bytes ({max_bytes})"));
        }
        *stamp = Some(now);
        Ok(Some(bytes))
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| format!("no read within threat.timeout ({timeout:?})"))?
}

fn describe(e: &FetchError) -> String {
    match e {
        FetchError::TooLarge(n) => format!("body over threat.max_bytes ({n})"),
        FetchError::Timeout(t) => format!("no answer within threat.timeout ({t:?})"),
        other => other.to_string(),
    }
}
