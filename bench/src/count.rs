//! `--count-allocs`: the system allocator, counting. Off (one relaxed
//! load per call) unless asked for, so that the timed scenarios run on
//! the plain allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's allocations and bytes.
    static MINE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

fn count(size: usize) {
    if ON.load(Relaxed) {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
        let _ = MINE.try_with(|m| {
            let (n, b) = m.get();
            m.set((n + 1, b + size as u64));
        });
    }
}

// SAFETY: every call is passed on to `System` unchanged; counting only
// adds to atomics and a const-initialised thread-local `Cell` (no
// allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A realloc counts as an allocation of the new size (glibc may
        // grow in place, or allocate, copy and free).
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Starts counting.
pub fn start() {
    ON.store(true, Relaxed);
}

/// Whether counting is on.
pub fn on() -> bool {
    ON.load(Relaxed)
}

/// Allocations (and reallocations) and bytes so far: the whole process's,
/// and this thread's.
pub fn now() -> [u64; 4] {
    let (n, b) = MINE.with(Cell::get);
    [ALLOCS.load(Relaxed), BYTES.load(Relaxed), n, b]
}
