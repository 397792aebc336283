//! A global allocator that counts the bytes each thread allocates, so a test can bound what a
//! parser allocates for an input of a given size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Bytes a parser may allocate per input byte (JSON values, owned strings and vectors grown
/// by doubling add up to a few tens of bytes per input byte)…
pub const PER_BYTE: usize = 128;
/// …plus this much whatever the input (tables, error messages, a JWT library's setup).
pub const BASE: usize = 256 * 1024;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

pub struct Counting;

fn count(bytes: usize) {
    // `try_with`: the thread may be tearing down its locals.
    let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(bytes)));
}

// SAFETY: every call is forwarded to `System` with the same arguments; counting touches only
// a thread-local `Cell` without destructor, which never allocates.
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
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Runs `f` (a parser on an input of `len` bytes) and fails when it allocated more than
/// `PER_BYTE * len + BASE` bytes in all. The answer is returned, so it is dropped outside
/// the count.
pub fn bounded<T>(what: &str, len: usize, f: impl FnOnce() -> T) -> T {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    let used = ALLOCATED.with(Cell::get) - before;
    let limit = PER_BYTE.saturating_mul(len).saturating_add(BASE);
    assert!(
        used <= limit,
        "{what}: {used} bytes allocated for {len} bytes of input (limit {limit})"
    );
    out
}
