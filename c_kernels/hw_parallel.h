/* hw_parallel.h -- internal: split a range of independent tasks over threads.
 * Each task must write only its own outputs, so results never depend on the
 * thread count (determinism is part of hwsim's contract). */
#ifndef HW_PARALLEL_H
#define HW_PARALLEL_H
#include <stdint.h>

typedef void (*hw_task_fn)(void *ctx, int64_t begin, int64_t end, int thread_index);

/* Run fn over [0, n_tasks) in n_threads contiguous chunks (the calling thread
 * takes chunk 0).  n_threads <= 1 or a failed thread start runs inline.
 * Returns the number of chunks used (<= n_threads), so callers can size
 * per-thread scratch (thread_index < the returned count). */
int hw_parallel_for(int64_t n_tasks, int n_threads, hw_task_fn fn, void *ctx);

/* The number of chunks hw_parallel_for will use for these arguments. */
int hw_parallel_chunks(int64_t n_tasks, int n_threads);

#endif
