//! The memory pool for requests being read (Kafka's `queued.max.request.bytes`).
//!
//! Every connection reads into a small buffer of its own ([`crate::connection`]'s
//! `BASE_BUFFER`, bounded by `max.connections`); a request larger than that grows the buffer in
//! steps as its bytes arrive, and each step is taken from this pool first. When the pool is
//! used up, the connection stops reading its socket (the peer's TCP window closes) until another
//! connection gives memory back: when its buffer shrinks after a large request, when it closes,
//! or when a request that was never completed times out (`socket.request.timeout.ms`), which is
//! what frees a pool held by stalled peers.
//!
//! Taking and giving back are one atomic operation each, so the produce path (a few steps per
//! megabyte-sized request, none once the buffer has grown) pays nothing measurable.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Bytes that connections may hold beyond their base buffers.
#[derive(Debug)]
pub struct MemoryPool {
    /// Bytes not lent out; `usize::MAX` for an unbounded pool (never decremented then).
    available: AtomicUsize,
    /// The pool's size; `None` when unbounded.
    capacity: Option<usize>,
    /// Connections parked in [`MemoryPool::acquire_or_wait`]: releases notify only when
    /// someone waits, so the common case costs no lock.
    waiters: AtomicUsize,
    /// Wakes waiting connections when memory is given back.
    released: Notify,
}

impl MemoryPool {
    /// A pool of `capacity` bytes; `None` never refuses.
    pub fn new(capacity: Option<usize>) -> MemoryPool {
        MemoryPool {
            available: AtomicUsize::new(capacity.unwrap_or(usize::MAX)),
            capacity,
            waiters: AtomicUsize::new(0),
            released: Notify::new(),
        }
    }

    /// Bytes not lent out.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.available.load(Ordering::SeqCst)
    }

    /// Whether connections are waiting for memory (then idle buffers should give theirs back).
    pub fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::SeqCst) > 0
    }

    /// Takes `n` bytes if that many are free; never overdraws.
    pub fn try_acquire(&self, n: usize) -> bool {
        if self.capacity.is_none() || n == 0 {
            return true;
        }
        self.available
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| a.checked_sub(n))
            .is_ok()
    }

    /// Gives back `n` bytes taken with [`MemoryPool::try_acquire`].
    pub fn release(&self, n: usize) {
        if self.capacity.is_none() || n == 0 {
            return;
        }
        self.available.fetch_add(n, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.released.notify_waiters();
        }
    }

    /// Takes `n` bytes, waiting for releases while the pool is short. Cancel-safe: dropping the
    /// future takes nothing.
    pub async fn acquire_or_wait(&self, n: usize) {
        loop {
            if self.try_acquire(n) {
                return;
            }
            let released = self.released.notified();
            tokio::pin!(released);
            // Register before the second look, so a release in between is not missed.
            released.as_mut().enable();
            let _waiting = WaiterGuard::new(&self.waiters);
            if self.try_acquire(n) {
                return;
            }
            released.await;
        }
    }
}

/// Counts a waiting connection for as long as it waits (also when its wait is cancelled).
struct WaiterGuard<'a>(&'a AtomicUsize);

impl<'a> WaiterGuard<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        WaiterGuard(count)
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn never_overdraws_and_gives_back() {
        let pool = MemoryPool::new(Some(100));
        assert!(pool.try_acquire(60));
        assert!(!pool.try_acquire(41));
        assert!(pool.try_acquire(40));
        assert_eq!(pool.available(), 0);
        pool.release(60);
        assert_eq!(pool.available(), 60);
        assert!(!pool.has_waiters());
    }

    #[test]
    fn an_unbounded_pool_never_refuses() {
        let pool = MemoryPool::new(None);
        assert!(pool.try_acquire(usize::MAX));
        assert!(pool.try_acquire(usize::MAX));
        pool.release(5);
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_memory_is_released() {
        let pool = Arc::new(MemoryPool::new(Some(10)));
        assert!(pool.try_acquire(10));
        let p = Arc::clone(&pool);
        let waiter = tokio::spawn(async move { p.acquire_or_wait(4).await });
        while !pool.has_waiters() {
            tokio::task::yield_now().await;
        }
        pool.release(3);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "3 bytes free, 4 wanted");
        pool.release(7);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(pool.available(), 6);
        assert!(!pool.has_waiters());
    }

    #[tokio::test]
    async fn a_cancelled_wait_takes_nothing() {
        let pool = MemoryPool::new(Some(1));
        let r = tokio::time::timeout(Duration::from_millis(10), pool.acquire_or_wait(2)).await;
        assert!(r.is_err());
        assert_eq!(pool.available(), 1);
        assert!(!pool.has_waiters());
    }
}
