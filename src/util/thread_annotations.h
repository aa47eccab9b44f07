// Clang's thread-safety attributes (-Wthread-safety), as LevelDB's port and Abseil
// spell them. Other compilers see nothing. See
// https://clang.llvm.org/docs/ThreadSafetyAnalysis.html
#pragma once

#if defined(__clang__)
#define OFFLOAD_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define OFFLOAD_THREAD_ANNOTATION(x)
#endif

// A type that is a lock.
#define CAPABILITY(name) OFFLOAD_THREAD_ANNOTATION(capability(name))
// An RAII type that holds a lock for its lifetime.
#define SCOPED_CAPABILITY OFFLOAD_THREAD_ANNOTATION(scoped_lockable)
// A field read or written only with `mu` held.
#define GUARDED_BY(mu) OFFLOAD_THREAD_ANNOTATION(guarded_by(mu))
// A pointer whose pointee is read or written only with `mu` held.
#define PT_GUARDED_BY(mu) OFFLOAD_THREAD_ANNOTATION(pt_guarded_by(mu))
// A function the caller must call with these locks held.
#define EXCLUSIVE_LOCKS_REQUIRED(...) OFFLOAD_THREAD_ANNOTATION(exclusive_locks_required(__VA_ARGS__))
// A function the caller must not call with these locks held (it takes them).
#define LOCKS_EXCLUDED(...) OFFLOAD_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// A function that takes, or releases, a lock and returns.
#define EXCLUSIVE_LOCK_FUNCTION(...) OFFLOAD_THREAD_ANNOTATION(exclusive_lock_function(__VA_ARGS__))
#define UNLOCK_FUNCTION(...) OFFLOAD_THREAD_ANNOTATION(unlock_function(__VA_ARGS__))
// A function that checks at run time (or merely states) that the lock is held.
#define ASSERT_EXCLUSIVE_LOCK(...) OFFLOAD_THREAD_ANNOTATION(assert_exclusive_lock(__VA_ARGS__))
// A function whose lock use the analysis cannot follow; say why at each use.
#define NO_THREAD_SAFETY_ANALYSIS OFFLOAD_THREAD_ANNOTATION(no_thread_safety_analysis)
