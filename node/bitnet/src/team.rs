//! A fixed team of threads for decode's short, back-to-back parallel steps.
//!
//! Decoding one token of the `small` model runs ~60 matrix-vector products of a few
//! microseconds each. With a work-stealing pool (rayon) two threads were no faster than one on a
//! busy machine: between two products its idle worker yields its CPU and then sleeps, and waking
//! it again costs about as much as the product. A [`Team`]'s members instead busy-wait on an
//! atomic ticket between jobs (as llama.cpp's thread pool does), so a job starts on every
//! member within a cache-line transfer.
//!
//! Busy-waiting alone collapses when threads outnumber free cores (measured: with another
//! process on one of two cores, the scheduler kept both of our threads on the other, and every
//! product waited for a scheduler slice). So work is *claimed*: a job is split into `parts`
//! pieces, and the caller and the members take pieces from one atomic counter until none are
//! left. A member that is not running takes nothing, and the caller does its share — decode then
//! runs at one-thread speed instead of stalling. Threads that wait longer than a few microseconds park on a
//! condition variable, so an idle engine does not burn CPU.
//!
//! Guarantees: [`Team::run`] calls `job(i)` exactly once for every `i` in `0..parts`, on some
//! team thread, and returns only after every call has returned, so the job may borrow from the
//! caller's stack; a panic in a job is caught and re-raised on the caller after the other pieces
//! are done. Jobs run one at a time (concurrent `run` calls are serialised). Which thread runs a
//! piece is not fixed, so pieces must not depend on it (ours compute disjoint output ranges).
//! Not guaranteed: fairness to other processes while jobs keep coming.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::error::{BitnetError, Result};

/// Spin iterations (one `spin_loop` hint each; a few microseconds in all) before a waiting
/// thread parks. Measured on the 2-core VM: 2¹¹ spins kept a member co-located with the caller
/// burning the caller's core under load (two-thread decode 297–403 tok/s vs rayon's 502–786);
/// 2⁸ gave 361–508 vs 461–576, and on the quiet machine the team still led (ADR 0086).
/// A member parked between two products (during a layer's norms and attention) is woken by the
/// next job; the caller does not wait for it, it claims the pieces itself.
const SPINS_BEFORE_PARK: u32 = 1 << 8;

/// The low bits of the ticket count claimed pieces; the high bits are the job's generation.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// A job as the members see it: its lifetime is erased; [`Team::run`] keeps it alive until every
/// claimed piece is done.
type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    members: usize,
    /// `generation << INDEX_BITS | next unclaimed piece`. A new job stores a new generation with
    /// index 0; a thread claims piece `i` by a compare-exchange from `(g, i)` to `(g, i + 1)`, so
    /// a thread that slept through a job can never claim a piece of a later one with a stale
    /// job pointer (see `claim`).
    ticket: AtomicU64,
    /// Pieces in the current job.
    parts: AtomicUsize,
    /// The current job: a pointer to the fat job pointer on `run`'s stack, stored before the
    /// ticket that publishes it.
    job: AtomicPtr<Job>,
    /// Pieces of the current job that have finished.
    completed: AtomicUsize,
    /// Members parked on `wake`.
    sleepers: AtomicUsize,
    /// Whether the caller of `run` is parked on `finished`.
    caller_parked: AtomicBool,
    panicked: AtomicBool,
    stop: AtomicBool,
    park: Mutex<()>,
    wake: Condvar,
    finished: Condvar,
}

impl Shared {
    /// Claims and runs pieces of generation `g`'s job until none are left.
    fn work(&self, g: u64) {
        loop {
            let t = self.ticket.load(Ordering::Acquire);
            let (tg, i) = (t >> INDEX_BITS, (t & INDEX_MASK) as usize);
            if tg != g {
                return;
            }
            let parts = self.parts.load(Ordering::Acquire);
            if i >= parts {
                return;
            }
            let job = self.job.load(Ordering::Acquire);
            // A successful exchange from (g, i) proves the ticket did not move while `parts` and
            // `job` were read: a piece of generation g is unclaimed, so generation g is not
            // finished, so `run` has not yet replaced `parts`/`job` (it does so only after a
            // job's pieces are all complete) and is still holding the job alive.
            if self
                .ticket
                .compare_exchange_weak(t, t + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            // SAFETY: see above — `job` points at generation g's live job.
            let f = unsafe { &**job };
            if catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
                self.panicked.store(true, Ordering::Release);
            }
            if self.completed.fetch_add(1, Ordering::SeqCst) + 1 == parts
                && self.caller_parked.load(Ordering::SeqCst)
            {
                let _g = self.park.lock().unwrap_or_else(|p| p.into_inner());
                self.finished.notify_one();
            }
        }
    }
}

/// A fixed team of `threads` threads (the caller and `threads − 1` members) that run one job at a
/// time (see the module docs).
pub struct Team {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    /// Serialises `run` calls; holds the generation counter.
    running: Mutex<u64>,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team")
            .field("threads", &self.threads())
            .finish()
    }
}

impl Team {
    /// A team of `threads` (≥ 1) threads: this one plus `threads − 1` spawned members.
    pub fn new(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(BitnetError::Model(
                "a team needs at least one thread".into(),
            ));
        }
        let shared = Arc::new(Shared {
            members: threads - 1,
            ticket: AtomicU64::new(0),
            parts: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            completed: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            caller_parked: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            park: Mutex::new(()),
            wake: Condvar::new(),
            finished: Condvar::new(),
        });
        let mut handles = Vec::with_capacity(threads - 1);
        for index in 1..threads {
            let s = Arc::clone(&shared);
            let h = std::thread::Builder::new()
                .name(format!("magnet-decode-{index}"))
                .spawn(move || member(&s))
                .map_err(|e| BitnetError::Model(format!("cannot start a decode thread: {e}")))?;
            handles.push(h);
        }
        Ok(Self {
            shared,
            handles,
            running: Mutex::new(0),
        })
    }

    /// Threads in the team, the caller included.
    pub fn threads(&self) -> usize {
        self.shared.members + 1
    }

    /// Calls `job(i)` once for every `i` in `0..parts`, spread over the team (this thread
    /// included), and returns when all calls have returned. Re-raises a job's panic. A job must
    /// not call `run` on the same team (jobs are serialised, so that would wait for itself).
    pub fn run<F: Fn(usize) + Sync>(&self, parts: usize, job: F) {
        assert!(parts as u64 <= INDEX_MASK, "too many pieces in one job");
        let s = &*self.shared;
        if s.members == 0 || parts <= 1 {
            for i in 0..parts {
                job(i);
            }
            return;
        }
        let mut generation = self.running.lock().unwrap_or_else(|p| p.into_inner());
        *generation += 1;
        let g = *generation & (u64::MAX >> INDEX_BITS);
        let wide: &(dyn Fn(usize) + Sync) = &job;
        // SAFETY: only the lifetime is erased. Threads dereference the pointer only for pieces
        // they claimed in this generation, and this function returns (and drops `job`) only after
        // every piece is complete.
        let erased: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(wide) };
        s.job
            .store(&erased as *const Job as *mut Job, Ordering::Release);
        s.parts.store(parts, Ordering::Release);
        s.completed.store(0, Ordering::Release);
        s.ticket.store(g << INDEX_BITS, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.park.lock().unwrap_or_else(|p| p.into_inner());
            s.wake.notify_all();
        }
        s.work(g);
        let mut spins = 0u32;
        while s.completed.load(Ordering::Acquire) < parts {
            if spins < SPINS_BEFORE_PARK {
                spins += 1;
                std::hint::spin_loop();
            } else {
                let mut guard = s.park.lock().unwrap_or_else(|p| p.into_inner());
                s.caller_parked.store(true, Ordering::SeqCst);
                while s.completed.load(Ordering::SeqCst) < parts {
                    guard = s.finished.wait(guard).unwrap_or_else(|p| p.into_inner());
                }
                s.caller_parked.store(false, Ordering::SeqCst);
            }
        }
        if s.panicked.swap(false, Ordering::AcqRel) {
            panic!("a decode job panicked");
        }
    }

    /// Splits `out` into contiguous ranges — one per thread, each but the last a multiple of
    /// `align` long — and calls `job(start, range)` for each (empty ranges are skipped). The
    /// ranges depend only on `out.len()`, `align` and the thread count.
    pub fn for_chunks<T: Send, F: Fn(usize, &mut [T]) + Sync>(
        &self,
        out: &mut [T],
        align: usize,
        job: F,
    ) {
        let n = out.len();
        let parts = self.threads();
        let per = n.div_ceil(parts).next_multiple_of(align.max(1));
        let base = SyncPtr(out.as_mut_ptr());
        self.run(parts, |i| {
            let start = (i * per).min(n);
            let end = ((i + 1) * per).min(n);
            if start < end {
                // SAFETY: `[start, end)` ranges of different `i` are disjoint and inside `out`,
                // which is exclusively borrowed for the whole of `run`, and `run` calls each `i`
                // once.
                let range =
                    unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
                job(start, range);
            }
        });
    }
    /// [`Team::for_chunks`] over several equally long slices at once: the row range
    /// `[start, end)` is cut from every slice in `outs` (the ranges are those `for_chunks` gives
    /// for one of them), and `job(start, pieces)` gets the pieces of one range, one per slice, in
    /// order. Batched decode uses it to give each thread the same rows of every sequence's
    /// output. Empty ranges are skipped; `outs` of unequal lengths are cut by the first one's.
    pub fn for_chunks_of_each<T: Send, F: Fn(usize, &mut [&mut [T]]) + Sync>(
        &self,
        outs: &mut [&mut [T]],
        align: usize,
        job: F,
    ) {
        let n = outs.first().map_or(0, |o| o.len());
        let parts = self.threads();
        let per = n.div_ceil(parts).next_multiple_of(align.max(1));
        let mut pieces: Vec<Vec<&mut [T]>> =
            (0..parts).map(|_| Vec::with_capacity(outs.len())).collect();
        for o in outs.iter_mut() {
            let mut rest: &mut [T] = o;
            for p in pieces.iter_mut() {
                let k = per.min(rest.len());
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(k);
                p.push(head);
                rest = tail;
            }
        }
        // Each piece is taken by exactly one call (`run` calls each `i` once), so its lock is
        // never contended; it only lends the `&mut` slices across threads without `unsafe`.
        let pieces: Vec<Mutex<Vec<&mut [T]>>> = pieces.into_iter().map(Mutex::new).collect();
        self.run(parts, |i| {
            let mut p = pieces[i].lock().unwrap_or_else(|p| p.into_inner());
            if p.first().is_some_and(|s| !s.is_empty()) {
                job(i * per, &mut p);
            }
        });
    }
}

/// A raw pointer that may cross threads (see [`Team::for_chunks`]'s disjoint ranges).
struct SyncPtr<T>(*mut T);
impl<T> SyncPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}
// SAFETY: used only to build disjoint sub-slices of a `&mut [T]` with `T: Send`.
unsafe impl<T: Send> Sync for SyncPtr<T> {}

fn member(s: &Shared) {
    // Generation 0 is the ticket's initial value; jobs start at 1. (Reading the ticket here
    // instead would skip a job published before this thread first ran.)
    let mut seen = 0;
    loop {
        let mut spins = 0u32;
        let g = loop {
            let g = s.ticket.load(Ordering::Acquire) >> INDEX_BITS;
            if g != seen {
                break g;
            }
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            if spins < SPINS_BEFORE_PARK {
                spins += 1;
                std::hint::spin_loop();
            } else {
                let mut guard = s.park.lock().unwrap_or_else(|p| p.into_inner());
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                while s.ticket.load(Ordering::SeqCst) >> INDEX_BITS == seen
                    && !s.stop.load(Ordering::SeqCst)
                {
                    guard = s.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
                spins = 0;
            }
        };
        seen = g;
        s.work(g);
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stop.store(true, Ordering::SeqCst);
        {
            let _g = s.park.lock().unwrap_or_else(|p| p.into_inner());
            s.wake.notify_all();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_piece_runs_exactly_once_and_run_waits_for_all() {
        for threads in 1..=4 {
            let team = Team::new(threads).unwrap();
            for round in 0..300u32 {
                let parts = (round as usize % 7) + 1;
                let hits: Vec<AtomicU32> = (0..parts).map(|_| AtomicU32::new(0)).collect();
                team.run(parts, |i| {
                    hits[i].fetch_add(round + 1, Ordering::Relaxed);
                });
                for h in &hits {
                    assert_eq!(h.load(Ordering::Relaxed), round + 1);
                }
            }
        }
    }

    #[test]
    fn for_chunks_covers_the_slice_with_aligned_disjoint_ranges() {
        for threads in 1..=4 {
            let team = Team::new(threads).unwrap();
            for n in [0usize, 1, 3, 4, 5, 17, 64, 130, 513] {
                let mut out = vec![0usize; n];
                team.for_chunks(&mut out, 4, |start, range| {
                    assert!(start % 4 == 0);
                    for (k, y) in range.iter_mut().enumerate() {
                        *y += start + k + 1;
                    }
                });
                assert_eq!(out, (1..=n).collect::<Vec<_>>(), "threads {threads}, n {n}");
            }
        }
    }

    #[test]
    fn for_chunks_of_each_cuts_the_same_aligned_ranges_from_every_slice() {
        for threads in 1..=4 {
            let team = Team::new(threads).unwrap();
            for n in [0usize, 1, 3, 4, 5, 17, 64, 130, 513] {
                let mut a = vec![0usize; n];
                let mut b = vec![0usize; n];
                let mut c = vec![0usize; n];
                let mut outs = [&mut a[..], &mut b[..], &mut c[..]];
                team.for_chunks_of_each(&mut outs, 4, |start, pieces| {
                    assert!(start % 4 == 0);
                    assert_eq!(pieces.len(), 3);
                    for (s, piece) in pieces.iter_mut().enumerate() {
                        for (k, y) in piece.iter_mut().enumerate() {
                            *y += (s + 1) * 1000 + start + k;
                        }
                    }
                });
                for (s, v) in [a, b, c].iter().enumerate() {
                    let want: Vec<usize> = (0..n).map(|k| (s + 1) * 1000 + k).collect();
                    assert_eq!(v, &want, "threads {threads}, n {n}, slice {s}");
                }
            }
        }
    }

    #[test]
    fn members_park_when_idle_and_wake_for_the_next_job() {
        let team = Team::new(3).unwrap();
        let count = AtomicU32::new(0);
        team.run(3, |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        // Long enough for both members to exhaust their spins and park.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let ran_on = Mutex::new(Vec::new());
        team.run(64, |_| {
            count.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_micros(200));
            let name = std::thread::current().name().map(str::to_owned);
            ran_on.lock().unwrap().push(name);
        });
        assert_eq!(count.load(Ordering::Relaxed), 67);
        let ran_on = ran_on.into_inner().unwrap();
        assert!(
            ran_on.iter().any(|n| n
                .as_deref()
                .is_some_and(|n| n.starts_with("magnet-decode-"))),
            "no member woke up to take a piece: {ran_on:?}"
        );
    }

    #[test]
    fn a_piece_that_waits_for_the_others_does_not_deadlock_the_team() {
        // Whichever thread claims piece 0 blocks in it until the other seven are done, so they
        // must be claimed by the other thread rather than assigned to the blocked one.
        let team = Team::new(2).unwrap();
        let done = AtomicU32::new(0);
        team.run(8, |i| {
            if i == 0 {
                while done.load(Ordering::Acquire) < 7 {
                    std::hint::spin_loop();
                }
            } else {
                done.fetch_add(1, Ordering::AcqRel);
            }
        });
        assert_eq!(done.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn a_panic_in_a_piece_reaches_the_caller_and_the_team_keeps_working() {
        let team = Team::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.run(4, |i| {
                if i == 3 {
                    panic!("piece fails");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicU32::new(0);
        team.run(4, |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn zero_threads_is_an_error() {
        assert!(Team::new(0).is_err());
    }
}
