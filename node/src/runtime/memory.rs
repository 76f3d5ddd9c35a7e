//! How the node's allocator hands memory back.
//!
//! A password hash (argon2id) allocates 19 MiB. glibc's malloc raises its mmap threshold to the
//! size of any large block it frees, so after the first hash every later 19 MiB block came from
//! a thread's heap arena instead of its own mapping, and stayed resident when freed: one block
//! per blocking-pool thread, 140 MB of a leader's 160 MB RSS right after eight logins
//! (measured with `harness bench`). A fixed threshold keeps every large block a mapping of its
//! own, returned to the kernel when it is freed.

/// Blocks at least this large are mapped on their own (and unmapped when freed).
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Sets the fixed mmap threshold; call once, before any thread starts.
pub fn return_large_blocks() {
    // SAFETY: mallopt only changes malloc's tuning parameters; it is called before the
    // runtime starts its threads.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
