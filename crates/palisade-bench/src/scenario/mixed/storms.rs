//! The two hostile kinds that attack the abuse guard's memory of an address
//! rather than one connection: reconnect storms and ban cycling. Each
//! comes from addresses of its own outside 127.0.0.x
//! ([`Target::outside_source`]), so the 429s, 403s and bans it earns never
//! fall on an honest client.

use std::sync::atomic::Ordering;
use std::time::Duration;

use palisade_client::{ClientError, Stream};
use tokio::time::Instant;

use super::{KINDS, Read, Tally, close_code, read_text, send_text};
use crate::target::Target;

/// The storm's and the ban cycler's pace: this many times the hostile
/// rate. Both go "as fast as the server lets them", but a generator
/// sharing two cores with the server would otherwise measure its own
/// spinning; the bound also keeps a round's sockets (and the TIME_WAITs
/// they leave) countable.
const SPEEDUP: u32 = 10;
/// Addresses a reconnect storm spreads over (127.1.client.1 to .4).
const STORM_SOURCES: usize = 4;
const STORM_RANGE: u8 = 1;
/// The ban cyclers' range: 127.2.client.1.
const BAN_RANGE: u8 = 2;
/// How often a banned cycler knocks to learn that its ban is over: a
/// banned address's handshakes are refused before its connect rate is
/// counted, so knocking does not lengthen the ban.
const BAN_POLL: Duration = Duration::from_millis(250);
/// The frame the ban cycler floods with: malformed JSON, a protocol
/// error the guard weighs heavily (3 with the defaults).
const MALFORMED: &str = "{\"type\":\"send\",\"id\":\"1\",";

fn gap(per_sec: u32) -> Duration {
    Duration::from_secs(1) / per_sec.saturating_mul(SPEEDUP).max(1)
}

/// Reconnect storm: opens and drops connections until `deadline`, at most
/// `SPEEDUP` × `per_sec` a second, in turn from its [`STORM_SOURCES`]
/// addresses, counting the refusals (429 over `abuse.connect_rate`, then
/// 403 once the refusals have banned the address).
pub(super) async fn storm(target: &Target, kind: usize, user: &str, per_sec: u32, deadline: Instant, tally: &Tally) {
    let client = kind / KINDS;
    let gap = gap(per_sec);
    let mut opts = target.options(user, 0);
    for attempt in 0.. {
        let next = Instant::now() + gap;
        if next > deadline {
            return;
        }
        opts.bind = target.outside_source(STORM_RANGE, client, attempt % STORM_SOURCES);
        tally.attacks.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout_at(deadline, palisade_client::open(&opts)).await {
            Err(_) => return,
            // Dropped without a close frame: the storm does not wait for
            // anything the server would send.
            Ok(Ok(_dropped)) => {
                tally.storm_accepted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(ClientError::Refused { status, .. })) => tally.refusal(kind, format_args!("http_{status}")),
            Ok(Err(_)) => tally.refusal(kind, "failed"),
        }
        tokio::time::sleep_until(next).await;
    }
}

/// Ban cycling: floods malformed JSON from one address of its own until
/// the guard bans the address (4003 on the connection, or 403 on the next
/// handshake), knocks every [`BAN_POLL`] until the ban is over, and does
/// it again, until `deadline`. Records each ban it provoked, how long
/// provoking it took and how long it kept the cycler out. A 403 on its
/// first handshake is a ban left from an earlier run: waited out, not
/// counted.
pub(super) async fn ban_cycle(
    target: &Target,
    kind: usize,
    user: &str,
    per_sec: u32,
    deadline: Instant,
    tally: &Tally,
) {
    let client = kind / KINDS;
    let gap = gap(per_sec);
    let mut opts = target.options(user, 0);
    opts.bind = target.outside_source(BAN_RANGE, client, 0);
    // Since when the cycler has been provoking (`None` while banned or
    // before its first admission), and since when it has been banned.
    let (mut provoking, mut banned): (Option<Instant>, Option<Instant>) = (None, None);
    while Instant::now() < deadline {
        // Every handshake is an attack, knocks on a ban included.
        tally.attacks.fetch_add(1, Ordering::Relaxed);
        let wait = match tokio::time::timeout_at(deadline, palisade_client::open(&opts)).await {
            Err(_) => return,
            Ok(Ok(mut ws)) => {
                if let Some(at) = banned.take() {
                    Tally::record(&tally.ban_length, at.elapsed());
                }
                let since = *provoking.get_or_insert_with(Instant::now);
                match flood(&mut ws, kind, gap, deadline, tally).await {
                    Some(4003) => {
                        Tally::record(&tally.time_to_ban, since.elapsed());
                        tally.bans.fetch_add(1, Ordering::Relaxed);
                        (provoking, banned) = (None, Some(Instant::now()));
                        BAN_POLL
                    }
                    _ => gap,
                }
            }
            Ok(Err(ClientError::Refused { status, .. })) => {
                tally.refusal(kind, format_args!("http_{status}"));
                if status == 403 {
                    // Banned by the score this cycler's last connection
                    // left (its close was 4008, not 4003).
                    if let Some(since) = provoking.take() {
                        Tally::record(&tally.time_to_ban, since.elapsed());
                        tally.bans.fetch_add(1, Ordering::Relaxed);
                        banned = Some(Instant::now());
                    }
                    BAN_POLL
                } else {
                    gap
                }
            }
            Ok(Err(_)) => gap,
        };
        tokio::time::sleep(wait).await;
    }
}

/// Sends malformed frames on `ws`, one per `gap`, each after the answer to
/// the last, until the server closes it; returns the close code.
async fn flood(ws: &mut Stream, kind: usize, gap: Duration, deadline: Instant, tally: &Tally) -> Option<u16> {
    // The welcome comes first.
    match read_text(ws, deadline).await {
        Read::Text(_) => {}
        Read::Closed(code) => return code,
        Read::Deadline => return None,
    }
    while Instant::now() < deadline {
        tally.attacks.fetch_add(1, Ordering::Relaxed);
        if !send_text(ws, MALFORMED.to_owned()).await {
            return None;
        }
        match read_text(ws, deadline).await {
            Read::Text(_) => tally.refused.fetch_add(1, Ordering::Relaxed),
            Read::Closed(code) => {
                tally.refusal(kind, close_code(code));
                return code;
            }
            Read::Deadline => return None,
        };
        tokio::time::sleep(gap).await;
    }
    None
}
