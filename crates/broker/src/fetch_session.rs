//! Incremental fetch sessions (KIP-227, Kafka's `FetchSession.scala`): the broker remembers
//! what a fetcher asked for and what it was last told, so that the fetcher's next request
//! names only the partitions whose position changed and the answer carries only the
//! partitions with something new.
//!
//! ```text
//!  request (session id, epoch)     what it is
//!  ──────────────────────────      ─────────────────────────────────────────────────────────
//!  (0, -1)                         sessionless: answer every partition named, session id 0
//!  (X, -1)                         close session X, then sessionless
//!  (0 or X, 0)                     full: close X if given, answer every partition named, then
//!                                  open a session of them if a slot is free (its id in the
//!                                  answer, its next epoch 1), else answer session id 0
//!  (X, n > 0)                      incremental: X must exist (FETCH_SESSION_ID_NOT_FOUND), n
//!                                  be its epoch (INVALID_FETCH_SESSION_EPOCH) and the topics
//!                                  be named as the session names them, by id from v13 or by
//!                                  name below (FETCH_SESSION_TOPIC_ID_ERROR); the partitions
//!                                  named are added or updated, the forgotten ones removed,
//!                                  and every partition of the session is read. The answer
//!                                  holds only the partitions with records, an error, another
//!                                  high watermark, log start or last stable offset, a
//!                                  preferred read replica or a diverging epoch. A session
//!                                  left with no partition is closed (answer: session id 0).
//! ```
//!
//! A partition whose answer carried records moves to the end of its session, so that under
//! `max_bytes` the others get their turn in the next answers (Kafka's rotation).
//!
//! The cache holds at most `max.incremental.fetch.session.cache.slots` sessions (Kafka's
//! default, 1000). When it is full, a new session takes the slot of one unused for
//! [`EVICTION_MS`]; else a follower's (privileged) session may take the slot of a consumer's,
//! and any session that of a smaller one older than [`EVICTION_MS`] (Kafka's `tryEvict`);
//! else no session is made and the fetcher goes on with full requests. All sessions together
//! hold at most [`MAX_CACHED_PARTITIONS`] partitions: a session that would pass the bound is not
//! made, and one that would grow past it is closed (its answer is sessionless, as when its
//! last partition is forgotten, and the fetcher starts over with a full request).
//!
//! The logic is I/O-free with the time passed in; the Fetch handler calls [`FetchSessions::open`]
//! before the read and [`FetchSessions::create`] or [`FetchSessions::answered`] after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use gregor_protocol::error::ErrorCode;
use indexmap::IndexMap;
use rand::Rng;

/// The session id of no session.
pub const INVALID_SESSION_ID: i32 = 0;
/// The epoch of a full request that may open a session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch of a request that closes its session (or asks for none).
pub const FINAL_EPOCH: i32 = -1;
/// Kafka's `max.incremental.fetch.session.cache.slots` default.
pub const DEFAULT_SLOTS: usize = 1000;
/// Most partitions all sessions together may hold (gregor's bound; Kafka has none): a
/// session that would pass it is not made, or is closed (its fetcher goes back to full
/// requests), so that requests naming millions of partitions cannot pin memory.
pub const MAX_CACHED_PARTITIONS: usize = 1_000_000;
/// How long a session must have gone unused before any new one may take its slot, and how
/// old it must be before a new one may take its slot by size (Kafka's 120,000 ms).
pub const EVICTION_MS: i64 = 120_000;

/// The epoch after `prev` (Kafka's `FetchMetadata.nextEpoch`): it wraps from `i32::MAX` to 1,
/// and the final epoch stays final.
pub fn next_epoch(prev: i32) -> i32 {
    if prev < 0 {
        FINAL_EPOCH
    } else if prev == i32::MAX {
        1
    } else {
        prev + 1
    }
}

/// A partition in a session: its topic as the session names it (by id from v13, the name
/// empty; by name below, the id nil) and its index.
#[derive(Debug, Clone, Eq)]
pub struct SessionKey {
    pub topic: String,
    pub topic_id: uuid::Uuid,
    pub partition: i32,
}

impl SessionKey {
    /// Whether `other` names the same topic (id and name).
    pub fn same_topic(&self, other: &SessionKey) -> bool {
        self.topic_id == other.topic_id && same_name(&self.topic, &other.topic)
    }
}

/// The same as derived equality, cheaper: the index and the id first, and two empty names
/// (every key of a session by id) equal without a call to `memcmp`, which for an empty
/// `String`'s dangling pointer can take a masked vector load that costs a microcode assist
/// (it was a third of a session round's time on this machine).
impl PartialEq for SessionKey {
    fn eq(&self, other: &SessionKey) -> bool {
        self.partition == other.partition && self.same_topic(other)
    }
}

/// Hashes what [`PartialEq`] compares.
impl std::hash::Hash for SessionKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.partition.hash(state);
        self.topic_id.hash(state);
        self.topic.hash(state);
    }
}

/// Two topic names equal, two empty ones without comparing bytes.
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// What the fetcher asks of one partition: the request's fields besides the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    pub log_start_offset: i64,
    pub last_fetched_epoch: i32,
}

/// The offsets an answer told the fetcher about one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
}

/// One partition's answer, as far as the session cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub told: Told,
    /// The answer carries records.
    pub records: bool,
    /// The answer carries an error, a preferred read replica or a diverging epoch: it is sent
    /// whatever the offsets.
    pub must_send: bool,
}

#[derive(Debug, Clone)]
struct Cached {
    asked: Asked,
    /// What the last answer in the session said (`None`: never answered, or an error).
    told: Option<Told>,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    epoch: i32,
    /// A follower's session: it may take a consumer's slot.
    privileged: bool,
    /// Topics named by id (requests v13+).
    by_id: bool,
    created_ms: i64,
    last_used_ms: i64,
    partitions: IndexMap<SessionKey, Cached>,
}

/// What a request is, once its session fields are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Context {
    /// Answer the partitions named; session id 0.
    Sessionless,
    /// Answer the partitions named, then [`FetchSessions::create`] a session of them.
    Full,
    /// Answer from these partitions (every partition of the session, in its order) only what
    /// changed ([`FetchSessions::answered`]).
    Incremental {
        id: i32,
        /// The session's epoch once this request is in: the answer checks it is still so.
        epoch: i32,
        partitions: Vec<(SessionKey, Asked)>,
    },
    /// Answer this error and nothing else; session id 0.
    Error(ErrorCode),
}

/// The broker's fetch sessions.
#[derive(Debug)]
pub struct FetchSessions {
    max_slots: usize,
    eviction_ms: i64,
    inner: Mutex<HashMap<i32, Session>>,
    evictions: AtomicU64,
}

impl Default for FetchSessions {
    fn default() -> Self {
        FetchSessions::new(DEFAULT_SLOTS, EVICTION_MS)
    }
}

impl FetchSessions {
    /// A cache of at most `max_slots` sessions (0: no session is ever made).
    pub fn new(max_slots: usize, eviction_ms: i64) -> FetchSessions {
        FetchSessions {
            max_slots,
            eviction_ms,
            inner: Mutex::new(HashMap::new()),
            evictions: AtomicU64::new(0),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Session>> {
        // The map stays consistent at every step, so a panic elsewhere leaves it usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads a request's session fields (v7+) and, for an incremental one, brings its
    /// session up to date: `asked` are the partitions the request names (deduplicated, in
    /// order), `forgotten` the ones it removes, `by_id` whether it names topics by id.
    pub fn open(
        &self,
        session_id: i32,
        epoch: i32,
        by_id: bool,
        asked: &[(SessionKey, Asked)],
        forgotten: &[SessionKey],
        now_ms: i64,
    ) -> Context {
        let mut sessions = self.sessions();
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if session_id != INVALID_SESSION_ID && sessions.remove(&session_id).is_some() {
                tracing::debug!(session_id, "fetch session closed by its fetcher");
            }
            return if epoch == FINAL_EPOCH {
                Context::Sessionless
            } else {
                Context::Full
            };
        }
        let Some(session) = sessions.get_mut(&session_id) else {
            return Context::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.epoch != epoch {
            tracing::debug!(
                session_id,
                expected = session.epoch,
                got = epoch,
                "fetch session epoch mismatch"
            );
            return Context::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH);
        }
        if session.by_id != by_id {
            return Context::Error(ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR);
        }
        let mut added = false;
        for (key, a) in asked {
            match session.partitions.get_mut(key) {
                Some(cached) => cached.asked = *a,
                None => {
                    added = true;
                    session.partitions.insert(
                        key.clone(),
                        Cached {
                            asked: *a,
                            told: None,
                        },
                    );
                }
            }
        }
        for key in forgotten {
            session.partitions.shift_remove(key);
        }
        if session.partitions.is_empty() {
            sessions.remove(&session_id);
            tracing::debug!(session_id, "fetch session closed: no partition left");
            return Context::Sessionless;
        }
        if added && cached_partitions(&sessions) > MAX_CACHED_PARTITIONS {
            sessions.remove(&session_id);
            tracing::info!(
                session_id,
                limit = MAX_CACHED_PARTITIONS,
                "fetch session closed: the sessions would hold too many partitions"
            );
            return Context::Sessionless;
        }
        let Some(session) = sessions.get_mut(&session_id) else {
            return Context::Sessionless;
        };
        session.last_used_ms = now_ms;
        session.epoch = next_epoch(session.epoch);
        Context::Incremental {
            id: session_id,
            epoch: session.epoch,
            partitions: session
                .partitions
                .iter()
                .map(|(k, c)| (k.clone(), c.asked))
                .collect(),
        }
    }

    /// After a full request's answer: opens a session of its partitions if a slot is free or
    /// can be freed; returns its id, or [`INVALID_SESSION_ID`].
    pub fn create(
        &self,
        privileged: bool,
        by_id: bool,
        partitions: Vec<(SessionKey, Asked, Option<Told>)>,
        now_ms: i64,
    ) -> i32 {
        let mut sessions = self.sessions();
        let size = partitions.len();
        if self.max_slots == 0
            || cached_partitions(&sessions).saturating_add(size) > MAX_CACHED_PARTITIONS
        {
            return INVALID_SESSION_ID;
        }
        if sessions.len() >= self.max_slots && !self.evict(&mut sessions, privileged, size, now_ms)
        {
            tracing::debug!(privileged, size, "no fetch session slot free");
            return INVALID_SESSION_ID;
        }
        let mut rng = rand::thread_rng();
        let id = loop {
            let id = rng.gen_range(1..i32::MAX);
            if !sessions.contains_key(&id) {
                break id;
            }
        };
        let partitions = partitions
            .into_iter()
            .map(|(key, asked, told)| (key, Cached { asked, told }))
            .collect();
        sessions.insert(
            id,
            Session {
                epoch: next_epoch(INITIAL_EPOCH),
                privileged,
                by_id,
                created_ms: now_ms,
                last_used_ms: now_ms,
                partitions,
            },
        );
        tracing::debug!(session_id = id, privileged, size, "fetch session created");
        id
    }

    /// Kafka's `tryEvict`: frees one slot for a new session of `size` partitions, if one
    /// may go.
    fn evict(
        &self,
        sessions: &mut HashMap<i32, Session>,
        privileged: bool,
        size: usize,
        now_ms: i64,
    ) -> bool {
        let stalest = sessions
            .iter()
            .min_by_key(|(id, s)| (s.last_used_ms, **id))
            .map(|(id, s)| (*id, s.last_used_ms));
        let Some((stalest, last_used)) = stalest else {
            return false;
        };
        let victim = if now_ms - last_used > self.eviction_ms {
            Some(stalest)
        } else {
            let old = |s: &Session| now_ms - s.created_ms > self.eviction_ms;
            sessions
                .iter()
                .filter(|(_, s)| old(s) || (privileged && !s.privileged))
                .map(|(id, s)| ((s.privileged, s.partitions.len(), *id), *id))
                .min()
                .filter(|((p, n, _), _)| (privileged, size) >= (*p, *n))
                .map(|(_, id)| id)
        };
        match victim {
            Some(id) => {
                sessions.remove(&id);
                self.evictions.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(session_id = id, "fetch session evicted");
                true
            }
            None => false,
        }
    }

    /// After an incremental request's read: which partitions its answer carries (one flag per
    /// entry of `answers`, in the order of [`Context::Incremental`]'s partitions), with the
    /// session brought up to date; INVALID_FETCH_SESSION_EPOCH when another request of the
    /// session came in meanwhile. A session evicted meanwhile answers every partition.
    pub fn answered(
        &self,
        id: i32,
        epoch: i32,
        answers: &[(SessionKey, Answered)],
    ) -> Result<Vec<bool>, ErrorCode> {
        let mut sessions = self.sessions();
        let Some(session) = sessions.get_mut(&id) else {
            return Ok(vec![true; answers.len()]);
        };
        if session.epoch != epoch {
            return Err(ErrorCode::INVALID_FETCH_SESSION_EPOCH);
        }
        let mut send = Vec::with_capacity(answers.len());
        // Partitions that returned records, by index, to move to the end afterwards.
        let mut rotate = Vec::new();
        for (i, (key, a)) in answers.iter().enumerate() {
            // The epoch matched, so no request of the session came in since `open` made
            // `answers`' order from this map: the entry at `i` is `key`'s (checked, and looked
            // up by key should it not be).
            let Some(index) = index_of(&session.partitions, i, key) else {
                send.push(true);
                continue;
            };
            let cached = &mut session.partitions[index];
            let changed = cached.told != Some(a.told);
            // After an error Kafka forgets the high watermark, so the next answer is sent.
            cached.told = (!a.must_send).then_some(a.told);
            send.push(a.records || a.must_send || changed);
            if a.records {
                rotate.push(index);
            }
        }
        // Kafka's rotation: a partition that returned records goes to the end, so that under
        // `max_bytes` the others are read first next time. Each move shifts the later entries
        // down by one, hence `- moved`.
        rotate.sort_unstable();
        rotate.dedup();
        let last = session.partitions.len().saturating_sub(1);
        for (moved, index) in rotate.into_iter().enumerate() {
            session.partitions.move_index(index - moved, last);
        }
        Ok(send)
    }

    /// Sessions in the cache (Kafka's `NumIncrementalFetchSessions`).
    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    /// Whether the cache holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Partitions in all sessions (Kafka's `NumIncrementalFetchPartitionsCached`).
    pub fn partitions_cached(&self) -> usize {
        cached_partitions(&self.sessions())
    }

    /// Sessions evicted so far (Kafka's `IncrementalFetchSessionEvictionsPerSec`, as a count).
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// The index of `key` in `partitions`: `at` when the entry there is `key`'s, else looked up.
fn index_of(
    partitions: &IndexMap<SessionKey, Cached>,
    at: usize,
    key: &SessionKey,
) -> Option<usize> {
    match partitions.get_index(at) {
        Some((k, _)) if k == key => Some(at),
        _ => partitions.get_index_of(key),
    }
}

fn cached_partitions(sessions: &HashMap<i32, Session>) -> usize {
    sessions.values().map(|s| s.partitions.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: &str, partition: i32) -> SessionKey {
        SessionKey {
            topic: topic.to_string(),
            topic_id: uuid::Uuid::nil(),
            partition,
        }
    }

    fn asked(fetch_offset: i64) -> Asked {
        Asked {
            fetch_offset,
            max_bytes: 1 << 20,
            current_leader_epoch: -1,
            log_start_offset: -1,
            last_fetched_epoch: -1,
        }
    }

    fn told(high_watermark: i64) -> Told {
        Told {
            high_watermark,
            log_start_offset: 0,
            last_stable_offset: high_watermark,
        }
    }

    fn answered(high_watermark: i64, records: bool) -> Answered {
        Answered {
            told: told(high_watermark),
            records,
            must_send: false,
        }
    }

    /// A session of partitions t-0..t-{n-1}, each told high watermark 10.
    fn session(cache: &FetchSessions, n: i32, privileged: bool, now_ms: i64) -> i32 {
        let parts = (0..n)
            .map(|p| (key("t", p), asked(0), Some(told(10))))
            .collect();
        cache.create(privileged, false, parts, now_ms)
    }

    fn incremental(ctx: Context) -> (i32, i32, Vec<(SessionKey, Asked)>) {
        match ctx {
            Context::Incremental {
                id,
                epoch,
                partitions,
            } => (id, epoch, partitions),
            other => panic!("not incremental: {other:?}"),
        }
    }

    #[test]
    fn epochs_advance_and_wrap() {
        assert_eq!(next_epoch(0), 1);
        assert_eq!(next_epoch(41), 42);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), -1);
    }

    #[test]
    fn full_and_final_requests_close_the_session_they_name() {
        let cache = FetchSessions::default();
        let id = session(&cache, 2, false, 0);
        assert_ne!(id, INVALID_SESSION_ID);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.partitions_cached(), 2);
        // An unknown id with a full request is no error.
        assert_eq!(cache.open(77, 0, false, &[], &[], 1), Context::Full);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.open(id, -1, false, &[], &[], 1), Context::Sessionless);
        assert!(cache.is_empty());
        let id = session(&cache, 2, false, 0);
        assert_eq!(cache.open(id, 0, false, &[], &[], 1), Context::Full);
        assert!(cache.is_empty());
    }

    #[test]
    fn incremental_requests_check_the_id_epoch_and_topic_naming() {
        let cache = FetchSessions::default();
        let id = session(&cache, 1, false, 0);
        assert_eq!(
            cache.open(id + 1, 1, false, &[], &[], 1),
            Context::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
        );
        assert_eq!(
            cache.open(id, 2, false, &[], &[], 1),
            Context::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH)
        );
        assert_eq!(
            cache.open(id, 1, true, &[], &[], 1),
            Context::Error(ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR)
        );
        // None of the refusals moved the epoch.
        let (got, epoch, parts) = incremental(cache.open(id, 1, false, &[], &[], 1));
        assert_eq!((got, epoch, parts.len()), (id, 2, 1));
        // The same request again (a duplicate) is refused.
        assert_eq!(
            cache.open(id, 1, false, &[], &[], 1),
            Context::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH)
        );
        let (_, epoch, _) = incremental(cache.open(id, 2, false, &[], &[], 2));
        assert_eq!(epoch, 3);
    }

    #[test]
    fn incremental_requests_add_update_and_forget_partitions() {
        let cache = FetchSessions::default();
        let id = session(&cache, 2, false, 0);
        let (_, _, parts) = incremental(cache.open(
            id,
            1,
            false,
            &[(key("t", 1), asked(5)), (key("u", 0), asked(3))],
            &[key("t", 0), key("missing", 9)],
            1,
        ));
        assert_eq!(
            parts,
            vec![(key("t", 1), asked(5)), (key("u", 0), asked(3))],
            "t-0 forgotten, t-1 moved on, u-0 added at the end"
        );
        // Forgetting the last partitions closes the session: the answer is sessionless.
        assert_eq!(
            cache.open(id, 2, false, &[], &[key("t", 1), key("u", 0)], 2),
            Context::Sessionless
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn an_answer_carries_only_what_changed_and_records_rotate() {
        let cache = FetchSessions::default();
        let id = session(&cache, 3, false, 0);
        let (_, epoch, parts) = incremental(cache.open(id, 1, false, &[], &[], 1));
        let answers: Vec<(SessionKey, Answered)> = vec![
            (parts[0].0.clone(), answered(12, true)),  // records
            (parts[1].0.clone(), answered(10, false)), // nothing new
            (parts[2].0.clone(), answered(11, false)), // the high watermark moved
        ];
        assert_eq!(
            cache.answered(id, epoch, &answers),
            Ok(vec![true, false, true])
        );
        // t-0 had records: it is now last.
        let (_, epoch, parts) = incremental(cache.open(id, 2, false, &[], &[], 2));
        let order: Vec<i32> = parts.iter().map(|(k, _)| k.partition).collect();
        assert_eq!(order, vec![1, 2, 0]);
        // The same offsets again: nothing to send; a new log start or LSO is sent.
        let mut lso = answered(11, false);
        lso.told.last_stable_offset = 9;
        let answers = vec![
            (key("t", 1), answered(10, false)),
            (key("t", 2), lso),
            (key("t", 0), answered(12, false)),
        ];
        assert_eq!(
            cache.answered(id, epoch, &answers),
            Ok(vec![false, true, false])
        );
    }

    #[test]
    fn several_partitions_with_records_rotate_in_their_order() {
        let cache = FetchSessions::default();
        let id = session(&cache, 6, false, 0);
        let (_, epoch, parts) = incremental(cache.open(id, 1, false, &[], &[], 1));
        // t-1, t-3 and t-4 return records.
        let answers: Vec<(SessionKey, Answered)> = parts
            .iter()
            .map(|(k, _)| (k.clone(), answered(10, [1, 3, 4].contains(&k.partition))))
            .collect();
        assert_eq!(
            cache.answered(id, epoch, &answers),
            Ok(vec![false, true, false, true, true, false])
        );
        let (_, epoch, parts) = incremental(cache.open(id, 2, false, &[], &[], 2));
        let order: Vec<i32> = parts.iter().map(|(k, _)| k.partition).collect();
        assert_eq!(order, vec![0, 2, 5, 1, 3, 4]);
        // Answers in another order than the session's are still matched by key.
        let answers = vec![
            (key("t", 4), answered(10, true)),
            (key("t", 0), answered(11, false)),
            (key("t", 9), answered(10, false)),
        ];
        assert_eq!(
            cache.answered(id, epoch, &answers),
            Ok(vec![true, true, true]),
            "t-9 is not in the session: sent"
        );
        let (_, _, parts) = incremental(cache.open(id, 3, false, &[], &[], 3));
        let order: Vec<i32> = parts.iter().map(|(k, _)| k.partition).collect();
        assert_eq!(order, vec![0, 2, 5, 1, 3, 4]);
    }

    #[test]
    fn an_error_is_always_sent_and_the_next_answer_too() {
        let cache = FetchSessions::default();
        let id = session(&cache, 1, false, 0);
        let (_, epoch, _) = incremental(cache.open(id, 1, false, &[], &[], 1));
        let error = Answered {
            told: Told {
                high_watermark: -1,
                log_start_offset: -1,
                last_stable_offset: -1,
            },
            records: false,
            must_send: true,
        };
        assert_eq!(
            cache.answered(id, epoch, &[(key("t", 0), error)]),
            Ok(vec![true])
        );
        let (_, epoch, _) = incremental(cache.open(id, 2, false, &[], &[], 2));
        assert_eq!(
            cache.answered(id, epoch, &[(key("t", 0), answered(10, false))]),
            Ok(vec![true]),
            "after an error the offsets are sent again, even unchanged"
        );
    }

    #[test]
    fn a_newer_request_in_the_session_refuses_the_older_answer() {
        let cache = FetchSessions::default();
        let id = session(&cache, 1, false, 0);
        let (_, first, _) = incremental(cache.open(id, 1, false, &[], &[], 1));
        let (_, second, _) = incremental(cache.open(id, 2, false, &[], &[], 1));
        let a = [(key("t", 0), answered(10, false))];
        assert_eq!(
            cache.answered(id, first, &a),
            Err(ErrorCode::INVALID_FETCH_SESSION_EPOCH)
        );
        assert_eq!(cache.answered(id, second, &a), Ok(vec![false]));
        // Gone meanwhile: every partition is sent.
        cache.open(id, -1, false, &[], &[], 2);
        assert_eq!(cache.answered(id, second, &a), Ok(vec![true]));
    }

    #[test]
    fn a_full_cache_evicts_as_kafka_does() {
        let cache = FetchSessions::new(2, 1000);
        let a = session(&cache, 5, false, 0);
        let b = session(&cache, 1, false, 10);
        // Both young and in use: a consumer's session finds no slot.
        assert_eq!(session(&cache, 9, false, 500), INVALID_SESSION_ID);
        // A follower's may take a consumer's slot: the smallest (b) goes.
        let f = session(&cache, 1, true, 600);
        assert_ne!(f, INVALID_SESSION_ID);
        assert_eq!(cache.evictions(), 1);
        assert_eq!(
            cache.open(b, 1, false, &[], &[], 600),
            Context::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
        );
        // a is used now and then; f is not used for longer than the eviction time: it goes
        // first, even though it is a follower's.
        incremental(cache.open(a, 1, false, &[], &[], 1500));
        let c = session(&cache, 1, false, 1700);
        assert_ne!(c, INVALID_SESSION_ID);
        assert_eq!(cache.evictions(), 2);
        assert!(matches!(
            cache.open(f, 1, true, &[], &[], 1700),
            Context::Error(_)
        ));
        // Older than the eviction time and in use, a session may give its slot to one at
        // least as large, never to a smaller one; a young one (c) keeps its slot.
        incremental(cache.open(a, 2, false, &[], &[], 1900));
        incremental(cache.open(c, 1, false, &[], &[], 1900));
        assert_eq!(session(&cache, 4, false, 2000), INVALID_SESSION_ID);
        let d = session(&cache, 5, false, 2000);
        assert_ne!(d, INVALID_SESSION_ID);
        assert_eq!(
            cache.open(a, 3, false, &[], &[], 2000),
            Context::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
        );
        incremental(cache.open(c, 2, false, &[], &[], 2000));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.evictions(), 3);
    }

    #[test]
    fn the_sessions_hold_a_bounded_number_of_partitions() {
        let cache = FetchSessions::default();
        let many = |n: usize| -> Vec<(SessionKey, Asked, Option<Told>)> {
            (0..n)
                .map(|p| (key("t", p as i32), asked(0), None))
                .collect()
        };
        assert_eq!(
            cache.create(false, false, many(MAX_CACHED_PARTITIONS + 1), 0),
            INVALID_SESSION_ID
        );
        let id = cache.create(false, false, many(MAX_CACHED_PARTITIONS - 1), 0);
        assert_ne!(id, INVALID_SESSION_ID);
        assert_eq!(
            cache.create(false, false, many(2), 0),
            INVALID_SESSION_ID,
            "no room for two more"
        );
        // Growing past the bound closes the session: its answer is sessionless.
        let more = [(key("u", 0), asked(0)), (key("u", 1), asked(0))];
        assert_eq!(
            cache.open(id, 1, false, &more, &[], 1),
            Context::Sessionless
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn no_slots_no_sessions() {
        let cache = FetchSessions::new(0, 1000);
        assert_eq!(session(&cache, 3, true, 0), INVALID_SESSION_ID);
        assert!(cache.is_empty());
    }
}
