//! A global allocator that counts: the bytes allocated now, and the most allocated at once
//! since the last reset. A reallocation counts as the new block allocated before the old
//! one is freed, which is what an allocator that cannot grow in place does, so the peak is
//! never understated.
//!
//! Shared by the `ratelimit_memory` example (the table in BENCHMARKS.md) and the
//! `ratelimit_memory` test (the ≤ 64 bytes per key goal); each declares its own
//! `#[global_allocator]` of this type.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use distlab_core::Time;
use distlab_core::ratelimit::keyed::KeyedLimiter;
use distlab_core::ratelimit::rule::Rule;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The counting allocator over the system's.
pub struct Counting;

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    CURRENT.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are
// updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's pointer, layout and size.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

/// What filling a keyed limiter with `count` `u64` keys allocated, per key.
#[derive(Debug, Clone, Copy)]
pub struct PerKey {
    pub count: u64,
    pub max_keys: u64,
    /// Bytes allocated once the keys are in, per key, keys included.
    pub steady: f64,
    /// The worst moment while the last nine tenths of them went in (and at least from the
    /// 1 000th key on): the most allocated during one insertion (the old and the new index
    /// both alive while it grows, a new chunk) over the keys held then.
    pub peak: f64,
    /// What the limiter's own `memory()` report says, per key.
    pub reported: f64,
}

impl PerKey {
    /// The same without the keys (8 bytes each, held once).
    pub fn steady_without_keys(&self) -> f64 {
        self.steady - 8.0
    }
    pub fn peak_without_keys(&self) -> f64 {
        self.peak - 8.0
    }
}

/// Fills a fresh limiter of `rule` with keys 0..count (one admitted request each) and
/// measures. Run it on one thread: the counters are process-wide.
pub fn fill<R: Rule>(rule: &R, count: u64, max_keys: u64) -> PerKey {
    let base = CURRENT.load(Ordering::Relaxed);
    let mut k = KeyedLimiter::new(rule.clone(), max_keys).expect("a valid maxKeys");
    let mut peak: f64 = 0.0;
    for key in 0..count {
        PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
        k.try_acquire(key, Time(key), 1.0).expect("a valid cost");
        let held = key + 1;
        if held >= (count / 10).max(count.min(1_000)) {
            let during = PEAK.load(Ordering::Relaxed) - base;
            peak = peak.max(during as f64 / held as f64);
        }
    }
    let steady = CURRENT.load(Ordering::Relaxed) - base;
    let reported = k.memory().bytes_per_key;
    drop(k);
    PerKey {
        count,
        max_keys,
        steady: steady as f64 / count as f64,
        peak,
        reported,
    }
}
