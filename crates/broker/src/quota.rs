//! Client quotas: Kafka's `ClientQuotaManager` for the produce and fetch byte rates.
//!
//! ```text
//!  metadata image ──(publisher task: update)──► ClientQuotaManager { active, quotas, sensors }
//!                                                      ▲
//!  Produce handler: request bytes ─► record(Produce, client id, bytes, now) ─► throttle ms
//!  Fetch handler:  response bytes ─► record(Fetch, …)                         │
//!                                                                             ▼
//!                       response.throttle_time_ms = ms;  connection Mute: the reader takes
//!                       no further request from this connection for ms (KIP-219)
//! ```
//!
//! The quotas come from the metadata log (AlterClientQuotas; `ClientQuotaRecord`), so every
//! broker applies the same ones and a change takes effect as soon as the image carrying it
//! is applied. Each broker enforces them on its own traffic, as Kafka does.
//!
//! Which quota applies to a request is Kafka's precedence for the (user, client id) pair, the
//! user being the principal (always `ANONYMOUS`: gregor has no authentication yet):
//!
//! ```text
//!  /config/users/<user>/clients/<client-id>      /config/users/<default>/clients/<client-id>
//!  /config/users/<user>/clients/<default>        /config/users/<default>/clients/<default>
//!  /config/users/<user>                          /config/users/<default>
//!                                                /config/clients/<client-id>
//!                                                /config/clients/<default>
//! ```
//!
//! The first entity (left column top to bottom, then the right one) with the key set gives
//! the quota, and the level decides who shares a rate sensor: a user-level quota is shared by
//! all the user's client ids, a client-id level one (named or default) is per client id.
//!
//! The rate is Kafka's `Rate` over a `SampledStat`: `quota.window.num` samples of
//! `quota.window.size.seconds` each; the rate is the sum of the samples over the time they
//! span, counted as at least `num - 1` whole windows (so a new client may send a burst of
//! `(num - 1) × window × quota` before it is throttled, as in Kafka). Over the quota, the
//! throttle time is `(rate - quota) / quota × window span`: the time the client must stay
//! silent for the rate to come back to the quota.
//!
//! With no quota configured, [`ClientQuotaManager::is_active`] is one relaxed atomic load and
//! the handlers skip everything else.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gregor_metadata::{ClientQuotaEntity, ClientQuotasImage, QuotaEntityName};

/// The principal of every connection until gregor authenticates clients (Kafka's
/// `KafkaPrincipal.ANONYMOUS`).
pub const ANONYMOUS: &str = "ANONYMOUS";

/// Kafka's `quota.window.num` default.
pub const DEFAULT_QUOTA_WINDOW_NUM: u32 = 11;
/// Kafka's `quota.window.size.seconds` default.
pub const DEFAULT_QUOTA_WINDOW_SIZE_SECONDS: u32 = 1;

/// Sensors not recorded into for this long are dropped (Kafka's inactive sensor expiry).
const SENSOR_EXPIRY_MS: i64 = 3_600_000;

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaType {
    /// Bytes of Produce requests (`producer_byte_rate`).
    Produce,
    /// Bytes of Fetch responses to consumers (`consumer_byte_rate`).
    Fetch,
}

impl QuotaType {
    /// The quota key of this type.
    pub fn key(self) -> &'static str {
        match self {
            QuotaType::Produce => "producer_byte_rate",
            QuotaType::Fetch => "consumer_byte_rate",
        }
    }
}

/// `quota.window.num` × `quota.window.size.seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindow {
    pub samples: u32,
    pub window_ms: i64,
}

impl Default for QuotaWindow {
    fn default() -> QuotaWindow {
        QuotaWindow {
            samples: DEFAULT_QUOTA_WINDOW_NUM,
            window_ms: i64::from(DEFAULT_QUOTA_WINDOW_SIZE_SECONDS) * 1000,
        }
    }
}

/// One sample of a [`Rate`]: what was recorded since `start_ms`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: i64,
    value: f64,
}

/// A rate over a sliding window of samples (Kafka's `Rate` on a `SampledStat`). No clock of
/// its own: every call takes the time.
#[derive(Debug, Clone)]
pub struct Rate {
    window: QuotaWindow,
    /// Oldest first; at most `window.samples`.
    samples: VecDeque<Sample>,
    last_record_ms: i64,
}

impl Rate {
    pub fn new(window: QuotaWindow) -> Rate {
        Rate {
            window: QuotaWindow {
                samples: window.samples.max(2),
                window_ms: window.window_ms.max(1),
            },
            samples: VecDeque::new(),
            last_record_ms: i64::MIN,
        }
    }

    /// Adds `value` at `now_ms`: to the current sample, or to a new one when the current one
    /// is a whole window old.
    pub fn record(&mut self, value: f64, now_ms: i64) {
        self.purge(now_ms);
        self.last_record_ms = now_ms;
        match self.samples.back_mut() {
            Some(s) if now_ms - s.start_ms < self.window.window_ms => s.value += value,
            _ => {
                if self.samples.len() >= self.window.samples as usize {
                    self.samples.pop_front();
                }
                self.samples.push_back(Sample {
                    start_ms: now_ms,
                    value,
                });
            }
        }
    }

    /// Drops the samples that ended before the window span (Kafka's `purgeObsoleteSamples`).
    fn purge(&mut self, now_ms: i64) {
        let span = i64::from(self.window.samples) * self.window.window_ms;
        while self
            .samples
            .front()
            .is_some_and(|s| now_ms - s.start_ms >= span)
        {
            self.samples.pop_front();
        }
    }

    /// The time the samples span, counted as at least `samples - 1` whole windows (Kafka's
    /// `Rate.windowSize`), in ms.
    fn window_span_ms(&self, now_ms: i64) -> i64 {
        let oldest = self.samples.front().map_or(now_ms, |s| s.start_ms);
        let mut elapsed = (now_ms - oldest).max(0);
        let full = elapsed / self.window.window_ms;
        let min_full = i64::from(self.window.samples) - 1;
        if full < min_full {
            elapsed += (min_full - full) * self.window.window_ms;
        }
        elapsed
    }

    /// Units per second at `now_ms`.
    pub fn measure(&mut self, now_ms: i64) -> f64 {
        self.purge(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (self.window_span_ms(now_ms) as f64 / 1000.0)
    }

    /// How long (ms) the recorder must stay silent for the rate to fall to `quota` per second
    /// (Kafka's `QuotaUtils.throttleTime`); 0 when within it.
    pub fn throttle_time_ms(&mut self, quota: f64, now_ms: i64) -> u64 {
        let rate = self.measure(now_ms);
        if quota <= 0.0 || rate <= quota {
            return 0;
        }
        let ms = (rate - quota) / quota * self.window_span_ms(now_ms) as f64;
        // Saturating: a quota of a byte a second against gigabytes gives an absurd time, not
        // an overflow.
        ms.round().min(i32::MAX as f64) as u64
    }
}

/// Who shares a rate sensor (Kafka's quota metric tags): `("", client)` for a client-id level
/// quota, `(user, "")` for a user level one, `(user, client)` for both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SensorKey {
    pub user: String,
    pub client_id: String,
}

/// The quota that applies to `(user, client_id)` for `key`, and who shares its sensor, in
/// Kafka's precedence (module docs). `None` when no entity sets the key.
pub fn resolve(
    quotas: &ClientQuotasImage,
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<(f64, SensorKey)> {
    let named = |n: &str| Some(QuotaEntityName::Named(n.to_string()));
    let default = || Some(QuotaEntityName::Default);
    // (entity, does the sensor carry the user, does it carry the client id)
    let levels = [
        (named(user), named(client_id), true, true),
        (named(user), default(), true, true),
        (named(user), None, true, false),
        (default(), named(client_id), true, true),
        (default(), default(), true, true),
        (default(), None, true, false),
        (None, named(client_id), false, true),
        (None, default(), false, true),
    ];
    levels.into_iter().find_map(|(u, c, by_user, by_client)| {
        let entity = ClientQuotaEntity {
            user: u,
            client_id: c,
            ip: None,
        };
        let quota = quotas.quota(&entity, key)?;
        Some((
            quota,
            SensorKey {
                user: if by_user {
                    user.to_string()
                } else {
                    String::new()
                },
                client_id: if by_client {
                    client_id.to_string()
                } else {
                    String::new()
                },
            },
        ))
    })
}

struct State {
    quotas: Arc<ClientQuotasImage>,
    sensors: HashMap<(QuotaType, SensorKey), Rate>,
    last_expiry_ms: i64,
}

/// The broker's client quota manager: the quotas of the applied image and a rate sensor per
/// quota entity that recorded something.
pub struct ClientQuotaManager {
    window: QuotaWindow,
    /// Some quota is configured: the only thing the hot path reads when none is.
    active: AtomicBool,
    /// One lock, taken only while quotas are configured, per produce or fetch.
    state: Mutex<State>,
}

impl std::fmt::Debug for ClientQuotaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientQuotaManager")
            .field("window", &self.window)
            .field("active", &self.is_active())
            .finish_non_exhaustive()
    }
}

impl ClientQuotaManager {
    pub fn new(window: QuotaWindow) -> ClientQuotaManager {
        ClientQuotaManager {
            window,
            active: AtomicBool::new(false),
            state: Mutex::new(State {
                quotas: Arc::new(ClientQuotasImage::default()),
                sensors: HashMap::new(),
                last_expiry_ms: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it (a map of rates).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether any quota is configured; when not, handlers need not call [`Self::record`].
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Takes the quotas of a newly applied image (cheap when they did not change).
    pub fn update(&self, quotas: &Arc<ClientQuotasImage>) {
        let mut state = self.state();
        if Arc::ptr_eq(&state.quotas, quotas) {
            return;
        }
        state.quotas = Arc::clone(quotas);
        // The `ip` entities' connection creation rates are the acceptor's, not the handlers'.
        let active = quotas.entities().any(|(e, _)| e.ip.is_none());
        if !active {
            state.sensors.clear();
        }
        self.active.store(active, Ordering::Relaxed);
    }

    /// Records `bytes` of `quota_type` traffic for `user` (the connection's principal) and
    /// `client_id` at `now_ms` and returns how long (ms) the client must be throttled: 0
    /// without a quota or within it.
    pub fn record(
        &self,
        quota_type: QuotaType,
        user: &str,
        client_id: Option<&str>,
        bytes: usize,
        now_ms: i64,
    ) -> u64 {
        if !self.is_active() {
            return 0;
        }
        let client_id = client_id.unwrap_or("");
        let mut state = self.state();
        let Some((quota, key)) = resolve(&state.quotas, user, client_id, quota_type.key()) else {
            return 0;
        };
        // Sweep idle sensors about once a minute.
        if now_ms - state.last_expiry_ms >= SENSOR_EXPIRY_MS / 60 {
            state.last_expiry_ms = now_ms;
            state
                .sensors
                .retain(|_, rate| now_ms - rate.last_record_ms < SENSOR_EXPIRY_MS);
        }
        let window = self.window;
        let rate = state
            .sensors
            .entry((quota_type, key))
            .or_insert_with(|| Rate::new(window));
        rate.record(bytes as f64, now_ms);
        rate.throttle_time_ms(quota, now_ms)
    }

    /// The most bytes a fetch may return to `client_id` (Kafka's `getMaxValueInQuotaWindow`:
    /// the quota over `samples - 1` windows), `None` without a fetch quota.
    pub fn max_fetch_bytes(&self, user: &str, client_id: Option<&str>) -> Option<usize> {
        if !self.is_active() {
            return None;
        }
        let state = self.state();
        let (quota, _) = resolve(
            &state.quotas,
            user,
            client_id.unwrap_or(""),
            QuotaType::Fetch.key(),
        )?;
        let span_s = (i64::from(self.window.samples.max(2)) - 1) as f64
            * self.window.window_ms as f64
            / 1000.0;
        Some((quota * span_s).min(usize::MAX as f64) as usize)
    }
}

/// Keeps `manager` on the quotas of every image the broker applies, until the broker stops.
pub async fn follow_images(
    manager: Arc<ClientQuotaManager>,
    mut images: tokio::sync::watch::Receiver<Arc<gregor_metadata::MetadataImage>>,
) {
    loop {
        let quotas = Arc::clone(images.borrow_and_update().client_quotas());
        manager.update(&quotas);
        if images.changed().await.is_err() {
            return;
        }
    }
}

/// A connection's mute: while set, its reader takes no further request (KIP-219: the
/// throttled response goes out at once, then the channel is muted for the throttle time).
/// Shared by the connection and the handlers of its requests.
#[derive(Debug, Clone)]
pub struct Mute {
    inner: Arc<MuteInner>,
}

#[derive(Debug)]
struct MuteInner {
    base: tokio::time::Instant,
    /// Muted until `base` + this many ms (0: not muted).
    until_ms: AtomicU64,
}

impl Default for Mute {
    fn default() -> Mute {
        Mute {
            inner: Arc::new(MuteInner {
                base: tokio::time::Instant::now(),
                until_ms: AtomicU64::new(0),
            }),
        }
    }
}

impl Mute {
    /// Mutes the connection for `ms` from now (extending, never shortening, a mute).
    pub fn mute_for(&self, ms: u64) {
        if ms == 0 {
            return;
        }
        let now = self.inner.base.elapsed().as_millis() as u64;
        self.inner
            .until_ms
            .fetch_max(now.saturating_add(ms), Ordering::Relaxed);
    }

    /// When the mute ends, if the connection is muted now.
    pub fn muted_until(&self) -> Option<tokio::time::Instant> {
        let until = self.inner.until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return None;
        }
        let at = self.inner.base + Duration::from_millis(until);
        (at > tokio::time::Instant::now()).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::controller::alter_client_quota;
    use gregor_metadata::{MetadataDelta, MetadataImage, MetadataProvenance};

    fn entity(user: Option<QuotaEntityName>, client: Option<QuotaEntityName>) -> ClientQuotaEntity {
        ClientQuotaEntity {
            user,
            client_id: client,
            ip: None,
        }
    }

    fn named(n: &str) -> Option<QuotaEntityName> {
        Some(QuotaEntityName::Named(n.into()))
    }

    fn quotas(set: &[(ClientQuotaEntity, f64)]) -> Arc<ClientQuotasImage> {
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        for (e, v) in set {
            delta
                .replay(&alter_client_quota(e, "producer_byte_rate", Some(*v)).expect("valid"))
                .expect("replays");
        }
        Arc::clone(delta.apply(MetadataProvenance::EMPTY).client_quotas())
    }

    #[test]
    fn resolution_follows_kafkas_precedence() {
        let d = || Some(QuotaEntityName::Default);
        // Every level set, each with its own value: removing the winner reveals the next.
        let mut levels = vec![
            (entity(named(ANONYMOUS), named("c")), 1.0),
            (entity(named(ANONYMOUS), d()), 2.0),
            (entity(named(ANONYMOUS), None), 3.0),
            (entity(d(), named("c")), 4.0),
            (entity(d(), d()), 5.0),
            (entity(d(), None), 6.0),
            (entity(None, named("c")), 7.0),
            (entity(None, d()), 8.0),
        ];
        let sensors = [
            (ANONYMOUS, "c"),
            (ANONYMOUS, "c"),
            (ANONYMOUS, ""),
            (ANONYMOUS, "c"),
            (ANONYMOUS, "c"),
            (ANONYMOUS, ""),
            ("", "c"),
            ("", "c"),
        ];
        for (want, (user, client)) in (1..=8).zip(sensors) {
            let q = quotas(&levels);
            let (quota, key) = resolve(&q, ANONYMOUS, "c", "producer_byte_rate").expect("a quota");
            assert_eq!(quota, f64::from(want));
            assert_eq!(
                key,
                SensorKey {
                    user: user.into(),
                    client_id: client.into()
                }
            );
            levels.remove(0);
        }
        assert_eq!(
            resolve(&quotas(&levels), ANONYMOUS, "c", "producer_byte_rate"),
            None
        );
        // Another client id only matches the defaults; another user only the user defaults.
        let q = quotas(&[
            (entity(None, named("c")), 7.0),
            (entity(named("alice"), None), 3.0),
        ]);
        assert_eq!(resolve(&q, ANONYMOUS, "other", "producer_byte_rate"), None);
        assert_eq!(
            resolve(&q, ANONYMOUS, "c", "consumer_byte_rate"),
            None,
            "per key"
        );
    }

    #[test]
    fn rate_counts_at_least_the_full_window_span() {
        let window = QuotaWindow {
            samples: 11,
            window_ms: 1000,
        };
        let mut rate = Rate::new(window);
        rate.record(10_000.0, 0);
        // 10 KB at t=0 over the minimum span of 10 windows: 1 KB/s.
        assert!((rate.measure(0) - 1000.0).abs() < 1e-9);
        // 500 ms into the 11th window: 10.5 s.
        rate.record(11_000.0, 10_500);
        assert!((rate.measure(10_500) - 21_000.0 / 10.5).abs() < 1e-9);
        // Once every sample is older than 11 windows, nothing is left.
        assert_eq!(rate.measure(30_000), 0.0);
    }

    #[test]
    fn throttle_time_brings_the_rate_back_to_the_quota() {
        let window = QuotaWindow {
            samples: 11,
            window_ms: 1000,
        };
        let mut rate = Rate::new(window);
        // 1000 B/s quota; 10 KB in the span is exactly at the quota.
        rate.record(10_000.0, 0);
        assert_eq!(rate.throttle_time_ms(1000.0, 0), 0);
        // 20 KB: twice the quota over a 10 s span, so 10 s of silence.
        rate.record(10_000.0, 0);
        assert_eq!(rate.throttle_time_ms(1000.0, 0), 10_000);
    }

    #[test]
    fn a_producer_held_to_its_throttle_times_sends_at_the_quota() {
        // A client sending 100 KB requests as fast as it may against a 100 KB/s quota,
        // waiting out every throttle time (as the muted connection makes it): over a long
        // run it sends at the quota, after the initial burst of (samples - 1) windows.
        let window = QuotaWindow {
            samples: 11,
            window_ms: 1000,
        };
        let manager = ClientQuotaManager::new(window);
        manager.update(&quotas(&[(entity(None, named("p")), 100_000.0)]));
        assert!(manager.is_active());
        let mut now = 0i64;
        let mut sent = 0usize;
        while now < 120_000 {
            let throttle = manager.record(QuotaType::Produce, ANONYMOUS, Some("p"), 100_000, now);
            sent += 100_000;
            now += 10 + throttle as i64;
        }
        let rate = sent as f64 / (now as f64 / 1000.0);
        let burst = 100_000.0 * 10.0 / (now as f64 / 1000.0);
        assert!(
            rate <= 100_000.0 + burst + 1000.0 && rate >= 95_000.0,
            "{rate} B/s"
        );
        // Another client id has no quota and is never throttled.
        assert_eq!(
            manager.record(QuotaType::Produce, ANONYMOUS, Some("q"), 100_000_000, now),
            0
        );
        // Fetch has no quota here.
        assert_eq!(
            manager.record(QuotaType::Fetch, ANONYMOUS, Some("p"), 100_000_000, now),
            0
        );
        // Removing every quota turns the manager off.
        manager.update(&Arc::new(ClientQuotasImage::default()));
        assert!(!manager.is_active());
        assert_eq!(
            manager.record(QuotaType::Produce, ANONYMOUS, Some("p"), 100_000_000, now),
            0
        );
    }

    #[test]
    fn a_user_quota_holds_the_authenticated_user_only() {
        let manager = ClientQuotaManager::new(QuotaWindow {
            samples: 11,
            window_ms: 1000,
        });
        manager.update(&quotas(&[(entity(named("alice"), None), 1000.0)]));
        // Far over 1000 B/s: alice is throttled, the same client id as another user is not.
        assert!(manager.record(QuotaType::Produce, "alice", Some("c"), 1 << 20, 0) > 0);
        assert_eq!(
            manager.record(QuotaType::Produce, "bob", Some("c"), 1 << 20, 0),
            0
        );
        assert_eq!(
            manager.record(QuotaType::Produce, ANONYMOUS, Some("c"), 1 << 20, 0),
            0
        );
        assert_eq!(
            manager.max_fetch_bytes("alice", Some("c")),
            None,
            "a produce quota"
        );
    }

    #[test]
    fn a_fetch_is_capped_at_the_quota_over_the_window_span() {
        let manager = ClientQuotaManager::new(QuotaWindow {
            samples: 11,
            window_ms: 1000,
        });
        assert_eq!(
            manager.max_fetch_bytes(ANONYMOUS, Some("c")),
            None,
            "no quota at all"
        );
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        let default_client = entity(None, Some(QuotaEntityName::Default));
        delta
            .replay(
                &alter_client_quota(&default_client, "consumer_byte_rate", Some(1000.0))
                    .expect("valid"),
            )
            .expect("replays");
        manager.update(delta.apply(MetadataProvenance::EMPTY).client_quotas());
        // Kafka's getMaxValueInQuotaWindow: quota × (samples - 1) windows.
        assert_eq!(manager.max_fetch_bytes(ANONYMOUS, Some("c")), Some(10_000));
        assert_eq!(manager.max_fetch_bytes(ANONYMOUS, None), Some(10_000));
        // A produce quota does not cap fetches.
        assert_eq!(
            manager.record(QuotaType::Produce, ANONYMOUS, Some("c"), 1 << 30, 0),
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn mute_extends_and_expires() {
        let mute = Mute::default();
        assert!(mute.muted_until().is_none());
        mute.mute_for(100);
        mute.mute_for(50);
        let until = mute.muted_until().expect("muted");
        assert_eq!(
            until - tokio::time::Instant::now(),
            Duration::from_millis(100)
        );
        tokio::time::advance(Duration::from_millis(101)).await;
        assert!(mute.muted_until().is_none());
    }
}

/// Replication throttling (Kafka's `ReplicationQuotaManager`, KIP-73): the rate of the bytes a
/// broker sends to followers of its throttled replicas (the leader side,
/// `leader.replication.throttled.rate`) or fetches for its own throttled replicas (the follower
/// side, `follower.replication.throttled.rate`). A replica is throttled when its topic's
/// `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas` name it
/// on this broker; an in-sync one is never held back, only counted.
#[derive(Debug)]
pub struct ReplicationQuota {
    rate: Mutex<Rate>,
}

impl ReplicationQuota {
    /// A quota measured over `window` (`replication.quota.window.num` ×
    /// `replication.quota.window.size.seconds`).
    pub fn new(window: QuotaWindow) -> ReplicationQuota {
        ReplicationQuota {
            rate: Mutex::new(Rate::new(window)),
        }
    }

    /// Kafka's `isQuotaExceeded`: whether the measured rate is above `bytes_per_second`
    /// (never for the default, unlimited).
    pub fn is_exceeded(&self, bytes_per_second: i64, now_ms: i64) -> bool {
        if bytes_per_second == i64::MAX {
            return false;
        }
        let mut rate = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        rate.measure(now_ms) > bytes_per_second as f64
    }

    /// Counts `bytes` of throttled replicas at `now_ms`.
    pub fn record(&self, bytes: u64, now_ms: i64) {
        if bytes > 0 {
            let mut rate = self.rate.lock().unwrap_or_else(|p| p.into_inner());
            rate.record(bytes as f64, now_ms);
        }
    }
}

/// A broker's two replication quotas.
#[derive(Debug)]
pub struct ReplicationQuotas {
    /// Bytes sent to followers of throttled replicas this broker leads.
    pub leader: ReplicationQuota,
    /// Bytes fetched for throttled replicas this broker follows.
    pub follower: ReplicationQuota,
}

impl ReplicationQuotas {
    /// Both quotas over `window`.
    pub fn new(window: QuotaWindow) -> ReplicationQuotas {
        ReplicationQuotas {
            leader: ReplicationQuota::new(window),
            follower: ReplicationQuota::new(window),
        }
    }
}

#[cfg(test)]
mod replication_quota_tests {
    use super::*;

    /// Unlimited is never exceeded; over the limit (measured over the window, as Kafka's
    /// `Rate`) it is, until enough time passes.
    #[test]
    fn a_replication_quota_is_exceeded_above_its_rate() {
        let q = ReplicationQuota::new(QuotaWindow {
            samples: 11,
            window_ms: 1000,
        });
        q.record(50_000_000, 0);
        assert!(!q.is_exceeded(i64::MAX, 0));
        // 50 MB over at least 10 windows: 5 MB/s.
        assert!(q.is_exceeded(1_000_000, 100));
        assert!(!q.is_exceeded(10_000_000, 100));
        // Eleven seconds later the sample has left the window.
        assert!(!q.is_exceeded(1_000_000, 11_500));
    }
}
