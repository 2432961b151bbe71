//! Throughput and latency accounting shared by the perf tasks: a total and a one-second window,
//! each with an HdrHistogram of per-record latency in microseconds.

use hdrhistogram::Histogram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes in a megabyte as the Kafka perf tools count them.
pub const MB: f64 = 1024.0 * 1024.0;

/// Records, bytes and latencies over some span of time.
#[derive(Debug, Clone)]
pub struct Window {
    /// When this span began.
    pub start: Instant,
    pub records: u64,
    pub bytes: u64,
    /// Per-record latency (µs); a batch's latency counts once for each of its records.
    pub latency_us: Histogram<u64>,
}

impl Window {
    pub fn new() -> Self {
        Window {
            start: Instant::now(),
            records: 0,
            bytes: 0,
            // 1 µs .. 10 min at 3 significant digits.
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("static histogram bounds are valid"),
        }
    }

    fn add(&mut self, records: u64, bytes: u64, latency: Option<Duration>) {
        self.records += records;
        self.bytes += bytes;
        if let Some(l) = latency {
            let us = u64::try_from(l.as_micros()).unwrap_or(u64::MAX).max(1);
            self.latency_us.saturating_record_n(us, records);
        }
    }

    /// `records/s, MB/s, avg/p50/p99/p99.9/max` as one line of text.
    pub fn line(&self, label: &str) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = self.records as f64 / secs;
        let mbs = self.bytes as f64 / MB / secs;
        let h = &self.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "{} {label}, {rate:.1} records/sec ({mbs:.2} MB/sec), avg {:.2} ms, p50 {:.2} ms, \
             p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            self.records,
            h.mean() / 1000.0,
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
        )
    }
}

/// The totals and the current progress window, updated by every task; clones share them.
#[derive(Debug, Clone)]
pub struct Stats {
    inner: Arc<Mutex<(Window, Window)>>,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            inner: Arc::new(Mutex::new((Window::new(), Window::new()))),
        }
    }

    /// Accounts for `records` acknowledged records of `bytes` payload.
    pub fn record(&self, records: u64, bytes: u64, latency: Option<Duration>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0.add(records, bytes, latency);
        g.1.add(records, bytes, latency);
    }

    /// Returns the finished window and starts a new one.
    pub fn take_window(&self) -> Window {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut g.1, Window::new())
    }

    /// A copy of the totals.
    pub fn total(&self) -> Window {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0.clone()
    }
}
