//! How often a failed SASL authentication is logged: once per client address and reason per
//! minute, the repeats counted into the next line.
//!
//! ```text
//!  connection: failed authentication ─► admit(ip, reason, now)
//!     first of its (ip, reason) in a minute ─► Log { repeated: repeats of the last minute }
//!     another within the minute            ─► Quiet (counted)
//! ```
//!
//! A follower whose SCRAM credential is missing retries every `replica.fetch.backoff.ms`, so
//! its leader refused it at INFO several times a second, one line per connection. A refusal
//! of another address or with another reason is still logged at once: nothing new is hidden,
//! only the same refusal again. Kafka logs each one; its clients reconnect more slowly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How long the same refusal stays quiet after it was logged.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// The most (address, reason) pairs remembered; past it a refusal is logged as before.
const MAX_ENTRIES: usize = 4096;

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it; `repeated` refusals like it went unlogged since the last line.
    Log { repeated: u64 },
    /// The same refusal was logged less than a [`WINDOW`] ago.
    Quiet,
}

#[derive(Debug)]
struct Window {
    /// When the last line for this pair was logged.
    logged_at: Instant,
    /// Refusals since, not logged.
    repeated: u64,
}

/// The pairs logged in the last window. Pure: the caller gives the time.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    entries: HashMap<(IpAddr, String), Window>,
}

impl RefusalLog {
    pub(crate) fn admit(&mut self, ip: IpAddr, reason: &str, now: Instant) -> Verdict {
        if let Some(w) = self.entries.get_mut(&(ip, reason.to_string())) {
            if now.saturating_duration_since(w.logged_at) < WINDOW {
                w.repeated += 1;
                return Verdict::Quiet;
            }
            let repeated = std::mem::take(&mut w.repeated);
            w.logged_at = now;
            return Verdict::Log { repeated };
        }
        if self.entries.len() >= MAX_ENTRIES {
            // Forget the pairs whose window is over (their repeats are not reported: at most
            // a minute's worth, from addresses that have stopped).
            self.entries
                .retain(|_, w| now.saturating_duration_since(w.logged_at) < WINDOW);
        }
        if self.entries.len() < MAX_ENTRIES {
            self.entries.insert(
                (ip, reason.to_string()),
                Window {
                    logged_at: now,
                    repeated: 0,
                },
            );
        }
        Verdict::Log { repeated: 0 }
    }
}

static REFUSALS: LazyLock<Mutex<RefusalLog>> = LazyLock::new(Mutex::default);

/// [`RefusalLog::admit`] on the process's log, now.
pub(crate) fn admit(ip: IpAddr, reason: &str) -> Verdict {
    REFUSALS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .admit(ip, reason, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn the_same_refusal_is_logged_once_a_minute_with_its_count() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let missing = "invalid credentials with SASL mechanism SCRAM-SHA-512";
        assert_eq!(log.admit(A, missing, t0), Verdict::Log { repeated: 0 });
        // A follower retrying every 100 ms for a minute.
        for i in 1..600 {
            assert_eq!(log.admit(A, missing, at(i * 100)), Verdict::Quiet, "{i}");
        }
        // Another address, another reason: logged at once.
        assert_eq!(
            log.admit(B, missing, at(30_000)),
            Verdict::Log { repeated: 0 }
        );
        assert_eq!(
            log.admit(A, "SASL mechanism PLAIN is not enabled", at(30_000)),
            Verdict::Log { repeated: 0 }
        );
        assert_eq!(log.admit(B, missing, at(30_001)), Verdict::Quiet);
        // The minute is over: the next line says how many went unlogged.
        assert_eq!(
            log.admit(A, missing, at(60_000)),
            Verdict::Log { repeated: 599 }
        );
        assert_eq!(log.admit(A, missing, at(60_100)), Verdict::Quiet);
        assert_eq!(
            log.admit(A, missing, at(200_000)),
            Verdict::Log { repeated: 1 }
        );
    }

    #[test]
    fn a_flood_of_addresses_is_bounded_and_still_logged() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 100) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
            assert_eq!(log.admit(ip, "r", t0), Verdict::Log { repeated: 0 });
        }
        assert_eq!(log.entries.len(), MAX_ENTRIES);
        // Once the window is over, old pairs make room.
        let later = t0 + WINDOW;
        assert_eq!(log.admit(A, "new", later), Verdict::Log { repeated: 0 });
        assert_eq!(log.entries.len(), 1);
    }
}
