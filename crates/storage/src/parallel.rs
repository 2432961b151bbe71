//! Work spread over a few threads: the log directories' recovery threads
//! (`num.recovery.threads.per.data.dir`), which open logs at start and flush them at shutdown.

/// `f` over `items` on up to `threads` threads (this one alone for one item or one thread);
/// the results in the items' order.
pub fn run<T: Send, R: Send>(items: Vec<T>, threads: usize, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let count = items.len();
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let done = std::sync::Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some((i, item)) = next else { break };
                let result = f(item);
                done.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, result));
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_item_is_done_once_and_the_results_keep_their_order() {
        let busy = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let out = super::run((0..50).collect(), 4, |i: usize| {
            use std::sync::atomic::Ordering::SeqCst;
            let now = busy.fetch_add(1, SeqCst) + 1;
            most.fetch_max(now, SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            busy.fetch_sub(1, SeqCst);
            i * 2
        });
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!((2..=4).contains(&most), "{most} at once");
        assert_eq!(super::run(vec![1, 2], 1, |i: i32| -i), vec![-1, -2]);
        assert!(super::run(Vec::<i32>::new(), 3, |i| i).is_empty());
    }
}
