/* hw_parallel.c -- see hw_parallel.h. */
#include <pthread.h>
#include "hw_parallel.h"

#define HW_MAX_THREADS 64

typedef struct {
    hw_task_fn fn;
    void *ctx;
    int64_t begin;
    int64_t end;
    int index;
} hw_chunk_t;

static void *run_chunk(void *p)
{
    hw_chunk_t *c = (hw_chunk_t *)p;
    c->fn(c->ctx, c->begin, c->end, c->index);
    return 0;
}

int hw_parallel_chunks(int64_t n_tasks, int n_threads)
{
    if (n_tasks <= 0) return 1;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > HW_MAX_THREADS) n_threads = HW_MAX_THREADS;
    if ((int64_t)n_threads > n_tasks) n_threads = (int)n_tasks;
    return n_threads;
}

int hw_parallel_for(int64_t n_tasks, int n_threads, hw_task_fn fn, void *ctx)
{
    int chunks = hw_parallel_chunks(n_tasks, n_threads);
    if (n_tasks <= 0) return chunks;
    if (chunks == 1) {
        fn(ctx, 0, n_tasks, 0);
        return 1;
    }
    hw_chunk_t c[HW_MAX_THREADS];
    pthread_t tid[HW_MAX_THREADS];
    int started[HW_MAX_THREADS];
    for (int i = 0; i < chunks; i++) {
        c[i].fn = fn;
        c[i].ctx = ctx;
        c[i].begin = n_tasks * i / chunks;
        c[i].end = n_tasks * (i + 1) / chunks;
        c[i].index = i;
        started[i] = 0;
    }
    for (int i = 1; i < chunks; i++)
        started[i] = pthread_create(&tid[i], 0, run_chunk, &c[i]) == 0;
    run_chunk(&c[0]);
    for (int i = 1; i < chunks; i++) {
        if (started[i]) pthread_join(tid[i], 0);
        else run_chunk(&c[i]);   /* could not start a thread: same result, inline */
    }
    return chunks;
}
