//! The one worker pool: `jobs` threads take items in order until none are left, and every
//! event they send reaches the caller's `on_event` on the calling thread, as it happens.
//! `propagate` runs its targets on it and `restart-systemvms` its VMs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};

/// Run `work` on every item, at most `jobs` at a time (at least one); returns when all are done.
pub fn run<T: Sync, E: Send>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T, &Sender<E>) + Sync,
    mut on_event: impl FnMut(E),
) {
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<E>();
    let workers = jobs.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            s.spawn(move || {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    work(item, &tx);
                }
            });
        }
        drop(tx);
        for event in rx {
            on_event(event);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_runs_once_and_no_more_than_jobs_at_a_time() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<u32> = (0..40).collect();
        let mut seen = Vec::new();
        run(
            &items,
            3,
            |item, tx| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(2));
                running.fetch_sub(1, Ordering::SeqCst);
                let _ = tx.send(*item);
            },
            |item| seen.push(item),
        );
        seen.sort_unstable();
        assert_eq!(seen, items);
        assert!(most.load(Ordering::SeqCst) <= 3);
    }
}
